"""The codecs the harness compares, behind one small interface (after CompressAI's benchmark `Codec`).

A codec encodes a batch of images (B, 3, S, S) in [-1, 1] to one byte string each, and decodes them back.
Its ``settings()`` are the points of its rate-distortion sweep. Rate is always the whole byte string.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import torch
from PIL import Image

from bench.lasso_dct import BASES, lasso_dct_decode
from gecodec.bundle import Bundle, available_bundles, load_bundle, load_model, tensors_digest
from gecodec.codec import Codec as GecCodec
from gecodec.codec import Source
from gecodec.errors import GecError
from gecodec.imageio import pixels_to_tensor, tensor_to_pixels
from gecodec.refine import LEVELS as REFINE_LEVELS
from gecodec.train.evaluate import CURVE_QUALITIES

Setting = dict[str, Any]


class BenchCodec:
    """A codec under test. Subclasses set name and description and implement settings/encode/decode."""

    name = ""
    description = ""

    def settings(self) -> list[Setting]:
        raise NotImplementedError

    def encode(self, images: torch.Tensor, setting: Setting) -> list[bytes]:
        raise NotImplementedError

    def decode(self, files: list[bytes], setting: Setting) -> torch.Tensor:
        raise NotImplementedError

    def supports(self, image_size: int) -> str | None:
        """None if the codec handles images of this size, else why not (one line)."""
        return None

    def label(self, setting: Setting) -> str:
        """A short name for one setting, for the figures."""
        return " ".join([self.name, *(f"{k}={v}" for k, v in setting.items() if k != "model")])


class PillowCodec(BenchCodec):
    """A classical codec through Pillow, swept over its quality range."""

    def __init__(self, name: str, description: str, format: str, qualities: tuple[int, ...], **options: Any) -> None:
        self.name, self.description, self.format = name, description, format
        self.qualities, self.options = qualities, options

    def settings(self) -> list[Setting]:
        return [{"quality": q} for q in self.qualities]

    def encode(self, images: torch.Tensor, setting: Setting) -> list[bytes]:
        files = []
        for pixels in tensor_to_pixels(images):
            buffer = io.BytesIO()
            Image.fromarray(pixels).save(buffer, format=self.format, quality=setting["quality"], **self.options)
            files.append(buffer.getvalue())
        return files

    def decode(self, files: list[bytes], setting: Setting) -> torch.Tensor:
        return torch.stack([pixels_to_tensor(np.asarray(Image.open(io.BytesIO(f)).convert("RGB"))) for f in files])


def pillow_codecs() -> list[PillowCodec]:
    return [
        PillowCodec("jpeg", "JPEG (Pillow, optimize=True)", "JPEG", (1, 2, 5, 10, 20, 30, 50, 70, 90), optimize=True),
        PillowCodec("webp", "WebP (Pillow, lossy)", "WEBP", (0, 5, 10, 20, 30, 50, 70, 90)),
        PillowCodec("avif", "AVIF (Pillow)", "AVIF", (0, 5, 10, 20, 30, 50, 70, 90)),
    ]


class GenerativeCodec(BenchCodec):
    """Shared by the codecs that store gecodec containers: one gecodec Codec per bundle, built on demand."""

    def __init__(self, bundles: list[Bundle], bits: tuple[int, ...], device: str | None, search: Setting) -> None:
        self.bundles = {b.name: b for b in bundles}
        self.bits, self.device, self.search = bits, device, search
        self._codecs: dict[str, GecCodec] = {}

    def codec(self, setting: Setting) -> GecCodec:
        name = setting["model"]
        if name not in self._codecs:
            self._codecs[name] = GecCodec(self.bundles[name], self.device)
        return self._codecs[name]

    def supports(self, image_size: int) -> str | None:
        if not any(b.image_size == image_size for b in self.bundles.values()):
            return f"no model for {image_size}x{image_size} images"
        return None

    def label(self, setting: Setting) -> str:
        return f"{super().label(setting)} ({setting['model']})"

    def decode(self, files: list[bytes], setting: Setting) -> torch.Tensor:
        """The latent search of gecodec's decoder, whatever the measurements."""
        return self.codec(setting).decode_batch(files, **self.search)


