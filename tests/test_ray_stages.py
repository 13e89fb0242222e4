"""The Ray Data stages (gecodec.ray_stages) on a local Ray instance of two CPUs, with the tiny test model: a folder
encoded and its archive decoded by two actors each, byte for byte what the library makes, with error rows; and
an actor killed mid-job, with every input in the output once. Two jobs in all: a job costs Ray seconds."""

from __future__ import annotations

import os
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

import gecodec
from gecodec.archive import ArchiveRow, read_archive, to_table, write_archive
from gecodec.errors import GecError
from gecodec.fileio import image_bytes
from gecodec.imageio import tensor_to_pixels

from conftest import ENTROPY_BUNDLE, face_like

ray = pytest.importorskip("ray")
ray_stages = pytest.importorskip("gecodec.ray_stages")
GecDecoder, check_complete = ray_stages.GecDecoder, ray_stages.check_complete

MODEL = str(ENTROPY_BUNDLE)  # a path: the actors load it as it is
FACES = 6
# Two actors of half a CPU each leave a CPU to Ray Data's readers and writers: actors holding every CPU of the
# instance would starve them.
ACTORS = {"num_cpus": 0.5}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    models = tmp_path_factory.getbasetemp() / "models"  # conftest's model folder, which the actors need as well
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"GECODEC_MODEL_DIR": str(models)}})
    ray.data.DataContext.get_current().enable_progress_bars = False
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """Faces in a folder and a subfolder, and a file that is no image."""
    folder = tmp_path_factory.mktemp("photos")
    (folder / "more").mkdir()
    for i in range(FACES):
        face_like(seed=i).save(folder / ("more" if i % 2 else ".") / f"{i}.png")
    (folder / "bad.png").write_bytes(b"not an image")
    return folder


@pytest.fixture(scope="module")
def shards(cluster, photos, tmp_path_factory) -> Path:
    """The folder encoded by two actors, two faces a batch, into shards of three rows."""
    out = tmp_path_factory.mktemp("encoded") / "shards"
    report = ray_stages.encode_folder(photos, out, model=MODEL, batch_size=2, rows_per_shard=3, **ACTORS)
    assert (report.rows, report.errors, len(report.shards)) == (FACES + 1, 1, 3)
    return out


def rows_in(folder: Path) -> list[ArchiveRow]:
    return [row for shard in sorted(folder.glob("*.parquet")) for row in read_archive(shard)]


def test_encoding_a_folder_gives_every_image_once_with_the_files_the_library_makes(photos, shards):
    rows = {row.id: row for row in rows_in(shards)}
    expected = ["bad.png", *(f"more/{i}.png" if i % 2 else f"{i}.png" for i in range(FACES))]
    assert sorted(rows) == sorted(expected)
    assert rows.pop("bad.png").error.startswith("not a readable image")
    for row_id, row in rows.items():
        data, report = gecodec.encode(photos / row_id, model=MODEL, report=True)
        assert (row.gec, row.report) == (data, report)


class DiesOnce(GecDecoder):
    """A decoder whose first batch, in whichever actor takes it, kills that actor's process, once in the job."""

    def __init__(self, marker: str, **options) -> None:
        super().__init__(**options)
        self.marker = marker

    def __call__(self, batch):
        try:
            os.close(os.open(self.marker, os.O_CREAT | os.O_EXCL))  # one actor wins, once
        except FileExistsError:
            return super().__call__(batch)
        os._exit(1)


def test_decoding_survives_a_killed_actor_with_every_row_once_as_gec_decode_writes_it(shards, tmp_path, monkeypatch):
    archive = tmp_path / "archive"
    archive.mkdir()
    rows = rows_in(shards)
    damaged = next(row for row in rows if row.gec is not None)
    broken = ArchiveRow("broken.png", damaged.gec[:-1] + bytes([damaged.gec[-1] ^ 0xFF]))
    write_archive(archive / "a.parquet", rows)
    write_archive(archive / "b.parquet", [broken])
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the actors cannot import tests/
    monkeypatch.setattr(ray_stages, "GecDecoder", DiesOnce)
    marker = tmp_path / "died"

    report = ray_stages.decode_archive(archive, tmp_path / "decoded", batch_size=2, marker=str(marker), **ACTORS)
    assert marker.exists()  # an actor died, and Ray ran its batch again
    assert (report.rows, report.errors) == (FACES + 2, 2)  # write_shards checked: every id, once
    table = pq.read_table(tmp_path / "decoded").to_pydict()
    assert sorted(table["id"]) == sorted([*(row.id for row in rows), "broken.png"])
    out = dict(zip(table["id"], zip(table["image"], table["error"])))
    assert out["broken.png"][0] is None and "checksum" in out["broken.png"][1]
    assert out["bad.png"][0] is None and out["bad.png"][1].startswith("not encoded: not a readable image")
    for row in rows:
        if row.gec is not None:
            assert out[row.id] == (image_bytes(gecodec.decode(row.gec), Path("x.png")), None)


def test_the_decoder_gives_the_librarys_pixels_and_zeros_for_error_rows(shards):
    rows = rows_in(shards)
    table = to_table(rows)
    out = GecDecoder(model=MODEL, batch_size=3)(table).to_pydict()  # what each actor does with a batch
    assert out["id"] == [row.id for row in rows]
    files = [row.gec for row in rows if row.gec is not None]
    library = iter(tensor_to_pixels(gecodec.Codec(MODEL).decode_batch(files)))
    for row, pixels, error in zip(rows, out["pixels"], out["error"]):
        assert (np.asarray(pixels) == (next(library) if row.gec is not None else 0)).all()
        assert (error is None) == (row.gec is not None)


def test_the_output_check_names_rows_lost_and_rows_twice():
    check_complete(["a", "b", "b"], Counter({"b": 2, "a": 1}))
    with pytest.raises(GecError, match=r"1 rows missing \(a\), 1 extra \(c\)"):
        check_complete(["a", "b"], Counter({"b": 1, "c": 1}))
