"""How many torch threads should decoding use? Decode times at each thread count and batch size, on a machine at
rest and beside another busy process.

    python -m bench.threads --data ../shared/data/celeba64/val --n 16 --out bench/results/threads.json

The first --n validation faces are coded at the default model's default quality with seed 1 (searched base files,
version 3: each decode is the search, which is where threads matter; the default's own files decode to their start
picture in milliseconds) and decoded --repeats times at every thread count (--threads) and batch size (--batch-sizes); the
fastest run of each is kept. "Busy" runs beside a process that keeps one core busy, as another user's job
would. Each condition also runs at the count that `gec` would choose then (gecodec.threads.default_threads,
sampled with the neighbour running), at each batch size. Writes the seconds a face and the machine's core count.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

from gecodec.bundle import load_model
from gecodec.codec import Codec
from gecodec.fileio import write_bytes_atomic
from gecodec.threads import default_threads
from gecodec.train.data import load_images, to_float

BUSY_LOOP = "while True: pass"
SEARCHED = 1  # a seed: the encoder keeps such a base searched


def seconds_a_face(codec: Codec, files: list[bytes], threads: int, batch_size: int, repeats: int) -> float:
    """The fastest of ``repeats`` decodes of all files, in seconds a face."""
    torch.set_num_threads(threads)
    parsed = [codec.parse(data) for data in files]
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        codec.decode_parsed(parsed, batch_size)
        best = min(best, time.perf_counter() - started)
    return best / len(files)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="folder of validation faces")
    parser.add_argument("--n", type=int, default=16, help="faces to decode")
    parser.add_argument("--model", default=None, help="bundle name, id or path (default: the shipped default)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("bench/results/threads.json"))
    args = parser.parse_args(argv)
    codec = Codec(load_model(args.model), "cpu")
    files = codec.encode_batch(to_float(load_images(args.data, codec.image_size, limit=args.n)), seed=SEARCHED)
    rows = []
    for busy in (False, True):
        neighbour = subprocess.Popen([sys.executable, "-c", BUSY_LOOP]) if busy else None
        try:
            time.sleep(1.0 if busy else 0.0)  # let the neighbour get going before the idle cores are sampled
            chosen = default_threads()
            for threads in [*args.threads, "chosen"]:
                for batch_size in args.batch_sizes:
                    count = chosen if threads == "chosen" else threads
                    seconds = seconds_a_face(codec, files, count, batch_size, args.repeats)
                    rows.append({"busy": busy, "threads": threads, "count": count, "batch_size": batch_size,
                                 "seconds_a_face": round(seconds, 4)})
                    print(rows[-1], flush=True)
        finally:
            if neighbour is not None:
                neighbour.kill()
                neighbour.wait()
    result = {"model": codec.bundle.name, "faces": len(files), "cores": os.cpu_count(), "repeats": args.repeats,
              "rows": rows}
    write_bytes_atomic(args.out, (json.dumps(result, indent=1) + "\n").encode(), force=True)


if __name__ == "__main__":
    main()
