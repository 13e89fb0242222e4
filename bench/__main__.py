"""The benchmark harness: `python -m bench PRESET --data DIR` (or `gec bench ...`).

    python -m bench rd --data ../shared/data/celeba64/val --n 256

Presets: table1, table2, figure6, rd (see bench/presets.py); `run --codecs ge,webp` runs chosen codecs;
`restore` runs the restoration benchmark (bench/restoration.py, `python -m bench restore -h`).
Writes into --out (default runs/bench/PRESET/, a scratch folder; --refresh: bench/results/PRESET/, the committed
results, which a run on fewer images than they hold may not replace): CODEC.json (CompressAI's layout), table.md, rd-psnr.png,
rd-mse.png and grid.png (figure6 also mse-vs-m.png). The per-image records (resumable) and the decodes kept
for the grid go to --store (default: --out); presets given the same --store measure the settings they share
once. A codec that fails is reported on one line and the run goes on with the others; the exit status is
then 1.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from bench import restoration
from bench.codecs import BenchCodec, GePhotoCodec, find_bundles, make_codecs, one_per_generator, pixels_key
from bench.harness import Records, check_store, generator_floors, run_codec, setting_key
from bench.identity import face_identity
from bench.plots import measurements_plot, rd_plot, reconstruction_grid
from bench.presets import GRID_ROWS, PRESETS, Preset, everything
from bench.report import compressai_json, markdown_table, summarise, write_json
from gecodec.align import Placement
from gecodec.codec import Source, resolve_device
from gecodec.errors import GecError
from gecodec.imageio import tensor_to_pixels
from gecodec.search import SearchOptions
from gecodec.train.data import load_named_images, to_float
from gecodec.train.distributed import describe_hardware
from gecodec.train.gan import sample_latent
from gecodec.train.photos import framed_records, load_framed

RESULTS = Path(__file__).parent / "results"
SCRATCH = Path("runs/bench")  # in the current folder: a checkout ignores runs/


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("preset", choices=[*PRESETS, "run", "restore"])
    parser.add_argument("--data", type=Path, required=True,
                        help="folder (or .tar/.zip) of images, or a framing folder of photos' faces (its validation "
                             "people, coded by ge-photo through the photo path as well)")
    parser.add_argument("--n", type=int, default=None, help="use the first N images")
    parser.add_argument("--size", type=int, default=64, help="images are centre-cropped and resized to this")
    parser.add_argument("--codecs", default=None, help="comma-separated codec names (run; or a subset of a preset)")
    parser.add_argument("--models", nargs="*", default=None, help="bundles for ge/ae/csgm (default: every current one)")
    parser.add_argument("--bits", type=int, nargs="*", default=[4, 6, 8])
    parser.add_argument("--out", type=Path, default=None,
                        help=f"results folder (default: {SCRATCH}/PRESET, or with --refresh bench/results/PRESET)")
    parser.add_argument("--refresh", action="store_true", help="write the committed results, bench/results/PRESET")
    parser.add_argument("--store", type=Path, default=None,
                        help="per-image records and kept decodes, shared by presets (default: --out)")
    parser.add_argument("--device", default=None)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--iters", type=int, default=None, help=f"search iterations (default {SearchOptions.iters})")
    parser.add_argument("--restarts", type=int, default=None, help=f"search restarts (default {SearchOptions.restarts})")
    parser.add_argument("--keep", type=int, default=8, help="images shown in the grid")
    parser.add_argument("--no-floor", action="store_true", help="leave out the generator's floor (a long search)")
    return parser.parse_args(argv)


def load_faces(data: Path, size: int, limit: int | None) -> tuple[torch.Tensor, list[str], dict[bytes, Source] | None]:
    """uint8 faces, their names and, for a framing folder (python -m gecodec.train.photos), their validation
    photos' sources (the photo's size and the face's placement in it) for the photo path."""
    if not (data / "framing.json").is_file():
        return (*load_named_images(data, size, limit=limit), None)
    faces, records = load_framed(data, "val")[:limit], framed_records(data, "val")[:limit]
    if faces.shape[-1] != size or len(faces) != len(records):
        raise GecError(f"{data}: its faces are not {size}x{size}, or do not match framing.json")
    sources = {pixels_key(to_float(face[None])[0]):
               Source(tuple(r["size"]), Placement.from_position(tuple(r["position"]))) for face, r in zip(faces, records)}
    return faces, [r["name"] for r in records], sources


def images_measured(out: Path) -> int:
    """The most images that any codec's results in a results folder were measured on (0 for none)."""
    counts: list[int] = []
    for path in out.glob("*.json"):
        try:
            counts += json.loads(path.read_text()).get("images", [])
        except (OSError, ValueError, AttributeError):
            continue
    return max(counts, default=0)


def report_error(message: str) -> None:
    print(f"bench: error: {message}", file=sys.stderr)


def run_preset(preset: Preset, codecs: dict[str, BenchCodec], images: torch.Tensor, names: list[str], store: Path,
               args: argparse.Namespace, device: torch.device) -> tuple[dict[str, Records], bool]:
    """Run every codec of the preset that can run; returns the records by codec and whether all went well."""
    ok, done = True, {}
    device_name = describe_hardware(device)
    for name, codec in codecs.items():
        reason = codec.supports(images.shape[-1])
        if reason:
            report_error(f"{name}: {reason}; skipped")
            ok = False
            continue
        keep = preset.codecs.get(name, everything)
        settings = [s for s in codec.settings() if keep(s)]
        if not settings:
            report_error(f"{name}: none of its settings is one that {preset.name} asks for (models: "
                         f"{', '.join(sorted({str(s.get('model')) for s in codec.settings()}))}); skipped")
            ok = False
            continue
        try:
            done[name] = run_codec(codec, images, names, store, args.batch_size, args.keep, device, device_name, settings)
        except GecError as exc:
            report_error(f"{name}: {exc}")
            ok = False
    return done, ok


