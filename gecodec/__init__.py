"""gecodec: a generative image codec. Images become a few dozen bytes of measurements m = EN(x);
decoding searches a GAN generator's latent space for the image whose measurements match.

    data = gecodec.encode("face.png")          # bytes of a .gec file
    image = gecodec.decode(data)               # PIL.Image.Image
    noisy = gecodec.degrade("face.png", "denoise", sigma=0.4)
    clean = gecodec.restore(noisy, "denoise")  # PIL.Image.Image
"""

from gecodec.api import decode, encode, restore
from gecodec.bundle import Bundle, load_model
from gecodec.codec import Codec
from gecodec.errors import (
    BundleError,
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

__version__ = "0.1.0"


def register_pillow() -> None:
    """Register .gec with Pillow, so PIL.Image.open("x.gec") decodes. Importing gecodec alone does not."""
    import gecodec.pil  # noqa: F401  (registers on import)


__all__ = [
    "Bundle", "BundleError", "Codec", "FormatError", "GecError", "ImageError", "ModelNotFoundError",
    "OptionError", "OutputError", "SearchOptions", "TrainingError", "decode", "degrade", "encode", "load_model",
    "register_pillow", "restore",
]
