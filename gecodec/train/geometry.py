"""Where a model's training faces have their eyes, measured with the encoder's own face finder, stored in the bundle.

    python -m gecodec.train.geometry --data ../shared/data/celeba64/train --bundle gecodec/weights/celeba64-default.safetensors

The encoder frames a photo's face so that its eyes land where the training crops have theirs on average
(gecodec.align). Each training crop is enlarged ENLARGE times and set on a grey border, since the detector needs
a face of about 80 pixels with some context around it; crops where it finds no face are left out.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from gecodec.align import CropGeometry, find_eyes
from gecodec.bundle import load_bundle, update_bundle
from gecodec.train.data import bundle_step_parser, load_images

ENLARGE, BORDER, GREY = 4, 0.5, (128, 128, 128)  # the border is this share of the enlarged crop's side
GEOMETRY_IMAGES = 2000  # the first this many training crops are measured


def measure_geometry(images: torch.Tensor) -> tuple[CropGeometry, dict]:
    """The mean eye positions of uint8 (N, 3, S, S) face crops, in their own pixels, and how they spread."""
    size = images.shape[-1]
    big, border = size * ENLARGE, round(size * ENLARGE * BORDER)
    found = []
    for pixels in tqdm(images.permute(0, 2, 3, 1).numpy(), desc="eyes", unit="img", mininterval=5):
        canvas = Image.new("RGB", (big + 2 * border,) * 2, GREY)
        canvas.paste(Image.fromarray(pixels).resize((big, big), Image.Resampling.BICUBIC), (border, border))
        eyes = find_eyes(canvas)
        if eyes is not None:
            found.append([[(v - border) / ENLARGE for v in eye] for eye in eyes])
    if not found:
        raise ValueError("no face found in any training crop")
    eyes = np.array(found)  # (found, 2 eyes, x y)
    mean = eyes.mean(axis=0)
    geometry = CropGeometry(tuple(mean[0].round(3)), tuple(mean[1].round(3)))
    stats = {"crops": len(images), "found": len(found), "std": eyes.std(axis=0).round(3).tolist(),
             "interocular": round(float(np.linalg.norm(mean[1] - mean[0])), 3)}
    return geometry, stats


def store_geometry(path: Path, geometry: CropGeometry, stats: dict) -> None:
    """Rewrite a bundle with the geometry in its config and the measurement on its card; its model id stays."""
    card = {**load_bundle(path).card,
            "crop_geometry": {**geometry.to_dict(), **stats, "made_by": "python -m gecodec.train.geometry"}}
    update_bundle(path, crop=geometry, card=card)


def main(argv: list[str] | None = None) -> None:
    args = bundle_step_parser(__doc__, "geometry", GEOMETRY_IMAGES, "training crops to measure").parse_args(argv)
    size = load_bundle(args.bundle).image_size
    geometry, stats = measure_geometry(load_images(args.data, size, limit=args.images))
    store_geometry(args.bundle, geometry, stats)
    print(json.dumps({**geometry.to_dict(), **stats}))


if __name__ == "__main__":
    main()
