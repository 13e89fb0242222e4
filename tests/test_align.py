"""Faces in photos: finding and framing them on encode, and the decoded crop, its size and pasting it back.

The photos are built from the validation faces in tests/data/faces.png: each 64x64 crop is mirrored outwards
at its edges (so that the face has hair, shoulders and background around it, as in a portrait), enlarged,
turned and set in larger pictures. The shipped default model frames and codes them.
"""

from __future__ import annotations

import json
import math
import sys
import warnings

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from gecodec.image_encoding import encode_image
from gecodec import align, container
from gecodec.align import CropGeometry, Placement, file_placement, frame_decoded, frame_face, placement_from_eyes
from gecodec.api import get_codec
from gecodec.bundle import load_model
from gecodec.cli import main
from gecodec.codec import Source
from gecodec.errors import ImageError, MissingExtraError, OptionError

from bench.align_check import portrait as grown_portrait
from conftest import ROOT

FACES = Image.open(ROOT / "tests" / "data" / "faces.png").convert("RGB")


def face(index: int) -> Image.Image:
    return FACES.crop((64 * index, 0, 64 * index + 64, 64))


def portrait(index: int, angle: float = 0.0, scale: int = 4) -> Image.Image:
    """Validation face ``index`` grown into a portrait (bench.align_check's construction), turned ``angle``."""
    return grown_portrait(face(index), angle, scale)


@pytest.fixture(scope="module")
def default():
    return load_model()


def psnr(a: Image.Image, b: Image.Image) -> float:
    error = np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2)
    return 10 * math.log10(255**2 / error)


def test_the_default_model_carries_the_training_crops_eye_positions(default):
    eyes = default.crop
    assert eyes is not None and eyes.left_eye[0] < 32 < eyes.right_eye[0]
    assert abs(eyes.left_eye[1] - eyes.right_eye[1]) < 1  # CelebA's crops are aligned: level eyes
    assert 20 < eyes.right_eye[0] - eyes.left_eye[0] < 26


def test_placement_maps_both_ways_and_puts_the_eyes_where_the_geometry_says():
    geometry = CropGeometry((20.0, 34.0), (44.0, 34.0))
    placement = placement_from_eyes((410.0, 300.0), (500.0, 270.0), geometry, 64)
    a, b, c, d, e, f = placement.to_crop(64)
    for (x, y), want in (((410.0, 300.0), geometry.left_eye), ((500.0, 270.0), geometry.right_eye)):
        assert (a * x + b * y + c, d * x + e * y + f) == pytest.approx(want)
    forward = np.array([[*placement.to_photo(64)[:3]], [*placement.to_photo(64)[3:]], [0, 0, 1]])
    backward = np.array([[a, b, c], [d, e, f], [0, 0, 1]])
    assert forward @ backward == pytest.approx(np.eye(3))
    assert placement.angle == pytest.approx(math.degrees(math.atan2(-30, 90)))


def test_a_file_without_a_crop_holds_its_photos_centre_square():
    header = container.Header(model_id=1, quality=1, original_size=(41, 24))
    assert file_placement(header, 64) == Placement(20.0, 12.0, 24.0)  # (41 - 24) // 2 + 24 / 2
    fields = Source((41, 24), Placement(20.0, 12.0, 24.0)).header_fields(64)
    assert fields["position"] is None and fields["original_size"] == (41, 24)
    assert Source((64, 64)).header_fields(64)["original_size"] is None


@pytest.mark.parametrize("angle", [0.0, 20.0, -20.0])
def test_a_turned_portrait_is_framed_upright_like_its_tight_crop(default, angle):
    framed = frame_face(portrait(0, angle), default.crop, 64)
    assert framed.how == "aligned" and framed.note is None
    assert framed.placement.angle == pytest.approx(-angle, abs=4)
    assert psnr(framed.face, face(0)) > 21  # the same face, framed within a pixel or so of its crop


