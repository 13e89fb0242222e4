"""Ray Data stages: encode images to .gec files and decode them to pixels on a Ray cluster (the ray extra).

GecEncoder and GecDecoder are callable classes for `Dataset.map_batches`: each actor loads its model once (in its
constructor), works on the GPU when Ray gave it one, and codes a batch at once; an input that fails becomes an
error row (its id and why), never the end of the job. encode_folder and decode_archive run a whole folder or
archive through them and write Parquet shards, each atomically, then check that every input is in them once.

    ds = ray.data.read_parquet("faces.parquet")
    ds.map_batches(GecDecoder, batch_size=64, compute=ray.data.ActorPoolStrategy(size=2))
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gecodec import container
from gecodec.api import get_codec
from gecodec.archive import (SUFFIX, ArchiveRow, ArchiveWriter, archive_ids, error_row, read_archive, rows_of,
                             to_table)
from gecodec.batches import decode_rows, encode_each, frame_each
from gecodec.bundle import load_model
from gecodec.codec import decoded_image
from gecodec.errors import GecError, MissingExtraError, OptionError, OutputError
from gecodec.fileio import atomic_file, image_bytes
from gecodec.fileio import image_format as format_of
from gecodec.imageio import is_image_path, tensor_to_pixels

try:
    import pyarrow as pa
    import pyarrow.parquet as pq
    import ray.data
    from ray.data.extensions import ArrowTensorArray
except ImportError:  # gecodec works without the extra; only these stages need it
    raise MissingExtraError("the Ray stages need Ray Data: pip install 'gecodec[ray]'") from None

IMAGE_SOURCES = ("image", "bytes", "path")  # a batch's image column: read_images', read_binary_files', a listing's


def columns_of(batch: Any) -> dict[str, list[Any]]:
    """A Ray batch (a pyarrow table, a dict of numpy arrays or a pandas frame) as lists by column."""
    if isinstance(batch, (pa.Table, pa.RecordBatch)):
        return batch.to_pydict()
    if hasattr(batch, "columns") and hasattr(batch, "to_dict"):  # pandas, without importing it
        return {name: batch[name].tolist() for name in batch.columns}
    return {name: list(values) for name, values in batch.items()}


class GecEncoder:
    """images -> an archive's rows (gecodec.archive: id, gec, the report's fields, error).

    A batch's images come from its "image" column (uint8 arrays, as ray.data.read_images gives), else "bytes"
    (image files, as read_binary_files gives), else "path"; its ids from "id", else "path". The options are
    gecodec.encode's and `gec encode`'s: ``model`` a name, id or bundle path (default: the shipped default), the
    rate (at most one of quality, target_bytes, bits; refine), and how a face is framed and checked."""

    def __init__(self, model: str | None = None, quality: int | None = None, target_bytes: int | None = None,
                 refine: int | None = None, bits: int | None = None, mode: str = "ge", seed: int = 0,
                 count: int | None = None, check: bool = True, align: str = "auto", position: bool = True,
                 batch_size: int = 64, device: str | None = None) -> None:
        self.codec = get_codec(load_model(model), device)  # the GPU where Ray gave the actor one
        rate = self.codec.rate_settings(bits, quality, target_bytes, mode, refine)  # bad options fail here
        self.options = {"mode": mode, "seed": seed, "count": count, "refine": refine, **rate}
        self.check, self.align, self.position, self.batch_size = check, align, position, batch_size

    def __call__(self, batch: Any) -> pa.Table:
        columns = columns_of(batch)
        source = next((name for name in IMAGE_SOURCES if name in columns), None)
        if source is None or ("id" not in columns and "path" not in columns):
            raise OptionError(f"a batch needs an image column ({', '.join(IMAGE_SOURCES)}) and an id or path column; "
                              f"it has {', '.join(columns) or 'none'}")
        ids = [str(row_id) for row_id in columns["id" if "id" in columns else "path"]]
        images = [image if source != "bytes" else bytes(image) for image in columns[source]]
        framed = frame_each(self.codec, images, self.align, self.position)
        good = [i for i, item in enumerate(framed) if not isinstance(item, GecError)]
        coded = dict(zip(good, encode_each(self.codec, [framed[i] for i in good], self.check, self.batch_size,
                                           **self.options)))
        rows = []
        for i, row_id in enumerate(ids):
            result = coded.get(i, framed[i])
            if isinstance(result, GecError):
                rows.append(error_row(row_id, result, images[i] if source == "path" else None))
            else:
                rows.append(ArchiveRow(row_id, *result))
        return to_table(rows)


class GecDecoder:
    """An archive's rows (id, gec; error rows pass through as errors) -> id, pixels, error.

    pixels: (B, S, S, 3) uint8, zeros in a row whose error is set; with ``image_format`` ("png", "jpg", "webp")
    an "image" column instead, holding each face's file as `gec decode` writes it (null in error rows). Every
    file must be of ``model`` (a name, id or bundle path; default: the shipped default): another model's file
    is an error row. ``overrides``: the search's iters, restarts, lam, lr."""

    def __init__(self, model: str | None = None, image_format: str | None = None, device: str | None = None,
                 batch_size: int = 64, base_only: bool = False, **overrides: Any) -> None:
        self.codec = get_codec(load_model(model), device)  # the GPU where Ray gave the actor one
        self.name = None if image_format is None else Path(f"face.{image_format}")
        if self.name is not None:
            format_of(self.name)  # an unknown format fails here, not in every row
        self.batch_size, self.base_only, self.overrides = batch_size, base_only, overrides

    def __call__(self, batch: Any) -> pa.Table:
        decoded = list(decode_rows(rows_of(columns_of(batch)), self.codec, batch_size=self.batch_size,
                                   base_only=self.base_only, **self.overrides))
        if self.name is not None:
            column = "image", pa.array([None if row.error else image_bytes(decoded_image(row.pixels, row.header),
                                                                           self.name) for row in decoded], pa.binary())
        else:
            side = self.codec.image_size
            pixels = np.zeros((len(decoded), side, side, 3), np.uint8)
            for i, row in enumerate(decoded):
                if row.error is None:
                    pixels[i] = tensor_to_pixels(row.pixels)
            column = "pixels", ArrowTensorArray.from_numpy(pixels)
        # Typed columns: a batch without errors must give an error column of strings too, not of nulls, so
        # that every block, and every shard written from them, has one schema.
        return pa.table({"id": pa.array([row.id for row in decoded], pa.string()), column[0]: column[1],
                         "error": pa.array([row.error for row in decoded], pa.string())})


