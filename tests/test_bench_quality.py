"""SSIM and MS-SSIM on 8-bit RGB, against scikit-image's reference SSIM."""

from __future__ import annotations

import pytest
import torch

from bench.quality import ms_ssim, ms_ssim_supported, ssim, to_8bit
from gecodec.errors import OptionError


def images(size: int, seed: int, count: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """Random images in [-1, 1] and noisy copies of them."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(count, 3, size, size, generator=g) * 2 - 1
    return x, (x + 0.3 * torch.randn(x.shape, generator=g)).clamp(-1, 1)


def test_ssim_of_identical_images_is_one() -> None:
    x, _ = images(16, seed=0)
    assert torch.allclose(ssim(x, x), torch.ones(2, dtype=torch.float64), atol=1e-12)


@pytest.mark.parametrize("size", [16, 32])
def test_ssim_matches_scikit_image(size: int) -> None:
    metrics = pytest.importorskip("skimage.metrics")
    x, y = images(size, seed=size)
    a, b = to_8bit(x).numpy(), to_8bit(y).numpy()
    options = {"gaussian_weights": True, "sigma": 1.5, "use_sample_covariance": False, "data_range": 255, "channel_axis": 0}
    expected = [metrics.structural_similarity(a[i], b[i], **options) for i in range(len(a))]
    assert torch.allclose(ssim(x, y), torch.tensor(expected, dtype=torch.float64), atol=1e-4)


def test_ssim_refuses_images_smaller_than_its_window() -> None:
    x, _ = images(8, seed=0)
    with pytest.raises(OptionError, match="8x8"):
        ssim(x, x)


def test_ms_ssim_refuses_small_images() -> None:
    assert not ms_ssim_supported(64, 64)
    assert not ms_ssim_supported(160, 400)
    assert ms_ssim_supported(161, 161)
    x, _ = images(64, seed=0, count=1)
    with pytest.raises(OptionError, match=r"161x161.*64x64"):
        ms_ssim(x, x)


def test_ms_ssim_is_one_for_identical_images_and_less_for_noisy_ones() -> None:
    x, y = images(176, seed=1, count=1)
    assert torch.allclose(ms_ssim(x, x), torch.ones(1, dtype=torch.float64), atol=1e-12)
    score = ms_ssim(x, y).item()
    assert 0 < score < 1
