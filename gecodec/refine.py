"""A refinement layer: codes what the base decode misses, r = x - x_base, as JPEG codes pixels.

The residual (in 8-bit levels) goes to YCbCr, its chroma is averaged over 2x2, and each plane is cut into
8x8 blocks and transformed by the orthonormal DCT. Refinement level q (0 coarsest .. LEVELS-1 finest)
quantizes coefficient (plane, u, v) with step STEPS[q] x (1 + SLOPE (u + v)). Each coefficient follows a
Laplace of its own scale, so its integers follow one of a ladder of normalized densities, picked by
step / scale; the ladder's integer tables, and which rung each (level, plane, u, v) takes, are fitted on
training residuals and stored, so that encoder and decoder build bit-identical ANS coders (as in
gecodec/entropy.py). bench/results/residual/ measures it against WebP.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from functools import cached_property

import constriction
import numpy as np
import torch

from gecodec.entropy import TABLE_TOTAL, ans_bytes, ans_decode, categorical, integer_table, laplace_cdf
from gecodec.errors import OptionError

BLOCK = 8
LEVELS = 16  # refinement levels
COARSEST, FINEST = 64.0, 2.0  # their steps, in 8-bit levels, geometric in between
SLOPE = 0.25  # higher frequencies get coarser steps
RUNGS = 48  # normalized steps (step / scale) with a table each, geometric in between:
SMALLEST_RUNG, LARGEST_RUNG = 0.02, 40.0
CLIP = 16.0  # |coefficient| / scale beyond this is clipped
RGB_TO_YCC = np.array([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]])
YCC_TO_RGB = np.linalg.inv(RGB_TO_YCC)


def _dct_matrix() -> np.ndarray:
    k = np.arange(BLOCK)
    matrix = np.cos(np.pi * (2 * k[None, :] + 1) * k[:, None] / (2 * BLOCK)) * math.sqrt(2 / BLOCK)
    matrix[0] /= math.sqrt(2)
    return matrix


DCT = _dct_matrix()
WEIGHTS = 1 + SLOPE * (np.arange(BLOCK)[:, None] + np.arange(BLOCK)[None, :])


def check_level(level: int) -> int:
    if not isinstance(level, int) or isinstance(level, bool) or not 0 <= level < LEVELS:
        raise OptionError(f"refinement level must be an integer from 0 to {LEVELS - 1}, got {level!r}")
    return level


def level_steps() -> np.ndarray:
    return COARSEST * (FINEST / COARSEST) ** (np.arange(LEVELS) / (LEVELS - 1))


def rung_steps() -> np.ndarray:
    return SMALLEST_RUNG * (LARGEST_RUNG / SMALLEST_RUNG) ** (np.arange(RUNGS) / (RUNGS - 1))


def analyse(residual: np.ndarray) -> list[np.ndarray]:
    """(N, 3, H, W) residuals in 8-bit levels -> coefficient planes [Y, Cb, Cr], of shapes (N, B, 8, 8),
    (N, B/4, 8, 8) and (N, B/4, 8, 8) for B = H W / 64 blocks (raster order)."""
    ycc = np.einsum("ij,njhw->nihw", RGB_TO_YCC, residual)
    n, _, h, w = ycc.shape
    chroma = ycc[:, 1:].reshape(n, 2, h // 2, 2, w // 2, 2).mean(axis=(3, 5))
    return [_blocks(ycc[:, 0]), _blocks(chroma[:, 0]), _blocks(chroma[:, 1])]


def synthesise(planes: list[np.ndarray], size: int) -> np.ndarray:
    """The inverse of analyse: [Y, Cb, Cr] coefficient blocks -> (N, 3, size, size) residuals."""
    y = _pixels(planes[0], size)
    chroma = np.stack([_pixels(p, size // 2) for p in planes[1:]], 1).repeat(2, axis=2).repeat(2, axis=3)
    return np.einsum("ij,njhw->nihw", YCC_TO_RGB, np.concatenate([y[:, None], chroma], 1))


def _blocks(plane: np.ndarray) -> np.ndarray:
    """(N, H, W) -> (N, H/8 * W/8, 8, 8) DCT coefficients, blocks in raster order."""
    n, h, w = plane.shape
    blocks = plane.reshape(n, h // BLOCK, BLOCK, w // BLOCK, BLOCK).transpose(0, 1, 3, 2, 4)
    return (DCT @ blocks @ DCT.T).reshape(n, -1, BLOCK, BLOCK)


def _pixels(coefficients: np.ndarray, side: int) -> np.ndarray:
    n = coefficients.shape[0]
    per_row = side // BLOCK
    blocks = (DCT.T @ coefficients @ DCT).reshape(n, per_row, per_row, BLOCK, BLOCK)
    return blocks.transpose(0, 1, 3, 2, 4).reshape(n, side, side)


@dataclass(frozen=True, eq=False)
class RefinementModel:
    scales: np.ndarray  # (3, 8, 8) float32: each coefficient's Laplace scale, in 8-bit levels
    rungs: np.ndarray  # (LEVELS, 3, 8, 8) int32: the table each coefficient takes at each level
    radii: np.ndarray  # (RUNGS,) int32: rung r codes k in -radii[r] .. radii[r]
    frequencies: np.ndarray  # int32: the rungs' tables one after another, each summing to TABLE_TOTAL

    def __post_init__(self) -> None:
        self.check()

    def check(self) -> None:
        """Raise ValueError unless the tables are usable: shapes agree, rungs exist, each table sums right."""
        if self.scales.shape != (3, BLOCK, BLOCK) or self.rungs.shape != (LEVELS, 3, BLOCK, BLOCK) \
                or self.radii.shape != (RUNGS,) or self.frequencies.ndim != 1:
            raise ValueError("refinement model tensors have inconsistent shapes")
        if not (self.scales > 0).all() or self.rungs.min() < 0 or self.rungs.max() >= RUNGS:
            raise ValueError("refinement model scales or rungs are out of range")
        if self.radii.min() < 0 or self.radii.max() > 1 << 14 or int(self._offsets[-1]) != self.frequencies.size:
            raise ValueError("refinement model tables do not match their radii")
        for rung in range(RUNGS):
            table = self.frequencies[self._offsets[rung] : self._offsets[rung + 1]]
            if table.min() < 1 or int(table.sum()) != TABLE_TOTAL:
                raise ValueError(f"refinement table {rung} does not sum to {TABLE_TOTAL} with every entry at least 1")

    def check_for(self, level: int) -> int:
        """The check code that a file with a layer at ``level`` carries: one for all levels."""
        return self.check_code

    @cached_property
    def check_code(self) -> int:
        """16 bits of the tables' SHA-256: a refined file names the tables it was coded with."""
        sha = hashlib.sha256()
        for name, array in sorted(self.to_arrays().items()):
            sha.update(name.encode() + np.ascontiguousarray(array).tobytes())
        return int.from_bytes(sha.digest()[:2], "big")

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {"refine.scales": self.scales, "refine.rungs": self.rungs, "refine.radii": self.radii,
                "refine.frequencies": self.frequencies}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> RefinementModel:
        return cls(scales=np.asarray(arrays["refine.scales"], np.float32), rungs=np.asarray(arrays["refine.rungs"], np.int32),
                   radii=np.asarray(arrays["refine.radii"], np.int32),
                   frequencies=np.asarray(arrays["refine.frequencies"], np.int32))

    def code(self, residual: np.ndarray, level: int) -> bytes:
        """One image's residual (3, H, W) in [-1, 1] units -> the layer's bytes."""
        planes = self.quantize(analyse(residual[None].astype(np.float64) * 127.5), level)
        return self.encode([k[0] for k in planes], level)

    def residual(self, data: bytes, level: int, size: int) -> np.ndarray:
        """The layer's bytes -> the residual (3, size, size) in [-1, 1] units that it codes."""
        integers = self.decode(data, level, (size // BLOCK) ** 2)
        return synthesise([k[None] for k in self.dequantize(integers, level)], size)[0] / 127.5

    @cached_property
    def _offsets(self) -> np.ndarray:
        return np.concatenate([[0], np.cumsum(2 * self.radii.astype(np.int64) + 1)])

    @cached_property
    def _models(self) -> list[constriction.stream.model.Categorical]:
        return [categorical(self.frequencies[self._offsets[r] : self._offsets[r + 1]]) for r in range(RUNGS)]

    def steps(self, level: int) -> np.ndarray:
        """(8, 8) quantizer steps at a refinement level."""
        return (level_steps()[check_level(level)] * WEIGHTS).astype(np.float32)

    def quantize(self, planes: list[np.ndarray], level: int) -> list[np.ndarray]:
        """Coefficient planes -> integers k, each clipped to its table's radius."""
        steps, rungs = self.steps(level), self.rungs[check_level(level)]
        return [np.clip(np.round(p / steps), -self.radii[rungs[i]], self.radii[rungs[i]]).astype(np.int64)
                for i, p in enumerate(planes)]

    def dequantize(self, integers: list[np.ndarray], level: int) -> list[np.ndarray]:
        steps = self.steps(level)
        return [k * steps for k in integers]

    def _flat_rungs(self, level: int, blocks: int) -> np.ndarray:
        """The table of each of an image's coefficients, in coding order: Y's blocks, then Cb's, then Cr's."""
        rungs = self.rungs[check_level(level)]
        counts = (blocks, blocks // 4, blocks // 4)
        return np.concatenate([np.broadcast_to(rungs[i], (n, BLOCK, BLOCK)).ravel() for i, n in enumerate(counts)])

    def encode(self, integers: list[np.ndarray], level: int) -> bytes:
        """One image's integers (planes of shape (blocks, 8, 8)) -> bytes (entropy.ans_bytes), grouped by table
        in increasing order; groups go in reverse, so that the decoder pops them in order."""
        flat_rungs = self._flat_rungs(level, len(integers[0]))
        flat = np.concatenate([k.ravel() for k in integers])
        coder = constriction.stream.stack.AnsCoder()
        for rung in np.unique(flat_rungs)[::-1]:
            coder.encode_reverse((flat[flat_rungs == rung] + self.radii[rung]).astype(np.int32), self._models[rung])
        return ans_bytes(coder)

    def decode(self, payload: bytes, level: int, blocks: int) -> list[np.ndarray]:
        """Bytes -> the integers of an image with ``blocks`` luma blocks; FormatError unless they use up the
        payload exactly (a truncated layer is an error, not a noisy image)."""
        flat_rungs = self._flat_rungs(level, blocks)

        def pop(coder: constriction.stream.stack.AnsCoder) -> np.ndarray:
            flat = np.empty(flat_rungs.shape, dtype=np.int64)
            for rung in np.unique(flat_rungs):
                where = flat_rungs == rung
                flat[where] = coder.decode(self._models[rung], int(where.sum())) - self.radii[rung]
            return flat

        flat = ans_decode(payload, "refinement payload", "coefficients", pop)
        luma, chroma = blocks * BLOCK * BLOCK, blocks // 4 * BLOCK * BLOCK
        return [flat[:luma].reshape(blocks, BLOCK, BLOCK), flat[luma : luma + chroma].reshape(-1, BLOCK, BLOCK),
                flat[luma + chroma :].reshape(-1, BLOCK, BLOCK)]


def laplace_bins(step: float, radius: int) -> np.ndarray:
    """P(k), k = -radius .. radius, of a unit-scale Laplace quantized with ``step``; the end bins take the tails."""
    cdf = laplace_cdf((np.arange(-radius, radius) + 0.5) * step)
    return np.diff(np.concatenate([[0.0], cdf, [1.0]]))


def fit_refinement(residuals: torch.Tensor) -> RefinementModel:
    """A refinement model for (N, 3, H, W) training residuals x - x_base in [-1, 1] units."""
    planes = analyse(residuals.double().numpy() * 127.5)
    scales = np.stack([np.abs(p).mean(axis=(0, 1)) for p in planes]).clip(1e-3).astype(np.float32)
    ladder = rung_steps()
    radii = np.array([math.ceil(CLIP / s) for s in ladder], dtype=np.int32)
    tables = [integer_table(laplace_bins(float(s), int(r))) for s, r in zip(ladder, radii)]
    normalized = level_steps()[:, None, None, None] * WEIGHTS[None, None] / scales[None]  # (LEVELS, 3, 8, 8)
    nearest = np.abs(np.log(normalized[..., None]) - np.log(ladder)).argmin(axis=-1)
    return RefinementModel(scales=scales, rungs=nearest.astype(np.int32), radii=radii,
                           frequencies=np.concatenate(tables).astype(np.int32))
