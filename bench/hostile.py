"""Hostile inputs through the real CLI, with the shipped default model: time and peak memory of each case.

    OMP_NUM_THREADS=1 python -m bench.hostile

Each case is a file, path, image, model folder or output name an attacker could hand to `gec`: checksum-valid
files whose header asks for extreme work, forged and bombed payloads, bundles that take over a model's id or
exhaust memory, huge or hanging images, and hostile output names. Each runs as its own process (`gec`, or a
python -c that opens a file with Pillow) with a timeout, so a hang is recorded, never waited for. Files decode
with their own hints, as a user's `gec decode` would, never with a cheaper setting of the bench's own.

A case passes when it ends in under 5 s and 1.5 GiB of peak resident memory, never with an internal error
(exit 3), a kill or a raw terminal escape on stderr, and either with exit 1 or 2 and one error line (a batch: one
a failed file and the count), or with exit 0 and a correct or bounded result: what a case says it must leave
(the control's output, a face of the right size, an input untouched) is checked after the run. Some cases
must be refused (a bundle that decodes to black, an output that is an input) or must succeed (the controls).
The process start (importing torch) is included in the seconds. The script prints a Markdown table and writes
bench/results/hostile.json.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import stat
import struct
import subprocess
import sys
import tempfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from unittest import mock

import msgpack
import numpy as np
import torch
import zstandard
from PIL import Image
from safetensors.torch import load_file, save_file

from gecodec import api, catalog, container
from gecodec.bundle import SOLVER_FORMAT_VERSION, Bundle, _build, load_model
from gecodec.catalog import read_metadata
from gecodec.codec import Codec
from gecodec.fileio import write_bytes_atomic

RESULTS = Path(__file__).parent / "results"
ROOT = Path(__file__).parents[1]
FACES = ROOT / "tests" / "data" / "faces.png"  # eight 64x64 faces side by side
START_LAYER_FILE = ROOT / "formats" / "golden" / "default-v3-start-learned.gec"  # a layer on the start picture
MAX_SECONDS, MAX_MB = 5.0, 1536  # the promise: under 5 s and 1.5 GiB (MB here are MiB, as ru_maxrss gives them)
TIMEOUT = 30  # seconds; a case still running then is killed and fails
ERROR, OK, EITHER = "refused", "succeeds", "either"  # what a case must end with
BIG = 8192  # side of the huge photos

# Image.open of a .gec file in a process of its own: a documented error (Pillow's OSError or ValueError, or
# gecodec's GecError) is exit 1 with one line; anything else (MemoryError) is exit 3, as gec's internal error.
PILLOW_OPEN = """import sys
from PIL import Image
import gecodec.pil
from gecodec.errors import GecError
try:
    Image.open(sys.argv[1]).load()
except (OSError, ValueError, GecError) as exc:
    sys.exit(f"Image.open: {type(exc).__name__}: {exc}")
except BaseException as exc:
    print(f"Image.open: internal error: {type(exc).__name__}: {exc}", file=sys.stderr)
    sys.exit(3)
