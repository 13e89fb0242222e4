"""Faces in photos: does a face coded from a portrait decode as well as the same face given as a tight crop?

    python -m bench.align_check --data ../shared/data/celeba64/val --n 256

Each validation crop is grown into an LFW-style portrait (mirrored outwards at its edges, so that hair and
background go on around the face, enlarged 4x and turned ANGLE degrees), then coded twice with the default
model: the tight crop as it is, and the portrait through face finding and alignment. Writes
bench/results/align/align.json (per face, the mean, and the mean over the faces the detector found: bytes,
PSNR of each file against the crop it was made from, PSNR of the aligned crop against the tight one),
strip.png (portrait, aligned crop, decode, pasted back) and portrait.png, an example input for `gec encode`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from gecodec.align import frame_face
from gecodec.api import get_codec
from gecodec.bundle import load_model
from gecodec.codec import Codec
from gecodec.fileio import write_bytes_atomic
from gecodec.image_encoding import encode_image
from gecodec.imageio import is_image_path, open_image, pixels_to_tensor
from gecodec.metrics import psnr_8bit

ANGLE, SCALE, PAD = 15.0, 4, 32  # PAD: the mirrored margin, in crop pixels (more shows a mirrored face)
STRIP_FACES, TILE = 4, 128


def portrait(face: Image.Image, angle: float = ANGLE, scale: int = SCALE, pad: int = PAD) -> Image.Image:
    """A tight face crop grown into a portrait: mirrored outwards by ``pad`` pixels, enlarged, turned."""
    pixels = np.pad(np.asarray(face.convert("RGB")), ((pad, pad), (pad, pad), (0, 0)), mode="reflect")
    side = pixels.shape[0] * scale
    return Image.fromarray(pixels).resize((side, side), Image.Resampling.BICUBIC).rotate(angle, Image.Resampling.BICUBIC)


def psnr(a: Image.Image, b: Image.Image) -> float:
    return round(float(psnr_8bit(pixels_to_tensor(np.asarray(a))[None], pixels_to_tensor(np.asarray(b))[None])[0]), 2)


def measure(codec: Codec, face: Image.Image) -> tuple[dict, list[Image.Image]]:
    """One face's figures, and its strip tiles: portrait, aligned crop, decode, pasted back."""
    tight_data, tight = encode_image(codec, face, check=True)
    photo = portrait(face)
    framed = frame_face(photo, codec.bundle.crop, codec.image_size)
    data, report = encode_image(codec, photo, check=True)
    decoded = codec.decode_image(data)
    record = {"tight_bytes": len(tight_data), "tight_psnr": tight.psnr, "portrait_bytes": len(data),
              "portrait_psnr": report.psnr, "framing": report.framing,
              "aligned_vs_tight_psnr": psnr(framed.face, face), "decoded_vs_tight_psnr": psnr(decoded, face)}
    pasted = codec.decode_image(data, paste_into=photo)
    tiles = [image.resize((TILE, TILE), Image.Resampling.LANCZOS) for image in (photo, framed.face, decoded, pasted)]
    return record, tiles


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="folder of validation face crops")
    parser.add_argument("--n", type=int, default=256)
    parser.add_argument("--out", type=Path, default=Path("bench/results/align"))
    args = parser.parse_args(argv)
    codec = get_codec(load_model(), "cpu")
    names = sorted(p for p in args.data.iterdir() if is_image_path(p))[: args.n]
    records, strip = {}, Image.new("RGB", (4 * TILE, STRIP_FACES * TILE))
    for index, path in enumerate(tqdm(names, unit="face", mininterval=5)):
        face = open_image(path)
        records[path.name], tiles = measure(codec, face)
        if index < STRIP_FACES:
            for column, tile in enumerate(tiles):
                strip.paste(tile, (column * TILE, index * TILE))
        if index == 0:
            args.out.mkdir(parents=True, exist_ok=True)
            portrait(face).save(args.out / "portrait.png")
    fields = ["tight_bytes", "tight_psnr", "portrait_bytes", "portrait_psnr", "aligned_vs_tight_psnr",
              "decoded_vs_tight_psnr"]
    aligned = [r for r in records.values() if r["framing"] == "aligned"]
    summary = {field: round(float(np.mean([r[field] for r in records.values()])), 2) for field in fields}
    summary["aligned_share"] = round(len(aligned) / len(records), 3)
    found = {field: round(float(np.mean([r[field] for r in aligned])), 2) for field in fields} if aligned else {}
    result = {"faces": len(records), "angle": ANGLE, "scale": SCALE, "pad": PAD, "model": codec.bundle.model_hex,
              "mean": summary, "mean_where_a_face_was_found": found, "per_face": records}
    write_bytes_atomic(args.out / "align.json", (json.dumps(result, indent=1) + "\n").encode(), force=True)
    strip.save(args.out / "strip.png")
    print(json.dumps({"all": summary, "found": found}))


if __name__ == "__main__":
    main()
