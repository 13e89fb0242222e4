"""The .gec container: bytes <-> (header, payload). Specified in formats/gec.md.

Version 1: magic "GEC" | 01 | msgpack header array | packed fixed-length payload | CRC-32 (little-endian).
Version 2: magic "GE" | 02 | model id (4) | quality and extras flag (1) | [msgpack extras] | entropy-coded
payload | CRC-16 (little-endian): 10 bytes of envelope. Version 3 is laid out as version 2, with 03 and the
transform id; its payload is transform-coded (gecodec/transform_coding.py). Version 4 is version 3 whose base
decodes to its start picture, with no search. Knows nothing of models or torch.
"""

from __future__ import annotations

import binascii
import math
import struct
import zlib
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple

import msgpack
import zstandard

from gecodec.errors import FormatError, OptionError

MAGIC = b"GEC"
VERSION = 1
CHECKSUM_SIZE = 4
MAGIC_V2, VERSION_V2 = b"GE", 2  # a version-1 file has "C" where a version-2 file has its version byte
VERSION_V3 = 3  # version 2's layout; the payload is transform-coded
VERSION_V4 = 4  # version 3's layout; the base decodes to its start picture, with no search
TRANSFORM_VERSIONS = (VERSION_V3, VERSION_V4)
ENTROPY_VERSIONS = (VERSION_V2, *TRANSFORM_VERSIONS)
LATEST_VERSION = VERSION_V4
CHECKSUM_SIZE_V2 = 2
FIXED_V2 = len(MAGIC_V2) + 1 + 4 + 1 + CHECKSUM_SIZE_V2  # magic, version, model id, quality byte, CRC-16
HAS_EXTRAS = 0x80  # the quality byte's top bit: a msgpack extras map follows it
MAX_QUALITY = 100
QUALITIES = MAX_QUALITY + 1  # quality 0 (smallest files) .. 100 (largest)
MAX_LAYER_LEVEL = 15  # a refinement layer's levels (gecodec.refine.LEVELS)
MAX_HEADER_SIZE = 1024  # bytes; a longer header is rejected before it is parsed
MAX_PAYLOAD_SIZE = 1 << 16  # bytes after decompression
ZSTD_FEED = 64  # bytes of a zstd frame per step: a block takes 4 or more, so a step adds at most 17 blocks of
# output, each no larger than the window (MAX_PAYLOAD_SIZE): about 1.1 MiB
MAX_FILE_SIZE = 4 + MAX_HEADER_SIZE + MAX_PAYLOAD_SIZE + CHECKSUM_SIZE

MODES = ("ge", "cs")
PAYLOAD_RAW, PAYLOAD_ZSTD = 0, 1

# Keys of the optional extras map (the header's fifth element). Fields at their defaults are omitted.
KEY_MODE, KEY_SIZE, KEY_COUNT, KEY_RANGE, KEY_HINTS, KEY_SEED, KEY_GRAY, KEY_CROP = 1, 2, 3, 4, 5, 6, 7, 8
KEY_LAYER, KEY_LEARNED_LAYER, KEY_START_LAYER, KEY_START_LEARNED_LAYER = 9, 10, 11, 12
KEY_POSITION = 13
# A refinement layer's (kind, whether it refines the start picture) -> its key
LAYER_KEYS = {("dct", False): KEY_LAYER, ("learned", False): KEY_LEARNED_LAYER,
              ("dct", True): KEY_START_LAYER, ("learned", True): KEY_START_LEARNED_LAYER}
