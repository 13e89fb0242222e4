"""Refinement layers on the start picture G(z0) (formats/gec.md, the start picture): no search on either side."""

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
from gecodec.imageio import pixels_to_tensor, tensor_to_pixels
from gecodec.ladder import Rung, ladder_from_config
from gecodec.models.solver import LatentSolver, SolverConfig

from conftest import with_crc16
from test_learned_layer import extras_of, images, learned_bundle

# Every base quality up to the tiny model's default alone, then DCT and learned layers on the start picture.
START_LADDER = tuple([Rung(q) for q in range(61)] + [Rung(q - 60, (q - 61) % 4, ("dct", "learned")[q % 2], True)
                                                     for q in range(61, QUALITIES)])


@pytest.fixture(scope="module")
def codec() -> Codec:
    bundle = learned_bundle()
    bundle.ladder = START_LADDER
    return Codec(bundle, "cpu")


def test_the_start_picture_is_the_learned_starts_picture_without_search(codec):
    bases = codec.encode_batch(images(3), quality=30)
    values = torch.stack([codec.parse(data).values for data in bases])
    with torch.no_grad():
        expected = codec.generator(codec.solver.start(values)).clamp(-1, 1)
    assert torch.equal(codec.start_pictures(values), expected)
    assert torch.equal(codec.layer_bases(bases, True), pixels_to_tensor(tensor_to_pixels(expected)))
    assert not torch.equal(codec.layer_bases(bases, False), codec.layer_bases(bases, True))  # the search moves it


@pytest.mark.parametrize("kind, level", [("dct", 3), ("learned", 1), ("learned", -2)])
def test_a_start_layer_decodes_to_what_the_encoder_predicted_with_no_search(codec, kind, level):
    faces = images(3, 4)
    bases = codec.encode_batch(faces, quality=30)
    files, predicted = codec.layered(bases, faces, codec.layer_bases(bases, True), level, kind, on_start=True)
    parsed = [codec.parse(data) for data in files]
    assert all(item.header.layer.on_start and item.header.layer.kind == kind for item in parsed)
    assert list(extras_of(files[0])) == [container.LAYER_KEYS[kind, True]]
    assert torch.equal(codec.decode_batch(files), predicted)
    assert torch.equal(codec.decode_batch(files, iters=40, restarts=3), predicted)  # search settings play no part
    assert [codec.search_steps(item) for item in parsed] == [0, 0, 0]
    assert codec.search_steps(parsed[0], base_only=True) == codec.search_steps(codec.parse(bases[0])) > 0
    assert torch.equal(codec.decode_batch(files, base_only=True), codec.decode_batch(bases))


def test_a_batch_mixes_start_layers_searched_layers_and_bases(codec):
    faces = images(3, 5)
    bases = codec.encode_batch(faces, quality=30)
    on_start, _ = codec.layered(bases[:1], faces[:1], codec.layer_bases(bases[:1], True), 2, "dct", on_start=True)
    searched, _ = codec.layered(bases[1:2], faces[1:2], codec.layer_bases(bases[1:2], False), 2, "dct")
    files = on_start + searched + bases[2:]
    one_by_one = torch.cat([codec.decode_batch([data]) for data in files])
    together = codec.decode_batch(files)
    assert torch.equal(together[0], one_by_one[0])
    assert torch.allclose(together, one_by_one, atol=1e-6)  # a search's floats may follow its batch's size


def test_a_quality_on_a_start_rung_writes_a_start_layer(codec):
    for quality in (61, 62, 100):
        header, _ = container.read(codec.encode_batch(images(1), quality=quality)[0])
        rung = START_LADDER[quality]
        assert (header.quality, header.layer.level, header.layer.kind, header.layer.on_start) == \
            (rung.base_quality, rung.level, rung.kind, True)


def test_a_start_layer_needs_a_model_with_a_learned_start(codec):
    data = codec.encode_batch(images(1), quality=70)[0]
    without = codec.bundle
    without = replace(without, solver=LatentSolver(replace(without.solver.config, init="prior")), ladder=None)
    other = Codec(without, "cpu")
    with pytest.raises(FormatError, match="refines the start picture, and model .* has no learned start"):
        other.decode_batch([data])
    with pytest.raises(OptionError, match="no learned start"):
        other.start_pictures(torch.zeros(1, without.m))


def test_a_start_layer_always_names_its_base():
    header = container.Header(model_id=1, quality=5, layer=container.Layer(2, 3, 7, "dct", None, on_start=True))
    with pytest.raises(OptionError, match="refinement layer"):
        container.write(header, b"\x01\x02\x03\x04")
    without_base_check = msgpack.packb({container.KEY_START_LAYER: [2, 3, 7]})
    body = b"GE\x02" + (1).to_bytes(4, "big") + bytes([5 | container.HAS_EXTRAS]) + without_base_check + b"\x01\x02"
    with pytest.raises(FormatError, match="is not \\[level, base bytes, check code, base check\\]"):
        container.read(with_crc16(body))


def test_a_start_ladder_round_trips_and_needs_a_learned_start(tmp_path, codec):
    rows = [rung.to_list() for rung in START_LADDER]
    assert rows[61] == [1, 0, "learned", "start"] and rows[62] == [2, 1, "dct", "start"]
    assert ladder_from_config(rows) == START_LADDER
    for bad in ([1, 0, "start"], [1, 0, "learned", "begin"], [1, None, "dct", "start"], [1, 0, ["dct"]]):
        with pytest.raises(ValueError, match="is not \\[base quality"):
            ladder_from_config(rows[:61] + [bad] + rows[62:])
    save_bundle(codec.bundle, tmp_path / "start.safetensors")
    loaded = load_bundle(tmp_path / "start.safetensors")
    assert loaded.ladder == START_LADDER
    assert loaded.sha256 == codec.bundle.sha256
    prior = replace(codec.bundle, solver=LatentSolver(SolverConfig(**{**codec.bundle.solver.config.to_dict(),
                                                                       "init": "prior"})))
    save_bundle(prior, tmp_path / "prior.safetensors")
    with pytest.raises(BundleError, match="on the start picture, and the model has no learned start"):
        load_bundle(tmp_path / "prior.safetensors")
