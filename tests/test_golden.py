"""Golden files written by an earlier gecodec must keep decoding: the container is a contract.

Each formats/golden/expected*.json names the bundle its files need: a tiny bundle beside them, or a shipped
model (found by the id in the file, as a user's decoder finds it).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from gecodec import container
from gecodec.bundle import Bundle, find_by_id, load_bundle
from gecodec.codec import Codec
from gecodec.errors import FormatError
from gecodec.imageio import tensor_to_pixels
from gecodec.quantize import unpack_bits

from conftest import GOLDEN, with_crc16

SETS = {path.name: json.loads(path.read_text()) for path in sorted(GOLDEN.glob("expected*.json"))}
FILES = [(set_name, name) for set_name, spec in SETS.items() for name in sorted(spec["files"])]


def set_bundle(set_name: str, file_name: str) -> Bundle:
    spec = SETS[set_name]
    if (GOLDEN / spec["bundle"]).is_file():
        return load_bundle(GOLDEN / spec["bundle"])
    return find_by_id(int(spec["files"][file_name]["header"]["model_id"], 16))


def test_every_golden_set_has_files_and_the_bundle_it_was_made_with():
    assert {"expected.json", "expected-joint.json", "expected-default-v2.json", "expected-entropy.json",
            "expected-default-v3.json", "expected-crop.json", "expected-refine.json", "expected-learned.json",
            "expected-transform.json", "expected-default-v3-transform.json", "expected-default-v3-coarse.json",
            "expected-default-v3-start.json", "expected-position.json", "expected-faces64.json",
            "expected-faces64-searched.json"} <= set(SETS)
    for set_name, spec in SETS.items():
        assert spec["files"]
        bundle = set_bundle(set_name, next(iter(spec["files"])))
        assert bundle.sha256 == spec["bundle_sha256"]
        assert bundle.transform_sha256 == spec.get("transform_sha256", bundle.transform_sha256)


@pytest.mark.parametrize("set_name, name", FILES)
def test_golden_file_header_and_values(set_name, name):
    spec = SETS[set_name]["files"][name]
    data = (GOLDEN / name).read_bytes()
    assert len(data) == spec["bytes"]
    header, payload = container.read(data)
    want = spec["header"]
    assert header.model_hex == want["model_id"]
    assert (header.bits, header.seed, header.mode, header.count) == (want["bits"], want["seed"], want["mode"], want["count"])
    assert header.original_size == (tuple(want["original_size"]) if want["original_size"] else None)
    assert header.value_range == (tuple(want["value_range"]) if want["value_range"] else None)
    assert header.hints == want["hints"]
    assert header.quality == want.get("quality")
    assert header.crop == (tuple(want["crop"]) if "crop" in want else None)
    assert header.position == (tuple(want["position"]) if "position" in want else None)
    assert header.layer == (container.Layer(*want["layer"]) if "layer" in want else None)
    assert header.transform == want.get("transform", False)
    assert header.start_picture == want.get("start_picture", False)
    bundle = set_bundle(set_name, name)
    if header.quality is None:
        values = unpack_bits(payload, header.count or bundle.m, header.bits)
    else:  # the entropy-coded symbols, under the tables of the bundle the file was made with
        coder = bundle.transform if header.transform else bundle.entropy
        values = coder.decode(payload[: header.layer.base_bytes] if header.layer else payload, header.quality)
    assert values.tolist() == spec["values"]


@pytest.mark.parametrize("set_name, name", FILES)
def test_golden_file_parses_strictly_to_what_writes_its_own_bytes(set_name, name):
    # Strict parsing (formats/gec.md: types, keys, one zstd frame) reads every old file as its writer meant it.
    data = (GOLDEN / name).read_bytes()
    assert container.write(*container.read(data)) == data


def test_a_dct_layer_without_a_base_check_reads_in_its_version_2_golden_file_and_not_as_version_3():
    data = (GOLDEN / "default-v3-refined.gec").read_bytes()  # version 2, key 9 of 3 fields: made before base checks
    assert data[2] == container.VERSION_V2 and container.read(data)[0].layer.base_check is None
    with pytest.raises(FormatError, match="refused in version 3"):
        container.read(with_crc16(data[:2] + bytes([container.VERSION_V3]) + data[3:-2]))


@pytest.mark.parametrize("set_name, name", FILES)
def test_golden_file_decodes_to_the_recorded_pixels(set_name, name):
    decoded = Codec(set_bundle(set_name, name), "cpu").decode_batch([(GOLDEN / name).read_bytes()])[0]
    pixels = tensor_to_pixels(decoded).astype(np.int16)
    recorded = np.load(GOLDEN / (name + ".decoded.npy")).astype(np.int16)
    # The same file decodes to the same pixels; allow a level or two for other CPUs' float rounding.
    assert np.abs(pixels - recorded).max() <= 2
