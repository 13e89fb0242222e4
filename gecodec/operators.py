"""Measurement operators as nn.Modules. Parameters are buffers, so they follow .to(device)."""

from __future__ import annotations

import torch
from torch import nn

from gecodec.search import STREAM_MATRIX, derived_seed


class GaussianMeasurement(nn.Module):
    """y = A x for a flattened image x, with A (m, n) i.i.d. N(0, 1/n) regenerated from a seed.

    The 1/n variance makes mean(y^2) about mean(x^2), so the search objective is on the same scale as a
    pixel MSE. A is drawn on the CPU so every device sees the same matrix; it is never stored in a file.
    """

    def __init__(self, count: int, image_size: int, seed: int) -> None:
        super().__init__()
        n = 3 * image_size * image_size
        rng = torch.Generator().manual_seed(derived_seed(seed, STREAM_MATRIX))
        self.register_buffer("matrix", torch.randn(count, n, generator=rng) / n**0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1) @ self.matrix.T
