"""Validation figures for a bundle: GE on real and generated faces, the generator's floor, the AE decoder."""

from __future__ import annotations

import time

import torch

from gecodec.bundle import Bundle
from gecodec.codec import Codec
from gecodec.metrics import mse, psnr_8bit
from gecodec.quantize import dequantize, quantize
from gecodec.search import SearchOptions, pixel_fit
from gecodec.train.gan import sample_latent


def _summary(decoded: torch.Tensor, reference: torch.Tensor) -> dict[str, float]:
    return {"mse": round(float(mse(decoded, reference).mean()), 5), "psnr": round(float(psnr_8bit(decoded, reference).mean()), 2)}


CURVE_QUALITIES = tuple(range(0, 101, 10))
DEFAULT_QUALITY_RULE = "the lowest quality whose validation PSNR is within 0.1 dB of the best quality's"


def quality_curve(bundle: Bundle, real: torch.Tensor, qualities: tuple[int, ...] = CURVE_QUALITIES,
                  batch_size: int = 32, device: str | None = "cpu") -> list[dict]:
    """Mean file size and figures of entropy-coded files of ``real`` at each quality (the bundle's schedule)."""
    codec = Codec(bundle, device)
    rows = []
    for quality in qualities:
        files = [f for i in range(0, len(real), batch_size)
                 for f in codec.encode_batch(real[i : i + batch_size], quality=quality)]
        decoded = torch.cat([codec.decode_batch(files[i : i + batch_size]) for i in range(0, len(files), batch_size)])
        rows.append({"quality": quality, "bytes": round(sum(map(len, files)) / len(files), 1),
                     **_summary(decoded, real)})
    return rows


def default_quality(curve: list[dict], tolerance_db: float = 0.1) -> int:
    """DEFAULT_QUALITY_RULE, on a quality_curve."""
    best = max(row["psnr"] for row in curve)
    return min(row["quality"] for row in curve if row["psnr"] >= best - tolerance_db)


def evaluate_bundle(bundle: Bundle, real: torch.Tensor, bits: int = 8, options: SearchOptions | None = None,
                    floor_options: SearchOptions = SearchOptions(), batch_size: int = 32, seed: int = 0,
                    device: str | None = "cpu") -> dict:
    """Figures on real images (float, in [-1, 1]) and as many generated ones, decoded with ``options`` (default:
    the bundle's schedule). The floor's pixel-space search uses ``floor_options`` (default: the GE paper's).

    The seconds per image are measured on ``device`` (the model card's figure is for the CPU).
    """
    options = options or bundle.decode
    codec = Codec(bundle, device)
    with torch.no_grad():
        z = sample_latent(len(real), bundle.generator.config, torch.Generator().manual_seed(seed))
        generated = bundle.generator(z).clamp(-1, 1)
    figures: dict = {"images": len(real), "bits": bits, "search": vars(options).copy()}
    started = time.monotonic()
    codec.decode_batch(codec.encode_batch(real[:1], bits=bits), **vars(options))
    figures[f"seconds_per_image_{codec.device.type}"] = round(time.monotonic() - started, 2)  # one image, batch of 1
    for name, images in (("real", real), ("generated", generated)):
        decoded = torch.cat([
            codec.decode_batch(codec.encode_batch(images[i : i + batch_size], bits=bits), **vars(options))
            for i in range(0, len(images), batch_size)
        ])
        figures[f"ge_{name}"] = _summary(decoded, images)
    # The floor: the best pixel-space fit min_z ||G(z) - x||^2, which no measurement can beat with this G.
    floor = torch.cat([
        pixel_fit(codec.generator, real[i : i + batch_size], list(range(i, i + len(real[i : i + batch_size]))),
                  floor_options)
        for i in range(0, len(real), batch_size)
    ])
    figures["generator_floor_real"] = _summary(floor, real)
    if bundle.ae_decoder is not None:
        with torch.no_grad():
            m = bundle.encoder(real)
            m_hat = dequantize(quantize(m, bundle.calibration_lo, bundle.calibration_hi, bits),
                               bundle.calibration_lo, bundle.calibration_hi, bits)
            figures["ae_decoder_real"] = _summary(bundle.ae_decoder(m_hat), real)
    return figures
