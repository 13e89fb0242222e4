"""The benchmark harness end to end on a few tiny images with the tiny model and a short search."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from bench.__main__ import main
from bench.codecs import make_codecs
from bench.identity import SAME_PERSON
from gecodec.bundle import Bundle, load_bundle, save_bundle
from gecodec.models import BeganDiscriminator, DiscriminatorConfig, Encoder, EncoderConfig, Generator, GeneratorConfig

from conftest import face_folder, face_like

FAST = ["--size", "16", "--iters", "2", "--restarts", "1", "--bits", "8", "--batch-size", "4", "--keep", "3"]


class StandInIdentity:
    """The identity figures from pixels alone: dlib's descriptor, 75 ms an image, would add half a minute to these
    sweeps (tests/test_bench_identity.py measures real faces and the wiring)."""

    def measure(self, decoded: np.ndarray, originals: np.ndarray) -> dict[str, list[float]]:
        distances = [float(np.abs(d.astype(float) - o).mean() / 255) for d, o in zip(decoded, originals)]
        return {"identity_distance": distances, "same_person": [float(d < SAME_PERSON) for d in distances]}


@pytest.fixture(autouse=True)
def stand_in_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    for module in ("bench.harness", "bench.__main__"):
        monkeypatch.setattr(f"{module}.face_identity", StandInIdentity)


def tiny_bundles(folder: Path, encoders: dict[str, torch.nn.Module], seed: int = 0) -> list[str]:
    """Bundle files of tiny random 16x16 models, one per named encoder, all sharing one G."""
    torch.manual_seed(seed)
    generator = Generator(GeneratorConfig(16, 8, 4)).eval()
    paths = []
    for name, encoder in encoders.items():
        m = encoder.config.m
        save_bundle(Bundle(name, generator, encoder.eval(), -torch.ones(m), torch.ones(m)), folder / f"{name}.safetensors")
        paths.append(str(folder / f"{name}.safetensors"))
    return paths


def ge1(m: int) -> Encoder:
    return Encoder(EncoderConfig(16, m, 2, 2))


@pytest.fixture(scope="module")
def m128(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A tiny random 16x16 model with the paper's m = 128, which the presets ask for."""
    return tiny_bundles(tmp_path_factory.mktemp("models"), {"tiny-m128": ge1(128)})[0]


