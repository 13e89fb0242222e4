"""What a file will decode to: the encoder runs the (deterministic) decoder and compares with its input.

The expected figure comes from the model card, measured on faces like the input: for a face framed in a photo,
the curve of validation photos through the same path (gecodec.train.photo_card), when the card has one; else, for
a file with a refinement layer, the quality ladder's figure for its rung (training faces), or the validation curve
of entropy-coded files (of its coder) at the file's quality, or the validation PSNR of 8-bit files. A file that
decodes far below it holds an image unlike the faces the model knows.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import NamedTuple

import numpy as np
import torch

from gecodec.bundle import Bundle
from gecodec.container import Header
from gecodec.ladder import rung_of

UNUSUAL_DB = 4.0  # this far below the validation figure (about two standard deviations of faces) earns a warning
# Measurements whose mean square, in units of each one's spread on the training faces, is above this lie far from
# any face the model knows: the most of 512 CelebA and 512 LFW validation faces is 2.6 to 2.9 under either default
# model, a line plot's and text's 5.3 to 6.7 (python -m bench.typicality, bench/results/typicality.json). A flat
# grey square or noise measures like a faint face (0.4 to 0.5): this sign does not catch them.
ATYPICAL = 4.0


@dataclass(frozen=True)
class EncodeReport:
    bytes: int
    psnr: float  # of the decoded file against the encoder's input, at the model's size (8-bit RGB)
    expected_psnr: float | None  # the model card's figure for files like this one, when it has one
    framing: str = "as given"  # how the face crop was taken from the input: aligned, centre or as given
    expected_on: str = "validation"  # the faces the card measured expected_psnr on: validation, training or photos
    typicality: float | None = None  # the measurements' mean square in units of their spread (faces: about 1)
    enlarged: bool = False  # the input was smaller than the model's faces

    @property
    def unusual(self) -> bool:
        return bool(self.unusual_signs())

    def unusual_signs(self) -> list[str]:
        """What sets the input apart from the faces the model knows, if anything."""
        signs = []
        if self.expected_psnr is not None and self.psnr < self.expected_psnr - UNUSUAL_DB:
            signs.append(f"it decodes to {self.psnr:.2f} dB, far below the model's {self.expected_psnr:.2f} dB")
        if self.typicality is not None and self.typicality > ATYPICAL:
            signs.append("its measurements lie far from those of faces")
        if self.enlarged:
            signs.append("it is smaller than the model's faces")
        return signs

    def to_dict(self) -> dict:
        return {**asdict(self), "unusual": self.unusual}

    def describe(self) -> str:
        text = f"{self.bytes} bytes, decodes to {self.psnr:.2f} dB"
        text += {"aligned": " (face aligned)", "centre": " (centre crop)"}.get(self.framing, "")
        if self.expected_psnr is not None:
            text += f" ({EXPECTED_ON.get(self.expected_on, self.expected_on)}: {self.expected_psnr:.2f} dB)"
        return text


EXPECTED_ON = {"validation": "validation faces", "training": "training faces", "photos": "validation photos"}
PHOTO_FRAMINGS = ("aligned", "centre")  # how a photo's face is framed; "as given" is a face crop


class Expected(NamedTuple):
    psnr: float
    on: str  # the faces the card measured it on: "validation", "training" or "photos"


def typicality(bundle: Bundle, values: torch.Tensor) -> list[float | None]:
    """Each row of measurements' (B, m) mean square in units of their spread on the training faces (the entropy
    model's centre and scale); None for a model without an entropy model."""
    if bundle.entropy is None:
        return [None] * len(values)
    return ((values - bundle.entropy.mean) / bundle.entropy.scale).square().mean(1).tolist()


def expected_psnr(bundle: Bundle, header: Header, framing: str = "as given") -> Expected | None:
    """The card's PSNR for files like this one: for a photo's face, the validation photos' curve at the file's
    quality; else a layered file's rung on the quality ladder (measured on the training faces that picked it), a
    base's validation figure interpolated along the quality curve, or at 8 bits. None when the card has no figure
    for it (a layer that is not on the ladder)."""
    if framing in PHOTO_FRAMINGS:
        photos = _photo_psnr(bundle, header)
        if photos is not None:
            return photos
    if header.layer is not None or header.start_picture:
        return _ladder_psnr(bundle, header)
    if header.quality is not None:
        curve = bundle.card.get("transform" if header.transform else "rate", {}).get("val_curve") or []
        if not curve:
            return None
        qualities = [row["quality"] for row in curve]
        return Expected(round(float(np.interp(header.quality, qualities, [row["psnr"] for row in curve])), 2),
                        "validation")
    val = bundle.card.get("val", {})
    if header.mode == "ge" and header.bits == val.get("bits") and "ge_real" in val:
        return Expected(val["ge_real"]["psnr"], "validation")
    return None


def _ladder_psnr(bundle: Bundle, header: Header) -> Expected | None:
    """The card's figure for the ladder rung a layered (or start picture's) file was written at, when the file is
    one of the ladder's: coded with the base coder it was built on, with a layer it names."""
    rung = rung_of(header)
    if bundle.ladder is None or rung not in bundle.ladder or header.transform != (bundle.transform is not None):
        return None
    rows = bundle.card.get("quality_ladder", {}).get("rungs") or []
    row = rows[bundle.ladder.index(rung)] if len(rows) == len(bundle.ladder) else None
    if not isinstance(row, dict) or not isinstance(row.get("psnr"), (int, float)):
        return None
    return Expected(round(float(row["psnr"]), 2), "training")


def file_quality(bundle: Bundle, header: Header) -> int | None:
    """The --quality a file was written at: its rung's place on the model's ladder, or its coder's quality on a
    model without one. None for a file off the ladder (fixed-length, or a layer the ladder does not hold)."""
    if header.quality is None or header.transform != (bundle.transform is not None):
        return None
    if bundle.ladder is None:
        return header.quality if header.layer is None else None
    rung = rung_of(header)
    return bundle.ladder.index(rung) if rung in bundle.ladder else None


def _photo_psnr(bundle: Bundle, header: Header) -> Expected | None:
    """The card's validation photos' PSNR at the file's quality (gecodec.train.photo_card), interpolated."""
    quality = file_quality(bundle, header)
    photos = bundle.card.get("photos")
    rows = photos.get("curve") if isinstance(photos, dict) else None
    rows = rows if isinstance(rows, list) else []
    points = sorted((row["quality"], row["psnr"]) for row in rows if isinstance(row, dict)
                    and isinstance(row.get("quality"), int) and isinstance(row.get("psnr"), (int, float)))
    if quality is None or not points:
        return None
    qualities, psnrs = zip(*points)
    return Expected(round(float(np.interp(quality, qualities, psnrs)), 2), "photos")
