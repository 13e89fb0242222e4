"""Run command lines as child processes and record each one's exit status, time, peak memory and error output.

    python -m bench.child_runs CASES.json ROWS.json

Kept free of torch on purpose: a child's peak resident memory includes what its parent held when it forked,
so the parent must stay small. CASES.json is a list of {"case", "argv", "model_dir", "cwd", "timeout"}; used by
bench.hostile. A case still running at its timeout is killed and recorded as such, so a hang never blocks.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

ESC = b"\x1b"
MAX_LINES, MAX_LINE = 20, 10_000  # stderr lines kept for the verdict, and their length


def run_case(argv: list[str], env: dict[str, str], cwd: Path, timeout: float) -> dict:
    """Run ``argv`` as a child process: its exit status (or "killed (timeout)"), seconds, peak resident memory (MiB),
    its stderr lines (stdout is read and dropped) and whether stderr held a raw ESC byte."""
    started = time.perf_counter()
    process = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    streams: dict[str, bytes] = {}
    readers = [threading.Thread(target=lambda name=name: streams.update({name: getattr(process, name).read()}),
                                daemon=True) for name in ("stdout", "stderr")]
    for reader in readers:
        reader.start()
    killer = threading.Timer(timeout, process.kill)
    killer.start()
    _, status, usage = os.wait4(process.pid, 0)  # rusage of this child alone
    killer.cancel()
    for reader in readers:
        reader.join()
    seconds = time.perf_counter() - started
    stderr = streams.get("stderr", b"")
    lines = [line[:MAX_LINE] for line in stderr.decode(errors="backslashreplace").splitlines() if line.strip()]
    code = os.waitstatus_to_exitcode(status)
    return {"status": "killed (timeout)" if code < 0 else code, "seconds": round(seconds, 2),
            "peak_mb": round(usage.ru_maxrss / 1024), "stderr": lines[:MAX_LINES], "raw_escape": ESC in stderr}


def main() -> None:
    cases_path, rows_path = sys.argv[1:3]
    rows = []
    for case in json.loads(Path(cases_path).read_text()):
        env = {**os.environ, "GECODEC_MODEL_DIR": case["model_dir"]}
        rows.append({"case": case["case"], **run_case(case["argv"], env, Path(case["cwd"]), case["timeout"])})
        print(json.dumps({k: v for k, v in rows[-1].items() if k != "stderr"}), flush=True)
    Path(rows_path).write_text(json.dumps(rows))


if __name__ == "__main__":
    main()