"""

Check = Callable[[], "str | None"]  # None when all is well, else what is wrong


@dataclass
class Case:
    name: str
    args: list[str]  # gec's arguments, or with pillow=True the file that Image.open reads
    expect: str = EITHER
    check: Check | None = None  # what exit 0 must have left
    intact: Check | None = None  # what the run must leave untouched, whatever its exit
    model_dir: Path | None = None  # None: the bench's empty user model folder
    cwd: Path | None = None  # None: the work folder
    inputs: int = 1  # files the command reads: in a batch each failure has its line, and a count follows
    pillow: bool = False
    group: str = ""  # its class of hostile input (GROUPS)

    def argv(self) -> list[str]:
        if self.pillow:
            return [sys.executable, "-c", PILLOW_OPEN, *self.args]
        return [sys.executable, "-m", "gecodec.cli", *self.args]


@dataclass
class Setup:
    """The work folder and what every group of cases shares: the default model and an honest face with its files."""

    work: Path
    default: Bundle = field(default_factory=load_model)
    outputs: int = 0

    def __post_init__(self) -> None:
        self.models = self.folder("models")  # the user model folder of cases that name no other: empty
        self.face_png = self.path("face.png")
        Image.open(FACES).crop((0, 0, 64, 64)).save(self.face_png)
        self.face_gec = self.write("face.gec", api.encode(self.face_png))  # version 3, as gec encode writes it
        self.control_png, self.control_gec = self.path("control.png"), self.path("control.gec")

    def path(self, name: str) -> Path:
        return self.work / name

    def folder(self, name: str) -> Path:
        path = self.work / name
        path.mkdir()
        return path

    def write(self, name: str, data: bytes) -> Path:
        path = self.work / name
        path.write_bytes(data)
        return path

    def out(self, suffix: str) -> Path:
        """A fresh output name, so that each case's result can be checked after all have run."""
        self.outputs += 1
        return self.work / f"out-{self.outputs}{suffix}"

    def decode(self, name: str, source: Path, *options: str, expect: str = EITHER, same_as: Path | None = None,
               size: int = 64, out: Path | None = None, **kwargs: object) -> Case:
        """`gec decode SOURCE`: exit 0 must write ``same_as``'s bytes, or else a face of ``size`` pixels a side."""
        out = out or self.out(".png")
        check = (lambda: same_bytes(out, same_as)) if same_as else (lambda: decoded(out, (size, size)))
        return Case(name, ["decode", str(source), "-o", str(out), "-f", *options], expect, check, **kwargs)

    def encode(self, name: str, image: Path, *options: str, expect: str = EITHER, same_as: Path | None = None,
               out: Path | None = None, **kwargs: object) -> Case:
        """`gec encode IMAGE`: exit 0 must write ``same_as``'s bytes, or else a .gec file."""
        out = out or self.out(".gec")
        check = (lambda: same_bytes(out, same_as)) if same_as else (lambda: None if out.is_file() else "no output")
        return Case(name, ["encode", str(image), "-o", str(out), "-f", *options], expect, check, **kwargs)

    def restore(self, name: str, image: Path, *options: str, expect: str = EITHER) -> Case:
        """`gec restore IMAGE` (a denoise, unless ``options`` name another task)."""
        out = self.out(".png")
        check = lambda: None if out.is_file() else "no output"  # noqa: E731
        return Case(name, ["restore", str(image), *(options or ("--task", "denoise")), "-o", str(out), "-f"], expect,
                    check)


# ---- files, frames and bundles as an attacker writes them ----

def gec_file(model_id: int, extras: dict, payload: bytes, codec: int = 0, bits: int = 8, seed: int = 0) -> bytes:
    """A well-formed, checksum-valid version-1 .gec file, whatever its header asks for."""
    body = b"GEC\x01" + msgpack.packb([model_id, bits, seed, codec, extras]) + payload
    return body + struct.pack("<I", zlib.crc32(body))


def entropy_file(version: int, model_id: int, extras: dict, payload: bytes, quality: int = 50) -> bytes:
    """A checksum-valid version-2 or -3 file with any extras map (formats/gec.md, Version 2)."""
    body = b"GE" + bytes([version]) + struct.pack(">I", model_id) + bytes([quality | container.HAS_EXTRAS])
    body += msgpack.packb(extras) + payload
    return body + struct.pack("<H", container.crc16(body))


def rewritten(data: bytes, **fields: object) -> bytes:
    """A valid file with header fields changed, its checksum (and a layer's base check) made again to match."""
    header, payload = container.read(data)
    header = replace(header, **fields)
    if header.layer is not None and header.layer.base_check is not None:
        base = payload[: header.layer.base_bytes]
        header = replace(header, layer=header.layer._replace(base_check=container.base_check(header, base)))
    return container.write(header, payload)


def zstd_bomb(content_size: int, window_log: int, blocks: int) -> bytes:
    """A zstd frame that declares ``content_size`` bytes and holds ``blocks`` RLE blocks of zeros, each as large as
    the window (2^window_log, at most 128 KiB): 4 bytes a block (RFC 8878)."""
    head = struct.pack("<IBBQ", 0xFD2FB528, 0b11 << 6, (window_log - 10) << 3, content_size)

    def rle(last: int) -> bytes:
        return struct.pack("<I", 1 << window_log << 3 | 1 << 1 | last)[:3] + b"\0"

    return head + rle(0) * (blocks - 1) + rle(1)


