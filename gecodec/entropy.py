"""The entropy model of version-2 files: a quality factor picks a quantizer step, and the integers are coded
with asymmetric numeral systems (constriction) under integer probability tables stored in the bundle.

Measurement i is quantized to k = round((v - mean_i) / (step_q * scale_i)), clipped to -radius_q .. radius_q.
Since scale_i is the dimension's spread, every dimension's k follows the same normalized density at a given
quality, so one table per quality serves them all. Tables are integer frequencies that sum to TABLE_TOTAL:
encoder and decoder build bit-identical coders from them on every platform. See formats/gec.md, Payload v2.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import TypeVar

import constriction
import numpy as np
import torch

from gecodec.container import QUALITIES
from gecodec.errors import FormatError, OptionError

T = TypeVar("T")
TABLE_TOTAL = 1 << 16  # every table's frequencies sum to this; each is at least 1
DENSITIES = ("gaussian", "laplace", "empirical")
COARSEST_STEP, FINEST_STEP = 3.0, 0.03  # quality 0 and 100, in units of each measurement's spread
DEFAULT_QUALITY = 60
CLIP = 8.0  # the largest |v - mean| / scale a file can code; measurements of faces stay within about 6.5


def check_quality(quality: int) -> int:
    if not isinstance(quality, int) or isinstance(quality, bool) or not 0 <= quality < QUALITIES:
        raise OptionError(f"quality must be an integer from 0 to {QUALITIES - 1}, got {quality!r}")
    return quality


@dataclass(frozen=True, eq=False)
class EntropyModel:
    mean: torch.Tensor  # (m,) float32: each measurement's centre
    scale: torch.Tensor  # (m,) float32: each measurement's spread
    steps: torch.Tensor  # (QUALITIES,) float32, decreasing: each quality's step, in units of scale
    radii: torch.Tensor  # (QUALITIES,) int32: quality q codes k in -radii[q] .. radii[q]
    frequencies: torch.Tensor  # int32: the tables of qualities 0 .. 100 one after another
    default_quality: int = DEFAULT_QUALITY  # what the encoder uses when the caller names no rate

    def __post_init__(self) -> None:
        self.check()

    @property
    def m(self) -> int:
        return int(self.mean.shape[0])

    def check(self) -> None:
        """Raise ValueError unless every table is usable: sizes agree and each sums to TABLE_TOTAL."""
        check_quality(self.default_quality)
        m = self.mean.shape
        if len(m) != 1 or self.scale.shape != m or self.steps.shape != (QUALITIES,) or self.radii.shape != (QUALITIES,):
            raise ValueError("entropy model tensors have inconsistent shapes")
        if not bool((self.scale > 0).all()) or not bool((self.steps > 0).all()):
            raise ValueError("entropy model scales and steps must be positive")
        if not bool((self.radii >= 0).all()) or int(self.radii.max()) > 1 << 14:
            raise ValueError("entropy model radii are out of range")
        split_tables(self.frequencies, self.radii, "entropy model, quality")

    @cached_property
    def _tables(self) -> list[np.ndarray]:
        return split_tables(self.frequencies, self.radii, "entropy model, quality")

    def table(self, quality: int) -> np.ndarray:
        return self._tables[quality]

    @cached_property
    def _models(self) -> dict[int, constriction.stream.model.Categorical]:
        return {}

    def _model(self, quality: int) -> constriction.stream.model.Categorical:
        if quality not in self._models:
            self._models[quality] = categorical(self.table(quality))
        return self._models[quality]

    def step(self, quality: int) -> torch.Tensor:
        """(m,) the quantizer step of each measurement at this quality."""
        return self.steps[check_quality(quality)] * self.scale

    def quantize(self, values: torch.Tensor, quality: int) -> np.ndarray:
        """(B, m) measurements -> (B, m) symbols 0 .. 2 radius (k + radius), as int32."""
        radius = int(self.radii[check_quality(quality)])
        k = ((values.cpu().float() - self.mean) / self.step(quality)).round().clamp(-radius, radius)
        return (k.to(torch.int32) + radius).numpy()

    def dequantize(self, symbols: np.ndarray, quality: int) -> torch.Tensor:
        radius = int(self.radii[check_quality(quality)])
        k = torch.from_numpy(np.asarray(symbols, dtype=np.int64) - radius).float()
        return self.mean + k * self.step(quality)

    def encode(self, symbols: np.ndarray, quality: int) -> bytes:
        """One file's symbols -> payload bytes (ans_bytes)."""
        coder = constriction.stream.stack.AnsCoder()
        coder.encode_reverse(np.ascontiguousarray(symbols, dtype=np.int32), self._model(check_quality(quality)))
        return ans_bytes(coder)

    def decode(self, payload: bytes, quality: int) -> np.ndarray:
        """Payload bytes -> the m symbols; FormatError unless they use up the payload exactly."""
        model = self._model(check_quality(quality))
        symbols = ans_decode(payload, "entropy-coded payload", "measurements", lambda coder: coder.decode(model, self.m))
        return np.asarray(symbols, dtype=np.int32)

    def to_tensors(self) -> dict[str, torch.Tensor]:
        return {"entropy.mean": self.mean, "entropy.scale": self.scale, "entropy.steps": self.steps,
                "entropy.radii": self.radii, "entropy.frequencies": self.frequencies}

    @classmethod
    def from_tensors(cls, tensors: dict[str, torch.Tensor], default_quality: int = DEFAULT_QUALITY) -> EntropyModel:
        return cls(mean=tensors["entropy.mean"].float(), scale=tensors["entropy.scale"].float(),
                   steps=tensors["entropy.steps"].float(), radii=tensors["entropy.radii"].to(torch.int32),
                   frequencies=tensors["entropy.frequencies"].to(torch.int32), default_quality=default_quality)


