"""Writing outputs safely: refuse to overwrite unless asked, write to a temporary file, then rename."""

from __future__ import annotations

import io
import os
import stat
import tempfile
from pathlib import Path
from typing import Union

from PIL import Image

from gecodec import container
from gecodec.errors import GecError, OutputError

GecInput = Union[bytes, bytearray, memoryview, str, os.PathLike]

IMAGE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".bmp": "BMP", ".tif": "TIFF",
                 ".tiff": "TIFF"}


def check_output(path: Path, force: bool) -> None:
    """Fail early, before any work, if the output exists (without force) or its folder is missing."""
    if path.is_dir():
        raise OutputError(f"{path}: is a directory")
    if (path.exists() or path.is_symlink()) and not force:  # a dangling link is an output too
        raise OutputError(f"{path}: already exists (use --force to overwrite)")
    if not path.parent.is_dir():
        raise OutputError(f"{path}: folder {path.parent} does not exist")


def check_writable(folder: Path) -> None:
    """Fail early, before any work, if nothing can be written in ``folder`` (no permission, a read-only file
    system): a temporary file is made there and removed at once."""
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise OutputError(f"{folder}: cannot write there ({exc.strerror})") from None


def image_format(path: Path) -> str:
    """The Pillow format for an output path's extension."""
    try:
        return IMAGE_FORMATS[path.suffix.lower()]
    except KeyError:
        raise OutputError(f"{path}: unsupported image extension (use {', '.join(sorted(IMAGE_FORMATS))})") from None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_bytes_atomic(path: Path, data: bytes, force: bool = False) -> None:
    """Write data to path via a temporary file in the same folder and an atomic rename."""
    check_output(path, force)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise OutputError(f"{path}: cannot write ({exc.strerror})") from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; outputs get the usual permissions
        if (path.exists() or path.is_symlink()) and not force:  # appeared while we worked
            raise OutputError(f"{path}: already exists (use --force to overwrite)")
        os.replace(tmp, path)
    except OSError as exc:
        raise OutputError(f"{path}: cannot write ({exc.strerror})") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


FAST_PNG_PIXELS = 1 << 20  # above this, PNGs are written with zlib level 1: 4 times faster, a little larger


def save_image_atomic(image: Image.Image, path: Path, force: bool = False) -> None:
    """Save an image in the format its extension names, atomically."""
    buffer = io.BytesIO()
    options = {"compress_level": 1} if image_format(path) == "PNG" and image.width * image.height > FAST_PNG_PIXELS else {}
    image.save(buffer, format=image_format(path), **options)
    write_bytes_atomic(path, buffer.getvalue(), force)


def read_gec(source: GecInput) -> bytes:
    """The bytes of a .gec file given as bytes or as a path."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source)
    path = Path(source)
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused below like any non-regular file.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        with os.fdopen(fd, "rb") as handle:
            mode = os.fstat(fd).st_mode
            if not stat.S_ISREG(mode):
                raise GecError(f"{path}: {'is a directory' if stat.S_ISDIR(mode) else 'not a regular file'}")
            data = handle.read(container.MAX_FILE_SIZE + 1)  # whatever stat says: a device may report size 0
        if len(data) > container.MAX_FILE_SIZE:
            raise GecError(f"{path}: larger than any valid .gec file ({container.MAX_FILE_SIZE} bytes)")
        return data
    except FileNotFoundError:
        raise GecError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise GecError(f"{path}: is a directory") from None
    except OSError as exc:
        raise GecError(f"{path}: cannot read ({exc.strerror})") from None
