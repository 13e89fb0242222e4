"""Does PSNR rise at every step of --quality? Every rung of a model's quality ladder, on validation faces.

    python -m bench.ladder_check --data ../shared/data/celeba64/val --n 256 --model celeba64-default

Each quality's files are coded and decoded as a receiver decodes them (gecodec.train.quality_ladder.measure_rungs;
rungs on one base quality share its decode). Writes bench/results/ladder/<model name>.json: per quality, its
rung, mean bytes and mean PSNR, the qualities whose PSNR does not rise above the one below, and how far these
faces' PSNR lies from the model card's (the training faces' that picked the ladder, which `gec encode` reports
as what a layered file should give). With --against OTHER, a model checked before on the same faces, it also
says how far this model's curve lies above or below each of OTHER's rungs at the same bytes.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import numpy as np

from gecodec.bundle import load_model
from gecodec.codec import Codec
from gecodec.errors import OptionError
from gecodec.fileio import write_bytes_atomic
from gecodec.train.data import load_images, to_float
from gecodec.train.quality_ladder import measure_rungs


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="folder of validation faces")
    parser.add_argument("--n", type=int, default=256, help="use the first N faces")
    parser.add_argument("--model", default=None, help="bundle name, id or path (default: the shipped default)")
    parser.add_argument("--out", type=Path, default=Path("bench/results/ladder"))
    parser.add_argument("--against", default=None,
                        help="another model checked earlier on the same faces (its OUT/NAME.json): how far each of its "
                             "rungs lies above this model's curve at the same bytes")
    args = parser.parse_args(argv)
    bundle = load_model(args.model)
    if bundle.ladder is None:
        raise OptionError(f"model {bundle.name} has no quality ladder")
    faces = to_float(load_images(args.data, bundle.image_size, limit=args.n))
    points = measure_rungs(Codec(replace(bundle, ladder=None), "cpu"), faces, list(bundle.ladder))
    rows = [{"quality": q, **point} for q, point in enumerate(points)]
    flat = [row["quality"] for below, row in zip(rows, rows[1:]) if row["psnr"] <= below["psnr"]]
    result = {"model": bundle.name, "model_id": bundle.model_hex, "faces": len(faces), "not_rising": flat,
              "smallest_step_db": round(min(b["psnr"] - a["psnr"] for a, b in zip(rows, rows[1:])), 4), "qualities": rows}
    card = bundle.card.get("quality_ladder", {}).get("rungs") or []
    if len(card) == len(rows):  # the card's training-face figures are what `gec encode` expects of a layered file
        gaps = [row["psnr"] - rung["psnr"] for row, rung in zip(rows, card)]
        result["card_gap_db"] = {"min": round(min(gaps), 3), "max": round(max(gaps), 3)}
    if args.against is not None:
        result["against"] = compare(rows, args.out / f"{args.against}.json", len(faces))
    args.out.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(args.out / f"{bundle.name}.json", (json.dumps(result, indent=1) + "\n").encode(), force=True)
    for row in rows[::10]:
        print(f"quality {row['quality']:3d}: {row['bytes']:7.1f} B  {row['psnr']:.2f} dB")
    print(f"PSNR rises at {len(rows) - 1 - len(flat)} of {len(rows) - 1} steps; smallest step "
          f"{result['smallest_step_db']} dB; not rising at {flat or 'none'}")
    if "against" in result:
        worst = result["against"]["worst"]
        print(f"against {args.against}: this model's curve is at most {-worst['gap_db']} dB below its rungs (quality "
              f"{worst['quality']}, {worst['bytes']} B), {result['against']['mean_gap_db']} dB above on average")
    if "card_gap_db" in result:
        print(f"these faces against the card's: {result['card_gap_db']['min']} to {result['card_gap_db']['max']} dB")


def compare(rows: list[dict], other_path: Path, faces: int) -> dict:
    """Each rung of another model's check against this model's curve, interpolated in log-bytes at its bytes
    (rungs outside this model's range of bytes are left out): gap = this model's PSNR there - its PSNR."""
    try:
        other = json.loads(other_path.read_text())
    except (OSError, ValueError) as exc:
        raise OptionError(f"{other_path}: no earlier check to compare with ({exc.__class__.__name__})") from None
    if other.get("faces") != faces:
        raise OptionError(f"{other_path} was measured on {other.get('faces')} faces, this check on {faces}")
    log_bytes, psnr = np.log([row["bytes"] for row in rows]), np.array([row["psnr"] for row in rows])
    gaps = [{"quality": rung["quality"], "bytes": round(rung["bytes"], 1),
             "gap_db": round(float(np.interp(np.log(rung["bytes"]), log_bytes, psnr)) - rung["psnr"], 3)}
            for rung in other["qualities"] if log_bytes[0] <= np.log(rung["bytes"]) <= log_bytes[-1]]
    return {"model": other["model"], "model_id": other["model_id"], "rungs": len(gaps),
            "worst": min(gaps, key=lambda gap: gap["gap_db"]),
            "mean_gap_db": round(float(np.mean([gap["gap_db"] for gap in gaps])), 3), "gaps": gaps}


if __name__ == "__main__":
    main()
