"""A learned refinement layer against the DCT layer (gecodec/refine.py): same bases, same faces, real coded bytes.

    python -m bench.refine_learned bases --data ../shared/data/celeba64 --train 16384 --run runs/refine-learned
    python -m bench.refine_learned train --run runs/refine-learned --minutes 60      # resumable
    python -m bench.refine_learned measure --data ../shared/data/celeba64 --n 256 --run runs/refine-learned

The learned layer is a small conditional codec in the style of Balle et al.: an analysis network sees the face
and its base decode x_base (the default model's file at its default quality, as the receiver decodes it), a
latent of 32 x 8 x 8 is quantized and coded with a Gaussian whose mean and spread a network predicts from
x_base alone (the receiver has it, so this prior costs no bytes), and a synthesis network adds the residual to
x_base from the latent and x_base's features. Several rates come from one model through a per-level gain
vector (Cui et al. 2021), one level per rate-distortion weight. Bytes are the base file, the latent's ANS bytes
(constriction) and LAYER_HEADER, as in bench/residual_dct.py; writes bench/results/residual/learned.json
beside dct.json.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import NamedTuple

import constriction
import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from bench.residual_dct import LAYER_HEADER, base_layer
from gecodec.api import get_codec
from gecodec.bundle import load_model
from gecodec.entropy import ans_bytes, categorical, integer_table
from gecodec.fileio import write_bytes_atomic
from gecodec.metrics import psnr_8bit
from gecodec.train.data import load_images, to_float

LAMBDAS = (0.0025, 0.006, 0.015, 0.04, 0.08)  # rate (bits per pixel) + lambda x MSE in 8-bit levels, per level
LATENT, FEATURES = 32, 64
SMALLEST_SPREAD = 0.11  # of a latent's Gaussian, in quantizer steps
RADIUS = 255  # the coder's integers run over -RADIUS .. RADIUS
STATIC_RADIUS, STATIC_FIT = 64, 2048  # static tables: their integers' range, and the training faces they are fitted on
BATCH = 16
TIMED, TIMED_RATE = 16, 2  # measure times the decoding of this many layers of this rate


def down(cin: int, cout: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 5, stride=2, padding=2)


def up(cin: int, cout: int) -> nn.ConvTranspose2d:
    return nn.ConvTranspose2d(cin, cout, 5, stride=2, padding=2, output_padding=1)


class ConditionalRefiner(nn.Module):
    def __init__(self, levels: int = len(LAMBDAS)) -> None:
        super().__init__()
        act = nn.GELU
        self.base1 = nn.Sequential(down(3, FEATURES), act())
        self.base2 = nn.Sequential(down(FEATURES, FEATURES), act())
        self.base3 = nn.Sequential(down(FEATURES, FEATURES), act())
        self.prior = nn.Conv2d(FEATURES, 2 * LATENT, 3, padding=1)
        self.analysis = nn.Sequential(down(6, FEATURES), act(), down(FEATURES, FEATURES), act(), down(FEATURES, LATENT))
        self.up1 = nn.Sequential(up(LATENT + FEATURES, FEATURES), act())
        self.up2 = nn.Sequential(up(2 * FEATURES, FEATURES), act())
        self.up3 = nn.Sequential(up(2 * FEATURES, FEATURES), act())
        self.out = nn.Conv2d(FEATURES + 3, 3, 3, padding=1)
        self.log_gains = nn.Parameter(torch.linspace(-1.0, 1.0, levels)[:, None].repeat(1, LATENT))
        nn.init.zeros_(self.out.weight)  # start from x_base itself, not from x_base plus noise
        nn.init.zeros_(self.out.bias)

    def conditioning(self, base: torch.Tensor, level: int) -> Conditioning:
        """What both sides derive from x_base at a rate: its features, and each latent's mean and spread."""
        f1 = self.base1(base)
        f2 = self.base2(f1)
        f3 = self.base3(f2)
        mean, log_spread = self.prior(f3).chunk(2, dim=1)
        gain = self.log_gains[level].exp()[None, :, None, None]
        return Conditioning(base, (f1, f2, f3), mean, gain, (log_spread.exp() * gain).clamp_min(SMALLEST_SPREAD))

    def forward(self, x: torch.Tensor, base: torch.Tensor, level: int, noise: bool
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """-> (the refined image, the latent's integers, their Gaussian spreads (both in quantizer steps), bits)."""
        given = self.conditioning(base, level)
        scaled = (self.analysis(torch.cat([x, base], 1)) - given.mean) * given.gain
        # Training stands in uniform noise for rounding (Balle et al. 2017), for the rate and the synthesis alike.
        coded = scaled + torch.empty_like(scaled).uniform_(-0.5, 0.5) if noise else scaled.round()
        bits = -torch.log2(_bin_probability(coded, given.spread).clamp_min(1e-9)).sum((1, 2, 3))
        return self.refine(coded, given), scaled.round(), given.spread, bits

    def refine(self, integers: torch.Tensor, given: Conditioning) -> torch.Tensor:
        """The decoder: the latent's integers -> x_base plus the residual they and x_base's features draw."""
        f1, f2, f3 = given.features
        h = self.up1(torch.cat([integers / given.gain + given.mean, f3], 1))
        h = self.up2(torch.cat([h, f2], 1))
        h = self.up3(torch.cat([h, f1], 1))
        return given.base + self.out(torch.cat([h, given.base], 1))


class Conditioning(NamedTuple):
    base: torch.Tensor
    features: tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # of x_base at 32, 16 and 8 pixels
    mean: torch.Tensor
    gain: torch.Tensor
    spread: torch.Tensor


def _bin_probability(value: torch.Tensor, spread: torch.Tensor) -> torch.Tensor:
    """P(value's unit bin) under N(0, spread), from the lower tail, where float32 keeps its precision (and a
    gradient) far from the centre."""
    normal = torch.distributions.Normal(0.0, 1.0)
    far = value.abs()
    return normal.cdf((0.5 - far) / spread) - normal.cdf((-0.5 - far) / spread)


def make_bases(args: argparse.Namespace) -> None:
    codec = get_codec(load_model(), "cpu")
    faces = load_images(args.data / "train", 64, limit=args.train)
    bases = []
    for start in tqdm(range(0, len(faces), 256), desc="base decodes", unit="batch"):
        decoded, _ = base_layer(codec, to_float(faces[start : start + 256]))
        bases.append(((decoded + 1) * 127.5).round().to(torch.uint8))
    args.run.mkdir(parents=True, exist_ok=True)
    np.save(args.run / "faces.npy", faces.numpy())
    np.save(args.run / "bases.npy", torch.cat(bases).numpy())


def train(args: argparse.Namespace) -> None:
    faces = torch.from_numpy(np.load(args.run / "faces.npy"))
    bases = torch.from_numpy(np.load(args.run / "bases.npy"))
    model = ConditionalRefiner()
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    state = {"step": 0, "seconds": 0.0}
    checkpoint = args.run / "checkpoint.pt"
    if checkpoint.exists():
        saved = torch.load(checkpoint)
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        for group in optimizer.param_groups:  # a resumed run may go on at another rate
            group["lr"] = args.lr
        state = saved["state"]
    generator = torch.Generator().manual_seed(state["step"])
    started, last_save = time.monotonic(), time.monotonic()
    budget = args.minutes * 60
    with (args.run / "log.jsonl").open("a") as log:
        while state["seconds"] + time.monotonic() - started < budget:
            pick = torch.randint(len(faces), (BATCH,), generator=generator)
            x, base = to_float(faces[pick]), to_float(bases[pick])
            if torch.rand((), generator=generator) < 0.5:
                x, base = x.flip(-1), base.flip(-1)
            level = state["step"] % len(LAMBDAS)
            refined, _, _, bits = model(x, base, level, noise=True)
            distortion = ((refined - x) * 127.5).square().mean()
            rate = bits.mean() / (x.shape[-1] * x.shape[-2])
            loss = rate + LAMBDAS[level] * distortion
            if not bool(torch.isfinite(loss)):  # keep the last checkpoint, saved before the run diverged
                print(f"step {state['step']}: the loss is not finite; stopping at the last checkpoint")
                return
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            state["step"] += 1
            if state["step"] % 100 < len(LAMBDAS):  # one step of each level every 100
                base_mse = ((base - x) * 127.5).square().mean().item()
                log.write(json.dumps({"step": state["step"], "level": level, "bpp": rate.item(),
                                      "psnr": 10 * math.log10(255**2 / distortion.item()),
                                      "base_psnr": 10 * math.log10(255**2 / base_mse)}) + "\n")
                log.flush()
            if time.monotonic() - last_save > 120:
                _save(checkpoint, model, optimizer, state, time.monotonic() - started)
                started, last_save = time.monotonic(), time.monotonic()
    _save(checkpoint, model, optimizer, state, time.monotonic() - started)
    print(f"step {state['step']}, {state['seconds'] / 60:.1f} minutes")


def _save(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer, state: dict, elapsed: float) -> None:
    state["seconds"] += elapsed
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "state": state}, path.with_suffix(".tmp"))
    path.with_suffix(".tmp").replace(path)


