"""The .gec container: layout, size budget, and every kind of damaged file."""

from __future__ import annotations

import struct
import tracemalloc
import zlib

import msgpack
import numpy as np
import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from gecodec import container
from gecodec.bundle import load_bundle
from gecodec.codec import Codec
from gecodec.container import Header
from gecodec.errors import FormatError
from gecodec.quantize import pack_bits

from conftest import ENTROPY_BUNDLE, GOLDEN, assert_parses_or_refuses, with_crc16

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


# -- zstd payloads: streamed under a cap from the header, one frame and nothing after it ----------------------------


def zstd_file(frame: bytes, fields: list | None = None) -> bytes:
    return with_crc(b"GEC\x01" + msgpack.packb(fields or [1, 8, 0, container.PAYLOAD_ZSTD]) + frame)


def zeros_frame(size: int, declare_size: bool) -> bytes:
    """``size`` zero bytes as one zstd frame with a 64 KiB window: far smaller than any payload limit."""
    params = zstandard.ZstdCompressionParameters.from_level(3, window_log=16, write_content_size=declare_size)
    compressor = zstandard.ZstdCompressor(compression_params=params).compressobj(size=size if declare_size else -1)
    return compressor.compress(bytes(size)) + compressor.flush()


@pytest.mark.parametrize("declare_size", [True, False], ids=["size-declared", "size-unknown"])
def test_a_zstd_bomb_is_refused_after_reading_little_more_than_the_cap(declare_size):
    data = zstd_file(zeros_frame(64 << 20, declare_size))  # 64 MiB in a 4 KB frame
    tracemalloc.start()
    try:
        with pytest.raises(FormatError, match="decompresses to more than 65536 bytes"):
            container.read(data)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20  # the old one-shot decompression held all 64 MiB


def test_a_frame_claiming_a_terabyte_is_a_format_error_not_a_memory_error():
    # single segment, 8-byte content size 2^40, one 100-byte RLE block
    frame = b"\x28\xb5\x2f\xfd\xe0" + struct.pack("<Q", 1 << 40) + (100 << 3 | 1 << 1 | 1).to_bytes(3, "little") + b"\0"
    with pytest.raises(FormatError, match="does not decompress"):
        container.read(zstd_file(frame))


def test_a_zstd_window_over_the_payload_limit_is_refused():
    params = zstandard.ZstdCompressionParameters.from_level(3, window_log=17)
    compressor = zstandard.ZstdCompressor(compression_params=params).compressobj()
    frame = compressor.compress(bytes(100)) + compressor.flush()
    assert zstandard.get_frame_parameters(frame).window_size == 1 << 17
    with pytest.raises(FormatError, match="does not decompress"):
        container.read(zstd_file(frame))


def test_the_cap_is_what_the_headers_count_and_bits_allow():
    fields = [1, 4, 0, container.PAYLOAD_ZSTD, {1: 1, 3: 10, 4: [-1.0, 1.0]}]  # cs, 10 values of 4 bits: 5 bytes
    frame = zstandard.ZstdCompressor(write_content_size=False).compress(bytes(6))
    with pytest.raises(FormatError, match="more than 5 bytes"):
        container.read(zstd_file(frame, fields))
    frame = zstandard.ZstdCompressor(write_content_size=False).compress(bytes(5))
    assert container.read(zstd_file(frame, fields))[1] == bytes(5)


def test_the_largest_payload_still_round_trips_through_zstd():
    data = container.write(Header(model_id=1, bits=8), bytes(container.MAX_PAYLOAD_SIZE))
    assert container.layout(data).payload_encoding == "zstd"
    assert container.read(data)[1] == bytes(container.MAX_PAYLOAD_SIZE)


@pytest.mark.parametrize("tail, problem", [
    (b"junk", "bytes after its zstd frame"),
    (zstandard.ZstdCompressor().compress(b"x"), "bytes after its zstd frame"),  # a second frame
    (None, "truncated"),  # the frame's last byte cut off
], ids=["junk", "second-frame", "cut"])
def test_a_zstd_payload_is_one_whole_frame_and_nothing_after_it(tail, problem):
    frame = zstandard.ZstdCompressor(level=19, write_content_size=False).compress(DEFAULT_PAYLOAD + bytes(300))
    with pytest.raises(FormatError, match=problem):
        container.read(zstd_file(frame[:-1] if tail is None else frame + tail))


# -- strict parsing: every field has its one msgpack type, and every key its version -----------------------------


