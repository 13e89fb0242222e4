"""Distortion measures, in the project's conventions.

MSE: the GE paper's, the mean over all values of images with pixels in [-1, 1].
PSNR: on 8-bit RGB (both images rounded to 0..255 first), per image.
"""

from __future__ import annotations

import numpy as np
import torch

from gecodec.imageio import tensor_to_pixels


def mse(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-image MSE of (B, 3, H, W) tensors in [-1, 1]."""
    return (x.float().clamp(-1, 1) - y.float().clamp(-1, 1)).pow(2).flatten(1).mean(1)


def psnr_8bit(x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """Per-image PSNR in dB of (B, 3, H, W) tensors in [-1, 1], after rounding both to 8-bit RGB."""
    a = tensor_to_pixels(x).astype(np.float64).reshape(len(x), -1)
    b = tensor_to_pixels(y).astype(np.float64).reshape(len(y), -1)
    err = np.maximum(((a - b) ** 2).mean(1), 1e-10)
    return 10 * np.log10(255.0**2 / err)