def pixel_values(bundle: Bundle) -> int:
    """n, the number of values in an image: Gaussian measurements beyond it would not be compression."""
    return 3 * bundle.image_size**2


# The rates swept for a model with an entropy model, besides its fixed-length bits: --quality from 0 to 100 (as the
# model card's curve) and its default, and --target-bytes at the sizes the codec's targets name.
TARGET_BYTES = (60, 100)
REFINED_TARGET_BYTES = (250, 400, 700, 1000)  # sizes a refinement layer reaches, for a model that has one


class GeCodec(GenerativeCodec):
    name = "ge"
    description = "gecodec: m = EN(x) quantized (fixed-length or entropy-coded), decoded by latent search"

    def settings(self) -> list[Setting]:
        settings: list[Setting] = []
        for name, b in self.bundles.items():
            settings += [{"model": name, "m": b.m, "bits": bits} for bits in self.bits]
            if b.entropy is not None:
                qualities = sorted({*CURVE_QUALITIES, b.default_quality})
                settings += [{"model": name, "m": b.m, "quality": q} for q in qualities]
                settings += [{"model": name, "m": b.m, "target_bytes": n} for n in TARGET_BYTES]
            if b.refine is not None:
                settings += [{"model": name, "m": b.m, "refine": level} for level in range(REFINE_LEVELS)]
                settings += [{"model": name, "m": b.m, "target_bytes": n} for n in REFINED_TARGET_BYTES]
        return settings

    def encode(self, images: torch.Tensor, setting: Setting) -> list[bytes]:
        rate = {k: setting[k] for k in ("bits", "quality", "target_bytes", "refine") if k in setting}
        return self.codec(setting).encode_batch(images, **rate)

    def label(self, setting: Setting) -> str:
        kind = self.bundles[setting["model"]].encoder_kind.upper()  # the paper's GE0 or GE1
        rate = next(f"{k.replace('_', ' ')}={setting[k]}" for k in ("bits", "quality", "target_bytes", "refine")
                    if k in setting)
        return f"{kind} m={setting['m']} {rate} ({setting['model']})"


class GePhotoCodec(GeCodec):
    """GE through the photo path: each face as `gec encode` frames it in its photo, its file holding where the face
    lies (the photo's size and the crop's placement), as a user's file does. Faces are looked up by their pixels."""

    name = "ge-photo"
    description = "gecodec on faces framed in photos by its face finder, each file holding the face's position"

    def __init__(self, bundles: list[Bundle], bits: tuple[int, ...], device: str | None, search: Setting,
                 sources: dict[bytes, Source]) -> None:
        super().__init__(bundles, bits, device, search)
        self.sources = sources

    def encode(self, images: torch.Tensor, setting: Setting) -> list[bytes]:
        rate = {k: setting[k] for k in ("bits", "quality", "target_bytes", "refine") if k in setting}
        sources = [self.sources[pixels_key(image)] for image in images]
        return self.codec(setting).encode_batch(images, sources=sources, **rate)


def pixels_key(image: torch.Tensor) -> bytes:
    """A face's 8-bit pixels, as the key of its photo source."""
    return tensor_to_pixels(image[None]).tobytes()


class AeCodec(GeCodec):
    name = "ae"
    description = "the GE1 autoencoder's own decoder on the same quantized m (same bytes as ge)"

    def __init__(self, bundles: list[Bundle], *args: Any) -> None:
        super().__init__([b for b in bundles if b.ae_decoder is not None], *args)

    def label(self, setting: Setting) -> str:
        return GenerativeCodec.label(self, setting)  # not GE's: the search is what this codec leaves out

    def decode(self, files: list[bytes], setting: Setting) -> torch.Tensor:
        codec = self.codec(setting)
        values = torch.stack([codec.parse(f).values for f in files])
        with torch.no_grad():
            return codec.bundle.ae_decoder(values).clamp(-1, 1)


