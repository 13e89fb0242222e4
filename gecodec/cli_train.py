"""`gec train`: train a GAN, train or extract an encoder and export a bundle, evaluate a bundle.

Options left out take their defaults from the training dataclasses (or, with --resume, from the checkpoint).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import click

from gecodec.bundle import load_model
from gecodec.catalog import BUNDLE_SUFFIX
from gecodec.codec import resolve_device
from gecodec.errors import OptionError
from gecodec.fileio import check_output, write_bytes_atomic
from gecodec.models.generator import ARCHITECTURES
from gecodec.models import ConvDiscriminatorConfig, DiscriminatorConfig, EncoderConfig, GeneratorConfig
from gecodec.models.solver import INITS, SolverConfig
from gecodec.search import SearchOptions
from gecodec.train.augment import AUGMENTATIONS
from gecodec.train.checkpoint import load_checkpoint
from gecodec.train.data import load_images, to_float
from gecodec.train.distributed import Runtime, setup_runtime
from gecodec.train.encoder import EncoderTrainConfig, ge0_encoder, train_encoder
from gecodec.train.evaluate import evaluate_bundle
from gecodec.train.export import export_bundle, training_card
from gecodec.train.gan import LOSSES, GanTrainConfig, ema_generator, train_gan
from gecodec.train.joint import PRIORS, JointTrainConfig, export_joint, train_joint
from gecodec.train.photos import load_framed

data_option = click.option(
    "--data",
    type=click.Path(path_type=Path),
    required=True,
    help="Folder of images (searched recursively), or a .tar/.zip of them.",
)
limit_option = click.option("--limit", type=click.IntRange(1), default=None, help="Use only the first N images.")
device_option = click.option("--device", default=None, help="cpu, cuda or cuda:N. Default: CUDA when available.")
resume_option = click.option("--resume", is_flag=True, help="Continue the run in the output folder.")


@click.group()
def train() -> None:
    """Train models: `gec train gan`, then `gec train encoder` (which exports a bundle); or `gec train joint`
    (G, EN and the decoder together); `gec train eval`."""


def given(**values: Any) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def gan_config(stored: dict | None, generator: dict, loss: str | None, d_channels: int | None, training: dict) -> GanTrainConfig:
    """The run's config: the checkpoint's (when resuming) or the defaults, with the options given on top."""
    base = GanTrainConfig.from_dict(stored) if stored else GanTrainConfig()
    g = dataclasses.replace(base.generator, **generator)
    loss = loss or base.loss
    discriminator = base.discriminator
    if generator or d_channels or loss != base.loss:  # rebuild D to fit
        channels = d_channels or (g.channels if loss == "began" else ConvDiscriminatorConfig.channels)
        discriminator = (
            DiscriminatorConfig(g.image_size, g.latent_dim, channels)
            if loss == "began"
            else ConvDiscriminatorConfig(g.image_size, channels)
        )
    return dataclasses.replace(base, generator=g, loss=loss, discriminator=discriminator, **training)


@train.command()
@data_option
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Run folder (checkpoint, log, samples).")
@click.option(
    "--size", type=int, default=None, help=f"Image size, 8 * 2^k [default: {GeneratorConfig.image_size}]."
)
@click.option("--arch", type=click.Choice(ARCHITECTURES), default=None, help=f"Generator [default: {GeneratorConfig.arch}].")
@click.option(
    "--loss", type=click.Choice(LOSSES), default=None, help=f"GAN loss and its discriminator [default: {GanTrainConfig.loss}]."
)
@click.option("--latent", type=click.IntRange(1), default=None, help=f"Latent size [default: {GeneratorConfig.latent_dim}].")
@click.option(
    "--channels", type=click.IntRange(1), default=None, help=f"Generator width n [default: {GeneratorConfig.channels}]."
)
@click.option("--d-channels", type=click.IntRange(1), default=None, help="Discriminator width [default: G's].")
@click.option("--prior", type=click.Choice(["uniform", "normal"]), default=None, help="Latent prior [default: uniform].")
@click.option("--batch-size", type=click.IntRange(1), default=None, help=f"[default: {GanTrainConfig.batch_size}]")
@click.option(
    "--lr",
    type=click.FloatRange(0, min_open=True),
    default=None,
    help=f"[default: {GanTrainConfig.lr}, halved every {GanTrainConfig.lr_halve_every} steps down to {GanTrainConfig.lr_floor}]",
)
@click.option("--steps", type=click.IntRange(1), default=None, help=f"[default: {GanTrainConfig.steps}]")
@click.option("--minutes", type=click.FloatRange(0, min_open=True), default=None, help="Stop after this much training time.")
@click.option(
    "--sample-every",
    type=click.IntRange(1),
    default=None,
    help=f"Steps between sample grids [default: {GanTrainConfig.sample_every}].",
)
@click.option("--checkpoint-every", type=click.IntRange(1), default=None, help=f"[default: {GanTrainConfig.checkpoint_every}]")
@click.option(
    "--log-every",
    type=click.IntRange(1),
    default=None,
    help=f"Steps between log.jsonl lines [default: {GanTrainConfig.log_every}].",
)
@click.option("--seed", type=click.IntRange(0), default=None, help=f"[default: {GanTrainConfig.seed}]")
@limit_option
@resume_option
@device_option
@click.option("--amp/--no-amp", default=True, show_default=True, help="bfloat16 autocast on CUDA.")
def gan(
    data: Path,
    out: Path,
    size: int | None,
    arch: str | None,
    loss: str | None,
    latent: int | None,
    channels: int | None,
    d_channels: int | None,
    prior: str | None,
    batch_size: int | None,
    lr: float | None,
    steps: int | None,
    minutes: float | None,
    sample_every: int | None,
    checkpoint_every: int | None,
    log_every: int | None,
    seed: int | None,
    limit: int | None,
    resume: bool,
    device: str | None,
    amp: bool,
) -> None:
    """Train a generator G on a folder of images. Several GPUs: torchrun --nproc_per_node N -m gecodec.cli train gan ..."""
    stored = load_checkpoint(out / "checkpoint.pt")["config"] if resume else None
    try:
        config = gan_config(
            stored,
            given(image_size=size, arch=arch, latent_dim=latent, channels=channels, latent_prior=prior),
            loss,
            d_channels,
            given(
                batch_size=batch_size,
                lr=lr,
                steps=steps,
                minutes=minutes,
                sample_every=sample_every,
                checkpoint_every=checkpoint_every,
                log_every=log_every,
                seed=seed,
            ),
        )
    except ValueError as exc:
        raise OptionError(str(exc)) from None
    runtime = setup_runtime(device, amp)
    images = load_images(data, config.generator.image_size, limit=limit)
    path = train_gan(images, out, config, resume=resume, runtime=runtime)
    if runtime.is_main:
        click.echo(f"checkpoint: {path}; samples in {out / 'samples'}")


@train.command()
@click.option("--gan", "gan_dir", type=click.Path(path_type=Path), required=True, help="Run folder of `gec train gan`.")
@data_option
@click.option(
    "--kind",
    type=click.Choice(["ge1", "ge0"]),
    default="ge1",
    show_default=True,
    help="ge1: train a conv encoder. ge0: take the BEGAN discriminator's encoder as it is.",
)
@click.option(
    "--m", type=click.IntRange(1), default=None, help=f"Measurements [default: {EncoderConfig.m}; ge0: D's embedding size]."
)
@click.option(
    "--depth", type=click.IntRange(1), default=None, help=f"GE1 stride-2 conv layers d [default: {EncoderConfig.depth}]."
)
@click.option(
    "--filters", type=click.IntRange(1), default=None, help=f"GE1 filters f (layer i has i*f) [default: {EncoderConfig.filters}]."
)
@click.option(
    "--generated-fraction",
    type=click.FloatRange(0, 1),
    default=None,
    help=f"Share of each batch generated by G [default: {EncoderTrainConfig.generated_fraction}].",
)
@click.option("--batch-size", type=click.IntRange(1), default=None, help=f"[default: {EncoderTrainConfig.batch_size}]")
@click.option(
    "--lr",
    type=click.FloatRange(0, min_open=True),
    default=None,
    help=f"Peak of the cosine schedule [default: {EncoderTrainConfig.lr}].",
)
@click.option("--steps", type=click.IntRange(1), default=None, help=f"[default: {EncoderTrainConfig.steps}]")
@click.option("--minutes", type=click.FloatRange(0, min_open=True), default=None, help="Training time budget.")
@click.option("--val", type=click.Path(path_type=Path), default=None, help="Validation images for the model card.")
@click.option("--val-images", type=click.IntRange(0), default=32, show_default=True)
@click.option("--name", default=None, help="Bundle name [default: RUN-KIND-mM].")
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Bundle file [default: GAN_DIR/NAME.safetensors].")
@click.option("--full-precision", is_flag=True, help="Store float32 weights (default: float16, half the size).")
@click.option("-f", "--force", is_flag=True, help="Overwrite the bundle file.")
@limit_option
@resume_option
@device_option
def encoder(
    gan_dir: Path,
    data: Path,
    kind: str,
    m: int | None,
    depth: int | None,
    filters: int | None,
    generated_fraction: float | None,
    batch_size: int | None,
    lr: float | None,
    steps: int | None,
    minutes: float | None,
    val: Path | None,
    val_images: int,
    name: str | None,
    out: Path | None,
    full_precision: bool,
    force: bool,
    limit: int | None,
    resume: bool,
    device: str | None,
) -> None:
    """Make the encoder EN for a trained GAN and export G and EN as a model bundle."""
    gan_state = load_checkpoint(gan_dir / "checkpoint.pt")
    generator = ema_generator(gan_state)
    size = generator.config.image_size
    ae_decoder = None
    if kind == "ge0":
        en = ge0_encoder(gan_state)
        if m is not None and m != en.config.m:
            raise OptionError(f"GE0's m is the discriminator's embedding size, {en.config.m}; --m {m} does not match")
        m, summary = en.config.m, {"kind": "ge0", "config": en.config.to_dict(), "note": "BEGAN discriminator's encoder"}
    m = m or EncoderConfig.m
    name = name or f"{gan_dir.resolve().name}-{kind}-m{m}"
    out = out or gan_dir / f"{name}{BUNDLE_SUFFIX}"
    check_output(out, force)
    train_images = load_images(data, size, limit=limit)
    if kind == "ge1":
        defaults = EncoderConfig()
        config = EncoderTrainConfig(
            encoder=EncoderConfig(size, m, depth or defaults.depth, filters or defaults.filters),
            **given(generated_fraction=generated_fraction, batch_size=batch_size, lr=lr, steps=steps, minutes=minutes),
        )
        en, ae_decoder, summary = train_encoder(
            train_images, generator, config, gan_dir / f"encoder-{name}", resume=resume, runtime=Runtime(resolve_device(device))
        )
    val_data = to_float(load_images(val, size, limit=val_images)) if val is not None and val_images else None
    card = training_card(gan_state, str(data), len(train_images), summary)
    bundle = export_bundle(out, name, generator, en, train_images, card, ae_decoder, val_data, half=not full_precision)
    click.echo(f"wrote {out} (model {name}, id {bundle.model_hex}, m {bundle.m})")
    if bundle.card["val"]:
        click.echo(format_figures(bundle.card["val"]))


def format_figures(figures: dict) -> str:
    rows = [
        ("GE, real images", "ge_real"),
        ("GE, generated images", "ge_generated"),
        ("generator floor (pixel fit)", "generator_floor_real"),
        ("autoencoder decoder", "ae_decoder_real"),
    ]
    lines = [f"{figures['images']} images, {figures['bits']} bits"]
    lines += [
        f"  {label:<30} MSE {figures[key]['mse']:.5f}  PSNR {figures[key]['psnr']:.2f} dB"
        for label, key in rows
        if key in figures
    ]
    return "\n".join(lines)


@train.command("eval")
@click.argument("model")
@data_option
@click.option("--n", type=click.IntRange(1), default=32, show_default=True, help="Validation images to use.")
@click.option("--bits", type=click.IntRange(2, 12), default=8, show_default=True)
@click.option("--iters", type=click.IntRange(0), default=None, help="Adam iterations [default: the model's schedule].")
@click.option("--restarts", type=click.IntRange(1), default=None, help="[default: the model's schedule]")
@click.option("--json", "json_path", type=click.Path(path_type=Path), default=None, help="Also write the figures here.")
@device_option
def evaluate(
    model: str, data: Path, n: int, bits: int, iters: int | None, restarts: int | None, json_path: Path | None, device: str | None
) -> None:
    """Validation figures of a bundle: GE on real and generated images, the generator's floor, the AE decoder."""
    bundle = load_model(model)
    chosen = given(iters=iters, restarts=restarts)
    images = to_float(load_images(data, bundle.image_size, limit=n))
    figures = evaluate_bundle(bundle, images, bits=bits, options=dataclasses.replace(bundle.decode, **chosen),
                              floor_options=dataclasses.replace(SearchOptions(), **chosen), device=device)
    click.echo(f"{bundle.name} ({bundle.model_hex}): " + format_figures(figures))
    if json_path is not None:
        write_bytes_atomic(json_path, (json.dumps(figures, indent=1) + "\n").encode(), force=True)