def hostile_bundle(folder: Path, name: str, config_change: Callable[[dict], None] | None = None,
                   tensor_change: Callable[[dict], None] | None = None,
                   metadata_change: Callable[[dict], None] | None = None) -> Path:
    """A copy of the default bundle with its config, tensors or metadata rewritten, saved as NAME.safetensors."""
    source = load_model().path
    metadata, tensors = dict(read_metadata(source)), load_file(str(source))
    config = json.loads(metadata["config"])
    if config_change:
        config_change(config)
    metadata["config"] = json.dumps(config)
    if tensor_change:
        tensor_change(tensors)
    if metadata_change:
        metadata_change(metadata)
    path = folder / f"{name}.safetensors"
    save_file(tensors, str(path), metadata=metadata)
    return path


def sparse_bundle(path: Path, metadata: dict[str, str], tensors: dict[str, tuple[str, tuple[int, ...], bytes | None]]
                  ) -> Path:
    """A bundle file written as safetensors lays it out; a tensor given no bytes is a hole of zeros (a sparse file
    takes no disk for it, and reads as zeros)."""
    header: dict[str, object] = {"__metadata__": metadata}
    offset = 0
    for name, (dtype, shape, _) in sorted(tensors.items()):
        size = catalog.DTYPES[dtype][1] * int(np.prod(shape, dtype=np.int64))
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + size]}
        offset += size
    blob = json.dumps(header).encode()
    blob += b" " * (-len(blob) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(blob)) + blob)
        for name, (_, _, data) in tensors.items():
            if data is not None:
                f.seek(8 + len(blob) + header[name]["data_offsets"][0])
                f.write(data)
        f.truncate(8 + len(blob) + offset)
    return path


def bundle_id(path: Path) -> int:
    """The model id a bundle file has, hashed as gecodec hashes it, past the caps that keep gec from reading it."""
    with mock.patch.object(catalog, "MAX_TENSOR_BYTES", 1 << 62), catalog.BundleFile(path) as bundle:
        return int(bundle.ids()[0][:8], 16)


def stored_tensors(path: Path) -> dict[str, tuple[str, tuple[int, ...], bytes]]:
    with catalog.BundleFile(path) as bundle:
        return {name: (e.dtype, e.shape, bytes(bundle.tensor_bytes(name))) for name, e in bundle.entries.items()}


def config_at_caps(config: dict) -> dict:
    """The default config with every network at the caps of gecodec.bundle.CONFIG_CAPS (and no coders or layers)."""
    kept = {key: config[key] for key in ("generator", "encoder", "solver", "decode", "crop")}
    kept["generator"].update(channels=1024, image_size=256, latent_dim=1024)
    kept["encoder"].update(depth=8, filters=256, m=4096, image_size=256)
    kept["solver"].update(hidden=4096, m=4096, latent_dim=1024)
    return kept


def network_shapes(config: dict) -> dict[str, tuple[str, tuple[int, ...], None]]:
    """Every tensor a config's networks need, as F32 holes, built on the meta device (no memory)."""
    with torch.device("meta"):
        modules = _build(config)
    shapes = {f"{prefix}.{key}": ("F32", tuple(value.shape), None) for prefix, module in modules.items()
              if module is not None for key, value in module.state_dict().items()}
    m = config["encoder"]["m"]
    return {**shapes, "calibration.lo": ("F32", (m,), None), "calibration.hi": ("F32", (m,), None)}


def huge_solver(tensors: dict) -> None:
    """Finite but huge solver weights: 3e38 is a finite float32 (and an infinite float16, so stored as float32)."""
    for name in [n for n in tensors if n.startswith("solver.")]:
        tensors[name] = torch.full(tensors[name].shape, 3e38, dtype=torch.float32)


def poison(tensors: dict) -> None:
    name = next(k for k in tensors if k.startswith("generator."))
    tensors[name] = torch.full_like(tensors[name], float("nan"))


# ---- what a case must leave ----

def decoded(path: Path, size: tuple[int, int]) -> str | None:
    """An image of ``size`` that is not near-black (checked on the pixels of images up to a megapixel)."""
    try:
        with Image.open(path) as image:
            if image.size != size:
                return f"the output is {image.size[0]}x{image.size[1]}, not {size[0]}x{size[1]}"
            if size[0] * size[1] <= 1 << 20 and np.asarray(image.convert("L")).mean() < 8:
                return "the output is a near-black image"
    except OSError as exc:
        return f"no readable output ({exc})"
    return None