# Version 1 has no seed key (the seed is a header field) and no layers; version 2 codes ge mode only.
V1_KEYS = (KEY_MODE, KEY_SIZE, KEY_COUNT, KEY_RANGE, KEY_HINTS, KEY_GRAY, KEY_CROP, KEY_POSITION)
V2_KEYS = (KEY_SIZE, KEY_HINTS, KEY_SEED, KEY_GRAY, KEY_CROP, *LAYER_KEYS.values(), KEY_POSITION)
# Version 4 has no search, so no decoder hints and no seed, and no layers (those files stay version 3).
V4_KEYS = (KEY_SIZE, KEY_GRAY, KEY_CROP, KEY_POSITION)
# Each extras key's field and msgpack type, checked before any value is used; _validate checks the rest.
EXTRAS_TYPES = {KEY_MODE: ("mode", "int"), KEY_SIZE: ("original size", "array"),
                KEY_COUNT: ("measurement count", "int"), KEY_RANGE: ("quantizer range", "array"),
                KEY_HINTS: ("decoder hints", "map"), KEY_SEED: ("seed", "int"), KEY_GRAY: ("grayscale flag", "bool"),
                KEY_CROP: ("crop", "array"), **{key: ("refinement layer", "array") for key in LAYER_KEYS.values()},
                KEY_POSITION: ("position", "array")}
MSGPACK_TYPES = {type(None): "nil", bool: "bool", int: "int", float: "float", str: "str", bytes: "bin",
                 list: "array", dict: "map"}  # every type the header's unpacker makes
HINT_TYPES = {"iters": int, "restarts": int, "lam": float, "lr": float}
# What a file may ask of a decoder (formats/gec.md, Limits); the user's own settings may go further.
HINT_LIMITS = {"iters": (0, 5000), "restarts": (1, 16), "lam": (0.0, 100.0), "lr": (1e-6, 10.0)}
MAX_SIDE, MAX_PIXELS = 1 << 15, 64 * 1024 * 1024  # a file's original size; the encoder refuses larger images
MAX_CROP_SIDE, MAX_CROP_TENTHS = 2 * MAX_SIDE, 1800  # a crop may reach past the photo; its angle is -180..180 degrees
# A position (key 13) codes the face's square against the photo: its side in steps of 1/SCALE_STEPS of an octave
# below the photo's shorter side, its centre's offset from the photo's centre in steps of 1/CENTRE_STEPS of that
# side (half a pixel of a 64-pixel model), and its turn in whole degrees: finer than a paste back can show.
SCALE_STEPS, CENTRE_STEPS, MAX_DEGREES = 64, 128, 180


class Layer(NamedTuple):
    """A refinement layer after the base payload (version 2 only)."""

    level: int
    base_bytes: int  # the base payload's length: the layer is the rest
    check: int  # the check code of the refinement model it needs
    kind: str = "dct"  # "dct" (keys 9 and 11: gecodec/refine.py) or "learned" (10 and 12: gecodec/learned_layer.py)
    base_check: int | None = None  # base_check() of the base it refines (None in DCT layers made before it)
    on_start: bool = False  # it refines the start picture G(z0), not the search's decode (keys 11 and 12)


@dataclass(frozen=True)
class Header:
    """What a .gec file says about its payload. See formats/gec.md for each field."""

    model_id: int  # first 4 bytes of the model bundle's SHA-256, as a big-endian uint32
    bits: int | None = None  # version 1: bits per quantized value
    seed: int = 0  # decoder seed: restarts' starting points (and A in cs mode) derive from it
    mode: str = "ge"  # "ge": m = EN(x); "cs": m = A x with Gaussian A regenerated from the seed
    original_size: tuple[int, int] | None = None  # (width, height) when it differs from the model's size
    count: int | None = None  # number of measurements, when it differs from the model's m (always set in cs mode)
    value_range: tuple[float, float] | None = None  # quantizer range (lo, hi) when not taken from the model
    hints: dict[str, Any] = field(default_factory=dict)  # decoder settings suggested by the encoder
    quality: int | None = None  # version 2: the quality factor (0..100) that chose the entropy coder's step
    grayscale: bool = False  # the input was grayscale, so the decoder returns a grayscale image
    crop: tuple[int, int, int, int] | None = None  # the face's square in the photo, when not its centre square:
    # (centre x, centre y, side) in the photo's pixels and the rotation in tenths of a degree (files before key 13)
    position: tuple[int, int, int, int, int, int] | None = None  # the photo's size and the face's square in it:
    # (width, height, scale, dx, dy, degrees), coded against the photo's size (position_square); no original_size
    layer: Layer | None = None  # version 2: a refinement layer follows the base payload
    transform: bool = False  # version 3: the base is transform-coded, and model_id is the transform id
    start_picture: bool = False  # version 4: a transform-coded base that decodes to its start picture, unsearched

    @property
    def model_hex(self) -> str:
        return f"{self.model_id:08x}"

    @property
    def photo_size(self) -> tuple[int, int] | None:
        """The (width, height) of the picture the file was made from, when not the model's own size."""
        return self.position[:2] if self.position is not None else self.original_size

    @property
    def version(self) -> int:
        if self.quality is None:
            return VERSION
        if self.transform:
            return VERSION_V4 if self.start_picture else VERSION_V3
        return VERSION_V2


