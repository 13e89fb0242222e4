"""Export trained networks to a model bundle: quantizer calibration, validation figures and a model card."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from gecodec.bundle import Bundle, load_bundle, save_bundle
from gecodec.entropy import fit_entropy_model
from gecodec.models import AutoencoderDecoder, Generator
from gecodec.models.solver import LatentSolver
from gecodec.search import SearchOptions, latent_search
from gecodec.train.encoder import calibrate, measure
from gecodec.train.evaluate import DEFAULT_QUALITY_RULE, default_quality, evaluate_bundle, quality_curve

CALIBRATION_IMAGES = 10_000


def search_iteration_flops(bundle: Bundle, restarts: int = 2) -> int:
    """FLOPs of one search iteration (G and EN, forward and backward) for one image with ``restarts`` restarts."""
    target = torch.zeros(1, bundle.m)
    with FlopCounterMode(display=False) as counter:
        latent_search(bundle.generator, bundle.encoder, target, [0], SearchOptions(iters=1, restarts=restarts))
    return counter.get_total_flops()


def decode_flops(bundle: Bundle) -> int:
    """About the FLOPs of one image's decode with the bundle's schedule: each solver step and each Adam
    iteration is one forward and backward pass of G and EN per restart (the initialiser is negligible)."""
    steps = bundle.decode.iters + (bundle.solver.config.steps if bundle.solver is not None else 0)
    return steps * search_iteration_flops(bundle, bundle.decode.restarts)


def export_bundle(out: str | Path, name: str, generator: Generator, encoder: nn.Module, train: torch.Tensor,
                  card: dict, ae_decoder: AutoencoderDecoder | None = None, val: torch.Tensor | None = None,
                  half: bool = True, seed: int = 0, solver: LatentSolver | None = None,
                  decode: SearchOptions = SearchOptions(), entropy: bool = False) -> Bundle:
    """Calibrate the quantizer (and with ``entropy``, fit an entropy model) on up to 10,000 training images
    (uint8), write the bundle, and, given val images (float in [-1, 1]), measure the figures of the bundle as
    stored and add them and the decode cost to the card. With an entropy model and val images, the default
    quality is chosen from the validation rate-distortion curve (DEFAULT_QUALITY_RULE).
    """
    pick = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))[:CALIBRATION_IMAGES]
    outputs = measure(encoder, train[pick])
    lo, hi = calibrate(outputs)
    # Save, evaluate the bundle as shipped (half precision), then save it again with its card:
    # the tensors, and so the id, do not change.
    save_bundle(Bundle(name=name, generator=generator, encoder=encoder, calibration_lo=lo, calibration_hi=hi,
                       ae_decoder=ae_decoder, solver=solver, decode=decode,
                       entropy=fit_entropy_model(outputs) if entropy else None), out, half=half)
    bundle = load_bundle(out)
    figures = evaluate_bundle(bundle, val) if val is not None and len(val) else {}
    rate: dict = {}
    if bundle.entropy is not None:
        rate = {"entropy_model": f"gaussian tables fitted to EN outputs on {len(pick)} training images"}
        if figures:
            curve = quality_curve(bundle, val)
            bundle.entropy = dataclasses.replace(bundle.entropy, default_quality=default_quality(curve))
            rate |= {"val_curve": curve, "default_quality": bundle.entropy.default_quality,
                     "default_rule": DEFAULT_QUALITY_RULE}
    generator_card, encoder_card = card.get("generator", {}), card.get("encoder", {})
    summary = (f"{bundle.image_size}x{bundle.image_size}; G {generator_card.get('steps')} steps "
               f"({generator_card.get('loss')} loss, {generator_card.get('minutes')} min); "
               f"{encoder_card.get('kind', bundle.encoder_kind).upper()} encoder, m = {bundle.m}")
    if "ge_real" in figures:
        summary += f"; val GE PSNR {figures['ge_real']['psnr']} dB on {figures['images']} images"
    bundle.card = {
        "summary": summary,
        **card,
        "calibration": f"per-dimension 0.05% and 99.95% quantiles of EN outputs on {len(pick)} training images",
        "val": figures,
        "decode_cost": {"flops_per_search_iteration": search_iteration_flops(bundle),
                        "flops_per_image": decode_flops(bundle),
                        "seconds_per_image_cpu": figures.get("seconds_per_image_cpu")},
        "decode_schedule": {**vars(bundle.decode), "solver_steps": solver.config.steps if solver else 0,
                            "solver_start": solver.config.init if solver else "prior"},
        **({"rate": rate} if rate else {}),
    }
    save_bundle(bundle, out, half=half)
    return load_bundle(out)


def training_card(gan_state: dict, data: str, images: int, encoder: dict) -> dict:
    """The model card's training part, from a GAN checkpoint and the encoder's own summary."""
    config = gan_state["config"]
    gan_minutes = gan_state["elapsed"] / 60
    return {
        "data": f"{images} images from {data}",
        "image_size": config["generator"]["image_size"],
        "generator": {"config": config["generator"], "loss": config.get("loss", "nonsaturating"),
                      "steps": gan_state["step"], "batch_size": config["batch_size"], "minutes": round(gan_minutes, 1),
                      "hardware": gan_state.get("hardware"),
                      "ema": "exported weights are the exponential moving average of G"},
        "encoder": encoder,
        "training_minutes": round(gan_minutes + encoder.get("minutes", 0.0), 1),
    }
