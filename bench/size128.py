"""128x128 faces: the two designs of the 128 path at equal training minutes, against WebP, AVIF and JPEG at 128.

    python -m bench.size128 --photos runs/lfw128 --n 128 --scalable runs/up2 --own runs/a128.safetensors --identity

On LFW validation people framed at 128 by the face finder (python -m gecodec.train.photos --size 128):
- (b) scalable: the 64 default's file of the face halved (area averaging), and a learned layer that codes the
  128 face past that file's start picture enlarged (bicubic), trained by `python -m gecodec.train.refiner train`
  on bases made with `bases --size 128`. Its tables are fitted on the run's last 2,048 training faces. Bytes are
  those of the 64 file with the layer appended as a learned layer on the start picture, under the fitted layer's
  own check code (formats/gec.md, key 12; container.with_layer), the container's form for one layer today.
- (a) own: a 128 model, G and EN trained jointly as the 64 default was (`gec train joint --size 128`), in
  fixed-length files of 4, 6 and 8 bits (no entropy model yet).
Reports mean bytes, PSNR (8-bit RGB) and, with --identity, dlib's same-person share (bench/identity.py), and how
long each design trained. Writes bench/results/size128/compare.json and rd.png.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from bench.codecs import pillow_codecs
from gecodec import container
from gecodec.bundle import load_bundle
from gecodec.codec import Codec
from gecodec.fileio import write_bytes_atomic
from gecodec.imageio import pixels_to_tensor, tensor_to_pixels
from gecodec.learned_layer import SUBLEVELS, fit_learned_refinement
from gecodec.metrics import psnr_8bit
from gecodec.train.checkpoint import load_checkpoint
from gecodec.train.data import to_float
from gecodec.train.photos import load_framed
from gecodec.train.refiner import FIT_IMAGES, trained_network, upsampled

OWN_BITS = (4, 6, 8)


class Figures:
    """Mean bytes, PSNR and (optionally) the same-person share of decodes against the originals."""

    def __init__(self, originals: torch.Tensor, identity: bool) -> None:
        self.originals, self.identity = originals, identity

    def __call__(self, files: list[bytes] | list[int], decoded: torch.Tensor, **setting: object) -> dict:
        sizes = [len(f) if isinstance(f, bytes) else f for f in files]
        row = {**setting, "bytes": round(float(np.mean(sizes)), 1),
               "psnr": round(float(psnr_8bit(decoded, self.originals).mean()), 3)}
        if self.identity:
            from bench.identity import face_identity

            found = face_identity().measure(tensor_to_pixels(decoded), tensor_to_pixels(self.originals))
            row["same_person"] = round(float(np.mean(found["same_person"])), 3)
        print(json.dumps(row), flush=True)
        return row


def scalable(run: Path, base: str, faces: torch.Tensor, figures: Figures) -> tuple[list[dict], dict]:
    """Design (b): the base model's files of the faces at its size, and each level of the run's layer over
    them."""
    codec = Codec(base, "cpu")
    network, state = trained_network(run)
    train_faces = to_float(torch.from_numpy(np.load(run / "faces.npy", mmap_mode="r")[-FIT_IMAGES:].copy()))
    train_bases = to_float(torch.from_numpy(np.load(run / "bases.npy", mmap_mode="r")[-FIT_IMAGES:].copy()))
    layer = fit_learned_refinement(network, train_faces, train_bases)
    files = codec.encode_batch(F.interpolate(faces, size=codec.image_size, mode="area"))
    pictures = upsampled(codec.layer_bases(files, on_start=True), faces.shape[-1])
    pixels = pixels_to_tensor(tensor_to_pixels(pictures))  # what both sides know exactly: 8-bit pixels
    rows = [figures(files, pixels, design="b", layer=None)]
    centred = layer.centred(faces, pixels)
    for level in range(0, layer.tables.shape[0], SUBLEVELS):
        payloads = layer.code_centred(centred, level)
        check = layer.check_for(level)
        sizes = [len(container.with_layer(data, payload, level, check, "learned", True))
                 for data, payload in zip(files, payloads)]
        decoded = torch.stack([layer.refined(p, payload, level) for p, payload in zip(pixels, payloads)])
        rows.append(figures(sizes, decoded, design="b", layer=level))
    return rows, {"steps": state["step"], "minutes": round(state["seconds"] / 60, 1), "init_from": state["init_from"]}


def own(bundle_path: Path, faces: torch.Tensor, figures: Figures) -> tuple[list[dict], dict]:
    """Design (a): the 128 model's fixed-length files."""
    codec = Codec(load_bundle(bundle_path), "cpu")
    rows = []
    for bits in OWN_BITS:
        files = codec.encode_batch(faces, bits=bits)
        rows.append(figures(files, codec.decode_batch(files), design="a", bits=bits))
    run = bundle_path.with_suffix("")
    saved = load_checkpoint(run / "checkpoint.pt") if (run / "checkpoint.pt").exists() else {}
    return rows, {"steps": saved.get("step"), "minutes": codec.bundle.card.get("training_minutes")}


def classical(faces: torch.Tensor, figures: Figures) -> list[dict]:
    rows = []
    for bench_codec in pillow_codecs():
        for setting in bench_codec.settings():
            files = bench_codec.encode(faces, setting)
            rows.append(figures(files, bench_codec.decode(files, setting), design=bench_codec.name, **setting))
    return rows


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4.5))
    for design in dict.fromkeys(row["design"] for row in rows):
        points = sorted((row["bytes"], row["psnr"]) for row in rows if row["design"] == design)
        label = {"a": "(a) own 128 model", "b": "(b) 64 file + 2x layer"}.get(design, design)
        axes.plot(*zip(*points), marker="o", markersize=3, label=label)
    axes.set_xscale("log")
    axes.set_xlabel("bytes per 128x128 face")
    axes.set_ylabel("PSNR (dB, 8-bit RGB)")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=Path, required=True, help="framing folder of photos at 128")
    parser.add_argument("--n", type=int, default=128, help="use the first N validation faces")
    parser.add_argument("--scalable", type=Path, required=True, help="refiner run of design (b)")
    parser.add_argument("--base", default="faces64-default", help="the model of design (b)'s base files")
    parser.add_argument("--own", type=Path, default=None, help="bundle of design (a)")
    parser.add_argument("--identity", action="store_true", help="also measure dlib's same-person share")
    parser.add_argument("--out", type=Path, default=Path("bench/results/size128"))
    args = parser.parse_args(argv)
    faces = to_float(load_framed(args.photos, "val")[: args.n])
    figures = Figures(faces, args.identity)
    b_rows, b_training = scalable(args.scalable, args.base, faces, figures)
    a_rows, a_training = own(args.own, faces, figures) if args.own is not None else ([], None)
    rows = b_rows + a_rows + classical(faces, figures)
    args.out.mkdir(parents=True, exist_ok=True)
    result = {"faces": len(faces), "size": faces.shape[-1], "base": args.base,
              "training": {"a": a_training, "b": b_training}, "rows": rows}
    write_bytes_atomic(args.out / "compare.json", (json.dumps(result, indent=1) + "\n").encode(), force=True)
    plot(rows, args.out / "rd.png")


if __name__ == "__main__":
    main()
