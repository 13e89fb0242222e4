"""What a file will decode to: the encoder runs the (deterministic) decoder and compares with its input.

The expected figure comes from the model card: the validation curve of entropy-coded files (of its coder) at the file's
quality, or the validation PSNR of 8-bit files. A file that decodes far below it holds an image unlike the
faces the model knows.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from gecodec.bundle import Bundle
from gecodec.container import Header

UNUSUAL_DB = 4.0  # this far below the validation figure (about two standard deviations of faces) earns a warning


@dataclass(frozen=True)
class EncodeReport:
    bytes: int
    psnr: float  # of the decoded file against the encoder's input, at the model's size (8-bit RGB)
    expected_psnr: float | None  # the model's validation figure at this rate, when its card has one
    framing: str = "as given"  # how the face crop was taken from the input: aligned, centre or as given

    @property
    def unusual(self) -> bool:
        return self.expected_psnr is not None and self.psnr < self.expected_psnr - UNUSUAL_DB

    def to_dict(self) -> dict:
        return {**asdict(self), "unusual": self.unusual}

    def describe(self) -> str:
        text = f"{self.bytes} bytes, decodes to {self.psnr:.2f} dB"
        text += {"aligned": " (face aligned)", "centre": " (centre crop)"}.get(self.framing, "")
        if self.expected_psnr is not None:
            text += f" (validation faces: {self.expected_psnr:.2f} dB)"
        return text


def expected_psnr(bundle: Bundle, header: Header) -> float | None:
    """The card's validation PSNR for files like this one: interpolated along the quality curve, or at 8 bits.
    None for a refined file: the card has no figure for those yet."""
    if header.layer is not None:
        return None
    if header.quality is not None:
        curve = bundle.card.get("transform" if header.transform else "rate", {}).get("val_curve") or []
        if not curve:
            return None
        qualities = [row["quality"] for row in curve]
        return round(float(np.interp(header.quality, qualities, [row["psnr"] for row in curve])), 2)
    val = bundle.card.get("val", {})
    if header.mode == "ge" and header.bits == val.get("bits") and "ge_real" in val:
        return val["ge_real"]["psnr"]
    return None