def test_the_largest_face_of_a_group_is_the_one_framed(default):
    group = Image.new("RGB", (1000, 500), (90, 110, 130))
    for index, (x, side) in enumerate([(20, 200), (300, 400), (740, 240)]):
        group.paste(portrait(index + 1, scale=1).resize((side, side)), (x, 50))
    framed = frame_face(group, default.crop, 64)
    assert framed.how == "aligned" and 300 < framed.placement.cx < 700


def test_an_image_at_the_model_size_skips_the_detector(default, monkeypatch):
    monkeypatch.setattr(align, "find_eyes", lambda photo: pytest.fail("the detector ran"))
    assert frame_face(face(3), default.crop, 64).how == "as given"


def test_no_face_falls_back_to_the_centre_crop_unless_a_face_is_required(default):
    gradient = Image.fromarray(np.tile(np.linspace(0, 255, 300, dtype=np.uint8), (200, 1)))
    framed = frame_face(gradient.convert("RGB"), default.crop, 64)
    assert (framed.how, framed.note) == ("centre", "no face found; using the centre crop")
    with pytest.raises(ImageError, match="no face found"):
        frame_face(gradient.convert("RGB"), default.crop, 64, "require")
    with pytest.raises(OptionError, match="align mode"):
        frame_face(gradient.convert("RGB"), default.crop, 64, "sometimes")


@pytest.mark.parametrize("size", [(1, 100_000), (100_000, 1)])
def test_a_strip_one_pixel_wide_has_no_face_and_is_no_error(default, size):
    strip = Image.new("RGB", size, (128, 100, 90))
    assert align.find_eyes(strip) is None
    assert frame_face(strip, default.crop, 64).how == "centre"


def test_without_the_align_extra_auto_takes_the_centre_crop_and_says_how_to_get_it(default, monkeypatch):
    monkeypatch.setitem(sys.modules, "dlib", None)  # as if dlib were not installed
    align._dlib_models.cache_clear()
    try:
        framed = frame_face(portrait(0), default.crop, 64)
        assert framed.how == "centre" and "pip install 'gecodec[align]'" in framed.note
        with pytest.raises(MissingExtraError, match=r"pip install 'gecodec\[align\]'"):
            frame_face(portrait(0), default.crop, 64, "require")
    finally:
        align._dlib_models.cache_clear()


def test_bad_crop_geometry_is_refused():
    for bad in ({"eyes": [[40, 30], [20, 30]]}, {"eyes": [[20, 30], [90, 30]]}, {"eyes": "no"}, {}):
        with pytest.raises(ValueError):
            CropGeometry.from_dict(bad, 64)


def test_a_portrait_decodes_within_half_a_decibel_of_its_tight_crop(default):
    """LFW-style portraits (the face a third of the frame, turned 15 degrees) against the same faces as
    tight crops: each file's PSNR against the crop it was made from."""
    codec = get_codec(default, "cpu")
    tight, framed = [], []
    for index in range(8):
        tight.append(encode_image(codec, face(index), check=True)[1].psnr)
        data, report = encode_image(codec, portrait(index, angle=15.0), check=True)
        assert report.framing == "aligned"
        assert container.read(data)[0].position is not None
        framed.append(report.psnr)
    assert np.mean(framed) > np.mean(tight) - 0.5, (tight, framed)


def test_decoded_crop_size_and_paste_checks(default):
    header = container.Header(model_id=1, quality=1, original_size=(300, 200), crop=(150, 100, 120, 50))
    crop = face(2)
    assert frame_decoded(crop, header).size == (64, 64)
    assert frame_decoded(crop, header, size=200).size == (200, 200)
    for bad in (7, 4097):
        with pytest.raises(OptionError, match="output size"):
            frame_decoded(crop, header, size=bad)
    with pytest.raises(ImageError, match="is 301x200, and the file was made from a 300x200 image"):
        frame_decoded(crop, header, photo=Image.new("RGB", (301, 200)))
    with pytest.raises(ImageError, match="does not say where its face lies"):
        frame_decoded(crop, container.Header(model_id=1, quality=1), photo=Image.new("RGB", (300, 200)))
    photo = Image.new("RGB", (300, 200), (0, 0, 255))
    pasted = frame_decoded(crop, header, photo=photo)
    assert pasted.size == (300, 200)
    assert pasted.getpixel((150, 100)) == pytest.approx(crop.resize((120, 120)).getpixel((60, 60)), abs=12)
    assert pasted.getpixel((5, 5)) == (0, 0, 255)  # outside the face: the photo, untouched


