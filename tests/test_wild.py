"""Faces as users have them: photos framed by the codec's own face finder, split by person; augmentations;
joint training on a mix of two sources."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from gecodec.align import frame_face
from gecodec.bundle import load_model
from gecodec.cli import main
from gecodec.errors import ImageError, OptionError
from gecodec.imageio import open_image
from gecodec.train.augment import AUGMENTATIONS, augment, check_augment
from gecodec.train.checkpoint import load_checkpoint
from gecodec.train.data import load_images, mixed_batches, sample_batches
from gecodec.train.photos import (frame_photos, is_validation, load_framed, main as photos_main, person_of,
                                  split_by_person, write_framing)

from conftest import face_folder
from test_align import portrait
from test_joint import TINY_JOINT

pytest.importorskip("dlib")


@pytest.fixture(scope="module")
def photo_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six people with one or two portraits each, and a picture with no face."""
    root = tmp_path_factory.mktemp("photos")
    for person in range(6):
        (root / f"Person_{person}").mkdir()
        for shot in range(1 + person % 2):
            portrait(person + shot, angle=5.0 * shot, scale=3).save(root / f"Person_{person}" / f"shot{shot}.jpg")
    Image.new("RGB", (200, 200), (90, 90, 90)).save(root / "Person_0" / "blank.png")
    return root


def test_a_person_is_the_photo_folder_and_the_split_is_a_fixed_hash():
    assert person_of("Ann_Smith/Ann_Smith_0001.jpg") == "Ann_Smith" and person_of("loose.jpg") == "loose"
    people = [f"person{i}" for i in range(2000)]
    held = [is_validation(p) for p in people]
    assert 0.08 < np.mean(held) < 0.12  # about the share asked for
    assert held == [is_validation(p) for p in people]  # and the same every time
    assert not any(is_validation(p, 0.0) for p in people) and all(is_validation(p, 1.0) for p in people)


def test_photos_are_framed_as_gec_encode_frames_them_and_faceless_ones_are_left_out(photo_folder: Path):
    bundle = load_model()
    framed = frame_photos(photo_folder, bundle.crop, 64)
    assert framed.missed == ["Person_0/blank.png"] and len(framed.names) == 9
    first = frame_face(open_image(photo_folder / framed.names[0]), bundle.crop, 64, "require")
    assert framed.placements[0] == first.placement
    assert np.array_equal(framed.faces[0].permute(1, 2, 0).numpy(), np.asarray(first.face))


def test_framing_at_twice_the_side_frames_the_same_square_twice_as_finely(photo_folder: Path):
    crop = load_model().crop
    small, large = frame_photos(photo_folder, crop, 64), frame_photos(photo_folder, crop.scaled(2), 128)
    assert large.faces.shape[-1] == 128 and large.names == small.names
    for at_64, at_128 in zip(small.placements, large.placements):  # the eyes land in the same place
        assert abs(at_64.cx - at_128.cx) < 0.5 and abs(at_64.cy - at_128.cy) < 0.5
        assert abs(at_64.side - at_128.side) < 0.5 and abs(at_64.angle - at_128.angle) < 0.1
    halved = torch.nn.functional.avg_pool2d(large.faces.float(), 2)
    assert float((halved - small.faces.float()).abs().mean()) < 6  # the same face, up to resampling


def test_framing_writes_both_splits_with_no_person_on_both_sides(photo_folder: Path, tmp_path: Path):
    framed = frame_photos(photo_folder, load_model().crop, 64)
    people = {person_of(name) for name in framed.names}
    share = next(s / 10 for s in range(1, 10) if 0 < sum(is_validation(p, s / 10) for p in people) < len(people))
    summary = write_framing(framed, tmp_path, share=share)
    document = json.loads((tmp_path / "framing.json").read_text())
    people = {split: {person_of(r["name"]) for r in document["photos_kept"] if r["split"] == split}
              for split in ("train", "val")}
    assert people["train"] and people["val"] and not people["train"] & people["val"]
    assert summary["train"] + summary["val"] == 9 and summary["missed"] == 1
    train, val = split_by_person(framed, share)
    assert torch.equal(load_framed(tmp_path, "val"), framed.faces[val])
    assert load_framed(tmp_path, "train").shape == (len(train), 3, 64, 64)


