"""Model bundles: safe loading, ids from the weights, lookup by name and id."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from gecodec.bundle import DEFAULT_MODEL, available_bundles, find_by_id, load_bundle, load_model, save_bundle
from gecodec.errors import BundleError, GecError, ModelNotFoundError

from conftest import TINY_BUNDLE


def test_id_is_derived_from_the_weights(tiny, tmp_path):
    copy = tmp_path / "copy.safetensors"
    save_bundle(tiny, copy)
    assert load_bundle(copy).sha256 == tiny.sha256
    with torch.no_grad():
        tiny.generator.net.fc.bias[0] += 1.0
    changed = tmp_path / "changed.safetensors"
    save_bundle(tiny, changed)
    assert load_bundle(changed).model_id != load_bundle(copy).model_id


def test_half_precision_storage_loads_as_float32(tiny, tmp_path):
    path = tmp_path / "half.safetensors"
    save_bundle(tiny, path, half=True)
    loaded = load_bundle(path)
    assert loaded.generator.net.fc.weight.dtype == torch.float32
    assert torch.allclose(loaded.generator.net.fc.weight, tiny.generator.net.fc.weight, atol=1e-3)


def test_lookup_by_name_id_and_path(tiny):
    assert load_model("tiny-test").sha256 == tiny.sha256
    assert load_model(tiny.model_hex).sha256 == tiny.sha256
    assert load_model(TINY_BUNDLE).sha256 == tiny.sha256
    assert find_by_id(tiny.model_id).name == "tiny-test"
    assert any(p.name == TINY_BUNDLE.name for p in available_bundles())


def test_unknown_model_raises_model_not_found():
    with pytest.raises(ModelNotFoundError, match="no-such-model"):
        load_model("no-such-model")
    with pytest.raises(ModelNotFoundError, match="0badf00d"):
        find_by_id(0x0BADF00D)


def test_a_pickle_or_junk_file_is_not_a_bundle(tmp_path):
    pickle_path = tmp_path / "evil.safetensors"
    torch.save({"x": 1}, pickle_path)  # a pickle, which must never be unpickled
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x00" * 64)
    for path in (pickle_path, junk):
        with pytest.raises(BundleError):
            load_bundle(path)


def test_bundle_errors_are_gec_errors():
    assert issubclass(BundleError, GecError) and issubclass(ModelNotFoundError, GecError)


def test_dcgan_generator_and_ge0_encoder_survive_a_bundle_round_trip(tiny, tmp_path):
    from gecodec.bundle import Bundle
    from gecodec.models import DiscriminatorConfig, Generator, GeneratorConfig
    from gecodec.models.began import BeganEncoder

    generator = Generator(GeneratorConfig(16, 8, 8, arch="dcgan")).eval()
    encoder = BeganEncoder(DiscriminatorConfig(16, 6, 4)).eval()
    with torch.no_grad():
        generator.net.body[0].running_mean.uniform_()
    bundle = Bundle("mixed", generator, encoder, torch.zeros(6), torch.ones(6))
    save_bundle(bundle, tmp_path / "mixed.safetensors")
    loaded = load_bundle(tmp_path / "mixed.safetensors")
    assert loaded.encoder_kind == "ge0" and loaded.m == 6 and loaded.generator.config.arch == "dcgan"
    z = torch.randn(3, 8)
    assert torch.allclose(loaded.encoder(loaded.generator(z)), encoder(generator(z)), atol=1e-5)


def test_a_bundle_that_cannot_be_written_leaves_the_old_file(tiny, tmp_path, monkeypatch):
    from gecodec import bundle as bundle_module
    from gecodec.errors import OutputError

    path = tmp_path / "model.safetensors"
    save_bundle(tiny, path)
    before = path.read_bytes()

    def full_disk(tensors, filename, metadata=None):
        open(filename, "wb").write(b"half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(bundle_module, "save_file", full_disk)
    with pytest.raises(OutputError, match="No space left on device"):
        save_bundle(tiny, path)
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["model.safetensors"]


def rewritten(tiny, tmp_path, config_change=None, tensor_change=None, card=None) -> Path:
    """The tiny bundle saved again with its config, tensors or card changed as a hostile writer might."""
    import json

    from safetensors.torch import load_file, save_file

    from gecodec.catalog import read_metadata

    path = tmp_path / "hostile.safetensors"
    save_bundle(tiny, path)
    metadata, tensors = read_metadata(path), load_file(str(path))
    config = json.loads(metadata["config"])
    if config_change:
        config_change(config)
    if tensor_change:
        tensor_change(tensors)
    metadata = {**metadata, "config": json.dumps(config)}
    if card is not None:
        metadata["card"] = card
    save_file(tensors, str(path), metadata=metadata)
    return path


@pytest.mark.parametrize("change", [
    lambda c: c["generator"].update(channels=1_000_000),
    lambda c: c["generator"].update(image_size=32768),
    lambda c: c["encoder"].update(m=10**9),
], ids=["huge-width", "huge-image", "huge-m"])
def test_a_config_over_its_caps_is_refused_before_any_network_is_built(tiny, tmp_path, change):
    path = rewritten(tiny, tmp_path, config_change=change)
    with pytest.raises(BundleError, match="outside 1 to"):
        load_bundle(path)


def test_tensors_that_do_not_fit_the_config_are_refused_by_name(tiny, tmp_path):
    path = rewritten(tiny, tmp_path, config_change=lambda c: c["generator"].update(channels=4))
    with pytest.raises(BundleError, match="tensor generator"):
        load_bundle(path)


def test_non_finite_weights_are_refused_on_load(tiny, tmp_path):
    def poison(tensors):
        name = next(k for k in tensors if k.startswith("generator."))
        tensors[name] = tensors[name].clone().fill_(float("nan"))

    with pytest.raises(BundleError, match="non-finite"):
        load_bundle(rewritten(tiny, tmp_path, tensor_change=poison))


def test_a_card_that_is_not_an_object_is_ignored(tiny, tmp_path):
    assert load_bundle(rewritten(tiny, tmp_path, card="[1, 2]")).card == {}


def test_a_lookup_by_id_skips_an_unreadable_bundle_with_a_warning(tiny, model_dir):
    import os

    (model_dir / "aaa-broken.safetensors").write_bytes(b"not a bundle")
    try:
        with pytest.warns(UserWarning, match="aaa-broken"):
            assert find_by_id(tiny.model_id).sha256 == tiny.sha256
    finally:
        os.unlink(model_dir / "aaa-broken.safetensors")


def test_fifos_and_symlink_loops_in_the_model_folder_are_skipped_not_opened(model_dir):
    import os

    from click.testing import CliRunner

    from gecodec.cli import main

    fifo, loop = model_dir / "fifo.safetensors", model_dir / "loop.safetensors"
    os.mkfifo(fifo)
    loop.symlink_to(loop)
    try:
        with pytest.warns(UserWarning, match="not a regular file"):
            paths = available_bundles()
        assert fifo not in paths and loop not in paths and paths
        with pytest.warns(UserWarning, match="not a regular file"):
            result = CliRunner().invoke(main, ["models"])
        assert result.exit_code == 0 and "tiny-test" in result.output
    finally:
        os.unlink(fifo), os.unlink(loop)


def test_the_torch_free_catalog_computes_the_same_ids_as_loading():
    from conftest import ENTROPY_BUNDLE, GOLDEN

    from gecodec.catalog import describe_model, stored_ids

    for path in [*GOLDEN.glob("*.safetensors"), *available_bundles()]:
        bundle = load_bundle(path)
        assert stored_ids(path) == (bundle.sha256, bundle.transform_sha256)
    bundle = load_bundle(ENTROPY_BUNDLE)
    summary = describe_model(bundle.model_id)
    assert (summary.name, summary.image_size, summary.m, summary.model_hex) == ("tiny-entropy-test", 16, 16,
                                                                               bundle.model_hex)
    default = load_model()
    assert describe_model(default.transform_id).model_hex == default.model_hex  # a version-3 file's id finds it
    assert describe_model(default.model_id).ladder == default.ladder
    assert describe_model(0xFEEDF00D) is None


@pytest.fixture
def own_model_dir(tmp_path, monkeypatch) -> Path:
    """An empty user model folder of the test's own, for tests that put hostile files in it."""
    folder = tmp_path / "models"
    folder.mkdir()
    monkeypatch.setenv("GECODEC_MODEL_DIR", str(folder))
    return folder


