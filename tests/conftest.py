"""Shared fixtures: every test runs against the tiny committed model bundle, in a private model folder."""

from __future__ import annotations

import os
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gecodec import container
from gecodec.bundle import Bundle, load_bundle
from gecodec.errors import FormatError

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "formats" / "golden"
TINY_BUNDLE = GOLDEN / "tiny-test.safetensors"
ENTROPY_BUNDLE = GOLDEN / "tiny-entropy-test.safetensors"  # the tiny joint model with an entropy model
FAST = {"iters": 10, "restarts": 2}

# The test models are tiny: one thread avoids threading overhead and contention with other work, and the gec
# command keeps it (as it keeps OMP_NUM_THREADS's choice) rather than sampling the idle cores at each call.
torch.set_num_threads(1)
os.environ["OMP_NUM_THREADS"] = "1"


@pytest.fixture(autouse=True)
def model_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A user model folder holding only the tiny bundles."""
    folder = tmp_path_factory.getbasetemp() / "models"
    if not folder.exists():
        folder.mkdir()
        for bundle in (TINY_BUNDLE, ENTROPY_BUNDLE):
            shutil.copy(bundle, folder / bundle.name)
    monkeypatch.setenv("GECODEC_MODEL_DIR", str(folder))
    return folder


@pytest.fixture
def tiny() -> Bundle:
    return load_bundle(TINY_BUNDLE)


def with_crc16(body: bytes) -> bytes:
    """A version-2 or -3 body with its CRC-16: a checksum-valid file, whatever the body says."""
    return body + struct.pack("<H", container.crc16(body))


def assert_parses_or_refuses(codec, body: bytes) -> None:
    """A checksum-valid file of ``body`` is refused with a FormatError, or gives the model's m finite values."""
    try:
        parsed = codec.parse(with_crc16(body))
    except FormatError:
        return
    assert parsed.values.shape == (codec.bundle.m,) and bool(torch.isfinite(parsed.values).all())


def face_like(width: int = 16, height: int = 16, seed: int = 0) -> Image.Image:
    """A smooth synthetic RGB picture (no data set needed)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width] / max(width, height)
    base = rng.uniform(0, 255, size=3)
    pixels = np.stack([base[0] * xx + 40, base[1] * yy + 20, (base[2] * (xx + yy) / 2) + 10], axis=-1)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def face_folder(folder: Path, width: int = 16, height: int = 16, count: int = 3) -> Path:
    """``folder`` holding ``count`` face_like PNGs, 0.png, 1.png, ..., each with its own seed."""
    for i in range(count):
        face_like(width, height, seed=i).save(folder / f"{i}.png")
    return folder


@pytest.fixture
def image_file(tmp_path: Path) -> Path:
    path = tmp_path / "face.png"
    face_like().save(path)
    return path