@pytest.fixture(scope="module")
def faces(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return face_folder(tmp_path_factory.mktemp("faces"), 24, 20)


def test_rd_preset_writes_compressai_json_table_plots_and_grid(faces: Path, tmp_path: Path):
    assert main(["rd", "--data", str(faces), "--out", str(tmp_path), *FAST]) == 0
    for codec in ("ge", "ae", "csgm", "lasso-dct", "jpeg", "webp", "avif"):
        result = json.loads((tmp_path / f"{codec}.json").read_text())
        assert result["name"] == codec and result["description"]
        bpp = result["results"]["bpp"]
        assert bpp == sorted(bpp) and len(result["results"]["psnr-rgb"]) == len(bpp) == len(result["settings"])
    ge = json.loads((tmp_path / "ge.json").read_text())
    records = [json.loads(line) for line in (tmp_path / "records" / "ge.jsonl").read_text().splitlines()]
    fixed = [r for r in records if r["setting"] == {"model": "tiny-test", "m": 16, "bits": 8}]
    assert len(fixed) == 3 and all(r["bpp"] == r["bytes"] * 8 / (16 * 16) for r in records)
    assert ge["results"]["bpp"][ge["settings"].index(fixed[0]["setting"])] == pytest.approx(
        sum(r["bpp"] for r in fixed) / 3)
    # The model with an entropy model is swept over quality too, and its files grow with it.
    swept = [s for s in ge["settings"] if s["model"] == "tiny-entropy-test" and "quality" in s]
    assert [s["quality"] for s in swept] == list(range(0, 101, 10))
    sizes = [ge["results"]["bpp"][ge["settings"].index(s)] for s in swept]
    assert sizes[-1] > sizes[0]
    table = (tmp_path / "table.md").read_text()
    assert "| floor |" in table and "| webp | quality=0 |" in table
    for picture in ("rd-psnr.png", "rd-mse.png", "grid.png"):
        assert (tmp_path / picture).stat().st_size > 1000


def test_a_second_run_resumes_instead_of_repeating(faces: Path, tmp_path: Path):
    args = ["run", "--codecs", "webp", "--data", str(faces), "--out", str(tmp_path), *FAST]
    assert main(args) == 0
    lines = (tmp_path / "records" / "webp.jsonl").read_text()
    assert main(args) == 0
    assert (tmp_path / "records" / "webp.jsonl").read_text() == lines


def test_presets_sharing_a_store_measure_shared_settings_once(faces: Path, tmp_path: Path, m128: str):
    store = ["--store", str(tmp_path / "store"), "--models", m128, *FAST]
    assert main(["table1", "--data", str(faces), "--out", str(tmp_path / "table1"), *store]) == 0
    records = {p.name: p.read_text() for p in (tmp_path / "store" / "records").iterdir()}
    assert main(["run", "--codecs", "ge", "--data", str(faces), "--out", str(tmp_path / "run"), *store]) == 0
    assert {p.name: p.read_text() for p in (tmp_path / "store" / "records").iterdir()} == records
    assert (tmp_path / "run" / "ge.json").read_text() == (tmp_path / "table1" / "ge.json").read_text()
    assert not (tmp_path / "run" / "records").exists()
    assert main(["run", "--codecs", "ge", "--n", "2", "--data", str(faces), "--out", str(tmp_path / "two"), *store]) == 0
    assert "| ge | model=tiny-m128,m=128,bits=8 | 2 |" in (tmp_path / "two" / "table.md").read_text()  # not the 3 stored


def test_a_store_refuses_records_from_another_search_budget(faces: Path, tmp_path: Path, capsys):
    args = ["run", "--codecs", "webp", "--data", str(faces), "--out", str(tmp_path), *FAST]
    assert main(args) == 0
    args[args.index("--iters") + 1] = "3"
    assert main(args) == 1
    assert "measured with {'size': 16, 'iters': 2, 'restarts': 1}" in capsys.readouterr().err


def test_table2_runs_ge_on_generated_images_too(faces: Path, tmp_path: Path, m128: str):
    assert main(["table2", "--data", str(faces), "--out", str(tmp_path), "--n", "2", "--models", m128, *FAST]) == 0
    assert (tmp_path / "ge.json").exists() and "| ge |" in (tmp_path / "generated" / "table.md").read_text()


def test_unknown_codec_and_unsupported_size_are_reported_and_the_rest_runs(faces: Path, tmp_path: Path, capsys):
    args = ["run", "--codecs", "ge,nonsense,jpeg", "--data", str(faces), "--out", str(tmp_path), *FAST]
    args[args.index("--size") + 1] = "32"  # no model for 32x32
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "unknown codec 'nonsense'" in err and "ge: no model for 32x32 images" in err
    assert (tmp_path / "jpeg.json").exists() and not (tmp_path / "ge.json").exists()


def test_empty_folder_is_a_clear_error(tmp_path: Path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["rd", "--data", str(tmp_path / "empty"), "--out", str(tmp_path / "out"), *FAST]) == 1
    assert "no images found" in capsys.readouterr().err


def test_table1_runs_lasso_csgm_and_ge_at_the_papers_settings(faces: Path, tmp_path: Path, m128: str):
    assert main(["table1", "--data", str(faces), "--out", str(tmp_path), "--models", m128, *FAST]) == 0
    table = (tmp_path / "table.md").read_text()
    assert "| lasso-dct | model=tiny-m128,m=500,bits=8,basis=dct |" in table
    assert "| csgm | model=tiny-m128,m=128,bits=8 |" in table and "| ge | model=tiny-m128,m=128,bits=8 |" in table


def test_table1_puts_ge0_and_ge1_of_one_g_side_by_side_in_table_and_grid(faces: Path, tmp_path: Path):
    ge0 = BeganDiscriminator(DiscriminatorConfig(16, 128, 2)).encoder  # the paper's GE0: half of a BEGAN D
    models = tiny_bundles(tmp_path, {"tiny-ge0": ge0, "tiny-ge1": ge1(128)})
    assert main(["table1", "--data", str(faces), "--out", str(tmp_path / "out"), "--models", *models, *FAST]) == 0
    table = (tmp_path / "out" / "table.md").read_text()
    assert "| ge | model=tiny-ge0,m=128,bits=8 | 3 |" in table and "| ge | model=tiny-ge1,m=128,bits=8 | 3 |" in table
    assert table.count("| csgm |") == 1  # CSGM depends on G alone: measured once for the two bundles
    # Figure 4's rows: original, Lasso (dct), CSGM, GE0 and GE1, the floor; 16 px each.
    with Image.open(tmp_path / "out" / "grid.png") as grid:
        assert grid.size[1] == 16 * (1 + 1 + 1 + 2 + 1)
    codecs, _ = make_codecs(["ge"], [load_bundle(Path(p)) for p in models], (8,), "cpu", {})
    labels = [codecs["ge"].label(s) for s in codecs["ge"].settings()]  # the grid's row names
    assert labels == ["GE0 m=128 bits=8 (tiny-ge0)", "GE1 m=128 bits=8 (tiny-ge1)"]


def test_each_distinct_generator_gets_its_own_floor_row(faces: Path, tmp_path: Path):
    models = tiny_bundles(tmp_path, {"tiny-a": ge1(8)}, seed=1) + tiny_bundles(tmp_path, {"tiny-b": ge1(8)}, seed=2)
    store = ["--store", str(tmp_path / "store"), *FAST]
    assert main(["run", "--codecs", "webp", "--data", str(faces), "--out", str(tmp_path / "ab"), "--models", *models, *store]) == 0
    table = (tmp_path / "ab" / "table.md").read_text()
    a, b = (next(line for line in table.splitlines() if f"model=tiny-{x} |" in line) for x in "ab")
    assert a.startswith("| floor | reference=generator floor,") and a.split("|")[6] != b.split("|")[6]  # PSNRs differ
    # The store keys the floor by model, so a run with only tiny-b reuses b's floor, not a's.
    assert main(["run", "--codecs", "webp", "--data", str(faces), "--out", str(tmp_path / "b"), "--models", models[1], *store]) == 0
    assert b in (tmp_path / "b" / "table.md").read_text() and "tiny-a" not in (tmp_path / "b" / "table.md").read_text()


def test_figure6_runs_ge_at_each_m_and_plots_mse_against_m(faces: Path, tmp_path: Path):
    models = tiny_bundles(tmp_path, {f"tiny-m{m}": ge1(m) for m in (64, 128, 256)})
    assert main(["figure6", "--data", str(faces), "--out", str(tmp_path / "out"), "--models", *models, *FAST]) == 0
    ge = json.loads((tmp_path / "out" / "ge.json").read_text())
    assert [s["m"] for s in ge["settings"]] == [64, 128, 256]  # sorted by rate, which grows with m
    assert ge["results"]["bpp"] == sorted(ge["results"]["bpp"]) and ge["results"]["bpp"][0] < ge["results"]["bpp"][2]
    assert (tmp_path / "out" / "mse-vs-m.png").stat().st_size > 1000


def test_a_preset_whose_settings_no_model_has_says_so(faces: Path, tmp_path: Path, capsys):
    assert main(["figure6", "--data", str(faces), "--out", str(tmp_path), *FAST]) == 1
    assert "ge: none of its settings is one that figure6 asks for" in capsys.readouterr().err


def test_gec_bench_runs_the_harness(faces: Path, tmp_path: Path):
    from click.testing import CliRunner

    from gecodec.cli import main as gec

    result = CliRunner().invoke(gec, ["bench", "run", "--codecs", "webp", "--data", str(faces), "--out", str(tmp_path), *FAST])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "webp.json").exists()


