"""Encoding and decoding with the tiny model: round trips, determinism, both measurement modes."""

from __future__ import annotations

import struct
import zlib

import msgpack
import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from gecodec.image_encoding import encode_image
from gecodec import container
from gecodec.codec import Codec, search_options
from gecodec.errors import FormatError, GecError, OptionError
from gecodec.imageio import image_to_tensor
from gecodec.search import SearchOptions, latent_search

from conftest import FAST, face_like


@pytest.fixture
def codec(tiny) -> Codec:
    return Codec(tiny, "cpu")


def images(n: int) -> torch.Tensor:
    return torch.stack([image_to_tensor(face_like(seed=i), 16) for i in range(n)])


def test_encode_batch_makes_one_small_file_per_image(codec):
    files = codec.encode_batch(images(3), bits=8)
    assert len(files) == 3
    for data in files:
        assert len(data) == 17 + codec.bundle.m  # m values of 8 bits plus the fixed overhead


def test_decode_batch_returns_images_at_model_size(codec):
    out = codec.decode_batch(codec.encode_batch(images(3)), **FAST)
    assert out.shape == (3, 3, 16, 16)
    assert float(out.abs().max()) <= 1.0


def test_decoding_twice_gives_identical_pixels(codec):
    data = codec.encode_batch(images(1), seed=5)[0]
    first = codec.decode_batch([data], **FAST)
    second = codec.decode_batch([data], **FAST)
    assert torch.equal(first, second)


def test_seed_in_file_changes_the_search_start(codec):
    x = images(1)
    a, b = (codec.decode_batch(codec.encode_batch(x, seed=s), iters=3, restarts=1) for s in (1, 2))
    assert not torch.equal(a, b)


def test_search_recovers_an_image_the_generator_made(tiny):
    """Toy setting with a known answer: the target is G(z0), measured by EN."""
    torch.manual_seed(0)
    target_image = tiny.generator(torch.randn(2, tiny.generator.config.latent_dim))
    targets = tiny.encoder(target_image).detach()
    short = latent_search(tiny.generator, tiny.encoder, targets, [0, 1], SearchOptions(iters=1, restarts=2, lam=0.0))
    long = latent_search(tiny.generator, tiny.encoder, targets, [0, 1], SearchOptions(iters=150, restarts=2, lam=0.0))
    short_error = (short.images - target_image).pow(2).mean()
    long_error = (long.images - target_image).pow(2).mean()
    assert bool((long.objective < short.objective).all())
    assert long_error < 0.5 * short_error


def test_cs_mode_round_trip(codec):
    files = codec.encode_batch(images(2), bits=6, mode="cs", count=40, seed=3)
    header, _ = container.read(files[0])
    assert (header.mode, header.count, header.bits) == ("cs", 40, 6)
    assert header.value_range is not None
    assert codec.decode_batch(files, **FAST).shape == (2, 3, 16, 16)


def test_cs_mode_matrix_is_regenerated_from_the_seed(codec):
    a = codec.gaussian(10, 3).matrix
    b = Codec(codec.bundle, "cpu").gaussian(10, 3).matrix
    assert torch.equal(a, b)
    assert not torch.equal(a, codec.gaussian(10, 4).matrix)


def test_file_for_another_model_is_refused(codec):
    data = container.write(container.Header(model_id=0xABCDEF01, bits=8), bytes(codec.bundle.m))
    with pytest.raises(FormatError, match="abcdef01"):
        codec.decode_batch([data])


def test_explicit_options_override_file_hints_which_override_defaults():
    header = container.Header(model_id=1, bits=8, hints={"iters": 7, "lr": 0.5})
    assert search_options(header) == SearchOptions(iters=7, lr=0.5)
    assert search_options(header, iters=3, lr=None) == SearchOptions(iters=3, lr=0.5)
    with pytest.raises(OptionError):
        search_options(header, bogus=1)


@pytest.mark.parametrize("bad", [{"iters": -1}, {"restarts": 0}, {"lam": -1.0}, {"lr": 0.0}])
def test_search_options_out_of_range_are_refused(bad):
    with pytest.raises(OptionError):
        SearchOptions(**bad)


