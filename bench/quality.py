"""Perceptual image quality measures for the rate-distortion benchmark: SSIM and MS-SSIM.

Both are computed per image on 8-bit RGB (pixels in [-1, 1] rounded to 0..255 first, as gecodec.metrics.psnr_8bit
does), so results are comparable with published numbers for 8-bit images: data range 255, an 11x11 Gaussian
window with sigma 1.5, K1 = 0.01, K2 = 0.03, and 'valid' filtering (Wang et al. 2004; scikit-image's
structural_similarity with gaussian_weights=True, use_sample_covariance=False). MSE and PSNR are in gecodec.metrics.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from gecodec.errors import OptionError

WINDOW = 11
SIGMA = 1.5
K1, K2 = 0.01, 0.03
DATA_RANGE = 255.0
# Wang, Simoncelli and Bovik 2003, from the finest scale to the coarsest.
MS_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
# The coarsest of the five scales must still hold one window after four halvings.
MS_MIN_SIDE = (WINDOW - 1) * 2 ** (len(MS_WEIGHTS) - 1) + 1


def to_8bit(x: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) in [-1, 1] -> float64 8-bit values 0..255, rounded as the images would be stored."""
    return ((x.detach().double().clamp(-1, 1) + 1) * 127.5).round()


def gaussian_window(size: int = WINDOW, sigma: float = SIGMA) -> torch.Tensor:
    """The normalised 1-D Gaussian (size,) that the separable SSIM window is made of."""
    offsets = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    weights = torch.exp(-(offsets**2) / (2 * sigma**2))
    return weights / weights.sum()


def blur_valid(maps: torch.Tensor) -> torch.Tensor:
    """Gaussian-weighted local means of (N, H, W) maps, only where the window fits: (N, H - 10, W - 10)."""
    window = gaussian_window().to(maps.device)
    planes = maps[:, None]
    planes = F.conv2d(planes, window.view(1, 1, 1, -1))
    return F.conv2d(planes, window.view(1, 1, -1, 1))[:, 0]


def ssim_maps(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Local SSIM and its contrast-structure part for 8-bit (B, C, H, W) images, each (B, C, H - 10, W - 10)."""
    batch, channels, height, width = a.shape
    stacked = torch.stack([a, b, a * a, b * b, a * b]).reshape(-1, height, width)
    mean_a, mean_b, mean_aa, mean_bb, mean_ab = blur_valid(stacked).reshape(5, batch, channels, height - WINDOW + 1, -1)
    var_a = mean_aa - mean_a**2
    var_b = mean_bb - mean_b**2
    cov = mean_ab - mean_a * mean_b
    c1 = (K1 * DATA_RANGE) ** 2
    c2 = (K2 * DATA_RANGE) ** 2
    contrast_structure = (2 * cov + c2) / (var_a + var_b + c2)
    luminance = (2 * mean_a * mean_b + c1) / (mean_a**2 + mean_b**2 + c1)
    return luminance * contrast_structure, contrast_structure


def ssim(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-image SSIM (B,), float64, of (B, 3, H, W) images in [-1, 1]: the mean over channels and pixels."""
    height, width = x.shape[-2:]
    if min(height, width) < WINDOW:
        raise OptionError(f"SSIM needs images at least {WINDOW}x{WINDOW} pixels; got {width}x{height}")
    return ssim_maps(to_8bit(x), to_8bit(y))[0].mean((1, 2, 3))


def ms_ssim_supported(height: int, width: int) -> bool:
    """Whether MS-SSIM's coarsest scale is still at least one window wide for an image of this size."""
    return min(height, width) >= MS_MIN_SIDE


def halve(images: torch.Tensor) -> torch.Tensor:
    """2x2 average pooling; an odd side is padded by one zero pixel at both ends, as pytorch-msssim does."""
    height, width = images.shape[-2:]
    return F.avg_pool2d(images, kernel_size=2, padding=(height % 2, width % 2))


def ms_ssim(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-image 5-scale MS-SSIM (B,), float64, of (B, 3, H, W) images in [-1, 1], on 8-bit RGB.

    The product over scales of the contrast-structure means (SSIM at the coarsest scale), each raised to its
    weight, per channel, then averaged over channels. Negative factors are set to 0 (as TensorFlow and
    pytorch-msssim do), since a fractional power of a negative number is undefined.
    """
    height, width = x.shape[-2:]
    if not ms_ssim_supported(height, width):
        raise OptionError(f"MS-SSIM needs images at least {MS_MIN_SIDE}x{MS_MIN_SIDE} pixels; got {width}x{height}")
    a, b = to_8bit(x), to_8bit(y)
    result = torch.ones(a.shape[:2], dtype=torch.float64, device=a.device)
    for scale, weight in enumerate(MS_WEIGHTS):
        if scale > 0:
            a, b = halve(a), halve(b)
        similarity, contrast_structure = ssim_maps(a, b)
        coarsest = scale == len(MS_WEIGHTS) - 1
        factor = (similarity if coarsest else contrast_structure).mean((2, 3))
        result = result * factor.clamp(min=0) ** weight
    return result.mean(1)
