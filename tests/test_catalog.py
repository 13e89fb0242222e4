"""The torch-free catalog: a bundle file's header is checked against its size and the caps before any tensor is
read or hashed, and model folders skip what they cannot read."""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import pytest

from gecodec import catalog
from gecodec.catalog import MAX_CONFIG_BYTES, MAX_HEADER_BYTES, MAX_TENSOR_BYTES, BundleFile, describe_model, stored_ids
from gecodec.errors import BundleError

from conftest import GOLDEN, TINY_BUNDLE


def hand_made_bundle(path: Path, tensors: dict[str, tuple[str, tuple[int, ...]]], config: dict | str | None = None,
                     metadata: dict | None = None, index: dict | None = None) -> Path:
    """A bundle file whose header lists ``tensors`` {name: (dtype, shape)} back to back; its data is left sparse
    (the file is only extended), so a header can declare gigabytes that take no disk. ``index`` replaces entries."""
    sizes = {"F16": 2, "F32": 4, "I32": 4}
    entries, position = {}, 0
    for name, (dtype, shape) in tensors.items():
        count = sizes[dtype]
        for n in shape:
            count *= n
        entries[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [position, position + count]}
        position += count
    config = json.dumps({"generator": {}, "encoder": {}} if config is None else config)
    entries["__metadata__"] = {"format": "gecodec-bundle", "format_version": "1", "name": "hand-made",
                               "config": config if isinstance(config, str) else json.dumps(config), "card": "{}",
                               **(metadata or {})}
    entries.update(index or {})
    header = json.dumps(entries).encode()
    with open(path, "wb") as handle:
        handle.write(struct.pack("<Q", len(header)) + header)
        handle.truncate(8 + len(header) + position)
    return path


def bytes_read(monkeypatch: pytest.MonkeyPatch, name: str | None = None) -> list[int]:
    """A list that gathers how many bytes each BundleFile read (of the file called ``name``) asks for."""
    sizes: list[int] = []
    read_into = BundleFile.read_into

    def counted(self: BundleFile, buffer: bytearray, offset: int) -> bytearray:
        if name in (None, self.path.name):
            sizes.append(len(buffer))
        return read_into(self, buffer, offset)

    monkeypatch.setattr(BundleFile, "read_into", counted)
    return sizes


def test_a_sparse_gigabyte_tensor_is_refused_from_its_header_without_reading_it(tmp_path, monkeypatch):
    path = hand_made_bundle(tmp_path / "sparse.safetensors", {"x": ("F32", (1 << 28,))})
    assert os.stat(path).st_blocks * 512 < 1 << 20  # 1 GiB declared, almost nothing on disk
    sizes = bytes_read(monkeypatch)
    with pytest.raises(BundleError, match=f"over the limit of {MAX_TENSOR_BYTES}"):
        stored_ids(path)
    assert sum(sizes) < 4096


def test_a_sparse_bundle_in_the_model_folder_does_not_cost_gec_info_its_size(tmp_path, monkeypatch):
    folder = tmp_path / "models"
    folder.mkdir()
    monkeypatch.setenv("GECODEC_MODEL_DIR", str(folder))
    hand_made_bundle(folder / "sparse.safetensors", {"x": ("F32", (1 << 28,))})
    sizes, every_read = bytes_read(monkeypatch, "sparse.safetensors"), bytes_read(monkeypatch)
    with pytest.warns(UserWarning, match="sparse.safetensors: .*over the limit.*; skipped"):
        assert describe_model(0x0BADF00D) is None
    assert sum(sizes) < 4096 and max(every_read) <= catalog.HASH_CHUNK  # the shipped bundles are hashed in chunks


@pytest.mark.parametrize("key, cap", [("config", MAX_CONFIG_BYTES), ("card", catalog.MAX_CARD_BYTES)])
def test_a_config_or_card_over_its_cap_is_refused(tmp_path, key, cap):
    path = hand_made_bundle(tmp_path / "big.safetensors", {}, metadata={key: " " * (cap + 1)})
    with pytest.raises(BundleError, match=f"its {key} is over the limit of {cap} bytes"):
        BundleFile(path)


def test_a_header_over_its_cap_is_refused_before_it_is_read(tmp_path, monkeypatch):
    path = tmp_path / "huge-header.safetensors"
    with open(path, "wb") as handle:  # a 99 MB header, sparse
        handle.write(struct.pack("<Q", 99_000_000))
        handle.truncate(8 + 99_000_000)
    sizes = bytes_read(monkeypatch)
    with pytest.raises(BundleError, match=f"the limit is {MAX_HEADER_BYTES}"):
        BundleFile(path)
    assert sizes == [8]


