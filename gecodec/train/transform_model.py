"""Fit a bundle's transform model (the coder of version-3 files) on training faces and store it in the bundle.

    python -m gecodec.train.transform_model --data ../shared/data/celeba64 \\
        --bundle gecodec/weights/celeba64-default.safetensors

The measurements of --images training faces give the mean, the principal axes and the tables
(gecodec/transform_coding.py). The base alone is then coded and decoded at qualities 0, 10, .., 100 on
VAL_IMAGES validation faces; that curve goes on the card (what `gec encode` expects of a file) and picks the
default quality (train.evaluate.DEFAULT_QUALITY_RULE). The model id does not change. A quality ladder names
base qualities of the coder that new files use, so the bundle's ladder is dropped: rebuild it with
python -m gecodec.train.quality_ladder.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import torch

from gecodec.bundle import load_bundle, update_bundle
from gecodec.codec import Codec
from gecodec.metrics import psnr_8bit
from gecodec.train.data import bundle_step_parser, load_images, to_float
from gecodec.train.photos import training_faces
from gecodec.train.evaluate import CURVE_QUALITIES, DEFAULT_QUALITY_RULE, default_quality
from gecodec.transform_coding import fit_transform_model

FIT_IMAGES = 10_000
VAL_IMAGES = 256
BATCH = 256


def base_curve(codec: Codec, faces: torch.Tensor) -> list[dict]:
    """Mean bytes and PSNR of the base alone at CURVE_QUALITIES on (N, 3, S, S) faces in [-1, 1]."""
    rows = []
    for quality in CURVE_QUALITIES:
        files = codec.encode_batch(faces, quality=quality)
        decoded = codec.decode_batch(files, batch_size=32)
        rows.append({"quality": quality, "bytes": round(float(np.mean([len(f) for f in files])), 1),
                     "psnr": round(float(psnr_8bit(decoded, faces).mean()), 2)})
    return rows


def store_transform(path: Path, train: torch.Tensor, val: torch.Tensor) -> dict:
    """Fit the transform model on (N, 3, S, S) training faces, measure its curve on validation faces (both in
    [-1, 1]), and store it with its default quality, without a ladder, in the bundle file."""
    bundle = load_bundle(path)
    with torch.no_grad():
        measurements = torch.cat([bundle.encoder(train[i : i + BATCH]) for i in range(0, len(train), BATCH)])
    # transform_sha256 "": the in-memory bundle's transform id is computed anew (from its float32 weights)
    trial = dataclasses.replace(bundle, transform=fit_transform_model(measurements), ladder=None, transform_sha256="")
    curve = base_curve(Codec(trial, "cpu"), val)
    record = {"fit_images": len(train), "val_images": len(val), "tables": len(trial.transform.radii),
              "val_curve": curve, "default_quality": default_quality(curve), "default_rule": DEFAULT_QUALITY_RULE,
              "made_by": "python -m gecodec.train.transform_model"}
    card = {key: value for key, value in bundle.card.items() if key != "quality_ladder"}
    transform = dataclasses.replace(trial.transform, default_quality=record["default_quality"])
    update_bundle(path, transform=transform, ladder=None, card={**card, "transform": record})
    return record


def main(argv: list[str] | None = None) -> None:
    parser = bundle_step_parser(__doc__, "transform model", FIT_IMAGES, "training faces to fit on", photos=True)
    parser.add_argument("--val-images", type=int, default=VAL_IMAGES, help="validation faces for the curve")
    args = parser.parse_args(argv)
    size = load_bundle(args.bundle).image_size
    train = to_float(training_faces(args.data / "train", args.photos, size, args.images))
    val = to_float(load_images(args.data / "val", size, limit=args.val_images))
    print(json.dumps(store_transform(args.bundle, train, val)))


if __name__ == "__main__":
    main()
