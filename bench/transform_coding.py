"""Version 3 (transform-coded) against version 2 (each measurement on its own) and fixed-length files.

    python -m bench.transform_coding --data ../shared/data/celeba64/val --n 256

With a model that has both coders (the shipped default), codes the first --n validation faces as the base
alone at qualities 0, 10, .., 100 of each coder and at 2 to 8 fixed-length bits, decodes them with the
model's schedule, and reports mean file bytes and PSNR. Beside them, the quality ladder's 101 qualities (what
`gec encode --quality` writes: a base, and from some quality on a refinement layer) as bench.ladder_check
measured them on the same faces (bench/results/ladder/MODEL.json, when it holds this model and --n faces). It also measures why
version 3 wins: the spread of the covariance's eigenvalues of EN's (standardized) measurements on these
faces, and the redundancy a Gaussian model of them holds (its total correlation, -1/2 log2 det of the
correlation matrix). From the curves: the Bjontegaard delta rate of version 3 against each (the mean change
in bytes at equal PSNR, over the PSNR range both cover, from piecewise-linear log-bytes), and the bytes that
version 3 (the base alone, and the ladder) needs for each fixed-length file's PSNR. Writes
bench/results/rate/transform.json and prints Markdown tables. With --reuse, the coders' curves come from the
existing output when it was made with the same transform id on as many faces (they do not depend on the ladder),
and only the ladder's column is read anew: a minute instead of an hour.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np
import torch

from gecodec.bundle import load_model
from gecodec.codec import Codec
from gecodec.fileio import write_bytes_atomic
from gecodec.metrics import psnr_8bit
from gecodec.train.data import load_images, to_float

RESULTS = Path(__file__).parent / "results" / "rate"
QUALITIES = tuple(range(0, 101, 10))
LADDERS = Path(__file__).parent / "results" / "ladder"
BITS = (2, 3, 4, 5, 6, 8)


def point(codec: Codec, faces: torch.Tensor, files: list[bytes], **fields: int | str) -> dict:
    decoded = codec.decode_batch(files, batch_size=32)
    return {**fields, "bytes": round(float(np.mean([len(f) for f in files])), 2),
            "psnr": round(float(psnr_8bit(decoded, faces).mean()), 3)}


def redundancy(measurements: torch.Tensor) -> dict:
    """The eigenvalue range of the measurements' correlation matrix, and its Gaussian total correlation."""
    correlation = np.corrcoef(measurements.double().numpy().T)
    eigenvalues = np.linalg.eigvalsh(correlation)
    return {"eigenvalue_min": round(float(eigenvalues.min()), 5), "eigenvalue_max": round(float(eigenvalues.max()), 2),
            "gaussian_total_correlation_bytes": round(float(-0.5 * np.log2(eigenvalues).sum() / 8), 1)}


def log_bytes_at(curve: list[dict], psnr: np.ndarray) -> np.ndarray:
    """log(bytes) at each PSNR, piecewise linear along a curve (made increasing in PSNR)."""
    rows = sorted(curve, key=lambda row: row["bytes"])
    kept = [rows[0]]
    for row in rows[1:]:
        if row["psnr"] > kept[-1]["psnr"]:
            kept.append(row)
    return np.interp(psnr, [r["psnr"] for r in kept], np.log([r["bytes"] for r in kept]))


def bytes_at(curve: list[dict], psnr: float) -> float | None:
    """The bytes a curve needs for ``psnr`` (piecewise linear in log-bytes), None outside its PSNR range."""
    if not curve or not min(r["psnr"] for r in curve) <= psnr <= max(r["psnr"] for r in curve):
        return None
    return round(float(np.exp(log_bytes_at(curve, np.array([psnr]))[0])), 1)


def delta_rate(test: list[dict], reference: list[dict]) -> dict:
    """Bjontegaard's delta rate of ``test`` against ``reference``: the mean ratio of bytes at equal PSNR over
    the PSNR range both reach (sampled finely), minus 1."""
    low = max(min(r["psnr"] for r in test), min(r["psnr"] for r in reference))
    high = min(max(r["psnr"] for r in test), max(r["psnr"] for r in reference))
    psnr = np.linspace(low, high, 400)
    ratio = np.exp(np.mean(log_bytes_at(test, psnr) - log_bytes_at(reference, psnr)))
    return {"psnr_range": [round(low, 2), round(high, 2)], "bytes_change": round(float(ratio - 1), 3)}


def ladder_curve(path: Path, model_hex: str, faces: int) -> list[dict]:
    """The ladder's points from bench.ladder_check's results, if they are this model's on as many faces."""
    measured = json.loads(path.read_text()) if path.exists() else {}
    if measured.get("model_id") != model_hex or measured.get("faces") != faces:
        print(f"no ladder measurements of model {model_hex} on {faces} faces in {path}: run bench.ladder_check")
        return []
    return [{"quality": row["quality"], "bytes": row["bytes"], "psnr": row["psnr"]} for row in measured["qualities"]]


