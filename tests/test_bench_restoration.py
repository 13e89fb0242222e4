"""The restoration benchmark end to end on a few tiny images with the tiny model and a short search."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from bench.__main__ import main
from bench.restoration import METHODS, SETTINGS, observe
from gecodec.operators import Mask

from conftest import face_folder

FAST = ["--model", "tiny-test", "--iters", "2", "--restarts", "1", "--batch-size", "2", "--keep", "2"]


@pytest.fixture(scope="module")
def faces(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return face_folder(tmp_path_factory.mktemp("faces"), 16, 16)


def test_every_task_and_method_is_scored_with_grids_and_the_run_resumes(faces: Path, tmp_path: Path):
    assert main(["restore", "--data", str(faces), "--out", str(tmp_path), *FAST]) == 0
    table = (tmp_path / "table.md").read_text()
    for task, methods in METHODS.items():
        for method in methods:
            assert f"| {task} | {method} | 3 |" in table
        assert (tmp_path / f"grid-{task}.png").stat().st_size > 500
    records = {p.name: p.read_text() for p in (tmp_path / "records").iterdir()}
    assert main(["restore", "--data", str(faces), "--out", str(tmp_path), "--tasks", "inpaint", *FAST]) == 0
    assert {p.name: p.read_text() for p in (tmp_path / "records").iterdir()} == records


def test_the_degraded_inputs_follow_the_papers_settings():
    images = torch.rand(2, 3, 16, 16) * 2 - 1
    noisy = observe("denoise", images, 0, SETTINGS["denoise"])
    assert 0.25 < (noisy - images).std().item() < 0.45  # sigma 0.4, a little less where clipped
    assert not torch.equal(noisy[0] - images[0], noisy[1] - images[1])  # each image its own noise
    assert observe("superres", images, 0, SETTINGS["superres"]).shape == (2, 3, 4, 4)
    holed = observe("inpaint", images, 0, SETTINGS["inpaint"])
    missing = Mask.centred_box(16, 8).mask[0, 0] < 0.5  # 30/64 of 16 pixels, rounded
    assert np.allclose(holed[..., missing].numpy(), 128 / 127.5 - 1, atol=1e-6)  # grey: 0 stored as the 8-bit level 128


def test_a_missing_model_is_a_clear_error(faces: Path, tmp_path: Path, capsys):
    assert main(["restore", "--data", str(faces), "--out", str(tmp_path), "--model", "nonesuch"]) == 1
    assert "bench restore: error:" in capsys.readouterr().err
