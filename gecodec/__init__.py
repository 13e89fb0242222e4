"""gecodec: a generative image codec. Images become a few dozen bytes of measurements m = EN(x);
decoding searches a GAN generator's latent space for the image whose measurements match.

    data = gecodec.encode("face.png")          # bytes of a .gec file, at the model's default quality
    small = gecodec.encode("face.png", target_bytes=60)   # or quality=0..100, or bits=N (fixed-length)
    image = gecodec.decode(data)               # PIL.Image.Image
    noisy = gecodec.degrade("face.png", "denoise", sigma=0.4)
    clean = gecodec.restore(noisy, "denoise")  # PIL.Image.Image
"""

from gecodec.api import decode, encode, restore
from gecodec.bundle import Bundle, load_model
from gecodec.codec import Codec
from gecodec.errors import (
    BundleError,
    DecodeError,
    FormatError,
    GecError,
    ImageError,
    ModelNotFoundError,
    OptionError,
    OutputError,
    TrainingError,
)
from gecodec.restoration import degrade
from gecodec.search import SearchOptions

__version__ = "0.2.0"  # 0.2: entropy-coded files (container version 2), the joint default model


def register_pillow() -> None:
    """Register .gec with Pillow, so PIL.Image.open("x.gec") decodes. Importing gecodec alone does not."""
    import gecodec.pil  # noqa: F401  (registers on import)


__all__ = [
    "Bundle", "BundleError", "Codec", "DecodeError", "FormatError", "GecError", "ImageError", "ModelNotFoundError",
    "OptionError", "OutputError", "SearchOptions", "TrainingError", "decode", "degrade", "encode", "load_model",
    "register_pillow", "restore",
]