def test_quality_curve_reports_bytes_and_psnr_per_quality(faces: Path, tmp_path: Path):
    from bench.quality_curve import main as quality_curve_main

    quality_curve_main(["--data", str(faces), "--n", "2", "--models", "tiny-entropy-test", "--qualities", "0", "100",
                        "--out", str(tmp_path / "curve.json")])
    curve = json.loads((tmp_path / "curve.json").read_text())["models"]["tiny-entropy-test"]["curve"]
    assert [row["quality"] for row in curve] == [0, 100] and curve[1]["bytes"] > curve[0]["bytes"]


def test_only_gecodec_quality_settings_make_a_quality_curve():
    from bench.plots import curve_groups

    rows = [{"setting": {"quality": 5}}, {"setting": {"model": "a", "m": 8, "quality": 5}},
            {"setting": {"model": "a", "m": 8, "bits": 8}}, {"setting": {"model": "a", "m": 8, "target_bytes": 60}}]
    assert sorted(curve_groups(rows)) == ["", "a", "a, --quality"]


def test_the_learned_layer_bench_codes_under_the_predicted_gaussians_and_measures_real_files(tmp_path):
    from bench.refine_learned import gaussian_layer_bytes, main
    from gecodec.bundle import save_bundle
    from test_learned_layer import learned_bundle

    save_bundle(learned_bundle(), tmp_path / "learned.safetensors")
    faces = tmp_path / "data" / "val"
    faces.mkdir(parents=True)
    for i in range(3):
        face_like(seed=i).save(faces / f"{i}.png")
    main(["--data", str(tmp_path / "data"), "--n", "3", "--model", str(tmp_path / "learned.safetensors"),
          "--out", str(tmp_path)])
    result = json.loads((tmp_path / "learned.json").read_text())
    rows = result["learned"]
    assert [row["level"] for row in rows] == [-3, -2, -1, 0, 1, 2, 3]  # three coarse, two trained rates, two between
    assert all(row["bytes"] > result["base_bytes"] and row["gaussian_prior_bytes"] > result["base_bytes"] for row in rows)
    assert all(row["on_start_bytes"] > result["base_bytes"] and row["on_start_psnr"] > 0 for row in rows)
    assert result["start_picture_psnr"] > 0
    k = torch.randint(-40, 41, (32, 8, 8), generator=torch.Generator().manual_seed(0))
    assert len(gaussian_layer_bytes(k, torch.full((32, 8, 8), 0.11))) > len(gaussian_layer_bytes(k, torch.full((32, 8, 8), 20.0)))


