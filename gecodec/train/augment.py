"""Training-time changes that make crops look like users' photos: what real photos vary in (light and colour,
blur, JPEG artefacts, noise) and what the face finder leaves (small shifts, scale and turn).

Each kind is applied to a face with its own probability (``AUGMENTATIONS``), at a strength drawn per face from a
fixed range. The draws come from the caller's generator, so a run's augmentations depend on its seed alone.
"""

from __future__ import annotations

import io
import math

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from gecodec.errors import OptionError

AUGMENTATIONS = ("geometry", "light", "blur", "noise", "jpeg")
SHIFT, SCALE, TURN = 0.03, 0.06, 6.0  # at most 3% of the side, 6% larger or smaller, 6 degrees
BRIGHTNESS, CONTRAST, SATURATION, TINT = 0.15, 0.25, 0.35, 0.06  # [-1, 1] units, and relative factors
BLUR_SIGMA = (0.3, 1.0)  # pixels
JPEG_QUALITY = (20, 85)
NOISE_SIGMA = (0.01, 0.06)  # [-1, 1] units


def check_augment(probabilities: dict[str, float]) -> None:
    """Refuse unknown kinds and probabilities outside [0, 1]."""
    unknown = sorted(set(probabilities) - set(AUGMENTATIONS))
    if unknown:
        raise OptionError(f"unknown augmentation {', '.join(unknown)} (choose from {', '.join(AUGMENTATIONS)})")
    bad = {kind: p for kind, p in probabilities.items() if not 0.0 <= p <= 1.0}
    if bad:
        raise OptionError(f"augmentation probabilities must be in [0, 1], got {bad}")


def augment(x: torch.Tensor, probabilities: dict[str, float], rng: torch.Generator) -> torch.Tensor:
    """A batch (N, 3, S, S) in [-1, 1] with each kind applied to each face with its probability."""
    device, x = x.device, x.detach().cpu().clone()  # the draws and the JPEG coder are on the CPU
    for kind in AUGMENTATIONS:  # the order of a camera and a coder: framing, light, optics, noise, compression
        chosen = torch.rand(len(x), generator=rng) < probabilities.get(kind, 0.0)
        if chosen.any():
            x[chosen] = _APPLY[kind](x[chosen], rng).clamp(-1, 1)
    return x.to(device)


def _uniform(n: int, low: float, high: float, rng: torch.Generator) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=rng)


def shift_scale_turn(x: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
    """A small similarity transform of each face, its edges mirrored in."""
    n = len(x)
    angle = torch.deg2rad(_uniform(n, -TURN, TURN, rng))
    scale = torch.exp(_uniform(n, -math.log1p(SCALE), math.log1p(SCALE), rng))
    shift = _uniform(2 * n, -2 * SHIFT, 2 * SHIFT, rng).view(n, 2)  # grid units span 2 per side
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def light_and_colour(x: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
    """Brightness, contrast, saturation and a colour cast."""
    n = len(x)
    shape = (n, 1, 1, 1)
    grey = x.mean(1, keepdim=True)
    x = grey + (x - grey) * (1 + _uniform(n, -SATURATION, SATURATION, rng)).view(shape)
    x = x * (1 + _uniform(3 * n, -TINT, TINT, rng)).view(n, 3, 1, 1)
    mean = x.mean((1, 2, 3), keepdim=True)
    x = mean + (x - mean) * (1 + _uniform(n, -CONTRAST, CONTRAST, rng)).view(shape)
    return x + _uniform(n, -BRIGHTNESS, BRIGHTNESS, rng).view(shape)


def blur(x: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
    """A Gaussian blur of a sigma drawn per face (a soft lens, a face out of focus, a resized photo)."""
    n, c, _, _ = x.shape
    sigma = _uniform(n, *BLUR_SIGMA, rng)
    radius = math.ceil(3 * BLUR_SIGMA[1])
    taps = torch.arange(-radius, radius + 1, dtype=x.dtype)
    kernel = torch.exp(-taps[None] ** 2 / (2 * sigma[:, None] ** 2))
    kernel = (kernel / kernel.sum(1, keepdim=True)).repeat_interleave(c, 0)  # (n * c, taps)
    flat = F.pad(x.reshape(1, n * c, *x.shape[2:]), (radius,) * 4, mode="reflect")
    flat = F.conv2d(flat, kernel[:, None, None, :], groups=n * c)
    flat = F.conv2d(flat, kernel[:, None, :, None], groups=n * c)
    return flat.view_as(x)


def jpeg(x: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
    """Each face through a JPEG coder at a quality drawn per face."""
    qualities = torch.randint(JPEG_QUALITY[0], JPEG_QUALITY[1] + 1, (len(x),), generator=rng)
    pixels = ((x.permute(0, 2, 3, 1) + 1) * 127.5).round().clamp(0, 255).byte().numpy()
    out = []
    for face, quality in zip(pixels, qualities.tolist()):
        buffer = io.BytesIO()
        Image.fromarray(face).save(buffer, "JPEG", quality=quality)
        out.append(np.asarray(Image.open(buffer).convert("RGB")))
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).to(x.dtype) / 127.5 - 1


def noise(x: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
    """Sensor noise: Gaussian, of a sigma drawn per face."""
    sigma = _uniform(len(x), *NOISE_SIGMA, rng).view(-1, 1, 1, 1).to(x.dtype)
    return x + sigma * torch.randn(x.shape, generator=rng, dtype=x.dtype)


_APPLY = {"geometry": shift_scale_turn, "light": light_and_colour, "blur": blur, "jpeg": jpeg, "noise": noise}
