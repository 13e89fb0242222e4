"""The model shipped inside the package: present, trained, and making files within the size budget."""

from __future__ import annotations

from click.testing import CliRunner

import gecodec
from gecodec.bundle import DEFAULT_MODEL, SHIPPED_DIR, load_model
from gecodec.cli import main

from conftest import face_like


def test_default_model_is_shipped_and_has_a_model_card():
    bundle = load_model()
    assert bundle.name == DEFAULT_MODEL and bundle.path.parent == SHIPPED_DIR.resolve()
    assert (bundle.image_size, bundle.m) == (64, 128)
    card = bundle.card
    assert card["generator"]["steps"] > 1000 and card["encoder"]["steps"] > 1000  # trained, not random
    assert {"ge_real", "ge_generated", "generator_floor_real"} <= set(card["val"])
    assert bundle.path.stat().st_size < 20 * 1024 * 1024


def test_default_file_is_at_most_152_bytes(tmp_path):
    data = gecodec.encode(face_like(64, 64))
    assert len(data) == 145
    image = gecodec.decode(data, iters=2, restarts=1)
    assert image.size == (64, 64)


def test_gec_info_shows_the_default_header(tmp_path):
    path = tmp_path / "face.gec"
    path.write_bytes(gecodec.encode(face_like(64, 64)))
    result = CliRunner().invoke(main, ["info", str(path)])
    assert result.exit_code == 0
    assert DEFAULT_MODEL in result.output and "128 values x 8 bits" in result.output and "145 bytes" in result.output


def test_files_made_with_the_first_default_model_still_find_it():
    # celeba64-default was model aed91f57 until it was replaced; files in the wild name that id.
    from gecodec.bundle import find_by_id

    bundle = find_by_id(0xAED91F57)
    assert bundle.name == "celeba64-v1" and bundle.path.parent == SHIPPED_DIR.resolve()
