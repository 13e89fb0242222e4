"""Transform-coded (version 3) files: the transform model, its bundle part and id, and the container's version 3."""

from __future__ import annotations

import dataclasses
import struct

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from gecodec import container
from gecodec.bundle import find_by_id, load_bundle, save_bundle
from gecodec.cli import main
from gecodec.codec import Codec
from gecodec.entropy import QUALITIES, TABLE_TOTAL, fit_entropy_model
from gecodec.errors import BundleError, FormatError, GecError
from gecodec.train.quality_ladder import store_ladder
from gecodec.train.transform_model import store_transform
from gecodec.transform_coding import TransformModel, fit_transform_model

from conftest import ENTROPY_BUNDLE, GOLDEN, assert_parses_or_refuses

TRANSFORM_BUNDLE = GOLDEN / "tiny-transform-test.safetensors"  # the tiny entropy bundle plus a transform model
MIXING = torch.randn(16, 16, generator=torch.Generator().manual_seed(0))


def correlated(n: int, seed: int = 1) -> torch.Tensor:
    """Measurements whose 16 values are strongly correlated, as EN's are."""
    spreads = torch.logspace(0, -2, 16)
    return (torch.randn(n, 16, generator=torch.Generator().manual_seed(seed)) * spreads) @ MIXING + 0.5


@pytest.fixture(scope="module")
def model() -> TransformModel:
    return fit_transform_model(correlated(4000))


@pytest.fixture
def codec() -> Codec:
    return Codec(load_bundle(TRANSFORM_BUNDLE), "cpu")


