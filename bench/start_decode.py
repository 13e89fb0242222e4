"""A base decoded by the search, or to its start picture (version 4)? Both, on validation faces of both sources.

    python -m bench.start_decode --faces ../shared/data/celeba64/val --photos runs/lfw64 --n 256 --identity

For each model with a learned start and each base quality, the same version-3 base files are decoded twice: by
the search (the model's schedule), and to their start picture G(z0) with no search (the same base as a version-4
file). Reports mean bytes, PSNR (8-bit RGB), with --identity dlib's same-person share and mean descriptor distance
(bench/identity.py), and decode seconds a face in one batch. Writes bench/results/start_decode.json.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from gecodec.bundle import load_model
from gecodec.codec import Codec
from gecodec.container import with_start_picture
from gecodec.fileio import write_bytes_atomic
from gecodec.imageio import tensor_to_pixels
from gecodec.metrics import psnr_8bit
from gecodec.train.data import load_images, to_float
from gecodec.train.photos import load_framed

MODELS = ("faces64-default", "celeba64-default")
QUALITIES = (10, 30, 60, 90)


def measure(codec: Codec, files: list[bytes], faces: torch.Tensor, identity: bool) -> dict[str, float]:
    started = time.perf_counter()
    decoded = codec.decode_batch(files)
    seconds = (time.perf_counter() - started) / len(files)
    row = {"psnr": round(float(psnr_8bit(decoded, faces).mean()), 3), "seconds_per_face": round(seconds, 4)}
    if identity:
        from bench.identity import face_identity

        found = face_identity().measure(tensor_to_pixels(decoded), tensor_to_pixels(faces))
        row["same_person"] = round(float(np.mean(found["same_person"])), 3)
        row["identity_distance"] = round(float(np.mean(found["identity_distance"])), 4)
    return row


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--faces", type=Path, required=True, help="folder of validation face crops")
    parser.add_argument("--photos", type=Path, required=True, help="framing folder of photos (gecodec.train.photos)")
    parser.add_argument("--n", type=int, default=256, help="use the first N faces of each source")
    parser.add_argument("--identity", action="store_true", help="also measure dlib's same-person share")
    parser.add_argument("--out", type=Path, default=Path("bench/results/start_decode.json"))
    args = parser.parse_args(argv)
    result: dict = {"faces": args.n, "threads": torch.get_num_threads(), "models": {}}
    for name in MODELS:
        bundle = load_model(name)
        codec = Codec(replace(bundle, ladder=None), "cpu")  # qualities are base qualities: version-3 files
        size = bundle.image_size
        sources = {"celeba validation crops": to_float(load_images(args.faces, size, limit=args.n)),
                   "lfw validation photos": to_float(load_framed(args.photos, "val")[: args.n])}
        rows = []
        for source, faces in sources.items():
            for quality in QUALITIES:
                searched = codec.encode_batch(faces, quality=quality)
                on_start = [with_start_picture(data) for data in searched]
                row = {"source": source, "base_quality": quality,
                       "bytes": round(float(np.mean([len(data) for data in searched])), 1),
                       "search": measure(codec, searched, faces, args.identity),
                       "start": measure(codec, on_start, faces, args.identity)}
                row["start_minus_search_db"] = round(row["start"]["psnr"] - row["search"]["psnr"], 3)
                print(json.dumps(row), flush=True)
                rows.append(row)
        result["models"][name] = rows
    write_bytes_atomic(args.out, (json.dumps(result, indent=1) + "\n").encode(), force=True)


if __name__ == "__main__":
    main()
