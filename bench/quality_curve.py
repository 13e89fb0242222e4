"""Rate-distortion curves of entropy-coded files, one per model: mean bytes and PSNR at each quality.

    python -m bench.quality_curve --data ../shared/data/celeba64/val --n 64 --models celeba64-default other.safetensors

Each model decodes with its own schedule. Writes a JSON file (--out) and prints a Markdown table with one
row per quality and two columns (bytes, PSNR) per model. The rd preset (python -m bench rd) gives the
same curves with confidence intervals and the other codecs beside them; this is the quick look.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from gecodec.bundle import load_model
from gecodec.fileio import write_bytes_atomic
from gecodec.train.data import load_images, to_float
from gecodec.train.evaluate import CURVE_QUALITIES, quality_curve


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="folder of images")
    parser.add_argument("--n", type=int, default=64, help="use the first N images")
    parser.add_argument("--models", nargs="+", required=True, help="bundles with an entropy model (names, ids, paths)")
    parser.add_argument("--qualities", type=int, nargs="+", default=list(CURVE_QUALITIES))
    parser.add_argument("--out", type=Path, default=None, help="JSON file to write")
    args = parser.parse_args(argv)

    curves = {}
    for name in args.models:
        bundle = load_model(name)
        images = to_float(load_images(args.data, bundle.image_size, limit=args.n))
        curves[name] = {"model_id": bundle.model_hex,
                        "curve": quality_curve(bundle, images, tuple(args.qualities))}
    print("| quality | " + " | ".join(f"{name}: bytes | PSNR" for name in curves) + " |")
    print("|---|" + "---|---|" * len(curves))
    for i, quality in enumerate(args.qualities):
        cells = " | ".join(f"{c['curve'][i]['bytes']} | {c['curve'][i]['psnr']}" for c in curves.values())
        print(f"| {quality} | {cells} |")
    if args.out is not None:
        report = {"data": str(args.data), "images": args.n, "models": curves}
        write_bytes_atomic(args.out, (json.dumps(report, indent=1) + "\n").encode(), force=True)


if __name__ == "__main__":
    main()
