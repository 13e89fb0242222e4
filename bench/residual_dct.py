"""A classical refinement layer on top of GE files (gecodec/refine.py), against WebP, with real coded bytes.

    python -m bench.residual_dct --data ../shared/data/celeba64 --n 256 --fit 512

The base layer is the default model's file at its default quality; the receiver decodes it to x_base (decoding
is deterministic, so the encoder knows x_base exactly). The layer codes r = x - x_base with gecodec.refine (a
DCT of YCbCr with chroma at half size, ANS under Laplace tables fitted on --fit training faces' residuals) at
each of its levels. Bytes are the base file plus the layer's ANS bytes plus LAYER_HEADER, the bytes that a
container would need to say where the layer starts and at which level. The same coder started from the
training faces' mean image, with no base layer, shows what the base layer is worth. Writes
bench/results/residual/dct.json with the WebP points of the rd table beside it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from gecodec.api import get_codec
from gecodec.bundle import load_model
from gecodec.codec import Codec
from gecodec.fileio import write_bytes_atomic
from gecodec.imageio import pixels_to_tensor, tensor_to_pixels
from gecodec.metrics import psnr_8bit
from gecodec.refine import LEVELS, analyse, fit_refinement, synthesise
from gecodec.train.data import load_images, to_float

LAYER_HEADER = 3  # a lower bound: a file's key 9 ([level, base bytes, check]) takes 6 to 8 bytes


def base_layer(codec: Codec, images: torch.Tensor) -> tuple[torch.Tensor, np.ndarray]:
    """The base decodes, rounded to 8 bits as a receiver sees them, and the base files' sizes."""
    files = codec.encode_batch(images)
    decoded = pixels_to_tensor(tensor_to_pixels(codec.decode_batch(files, batch_size=32)))
    return decoded, np.array([len(f) for f in files])


def curve(train_residual: torch.Tensor, val: torch.Tensor, val_base: torch.Tensor, base_bytes: np.ndarray
          ) -> list[dict]:
    """Per refinement level: mean bytes (base + layer) and PSNR of the val faces refined from val_base."""
    model = fit_refinement(train_residual)
    planes = analyse((val - val_base).double().numpy() * 127.5)
    blocks = planes[0].shape[1]
    rows = []
    for level in range(LEVELS):
        integers = model.quantize(planes, level)
        layers = [model.encode([k[i] for k in integers], level) for i in range(len(val))]
        assert all(np.array_equal(a, b[i]) for layer, i in zip(layers[:4], range(4))
                   for a, b in zip(model.decode(layer, level, blocks), integers))  # the coder round-trips
        residual = synthesise(model.dequantize(integers, level), val.shape[-1]) / 127.5
        refined = (val_base + torch.from_numpy(residual).float()).clamp(-1, 1)
        sizes = base_bytes + np.array([len(layer) for layer in layers]) + LAYER_HEADER
        rows.append({"level": level, "bytes": float(sizes.mean()), "psnr": float(psnr_8bit(refined, val).mean())})
        print(rows[-1], flush=True)
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
    with_base = [{"level": None, "bytes": float(base_bytes.mean()), "psnr": float(psnr_8bit(val_base, val).mean())}]
    with_base += curve(train - train_base, val, val_base, base_bytes)
    # The same coder from the training faces' mean image instead of a base layer: what the base layer is worth.
    mean_face = train.mean(0, keepdim=True)
    alone = curve(train - mean_face, val, mean_face.expand_as(val), np.zeros(len(val), dtype=np.int64))
    webp = json.loads(Path("bench/results/rd/webp.json").read_text())["results"]
    result = {"faces": len(val), "fit_faces": len(train), "layer_header_bytes": LAYER_HEADER,
              "model": codec.bundle.model_hex, "base_plus_layer": with_base, "layer_from_the_mean_face": alone,
              "webp": [{"bytes": b * 64 * 64 / 8, "psnr": p} for b, p in zip(webp["bpp"], webp["psnr-rgb"])]}
    args.out.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(args.out / "dct.json", (json.dumps(result, indent=1) + "\n").encode(), force=True)


if __name__ == "__main__":
    main()
