"""How the decoder's search settings trade quality for time, on real images.

    python -m bench.search_settings --data ../shared/data/celeba64/val --n 16 --lam 0 0.001 0.01 0.1

Each setting changes one thing from the model's own schedule (--lr: the learning rate at each --iters).
Encodes the images once (8 bits) and decodes them with each setting; prints PSNR (8-bit RGB) and MSE
(pixels in [-1, 1]) per setting and writes bench/results/search_settings.json.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

from gecodec.bundle import load_model
from gecodec.codec import Codec
from gecodec.metrics import mse, psnr_8bit
from gecodec.train.data import load_images, to_float

RESULTS = Path(__file__).parent / "results"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--n", type=int, default=16)
    parser.add_argument("--model", default=None)
    parser.add_argument("--lam", type=float, nargs="*", default=[], help="values of lambda to try")
    parser.add_argument("--iters", type=int, nargs="*", default=[], help="iteration counts to try")
    parser.add_argument("--restarts", type=int, nargs="*", default=[], help="restart counts to try")
    parser.add_argument("--lr", type=float, nargs="*", default=[], help="Adam learning rates to try, each at every --iters")
    parser.add_argument("--device", default=None)
    parser.add_argument("--out", type=Path, default=RESULTS / "search_settings.json")
    args = parser.parse_args(argv)

    codec = Codec(load_model(args.model), args.device)
    originals = to_float(load_images(args.data, codec.image_size, limit=args.n))
    files = codec.encode_batch(originals)
    base = codec.bundle.decode
    settings = [base] + [replace(base, lam=v) for v in args.lam] + [replace(base, iters=v) for v in args.iters] + [
        replace(base, restarts=v) for v in args.restarts] + [
        replace(base, iters=i, lr=v) for v in args.lr for i in (args.iters or [base.iters])]
    rows = []
    for options in dict.fromkeys(settings):  # unique, in order
        started = time.perf_counter()
        decoded = codec.decode_batch(files, **vars(options))
        row = {**vars(options), "psnr": round(float(psnr_8bit(decoded, originals).mean()), 2),
               "mse": round(float(mse(decoded, originals).mean()), 5),
               "seconds_per_image": round((time.perf_counter() - started) / len(files), 2)}
        rows.append(row)
        print(json.dumps(row), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"model": codec.bundle.name, "images": len(files), "device": str(codec.device),
                                    "results": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