def test_a_folder_with_no_usable_faces_is_named_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture):
    (tmp_path / "blank").mkdir()
    face_folder(tmp_path / "blank", 120, 120, count=2)
    with pytest.raises(SystemExit) as stop:
        photos_main(["--data", str(tmp_path / "blank"), "--out", str(tmp_path / "out")])
    assert "no usable faces" in str(stop.value) and str(tmp_path / "blank") in str(stop.value)
    with pytest.raises(ImageError, match="no framed faces"):
        load_framed(tmp_path / "out", "train")


def test_each_augmentation_changes_only_the_faces_it_draws_and_keeps_the_range():
    x = torch.rand(6, 3, 16, 16) * 2 - 1
    for kind in AUGMENTATIONS:
        out = augment(x, {kind: 1.0}, torch.Generator().manual_seed(1))
        assert out.shape == x.shape and out.abs().max() <= 1 and not torch.allclose(out, x, atol=1e-3)
        assert torch.equal(out, augment(x, {kind: 1.0}, torch.Generator().manual_seed(1)))  # seeded
    assert torch.equal(augment(x, {kind: 0.0 for kind in AUGMENTATIONS}, torch.Generator()), x)
    with pytest.raises(OptionError, match="unknown augmentation"):
        check_augment({"sepia": 0.5})
    with pytest.raises(OptionError, match="in \\[0, 1\\]"):
        check_augment({"blur": 1.5})


def test_mixed_batches_put_the_photos_last_and_without_photos_are_plain_batches():
    faces, photos = torch.zeros(10, 3, 4, 4, dtype=torch.uint8), torch.full((5, 3, 4, 4), 255, dtype=torch.uint8)
    batch = next(mixed_batches(faces, photos, 8, 3, seed=0))
    assert batch.shape[0] == 8 and (batch[:5] == -1).all() and (batch[5:] == 1).all()
    plain, mixed = sample_batches(faces, 4, seed=3), mixed_batches(faces, None, 4, 0, seed=3)
    assert all(torch.equal(next(plain), next(mixed)) for _ in range(3))


def test_the_bundle_steps_training_faces_alternate_the_two_sources_in_every_prefix(tmp_path: Path):
    from gecodec.train.photos import alternate, training_faces

    faces, photos = torch.zeros(5, 3, 4, 4, dtype=torch.uint8), torch.full((2, 3, 4, 4), 255, dtype=torch.uint8)
    assert [int(x[0, 0, 0]) for x in alternate(faces, photos)] == [0, 255, 0, 255, 0, 0, 0]
    folder = tmp_path / "faces"
    folder.mkdir()
    for i in range(4):
        Image.new("RGB", (4, 4), (10, 10, 10)).save(folder / f"{i}.png")
    framing = tmp_path / "framing"
    framing.mkdir()
    np.save(framing / "train.npy", np.full((3, 3, 4, 4), 200, dtype=np.uint8))
    mixed = training_faces(folder, framing, 4, limit=5)
    assert [int(x[0, 0, 0]) for x in mixed] == [10, 200, 10, 200, 10]
    assert torch.equal(training_faces(folder, None, 4, limit=3), load_images(folder, 4, limit=3))
    with pytest.raises(ImageError, match="its faces are 4 pixels, the model's 8"):
        training_faces(folder, framing, 8, limit=4)


def test_joint_training_on_a_mix_refuses_to_resume_with_another_mix(tmp_path: Path):
    (tmp_path / "faces").mkdir()
    faces = face_folder(tmp_path / "faces", 16, 16, count=8)
    photos = tmp_path / "framing"
    photos.mkdir()
    np.save(photos / "train.npy", np.random.default_rng(0).integers(0, 256, (6, 3, 16, 16), dtype=np.uint8))
    run = tmp_path / "run"
    gec = lambda *args: CliRunner().invoke(main, [str(a) for a in args])  # noqa: E731
    first = gec("train", "joint", "--data", faces, "--out", run, "--steps", "2", *TINY_JOINT, "--photos", photos,
                "--photo-share", "0.5", "--augment", "geometry=0.5", "--augment", "jpeg=1")
    assert first.exit_code == 0, first.output
    state = load_checkpoint(run / "checkpoint.pt")
    assert state["sources"] == {"faces": 8, "photos": 6}
    assert state["config"]["augment"] == {"geometry": 0.5, "light": 0.0, "blur": 0.0, "noise": 0.0, "jpeg": 1.0}
    again = gec("train", "joint", "--data", faces, "--out", run, "--steps", "3", "--resume", "--photos", photos)
    assert again.exit_code == 0, again.output
    other_share = gec("train", "joint", "--data", faces, "--out", run, "--steps", "4", "--resume", "--photos", photos,
                      "--photo-share", "0.25")
    assert other_share.exit_code != 0 and "photo_share" in other_share.output
    no_photos = gec("train", "joint", "--data", faces, "--out", run, "--steps", "4", "--resume")
    assert no_photos.exit_code != 0 and "photos" in no_photos.output
    np.save(photos / "train.npy", np.zeros((3, 3, 16, 16), dtype=np.uint8))
    fewer = gec("train", "joint", "--data", faces, "--out", run, "--steps", "4", "--resume", "--photos", photos)
    assert fewer.exit_code != 0 and "another data mix" in fewer.output
    bad = gec("train", "joint", "--data", faces, "--out", tmp_path / "r2", "--steps", "1", *TINY_JOINT,
              "--augment", "blur")
    assert bad.exit_code != 0 and "KIND=P" in bad.output


