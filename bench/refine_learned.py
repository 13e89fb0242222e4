"""A bundle's learned refinement layer against its DCT layer (bench/residual_dct.py): same bases, same faces.

    python -m bench.refine_learned --data ../shared/data/celeba64 --n 256

The layer is gecodec/learned_layer.py, trained by gecodec.train.refiner. Each validation face is coded at the
model's default quality, decoded as a receiver decodes it, and given a learned layer at each level; the bytes are
real .gec files (Codec.layered). Beside them, what the layer would take if its latent were coded under the
Gaussians the network predicts from x_base (as in training) instead of the bundle's static tables: a prior that
saves bytes but whose tables would come from floats computed at run time; and, on a model with a learned start,
the same layer on the start picture (formats/gec.md), as the encoder writes it. Writes
bench/results/residual/learned.json beside dct.json, with the DCT curve read at the same bytes.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import constriction
import numpy as np
import torch

from gecodec.bundle import load_model
from gecodec.codec import Codec
from gecodec.fileio import write_bytes_atomic
from gecodec.learned_layer import RADIUS, SUBLEVELS, latent_integers
from gecodec.metrics import psnr_8bit
from gecodec.train.data import load_images, to_float

RESULTS = Path(__file__).parent / "results" / "residual"
TIMED, TIMED_LEVEL = 16, 6  # the decoding of this many layers of this level (or the finest) is timed, at batch 1


def gaussian_layer_bytes(integers: torch.Tensor, spread: torch.Tensor) -> bytes:
    """One image's latent integers -> ANS bytes under the predicted Gaussians N(0, spread)."""
    family = constriction.stream.model.QuantizedGaussian(-RADIUS, RADIUS)
    coder = constriction.stream.stack.AnsCoder()
    stds = spread.flatten().double().numpy()
    coder.encode_reverse(integers.flatten().numpy().astype(np.int32), family, np.zeros_like(stds), stds)
    return coder.get_compressed().tobytes()


def decode_ms(codec: Codec, pixels: torch.Tensor, files: list[bytes], level: int) -> float:
    """A receiver's part, in milliseconds a face at batch 1: the ANS decode, conditioning and synthesis."""
    layers = [codec.parse(data).layer for data in files]
    started = time.perf_counter()
    for base, layer in zip(pixels, layers):
        codec.refined(base, layer, level, "learned")
    return round(1000 * (time.perf_counter() - started) / len(files), 2)


def measure(data: Path, n: int, model: str | None) -> dict:
    codec = Codec(load_model(model), "cpu")
    layer = codec.bundle.refine_learned
    val = to_float(load_images(data / "val", codec.image_size, limit=n))
    bases = codec.encode_batch(val)
    pixels = codec.base_decodes(bases)
    starts = codec.layer_bases(bases, True) if codec.bundle.has_learned_start else None
    rows, timed_level = [], min(TIMED_LEVEL, layer.levels.stop - 1)
    for level in layer.levels:
        files, decoded = codec.layered(bases, val, pixels, level, "learned")
        with torch.no_grad():
            spread = layer.network.conditioning(pixels, level / SUBLEVELS).spread
        integers = latent_integers(layer.network, val, pixels, level)
        gaussian = [len(f) - len(codec.parse(f).layer) + len(gaussian_layer_bytes(k, s))
                    for f, k, s in zip(files, integers, spread)]
        rows.append({"level": level, "bytes": float(np.mean([len(f) for f in files])),
                     "psnr": float(psnr_8bit(decoded, val).mean()), "gaussian_prior_bytes": float(np.mean(gaussian))})
        if starts is not None:  # the same layer on the start picture, as the encoder now writes it: no search
            start_files, start_decoded = codec.layered(bases, val, starts, level, "learned", on_start=True)
            rows[-1].update(on_start_bytes=float(np.mean([len(f) for f in start_files])),
                            on_start_psnr=float(psnr_8bit(start_decoded, val).mean()))
        if level == timed_level:
            timed_ms = decode_ms(codec, pixels[:TIMED], files[:TIMED], level)
        print(rows[-1], flush=True)
    dct = json.loads((RESULTS / "dct.json").read_text())["base_plus_layer"]
    layered = [r for r in dct if r["level"] is not None]  # not the base alone: nothing lies between it and level 0
    dct_bytes = [r["bytes"] for r in layered]
    for row in rows:  # the DCT layer's curve (same base, same faces) read at the same bytes, where it reaches
        inside = dct_bytes[0] <= row["bytes"] <= dct_bytes[-1]
        row["dct_psnr_at_same_bytes"] = (float(np.interp(row["bytes"], dct_bytes, [r["psnr"] for r in layered]))
                                         if inside else None)
    return {"model": codec.bundle.name, "model_id": codec.bundle.model_hex, "faces": len(val),
            "base_bytes": float(np.mean([len(f) for f in bases])), "base_psnr": float(psnr_8bit(pixels, val).mean()),
            "start_picture_psnr": None if starts is None else float(psnr_8bit(starts, val).mean()),
            "weights": sum(p.numel() for p in layer.network.parameters()),
            f"level_{timed_level}_decode_ms_per_image": timed_ms, "card": codec.bundle.card.get("refine_learned"),
            "learned": rows, "dct": dct}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("../shared/data/celeba64"), help="folder with val/")
    parser.add_argument("--n", type=int, default=256, help="validation faces")
    parser.add_argument("--model", default=None, help="bundle name, id or path (default: the shipped default)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    result = measure(args.data, args.n, args.model)
    for row in result["learned"]:
        dct = "-" if row["dct_psnr_at_same_bytes"] is None else f"{row['dct_psnr_at_same_bytes']:.2f}"
        start = f"{row['on_start_bytes']:.1f} | {row['on_start_psnr']:.2f}" if "on_start_bytes" in row else "- | -"
        print(f"| {row['level']} | {row['bytes']:.1f} | {row['psnr']:.2f} | {dct} | {row['gaussian_prior_bytes']:.1f} | "
              f"{start} |")
    write_bytes_atomic(args.out / "learned.json", (json.dumps(result, indent=1) + "\n").encode(), force=True)


if __name__ == "__main__":
    main()
