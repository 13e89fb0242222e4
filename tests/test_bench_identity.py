"""The face identity metric (bench/identity.py) on real faces, and how it reaches the records, summaries and tables."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from bench.__main__ import main
from bench.codecs import make_codecs
from bench.harness import Records, run_codec
from bench.identity import SAME_PERSON, FaceIdentity, face_identity
from bench.report import compressai_json, markdown_table, summarise
from gecodec.errors import MissingExtraError
from gecodec.imageio import pixels_to_tensor

from conftest import ROOT, face_folder, face_like

FAST = ["--size", "16", "--iters", "2", "--restarts", "1", "--bits", "8", "--batch-size", "4", "--keep", "1"]


@pytest.fixture
def identity() -> FaceIdentity:
    """The harness's metric; the tests that measure faces skip where dlib is not installed."""
    pytest.importorskip("dlib")
    return face_identity()


@pytest.fixture(scope="module")
def faces() -> np.ndarray:
    """Eight CelebA validation faces, 64x64."""
    with Image.open(ROOT / "tests" / "data" / "faces.png") as picture:
        row = np.asarray(picture.convert("RGB"))
    return np.stack([row[:, 64 * i : 64 * (i + 1)] for i in range(8)])


def jpeg(pixels: np.ndarray, quality: int) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=quality)
    return np.asarray(Image.open(buffer).convert("RGB"))


def test_a_face_is_the_same_person_as_itself(identity: FaceIdentity, faces: np.ndarray):
    synthetic = np.asarray(face_like(64, 64))  # no face for the detector: the fallback box
    figures = identity.measure(np.stack([faces[0], synthetic]), np.stack([faces[0], synthetic]))
    assert figures == {"identity_distance": [0.0, 0.0], "same_person": [1.0, 1.0]}


def test_another_face_is_farther_than_a_jpeg_copy(identity: FaceIdentity, faces: np.ndarray):
    # Face 0 is a woman, face 1 a man; JPEG at quality 50 leaves a 64x64 face recognisable.
    decoded, originals = np.stack([jpeg(faces[0], 50), faces[1]]), np.stack([faces[0], faces[0]])
    copy, other = identity.measure(decoded, originals)["identity_distance"]
    assert copy < SAME_PERSON < other


def test_missing_dlib_stops_the_run_with_one_line_naming_the_extra(tmp_path: Path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "dlib", None)  # import dlib fails
    monkeypatch.setattr("bench.__main__.face_identity", FaceIdentity)  # not the one loaded already
    assert main(["run", "--codecs", "webp", "--data", str(face_folder(tmp_path, 16, 16, 1)),
                 "--out", str(tmp_path / "out"), *FAST]) == 1
    assert capsys.readouterr().err == ("bench: error: the face identity metric needs dlib and face_recognition_models: "
                                       "pip install 'gecodec[bench]'\n")


@pytest.mark.usefixtures("identity")
def test_missing_model_files_name_the_bench_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "face_recognition_models", None)  # its files cannot be found
    with pytest.raises(MissingExtraError, match=r"pip install 'gecodec\[bench\]'"):
        FaceIdentity()


@pytest.mark.usefixtures("identity")
def test_records_summaries_json_and_table_carry_identity_and_the_floor_too(tmp_path: Path):
    faces = face_folder(tmp_path, 16, 16, 1)
    assert main(["run", "--codecs", "webp", "--data", str(faces), "--out", str(tmp_path / "out"), *FAST]) == 0
    for codec in ("webp", "floor"):
        for line in (tmp_path / "out" / "records" / f"{codec}.jsonl").read_text().splitlines():
            record = json.loads(line)
            assert record["same_person"] in (0.0, 1.0) and record["identity_distance"] >= 0
    results = json.loads((tmp_path / "out" / "webp.json").read_text())
    for key in ("identity-match", "identity-distance"):
        assert len(results["results"][key]) == len(results["settings"]) == len(results["ci95"][key])
    assert all(0 <= share <= 1 for share in results["results"]["identity-match"])
    header, _, *rows = (tmp_path / "out" / "table.md").read_text().splitlines()
    columns = [c.strip() for c in header.split("|")]
    same, distance = columns.index("same person (%)"), columns.index("identity distance")
    for row in rows:
        cells = row.split("|")
        assert float(cells[same].split("±")[0]) in (0.0, 100.0) and float(cells[distance].split("±")[0]) >= 0


def record(quality: int, image: str, identity: bool = True, decode_s: float = 0.001) -> dict:
    figures = {"identity_distance": 0.5, "same_person": 1.0} if identity else {}
    return {"setting": {"quality": quality}, "image": image, "bytes": 100, "bpp": 0.2, "mse": 0.01, "psnr": 25.0,
            "ssim": 0.7, "ms_ssim": None, **figures, "encode_s": 0.001, "decode_s": decode_s, "device": "cpu"}


def test_records_that_predate_identity_summarise_to_a_dash(tmp_path: Path):
    records = Records(tmp_path / "webp.jsonl")
    records.add([record(0, "a.png"), record(0, "b.png", identity=False), record(5, "a.png", identity=False)]
                + [{**record(10, image), "same_person": share} for image, share in (("a.png", 1.0), ("b.png", 0.0))])
    rows = summarise(records)
    assert [r["same_person"] for r in rows] == [None, None, 0.5]  # some, none, all records with identity
    assert rows[2]["identity_distance"] == 0.5
    table = markdown_table({"webp": rows}).splitlines()
    assert table[2].endswith("| - | - | 1.0 | 0.001 |") and table[3].endswith("| - | - | 1.0 | 0.001 |")
    assert table[4].endswith("| 50 ± 98 | 0.500 ± 0.000 | 1.0 | 0.001 |")
    results = compressai_json("webp", "WebP", rows)
    assert results["results"]["identity-match"] == [None, None, 0.5]
    assert results["ci95"]["identity-distance"] == [None, None, 0.0]


@pytest.mark.usefixtures("identity")
def test_a_rerun_measures_identity_for_cheap_old_records_and_keeps_slow_ones(faces: np.ndarray, tmp_path: Path):
    images = torch.stack([pixels_to_tensor(face) for face in faces[:2]])
    names = ["0.png", "1.png"]
    webp = make_codecs(["webp"], [], (8,), None, {})[0]["webp"]
    settings = [{"quality": 50}, {"quality": 90}]
    run_codec(webp, images, names, tmp_path, settings=settings)
    path = tmp_path / "records" / "webp.jsonl"
    old = [{k: v for k, v in json.loads(line).items() if k not in ("identity_distance", "same_person")}
           for line in path.read_text().splitlines()]
    for r in old:
        if r["setting"] == {"quality": 90}:
            r["decode_s"] = 5.0  # as slow as a search: not worth measuring again
    path.write_text("".join(json.dumps(r) + "\n" for r in old))
    rows = {r["setting"]["quality"]: r for r in summarise(run_codec(webp, images, names, tmp_path, settings=settings))}
    assert rows[50]["same_person"] == 1.0 and rows[50]["identity_distance"] < SAME_PERSON
    assert rows[90]["same_person"] is None and rows[90]["decode_s"] == 5.0