def code_layer(integers: torch.Tensor, spread: torch.Tensor) -> bytes:
    """One image's latent integers -> ANS bytes under the predicted Gaussians."""
    family = constriction.stream.model.QuantizedGaussian(-RADIUS, RADIUS)
    coder = constriction.stream.stack.AnsCoder()
    symbols = integers.clamp(-RADIUS, RADIUS).flatten().numpy().astype(np.int32)
    stds = spread.flatten().double().numpy()
    coder.encode_reverse(symbols, family, np.zeros_like(stds), stds)
    return coder.get_compressed().tobytes()


def decode_layer(data: bytes, spread: torch.Tensor) -> torch.Tensor:
    family = constriction.stream.model.QuantizedGaussian(-RADIUS, RADIUS)
    coder = constriction.stream.stack.AnsCoder(np.frombuffer(data, dtype=np.uint32).copy())
    stds = spread.flatten().double().numpy()
    return torch.from_numpy(coder.decode(family, np.zeros_like(stds), stds).astype(np.float32)).reshape(spread.shape)


def static_tables(model: ConditionalRefiner, faces: torch.Tensor, bases: torch.Tensor, level: int) -> list[np.ndarray]:
    """Per latent channel, an integer table of the integers that training faces give at ``level``: a prior that
    needs no x_base, so that encoder and decoder would build identical coders on any platform."""
    with torch.no_grad():
        integers = torch.cat([model(to_float(faces[i : i + 256]), to_float(bases[i : i + 256]), level, noise=False)[1]
                              for i in range(0, len(faces), 256)])
    symbols = (integers.clamp(-STATIC_RADIUS, STATIC_RADIUS) + STATIC_RADIUS).long()
    return [integer_table(np.bincount(symbols[:, c].flatten().numpy(), minlength=2 * STATIC_RADIUS + 1) + 0.5)
            for c in range(LATENT)]


