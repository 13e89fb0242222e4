"""How far CelebA's framing lies from the codec's own: where the face finder would put each crop.

    python -m bench.framing_gap --celeba ../shared/data/celeba64/val --photos runs/lfw64 --n 500

Each 64x64 crop is grown as the model's face geometry was measured (gecodec.train.geometry: enlarged 4 times on a
grey border) and framed again by the finder, as `gec encode` would frame it. The placement it picks, relative to
the crop itself, is the gap: its shift (model pixels), scale (the finder's side over the crop's) and turn
(degrees). Crops framed by the finder itself (--photos, the validation faces of a framing) give the finder's own
repeatability, the floor of the measure. Writes bench/results/wild/framing_gap.json.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from gecodec.align import find_eyes, placement_from_eyes
from gecodec.bundle import load_model
from gecodec.fileio import write_bytes_atomic
from gecodec.train.data import load_images
from gecodec.train.geometry import BORDER, ENLARGE, GREY
from gecodec.train.photos import load_framed

RESULTS = Path(__file__).parent / "results" / "wild"


def gaps(crops: torch.Tensor) -> dict:
    """The finder's placement of each uint8 (N, 3, S, S) crop, relative to the crop: shift, scale and turn."""
    bundle = load_model()
    size = crops.shape[-1]
    big, border = size * ENLARGE, round(size * ENLARGE * BORDER)
    shifts, scales, turns = [], [], []
    for pixels in tqdm(crops.permute(0, 2, 3, 1).numpy(), desc="framing", unit="crop", mininterval=5):
        canvas = Image.new("RGB", (big + 2 * border,) * 2, GREY)
        canvas.paste(Image.fromarray(pixels).resize((big, big), Image.Resampling.BICUBIC), (border, border))
        eyes = find_eyes(canvas)
        if eyes is None:
            continue
        in_crop = [tuple((v - border) / ENLARGE for v in eye) for eye in eyes]
        placement = placement_from_eyes(*in_crop, bundle.crop, size)
        shifts.append(math.hypot(placement.cx - size / 2, placement.cy - size / 2))
        scales.append(placement.side / size)
        turns.append(placement.angle)
    figures = {"crops": len(crops), "found": len(shifts)}
    for name, values in (("shift_px", shifts), ("scale", scales), ("turn_deg", turns)):
        values = np.array(values)
        figures[name] = {"mean": round(float(values.mean()), 3), "std": round(float(values.std()), 3),
                         "p90_abs_dev": round(float(np.percentile(np.abs(values - (1.0 if name == "scale" else 0.0)),
                                                                  90)), 3)}
    return figures


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--celeba", type=Path, required=True, help="a folder of CelebA crops")
    parser.add_argument("--photos", type=Path, required=True, help="a framing folder (python -m gecodec.train.photos)")
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--out", type=Path, default=RESULTS / "framing_gap.json")
    args = parser.parse_args(argv)
    document = {"celeba": gaps(load_images(args.celeba, 64, limit=args.n)),
                "finder_on_its_own_crops": gaps(load_framed(args.photos, "val")[: args.n])}
    print(json.dumps(document, indent=1))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(args.out, (json.dumps(document, indent=1) + "\n").encode(), force=True)


if __name__ == "__main__":
    main()
