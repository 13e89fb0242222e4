"""Settings and defaults that the `gec` command's help shows, importable without torch (so `gec --help` is quick)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from gecodec.errors import OptionError

DEFAULT_MODEL = "faces64-default"
MIN_BITS, MAX_BITS, DEFAULT_BITS = 2, 12, 8  # fixed-length (version-1) values
TASKS = ("denoise", "deblur", "superres", "inpaint")  # restoration
METHODS = ("ge", "csgm")
MIN_OUTPUT_SIDE, MAX_OUTPUT_SIDE = 8, 4096  # gec decode --size: the decoded face crop's side
ALIGN_MODES = ("auto", "none", "require")  # how the encoder frames a photo (gecodec.align)
NOISE_SIGMA, BLUR_SIGMA, SUPERRES_FACTOR = 0.4, 1.5, 4  # the restoration tasks' defaults (the GE paper's)


@dataclass(frozen=True)
class SearchOptions:
    """Decoder settings. The defaults are the GE paper's (Adam, lr 0.1, 500 iterations, 2 restarts)."""

    iters: int = 500
    restarts: int = 2
    lam: float = 0.01  # weight of the prior term; both terms are means, so lam does not depend on m or z's size
    lr: float = 0.1

    def __post_init__(self) -> None:
        if not (isinstance(self.iters, int) and self.iters >= 0):
            raise OptionError(f"iterations must be a non-negative integer, got {self.iters!r}")
        if not (isinstance(self.restarts, int) and self.restarts >= 1):
            raise OptionError(f"restarts must be a positive integer, got {self.restarts!r}")
        if not (self.lam >= 0 and math.isfinite(self.lam)):
            raise OptionError(f"lambda must be a finite non-negative number, got {self.lam!r}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise OptionError(f"learning rate must be a finite positive number, got {self.lr!r}")
