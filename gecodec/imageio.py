"""Images in and out: read anything Pillow opens, crop and resize to the model, and back to 8-bit RGB."""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path
from typing import IO, Union

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from gecodec.container import MAX_PIXELS
from gecodec.errors import ImageError
from gecodec.fileio import open_regular

ImageInput = Union[str, os.PathLike, bytes, IO[bytes], Image.Image, np.ndarray]

# Images above MAX_PIXELS are refused (a decompression-bomb guard that does not depend on Pillow's global
# MAX_IMAGE_PIXELS setting); the container holds the number, since a file's original size obeys it too.
# Images of more than 8 bits a channel (16-bit, 32-bit integer, float) cost as much again to bring to 8 bits
# as to decode, so they get half that many: the largest then costs no more than the largest 8-bit photo.
DEEP_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")
MAX_DEEP_PIXELS = MAX_PIXELS // 2
# Conversion to RGB runs a strip of about this many pixels at a time: a float copy of a whole 64-Mpx photo
# would be 512 MB, and each of its temporaries as much again.
STRIP_PIXELS = 1 << 20

IMAGE_SUFFIXES = frozenset(
    {".png", ".jpg", ".jpeg", ".webp", ".avif", ".bmp", ".tif", ".tiff", ".gif", ".ppm", ".pgm", ".pnm", ".tga"}
)


def is_image_path(path: Path) -> bool:
    """Whether a file name looks like an image (used to pick files out of folders)."""
    return path.suffix.lower() in IMAGE_SUFFIXES


def open_image(source: ImageInput) -> Image.Image:
    """Open an image as 8-bit RGB with EXIF orientation applied; raise ImageError on anything unusable.

    A path must name a regular file (a FIFO or a device is refused from its stat), and the image's size and
    depth are checked from its header, before its pixels are decoded or converted."""
    if isinstance(source, Image.Image):
        name = getattr(source, "filename", None) or "image"
        check_image(source, name)
        return _prepared(source, name, own=False)
    if isinstance(source, np.ndarray):
        return _prepared(_from_array(source), "array", own=True)
    if isinstance(source, (bytes, bytearray, memoryview)):  # an encoded image: PNG, JPEG, ..
        return _decoded(io.BytesIO(source), "image bytes")
    if hasattr(source, "read"):  # a caller's stream (training reads zip and tar members so)
        return _decoded(source, getattr(source, "name", None) or "image")
    if not isinstance(source, (str, os.PathLike)):
        raise ImageError(f"cannot read an image from an object of type {type(source).__name__}: give a path, encoded "
                         "bytes, a binary stream, a PIL image or a uint8 array")
    with open_regular(Path(source), ImageError) as handle:
        return _decoded(handle, str(source))


def _from_array(array: np.ndarray) -> Image.Image:
    """A uint8 array of shape (H, W), (H, W, 3) or (H, W, 4) as a PIL image, checked as a decoded image is."""
    modes = {2: "L", 3: "RGB", 4: "RGBA"}  # by shape: (H, W), (H, W, 3), (H, W, 4)
    key = 2 if array.ndim == 2 else array.shape[-1] if array.ndim == 3 and array.shape[-1] in (3, 4) else None
    if array.dtype != np.uint8 or key is None:
        raise ImageError(f"array: an image array must be uint8 of shape (H, W), (H, W, 3) or (H, W, 4), "
                         f"not {array.dtype} of shape {tuple(array.shape)}")
    image = Image.fromarray(np.ascontiguousarray(array), modes[key])
    check_image(image, "array")
    return image


def _decoded(stream: IO[bytes], name: str) -> Image.Image:
    """The image in an open stream, checked from its header, then decoded and converted (open_image)."""
    try:
        image = Image.open(stream)
    except Image.DecompressionBombError:
        raise ImageError(f"{name}: image exceeds the limit of {MAX_PIXELS} pixels") from None
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise ImageError(f"{name}: not a readable image ({exc.__class__.__name__})") from None
    check_image(image, name)
    if getattr(image, "n_frames", 1) > 1:
        warnings.warn(f"{name}: an image of {image.n_frames} frames; using the first", stacklevel=2)
    return _prepared(image, name, own=True)


def check_image(image: Image.Image, name: str) -> None:
    """Refuse an empty image, or one too large to decode and convert safely, from its size and mode alone."""
    width, height = image.size
    if width == 0 or height == 0:
        raise ImageError(f"{name}: image has zero size {width}x{height}")
    if width * height > MAX_PIXELS:
        raise ImageError(f"{name}: image of {width}x{height} pixels exceeds the limit of {MAX_PIXELS} pixels")
    if image.mode in DEEP_MODES and width * height > MAX_DEEP_PIXELS:
        raise ImageError(f"{name}: {image.mode} image of {width}x{height} pixels exceeds the limit of "
                         f"{MAX_DEEP_PIXELS} pixels for images of more than 8 bits a channel")


