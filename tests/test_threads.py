"""The thread count: the caller's, the environment's, or the cores other processes leave idle."""

from __future__ import annotations

import torch

from gecodec import threads
from gecodec.threads import choose_threads, default_threads, idle_cores, usable_cores


def test_the_callers_count_wins_then_the_environments(monkeypatch):
    before = torch.get_num_threads()
    try:
        assert choose_threads(2) == 2 == torch.get_num_threads()
        monkeypatch.setenv("OMP_NUM_THREADS", "1")
        assert choose_threads() == 2 == torch.get_num_threads()  # torch read OMP_NUM_THREADS when it started
    finally:
        torch.set_num_threads(before)


def test_the_default_is_the_idle_cores_between_one_and_the_usable_ones(monkeypatch):
    idle = idle_cores(0.01)
    assert idle is None or 0 <= idle <= 1024
    assert 1 <= usable_cores()
    monkeypatch.setattr(threads, "usable_cores", lambda: 4)
    for sampled, expected in ((0.2, 1), (1.6, 2), (64.0, 4), (None, 4)):  # None: idleness unknown
        monkeypatch.setattr(threads, "idle_cores", lambda sampled=sampled: sampled)
        assert default_threads() == expected
    monkeypatch.delenv("OMP_NUM_THREADS")
    before = torch.get_num_threads()
    try:
        monkeypatch.setattr(threads, "idle_cores", lambda: 1.2)
        assert choose_threads() == 1 == torch.get_num_threads()
    finally:
        torch.set_num_threads(before)
