"""The recipe that made the shipped default model. Re-run it to reproduce the bundle:

    python -m gecodec.train.default_model --data ../shared/data/celeba64 --out gecodec/weights/celeba64-default.safetensors

Stages: GAN (resumable, in --run-dir), GE1 encoder on real and generated faces, quantizer calibration,
validation figures, export to a half-precision bundle with a model card.
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from gecodec.bundle import Bundle, load_bundle, save_bundle
from gecodec.models import AutoencoderDecoder, Encoder, EncoderConfig, Generator, GeneratorConfig
from gecodec.models.conv_discriminator import ConvDiscriminatorConfig
from gecodec.search import SearchOptions, latent_search
from gecodec.train.checkpoint import load_checkpoint, save_checkpoint
from gecodec.train.data import load_images, to_float
from gecodec.train.encoder import EncoderTrainConfig, calibrate, train_encoder
from gecodec.train.evaluate import evaluate_bundle
from gecodec.train.gan import GanTrainConfig, train_gan

GAN = GanTrainConfig(
    generator=GeneratorConfig(image_size=64, latent_dim=128, channels=128, min_channels=16),
    discriminator=ConvDiscriminatorConfig(image_size=64, channels=32),
    batch_size=64, minutes=70, sample_every=250, checkpoint_every=250,
)
ENCODER = EncoderTrainConfig(encoder=EncoderConfig(image_size=64, m=128, depth=4, filters=16), steps=4000, minutes=14)


def search_iteration_flops(bundle: Bundle, restarts: int = 2) -> int:
    """FLOPs of one search iteration (G and EN, forward and backward) for one image with ``restarts`` restarts."""
    target = torch.zeros(1, bundle.m)
    with FlopCounterMode(display=False) as counter:
        latent_search(bundle.generator, bundle.encoder, target, [0], SearchOptions(iters=1, restarts=restarts))
    return counter.get_total_flops()


def train_or_load_encoder(train: torch.Tensor, generator: Generator, run_dir: Path
                          ) -> tuple[Encoder, AutoencoderDecoder, dict]:
    """Stage 2, resumable: the trained encoder is kept in run_dir/encoder.pt."""
    path = run_dir / "encoder.pt"
    if path.exists():
        state = load_checkpoint(path)
        encoder, ae_decoder = Encoder(ENCODER.encoder), AutoencoderDecoder(ENCODER.encoder, ENCODER.decoder_channels)
        encoder.load_state_dict(state["encoder"])
        ae_decoder.load_state_dict(state["ae_decoder"])
        return encoder.eval().requires_grad_(False), ae_decoder.eval().requires_grad_(False), state["summary"]
    encoder, ae_decoder, summary = train_encoder(train, generator, ENCODER)
    save_checkpoint({"encoder": encoder.state_dict(), "ae_decoder": ae_decoder.state_dict(), "summary": summary}, path)
    return encoder, ae_decoder, summary


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="folder with train/ and val/ image folders")
    parser.add_argument("--out", type=Path, required=True, help="bundle file to write")
    parser.add_argument("--run-dir", type=Path, default=Path("runs/default-model"))
    parser.add_argument("--cache", type=Path, default=None, help="a .npy cache of the decoded training images")
    parser.add_argument("--val-images", type=int, default=32, help="validation images for the model card (0: none)")
    parser.add_argument("--note", default=None, help="a remark for the model card (how this run differed)")
    args = parser.parse_args(argv)

    started = time.monotonic()
    train = load_images(args.data / "train", 64, cache=args.cache)
    train_gan(train, args.run_dir / "gan", GAN)
    state = load_checkpoint(args.run_dir / "gan" / "checkpoint.pt")
    generator = Generator(GAN.generator)
    generator.load_state_dict(state["g_ema"])
    generator.eval().requires_grad_(False)

    encoder, ae_decoder, encoder_summary = train_or_load_encoder(train, generator, args.run_dir)
    lo, hi = calibrate(encoder, train[torch.randperm(len(train), generator=torch.Generator().manual_seed(0))[:10000]])
    # Save first, then evaluate the bundle as shipped (half precision), then save it again with its card:
    # the tensors, and so the id, do not change.
    save_bundle(Bundle(name="celeba64-default", generator=generator, encoder=encoder, calibration_lo=lo,
                       calibration_hi=hi, ae_decoder=ae_decoder), args.out, half=True)
    bundle = load_bundle(args.out)
    figures = {}
    if args.val_images:
        figures = evaluate_bundle(bundle, to_float(load_images(args.data / "val", 64, limit=args.val_images)))
    bundle.card = {
        "summary": (f"CelebA 64x64 faces; G trained {state['step']} steps ({state['elapsed'] / 60:.0f} min on CPU), "
                    f"GE1 encoder m=128 {encoder_summary['steps']} steps"
                    + (f"; val GE PSNR {figures['ge_real']['psnr']} dB" if figures else "")),
        "data": f"{len(train)} CelebA face crops, 64x64, from {args.data / 'train'} (see the data set's README for licence)",
        "generator": {"architecture": "BEGAN-style: linear to 8x8x128, 4 blocks of two 3x3 conv + ELU, nearest "
                      "upsampling, widths 128-64-32-16", "loss": "non-saturating GAN, spectral-norm conv discriminator",
                      "steps": state["step"], "batch_size": GAN.batch_size, "minutes": round(state["elapsed"] / 60, 1),
                      "ema": "exported weights are the exponential moving average of G"},
        "encoder": {"kind": "ge1", "config": ENCODER.encoder.to_dict(), **encoder_summary,
                    "generated_fraction": ENCODER.generated_fraction},
        "calibration": "per-dimension 0.05% and 99.95% quantiles of EN outputs on 10,000 training images",
        "hardware": f"{platform.machine()} CPU, {torch.get_num_threads()} threads, torch {torch.__version__}",
        "val": {"data": str(args.data / "val"), **figures},
        "decode_cost": {"flops_per_search_iteration": search_iteration_flops(bundle),
                        "seconds_per_image_cpu": figures.get("seconds_per_image_cpu")},
        "total_minutes": round((time.monotonic() - started) / 60, 1),
        "made_by": "python -m gecodec.train.default_model",
    }
    if args.note:
        bundle.card["note"] = args.note
    digest = save_bundle(bundle, args.out, half=True)
    print(f"wrote {args.out} (id {digest[:8]}): {bundle.card['summary']}")


if __name__ == "__main__":
    main()