@train.command()
@data_option
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Run folder (checkpoint, log, samples).")
@click.option("--init-from", default=None, help="Start G and EN from this bundle (name, id or path); sizes follow it.")
@click.option("--size", type=int, default=None, help=f"Image size, 8 * 2^k [default: {GeneratorConfig.image_size}].")
@click.option("--m", "--measurements", "m", type=click.IntRange(1), default=None,
              help=f"Measurements [default: {EncoderConfig.m}]; under torchrun, spell it --measurements.")
@click.option("--latent", type=click.IntRange(1), default=None, help=f"Latent size [default: {GeneratorConfig.latent_dim}].")
@click.option("--channels", type=click.IntRange(1), default=None, help="Generator width [default: 256, DCGAN-style].")
@click.option("--solver-steps", type=click.IntRange(0, 64), default=None,
              help=f"K, the decoder's unrolled gradient steps [default: {SolverConfig.steps}].")
@click.option("--start", type=click.Choice(INITS), default=None,
              help=f"The decoder's start: learned from the measurements, or a prior draw [default: {SolverConfig.init}].")
@click.option("--bits", type=click.IntRange(2, 12), default=None, help=f"Quantization noise of this depth [default: {JointTrainConfig.bits}].")
@click.option("--qualities", type=(click.IntRange(0, 100), click.IntRange(0, 100)), default=None,
              help="Instead of --bits: the quantization noise of entropy-coded files, at a quality drawn per image "
                   "from LOW to HIGH (a model good over the whole --quality range).")