@pytest.mark.parametrize("extras, problem", [
    ({2: {5: 64, 6: 64}}, "original size .extras key 2. must be a msgpack array, not map"),  # was a KeyError
    ({2: b"\x40\x40"}, "original size .extras key 2. must be a msgpack array, not bin"),  # was accepted as bytes
    ({1: 1, 3: 16, 4: {0.5: 1.0, 1.5: 2.0}}, "quantizer range .extras key 4. must be a msgpack array, not map"),
    ({2: [64, 64], 8: {0: 1}}, "crop .extras key 8. must be a msgpack array, not map"),
    ({5: [["iters", 3]]}, "decoder hints .extras key 5. must be a msgpack map, not array"),
    ({1: True, 3: 16, 4: [0.0, 1.0]}, "mode .extras key 1. must be a msgpack int, not bool"),
    ({3: None}, "measurement count .extras key 3. must be a msgpack int, not nil"),
    ({3: 128.0}, "measurement count .extras key 3. must be a msgpack int, not float"),
    ({7: 1}, "grayscale flag .extras key 7. must be a msgpack bool, not int"),
    ({0: 1}, "key 0 is not allowed in version 1"),
    ({14: [1]}, "key 14 is not allowed in version 1"),
    ({13: [64, 64, 0, 0, 0, 0], 2: [64, 64]}, "a position holds the photo's size and the face's square"),
    ({13: [640, 480, 0, 9999, 0, 0]}, "does not lie on the 640x480 photo"),
    ({13: [640, 480, 0, 0]}, "position .* is not six integers"),
    ({9: [0, 3, 7, 5]}, "key 9 is not allowed in version 1"),
    ({True: 1}, "integer keys"),
    ({2: msgpack.ExtType(1, b"")}, "msgpack extension"),  # an empty one passes msgpack's max_ext_len=0
], ids=["size-map", "size-bin", "range-map", "crop-map", "hints-array", "mode-bool", "count-nil", "count-float",
        "gray-int", "key-0", "key-14", "position-and-size", "position-off-photo", "position-short", "layer-in-v1",
        "bool-key", "size-ext"])
def test_a_version_1_extras_value_of_the_wrong_type_or_key_is_a_format_error(extras, problem):
    with pytest.raises(FormatError, match=problem):
        container.read(checksummed_file(extras))


def test_a_payload_encoding_given_as_a_bool_is_refused():
    frame = zstandard.ZstdCompressor(write_content_size=False).compress(DEFAULT_PAYLOAD)
    with pytest.raises(FormatError, match="unknown payload encoding True"):
        container.read(zstd_file(frame, [1, 8, 0, True]))


def test_a_map_that_repeats_a_key_is_refused():
    extras = b"\x82\x07\xc3\x07\xc3"  # {7: true, 7: true}: msgpack itself would keep the last
    with pytest.raises(FormatError, match="repeats a key"):
        container.read(with_crc(b"GEC\x01\x95\x01\x08\x00\x00" + extras + DEFAULT_PAYLOAD))
    hints = b"\x82" + msgpack.packb("iters") + b"\x03" + msgpack.packb("iters") + b"\x05"  # {"iters": 3, "iters": 5}
    with pytest.raises(FormatError, match="repeats a key"):
        container.read(with_crc(b"GEC\x01\x95\x01\x08\x00\x00\x81\x05" + hints + DEFAULT_PAYLOAD))


def v2_body(version: int, extras: dict, payload: bytes = b"\1\2\3\4\5") -> bytes:
    return b"GE" + bytes([version]) + struct.pack(">I", 1) + bytes([50 | container.HAS_EXTRAS]) + msgpack.packb(extras) + payload


@pytest.mark.parametrize("version", [container.VERSION_V2, container.VERSION_V3])
@pytest.mark.parametrize("extras, problem", [
    ({10: {0: 1, 1: 2}}, "refinement layer .extras key 10. must be a msgpack array, not map"),
    ({2: b"\x40\x40"}, "original size .extras key 2. must be a msgpack array, not bin"),
    ({6: -1.5}, "seed .extras key 6. must be a msgpack int, not float"),
    ({12: [0, 3, 7]}, "is not \\[level, base bytes, check code, base check\\]"),
], ids=["layer-map", "size-bin", "seed-float", "start-layer-3-fields"])
def test_a_version_2_or_3_extras_value_of_the_wrong_type_is_a_format_error(version, extras, problem):
    with pytest.raises(FormatError, match=problem):
        container.read(with_crc16(v2_body(version, extras)))


def test_a_dct_layer_without_a_base_check_is_legacy_version_2_only():
    assert container.read(with_crc16(v2_body(container.VERSION_V2, {9: [0, 3, 7]})))[0].layer.base_check is None
    with pytest.raises(FormatError, match="without a base check .key 9 of 3 fields. is refused in version 3"):
        container.read(with_crc16(v2_body(container.VERSION_V3, {9: [0, 3, 7]})))


# -- fuzz: checksum-valid headers whose fields take any msgpack type --------------------------------------------------