def _prepared(image: Image.Image, name: str, own: bool) -> Image.Image:
    """An image checked by check_image, decoded, turned upright and converted to RGB."""
    try:
        image.load()
        # A picture we opened is turned in place; a caller's is copied (large photos: each copy is a second).
        turned = ImageOps.exif_transpose(image, in_place=own)
        image = image if own else turned
        rgb = _to_rgb(image)
        rgb.info["grayscale"] = image.mode in GRAY_MODES  # the codec stores it, so decoding gives grey back
        rgb.info["source"] = name  # for messages about this image
        return rgb
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise ImageError(f"{name}: image data is corrupt ({exc})") from None


GRAY_MODES = ("1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F")


def _to_rgb(image: Image.Image) -> Image.Image:
    """Convert any mode to RGB, a strip at a time, so that the memory it takes beyond the RGB result is a
    strip's whatever the mode."""
    if image.mode == "RGB":
        return image
    # 32-bit integers are taken as 16-bit values when any exceeds 255 (the whole image's maximum, not a strip's).
    peak = 65535.0 if image.mode.startswith("I;16") or (image.mode == "I" and image.getextrema()[1] > 255) else 255.0
    rows = max(1, STRIP_PIXELS // image.width)
    if image.height <= rows:
        return _strip_to_rgb(image, peak)
    rgb = Image.new("RGB", image.size)
    for top in range(0, image.height, rows):
        strip = image.crop((0, top, image.width, min(top + rows, image.height)))
        rgb.paste(_strip_to_rgb(strip, peak), (0, top))
    return rgb


def _strip_to_rgb(image: Image.Image, peak: float) -> Image.Image:
    """Convert one strip to RGB: 16-bit grey is rescaled (not clipped), alpha is composited over white."""
    if image.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        values = np.asarray(image, dtype=np.float64)
        image = Image.fromarray(np.clip(values / peak * 255.0 + 0.5, 0, 255).astype(np.uint8))
    elif image.mode == "F":
        values = np.asarray(image, dtype=np.float64)
        image = Image.fromarray(np.clip(values * 255.0 + 0.5, 0, 255).astype(np.uint8))
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        image = image.convert("RGBA")
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, image)
    return image if image.mode == "RGB" else image.convert("RGB")


def center_square(image: Image.Image) -> Image.Image:
    """The largest centred square crop: a square image itself (a copy of a 64-Mpx photo is 256 MB)."""
    width, height = image.size
    side = min(width, height)
    if width == height:
        return image
    left, top = (width - side) // 2, (height - side) // 2
    return image.crop((left, top, left + side, top + side))


def centre_crop(image: Image.Image, size: int) -> Image.Image:
    """The largest centred square, resized to size x size: how an image that is not aligned is framed."""
    square = center_square(image)
    return square if square.size == (size, size) else square.resize((size, size), Image.Resampling.LANCZOS)


def image_to_tensor(image: Image.Image, size: int) -> torch.Tensor:
    """Centre-crop to a square, resize to size x size, and scale to a (3, size, size) tensor in [-1, 1]."""
    return pixels_to_tensor(np.asarray(centre_crop(image, size)))


def pixels_to_tensor(pixels: np.ndarray) -> torch.Tensor:
    """uint8 HxWx3 (or NxHxWx3) -> float CxHxW (or NxCxHxW) in [-1, 1]."""
    x = torch.from_numpy(np.array(pixels, dtype=np.uint8)).float().div(127.5).sub(1.0)
    return x.movedim(-1, -3)


def tensor_to_pixels(x: torch.Tensor) -> np.ndarray:
    """float CxHxW (or NxCxHxW) in [-1, 1] -> uint8 HxWx3 (or NxHxWx3), rounded and clipped."""
    x = x.detach().float().cpu().movedim(-3, -1)
    return ((x.clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8).numpy()


def tensor_to_image(x: torch.Tensor, original_size: tuple[int, int] | None = None, grayscale: bool = False
                    ) -> Image.Image:
    """Turn a (3, s, s) tensor into an RGB (or L) image, at original_size if given (restoration's output).

    Only the centred square of a non-square image was restored, so the square is resized to the crop's side
    and the strips outside it are filled by repeating the square's edge pixels.
    """
    image = _at_original_size(Image.fromarray(tensor_to_pixels(x)), original_size)
    return image.convert("L") if grayscale else image


def _at_original_size(image: Image.Image, original_size: tuple[int, int] | None) -> Image.Image:
    if original_size is None or original_size == image.size:
        return image
    width, height = original_size
    side = min(width, height)
    square = image.resize((side, side), Image.Resampling.LANCZOS) if image.size != (side, side) else image
    if (width, height) == (side, side):
        return square
    left, top = (width - side) // 2, (height - side) // 2
    padded = np.pad(np.asarray(square), ((top, height - side - top), (left, width - side - left), (0, 0)), mode="edge")
    return Image.fromarray(padded)
