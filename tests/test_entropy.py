"""Entropy-coded (version 2) files: the entropy model, the container's version 2, rate control."""

from __future__ import annotations

import dataclasses
import struct

import msgpack
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gecodec.image_encoding import encode_image
from gecodec import container
from gecodec.bundle import load_bundle, save_bundle
from gecodec.codec import Codec
from gecodec.container import Header
from gecodec.entropy import QUALITIES, TABLE_TOTAL, EntropyModel, fit_entropy_model
from gecodec.errors import BundleError, FormatError, GecError, OptionError

from conftest import ENTROPY_BUNDLE, GOLDEN, assert_parses_or_refuses, with_crc16


@pytest.fixture(scope="module")
def model() -> EntropyModel:
    return fit_entropy_model(torch.randn(2000, 16) * torch.linspace(0.2, 2.0, 16) + 0.5)


@pytest.fixture
def codec() -> Codec:
    return Codec(load_bundle(ENTROPY_BUNDLE), "cpu")


def images(n: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 3, 16, 16, generator=torch.Generator().manual_seed(seed)) * 2 - 1


@pytest.mark.parametrize("density", ["gaussian", "laplace", "empirical"])
def test_every_table_sums_to_the_coders_total_with_no_empty_symbol(density):
    fitted = fit_entropy_model(torch.randn(500, 4), density)
    for quality in range(QUALITIES):
        table = fitted.table(quality)
        assert table.sum() == TABLE_TOTAL and table.min() >= 1
        assert len(table) == 2 * int(fitted.radii[quality]) + 1


def test_steps_shrink_as_quality_rises(model):
    assert bool((model.steps[1:] < model.steps[:-1]).all())


@pytest.mark.parametrize("quality", [0, 37, 100])
def test_symbols_survive_coding_and_dequantize_within_half_a_step(model, quality):
    values = torch.randn(20, 16) * torch.linspace(0.2, 2.0, 16) + 0.5
    symbols = model.quantize(values, quality)
    for row, original in zip(symbols, values):
        payload = model.encode(row, quality)
        assert np.array_equal(model.decode(payload, quality), row)
        error = (model.dequantize(row, quality) - original).abs()
        inside = (original - model.mean).abs() < 6 * model.scale  # away from the clipped tails
        assert bool((error[inside] <= model.step(quality)[inside] / 2 + 1e-5).all())


def test_higher_quality_gives_larger_payloads_on_average(model):
    values = torch.randn(50, 16) * torch.linspace(0.2, 2.0, 16) + 0.5
    sizes = [np.mean([len(model.encode(row, q)) for row in model.quantize(values, q)]) for q in (0, 30, 60, 100)]
    assert sizes == sorted(sizes) and sizes[-1] > sizes[0] * 3


@pytest.mark.parametrize("damage", ["truncated", "trailing byte", "trailing zero", "empty"])
def test_a_payload_that_does_not_match_its_measurements_is_a_format_error(model, damage):
    payload = model.encode(model.quantize(torch.randn(1, 16), 80)[0], 80)
    bad = {"truncated": payload[:-2], "trailing byte": payload + b"\x07", "trailing zero": payload + b"\0",
           "empty": b""}[damage]
    with pytest.raises(FormatError):
        model.decode(bad, 80)


def test_tables_that_do_not_sum_to_the_total_are_refused(model):
    broken = model.frequencies.clone()
    broken[0] += 1
    with pytest.raises(ValueError, match="does not sum"):
        dataclasses.replace(model, frequencies=broken)


def test_a_bundle_whose_table_is_off_is_a_bundle_error(tmp_path):
    bundle = load_bundle(ENTROPY_BUNDLE)
    frequencies = bundle.entropy.frequencies.clone()
    frequencies[5] -= 1
    frequencies[6] += 2
    object.__setattr__(bundle.entropy, "frequencies", frequencies)  # bypass the check, as a forged file would
    path = tmp_path / "forged.safetensors"
    save_bundle(bundle, path)
    with pytest.raises(BundleError, match="does not sum"):
        load_bundle(path)


