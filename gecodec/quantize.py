"""Floats <-> integers <-> packed bits. A uniform scalar quantizer per measurement dimension."""

from __future__ import annotations

import numpy as np
import torch

from gecodec.errors import FormatError, OptionError
from gecodec.options import MAX_BITS, MIN_BITS


def check_bits(bits: int) -> int:
    if not isinstance(bits, int) or not MIN_BITS <= bits <= MAX_BITS:
        raise OptionError(f"bits must be an integer from {MIN_BITS} to {MAX_BITS}, got {bits!r}")
    return bits


def quantize(values: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, bits: int) -> torch.Tensor:
    """Map values in [lo, hi] (per dimension, broadcast over the batch) to integers 0 .. 2^bits - 1.

    Values outside the calibrated range are clipped to its ends.
    """
    levels = (1 << check_bits(bits)) - 1
    scaled = (values - lo) / (hi - lo) * levels
    return scaled.round().clamp(0, levels).to(torch.int64)


def dequantize(ints: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, bits: int) -> torch.Tensor:
    """The reconstruction level of each integer: lo + q * (hi - lo) / (2^bits - 1)."""
    levels = (1 << check_bits(bits)) - 1
    return lo + ints.to(lo.dtype) * ((hi - lo) / levels)


def packed_size(count: int, bits: int) -> int:
    """Bytes that ``count`` values of ``bits`` bits take, padded to a whole byte."""
    return (count * bits + 7) // 8


def pack_bits(ints: np.ndarray, bits: int) -> bytes:
    """Concatenate each integer's ``bits`` bits, most significant first, zero-padded to a whole byte."""
    ints = np.asarray(ints, dtype=np.int64).ravel()
    if ints.size and (ints.min() < 0 or ints.max() >= 1 << bits):
        raise OptionError(f"values do not fit in {bits} bits")
    shifts = np.arange(bits - 1, -1, -1, dtype=np.int64)
    bitplane = ((ints[:, None] >> shifts) & 1).astype(np.uint8)
    return np.packbits(bitplane.ravel()).tobytes()


def unpack_bits(data: bytes, count: int, bits: int) -> np.ndarray:
    """Inverse of pack_bits. The length must be exact and the padding bits zero."""
    if len(data) != packed_size(count, bits):
        expected = packed_size(count, bits)
        raise FormatError(f"payload holds {len(data)} bytes, expected {expected} for {count} values of {bits} bits")
    bitstream = np.unpackbits(np.frombuffer(data, dtype=np.uint8))
    if bitstream[count * bits :].any():
        raise FormatError("payload padding bits are not zero")
    weights = 1 << np.arange(bits - 1, -1, -1, dtype=np.int64)
    return bitstream[: count * bits].reshape(count, bits).astype(np.int64) @ weights
