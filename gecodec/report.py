"""What a file will decode to: the encoder runs the (deterministic) decoder and compares with its input.

The expected figure comes from the model card: for a file with a refinement layer, the quality ladder's figure
for its rung (training faces); else the validation curve of entropy-coded files (of its coder) at the file's
quality, or the validation PSNR of 8-bit files. A file that decodes far below it holds an image unlike the
faces the model knows.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import NamedTuple

import numpy as np

from gecodec.bundle import Bundle
from gecodec.container import Header
from gecodec.ladder import Rung

UNUSUAL_DB = 4.0  # this far below the validation figure (about two standard deviations of faces) earns a warning


@dataclass(frozen=True)
class EncodeReport:
    bytes: int
    psnr: float  # of the decoded file against the encoder's input, at the model's size (8-bit RGB)
    expected_psnr: float | None  # the model card's figure for files like this one, when it has one
    framing: str = "as given"  # how the face crop was taken from the input: aligned, centre or as given
    expected_on: str = "validation"  # the faces the card measured expected_psnr on: validation or training

    @property
    def unusual(self) -> bool:
        return self.expected_psnr is not None and self.psnr < self.expected_psnr - UNUSUAL_DB

    def to_dict(self) -> dict:
        return {**asdict(self), "unusual": self.unusual}

    def describe(self) -> str:
        text = f"{self.bytes} bytes, decodes to {self.psnr:.2f} dB"
        text += {"aligned": " (face aligned)", "centre": " (centre crop)"}.get(self.framing, "")
        if self.expected_psnr is not None:
            text += f" ({self.expected_on} faces: {self.expected_psnr:.2f} dB)"
        return text


class Expected(NamedTuple):
    psnr: float
    on: str  # the faces the card measured it on: "validation" or "training"


def expected_psnr(bundle: Bundle, header: Header) -> Expected | None:
    """The card's PSNR for files like this one: a layered file's rung on the quality ladder (measured on the
    training faces that picked it), a base's validation figure interpolated along the quality curve, or at 8
    bits. None when the card has no figure for it (a layer that is not on the ladder)."""
    if header.layer is not None:
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
    """The card's figure for the ladder rung a layered file was written at, when the file is one of the
    ladder's: coded with the base coder it was built on, with a layer it names."""
    layer = header.layer
    rung = Rung(header.quality, layer.level, layer.kind, layer.on_start)
    if bundle.ladder is None or rung not in bundle.ladder or header.transform != (bundle.transform is not None):
        return None
    rows = bundle.card.get("quality_ladder", {}).get("rungs") or []
    row = rows[bundle.ladder.index(rung)] if len(rows) == len(bundle.ladder) else None
    if not isinstance(row, dict) or not isinstance(row.get("psnr"), (int, float)):
        return None
    return Expected(round(float(row["psnr"]), 2), "training")
