"""Faces a second through the Ray Data stages (gecodec.ray_stages) with one and two workers, against the plain
library on the same faces and batch size; the archive's size; memory per worker; 10 million faces on paper.

    python -m bench.scale --n 512

The first --n faces of --data are encoded (with the check, as `gec encode` does) and decoded, in two kinds of
files: the model's default files (on the default model they decode to their start picture, so fixed costs
dominate) and searched files (seed 1: version 3, each decode a latent search), for which the issue's targets
are written. The library runs in this process with torch on 1 and on 2 threads; the Ray jobs run on
ray.init(num_cpus=2), each worker an actor on one torch thread. Every path is warmed on a few faces before its
timed pass, and a Ray job's timed window opens only once all its actors are up (model loaded, warmed): the
"what" entry of the JSON says what each figure includes. Writes --out (bench/results/scale.json) and prints a
table. The extrapolation to 10 million faces is arithmetic on these CPU figures; no GPU figure is measured.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import ray
import torch

from bench.archive_overhead import coded, measure
from gecodec import container
from gecodec.archive import ArchiveRow, to_table
from gecodec.bundle import load_model
from gecodec.codec import Codec
from gecodec.fileio import write_bytes_atomic
from gecodec.imageio import is_image_path
from gecodec.ray_stages import GecDecoder, GecEncoder

DATA = Path("../shared/data/celeba64/val")
DEVICE = "cpu"  # no GPU figure is measured here (see on_paper)
KINDS = {"default": {}, "searched": {"seed": 1}}  # encode options; a seed asks for a searched (version 3) file
COUNTS = (1, 2)  # torch threads of the library, workers of the Ray jobs
WARMUP = 2  # faces each path codes before it is timed: first calls' one-off costs stay out of the figures
FACES_ON_PAPER = 10_000_000
WHAT = {
    "library": "seconds of the plain library over all faces, batch_size at a time, in this process, torch on "
               "`threads` threads; model loaded and warmed first. encode: bench.archive_overhead.coded, "
               "gec encode's path (frame_image, encode_framed with the check); decode: Codec.decode_batch",
    "ray.job_s": "the driver's wall clock of the Ray Data job: actors started, models loaded and warmed, the work "
                 "and the transfers (ray.init excluded)",
    "ray.steady_s": "the first batch's start to the last batch's end in the actors, which get no batch until all "
                    "of them are up (DataContext.wait_for_min_actors_s): the steady work, with Ray's scheduling "
                    "and transfers between batches",
    "file_versions": "the .gec versions of each kind's files: 4 decodes to its start picture, 3 by a search",
    "ray.faces_per_s": "faces / steady_s",
    "ray.busy_s_a_face": "seconds the actors spent inside the stage's call, all batches summed, a face",
    "ray.peak_rss_mib": "each actor process's peak resident memory (getrusage): Python, Ray's worker, torch, the "
                        "model and its batches",
    "archive": "bench.archive_overhead.measure on the default files with their reports, as gec encode -o X.parquet "
               "and encode_folder write them; its fixed ~2.4 KB of footer weighs more on fewer faces than the "
               "issue's 10,000 (bench/results/archive_overhead.json)",
}


class Timed:
    """A stage (GecEncoder or GecDecoder) in a Ray actor on one torch thread, warmed before Ray gives it a batch;
    each batch it returns also says which process made it, when, and that process's peak RSS."""

    def __init__(self, stage: type, warmup: pa.Table, **options: Any) -> None:
        torch.set_num_threads(1)  # two actors on two cores: a thread each
        self.stage = stage(**options)
        self.stage(warmup)

    def __call__(self, batch: pa.Table) -> pa.Table:
        started = time.time()  # wall clock, not perf_counter: the actors' times are compared across processes
        out = self.stage(batch)
        finished = time.time()
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
        for name, value in (("pid", os.getpid()), ("started", started), ("finished", finished), ("rss_mib", peak)):
            out = out.append_column(name, pa.array([value] * out.num_rows))
        return out