@dataclass(frozen=True)
class JobReport:
    """What a job wrote: its shards, and its rows, error rows among them (every input exactly once)."""

    shards: list[Path]
    rows: int
    errors: int


def encode_folder(folder: str | Path, out: str | Path, *, model: str | None = None, encoders: int = 2,
                  num_cpus: float = 1, num_gpus: float = 0, batch_size: int = 64, rows_per_shard: int = 100_000,
                  **options: Any) -> JobReport:
    """Encode every image under ``folder`` (and its subfolders) on the Ray cluster, ``encoders`` actors with
    ``num_cpus`` and ``num_gpus`` each, into archive shards in the new folder ``out`` (GecEncoder's ``options``:
    check, align, position, quality, target_bytes, ...). A row's id is its image's path relative to ``folder``,
    which must be a folder every node of the cluster sees."""
    root = Path(folder)
    listing = [{"id": path.relative_to(root).as_posix(), "path": str(path)}
               for path in sorted(root.rglob("*")) if path.is_file() and is_image_path(path)]
    if not listing:
        raise GecError(f"{root}: holds no images")
    stage = {"model": model, "batch_size": batch_size, **options}
    ds = ray.data.from_items(listing).map_batches(
        GecEncoder, fn_constructor_kwargs=stage, batch_size=batch_size, batch_format="pyarrow",
        compute=ray.data.ActorPoolStrategy(size=encoders), num_cpus=num_cpus, num_gpus=num_gpus)
    return write_shards(ds, [item["id"] for item in listing], out, rows_per_shard)