def code_static(integers: torch.Tensor, tables: list[np.ndarray]) -> bytes:
    """One image's (LATENT, 8, 8) integers -> ANS bytes under the static per-channel tables."""
    coder = constriction.stream.stack.AnsCoder()
    symbols = (integers.clamp(-STATIC_RADIUS, STATIC_RADIUS) + STATIC_RADIUS).numpy().astype(np.int32)
    for channel in reversed(range(LATENT)):
        coder.encode_reverse(symbols[channel].ravel(), categorical(tables[channel]))
    return ans_bytes(coder)


def layer_decode_ms(model: ConditionalRefiner, bases: torch.Tensor, layers: list[bytes]) -> float:
    """A receiver's part, in milliseconds a face at batch 1: conditioning on x_base, the ANS decode, the synthesis."""
    started = time.perf_counter()
    with torch.no_grad():
        for base, data in zip(bases, layers):
            given = model.conditioning(base[None], TIMED_RATE)
            model.refine(decode_layer(data, given.spread[0])[None], given)
    return round(1000 * (time.perf_counter() - started) / len(layers), 2)


def measure(args: argparse.Namespace) -> None:
    saved = torch.load(args.run / "checkpoint.pt")
    model = ConditionalRefiner()
    model.load_state_dict(saved["model"])
    model.eval()
    codec = get_codec(load_model(), "cpu")
    val = to_float(load_images(args.data / "val", 64, limit=args.n))
    val_base, base_bytes = base_layer(codec, val)
    train_faces = torch.from_numpy(np.load(args.run / "faces.npy", mmap_mode="r")[-STATIC_FIT:].copy())
    train_bases = torch.from_numpy(np.load(args.run / "bases.npy", mmap_mode="r")[-STATIC_FIT:].copy())
    rows = []
    with torch.no_grad():
        for level in range(len(LAMBDAS)):
            _, integers, spread, _ = model(val, val_base, level, noise=False)
            layers = [code_layer(k, s) for k, s in zip(integers, spread)]
            decoded = torch.stack([decode_layer(data, s) for data, s in zip(layers, spread)])
            assert torch.equal(decoded, integers.clamp(-RADIUS, RADIUS)), "the coder does not round-trip"
            refined = model.refine(decoded, model.conditioning(val_base, level)).clamp(-1, 1)
            sizes = base_bytes + np.array([len(layer) for layer in layers]) + LAYER_HEADER
            tables = static_tables(model, train_faces, train_bases, level)
            static = base_bytes + np.array([len(code_static(k, tables)) for k in integers]) + LAYER_HEADER
            rows.append({"level": level, "lambda": LAMBDAS[level], "bytes": float(sizes.mean()),
                         "psnr": float(psnr_8bit(refined, val).mean()), "static_table_bytes": float(static.mean()),
                         "static_clipped": int((integers.abs() > STATIC_RADIUS).sum())})
            print(rows[-1], flush=True)
            if level == TIMED_RATE:
                timed_layers = layers[:TIMED]
    dct = json.loads(Path("bench/results/residual/dct.json").read_text())["base_plus_layer"]
    for row in rows:  # the DCT layer's curve (same base, same faces) read at the same bytes
        row["dct_psnr_at_same_bytes"] = float(np.interp(row["bytes"], [r["bytes"] for r in dct], [r["psnr"] for r in dct]))
        row["dct_psnr_at_static_bytes"] = float(np.interp(row["static_table_bytes"], [r["bytes"] for r in dct],
                                                          [r["psnr"] for r in dct]))
        print(f"| {row['level']} | {row['bytes']:.1f} | {row['psnr']:.2f} | {row['dct_psnr_at_same_bytes']:.2f} | "
              f"{row['static_table_bytes']:.1f} | {row['dct_psnr_at_static_bytes']:.2f} |")
    result = {"faces": len(val), "weights": sum(p.numel() for p in model.parameters()),
              f"rate_{TIMED_RATE}_decode_ms_per_image": layer_decode_ms(model, val_base[:TIMED], timed_layers),
              "train_faces": int(len(np.load(args.run / "bases.npy", mmap_mode="r"))),
              "steps": saved["state"]["step"], "train_minutes": round(saved["state"]["seconds"] / 60, 1),
              "learned": rows, "dct": dct}
    write_bytes_atomic(args.out / "learned.json", (json.dumps(result, indent=1) + "\n").encode(), force=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("step", choices=("bases", "train", "measure"))
    parser.add_argument("--data", type=Path, default=Path("../shared/data/celeba64"), help="folder with train/ and val/")
    parser.add_argument("--run", type=Path, default=Path("runs/refine-learned"))
    parser.add_argument("--train", type=int, default=16384, help="training faces (bases)")
    parser.add_argument("--n", type=int, default=256, help="validation faces (measure)")
    parser.add_argument("--minutes", type=float, default=60.0, help="total training budget (train)")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--out", type=Path, default=Path("bench/results/residual"))
    args = parser.parse_args(argv)
    {"bases": make_bases, "train": train, "measure": measure}[args.step](args)


if __name__ == "__main__":
    main()