def test_the_transform_bench_reuses_its_curves_only_for_the_same_transform_and_faces(tmp_path):
    from bench.transform_coding import main as transform_main
    from conftest import GOLDEN

    (tmp_path / "val").mkdir()
    faces = face_folder(tmp_path / "val", count=20)  # more than the tiny model's m = 16: a full-rank covariance
    out = tmp_path / "transform.json"
    args = ["--data", str(faces), "--model", str(GOLDEN / "tiny-transform-test.safetensors"), "--out", str(out)]
    transform_main(args + ["--n", "20"])
    measured = json.loads(out.read_text())
    assert len(measured["curves"]["version 3 (transform)"]) == 11 and measured["faces"] == 20
    measured["curves"]["version 3 (transform)"][0]["psnr"] = 99.0  # a mark that only a reused curve keeps
    out.write_text(json.dumps(measured))
    transform_main(args + ["--n", "20", "--reuse"])
    assert json.loads(out.read_text())["curves"]["version 3 (transform)"][0]["psnr"] == 99.0
    transform_main(args + ["--n", "18", "--reuse"])  # other faces: measured again
    assert json.loads(out.read_text())["curves"]["version 3 (transform)"][0]["psnr"] != 99.0


def test_the_speed_bench_times_every_setting_per_image():
    from bench.speed import TARGET_BYTES, measure
    from conftest import ENTROPY_BUNDLE
    from gecodec.codec import Codec
    from gecodec.search import SearchOptions

    codec = Codec(load_bundle(ENTROPY_BUNDLE), "cpu")
    images = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    row = measure(codec, images, 2, SearchOptions(iters=2, restarts=1))
    assert (row["batch_size"], row["images"]) == (2, 3)
    timed = ["encode_ms_per_image", *(f"encode_ms_per_image_target_{t}_bytes" for t in TARGET_BYTES)]
    assert [key for key in row if key.startswith("encode_")] == timed  # no ladder: no layered qualities
    assert all(row[key] > 0 for key in timed) and row["decode_s_per_image"] > 0


