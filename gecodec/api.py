"""The one-call library API: encode an image to bytes, decode bytes to an image."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Union

import torch
from PIL import Image

from gecodec import container
from gecodec.bundle import Bundle, find_by_id, load_model
from gecodec.codec import DEFAULT_BITS, Codec, resolve_device
from gecodec.errors import GecError
from gecodec.imageio import ImageInput

GecInput = Union[bytes, bytearray, memoryview, str, os.PathLike]

_codecs: dict[tuple[str, str], Codec] = {}


def get_codec(bundle: Bundle, device: str | torch.device | None = None) -> Codec:
    """A Codec for (bundle, device), created once and then reused."""
    resolved = resolve_device(device)
    key = (bundle.sha256, str(resolved))
    if key not in _codecs:
        _codecs[key] = Codec(bundle, resolved)
    return _codecs[key]


def read_gec(source: GecInput) -> bytes:
    """The bytes of a .gec file given as bytes or as a path."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source)
    path = Path(source)
    try:
        if path.stat().st_size > container.MAX_FILE_SIZE:
            raise GecError(f"{path}: {path.stat().st_size} bytes is larger than any valid .gec file")
        return path.read_bytes()
    except FileNotFoundError:
        raise GecError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise GecError(f"{path}: is a directory") from None
    except OSError as exc:
        raise GecError(f"{path}: cannot read ({exc.strerror})") from None


def encode(
    image: ImageInput,
    model: str | os.PathLike | Bundle | None = None,
    bits: int | None = None,
    mode: str = "ge",
    seed: int = 0,
    count: int | None = None,
    device: str | torch.device | None = None,
) -> bytes:
    """Compress an image (path or PIL image) to .gec bytes with a model (default: the shipped one)."""
    bundle = model if isinstance(model, Bundle) else load_model(model)
    codec = get_codec(bundle, device)
    return codec.encode_image(image, bits=DEFAULT_BITS if bits is None else bits, mode=mode, seed=seed, count=count)


def decode(data: GecInput, device: str | torch.device | None = None, **search_options: Any) -> Image.Image:
    """Decompress .gec bytes (or a .gec path) to an RGB image; the model is found from the file's model id.

    search_options: iters, restarts, lam, lr (defaults: the file's hints, else SearchOptions).
    """
    raw = read_gec(data)
    header, _ = container.read(raw)
    return get_codec(find_by_id(header.model_id), device).decode_image(raw, **search_options)
