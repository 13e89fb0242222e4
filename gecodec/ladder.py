"""The quality scale of a model with refinement tables: what ``--quality Q`` writes.

A plain entropy-coded model's quality is its base quality, the measurement quantizer's step (gecodec/entropy.py).
Past the generator's floor a finer step buys almost nothing, so a model with refinement tables
(gecodec/refine.py) carries a ladder instead: quality Q names rung Q, a base quality and a refinement layer
(its kind, DCT or learned (gecodec/learned_layer.py), its level, and whether it refines the start picture) or
none, picked on training faces so that bytes and PSNR rise at every step (gecodec.train.quality_ladder). A file's
header holds the base quality and the layer, so decoders never need the ladder. (The refinement tables' own
"rungs", in gecodec/refine.py, are another ladder: of probability tables.)
"""

from __future__ import annotations

from dataclasses import dataclass

from gecodec.container import MAX_LAYER_LEVEL, QUALITIES, Header


@dataclass(frozen=True)
class Rung:
    base_quality: int
    level: int | None = None  # the refinement layer's level; None: the base alone
    kind: str = "dct"  # the layer's (container.Layer.kind)
    on_start: bool = False  # the layer refines the start picture (container.Layer.on_start); the base alone: it
    # decodes to its start picture (a version-4 file), with no search

    def to_list(self) -> list[int | str | None]:
        """[base quality, level or null], then the kind when it is not "dct" or the layer is on the start picture,
        then "start" when it is; a base alone on its start picture is [base quality, null, "start"]."""
        if self.on_start and self.level is None:
            return [self.base_quality, None, "start"]
        if self.on_start:
            return [self.base_quality, self.level, self.kind, "start"]
        return [self.base_quality, self.level] + ([self.kind] if self.kind != "dct" else [])


# What may follow a rung's [base quality, level]: nothing (a DCT layer), or its kind, and "start" for a layer on
# the start picture -> (kind, on_start); after [base quality, null]: nothing, or "start" for the start picture.
LAYER_TAILS = {(): ("dct", False), ("learned",): ("learned", False),
               ("dct", "start"): ("dct", True), ("learned", "start"): ("learned", True)}
BASE_TAILS = {(): ("dct", False), ("start",): ("dct", True)}


def rung_of(header: Header) -> Rung:
    """The rung an entropy-coded file was written at: its base quality, and its layer or its start picture."""
    layer = header.layer
    if layer is None:
        return Rung(header.quality, on_start=header.start_picture)
    return Rung(header.quality, layer.level, layer.kind, layer.on_start)


def ladder_from_config(rows: object) -> tuple[Rung, ...]:
    """A bundle config's ``quality_ladder`` -> its rungs; ValueError unless there is one valid rung per quality."""
    if not isinstance(rows, list) or len(rows) != QUALITIES:
        raise ValueError(f"the quality ladder must list {QUALITIES} rungs")
    rungs = []
    for row in rows:
        tail = tuple(row[2:]) if isinstance(row, list) and all(isinstance(v, str) for v in row[2:]) else None
        tails = BASE_TAILS if isinstance(row, list) and len(row) >= 2 and row[1] is None else LAYER_TAILS
        if not (isinstance(row, list) and len(row) >= 2 and _integer_in(row[0], 0, QUALITIES - 1) and tail in tails
                and (row[1] is None or _integer_in(row[1], -MAX_LAYER_LEVEL if "learned" in tail else 0,
                                                   MAX_LAYER_LEVEL))):
            raise ValueError(f"quality ladder rung {row!r} is not [base quality 0..{QUALITIES - 1}, "
                             f"refinement level 0..{MAX_LAYER_LEVEL} (-{MAX_LAYER_LEVEL}..{MAX_LAYER_LEVEL} for a "
                             f"learned layer) or null], then \"learned\" for a learned layer, or the kind and "
                             f"\"start\" for a layer on the start picture; a base alone may add \"start\" for its "
                             f"start picture")
        rungs.append(Rung(row[0], row[1], *tails[tail]))
    return tuple(rungs)


def _integer_in(value: object, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high
