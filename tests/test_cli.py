"""The `gec` command, driven through click's CliRunner."""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import signal
import stat

import pytest
from click.testing import CliRunner
from PIL import Image

from gecodec import container
from gecodec.cli import main
from gecodec.errors import OutputError

from conftest import GOLDEN, face_folder, face_like
from test_imageio import png_with_size

TINY = ["--model", "tiny-test"]
FAST = ["--iters", "5", "--restarts", "1", "-q"]


def gec(*args: str) -> "CliRunner.invoke":
    return CliRunner().invoke(main, [str(a) for a in args])


def test_encode_then_decode_one_file(image_file, tmp_path):
    gec_path, png_path = tmp_path / "face.gec", tmp_path / "out.png"
    result = gec("encode", image_file, "-o", gec_path, *TINY)
    assert result.exit_code == 0, result.output
    assert gec_path.stat().st_size == 17 + 16
    result = gec("decode", gec_path, "-o", png_path, *FAST)
    assert result.exit_code == 0, result.output
    assert Image.open(png_path).size == (16, 16)


def test_outputs_default_to_next_to_the_input(image_file):
    assert gec("encode", image_file, *TINY).exit_code == 0
    assert image_file.with_suffix(".gec").exists()
    image_file.unlink()
    assert gec("decode", image_file.with_suffix(".gec"), *FAST).exit_code == 0
    assert image_file.exists()


