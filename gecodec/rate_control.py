"""Rate control: what a caller's rate setting writes for a batch of faces.

A rate is a fixed-length bit depth (version 1), a quality (0..100) or a target size in bytes (entropy-coded files),
and optionally a refinement level. check_rate checks a combination and fills in the model's default; rung_at says
which rung of the model's quality ladder (gecodec/ladder.py) a quality names; entropy_files writes each face's
base at a quality, or the file of the largest quality that fits a target size (largest_fitting), probing the
ladder's rungs with bases and the pictures their layers refine made once each. The layers themselves are the
Codec's (Codec.layers, Codec.with_layer_bytes).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace
from functools import cache, partial
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from gecodec import container
from gecodec.bundle import Bundle
from gecodec.container import Header
from gecodec.entropy import QUALITIES, check_quality
from gecodec.errors import OptionError
from gecodec.ladder import Rung
from gecodec.options import DEFAULT_BITS
from gecodec.quantize import check_bits
from gecodec.refine import check_level

if TYPE_CHECKING:
    from gecodec.codec import Codec

INTERPOLATED_PROBES = 6  # largest_fitting's, before it bisects


def check_rate(bundle: Bundle, bits: int | None = None, quality: int | None = None, target_bytes: int | None = None,
               mode: str = "ge", refine: int | None = None) -> dict[str, int | None]:
    """Check the caller's rate settings and fill in the default: the model's default quality when it has an
    entropy model (and the mode is ge), else DEFAULT_BITS fixed-length values."""
    chosen = [name for name, value in (("bits", bits), ("quality", quality), ("target_bytes", target_bytes))
              if value is not None]
    if len(chosen) > 1:
        raise OptionError(f"give one of bits, quality and target bytes, not {len(chosen)}: {' and '.join(chosen)}")
    if (quality is not None or target_bytes is not None) and (mode != "ge" or bundle.base_coder is None):
        why = "cs files" if mode != "ge" else f"model {bundle.name} has no entropy model"
        raise OptionError(f"quality and target bytes need entropy-coded files, and {why} use fixed-length "
                          "values: use bits")
    if quality is not None:
        check_quality(quality)
    if target_bytes is not None and not (isinstance(target_bytes, int) and target_bytes > 0):
        raise OptionError(f"target bytes must be a positive integer, got {target_bytes!r}")
    if refine is not None:
        check_level(refine)
        if bundle.refine is None:
            raise OptionError(f"model {bundle.name} has no refinement tables")
        if bits is not None or mode != "ge":
            raise OptionError("a refinement layer needs an entropy-coded base: use a quality or target bytes, "
                              "not bits")
        if target_bytes is not None:
            raise OptionError("give a refinement level or target bytes, not both")
        if quality is not None and bundle.ladder is not None:
            raise OptionError(f"give a quality or a refinement level, not both: model {bundle.name}'s "
                              "qualities already span its refinement layers")
    if not chosen and refine is None:  # (a layer alone goes on the default base: see rung_at)
        if mode == "ge" and bundle.base_coder is not None:
            quality = bundle.default_quality
        else:
            bits = DEFAULT_BITS
    return {"bits": check_bits(bits) if bits is not None else None, "quality": quality,
            "target_bytes": target_bytes}


def rung_at(bundle: Bundle, quality: int | None, refine: int | None = None) -> Rung:
    """What checked rate settings write: quality's rung on the model's ladder (on a model without one, the
    base at that quality; None: the default base alone), with ``refine``'s layer when one is given."""
    quality = bundle.default_quality if quality is None else quality
    rung = bundle.ladder[quality] if bundle.ladder is not None else Rung(quality)
    return rung if refine is None else Rung(rung.base_quality, refine, on_start=bundle.has_learned_start)


def entropy_files(codec: Codec, images: torch.Tensor, framing: list[dict[str, Any]], seed: int,
                  hints: dict[str, Any] | None, quality: int | None, target_bytes: int | None,
                  start_picture: bool = False) -> list[bytes]:
    """Entropy-coded files (version 3 with a transform model, else 2) of (B, 3, S, S) images on the codec's
    device: each image's base at ``quality`` (with ``start_picture``, one that decodes to its start picture:
    version 4), or the file of the largest quality that fits ``target_bytes`` (on a model with a quality ladder,
    the ladder's). A caller's decoder hints or seed ask for a search, so they keep a base searched (version 3)."""
    bundle = codec.bundle
    with torch.no_grad():
        values = codec.encoder(images).cpu()
    transform = bundle.transform is not None
    model_id = bundle.transform_id if transform else bundle.model_id
    searched = bool(hints) or seed != 0
    files = []
    if target_bytes is not None:  # the quality whose typical file fits: most faces' answer is a step away
        typical = bundle.typical_bytes
        guess = QUALITIES // 2 if typical is None else int(np.searchsorted(typical, target_bytes, "right")) - 1
    for row, image, fields_of_source in zip(values, images.cpu(), framing):
        header = Header(model_id=model_id, quality=0, seed=seed, hints=dict(hints or {}), transform=transform,
                        **fields_of_source)
        if target_bytes is None:
            on_start = start_picture and not searched
            files.append(entropy_file(bundle, row, replace(header, start_picture=on_start), quality))
        elif bundle.ladder is None:
            files.append(largest_fitting(partial(entropy_file, bundle, row, header), target_bytes, guess))
        else:
            files.append(largest_fitting(ladder_files(codec, row, header, image, searched), target_bytes, guess))
    return files


