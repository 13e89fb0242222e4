"""Archives: many faces' .gec files packed in one Apache Parquet file, a row a face (formats/archive.md).

A 70-byte face costs a file-system block, and an object-store request, as a file of its own; packed, it costs
its bytes and a few more. Any Parquet reader lists an archive, and any row decodes on its own. This module
writes, reads and summarises archives; gecodec.batches decodes their rows. It needs pyarrow (the archive
extra) and never torch.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from gecodec import __version__, container
from gecodec.errors import FormatError, GecError, MissingExtraError
from gecodec.fileio import atomic_file, open_regular

if TYPE_CHECKING:
    from gecodec.report import EncodeReport

try:
    import pyarrow as pa
    import pyarrow.parquet as pq
except ImportError:  # gecodec works without the extra; only archives need it
    raise MissingExtraError("Parquet archives need pyarrow: pip install 'gecodec[archive]'") from None

SUFFIX = ".parquet"
METADATA_KEY = b"gecodec.archive"
VERSION = 1  # of the layout below; a reader refuses a larger one, whose meaning it cannot know
ROW_GROUP_ROWS = 65_536  # rows a writer holds before writing them: 4.6 MB of default files
READ_ROWS = 4_096  # rows a reader takes from the file at a time

# The report's fields, nullable: null in error rows, and all but bytes null when the files were not checked.
REPORT_FIELDS = {"bytes": pa.int32(), "psnr": pa.float64(), "expected_psnr": pa.float64(), "expected_on": pa.string(),
                 "framing": pa.string(), "typicality": pa.float64(), "enlarged": pa.bool_()}
SCHEMA = pa.schema(
    [pa.field("id", pa.string(), nullable=False), pa.field("gec", pa.binary()),
     *(pa.field(name, kind) for name, kind in REPORT_FIELDS.items()), pa.field("error", pa.string())],
    metadata={METADATA_KEY: json.dumps({"format": "gecodec archive", "version": VERSION,
                                        "writer": f"gecodec {__version__}"}).encode()},
)
REQUIRED = ("id", "gec")


def _is_text(kind: pa.DataType) -> bool:
    return pa.types.is_string(kind) or pa.types.is_large_string(kind)


def _is_bytes(kind: pa.DataType) -> bool:
    return pa.types.is_binary(kind) or pa.types.is_large_binary(kind)


# What each column may be in a file another tool wrote: the kind of type, whatever its width.
KINDS = {"id": _is_text, "gec": _is_bytes, "bytes": pa.types.is_integer, "psnr": pa.types.is_floating,
         "expected_psnr": pa.types.is_floating, "expected_on": _is_text, "framing": _is_text,
         "typicality": pa.types.is_floating, "enlarged": pa.types.is_boolean, "error": _is_text}
# Writing (bench.archive_overhead measured the choices): zstd throughout; the .gec column plain, as no
# dictionary helps incompressible files; the ids with their shared prefixes left out (0.2 bytes a face, where a
# dictionary takes 2.5); the report's columns through dictionaries, as they hold few distinct values (PSNRs of two
# decimals: 1.7 bytes a face).
WRITE_OPTIONS = {"compression": "zstd", "use_dictionary": [name for name in REPORT_FIELDS] + ["error"],
                 "column_encoding": {"id": "DELTA_BYTE_ARRAY"}}


@dataclass(frozen=True)
class ArchiveRow:
    """One face: its id and its file, with the report it was written with; or an error row, which holds the id
    of an input that could not be coded and why (gec None, error set)."""

    id: str
    gec: bytes | None = None
    report: EncodeReport | None = None
    error: str | None = None


def error_row(row_id: str, error: Exception, source: object = None) -> ArchiveRow:
    """The error row of an input that failed: its id, and the error's message less any leading "source: " (the
    id says which input it was, and a local path has no place in the archive)."""
    return ArchiveRow(row_id, error=str(error).removeprefix(f"{source}: "))


def to_table(rows: Iterable[ArchiveRow]) -> pa.Table:
    """Rows as a table of the archive's schema (what an archive holds, and what the Ray encoder returns)."""
    columns: dict[str, list[Any]] = {name: [] for name in SCHEMA.names}
    for row in rows:
        report = row.report.to_dict() if row.report is not None and row.error is None else {}
        values = {**report, "id": row.id, "gec": None if row.error is not None else row.gec, "error": row.error,
                  "bytes": len(row.gec) if row.gec is not None and row.error is None else None}
        for name, column in columns.items():
            column.append(values.get(name))
    return pa.table(columns, schema=SCHEMA)


