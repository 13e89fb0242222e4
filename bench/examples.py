"""A picture of what the codec does: originals, GE decodes at two sizes, CSGM, and the smallest WebP files.

    python -m bench.examples --data ../shared/data/celeba64/val --n 8

Writes bench/results/examples.png (rows: original; GE at the model's default rate; GE with --target-bytes 60
(models with an entropy model); CSGM, m = 128 at 8 bits; WebP at quality 0, its smallest files) and
examples.json with the bytes, PSNR and MSE of each image.
"""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from gecodec.bundle import load_model
from gecodec.codec import Codec
from gecodec.imageio import pixels_to_tensor, tensor_to_pixels
from gecodec.metrics import mse, psnr_8bit
from gecodec.train.data import image_source, load_images, to_float
from gecodec.train.grid import save_grid

RESULTS = Path(__file__).parent / "results"


def webp_smallest(images: torch.Tensor) -> tuple[list[bytes], torch.Tensor]:
    """WebP at quality 0 through Pillow: its smallest files, and their decodes."""
    files, decoded = [], []
    for pixels in tensor_to_pixels(images):
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format="WEBP", quality=0)
        files.append(buffer.getvalue())
        decoded.append(pixels_to_tensor(np.asarray(Image.open(io.BytesIO(files[-1])).convert("RGB"))))
    return files, torch.stack(decoded)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--n", type=int, default=8)
    parser.add_argument("--model", default=None)
    parser.add_argument("--bits", type=int, default=8)
    parser.add_argument("--device", default=None)
    parser.add_argument("--out", type=Path, default=RESULTS / "examples.png")
    args = parser.parse_args(argv)

    codec = Codec(load_model(args.model), args.device)
    originals = to_float(load_images(args.data, codec.image_size, limit=args.n))
    names = image_source(args.data)[0][: args.n]
    rows, report = [originals], {"model": codec.bundle.name, "cs_bits": args.bits, "images": names}
    settings = {"ge": {}, "ge_60_bytes": {"target_bytes": 60}, "cs": {"mode": "cs", "bits": args.bits}}
    if codec.bundle.entropy is None:
        del settings["ge_60_bytes"]
    for name in (*settings, "webp"):
        if name == "webp":
            files, decoded = webp_smallest(originals)
        else:
            files = codec.encode_batch(originals, **settings[name])
            decoded = codec.decode_batch(files)
        rows.append(decoded)
        report[name] = {"bytes": [len(f) for f in files], "psnr": [round(float(v), 2) for v in psnr_8bit(decoded, originals)],
                        "mse": [round(float(v), 5) for v in mse(decoded, originals)]}
        print(f"{name}: mean {sum(report[name]['bytes']) / len(files):.0f} bytes, "
              f"PSNR {sum(report[name]['psnr']) / len(files):.2f} dB, MSE {sum(report[name]['mse']) / len(files):.5f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_grid(torch.cat(rows), args.out, columns=len(names))
    args.out.with_suffix(".json").write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