def measure_curves(with_transform: Codec, transform: Codec, per_measurement: Codec, faces: torch.Tensor
                   ) -> dict[str, list[dict]]:
    """The base alone at QUALITIES of each coder, and fixed-length files at BITS."""
    curves: dict[str, list[dict]] = {"version 3 (transform)": [], "version 2 (per measurement)": [],
                                     "version 1 (fixed-length)": []}
    for quality in QUALITIES:
        curves["version 3 (transform)"].append(
            point(transform, faces, transform.encode_batch(faces, quality=quality), quality=quality))
        curves["version 2 (per measurement)"].append(
            point(per_measurement, faces, per_measurement.encode_batch(faces, quality=quality), quality=quality))
        print(quality, curves["version 3 (transform)"][-1], curves["version 2 (per measurement)"][-1], flush=True)
    for bits in BITS:
        curves["version 1 (fixed-length)"].append(
            point(with_transform, faces, with_transform.encode_batch(faces, bits=bits), bits=bits))
    return curves


def share(row: dict, key: str) -> str:
    return "-" if row[key] is None else f"{row[key]:.1f} ({row[key] / row['bytes']:.0%})"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="folder of validation face crops")
    parser.add_argument("--n", type=int, default=256)
    parser.add_argument("--model", default=None, help="bundle with an entropy and a transform model (default: shipped)")
    parser.add_argument("--out", type=Path, default=RESULTS / "transform.json")
    parser.add_argument("--reuse", action="store_true",
                        help="take the coders' curves from --out when it holds this transform model's on --n faces")
    args = parser.parse_args(argv)

    bundle = load_model(args.model)
    if bundle.transform is None or bundle.entropy is None:
        parser.error(f"model {bundle.name} needs both an entropy model and a transform model")
    faces = to_float(load_images(args.data, bundle.image_size, limit=args.n))
    with_transform = Codec(bundle, "cpu")
    # Without the ladder, a quality is the coder's base quality; without the transform, files are version 2.
    transform = Codec(dataclasses.replace(bundle, ladder=None), "cpu")
    per_measurement = Codec(dataclasses.replace(bundle, ladder=None, transform=None), "cpu")
    with torch.no_grad():
        measurements = torch.cat([bundle.encoder(faces[i : i + 64]) for i in range(0, len(faces), 64)])
    transform_id = f"{bundle.transform_id:08x}"
    earlier = json.loads(args.out.read_text()) if args.reuse and args.out.exists() else {}
    if earlier.get("transform_id") == transform_id and earlier.get("faces") == len(faces):
        curves = earlier["curves"]
    else:
        if args.reuse:
            print(f"{args.out} holds no curves of transform {transform_id} on {len(faces)} faces: measuring them")
        curves = measure_curves(with_transform, transform, per_measurement, faces)
    curves["ladder (--quality)"] = ladder_curve(LADDERS / f"{bundle.name}.json", bundle.model_hex, len(faces))
    v3, ladder = curves["version 3 (transform)"], curves["ladder (--quality)"]
    fixed_twins = [{"bits": row["bits"], "bytes": row["bytes"], "psnr": row["psnr"],
                    "version_3_bytes": bytes_at(v3, row["psnr"]), "ladder_bytes": bytes_at(ladder, row["psnr"])}
                   for row in curves["version 1 (fixed-length)"]]
    report = {"model": bundle.name, "model_id": bundle.model_hex, "transform_id": transform_id,
              "faces": len(faces), "measurements": redundancy(measurements), "curves": curves,
              "delta_rate_v3_vs_v2": delta_rate(v3, curves["version 2 (per measurement)"]),
              "delta_rate_v3_vs_fixed": delta_rate(v3, curves["version 1 (fixed-length)"]),
              "fixed_length_twins": fixed_twins}
    write_bytes_atomic(args.out, (json.dumps(report, indent=1) + "\n").encode(), force=True)
    print(json.dumps(report["measurements"]))
    print("| quality | v3 bytes | v3 PSNR | v2 bytes | v2 PSNR |\n|---|---|---|---|---|")
    for a, b in zip(v3, curves["version 2 (per measurement)"]):
        print(f"| {a['quality']} | {a['bytes']:.1f} | {a['psnr']:.2f} | {b['bytes']:.1f} | {b['psnr']:.2f} |")
    print("| bits | bytes | PSNR | version 3 (base alone) at that PSNR | the ladder at that PSNR |\n|---|---|---|---|---|")
    for row in fixed_twins:
        print(f"| {row['bits']} | {row['bytes']:.0f} | {row['psnr']:.2f} | {share(row, 'version_3_bytes')} | "
              f"{share(row, 'ladder_bytes')} |")
    print(json.dumps({k: report[k] for k in ("delta_rate_v3_vs_v2", "delta_rate_v3_vs_fixed")}))


if __name__ == "__main__":
    main()
