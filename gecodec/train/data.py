"""Training data: a folder of images (searched recursively) or a tar/zip of them, centre-cropped and resized
to the model size, kept in memory as uint8."""

from __future__ import annotations

import argparse
import io
import tarfile
import warnings
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from gecodec.errors import ImageError
from gecodec.imageio import image_to_tensor, is_image_path, open_image

ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".zip")


def image_source(root: str | Path) -> tuple[list[str], Callable[[str], Image.Image]]:
    """The image names under root (a folder or an archive), in a stable order, and a function that opens one."""
    root = Path(root)
    if root.is_dir():
        names = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and is_image_path(p))
        return names, lambda name: open_image(root / name)
    if not root.exists():
        raise ImageError(f"{root}: no such folder or archive")
    try:
        if root.name.lower().endswith(".zip"):
            archive = zipfile.ZipFile(root)
            names = sorted(n for n in archive.namelist() if not n.endswith("/") and is_image_path(Path(n)))
            return names, lambda name: open_image(io.BytesIO(archive.read(name)))
        if root.name.lower().endswith(ARCHIVE_SUFFIXES):
            tar = tarfile.open(root)
            members = {m.name: m for m in tar.getmembers() if m.isfile() and is_image_path(Path(m.name))}
            return sorted(members), lambda name: open_image(io.BytesIO(tar.extractfile(members[name]).read()))
    except (OSError, tarfile.TarError, zipfile.BadZipFile, EOFError) as exc:
        raise ImageError(f"{root}: unreadable archive ({exc})") from None
    raise ImageError(f"{root}: not a folder of images or an archive ({', '.join(ARCHIVE_SUFFIXES)})")


def bundle_step_parser(description: str, stores: str, images: int, images_help: str, photos: bool = False
                       ) -> argparse.ArgumentParser:
    """The command line of a step that measures training faces and stores what it finds in a bundle (the crop
    geometry, the refinement tables, the quality ladder): --data, --bundle and --images, and with ``photos``
    --photos (a framing folder whose training faces make half of the faces: gecodec.train.photos.training_faces)."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="folder of training face crops")
    parser.add_argument("--bundle", type=Path, required=True, help=f"bundle file to store the {stores} in")
    parser.add_argument("--images", type=int, default=images, help=images_help)
    if photos:
        parser.add_argument("--photos", type=Path, default=None,
                            help="a framing folder (python -m gecodec.train.photos): half the faces from its photos")
    return parser


def load_images(root: str | Path, size: int, limit: int | None = None, cache: str | Path | None = None) -> torch.Tensor:
    """Load images as a uint8 tensor (N, 3, size, size). Unreadable images are skipped with a warning.

    ``cache`` names a .npy file reused across runs.
    """
    if cache is not None and Path(cache).exists():
        return torch.from_numpy(np.load(cache))
    data, _ = load_named_images(root, size, limit)
    if cache is not None:
        Path(cache).parent.mkdir(parents=True, exist_ok=True)
        np.save(cache, data.numpy())
    return data


def load_named_images(root: str | Path, size: int, limit: int | None = None) -> tuple[torch.Tensor, list[str]]:
    """load_images, and the names (paths relative to root) of the images it kept."""
    names, open_one = image_source(root)
    names = names[:limit]
    if not names:
        raise ImageError(f"{root}: no images found")
    data = np.empty((len(names), 3, size, size), dtype=np.uint8)
    kept: list[str] = []
    skipped: list[str] = []
    for name in tqdm(names, desc=f"loading {Path(root).name}", unit="img"):
        try:
            x = image_to_tensor(open_one(name), size)
        except (ImageError, OSError, KeyError) as exc:
            skipped.append(f"{name}: {str(exc).rsplit(': ', 1)[-1]}")  # the reason, without the opener's name
            continue
        data[len(kept)] = ((x + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8).numpy()
        kept.append(name)
    if not kept:
        raise ImageError(f"{root}: none of its {len(names)} images could be read ({skipped[0]})")
    if skipped:
        warnings.warn(f"{root}: skipped {len(skipped)} unreadable images, e.g. {skipped[0]}", stacklevel=3)
    return torch.from_numpy(data[: len(kept)]), kept


def to_float(batch: torch.Tensor) -> torch.Tensor:
    """uint8 -> float in [-1, 1]."""
    return batch.float().div(127.5).sub(1.0)


def sample_batches(data: torch.Tensor, batch_size: int, seed: int, flip: bool = True) -> Iterator[torch.Tensor]:
    """Endless shuffled epochs of float batches in [-1, 1], with random horizontal flips (faces are symmetric).

    Batches are on data's device; the random stream is on the CPU, so it does not depend on the device.
    """
    if len(data) < batch_size:
        raise ImageError(f"{len(data)} training images are fewer than one batch of {batch_size}")
    return _batches(data, batch_size, torch.Generator().manual_seed(seed), flip)


def _batches(data: torch.Tensor, batch_size: int, generator: torch.Generator, flip: bool) -> Iterator[torch.Tensor]:
    while True:
        order = torch.randperm(len(data), generator=generator)
        for start in range(0, len(order) - batch_size + 1, batch_size):
            batch = to_float(data[order[start : start + batch_size].to(data.device)])
            if flip:
                mirror = (torch.rand(batch_size, generator=generator) < 0.5).to(data.device)
                batch[mirror] = batch[mirror].flip(-1)
            yield batch


def mixed_batches(faces: torch.Tensor, photos: torch.Tensor | None, batch_size: int, photo_rows: int, seed: int
                  ) -> Iterator[torch.Tensor]:
    """sample_batches over two sources: each batch's last ``photo_rows`` rows from photos, the rest from faces,
    each source in its own shuffled epochs. With no photo rows, exactly sample_batches(faces, ...)."""
    if photo_rows == 0:
        return sample_batches(faces, batch_size, seed)
    if photos is None or not 0 < photo_rows <= batch_size:
        raise ImageError(f"{photo_rows} photo rows of a batch of {batch_size} need photos")
    face_stream = sample_batches(faces, batch_size - photo_rows, seed) if photo_rows < batch_size else None
    photo_stream = sample_batches(photos, photo_rows, seed + 1)
    return (torch.cat([next(face_stream), batch]) if face_stream is not None else batch for batch in photo_stream)
