"""Where the encoder's "unusual" threshold comes from: the typicality of faces and of pictures that are not faces.

    python -m bench.typicality --faces ../shared/data/celeba64/val --photos runs/lfw64 --n 512

Typicality (gecodec.report.typicality) is the mean square of a picture's measurements in units of their spread on
the training faces; a face's is about 1. This measures it under each default model for validation faces (CelebA
crops, and the LFW validation people's framed photos) and for pictures no face model should take for a face:
a line plot, a flat grey square, uniform noise, a colour gradient and text on white. gecodec.report.ATYPICAL,
the threshold above which `gec encode` calls an input unusual, sits between the largest face's and the smallest
non-face's. Writes bench/results/typicality.json.
"""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from gecodec.bundle import load_model
from gecodec.fileio import write_bytes_atomic
from gecodec.imageio import image_to_tensor
from gecodec.report import ATYPICAL, typicality
from gecodec.train.data import load_images, to_float
from gecodec.train.photos import load_framed

MODELS = ("faces64-default", "celeba64-default")


def not_faces(size: int = 256) -> dict[str, Image.Image]:
    """Pictures that are not faces, made here so that anyone can rerun this."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(3, 3), dpi=size // 3)
    steps = np.linspace(0, 10, 200)
    axes.plot(steps, np.sin(steps), steps, np.exp(-steps / 4))
    axes.set_xlabel("bytes")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    text = Image.new("RGB", (size, size), "white")
    ImageDraw.Draw(text).multiline_text((10, 10), "gecodec\ncodes faces\nin bytes", fill="black")
    ramp = np.linspace(0, 255, size, dtype=np.uint8)
    gradient = np.stack([np.tile(ramp, (size, 1)), np.tile(ramp[:, None], (1, size)), np.full((size, size), 128,
                                                                                                np.uint8)], -1)
    noise = np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8)
    return {"plot": Image.open(buffer).convert("RGB"), "grey": Image.new("RGB", (size, size), (128, 128, 128)),
            "noise": Image.fromarray(noise), "gradient": Image.fromarray(gradient), "text": text}


def summary(values: list[float]) -> dict[str, float]:
    return {"n": len(values), "median": round(float(np.median(values)), 3),
            "p99": round(float(np.percentile(values, 99)), 3), "max": round(float(max(values)), 3)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--faces", type=Path, required=True, help="folder of validation face crops")
    parser.add_argument("--photos", type=Path, required=True, help="framing folder of photos (gecodec.train.photos)")
    parser.add_argument("--n", type=int, default=512, help="use the first N faces of each source")
    parser.add_argument("--out", type=Path, default=Path("bench/results/typicality.json"))
    args = parser.parse_args(argv)
    result: dict = {"threshold": ATYPICAL, "models": {}}
    pictures = not_faces()
    for name in MODELS:
        bundle = load_model(name)
        size = bundle.image_size
        sources = {"celeba validation crops": to_float(load_images(args.faces, size, limit=args.n)),
                   "lfw validation photos": to_float(load_framed(args.photos, "val")[: args.n])}
        with torch.no_grad():
            measured = {label: typicality(bundle, bundle.encoder(faces)) for label, faces in sources.items()}
            others = torch.stack([image_to_tensor(image, size) for image in pictures.values()])
            other_values = typicality(bundle, bundle.encoder(others))
        result["models"][name] = {**{label: summary(values) for label, values in measured.items()},
                                  "not faces": {k: round(v, 3) for k, v in zip(pictures, other_values)}}
    text = json.dumps(result, indent=1) + "\n"
    write_bytes_atomic(args.out, text.encode(), force=True)
    print(text)


if __name__ == "__main__":
    main()