def test_a_framing_folder_runs_its_validation_faces_through_the_photo_path_too(tmp_path: Path):
    from bench.harness import Records

    framing = tmp_path / "framing"
    framing.mkdir()
    faces = np.stack([np.asarray(face_like(16, 16, seed=i)).transpose(2, 0, 1) for i in range(3)])
    np.save(framing / "val.npy", faces)
    records = [{"name": f"P{i}/p.jpg", "split": "val", "size": [300, 200], "position": [300, 200, 50, i, -3, -4]}
               for i in range(3)]
    (framing / "framing.json").write_text(json.dumps({"photos_kept": records}))
    assert main(["photos", "--data", str(framing), "--out", str(tmp_path / "out"), *FAST]) == 0
    crop, photo = (Records(tmp_path / "out" / "records" / f"{name}.jsonl").done for name in ("ge", "ge-photo"))
    assert sorted(crop) == sorted(photo) and {image for _, image in crop} == {r["name"] for r in records}
    assert all("quality" in key or "target_bytes" in key for key, _ in crop)  # users' rates, not bits or levels
    assert (tmp_path / "out" / "webp.json").exists() and (tmp_path / "out" / "rd-psnr.png").exists()
    for key, record in crop.items():  # the same face, decoded alike; the photo's file also holds its position
        assert photo[key]["psnr"] == record["psnr"] and photo[key]["bytes"] > record["bytes"]


def test_by_source_sets_two_sources_side_by_side_with_only_ges_rate_settings(tmp_path: Path):
    from bench import by_source

    def write(folder: Path, codec: str, settings: list[dict], bpp: list[float], psnr: list[float]) -> Path:
        folder.mkdir(exist_ok=True)
        results = {"bpp": bpp, "psnr-rgb": psnr, "identity-match": [0.5] * len(bpp)}
        (folder / f"{codec}.json").write_text(json.dumps({"settings": settings, "results": results}))
        return folder

    crops = write(tmp_path / "crops", "ge", [{"model": "a", "quality": 50}, {"model": "a", "bits": 8},
                                            {"model": "b", "quality": 50}], [0.125, 0.25, 0.125], [25.0, 24.0, 23.0])
    photos = write(tmp_path / "photos", "ge-photo", [{"model": "a", "quality": 50}], [0.25], [24.0])
    out = tmp_path / "out"
    assert by_source.main(["--source", f"crops={crops}", "--source", f"photos={photos}", "--models", "a",
                           "--out", str(out)]) == 0
    rows = (out / "table.md").read_text().splitlines()[2:]
    assert rows == ["| ge | a: quality 50 | 64.0 | 25.00 | 50% | - | - | - |",
                    "| ge-photo | a: quality 50 | - | - | - | 128.0 | 24.00 | 50% |"]
    assert (out / "rd.png").stat().st_size > 0
    with pytest.raises(SystemExit):
        by_source.main(["--source", f"x={tmp_path / 'none'}", "--out", str(out)])


