"""`gec encode -o X.parquet`, `gec decode X.parquet` and `gec info X.parquet`: the gec command's side of archives
(gecodec.archive). Thin, as gecodec.cli is: plan, call the library, print."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

import click
from tqdm import tqdm

from gecodec.archive import ArchiveRow, ArchiveWriter, count_rows, error_row, read_archive, summarise
from gecodec.catalog import describe_model
from gecodec.cli import EncodeRun, Failures, printable, progress_bar, say_encoded
from gecodec.errors import GecError, OutputError
from gecodec.fileio import check_output, check_writable, save_image_atomic

if TYPE_CHECKING:  # modules that load torch are imported where they are needed (gec info needs none)
    from gecodec.report import EncodeReport


def plan_archive(files: list[Path], output: Path, failures: Failures, force: bool) -> list[tuple[Path, str]]:
    """Pair each input image with its row's id, its file name (gec encode reads no subfolders), checking the
    archive's name before any work. Two inputs of one name would give two rows one id: the second is an error."""
    check_output(output, force)
    check_writable(output.parent)
    pairs, taken = [], set()
    for path in files:
        if path.name in taken:
            failures.add(path, OutputError(f"another input is named {path.name}, its id in {output}"))
            continue
        taken.add(path.name)
        pairs.append((path, path.name))
    return pairs


def encode_to_archive(coding: EncodeRun, pairs: list[tuple[Path, str]], output: Path, as_json: bool, force: bool
                      ) -> None:
    """Code the inputs into one archive, a row each: the file and its report, or, for an input that fails, an
    error row. The archive takes its name only once every row is written."""
    recorded = len(coding.failures.errors)

    def save(source: Path, row_id: str, data: bytes, report: EncodeReport | None) -> None:
        archive.add(ArchiveRow(row_id, data, report))
        say_encoded(source, f"{output}:{row_id}", data, report, as_json, coding.quiet)

    with ArchiveWriter(output, force) as archive:
        coding.run(pairs, save)
        ids = dict(pairs)
        for source, error in coding.failures.errors[recorded:]:
            archive.add(error_row(ids[source], error, source))
    errors = len(coding.failures.errors) - recorded
    if not (coding.quiet or as_json):
        tqdm.write(printable(f"{output}: {archive.count} faces" + (f", {errors} error rows" if errors else "")))


def decode_archive(inputs: tuple[Path, ...], output: str | None, image_ext: str, size: int | None,
                   paste_into: Path | None, base_only: bool, overrides: dict[str, Any], batch_size: int,
                   device: str | None, threads: int | None, force: bool, quiet: bool) -> None:
    """Decode every row of one archive to an image in the output folder, named after its id."""
    from gecodec.batches import decode_rows
    from gecodec.codec import decoded_image
    from gecodec.threads import choose_threads

    if len(inputs) != 1 or paste_into is not None:
        raise click.UsageError("an archive is decoded alone, and without --paste-into")
    if output is None:
        raise click.UsageError("decoding an archive needs -o FOLDER")
    archive, folder = inputs[0], Path(output)
    total = count_rows(archive)  # a file that is no archive fails here, before any work
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{folder}: cannot create output folder ({exc.strerror})") from None
    check_writable(folder)
    failures, targets, taken = Failures(), {}, set()

    def planned(rows: Iterable[ArchiveRow]) -> Iterator[ArchiveRow]:
        """The rows whose image may be written, each with its target; the others are recorded."""
        for row in rows:
            try:
                targets[row.id] = row_target(folder, row.id, image_ext, taken, force)
                taken.add(targets[row.id])
            except GecError as exc:
                failures.add(f"{archive}:{row.id}", exc)
                bar.update()
                continue
            yield row

    choose_threads(threads)
    with progress_bar(total, "face", quiet, "decode") as bar:
        for row in decode_rows(planned(read_archive(archive, columns=())), None, device, batch_size, base_only,
                               **overrides):
            bar.update()
            try:
                if row.error is not None:
                    raise GecError(row.error)
                save_image_atomic(decoded_image(row.pixels, row.header, size), targets[row.id], force)
            except GecError as exc:
                failures.add(f"{archive}:{row.id}", exc)
    failures.finish(total)


def describe_archive(path: Path) -> dict[str, Any]:
    """An archive's summary (gecodec.archive.summarise), with its models' names (no torch)."""
    summary = summarise(path).to_dict()
    found = {model: describe_model(int(model, 16)) for model in summary["models"] if model != "damaged"}
    return {"archive": str(path), **summary,
            "model_names": {model: known.name for model, known in found.items() if known is not None}}


def say_archive(item: dict[str, Any]) -> None:
    """gec info's lines for an archive."""
    errors = f", {item['errors']} error row{'s' * (item['errors'] != 1)}" if item["errors"] else ""
    click.echo(printable(f"{item['archive']}: {item['rows']} faces{errors}, {item['archive_bytes']} bytes"))
    if item["gec_bytes_mean"] is not None:
        click.echo(f"  .gec      {item['gec_bytes_total']} bytes, {item['gec_bytes_mean']} a face; the archive "
                   f"{item['overhead']:+.1%} over them")
    for model, count in item["models"].items():
        if model == "damaged":
            click.echo(f"  damaged   {count} files whose header does not read")
        else:
            click.echo(printable(f"  model     {model} ({item['model_names'].get(model, 'not installed')}): "
                                 f"{count} faces"))


def row_target(folder: Path, row_id: str, image_ext: str, taken: set[Path], force: bool) -> Path:
    """Where a row's image goes: its id, a relative path, inside the folder, with the image format's extension.
    An id that would lead out of the folder (absolute, or with a .. part) is refused, whoever made the archive."""
    relative = PurePosixPath(row_id)
    if not relative.parts or relative.is_absolute() or ".." in relative.parts or "\\" in row_id or "\0" in row_id:
        raise OutputError(f"id {row_id!r} is not a relative path inside the output folder")
    stem = relative.name.rpartition(".")[0] or relative.name
    target = folder.joinpath(*relative.parts[:-1], f"{stem}.{image_ext}")
    if target in taken:
        raise OutputError(f"{target}: two rows would write the same output")
    if not os.path.isdir(target.parent):
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"{target}: cannot create its folder ({exc.strerror})") from None
    check_output(target, force)
    return target
