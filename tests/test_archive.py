"""Archives (gecodec.archive, formats/archive.md): the library's round trip, `gec encode -o X.parquet`, `gec decode
X.parquet` and `gec info X.parquet`, error rows, and what a bad archive gets."""

from __future__ import annotations

import json
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from PIL import Image

from gecodec.archive import (METADATA_KEY, SCHEMA, ArchiveRow, ArchiveWriter, archive_ids, read_archive, summarise,
                             write_archive)
from gecodec.batches import decode_rows
from gecodec.bundle import load_bundle
from gecodec.cli import main
from gecodec.codec import Codec
from gecodec.errors import FormatError, OutputError
from gecodec.image_encoding import encode_framed, frame_image
from gecodec.imageio import tensor_to_pixels

from conftest import ENTROPY_BUNDLE, ROOT, face_folder, face_like

MODEL = ["--model", "tiny-entropy-test"]


def gec(*args: object) -> "CliRunner.invoke":
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture
def codec() -> Codec:
    return Codec(load_bundle(ENTROPY_BUNDLE))


@pytest.fixture
def photos(tmp_path):
    """Three face pictures and a file that is no image."""
    folder = tmp_path / "photos"
    folder.mkdir()
    face_folder(folder)
    (folder / "bad.png").write_bytes(b"not an image")
    return folder


def checked_rows(codec: Codec, count: int = 3) -> list[ArchiveRow]:
    files = encode_framed(codec, [frame_image(codec, face_like(seed=i)) for i in range(count)], check=True)
    return [ArchiveRow(f"{i}.png", data, report) for i, (data, report) in enumerate(files)]


def test_rows_come_back_as_written_with_their_reports_and_error_rows(codec, tmp_path):
    rows = [*checked_rows(codec), ArchiveRow("bad.png", error="not a readable image")]
    path = tmp_path / "faces.parquet"
    assert write_archive(path, rows) == 4
    assert list(read_archive(path)) == rows
    assert archive_ids(path) == ["0.png", "1.png", "2.png", "bad.png"]
    summary = summarise(path)
    assert (summary.rows, summary.errors, summary.gec_bytes) == (4, 1, sum(len(row.gec) for row in rows[:3]))
    assert summary.models == {codec.bundle.model_hex: 3}


def test_any_parquet_reader_sees_the_columns_and_the_layout_version(codec, tmp_path):
    path = tmp_path / "faces.parquet"
    write_archive(path, checked_rows(codec, 2))
    table = pq.read_table(path)
    assert table.column_names == ["id", "gec", "bytes", "psnr", "expected_psnr", "expected_on", "framing", "typicality",
                                  "enlarged", "error"]
    assert table.column("bytes").to_pylist() == [len(data) for data in table.column("gec").to_pylist()]
    assert json.loads(table.schema.metadata[METADATA_KEY])["version"] == 1


def test_a_table_from_another_tool_with_ids_and_files_reads_and_decodes(codec, tmp_path):
    data = [row.gec for row in checked_rows(codec, 2)]
    path = tmp_path / "mine.parquet"
    pq.write_table(pa.table({"id": ["a", "b"], "gec": data}), path)  # no report, no error column, no metadata
    decoded = list(decode_rows(read_archive(path)))
    assert [row.id for row in decoded] == ["a", "b"] and all(row.error is None for row in decoded)
    assert (tensor_to_pixels(decoded[1].pixels) == tensor_to_pixels(codec.decode_batch(data)[1])).all()


def test_each_row_decodes_on_its_own_and_a_damaged_one_is_that_rows_error(codec, tmp_path):
    rows = checked_rows(codec, 3)
    damaged = bytearray(rows[1].gec)
    damaged[-3] ^= 0xFF
    rows[1] = ArchiveRow("1.png", bytes(damaged))
    decoded = list(decode_rows([*rows, ArchiveRow("x.png", error="no face")], codec, batch_size=8))
    assert [row.error is None for row in decoded] == [True, False, True, False]
    assert "x.png" == decoded[3].id and "not encoded: no face" == decoded[3].error
    alone = codec.decode_batch([rows[2].gec])[0]
    assert (tensor_to_pixels(decoded[2].pixels) == tensor_to_pixels(alone)).all()


def test_an_interrupted_write_leaves_no_archive_and_keeps_the_old_one(codec, tmp_path):
    path = tmp_path / "faces.parquet"
    write_archive(path, checked_rows(codec, 1))
    before = path.read_bytes()
    with pytest.raises(KeyboardInterrupt):
        with ArchiveWriter(path, force=True) as archive:
            archive.add(ArchiveRow("new.png", b"GE"))
            raise KeyboardInterrupt
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["faces.parquet"]  # no temporary file left behind
    with pytest.raises(OutputError, match="already exists"):
        write_archive(path, [])


