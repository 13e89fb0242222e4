"""The learned refinement layer (gecodec/learned_layer.py) in files, bundles and ladders, on the tiny model."""

from __future__ import annotations

import json
import struct

import msgpack
import numpy as np
import pytest
import torch

from gecodec import container
from gecodec.bundle import Bundle, load_bundle, load_model, save_bundle
from gecodec.codec import Codec
from gecodec.entropy import QUALITIES, TABLE_TOTAL
from gecodec.errors import BundleError, FormatError, OptionError
from gecodec.ladder import Rung, ladder_from_config
from gecodec.learned_layer import (COARSE_LEVELS, RADIUS, SUBLEVELS, LearnedRefinement, fit_learned_refinement,
                                   with_coarse_levels)
from gecodec.models.refiner import ConditionalRefiner, RefinerConfig
from gecodec.refine import fit_refinement

from conftest import ENTROPY_BUNDLE

TRAINED_LEVELS = 2
LEVELS = SUBLEVELS + 1  # the layer's: the two trained rates and the ones between them
COARSE = 3  # the tiny layer's coarse levels, -1 to -3


def images(n: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 3, 16, 16, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def learned_bundle() -> Bundle:
    """The tiny entropy model with DCT tables and an untrained learned layer, with COARSE coarse levels, whose
    synthesis is not the identity."""
    bundle = load_bundle(ENTROPY_BUNDLE)
    bundle.refine = fit_refinement(images(8, 1) * 0.2)
    torch.manual_seed(0)
    network = ConditionalRefiner(RefinerConfig(levels=TRAINED_LEVELS, latent=4, features=8))
    torch.nn.init.normal_(network.out.weight, std=0.05)  # zero at the start of training: the layer would add nothing
    faces = images(8, 2)
    pixels = Codec(bundle, "cpu").base_decodes(Codec(bundle, "cpu").encode_batch(faces))
    bundle.refine_learned = with_coarse_levels(fit_learned_refinement(network, faces, pixels), faces, pixels, COARSE)
    return bundle


@pytest.fixture(scope="module")
def codec() -> Codec:
    return Codec(learned_bundle(), "cpu")


def layered(codec: Codec, faces: torch.Tensor, level: int) -> tuple[list[bytes], list[bytes], torch.Tensor]:
    bases = codec.encode_batch(faces)
    files, decoded = codec.layered(bases, faces, codec.base_decodes(bases), level, "learned")
    return bases, files, decoded


def test_the_tables_are_integer_rows_that_sum_to_the_coders_total(codec):
    tables = codec.bundle.refine_learned.tables
    assert tables.shape == (LEVELS, 4, 2 * RADIUS + 1) and tables.dtype == np.int32
    assert tables.min() >= 1 and (tables.sum(-1) == TABLE_TOTAL).all()
    with pytest.raises(ValueError, match="does not sum"):
        LearnedRefinement(codec.bundle.refine_learned.network, tables + 1)


def test_levels_between_trained_rates_take_interpolated_gains(codec):
    network = codec.bundle.refine_learned.network
    base = images(1, 9)
    trained = [network.conditioning(base, rate).gain for rate in range(TRAINED_LEVELS)]
    assert torch.equal(trained[0].flatten(), network.log_gains[0].exp())
    between = network.conditioning(base, 1 / 3).gain
    assert torch.allclose(between, trained[0] ** (2 / 3) * trained[1] ** (1 / 3))


def test_coarse_levels_extend_the_gains_below_the_first_trained_rate(codec):
    network = codec.bundle.refine_learned.network
    first, second = network.log_gains[0], network.log_gains[1]
    assert torch.allclose(network.conditioning(images(1, 9), -1).gain.flatten(), (2 * first - second).exp())
    faces, pixels = images(2, 12), images(2, 13)
    coarse, trained = (network.conditioning(pixels, level / SUBLEVELS) for level in (-COARSE, 0))
    assert bool((coarse.gain < trained.gain).all())  # the tiny layer's second rate is the finer, as in training
    shrunk = network.latent(faces, trained) * coarse.gain / trained.gain
    assert torch.allclose(network.latent(faces, coarse), shrunk, atol=1e-6)  # the same latent, coarser integers


@pytest.mark.parametrize("level", range(-COARSE, LEVELS))
def test_a_learned_layer_decodes_to_what_the_encoder_predicted_and_leaves_the_base_alone(codec, level):
    faces = images(3, 3)
    bases, files, predicted = layered(codec, faces, level)
    for base, data in zip(bases, files):
        header, payload = container.read(data)
        base_header, base_payload = container.read(base)
        assert header.layer == container.Layer(level, len(base_payload), codec.bundle.refine_learned.check_for(level),
                                               "learned", container.base_check(base_header, base_payload))
        assert payload.startswith(base_payload) and len(payload) > len(base_payload)
    decoded = codec.decode_batch(files)
    assert torch.equal(decoded, predicted)
    assert torch.equal(codec.decode_batch(files, base_only=True), codec.decode_batch(bases))
    assert not torch.equal(decoded, codec.decode_batch(bases))


def extras_of(data: bytes) -> dict:
    """A version-2 file's extras map: after magic, version, model id and the quality byte (formats/gec.md)."""
    unpacker = msgpack.Unpacker(strict_map_key=False)
    unpacker.feed(data[8:])
    return next(unpacker)


def test_the_file_names_the_learned_layer_under_its_own_key(codec):
    data = layered(codec, images(1, 4), 0)[1][0]
    header = container.read(data)[0]
    assert extras_of(data)[container.KEY_LEARNED_LAYER] == [*header.layer[:3], header.layer.base_check]
    assert container.KEY_LAYER not in extras_of(data)


def test_a_damaged_or_foreign_learned_layer_is_refused(codec):
    header, payload = container.read(layered(codec, images(1, 5), 1)[1][0])
    layer = header.layer
    bad_headers = [layer._replace(check=layer.check ^ 1), layer._replace(level=LEVELS), layer._replace(level=-COARSE - 1),
                   layer._replace(base_bytes=len(payload)), layer._replace(base_check=layer.base_check ^ 1)]
    for bad in bad_headers:
        with pytest.raises(FormatError):
            codec.parse(container.write(header.__class__(**{**header.__dict__, "layer": bad}), payload))
    with pytest.raises(FormatError):
        codec.decode_batch([container.write(header, payload[:-1].rstrip(b"\0"))])
    with pytest.raises(FormatError):
        codec.decode_batch([container.write(header, payload + b"\1")])
    for level in (LEVELS, -COARSE - 1):
        with pytest.raises(OptionError, match=f"learned refinement level {level} is not one of .* {-COARSE} to"):
            codec.layered([], images(0), images(0), level, "learned")


def test_coarse_tables_keep_the_trained_levels_check_code_so_older_files_decode(codec):
    layer = codec.bundle.refine_learned
    older = Codec(Bundle(**{**codec.bundle.__dict__, "refine_learned": LearnedRefinement(layer.network, layer.tables)}),
                  "cpu")
    assert older.bundle.layer_levels["learned"] == range(LEVELS)
    assert older.bundle.refine_learned.check_code == layer.check_code != layer.coarse_check_code
    faces = images(2, 13)
    files = layered(older, faces, 2)[1]
    assert torch.equal(codec.decode_batch(files), older.decode_batch(files))
    coarse_file = layered(codec, faces, -1)[1][0]
    with pytest.raises(FormatError, match="learned refinement level -1 is not one of .* 0 to"):
        older.decode_batch([coarse_file])
    refitted = with_coarse_levels(layer, images(8, 14), images(8, 15), COARSE)
    assert refitted.check_code == layer.check_code
    other = Codec(Bundle(**{**codec.bundle.__dict__, "refine_learned": refitted}), "cpu")
    if refitted.coarse_check_code != layer.coarse_check_code:  # other tables: a 1 in 65,536 chance of the same code
        with pytest.raises(FormatError, match="check code"):
            other.decode_batch([coarse_file])


def test_coarse_tables_are_stored_in_a_version_7_bundle_and_checked_on_load(codec, tmp_path):
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    from gecodec.catalog import read_metadata

    path = tmp_path / "coarse.safetensors"
    save_bundle(codec.bundle, path)
    assert read_metadata(path)["format_version"] == "7"
    loaded = load_bundle(path)
    assert np.array_equal(loaded.refine_learned.coarse, codec.bundle.refine_learned.coarse)
    assert loaded.refine_learned.coarse_check_code == codec.bundle.refine_learned.coarse_check_code
    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata()
    tensors = load_file(str(path))
    for config_change, tensor_change, message in (
            ({"refine_learned_coarse": 16}, {}, "refine_learned_coarse = 16"),
            ({"refine_learned_coarse": COARSE + 1}, {}, "coarse_tables"),
            ({}, {"refine.learned.coarse_tables": None}, "coarse_tables")):
        config = {**json.loads(metadata["config"]), **config_change}
        changed = {k: v for k, v in {**tensors, **tensor_change}.items() if v is not None}
        save_file(changed, str(tmp_path / "bad.safetensors"), metadata={**metadata, "config": json.dumps(config)})
        with pytest.raises(BundleError, match=message):
            load_bundle(tmp_path / "bad.safetensors")


def test_a_layer_moved_onto_another_base_is_refused(codec):
    from dataclasses import replace

    (first, second), files, _ = layered(codec, images(2, 10), 1)
    header, payload = container.read(files[0])
    other_header, other_base = container.read(second)
    moved = replace(other_header, layer=header.layer._replace(base_bytes=len(other_base)))
    with pytest.raises(FormatError, match="another base"):
        codec.parse(container.write(moved, other_base + payload[header.layer.base_bytes :]))


def test_a_learned_layer_must_name_its_base_and_an_old_dct_layer_need_not():
    for key, fields, kind in ((container.KEY_LEARNED_LAYER, [0, 3, 7], None), (container.KEY_LAYER, [0, 3, 7], "dct"),
                              (container.KEY_LEARNED_LAYER, [0, 3, 7, 5], "learned")):
        body = b"GE\x02" + struct.pack(">I", 1) + bytes([50 | container.HAS_EXTRAS]) + msgpack.packb({key: fields})
        body += b"\1\2\3\4\5"
        data = body + struct.pack("<H", container.crc16(body))
        if kind is None:
            with pytest.raises(FormatError, match="base check"):
                container.read(data)
        else:
            assert container.read(data)[0].layer == container.Layer(0, 3, 7, kind, fields[3] if len(fields) > 3 else None)


@pytest.mark.parametrize("key, level, fine", [(container.KEY_LEARNED_LAYER, -15, True), (container.KEY_LEARNED_LAYER, -16, False),
                                              (container.KEY_LAYER, -1, False), (container.KEY_LAYER, 15, True)])
def test_only_a_learned_layer_has_levels_below_0_down_to_minus_15(key, level, fine):
    body = b"GE\x02" + struct.pack(">I", 1) + bytes([50 | container.HAS_EXTRAS]) + msgpack.packb({key: [level, 3, 7, 5]})
    data = body + b"\1\2\3\4\5"
    data += struct.pack("<H", container.crc16(data))
    if fine:
        assert container.read(data)[0].layer.level == level
    else:
        with pytest.raises(FormatError, match="level 0 to 15 .a learned layer's -15 to 15."):
            container.read(data)
    rung = [40, level] + (["learned"] if key == container.KEY_LEARNED_LAYER else [])
    if fine:
        assert ladder_from_config([[0, None]] * 100 + [rung])[-1].level == level
    else:
        with pytest.raises(ValueError, match="-15..15 for a learned layer"):
            ladder_from_config([[0, None]] * 100 + [rung])


def test_a_header_with_two_layers_is_refused():
    extras = {container.KEY_LAYER: [0, 3, 7], container.KEY_LEARNED_LAYER: [0, 3, 7]}
    body = b"GE\x02" + struct.pack(">I", 1) + bytes([50 | container.HAS_EXTRAS]) + msgpack.packb(extras) + b"\1\2\3\4\5"
    with pytest.raises(FormatError, match="names two"):
        container.read(body + struct.pack("<H", container.crc16(body)))


def test_the_learned_layer_survives_a_half_precision_bundle_and_keeps_the_model_id(codec, tmp_path):
    path = tmp_path / "learned.safetensors"
    save_bundle(codec.bundle, path, half=True)
    loaded = load_bundle(path)
    assert loaded.refine_learned.check_code == codec.bundle.refine_learned.check_code
    save_bundle(Bundle(**{**codec.bundle.__dict__, "refine_learned": None}), tmp_path / "without.safetensors", half=True)
    assert loaded.model_id == load_bundle(tmp_path / "without.safetensors").model_id
    files = layered(codec, images(2, 6), 1)[1]
    half_layer = Codec(Bundle(**{**codec.bundle.__dict__, "refine_learned": loaded.refine_learned}), "cpu")
    assert torch.allclose(half_layer.decode_batch(files), codec.decode_batch(files), atol=2e-3)


def test_a_bundle_whose_tables_do_not_fit_its_network_is_refused(codec, tmp_path):
    from safetensors.torch import load_file, save_file

    path = tmp_path / "learned.safetensors"
    save_bundle(codec.bundle, path)
    tensors = load_file(str(path))
    tensors["refine.learned.tables"] = tensors["refine.learned.tables"][:, :3].contiguous()
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata()
    save_file(tensors, str(path), metadata=metadata)
    with pytest.raises(BundleError, match="refine.learned.tables"):
        load_bundle(path)


def test_a_ladder_may_name_learned_rungs_the_bundle_has(codec, tmp_path):
    ladder = tuple([Rung(q) for q in range(61)] + [Rung(q - 60, q % LEVELS, "learned") for q in range(61, QUALITIES)])
    bundle = learned_bundle()
    bundle.ladder = ladder
    save_bundle(bundle, tmp_path / "good.safetensors")
    loaded = Codec(load_bundle(tmp_path / "good.safetensors"), "cpu")
    assert loaded.bundle.ladder == ladder
    header = container.read(loaded.encode_batch(images(1), quality=70)[0])[0]
    assert (header.quality, header.layer.level, header.layer.kind) == (10, 70 % LEVELS, "learned")
    bundle.ladder = ladder[:-1] + (Rung(40, LEVELS, "learned"),)
    save_bundle(bundle, tmp_path / "bad.safetensors")
    with pytest.raises(BundleError, match="learned refinement levels"):
        load_bundle(tmp_path / "bad.safetensors")


def test_target_bytes_tries_learned_layers_too(codec):
    faces = images(2, 7)
    alone = Codec(Bundle(**{**codec.bundle.__dict__, "refine_learned": None}), "cpu")
    for target in (120, 400):
        files = codec.encode_batch(faces, target_bytes=target)
        assert all(len(f) <= target for f in files)
        error = ((codec.decode_batch(files) - faces) ** 2).mean(dim=(1, 2, 3))
        dct_only = ((alone.decode_batch(alone.encode_batch(faces, target_bytes=target)) - faces) ** 2).mean(
            dim=(1, 2, 3))
        assert bool((error <= dct_only + 1e-6).all())


def test_the_refiner_trains_resumes_and_is_stored_without_changing_the_model_id(tmp_path):
    from gecodec.train import refiner
    from gecodec.train.checkpoint import load_checkpoint

    path = tmp_path / "model.safetensors"
    save_bundle(load_bundle(ENTROPY_BUNDLE), path)
    faces = ((images(6, 8) + 1) * 127.5).round().to(torch.uint8)
    refiner.make_bases(path, faces, tmp_path / "run")
    assert np.load(tmp_path / "run" / "bases.npy").shape == tuple(faces.shape)
    first = refiner.train(tmp_path / "run", minutes=0.005, lr=1e-3)
    again = refiner.train(tmp_path / "run", minutes=0.01, lr=3e-4)
    assert 0 < first["step"] < again["step"] == load_checkpoint(tmp_path / "run" / "checkpoint.pt")["step"]
    record = refiner.store(tmp_path / "run", path)
    stored = load_bundle(path)
    assert stored.model_id == load_bundle(ENTROPY_BUNDLE).model_id
    assert f"{stored.refine_learned.check_code:04x}" == record["check_code"] == stored.card["refine_learned"]["check_code"]
    assert stored.refine_learned.levels == range(-COARSE_LEVELS, (len(refiner.LAMBDAS) - 1) * SUBLEVELS + 1)
    assert f"{stored.refine_learned.coarse_check_code:04x}" == record["coarse_check_code"]


def test_bases_for_faces_twice_the_models_side_are_its_pictures_of_them_halved_then_enlarged(tmp_path):
    import torch.nn.functional as F

    from gecodec.train import refiner
    from gecodec.train.data import to_float

    path = tmp_path / "model.safetensors"
    save_bundle(load_bundle(ENTROPY_BUNDLE), path)
    large = F.interpolate(images(3, 9), scale_factor=2, mode="bilinear").clamp(-1, 1)
    faces = ((large + 1) * 127.5).round().to(torch.uint8)
    refiner.make_bases(path, faces, tmp_path / "run")
    bases = torch.from_numpy(np.load(tmp_path / "run" / "bases.npy"))
    assert bases.shape == (3, 3, 32, 32)
    codec = Codec(load_bundle(path), "cpu")
    small = codec.layer_bases(codec.encode_batch(F.interpolate(to_float(faces), size=16, mode="area")),
                              codec.bundle.has_learned_start)
    enlarged = ((refiner.upsampled(small, 32) + 1) * 127.5).round().to(torch.uint8)
    assert torch.equal(bases, enlarged)
    assert refiner.upsampled(small, 16) is small


def test_a_refiner_run_can_start_from_another_bundles_learned_layer(tmp_path):
    from gecodec.train import refiner

    path = tmp_path / "model.safetensors"
    save_bundle(load_bundle(ENTROPY_BUNDLE), path)
    refiner.make_bases(path, ((images(4, 8) + 1) * 127.5).round().to(torch.uint8), tmp_path / "run")
    with pytest.raises(SystemExit, match="no learned layer of this recipe's shape"):
        refiner.train(tmp_path / "run", minutes=0.001, lr=1e-3, init_from=str(path))
    shipped = load_model("celeba64-default").refine_learned.network
    state = refiner.train(tmp_path / "run", minutes=0.0, lr=1e-3, init_from="celeba64-default")
    network, saved = refiner.trained_network(tmp_path / "run")
    assert state["step"] == 0 and saved["init_from"] == "celeba64-default"
    assert all(torch.equal(a, b) for a, b in zip(network.state_dict().values(), shipped.state_dict().values()))


def test_a_learned_layer_with_more_levels_than_a_file_can_name_is_refused(tmp_path):
    bundle = load_bundle(ENTROPY_BUNDLE)
    network = ConditionalRefiner(RefinerConfig(levels=7, latent=2, features=4))  # 19 levels; a file names 16
    faces = images(2, 11)
    bundle.refine_learned = fit_learned_refinement(network, faces, faces)
    save_bundle(bundle, tmp_path / "many.safetensors")
    with pytest.raises(BundleError, match="levels = 7 is outside 1 to 6"):
        load_bundle(tmp_path / "many.safetensors")