def ray_job(stage: type, rows: pa.Table, workers: int, batch_size: int, model: str | None) -> dict[str, Any]:
    """Run rows through ``workers`` actors of the stage, a block a batch (as decode_archive repartitions), and
    time it (WHAT)."""
    blocks = [rows.slice(start, batch_size) for start in range(0, rows.num_rows, batch_size)]
    options = {"model": model, "device": DEVICE, "batch_size": batch_size}
    started = time.perf_counter()
    # Half a logical CPU an actor leaves Ray Data one for its own tasks; each actor computes on one thread.
    ds = ray.data.from_arrow(blocks).map_batches(
        Timed, fn_constructor_args=(stage, rows.slice(0, WARMUP)), fn_constructor_kwargs=options,
        batch_size=batch_size, batch_format="pyarrow", compute=ray.data.ActorPoolStrategy(size=workers), num_cpus=0.5)
    out = pa.concat_tables(ds.iter_batches(batch_size=None, batch_format="pyarrow"))
    out = out.select(["id", "error", "pid", "started", "finished", "rss_mib"]).to_pydict()
    job = time.perf_counter() - started
    batches = set(zip(out["pid"], out["started"], out["finished"], out["rss_mib"]))
    steady = max(end for *_, end, _ in batches) - min(start for _, start, *_ in batches)
    peaks = {pid: max(rss for other, *_, rss in batches if other == pid) for pid, *_ in batches}
    faces = len(out["id"])
    return {"workers": workers, "faces": faces, "job_s": round(job, 2), "steady_s": round(steady, 3),
            "faces_per_s": round(faces / steady, 2),
            "busy_s_a_face": round(sum(end - start for _, start, end, _ in batches) / faces, 4),
            "peak_rss_mib": sorted(round(rss) for rss in peaks.values()),
            "errors": sum(error is not None for error in out["error"])}


def library_run(run: Callable[[list[Any]], Any], items: list[Any], threads: int) -> dict[str, Any]:
    """run(items) codes the faces given: once on the first WARMUP, then timed on all, torch on ``threads`` threads."""
    torch.set_num_threads(threads)
    run(items[:WARMUP])
    started = time.perf_counter()
    run(items)
    seconds = time.perf_counter() - started
    faces = len(items)
    return {"threads": threads, "faces": faces, "seconds": round(seconds, 3), "faces_per_s": round(faces / seconds, 2),
            "s_a_face": round(seconds / faces, 5)}


def machine() -> dict[str, Any]:
    """What ran the figures: the cores, the CPU, the versions, and how busy the machine was at the start."""
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        cpu = platform.processor() or platform.machine()
    return {"cpus": os.cpu_count(), "cpu": cpu, "python": platform.python_version(), "torch": torch.__version__,
            "ray": ray.__version__, "pyarrow": pa.__version__, "torch_threads_at_start": torch.get_num_threads(),
            "load_average_at_start": [round(load, 2) for load in os.getloadavg()]}


def targets(runs: dict[str, Any]) -> dict[str, Any]:
    """The issue's two throughput targets for one kind's decodes: two workers at least 1.7x one; one worker's
    seconds a face within 15% of Codec.decode_batch's on one thread at the same batch size."""
    one, two = runs["ray"]["1"], runs["ray"]["2"]
    speedup = two["faces_per_s"] / one["faces_per_s"]
    cost = (1 / one["faces_per_s"]) / runs["library"]["1"]["s_a_face"]
    return {"two_workers_over_one": round(speedup, 3), "meets_1.7x": speedup >= 1.7,
            "ray_s_a_face_over_library": round(cost, 3), "meets_within_15_percent": cost <= 1.15}


def on_paper(measured: dict[str, Any], archive: dict[str, Any]) -> dict[str, Any]:
    """10 million faces, from the one-worker Ray costs (a worker is one core) and the archive's bytes a face."""
    costs = {"encode_default": measured["encode"]["ray"]["1"],
             **{f"decode_{kind}": measured["decode"][kind]["ray"]["1"] for kind in KINDS}}
    return {"extrapolated": True, "faces": FACES_ON_PAPER,
            "basis": "the measured one-worker Ray seconds a face on this CPU; assumes throughput grows linearly "
                     "with workers (two_workers_over_one tests that on two cores)",
            "cpu_core_hours": {name: round(FACES_ON_PAPER / run["faces_per_s"] / 3600, 1) for name, run in costs.items()},
            "archive_gb_default_files": round(FACES_ON_PAPER * archive["archive_bytes_per_face"] / 1e9, 3),
            "gpu": "not measured (no device lent): hours on N GPUs = 10M x (a GPU's seconds a face) / N / 3600, "
                   "with readers on CPUs keeping up"}