def decode_archive(archive: str | Path, out: str | Path, *, model: str | None = None, decoders: int = 2,
                   num_cpus: float = 1, num_gpus: float = 0, batch_size: int = 64, rows_per_shard: int = 10_000,
                   image_format: str = "png", **overrides: Any) -> JobReport:
    """Decode every row of an archive (a .parquet file, or a folder of shards such as encode_folder's) on the Ray
    cluster, ``decoders`` actors with ``num_cpus`` and ``num_gpus`` each, into shards of images (id, image,
    error) in the new folder ``out``. ``model``: default, the model of the archive's first file. The readers
    are Ray tasks of their own, so the actors must leave them a CPU."""
    shards = sorted(Path(archive).glob(f"*{SUFFIX}")) if Path(archive).is_dir() else [Path(archive)]
    if not shards:
        raise GecError(f"{archive}: holds no {SUFFIX} files")
    expected = [row_id for shard in shards for row_id in archive_ids(shard)]  # each shard's schema checked too
    stage = {"model": model or _first_model(shards), "image_format": image_format, "batch_size": batch_size,
             **overrides}
    # A block a batch: a file's rows come as a block a row group (65,536 rows), which one actor would take alone.
    ds = (ray.data.read_parquet([str(shard) for shard in shards]).select_columns(_decoder_columns(shards[0]))
          .repartition(target_num_rows_per_block=batch_size)
          .map_batches(GecDecoder, fn_constructor_kwargs=stage, batch_size=batch_size, batch_format="pyarrow",
                       compute=ray.data.ActorPoolStrategy(size=decoders), num_cpus=num_cpus, num_gpus=num_gpus))
    return write_shards(ds, expected, out, rows_per_shard)


def _first_model(shards: list[Path]) -> str | None:
    """The model id of the first file in the shards, or None (the default) when they hold none."""
    for shard in shards:
        for row in read_archive(shard, columns=()):
            if row.gec is not None:
                try:
                    return container.read_header(row.gec).model_hex
                except GecError:  # a damaged file: its row's error, in the decode
                    continue
    return None


def _decoder_columns(shard: Path) -> list[str]:
    """The columns a decoder reads, of those the archive has (an archive from another tool may lack error)."""
    return [name for name in ("id", "gec", "error") if name in pq.read_schema(shard).names]


def write_shards(ds: ray.data.Dataset, expected: Iterable[str], out: str | Path, rows_per_shard: int = 100_000
                 ) -> JobReport:
    """Run a dataset of rows with an id and an error column (GecEncoder's or GecDecoder's) and write its rows as
    Parquet shards in the new folder ``out`` as they arrive, part-00000.parquet and on, each atomically (an
    encoder's shards are archives); then check that the ids are the ``expected`` ones, each exactly once."""
    out = Path(out)
    if out.exists() and any(out.glob(f"*{SUFFIX}")):
        raise OutputError(f"{out}: already holds Parquet shards; write a job's shards to a new folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{out}: cannot create output folder ({exc.strerror})") from None
    shards, seen, errors = [], Counter(), 0
    for batch in ds.iter_batches(batch_size=rows_per_shard, batch_format="pyarrow"):
        shards.append(out / f"part-{len(shards):05d}{SUFFIX}")
        if "gec" in batch.schema.names:
            with ArchiveWriter(shards[-1]) as archive:
                archive.write(batch)
        else:
            with atomic_file(shards[-1]) as handle:
                pq.write_table(batch, handle, compression="zstd")
        seen.update(batch.column("id").to_pylist())
        errors += batch.num_rows - batch.column("error").null_count
    check_complete(expected, seen)
    return JobReport(shards, sum(seen.values()), errors)


def check_complete(expected: Iterable[str], seen: Counter[str]) -> None:
    """Every expected id exactly as often as the input holds it: none lost, none twice."""
    wanted = Counter(expected)
    if seen != wanted:
        missing, extra = sorted(wanted - seen), sorted(seen - wanted)
        raise GecError(f"the job's output is not its input: {len(missing)} rows missing ({', '.join(missing[:3])}"
                       f"{'...' if len(missing) > 3 else ''}), {len(extra)} extra ({', '.join(extra[:3])}"
                       f"{'...' if len(extra) > 3 else ''})")
