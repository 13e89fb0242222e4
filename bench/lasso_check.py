"""Why Lasso-DCT's MSE at m = 500 is far from the GE paper's 0.024: the same faces decoded by Lasso with other
alphas, another scale of A, and unquantized measurements, next to the best k-term DCT approximation (an oracle
that knows x and keeps its k largest coefficients).

    python -m bench.lasso_check --data ../shared/data/celeba64/val --n 16

Writes bench/results/lasso_check.json and prints a table.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch

from bench.lasso_dct import analyze, lasso_fista, synthesize
from bench.report import write_json
from gecodec.bundle import load_model
from gecodec.codec import Codec
from gecodec.metrics import mse
from gecodec.train.data import load_named_images, to_float

RESULTS = Path(__file__).parent / "results"


def lasso_mse(x: torch.Tensor, y: torch.Tensor, matrix: torch.Tensor, alpha: float, entry_variance: str) -> float:
    """Mean MSE of Lasso in the orthonormal per-channel DCT, with A scaled so its entries are N(0, 1) (the
    harness's convention) or N(0, 1/m) (another reading of Bora et al.'s code)."""
    n, m = matrix.shape[1], matrix.shape[0]
    scale = math.sqrt(n) if entry_variance == "1" else math.sqrt(n / m)
    c = lasso_fista(analyze(matrix * scale, x.shape[-1]), y * scale, alpha)
    return mse(synthesize(c, x.shape[-1]).clamp(-1, 1), x).mean().item()


def best_k_term_mse(x: torch.Tensor, k: int) -> float:
    c = analyze(x.double(), x.shape[-1])
    kept = c.abs().topk(k, dim=1).indices
    approx = synthesize(torch.zeros_like(c).scatter(1, kept, c.gather(1, kept)), x.shape[-1])
    return mse(approx.float(), x).mean().item()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--n", type=int, default=16)
    parser.add_argument("--m", type=int, default=500)
    parser.add_argument("--out", type=Path, default=RESULTS / "lasso_check.json")
    args = parser.parse_args(argv)

    codec = Codec(load_model(None), "cpu")
    uint8, _ = load_named_images(args.data, codec.image_size, limit=args.n)
    x = to_float(uint8)
    files = codec.encode_batch(x, bits=8, mode="cs", count=args.m)
    quantized = torch.stack([codec.parse(f).values for f in files])
    matrix = codec.gaussian(args.m, codec.parse(files[0]).header.seed).matrix.cpu()
    exact = x.flatten(1) @ matrix.T

    rows = []
    for measurements, y in (("8-bit", quantized), ("exact", exact)):
        for entry_variance in ("1", "1/m"):
            for alpha in (1.0, 0.1, 0.01, 0.001):
                rows.append({"measurements": measurements, "A entries": f"N(0, {entry_variance})", "alpha": alpha,
                             "mse": lasso_mse(x, y, matrix, alpha, entry_variance)})
                print(rows[-1], flush=True)
    oracle = {k: best_k_term_mse(x, k) for k in (args.m // 4, args.m // 2, args.m)}
    write_json(args.out, {"images": len(x), "m": args.m, "lasso": rows, "best_k_term_dct": oracle})
    print("best k-term DCT approximation (knows x): " + ", ".join(f"k = {k}: {v:.4f}" for k, v in oracle.items()))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
