"""Train a bundle's learned refinement layer (gecodec/learned_layer.py) and store it in the bundle.

    python -m gecodec.train.refiner bases --data ../shared/data/celeba64/train \\
        --bundle gecodec/weights/celeba64-default.safetensors --run runs/refiner --images 12288
    python -m gecodec.train.refiner train --run runs/refiner --minutes 60       # resumable
    # or, for a new bundle, go on from another bundle's trained layer: train --init-from OTHER_BUNDLE
    python -m gecodec.train.refiner store --run runs/refiner --bundle gecodec/weights/celeba64-default.safetensors
    # a layer that codes 128x128 faces past the 64 model's decode, enlarged: from photos framed at 128
    python -m gecodec.train.refiner bases --photos runs/lfw128 --size 128 --bundle MODEL --run runs/up2

bases: codes each training face at the bundle's default quality and makes the picture a receiver adds the layer
to (8-bit pixels: the start picture on a model with a learned start, else the search's decode); they do not change
while the refiner trains. train: minimises rate + lambda x MSE (in 8-bit levels),
one level per lambda, the rate measured under the Gaussian prior the network predicts from x_base. store: rounds
the network to half precision, fits each level's static tables on the run's last FIT_IMAGES faces (the trained
levels' and the coarse ones' below them, gecodec/learned_layer.py), and stores both in the bundle; the model id
does not change (refined files name the layer by its check code).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from gecodec.bundle import load_bundle, load_model, update_bundle
from gecodec.codec import Codec
from gecodec.learned_layer import fit_learned_refinement, with_coarse_levels
from gecodec.models.refiner import ConditionalRefiner, RefinerConfig
from gecodec.train.checkpoint import check_same_config, load_checkpoint, save_checkpoint
from gecodec.train.data import to_float
from gecodec.train.photos import training_faces

LAMBDAS = (0.0025, 0.006, 0.015, 0.04, 0.08)  # per level: rate (bits per pixel) + lambda x MSE in 8-bit levels
CONFIG = RefinerConfig(levels=len(LAMBDAS))
BATCH = 16
BASES_BATCH = 256
FIT_IMAGES = 2048
SAVE_SECONDS = 120


def make_bases(bundle_path: Path, faces: torch.Tensor, run: Path) -> None:
    """Store (N, 3, S, S) uint8 faces and the pictures their layers refine (uint8) in the run folder: the
    base files' start pictures on a model with a learned start, else their search decodes (Codec.layer_bases).
    Faces larger than the model's are coded at its size (area-averaged) and their pictures enlarged back
    (upsampled): a layer that codes the detail of a larger face."""
    codec = Codec(load_bundle(bundle_path), "cpu")
    size = codec.image_size
    bases = []
    for start in tqdm(range(0, len(faces), BASES_BATCH), desc="layer bases", unit="batch"):
        chunk = to_float(faces[start : start + BASES_BATCH])
        files = codec.encode_batch(F.interpolate(chunk, size=size, mode="area") if chunk.shape[-1] != size else chunk)
        pictures = upsampled(codec.layer_bases(files, on_start=codec.bundle.has_learned_start), chunk.shape[-1])
        bases.append(((pictures + 1) * 127.5).round().to(torch.uint8))
    run.mkdir(parents=True, exist_ok=True)
    np.save(run / "faces.npy", faces.numpy())
    np.save(run / "bases.npy", torch.cat(bases).numpy())


def upsampled(pictures: torch.Tensor, size: int) -> torch.Tensor:
    """(B, 3, s, s) pictures in [-1, 1] at size x size: bicubic, clipped; as they are when s is size."""
    if pictures.shape[-1] == size:
        return pictures
    return F.interpolate(pictures, size=size, mode="bicubic", align_corners=False).clamp(-1, 1)


def train(run: Path, minutes: float, lr: float, init_from: str | None = None) -> dict:
    """Train from the run's checkpoint (or from scratch, or from the learned layer of the bundle ``init_from``)
    until ``minutes`` of training in all; a resumed run may go on at another learning rate. A loss that is not
    finite stops the run at its last checkpoint."""
    faces = torch.from_numpy(np.load(run / "faces.npy"))
    bases = torch.from_numpy(np.load(run / "bases.npy"))
    model = ConditionalRefiner(CONFIG)
    state = {"step": 0, "seconds": 0.0, "init_from": None}
    if init_from is not None:
        layer = load_model(init_from).refine_learned
        if layer is None or layer.network.config != CONFIG:
            raise SystemExit(f"{init_from}: the model has no learned layer of this recipe's shape to start from")
        model.load_state_dict(layer.network.state_dict())
        state["init_from"] = init_from
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    checkpoint = run / "checkpoint.pt"
    if checkpoint.exists():
        saved = load_checkpoint(checkpoint)
        check_same_config(saved["config"], _run_config(), checkpoint)
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        for group in optimizer.param_groups:
            group["lr"] = lr
        state = {"step": saved["step"], "seconds": saved["seconds"], "init_from": saved.get("init_from")}
    generator = torch.Generator().manual_seed(state["step"])
    started, last_save = time.monotonic(), time.monotonic()
    with (run / "log.jsonl").open("a") as log:
        while state["seconds"] + time.monotonic() - started < minutes * 60:
            pick = torch.randint(len(faces), (BATCH,), generator=generator)
            x, base = to_float(faces[pick]), to_float(bases[pick])
            if torch.rand((), generator=generator) < 0.5:
                x, base = x.flip(-1), base.flip(-1)
            level = state["step"] % len(LAMBDAS)
            refined, _, bits = model(x, base, level, noise=True)
            distortion = ((refined - x) * 127.5).square().mean()
            rate = bits.mean() / (x.shape[-1] * x.shape[-2])
            loss = rate + LAMBDAS[level] * distortion
            if not bool(torch.isfinite(loss)):
                print(f"step {state['step']}: the loss is not finite; stopping at the last checkpoint")
                return state
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            state["step"] += 1
            if state["step"] % 100 < len(LAMBDAS):  # one step of each level every 100
                log.write(json.dumps({"step": state["step"], "level": level, "bpp": rate.item(),
                                      "psnr": 10 * math.log10(255**2 / distortion.item())}) + "\n")
                log.flush()
            if time.monotonic() - last_save > SAVE_SECONDS:
                _save(checkpoint, model, optimizer, state, time.monotonic() - started)
                started = last_save = time.monotonic()
    _save(checkpoint, model, optimizer, state, time.monotonic() - started)
    return state


def _run_config() -> dict:
    return {"lambdas": list(LAMBDAS), **CONFIG.to_dict()}


def _save(path: Path, model: ConditionalRefiner, optimizer: torch.optim.Optimizer, state: dict, elapsed: float) -> None:
    state["seconds"] += elapsed
    save_checkpoint({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "config": _run_config(),
                     **state}, path)


def trained_network(run: Path) -> tuple[ConditionalRefiner, dict]:
    """The run's network and its training state (step, seconds)."""
    saved = load_checkpoint(run / "checkpoint.pt")
    model = ConditionalRefiner(CONFIG)
    model.load_state_dict(saved["model"])
    return model.eval(), {"step": saved["step"], "seconds": saved["seconds"], "init_from": saved.get("init_from")}


