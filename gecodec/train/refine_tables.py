"""Fit a bundle's refinement tables on training faces' residuals and store them in the bundle.

    python -m gecodec.train.refine_tables --data ../shared/data/celeba64/train \\
        --bundle gecodec/weights/celeba64-default.safetensors

Each training face is coded at the bundle's default quality and decoded (as 8-bit pixels, what a receiver
sees); gecodec.refine fits its Laplace scales and table ladder on the residuals x - x_base. The model id does
not change: refined files name the tables by their check code.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from gecodec.bundle import load_bundle, update_bundle
from gecodec.codec import Codec
from gecodec.imageio import pixels_to_tensor, tensor_to_pixels
from gecodec.refine import fit_refinement
from gecodec.train.data import bundle_step_parser, to_float
from gecodec.train.photos import training_faces

REFINE_IMAGES = 512


def store_refinement(path: Path, faces: torch.Tensor) -> dict:
    """Fit refinement tables on (N, 3, S, S) training faces in [-1, 1] and store them in the bundle file."""
    codec = Codec(load_bundle(path), "cpu")
    bases = pixels_to_tensor(tensor_to_pixels(codec.decode_batch(codec.encode_batch(faces), batch_size=32)))
    refine = fit_refinement(faces - bases)
    record = {"fit_images": len(faces), "check_code": f"{refine.check_code:04x}",
              "made_by": "python -m gecodec.train.refine_tables"}
    update_bundle(path, refine=refine, card={**codec.bundle.card, "refine": record})
    return record


def main(argv: list[str] | None = None) -> None:
    args = bundle_step_parser(__doc__, "tables", REFINE_IMAGES, "training faces to fit on", photos=True).parse_args(argv)
    size = load_bundle(args.bundle).image_size
    print(json.dumps(store_refinement(args.bundle, to_float(training_faces(args.data, args.photos, size, args.images)))))


if __name__ == "__main__":
    main()
