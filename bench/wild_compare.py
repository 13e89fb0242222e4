"""Training runs side by side on two validation sets: CelebA's crops and faces framed from photos.

    python -m bench.wild_compare --runs runs/wild/celeba runs/wild/mix \
        --celeba ../shared/data/celeba64 --photos runs/lfw64 --n 128 --out bench/results/wild/compare.json

Each run (a `gec train joint` folder) is exported, its EMA model calibrated on the first 10,000 CelebA
training crops, to RUN/compare.safetensors, with the default model's decode schedule. Each codes the first --n
faces of each set as version-2 files (the entropy model fitted at export) at --quality, and decodes them. Per
model and set: bytes, PSNR (8-bit RGB), MSE (pixels in [-1, 1]) and, with --identity, the share still the same
person by dlib (bench.identity).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from gecodec.bundle import load_model
from gecodec.codec import Codec
from gecodec.fileio import write_bytes_atomic
from gecodec.metrics import mse, psnr_8bit
from gecodec.train.checkpoint import load_checkpoint
from gecodec.train.data import load_images, to_float
from gecodec.train.joint import export_joint
from gecodec.train.photos import load_framed

QUALITY = 60  # the default's base quality on the entropy model (about 68 bytes)
CALIBRATION = 10_000


def export_run(run: Path, celeba_train: torch.Tensor) -> Path:
    """The run's EMA model as RUN/compare.safetensors (rewritten each time, since the run may have moved on)."""
    out = run / "compare.safetensors"
    out.unlink(missing_ok=True)
    export_joint(load_checkpoint(run / "checkpoint.pt"), out, run.name, celeba_train, "CelebA training crops",
                 load_model("celeba64-default").decode)
    return out


def to_pixels(x: torch.Tensor) -> np.ndarray:
    return ((x.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()


def measure(model: Path, sets: dict[str, torch.Tensor], quality: int, identity: bool) -> dict:
    codec = Codec(load_model(str(model)), "cpu")
    bundle = codec.bundle
    row: dict = {"model": bundle.name, "id": bundle.model_hex}
    for name, originals in sets.items():
        files = codec.encode_batch(originals, quality=quality)
        decoded = codec.decode_batch(files)
        figures = {"bytes": round(float(np.mean([len(f) for f in files])), 1),
                   "psnr": round(float(psnr_8bit(decoded, originals).mean()), 2),
                   "mse": round(float(mse(decoded, originals).mean()), 5)}
        if identity:
            from bench.identity import face_identity

            same = face_identity().measure(to_pixels(decoded), to_pixels(originals))["same_person"]
            figures["same_person"] = round(float(np.mean(same)), 3)
        row[name] = figures
        print(f"{bundle.name} on {name}: {figures}", flush=True)
    return row


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=Path, nargs="+", required=True, help="joint training run folders")
    parser.add_argument("--celeba", type=Path, required=True, help="folder with CelebA's train/ and val/")
    parser.add_argument("--photos", type=Path, required=True, help="a framing folder (python -m gecodec.train.photos)")
    parser.add_argument("--n", type=int, default=128, help="faces of each validation set")
    parser.add_argument("--quality", type=int, default=QUALITY)
    parser.add_argument("--identity", action="store_true", help="also the same-person share (dlib)")
    parser.add_argument("--out", type=Path, default=None, help="JSON file for the table")
    args = parser.parse_args(argv)
    sets = {"celeba_val": to_float(load_images(args.celeba / "val", 64, limit=args.n)),
            "photos_val": to_float(load_framed(args.photos, "val")[: args.n])}
    celeba_train = load_images(args.celeba / "train", 64, limit=CALIBRATION)
    rows = [measure(export_run(run, celeba_train), sets, args.quality, args.identity) for run in args.runs]
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        document = {"quality": args.quality, "n": args.n, "photos": str(args.photos), "models": rows}
        write_bytes_atomic(args.out, (json.dumps(document, indent=1) + "\n").encode(), force=True)


if __name__ == "__main__":
    main()