def images(n: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 3, 16, 16, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_the_basis_is_orthonormal_by_decreasing_variance_and_every_table_is_usable(model):
    assert torch.allclose(model.basis.T @ model.basis, torch.eye(16), atol=1e-5)
    variances = ((correlated(4000, seed=2) - model.mean) @ model.basis).var(0)
    assert bool((variances[:-1] >= variances[1:] * 0.8).all())  # decreasing, up to sampling noise
    for t in range(len(model.radii)):
        assert model.table(t).sum() == TABLE_TOTAL and model.table(t).min() >= 1
    assert bool((model.steps[1:] < model.steps[:-1]).all())


@pytest.mark.parametrize("quality", [0, 37, 100])
def test_integers_survive_coding_and_each_component_is_within_half_a_step(model, quality):
    values = correlated(20, seed=3)
    k = model.quantize(values, quality)
    for row, original in zip(k, values):
        assert np.array_equal(model.decode(model.encode(row, quality), quality), row)
        error = (model.dequantize(row, quality) - original) @ model.basis  # in the principal axes
        clipped = np.abs(row) == model.radii[model.table_of[quality].long()].numpy()
        assert bool((error.abs()[~torch.from_numpy(clipped)] <= model.steps[quality] / 2 + 1e-5).all())


def test_narrow_components_cost_next_to_nothing(model):
    """Reverse water-filling: at a coarse quality the components far below the step are always 0."""
    k = model.quantize(correlated(200, seed=4), 20)
    assert (k[:, -8:] == 0).all() and np.abs(k[:, 0]).max() > 0


def test_on_correlated_measurements_it_beats_the_per_measurement_coder_in_bytes_and_error():
    train, test = correlated(4000), correlated(200, seed=5)
    transform, entropy = fit_transform_model(train), fit_entropy_model(train)

    def point(coder, quality):
        k = coder.quantize(test, quality)
        nbytes = np.mean([len(coder.encode(row, quality)) for row in k])
        return nbytes, float((coder.dequantize(k, quality) - test).pow(2).mean())

    v2_bytes, v2_error = point(entropy, 60)
    assert any(b < v2_bytes and e < v2_error for b, e in (point(transform, q) for q in range(QUALITIES)))


@pytest.mark.parametrize("damage", ["truncated", "trailing byte", "trailing zero", "empty"])
def test_a_payload_that_does_not_match_its_measurements_is_a_format_error(model, damage):
    payload = model.encode(model.quantize(correlated(1), 90)[0], 90)
    bad = {"truncated": payload[:-2], "trailing byte": payload + b"\x07", "trailing zero": payload + b"\0",
           "empty": b""}[damage]
    with pytest.raises(FormatError):
        model.decode(bad, 90)


@pytest.mark.parametrize("change, problem", [
    (lambda m: {"frequencies": m.frequencies + torch.nn.functional.one_hot(torch.tensor(0), m.frequencies.numel()).int()},
     "does not sum"),
    (lambda m: {"table_of": m.table_of + len(m.radii)}, "names no table"),
    (lambda m: {"steps": m.steps.flip(0)}, "decreasing"),
    (lambda m: {"basis": m.basis * float("nan")}, "not finite"),
    (lambda m: {"mean": m.mean[:3]}, "inconsistent shapes"),
])
def test_an_unusable_transform_model_is_refused(model, change, problem):
    with pytest.raises(ValueError, match=problem):
        dataclasses.replace(model, **change(model))


# -- the bundle ---------------------------------------------------------------------------------


def test_a_transform_model_keeps_the_model_id_and_names_version_3_files_by_its_own_id():
    plain, bundle = load_bundle(ENTROPY_BUNDLE), load_bundle(TRANSFORM_BUNDLE)
    assert bundle.model_id == plain.model_id and plain.transform_id is None
    assert bundle.transform_id not in (None, bundle.model_id)


def test_the_transform_model_survives_a_bundle_round_trip_and_is_found_by_its_id(tmp_path, model_dir):
    bundle = load_bundle(TRANSFORM_BUNDLE)
    save_bundle(bundle, model_dir / "copy.safetensors")  # the weights' dtype as stored: the same ids
    copy = find_by_id(bundle.transform_id)
    assert torch.equal(copy.transform.frequencies, bundle.transform.frequencies)
    assert torch.equal(copy.transform.basis, bundle.transform.basis)
    assert copy.transform.default_quality == bundle.transform.default_quality
    (model_dir / "copy.safetensors").unlink()


def test_a_bundle_whose_transform_table_is_off_is_a_bundle_error(tmp_path):
    bundle = load_bundle(TRANSFORM_BUNDLE)
    frequencies = bundle.transform.frequencies.clone()
    frequencies[0] += 1
    object.__setattr__(bundle.transform, "frequencies", frequencies)  # bypass the check, as a forged file would
    save_bundle(bundle, tmp_path / "forged.safetensors")
    with pytest.raises(BundleError, match="does not sum"):
        load_bundle(tmp_path / "forged.safetensors")


# -- files ----------------------------------------------------------------------------------------


def test_a_default_file_is_version_3_with_a_10_byte_envelope_and_the_transform_id(codec):
    data = codec.encode_batch(images(1))[0]
    header, payload = container.read(data)
    assert data[2] == container.VERSION_V3 and header.transform
    assert header.model_id == codec.bundle.transform_id and header.quality == codec.bundle.default_quality
    assert len(data) == len(payload) + 10
    assert container.layout(data).payload_encoding == "ans, transform"


def test_a_version_3_file_decodes_close_to_its_fixed_length_twin(codec):
    x = images(2, seed=4)
    v3 = codec.decode_batch(codec.encode_batch(x, quality=100), iters=5)
    v1 = codec.decode_batch(codec.encode_batch(x, bits=8), iters=5)
    assert float((v3 - v1).abs().mean()) < 0.1


def test_version_2_files_still_decode_with_a_model_that_writes_version_3(codec):
    old = Codec(load_bundle(ENTROPY_BUNDLE), "cpu").encode_batch(images(1), quality=40)[0]
    assert old[2] == container.VERSION_V2
    assert torch.equal(codec.decode_batch([old]), Codec(load_bundle(ENTROPY_BUNDLE), "cpu").decode_batch([old]))


def test_a_version_3_file_needs_the_transform_it_was_made_with(codec):
    data = codec.encode_batch(images(1))[0]
    with pytest.raises(FormatError, match="needs model"):
        Codec(load_bundle(ENTROPY_BUNDLE), "cpu").parse(data)
    refitted = dataclasses.replace(codec.bundle, transform=fit_transform_model(correlated(500)), transform_sha256="")
    with pytest.raises(FormatError, match="needs model"):
        Codec(refitted, "cpu").parse(data)


def test_target_bytes_gives_the_largest_version_3_quality_that_fits(codec):
    x = images(1, seed=6)
    sizes = [len(codec.encode_batch(x, quality=q)[0]) for q in range(QUALITIES)]
    target = sizes[70]
    data = codec.encode_batch(x, target_bytes=target)[0]
    assert container.read(data)[0].quality == max(q for q, size in enumerate(sizes) if size <= target)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(blob=st.binary(max_size=120), quality=st.integers(0, 255))
def test_fuzz_checksum_valid_version_3_files_parse_or_raise_format_errors(codec, blob, quality):
    assert_parses_or_refuses(codec, b"GE\x03" + struct.pack(">I", codec.bundle.transform_id) + bytes([quality]) + blob)


def test_a_version_3_header_without_a_quality_cannot_be_written():
    with pytest.raises(GecError, match="version 3"):
        container.write(container.Header(model_id=1, bits=8, transform=True), b"\1")


def test_gec_encodes_decodes_and_describes_a_version_3_file(tmp_path, model_dir, image_file):
    (model_dir / TRANSFORM_BUNDLE.name).write_bytes(TRANSFORM_BUNDLE.read_bytes())
    try:
        out = tmp_path / "face.gec"
        gec = CliRunner()
        assert gec.invoke(main, ["encode", str(image_file), "-o", str(out), "--model", "tiny-transform-test",
                                 "--quality", "40"]).exit_code == 0
        assert out.read_bytes()[2] == container.VERSION_V3
        assert "transform-coded" in gec.invoke(main, ["info", str(out)]).output
        decoded = gec.invoke(main, ["decode", str(out), "-o", str(tmp_path / "decoded.png"), "--iters", "2"])
        assert decoded.exit_code == 0 and (tmp_path / "decoded.png").stat().st_size > 0, decoded.output
    finally:
        (model_dir / TRANSFORM_BUNDLE.name).unlink()


# -- training steps --------------------------------------------------------------------------------


def test_the_transform_step_stores_a_model_its_curve_and_default_and_drops_the_ladder(tmp_path):
    path = tmp_path / "bundle.safetensors"
    path.write_bytes(ENTROPY_BUNDLE.read_bytes())
    record = store_transform(path, images(64), images(8, seed=9))
    bundle = load_bundle(path)
    assert bundle.transform is not None and bundle.ladder is None
    assert bundle.model_id == load_bundle(ENTROPY_BUNDLE).model_id
    assert bundle.transform.default_quality == record["default_quality"] == bundle.card["transform"]["default_quality"]
    assert [row["quality"] for row in record["val_curve"]] == list(range(0, 101, 10))


def test_the_ladder_step_refuses_measurements_made_with_another_base_coder(tmp_path):
    measured = tmp_path / "measured.json"
    measured.write_text('{"base": "00000000", "points": []}')
    with pytest.raises(ValueError, match="another base coder"):
        store_ladder(TRANSFORM_BUNDLE, images(4), measured)


def test_pillow_opens_a_version_3_file(model_dir):
    import gecodec

    gecodec.register_pillow()
    (model_dir / TRANSFORM_BUNDLE.name).write_bytes(TRANSFORM_BUNDLE.read_bytes())
    try:
        with Image.open(GOLDEN / "v3-q60.gec") as image:
            assert image.format == "GEC" and image.info["gec_header"].transform
            image.load()
            assert image.size == (16, 16) and image.mode == "RGB"
    finally:
        (model_dir / TRANSFORM_BUNDLE.name).unlink()
