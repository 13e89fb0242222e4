"""Run `gec` cases as child processes and record each one's exit status, time and peak memory.

    python -m bench.child_runs CASES.json ROWS.json WORKDIR

Kept free of torch on purpose: a child's peak resident memory includes what its parent held when it forked,
so the parent must stay small. CASES.json is a list of {"case", "args", "model_dir"}; used by bench.hostile.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path


def run_case(args: list[str], env: dict[str, str], cwd: Path, timeout: float = 60) -> dict:
    """Run `gec ARGS` as a child process; its exit status, seconds, peak resident memory and first gec: line."""
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "gecodec.cli", *args], cwd=cwd, env=env,
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output: list[str] = []
    reader = threading.Thread(target=lambda: output.append(process.stdout.read()), daemon=True)
    reader.start()
    killer = threading.Timer(timeout, process.kill)
    killer.start()
    _, status, usage = os.wait4(process.pid, 0)  # rusage of this child alone
    killer.cancel()
    reader.join()
    seconds = time.perf_counter() - started
    # gec's own one-line errors and warnings, and gec models' line for the hostile bundle
    lines = [line for line in "".join(output).splitlines() if line.startswith("gec:") or "hostile.safetensors" in line]
    code = os.waitstatus_to_exitcode(status)
    return {"status": "killed (timeout)" if code < 0 else code, "seconds": round(seconds, 2),
            "peak_mb": round(usage.ru_maxrss / 1024), "message": lines[0].replace(str(cwd), "WORK") if lines else ""}


def main() -> None:
    cases_path, rows_path, work = sys.argv[1:4]
    rows = []
    for case in json.loads(Path(cases_path).read_text()):
        env = {**os.environ, "GECODEC_MODEL_DIR": case["model_dir"]}
        rows.append({"case": case["case"], **run_case(case["args"], env, Path(work))})
        print(json.dumps(rows[-1]), flush=True)
    Path(rows_path).write_text(json.dumps(rows))


if __name__ == "__main__":
    main()
