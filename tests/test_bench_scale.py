"""bench.scale end to end on six tiny faces with the tiny model with an entropy model (whose files of both kinds
take a search: only a model with start bases, as the default, writes default files that need none): the
library's runs, the Ray jobs at one and two workers, and the JSON's figures in their places."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import ENTROPY_BUNDLE, face_folder

pytest.importorskip("ray")
scale = pytest.importorskip("bench.scale")


@pytest.mark.slow
def test_the_scale_benchmark_writes_every_figure(tmp_path: Path):
    faces = tmp_path / "faces"
    faces.mkdir()
    face_folder(faces, count=6)
    out = tmp_path / "scale.json"
    scale.main(["--data", str(faces), "--n", "6", "--model", str(ENTROPY_BUNDLE), "--batch-size", "2",
                "--out", str(out)])
    result = json.loads(out.read_text())
    assert (result["faces"], result["batch_size"], result["model"]) == (6, 2, "tiny-entropy-test")
    assert result["machine"]["cpus"] >= 1 and result["machine"]["torch"]
    assert result["file_versions"] == {"default": [2], "searched": [2]}  # entropy-coded; the model has no transform
    runs = [result["measured"]["encode"], *result["measured"]["decode"].values()]
    assert list(result["measured"]["decode"]) == ["default", "searched"]
    for by_path in runs:
        assert sorted(by_path) == ["library", "ray"] and all(sorted(by_count) == ["1", "2"] for by_count in by_path.values())
        for count, run in by_path["library"].items():
            assert run["threads"] == int(count) and run["faces"] == 6 and run["faces_per_s"] > 0
        for count, run in by_path["ray"].items():
            assert (run["workers"], run["faces"], run["errors"]) == (int(count), 6, 0)
            assert 0 < run["steady_s"] < run["job_s"] and run["busy_s_a_face"] * 6 <= run["steady_s"] * int(count) + 0.01
            assert len(run["peak_rss_mib"]) == int(count) and all(100 < rss < 10_000 for rss in run["peak_rss_mib"])
    for kind in ("default", "searched"):
        target = result["targets"][f"decode_{kind}"]
        assert set(target) == {"two_workers_over_one", "meets_1.7x", "ray_s_a_face_over_library", "meets_within_15_percent"}
        assert target["two_workers_over_one"] > 0 and target["ray_s_a_face_over_library"] > 0
    assert set(result["targets"]["archive"]) == {"faces", "overhead", "meets_at_most_10_percent"}
    assert "ray.steady_s" in result["what"]
    archive = result["archive"]
    assert archive["faces"] == 6 and archive["checked"] and archive["archive_bytes_per_face"] > archive["gec_bytes_per_face"]
    paper = result["on_paper"]
    assert paper["extrapolated"] and paper["faces"] == 10_000_000 and paper["gpu"].startswith("not measured")
    assert set(paper["cpu_core_hours"]) == {"encode_default", "decode_default", "decode_searched"}