def same_bytes(path: Path, reference: Path) -> str | None:
    if not path.is_file() or not reference.is_file():
        return f"no output to compare ({path.name}, {reference.name})"
    return None if path.read_bytes() == reference.read_bytes() else f"the output differs from {reference.name}'s"


def files_in(folder: Path, count: int) -> Check:
    return lambda: None if len(list(folder.glob("*"))) == count else f"{folder.name} does not hold {count} files"


def unchanged(path: Path) -> Check:
    before = path.read_bytes()
    return lambda: None if path.read_bytes() == before else f"{path.name} was overwritten"


def still_fifo(path: Path) -> Check:
    return lambda: None if stat.S_ISFIFO(os.lstat(path).st_mode) else f"{path.name} is no longer a FIFO"


# ---- the cases, by class ----

def search_work_cases(s: Setup) -> list[Case]:
    """Files that ask for long searches within the fields' limits, decoded with their own hints."""
    mid = s.default.model_id
    face = s.face_gec.read_bytes()
    cases = [s.decode("control: the face's default file, decoded", s.face_gec, expect=OK, out=s.control_png)]
    for label, hints in {"iters 5000, restarts 16": {"iters": 5000, "restarts": 16}, "iters 5000": {"iters": 5000},
                         "iters 500, restarts 16": {"iters": 500, "restarts": 16}}.items():
        path = s.write(f"hints-{len(cases)}.gec", rewritten(face, hints=hints))
        cases.append(s.decode(f"the face's file with hints {label}", path))
    legacy = s.write("legacy-v1.gec", gec_file(load_model("celeba64-v1").model_id, {}, bytes(range(128))))
    cases += [s.decode("version-1 file of celeba64-v1 (its default: 500 x 2)", legacy),
              s.decode("the same, with --iters 50 --restarts 1", legacy, "--iters", "50", "--restarts", "1",
                       expect=OK)]
    for label, extras in {"iters 2^63-1": {5: {"iters": 2**63 - 1}}, "restarts 100000": {5: {"restarts": 100000}},
                          "lr 1e308": {5: {"lr": 1e308}}}.items():
        path = s.write(f"hint-{len(cases)}.gec", gec_file(mid, extras, bytes(128)))
        cases.append(s.decode(f"hint {label}, past the field's limit", path, expect=ERROR))
    return cases + cs_batch_cases(s)


def cs_batch_cases(s: Setup) -> list[Case]:
    """cs files with distinct seeds, alone and in batches: each regenerates its own matrix and is searched alone."""
    codec, rng = Codec(s.default, "cpu"), np.random.default_rng(0)
    face = torch.zeros(1, 3, s.default.image_size, s.default.image_size)
    largest = [gec_file(s.default.model_id, {1: 1, 3: 12288, 4: [-1.0, 1.0]}, rng.bytes(3072), bits=2, seed=seed)
               for seed in range(5)]  # 12288 values of 2 bits: a 12288 x 12288 matrix (604 MB) each
    batches = {
        "40 cs files, count 1000, distinct seeds, one batch":
            [codec.encode_batch(face, mode="cs", seed=seed, count=1000)[0] for seed in range(40)],
        "a cs file of 3 KB, count 12288": largest[:1],
        "5 cs files of 3 KB, count 12288, distinct seeds, one batch": largest,
    }
    cases = []
    for name, files in batches.items():
        folder, out = s.folder(f"cs-{len(cases)}"), s.out("")
        for seed, data in enumerate(files):
            (folder / f"{seed}.gec").write_bytes(data)
        cases.append(Case(name, ["decode", str(folder), "-o", str(out)], check=files_in(out, len(files)),
                          inputs=len(files)))
    return cases