@click.option("--consistency", type=click.FloatRange(0), default=None,
              help=f"Weight of the measurement-consistency term [default: {JointTrainConfig.consistency_weight}].")
@click.option("--prior-weight", type=click.FloatRange(0), default=None,
              help=f"Weight of the latent prior term [default: {JointTrainConfig.prior_weight}].")
@click.option("--prior", type=click.Choice(PRIORS), default=None,
              help=f"The latent prior term: moments (mean and variance) or mmd [default: {JointTrainConfig.prior}].")
@click.option("--adversarial", type=click.FloatRange(0), default=None,
              help=f"Weight of the adversarial term; 0: none [default: {JointTrainConfig.adversarial_weight}].")
@click.option("--generated-fraction", type=click.FloatRange(0, 1, max_open=True), default=None,
              help=f"Share of each batch drawn from G [default: {JointTrainConfig.generated_fraction}].")
@click.option("--photos", type=click.Path(path_type=Path), default=None,
              help="A second source: a folder of face crops framed from photos by python -m gecodec.train.photos.")
@click.option("--photo-share", type=click.FloatRange(0, 1, min_open=True), default=None,
              help="Share of each batch's real faces drawn from --photos.")
@click.option("--augment", multiple=True, metavar="KIND=P",
              help=f"Apply an augmentation to each real face with probability P; kinds: {', '.join(AUGMENTATIONS)}.")