def test_a_folder_of_mixed_photos_through_the_command_line(tmp_path):
    """Portraits, a group shot, a non-face, a grayscale face and a turned face: the faces are found, framed
    and coded; the non-face gets a warning; a face goes back into its photo at the photo's size."""
    photos = tmp_path / "photos"
    photos.mkdir()
    canvas = Image.new("RGB", (900, 600), (60, 90, 70))
    canvas.paste(portrait(4, scale=3), (300, 40))
    canvas.save(photos / "portrait.jpg", quality=92)
    group = Image.new("RGB", (1000, 500), (120, 100, 90))
    for index, (x, side) in enumerate([(20, 200), (300, 400), (740, 240)]):
        group.paste(portrait(index + 5, scale=1).resize((side, side)), (x, 50))
    group.save(photos / "group.png")
    Image.fromarray(np.tile(np.linspace(0, 255, 400, dtype=np.uint8), (300, 1))).save(photos / "gradient.png")
    portrait(1).convert("L").save(photos / "gray.png")
    portrait(2, angle=20.0).save(photos / "turned.png")

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = CliRunner().invoke(main, ["encode", str(photos), "-o", str(tmp_path / "codes"), "--json"])
    assert result.exit_code == 0, result.output
    records = {r["input"].split("/")[-1]: r for r in map(json.loads, result.stdout.splitlines())}
    assert {name: r["framing"] for name, r in records.items()} == {
        "gradient.png": "centre", "gray.png": "aligned", "group.png": "aligned", "portrait.jpg": "aligned",
        "turned.png": "aligned"}
    assert [str(w.message) for w in caught] == [f"{photos / 'gradient.png'}: no face found; using the centre crop"]
    assert container.read((tmp_path / "codes" / "gray.gec").read_bytes())[0].grayscale

    out = tmp_path / "back.png"
    result = CliRunner().invoke(main, ["decode", str(tmp_path / "codes" / "turned.gec"), "--paste-into",
                                       str(photos / "turned.png"), "-o", str(out), "-q"])
    assert result.exit_code == 0, result.output
    assert Image.open(out).size == Image.open(photos / "turned.png").size
    result = CliRunner().invoke(main, ["decode", str(tmp_path / "codes" / "gray.gec"), "--size", "128", "-q"])
    assert result.exit_code == 0 and Image.open(tmp_path / "codes" / "gray.png").size == (128, 128)
    assert Image.open(tmp_path / "codes" / "gray.png").mode == "L"


def test_command_line_errors_are_one_line(tmp_path):
    Image.fromarray(np.full((100, 150, 3), 128, np.uint8)).save(tmp_path / "wall.png")
    result = CliRunner().invoke(main, ["encode", str(tmp_path / "wall.png"), "--align", "require"])
    assert result.exit_code == 1 and "no face found, and alignment was required" in result.output
    assert CliRunner().invoke(main, ["encode", str(tmp_path / "wall.png"), "-o", str(tmp_path / "wall.gec"),
                                     "--no-check"]).exit_code == 0
    result = CliRunner().invoke(main, ["decode", str(tmp_path / "wall.gec"), "--paste-into", str(tmp_path / "wall.gec")])
    assert result.exit_code == 1 and "not a readable image" in result.output
    face(0).save(tmp_path / "other.png")
    result = CliRunner().invoke(main, ["decode", str(tmp_path / "wall.gec"), "--paste-into", str(tmp_path / "other.png"),
                                       "-o", str(tmp_path / "out.png")])
    assert result.exit_code == 1 and "is 64x64, and the file was made from a 150x100 image" in result.output
    result = CliRunner().invoke(main, ["decode", str(tmp_path / "wall.gec"), "--size", "5000"])
    lines = result.output.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1
    assert lines[0].startswith("gec: error: Invalid value for '--size': 5000 is not in the range 8<=x<=4096.")


