"""Summaries of the records: per setting, the mean and 95% confidence interval over images; CompressAI-layout
JSON files (one per codec) and a Markdown table."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from bench.harness import Records, setting_key

# Our record field -> CompressAI's results key (the identity figures are ours: bench/identity.py).
COMPRESSAI_KEYS = {"bpp": "bpp", "psnr": "psnr-rgb", "ssim": "ssim-rgb", "ms_ssim": "ms-ssim-rgb", "mse": "mse",
                   "same_person": "identity-match", "identity_distance": "identity-distance",
                   "encode_s": "encoding_time", "decode_s": "decoding_time"}


def mean_ci(values: list[float | None]) -> tuple[float | None, float | None]:
    """Mean and the half-width of its 95% confidence interval (normal approximation); None if no values."""
    present = np.array([v for v in values if v is not None], dtype=np.float64)
    if not len(present):
        return None, None
    half = 1.96 * present.std(ddof=1) / math.sqrt(len(present)) if len(present) > 1 else 0.0
    return float(present.mean()), float(half)


def figure_ci(records: list[dict], field: str) -> tuple[float | None, float | None]:
    """mean_ci of one figure, or None where some records predate it: a mean over the others alone would pass for
    a mean over all the setting's images."""
    if any(field not in r for r in records):
        return None, None
    return mean_ci([r[field] for r in records])


def summarise(records: Records) -> list[dict]:
    """One row per setting, sorted by rate: the setting, images, and (mean, ci95) of every figure."""
    by_setting: dict[str, list[dict]] = {}
    for (key, _), record in records.done.items():
        by_setting.setdefault(key, []).append(record)
    rows = []
    for items in by_setting.values():
        row = {"setting": items[0]["setting"], "images": len(items), "device": items[0]["device"],
               "bytes": mean_ci([r["bytes"] for r in items])[0]}
        for field in COMPRESSAI_KEYS:
            row[field], row[f"{field}_ci95"] = figure_ci(items, field)
        rows.append(row)
    return sorted(rows, key=lambda r: (r["bpp"] is None, r["bpp"] or 0.0))


def compressai_json(name: str, description: str, rows: list[dict]) -> dict:
    """CompressAI's result layout ({"name", "description", "results": {"bpp": [...], ...}}), plus our extras."""
    results = {key: [r[field] for r in rows] for field, key in COMPRESSAI_KEYS.items()}
    return {"name": name, "description": description, "results": results,
            "settings": [r["setting"] for r in rows], "images": [r["images"] for r in rows],
            "ci95": {key: [r[f"{field}_ci95"] for r in rows] for field, key in COMPRESSAI_KEYS.items()},
            "device": rows[0]["device"] if rows else None}


def write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    tmp.replace(path)


def format_cell(mean: float | None, ci: float | None = None, digits: int = 2) -> str:
    if mean is None:
        return "-"
    return f"{mean:.{digits}f}" if ci is None else f"{mean:.{digits}f} ± {ci:.{digits}f}"


def format_share(share: float | None, ci: float | None) -> str:
    """A share in [0, 1] as a percentage."""
    return "-" if share is None or ci is None else format_cell(100 * share, 100 * ci, 0)


def markdown_table(summaries: dict[str, list[dict]]) -> str:
    """All codecs' rows in one table, by codec then rate; ± is the 95% confidence interval of the mean."""
    lines = ["| codec | setting | images | bytes | bpp | PSNR (dB) | MSE ([-1, 1]) | SSIM | MS-SSIM | same person (%) "
             "| identity distance | encode (ms) | decode (s) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, rows in summaries.items():
        for r in rows:
            encode_ms = None if r["encode_s"] is None else 1000 * r["encode_s"]
            cells = [name, setting_key(r["setting"]), str(r["images"]), format_cell(r["bytes"], digits=1),
                     format_cell(r["bpp"], digits=4), format_cell(r["psnr"], r["psnr_ci95"]),
                     format_cell(r["mse"], r["mse_ci95"], 5), format_cell(r["ssim"], r["ssim_ci95"], 4),
                     format_cell(r["ms_ssim"], r["ms_ssim_ci95"], 4), format_share(r["same_person"], r["same_person_ci95"]),
                     format_cell(r["identity_distance"], r["identity_distance_ci95"], 3), format_cell(encode_ms, digits=1),
                     format_cell(r["decode_s"], digits=3)]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
