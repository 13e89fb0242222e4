"""A picture of what the codec does: originals, GE decodes at four sizes, CSGM, and WebP at two.

    python -m bench.examples --data ../shared/data/celeba64/val --n 8

Writes bench/results/examples.png (rows: original; GE at the model's default rate; GE with --target-bytes 60
and 100 (models with an entropy model; at 100 bytes a coarse learned layer, for models with one); CSGM,
m = 128 at 8 bits; WebP at quality 0, its smallest files; GE with --target-bytes 250 (a refinement layer, for
models with one); WebP at quality 5, about 274 bytes) and examples.json with the bytes, PSNR and MSE of each
image.
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


def webp(images: torch.Tensor, quality: int) -> tuple[list[bytes], torch.Tensor]:
    """WebP through Pillow at a quality (0: its smallest files), and the decodes."""
    files, decoded = [], []
    for pixels in tensor_to_pixels(images):
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format="WEBP", quality=quality)
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
    parser.add_argument("--out", type=Path, default=RESULTS / "examples.png",
                        help="the picture (.png; its .json beside it), or a folder for examples.png and examples.json")
    args = parser.parse_args(argv)
    out = args.out if args.out.suffix.lower() == ".png" else args.out / "examples.png"
    try:  # before minutes of coding: a path that cannot be written fails now
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        parser.error(f"{out.parent}: cannot create the folder ({exc.strerror})")

    codec = Codec(load_model(args.model), args.device)
    originals = to_float(load_images(args.data, codec.image_size, limit=args.n))
    names = image_source(args.data)[0][: args.n]
    rows, report = [originals], {"model": codec.bundle.name, "cs_bits": args.bits, "images": names}
    settings = {"ge": {}, "ge_60_bytes": {"target_bytes": 60}, "ge_100_bytes": {"target_bytes": 100},
                "cs": {"mode": "cs", "bits": args.bits}, "webp": 0, "ge_250_bytes": {"target_bytes": 250}, "webp_q5": 5}
    if codec.bundle.entropy is None:
        del settings["ge_60_bytes"], settings["ge_100_bytes"]
    if codec.bundle.refine is None:
        del settings["ge_250_bytes"]
    for name, setting in settings.items():
        if name.startswith("webp"):
            files, decoded = webp(originals, setting)
        else:
            files = codec.encode_batch(originals, **setting)
            decoded = codec.decode_batch(files)
        rows.append(decoded)
        report[name] = {"bytes": [len(f) for f in files], "psnr": [round(float(v), 2) for v in psnr_8bit(decoded, originals)],
                        "mse": [round(float(v), 5) for v in mse(decoded, originals)]}
        print(f"{name}: mean {sum(report[name]['bytes']) / len(files):.0f} bytes, "
              f"PSNR {sum(report[name]['psnr']) / len(files):.2f} dB, MSE {sum(report[name]['mse']) / len(files):.5f}")
    save_grid(torch.cat(rows), out, columns=len(names))
    out.with_suffix(".json").write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
