"""Batches in which each item may fail on its own: a bad image or a damaged file becomes that item's error, and
the rest of the batch is still coded together. `gec encode` and `gec decode`, archives' rows and the Ray stages
(gecodec.ray_stages) all go through here, so that a batch job never stops at one bad input."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import islice
from typing import TYPE_CHECKING, Any, TypeVar

import torch

from gecodec import container
from gecodec.api import get_codec
from gecodec.bundle import find_by_id
from gecodec.codec import Codec, ParsedFile
from gecodec.container import Header
from gecodec.errors import FormatError, GecError
from gecodec.image_encoding import FramedImage, encode_framed, frame_image
from gecodec.imageio import ImageInput
from gecodec.report import EncodeReport
from gecodec.search import Progress

if TYPE_CHECKING:
    from gecodec.archive import ArchiveRow

Encoded = tuple[bytes, EncodeReport | None]
Item = TypeVar("Item")
Result = TypeVar("Result")


def frame_each(codec: Codec, images: Sequence[ImageInput], align: str = "auto", position: bool = True
               ) -> list[FramedImage | GecError]:
    """Each image framed at the model's size (image_encoding.frame_image), or the error that stopped it."""
    framed: list[FramedImage | GecError] = []
    for image in images:
        try:
            framed.append(frame_image(codec, image, align, position))
        except GecError as exc:
            framed.append(exc)
    return framed


def encode_each(codec: Codec, framed: Sequence[FramedImage], check: bool = True, batch_size: int = 64,
                **options: Any) -> list[Encoded | GecError]:
    """Each framed image's file and report (image_encoding.encode_framed, checks decoded ``batch_size`` at once),
    or its error: coded together, and one at a time only when the batch fails, to find the image that failed."""
    return _each(lambda items, _: encode_framed(codec, items, check, batch_size, **options), framed)


def decode_each(codec: Codec, parsed: Sequence[ParsedFile], batch_size: int = 64, progress: Progress | None = None,
                base_only: bool = False, **overrides: Any) -> list[torch.Tensor | GecError]:
    """Each parsed file's (3, S, S) decode (Codec.decode_parsed), or its error: searched together, and one at a
    time (without progress, which the batch reported) only when the batch fails, to find the file that failed."""
    return _each(lambda items, alone: list(codec.decode_parsed(items, batch_size, None if alone else progress,
                                                               base_only, **overrides)), parsed)


def _each(run: Callable[[Sequence[Item], bool], Sequence[Result]], items: Sequence[Item]) -> list[Result | GecError]:
    """run(items, False) for the whole batch; if it raises a GecError, run([item], True) for each item, keeping
    each one's result or error."""
    if len(items) > 1:
        try:
            return list(run(items, False))
        except GecError:
            pass
    results: list[Result | GecError] = []
    for item in items:
        try:
            results.append(run([item], len(items) > 1)[0])
        except GecError as exc:
            results.append(exc)
    return results


@dataclass(frozen=True)
class DecodedRow:
    """An archive row's decode: its pixels, or why there are none."""

    id: str
    header: Header | None  # None where the file could not be read
    pixels: torch.Tensor | None  # (3, S, S) in [-1, 1]
    error: str | None = None


def decode_rows(rows: Iterable[ArchiveRow], codec: Codec | None = None, device: str | torch.device | None = None,
                batch_size: int = 64, base_only: bool = False, **overrides: Any) -> Iterator[DecodedRow]:
    """Decode archive rows (gecodec.archive) in order, ``batch_size`` at a time, each on its own: an error row, a
    damaged file or a failed search gives that row's error. Each file is decoded with ``codec``, or, without
    one, with its model found by its id (on ``device``)."""
    rows = iter(rows)
    while chunk := list(islice(rows, batch_size)):
        yield from _decode_chunk(chunk, codec, device, batch_size, base_only, overrides)


def _decode_chunk(chunk: list[ArchiveRow], codec: Codec | None, device: str | torch.device | None, batch_size: int,
                  base_only: bool, overrides: dict[str, Any]) -> list[DecodedRow]:
    """One batch of rows: each file read and parsed by its model's codec, each model's files searched together."""
    done: dict[int, DecodedRow] = {}
    groups: dict[Codec, list[tuple[int, ParsedFile]]] = defaultdict(list)
    for i, row in enumerate(chunk):
        try:
            if row.error is not None:
                raise GecError(f"not encoded: {row.error}")
            if row.gec is None:
                raise FormatError("the row holds no .gec file")
            own = codec if codec is not None else get_codec(find_by_id(container.read_header(row.gec).model_id), device)
            groups[own].append((i, own.parse(row.gec)))
        except GecError as exc:
            done[i] = DecodedRow(row.id, None, None, str(exc))
    for own, members in groups.items():
        results = decode_each(own, [parsed for _, parsed in members], batch_size, None, base_only, **overrides)
        for (i, parsed), result in zip(members, results):
            failed = isinstance(result, GecError)
            done[i] = DecodedRow(chunk[i].id, parsed.header, None if failed else result, str(result) if failed else None)
    return [done[i] for i in range(len(chunk))]
