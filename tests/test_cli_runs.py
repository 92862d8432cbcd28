"""The test runners of ``tests/cli_runs.py``: a forked run that hangs or loses its zygote
fails alone, and the runs after it still work."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from cli_runs import Zygote

HANG_BOUND = 30.0


def environment() -> dict[str, str]:
    return {name: value for name, value in os.environ.items() if not name.startswith("HASHRING_")}


def test_a_hanging_run_is_killed_and_the_next_one_runs(tmp_path: Path) -> None:
    """A forked run that blocks is killed at its bound (a hang, status -9); the zygote goes on."""
    fifo = tmp_path / "fifo"  # a named pipe nobody writes to: opening it blocks for ever
    os.mkfifo(fifo)
    with Zygote(environment()) as zygote:
        assert zygote.threads == 1  # fork copies the whole process
        started = time.perf_counter()
        hung = zygote.run("report", "--keys-file", str(fifo), timeout=1.0)
        waited = time.perf_counter() - started
        after = zygote.run("report", "--keys", "0", timeout=HANG_BOUND)
    assert hung.hang
    assert hung.status == -signal.SIGKILL
    assert 1.0 <= waited < HANG_BOUND
    assert after.status == 2
    assert "must be at least 1" in after.stderr


def test_a_dead_zygote_fails_one_run_and_is_replaced() -> None:
    """If the zygote dies, the run in flight reports status -1 and a new zygote serves on."""
    with Zygote(environment()) as zygote:
        first = zygote.pid
        os.kill(first, signal.SIGKILL)
        lost = zygote.run("lookup", "k", "--nodes", "3", timeout=HANG_BOUND)
        again = zygote.run("lookup", "k", "--nodes", "3", timeout=HANG_BOUND)
        assert zygote.pid != first
    assert lost.status == -1
    assert "zygote failed" in lost.stderr
    assert again.status == 0
    assert b"node-" in again.stdout
