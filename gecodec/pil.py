"""Pillow plugin: importing this module lets PIL.Image.open read .gec files and Image.save write them."""

from __future__ import annotations

from typing import IO

from PIL import Image, ImageFile

from gecodec import api, container
from gecodec.bundle import find_by_id
from gecodec.errors import GecError


def _accept(prefix: bytes) -> bool:
    return prefix[:4] == container.MAGIC + bytes([container.VERSION]) or (
        prefix[:2] == container.MAGIC_V2 and prefix[2:3] in [bytes([v]) for v in container.ENTROPY_VERSIONS])


class GecImageFile(ImageFile.ImageFile):
    """Opening reads only the header; the latent search runs on first access to the pixels."""

    format = "GEC"
    format_description = "gecodec generative-encoder image"

    def _open(self) -> None:
        data = self.fp.read(container.MAX_FILE_SIZE + 1)
        try:
            header, _ = container.read(data)  # checks the whole file; the payload decompresses under its cap
            bundle = find_by_id(header.model_id)
        except GecError as exc:
            raise SyntaxError(str(exc)) from None
        self._gec_data: bytes | None = data
        self._gec_bundle = bundle  # load() decodes with it, rather than read the file again to find it
        self._size = (bundle.image_size, bundle.image_size)  # the face crop the file holds
        self._mode = "L" if header.grayscale else "RGB"
        self.tile = []
        self.info["gec_header"] = header

    def load(self):  # noqa: ANN201 - Pillow's own signature
        if self._gec_data is not None:
            self.im = api.get_codec(self._gec_bundle).decode_image(self._gec_data).im
            self._gec_data = None
        return Image.Image.load(self)


def _save(image: Image.Image, fp: IO[bytes], filename: str | bytes) -> None:
    """Encode with the default model; pass quality=Q, target_bytes=N, refine=L, bits=N, mode="cs", seed=N,
    model=NAME, align="auto"|"none"|"require" or position=False as save() options.

    The file is written only once encoding has succeeded. Pillow itself, though, truncates an existing file
    before it calls any plugin, so Image.save(path) cannot be atomic: for that, write gecodec.encode's bytes
    (or use gec encode, which writes a temporary file and renames it).
    """
    keys = ("model", "quality", "target_bytes", "bits", "mode", "seed", "align", "position", "refine")
    options = {k: image.encoderinfo[k] for k in keys if k in image.encoderinfo}
    fp.write(api.encode(image, **options))


def register() -> None:
    Image.register_open(GecImageFile.format, GecImageFile, _accept)
    Image.register_save(GecImageFile.format, _save)
    Image.register_extension(GecImageFile.format, ".gec")
    Image.register_mime(GecImageFile.format, "image/x-gec")


register()