def split_tables(frequencies: torch.Tensor, radii: torch.Tensor, what: str) -> list[np.ndarray]:
    """Integer tables stored one after another (table i has 2 radii[i] + 1 entries) -> the tables, as int64;
    ValueError, naming ``what``, unless the sizes match and each sums to TABLE_TOTAL with every entry at least 1."""
    sizes = 2 * radii.numpy().astype(np.int64) + 1
    if int(sizes.sum()) != frequencies.numel():
        raise ValueError(f"{what} tables do not match their radii")
    tables = np.split(frequencies.numpy().astype(np.int64), np.cumsum(sizes)[:-1])
    for index, table in enumerate(tables):
        if int(table.min()) < 1 or int(table.sum()) != TABLE_TOTAL:
            raise ValueError(f"{what} {index}: the table does not sum to {TABLE_TOTAL} with every entry at least 1")
    return tables


def categorical(table: np.ndarray) -> constriction.stream.model.Categorical:
    """constriction's model of an integer table summing to TABLE_TOTAL: frequency / 2^16 is exact in float64,
    so encoder and decoder hand constriction identical probabilities on every platform."""
    return constriction.stream.model.Categorical(table.astype(np.float64) / TABLE_TOTAL, perfect=False)


def ans_bytes(coder: constriction.stream.stack.AnsCoder) -> bytes:
    """An ANS coder's words, little-endian, without trailing zero bytes (so a payload never ends in one)."""
    return coder.get_compressed().astype("<u4").tobytes().rstrip(b"\0")


def ans_decode(payload: bytes, what: str, items: str, pop: Callable[[constriction.stream.stack.AnsCoder], T]) -> T:
    """Read ans_bytes back and pop what ``pop`` pops; FormatError unless that uses up the payload exactly (a
    truncated payload, or one with bytes left over, is an error, not noise)."""
    if not payload or payload[-1] == 0:
        raise FormatError(f"{what} is empty or ends in a zero byte")
    padded = payload + b"\0" * (-len(payload) % 4)
    try:
        coder = constriction.stream.stack.AnsCoder(np.frombuffer(padded, dtype="<u4").astype(np.uint32))
        popped = pop(coder)
        exact = coder.is_empty()
    except (ValueError, RuntimeError, AssertionError) as exc:
        raise FormatError(f"{what} does not decode ({exc})") from None
    if not exact:
        raise FormatError(f"{what} does not match its {items} (truncated or trailing bytes)")
    return popped


def laplace_cdf(t: np.ndarray) -> np.ndarray:
    """The CDF of a unit-scale Laplace (density exp(-|t|) / 2)."""
    tail = 0.5 * np.exp(-np.abs(t))
    return np.where(t < 0, tail, 1 - tail)


def quality_steps() -> torch.Tensor:
    """Geometric steps from COARSEST_STEP at quality 0 to FINEST_STEP at quality 100."""
    fraction = torch.arange(QUALITIES, dtype=torch.float64) / (QUALITIES - 1)
    return (COARSEST_STEP * (FINEST_STEP / COARSEST_STEP) ** fraction).float()


def bin_probabilities(normalized: np.ndarray | None, density: str, step: float, radius: int) -> np.ndarray:
    """P(k) for k = -radius .. radius of a normalized value quantized with ``step``; the end bins take the tails.

    gaussian and laplace are unit-variance densities; empirical is the histogram of ``normalized`` (pooled,
    mean-removed, spread-divided training measurements, sorted)."""
    edges = (np.arange(-radius, radius) + 0.5) * step  # the 2 radius inner edges
    if density == "gaussian":
        cdf = np.array([0.5 * math.erfc(-e / math.sqrt(2)) for e in edges])
    elif density == "laplace":
        cdf = laplace_cdf(edges / (1 / math.sqrt(2)))  # unit variance: scale 1 / sqrt(2)
    elif density == "empirical":
        cdf = np.searchsorted(normalized, edges, side="right") / normalized.size
    else:
        raise OptionError(f"unknown density {density!r} (use {', '.join(DENSITIES)})")
    return np.diff(np.concatenate([[0.0], cdf, [1.0]]))


def integer_table(probabilities: np.ndarray) -> np.ndarray:
    """Frequencies that sum to TABLE_TOTAL, each at least 1, close to ``probabilities`` (largest remainders)."""
    spare = TABLE_TOTAL - len(probabilities)
    if spare < 0:
        raise ValueError(f"{len(probabilities)} symbols do not fit a table of total {TABLE_TOTAL}")
    scaled = probabilities / probabilities.sum() * spare
    table = np.floor(scaled).astype(np.int64)
    order = np.argsort(-(scaled - table), kind="stable")
    table[order[: spare - int(table.sum())]] += 1
    return table + 1


def fit_entropy_model(measurements: torch.Tensor, density: str = "gaussian") -> EntropyModel:
    """An entropy model for (N, m) measurements of training images under one density family."""
    values = measurements.detach().double().cpu()
    mean, scale = values.mean(0), values.std(0).clamp_min(1e-6)
    normalized = np.sort(((values - mean) / scale).numpy().ravel())
    steps = quality_steps()
    radii = [math.ceil(CLIP / float(step)) for step in steps]
    tables = [integer_table(bin_probabilities(normalized, density, float(step), radius))
              for step, radius in zip(steps, radii)]
    return EntropyModel(mean=mean.float(), scale=scale.float(), steps=steps,
                        radii=torch.tensor(radii, dtype=torch.int32),
                        frequencies=torch.from_numpy(np.concatenate(tables).astype(np.int32)))