def header_cases(s: Setup) -> list[Case]:
    """Header fields out of range, or of the wrong type: a map where an array belongs, in every version."""
    mid, tid = s.default.model_id, s.default.transform_id
    files = {
        "original size 1 x 2^31-1": gec_file(mid, {2: [1, 2**31 - 1]}, bytes(128)),
        "original size 20000 x 20000": gec_file(mid, {2: [20000, 20000]}, bytes(128)),
        "cs count 65535 (zstd)": gec_file(mid, {1: 1, 3: 65535, 4: [0.0, 1.0]},
                                          zstandard.ZstdCompressor().compress(bytes(65535)), codec=1),
        "cs range -inf..inf": gec_file(mid, {1: 1, 3: 128, 4: [float("-inf"), float("inf")]}, bytes(128)),
    }
    payload = container.read(s.face_gec.read_bytes())[1]
    maps = {"version 1": gec_file(mid, {2: {64: 64}}, bytes(128)),
            "version 2": entropy_file(2, mid, {2: {64: 64}}, payload),
            "version 3": entropy_file(3, tid, {2: {64: 64}}, payload)}
    cases = [s.decode(name, s.write(f"header-{i}.gec", data), expect=ERROR) for i, (name, data) in enumerate(files.items())]
    for name, data in maps.items():
        path = s.write(f"map-{name[-1]}.gec", data)
        cases += [s.decode(f"a map where an array belongs, {name}", path, expect=ERROR),
                  Case(f"a map where an array belongs, {name}: gec info", ["info", str(path)], ERROR)]
    return cases


def decompression_cases(s: Setup) -> list[Case]:
    """zstd bombs in a version-1 payload, through gec decode, gec info and Pillow."""
    bombs = {
        "zstd bomb, 61 KB to 1.9 GiB (128 KiB window)": zstd_bomb(15565 << 17, 17, 15565),
        "zstd bomb, 64 KB to 1.0 GiB (64 KiB window)": zstd_bomb(16384 << 16, 16, 16384),
        "zstd frame claiming 1 TiB": zstd_bomb(1 << 40, 16, 2),
    }
    cases = []
    for i, (name, frame) in enumerate(bombs.items()):
        path = s.write(f"bomb-{i}.gec", gec_file(s.default.model_id, {}, frame, codec=container.PAYLOAD_ZSTD))
        cases += [s.decode(f"{name}: gec decode", path, expect=ERROR),
                  Case(f"{name}: gec info", ["info", str(path)], ERROR),
                  Case(f"{name}: Image.open", [str(path)], ERROR, pillow=True)]
    return cases + [Case("control: Image.open of the face's file", [str(s.face_gec)], OK, pillow=True)]


def model_lookup_cases(s: Setup) -> list[Case]:
    """Files named like a model's id or name, where gec looks for models."""
    tid = f"{s.default.transform_id:08x}"  # what the face's version-3 file names
    takeovers = {"lam 100, lr 10": {"lam": 100.0, "lr": 10.0}, "iters 5000, restarts 16": {"iters": 5000, "restarts": 16}}
    cases = []
    for label, decode in takeovers.items():
        folder = s.folder(f"takeover-{len(cases)}")
        hostile_bundle(folder, tid, config_change=lambda c, decode=decode: c["decode"].update(decode))
        cases.append(s.decode(f"{tid}.safetensors in the model folder, the default with decode {label}: the face's "
                              "file", s.face_gec, same_as=s.control_png, model_dir=folder))
    junk = s.folder("junk-named-id")
    (junk / f"{tid}.safetensors").write_bytes(b"junk")
    trap = s.folder("cwd-trap")
    shutil.copy(load_model("celeba64-v2").path, trap / s.default.name)
    unknown = s.write("unknown-id.gec", gec_file(0xDEADBEEF, {}, bytes(128)))
    junk_glob = s.folder("junk-glob")
    (junk_glob / "junk.safetensors").write_bytes(b"junk")
    return [
        *cases,
        s.decode(f"junk {tid}.safetensors in the model folder: the face's file", s.face_gec, expect=OK,
                 same_as=s.control_png, model_dir=junk),
        s.encode("control: gec encode of the face", s.face_png, expect=OK, out=s.control_gec),
        s.encode(f"a file named {s.default.name} in the current folder: gec encode", s.face_png, expect=OK,
                 same_as=s.control_gec, cwd=trap),
        Case("junk *.safetensors in the model folder: gec info on an unknown id", ["info", str(unknown)],
             model_dir=junk_glob),
    ]


