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
        assert image.size == (16, 16)  # the face crop, known from the header's model before any decoding
        image.load()
        assert image.mode == "RGB" and image.getpixel((0, 0)) is not None


def test_saving_as_gec_encodes(tmp_path):
    import gecodec.pil  # noqa: F401

    path = tmp_path / "x.gec"
    face_like().save(path, model="tiny-test", bits=6)
    with Image.open(path) as image:
        assert image.info["gec_header"].bits == 6
        assert image.size == (16, 16)


def test_saving_with_a_quality_or_a_target_size_writes_an_entropy_coded_file(tmp_path):
    import gecodec.pil  # noqa: F401

    face_like().save(tmp_path / "q.gec", model="tiny-entropy-test", quality=30)
    face_like().save(tmp_path / "t.gec", model="tiny-entropy-test", target_bytes=20)
    with Image.open(tmp_path / "q.gec") as image:
        assert image.info["gec_header"].quality == 30
        image.load()
        assert image.size == (16, 16)
    assert (tmp_path / "t.gec").stat().st_size <= 20
    with Image.open(GOLDEN / "v2-q60.gec") as image:
        assert image.format == "GEC" and image.info["gec_header"].quality == 60


def test_a_grayscale_file_opens_as_grayscale(tmp_path):
    import gecodec.pil  # noqa: F401

    face_like().convert("L").save(tmp_path / "g.gec", model="tiny-entropy-test")
    with Image.open(tmp_path / "g.gec") as image:
        assert image.mode == "L"
        image.load()
        assert image.getpixel((0, 0)) is not None
