"""Task functions the dispatch tests send to worker processes (importable by the workers,
standard library only so that a worker imports them fast)."""

from __future__ import annotations

import itertools
import os
import pathlib
import threading
import time
from typing import Any

_sequence = itertools.count()
"""Per worker process: the order in which its tasks ran."""


def where(*args: Any, **kwargs: Any) -> tuple[int, int, tuple[Any, ...], dict[str, Any]]:
    """(pid, the task's rank in this worker, args, kwargs)."""
    return os.getpid(), next(_sequence), args, kwargs


def square(x: int) -> int:
    return x * x


def add(a: int, b: int) -> int:
    return a + b


def fail(message: str) -> None:
    raise ValueError(message)


def exit_now(code: int) -> None:
    """Kill the worker process running this task, without cleaning up."""
    os._exit(code)


def unpicklable_result() -> Any:
    return threading.Lock()


class UnpicklableError(Exception):
    """An exception that cannot be pickled (its constructor needs two arguments)."""

    def __init__(self, a: str, b: str) -> None:
        super().__init__(f"{a}-{b}")
        self.lock = threading.Lock()


def raise_unpicklable() -> None:
    raise UnpicklableError("a", "b")


def hold(marker: str, release: str, timeout: float = 30.0) -> int:
    """Create ``marker``, then wait until ``release`` exists (bounded); return the pid."""
    pathlib.Path(marker).touch()
    deadline = time.monotonic() + timeout
    while not os.path.exists(release):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{release} never appeared")
        time.sleep(0.005)
    return os.getpid()


def busy(seconds: float) -> int:
    """Spin for ``seconds`` of CPU (a task of known length); return the pid."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass
    return os.getpid()