def ladder_files(codec: Codec, values: torch.Tensor, header: Header, image: torch.Tensor, searched: bool
                 ) -> Callable[[int], bytes]:
    """quality -> the file of the ladder's rung for one image (3, S, S) of measurements ``values`` (m,), whose
    bases alone on the start picture are searched ones if the caller ``searched`` (entropy_files);
    bases and the pictures their layers refine are made once each, as the quality search revisits them. The
    start pictures of all the ladder's layered bases, and their analyses, are made in one batch: a batch of
    two costs little more than one on a CPU, and the search's answer and the next quality up usually lie on
    different bases."""
    bundle = codec.bundle
    coder = bundle.base_coder
    integers = cache(lambda quality: coder.quantize(values[None], quality)[0])
    base_file = cache(lambda quality: coded_file(bundle, integers(quality), header, quality))
    start_file = cache(lambda quality: coded_file(bundle, integers(quality), replace(header, start_picture=True),
                                                  quality))
    start_bases = tuple(sorted({r.base_quality for r in bundle.ladder if r.level is not None and r.on_start}))

    def together(base_quality: int, on_start: bool) -> tuple[int, ...]:
        return start_bases if on_start else (base_quality,)  # a search decode is not cheap: one base at a time

    @cache
    def pictures_of(qualities: tuple[int, ...], on_start: bool) -> torch.Tensor:
        if not on_start:
            return codec.layer_bases([base_file(q) for q in qualities], False)
        # what a decoder dequantizes from the base files, without reading them back
        return codec.start_layer_bases(torch.stack([coder.dequantize(integers(q), q) for q in qualities]))

    @cache
    def centred_of(qualities: tuple[int, ...], on_start: bool) -> torch.Tensor:
        pictures = pictures_of(qualities, on_start)
        return bundle.refine_learned.centred(image.expand(len(pictures), -1, -1, -1), pictures)

    def file_at(quality: int) -> bytes:
        rung = bundle.ladder[quality]
        base = base_file(rung.base_quality)
        if rung.level is None:
            return start_file(rung.base_quality) if rung.on_start and not searched else base
        qualities = together(rung.base_quality, rung.on_start)
        row = qualities.index(rung.base_quality)
        if rung.kind == "learned":
            centred = centred_of(qualities, rung.on_start)[row : row + 1]
            layers = bundle.refine_learned.code_centred(centred, rung.level)
        else:
            pixels = pictures_of(qualities, rung.on_start)[row : row + 1]
            layers = codec.layers(image[None], pixels, rung.level, rung.kind)
        return codec.with_layer_bytes([base], layers, rung.level, rung.kind, rung.on_start)[0]

    return file_at


def entropy_file(bundle: Bundle, values: torch.Tensor, header: Header, quality: int) -> bytes:
    """The file of measurements (m,) at ``quality``."""
    return coded_file(bundle, bundle.base_coder.quantize(values[None], quality)[0], header, quality)


def coded_file(bundle: Bundle, integers: np.ndarray, header: Header, quality: int) -> bytes:
    """The file of a base coder's integers (m,) at ``quality``."""
    return container.write(replace(header, quality=quality), bundle.base_coder.encode(integers, quality))


def largest_fitting(file_at: Callable[[int], bytes], target_bytes: int, guess: int) -> bytes:
    """The file of the largest quality that fits in ``target_bytes``: sizes grow with quality (on a quality
    ladder, for most faces; elsewhere it finds a quality that fits and whose next does not). The search starts
    at ``guess`` and gallops away from it, 1, 2, 4, ... qualities at a time, until it holds a quality that fits
    and one that does not; between them it interpolates the logarithm of the size, as sizes grow about
    geometrically with quality. After INTERPOLATED_PROBES it bisects, so that no face's sizes make it slow."""
    def probe(quality: int) -> tuple[int, bytes]:
        return quality, file_at(quality)

    first = probe(min(max(guess, 0), QUALITIES - 1))
    fits, too_big = (first, None) if len(first[1]) <= target_bytes else (None, first)
    step = 1
    while fits is None:
        if too_big[0] == 0:
            raise OptionError(f"no file fits in {target_bytes} bytes: the lowest quality takes {len(too_big[1])}")
        lower = probe(max(too_big[0] - step, 0))
        fits, too_big = (lower, too_big) if len(lower[1]) <= target_bytes else (None, lower)
        step *= 2
    while too_big is None:
        if fits[0] == QUALITIES - 1:
            return fits[1]
        higher = probe(min(fits[0] + step, QUALITIES - 1))
        fits, too_big = (higher, None) if len(higher[1]) <= target_bytes else (fits, higher)
        step *= 2
    interpolated = 0
    while too_big[0] - fits[0] > 1:
        middle = (fits[0] + too_big[0]) // 2
        if interpolated < INTERPOLATED_PROBES:
            interpolated += 1
            share = math.log(target_bytes / len(fits[1])) / math.log(len(too_big[1]) / len(fits[1]))
            middle = min(max(round(fits[0] + share * (too_big[0] - fits[0])), fits[0] + 1), too_big[0] - 1)
        inside = probe(middle)
        fits, too_big = (inside, too_big) if len(inside[1]) <= target_bytes else (fits, inside)
    return fits[1]
