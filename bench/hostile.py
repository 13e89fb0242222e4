"""Hostile inputs through the real CLI, with the shipped default model: time and peak memory of each case.

    python -m bench.hostile

Each case is a file, path or model folder an attacker could hand to `gec`: well-formed, checksum-valid
files with extreme header fields, devices and FIFOs as inputs, and bundles built to exhaust memory. Each runs
as its own `gec` process; the script prints a Markdown table (exit status, seconds, peak resident memory of
that process, the first line of its error output) and writes bench/results/hostile.json. A case passes when
it ends in under 5 s of its own work with a one-line error or a bounded result, and never with an internal
error; the process start (importing torch) is included in the seconds.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib
from collections.abc import Callable
from pathlib import Path

import msgpack
import torch
import zstandard
from PIL import Image
from safetensors.torch import load_file, save_file

from gecodec.bundle import load_model, read_metadata
from gecodec.codec import Codec
from gecodec.fileio import write_bytes_atomic

RESULTS = Path(__file__).parent / "results"


def gec_file(model_id: int, extras: dict, payload: bytes, codec: int = 0) -> bytes:
    """A well-formed, checksum-valid .gec file, whatever its header asks for."""
    body = b"GEC\x01" + msgpack.packb([model_id, 8, 0, codec, extras]) + payload
    return body + struct.pack("<I", zlib.crc32(body))


def hostile_bundle(folder: Path, name: str, config_change: Callable[[dict], None] | None = None,
                   tensor_change: Callable[[dict], None] | None = None, card: str | None = None) -> Path:
    """A copy of the default bundle with its config, tensors or card rewritten."""
    source = load_model().path
    metadata, tensors = read_metadata(source), load_file(str(source))
    config = json.loads(metadata["config"])
    if config_change:
        config_change(config)
    if tensor_change:
        tensor_change(tensors)
    metadata = {**metadata, "config": json.dumps(config), **({"card": card} if card is not None else {})}
    path = folder / f"{name}.safetensors"
    save_file(tensors, str(path), metadata=metadata)
    return path


def poison(tensors: dict) -> None:
    name = next(k for k in tensors if k.startswith("generator."))
    tensors[name] = torch.full_like(tensors[name], float("nan"))


def main(argv: list[str] | None = None) -> None:
    default = load_model()
    mid = default.model_id
    work = Path(tempfile.mkdtemp(prefix="gec-hostile-"))
    models = work / "models"
    models.mkdir()
    env = {**os.environ, "GECODEC_MODEL_DIR": str(models)}
    files = {
        "iters 2^63-1 hint": gec_file(mid, {5: {"iters": 2**63 - 1}}, bytes(128)),
        "restarts 100000 hint": gec_file(mid, {5: {"restarts": 100000}}, bytes(128)),
        "lr 1e308 hint": gec_file(mid, {5: {"lr": 1e308}}, bytes(128)),
        "original size 1 x 2^31-1": gec_file(mid, {2: [1, 2**31 - 1]}, bytes(128)),
        "original size 20000 x 20000": gec_file(mid, {2: [20000, 20000]}, bytes(128)),
        "cs count 65535 (zstd)": gec_file(mid, {1: 1, 3: 65535, 4: [0.0, 1.0]},
                                          zstandard.ZstdCompressor().compress(bytes(65535)), codec=1),
        "cs range -inf..inf": gec_file(mid, {1: 1, 3: 128, 4: [float("-inf"), float("inf")]}, bytes(128)),
    }
    cases: list[tuple[str, list[str], dict]] = []
    for name, data in files.items():
        path = work / (name.replace(" ", "_").replace("/", "_") + ".gec")
        path.write_bytes(data)
        cases.append((name, ["decode", str(path), "-o", str(work / "out.png"), "-f", "--iters", "1"], env))
    photo = work / "photo-8192.png"
    Image.new("RGB", (8192, 8192), (90, 120, 150)).save(photo, compress_level=1)
    for name, extras in {"original size 8192 x 8192 (honest, at the limit), pasted into its photo": {2: [8192, 8192]},
                         "crop of side 65536 in an 8192 x 8192 photo, pasted into it":
                             {2: [8192, 8192], 8: [4096, 4096, 65536, 0]}}.items():
        path = work / (name.split(",")[0].replace(" ", "_") + ".gec")
        path.write_bytes(gec_file(mid, extras, bytes(range(128))))
        cases.append((name, ["decode", str(path), "--paste-into", str(photo), "-o", str(work / "big.png"), "-f",
                             "--iters", "1", "--restarts", "1"], env))
    seeds = work / "cs-seeds"
    seeds.mkdir()
    codec = Codec(default, "cpu")
    face_tensor = torch.zeros(1, 3, default.image_size, default.image_size)
    for seed in range(40):
        (seeds / f"{seed}.gec").write_bytes(codec.encode_batch(face_tensor, mode="cs", seed=seed, count=1000)[0])
    cases.append(("40 cs files with distinct seeds, count 1000, one batch",
                  ["decode", str(seeds), "-o", str(work / "seeds-out"), "--iters", "1", "--restarts", "1"], env))
    cases.append(("/dev/zero as input", ["decode", "/dev/zero", "-o", str(work / "zero.png")], env))
    fifo = work / "pipe.gec"
    os.mkfifo(fifo)
    cases.append(("a FIFO as input", ["decode", str(fifo), "-o", str(work / "fifo.png")], env))
    honest = work / "honest.gec"
    honest.write_bytes(gec_file(mid, {}, bytes(range(128))))
    face = work / "face.png"
    Image.new("RGB", (64, 64), (200, 150, 120)).save(face)
    bundle_cases = {
        "bundle asking for huge widths": dict(config_change=lambda c: c["generator"].update(channels=100_000)),
        "bundle claiming image size 32768": dict(config_change=lambda c: c["generator"].update(image_size=32768)),
        "bundle with NaN weights": dict(tensor_change=poison),
        "bundle whose card is a JSON list": dict(card="[1, 2, 3]"),
    }
    for name, change in bundle_cases.items():
        folder = work / name.replace(" ", "-")
        folder.mkdir()
        bad = hostile_bundle(folder, "hostile", **change)
        cases.append((f"{name}: encode with it", ["encode", str(face), "--model", str(bad), "-o",
                                                   str(work / "b.gec"), "-f"], env))
        cases.append((f"{name}: gec models", ["models"], {**env, "GECODEC_MODEL_DIR": str(folder)}))
    junk = work / "junk-folder"
    junk.mkdir()
    (junk / "unreadable.safetensors").write_bytes(b"junk")
    os.mkfifo(junk / "fifo.safetensors")
    (junk / "loop.safetensors").symlink_to(junk / "loop.safetensors")
    cases.append(("model folder with junk, a FIFO, a symlink loop: decode", ["decode", str(honest), "-o",
                  str(work / "j.png"), "-f", "--iters", "1"], {**env, "GECODEC_MODEL_DIR": str(junk)}))
    cases.append(("model folder with junk, a FIFO, a symlink loop: gec models", ["models"],
                  {**env, "GECODEC_MODEL_DIR": str(junk)}))
    # The cases run from a small process of their own: a child's peak memory counts what its parent held when
    # it forked, and this one holds torch and the model.
    plan = [{"case": name, "args": args, "model_dir": case_env["GECODEC_MODEL_DIR"]} for name, args, case_env in cases]
    (work / "cases.json").write_text(json.dumps(plan))
    subprocess.run([sys.executable, "-m", "bench.child_runs", str(work / "cases.json"), str(work / "rows.json"),
                    str(work)], check=True, cwd=Path(__file__).parents[1])
    rows = json.loads((work / "rows.json").read_text())
    shutil.rmtree(work, ignore_errors=True)
    write_bytes_atomic(RESULTS / "hostile.json", (json.dumps(rows, indent=1) + "\n").encode(), force=True)
    print("| case | exit | seconds | peak memory | first line of output |\n|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['case']} | {row['status']} | {row['seconds']} | {row['peak_mb']} MB | {row['message']} |")


if __name__ == "__main__":
    main()