@pytest.mark.parametrize("make, message", [
    (lambda path: path.write_bytes(b"PAR1 but no footer"), "not a Parquet file"),
    (lambda path: pq.write_table(pa.table({"name": ["a"]}), path), "no id or gec column"),
    (lambda path: pq.write_table(pa.table({"id": ["a"], "gec": [3]}), path), "column gec holds int64"),
    (lambda path: pq.write_table(pa.table({"id": ["a"], "gec": [b"GE"]}).replace_schema_metadata(
        {METADATA_KEY: b'{"version": 2}'}), path), "layout version 2"),
])
def test_a_file_that_is_no_archive_is_one_line_and_no_traceback(tmp_path, make, message):
    path = tmp_path / "bad.parquet"
    make(path)
    with pytest.raises(FormatError, match=message):
        summarise(path)
    for command in (["info", path], ["decode", path, "-o", tmp_path / "out"]):
        result = gec(*command)
        assert result.exit_code == 1 and result.output.count("\n") == 1 and message in result.output


def test_gec_encode_folder_to_archive_then_decode_and_info(photos, tmp_path):
    archive, out = tmp_path / "faces.parquet", tmp_path / "out"
    result = gec("encode", photos, "-o", archive, *MODEL)
    assert result.exit_code == 1 and "bad.png: not a readable image" in result.output  # the bad image fails
    rows = list(read_archive(archive))  # ... and is an error row, the rest are coded
    assert [row.id for row in rows] == ["0.png", "1.png", "2.png", "bad.png"]
    assert rows[3].error.startswith("not a readable image") and rows[0].report.psnr > 0
    for i in range(3):  # the same files as gec encode writes one by one
        assert gec("encode", photos / f"{i}.png", "-o", tmp_path / f"{i}.gec", *MODEL).exit_code == 0
        assert rows[i].gec == (tmp_path / f"{i}.gec").read_bytes()

    result = gec("decode", archive, "-o", out, "-q")
    assert result.exit_code == 1 and f"{archive}:bad.png: not encoded" in result.output
    assert sorted(p.name for p in out.iterdir()) == ["0.png", "1.png", "2.png"]
    assert gec("decode", tmp_path / "0.gec", "-o", tmp_path / "alone.png").exit_code == 0
    assert (out / "0.png").read_bytes() == (tmp_path / "alone.png").read_bytes()

    result = gec("info", archive)
    assert result.exit_code == 0
    assert f"{archive}: 4 faces, 1 error row" in result.output and "(tiny-entropy-test): 3 faces" in result.output
    summary = json.loads(gec("info", archive, "--json").output)
    assert (summary["rows"], summary["errors"]) == (4, 1)
    assert summary["gec_bytes_total"] == sum(len(row.gec) for row in rows[:3])


def test_gec_encode_refuses_to_overwrite_an_archive_before_any_work(photos, tmp_path):
    archive = tmp_path / "faces.parquet"
    archive.write_bytes(b"precious")
    result = gec("encode", photos / "0.png", "-o", archive, *MODEL)
    assert result.exit_code == 1 and "already exists (use --force" in result.output
    assert archive.read_bytes() == b"precious"
    assert gec("encode", photos / "0.png", "-o", archive, "-f", *MODEL).exit_code == 0
    assert archive_ids(archive) == ["0.png"]


def test_gec_decode_keeps_every_image_inside_its_output_folder(codec, tmp_path):
    data = checked_rows(codec, 1)[0].gec
    archive = tmp_path / "evil.parquet"
    ids = ("../up.png", "/abs.png", ".", "sub/ok.png", "sub/ok.jpg")
    write_archive(archive, [ArchiveRow(row_id, data) for row_id in ids])
    result = gec("decode", archive, "-o", tmp_path / "out", "-q")
    assert result.exit_code == 1
    for row_id in ids[:3]:
        assert f"{row_id!r} is not a relative path inside the output folder" in result.output
    assert "two rows would write the same output" in result.output
    assert [p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.png")] == ["out/sub/ok.png"]
    assert Image.open(tmp_path / "out" / "sub" / "ok.png").size == (16, 16)


def test_without_pyarrow_an_archive_is_a_one_line_error_that_says_what_to_install(image_file, tmp_path):
    archive = tmp_path / "faces.parquet"
    for command, named in ((["encode", str(image_file), "-o", str(archive)], ""), (["info", str(archive)], f"{archive}: ")):
        code = f"import sys; sys.modules['pyarrow'] = None; from gecodec.cli import run; run({command!r})"
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
        assert result.returncode == 1
        assert result.stderr == f"gec: error: {named}Parquet archives need pyarrow: pip install 'gecodec[archive]'\n"
    assert not archive.exists()


def test_the_overhead_bench_takes_an_archive_apart_column_by_column(photos, tmp_path):
    from bench.archive_overhead import main as overhead_main

    (photos / "bad.png").unlink()
    out = tmp_path / "overhead.json"
    overhead_main(["--data", str(photos), "--n", "3", "--checked", "2", "--model", str(ENTROPY_BUNDLE), "--out", str(out)])
    unchecked, checked = json.loads(out.read_text())["sets"]
    assert (unchecked["faces"], unchecked["checked"], checked["faces"], checked["checked"]) == (3, False, 2, True)
    columns = checked["column_bytes_per_face"]
    assert list(columns) == SCHEMA.names
    total = sum(columns.values()) * 2 + checked["footer_and_headers_bytes"]
    assert checked["archive_bytes_per_face"] == pytest.approx(total / 2, abs=0.02)