@pytest.mark.parametrize("target, is_path", [
    ("celeba64-default", False), ("c5e0af83", False), ("./celeba64-default", True), ("models/x", True),
    ("x.safetensors", True), ("/abs/path", True)])
def test_a_model_is_a_path_only_with_a_separator_or_the_bundle_suffix(target, is_path):
    from gecodec.bundle import names_a_path

    assert names_a_path(target) is is_path


def test_a_bare_word_is_never_a_file_in_the_current_folder(tiny, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in ("tiny-test", tiny.model_hex, DEFAULT_MODEL):
        (tmp_path / name).write_bytes(b"junk that must not take over a model's name")
    assert load_model("tiny-test").sha256 == tiny.sha256
    assert load_model(tiny.model_hex).sha256 == tiny.sha256
    assert load_model().name == DEFAULT_MODEL
    with pytest.raises(BundleError, match="not a readable model bundle"):
        load_model("./tiny-test")  # said to be a path: that file, and nothing else
    with pytest.raises(ModelNotFoundError, match="no such model bundle file"):
        load_model("./absent.safetensors")


def test_a_file_names_its_model_by_content_never_by_file_name(tiny, own_model_dir):
    from conftest import ENTROPY_BUNDLE

    (own_model_dir / f"{tiny.model_hex}.safetensors").write_bytes(b"junk named after the id")
    (own_model_dir / "aaa.safetensors").write_bytes(ENTROPY_BUNDLE.read_bytes())  # a good bundle, another id
    (own_model_dir / "zzz.safetensors").write_bytes(TINY_BUNDLE.read_bytes())
    with pytest.warns(UserWarning, match=f"{tiny.model_hex}.safetensors: not a readable model bundle.*; skipped"):
        found = find_by_id(tiny.model_id)
    assert found.path.name == "zzz.safetensors" and found.sha256 == tiny.sha256


def test_user_bundles_that_share_an_id_but_decode_differently_are_an_error(tiny, tmp_path, own_model_dir):
    (own_model_dir / "a.safetensors").write_bytes(TINY_BUNDLE.read_bytes())
    (own_model_dir / "b.safetensors").write_bytes(TINY_BUNDLE.read_bytes())
    assert find_by_id(tiny.model_id).path.name == "a.safetensors"  # copies that agree: the first
    for change in (lambda c: c["generator"].update(latent_prior="uniform"),
                   lambda c: c.update(decode={"iters": 5000, "restarts": 16, "lam": 0.01, "lr": 0.1})):
        os.replace(rewritten(tiny, tmp_path, config_change=change), own_model_dir / "b.safetensors")
        assert load_bundle(own_model_dir / "b.safetensors").model_id == tiny.model_id  # the id covers tensors only
        with pytest.raises(BundleError, match=f"model {tiny.model_hex} is in both .*a.safetensors and "
                                              ".*b.safetensors, whose configs decode it differently"):
            find_by_id(tiny.model_id)


def default_copy(folder: Path, name: str, change) -> Path:
    """The shipped default bundle, copied with its config changed."""
    import json

    from safetensors.torch import load_file, save_file

    from gecodec.catalog import read_metadata

    source = load_model().path
    metadata = read_metadata(source)
    config = json.loads(metadata["config"])
    change(config)
    path = folder / f"{name}.safetensors"
    save_file(load_file(str(source)), str(path), metadata={**metadata, "config": json.dumps(config)})
    return path


def test_a_copy_of_a_shipped_bundle_with_another_schedule_cannot_answer_for_its_id(own_model_dir):
    default = load_model()
    copy = default_copy(own_model_dir, default.transform_sha256[:8], lambda c: c["decode"].update(lam=100.0, lr=10.0))
    assert find_by_id(default.transform_id) is default and find_by_id(default.model_id) is default
    with pytest.raises(BundleError, match=f"has the model id {default.model_hex} of the shipped {default.name} but "
                                          "another config"):
        load_model(copy)
    same = default_copy(own_model_dir, "same", lambda c: c.update(crop={"eyes": [[20, 30], [44, 30]]}))
    assert load_model(same).decode_settings == default.decode_settings  # what does not change a decode may differ


def test_gec_models_lists_such_a_copy_as_an_error_not_a_second_default(own_model_dir):
    from click.testing import CliRunner

    from gecodec.cli import main

    default_copy(own_model_dir, "copy", lambda c: c["decode"].update(lam=100.0))
    result = CliRunner().invoke(main, ["models"])
    assert result.exit_code == 0 and result.output.count("(default)") == 1
    assert "copy.safetensors: has the model id" in result.output


@pytest.mark.parametrize("change, problem", [
    (lambda c: c["generator"].update(image_size=16.0), "generator image_size = 16.0 is not an integer"),
    (lambda c: c["generator"].update(min_channels=True), "generator min_channels = True is not an integer or null"),
    (lambda c: c["encoder"].update(m="16"), "encoder m = '16' is not an integer"),
    (lambda c: c.update(decode={"iters": 5.0, "restarts": 1, "lam": 0.01, "lr": 0.05}), "decode iters = 5.0"),
    (lambda c: c.update(decode={"iters": 5, "restarts": 1, "lam": None, "lr": 0.05}), "decode lam = None is not a number"),
    (lambda c: c.update(encoder_kind=5), "config encoder_kind = 5 is not a string"),
    (lambda c: c.update(encoder_kind="ge2"), "unknown encoder kind 'ge2'"),
    (lambda c: c.update(crop={"eyes": [["1", 2], [3, 4]]}), "crop eyes .* are not two \\[x, y\\] points"),
    (lambda c: c.update(ae_decoder=[4]), "config ae_decoder is not an object"),
    (lambda c: c.update(entropy={"qualities": 101}), "entropy fields \\['qualities'\\], expected"),
    (lambda c: c.update(extra=1), "config fields \\['extra'\\] unknown"),
    (lambda c: c["generator"].update(depth=3), "generator field 'depth' unknown"),
    (lambda c: c.pop("encoder"), "config has no encoder"),
], ids=["float-size", "boolean", "string", "float-iters", "null-lam", "kind-type", "kind", "crop", "section",
        "missing-field", "unknown-field", "unknown-generator-field", "no-encoder"])
def test_a_config_field_of_the_wrong_type_is_refused_on_load(tiny, tmp_path, change, problem):
    with pytest.raises(BundleError, match=f"inconsistent model bundle \\({problem}"):
        load_bundle(rewritten(tiny, tmp_path, config_change=change))


def test_a_sparse_bundle_at_the_config_caps_is_refused_before_anything_is_read(tmp_path, monkeypatch):
    from gecodec.bundle import CONFIG_CAPS, _build
    from gecodec.catalog import MAX_TENSOR_BYTES

    from test_catalog import bytes_read, hand_made_bundle

    config = {"generator": {key: CONFIG_CAPS[key] for key in ("image_size", "latent_dim", "channels")},
              "encoder": {key: CONFIG_CAPS[key] for key in ("image_size", "m", "depth", "filters")}}
    with torch.device("meta"):
        shapes = {f"{prefix}.{key}": ("F16", tuple(value.shape)) for prefix, module in _build(config).items()
                  if module is not None for key, value in module.state_dict().items()}
    m = CONFIG_CAPS["m"]
    path = hand_made_bundle(tmp_path / "caps.safetensors",
                            {**shapes, "calibration.lo": ("F32", (m,)), "calibration.hi": ("F32", (m,))}, config)
    sizes = bytes_read(monkeypatch)
    with pytest.raises(BundleError, match=f"over the limit of {MAX_TENSOR_BYTES}"):
        load_bundle(path)
    assert sum(sizes) < 1 << 16
