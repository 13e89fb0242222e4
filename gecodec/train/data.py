"""Training data: any folder of images, centre-cropped and resized to the model size, kept in memory as uint8."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from gecodec.errors import ImageError
from gecodec.imageio import image_to_tensor, is_image_path, open_image


def list_images(root: str | Path) -> list[Path]:
    """Every image file under root, recursively, in a stable order."""
    root = Path(root)
    if not root.is_dir():
        raise ImageError(f"{root}: not a folder of images")
    paths = sorted(p for p in root.rglob("*") if p.is_file() and is_image_path(p))
    if not paths:
        raise ImageError(f"{root}: no images found")
    return paths


def load_images(root: str | Path, size: int, limit: int | None = None, cache: str | Path | None = None) -> torch.Tensor:
    """Load images as a uint8 tensor (N, 3, size, size). ``cache`` names a .npy file reused across runs."""
    if cache is not None and Path(cache).exists():
        return torch.from_numpy(np.load(cache))
    paths = list_images(root)[:limit]
    data = np.empty((len(paths), 3, size, size), dtype=np.uint8)
    for i, path in enumerate(tqdm(paths, desc=f"loading {Path(root).name}", unit="img")):
        x = image_to_tensor(open_image(path), size)
        data[i] = ((x + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8).numpy()
    if cache is not None:
        Path(cache).parent.mkdir(parents=True, exist_ok=True)
        np.save(cache, data)
    return torch.from_numpy(data)


def to_float(batch: torch.Tensor) -> torch.Tensor:
    """uint8 -> float in [-1, 1]."""
    return batch.float().div(127.5).sub(1.0)


def sample_batches(data: torch.Tensor, batch_size: int, seed: int, flip: bool = True) -> Iterator[torch.Tensor]:
    """Endless shuffled epochs of float batches in [-1, 1], with random horizontal flips (faces are symmetric)."""
    generator = torch.Generator().manual_seed(seed)
    while True:
        order = torch.randperm(len(data), generator=generator)
        for start in range(0, len(order) - batch_size + 1, batch_size):
            batch = to_float(data[order[start : start + batch_size]])
            if flip:
                mirror = torch.rand(batch_size, generator=generator) < 0.5
                batch[mirror] = batch[mirror].flip(-1)
            yield batch