@pytest.mark.parametrize("index, problem", [
    ({"x": {"dtype": "F32", "shape": [4], "data_offsets": [0, 8]}}, "has 8 bytes for its shape"),
    ({"x": {"dtype": "BF16", "shape": [2], "data_offsets": [0, 4]}}, "is not {dtype, shape, data_offsets}"),
    ({"x": {"dtype": ["F32"], "shape": [1], "data_offsets": [0, 4]}}, "is not {dtype, shape, data_offsets}"),
    ({"x": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}, "is not {dtype, shape, data_offsets}"),
    ({"x": {"dtype": "F32", "shape": [True], "data_offsets": [0, 4]}}, "is not {dtype, shape, data_offsets}"),
    ({"x": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4], "extra": 1}}, "is not {dtype, shape, data_offsets}"),
    ({"x": {"dtype": "F32", "shape": [1] * 9, "data_offsets": [0, 4]}}, "is not {dtype, shape, data_offsets}"),
    ({"y": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}, "overlap or leave gaps"),
    ({"y": {"dtype": "F32", "shape": [1], "data_offsets": [12, 16]}}, "overlap or leave gaps"),
    ({"y": {"dtype": "F32", "shape": [1], "data_offsets": [8, 12]}}, "the file has 8"),
    ({"__metadata__": {"format": "gecodec-bundle", "format_version": "1", "config": {}}}, "not a map of strings"),
    ({"__metadata__": {"format": "gecodec-bundle", "format_version": "99"}}, "unsupported bundle version"),
], ids=["bytes-not-shape", "unknown-dtype", "list-dtype", "negative-dimension", "boolean-dimension", "extra-field",
        "nine-dimensions", "overlap", "gap", "past-the-end", "metadata-not-strings", "unknown-version"])
def test_a_header_that_does_not_describe_its_file_is_refused(tmp_path, index, problem):
    path = hand_made_bundle(tmp_path / "bad.safetensors", {"x": ("F32", (1,)), "pad": ("F32", (1,))}, index=index)
    with pytest.raises(BundleError, match=problem.replace("{", "\\{").replace("}", "\\}")):
        BundleFile(path)


@pytest.mark.parametrize("content, problem", [
    (b"junk", "too short for a header"),
    (struct.pack("<Q", 64) + b'{"a":1}', "a header of 64 bytes in a file of 15"),
    (struct.pack("<Q", 16) + b'{"a":1,"a":2}   ', "appears twice"),
    (struct.pack("<Q", 8) + b"[1, 2] \x00", "not JSON"),
    (struct.pack("<Q", 8) + b"[1, 2]  ", "not a JSON object"),
    (struct.pack("<Q", 4) + b"\xff\xfe{}", "not JSON"),
], ids=["four-bytes", "header-past-the-end", "duplicate-key", "trailing-junk", "not-an-object", "not-utf-8"])
def test_junk_is_a_bundle_error_never_an_internal_one(tmp_path, content, problem):
    path = tmp_path / "junk.safetensors"
    path.write_bytes(content)
    with pytest.raises(BundleError, match=problem):
        stored_ids(path)


def test_a_fifo_given_as_a_bundle_is_refused_without_hanging(tmp_path):
    fifo = tmp_path / "fifo.safetensors"
    os.mkfifo(fifo)
    with pytest.raises(BundleError, match="not a regular file"):
        BundleFile(fifo)


def test_ids_are_hashed_once_per_file_version(tmp_path, monkeypatch):
    path = tmp_path / "copy.safetensors"
    path.write_bytes(TINY_BUNDLE.read_bytes())
    first = stored_ids(path)
    hashed = []
    monkeypatch.setattr(BundleFile, "ids", lambda self: hashed.append(self.path) or first)
    assert stored_ids(path) == first and not hashed
    os.utime(path, ns=(0, 0))  # a new version of the file
    assert stored_ids(path) == first and hashed == [path]


def test_gec_info_names_a_files_model_past_junk_in_the_model_folder(monkeypatch, tmp_path):
    from click.testing import CliRunner

    from gecodec.cli import main

    folder = tmp_path / "models"
    folder.mkdir()
    monkeypatch.setenv("GECODEC_MODEL_DIR", str(folder))
    (folder / "aaa-junk.safetensors").write_bytes(b"not a bundle")
    with pytest.warns(UserWarning, match="aaa-junk.safetensors: .*; skipped"):
        result = CliRunner().invoke(main, ["info", str(GOLDEN / "ge-8bit.gec")])
    assert result.exit_code == 0 and "model" in result.output
    (folder / "tiny-test.safetensors").write_bytes(TINY_BUNDLE.read_bytes())
    with pytest.warns(UserWarning, match="aaa-junk"):
        result = CliRunner().invoke(main, ["info", str(GOLDEN / "ge-8bit.gec")])
    assert result.exit_code == 0 and "tiny-test" in result.output
