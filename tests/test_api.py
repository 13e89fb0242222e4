"""gecodec.read_gec and the library calls on hostile paths: devices, FIFOs, folders, oversized files."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner

from gecodec import container
from gecodec.api import read_gec
from gecodec.cli import main
from gecodec.errors import GecError

from conftest import GOLDEN


def test_a_device_that_reports_size_zero_is_refused_without_reading_it():
    with pytest.raises(GecError, match="not a regular file"):
        read_gec("/dev/zero")


def test_a_fifo_is_refused_at_once_instead_of_waiting_for_a_writer(tmp_path: Path):
    fifo = tmp_path / "pipe.gec"
    os.mkfifo(fifo)
    outcome: list[BaseException | bytes] = []
    reader = threading.Thread(target=lambda: outcome.append(_attempt(fifo)), daemon=True)
    reader.start()
    reader.join(timeout=5)
    assert not reader.is_alive(), "reading a FIFO blocked"
    assert isinstance(outcome[0], GecError) and "not a regular file" in str(outcome[0])


def _attempt(path: Path) -> BaseException | bytes:
    try:
        return read_gec(path)
    except GecError as exc:
        return exc


def test_a_folder_and_a_missing_file_name_the_problem(tmp_path: Path):
    with pytest.raises(GecError, match="is a directory"):
        read_gec(tmp_path)
    with pytest.raises(GecError, match="no such file"):
        read_gec(tmp_path / "absent.gec")


def test_an_oversized_file_is_refused_after_reading_one_byte_more_than_the_limit(tmp_path: Path):
    big = tmp_path / "big.gec"
    big.write_bytes(b"GEC\x01" + bytes(container.MAX_FILE_SIZE))
    with pytest.raises(GecError, match="larger than any valid .gec file"):
        read_gec(big)


def test_gec_decode_of_dev_zero_is_a_one_line_error(tmp_path: Path):
    result = CliRunner().invoke(main, ["decode", "/dev/zero", "-o", str(tmp_path / "out.png")])
    assert result.exit_code != 0 and "not a regular file" in result.output and "Traceback" not in result.output


def test_library_decode_can_show_a_progress_bar(capsys):
    import gecodec

    image = gecodec.decode(GOLDEN / "ge-8bit.gec", progress=True, iters=3, restarts=1)
    assert image.size == (16, 16) and "decode" in capsys.readouterr().err
    steps: list[int] = []
    gecodec.decode(GOLDEN / "ge-8bit.gec", progress=steps.append, iters=3, restarts=1)
    assert steps == [1, 1, 1]  # one image advanced by each of the 3 iterations
    gecodec.decode(GOLDEN / "default-v3-start-learned.gec", progress=True)  # a layer on the start: no search, no bar
    assert capsys.readouterr().err == ""


def test_library_encode_can_report_what_the_file_decodes_to():
    import gecodec
    from conftest import face_like

    data, report = gecodec.encode(face_like(), model="tiny-entropy-test", report=True)
    assert report.bytes == len(data) and report.psnr > 0 and not report.unusual
    assert gecodec.encode(face_like(), model="tiny-entropy-test") == data


def test_the_expected_figure_follows_the_models_validation_curve():
    from types import SimpleNamespace

    from gecodec.report import expected_psnr

    card = {"rate": {"val_curve": [{"quality": 40, "psnr": 24.0}, {"quality": 60, "psnr": 25.0}]},
            "val": {"bits": 8, "ge_real": {"psnr": 25.5}}}
    bundle = SimpleNamespace(card=card, ladder=None, transform=None)
    assert expected_psnr(bundle, container.Header(model_id=1, quality=50)) == (24.5, "validation")
    assert expected_psnr(bundle, container.Header(model_id=1, bits=8)) == (25.5, "validation")
    assert expected_psnr(bundle, container.Header(model_id=1, bits=4)) is None


def test_a_layered_files_expected_figure_is_its_ladder_rungs():
    from types import SimpleNamespace

    from gecodec.ladder import Rung
    from gecodec.report import expected_psnr

    ladder = (Rung(50), Rung(30, 2, "learned", True), Rung(30, 3, "learned", True))
    card = {"quality_ladder": {"rungs": [{"quality": q, "psnr": 25.0 + q} for q in range(3)]}}
    bundle = SimpleNamespace(card=card, ladder=ladder, transform=None)

    def layered(level: int, on_start: bool = True, transform: bool = False) -> container.Header:
        layer = container.Layer(level, 40, 7, "learned", 3, on_start)
        return container.Header(model_id=1, quality=30, layer=layer, transform=transform)

    assert expected_psnr(bundle, layered(3)) == (27.0, "training")
    assert expected_psnr(bundle, layered(4)) is None  # not a rung
    assert expected_psnr(bundle, layered(3, on_start=False)) is None
    assert expected_psnr(bundle, layered(3, transform=True)) is None  # another base coder's qualities
    card["quality_ladder"]["rungs"].pop()
    assert expected_psnr(bundle, layered(3)) is None


def test_encode_takes_arrays_and_image_bytes_and_names_what_it_cannot_read(tmp_path: Path):
    import io

    import numpy as np
    from PIL import Image

    import gecodec
    from gecodec.errors import ImageError

    pixels = np.asarray(Image.open(GOLDEN.parent.parent / "tests" / "data" / "faces.png").convert("RGB"))[:, :64]
    encoded = io.BytesIO()
    Image.fromarray(pixels).save(encoded, "PNG")
    from_array = gecodec.encode(pixels, model="tiny-entropy-test")
    assert from_array == gecodec.encode(encoded.getvalue(), model="tiny-entropy-test")
    with pytest.raises(ImageError, match=r"must be uint8 of shape \(H, W\), \(H, W, 3\) or \(H, W, 4\), not float32"):
        gecodec.encode(pixels.astype(np.float32), model="tiny-entropy-test")
    with pytest.raises(ImageError) as caught:
        gecodec.encode(b"\xff\xd8\xff" + b"x" * 30_000, model="tiny-entropy-test")
    assert str(caught.value) == "image bytes: not a readable image (UnidentifiedImageError)"  # not the bytes
    with pytest.raises(ImageError, match=r"not uint8 of shape \(64, 64, 2\)"):
        gecodec.encode(pixels[..., :2].copy(), model="tiny-entropy-test")  # two channels: no image mode
    with pytest.raises(ImageError, match="from an object of type int"):
        gecodec.encode(3, model="tiny-entropy-test")


def test_a_multi_frame_image_warns_that_its_first_frame_is_coded(tmp_path: Path):
    from PIL import Image

    import gecodec

    frames = [Image.new("RGB", (16, 16), (40 * i, 90, 80)) for i in range(3)]
    frames[0].save(tmp_path / "moving.gif", save_all=True, append_images=frames[1:])
    with pytest.warns(UserWarning, match="moving.gif: an image of 3 frames; using the first"):
        gecodec.encode(tmp_path / "moving.gif", model="tiny-entropy-test")