def test_the_entropy_model_survives_a_bundle_round_trip(tmp_path):
    bundle = load_bundle(ENTROPY_BUNDLE)
    save_bundle(bundle, tmp_path / "copy.safetensors", half=True)
    copy = load_bundle(tmp_path / "copy.safetensors")
    assert torch.equal(copy.entropy.frequencies, bundle.entropy.frequencies)
    assert copy.entropy.default_quality == bundle.entropy.default_quality


# -- the container, version 2 ----------------------------------------------------------------------


def test_a_default_version_2_file_has_a_10_byte_envelope(codec):
    data = codec.encode_batch(images(1))[0]
    layout = container.layout(data)
    assert data[:3] == b"GE\x02" and layout.fixed == 10 and layout.header == 0
    assert layout.total == 10 + layout.payload


def test_version_2_keeps_every_header_field():
    header = Header(model_id=0xDEADBEEF, quality=77, seed=2**40, original_size=(640, 480), hints={"iters": 9})
    parsed, payload = container.read(container.write(header, b"\x01\x02"))
    assert parsed == header and payload == b"\x01\x02"


@pytest.mark.parametrize("header, problem", [
    (Header(model_id=1, quality=101), "quality"),
    (Header(model_id=1, quality=5, bits=8), "either bits"),
    (Header(model_id=1, quality=5, mode="cs", count=4, value_range=(0.0, 1.0)), "ge mode only"),
])
def test_an_impossible_version_2_header_cannot_be_written(header, problem):
    with pytest.raises(OptionError, match=problem):
        container.write(header, b"\x01")


@pytest.mark.parametrize("body, problem", [
    (b"GE\x02" + bytes(4) + bytes([101]) + b"\x01", "quality"),
    (b"GE\x02" + bytes(4) + bytes([0x80 | 5]) + msgpack.packb({3: 10}) + b"\x01", "not allowed in version 2"),
    (b"GE\x02" + bytes(4) + bytes([0x80 | 5]) + msgpack.packb([1]) + b"\x01", "map"),
    (b"GE\x05" + bytes(4) + bytes([5]) + b"\x01", "version 5"),
])
def test_bad_version_2_headers_are_format_errors(body, problem):
    with pytest.raises(FormatError, match=problem):
        container.read(with_crc16(body))


def test_a_version_1_file_may_not_carry_the_version_2_seed_key():
    body = b"GEC\x01" + msgpack.packb([1, 8, 0, 0, {6: 3}]) + bytes(16)
    with pytest.raises(FormatError, match="not allowed in version 1"):
        container.read(body + struct.pack("<I", __import__("zlib").crc32(body)))


def test_a_flipped_bit_in_a_version_2_file_is_caught(codec):
    data = bytearray(codec.encode_batch(images(1))[0])
    data[9] ^= 0x10
    with pytest.raises(FormatError, match="checksum"):
        codec.parse(bytes(data))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(blob=st.binary(max_size=120), quality=st.integers(0, 255))
def test_fuzz_checksum_valid_version_2_files_parse_or_raise_format_errors(codec, blob, quality):
    assert_parses_or_refuses(codec, b"GE\x02" + struct.pack(">I", codec.bundle.model_id) + bytes([quality]) + blob)


# -- rate control ---------------------------------------------------------------------------------


def test_without_a_rate_a_model_with_an_entropy_model_writes_its_default_quality(codec, tiny):
    header, _ = container.read(codec.encode_batch(images(1))[0])
    assert header.quality == codec.bundle.entropy.default_quality and header.bits is None
    header, _ = container.read(Codec(tiny, "cpu").encode_batch(images(1))[0])
    assert (header.bits, header.quality) == (8, None)


def test_bits_still_give_a_version_1_file(codec):
    header, _ = container.read(codec.encode_batch(images(1), bits=6)[0])
    assert (header.version, header.bits) == (1, 6)


