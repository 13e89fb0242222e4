"""The `gec` command. Thin: parse arguments, call the library, print, set the exit code.

Exit codes: 0 success; 1 one or more inputs failed (each is reported on one line); 2 bad usage;
3 an internal error (a bug: set GEC_DEBUG=1 for the traceback).
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import stat
import sys
import warnings
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from tqdm import tqdm

from gecodec import __version__, container
from gecodec.errors import GecError, OutputError
from gecodec.catalog import ModelSummary, describe_model
from gecodec.ladder import rung_of
from gecodec.fileio import (check_output, check_writable, file_id, image_format, read_gec, save_image_atomic,
                            write_bytes_atomic)
from gecodec.options import (ALIGN_MODES, BLUR_SIGMA, DEFAULT_BITS, DEFAULT_MODEL, MAX_BITS, MAX_OUTPUT_SIDE, METHODS,
                             MIN_BITS, MIN_OUTPUT_SIDE, NOISE_SIGMA, SUPERRES_FACTOR, TASKS, SearchOptions)

# Modules that load torch are imported inside the commands that need them, so that `gec --help` starts quickly.
if TYPE_CHECKING:
    from PIL import Image

    from gecodec.codec import Codec, ParsedFile
    from gecodec.report import EncodeReport

EXIT_FAILED, EXIT_INTERNAL = 1, 3
DEFAULTS = SearchOptions()


def printable(text: str) -> str:
    """Text safe for a terminal: control characters (escape sequences, newlines), invisible format characters
    and undecodable bytes of file names are shown escaped, as Python writes them (\\x1b, \\u202e, \\udcff)."""
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in text)


class Failures:
    """Collects per-file errors so a batch goes on and reports them all at the end."""

    def __init__(self) -> None:
        self.items: list[str] = []
        self.errors: list[tuple[Path | str, Exception]] = []  # as given: an archive's error rows are made of them

    def add(self, path: Path | str, error: Exception) -> None:
        self.errors.append((path, error))
        message = str(error)
        line = printable(message if message.startswith(str(path)) else f"{path}: {message}")
        self.items.append(line)
        tqdm.write(f"gec: error: {line}", file=sys.stderr)

    def finish(self, total: int) -> None:
        if self.items:
            if total > 1:
                click.echo(f"gec: {len(self.items)} of {total} files failed", err=True)
            click.get_current_context().exit(EXIT_FAILED)


def expand(inputs: Iterable[Path], accept: Callable[[Path], bool], failures: Failures) -> list[Path]:
    """Files as given, and the matching files inside any folder given (not recursive)."""
    files: list[Path] = []
    for path in inputs:
        try:
            folder = stat.S_ISDIR(os.stat(path).st_mode)
        except FileNotFoundError:
            failures.add(path, GecError("no such file"))
            continue
        except OSError as exc:  # a name or path too long, a loop of links
            failures.add(path, GecError(f"cannot read ({exc.strerror})"))
            continue
        if folder:
            try:
                inside = sorted(p for p in path.iterdir() if os.path.isfile(p) and accept(p))
            except OSError as exc:
                failures.add(path, GecError(f"cannot read the folder ({exc.strerror})"))
                continue
            if not inside:
                failures.add(path, GecError("folder holds no matching files"))
            files += inside
        else:
            files.append(path)
    return files


def plan_outputs(inputs: tuple[Path, ...], files: list[Path], output_name: str | None, suffix: str,
                 failures: Failures, force: bool, also_read: Iterable[Path] = ()) -> list[tuple[Path, Path]]:
    """Pair each input with its output path: next to the input, the named file, or inside the named folder
    (one that exists, or a name ending in "/", or any name when there are several inputs). No output may be
    one of the files the command reads (``files`` and ``also_read``), whatever path names it, even with force."""
    output = Path(output_name) if output_name is not None else None
    # os.path.isdir: a name too long to stat is no folder (pathlib's is_dir raises before Python 3.12)
    to_folder = output is not None and (
        len(files) > 1 or any(os.path.isdir(p) for p in inputs) or os.path.isdir(output)
        or output_name.endswith(("/", os.sep))
    )
    from gecodec.imageio import is_image_path  # torch: the commands that write outputs load it anyway

    if to_folder and not os.path.isdir(output) and not output_name.endswith(("/", os.sep)) and (
            is_image_path(output) or output.suffix.lower() == ".gec"):
        raise GecClickError(f"{output}: names a file, but several outputs need a folder (end it with / for a folder "
                            "of that name)")
    read = {file_id(p) for p in (*files, *also_read)} - {None}
    if to_folder and files:  # no folder for a run with nothing to write
        try:
            output.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise GecClickError(f"{output}: cannot create output folder ({exc.strerror})") from None
    pairs, taken, writable = [], set(), {}
    for path in files:
        if output is None:
            target = path.with_suffix(suffix)
        else:
            target = output / (path.stem + suffix) if to_folder else output
        try:
            if target in taken:
                raise OutputError(f"{target}: two inputs would write the same output")
            if file_id(target) in read:
                raise OutputError(f"{target}: is an input of this command; it is never overwritten")
            check_output(target, force)
            if not to_folder and output is not None and suffix != ".gec":
                image_format(target)
            if target.parent not in writable:  # probe each folder once, before the work that would fill it
                try:
                    check_writable(target.parent)
                    writable[target.parent] = None
                except GecError as exc:
                    writable[target.parent] = exc
            if writable[target.parent] is not None:
                raise writable[target.parent]
        except GecError as exc:
            failures.add(path, exc)
            continue
        taken.add(target)
        pairs.append((path, target))
    return pairs


def is_archive_path(path: Path) -> bool:
    """Whether a path names a Parquet archive of faces (gecodec.archive) rather than a .gec file or an image."""
    return path.suffix.lower() == ".parquet"


def progress_bar(total: int, unit: str, quiet: bool, desc: str) -> tqdm:
    return tqdm(total=total, unit=unit, desc=desc, disable=quiet or None, file=sys.stderr, dynamic_ncols=True)


class GecClickError(click.ClickException):
    """A library error shown as one line: `gec: error: <message>`, exit code 1."""

    def show(self, file: Any = None) -> None:
        click.echo(f"gec: error: {printable(self.format_message())}", err=True)


class OneLineUsageError(click.UsageError):
    """A command's bad argument: `gec: error: <message> (gec CMD --help)`, exit code 2."""

    def show(self, file: Any = None) -> None:
        hint = f" ({self.ctx.command_path} --help)" if self.ctx is not None else ""
        click.echo(f"gec: error: {printable(self.format_message())}{hint}", err=True)


