"""The quality ladder (gecodec/ladder.py): what --quality writes on a model with refinement tables, and how
gecodec.train.quality_ladder picks it."""

from __future__ import annotations

import pytest
import torch

from gecodec import container
from gecodec.bundle import Bundle, load_bundle, save_bundle
from gecodec.codec import Codec
from gecodec.entropy import QUALITIES
from gecodec.errors import BundleError, OptionError
from gecodec.ladder import Rung
from gecodec.metrics import psnr_8bit
from gecodec.refine import fit_refinement
from gecodec.train.quality_ladder import candidates, measure_rungs, pick_ladder

from conftest import ENTROPY_BUNDLE

# A made-up ladder for the tiny model: every base quality up to its default alone, then layers on small bases.
LADDER = tuple([Rung(q) for q in range(61)] + [Rung(q - 60, (q - 61) % 16) for q in range(61, QUALITIES)])


def images(n: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 3, 16, 16, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def with_ladder(ladder: tuple[Rung, ...] | None = LADDER) -> Bundle:
    bundle = load_bundle(ENTROPY_BUNDLE)
    bundle.refine = fit_refinement(images(8, 1) * 0.2)
    bundle.ladder = ladder
    return bundle


@pytest.fixture(scope="module")
def codec() -> Codec:
    return Codec(with_ladder(), "cpu")


@pytest.mark.parametrize("quality", [0, 45, 60, 61, 80, 100])
def test_a_quality_writes_its_rung(codec, quality):
    header, _ = container.read(codec.encode_batch(images(1), quality=quality)[0])
    rung = LADDER[quality]
    assert header.quality == rung.base_quality
    assert (header.layer[0] if header.layer else None) == rung.level


def test_the_default_file_is_the_same_with_or_without_a_ladder(codec):
    plain = Codec(with_ladder(None), "cpu")
    assert codec.rate_settings()["quality"] == LADDER.index(Rung(60)) == codec.bundle.default_quality
    assert codec.encode_batch(images(2)) == plain.encode_batch(images(2))


def test_a_refinement_level_goes_on_the_default_base_and_not_beside_a_quality(codec):
    header, _ = container.read(codec.encode_batch(images(1), refine=5)[0])
    assert (header.quality, header.layer[0]) == (60, 5)
    with pytest.raises(OptionError, match="a quality or a refinement level, not both"):
        codec.encode_batch(images(1), quality=70, refine=5)


def test_a_ladder_survives_a_bundle_round_trip(tmp_path):
    save_bundle(with_ladder(), tmp_path / "ladder.safetensors")
    loaded = load_bundle(tmp_path / "ladder.safetensors")
    assert loaded.ladder == LADDER and loaded.model_id == load_bundle(ENTROPY_BUNDLE).model_id


@pytest.mark.parametrize("ladder, problem", [
    (LADDER[:-1], "must list 101 rungs"),
    (LADDER[:-1] + (Rung(3, 16),), "is not \\[base quality"),
    (LADDER[:-1] + (Rung(101),), "is not \\[base quality"),
    (tuple(Rung(q // 2, 1) for q in range(QUALITIES)), "default quality's base alone"),
])
def test_a_bad_ladder_is_refused_on_load(tmp_path, ladder, problem):
    save_bundle(with_ladder(ladder), tmp_path / "bad.safetensors")
    with pytest.raises(BundleError, match=problem):
        load_bundle(tmp_path / "bad.safetensors")


def test_a_bad_ladder_is_not_written_over_a_good_bundle(tmp_path):
    from gecodec.bundle import update_bundle

    path = tmp_path / "ladder.safetensors"
    save_bundle(with_ladder(), path)
    before = path.read_bytes()
    with pytest.raises(BundleError, match="default quality's base alone"):
        update_bundle(path, ladder=tuple(Rung(q // 2, 1) for q in range(QUALITIES)))
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["ladder.safetensors"]


def test_a_ladder_needs_refinement_tables(tmp_path):
    bundle = with_ladder()
    bundle.refine = None
    save_bundle(bundle, tmp_path / "bad.safetensors")
    with pytest.raises(BundleError, match="needs an entropy model and refinement tables"):
        load_bundle(tmp_path / "bad.safetensors")


def synthetic_points() -> list[dict]:
    """Candidates shaped like the shipped model's: bases that level off, then layers that grow by ~19% each."""
    points = []
    for q in range(71):
        base_bytes = 24 * 1.02**q
        points.append({"base_quality": q, "level": None, "bytes": base_bytes, "psnr": 25 - 7.6 * 0.93**q})
        for level in range(16):
            points.append({"base_quality": q, "level": level, "bytes": base_bytes + 60 * 1.19**level * (1.4 - q / 150),
                           "psnr": 26.7 + 0.95 * level + 0.01 * q})
    return points


def test_the_picked_ladder_rises_at_every_step_through_the_default_base():
    rungs = pick_ladder(synthetic_points(), (Rung(60),), lowest_bytes=40, margin_db=0.03)
    assert len(rungs) == QUALITIES
    assert all(b["bytes"] > a["bytes"] and b["psnr"] >= a["psnr"] + 0.03 for a, b in zip(rungs, rungs[1:]))
    assert {"base_quality": 60, "level": None} in [{k: r[k] for k in ("base_quality", "level")} for r in rungs]
    assert abs(rungs[0]["bytes"] - 40) < 2 and rungs[-1]["psnr"] == max(p["psnr"] for p in synthetic_points())


def test_too_few_rising_candidates_are_refused():
    with pytest.raises(ValueError, match="only"):
        pick_ladder(synthetic_points(), (Rung(60),), margin_db=1.0)


@pytest.mark.parametrize("on_start", [False, True])
def test_candidates_are_measured_as_a_receiver_decodes_them(on_start):
    plain = Codec(with_ladder(None), "cpu")
    faces = images(2, 3)
    wanted = candidates(plain.bundle.layer_levels, on_start, max_base_quality=35 if on_start else 1)
    layered_bases = {rung.base_quality for rung in wanted if rung.level is not None}
    assert layered_bases == ({35} if on_start else {0}) and all(r.on_start == on_start for r in wanted if r.level)
    points = measure_rungs(plain, faces, [rung for rung in wanted if rung.base_quality in (0, 1, 35)])
    first = 35 if on_start else 0
    assert [(p["base_quality"], p["level"]) for p in points if p["base_quality"] == first][:3] == \
        [(first, None), (first, 0), (first, 1)]
    alone, finest = (next(p for p in points if p["base_quality"] == first and p["level"] == level) for level in (None, 15))
    assert finest["bytes"] > alone["bytes"] and finest["psnr"] > alone["psnr"] + 1
    refined = plain.encode_batch(faces, quality=first, refine=15)  # a layer on the start picture: this model has one
    if not on_start:
        bases = plain.encode_batch(faces, quality=first)
        refined = plain.layered(bases, faces, plain.layer_bases(bases, False), 15, "dct")[0]
    assert finest["psnr"] == pytest.approx(float(psnr_8bit(plain.decode_batch(refined), faces).mean()))


def test_typical_bytes_come_from_the_ladders_card_else_the_coders_validation_curve():
    bundle = with_ladder()
    bundle.card = {"rate": {"val_curve": [{"quality": 0, "bytes": 20.0}, {"quality": 100, "bytes": 120.0}]}}
    assert bundle.typical_bytes is None  # a ladder's sizes are its own: the base coder's curve is not theirs
    bundle.card["quality_ladder"] = {"rungs": [{"quality": q, "bytes": 30.0 + q} for q in range(QUALITIES)]}
    assert bundle.typical_bytes.tolist() == [30.0 + q for q in range(QUALITIES)]
    bundle.card["quality_ladder"]["rungs"][5]["bytes"] = "many"
    assert bundle.typical_bytes is None
    bundle.ladder = None
    assert bundle.typical_bytes.tolist() == [20.0 + q for q in range(QUALITIES)]
    bundle.card = {}
    assert bundle.typical_bytes is None