def _extras(header: Header) -> dict[int, Any]:
    extras: dict[int, Any] = {}
    if header.version in ENTROPY_VERSIONS and header.seed:
        extras[KEY_SEED] = header.seed
    if header.mode != "ge":
        extras[KEY_MODE] = MODES.index(header.mode)
    if header.original_size is not None:
        extras[KEY_SIZE] = list(header.original_size)
    if header.count is not None:
        extras[KEY_COUNT] = header.count
    if header.value_range is not None:
        extras[KEY_RANGE] = list(header.value_range)
    if header.hints:
        extras[KEY_HINTS] = dict(header.hints)
    if header.grayscale:
        extras[KEY_GRAY] = True
    if header.crop is not None:
        extras[KEY_CROP] = list(header.crop)
    if header.position is not None:
        extras[KEY_POSITION] = list(header.position)
    if header.layer is not None:
        layer = header.layer
        extras[LAYER_KEYS[layer.kind, layer.on_start]] = list(layer[:3]) + (
            [layer.base_check] if layer.base_check is not None else [])
    return extras


def write(header: Header, payload: bytes) -> bytes:
    """Serialise a header and payload. Version 1 (a header with bits) stores the packed payload zstd-compressed
    only if that is smaller; versions 2 and 3 (a header with a quality) store the entropy-coded payload as it is."""
    try:
        _validate(header)
    except ValueError as exc:
        raise OptionError(f"cannot write this header: {exc}") from None
    if header.version in ENTROPY_VERSIONS:
        return _write_v2(header, payload)
    compressed = zstandard.ZstdCompressor(level=19, write_content_size=False, write_checksum=False).compress(payload)
    codec, stored = (PAYLOAD_ZSTD, compressed) if len(compressed) < len(payload) else (PAYLOAD_RAW, payload)
    fields: list[Any] = [header.model_id, header.bits, header.seed, codec]
    extras = _extras(header)
    if extras:
        fields.append(extras)
    packed_header = msgpack.packb(fields, use_bin_type=True, use_single_float=True)
    body = MAGIC + bytes([VERSION]) + packed_header + stored
    return body + struct.pack("<I", zlib.crc32(body))


def _write_v2(header: Header, payload: bytes) -> bytes:
    extras = _extras(header)
    body = MAGIC_V2 + bytes([header.version]) + struct.pack(">I", header.model_id)
    body += bytes([header.quality | (HAS_EXTRAS if extras else 0)])
    if extras:
        body += msgpack.packb(extras, use_bin_type=True, use_single_float=True)
    body += payload
    return body + struct.pack("<H", crc16(body))


def crc16(data: bytes) -> int:
    """CRC-16/CCITT-FALSE (polynomial 0x1021, initial value 0xFFFF), the checksum of version 2."""
    return binascii.crc_hqx(data, 0xFFFF)


@dataclass(frozen=True)
class Layout:
    """Where the bytes of a .gec file go, for `gec info`."""

    total: int
    header: int  # version 1: the msgpack header; version 2: the optional extras map
    payload: int  # stored payload, as it is in the file
    payload_encoding: str  # "raw", "zstd" or "ans"
    fixed: int  # the envelope: magic, version, checksum (and in version 2 the model id and quality byte)
    fixed_parts: str