def write_reports(records: dict[str, Records], codecs: dict[str, BenchCodec], out: Path, title: str,
                  floor: Records | None, by_m: bool = False) -> str:
    summaries = {name: summarise(r) for name, r in records.items() if r.done}
    for name, rows in summaries.items():
        write_json(out / f"{name}.json", compressai_json(name, codecs[name].description, rows))
    floors = summarise(floor) if floor is not None else []  # one row per distinct G
    table = markdown_table(summaries | ({"floor": floors} if floors else {}))
    (out / "table.md").write_text(table)
    for metric in ("psnr", "mse"):
        rd_plot(summaries, metric, out / f"rd-{metric}.png", floors, title)
    if by_m and "ge" in summaries:
        measurements_plot(summaries["ge"], out / "mse-vs-m.png", floors, title)
    return table


def write_grid(out: Path, store: Path, images: torch.Tensor, records: dict[str, Records],
               codecs: dict[str, BenchCodec], keep: int) -> None:
    """Figure 4's layout: the originals, then one row per method (GRID_ROWS) whose first decodes were kept."""
    rows = [("original", tensor_to_pixels(images[:keep]))]
    for name, wanted in GRID_ROWS.items():
        settings = {setting_key(r["setting"]): r["setting"] for r in records[name].done.values()} if name in records else {}
        for key, setting in sorted(settings.items(), key=lambda item: (item[1].get("m", 0), item[0])):
            path = store / "decoded" / name / f"{key}.npy"
            if wanted(setting) and path.exists():
                label = codecs[name].label(setting) if name in codecs else f"{name} ({setting['model']})"
                rows.append((label[:44], np.load(path)))
    reconstruction_grid(rows, out / "grid.png", label_width=250)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["restore"]:
        return restoration.main(argv[1:])
    args = parse_args(argv)
    preset = PRESETS.get(args.preset, Preset("run", "chosen codecs", {}))
    wanted = args.codecs.split(",") if args.codecs else list(preset.codecs)
    if not wanted:
        report_error("run needs --codecs (e.g. --codecs ge,webp)")
        return 2
    out = args.out or (RESULTS if args.refresh else SCRATCH) / args.preset
    store = args.store or out
    search = {k: v for k, v in {"iters": args.iters, "restarts": args.restarts}.items() if v is not None}
    try:
        face_identity()  # loads dlib's models now: if they are missing, the run stops here with one line
        uint8, names, sources = load_faces(args.data, args.size, args.n)
        measured = images_measured(out)
        if args.refresh and args.out is None and len(uint8) < measured:
            raise GecError(f"{out} holds results measured on {measured} images, and this run has {len(uint8)}: give "
                           "--out for a smaller run")
        check_store(store, args.size, SearchOptions(**search))
        device = resolve_device(args.device)
        bundles = find_bundles(args.models, args.size)
    except GecError as exc:
        report_error(str(exc))
        return 1
    images = to_float(uint8)
    if sources is None and not args.codecs:  # the photo path needs photos
        wanted = [name for name in wanted if name != GePhotoCodec.name]
    codecs, unknown = make_codecs(wanted, bundles, tuple(args.bits), args.device, search, sources)
    for name in unknown:
        report_error(f"unknown codec {name!r}; skipped")
    records, ok = run_preset(preset, codecs, images, names, store, args, device)
    floor = None
    if preset.floor and bundles and not args.no_floor:
        generators = {bundle.name: bundle.generator for bundle in one_per_generator(bundles)}
        floor = generator_floors(generators, images, names, store, SearchOptions(**search), args.batch_size, args.keep,
                                 device, describe_hardware(device))
    title = f"{args.preset}: {len(images)} images from {args.data}"
    print(write_reports(records, codecs, out, title, floor, preset.by_m))
    if preset.generated and "ge" in codecs:
        generated_run(codecs["ge"], bundles, preset, out / "generated", store / "generated", args, device)
    write_grid(out, store, images, records | ({"floor": floor} if floor is not None else {}), codecs, args.keep)
    print(f"results in {out}")
    return 0 if ok and not unknown else 1


def generated_run(codec: BenchCodec, bundles: list, preset: Preset, out: Path, store: Path,
                  args: argparse.Namespace, device: torch.device) -> None:
    """Table 2's other half: the same codec on images that G itself generated (seeded), each bundle on its own G's."""
    rows: list[dict] = []
    for bundle in bundles:
        z = sample_latent(args.n or 64, bundle.generator.config, torch.Generator().manual_seed(0))
        with torch.no_grad():
            generated = bundle.generator(z).clamp(-1, 1)
        names = [f"generated-{i}" for i in range(len(generated))]
        settings = [s for s in codec.settings() if s["model"] == bundle.name and preset.codecs["ge"](s)]
        records = run_codec(codec, generated, names, store, args.batch_size, args.keep, device,
                            describe_hardware(device), settings)
        rows += summarise(records)
    table = markdown_table({"ge": rows})
    out.mkdir(parents=True, exist_ok=True)
    (out / "table.md").write_text(table)
    print(f"on images each model's G generated:\n{table}")


if __name__ == "__main__":
    sys.exit(main())