def test_encode_refuses_images_of_the_wrong_shape(codec):
    with pytest.raises(OptionError):
        codec.encode_batch(torch.zeros(1, 3, 32, 32))


def test_non_square_image_decodes_to_its_face_crop_and_remembers_its_size(codec):
    with pytest.warns(UserWarning, match="no face geometry; using the centre crop"):  # the tiny model has none
        data = encode_image(codec, face_like(40, 24))[0]
    header = container.read(data)[0]
    assert header.original_size == (40, 24) and header.crop is None  # the centre square needs no crop field
    assert codec.decode_image(data, **FAST).size == (16, 16)
    assert codec.decode_image(data, size=48, **FAST).size == (48, 48)
    assert codec.decode_image(data, paste_into=face_like(40, 24), **FAST).size == (40, 24)


def test_position_can_be_left_out_of_the_file(codec):
    photo = face_like(40, 24)
    small = encode_image(codec, photo, align="none", position=False)[0]
    assert container.read(small)[0].original_size is None
    assert len(small) < len(encode_image(codec, photo, align="none")[0])


@pytest.mark.parametrize("bad", [{"seed": -1}, {"mode": "xx"}, {"bits": 1}, {"mode": "cs", "count": 10**6}])
def test_bad_encode_options_raise_option_error(codec, bad):
    with pytest.raises(OptionError):
        codec.encode_batch(images(1), **bad)


def test_a_cs_file_with_more_measurements_than_pixel_values_is_refused_before_any_work(codec):
    too_many = 3 * codec.image_size**2 + 1
    header = container.Header(model_id=codec.bundle.model_id, bits=8, mode="cs", count=too_many, value_range=(0.0, 1.0))
    data = container.write(header, bytes(too_many))
    with pytest.raises(FormatError, match=f"{too_many} measurements"):
        codec.parse(data)


def test_user_settings_may_go_past_the_limits_a_file_may_ask_for():
    header = container.Header(model_id=1, bits=8, hints={"iters": 5000})
    assert search_options(header, iters=6000, restarts=20).iters == 6000


def test_the_cs_matrix_cache_is_bounded_in_bytes_and_keeps_the_most_recent(codec, monkeypatch: pytest.MonkeyPatch):
    from gecodec import codec as codec_module

    one = codec._matrix_bytes(16)
    monkeypatch.setattr(codec_module, "GAUSSIAN_CACHE_BYTES", 3 * one)
    for seed in range(50):
        codec.gaussian(16, seed)
    assert list(codec._gaussians) == [(16, 47), (16, 48), (16, 49)]
    reused = codec.gaussian(16, 49)
    assert codec.gaussian(16, 49) is reused
    codec.gaussian(64, 0)  # larger than the whole cache: drawn alone, the cache emptied first
    assert list(codec._gaussians) == [(64, 0)]


def test_cs_files_with_distinct_seeds_decode_in_one_batch_as_they_do_alone(codec):
    files = [codec.encode_batch(images(1), mode="cs", seed=seed, count=40)[0] for seed in range(5)]
    settings = {"iters": 2, "restarts": 1}
    together = Codec(codec.bundle).decode_batch(files, **settings)  # matrices drawn two at a time, on threads
    alone = torch.cat([Codec(codec.bundle).decode_batch([data], **settings) for data in files])
    assert torch.equal(together, alone)


def test_a_quantizer_range_in_a_ge_header_applies_as_the_spec_says(codec):
    m = codec.bundle.m
    header = container.Header(model_id=codec.bundle.model_id, bits=8, value_range=(-2.0, 2.0))
    parsed = codec.parse(container.write(header, bytes([255]) * m))
    assert torch.allclose(parsed.values, torch.full((m,), 2.0))