def test_runs_go_to_a_scratch_folder_and_a_smaller_one_never_replaces_the_committed_results(tmp_path: Path, monkeypatch, capsys):
    import bench.__main__ as bench_main

    monkeypatch.setattr(bench_main, "RESULTS", tmp_path / "results")
    monkeypatch.setattr(bench_main, "SCRATCH", tmp_path / "scratch")
    (tmp_path / "results" / "run").mkdir(parents=True)
    (tmp_path / "results" / "run" / "webp.json").write_text(json.dumps({"images": [8, 8]}))
    (tmp_path / "faces").mkdir()
    faces = face_folder(tmp_path / "faces", count=2)
    assert main(["run", "--data", str(faces), "--size", "16", "--codecs", "webp", "--refresh"]) == 1
    assert "holds results measured on 8 images, and this run has 2: give --out" in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "results" / "run").iterdir()) == ["webp.json"]
    assert main(["run", "--data", str(faces), "--size", "16", "--codecs", "webp"]) == 0  # a scratch run
    assert (tmp_path / "scratch" / "run" / "webp.json").is_file()


def test_ladder_check_compares_another_models_rungs_at_equal_bytes(tmp_path: Path):
    from bench.ladder_check import compare
    from gecodec.errors import OptionError

    other = {"model": "old", "model_id": "0000abcd", "faces": 4, "qualities": [
        {"quality": 0, "bytes": 10.0, "psnr": 20.5}, {"quality": 1, "bytes": 31.6, "psnr": 24.0},
        {"quality": 2, "bytes": 1000.0, "psnr": 40.0}]}
    (tmp_path / "old.json").write_text(json.dumps(other))
    rows = [{"bytes": 10.0, "psnr": 20.0}, {"bytes": 100.0, "psnr": 30.0}]
    result = compare(rows, tmp_path / "old.json", 4)
    assert result["rungs"] == 2 and result["worst"] == {"quality": 0, "bytes": 10.0, "gap_db": -0.5}
    assert result["gaps"][1]["gap_db"] == pytest.approx(1.0, abs=0.01)  # 25 dB halfway in log-bytes
    with pytest.raises(OptionError, match="measured on 4 faces, this check on 8"):
        compare(rows, tmp_path / "old.json", 8)


def test_bench_examples_takes_a_folder_for_its_picture(tmp_path: Path):
    from bench import examples

    faces = tmp_path / "faces"
    faces.mkdir()
    face_folder(faces, count=2)
    examples.main(["--data", str(faces), "--n", "2", "--model", "tiny-entropy-test", "--out", str(tmp_path / "out")])
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["examples.json", "examples.png"]


def test_the_128_comparison_codes_a_base_file_and_a_layer_over_its_enlarged_start_picture(tmp_path: Path):
    """bench.size128's design (b) on 32x32 faces over the tiny 16x16 model, and the classical codecs, in one JSON."""
    import numpy as np
    import torch

    from bench import size128
    from gecodec.train import refiner

    from conftest import ENTROPY_BUNDLE

    faces = (torch.rand(6, 3, 32, 32, generator=torch.Generator().manual_seed(5)) * 255).round().to(torch.uint8)
    framing = tmp_path / "framing"
    framing.mkdir()
    np.save(framing / "val.npy", faces[:3].numpy())
    refiner.make_bases(ENTROPY_BUNDLE, faces[3:], tmp_path / "run")
    refiner.train(tmp_path / "run", minutes=0.001, lr=1e-3)
    size128.main(["--photos", str(framing), "--n", "3", "--scalable", str(tmp_path / "run"),
                  "--base", str(ENTROPY_BUNDLE), "--out", str(tmp_path / "out")])
    result = json.loads((tmp_path / "out" / "compare.json").read_text())
    assert (result["faces"], result["size"], result["training"]["a"]) == (3, 32, None)
    b = [row for row in result["rows"] if row["design"] == "b"]
    assert b[0]["layer"] is None and [row["layer"] for row in b[1:]] == list(range(0, 13, 3))
    assert all(row["bytes"] > b[0]["bytes"] for row in b[1:])  # each layer's bytes on top of the base file
    assert {row["design"] for row in result["rows"]} >= {"webp", "jpeg", "avif"}
    assert (tmp_path / "out" / "rd.png").exists()