def test_the_card_measures_photos_through_the_photo_path_and_the_report_names_them(tmp_path: Path):
    import shutil

    from gecodec.bundle import load_bundle
    from gecodec.container import Header
    from gecodec.report import EncodeReport, expected_psnr
    from gecodec.train.photo_card import main as photo_card_main

    from conftest import ENTROPY_BUNDLE, face_like

    bundle_path = tmp_path / "model.safetensors"
    shutil.copy(ENTROPY_BUNDLE, bundle_path)
    framing = tmp_path / "framing"
    framing.mkdir()
    np.save(framing / "val.npy", np.stack([np.asarray(face_like(16, 16, seed=i)).transpose(2, 0, 1) for i in range(2)]))
    records = [{"name": f"P{i}/p.jpg", "split": "val", "size": [90, 70], "position": [90, 70, 20, 5, 0, 2]} for i in range(2)]
    (framing / "framing.json").write_text(json.dumps({"photos_kept": records}))
    photo_card_main(["--bundle", str(bundle_path), "--photos", str(framing), "--faces", "test people",
                     "--qualities", "0", "100"])
    bundle = load_bundle(bundle_path)
    assert bundle.model_hex == load_bundle(ENTROPY_BUNDLE).model_hex
    curve = bundle.card["photos"]["curve"]
    default = bundle.default_quality  # measured whatever --qualities says: most files are at it
    assert [row["quality"] for row in curve] == [0, default, 100] and curve[0]["bytes"] < curve[2]["bytes"]
    assert expected_psnr(bundle, Header(model_id=bundle.model_id, quality=default), "aligned") == (
        round(curve[1]["psnr"], 2), "photos")
    header = Header(model_id=bundle.model_id, quality=(default + 100) // 2)
    between = round(float(np.interp(header.quality, [default, 100], [curve[1]["psnr"], curve[2]["psnr"]])), 2)
    assert expected_psnr(bundle, header, "aligned") == (between, "photos")
    bundle.card["rate"] = {"val_curve": [{"quality": 0, "psnr": 30.0}, {"quality": 100, "psnr": 40.0}]}
    crops = round(30.0 + header.quality / 10, 2)
    assert expected_psnr(bundle, header, "as given") == (crops, "validation")  # a face crop: the crops' own curve
    report = EncodeReport(80, 20.0, between, "aligned", "photos")
    assert report.describe().endswith(f"(validation photos: {between:.2f} dB)")


def test_a_half_checkpoint_is_small_and_a_run_goes_on_from_it(tmp_path: Path):
    from gecodec.train.checkpoint import main as checkpoint_main

    (tmp_path / "faces").mkdir()
    faces = face_folder(tmp_path / "faces", 16, 16, count=8)
    run = tmp_path / "run"
    gec = lambda *args: CliRunner().invoke(main, [str(a) for a in args])  # noqa: E731
    assert gec("train", "joint", "--data", faces, "--out", run, "--steps", "2", *TINY_JOINT).exit_code == 0
    full = run / "checkpoint.pt"
    checkpoint_main([str(full), str(tmp_path / "half.pt")])
    half = load_checkpoint(tmp_path / "half.pt")
    assert "optim" not in half and half["ema"]["generator.net.fc.weight"].dtype == torch.float16
    assert (tmp_path / "half.pt").stat().st_size < full.stat().st_size / 2
    (tmp_path / "half.pt").replace(full)
    resumed = gec("train", "joint", "--data", faces, "--out", run, "--steps", "3", "--resume")
    assert resumed.exit_code == 0, resumed.output
    assert load_checkpoint(full)["step"] == 3