EXTREME_INTS = st.integers(-2**63, 2**64 - 1)
ANY_FLOATS = st.floats(allow_nan=True, allow_infinity=True)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(  # each field is usually honest and sometimes extreme, so that both paths are exercised
    bits=st.one_of(st.integers(2, 12), st.integers(0, 40)), seed=st.integers(0, 2**64 - 1),
    mode=st.sampled_from([0, 0, 1, 2]),
    size=st.one_of(st.none(), st.lists(st.integers(1, 300), min_size=2, max_size=2),
                   st.lists(EXTREME_INTS, min_size=2, max_size=2)),
    count=st.one_of(st.none(), st.integers(1, 64), st.integers(0, 70_000)),
    value_range=st.one_of(st.none(), st.tuples(st.floats(-10, 0), st.floats(0.1, 10)).map(list),
                          st.lists(ANY_FLOATS, min_size=2, max_size=2)),
    hints=st.dictionaries(
        st.sampled_from(["iters", "restarts", "lam", "lr"]),
        st.one_of(st.integers(1, 3), st.floats(0.001, 1), EXTREME_INTS, ANY_FLOATS), max_size=4),
    payload_bytes=st.one_of(st.none(), st.none(), st.integers(0, 200)),  # None: exactly what count and bits need
)
def test_fuzz_checksum_valid_headers_decode_quickly_or_raise_gec_errors(codec, bits, seed, mode, size, count,
                                                                        value_range, hints, payload_bytes):
    extras = {k: v for k, v in {1: mode, 2: size, 3: count, 4: value_range, 5: hints}.items() if v not in (None, {})}
    if payload_bytes is None:
        payload_bytes = ((count or codec.bundle.m) * bits + 7) // 8
    body = b"GEC\x01" + msgpack.packb([codec.bundle.model_id, bits, seed, 0, extras]) + bytes(payload_bytes)
    data = body + struct.pack("<I", zlib.crc32(body))
    try:
        decoded = codec.decode_batch([data], iters=1, restarts=1)
    except GecError:
        return
    assert decoded.shape == (1, 3, codec.image_size, codec.image_size) and torch.isfinite(decoded).all()
    event("decoded")


def test_a_search_too_large_for_memory_is_a_decode_error(codec):
    from gecodec.errors import DecodeError

    files = codec.encode_batch(images(1))
    with pytest.raises(DecodeError, match="could not run"):
        codec.decode_batch(files, iters=1, restarts=2**40)


def _sized_files(sizes: list[int], probes: list[int]):
    """file_at for largest_fitting: quality q's file is sizes[q] bytes; the qualities asked for go to probes."""
    def file_at(quality: int) -> bytes:
        probes.append(quality)
        return bytes(sizes[quality])
    return file_at


@pytest.mark.parametrize("target", [30, 61, 100, 257, 1000])
@pytest.mark.parametrize("scale", [0.8, 1.0, 1.25])
def test_largest_fitting_from_a_typical_guess_takes_few_probes(target, scale):
    from gecodec.rate_control import largest_fitting

    typical = [20 * 1.05**q for q in range(101)]  # about geometric, as on the shipped ladder
    sizes = [round(scale * size) for size in typical]  # a face whose files run smaller or larger than most
    guess = max(q for q, size in enumerate(typical) if size <= target)
    probes = []
    data = largest_fitting(_sized_files(sizes, probes), target, guess)
    assert len(data) == max(size for size in sizes if size <= target)
    assert len(probes) <= 6  # the guess, then 1, 2, 4 qualities away, then between


@pytest.mark.parametrize("guess", [0, 52, 100])
@pytest.mark.parametrize("sizes", [
    [round(20 * 1.05**q) for q in range(101)],
    [10] * 100 + [1000],  # flat, then a jump: interpolation alone would step one quality at a time
    [10 + q % 7 for q in range(101)],  # not monotone: any quality that fits, whose next does not
    [5 * q + 30 * (q % 2) + 2 for q in range(101)],
])
def test_largest_fitting_ends_quickly_from_any_guess_on_any_sizes(sizes, guess):
    from gecodec.rate_control import INTERPOLATED_PROBES, largest_fitting

    for target in (min(sizes), sorted(sizes)[50], max(sizes)):
        probes = []
        data = largest_fitting(_sized_files(sizes, probes), target, guess)
        assert len(probes) <= 1 + 7 + INTERPOLATED_PROBES + 6  # first, gallop, interpolation, bisection
        found = [q for q in probes if sizes[q] == len(data) and (q == 100 or q + 1 in probes and sizes[q + 1] > target)]
        assert len(data) <= target and found
    with pytest.raises(OptionError, match="no file fits"):
        largest_fitting(_sized_files(sizes, []), min(sizes) - 1, guess)
