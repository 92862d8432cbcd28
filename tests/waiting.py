"""Waiting on a condition in tests: polled, with a generous bound, never a fixed sleep."""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["WAIT", "wait_until"]

WAIT = 30.0
"""Seconds a test waits for anything polled (generous: the machines are shared and noisy)."""


def wait_until(
    condition: Callable[[], object], what: str, timeout: float = WAIT, poll: float = 0.005
) -> None:
    """Return once ``condition()`` is true; fail the test naming ``what`` after ``timeout``
    seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(poll)
