"""Writing outputs safely: refuse to overwrite unless asked, write to a temporary file, then rename."""

from __future__ import annotations

import errno
import io
import os
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Union

from PIL import Image

from gecodec import container
from gecodec.errors import GecError, OutputError

GecInput = Union[bytes, bytearray, memoryview, str, os.PathLike]

IMAGE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".bmp": "BMP", ".tif": "TIFF",
                 ".tiff": "TIFF"}


def check_output(path: Path, force: bool) -> None:
    """Fail early, before any work, if the output exists (without force), is not a file that force may replace
    (a folder, a device, a FIFO), or its folder is missing or cannot hold that name."""
    try:
        entry = os.lstat(path)
    except FileNotFoundError:
        entry = None
    except OSError as exc:  # a name or path too long, a file where a folder should be
        raise OutputError(f"{path}: cannot write ({exc.strerror})") from None
    if entry is not None:
        try:
            mode = os.stat(path).st_mode  # what a link leads to: a link to a device is refused as the device is
        except OSError:
            mode = stat.S_IFREG  # a dangling link: replaced like a file
        if stat.S_ISDIR(mode):
            raise OutputError(f"{path}: is a directory")
        if not force:
            raise OutputError(f"{path}: already exists (use --force to overwrite)")
        if not stat.S_ISREG(mode):
            raise OutputError(f"{path}: {file_kind(mode)}; --force replaces only regular files")
    if not os.path.isdir(path.parent):
        raise OutputError(f"{path}: folder {path.parent} does not exist")


def file_kind(mode: int) -> str:
    """What a file that is not a regular one is, for messages."""
    for test, kind in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a device"),
                       (stat.S_ISBLK, "a device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return f"is {kind}, not a regular file"
    return "not a regular file"


def file_id(path: Path) -> tuple[int, int] | None:
    """The (device, inode) pair that names a file whatever path reaches it; None where there is none."""
    try:
        info = os.stat(path)
    except (OSError, ValueError):
        return None
    return info.st_dev, info.st_ino


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


# A temporary name of fixed length, so that every name legal for the output is legal here too (NAME_MAX).
TEMP_PREFIX, TEMP_SUFFIX = ".gec-", ".tmp"
# os.link's errors on file systems without hard links (FAT, some network shares).
NO_HARD_LINKS = {errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENOSYS, errno.EMLINK}


def write_bytes_atomic(path: Path, data: bytes, force: bool = False) -> None:
    """Write data to path via a temporary file in the same folder, then move it into place in one step
    (atomic_file)."""
    with atomic_file(path, force) as handle:
        handle.write(data)


@contextmanager
def atomic_file(path: Path, force: bool = False) -> Iterator[BinaryIO]:
    """A handle on a temporary file in path's folder, moved into place in one step once the block ends without
    an error, and removed otherwise: what a block writes in parts (an archive's row groups) appears whole or not
    at all.

    Without force the move fails if anything took the name meanwhile (os.link, which never replaces), so of
    two writers only one succeeds; with force it is os.replace. Either way a reader sees the old file or the
    new one, never a part."""
    check_output(path, force)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=TEMP_SUFFIX, dir=path.parent)
        with os.fdopen(fd, "wb") as handle:
            yield handle
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; outputs get the usual permissions
        if force:
            os.replace(tmp, path)
        else:
            _move_to_new_name(tmp, path)
    except FileExistsError:  # appeared while we worked
        raise OutputError(f"{path}: already exists (use --force to overwrite)") from None
    except OSError as exc:
        raise OutputError(f"{path}: cannot write ({exc.strerror})") from None
    finally:
        if tmp is not None and os.path.lexists(tmp):
            os.unlink(tmp)


def _move_to_new_name(tmp: str, path: Path) -> None:
    """Give tmp's file the name path, which must not exist (FileExistsError otherwise); tmp stays behind."""
    try:
        os.link(tmp, path)
        return
    except OSError as exc:
        if exc.errno not in NO_HARD_LINKS:
            raise
    # No hard links here: claim the name with O_EXCL, which fails if it exists, then rename over the claim.
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    try:
        os.replace(tmp, path)
    except OSError:
        os.unlink(path)
        raise


FAST_PNG_PIXELS = 1 << 20  # above this, PNGs are written with zlib level 1: 4 times faster, a little larger


def save_image_atomic(image: Image.Image, path: Path, force: bool = False) -> None:
    """Save an image in the format its extension names, atomically."""
    write_bytes_atomic(path, image_bytes(image, path), force)


def image_bytes(image: Image.Image, name: Path) -> bytes:
    """An image's file, in the format the extension of ``name`` names, as save_image_atomic writes it."""
    buffer = io.BytesIO()
    options = {"compress_level": 1} if image_format(name) == "PNG" and image.width * image.height > FAST_PNG_PIXELS else {}
    image.save(buffer, format=image_format(name), **options)
    return buffer.getvalue()


def open_regular(path: Path, error: type[GecError] = GecError) -> BinaryIO:
    """Open a regular file for reading, or raise ``error`` naming the path: a FIFO would wait for a writer and a
    device may never end, so anything else is refused from its stat, before it is opened."""
    try:
        before = os.stat(path)
        if not stat.S_ISREG(before.st_mode):
            raise error(f"{path}: {file_kind(before.st_mode)}")
        # O_NONBLOCK: should a FIFO take the name after the stat, opening it must not wait for a writer.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise error(f"{path}: no such file") from None
    except OSError as exc:
        raise error(f"{path}: cannot read ({exc.strerror})") from None
    handle = os.fdopen(fd, "rb")
    after = os.fstat(fd)
    if not stat.S_ISREG(after.st_mode) or (after.st_dev, after.st_ino) != (before.st_dev, before.st_ino):
        handle.close()
        raise error(f"{path}: changed while it was opened")
    return handle


def read_gec(source: GecInput) -> bytes:
    """The bytes of a .gec file given as bytes or as a path."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source)
    path = Path(source)
    with open_regular(path) as handle:
        try:
            data = handle.read(container.MAX_FILE_SIZE + 1)
        except OSError as exc:
            raise GecError(f"{path}: cannot read ({exc.strerror})") from None
    if len(data) > container.MAX_FILE_SIZE:
        raise GecError(f"{path}: larger than any valid .gec file ({container.MAX_FILE_SIZE} bytes)")
    return data