@click.option("--batch-size", type=click.IntRange(2), default=None, help=f"[default: {JointTrainConfig.batch_size}]")
@click.option("--lr", type=click.FloatRange(0, min_open=True), default=None, help=f"[default: {JointTrainConfig.lr}]")
@click.option("--steps", type=click.IntRange(1), default=None, help=f"Training steps [default: {JointTrainConfig.steps}].")
@click.option("--minutes", type=click.FloatRange(0, min_open=True), default=None, help="Stop after this much training time.")
@click.option("--sample-every", type=click.IntRange(1), default=None, help=f"[default: {JointTrainConfig.sample_every}]")
@click.option("--checkpoint-every", type=click.IntRange(1), default=None, help=f"[default: {JointTrainConfig.checkpoint_every}]")
@click.option("--log-every", type=click.IntRange(1), default=None, help=f"[default: {JointTrainConfig.log_every}]")
@click.option("--seed", type=click.IntRange(0), default=None, help=f"[default: {JointTrainConfig.seed}]")
@click.option("--bundle", type=click.Path(path_type=Path), default=None,
              help="After training, export the EMA model to this bundle file.")
@click.option("--name", default=None, help="Bundle name [default: the run folder's name].")
@click.option("--decode-iters", type=click.IntRange(0), default=0, show_default=True,
              help="The bundle's Adam refinement iterations after the solver's steps.")
@click.option("--decode-lr", type=click.FloatRange(0, min_open=True), default=0.05, show_default=True,
              help="The bundle's Adam refinement learning rate.")