def table(measured: dict[str, Any]) -> str:
    """A line a run: n is the library's threads or Ray's workers; wall s, the library's timed pass or Ray's job."""
    lines = [f"{'':18} {'path':8} {'n':>2} {'faces/s':>9} {'s a face':>9} {'wall s':>7} {'peak RSS MiB':>12}"]
    for name, runs in [("encode default", measured["encode"]),
                       *((f"decode {kind}", measured["decode"][kind]) for kind in KINDS)]:
        for path, by_count in runs.items():
            for count, run in by_count.items():
                peak = ",".join(map(str, run.get("peak_rss_mib", [])))
                lines.append(f"{name:18} {path:8} {count:>2} {run['faces_per_s']:9.2f} {1 / run['faces_per_s']:9.4f} "
                             f"{run.get('job_s', run.get('seconds')):7.2f} {peak:>12}")
    return "\n".join(lines)


def library_figures(codec: Codec, images: list[Path], batch_size: int
                    ) -> tuple[dict[str, Any], dict[str, list[ArchiveRow]]]:
    """The library's runs at each thread count (torch's count restored after), and each kind's rows: the default
    files with their reports, as `gec encode` writes them, and the searched files, unchecked (a check would search)."""
    threads = torch.get_num_threads()
    try:
        encode = {str(count): library_run(lambda items: coded(codec, items, True, batch_size), images, count)
                  for count in COUNTS}
        rows = {kind: coded(codec, images, kind == "default", batch_size, **options) for kind, options in KINDS.items()}
        decode = {kind: {"library": {str(count): library_run(lambda items: codec.decode_batch(items, batch_size),
                                                             [row.gec for row in kind_rows], count)
                                     for count in COUNTS}} for kind, kind_rows in rows.items()}
    finally:
        torch.set_num_threads(threads)
    return {"encode": {"library": encode}, "decode": decode}, rows


def ray_figures(measured: dict[str, Any], images: list[Path], rows: dict[str, list[ArchiveRow]], batch_size: int,
                model: str | None) -> None:
    """The Ray jobs at each worker count, added to ``measured``, on a local instance of two CPUs."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the actors may not see bench/
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars, context.wait_for_min_actors_s = False, 600
        paths = pa.table({"id": [path.name for path in images], "path": [str(path) for path in images]})
        files = {kind: to_table(kind_rows).select(["id", "gec", "error"]) for kind, kind_rows in rows.items()}
        # Untimed: a fresh instance's first job runs beside Ray's own start (its workers, the driver's first
        # imports), which slowed it by up to a second in trials.
        ray_job(GecDecoder, files["default"].slice(0, WARMUP), 1, batch_size, model)
        for count in COUNTS:
            measured["encode"].setdefault("ray", {})[str(count)] = ray_job(GecEncoder, paths, count, batch_size, model)
            for kind, table_of_kind in files.items():
                measured["decode"][kind].setdefault("ray", {})[str(count)] = ray_job(
                    GecDecoder, table_of_kind, count, batch_size, model)
    finally:
        ray.shutdown()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA, help="folder of face crops")
    parser.add_argument("--n", type=int, default=512, help="faces")
    parser.add_argument("--model", default=None, help="model name, id or path (default: the shipped default)")
    parser.add_argument("--batch-size", type=int, default=64, help="faces a batch, in every path")
    parser.add_argument("--out", type=Path, default=Path("bench/results/scale.json"))
    args = parser.parse_args(argv)
    images = sorted(path for path in args.data.iterdir() if is_image_path(path))[: args.n]
    if len(images) <= WARMUP:
        parser.error(f"{args.data} holds {len(images)} images; the benchmark needs more than {WARMUP}")
    host = machine()
    codec = Codec(load_model(args.model), DEVICE)
    measured, rows = library_figures(codec, images, args.batch_size)
    ray_figures(measured, images, rows, args.batch_size, args.model)
    with tempfile.TemporaryDirectory() as scratch:
        archive = measure(rows["default"], Path(scratch), "default")
    result = {"command": " ".join(["python -m bench.scale", *(sys.argv[1:] if argv is None else argv)]),
              "model": codec.bundle.name, "data": str(args.data), "faces": len(images), "batch_size": args.batch_size,
              "file_versions": {kind: sorted({container.read_header(row.gec).version for row in kind_rows})
                                for kind, kind_rows in rows.items()},
              "machine": host, "what": WHAT, "measured": measured,
              "targets": {**{f"decode_{kind}": targets(measured["decode"][kind]) for kind in KINDS},
                          "archive": {"faces": archive["faces"], "overhead": archive["overhead"],
                                      "meets_at_most_10_percent": archive["overhead"] <= 0.10}},
              "archive": archive, "on_paper": on_paper(measured, archive)}
    write_bytes_atomic(args.out, (json.dumps(result, indent=1) + "\n").encode(), force=True)
    print(table(measured))
    print(json.dumps(result["targets"]))


if __name__ == "__main__":
    main()