def one_per_generator(bundles: list[Bundle]) -> list[Bundle]:
    """The first bundle of each distinct G. CSGM uses G alone, so bundles that share one (GE0 and GE1 of one
    GAN, figure6's encoders) would repeat the same searches."""
    kept: dict[str, Bundle] = {}
    for bundle in bundles:
        kept.setdefault(tensors_digest(bundle.generator.state_dict()), bundle)
    return list(kept.values())


class CsgmCodec(GenerativeCodec):
    name = "csgm"
    description = "CSGM (Bora et al. 2017): Gaussian measurements A x, decoded by latent search with the same G"

    def __init__(self, bundles: list[Bundle], bits: tuple[int, ...], device: str | None, search: Setting,
                 counts: tuple[int, ...] = (500, 1000)) -> None:
        super().__init__(one_per_generator(bundles), bits, device, search)
        self.counts = counts

    def settings(self) -> list[Setting]:
        return [{"model": name, "m": m, "bits": bits} for name, b in self.bundles.items()
                for m in sorted({b.m, *self.counts}) if m <= pixel_values(b) for bits in self.bits]

    def encode(self, images: torch.Tensor, setting: Setting) -> list[bytes]:
        return self.codec(setting).encode_batch(images, bits=setting["bits"], mode="cs", count=setting["m"])


class LassoDctCodec(CsgmCodec):
    name = "lasso-dct"
    description = ("Lasso (alpha 0.1) from Gaussian measurements A x (CSGM's bytes), in the per-channel 2-D DCT basis "
                   "(dct) or a 2x overcomplete DCT frame (dct2x)")

    def __init__(self, bundles: list[Bundle], bits: tuple[int, ...], device: str | None, search: Setting,
                 counts: tuple[int, ...] = (500, 1000), alpha: float = 0.1) -> None:
        super().__init__(bundles[:1], bits, device, search, counts)  # the bundle only names the file's model id
        self.alpha = alpha

    def settings(self) -> list[Setting]:
        return [{"model": name, "m": m, "bits": bits, "basis": basis} for name, b in self.bundles.items()
                for m in self.counts if m <= pixel_values(b) for bits in self.bits for basis in BASES]

    def label(self, setting: Setting) -> str:
        return BenchCodec.label(self, setting)  # its model only names the id in the files' header

    def decode(self, files: list[bytes], setting: Setting) -> torch.Tensor:
        codec = self.codec(setting)
        parsed = [codec.parse(f) for f in files]
        seed = parsed[0].header.seed
        matrix = codec.gaussian(setting["m"], seed).matrix.cpu()
        y = torch.stack([p.values for p in parsed])
        return lasso_dct_decode(y, matrix, codec.image_size, alpha=self.alpha, basis=setting["basis"])


GENERATIVE = {"ge": GeCodec, "ae": AeCodec, "csgm": CsgmCodec, "lasso-dct": LassoDctCodec}


def make_codecs(names: list[str], bundles: list[Bundle], bits: tuple[int, ...], device: str | None,
                search: Setting, sources: dict[bytes, Source] | None = None) -> tuple[dict[str, BenchCodec], list[str]]:
    """The named codecs, and the names that are not codecs; ge-photo only with the faces' photo sources."""
    pillow = {c.name: c for c in pillow_codecs()}
    codecs: dict[str, BenchCodec] = {}
    unknown = []
    for name in names:
        if name == GePhotoCodec.name and sources is not None:
            codecs[name] = GePhotoCodec(bundles, bits, device, search, sources)
        elif name in GENERATIVE:
            codecs[name] = GENERATIVE[name](bundles, bits, device, search)
        elif name in pillow:
            codecs[name] = pillow[name]
        else:
            unknown.append(name)
    return codecs, unknown


def find_bundles(names: list[str] | None, image_size: int) -> list[Bundle]:
    """The bundles to sweep: those named, or every current bundle for this image size (legacy ones,
    kept only to decode old files, are left out)."""
    if names:
        return [load_model(name) for name in names]
    found = []
    for path in available_bundles():
        try:
            bundle = load_bundle(path)
        except GecError:
            continue
        if bundle.image_size == image_size and not bundle.card.get("legacy"):
            found.append(bundle)
    return found