def read(data: bytes) -> tuple[Header, bytes]:
    """Parse and verify a .gec file; return its header and the (decompressed) payload."""
    if _version_of(data) in ENTROPY_VERSIONS:
        header, _, payload = _split_v2(data)
        return header, payload
    header, _, stored, codec = _split(data)
    if codec == PAYLOAD_RAW:
        return header, stored
    limit = MAX_PAYLOAD_SIZE if header.count is None else min(MAX_PAYLOAD_SIZE, -(-header.count * header.bits // 8))
    return header, _decompress(stored, limit)


def read_header(data: bytes) -> Header:
    """Check a file's checksum and header without decompressing its payload: enough to find its model."""
    return (_split_v2(data) if _version_of(data) in ENTROPY_VERSIONS else _split(data))[0]


def _decompress(frame: bytes, limit: int) -> bytes:
    """One zstd frame, and nothing after it, that decompresses to at most ``limit`` bytes. The frame is fed in
    small steps, since python-zstandard ignores max_output_size when a frame declares its size; a window over
    MAX_PAYLOAD_SIZE (gecodec's encoder sizes the window to the payload) is refused before it is allocated."""
    stream = zstandard.ZstdDecompressor(max_window_size=MAX_PAYLOAD_SIZE).decompressobj()
    payload, fed = bytearray(), 0
    try:
        while fed < len(frame) and not stream.eof:
            payload += stream.decompress(frame[fed : fed + ZSTD_FEED])
            fed += ZSTD_FEED
            if len(payload) > limit:
                raise FormatError(f"payload decompresses to more than {limit} bytes, the most its header allows")
    except zstandard.ZstdError as exc:
        raise FormatError(f"payload does not decompress ({exc})") from None
    if not stream.eof:
        raise FormatError("payload's zstd frame is truncated")
    if stream.unused_data or fed < len(frame):
        raise FormatError("payload has bytes after its zstd frame")
    return bytes(payload)


def layout(data: bytes) -> Layout:
    """Verify a .gec file and report how its bytes are spent."""
    version = _version_of(data)
    if version in ENTROPY_VERSIONS:
        _, extras_size, payload = _split_v2(data)
        encoding = "ans, transform" if version in TRANSFORM_VERSIONS else "ans"
        return Layout(total=len(data), header=extras_size, payload=len(payload), payload_encoding=encoding,
                      fixed=FIXED_V2, fixed_parts="magic, version, model id, quality, CRC-16")
    _, header_size, stored, codec = _split(data)
    return Layout(total=len(data), header=header_size, payload=len(stored),
                  payload_encoding="zstd" if codec == PAYLOAD_ZSTD else "raw",
                  fixed=len(MAGIC) + 1 + CHECKSUM_SIZE, fixed_parts="magic, version, CRC-32")


def _version_of(data: bytes) -> int:
    """The version a file claims: byte 2 is "C" in version 1 (then byte 3 is 01), else the version itself."""
    if len(data) > MAX_FILE_SIZE:
        raise FormatError(f"file is {len(data)} bytes, larger than any valid .gec file ({MAX_FILE_SIZE})")
    if len(data) < 4:
        raise FormatError(f"file is truncated ({len(data)} bytes)")
    if data[:2] != MAGIC_V2:
        raise FormatError("not a .gec file (bad magic bytes)")
    if data[2] == MAGIC[2]:
        if data[3] != VERSION:
            raise FormatError(_unsupported(data[3]))
        return VERSION
    if data[2] not in ENTROPY_VERSIONS:
        raise FormatError(_unsupported(data[2]))
    return data[2]


def _unsupported(version: int) -> str:
    return f"unsupported .gec version {version} (this gecodec reads versions 1 to {LATEST_VERSION})"


def _split_v2(data: bytes) -> tuple[Header, int, bytes]:
    """Check a version-2, -3 or -4 file's checksum; return (header, extras size, payload)."""
    if len(data) < FIXED_V2 + 1:
        raise FormatError(f"file is truncated ({len(data)} bytes)")
    body, (stored_crc,) = data[:-CHECKSUM_SIZE_V2], struct.unpack("<H", data[-CHECKSUM_SIZE_V2:])
    if crc16(body) != stored_crc:
        raise FormatError("checksum mismatch: the file is corrupt or truncated")
    (model_id,), flags, version = struct.unpack(">I", body[3:7]), body[7], body[2]
    extras: dict[int, Any] = {}
    extras_size = 0
    if flags & HAS_EXTRAS:
        extras, extras_size = _parse_header(body[8:])
        _check_extras(extras, version)
    header = _header_from_extras(extras, version, model_id=model_id, quality=flags & ~HAS_EXTRAS,
                                 seed=extras.get(KEY_SEED, 0), transform=version in TRANSFORM_VERSIONS,
                                 start_picture=version == VERSION_V4)
    return header, extras_size, body[8 + extras_size :]


def _split(data: bytes) -> tuple[Header, int, bytes, int]:
    """Check a version-1 file's checksum; return (header, header size, stored payload, payload encoding)."""
    if len(data) < len(MAGIC) + 1 + CHECKSUM_SIZE + 1:
        raise FormatError(f"file is truncated ({len(data)} bytes)")
    body, (stored_crc,) = data[:-CHECKSUM_SIZE], struct.unpack("<I", data[-CHECKSUM_SIZE:])
    if zlib.crc32(body) != stored_crc:
        raise FormatError("checksum mismatch: the file is corrupt or truncated")
    fields, header_size = _parse_header(body[4:])
    header, codec = _header_from_fields(fields)
    return header, header_size, body[4 + header_size :], codec


def _parse_header(data: bytes) -> tuple[Any, int]:
    unpacker = msgpack.Unpacker(
        raw=False, strict_map_key=False, max_buffer_size=MAX_HEADER_SIZE, object_pairs_hook=_unique_map,
        ext_hook=_no_ext, max_array_len=16, max_map_len=16, max_str_len=32, max_bin_len=32, max_ext_len=0,
    )
    unpacker.feed(data[:MAX_HEADER_SIZE])
    try:
        fields = unpacker.unpack()
    except msgpack.OutOfData:
        if len(data) >= MAX_HEADER_SIZE:
            raise FormatError(f"header is larger than {MAX_HEADER_SIZE} bytes") from None
        raise FormatError("header is truncated") from None
    except (ValueError, TypeError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as exc:
        raise FormatError(f"header is not valid msgpack ({exc.__class__.__name__})") from None
    return fields, unpacker.tell()


def _unique_map(pairs: list[tuple[Any, Any]]) -> dict[Any, Any]:
    # A map that names a key twice (1 and true count as one) reads differently in other msgpack libraries.
    mapping = dict(pairs)
    if len(mapping) != len(pairs):
        raise FormatError("header has a map that repeats a key")
    return mapping


def _no_ext(code: int, data: bytes) -> Any:
    # max_ext_len=0 stops every extension but an empty one
    raise FormatError(f"header holds a msgpack extension (type {code}), which no field may be")


def _header_from_fields(fields: Any) -> tuple[Header, int]:
    if not isinstance(fields, list) or len(fields) not in (4, 5):
        raise FormatError("header must be an array of 4 or 5 fields")
    model_id, bits, seed, codec = fields[:4]
    if not _is_int_in(codec, PAYLOAD_RAW, PAYLOAD_ZSTD):
        raise FormatError(f"unknown payload encoding {codec!r}")
    extras = fields[4] if len(fields) == 5 else {}
    _check_extras(extras, VERSION)
    return _header_from_extras(extras, VERSION, model_id=model_id, bits=bits, seed=seed), codec


def _check_extras(extras: Any, version: int) -> None:
    """Refuse an extras map with a key its version does not define, or a value of the wrong msgpack type."""
    if not isinstance(extras, dict) or not all(type(key) is int for key in extras):
        raise FormatError("header extras must be a map with integer keys")
    for key in sorted(extras):
        if key not in {VERSION: V1_KEYS, VERSION_V4: V4_KEYS}.get(version, V2_KEYS):
            raise FormatError(f"header extras key {key} is not allowed in version {version}")
        (name, expected), found = EXTRAS_TYPES[key], MSGPACK_TYPES[type(extras[key])]
        if found != expected:
            raise FormatError(f"invalid header: {name} (extras key {key}) must be a msgpack {expected}, not {found}")


def _header_from_extras(extras: dict[int, Any], version: int, **fixed: Any) -> Header:
    """The header of a checked extras map (_check_extras) and the fields outside it."""
    mode_index = extras.get(KEY_MODE, 0)
    if not 0 <= mode_index < len(MODES):
        raise FormatError(f"unknown mode {mode_index!r}")
    layers = [(*kind_on_start, extras[key]) for kind_on_start, key in LAYER_KEYS.items() if key in extras]
    if len(layers) > 1:
        raise FormatError("invalid header: a file holds one refinement layer, and this one names two")
    arrays = {key: tuple(extras[key]) if key in extras else None for key in (KEY_SIZE, KEY_RANGE, KEY_CROP)}
    try:
        header = Header(
            mode=MODES[mode_index],
            original_size=arrays[KEY_SIZE],
            count=extras.get(KEY_COUNT),
            value_range=arrays[KEY_RANGE],
            hints=extras.get(KEY_HINTS, {}),
            grayscale=extras.get(KEY_GRAY, False),
            crop=arrays[KEY_CROP],
            position=tuple(extras[KEY_POSITION]) if KEY_POSITION in extras else None,
            layer=_layer(*layers[0], version) if layers else None,
            **fixed,
        )
        _validate(header)
    except (TypeError, ValueError) as exc:
        raise FormatError(f"invalid header: {exc}") from None
    return header


def _layer(kind: str, on_start: bool, fields: list[Any], version: int) -> Layer:
    # Every layer names its base, save the DCT layers on the search's decode (key 9) that version-2 files made
    # before base checks existed hold.
    legacy = len(fields) == 3 and kind == "dct" and not on_start
    if legacy and version == VERSION_V3:
        raise ValueError("a DCT layer without a base check (key 9 of 3 fields) is refused in version 3")
    if len(fields) != 4 and not legacy:
        raise ValueError(f"refinement layer {fields!r} is not [level, base bytes, check code, base check]")
    return Layer(*fields[:3], kind, None if legacy else fields[3], on_start)


def with_start_picture(data: bytes, start_picture: bool = True) -> bytes:
    """A transform-coded base file as the one of the same base that decodes to its start picture (version 4; the
    base has no layer, hints or seed), or with ``start_picture`` False, to a search's decode (version 3)."""
    header, payload = read(data)
    return write(replace(header, start_picture=start_picture), payload)


def with_layer(base: bytes, layer: bytes, level: int, check: int, kind: str, on_start: bool) -> bytes:
    """A base file (an entropy-coded one, without a layer) with a refinement layer's bytes appended and named in
    its header: a layer of ``kind`` at ``level``, coded with the tables of check code ``check``. A layered file is
    version 3 (or 2), so a base on its start picture becomes its version-3 self first."""
    header, payload = read(base)
    header = replace(header, start_picture=False)
    named = Layer(level, len(payload), check, kind, base_check(header, payload), on_start)
    return write(replace(header, layer=named), payload + layer)


def base_check(header: Header, base_payload: bytes) -> int:
    """7 bits that name the base a refinement layer refines: the low bits of the CRC-16 of the file that the base
    layer alone makes (the header without its layer, and the base payload). Seven bits take one byte."""
    return crc16(write(replace(header, layer=None), base_payload)) & 0x7F


def _is_uint(value: Any, limit: int) -> bool:
    return _is_int_in(value, 0, limit - 1)


def _is_int_in(value: Any, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _validate(header: Header) -> None:
    """Raise ValueError on a header no decoder could use (checked on write and on read)."""
    if not _is_uint(header.model_id, 1 << 32):
        raise ValueError(f"model id {header.model_id!r} is not a 32-bit unsigned integer")
    if (header.bits is None) == (header.quality is None):
        raise ValueError("a header has either bits (version 1) or a quality (version 2)")
    if header.quality is not None:
        if not _is_uint(header.quality, MAX_QUALITY + 1):
            raise ValueError(f"quality {header.quality!r} is not an integer from 0 to {MAX_QUALITY}")
        if header.mode != "ge" or header.count is not None or header.value_range is not None:
            raise ValueError("version 2 codes ge mode only, with the model's count and entropy model")
    elif header.transform:
        raise ValueError("a transform-coded file (version 3) has a quality, not bits")
    elif not _is_uint(header.bits, 33) or header.bits < 1:
        raise ValueError(f"bits {header.bits!r} out of range")
    if header.start_picture and not (header.transform and header.layer is None and not header.hints
                                     and not header.seed):
        raise ValueError("a base that decodes to its start picture (version 4) is transform-coded, with no layer, "
                         "decoder hints or seed")
    if not _is_uint(header.seed, 1 << 64):
        raise ValueError(f"seed {header.seed!r} is not a 64-bit unsigned integer")
    if header.mode not in MODES:
        raise ValueError(f"mode {header.mode!r} is not one of {MODES}")
    if header.original_size is not None and not (
        isinstance(header.original_size, tuple) and len(header.original_size) == 2
        and all(_is_uint(v, MAX_SIDE + 1) and v > 0 for v in header.original_size)
        and header.original_size[0] * header.original_size[1] <= MAX_PIXELS
    ):
        raise ValueError(f"original size {header.original_size!r} is not two positive integers of at most "
                         f"{MAX_SIDE} with a product of at most {MAX_PIXELS} pixels")
    if header.count is not None and not (_is_uint(header.count, MAX_PAYLOAD_SIZE) and header.count > 0):
        raise ValueError(f"measurement count {header.count!r} out of range")
    if header.mode == "cs" and (header.count is None or header.value_range is None):
        raise ValueError("cs mode needs the measurement count and the quantizer range")
    if header.value_range is not None and not (
        isinstance(header.value_range, tuple) and len(header.value_range) == 2
        and all(isinstance(v, float) and math.isfinite(v) for v in header.value_range)
        and header.value_range[0] < header.value_range[1]
    ):
        raise ValueError(f"quantizer range {header.value_range!r} is not two increasing finite floats")
    if header.crop is not None:
        _validate_crop(header.crop, header.original_size)
    if header.position is not None:
        _validate_position(header)
    if header.layer is not None and not (
        header.quality is not None and isinstance(header.layer, Layer)
        and (header.layer.kind, header.layer.on_start) in LAYER_KEYS
        and (header.layer.base_check is not None or not header.layer.on_start)
        and _is_int_in(header.layer.level, -MAX_LAYER_LEVEL if header.layer.kind == "learned" else 0, MAX_LAYER_LEVEL)
        and _is_uint(header.layer.base_bytes, MAX_PAYLOAD_SIZE)
        and header.layer.base_bytes > 0 and _is_uint(header.layer.check, 1 << 16)
        and (header.layer.base_check is None or _is_uint(header.layer.base_check, 1 << 7))
    ):
        raise ValueError(f"refinement layer {header.layer!r} is not [level 0 to {MAX_LAYER_LEVEL} (a learned layer's "
                         f"-{MAX_LAYER_LEVEL} to {MAX_LAYER_LEVEL}), base bytes, "
                         "check code, base check 0 to 127] in a version-2 file")
    if not isinstance(header.grayscale, bool):
        raise ValueError(f"grayscale flag {header.grayscale!r} is not a boolean")
    if not isinstance(header.hints, dict):
        raise ValueError("decoder hints must be a map")
    for key, value in header.hints.items():
        expected = HINT_TYPES.get(key)
        if expected is None or not isinstance(value, (int, float) if expected is float else int) or isinstance(value, bool):
            raise ValueError(f"bad decoder hint {key!r}: {value!r}")
        low, high = HINT_LIMITS[key]
        if not low <= value <= high:  # NaN fails too
            raise ValueError(f"decoder hint {key!r} = {value!r} is outside [{low}, {high}]")


def position_of(width: int, height: int, cx: float, cy: float, side: float, degrees: float
                ) -> tuple[int, int, int, int, int, int]:
    """A face's square in a width x height photo as a position (key 13): the nearest one it can code."""
    scale = round(SCALE_STEPS * math.log2(min(width, height) / side))
    unit = position_square((width, height, scale, 0, 0, 0))[2] / CENTRE_STEPS
    return (width, height, scale, round((cx - width / 2) / unit), round((cy - height / 2) / unit), round(degrees))


def position_square(position: tuple[int, int, int, int, int, int]) -> tuple[float, float, float, int]:
    """The square a position codes: its centre (x, y) and side in the photo's pixels, and its turn in degrees."""
    width, height, scale, dx, dy, degrees = position
    side = min(width, height) * 2.0 ** (-scale / SCALE_STEPS)
    unit = side / CENTRE_STEPS
    return width / 2 + dx * unit, height / 2 + dy * unit, side, degrees


def _validate_position(header: Header) -> None:
    position = header.position
    if header.original_size is not None or header.crop is not None:
        raise ValueError("a position holds the photo's size and the face's square: no original size or crop with it")
    if not (isinstance(position, tuple) and len(position) == 6 and all(_is_int_in(v, -(1 << 31), 1 << 31)
                                                                     for v in position)):
        raise ValueError(f"position {position!r:.80} is not six integers")
    width, height = position[:2]
    if not (0 < width <= MAX_SIDE and 0 < height <= MAX_SIDE and width * height <= MAX_PIXELS):
        raise ValueError(f"position's photo {width}x{height} is not within {MAX_SIDE} a side and {MAX_PIXELS} pixels")
    if not -SCALE_STEPS * 16 <= position[2] <= SCALE_STEPS * 16:  # a side within 2^16 of the photo's
        raise ValueError(f"position scale {position[2]} is not from {-SCALE_STEPS * 16} to {SCALE_STEPS * 16}")
    cx, cy, side, degrees = position_square(position)
    if not (0 <= cx <= width and 0 <= cy <= height and 1 <= side <= MAX_CROP_SIDE):
        raise ValueError(f"position's square (centre ({cx:.1f}, {cy:.1f}), side {side:.1f}) does not lie on the "
                         f"{width}x{height} photo with a side of 1 to {MAX_CROP_SIDE}")
    if not -MAX_DEGREES <= degrees <= MAX_DEGREES:
        raise ValueError(f"position turn {degrees} is not from {-MAX_DEGREES} to {MAX_DEGREES} degrees")


def _validate_crop(crop: Any, original_size: tuple[int, int] | None) -> None:
    if original_size is None:
        raise ValueError("a crop needs the original size")
    if not (isinstance(crop, tuple) and len(crop) == 4 and all(isinstance(v, int) and not isinstance(v, bool)
                                                                 for v in crop)):
        raise ValueError(f"crop {crop!r} is not four integers")
    cx, cy, side, tenths = crop
    if not (0 <= cx <= original_size[0] and 0 <= cy <= original_size[1]):
        raise ValueError(f"crop centre ({cx}, {cy}) is outside the {original_size[0]}x{original_size[1]} image")
    if not 1 <= side <= MAX_CROP_SIDE:
        raise ValueError(f"crop side {side} is not from 1 to {MAX_CROP_SIDE}")
    if not -MAX_CROP_TENTHS <= tenths <= MAX_CROP_TENTHS:
        raise ValueError(f"crop angle {tenths} is not from {-MAX_CROP_TENTHS} to {MAX_CROP_TENTHS} tenths of a degree")
