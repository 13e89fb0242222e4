"""The .gec container: layout, size budget, and every kind of damaged file."""

from __future__ import annotations

import struct
import zlib

import msgpack
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gecodec import container
from gecodec.container import Header
from gecodec.errors import FormatError
from gecodec.quantize import pack_bits

DEFAULT_PAYLOAD = pack_bits(np.arange(128) * 37 % 256, 8)  # m = 128 at 8 bits: 128 bytes, incompressible


def default_file() -> bytes:
    return container.write(Header(model_id=0x1234ABCD, bits=8), DEFAULT_PAYLOAD)


def with_crc(body: bytes) -> bytes:
    return body + struct.pack("<I", zlib.crc32(body))


def test_default_file_overhead_is_17_bytes():
    data = default_file()
    assert len(data) == 145  # the worked example in formats/gec.md
    assert len(data) - len(DEFAULT_PAYLOAD) == 17
    assert data[:4] == b"GEC\x01"


def test_round_trip_keeps_every_header_field():
    header = Header(model_id=7, bits=5, seed=2**40, mode="cs", original_size=(640, 480), count=500,
                    value_range=(-0.75, 1.5), hints={"iters": 100, "lam": 0.5})
    parsed, payload = container.read(container.write(header, b"\x01\x02\x03"))
    assert parsed == header
    assert payload == b"\x01\x02\x03"


def test_compressible_payload_is_stored_with_zstd():
    payload = bytes(300)
    data = container.write(Header(model_id=1, bits=8), payload)
    assert container.layout(data).payload_encoding == "zstd"
    assert len(data) < len(payload)
    assert container.read(data)[1] == payload


def test_layout_adds_up():
    data = default_file()
    parts = container.layout(data)
    assert (parts.fixed, parts.header, parts.payload) == (8, 9, 128)
    assert parts.fixed + parts.header + parts.payload == parts.total == len(data)


def test_truncated_file_raises_format_error():
    data = default_file()
    for cut in (0, 3, 8, 20, len(data) - 1):
        with pytest.raises(FormatError):
            container.read(data[:cut])


def test_bit_flip_raises_checksum_error():
    data = bytearray(default_file())
    data[50] ^= 0x10
    with pytest.raises(FormatError, match="checksum"):
        container.read(bytes(data))


def test_wrong_magic_raises_format_error():
    with pytest.raises(FormatError, match="magic"):
        container.read(b"PNG" + default_file()[3:])


def test_wrong_version_raises_format_error():
    body = default_file()[:-4]
    with pytest.raises(FormatError, match="version 2"):
        container.read(with_crc(body[:3] + b"\x02" + body[4:]))


def test_wrong_checksum_raises_format_error():
    data = default_file()
    with pytest.raises(FormatError, match="checksum"):
        container.read(data[:-4] + b"\x00\x00\x00\x00")


def test_oversized_header_raises_format_error():
    header = msgpack.packb([1, 8, 0, 0, {9: b"\x00" * 2000}])
    with pytest.raises(FormatError, match="header"):
        container.read(with_crc(b"GEC\x01" + header + b"\x00" * 16))


def test_header_with_wrong_types_raises_format_error():
    for fields in ([1, 8, 0], ["id", 8, 0, 0], [1, 8, -1, 0], [1, 8, 0, 9], [1, 8, 0, 0, {1: 7}], {"a": 1}):
        with pytest.raises(FormatError):
            container.read(with_crc(b"GEC\x01" + msgpack.packb(fields) + b"\x00"))


def checksummed_file(extras: dict) -> bytes:
    """A well-formed, checksum-valid file whose header carries ``extras``, as a hostile encoder could write."""
    return with_crc(b"GEC\x01" + msgpack.packb([1, 8, 0, 0, extras]) + DEFAULT_PAYLOAD)


@pytest.mark.parametrize("extras, field", [
    ({5: {"iters": 2**63 - 1}}, "iters"),
    ({5: {"iters": 5001}}, "iters"),
    ({5: {"restarts": 100000}}, "restarts"),
    ({5: {"restarts": 0}}, "restarts"),
    ({5: {"lr": 1e308}}, "lr"),
    ({5: {"lr": float("nan")}}, "lr"),
    ({5: {"lam": float("inf")}}, "lam"),
    ({2: [1, 2**31 - 1]}, "original size"),
    ({2: [20000, 20000]}, "original size"),
    ({1: 1, 3: 16, 4: [float("-inf"), float("inf")]}, "quantizer range"),
    ({1: 1, 3: 16, 4: [0.0, float("nan")]}, "quantizer range"),
], ids=["iters-huge", "iters-over", "restarts-huge", "restarts-zero", "lr-huge", "lr-nan", "lam-inf",
        "size-tall", "size-square", "range-infinite", "range-nan"])
def test_a_header_field_over_its_limit_is_a_format_error_naming_it(extras, field):
    with pytest.raises(FormatError, match=field):
        container.read(checksummed_file(extras))


def test_header_fields_at_their_limits_are_accepted():
    hints = {"iters": 5000, "restarts": 16, "lam": 100.0, "lr": 10.0}
    header, _ = container.read(checksummed_file({2: [8192, 8192], 5: hints}))
    assert header.original_size == (8192, 8192) and header.hints == hints


def test_an_encoder_cannot_write_a_hint_over_its_limit():
    from gecodec.errors import OptionError

    with pytest.raises(OptionError, match="iters"):
        container.write(Header(model_id=1, bits=8, hints={"iters": 10_000}), DEFAULT_PAYLOAD)


def test_oversized_file_raises_format_error():
    with pytest.raises(FormatError, match="larger"):
        container.read(b"GEC\x01" + bytes(container.MAX_FILE_SIZE))


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_fuzz_truncations_and_bit_flips_only_raise_format_error(data):
    original = bytearray(default_file() if data.draw(st.booleans()) else container.write(
        Header(model_id=3, bits=4, mode="cs", count=10, value_range=(-1.0, 1.0), original_size=(9, 9)), bytes(5)))
    flips = data.draw(st.lists(st.integers(0, len(original) * 8 - 1), min_size=1, max_size=4))
    for bit in flips:
        original[bit // 8] ^= 1 << (bit % 8)
    cut = data.draw(st.integers(0, len(original)))
    damaged = bytes(original[:cut])
    try:
        container.read(damaged)
    except FormatError:
        return
    # A damaged file may only parse if the damage cancelled out or hit nothing checked: never silently.
    assert zlib.crc32(damaged[:-4]) == struct.unpack("<I", damaged[-4:])[0]


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_fuzz_arbitrary_bytes_only_raise_format_error(blob):
    for candidate in (blob, with_crc(b"GEC\x01" + blob)):
        try:
            container.read(candidate)
        except FormatError:
            pass


def test_spec_worked_example_for_a_cs_file():
    payload = pack_bits(np.random.default_rng(0).integers(0, 64, 500), 6)
    header = Header(model_id=0x1234ABCD, bits=6, seed=3, mode="cs", count=500, value_range=(-1.5, 2.0),
                    original_size=(640, 480))
    data = container.write(header, payload)
    assert (len(data), container.layout(data).header) == (419, 36)
    assert data[4:13].hex(" ") == "95 ce 12 34 ab cd 06 03 00"
