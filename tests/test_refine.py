"""The refinement layer's coder (gecodec/refine.py): transform, quantization and ANS coding of residuals."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gecodec.errors import FormatError, OptionError
from gecodec.refine import LEVELS, analyse, fit_refinement, synthesise


def residuals(n: int, seed: int) -> torch.Tensor:
    """Smooth-ish residuals in [-1, 1] units: a few levels of noise with some low-frequency structure."""
    g = torch.Generator().manual_seed(seed)
    low = torch.nn.functional.interpolate(torch.randn(n, 3, 8, 8, generator=g), size=64, mode="bilinear")
    return (0.05 * low + 0.02 * torch.randn(n, 3, 64, 64, generator=g)).clamp(-1, 1)


@pytest.fixture(scope="module")
def model():
    return fit_refinement(residuals(32, 0))


def test_the_transform_is_exact_on_luma_and_averages_chroma():
    x = residuals(2, 1).double().numpy() * 127.5
    back = synthesise(analyse(x), 64)
    assert back.shape == x.shape
    luma = np.array([0.299, 0.587, 0.114])
    assert np.einsum("c,nchw->nhw", luma, back) == pytest.approx(np.einsum("c,nchw->nhw", luma, x), abs=1e-9)
    grey = np.repeat(x[:, :1], 3, axis=1)  # no chroma at all: exact
    assert synthesise(analyse(grey), 64) == pytest.approx(grey, abs=1e-9)


def test_each_quality_round_trips_and_finer_costs_more_and_errs_less(model):
    x = residuals(3, 2)
    planes = analyse(x.double().numpy() * 127.5)
    sizes, errors = [], []
    for level in (0, LEVELS // 2, LEVELS - 1):
        integers = model.quantize(planes, level)
        one = [k[0] for k in integers]
        data = model.encode(one, level)
        assert all(np.array_equal(a, b) for a, b in zip(model.decode(data, level, 64), one))
        decoded = synthesise(model.dequantize(integers, level), 64) / 127.5
        sizes.append(len(data))
        errors.append(float(((torch.from_numpy(decoded) - x.double()) ** 2).mean()))
    assert sizes[0] < sizes[1] < sizes[2] and errors[0] > errors[1] > errors[2]


def test_a_damaged_layer_is_an_error_not_a_noisy_image(model):
    planes = analyse(residuals(1, 3).double().numpy() * 127.5)
    data = model.encode([k[0] for k in model.quantize(planes, 10)], 10)
    for bad in (data[:-1].rstrip(b"\0") or b"\1", data + b"\1", b""):
        with pytest.raises(FormatError):
            model.decode(bad, 10, 64)
    with pytest.raises(OptionError):
        model.steps(LEVELS)