def rows_of(columns: Mapping[str, Sequence[Any]]) -> Iterator[ArchiveRow]:
    """The rows of an archive's columns (a checked table's to_pydict(), or a Ray batch): a row with an error is
    an error row, whatever else it holds; a report is rebuilt where the file was checked (a PSNR)."""
    for i, row_id in enumerate(columns["id"]):
        if row_id is None:
            raise FormatError(f"row {i} has no id")
        value = {name: column[i] for name, column in columns.items() if name in KINDS}
        error, data = value.get("error"), value.get("gec")
        if error is not None:
            yield ArchiveRow(row_id, error=error)
            continue
        report = None
        if value.get("psnr") is not None:
            from gecodec.report import EncodeReport  # torch: only for rows with a report (gec info reads none)

            report = EncodeReport(len(data) if data is not None else 0, value["psnr"], value.get("expected_psnr"),
                                  value.get("framing") or "as given", value.get("expected_on") or "validation",
                                  value.get("typicality"), bool(value.get("enlarged")))
        yield ArchiveRow(row_id, None if data is None else bytes(data), report)


def check_schema(schema: pa.Schema, name: str | Path) -> None:
    """Refuse a table that is no archive: a required column missing, a column of the wrong kind, or a layout
    version this reader does not know."""
    missing = [column for column in REQUIRED if column not in schema.names]
    if missing:
        raise FormatError(f"{name}: not a gecodec archive (no {' or '.join(missing)} column)")
    for column in set(schema.names) & set(KINDS):
        kind = schema.field(column).type
        if not KINDS[column](kind):
            raise FormatError(f"{name}: column {column} holds {kind}, not what an archive's {column} holds")
    stated = (schema.metadata or {}).get(METADATA_KEY)
    if stated is not None:
        try:
            version = json.loads(stated)["version"]
        except (ValueError, KeyError, TypeError):
            raise FormatError(f"{name}: unreadable {METADATA_KEY.decode()} metadata") from None
        if not isinstance(version, int) or version > VERSION:
            raise FormatError(f"{name}: archive layout version {version!r}; this gecodec reads up to {VERSION} "
                              "(upgrade gecodec)")


class ArchiveWriter:
    """Writes an archive row by row, row groups at a time, to a temporary file that takes the archive's name only
    when the block ends without an error: an interrupted write leaves no archive, and whatever held the name
    before is kept.

        with ArchiveWriter(path) as archive:
            archive.add(ArchiveRow("0.png", data))
    """

    def __init__(self, path: str | Path, force: bool = False) -> None:
        self.path, self.force = Path(path), force
        self.count = 0  # rows added
        self._rows: list[ArchiveRow] = []  # the row group being filled
        self._stack = ExitStack()
        self._writer: pq.ParquetWriter | None = None

    def __enter__(self) -> ArchiveWriter:
        handle = self._stack.enter_context(atomic_file(self.path, self.force))
        self._writer = self._stack.enter_context(pq.ParquetWriter(handle, SCHEMA, **WRITE_OPTIONS))
        self._stack.push(self._flush_unless_failed)  # the last rows, before the writer closes and the file moves
        return self

    def add(self, row: ArchiveRow) -> None:
        self._rows.append(row)
        self.count += 1
        if len(self._rows) >= ROW_GROUP_ROWS:
            self._flush()

    def write(self, table: pa.Table) -> None:
        """Add a table of rows at once (to_table's, or a Ray batch of the encoder's): cast to the archive's schema,
        so that it fails here, not in a reader, if it is not one."""
        self._flush()
        try:
            table = table.select(SCHEMA.names).cast(SCHEMA)
        except (pa.ArrowException, KeyError) as exc:
            raise FormatError(f"{self.path}: rows that do not fit an archive ({_first_line(exc)})") from None
        self._writer.write_table(table)
        self.count += table.num_rows

    def _flush(self) -> None:
        if self._rows:
            self._writer.write_table(to_table(self._rows))
            self._rows = []

    def _flush_unless_failed(self, kind: type[BaseException] | None, *_: Any) -> None:
        if kind is None:
            self._flush()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
                 ) -> bool | None:
        return self._stack.__exit__(kind, error, trace)