def bundle_cases(s: Setup) -> list[Case]:
    """Bundles built to exhaust memory, hold bad values or decode to black, in a model folder of their own."""
    rewritten_bundles = {
        "bundle asking for huge widths": dict(config_change=lambda c: c["generator"].update(channels=100_000)),
        "bundle claiming image size 32768": dict(config_change=lambda c: c["generator"].update(image_size=32768)),
        "bundle with a float image_size": dict(config_change=lambda c: c["generator"].update(image_size=64.0)),
        "bundle with NaN weights": dict(tensor_change=poison),
        "bundle whose card is a JSON list": dict(metadata_change=lambda m: m.update(card="[1, 2, 3]")),
        "bundle with a 99 MB config (padded with spaces)":
            dict(metadata_change=lambda m: m.update(config=m["config"] + " " * 99_000_000)),
    }
    cases = []
    for name, change in rewritten_bundles.items():
        folder = s.folder(re.sub(r"\W+", "-", name))
        bad = hostile_bundle(folder, "hostile", **change)
        cases += [s.encode(f"{name}: encode with it", s.face_png, "--model", str(bad), model_dir=folder),
                  Case(f"{name}: gec models", ["models"], OK, model_dir=folder)]
    return cases + huge_solver_cases(s) + sparse_cases(s) + junk_folder_cases(s)


def huge_solver_cases(s: Setup) -> list[Case]:
    """A file whose layer refines the start picture, under a bundle whose solver is finite but huge."""
    folder = s.folder("huge-solver")
    bundle = hostile_bundle(folder, "huge-solver", tensor_change=huge_solver)
    transform_id = int(catalog.stored_ids(bundle)[1][:8], 16)
    golden = START_LAYER_FILE.read_bytes()
    forged = s.write("start-layer-huge.gec", rewritten(golden, model_id=transform_id))
    return [s.decode("control: a file whose layer refines the start picture", s.write("start-layer.gec", golden),
                     expect=OK),
            s.decode("the same under a bundle of solver weights 3e38", forged, expect=ERROR, model_dir=folder)]


def sparse_cases(s: Setup) -> list[Case]:
    """Sparse bundles: gigabytes of declared tensors in a few KB of disk."""
    default_metadata = dict(read_metadata(s.default.path))
    caps = s.folder("sparse-caps")
    config = config_at_caps(json.loads(default_metadata["config"]))
    metadata = {**default_metadata, "config": json.dumps(config), "format_version": SOLVER_FORMAT_VERSION}
    at_caps = sparse_bundle(caps / "caps.safetensors", metadata, network_shapes(config))
    naming_caps = s.write("names-caps.gec", gec_file(bundle_id(at_caps), {}, bytes(4096)))
    huge = s.folder("sparse-tensor")
    tensors = {**stored_tensors(s.default.path), "generator.extra": ("F32", (1 << 28,), None)}
    big = sparse_bundle(huge / "huge-tensor.safetensors", default_metadata, tensors)
    naming_big = s.write("names-huge-tensor.gec", gec_file(bundle_id(big), {}, bytes(128)))
    size = f"{at_caps.stat().st_size / 2**30:.1f} GiB declared, {at_caps.stat().st_blocks * 512 // 1024} KiB on disk"
    return [Case(f"sparse bundle at the config caps ({size}): gec models", ["models"], OK, model_dir=caps),
            s.decode("sparse bundle at the config caps: decode a file naming it", naming_caps, model_dir=caps),
            Case("sparse 1 GiB tensor in a copy of the default: gec info on a file naming it", ["info",
                 str(naming_big)], model_dir=huge)]


def junk_folder_cases(s: Setup) -> list[Case]:
    junk = s.folder("junk-folder")
    (junk / "unreadable.safetensors").write_bytes(b"junk")
    os.mkfifo(junk / "fifo.safetensors")
    (junk / "loop.safetensors").symlink_to(junk / "loop.safetensors")
    honest = s.write("honest.gec", gec_file(s.default.model_id, {}, bytes(range(128))))
    return [s.decode("model folder with junk, a FIFO, a symlink loop: decode", honest, expect=OK, model_dir=junk),
            Case("model folder with junk, a FIFO, a symlink loop: gec models", ["models"], OK, model_dir=junk)]


