"""The recipe of celeba64-v2 (id 93851b1c), the default model until the joint model, and the G and EN the joint
recipe (gecodec.train.joint_recipe) starts from. Re-run it to reproduce the bundle:

    python -m gecodec.train.default_model --data ../shared/data/celeba64 --out celeba64-v2.safetensors

Stages, each resumable in --run-dir: GAN (a DCGAN-style G with the non-saturating loss, which learns faces in
far fewer CPU-minutes than BEGAN), the GE1 encoder on real and generated faces, then quantizer calibration,
validation figures and export to a half-precision bundle with a model card.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from gecodec.models import ConvDiscriminatorConfig, EncoderConfig, GeneratorConfig
from gecodec.train.checkpoint import load_checkpoint
from gecodec.train.data import load_images, to_float
from gecodec.train.encoder import EncoderTrainConfig, train_encoder
from gecodec.train.export import export_bundle, training_card
from gecodec.train.gan import GanTrainConfig, ema_generator, train_gan

NAME = "celeba64-v2"
GAN = GanTrainConfig(
    generator=GeneratorConfig(image_size=64, latent_dim=128, channels=256, latent_prior="normal", arch="dcgan"),
    loss="nonsaturating", discriminator=ConvDiscriminatorConfig(image_size=64, channels=32),
    batch_size=64, lr=2e-4, lr_halve_every=None, minutes=90, sample_every=500, checkpoint_every=250,
)
ENCODER = EncoderTrainConfig(encoder=EncoderConfig(image_size=64, m=128, depth=4, filters=16), steps=20_000, minutes=15)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="folder with train/ and val/ image folders")
    parser.add_argument("--out", type=Path, required=True, help="bundle file to write")
    parser.add_argument("--run-dir", type=Path, default=Path("runs/default-model-v2"))
    parser.add_argument("--cache", type=Path, default=None, help="a .npy cache of the decoded training images")
    parser.add_argument("--val-images", type=int, default=64, help="validation images for the model card (0: none)")
    parser.add_argument("--note", default=None, help="a remark for the model card (how this run differed)")
    args = parser.parse_args(argv)

    started = time.monotonic()
    train = load_images(args.data / "train", 64, cache=args.cache)
    gan_dir, encoder_dir = args.run_dir / "gan", args.run_dir / "encoder"
    train_gan(train, gan_dir, GAN, resume=(gan_dir / "checkpoint.pt").exists())
    gan_state = load_checkpoint(gan_dir / "checkpoint.pt")
    generator = ema_generator(gan_state)
    encoder, ae_decoder, summary = train_encoder(train, generator, ENCODER, encoder_dir,
                                                 resume=(encoder_dir / "checkpoint.pt").exists())
    val = to_float(load_images(args.data / "val", 64, limit=args.val_images)) if args.val_images else None
    card = training_card(gan_state, str(args.data / "train"), len(train), summary)
    card["generator"]["architecture"] = ("DCGAN-style: linear to 4x4x256, four 4x4 transposed convolutions (stride 2) "
                                         "with batch norm and ReLU, widths 256-128-64-32, tanh")
    card["generator"]["discriminator"] = "spectral-norm strided conv critic, widths 32-64-128-256"
    card["made_by"] = "python -m gecodec.train.default_model"
    if args.note:
        card["note"] = args.note
    bundle = export_bundle(args.out, NAME, generator, encoder, train, card, ae_decoder, val)
    figures = bundle.card["val"]
    print(f"wrote {args.out} (id {bundle.model_hex}) in {(time.monotonic() - started) / 60:.1f} min; "
          f"val GE PSNR {figures.get('ge_real', {}).get('psnr')} dB")


if __name__ == "__main__":
    main()
