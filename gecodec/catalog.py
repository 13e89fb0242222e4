"""Where model bundles are, what they say about themselves, and their ids, all without torch: `gec info`
names a file's model from here, and gecodec.bundle builds on it to load one."""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

import numpy as np

from gecodec.errors import BundleError

FORMAT_NAME = "gecodec-bundle"
# Version 2 adds a joint model's solver and decode schedule, version 3 an entropy model, version 4 refinement
# tables, version 5 a learned refinement layer, version 6 a transform model, version 7 coarse learned levels,
# version 8 quality ladder rungs whose layer refines the start picture; a bundle is written with the lowest
# version that holds what it has.
FORMAT_VERSION, SOLVER_FORMAT_VERSION, ENTROPY_FORMAT_VERSION, REFINE_FORMAT_VERSION = "1", "2", "3", "4"
LEARNED_REFINE_FORMAT_VERSION, TRANSFORM_FORMAT_VERSION, COARSE_LEVELS_FORMAT_VERSION = "5", "6", "7"
START_LAYERS_FORMAT_VERSION = "8"
FORMAT_VERSIONS = (FORMAT_VERSION, SOLVER_FORMAT_VERSION, ENTROPY_FORMAT_VERSION, REFINE_FORMAT_VERSION,
                   LEARNED_REFINE_FORMAT_VERSION, TRANSFORM_FORMAT_VERSION, COARSE_LEVELS_FORMAT_VERSION,
                   START_LAYERS_FORMAT_VERSION)
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
# safetensors dtype codes as torch prints the dtype, which is how the id spells them
TORCH_DTYPES = {"F16": "torch.float16", "F32": "torch.float32", "F64": "torch.float64", "I64": "torch.int64",
                "I32": "torch.int32", "I16": "torch.int16", "I8": "torch.int8", "U8": "torch.uint8", "BOOL": "torch.bool"}


def digest(entries: Iterable[tuple[str, str, tuple[int, ...], bytes]], outside: tuple[str, ...] = OUTSIDE_MODEL_ID
           ) -> str:
    """The bundle id's SHA-256 (formats/bundle.md, Id) over (name, torch dtype name, shape, raw bytes), in name
    order, of every tensor whose name has none of the ``outside`` prefixes (OUTSIDE_TRANSFORM_ID: the transform
    id's)."""
    sha = hashlib.sha256()
    for name, dtype, shape, data in sorted(entries, key=lambda entry: entry[0]):
        if name.startswith(outside):
            continue
        sha.update(f"{name}|{dtype}|{tuple(shape)}|".encode())
        sha.update(data)
    return sha.hexdigest()


def stored_digest(path: Path, outside: tuple[str, ...] = OUTSIDE_MODEL_ID) -> str:
    """The digest of a bundle file's tensors, read one at a time with numpy (once per file version)."""
    path = Path(path).resolve()
    return _stored_digest(path, path.stat().st_mtime, outside)


@lru_cache(maxsize=64)
def _stored_digest(path: Path, mtime: float, outside: tuple[str, ...]) -> str:
    from safetensors import safe_open

    def entries() -> Iterable[tuple[str, str, tuple[int, ...], bytes]]:
        with safe_open(str(path), framework="numpy") as handle:
            for name in handle.keys():
                stored = handle.get_slice(name)  # the stored shape: numpy reads a 0-d tensor as shape (1,)
                data = np.ascontiguousarray(handle.get_tensor(name)).tobytes()
                yield name, TORCH_DTYPES[stored.get_dtype()], tuple(stored.get_shape()), data

    try:
        return digest(entries(), outside)
    except (OSError, ValueError, KeyError) as exc:
        raise BundleError(f"{path}: not a readable model bundle ({exc})") from None


def read_metadata(path: str | Path) -> dict[str, str]:
    """The bundle's metadata map, read without loading any tensor."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="numpy") as handle:
            metadata = handle.metadata() or {}
    except (SafetensorError, OSError, ValueError) as exc:
        raise BundleError(f"{path}: not a readable model bundle ({exc})") from None
    if metadata.get("format") != FORMAT_NAME:
        raise BundleError(f"{path}: not a gecodec model bundle")
    if metadata.get("format_version") not in FORMAT_VERSIONS:
        raise BundleError(f"{path}: unsupported bundle version {metadata.get('format_version')!r}")
    return metadata


def user_model_dir() -> Path:
    """Where users put their own bundles: $GECODEC_MODEL_DIR, else $XDG_DATA_HOME/gecodec/models."""
    if os.environ.get("GECODEC_MODEL_DIR"):
        return Path(os.environ["GECODEC_MODEL_DIR"])
    data_home = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return data_home / "gecodec" / "models"


def available_bundles() -> list[Path]:
    """Shipped bundles first, then those in the user model directory. Anything there that is not a regular
    file (a FIFO, a device, a broken link or a symlink loop) is skipped with a warning: opening it could hang."""
    found: list[Path] = []
    for folder in (SHIPPED_DIR, user_model_dir()):
        if folder.is_dir():
            for path in sorted(folder.glob(f"*{BUNDLE_SUFFIX}")):
                if path.is_file():
                    found.append(path)
                else:
                    warnings.warn(f"{path}: not a regular file (or a broken link), skipped", stacklevel=2)
    return found


def find_metadata(model_id: int) -> dict[str, str] | None:
    """The metadata of the installed bundle with this id (its model id, or the transform id of version-3 files),
    or None; bundles that cannot be read are skipped."""
    for path in available_bundles():
        try:
            if model_id in (int(stored_digest(path, outside)[:8], 16) for outside in (OUTSIDE_MODEL_ID,
                                                                                       OUTSIDE_TRANSFORM_ID)):
                return read_metadata(path)
        except (BundleError, OSError):
            continue
    return None


def describe_model(model_id: int) -> tuple[str, int, int] | None:
    """(name, image size, m) of the installed bundle with this id, from its metadata, or None."""
    metadata = find_metadata(model_id)
    if metadata is None:
        return None
    try:
        config = json.loads(metadata["config"])
        encoder = config["encoder"]
        return metadata["name"], int(config["generator"]["image_size"]), int(encoder.get("m", encoder.get("embedding_dim")))
    except (KeyError, TypeError, ValueError):
        return None
