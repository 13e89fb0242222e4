"""The Lasso-in-a-DCT-basis baseline decoder: its dictionaries, its solver against scikit-learn, its decoding."""

from __future__ import annotations

import math

import pytest
import torch

from bench.lasso_dct import analyze, dct_matrix, dictionary, lasso_dct_decode, lasso_fista, lasso_objective, synthesize
from gecodec.errors import OptionError
from gecodec.metrics import mse
from gecodec.operators import GaussianMeasurement

SIZE = 8
N = 3 * SIZE * SIZE


def smooth_images(count: int, seed: int) -> torch.Tensor:
    """Random images in [-1, 1] whose energy is in the low frequencies, like photographs."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(count, 3, 3, 3, generator=g, dtype=torch.float64) * 1.6 - 0.8
    return torch.nn.functional.interpolate(coarse, size=(SIZE, SIZE), mode="bilinear", align_corners=True)


def test_dct_matrix_is_orthonormal_dct_ii() -> None:
    d = dct_matrix(SIZE)
    assert torch.allclose(d @ d.T, torch.eye(SIZE, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(d[0], torch.full((SIZE,), SIZE**-0.5, dtype=torch.float64))
    fft = pytest.importorskip("scipy.fft")
    v = torch.randn(SIZE, dtype=torch.float64)
    assert torch.allclose(d @ v, torch.from_numpy(fft.dct(v.numpy(), norm="ortho")), atol=1e-12)


def test_dct_dictionary_is_orthonormal_and_reconstructs() -> None:
    psi = dictionary(SIZE)
    assert psi.shape == (N, N)
    assert torch.allclose(psi.T @ psi, torch.eye(N, dtype=torch.float64), atol=1e-12)
    x = smooth_images(2, seed=0)
    c = analyze(x, SIZE)
    assert torch.allclose(c, x.flatten(1) @ psi, atol=1e-12)
    assert torch.allclose(synthesize(c, SIZE), x, atol=1e-12)
    assert torch.allclose((c @ psi.T).reshape(x.shape), x, atol=1e-12)


def test_overcomplete_dictionary_has_unit_atoms() -> None:
    psi = dictionary(SIZE, "dct2x")
    assert psi.shape == (N, 4 * N)
    assert torch.allclose(psi.norm(dim=0), torch.ones(4 * N, dtype=torch.float64), atol=1e-12)
    c = torch.randn(2, 4 * N, dtype=torch.float64)
    assert torch.allclose(synthesize(c, SIZE, "dct2x").flatten(1), c @ psi.T, atol=1e-12)


def test_lasso_fista_matches_scikit_learn() -> None:
    linear_model = pytest.importorskip("sklearn.linear_model")
    alpha = 0.1
    a_eff = analyze(GaussianMeasurement(60, SIZE, seed=1).matrix.double() * math.sqrt(N), SIZE)
    y = analyze(smooth_images(3, seed=1), SIZE) @ a_eff.T
    ours = lasso_fista(a_eff, y, alpha, iters=20000, tol=1e-10)
    model = linear_model.Lasso(alpha=alpha, fit_intercept=False, tol=1e-8, max_iter=100000)
    theirs = torch.stack([torch.from_numpy(model.fit(a_eff.numpy(), row.numpy()).coef_.copy()) for row in y])
    assert torch.allclose(lasso_objective(a_eff, y, ours, alpha), lasso_objective(a_eff, y, theirs, alpha), rtol=1e-8)
    assert torch.allclose(ours, theirs, atol=1e-5 * theirs.abs().max().item())


def test_decode_recovers_a_dct_sparse_image() -> None:
    g = torch.Generator().manual_seed(2)
    c = torch.zeros(2, N, dtype=torch.float64)
    for row in c:
        row[torch.randperm(N, generator=g)[:6]] = torch.rand(6, generator=g, dtype=torch.float64) * 4 - 2
    x = synthesize(c, SIZE).float()
    assert x.abs().max() <= 1
    op = GaussianMeasurement(120, SIZE, seed=2)
    decoded = lasso_dct_decode(op(x), op.matrix, SIZE)
    assert decoded.shape == x.shape and decoded.dtype == x.dtype
    assert (mse(decoded, x) < 0.01 * mse(torch.zeros_like(x), x)).all()


def test_decode_rejects_an_unknown_basis() -> None:
    op = GaussianMeasurement(20, SIZE, seed=0)
    with pytest.raises(OptionError, match="basis"):
        lasso_dct_decode(torch.zeros(1, 20), op.matrix, SIZE, basis="wavelet")
