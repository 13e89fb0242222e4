"""The scalar quantizer and the bit packer."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from gecodec.errors import FormatError, OptionError
from gecodec.quantize import dequantize, pack_bits, packed_size, quantize, unpack_bits


@given(st.integers(2, 12), st.integers(1, 300), st.integers(0, 2**32 - 1))
def test_pack_unpack_round_trip(bits, count, seed):
    ints = np.random.default_rng(seed).integers(0, 1 << bits, size=count)
    data = pack_bits(ints, bits)
    assert len(data) == packed_size(count, bits)
    assert np.array_equal(unpack_bits(data, count, bits), ints)


def test_pack_is_msb_first():
    assert pack_bits(np.array([1, 2, 3]), 2) == bytes([0b01101100])


def test_unpack_rejects_wrong_length_and_nonzero_padding():
    with pytest.raises(FormatError):
        unpack_bits(b"\x00\x00", 3, 8)
    with pytest.raises(FormatError, match="padding"):
        unpack_bits(bytes([0b01101101]), 3, 2)


@pytest.mark.parametrize("bits", [2, 4, 8, 12])
def test_quantization_error_is_at_most_half_a_step(bits):
    lo, hi = torch.tensor([-1.0, 0.0]), torch.tensor([1.0, 5.0])
    values = lo + torch.rand(1000, 2) * (hi - lo)
    restored = dequantize(quantize(values, lo, hi, bits), lo, hi, bits)
    step = (hi - lo) / ((1 << bits) - 1)
    assert bool(((restored - values).abs() <= step / 2 + 1e-6).all())


def test_values_outside_the_range_are_clipped():
    ints = quantize(torch.tensor([[-10.0, 10.0]]), torch.tensor([0.0, 0.0]), torch.tensor([1.0, 1.0]), 4)
    assert ints.tolist() == [[0, 15]]


@pytest.mark.parametrize("bits", [1, 13, 8.0])
def test_bit_depth_outside_2_to_12_is_refused(bits):
    with pytest.raises(OptionError):
        quantize(torch.zeros(1, 1), torch.zeros(1), torch.ones(1), bits)