@click.option("--val", type=click.Path(path_type=Path), default=None, help="Validation images for the model card.")
@click.option("--val-images", type=click.IntRange(0), default=32, show_default=True)
@click.option("-f", "--force", is_flag=True, help="Overwrite the bundle file.")
@limit_option
@resume_option
@device_option
@click.option("--amp/--no-amp", default=True, show_default=True, help="bfloat16 autocast on CUDA.")
def joint(data: Path, out: Path, init_from: str | None, size: int | None, m: int | None, latent: int | None, channels: int | None,
          solver_steps: int | None, start: str | None, bits: int | None, qualities: tuple[int, int] | None,
          consistency: float | None,
          prior_weight: float | None, prior: str | None, adversarial: float | None, generated_fraction: float | None,
          photos: Path | None, photo_share: float | None, augment: tuple[str, ...],
          batch_size: int | None, lr: float | None, steps: int | None, minutes: float | None,
          sample_every: int | None, checkpoint_every: int | None, log_every: int | None, seed: int | None,
          bundle: Path | None, name: str | None, decode_iters: int, decode_lr: float, val: Path | None,
          val_images: int, force: bool, limit: int | None, resume: bool, device: str | None, amp: bool) -> None:
    """Train G, EN and the decoder's start and steps together, through the decoder's own search (DCS).

    Several GPUs: torchrun --nproc_per_node N -m gecodec.cli train joint ...
    """
    if bundle is not None:
        check_output(bundle, force)
    stored = load_checkpoint(out / "checkpoint.pt")["config"] if resume else None
    try:
        config = joint_config(
            stored, init_from, given(m=m, image_size=size), given(latent_dim=latent, channels=channels, image_size=size),
            given(steps=solver_steps, init=start),
            given(bits=bits, qualities=qualities, consistency_weight=consistency, prior_weight=prior_weight, prior=prior,
                  adversarial_weight=adversarial, generated_fraction=generated_fraction, photo_share=photo_share,
                  augment=parse_augment(augment) if augment else None, batch_size=batch_size, lr=lr,
                  steps=steps, minutes=minutes, sample_every=sample_every, checkpoint_every=checkpoint_every,
                  log_every=log_every, seed=seed),
        )
    except ValueError as exc:
        raise OptionError(str(exc)) from None
    runtime = setup_runtime(device, amp)
    images = load_images(data, config.generator.image_size, limit=limit)
    framed = load_framed(photos, "train") if photos is not None else None
    path = train_joint(images, out, config, photos=framed, resume=resume, runtime=runtime)
    if not runtime.is_main:
        return
    click.echo(f"checkpoint: {path}; samples in {out / 'samples'}")
    if bundle is not None:
        val_data = to_float(load_images(val, config.generator.image_size, limit=val_images)) \
            if val is not None and val_images else None
        decode = SearchOptions(iters=decode_iters, restarts=1, lr=decode_lr)
        made = export_joint(load_checkpoint(path), bundle, name or out.resolve().name, images, str(data), decode, val_data)
        click.echo(f"wrote {bundle} (model {made.name}, id {made.model_hex}, m {made.m})")
        if made.card["val"]:
            click.echo(format_figures(made.card["val"]))


def parse_augment(items: tuple[str, ...]) -> dict[str, float]:
    """KIND=P pairs (--augment) as a dict; check_augment judges the kinds and values."""
    probabilities = {}
    for item in items:
        kind, _, value = item.partition("=")
        try:
            probabilities[kind] = float(value)
        except ValueError:
            raise OptionError(f"--augment {item!r} is not KIND=P, with P a probability") from None
    return probabilities


def joint_config(stored: dict | None, init_from: str | None, encoder: dict, generator: dict, solver: dict,
                 training: dict) -> JointTrainConfig:
    """The run's config: the checkpoint's (when resuming), else the defaults or the sizes of --init-from's bundle,
    with the options given on top."""
    if stored:
        base = JointTrainConfig.from_dict(stored)
    elif init_from is not None:
        source = load_model(init_from)  # a joint model's solver comes along with its G and EN
        solver_config = source.solver.config if source.solver is not None else SolverConfig(
            m=source.m, latent_dim=source.generator.config.latent_dim)
        base = JointTrainConfig(generator=source.generator.config, encoder=source.encoder.config, init_from=init_from,
                                solver=solver_config)
    else:
        base = JointTrainConfig()
    g = dataclasses.replace(base.generator, **generator)
    en = dataclasses.replace(base.encoder, **encoder)
    solver_config = dataclasses.replace(base.solver, m=en.m, latent_dim=g.latent_dim, **solver)
    return dataclasses.replace(base, generator=g, encoder=en, solver=solver_config, **training)
