"""Encode and decode time per image for a model at its own decode schedule, on CPU and on CUDA.

Encoding is timed at the model's default rate, and for a model with an entropy model also with
--target-bytes 60, 100, 300 and 1000 (the quality search included) and, on a model with a quality ladder, at
LAYERED_QUALITIES, whose files carry a refinement layer (learned, then DCT, on the shipped ladder). Decoding is
timed for the default files and for those layered files: a layer on the start picture needs no search.

    python -m bench.speed --data ../shared/data/celeba64/val --n 32 --batch-sizes 1 8

Writes bench/results/speed.json and prints a Markdown table. Times are wall-clock per image, the median over
the batches, after a warm-up call of each setting, with torch.cuda.synchronize() around every timed region on the
GPU. The median, because on a shared CPU the odd call that waits for a core moves a mean.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from gecodec.bundle import load_model
from gecodec.codec import Codec
from gecodec.search import SearchOptions
from gecodec.train.data import load_images, to_float

RESULTS = Path(__file__).parent / "results"
TARGET_BYTES = (60, 100, 300, 1000)  # on the shipped ladder: a base alone, learned layers, a DCT layer
LAYERED_QUALITIES = (70, 95)  # on the shipped ladder a learned layer (about 220 bytes) and a DCT one (about 1,270)


def timed(device: torch.device, work: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[float, Any]:
    """(seconds, result) of one call, synchronising the GPU before and after."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    started = time.perf_counter()
    result = work(*args, **kwargs)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - started, result


def measure(codec: Codec, images: torch.Tensor, batch_size: int, options: SearchOptions) -> dict:
    """Milliseconds (encoding, and decoding layered files) and seconds (decoding default files) per image, in
    batches of ``batch_size``."""
    batches = [images[i : i + batch_size] for i in range(0, len(images), batch_size)]
    settings = {"": {}}
    if codec.bundle.base_coder is not None:
        settings.update({f"_target_{target}_bytes": {"target_bytes": target} for target in TARGET_BYTES})
    qualities = LAYERED_QUALITIES if codec.bundle.ladder is not None else ()
    settings.update({f"_quality_{quality}": {"quality": quality} for quality in qualities})
    for rate in settings.values():  # a warm-up call of each setting: first calls build tables and buffers
        codec.decode_batch(codec.encode_batch(batches[0], **rate), iters=2)
    encode_s = {name: [] for name in settings}  # seconds per image, one entry per batch
    decode_s = {name: [] for name in ["", *(f"_quality_{q}" for q in qualities)]}
    for batch in batches:
        for name, rate in settings.items():
            seconds, files = timed(codec.device, codec.encode_batch, batch, **rate)
            encode_s[name].append(seconds / len(batch))
            if name in decode_s:
                decode_s[name].append(timed(codec.device, codec.decode_batch, files, batch_size=batch_size,
                                            **vars(options))[0] / len(batch))
    row = {"device": str(codec.device), "batch_size": batch_size, "images": len(images),
           "decode_s_per_image": round(statistics.median(decode_s.pop("")), 3)}
    row.update({f"encode_ms_per_image{name}": round(1000 * statistics.median(seconds), 2)
                for name, seconds in encode_s.items()})
    row.update({f"decode_ms_per_image{name}": round(1000 * statistics.median(seconds), 2)
                for name, seconds in decode_s.items()})
    return row


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="folder of images")
    parser.add_argument("--n", type=int, default=8, help="number of images")
    parser.add_argument("--model", default=None)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--devices", nargs="+", default=None, help="default: cpu, and cuda when available")
    parser.add_argument("--iters", type=int, default=None, help="override the search iterations (default: the model's)")
    parser.add_argument("--out", type=Path, default=RESULTS / "speed.json")
    args = parser.parse_args(argv)

    bundle = load_model(args.model)
    images = to_float(load_images(args.data, bundle.image_size, limit=args.n))
    options = bundle.decode if args.iters is None else replace(bundle.decode, iters=args.iters)
    devices = args.devices or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    rows = []
    for device in devices:
        codec = Codec(bundle, device)
        for batch_size in args.batch_sizes:
            row = measure(codec, images, batch_size, options)
            row["hardware"] = device_name(codec.device)
            rows.append(row)
            print(json.dumps(row), flush=True)
    result = {"model": bundle.name, "model_id": bundle.model_hex, "search": vars(options), "torch": torch.__version__,
              "results": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    columns = [key for key in rows[0] if key.startswith(("encode_", "decode_"))]
    print("\n| device | hardware | batch | " + " | ".join(columns) + " |\n|" + "---|" * (3 + len(columns)))
    for r in rows:
        print(f"| {r['device']} | {r['hardware']} | {r['batch_size']} | " + " | ".join(str(r.get(k, '-')) for k in columns)
              + " |")


if __name__ == "__main__":
    main()
