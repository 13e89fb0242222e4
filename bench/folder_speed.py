"""A folder through the gec command as a user runs it: `gec encode` (which decodes every file it writes, to
check it) against `gec decode` of the files it wrote.

    python -m bench.folder_speed --data ../shared/data/celeba64/val --n 200

The first --n images are copied into a temporary folder; each command runs as its own process, so that torch
starts, loads the model and picks its threads as it does for a user (OMP_NUM_THREADS, if set, is passed on).
Writes bench/results/folder_speed.json: the wall-clock seconds of each command and their ratio.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from gecodec.fileio import write_bytes_atomic
from gecodec.imageio import is_image_path


def timed_command(*args: str) -> float:
    """Wall-clock seconds of one gec command, run as a user runs it; it must succeed."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "gecodec.cli", *args, "-q"], check=True)
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="folder of images")
    parser.add_argument("--n", type=int, default=200, help="images to encode")
    parser.add_argument("--out", type=Path, default=Path("bench/results/folder_speed.json"))
    args = parser.parse_args(argv)
    images = sorted(path for path in args.data.iterdir() if is_image_path(path))[: args.n]
    with tempfile.TemporaryDirectory() as scratch:
        inputs, codes, decoded = (Path(scratch) / name for name in ("images", "codes", "decoded"))
        inputs.mkdir()
        for path in images:
            shutil.copy(path, inputs / path.name)
        encode = timed_command("encode", str(inputs), "-o", f"{codes}/")
        decode = timed_command("decode", str(codes), "-o", f"{decoded}/")
    result = {"images": len(images), "encode_with_check_s": round(encode, 1), "decode_s": round(decode, 1),
              "ratio": round(encode / decode, 2)}
    write_bytes_atomic(args.out, (json.dumps(result, indent=1) + "\n").encode(), force=True)
    print(result)


if __name__ == "__main__":
    main()
