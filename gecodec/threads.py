"""How many threads torch runs on: the cores that other processes leave idle, unless the caller or the
environment says.

Measured by `python -m bench.threads` on 2 cores (bench/results/threads.json): at rest, 2 threads decode 22%
(one face) to 33% (batches of 8) faster than 1; beside one busy process they are 4.1 and 3.0 times slower, as
their work waits for a core that is not free. So the right count is the number of idle cores, sampled when a
command starts: 2 at rest and 1 beside the busy process, in that run.
"""

from __future__ import annotations

import math
import os
import time

import torch

SAMPLE_SECONDS = 0.05  # long enough to see what the other processes do, short against a decode of 0.3 s


def usable_cores() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def idle_cores(sample_seconds: float = SAMPLE_SECONDS) -> float | None:
    """How many of the machine's cores were idle over a short sample (Linux's /proc/stat); None where it cannot
    be read."""
    def totals() -> tuple[int, int]:
        with open("/proc/stat") as stat:
            lines = stat.read().splitlines()
        fields = [int(v) for v in lines[0].split()[1:]]  # user nice system idle iowait irq softirq steal ...
        cores = sum(1 for line in lines if line.startswith("cpu") and line[3].isdigit())
        return fields[3] + fields[4], sum(fields[:8]), cores

    try:
        idle_before, total_before, cores = totals()
        time.sleep(sample_seconds)
        idle_after, total_after, _ = totals()
    except (OSError, ValueError, IndexError):
        return None
    if total_after <= total_before:
        return None
    return cores * (idle_after - idle_before) / (total_after - total_before)


def default_threads() -> int:
    """The idle cores, rounded, between 1 and the usable cores (all usable cores where idleness is unknown)."""
    idle = idle_cores()
    return usable_cores() if idle is None else max(1, min(usable_cores(), math.floor(idle + 0.5)))


def choose_threads(requested: int | None = None) -> int:
    """Set torch's intra-op thread count and return it: ``requested`` when given (--threads); else what
    OMP_NUM_THREADS set, when it is set; else default_threads()."""
    if requested is None and os.environ.get("OMP_NUM_THREADS"):
        return torch.get_num_threads()
    threads = default_threads() if requested is None else requested
    torch.set_num_threads(threads)
    return threads