def store(run: Path, bundle_path: Path) -> dict:
    """Fit the trained network's tables and store both in the bundle file."""
    network, state = trained_network(run)
    faces = to_float(torch.from_numpy(np.load(run / "faces.npy", mmap_mode="r")[-FIT_IMAGES:].copy()))
    bases = to_float(torch.from_numpy(np.load(run / "bases.npy", mmap_mode="r")[-FIT_IMAGES:].copy()))
    layer = with_coarse_levels(fit_learned_refinement(network, faces, bases), faces, bases)
    bundle = load_bundle(bundle_path)
    record = {"train_images": len(np.load(run / "bases.npy", mmap_mode="r")), "steps": state["step"],
              "train_minutes": round(state["seconds"] / 60, 1), "init_from": state["init_from"], "lambdas": list(LAMBDAS),
              "fit_images": len(faces),
              "check_code": f"{layer.check_code:04x}", "coarse_levels": len(layer.coarse),
              "coarse_check_code": f"{layer.coarse_check_code:04x}", "made_by": "python -m gecodec.train.refiner"}
    update_bundle(bundle_path, refine_learned=layer, card={**bundle.card, "refine_learned": record})
    return record


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("step", choices=("bases", "train", "store"))
    parser.add_argument("--run", type=Path, required=True, help="folder for the bases and the checkpoint")
    parser.add_argument("--data", type=Path, default=None, help="folder of training face crops (bases)")
    parser.add_argument("--photos", type=Path, default=None,
                        help="a framing folder (python -m gecodec.train.photos): half the faces from its photos (bases)")
    parser.add_argument("--bundle", type=Path, help="bundle file: its base decodes (bases), where to store (store)")
    parser.add_argument("--images", type=int, default=12288, help="training faces (bases)")
    parser.add_argument("--size", type=int, default=None,
                        help="the faces' side, when larger than the model's: a layer for larger faces (bases)")
    parser.add_argument("--minutes", type=float, default=60.0, help="total training budget (train)")
    parser.add_argument("--lr", type=float, default=1e-3, help="learning rate (train)")
    parser.add_argument("--init-from", default=None,
                        help="a model whose learned layer a new run starts from: name, id or bundle file (train)")
    args = parser.parse_args(argv)
    needed = {"bases": ("bundle",), "store": ("bundle",), "train": ()}[args.step]
    missing = [f"--{name}" for name in needed if getattr(args, name) is None]
    if args.step == "bases" and args.data is None and args.photos is None:
        missing.append("--data or --photos")
    if missing:
        parser.error(f"{args.step} needs {' and '.join(missing)}")
    if args.step == "bases":
        size = args.size or load_bundle(args.bundle).image_size
        make_bases(args.bundle, training_faces(args.data, args.photos, size, args.images), args.run)
    elif args.step == "train":
        state = train(args.run, args.minutes, args.lr, args.init_from)
        print(f"step {state['step']}, {state['seconds'] / 60:.1f} minutes")
    else:
        print(json.dumps(store(args.run, args.bundle)))


if __name__ == "__main__":
    main()
