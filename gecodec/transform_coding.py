"""The coding of version-3 files: the measurements in their principal axes, one quantizer step for all.

EN's measurements are strongly correlated (on validation faces their correlation matrix's eigenvalues span
four orders of magnitude: bench.transform_coding), so the version-2 coder, which quantizes each measurement
in units of its own spread, spends bits on values that the others already imply. Here the encoder rotates
m - mean into the covariance's eigenbasis (a Karhunen-Loeve transform) and quantizes every component with
the quality's one step: a component whose spread is far below the step is nearly always 0 and costs almost
nothing (reverse water-filling). Component j at quality q is coded under the integer table for its spread in steps, which
the bundle names as an index, so that encoder and decoder pick identical tables on every platform; only the
decoder's rotation back, mean + basis @ (k x step), is floating point. See formats/gec.md, Version 3.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import constriction
import numpy as np
import torch

from gecodec.catalog import TRANSFORM_PREFIX
from gecodec.entropy import (QUALITIES, ans_bytes, ans_decode, bin_probabilities, categorical, check_quality,
                             integer_table, quality_steps, split_tables)

PREFIX = TRANSFORM_PREFIX  # its tensors' names in a bundle: outside the model id
CLIP = 8.0  # a table's radius, in spreads: |k| x step stays within about 6 spreads on faces
SPREAD_RATIO = 2 ** 0.25  # neighbouring tables' spreads (in steps) differ by this factor: at most 9% off
SMALLEST_SPREAD = 1 / 64  # in steps: a component this narrow is 0 with probability 1 - 1e-300; one table serves all
MAX_RADIUS = 1 << 12


@dataclass(frozen=True, eq=False)
class TransformModel:
    mean: torch.Tensor  # (m,) float32: the measurements' mean
    basis: torch.Tensor  # (m, m) float32: orthonormal columns, the principal axes by decreasing variance
    steps: torch.Tensor  # (QUALITIES,) float32, decreasing: each quality's quantizer step
    table_of: torch.Tensor  # (QUALITIES, m) int32: the table that codes component j at quality q
    radii: torch.Tensor  # (tables,) int32: table t codes k in -radii[t] .. radii[t]
    frequencies: torch.Tensor  # int32: the tables one after another, each summing to TABLE_TOTAL
    default_quality: int = 60  # what the encoder uses when the caller names no rate

    def __post_init__(self) -> None:
        self.check()

    @property
    def m(self) -> int:
        return int(self.mean.shape[0])

    def check(self) -> None:
        """Raise ValueError unless every part is usable: sizes agree, the basis is finite, the steps positive
        and decreasing, every index names a table and every table sums to TABLE_TOTAL."""
        check_quality(self.default_quality)
        m = self.m
        if (self.mean.shape != (m,) or self.basis.shape != (m, m) or self.steps.shape != (QUALITIES,)
                or self.table_of.shape != (QUALITIES, m) or self.radii.ndim != 1):
            raise ValueError("transform model tensors have inconsistent shapes")
        if not (bool(torch.isfinite(self.basis).all()) and bool(torch.isfinite(self.mean).all())):
            raise ValueError("the transform's basis or mean is not finite")
        if not bool((self.steps > 0).all()) or not bool((self.steps[1:] < self.steps[:-1]).all()):
            raise ValueError("transform steps must be positive and decreasing")
        if not bool((self.radii >= 1).all()) or int(self.radii.max()) > MAX_RADIUS:
            raise ValueError("transform table radii are out of range")
        if int(self.table_of.min()) < 0 or int(self.table_of.max()) >= len(self.radii):
            raise ValueError("a transform table index names no table")
        split_tables(self.frequencies, self.radii, "transform table")

    def table(self, t: int) -> np.ndarray:
        return self._tables[t]

    @cached_property
    def _tables(self) -> list[np.ndarray]:
        return split_tables(self.frequencies, self.radii, "transform table")

    @cached_property
    def _models(self) -> list[constriction.stream.model.Categorical]:
        return [categorical(table) for table in self._tables]

    def _radii_at(self, quality: int) -> torch.Tensor:
        """(m,) each component's radius at this quality."""
        return self.radii[self.table_of[check_quality(quality)].long()]

    def quantize(self, values: torch.Tensor, quality: int) -> np.ndarray:
        """(B, m) measurements -> (B, m) integers k, clipped to each component's table, as int64."""
        radii = self._radii_at(quality)
        components = (values.cpu().float() - self.mean) @ self.basis
        return torch.maximum(torch.minimum((components / self.steps[quality]).round(), radii), -radii).long().numpy()

    def dequantize(self, k: np.ndarray, quality: int) -> torch.Tensor:
        """Integers k (m,) or (B, m) -> the decoder's measurements."""
        components = torch.from_numpy(np.asarray(k, dtype=np.int64)).float() * self.steps[check_quality(quality)]
        return self.mean + components @ self.basis.T

    def encode(self, k: np.ndarray, quality: int) -> bytes:
        """One file's m integers -> payload bytes (entropy.ans_bytes)."""
        symbols = (np.asarray(k, dtype=np.int64) + self._radii_at(quality).numpy()).astype(np.int32)
        coder = constriction.stream.stack.AnsCoder()
        for start, stop, table in reversed(self._runs(quality)):  # a stack: the decoder pops component 0 first
            coder.encode_reverse(symbols[start:stop], self._models[table])
        return ans_bytes(coder)

    def decode(self, payload: bytes, quality: int) -> np.ndarray:
        """Payload bytes -> the m integers; FormatError unless they use up the payload exactly."""
        def pop(coder: constriction.stream.stack.AnsCoder) -> np.ndarray:
            symbols = [coder.decode(self._models[table], stop - start) for start, stop, table in self._runs(quality)]
            return np.concatenate(symbols).astype(np.int64) - self._radii_at(quality).numpy()

        return ans_decode(payload, "transform-coded payload", "measurements", pop)

    def _runs(self, quality: int) -> list[tuple[int, int, int]]:
        """(start, stop, table): the runs of neighbouring components that one table codes at ``quality``. A run is
        coded in one call, the same symbols in the same order as one call per component."""
        tables = self.table_of[check_quality(quality)].numpy()
        edges = [0, *(np.flatnonzero(np.diff(tables)) + 1).tolist(), len(tables)]
        return [(start, stop, int(tables[start])) for start, stop in zip(edges[:-1], edges[1:])]

    def to_tensors(self) -> dict[str, torch.Tensor]:
        return {PREFIX + name: getattr(self, name) for name in TENSORS}

    @classmethod
    def from_tensors(cls, tensors: dict[str, torch.Tensor], default_quality: int) -> TransformModel:
        return cls(**{name: tensors[PREFIX + name].to(TENSORS[name]) for name in TENSORS},
                   default_quality=default_quality)