def image_cases(s: Setup) -> list[Case]:
    """Huge, deep, thin or hanging images, as the input of encode and restore, the photo of --paste-into, a mask."""
    photo = s.path("photo-8192.png")
    Image.new("RGB", (BIG, BIG), (90, 120, 150)).save(photo, compress_level=1)
    deep, floats, thin, fifo = (s.path(name) for name in ("deep-16bit.png", "float.tif", "thin.png", "pipe.png"))
    Image.new("I;16", (BIG, BIG), 1000).save(deep)
    Image.new("F", (BIG, BIG), 0.5).save(floats, compression="tiff_deflate")
    Image.new("RGB", (1, 100_000), (200, 150, 120)).save(thin)
    os.mkfifo(fifo)
    cases = []
    for name, extras in {"original size 8192 x 8192 (honest, at the limit), pasted into its photo": {2: [BIG, BIG]},
                         "crop of side 65536 in an 8192 x 8192 photo, pasted into it":
                             {2: [BIG, BIG], 8: [BIG // 2, BIG // 2, 65536, 0]}}.items():
        path = s.write(f"paste-{len(cases)}.gec", gec_file(s.default.model_id, extras, bytes(range(128))))
        cases.append(s.decode(name, path, "--paste-into", str(photo), expect=OK, size=BIG))
    uses: dict[str, Callable[[str, Path, str], Case]] = {
        "encode": lambda name, image, expect: s.encode(name, image, expect=expect),
        "--paste-into": lambda name, image, expect: s.decode(name, s.face_gec, "--paste-into", str(image),
                                                             expect=expect, size=BIG),
        "restore": lambda name, image, expect: s.restore(name, image, expect=expect),
        "--mask": lambda name, image, expect: s.restore(name, s.face_png, "--task", "inpaint", "--mask", str(image),
                                                        expect=expect)}
    images = {f"16-bit {BIG}x{BIG} PNG ({deep.stat().st_size // 1000} KB)": (deep, ("encode", "--paste-into", "restore")),
              f"float {BIG}x{BIG} TIFF ({floats.stat().st_size // 1000} KB)": (floats, ("encode", "--paste-into", "restore")),
              "a FIFO as image": (fifo, tuple(uses)),
              "a 1x100000 PNG": (thin, ("encode",))}
    for name, (image, used_by) in images.items():
        cases += [uses[use](f"{name}: {use}", image, ERROR if image == fifo else EITHER) for use in used_by]
    pipe = s.path("pipe.gec")
    os.mkfifo(pipe)
    return cases + [s.decode("/dev/zero as input", Path("/dev/zero"), expect=ERROR),
                    s.decode("a FIFO as input", pipe, expect=ERROR)]


def output_cases(s: Setup) -> list[Case]:
    """Output names: long, too long, an input, a FIFO, with terminal escapes."""
    jpg, out_fifo = s.path("in.jpg"), s.path("out-pipe.png")
    Image.open(s.face_png).save(jpg, quality=95)
    os.mkfifo(out_fifo)
    escaped = s.write("\x1b]0;owned\x07\x1b[2J\x1b[31mred.gec", b"junk")
    too_deep = s.work.joinpath(*["p" * 250] * 17, "x.gec")  # over PATH_MAX (4096)
    return [
        s.encode("an output name of 254 characters: encode", s.face_png, expect=OK, same_as=s.control_gec,
                 out=s.path("e" * 250 + ".gec")),
        s.decode("an output name of 254 characters: decode", s.face_gec, expect=OK, same_as=s.control_png,
                 out=s.path("d" * 250 + ".png")),
        s.decode("an output name of 300 characters", s.face_gec, expect=ERROR, out=s.path("n" * 296 + ".png")),
        s.encode(f"an output path of {len(str(too_deep))} characters (over PATH_MAX)", s.face_png, expect=ERROR,
                 out=too_deep),
        Case("gec encode in.jpg -o in.jpg -f", ["encode", str(jpg), "-o", str(jpg), "-f"], ERROR,
             intact=unchanged(jpg)),
        Case("-f onto a FIFO", ["decode", str(s.face_gec), "-o", str(out_fifo), "-f"], ERROR,
             intact=still_fifo(out_fifo)),
        s.decode("terminal escape sequences in a file name", escaped, expect=ERROR),
    ]


GROUPS = {"search work": search_work_cases, "header fields": header_cases, "decompression": decompression_cases,
          "model lookup": model_lookup_cases, "bundles": bundle_cases, "images": image_cases, "outputs": output_cases}


# ---- running and judging ----

def problems(case: Case, row: dict) -> list[str]:
    """Why a case's run misses the promise (none: it passes)."""
    status, lines = row["status"], [line for line in row["stderr"] if not line.startswith("gec: warning:")]
    found = []
    if status == 3:
        found.append("internal error")
    elif status not in (0, 1, 2):
        found.append(status if isinstance(status, str) else f"exit {status}")  # "killed (timeout)"
    elif status == 0 and case.expect == ERROR:
        found.append("should be refused")
    elif status != 0 and case.expect == OK:
        found.append("should succeed")
    elif status != 0 and not 1 <= len(lines) <= (1 if case.inputs == 1 else case.inputs + 1):
        found.append(f"{len(lines)} error lines")
    elif status == 0 and case.check is not None:
        found.append(case.check())
    if case.intact is not None:
        found.append(case.intact())
    if row["seconds"] >= MAX_SECONDS:
        found.append(f"over {MAX_SECONDS:g} s")
    if row["peak_mb"] >= MAX_MB:
        found.append("over 1.5 GiB")
    if row["raw_escape"]:
        found.append("a raw ESC byte on stderr")
    return [problem for problem in found if problem]


def shown(text: str, work: Path) -> str:
    """Text for the table: the work folder as WORK, control characters escaped (\\x1b), and a run of one character
    as the character and its count (p{250} for 250 p's)."""
    text = "".join(c if c.isprintable() else ascii(c)[1:-1] for c in text.replace(str(work), "WORK"))
    return re.sub(r"(.)\1{9,}", lambda run: f"{run[1]}{{{len(run[0])}}}", text)


def run_cases(cases: list[Case], s: Setup) -> list[dict]:
    """Run every case from a small process of its own (bench.child_runs): a child's peak memory counts what its
    parent held when it forked, and this one holds torch and the model."""
    plan = [{"case": case.name, "argv": case.argv(), "model_dir": str(case.model_dir or s.models),
             "cwd": str(case.cwd or s.work), "timeout": TIMEOUT} for case in cases]
    (s.work / "cases.json").write_text(json.dumps(plan))
    subprocess.run([sys.executable, "-m", "bench.child_runs", str(s.work / "cases.json"), str(s.work / "rows.json")],
                   check=True, cwd=ROOT)
    rows = []
    for case, row in zip(cases, json.loads((s.work / "rows.json").read_text())):
        found = problems(case, row)
        command = ("python -c PILLOW_OPEN " if case.pillow else "gec ") + shlex.join(
            shown(arg, s.work) for arg in case.args)
        errors = [line for line in row["stderr"] if not line.startswith("gec: warning:")]
        first = (errors if row["status"] != 0 and errors else row["stderr"] or [""])[0]
        rows.append({"case": case.name, "class": case.group, "command": command, "expect": case.expect, "status": row["status"],
                     "seconds": row["seconds"], "peak_mb": row["peak_mb"], "message": shown(first, s.work),
                     "pass": not found, "problems": found})
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| case | must be | exit | seconds | peak memory | pass | what gec said (its error line, else the first) |",
             "|---|---|---|---|---|---|---|"]
    for i, row in enumerate(rows):
        if i == 0 or row["class"] != rows[i - 1]["class"]:
            lines.append(f"| *{row['class']}* |||||||")
        verdict = "yes" if row["pass"] else "**no**: " + "; ".join(row["problems"])
        message = row["message"].replace("|", "\\|")
        lines.append(f"| {row['case']} | {row['expect']} | {row['status']} | {row['seconds']} | {row['peak_mb']} MB | "
                     f"{verdict} | {message} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Run every case and write bench/results/hostile.json; with --only TEXT, the cases whose name holds TEXT, and
    no results file."""
    parser = argparse.ArgumentParser(prog="python -m bench.hostile", description=__doc__.split("\n")[0])
    parser.add_argument("--only", help="run only the cases whose name holds this text (writes no results)")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="gec-hostile-"))
    try:
        s = Setup(work)
        cases = [replace(case, group=group) for group, make in GROUPS.items() for case in make(s)
                 if args.only is None or args.only in case.name]
        rows = run_cases(cases, s)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.only is None:
        write_bytes_atomic(RESULTS / "hostile.json", (json.dumps(rows, indent=1) + "\n").encode(), force=True)
    print(table(rows))
    failed = [row for row in rows if not row["pass"]]
    print(f"\n{len(rows) - len(failed)} of {len(rows)} cases pass" + "".join(
        f"\n- {row['case']}: {'; '.join(row['problems'])}" for row in failed))


if __name__ == "__main__":
    main()
