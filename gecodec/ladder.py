"""The quality scale of a model with refinement tables: what ``--quality Q`` writes.

A plain entropy-coded model's quality is its base quality, the measurement quantizer's step (gecodec/entropy.py).
Past the generator's floor a finer step buys almost nothing, so a model with refinement tables
(gecodec/refine.py) carries a ladder instead: quality Q names rung Q, a base quality and a refinement level or
none, picked on training faces so that bytes and PSNR rise at every step (gecodec.train.quality_ladder). A file's
header holds the base quality and the level, so decoders never need the ladder. (The refinement tables'
own "rungs", in gecodec/refine.py, are another ladder: of probability tables.)
"""

from __future__ import annotations

from dataclasses import dataclass

from gecodec.entropy import QUALITIES
from gecodec.refine import LEVELS


@dataclass(frozen=True)
class Rung:
    base_quality: int
    level: int | None = None  # the refinement layer's level; None: the base alone

    def to_list(self) -> list[int | None]:
        return [self.base_quality, self.level]


def ladder_from_config(rows: object) -> tuple[Rung, ...]:
    """A bundle config's ``quality_ladder`` -> its rungs; ValueError unless there is one valid rung per quality."""
    if not isinstance(rows, list) or len(rows) != QUALITIES:
        raise ValueError(f"the quality ladder must list {QUALITIES} rungs")
    rungs = []
    for row in rows:
        if not (isinstance(row, list) and len(row) == 2 and _integer_in(row[0], QUALITIES)
                and (row[1] is None or _integer_in(row[1], LEVELS))):
            raise ValueError(f"quality ladder rung {row!r} is not [base quality 0..{QUALITIES - 1}, "
                             f"refinement level 0..{LEVELS - 1} or null]")
        rungs.append(Rung(*row))
    return tuple(rungs)


def _integer_in(value: object, count: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < count
