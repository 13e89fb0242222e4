"""Compare models side by side: each decoded with its own schedule, and with the GE paper's search, on the same faces.

    python -m bench.joint_compare --data ../shared/data/celeba64/val --n 256 --paper-n 64 \
        --models runs/compare/a.safetensors runs/compare/b.safetensors --out bench/results/joint/compare.json

For each model: PSNR (8-bit RGB) and MSE (pixels in [-1, 1]) of its files at 8 bits, decoded with the bundle's
schedule on --n faces and with Adam at lr 0.1, 500 iterations and 2 restarts (the solver, if any, still gives
the first restart its start) on the first --paper-n of them; and the seconds one face takes to decode on this
machine at batch 1, measured over --time-n faces after a warm-up (and for the 500 x 2 search over 2 faces).
Files are m values at 8 bits (version 1), whatever the model's default rate. Writes JSON and a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from gecodec.bundle import load_model
from gecodec.codec import Codec
from gecodec.fileio import write_bytes_atomic
from gecodec.metrics import mse, psnr_8bit
from gecodec.search import SearchOptions
from gecodec.train.data import load_images, to_float

PAPER = SearchOptions()
PAPER_TIMED = 2  # faces the 500 x 2 search is timed on


def figures(decoded: torch.Tensor, originals: torch.Tensor) -> dict:
    return {"psnr": round(float(psnr_8bit(decoded, originals).mean()), 2),
            "mse": round(float(mse(decoded, originals).mean()), 5)}


def seconds_per_face(codec: Codec, files: list[bytes], **overrides: object) -> float:
    """Decode time at batch 1, after a warm-up."""
    codec.decode_batch(files[:1], **overrides)
    started = time.perf_counter()
    for data in files:
        codec.decode_batch([data], **overrides)
    return round((time.perf_counter() - started) / len(files), 3)


def compare(model: str, originals: torch.Tensor, paper_n: int, time_n: int, batch_size: int = 64) -> dict:
    codec = Codec(load_model(model), "cpu")
    bundle = codec.bundle
    files = codec.encode_batch(originals, bits=8)
    own = codec.decode_batch(files, batch_size=batch_size)
    row = {"model": bundle.name, "path": str(bundle.path), "id": bundle.model_hex, "bytes": len(files[0]),
           "schedule": {**vars(bundle.decode), "solver_steps": bundle.solver.config.steps if bundle.solver else 0,
                        "solver_start": bundle.solver.config.init if bundle.solver else "prior"},
           "images": len(files), "own": figures(own, originals)}
    if paper_n:
        paper = codec.decode_batch(files[:paper_n], batch_size=batch_size, **vars(PAPER))
        row["paper_search"] = {"images": paper_n, **figures(paper, originals[:paper_n]),
                               "own_on_same": figures(own[:paper_n], originals[:paper_n])}
    row["decode_s_per_image_cpu"] = seconds_per_face(codec, files[:time_n])
    if paper_n:  # the 500 x 2 search timed the same way, on fewer faces: each takes seconds
        row["paper_search"]["decode_s_per_image_cpu"] = seconds_per_face(codec, files[:PAPER_TIMED], **vars(PAPER))
    row["threads"] = torch.get_num_threads()
    return row


def table(rows: list[dict]) -> str:
    lines = ["| model | bytes | schedule (start, K, Adam iters x restarts) | PSNR | MSE | s/face (CPU, batch 1) "
             "| 500 x 2 search, same faces | own schedule, same faces | 500 x 2 search, s/face |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        s = r["schedule"]
        paper = r.get("paper_search")
        paper_cells = (f"{paper['psnr']:.2f} dB ({paper['images']} faces) | {paper['own_on_same']['psnr']:.2f} dB | "
                       f"{paper.get('decode_s_per_image_cpu', '-')}" if paper else "- | - | -")
        lines.append(f"| {r['model']} | {r['bytes']} | {s['solver_start']}, {s['solver_steps']}, "
                     f"{s['iters']} x {s['restarts']} | {r['own']['psnr']:.2f} dB | {r['own']['mse']:.4f} "
                     f"| {r['decode_s_per_image_cpu']} | {paper_cells} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="folder of validation images")
    parser.add_argument("--models", nargs="+", required=True, help="bundles (names, ids or paths)")
    parser.add_argument("--n", type=int, default=256, help="faces decoded with each model's own schedule")
    parser.add_argument("--paper-n", type=int, default=64, help="of those, faces also decoded with the 500 x 2 search")
    parser.add_argument("--time-n", type=int, default=8, help="faces timed one at a time")
    parser.add_argument("--out", type=Path, required=True, help="JSON file to write (a .md table goes beside it)")
    args = parser.parse_args(argv)

    originals = None
    rows = []
    for model in args.models:
        size = load_model(model).image_size
        if originals is None or originals.shape[-1] != size:
            originals = to_float(load_images(args.data, size, limit=args.n))
        rows.append(compare(model, originals, min(args.paper_n, args.n), args.time_n))
        print(json.dumps(rows[-1]), flush=True)
    write_bytes_atomic(args.out, (json.dumps({"data": str(args.data), "bits": 8, "results": rows}, indent=1) + "\n")
                       .encode(), force=True)
    markdown = table(rows)
    write_bytes_atomic(args.out.with_suffix(".md"), (markdown + "\n").encode(), force=True)
    print(markdown)


if __name__ == "__main__":
    main()
