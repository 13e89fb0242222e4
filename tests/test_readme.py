"""The README's examples run: every shell and Python block, in order, in one temporary folder, with small
stand-ins for the files they name and small settings for training. An example that breaks fails here."""

from __future__ import annotations

import os
import re
import shlex
import warnings
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from gecodec.cli import main as gec_main
from gecodec.train.photos import main as photos_main

from conftest import ROOT
from test_align import face, portrait

pytest.importorskip("dlib")

README = ROOT / "README.md"
SET_UP = ("pip install", "python -m pytest")  # the set-up itself, which CI runs as it is
STAND_INS = {  # the README's paths -> files the test makes
    "../shared/data/celeba64/val/162771.jpg": "face.jpg",
    "../shared/data/celeba64/train": "faces",
    "bench/results/align/portrait.png": "portrait.png",
}
SMALL = {"--minutes 60": "--steps 2 --batch-size 4 --sample-every 1000"}  # a training command's budget
CLUSTER = "gecodec.ray_stages"  # a Python block that needs a Ray cluster is compiled, not run: test_ray_stages.py
# runs its calls on a local one


def blocks(text: str) -> list[tuple[str, str]]:
    """The README's fenced blocks whose language is bash or python, in order: (language, code)."""
    return re.findall(r"```(bash|python)\n(.*?)```", text, flags=re.S)


def commands(code: str) -> list[list[str]]:
    """A shell block's commands, as argument lists: continuation lines joined, comments dropped, each && part
    one command, the set-up commands left out, the stand-ins and small settings put in."""
    found = []
    for line in code.replace("\\\n", " ").splitlines():
        words = shlex.split(line, comments=True)
        while words:
            part = words[: words.index("&&")] if "&&" in words else words
            words = words[len(part) + 1 :]
            text = shlex.join(part)
            if not text.startswith(SET_UP):
                for old, new in {**STAND_INS, **SMALL}.items():
                    text = text.replace(old, new)
                found.append(shlex.split(text))
    return found


def make_stand_ins(folder: Path) -> None:
    """The images the README's examples read."""
    face(0).save(folder / "face.jpg")
    portrait(1).save(folder / "portrait.png")
    portrait(1).save(folder / "portrait.jpg")
    face(2).save(folder / "noisy.png")
    (folder / "photos").mkdir()
    for i in range(2):
        portrait(i).save(folder / "photos" / f"photo{i}.jpg")
    (folder / "faces").mkdir()
    for i in range(8):  # the four faces and their mirror images
        picture = face(i % 4)
        (picture.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if i >= 4 else picture).save(folder / "faces" / f"{i}.png")
    for person in ("Ada", "Ben", "Cy", "Dee", "Eve"):
        (folder / "my_photos" / person).mkdir(parents=True)
        for shot in range(2):
            portrait((len(person) + shot) % 4, angle=4.0 * shot).save(folder / "my_photos" / person / f"{shot}.jpg")


def run(argv: list[str]) -> None:
    if argv[0] == "gec":
        result = CliRunner().invoke(gec_main, argv[1:])
        assert result.exit_code == 0, f"{shlex.join(argv)}:\n{result.output}"
    elif argv[:3] == ["python", "-m", "gecodec.train.photos"]:
        photos_main(argv[3:])
    else:
        pytest.fail(f"the README runs {shlex.join(argv)}, which this test does not know how to run")


def test_every_shell_and_python_block_of_the_readme_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    make_stand_ins(tmp_path)
    found = blocks(README.read_text())
    assert {language for language, _ in found} == {"bash", "python"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the examples' warnings are the CLI's to print
        for language, code in found:
            if language == "bash":
                for argv in commands(code):
                    run(argv)
            else:
                compiled = compile(code, str(README), "exec")
                if CLUSTER not in code:
                    exec(compiled, {"__name__": "readme"})
    assert os.path.exists("face.png") and os.path.exists("back.jpg")
