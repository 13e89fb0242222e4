"""A grid of faces drawn by a bundle's generator from its latent prior, with a fixed seed.

    python -m bench.samples --n 64

Writes bench/results/generator_samples.png: what G can draw, and so what the decoder can reach.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from gecodec.bundle import load_model
from gecodec.train.gan import sample_latent
from gecodec.train.grid import save_grid

RESULTS = Path(__file__).parent / "results"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="bundle name, id or path (default: the shipped default)")
    parser.add_argument("--n", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS / "generator_samples.png")
    args = parser.parse_args(argv)

    bundle = load_model(args.model)
    z = sample_latent(args.n, bundle.generator.config, torch.Generator().manual_seed(args.seed))
    with torch.no_grad():
        save_grid(bundle.generator(z), args.out)
    print(f"wrote {args.out}: {args.n} samples of {bundle.name} ({bundle.model_hex}), seed {args.seed}")


if __name__ == "__main__":
    main()