def test_geometry_is_measured_on_face_crops_and_stored_without_changing_the_model_id(tmp_path, default):
    import shutil

    import torch

    from gecodec.bundle import load_bundle
    from gecodec.train.geometry import measure_geometry, store_geometry

    crops = torch.from_numpy(np.stack([np.asarray(face(i)) for i in range(8)])).permute(0, 3, 1, 2)
    geometry, stats = measure_geometry(crops)
    assert stats["found"] >= 6
    for measured, shipped in zip((geometry.left_eye, geometry.right_eye), (default.crop.left_eye, default.crop.right_eye)):
        assert measured == pytest.approx(shipped, abs=2.5)  # 8 faces against the 2,000 the shipped figure took
    path = tmp_path / "tiny.safetensors"
    shutil.copy(ROOT / "formats" / "golden" / "tiny-test.safetensors", path)
    before = load_bundle(path).model_hex
    store_geometry(path, CropGeometry((5.0, 7.0), (11.0, 7.5)), {"found": 1})
    after = load_bundle(path)
    assert after.model_hex == before and after.crop == CropGeometry((5.0, 7.0), (11.0, 7.5))


def test_pasting_into_a_callers_image_leaves_it_as_it_was(default):
    import gecodec

    photo = portrait(3, angle=10.0)
    before = np.asarray(photo).copy()
    data = gecodec.encode(photo)
    back = gecodec.decode(data, paste_into=photo)
    assert back.size == photo.size and np.array_equal(np.asarray(photo), before)
    assert not np.array_equal(np.asarray(back), before)


@pytest.mark.parametrize("size", [(176, 176), (640, 480), (300, 4000), (4000, 3000)])
def test_a_position_codes_a_faces_square_finer_than_a_paste_can_show(size):
    rng = np.random.default_rng(sum(size))
    width, height = size
    for _ in range(50):
        side = float(rng.uniform(20, 1.3 * min(size)))
        placement = Placement(rng.uniform(0, width), rng.uniform(0, height), side, rng.uniform(-40, 40))
        coded = Placement.from_position(placement.position(width, height))
        assert abs(coded.side / side - 1) <= 2 ** (1 / 128) - 1  # half a step of 1/64 octave
        unit = coded.side / 128  # half a pixel of the 64-pixel crop
        assert abs(coded.cx - placement.cx) <= unit / 2 + 1e-9 and abs(coded.cy - placement.cy) <= unit / 2 + 1e-9
        assert abs(coded.angle - placement.angle) <= 0.5
        assert coded.position(width, height) == placement.position(width, height)  # coding it again changes nothing


def test_a_photos_file_holds_its_position_in_fewer_bytes_than_a_size_and_a_crop():
    """LFW's photos are 176 pixels square with the face about 120 across; phone photos are larger."""
    plain = len(container.write(container.Header(model_id=1, quality=60), b"x"))
    for size, placement, cost, saved in (((176, 176), Placement(88.4, 73.2, 121.0, -8.0), 11, 3),
                                         ((640, 480), Placement(300.0, 200.0, 150.0, -12.3), 14, 6)):
        position = container.Header(model_id=1, quality=60, position=placement.position(*size))
        stored = (round(placement.cx), round(placement.cy), round(placement.side), round(placement.angle * 10))
        crop = container.Header(model_id=1, quality=60, original_size=size, crop=stored)  # keys 2 and 8
        with_position = len(container.write(position, b"x"))
        assert (with_position - plain, len(container.write(crop, b"x")) - with_position) == (cost, saved)
