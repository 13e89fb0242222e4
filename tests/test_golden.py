"""Golden files written by an earlier gecodec must keep decoding: the container is a contract."""

from __future__ import annotations

import json

import numpy as np
import pytest

from gecodec import container
from gecodec.bundle import load_bundle
from gecodec.codec import Codec
from gecodec.imageio import tensor_to_pixels
from gecodec.quantize import unpack_bits

from conftest import GOLDEN, TINY_BUNDLE

EXPECTED = json.loads((GOLDEN / "expected.json").read_text())


def test_tiny_bundle_is_the_one_the_golden_files_were_made_with():
    assert load_bundle(TINY_BUNDLE).sha256 == EXPECTED["bundle_sha256"]


@pytest.mark.parametrize("name", sorted(EXPECTED["files"]))
def test_golden_file_header_and_values(name):
    spec = EXPECTED["files"][name]
    data = (GOLDEN / name).read_bytes()
    assert len(data) == spec["bytes"]
    header, payload = container.read(data)
    want = spec["header"]
    assert header.model_hex == want["model_id"]
    assert (header.bits, header.seed, header.mode, header.count) == (want["bits"], want["seed"], want["mode"], want["count"])
    assert header.original_size == (tuple(want["original_size"]) if want["original_size"] else None)
    assert header.value_range == (tuple(want["value_range"]) if want["value_range"] else None)
    assert header.hints == want["hints"]
    count = header.count or load_bundle(TINY_BUNDLE).m
    assert unpack_bits(payload, count, header.bits).tolist() == spec["values"]


@pytest.mark.parametrize("name", sorted(EXPECTED["files"]))
def test_golden_file_decodes_to_the_recorded_pixels(name):
    decoded = Codec(load_bundle(TINY_BUNDLE), "cpu").decode_batch([(GOLDEN / name).read_bytes()])[0]
    pixels = tensor_to_pixels(decoded).astype(np.int16)
    recorded = np.load(GOLDEN / (name + ".decoded.npy")).astype(np.int16)
    # The same file decodes to the same pixels; allow a level or two for other CPUs' float rounding.
    assert np.abs(pixels - recorded).max() <= 2
