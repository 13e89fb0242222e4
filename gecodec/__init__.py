"""gecodec: a generative image codec. Images become a few dozen bytes of measurements m = EN(x);
decoding searches a generator's latent space for the image whose measurements match.

    data = gecodec.encode("face.png")          # bytes of a .gec file, at the model's default quality
    small = gecodec.encode("face.png", target_bytes=60)   # or quality=0..100, or bits=N (fixed-length)
    image = gecodec.decode(data)               # PIL.Image.Image
    noisy = gecodec.degrade("face.png", "denoise", sigma=0.4)
    clean = gecodec.restore(noisy, "denoise")  # PIL.Image.Image

The names below are imported on first use, so that `import gecodec` (and `gec --help`) does not load torch.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.2.0"  # 0.2: entropy-coded files (container version 2), the joint default model

_LAZY = {
    "decode": "gecodec.api", "encode": "gecodec.api", "restore": "gecodec.api",
    "Bundle": "gecodec.bundle", "load_model": "gecodec.bundle",
    "Codec": "gecodec.codec",
    "degrade": "gecodec.restoration",
    "SearchOptions": "gecodec.search",
    "choose_threads": "gecodec.threads",
    **{name: "gecodec.errors" for name in ("BundleError", "DecodeError", "FormatError", "GecError", "ImageError",
                                           "ModelNotFoundError", "OptionError", "OutputError", "TrainingError")},
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'gecodec' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


def register_pillow() -> None:
    """Register .gec with Pillow, so PIL.Image.open("x.gec") decodes. Importing gecodec alone does not."""
    import gecodec.pil  # noqa: F401  (registers on import)


__all__ = [*sorted(_LAZY), "register_pillow"]
