"""Bases that decode to their start picture (version 4, formats/gec.md): no search on either side."""

from __future__ import annotations

from dataclasses import replace

import msgpack
import pytest
import torch

from gecodec import container
from gecodec.bundle import load_bundle, save_bundle
from gecodec.codec import Codec
from gecodec.entropy import QUALITIES
from gecodec.errors import BundleError, FormatError, OptionError
from gecodec.ladder import Rung, ladder_from_config, rung_of
from gecodec.models.solver import LatentSolver
from gecodec.transform_coding import fit_transform_model

from conftest import with_crc16
from test_learned_layer import images, learned_bundle

# Every base alone on its start picture, save quality 0: base quality 5, searched.
START_BASES = tuple([Rung(5)] + [Rung(q, on_start=True) for q in range(1, QUALITIES)])


@pytest.fixture(scope="module")
def codec() -> Codec:
    bundle = learned_bundle()
    with torch.no_grad():
        outputs = bundle.encoder(images(256, 3))
    bundle = replace(bundle, transform=fit_transform_model(outputs), transform_sha256="")
    bundle.ladder = START_BASES
    return Codec(bundle, "cpu")


def test_a_start_rung_writes_a_version_4_file_that_decodes_to_its_start_picture(codec):
    files = codec.encode_batch(images(3, 1), quality=40)
    parsed = [codec.parse(data) for data in files]
    assert [item.header.version for item in parsed] == [container.VERSION_V4] * 3
    assert files[0][2] == container.VERSION_V4 and rung_of(parsed[0].header) == START_BASES[40]
    expected = codec.start_pictures(torch.stack([item.values for item in parsed]))
    assert torch.equal(codec.decode_batch(files), expected)
    assert torch.equal(codec.decode_batch(files, iters=40, restarts=3), expected)  # search settings play no part
    assert [codec.search_steps(item) for item in parsed] == [0, 0, 0]


def test_a_version_4_file_is_its_version_3_base_with_another_version_byte(codec):
    searched = codec.encode_batch(images(2, 2), quality=0)  # the ladder's one searched rung: base quality 5
    assert searched[0][2] == container.VERSION_V3
    on_start = [container.with_start_picture(data) for data in searched]
    assert on_start == codec.encode_batch(images(2, 2), quality=5)
    assert [data[:2] + data[3:-2] for data in on_start] == [data[:2] + data[3:-2] for data in searched]
    assert not torch.equal(codec.decode_batch(on_start), codec.decode_batch(searched))  # the search moves it


def test_a_callers_hints_or_seed_keep_the_base_searched(codec):
    for options in ({"seed": 5}, {"hints": {"iters": 3}}):
        header = container.read_header(codec.encode_batch(images(1, 3), quality=40, **options)[0])
        assert header.version == container.VERSION_V3 and not header.start_picture


def test_target_bytes_on_a_start_ladder_writes_version_4_files_that_fit(codec):
    sizes = [len(data) for data in codec.encode_batch(images(1, 4), quality=60)]
    files = codec.encode_batch(images(1, 4), target_bytes=sizes[0])
    assert len(files[0]) <= sizes[0] and files[0][2] == container.VERSION_V4


def test_a_start_file_needs_a_model_with_a_learned_start(codec):
    data = codec.encode_batch(images(1, 5), quality=50)[0]
    prior = replace(codec.bundle, solver=LatentSolver(replace(codec.bundle.solver.config, init="prior")), ladder=None)
    with pytest.raises(FormatError, match="decodes to its start picture, and model .* has no learned start"):
        Codec(prior, "cpu").decode_batch([data])


@pytest.mark.parametrize("key", [container.KEY_HINTS, container.KEY_SEED, container.KEY_LAYER,
                                 container.KEY_START_LEARNED_LAYER])
def test_version_4_refuses_search_settings_and_layers(key):
    value = {container.KEY_HINTS: {"iters": 3}, container.KEY_SEED: 3}.get(key, [0, 2, 7, 1])
    body = (b"GE\x04" + (1).to_bytes(4, "big") + bytes([50 | container.HAS_EXTRAS]) + msgpack.packb({key: value})
            + b"\x01\x02\x03")
    with pytest.raises(FormatError, match=f"key {key} is not allowed in version 4"):
        container.read(with_crc16(body))
    with pytest.raises(OptionError, match="version 4"):
        container.write(container.Header(model_id=1, quality=50, transform=True, start_picture=True, seed=3), b"\1")


def test_a_later_version_is_refused_by_name():
    with pytest.raises(FormatError, match="unsupported .gec version 5 .this gecodec reads versions 1 to 4"):
        container.read(with_crc16(b"GE\x05" + (1).to_bytes(4, "big") + b"\x32\x01\x02"))


def test_a_ladder_names_a_start_base_as_null_then_start(tmp_path, codec):
    rows = [rung.to_list() for rung in START_BASES]
    assert rows[:2] == [[5, None], [1, None, "start"]] and ladder_from_config(rows) == START_BASES
    for bad in ([1, None, "learned"], [1, None, "dct", "start"], [1, None, "start", "start"]):
        with pytest.raises(ValueError, match="is not \\[base quality"):
            ladder_from_config(rows[:1] + [bad] + rows[2:])
    save_bundle(codec.bundle, tmp_path / "start.safetensors")
    assert load_bundle(tmp_path / "start.safetensors").ladder == START_BASES
    save_bundle(replace(codec.bundle, transform=None, transform_sha256=""), tmp_path / "no-transform.safetensors")
    with pytest.raises(BundleError, match="start pictures, which needs a transform model"):
        load_bundle(tmp_path / "no-transform.safetensors")


@pytest.mark.parametrize("on_start", [False, True])
def test_a_layer_on_a_start_base_makes_a_version_3_file_that_decodes_as_predicted(codec, on_start):
    faces = images(2, 6)
    bases = codec.encode_batch(faces, quality=40)
    files, predicted = codec.layered(bases, faces, codec.layer_bases(bases, on_start), 2, "dct", on_start)
    assert [data[2] for data in files] == [container.VERSION_V3] * 2
    assert torch.equal(codec.decode_batch(files), predicted)