def write_archive(path: str | Path, rows: Iterable[ArchiveRow], force: bool = False) -> int:
    """Write rows to an archive at path (atomically, ArchiveWriter); the number of rows written."""
    with ArchiveWriter(path, force) as archive:
        for row in rows:
            archive.add(row)
    return archive.count


@contextmanager
def opened_archive(path: str | Path) -> Iterator[pq.ParquetFile]:
    """An archive's Parquet file, its schema checked (check_schema); FormatError for a file that is not one."""
    with open_regular(Path(path), FormatError) as handle:
        try:
            parquet = pq.ParquetFile(handle)
        except (pa.ArrowException, OSError) as exc:
            raise FormatError(f"{path}: not a Parquet file ({_first_line(exc)})") from None
        check_schema(parquet.schema_arrow, path)
        yield parquet


def read_archive(path: str | Path, columns: Iterable[str] | None = None) -> Iterator[ArchiveRow]:
    """An archive's rows, in the file's order, a few thousand read at a time; ``columns`` limits the report
    columns read (the id, gec and error columns are always read)."""
    with opened_archive(path) as parquet:
        keep = None if columns is None else {*columns, *REQUIRED, "error"}
        wanted = [name for name in parquet.schema_arrow.names if name in KINDS and (keep is None or name in keep)]
        for batch in _batches(parquet, path, wanted):
            yield from rows_of(batch.to_pydict())


def count_rows(path: str | Path) -> int:
    """An archive's number of rows, from its footer (nothing else is read)."""
    with opened_archive(path) as parquet:
        return parquet.metadata.num_rows


def archive_ids(path: str | Path) -> list[str]:
    """The ids of an archive's rows, in order (the id column alone is read)."""
    with opened_archive(path) as parquet:
        ids = [row_id for batch in _batches(parquet, path, ["id"]) for row_id in batch.column("id").to_pylist()]
    if None in ids:
        raise FormatError(f"{path}: row {ids.index(None)} has no id")
    return ids


def _batches(parquet: pq.ParquetFile, path: str | Path, columns: list[str]) -> Iterator[pa.RecordBatch]:
    """The file's record batches; a damaged page is a FormatError naming the file."""
    try:
        yield from parquet.iter_batches(batch_size=READ_ROWS, columns=columns)
    except (pa.ArrowException, OSError) as exc:
        raise FormatError(f"{path}: damaged ({_first_line(exc)})") from None


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0][:200] if str(exc).strip() else exc.__class__.__name__


@dataclass(frozen=True)
class ArchiveSummary:
    """What `gec info` says of an archive."""

    rows: int
    errors: int  # error rows
    gec_bytes: int  # the .gec files' bytes, all together
    file_bytes: int  # the archive's own size
    models: dict[str, int]  # model id (8 hex digits) -> rows; "damaged" for files whose header does not read

    @property
    def files(self) -> int:
        return self.rows - self.errors

    def to_dict(self) -> dict[str, Any]:
        mean = round(self.gec_bytes / self.files, 1) if self.files else None
        overhead = round(self.file_bytes / self.gec_bytes - 1, 4) if self.gec_bytes else None
        return {"rows": self.rows, "errors": self.errors, "gec_bytes_total": self.gec_bytes, "gec_bytes_mean": mean,
                "archive_bytes": self.file_bytes, "overhead": overhead, "models": self.models}


def summarise(path: str | Path) -> ArchiveSummary:
    """Count an archive's rows, error rows, .gec bytes and models (from each file's header: nothing is decoded)."""
    rows = errors = total = 0
    models: Counter[str] = Counter()
    for row in read_archive(path, columns=()):
        rows += 1
        if row.error is not None or row.gec is None:
            errors += 1
            continue
        total += len(row.gec)
        try:
            models[container.read_header(row.gec).model_hex] += 1
        except GecError:
            models["damaged"] += 1
    return ArchiveSummary(rows, errors, total, Path(path).stat().st_size, dict(models))
