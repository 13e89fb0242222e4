"""How long the `gec` command takes to start: the median wall time of a few runs of each command line.

    python -m bench.startup --runs 5

Each run is a fresh process (`python -m gecodec.cli ...`). `gec decode FILE` is the whole of a one-face decode
(the default model's golden default file to a PNG): loading torch and the model, the search, the write. Writes
bench/results/startup.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from gecodec.fileio import write_bytes_atomic

RESULTS = Path(__file__).parent / "results"
GOLDEN = Path(__file__).parents[1] / "formats" / "golden"
DECODED = Path(tempfile.gettempdir()) / "gecodec-startup.png"
COMMANDS = {"gec --help": ["--help"], "gec --version": ["--version"], "gec info FILE": ["info", str(GOLDEN / "v2-q60.gec")],
            "gec decode FILE": ["decode", str(GOLDEN / "default-v3-quality.gec"), "-o", str(DECODED), "-f"]}


def seconds(args: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "gecodec.cli", *args], check=False, capture_output=True)
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--out", type=Path, default=RESULTS / "startup.json")
    args = parser.parse_args(argv)
    results = {name: round(statistics.median(seconds(command) for _ in range(args.runs)), 3)
               for name, command in COMMANDS.items()}
    print("| command | median seconds |\n|---|---|")
    for name, value in results.items():
        print(f"| `{name}` | {value} |")
    write_bytes_atomic(args.out, (json.dumps({"runs": args.runs, "median_seconds": results}, indent=1) + "\n").encode(),
                       force=True)


if __name__ == "__main__":
    main()