def test_an_entropy_coded_file_decodes_close_to_its_fixed_length_twin(codec):
    x = images(2)
    v2 = codec.decode_batch(codec.encode_batch(x, quality=100), iters=3)
    v1 = codec.decode_batch(codec.encode_batch(x, bits=8), iters=3)
    assert (v2 - v1).abs().max() < 0.1


def test_target_bytes_gives_the_largest_quality_that_fits(codec):
    x = images(3)
    for target in (16, 20, 26):
        for row, data in zip(x, codec.encode_batch(x, target_bytes=target)):
            header, _ = container.read(data)
            assert len(data) <= target
            if header.quality < 100:
                assert len(codec.encode_batch(row[None], quality=header.quality + 1)[0]) > target


@pytest.mark.parametrize("options, problem", [
    ({"quality": 101}, "quality must be"),
    ({"quality": -1}, "quality must be"),
    ({"target_bytes": 3}, "no file fits in 3 bytes"),
    ({"target_bytes": 0}, "positive"),
    ({"quality": 50, "bits": 8}, "give one of"),
    ({"quality": 50, "mode": "cs"}, "cs files"),
])
def test_bad_rate_settings_are_option_errors(codec, options, problem):
    with pytest.raises(OptionError, match=problem):
        codec.encode_batch(images(1), **options)


def test_quality_needs_a_model_with_an_entropy_model(tiny):
    with pytest.raises(OptionError, match="no entropy model"):
        Codec(tiny, "cpu").encode_batch(images(1), quality=50)


def test_a_version_2_file_for_a_model_without_an_entropy_model_is_a_format_error(tiny):
    data = container.write(Header(model_id=tiny.model_id, quality=50), b"\x05")
    with pytest.raises(FormatError, match="no entropy model"):
        Codec(tiny, "cpu").parse(data)


def test_every_bad_version_2_file_is_a_gec_error(codec):
    good = codec.encode_batch(images(1), quality=90)[0]
    header, payload = container.read(good)
    for payload_variant in (payload[:-1], payload + b"\x01", payload[1:]):
        with pytest.raises(GecError):
            codec.decode_batch([container.write(header, payload_variant)], iters=1)


def test_spec_worked_example_of_version_2():
    data = (GOLDEN / "v2-q60.gec").read_bytes()
    assert data[:8].hex(" ") == "47 45 02 61 26 05 6c 3c" and len(data) == 22
    assert data[-2:] == struct.pack("<H", container.crc16(data[:-2])) == bytes.fromhex("3bcd")
    with_extras = (GOLDEN / "v2-q5-nonsquare.gec").read_bytes()
    assert with_extras[7:15].hex(" ") == "85 82 06 09 02 92 28 18"


def test_the_default_quality_is_the_lowest_within_a_tenth_of_a_db_of_the_best():
    from gecodec.train.evaluate import default_quality

    curve = [{"quality": q, "psnr": p} for q, p in [(0, 18.0), (30, 23.5), (60, 24.02), (80, 24.1), (100, 24.08)]]
    assert default_quality(curve) == 60


@pytest.mark.parametrize("options", [{"quality": 50}, {"bits": 8}])
def test_a_grayscale_input_decodes_to_grayscale(codec, options):
    from conftest import face_like

    gray = face_like().convert("L")
    data = encode_image(codec, gray, **options)[0]
    assert container.read(data)[0].grayscale
    decoded = codec.decode_image(data, iters=1)
    assert decoded.mode == "L" and decoded.size == gray.size
    assert not container.read(encode_image(codec, face_like(), **options)[0])[0].grayscale


def test_the_grayscale_flag_must_be_a_boolean():
    body = b"GE\x02" + bytes(4) + bytes([0x80 | 5]) + msgpack.packb({7: 1}) + b"\x01"
    with pytest.raises(FormatError, match="grayscale"):
        container.read(with_crc16(body))
    header = Header(model_id=3, quality=5, grayscale=True)
    assert container.read(container.write(header, b"\x01"))[0] == header
