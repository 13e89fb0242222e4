"""The Pillow plugin: opt-in registration, opening .gec files, saving them."""

from __future__ import annotations

import subprocess
import sys

from PIL import Image

from conftest import GOLDEN, face_like


def test_importing_gecodec_does_not_register_the_plugin():
    code = "import gecodec, PIL.Image as I; I.init(); print('GEC' in I.OPEN)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"


def test_register_pillow_lets_image_open_decode(tmp_path):
    import gecodec

    gecodec.register_pillow()
    with Image.open(GOLDEN / "ge-4bit-nonsquare.gec") as image:
        assert image.format == "GEC"
        assert image.size == (40, 24)  # known from the header, before any decoding
        image.load()
        assert image.mode == "RGB" and image.getpixel((0, 0)) is not None


def test_saving_as_gec_encodes(tmp_path):
    import gecodec.pil  # noqa: F401

    path = tmp_path / "x.gec"
    face_like().save(path, model="tiny-test", bits=6)
    with Image.open(path) as image:
        assert image.info["gec_header"].bits == 6
        assert image.size == (16, 16)