class GecGroup(click.Group):
    # Subcommands defined in modules that load torch: (module, attribute, the short help `gec --help` shows).
    LAZY = {"train": ("gecodec.cli_train", "train", "Train models: gan, encoder, joint, eval.")}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.LAZY})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.LAZY and name not in self.commands:
            module, attribute, _ = self.LAZY[name]
            self.add_command(getattr(importlib.import_module(module), attribute), name)
        return super().get_command(ctx, name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = []
        for name in self.list_commands(ctx):
            if name in self.LAZY and name not in self.commands:
                rows.append((name, self.LAZY[name][2]))
            elif not self.commands[name].hidden:
                rows.append((name, self.commands[name].get_short_help_str(formatter.width - 6 - len(name))))
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except GecError as exc:
            raise GecClickError(str(exc)) from None
        except click.UsageError as exc:  # a bad argument of a command: one line, not the usage screen
            raise OneLineUsageError(exc.format_message(), exc.ctx) from None


@click.group(cls=GecGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="gec")
def main() -> None:
    """gecodec: compress images to a few dozen bytes with a generative encoder."""


output_option = click.option("-o", "--output", type=click.Path(),  # a str: a Path would drop a trailing "/"
                             help="Output file, or folder for several inputs. Default: next to each input.")
force_option = click.option("-f", "--force", is_flag=True, help="Overwrite existing outputs.")
quiet_option = click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
device_option = click.option("--device", default=None, help="cpu, cuda or cuda:N. Default: CUDA when available.")
threads_option = click.option("--threads", type=click.IntRange(1), default=None,
                              help="CPU threads for torch. Default: the cores other processes leave idle, or "
                                   "OMP_NUM_THREADS when it is set.")
format_option = click.option("--format", "image_ext", type=click.Choice(["png", "jpg", "webp"]), default="png",
                             show_default=True, help="Image format when writing next to the inputs or into a folder.")


def search_options_group(command: Callable) -> Callable:
    """The latent search's options, as gec decode and gec restore take them."""
    for option in reversed([
        click.option("--iters", type=click.IntRange(0), default=None,
                     help=f"Adam iterations [default: the model's schedule; {DEFAULTS.iters} for GE1 models]."),
        click.option("--restarts", type=click.IntRange(1), default=None,
                     help=f"Restarts [default: the model's schedule; {DEFAULTS.restarts} for GE1 models]."),
        click.option("--lam", type=click.FloatRange(0), default=None,
                     help=f"Prior weight lambda [default: the model's; {DEFAULTS.lam} for GE1 models]."),
        click.option("--lr", type=click.FloatRange(0, min_open=True), default=None,
                     help=f"Adam learning rate [default: the model's; {DEFAULTS.lr} for GE1 models]."),
        click.option("--batch-size", type=click.IntRange(1), default=64, show_default=True, help="Images searched at once."),
    ]):
        command = option(command)
    return command


@main.command()
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@output_option
@click.option("--model", default=None, help="Bundle name, id (8 hex digits) or path (with a / or ending in "
              f".safetensors). Default: {DEFAULT_MODEL}.")
@click.option("--quality", type=click.IntRange(0, container.MAX_QUALITY), default=None,
              help="0 (smallest) to 100 (best): an entropy-coded file, and on a model with a quality ladder (see "
                   "gec models) from about 22 to 1,500 bytes, with a refinement layer past about 75 bytes. "
                   "Default: the model's default quality.")
@click.option("--target-bytes", type=click.IntRange(1), default=None,
              help="The best file that fits in this many bytes: the largest quality whose file fits (a search of "
                   "milliseconds).")
@click.option("--refine", type=click.IntRange(0, container.MAX_LAYER_LEVEL), default=None,
              help="Add a DCT refinement layer of this level, 0 (smallest) to 15 (best), on top of the default base "
                   "file: larger files (about 140 to 1,550 bytes), past what the generator can draw. --quality "
                   "picks between this layer and the model's learned one, which is better up to about 570 bytes.")
@click.option("--bits", type=click.IntRange(MIN_BITS, MAX_BITS), default=None,
              help=f"Fixed-length values of this many bits (version-1 files; the default, {DEFAULT_BITS}, for cs "
                   "mode and for models without an entropy model).")
@click.option("--mode", type=click.Choice(["ge", "cs"]), default="ge", show_default=True,
              help="ge: m = EN(x). cs: Gaussian measurements m = A x (the CSGM baseline).")
@click.option("--seed", type=click.IntRange(0, 2**64 - 1), default=0, show_default=True,
              help="Decoder seed stored in the file (restart points, and A in cs mode).")
@click.option("--count", type=click.IntRange(1, 4096), default=None,
              help="cs mode: number of measurements. Default: the model's m.")
@click.option("--align", type=click.Choice(ALIGN_MODES), default="auto", show_default=True,
              help="auto: find the largest face and frame it as the model's training faces are framed (the centre "
                   "crop, with a warning, when there is none); none: the centre crop; require: no face is an error.")
@click.option("--position/--no-position", default=True, show_default=True,
              help="Store where the face lies in the photo (about 20 bytes), for gec decode --paste-into.")
@click.option("--check/--no-check", default=True, show_default=True,
              help="Decode each file and report its PSNR against the input, with a warning when it is far below "
                   "the model's validation figure.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON record for each file as it is written, one a line.")
@click.option("--batch-size", type=click.IntRange(1), default=64, show_default=True,
              help="Images coded, and their files checked, at once.")
@device_option
@threads_option
@force_option
@click.option("-q", "--quiet", is_flag=True, help="No progress bar and no line per file; warnings and errors stay.")
def encode(inputs: tuple[Path, ...], output: str | None, model: str | None, quality: int | None,
           target_bytes: int | None, refine: int | None, bits: int | None, mode: str, seed: int, count: int | None, align: str,
           position: bool, check: bool, as_json: bool, batch_size: int, device: str | None, threads: int | None,
           force: bool, quiet: bool) -> None:
    """Encode images (files or folders of images) to .gec files, or with -o NAME.parquet into one archive of them,
    and report what each decodes to."""
    from gecodec import api
    from gecodec.bundle import load_model
    from gecodec.imageio import is_image_path
    from gecodec.threads import choose_threads

    failures = Failures()
    files = expand(inputs, is_image_path, failures)
    total = len(files) + len(failures.items)
    to_archive = output is not None and is_archive_path(Path(output))
    if to_archive:
        from gecodec.cli_archive import encode_to_archive, plan_archive

        pairs = plan_archive(files, Path(output), failures, force)
    else:
        pairs = plan_outputs(inputs, files, output, ".gec", failures, force)
    if pairs:
        choose_threads(threads)
        codec = api.get_codec(load_model(model), device)
        rate = codec.rate_settings(bits, quality, target_bytes, mode, refine)  # a bad combination fails before any work
        options = {"mode": mode, "seed": seed, "count": count, "refine": refine, **rate}
        coding = EncodeRun(codec, align, position, check, options, batch_size, quiet, failures)
        if to_archive:
            encode_to_archive(coding, pairs, Path(output), as_json, force)
        else:
            def save(source: Path, target: Path, data: bytes, report: EncodeReport | None) -> None:
                try:
                    write_bytes_atomic(target, data, force)
                except GecError as exc:
                    failures.add(source, exc)
                    return
                say_encoded(source, target, data, report, as_json, quiet)

            coding.run(pairs, save)
    failures.finish(total)


@dataclass
class EncodeRun:
    """How gec encode codes its inputs, a batch at a time: each framed, the batch coded and checked together, and
    each file handed on as soon as its batch is done; an input that fails is recorded and the rest go on."""

    codec: Codec
    align: str
    position: bool
    check: bool
    options: dict[str, Any]
    batch_size: int
    quiet: bool
    failures: Failures

    def run(self, pairs: list[tuple[Path, Any]], save: Callable[[Path, Any, bytes, EncodeReport | None], None]
            ) -> None:
        """Code each (input, target) pair and call save(input, target, data, report) for each file made."""
        from gecodec.batches import encode_each, frame_each

        with tqdm(total=len(pairs), unit="img", desc="encode", disable=self.quiet or len(pairs) < 2 or None) as bar:
            for start in range(0, len(pairs), self.batch_size):
                chunk = pairs[start : start + self.batch_size]
                images = frame_each(self.codec, [source for source, _ in chunk], self.align, self.position)
                framed = [(pair, image) for pair, image in zip(chunk, images)
                          if recorded(pair[0], image, self.failures) is not None]
                bar.update(len(chunk) - len(framed))
                results = encode_each(self.codec, [image for _, image in framed], self.check, len(framed),
                                      **self.options)
                for ((source, target), _), result in zip(framed, results):
                    bar.update()
                    if recorded(source, result, self.failures) is not None:
                        save(source, target, *result)


def recorded(source: Path | str, result: Any, failures: Failures) -> Any:
    """A batch item's result (gecodec.batches), or None with its error recorded when it is one."""
    if isinstance(result, GecError):
        failures.add(source, result)
        return None
    return result


def say_encoded(source: Path, target: Path, data: bytes, report: EncodeReport | None, as_json: bool, quiet: bool
                ) -> None:
    """A written file's line (or JSON record), and a warning when it decodes far below the model's figure."""
    if as_json:
        tqdm.write(json.dumps({"input": str(source), "output": str(target), "bytes": len(data),
                               **(report.to_dict() if report else {})}))
    elif report is not None and not quiet:
        tqdm.write(printable(f"{target}: {report.describe()}"))
    if report is not None and report.unusual:
        warnings.warn(f"{source}: this image is unlike the faces the model knows: {'; '.join(report.unusual_signs())}",
                      stacklevel=2)


@main.command()
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@output_option
@format_option
@click.option("--size", type=click.IntRange(MIN_OUTPUT_SIDE, MAX_OUTPUT_SIDE), default=None,
              help="Side of the decoded face crop in pixels. Default: the model's size.")
@click.option("--paste-into", type=click.Path(path_type=Path), default=None,
              help="The photo the file was made from: write a copy of it with the decoded face put back.")
@click.option("--base-only", is_flag=True, help="Leave out refinement layers: the base layer's image.")
@search_options_group
@device_option
@threads_option
@force_option
@quiet_option
def decode(inputs: tuple[Path, ...], output: str | None, image_ext: str, size: int | None, paste_into: Path | None,
           base_only: bool, iters: int | None, restarts: int | None, lam: float | None, lr: float | None, batch_size: int,
           device: str | None, threads: int | None, force: bool, quiet: bool) -> None:
    """Decode .gec files (or folders of them, or a .parquet archive into -o's folder) to face crops, or paste one
    back into its photo."""
    from gecodec import api
    from gecodec.batches import decode_each
    from gecodec.bundle import find_by_id
    from gecodec.codec import decoded_image
    from gecodec.imageio import open_image
    from gecodec.threads import choose_threads

    overrides = {"iters": iters, "restarts": restarts, "lam": lam, "lr": lr}
    if any(is_archive_path(path) for path in inputs):
        from gecodec.cli_archive import decode_archive

        decode_archive(inputs, output, image_ext, size, paste_into, base_only, overrides, batch_size, device, threads,
                       force, quiet)
        return
    if paste_into is not None and (len(inputs) != 1 or os.path.isdir(inputs[0]) or size is not None):
        raise click.UsageError("--paste-into takes one .gec file, and no --size")
    photo = open_image(paste_into) if paste_into is not None else None
    failures = Failures()
    files = [path for path in expand(inputs, lambda p: p.suffix.lower() == ".gec", failures)
             if looks_like_gec(path, failures)]
    total_files = len(files) + len(failures.items)
    pairs = plan_outputs(inputs, files, output, "." + image_ext, failures, force, [paste_into] if paste_into else [])
    jobs: dict[Codec, list[tuple[Path, Path, ParsedFile]]] = defaultdict(list)
    for source, target in pairs:
        try:
            data = read_gec(source)
            header = container.read_header(data)
            codec = api.get_codec(find_by_id(header.model_id), device)
            jobs[codec].append((source, target, codec.parse(data)))
        except GecError as exc:
            failures.add(source, exc)
    total = sum(codec.search_steps(parsed, base_only, **overrides) for codec, group in jobs.items() for *_, parsed in group)
    if jobs:
        choose_threads(threads)
    with progress_bar(total, "img-iter", quiet, "decode") as bar:
        for codec, group in jobs.items():
            for start in range(0, len(group), batch_size):  # save each batch as soon as it is done
                chunk = group[start : start + batch_size]
                images = decode_each(codec, [parsed for *_, parsed in chunk], batch_size, bar.update, base_only,
                                     **overrides)
                for (source, target, parsed), x in zip(chunk, images):
                    if recorded(source, x, failures) is None:
                        continue
                    try:
                        save_image_atomic(decoded_image(x, parsed.header, size, photo), target, force)
                    except GecError as exc:
                        failures.add(source, exc)
    failures.finish(total_files)


def looks_like_gec(path: Path, failures: Failures) -> bool:
    """A file named on the command line without the .gec extension must start like one (so that `gec decode
    face.png` says what is wrong, rather than that face.png, its output, exists)."""
    if path.suffix.lower() == ".gec" or not path.is_file():  # a FIFO must not be opened here: it could hang
        return True
    try:
        with open(path, "rb") as handle:
            if handle.read(2) == container.MAGIC_V2:  # both versions start with "GE"
                return True
    except OSError:
        return True  # reading it later reports the problem
    failures.add(path, GecError("not a .gec file"))
    return False


def describe(path: Path) -> dict[str, Any]:
    """Header and byte layout of one file, plus the model it needs, from the bundles' metadata (no torch)."""
    data = read_gec(path)
    header, payload = container.read(data)
    parts = container.layout(data)
    model = describe_model(header.model_id)
    side = model.image_size if model else None
    count = header.count or (model.m if model else None) or (
        None if header.bits is None else (len(payload) * 8) // header.bits)
    info: dict[str, Any] = {
        "file": str(path), "bytes": parts.total, "version": header.version, "model_id": header.model_hex,
        "model": model.name if model else None, "bundle_id": model.model_hex if model else None,
        "mode": header.mode, "values": count, "bits": header.bits, "quality": header.quality,
        "ladder_quality": ladder_quality(header, model),
        "bits_per_value": round((header.layer.base_bytes if header.layer else parts.payload) * 8 / count, 3)
        if count else None,
        "seed": header.seed,
        "original_size": list(header.photo_size) if header.photo_size else None,
        "crop": face_square(header),
        "layers": ([{"layer": "base", "bytes": header.layer.base_bytes},
                    {"layer": "refinement", "kind": header.layer.kind, "level": header.layer.level,
                     "refines": "start picture" if header.layer.on_start else "search decode",
                     "bytes": len(payload) - header.layer.base_bytes}]
                   if header.layer else None),
        "value_range": list(header.value_range) if header.value_range else None, "hints": header.hints,
        "layout": {"fixed": parts.fixed, "fixed_parts": parts.fixed_parts, "header": parts.header, "payload": parts.payload,
                   "payload_encoding": parts.payload_encoding},
        "bpp": round(parts.total * 8 / (side * side), 4) if side else None,  # of the face crop the file holds
    }
    return info


def ladder_quality(header: container.Header, model: ModelSummary | None) -> int | None:
    """The --quality that writes files like this one on its model's quality ladder (the file stores only its
    base's quality), or None: no ladder, a file of another coder than the ladder's, or a rung off the ladder."""
    if model is None or model.ladder is None or header.quality is None:
        return None
    if (model.transform_hex is not None) != header.transform:
        return None  # the ladder names base qualities of the coder that new files use
    rung = rung_of(header)
    return model.ladder.index(rung) if rung in model.ladder else None


def face_square(header: container.Header) -> list[float] | None:
    """Where the face lies in the photo, [centre x, centre y, side, degrees], when the file says so."""
    if header.position is not None:
        return [round(v, 1) for v in container.position_square(header.position)]
    return [*header.crop[:3], header.crop[3] / 10] if header.crop else None


def describe_crop(crop: list[float]) -> str:
    cx, cy, side, degrees = crop
    return f"centre ({cx:g}, {cy:g}), side {side:g} px" + (f", turned {degrees:g} degrees" if degrees else "")


@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def info(files: tuple[Path, ...], as_json: bool) -> None:
    """Show the header and byte layout of .gec files, or summarise .parquet archives (no decoding)."""
    failures, results = Failures(), []
    for path in files:
        try:
            if is_archive_path(path):
                from gecodec.cli_archive import describe_archive

                results.append(describe_archive(path))
            else:
                results.append(describe(path))
        except GecError as exc:
            failures.add(path, exc)
    if as_json:
        click.echo(json.dumps(results if len(files) > 1 else (results[0] if results else None), indent=2))
    else:
        for item in results:
            if "archive" in item:
                from gecodec.cli_archive import say_archive

                say_archive(item)
                continue
            layout = item["layout"]
            model = f"{item['model_id']} ({item['model'] or 'not installed'}" + (
                f": model id {item['bundle_id']} with its transform model)"
                if item["bundle_id"] not in (None, item["model_id"]) else ")")
            source = "x".join(map(str, item["original_size"])) if item["original_size"] else "model size"
            click.echo(printable(f"{item['file']}: {item['bytes']} bytes")
                       + (f", {item['bpp']} bpp" if item["bpp"] else ""))
            click.echo(printable(f"  model     {model}"))  # a bundle's name comes from the model folder
            if item["quality"] is None:
                click.echo(f"  mode      {item['mode']}, {item['values']} values x {item['bits']} bits")
            else:
                values = f"{item['values']} values, {item['bits_per_value']} bits each" if item["values"] else "values"
                coding = "transform-coded" if item["version"] in container.TRANSFORM_VERSIONS else "entropy-coded"
                click.echo(f"  mode      {item['mode']}, {values} ({coding})")
                base = f"base quality {item['quality']}" + ("" if item["layers"] else " alone") + (
                    ", decoded to its start picture" if item["version"] == container.VERSION_V4 else "")
                click.echo(f"  quality   {base}" if item["ladder_quality"] is None
                           else f"  quality   {item['ladder_quality']} ({base})")
            if item["layers"]:
                base, layer = item["layers"]
                click.echo(f"  layers    base {base['bytes']} bytes + {layer['kind']} refinement level {layer['level']}, "
                           f"{layer['bytes']} bytes, on the {layer['refines']}")
            click.echo(f"  source    {source}" + (f", face at {describe_crop(item['crop'])}" if item["crop"] else ""))
            click.echo(f"  seed      {item['seed']}")
            if item["value_range"]:
                click.echo(f"  range     {item['value_range'][0]:.6g} .. {item['value_range'][1]:.6g}")
            if item["hints"]:
                click.echo(f"  hints     {item['hints']}")
            click.echo(f"  layout    {layout['fixed']} fixed ({layout['fixed_parts']}) + {layout['header']} header"
                       f" + {layout['payload']} payload ({layout['payload_encoding']})")
    failures.finish(len(files))


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def models(as_json: bool) -> None:
    """List the model bundles shipped with gecodec and those in the user model folder."""
    from gecodec.bundle import available_bundles, check_shipped_claim, data_terms, load_bundle

    rows = []
    for path in available_bundles():
        try:
            bundle = load_bundle(path)
            check_shipped_claim(bundle)  # a copy of a shipped bundle that would decode differently is no model
        except GecError as exc:
            rows.append({"path": str(path), "error": str(exc)})
            continue
        g = bundle.generator.config
        rows.append({
            "name": bundle.name, "id": bundle.model_hex, "image_size": g.image_size, "latent_dim": g.latent_dim,
            "transform_id": f"{bundle.transform_id:08x}" if bundle.transform is not None else None,
            "m": bundle.m, "default": bundle.name == DEFAULT_MODEL, "default_quality": bundle.default_quality,
            "refinement_levels": {kind: [levels.start, levels.stop - 1] for kind, levels in bundle.layer_levels.items()},
            "path": str(path), "card": bundle.card, "data_terms": data_terms(bundle),
        })
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("no model bundles found")
    for row in rows:
        if "error" in row:
            click.echo(printable(row["error"]))  # the error names the path
            continue
        mark = " (default)" if row["default"] else ""
        transform = f" (version-3 and -4 files: {row['transform_id']})" if row["transform_id"] else ""
        click.echo(printable(f"{row['name']}{mark}  id {row['id']}{transform}  {row['image_size']}x{row['image_size']}  "
                             f"latent {row['latent_dim']}  m {row['m']}"))
        summary = row["card"].get("summary")
        if summary:
            click.echo(printable(f"    {summary}"))
        ladder = row["card"].get("quality_ladder", {}).get("rungs")
        if ladder:
            low, high = ladder[0], ladder[-1]
            click.echo(f"    quality 0 to 100: {low['bytes']:.0f} to {high['bytes']:.0f} bytes, {low['psnr']:.1f} to "
                       f"{high['psnr']:.1f} dB on {row['card']['quality_ladder']['faces']} training faces; "
                       f"default {row['default_quality']}")
        if row["refinement_levels"]:
            click.echo("    refinement layers: " + ", ".join(f"{kind} (levels {low} to {high})"
                                                             for kind, (low, high) in row["refinement_levels"].items()))
        if row["data_terms"]:
            click.echo(printable(f"    data terms: {row['data_terms']}"))
        click.echo(f"    {printable(row['path'])}")


def parse_box(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[int, int, int, int] | None:
    if value is None:
        return None
    try:
        box = tuple(int(v) for v in value.split(","))
    except ValueError:
        box = ()
    if len(box) != 4:
        raise click.BadParameter(f"{value!r} is not four integers x,y,w,h")
    return box  # type: ignore[return-value]


@main.command()
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--task", type=click.Choice(TASKS), required=True, help="What happened to the images.")
@output_option
@click.option("--method", type=click.Choice(METHODS), default="ge", show_default=True,
              help="ge: match EN(S(G(z))) to EN(image) (the GE paper). csgm: match S(G(z)) to the image in pixels "
                   "(Bora et al.).")
@click.option("--model", default=None, help="Bundle name, id (8 hex digits) or path (with a / or ending in "
              f".safetensors). Default: {DEFAULT_MODEL}.")
@click.option("--blur-sigma", type=float, default=BLUR_SIGMA, show_default=True,
              help="deblur: the blur's standard deviation in pixels.")
@click.option("--factor", type=click.IntRange(1), default=SUPERRES_FACTOR, show_default=True,
              help="superres: how many times larger the result is.")
@click.option("--mask", type=click.Path(path_type=Path), default=None,
              help="inpaint: an image of the input's size, black where pixels are missing.")
@click.option("--box", callback=parse_box, default=None, help="inpaint: the missing box x,y,w,h in pixels "
              "[default: a centred block 30/64 of the shorter side].")
@click.option("--degrade", is_flag=True, help="First degrade each input as the task says (a demonstration).")
@click.option("--sigma", type=float, default=NOISE_SIGMA, show_default=True,
              help="With --degrade, denoise: the noise's standard deviation (pixels in [-1, 1]).")
@click.option("--seed", type=click.IntRange(0, 2**64 - 1), default=0, show_default=True,
              help="Seed of the search's restarts (and of --degrade's noise).")
@format_option
@search_options_group
@device_option
@threads_option
@force_option
@quiet_option
def restore(inputs: tuple[Path, ...], task: str, output: str | None, method: str, model: str | None,
            blur_sigma: float, factor: int, mask: Path | None, box: tuple[int, int, int, int] | None, degrade: bool,
            sigma: float, seed: int, image_ext: str, iters: int | None, restarts: int | None, lam: float | None,
            lr: float | None, batch_size: int, device: str | None, threads: int | None, force: bool, quiet: bool
            ) -> None:
    """Restore images: denoise, deblur, super-resolve (superres) or fill a missing region (inpaint).

    Each result goes next to its input as NAME.restored.EXT, into -o's file, or into -o's folder.
    """
    from gecodec import api
    from gecodec.bundle import load_model
    from gecodec.codec import search_options
    from gecodec.imageio import is_image_path, open_image
    from gecodec.restoration import degrade as degrade_image
    from gecodec.restoration import task_params
    from gecodec.threads import choose_threads

    params = {"blur_sigma": blur_sigma, "factor": factor, "mask": mask, "box": box}
    options = search_options(iters=iters, restarts=restarts, lam=lam, lr=lr)
    task_params(params | {"sigma": sigma})  # a bad parameter or mask is one error before any work
    if mask is not None:
        open_image(mask)
    failures = Failures()
    files = expand(inputs, is_image_path, failures)
    total = len(files) + len(failures.items)
    pairs = plan_outputs(inputs, files, output, f".restored.{image_ext}", failures, force, [mask] if mask else [])
    groups: dict[tuple[int, int], list[tuple[Path, Path, Image.Image]]] = defaultdict(list)
    for source, target in pairs:
        try:
            picture = open_image(source)
            if degrade:
                picture = degrade_image(picture, task, **params, sigma=sigma, seed=seed)
            groups[picture.size].append((source, target, picture))
        except GecError as exc:
            failures.add(source, exc)
    if groups:
        choose_threads(threads)
        codec = api.get_codec(load_model(model), device)
        with progress_bar(options.iters * sum(map(len, groups.values())), "img-iter", quiet, task) as bar:
            for group in groups.values():
                for start in range(0, len(group), batch_size):
                    chunk = group[start : start + batch_size]
                    restore_chunk(codec, chunk, task, method, seed, options, bar.update, params, failures, force, quiet)
    failures.finish(total)


def restore_chunk(codec: Codec, chunk: list[tuple[Path, Path, Image.Image]], task: str, method: str, seed: int,
                  options: SearchOptions, progress: Callable[[int], Any], params: dict[str, Any], failures: Failures,
                  force: bool, quiet: bool) -> None:
    """Restore images of one size together, save each result as soon as the batch is done and say where."""
    from gecodec.restoration import restore_images

    try:
        results = restore_images(codec, [p for *_, p in chunk], task, method, seed, options, progress, **params)
    except GecError as exc:
        for source, *_ in chunk:
            failures.add(source, exc)
        return
    for (source, target, _), result in zip(chunk, results):
        try:
            save_image_atomic(result, target, force)
        except GecError as exc:
            failures.add(source, exc)
            continue
        if not quiet:
            tqdm.write(printable(f"{target}: {task} of {source}"))


@main.command(context_settings={"ignore_unknown_options": True, "help_option_names": []})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def bench(ctx: click.Context, args: tuple[str, ...]) -> None:
    """Rate-distortion benchmark against CSGM, Lasso-DCT, JPEG, WebP, AVIF (`gec bench -h` for its options).

    The harness lives in a gecodec checkout (bench/), not in the installed package.
    """
    for root in (Path(__file__).resolve().parents[1], Path.cwd()):
        if (root / "bench" / "__main__.py").is_file():
            sys.path.insert(0, str(root))
            break
    else:
        raise GecClickError("gec bench needs a gecodec checkout (its bench/ folder): run it from the repository")
    try:
        from bench.__main__ import main as run_bench
    except ModuleNotFoundError as exc:  # matplotlib, scikit-image: the bench extra
        raise GecClickError(f"gec bench needs the bench extra (missing: {exc.name}): "
                            "pip install -e '.[bench]'") from None

    ctx.exit(run_bench(list(args)))


def _terminated(number: int, frame: Any) -> None:
    """SIGTERM and SIGHUP unwind the stack as Ctrl-C does, so that a temporary output is removed; the exit
    status is the one the signal itself would give."""
    raise SystemExit(128 + number)


def run(argv: list[str] | None = None) -> None:
    """Console entry point: click's handling plus one-line reports of warnings and unexpected errors."""
    warnings.showwarning = lambda message, *_, **__: click.echo(f"gec: warning: {printable(str(message))}", err=True)
    for number in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(number) is signal.SIG_DFL:  # one that is ignored (nohup) stays ignored
            signal.signal(number, _terminated)
    try:
        main.main(args=argv, prog_name="gec")
    except Exception as exc:  # a bug: one line by default, the traceback on request
        if os.environ.get("GEC_DEBUG"):
            raise
        click.echo(f"gec: internal error: {exc.__class__.__name__}: {printable(str(exc))} (set GEC_DEBUG=1 for details)",
                   err=True)
        sys.exit(EXIT_INTERNAL)


if __name__ == "__main__":
    run()