def test_folder_of_images_keeps_base_names(tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    for name in ("a", "b"):
        face_like(seed=len(name)).save(inputs / f"{name}.png")
    assert gec("encode", inputs, "-o", tmp_path / "codes", *TINY).exit_code == 0
    assert sorted(p.name for p in (tmp_path / "codes").iterdir()) == ["a.gec", "b.gec"]
    result = gec("decode", tmp_path / "codes", "-o", tmp_path / "out", "--format", "webp", *FAST)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.webp", "b.webp"]


def test_existing_output_is_refused_unless_forced(image_file, tmp_path):
    target = tmp_path / "face.gec"
    target.write_bytes(b"precious")
    result = gec("encode", image_file, "-o", target, *TINY)
    assert result.exit_code == 1
    assert "already exists" in result.output and str(target) in result.output
    assert target.read_bytes() == b"precious"
    assert gec("encode", image_file, "-o", target, "--force", *TINY).exit_code == 0
    assert target.read_bytes().startswith(b"GEC")


def test_batch_goes_on_past_a_bad_file_and_reports_it(image_file, tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    result = gec("encode", bad, image_file, "-o", tmp_path / "out", *TINY)
    assert result.exit_code == 1
    assert "bad.png" in result.output and "1 of 2 files failed" in result.output
    assert (tmp_path / "out" / "face.gec").exists()
    assert not (tmp_path / "out" / "bad.gec").exists()


@pytest.mark.parametrize("damage", ["truncate", "flip", "magic"])
def test_damaged_gec_file_gets_one_line_error(tmp_path, damage):
    data = bytearray((GOLDEN / "ge-8bit.gec").read_bytes())
    if damage == "truncate":
        data = data[:20]
    elif damage == "flip":
        data[10] ^= 1
    else:
        data[0:3] = b"XYZ"
    path = tmp_path / "broken.gec"
    path.write_bytes(bytes(data))
    result = gec("decode", path, "-o", tmp_path / "x.png", *FAST)
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "broken.gec" in lines[0]
    assert "Traceback" not in result.output
    assert not (tmp_path / "x.png").exists()


def test_missing_model_names_the_id_it_needs(tmp_path):
    path = tmp_path / "other.gec"
    path.write_bytes(container.write(container.Header(model_id=0xFEEDF00D, bits=8), bytes(16)))
    result = gec("decode", path, "-o", tmp_path / "x.png", *FAST)
    assert result.exit_code == 1
    assert "feedf00d" in result.output


def test_unwritable_output_folder_is_reported(image_file, tmp_path):
    result = gec("encode", image_file, "-o", tmp_path / "missing" / "deeper" / "face.gec", *TINY)
    assert result.exit_code == 1
    assert "does not exist" in result.output


def test_a_folder_that_cannot_be_written_is_reported_before_any_decoding(monkeypatch):
    import gecodec.codec

    def no_search(*args, **kwargs):
        raise AssertionError("the search ran before the output folder was checked")

    monkeypatch.setattr(gecodec.codec, "latent_search", no_search)
    result = gec("decode", GOLDEN / "ge-8bit.gec", "-o", "/sys/face.png", *FAST)  # not writable, even by root
    assert result.exit_code == 1 and "/sys: cannot write there" in result.output


def test_ctrl_c_keeps_the_outputs_already_written_and_leaves_no_temporary_file(monkeypatch, tmp_path):
    import gecodec.codec

    real_search, calls = gecodec.codec.latent_search, []

    def interrupted_second_time(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_search(*args, **kwargs)

    monkeypatch.setattr(gecodec.codec, "latent_search", interrupted_second_time)
    files = [GOLDEN / "ge-8bit.gec", GOLDEN / "ge-4bit-nonsquare.gec"]
    result = gec("decode", *files, "-o", tmp_path, "--batch-size", "1", *FAST)
    assert result.exit_code == 1 and "Aborted" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ge-8bit.png"]


def test_unknown_output_extension_is_refused_before_decoding(tmp_path):
    result = gec("decode", GOLDEN / "ge-8bit.gec", "-o", tmp_path / "x.xyz", *FAST)
    assert result.exit_code == 1 and "unsupported image extension" in result.output


def test_bad_option_is_a_usage_error(image_file):
    result = gec("encode", image_file, "--bits", "13", *TINY)
    assert result.exit_code == 2


def test_no_partial_output_left_behind_on_failure(tmp_path):
    gec("decode", GOLDEN / "ge-8bit.gec", "-o", tmp_path / "x.xyz", *FAST)
    assert [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_info_shows_header_and_layout():
    result = gec("info", GOLDEN / "ge-4bit-nonsquare.gec")
    assert result.exit_code == 0
    assert "tiny-test" in result.output and "40x24" in result.output and "4 bits" in result.output


def test_info_json_is_machine_readable():
    result = gec("info", GOLDEN / "cs-6bit.gec", "--json")
    info = json.loads(result.output)
    assert info["mode"] == "cs" and info["values"] == 32 and info["bits"] == 6
    assert info["layout"]["fixed"] + info["layout"]["header"] + info["layout"]["payload"] == info["bytes"]


def test_models_lists_the_user_model_folder():
    result = gec("models", "--json")
    names = [row["name"] for row in json.loads(result.output)]
    assert "tiny-test" in names


def test_decode_cs_mode_file(image_file, tmp_path):
    assert gec("encode", image_file, "-o", tmp_path / "cs.gec", "--mode", "cs", "--count", "24", *TINY).exit_code == 0
    assert gec("decode", tmp_path / "cs.gec", "-o", tmp_path / "cs.png", *FAST).exit_code == 0
    assert Image.open(tmp_path / "cs.png").size == (16, 16)


def test_console_script_reports_errors_without_traceback(tmp_path):
    import subprocess
    import sys

    env = {**os.environ, "GECODEC_MODEL_DIR": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-c", "from gecodec.cli import run; run()", "decode", str(tmp_path / "nope.gec")],
                          capture_output=True, text=True, env=env)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr and "nope.gec" in proc.stderr


def test_a_dangling_symlink_at_the_output_is_not_replaced_without_force(tmp_path, image_file):
    link = tmp_path / "out.gec"
    link.symlink_to(tmp_path / "nowhere")
    result = CliRunner().invoke(main, ["encode", str(image_file), "-o", str(link)])
    assert result.exit_code != 0 and "already exists" in result.output and link.is_symlink()


def test_encoding_an_empty_folder_creates_no_output_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    result = CliRunner().invoke(main, ["encode", str(tmp_path / "empty"), "-o", str(tmp_path / "x.gec")])
    assert result.exit_code != 0 and not (tmp_path / "x.gec").exists()


def test_a_batch_that_diverges_is_reported_and_the_other_batches_are_written(tmp_path, image_file, monkeypatch):
    from gecodec import codec as codec_module

    good, bad = tmp_path / "good.gec", tmp_path / "bad.gec"
    assert CliRunner().invoke(main, ["encode", str(image_file), "-o", str(good)]).exit_code == 0
    header, payload = container.read(good.read_bytes())
    bad.write_bytes(container.write(dataclasses.replace(header, hints={"lr": 10.0}, start_picture=False), payload))
    honest = codec_module.latent_search

    def diverging(generator, measure, targets, seeds, options, *args):  # the bad file's search diverges
        result = honest(generator, measure, targets, seeds, options, *args)
        if options.lr == 10.0:
            result.images = result.images * float("nan")
        return result

    monkeypatch.setattr(codec_module, "latent_search", diverging)
    result = CliRunner().invoke(main, ["decode", str(bad), str(good), "-o", str(tmp_path / "out"), "--iters", "2"])
    assert result.exit_code != 0 and "non-finite" in result.output and "Traceback" not in result.output
    assert (tmp_path / "out" / "good.png").exists() and not (tmp_path / "out" / "bad.png").exists()


ENTROPY = ["--model", "tiny-entropy-test"]


def test_quality_and_target_bytes_make_entropy_coded_files_that_decode(image_file, tmp_path):
    small, fitted = tmp_path / "small.gec", tmp_path / "fitted.gec"
    assert gec("encode", image_file, "-o", small, "--quality", "10", *ENTROPY).exit_code == 0
    assert gec("encode", image_file, "-o", fitted, "--target-bytes", "24", *ENTROPY).exit_code == 0
    assert fitted.stat().st_size <= 24 and small.stat().st_size < fitted.stat().st_size
    assert gec("decode", small, fitted, "-o", tmp_path / "out", *FAST).exit_code == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["fitted.png", "small.png"]


def test_info_shows_the_quality_and_bits_per_value(image_file, tmp_path):
    assert gec("encode", image_file, "-o", tmp_path / "q.gec", "--quality", "70", *ENTROPY).exit_code == 0
    result = gec("info", tmp_path / "q.gec")
    assert result.exit_code == 0 and "quality   base quality 70 alone" in result.output  # no ladder: --quality is it
    assert "bits each" in result.output
    info = json.loads(gec("info", tmp_path / "q.gec", "--json").output)
    assert (info["version"], info["quality"], info["layout"]["fixed"]) == (2, 70, 10)
    assert info["bits_per_value"] == round(info["layout"]["payload"] * 8 / 16, 3)


@pytest.mark.parametrize("options, problem", [
    (["--quality", "50", "--bits", "8"], "not 2: bits and quality"),
    (["--target-bytes", "2"], "no file fits in 2 bytes"),
    (["--quality", "50", "--model", "tiny-test"], "no entropy model"),
])
def test_bad_rate_settings_get_a_one_line_error(image_file, tmp_path, options, problem):
    result = gec("encode", image_file, "-o", tmp_path / "x.gec", *(options if "--model" in options else options + ENTROPY))
    assert result.exit_code != 0 and problem in result.output
    assert "Traceback" not in result.output and not (tmp_path / "x.gec").exists()


def test_decoding_an_image_says_it_is_not_a_gec_file(image_file):
    result = gec("decode", image_file, *FAST)
    assert result.exit_code == 1 and "not a .gec file" in result.output and "already exists" not in result.output


def test_a_gec_file_with_another_extension_still_decodes(tmp_path):
    renamed = tmp_path / "face.bin"
    renamed.write_bytes((GOLDEN / "ge-8bit.gec").read_bytes())
    assert gec("decode", renamed, "-o", tmp_path / "face.png", *FAST).exit_code == 0


def test_bench_without_its_extra_names_what_to_install(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def without_skimage(name, *args, **kwargs):
        if name.startswith("skimage") or name.startswith("bench"):
            raise ModuleNotFoundError(f"No module named {name!r}", name="skimage")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", without_skimage)
    result = gec("bench", "rd", "--data", "x")
    assert result.exit_code == 1 and "bench extra (missing: skimage)" in result.output


def test_encode_reports_what_each_file_decodes_to(image_file, tmp_path):
    result = gec("encode", image_file, "-o", tmp_path / "a.gec", *ENTROPY)
    assert result.exit_code == 0 and "a.gec: " in result.output and "decodes to" in result.output
    quiet = gec("encode", image_file, "-o", tmp_path / "b.gec", "--no-check", *ENTROPY)
    assert quiet.exit_code == 0 and "decodes to" not in quiet.output
    records = gec("encode", image_file, "-o", tmp_path / "c.gec", "--json", *ENTROPY).output.splitlines()
    assert len(records) == 1 and json.loads(records[0])["bytes"] == (tmp_path / "c.gec").stat().st_size
    assert json.loads(records[0])["psnr"] > 0
    silent = gec("encode", image_file, "-o", tmp_path / "d.gec", "-q", *ENTROPY)
    assert silent.exit_code == 0 and silent.output == "" and (tmp_path / "d.gec").exists()


def test_an_image_far_below_the_models_figure_gets_a_warning(image_file, tmp_path, monkeypatch):
    import gecodec.image_encoding

    from gecodec.report import Expected

    monkeypatch.setattr(gecodec.image_encoding, "expected_psnr", lambda bundle, header, framing: Expected(99.0, "validation"))
    with pytest.warns(UserWarning, match="unlike the faces the model knows"):
        result = gec("encode", image_file, "-o", tmp_path / "odd.gec", *ENTROPY)
    assert result.exit_code == 0 and (tmp_path / "odd.gec").exists()


def test_an_output_name_ending_in_a_slash_is_a_folder_even_for_one_input(image_file, tmp_path):
    result = gec("encode", image_file, "-o", f"{tmp_path / 'codes'}/", *TINY)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "codes" / "face.gec").is_file()


def test_several_outputs_under_a_name_like_a_file_are_refused_before_any_folder_is_made(tmp_path):
    result = gec("decode", GOLDEN / "ge-8bit.gec", GOLDEN / "ge-4bit-nonsquare.gec", "-o", tmp_path / "out.jpg", *FAST)
    assert result.exit_code == 1 and "out.jpg: names a file, but several outputs need a folder" in result.output
    assert not (tmp_path / "out.jpg").exists()


def test_an_input_is_never_overwritten_even_with_force(image_file, tmp_path):
    before = image_file.read_bytes()
    (tmp_path / "alias.png").symlink_to(image_file)
    for target in (image_file, tmp_path / "alias.png"):
        result = gec("encode", image_file, "-o", target, "-f", *TINY)
        assert result.exit_code == 1 and "is an input of this command" in result.output
    result = gec("decode", GOLDEN / "ge-8bit.gec", "--paste-into", image_file, "-o", image_file, "-f", *FAST)
    assert result.exit_code == 1 and "is an input of this command" in result.output
    assert image_file.read_bytes() == before


def test_force_replaces_only_regular_files(image_file, tmp_path):
    fifo, to_device = tmp_path / "pipe.gec", tmp_path / "null.gec"
    os.mkfifo(fifo)
    to_device.symlink_to("/dev/null")
    for target, kind in ((fifo, "is a FIFO"), (to_device, "is a device")):
        result = gec("encode", image_file, "-o", target, "-f", *TINY)
        assert result.exit_code == 1 and f"{kind}, not a regular file" in result.output
    assert stat.S_ISFIFO(fifo.lstat().st_mode) and to_device.is_symlink()


def test_a_fifo_as_an_image_is_refused_at_once(image_file, tmp_path):
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    result = gec("encode", fifo, "-o", tmp_path / "x.gec", *TINY)
    assert result.exit_code == 1 and "pipe.png: is a FIFO, not a regular file" in result.output
    result = gec("decode", GOLDEN / "ge-8bit.gec", "--paste-into", fifo, "-o", tmp_path / "x.png", *FAST)
    assert result.exit_code == 1 and "pipe.png: is a FIFO, not a regular file" in result.output


def test_a_deep_photo_to_paste_into_is_checked_before_it_is_decoded(tmp_path):
    (tmp_path / "deep.png").write_bytes(png_with_size(8192, 8192, depth=16, colour=0))  # a header, no pixels
    result = gec("decode", GOLDEN / "ge-8bit.gec", "--paste-into", tmp_path / "deep.png", "-o", tmp_path / "x.png", *FAST)
    assert result.exit_code == 1 and "more than 8 bits a channel" in result.output


def test_any_legal_name_can_be_written_and_longer_ones_are_one_line_errors(image_file, tmp_path):
    longest = tmp_path / ("n" * 251 + ".gec")  # NAME_MAX is 255 bytes
    assert gec("encode", image_file, "-o", longest, *TINY).exit_code == 0 and longest.is_file()
    too_deep = tmp_path.joinpath(*["d" * 200] * 25, "x.gec")  # beyond PATH_MAX
    for target in (tmp_path / ("n" * 252 + ".gec"), too_deep):
        result = gec("encode", image_file, "-o", target, *TINY)
        assert result.exit_code == 1 and "File name too long" in result.output and len(result.output.splitlines()) == 1
    result = gec("encode", too_deep.with_suffix(".png"), *TINY)
    assert result.exit_code == 1 and "cannot read (File name too long)" in result.output


def test_a_name_taken_just_before_the_output_is_moved_into_place_is_kept(tmp_path, monkeypatch):
    from gecodec import fileio

    target = tmp_path / "out.gec"

    def another_writer_first(move):  # the other writer wins the race just before our last step
        def moved(source, destination):
            if not target.exists():
                target.write_bytes(b"theirs")
            return move(source, destination)
        return moved

    monkeypatch.setattr(os, "link", another_writer_first(os.link))
    monkeypatch.setattr(os, "replace", another_writer_first(os.replace))
    with pytest.raises(OutputError, match="already exists"):
        fileio.write_bytes_atomic(target, b"ours")
    assert target.read_bytes() == b"theirs" and [p.name for p in tmp_path.iterdir()] == ["out.gec"]


def test_without_hard_links_a_new_name_is_claimed_exclusively(tmp_path, monkeypatch):
    from gecodec import fileio

    def no_links(source, target):
        raise PermissionError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(fileio.os, "link", no_links)
    fileio.write_bytes_atomic(tmp_path / "out.gec", b"ours")
    with pytest.raises(OutputError, match="already exists"):
        fileio.write_bytes_atomic(tmp_path / "out.gec", b"again")
    assert (tmp_path / "out.gec").read_bytes() == b"ours" and len(list(tmp_path.iterdir())) == 1


def test_sigterm_while_writing_leaves_no_temporary_file(image_file, tmp_path):
    import subprocess
    import sys

    script = ("import os, signal\nfrom gecodec import fileio\nfrom gecodec.cli import run\n"
              "def terminated():  # the temporary file is written: the signal comes before it is moved into place\n"
              "    os.kill(os.getpid(), signal.SIGTERM)\n"
              "fileio._umask = terminated\nrun()\n")
    proc = subprocess.run([sys.executable, "-c", script, "encode", str(image_file), "-o", str(tmp_path / "out.gec"),
                           "--no-check", *TINY], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, proc.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["face.png"]


def test_file_names_are_printed_with_control_characters_escaped(image_file, tmp_path):
    result = gec("encode", tmp_path / "\x1b]0;owned\x07\x1b[2J.png", *TINY)
    assert result.exit_code == 1 and "\\x1b]0;owned\\x07\\x1b[2J.png: no such file" in result.output
    assert "\x1b" not in result.output and "\x07" not in result.output


def test_encoding_a_folder_checks_its_files_in_batches_as_gec_decode_does(tmp_path, monkeypatch):
    from gecodec.codec import Codec

    inputs = face_folder(tmp_path, count=3)
    single = [json.loads(gec("encode", inputs / f"{i}.png", "-o", tmp_path / f"one{i}.gec", "--json",
                             *ENTROPY).output) for i in range(3)]
    batches: list[int] = []
    decode_parsed = Codec.decode_parsed
    monkeypatch.setattr(Codec, "decode_parsed", lambda self, parsed, *args, **kwargs: (
        batches.append(len(parsed)), decode_parsed(self, parsed, *args, **kwargs))[1])
    result = gec("encode", inputs, "-o", tmp_path / "codes", "--batch-size", "2", "--json", *ENTROPY)
    assert result.exit_code == 0 and batches == [2, 1]
    together = [json.loads(line) for line in result.output.splitlines()]
    assert [(r["bytes"], r["psnr"]) for r in together] == [(r["bytes"], r["psnr"]) for r in single]


def test_a_tiny_image_or_one_with_atypical_measurements_is_unusual(tmp_path):
    from gecodec.report import ATYPICAL, EncodeReport

    face_like(8, 8).save(tmp_path / "tiny.png")  # the tiny models' faces are 16x16
    with pytest.warns(UserWarning) as caught:
        result = gec("encode", tmp_path / "tiny.png", "-o", tmp_path / "tiny.gec", "--json", *ENTROPY)
    assert result.exit_code == 0 and json.loads(result.output)["enlarged"] is True
    messages = [str(w.message) for w in caught]
    assert any("a 8x8 image, smaller than the model's 16x16" in m for m in messages)
    assert any("unlike the faces the model knows: it is smaller than the model's faces" in m for m in messages)
    assert EncodeReport(60, 25.0, 25.0, typicality=ATYPICAL + 1).unusual_signs() == [
        "its measurements lie far from those of faces"]
    assert not EncodeReport(60, 25.0, 25.0, typicality=1.0).unusual


def test_a_batch_whose_every_image_fails_is_reported_without_an_internal_error(tmp_path):
    (tmp_path / "broken.png").write_bytes(b"not a png")
    result = gec("encode", tmp_path / "broken.png", "-o", tmp_path / "b.gec", *ENTROPY)
    assert result.exit_code == 1 and "not a readable image" in result.output and "internal" not in result.output