ANY_MSGPACK = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-2**63, 2**64 - 1), st.floats(), st.text(max_size=6),
              st.binary(max_size=6), st.builds(msgpack.ExtType, st.integers(0, 127), st.binary(max_size=1))),
    lambda inner: st.one_of(st.lists(inner, max_size=5),
                            st.dictionaries(st.one_of(st.integers(-1, 13), st.booleans(), st.floats(), st.text(max_size=4)),
                                            inner, max_size=5)),
    max_leaves=10,
)
SMALL_INT = st.integers(0, 200)
HONEST_EXTRAS = {  # a plausible value of each key, so that wrong types meet otherwise passing headers
    1: st.sampled_from([0, 1]), 2: st.lists(st.integers(1, 100), min_size=2, max_size=2), 3: st.integers(1, 64),
    4: st.lists(st.floats(-2, 2), min_size=2, max_size=2).map(sorted),
    5: st.dictionaries(st.sampled_from(["iters", "restarts", "lam", "lr"]), st.one_of(st.integers(1, 9), st.floats(0.01, 1))),
    6: SMALL_INT, 7: st.just(True), 8: st.lists(st.integers(0, 100), min_size=4, max_size=4),
    **{key: st.lists(st.integers(0, 20), min_size=3, max_size=4) for key in (9, 10, 11, 12)},
}


def retypings(value: object) -> list:
    """The same content under other msgpack types: an array as a map or bin, a number as a bool, float or str;
    or an empty extension (the one kind that msgpack's max_ext_len=0 lets through)."""
    empty_ext = msgpack.ExtType(0, b"")
    if isinstance(value, list):
        return [dict(enumerate(value)), dict(enumerate(value, 5)), bytes(int(v) % 256 for v in value), [value], empty_ext]
    if isinstance(value, dict):
        return [[list(item) for item in value.items()], list(value.values()), empty_ext]
    if isinstance(value, bool):
        return [1, "true", b"\x01", empty_ext]
    return [bool(value), float(value), str(value), bytes([int(value) % 256]), None, empty_ext]


def wrong(honest: st.SearchStrategy) -> st.SearchStrategy:
    """A wrong-typed field: the honest value re-typed, or any msgpack value at all."""
    return st.one_of(honest.flatmap(lambda value: st.sampled_from(retypings(value))), ANY_MSGPACK)


def fuzz_extras(data: st.DataObject) -> dict:
    """One or two keys, each honest or wrong, so that a wrong field is often the only one."""
    keys = data.draw(st.sets(st.integers(1, 12), min_size=1, max_size=2), label="keys")
    return {key: data.draw(st.one_of(HONEST_EXTRAS[key], wrong(HONEST_EXTRAS[key])), label=f"key {key}") for key in keys}


def assert_well_typed(header: Header) -> None:
    """What a parsed header holds is of the types its fields document (no bytes for a size, no bool for an int)."""
    for value in (header.model_id, header.seed, header.bits, header.count, header.quality):
        assert value is None or type(value) is int
    for value, kind in ((header.original_size, int), (header.crop, int), (header.value_range, float)):
        assert value is None or (type(value) is tuple and all(type(v) is kind for v in value))
    assert type(header.grayscale) is bool and type(header.hints) is dict
    assert header.layer is None or all(type(v) is int for v in header.layer[:3])


@settings(max_examples=400, deadline=None)
@given(st.data())
def test_fuzz_version_1_headers_with_wrong_typed_fields_parse_or_raise_format_error(data):
    honest = {"model id": SMALL_INT, "bits": st.integers(1, 12), "seed": SMALL_INT, "encoding": st.sampled_from([0, 1])}
    broken = data.draw(st.one_of(st.none(), st.sampled_from([*honest, "extras"])), label="broken")  # at most one
    fields = [data.draw(wrong(value) if name == broken else value, label=name) for name, value in honest.items()]
    fields += [data.draw(ANY_MSGPACK) if broken == "extras" else fuzz_extras(data)]
    payload = DEFAULT_PAYLOAD
    if fields[3] == container.PAYLOAD_ZSTD:
        payload = zstandard.ZstdCompressor(write_content_size=data.draw(st.booleans())).compress(DEFAULT_PAYLOAD)
    try:
        header, _ = container.read(with_crc(b"GEC\x01" + msgpack.packb(fields) + payload))
    except FormatError:
        return
    assert_well_typed(header)


@pytest.fixture(scope="module")
def coders() -> dict[int, Codec]:
    """A codec per entropy-coded version: the tiny entropy model (version 2) and the tiny transform model (3)."""
    return {container.VERSION_V2: Codec(load_bundle(ENTROPY_BUNDLE), "cpu"),
            container.VERSION_V3: Codec(load_bundle(GOLDEN / "tiny-transform-test.safetensors"), "cpu")}


@settings(max_examples=300, deadline=None)
@given(version=st.sampled_from([container.VERSION_V2, container.VERSION_V3]), data=st.data())
def test_fuzz_version_2_and_3_extras_with_wrong_typed_fields_parse_or_raise_format_error(coders, version, data):
    extras = data.draw(ANY_MSGPACK) if data.draw(st.integers(0, 9)) == 0 else fuzz_extras(data)  # now and then no map
    golden = (GOLDEN / f"v{version}-q60.gec").read_bytes()  # a real payload, so that honest headers decode
    body = golden[:7] + bytes([golden[7] | container.HAS_EXTRAS]) + msgpack.packb(extras) + golden[8:-2]
    assert_parses_or_refuses(coders[version], body)
    try:
        header, _ = container.read(with_crc16(body))
    except FormatError:
        return
    assert_well_typed(header)
