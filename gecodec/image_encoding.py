"""Images to .gec files as `gec encode` and gecodec.encode make them: each face found and framed (gecodec.align),
the faces of a batch coded together and, with a check, their files decoded together as a receiver decodes them
(Codec.decode_parsed, the path of `gec decode`), each compared with the face crop it was made from."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from gecodec.align import NO_DETECTOR, frame_face
from gecodec.codec import Codec, Source
from gecodec.imageio import ImageInput, open_image, pixels_to_tensor
from gecodec.metrics import psnr_8bit
from gecodec.report import EncodeReport, expected_psnr, typicality


@dataclass(frozen=True)
class FramedImage:
    face: torch.Tensor  # (3, S, S) in [-1, 1]: the crop at the model's size that the file codes
    source: Source  # what the file records of the picture
    how: str  # how the crop was taken: aligned, centre or as given
    enlarged: bool = False  # the picture was smaller than the model's faces


def frame_image(codec: Codec, image: ImageInput, align: str = "auto", position: bool = True) -> FramedImage:
    """Open an image and frame its face at the model's size. align: auto (the largest face, framed as the training
    faces are; the centre crop when there is none, with a warning), none (the centre crop) or require (no face is
    an ImageError). position: record where the face lies in the photo, so that decoding can paste it back."""
    picture = open_image(image)
    name, size = picture.info["source"], codec.image_size
    enlarged = min(picture.size) < size
    if enlarged:
        warnings.warn(f"{name}: a {picture.width}x{picture.height} image, smaller than the model's {size}x{size}: it "
                      "is enlarged, and the detail it decodes to is the generator's guess", stacklevel=2)
    framed = frame_face(picture, codec.bundle.crop, size, align)
    if framed.note is not None:  # the missing extra once per run (warnings repeat nothing); each faceless photo
        warnings.warn(framed.note if framed.note == NO_DETECTOR else f"{name}: {framed.note}", stacklevel=2)
    source = Source(picture.size if position else None, framed.placement if position else None,
                    picture.info.get("grayscale", False))
    return FramedImage(pixels_to_tensor(np.asarray(framed.face)), source, framed.how, enlarged)


def encode_framed(codec: Codec, images: Sequence[FramedImage], check: bool = True, batch_size: int = 64,
                  **options: Any) -> list[tuple[bytes, EncodeReport | None]]:
    """Each framed image's file (options: Codec.encode_batch's rate and mode) and, with ``check``, its report:
    the files decoded together, ``batch_size`` searched at once, and each compared with its face crop."""
    if not images:
        return []
    faces = torch.stack([image.face for image in images])
    files = codec.encode_batch(faces, sources=[image.source for image in images], **options)
    if not check:
        return [(data, None) for data in files]
    parsed = [codec.parse(data) for data in files]
    psnrs = psnr_8bit(codec.decode_parsed(parsed, batch_size), faces)
    with torch.no_grad():
        typical = typicality(codec.bundle, codec.encoder(faces.to(codec.device)).cpu())
    reports = []
    for data, file, image, psnr, score in zip(files, parsed, images, psnrs.tolist(), typical):
        expected = expected_psnr(codec.bundle, file.header, image.how)
        reports.append(EncodeReport(
            len(data), round(psnr, 2), expected.psnr if expected else None, image.how,
            expected.on if expected else "validation", None if score is None else round(score, 2), image.enlarged))
    return list(zip(files, reports))


def encode_image(codec: Codec, image: ImageInput, check: bool = False, align: str = "auto", position: bool = True,
                 **options: Any) -> tuple[bytes, EncodeReport | None]:
    """One image's file and, with ``check``, its report (frame_image, encode_framed)."""
    return encode_framed(codec, [frame_image(codec, image, align, position)], check, **options)[0]
