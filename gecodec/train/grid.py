"""Sample grids as PNG, for watching training and for figures."""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image

from gecodec.imageio import tensor_to_pixels


def save_grid(images: torch.Tensor, path: str | Path, columns: int = 8) -> None:
    """Tile (N, 3, H, W) images in [-1, 1] into one PNG, ``columns`` per row."""
    n, _, h, w = images.shape
    rows = (n + columns - 1) // columns
    canvas = Image.new("RGB", (columns * w, rows * h), (255, 255, 255))
    for i, pixels in enumerate(tensor_to_pixels(images)):
        canvas.paste(Image.fromarray(pixels), ((i % columns) * w, (i // columns) * h))
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path)