TENSORS = {"mean": torch.float32, "basis": torch.float32, "steps": torch.float32, "table_of": torch.int32,
           "radii": torch.int32, "frequencies": torch.int32}  # a bundle's transform tensors and their dtypes


def fit_transform_model(measurements: torch.Tensor, density: str = "gaussian", default_quality: int = 60
                        ) -> TransformModel:
    """A transform model for (N, m) measurements of training images: their mean and principal axes, steps
    from 3 to 0.03 root-mean-square spreads (as version 2's, in that unit), and one table per spread on a
    geometric grid, for a unit ``density`` (entropy.DENSITIES but empirical) quantized at 1 / spread."""
    values = measurements.detach().double().cpu()
    mean = values.mean(0)
    variances, axes = torch.linalg.eigh(torch.cov((values - mean).T))
    order = variances.argsort(descending=True)
    variances, axes = variances[order].clamp_min(0), axes[:, order]
    axes = axes * axes.gather(0, axes.abs().argmax(0, keepdim=True)).sign()  # each axis's largest entry > 0
    spreads = variances.sqrt()
    steps = quality_steps().double() * float(values.std(0).pow(2).mean().sqrt())
    # Component j at quality q gets the grid spread nearest to spreads[j] / steps[q] (in log), the smallest
    # for anything narrower; only the grid points in use are stored.
    in_steps = (spreads[None, :] / steps[:, None]).clamp_min(SMALLEST_SPREAD)
    grid_index = (in_steps.log() / math.log(SPREAD_RATIO)).round().long()
    used, table_of = torch.unique(grid_index, return_inverse=True)
    tables, radii = [], []
    for index in used.tolist():
        spread = SPREAD_RATIO**index
        radius = min(max(1, math.ceil(CLIP * spread)), MAX_RADIUS)
        tables.append(integer_table(bin_probabilities(None, density, 1 / spread, radius)))
        radii.append(radius)
    return TransformModel(mean=mean.float(), basis=axes.float().contiguous(), steps=steps.float(),
                          table_of=table_of.to(torch.int32), radii=torch.tensor(radii, dtype=torch.int32),
                          frequencies=torch.from_numpy(np.concatenate(tables).astype(np.int32)),
                          default_quality=default_quality)
