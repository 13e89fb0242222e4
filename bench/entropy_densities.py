"""Which density family codes a model's measurements shortest: Gaussian, Laplace or the measured histogram.

    python -m bench.entropy_densities --data ../shared/data/celeba64 --train-n 8000 --val-n 1000

Fits an entropy model of each family to EN's outputs on the first --train-n training faces (as export does on
its calibration faces), codes the first --val-n validation faces at several qualities, and reports the mean
payload bytes (the 10-byte envelope aside). Writes bench/results/rate/densities.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from gecodec.bundle import load_model
from gecodec.entropy import DENSITIES, fit_entropy_model
from gecodec.fileio import write_bytes_atomic
from gecodec.train.data import load_images
from gecodec.train.encoder import measure

RESULTS = Path(__file__).parent / "results" / "rate"
QUALITIES = (0, 25, 50, 75, 100)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="folder with train/ and val/ image folders")
    parser.add_argument("--model", default=None, help="bundle (default: the shipped one)")
    parser.add_argument("--train-n", type=int, default=8000)
    parser.add_argument("--val-n", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=RESULTS / "densities.json")
    args = parser.parse_args(argv)

    bundle = load_model(args.model)
    train = measure(bundle.encoder, load_images(args.data / "train", bundle.image_size, limit=args.train_n))
    val = measure(bundle.encoder, load_images(args.data / "val", bundle.image_size, limit=args.val_n))
    results = {}
    for density in DENSITIES:
        model = fit_entropy_model(train, density)
        results[density] = {q: round(float(np.mean([len(model.encode(row, q)) for row in model.quantize(val, q)])), 2)
                            for q in QUALITIES}
    print("| density | " + " | ".join(f"quality {q}" for q in QUALITIES) + " |")
    print("|---|" + "---|" * len(QUALITIES))
    for density, sizes in results.items():
        print(f"| {density} | " + " | ".join(f"{sizes[q]} B" for q in QUALITIES) + " |")
    report = {"model": bundle.name, "model_id": bundle.model_hex, "train_faces": len(train), "val_faces": len(val),
              "mean_payload_bytes": results}
    write_bytes_atomic(args.out, (json.dumps(report, indent=1) + "\n").encode(), force=True)


if __name__ == "__main__":
    main()
