"""Reading images of every common format and mode, and refusing the unusable ones."""

from __future__ import annotations

import io
import os
import struct
import threading
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, features

from gecodec.errors import ImageError
from gecodec import imageio
from gecodec.imageio import MAX_DEEP_PIXELS, check_image, image_to_tensor, open_image, tensor_to_image

from conftest import face_like


def png_with_size(width: int, height: int, depth: int = 8, colour: int = 2) -> bytes:
    """A PNG whose header claims a size, bit depth and colour type (2: RGB, 0: grey); its pixel data is absent."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


@pytest.mark.parametrize("fmt,suffix", [("PNG", "png"), ("JPEG", "jpg"), ("WEBP", "webp"), ("BMP", "bmp"), ("TIFF", "tif")])
def test_common_formats_load_as_rgb(tmp_path, fmt, suffix):
    path = tmp_path / f"x.{suffix}"
    face_like(20, 20).save(path, format=fmt)
    image = open_image(path)
    assert image.mode == "RGB" and image.size == (20, 20)


@pytest.mark.skipif(not features.check("avif"), reason="Pillow built without AVIF")
def test_avif_loads(tmp_path):
    path = tmp_path / "x.avif"
    face_like(20, 20).save(path)
    assert open_image(path).size == (20, 20)


@pytest.mark.parametrize("mode", ["RGBA", "L", "P", "LA", "1", "CMYK"])
def test_every_mode_becomes_rgb(tmp_path, mode):
    path = tmp_path / "x.png" if mode != "CMYK" else tmp_path / "x.jpg"
    face_like(12, 12).convert(mode).save(path)
    assert open_image(path).mode == "RGB"


def test_transparent_pixels_become_white():
    rgba = Image.new("RGBA", (4, 4), (0, 0, 0, 0))
    assert open_image(rgba).getpixel((0, 0)) == (255, 255, 255)


def test_16_bit_grey_is_rescaled_not_clipped(tmp_path):
    path = tmp_path / "deep.png"
    Image.fromarray(np.full((8, 8), 32768, dtype=np.uint16)).save(path)
    assert open_image(path).getpixel((0, 0)) == (128, 128, 128)


def test_exif_orientation_is_applied(tmp_path):
    path = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise for display
    face_like(30, 10).save(path, exif=exif)
    assert open_image(path).size == (10, 30)


def test_unreadable_file_raises_image_error(tmp_path):
    path = tmp_path / "junk.png"
    path.write_bytes(b"this is not an image")
    with pytest.raises(ImageError, match="junk.png"):
        open_image(path)


def test_missing_file_raises_image_error(tmp_path):
    with pytest.raises(ImageError, match="no such file"):
        open_image(tmp_path / "absent.png")


def test_zero_size_image_raises_image_error(tmp_path):
    path = tmp_path / "empty.png"
    path.write_bytes(png_with_size(0, 10))
    with pytest.raises(ImageError):
        open_image(path)


def test_gigantic_image_is_refused_before_decoding(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(png_with_size(100_000, 100_000))
    with pytest.raises(ImageError, match="exceeds"):
        open_image(path)


def test_a_deep_image_above_its_own_limit_is_refused_before_decoding(tmp_path):
    path = tmp_path / "deep.png"
    path.write_bytes(png_with_size(8192, MAX_DEEP_PIXELS // 8192 + 1, depth=16, colour=0))  # 16-bit grey
    with pytest.raises(ImageError, match="more than 8 bits a channel"):
        open_image(path)
    (tmp_path / "flat.png").write_bytes(png_with_size(8192, MAX_DEEP_PIXELS // 8192 + 1))
    check_image(Image.open(tmp_path / "flat.png"), "flat.png")  # the same size at 8 bits is within the limit


STRIPS = {
    "I;16": lambda: Image.fromarray(np.arange(0, 65535, 65535 // 120, dtype=np.uint16)[:120].reshape(20, 6)),
    "I": lambda: Image.fromarray(np.where(np.arange(120) == 119, 1000, np.arange(120)).astype(np.int32).reshape(20, 6)),
    "F": lambda: Image.fromarray(np.linspace(-0.2, 1.2, 120, dtype=np.float32).reshape(20, 6)),
    "RGBA": lambda: face_like(6, 20).convert("RGBA").rotate(30),  # transparent corners
    "P": lambda: face_like(6, 20).convert("P"),
    "LA": lambda: face_like(6, 20).convert("LA"),
}


@pytest.mark.parametrize("mode", sorted(STRIPS))
def test_conversion_in_strips_gives_the_whole_images_conversion(monkeypatch, mode):
    whole = open_image(STRIPS[mode]())
    monkeypatch.setattr(imageio, "STRIP_PIXELS", 12)  # strips of 2 rows; the 32-bit image's peak is in the last
    assert np.array_equal(np.asarray(open_image(STRIPS[mode]())), np.asarray(whole))


def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path):
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    outcome: list[BaseException] = []

    def attempt() -> None:
        try:
            open_image(fifo)
        except ImageError as exc:
            outcome.append(exc)

    reader = threading.Thread(target=attempt, daemon=True)
    reader.start()
    reader.join(timeout=5)
    assert not reader.is_alive(), "opening a FIFO blocked"
    assert "pipe.png: is a FIFO, not a regular file" in str(outcome[0])


def test_an_open_stream_is_read_as_it_is():
    buffer = io.BytesIO()
    face_like(20, 10).save(buffer, format="PNG")
    buffer.seek(0)
    assert open_image(buffer).size == (20, 10)


@pytest.mark.parametrize("path, message", [("/dev/zero", "is a device"), ("/", "is a directory")])
def test_a_device_or_a_folder_is_not_an_image(path, message):
    with pytest.raises(ImageError, match=message):
        open_image(path)


def test_centre_crop_and_resize_to_model_size():
    image = Image.new("RGB", (30, 10), (255, 0, 0))
    image.paste((0, 0, 255), (10, 0, 20, 10))  # the centre square is blue
    x = image_to_tensor(image, 16)
    assert x.shape == (3, 16, 16)
    assert float(x[2].mean()) > 0.9 and float(x[0].mean()) < -0.9


def test_decoded_square_is_placed_back_at_the_original_size():
    x = image_to_tensor(face_like(16, 16), 16)
    wide = tensor_to_image(x, (48, 32))
    assert wide.size == (48, 32)
    assert tensor_to_image(x, None).size == (16, 16)


def test_large_non_square_image_round_trips_its_size(tmp_path: Path):
    assert tensor_to_image(image_to_tensor(face_like(300, 200), 16), (300, 200)).size == (300, 200)
