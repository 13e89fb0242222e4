"""How far can a classical residual layer take a GE file? An estimate before building one.

    python -m bench.residual_dct --data ../shared/data/celeba64 --n 256 --fit 512

The base layer is the default model's file at its default quality; the receiver decodes it to x_base (decoding
is deterministic, so the encoder knows x_base exactly). The refinement codes r = x - x_base as JPEG codes
pixels: YCbCr, chroma averaged over 2x2, 8x8 orthonormal DCT, each coefficient quantized with step
STEP x (1 + SLOPE (u + v)), and entropy-coded under a discretized Laplace per (channel, u, v) whose scale is
fitted on --fit training faces' residuals. The bytes are the ideal code length of those tables (an ANS coder
comes within a byte or two of it) plus the base file, so the curve is an upper bound on what such a layer
gives. The same coder started from the training faces' mean image, with no base layer, shows what the base
layer is worth. Writes bench/results/residual/dct.json with the WebP points of the rd table beside it.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import torch

from gecodec.api import get_codec
from gecodec.bundle import load_model
from gecodec.codec import Codec
from gecodec.fileio import write_bytes_atomic
from gecodec.metrics import psnr_8bit
from gecodec.train.data import load_images, to_float

STEPS = (2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0, 24.0, 32.0, 48.0)  # in 8-bit levels
SLOPE = 0.25  # coarser steps for higher frequencies
BLOCK = 8
RGB_TO_YCC = np.array([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]])


def dct_matrix(n: int = BLOCK) -> np.ndarray:
    k = np.arange(n)
    m = np.cos(np.pi * (2 * k[None, :] + 1) * k[:, None] / (2 * n)) * math.sqrt(2 / n)
    m[0] /= math.sqrt(2)
    return m


D = dct_matrix()
WEIGHTS = 1 + SLOPE * (np.arange(BLOCK)[:, None] + np.arange(BLOCK)[None, :])


def to_blocks(plane: np.ndarray) -> np.ndarray:
    """(N, H, W) -> (N, H/8, W/8, 8, 8) DCT coefficients."""
    n, h, w = plane.shape
    blocks = plane.reshape(n, h // BLOCK, BLOCK, w // BLOCK, BLOCK).transpose(0, 1, 3, 2, 4)
    return D @ blocks @ D.T


def from_blocks(coefficients: np.ndarray) -> np.ndarray:
    n, bh, bw = coefficients.shape[:3]
    blocks = D.T @ coefficients @ D
    return blocks.transpose(0, 1, 3, 2, 4).reshape(n, bh * BLOCK, bw * BLOCK)


def analyse(residual: np.ndarray) -> list[np.ndarray]:
    """(N, 3, H, W) residual in 8-bit levels -> [Y, Cb, Cr] block coefficients (chroma at half size)."""
    ycc = np.einsum("ij,njhw->nihw", RGB_TO_YCC, residual)
    n, _, h, w = ycc.shape
    chroma = ycc[:, 1:].reshape(n, 2, h // 2, 2, w // 2, 2).mean(axis=(3, 5))
    return [to_blocks(ycc[:, 0]), to_blocks(chroma[:, 0]), to_blocks(chroma[:, 1])]


def synthesise(planes: list[np.ndarray]) -> np.ndarray:
    y, cb, cr = (from_blocks(p) for p in planes)
    chroma = np.stack([cb, cr], 1).repeat(2, axis=2).repeat(2, axis=3)
    ycc = np.concatenate([y[:, None], chroma], 1)
    return np.einsum("ij,njhw->nihw", np.linalg.inv(RGB_TO_YCC), ycc)


def laplace_bits(k: np.ndarray, scale: np.ndarray, step: np.ndarray) -> np.ndarray:
    """Ideal code length of integers k under a Laplace of this scale discretized with this step."""
    b = np.maximum(scale, 1e-3)

    def cdf(t: np.ndarray) -> np.ndarray:
        tail = 0.5 * np.exp(-np.abs(t) / b)
        return np.where(t < 0, tail, 1 - tail)

    p = cdf((k + 0.5) * step) - cdf((k - 0.5) * step)
    return -np.log2(np.maximum(p, 2.0**-16))


def base_layer(codec: Codec, images: torch.Tensor) -> tuple[torch.Tensor, np.ndarray]:
    files = codec.encode_batch(images)
    return codec.decode_batch(files, batch_size=32), np.array([len(f) for f in files])


def curve(train_residual: torch.Tensor, val: torch.Tensor, val_base: torch.Tensor, base_bytes: np.ndarray
          ) -> list[dict]:
    """Mean bytes (base file + the layer's ideal code length) and PSNR of val refined from val_base, per step,
    with the Laplace scales fitted on the training residuals."""
    scales = [np.abs(c).mean(axis=(0, 1, 2)) for c in analyse(train_residual.numpy() * 127.5)]
    val_planes = analyse((val - val_base).numpy() * 127.5)
    rows = []
    for step in STEPS:
        steps = step * WEIGHTS
        quantized = [np.round(c / steps) for c in val_planes]
        bits = sum(laplace_bits(k, s, steps).sum(axis=(1, 2, 3, 4)) for k, s in zip(quantized, scales))
        refined = val_base + torch.from_numpy(synthesise([k * steps for k in quantized]) / 127.5).float()
        rows.append({"step": step, "bytes": float((base_bytes + np.ceil(bits / 8)).mean()),
                     "psnr": float(psnr_8bit(refined.clamp(-1, 1), val).mean())})
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="folder with train/ and val/")
    parser.add_argument("--n", type=int, default=256)
    parser.add_argument("--fit", type=int, default=512)
    parser.add_argument("--out", type=Path, default=Path("bench/results/residual"))
    args = parser.parse_args(argv)
    codec = get_codec(load_model(), "cpu")
    train = to_float(load_images(args.data / "train", 64, limit=args.fit))
    val = to_float(load_images(args.data / "val", 64, limit=args.n))
    train_base, _ = base_layer(codec, train)
    val_base, base_bytes = base_layer(codec, val)
    with_base = [{"step": None, "bytes": float(base_bytes.mean()), "psnr": float(psnr_8bit(val_base, val).mean())}]
    with_base += curve(train - train_base, val, val_base, base_bytes)
    # The same coder from the training faces' mean image instead of a base layer: what the base layer is worth.
    mean_face = train.mean(0, keepdim=True)
    alone = curve(train - mean_face, val, mean_face.expand_as(val), np.zeros(len(val)))
    webp = json.loads(Path("bench/results/rd/webp.json").read_text())["results"]
    result = {"faces": len(val), "fit_faces": len(train), "slope": SLOPE, "model": codec.bundle.model_hex,
              "base_plus_dct": with_base, "dct_alone": alone,
              "webp": [{"bytes": b * 64 * 64 / 8, "psnr": p} for b, p in zip(webp["bpp"], webp["psnr-rgb"])]}
    args.out.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(args.out / "dct.json", (json.dumps(result, indent=1) + "\n").encode(), force=True)


if __name__ == "__main__":
    main()
