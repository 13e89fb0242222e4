"""Where model bundles are, what they say about themselves, and their ids, all without torch: `gec info`
names a file's model from here, and gecodec.bundle builds on it to load one.

A bundle is a safetensors file: an 8-byte little-endian header length, a JSON header (each tensor's dtype,
shape and byte range, and a string map of metadata), then the tensors' bytes. BundleFile reads and checks
the header itself, against the file's size and the caps below, before any tensor is read or hashed, so that
neither a sparse file nor a header that lists gigabytes costs more than its caps.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from gecodec.errors import BundleError
from gecodec.ladder import Rung, ladder_from_config

FORMAT_NAME = "gecodec-bundle"
# Version 2 adds a joint model's solver and decode schedule, version 3 an entropy model, version 4 refinement
# tables, version 5 a learned refinement layer, version 6 a transform model, version 7 coarse learned levels,
# version 8 quality ladder rungs whose layer refines the start picture, version 9 rungs whose base alone decodes to
# its start picture (version-4 files); a bundle is written with the lowest version that holds what it has.
FORMAT_VERSION, SOLVER_FORMAT_VERSION, ENTROPY_FORMAT_VERSION, REFINE_FORMAT_VERSION = "1", "2", "3", "4"
LEARNED_REFINE_FORMAT_VERSION, TRANSFORM_FORMAT_VERSION, COARSE_LEVELS_FORMAT_VERSION = "5", "6", "7"
START_LAYERS_FORMAT_VERSION, START_BASES_FORMAT_VERSION = "8", "9"
FORMAT_VERSIONS = (FORMAT_VERSION, SOLVER_FORMAT_VERSION, ENTROPY_FORMAT_VERSION, REFINE_FORMAT_VERSION,
                   LEARNED_REFINE_FORMAT_VERSION, TRANSFORM_FORMAT_VERSION, COARSE_LEVELS_FORMAT_VERSION,
                   START_LAYERS_FORMAT_VERSION, START_BASES_FORMAT_VERSION)
# The id covers what decodes a version-1 or -2 base layer; a refinement model (versions 4 and 5) is named by its own
# check code in each refined file, and a transform model (version 6) by the transform id of version-3 files: the
# digest of the model's tensors and the transform's. So adding either to a bundle keeps every file made before
# decoding, and a file never decodes under a model it was not made with.
REFINE_PREFIX = "refine."
TRANSFORM_PREFIX = "transform."
OUTSIDE_MODEL_ID = (REFINE_PREFIX, TRANSFORM_PREFIX)
OUTSIDE_TRANSFORM_ID = (REFINE_PREFIX,)
BUNDLE_SUFFIX = ".safetensors"
SHIPPED_DIR = Path(__file__).parent / "weights"
# safetensors dtype codes -> (the dtype as torch prints it, which is how the id spells it; bytes per value)
DTYPES = {"F16": ("torch.float16", 2), "F32": ("torch.float32", 4), "F64": ("torch.float64", 8),
          "I64": ("torch.int64", 8), "I32": ("torch.int32", 4), "I16": ("torch.int16", 2), "I8": ("torch.int8", 1),
          "U8": ("torch.uint8", 1), "BOOL": ("torch.bool", 1)}
# Caps on what a bundle file may declare (formats/bundle.md, Checks on load), about ten times what the shipped
# default has (a 28 KB header, a 2.7 KB config, a 16 KB card, 85 tensors, 6.3 MB of tensors): loading one at the
# caps stays within a few hundred MB whatever its header says.
MAX_HEADER_BYTES = 1 << 20
MAX_CONFIG_BYTES = 64 << 10
MAX_CARD_BYTES = 256 << 10
MAX_TENSORS = 4096
MAX_DIMENSIONS = 8
MAX_TENSOR_BYTES = 64 << 20  # all tensors together
HASH_CHUNK = 1 << 20


@dataclass(frozen=True)
class Entry:
    """One stored tensor, as the header lists it: where its bytes lie in the file."""

    dtype: str  # the safetensors code, e.g. "F16"
    shape: tuple[int, ...]
    start: int  # offsets in the file
    end: int


class BundleFile:
    """A bundle file opened for reading, its header checked: metadata (format, version, config and card sizes),
    and every tensor's dtype, shape and byte range against the file's size and the caps. Nothing else is read
    until asked for. A context manager; raises BundleError."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        try:  # O_NONBLOCK: a FIFO put in a bundle's place cannot hang the open
            fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)
        except (OSError, ValueError) as exc:
            raise BundleError(f"{self.path}: cannot open the model bundle ({getattr(exc, 'strerror', None) or exc})"
                              ) from None
        self._file = open(fd, "rb", buffering=0)
        try:
            self.stat = os.fstat(fd)
            if not stat.S_ISREG(self.stat.st_mode):
                raise BundleError(f"{self.path}: not a regular file")
            self.metadata, self.entries = self._read_header()
        except BaseException:
            self._file.close()
            raise

    def __enter__(self) -> BundleFile:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self._file.close()

    def _fail(self, problem: str) -> BundleError:
        return BundleError(f"{self.path}: not a readable model bundle ({problem})")

    def _read_header(self) -> tuple[dict[str, str], dict[str, Entry]]:
        size = self.stat.st_size
        if size < 10:
            raise self._fail(f"{size} bytes, too short for a header")
        length = int.from_bytes(self._read(0, 8), "little")
        if not 2 <= length <= min(MAX_HEADER_BYTES, size - 8):
            raise self._fail(f"a header of {length} bytes in a file of {size}; the limit is {MAX_HEADER_BYTES}")
        data = size - 8 - length
        if data > MAX_TENSOR_BYTES:
            raise self._fail(f"{data} bytes of tensors, over the limit of {MAX_TENSOR_BYTES}")
        try:
            header = json.loads(self._read(8, length), object_pairs_hook=_unique_keys)
        except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
            raise self._fail(f"its header is not JSON: {str(exc).splitlines()[0][:100]}") from None
        if not isinstance(header, dict):
            raise self._fail("its header is not a JSON object")
        metadata = header.pop("__metadata__", {})
        if not (isinstance(metadata, dict) and all(isinstance(v, str) for v in metadata.values())):
            raise self._fail("its metadata is not a map of strings")
        if metadata.get("format") != FORMAT_NAME:
            raise BundleError(f"{self.path}: not a gecodec model bundle")
        if metadata.get("format_version") not in FORMAT_VERSIONS:
            raise BundleError(f"{self.path}: unsupported bundle version {metadata.get('format_version')!r:.20}")
        for key, cap in (("config", MAX_CONFIG_BYTES), ("card", MAX_CARD_BYTES)):
            if len(metadata.get(key, "").encode()) > cap:
                raise self._fail(f"its {key} is over the limit of {cap} bytes")
        if len(header) > MAX_TENSORS:
            raise self._fail(f"{len(header)} tensors, over the limit of {MAX_TENSORS}")
        entries = {name: self._entry(name, value, 8 + length) for name, value in header.items()}
        # The tensors must tile the data exactly, as safetensors writes them: no gaps, no overlaps, no tail.
        position = 8 + length
        for entry in sorted(entries.values(), key=lambda e: (e.start, e.end)):
            if entry.start != position:
                raise self._fail("its tensors' byte ranges overlap or leave gaps")
            position = entry.end
        if position != size:
            raise self._fail(f"its tensors take {position - 8 - length} bytes, and the file has {data}")
        return metadata, entries

    def _entry(self, name: str, value: Any, base: int) -> Entry:
        if not (isinstance(value, dict) and set(value) == {"dtype", "shape", "data_offsets"}
                and isinstance(value["dtype"], str) and value["dtype"] in DTYPES and isinstance(value["shape"], list)
                and len(value["shape"]) <= MAX_DIMENSIONS and all(_is_count(n) for n in value["shape"])
                and isinstance(value["data_offsets"], list) and len(value["data_offsets"]) == 2
                and all(_is_count(n) for n in value["data_offsets"])):
            raise self._fail(f"tensor {name!r:.60} is not {{dtype, shape, data_offsets}}")
        start, end = value["data_offsets"]
        count = DTYPES[value["dtype"]][1]
        for n in value["shape"]:
            count *= n
        if end - start != count:  # a reader sizes its buffers by these bytes, and the networks by the shape
            raise self._fail(f"tensor {name!r:.60} has {end - start} bytes for its shape {value['shape']}")
        return Entry(value["dtype"], tuple(value["shape"]), base + start, base + end)

    def _read(self, offset: int, count: int) -> bytes:
        return bytes(self.read_into(bytearray(count), offset))

    def read_into(self, buffer: bytearray, offset: int) -> bytearray:
        """Fill ``buffer`` with the file's bytes from ``offset``; BundleError if the file ends first (it shrank)."""
        view, filled = memoryview(buffer), 0
        try:
            self._file.seek(offset)
            while filled < len(buffer):
                got = self._file.readinto(view[filled:])
                if not got:
                    raise self._fail("the file ended early")
                filled += got
        except OSError as exc:
            raise self._fail(exc.strerror or str(exc)) from None
        return buffer

    def tensor_bytes(self, name: str) -> bytearray:
        """One tensor's raw bytes (little-endian, as stored), in a buffer of its own."""
        entry = self.entries[name]
        return self.read_into(bytearray(entry.end - entry.start), entry.start)

    def ids(self) -> tuple[str, str]:
        """(the model id's SHA-256, the transform id's), hex, over the stored bytes read in chunks of HASH_CHUNK."""
        model, transform = hashlib.sha256(), hashlib.sha256()
        for name in sorted(self.entries):
            entry = self.entries[name]
            sums = [sha for sha, outside in ((model, OUTSIDE_MODEL_ID), (transform, OUTSIDE_TRANSFORM_ID))
                    if not name.startswith(outside)]
            for sha in sums:
                sha.update(_entry_label(name, DTYPES[entry.dtype][0], entry.shape))
            for offset in range(entry.start, entry.end, HASH_CHUNK):
                chunk = self.read_into(bytearray(min(HASH_CHUNK, entry.end - offset)), offset)
                for sha in sums:
                    sha.update(chunk)
        return model.hexdigest(), transform.hexdigest()

    def config(self) -> dict[str, Any]:
        """The metadata's config, parsed: a JSON object (its fields are checked by gecodec.bundle)."""
        try:
            config = json.loads(self.metadata["config"], object_pairs_hook=_unique_keys)
        except KeyError:
            raise self._fail("it has no config") from None
        except (ValueError, RecursionError) as exc:
            raise self._fail(f"its config is not JSON: {str(exc).splitlines()[0][:100]}") from None
        if not isinstance(config, dict):
            raise self._fail("its config is not a JSON object")
        return config


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object whose keys are all different: a key given twice could mean one thing here and another to a
    different safetensors reader."""
    result = dict(pairs)
    if len(result) != len(pairs):
        raise ValueError("a key appears twice in an object")
    return result


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _entry_label(name: str, dtype: str, shape: tuple[int, ...]) -> bytes:
    return f"{name}|{dtype}|{tuple(shape)}|".encode()


def digest(entries: Iterable[tuple[str, str, tuple[int, ...], bytes]], outside: tuple[str, ...] = OUTSIDE_MODEL_ID
           ) -> str:
    """The bundle id's SHA-256 (formats/bundle.md, Id) over (name, torch dtype name, shape, raw bytes), in name
    order, of every tensor whose name has none of the ``outside`` prefixes (OUTSIDE_TRANSFORM_ID: the transform
    id's). BundleFile.ids computes the same from a file without holding its tensors."""
    sha = hashlib.sha256()
    for name, dtype, shape, data in sorted(entries, key=lambda entry: entry[0]):
        if name.startswith(outside):
            continue
        sha.update(_entry_label(name, dtype, shape))
        sha.update(data)
    return sha.hexdigest()


HASHED_KEPT = 64
_hashed: dict[tuple, tuple[str, str]] = {}  # file version -> its ids, oldest first


def stored_ids(path: str | os.PathLike) -> tuple[str, str]:
    """(model id SHA-256, transform id SHA-256) of a bundle file, hashed once per file version (same inode,
    size and modification time); BundleError if it is not a readable bundle."""
    path = Path(path)
    try:
        known = _hashed.get(_version(path, path.stat()))
    except (OSError, RuntimeError):  # RuntimeError: a symlink loop; BundleFile says what is wrong
        known = None
    if known is not None:
        return known
    with BundleFile(path) as bundle:
        ids = bundle.ids()
        if len(_hashed) >= HASHED_KEPT:
            del _hashed[next(iter(_hashed))]
        _hashed[_version(path, bundle.stat)] = ids
    return ids


def _version(path: Path, st: os.stat_result) -> tuple:
    return str(path.resolve()), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The bundle's metadata map, read without reading any tensor."""
    with BundleFile(path) as bundle:
        return bundle.metadata


def user_model_dir() -> Path:
    """Where users put their own bundles: $GECODEC_MODEL_DIR, else $XDG_DATA_HOME/gecodec/models."""
    if os.environ.get("GECODEC_MODEL_DIR"):
        return Path(os.environ["GECODEC_MODEL_DIR"])
    data_home = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return data_home / "gecodec" / "models"


def available_bundles(shipped_only: bool = False) -> list[Path]:
    """Shipped bundles first, then those in the user model directory. Anything there that is not a regular
    file (a FIFO, a device, a broken link or a symlink loop) is skipped with a warning: opening it could hang."""
    found: list[Path] = []
    for folder in (SHIPPED_DIR,) if shipped_only else (SHIPPED_DIR, user_model_dir()):
        if folder.is_dir():
            for path in sorted(folder.glob(f"*{BUNDLE_SUFFIX}")):
                if path.is_file():
                    found.append(path)
                else:
                    warnings.warn(f"{path}: not a regular file (or a broken link), skipped", stacklevel=2)
    return found


def is_shipped(path: Path) -> bool:
    return path.resolve().parent == SHIPPED_DIR.resolve()


def find_bundles(model_id: int, shipped_only: bool = False) -> Iterator[Path]:
    """The installed bundles whose verified digest gives this id (the model id, or the transform id of version-3
    files), never a file name: the shipped one alone when there is one (what the id names), else each one in the
    user model folder. Bundles that cannot be read are skipped with a one-line warning."""
    wanted = f"{model_id:08x}"
    for path in available_bundles(shipped_only):
        try:
            ids = stored_ids(path)
        except BundleError as exc:
            warnings.warn(f"{exc}; skipped", stacklevel=2)
            continue
        if wanted in (ids[0][:8], ids[1][:8]):
            yield path
            if is_shipped(path):
                return


@dataclass(frozen=True)
class ModelSummary:
    """What `gec info` shows of a file's model, read from its bundle's metadata (no torch)."""

    name: str
    image_size: int
    m: int
    model_hex: str  # the model id, which `gec models` lists; version-3 files carry the transform id
    transform_hex: str | None
    ladder: tuple[Rung, ...] | None  # what each --quality writes, when the bundle has a ladder


def describe_model(model_id: int) -> ModelSummary | None:
    """The installed bundle with this id (model or transform id), from its metadata, or None."""
    for path in find_bundles(model_id):
        try:
            with BundleFile(path) as bundle:
                name, config = bundle.metadata.get("name"), bundle.config()
            model_sha, transform_sha = stored_ids(path)
        except BundleError as exc:  # it changed since it was hashed
            warnings.warn(f"{exc}; skipped", stacklevel=2)
            continue
        generator, encoder = config.get("generator"), config.get("encoder")
        if isinstance(generator, dict) and isinstance(encoder, dict):
            side, m = generator.get("image_size"), encoder.get("m", encoder.get("embedding_dim"))
            if isinstance(name, str) and _is_count(side) and _is_count(m):
                try:
                    ladder = ladder_from_config(config["quality_ladder"]) if "quality_ladder" in config else None
                except ValueError:
                    ladder = None  # loading the bundle says what is wrong with it
                return ModelSummary(name, side, m, model_sha[:8], transform_sha[:8] if "transform" in config else None,
                                    ladder)
    return None
