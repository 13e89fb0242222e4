"""Encode and decode time per image for a model at its own decode schedule, on CPU and on CUDA.

Encoding is timed at the model's default rate, and for a model with an entropy model also with
--target-bytes 60 and 100 (the quality search included; at 100 bytes also the refinement layers it tries).
For each refinement layer a model has (DCT, learned), adding a layer of the level LAYER_LEVELS names to its
decoded base is timed alone: what a layer adds to decoding.

    python -m bench.speed --data ../shared/data/celeba64/val --n 8 --batch-sizes 1 8

Writes bench/results/speed.json and prints a Markdown table. Times are wall-clock per image, after one
warm-up call, with torch.cuda.synchronize() around every timed region on the GPU.
"""

from __future__ import annotations

import argparse
import json
import platform
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
TARGET_BYTES = (60, 100)  # base files alone (no layer fits), and a base and a refinement layer
LAYER_LEVELS = {"dct": 7, "learned": 6}  # mid-size layers: about 480 and 330 bytes a file in all


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
    """Seconds per image for encoding and decoding ``images`` in batches of ``batch_size``."""
    batches = [images[i : i + batch_size] for i in range(0, len(images), batch_size)]
    codec.decode_batch(codec.encode_batch(batches[0][:1]), iters=2)  # warm-up
    encode_s = decode_s = 0.0
    target_s = dict.fromkeys(TARGET_BYTES, 0.0)
    layers = {kind: level for kind, level in LAYER_LEVELS.items() if kind in codec.bundle.layer_levels}
    refine_s = dict.fromkeys(layers, 0.0)
    for batch in batches:
        seconds, files = timed(codec.device, codec.encode_batch, batch)
        encode_s += seconds
        for target in TARGET_BYTES if codec.bundle.entropy is not None else ():
            target_s[target] += timed(codec.device, codec.encode_batch, batch, target_bytes=target)[0]
        decode_s += timed(codec.device, codec.decode_batch, files, batch_size=batch_size, **vars(options))[0]
        if layers:
            pixels = codec.base_decodes(files)
        for kind, level in layers.items():
            layered = [codec.parse(f) for f in codec.layered(files, batch.cpu(), pixels, level, kind)[0]]
            refine_s[kind] += sum(timed(codec.device, codec.refined, base, item.layer, level, kind)[0]
                                  for base, item in zip(pixels, layered))
    row = {"device": str(codec.device), "batch_size": batch_size, "images": len(images),
           "encode_ms_per_image": round(1000 * encode_s / len(images), 2),
           "decode_s_per_image": round(decode_s / len(images), 3)}
    for target in TARGET_BYTES if codec.bundle.entropy is not None else ():
        row[f"encode_ms_per_image_target_{target}_bytes"] = round(1000 * target_s[target] / len(images), 2)
    for kind, level in layers.items():
        row[f"{kind}_layer_level_{level}_decode_ms_per_image"] = round(1000 * refine_s[kind] / len(images), 2)
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
    columns = [f"encode_ms_per_image_target_{target}_bytes" for target in TARGET_BYTES]
    columns += [f"{kind}_layer_level_{level}_decode_ms_per_image" for kind, level in LAYER_LEVELS.items()]
    print("\n| device | hardware | batch | encode ms/img | decode s/img | " + " | ".join(columns) + " |\n|"
          + "---|" * (5 + len(columns)))
    for r in rows:
        print(f"| {r['device']} | {r['hardware']} | {r['batch_size']} | {r['encode_ms_per_image']} | "
              f"{r['decode_s_per_image']} | " + " | ".join(str(r.get(k, '-')) for k in columns) + " |")

if __name__ == "__main__":
    main()
