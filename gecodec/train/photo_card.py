"""The model card's figures for faces in photos: what files of each quality decode to on validation people's
photos, framed by the face finder and coded with their position, as `gec encode photo.jpg` codes them.

    python -m gecodec.train.photo_card --bundle FILE --photos runs/lfw64 --faces "LFW validation people"

The encoder's report then compares a photo's file with these faces rather than with the face crops the model was
trained on (gecodec.report). Stored in the card as ``photos``: the faces' description and, per quality, the mean
bytes (position included) and PSNR (8-bit RGB, against the framed face). The model id does not change.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from gecodec.bundle import load_bundle, update_bundle
from gecodec.align import Placement
from gecodec.codec import Codec, Source
from gecodec.metrics import psnr_8bit
from gecodec.train.data import to_float
from gecodec.train.evaluate import CURVE_QUALITIES
from gecodec.train.photos import framed_records, load_framed


def photo_curve(codec: Codec, faces: torch.Tensor, sources: list[Source], qualities: tuple[int, ...]) -> list[dict]:
    """Mean bytes and PSNR of the faces' files at each quality, each file holding its face's position."""
    curve = []
    for quality in qualities:
        files = codec.encode_batch(faces, quality=quality, sources=sources)
        psnr = psnr_8bit(codec.decode_batch(files), faces)
        curve.append({"quality": quality, "bytes": round(float(np.mean([len(f) for f in files])), 1),
                      "psnr": round(float(psnr.mean()), 2)})
        print(curve[-1], flush=True)
    return curve


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", type=Path, required=True, help="bundle file to store the figures in")
    parser.add_argument("--photos", type=Path, required=True, help="a framing folder (python -m gecodec.train.photos)")
    parser.add_argument("--faces", required=True, help="what the photos are, for the card and the report")
    parser.add_argument("--n", type=int, default=128, help="validation photos to measure")
    parser.add_argument("--qualities", type=int, nargs="+", default=list(CURVE_QUALITIES),
                        help="qualities to measure, the model's default among them (default: every tenth)")
    args = parser.parse_args(argv)
    faces = to_float(load_framed(args.photos, "val")[: args.n])
    sources = [Source(tuple(r["size"]), Placement.from_position(tuple(r["position"])))
               for r in framed_records(args.photos, "val")[: args.n]]
    bundle = load_bundle(args.bundle)
    # The default is what most files are: the report compares them with its own figure, not an interpolation
    # (the ladder may jump from a base alone to a layer next to it).
    qualities = tuple(sorted({*args.qualities, bundle.default_quality}))
    curve = photo_curve(Codec(bundle, "cpu"), faces, sources, qualities)
    card = {**bundle.card, "photos": {"faces": f"{args.faces}: {len(faces)} validation photos, framed by the face "
                                               "finder, coded with their position", "curve": curve,
                                      "made_by": "python -m gecodec.train.photo_card"}}
    update_bundle(args.bundle, card=card)


if __name__ == "__main__":
    main()
