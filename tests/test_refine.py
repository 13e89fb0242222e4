"""The refinement layer's coder (gecodec/refine.py): transform, quantization and ANS coding of residuals."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from gecodec.errors import FormatError, OptionError
from gecodec.refine import LEVELS, analyse, fit_refinement, synthesise


def residuals(n: int, seed: int) -> torch.Tensor:
    """Smooth-ish residuals in [-1, 1] units: a few levels of noise with some low-frequency structure."""
    g = torch.Generator().manual_seed(seed)
    low = torch.nn.functional.interpolate(torch.randn(n, 3, 8, 8, generator=g), size=64, mode="bilinear")
    return (0.05 * low + 0.02 * torch.randn(n, 3, 64, 64, generator=g)).clamp(-1, 1)


@pytest.fixture(scope="module")
def model():
    return fit_refinement(residuals(32, 0))


def test_the_transform_is_exact_on_luma_and_averages_chroma():
    x = residuals(2, 1).double().numpy() * 127.5
    back = synthesise(analyse(x), 64)
    assert back.shape == x.shape
    luma = np.array([0.299, 0.587, 0.114])
    assert np.einsum("c,nchw->nhw", luma, back) == pytest.approx(np.einsum("c,nchw->nhw", luma, x), abs=1e-9)
    grey = np.repeat(x[:, :1], 3, axis=1)  # no chroma at all: exact
    assert synthesise(analyse(grey), 64) == pytest.approx(grey, abs=1e-9)


def test_each_quality_round_trips_and_finer_costs_more_and_errs_less(model):
    x = residuals(3, 2)
    planes = analyse(x.double().numpy() * 127.5)
    sizes, errors = [], []
    for level in (0, LEVELS // 2, LEVELS - 1):
        integers = model.quantize(planes, level)
        one = [k[0] for k in integers]
        data = model.encode(one, level)
        assert all(np.array_equal(a, b) for a, b in zip(model.decode(data, level, 64), one))
        decoded = synthesise(model.dequantize(integers, level), 64) / 127.5
        sizes.append(len(data))
        errors.append(float(((torch.from_numpy(decoded) - x.double()) ** 2).mean()))
    assert sizes[0] < sizes[1] < sizes[2] and errors[0] > errors[1] > errors[2]


def test_a_damaged_layer_is_an_error_not_a_noisy_image(model):
    planes = analyse(residuals(1, 3).double().numpy() * 127.5)
    data = model.encode([k[0] for k in model.quantize(planes, 10)], 10)
    for bad in (data[:-1].rstrip(b"\0") or b"\1", data + b"\1", b""):
        with pytest.raises(FormatError):
            model.decode(bad, 10, 64)
    with pytest.raises(OptionError):
        model.steps(LEVELS)


@pytest.fixture(scope="module")
def codec():
    from gecodec.bundle import load_model
    from gecodec.codec import Codec

    return Codec(load_model(), "cpu")


@pytest.fixture(scope="module")
def faces():
    from PIL import Image

    from conftest import ROOT
    from gecodec.imageio import pixels_to_tensor

    strip = np.asarray(Image.open(ROOT / "tests" / "data" / "faces.png").convert("RGB"))
    return torch.stack([pixels_to_tensor(strip[:, 64 * i : 64 * i + 64]) for i in range(4)])


def test_a_refined_file_decodes_past_its_base_and_the_base_alone_still_decodes(codec, faces):
    from gecodec import container
    from gecodec.metrics import psnr_8bit

    base = [container.with_start_picture(data, False) for data in codec.encode_batch(faces)]  # a layer's base: v3
    refined = codec.encode_batch(faces, refine=6)
    header, payload = container.read(refined[0])
    base_header, base_payload = container.read(base[0])
    assert header.layer == container.Layer(6, len(base_payload), codec.bundle.refine.check_code, "dct",
                                           container.base_check(base_header, base_payload), on_start=True)
    assert payload.startswith(container.read(base[0])[1])  # the base layer is the base file's payload
    full, alone, base_decoded = (codec.decode_batch(refined), codec.decode_batch(refined, base_only=True),
                                 codec.decode_batch(base))
    assert torch.equal(alone, base_decoded)
    assert float(psnr_8bit(full, faces).mean()) > float(psnr_8bit(base_decoded, faces).mean()) + 3
    finer = codec.decode_batch(codec.encode_batch(faces, refine=LEVELS - 1))
    assert float(psnr_8bit(finer, faces).mean()) > float(psnr_8bit(full, faces).mean())


def test_target_bytes_takes_the_largest_ladder_quality_that_fits(codec, faces):
    from gecodec import container
    from gecodec.ladder import rung_of

    errors = []
    for target in (60, 100, 300, 700):
        files = codec.encode_batch(faces, target_bytes=target)
        for face, data in zip(faces, files):
            header = container.read(data)[0]
            layer = header.layer
            assert (layer is None) if target == 60 else (layer is not None) if target >= 300 else True
            quality = codec.bundle.ladder.index(rung_of(header))
            assert len(data) <= target and data == codec.encode_batch(face[None], quality=quality)[0]
            assert quality == 100 or len(codec.encode_batch(face[None], quality=quality + 1)[0]) > target
        errors.append(float(((codec.decode_batch(files) - faces) ** 2).mean()))
    assert errors == sorted(errors, reverse=True)
    with pytest.raises(OptionError, match="not both"):
        codec.encode_batch(faces, target_bytes=300, refine=3)
    with pytest.raises(OptionError, match="entropy-coded base"):
        codec.encode_batch(faces, bits=8, refine=3)


def test_a_layer_for_other_tables_or_cut_short_is_refused(codec, faces):
    from dataclasses import replace

    from gecodec import container

    header, payload = container.read(codec.encode_batch(faces[:1], refine=4)[0])
    layer = header.layer
    bad_layers = (layer._replace(check=layer.check ^ 1), layer._replace(base_bytes=len(payload)),
                  layer._replace(kind="learned"))  # a model without a learned layer
    for bad_layer in bad_layers:
        with pytest.raises(FormatError):
            codec.parse(container.write(replace(header, layer=bad_layer), payload))
    with pytest.raises(FormatError):  # the layer's last byte lost
        codec.decode_batch([container.write(header, payload[:-1].rstrip(b"\0"))])


def test_the_command_line_adds_shows_and_leaves_out_a_layer(tmp_path):
    from click.testing import CliRunner
    from PIL import Image

    from conftest import ROOT
    from gecodec.cli import main

    Image.open(ROOT / "tests" / "data" / "faces.png").crop((0, 0, 64, 64)).save(tmp_path / "face.png")
    run = CliRunner().invoke
    assert run(main, ["encode", str(tmp_path / "face.png"), "--refine", "3", "--no-check"]).exit_code == 0
    info = run(main, ["info", str(tmp_path / "face.gec")])
    assert "refinement level 3" in info.output and "on the start picture" in info.output
    as_json = json.loads(run(main, ["info", "--json", str(tmp_path / "face.gec")]).output)
    assert as_json["layers"][1]["refines"] == "start picture"
    full, base = tmp_path / "full.png", tmp_path / "base.png"
    assert run(main, ["decode", str(tmp_path / "face.gec"), "-o", str(full), "-q"]).exit_code == 0
    assert run(main, ["decode", str(tmp_path / "face.gec"), "-o", str(base), "-q", "--base-only"]).exit_code == 0
    original = np.asarray(Image.open(tmp_path / "face.png"), np.float64)
    errors = [np.mean((np.asarray(Image.open(p), np.float64) - original) ** 2) for p in (full, base)]
    assert errors[0] < 0.75 * errors[1]
    result = run(main, ["encode", str(tmp_path / "face.png"), "--refine", "16", "-f"])
    assert result.exit_code == 2 and "16 is not in the range 0<=x<=15" in result.output


def test_pillow_saves_a_refined_file(tmp_path):
    from PIL import Image

    import gecodec.pil  # noqa: F401
    from conftest import ROOT
    from gecodec import container

    face = Image.open(ROOT / "tests" / "data" / "faces.png").convert("RGB").crop((64, 0, 128, 64))
    face.save(tmp_path / "face.gec", refine=2)
    assert container.read((tmp_path / "face.gec").read_bytes())[0].layer[0] == 2
    with Image.open(tmp_path / "face.gec") as decoded:
        assert decoded.size == (64, 64)
