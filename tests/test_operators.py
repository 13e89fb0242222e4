"""Each operator against its definition, and every linear one against its adjoint."""

from __future__ import annotations

import math

import pytest
import torch

from gecodec.errors import OptionError
from gecodec.operators import (AdditiveNoise, Compose, Downsample, GaussianBlur, GaussianMeasurement, Identity, Mask,
                               MultiplicativeNoise, Upsample)

LINEAR = {
    "identity": Identity(),
    "gaussian": GaussianMeasurement(40, 8, seed=3),
    "box mask": Mask.box(8, 8, 2, 1, 3, 4),
    "strokes": Mask.strokes(8, 8, seed=1),
    "blur": GaussianBlur(1.2),
    "blur 3x3": GaussianBlur(2.0, size=3),
    **{f"down {m}": Downsample(2, m) for m in ("box", "bilinear", "bicubic")},
    **{f"up {m}": Upsample(2, m) for m in ("box", "bilinear", "bicubic")},
    "down then up": Compose(Downsample(2), Upsample(2)),
    "blur then mask": Compose(GaussianBlur(0.8), Mask.centred_box(8, 4)),
}


@pytest.mark.parametrize("name", LINEAR)
def test_adjoint_is_the_transpose(name: str):
    op = LINEAR[name].double()
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    sx = op(x)
    y = torch.randn(sx.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    assert torch.dot(sx.flatten(), y.flatten()).item() == pytest.approx(torch.dot(x.flatten(), op.adjoint(y).flatten()).item(), rel=1e-10)


@pytest.mark.parametrize("name", LINEAR)
def test_linear_operators_are_linear(name: str):
    op = LINEAR[name].double()
    rng = torch.Generator().manual_seed(2)
    a, b = torch.randn(2, 2, 3, 8, 8, dtype=torch.float64, generator=rng)
    torch.testing.assert_close(op(2 * a - 3 * b), 2 * op(a) - 3 * op(b))


def test_gaussian_measurement_adjoint_is_a_transpose_times_y():
    op = GaussianMeasurement(40, 8, seed=3)
    y = torch.randn(2, 40)
    torch.testing.assert_close(op.adjoint(y), (y @ op.matrix).reshape(2, 3, 8, 8))


def test_mask_zeroes_the_box_and_keeps_the_rest():
    x = torch.randn(1, 3, 6, 8)
    out = Mask.box(6, 8, x=2, y=1, w=3, h=4)(x)
    assert (out[..., 1:5, 2:5] == 0).all()
    outside = torch.ones(6, 8, dtype=torch.bool)
    outside[1:5, 2:5] = False
    assert torch.equal(out[..., outside], x[..., outside])


def test_strokes_are_seeded_and_leave_most_pixels_known():
    a, b = Mask.strokes(32, 32, seed=4), Mask.strokes(32, 32, seed=4)
    assert torch.equal(a.mask, b.mask) and not torch.equal(a.mask, Mask.strokes(32, 32, seed=5).mask)
    assert 0.3 < a.mask.mean().item() < 0.99


def test_one_mask_per_image_follows_the_search_restarts():
    masks = torch.stack([Mask.centred_box(8, 2).mask[0, 0], torch.ones(8, 8)])
    op = Mask(masks)
    x = torch.ones(4, 3, 8, 8)  # each image twice, as the search batches restarts
    out = op(x)
    assert out[0].sum() == out[1].sum() == 3 * 60 and out[2].sum() == out[3].sum() == 3 * 64
    with pytest.raises(OptionError, match="2 masks do not fit a batch of 3"):
        op(torch.ones(3, 3, 8, 8))


def test_blur_kernel_is_a_normalised_radial_gaussian():
    op = GaussianBlur(1.5)
    assert op.size == 2 * math.ceil(4.5) + 1
    kernel = op.kernel[0, 0].double()
    assert kernel.sum().item() == pytest.approx(1.0, abs=1e-6)
    centre = op.size // 2
    for (i, j), (k, l) in [((0, 3), (3, 0)), ((1, 2), (2, 1)), ((0, 2), (0, -2))]:
        assert kernel[centre + i, centre + j] == pytest.approx(kernel[centre + k, centre + l].item())
    ratio = (kernel[centre + 1, centre + 1] / kernel[centre, centre]).item()
    assert ratio == pytest.approx(math.exp(-2 / (2 * 1.5**2)), rel=1e-5)


def test_blur_of_an_impulse_is_the_kernel_and_a_constant_stays_constant():
    op = GaussianBlur(1.0)
    impulse = torch.zeros(1, 3, 15, 15)
    impulse[..., 7, 7] = 1
    torch.testing.assert_close(op(impulse)[0, 0, 7 - 3 : 7 + 4, 7 - 3 : 7 + 4], op.kernel[0, 0])
    torch.testing.assert_close(op(torch.full((1, 3, 9, 9), 0.3)), torch.full((1, 3, 9, 9), 0.3))


def test_box_downsampling_averages_blocks_and_box_upsampling_repeats():
    x = torch.arange(16.0).reshape(1, 1, 4, 4).expand(1, 3, 4, 4)
    down = Downsample(2, "box")(x)
    assert down[0, 0].tolist() == [[2.5, 4.5], [10.5, 12.5]]
    assert Upsample(2, "box")(down)[0, 0, :2, :2].eq(2.5).all()
    for method in ("bilinear", "bicubic"):
        torch.testing.assert_close(Downsample(4, method)(torch.full((1, 3, 16, 16), -0.2)), torch.full((1, 3, 4, 4), -0.2))


def test_additive_noise_is_seeded_with_the_asked_sigma_and_has_no_adjoint():
    x = torch.zeros(4, 3, 32, 32)
    op = AdditiveNoise(0.4, seed=7)
    assert torch.equal(op(x), AdditiveNoise(0.4, seed=7)(x))
    assert op(x).std().item() == pytest.approx(0.4, rel=0.05)
    with pytest.raises(OptionError, match="not linear"):
        op.adjoint(x)


def test_multiplicative_noise_scales_intensities():
    x = torch.rand(2, 3, 8, 8) * 2 - 1
    noise = AdditiveNoise(1.0, seed=3)(torch.zeros_like(x))  # the same seeded draw
    expected = (x + 1) / 2 * (1 + 0.1 * noise) * 2 - 1
    torch.testing.assert_close(MultiplicativeNoise(0.1, seed=3)(x), expected)
    assert torch.equal(MultiplicativeNoise(0.1)(-torch.ones(1, 3, 4, 4)), -torch.ones(1, 3, 4, 4))  # black stays black


def test_compose_applies_in_order():
    x = torch.randn(1, 3, 8, 8)
    op = Compose(Downsample(2, "box"), Mask.centred_box(4, 2))
    torch.testing.assert_close(op(x), Mask.centred_box(4, 2)(Downsample(2, "box")(x)))
    assert not Compose(GaussianBlur(1.0), AdditiveNoise(0.1)).linear


@pytest.mark.parametrize("make, message", [
    (lambda: Downsample(3)(torch.zeros(1, 3, 8, 8)), "factor 3 does not divide the image size 8x8"),
    (lambda: Downsample(0), "positive integer"),
    (lambda: Upsample(2, "lanczos"), "unknown resampling 'lanczos'"),
    (lambda: Mask.box(8, 8, 6, 0, 4, 2), "does not fit in a 8x8 image"),
    (lambda: Mask.box(8, 8, 0, 0, 2, 2)(torch.zeros(1, 3, 8, 9)), "mask is 8x8, image is 9x8"),
    (lambda: GaussianBlur(0.0), "blur sigma must be in"),
    (lambda: GaussianBlur(1.0, size=4), "positive odd number"),
    (lambda: GaussianBlur(4.0)(torch.zeros(1, 3, 8, 8)), "too large for 8x8 images"),
    (lambda: AdditiveNoise(-0.1), "noise sigma must be in"),
    (lambda: MultiplicativeNoise(3.0), "noise sigma must be in"),
])
def test_bad_parameters_are_clear_errors(make, message: str):
    with pytest.raises(OptionError, match=message):
        make()

