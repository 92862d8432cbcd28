"""Passive health tracking shared by every adapter.

After ``failure_limit`` consecutive connection failures a node is *ejected* for
``retry_timeout`` seconds: callers route its keys to the next usable node of their
preference list. Once the timeout has passed the node is usable again; one more failure
ejects it again at once, one success restores it fully.

Trade-off: ejection keeps a cache answering while a node is down, but keys served by a
fallback node are written there, and are stale or missing when the node comes back. Turn it
on for caches, leave it off for stores whose data must not diverge.

Counters per node (``stats()``): commands sent, errors, ejections, and whether it is ejected.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass

from ._errors import InvalidOptionError

__all__ = ["HealthTracker", "NodeHealth"]


@dataclass
class NodeHealth:
    """Counters of one node."""

    commands: int = 0
    errors: int = 0
    consecutive_failures: int = 0
    ejections: int = 0
    ejected_until: float = 0.0


class HealthTracker:
    """Consecutive-failure ejection with timed retry, thread-safe.

    Args:
        enabled: eject failing nodes (False: only count).
        failure_limit: consecutive failures that eject a node (default 2), >= 1.
        retry_timeout: seconds an ejected node is skipped (default 30), > 0.
        clock: monotonic clock, injectable for tests.

    Raises:
        InvalidOptionError: a limit or timeout out of range.
    """

    def __init__(
        self,
        *,
        enabled: bool = True,
        failure_limit: int = 2,
        retry_timeout: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if (
            isinstance(failure_limit, bool)
            or not isinstance(failure_limit, int)
            or failure_limit < 1
        ):
            raise InvalidOptionError(f"failure_limit must be an int >= 1, got {failure_limit!r}")
        if (
            isinstance(retry_timeout, bool)
            or not isinstance(retry_timeout, (int, float))
            or not (retry_timeout > 0)
        ):
            raise InvalidOptionError(
                f"retry_timeout must be a positive number, got {retry_timeout!r}"
            )
        self.enabled = bool(enabled)
        self.failure_limit = failure_limit
        self.retry_timeout = float(retry_timeout)
        self._clock = clock
        self._lock = threading.Lock()
        self._nodes: dict[str, NodeHealth] = {}

    def usable(self, node: str) -> bool:
        """Whether requests may go to ``node`` now. O(1)."""
        health = self._nodes.get(node)
        return health is None or health.ejected_until <= self._clock()

    def first_usable(self, preference: Iterable[str]) -> str | None:
        """The first usable node of a preference list, or None if every one is ejected."""
        for node in preference:
            if self.usable(node):
                return node
        return None

    def record(self, node: str, ok: bool) -> None:
        """Count one command on ``node`` and whether its connection worked."""
        with self._lock:
            health = self._nodes.setdefault(node, NodeHealth())
            health.commands += 1
            if ok:
                health.consecutive_failures = 0
                health.ejected_until = 0.0
                return
            health.errors += 1
            health.consecutive_failures += 1
            if self.enabled and health.consecutive_failures >= self.failure_limit:
                now = self._clock()
                if health.ejected_until <= now:
                    health.ejections += 1
                health.ejected_until = now + self.retry_timeout

    def forget(self, node: str) -> None:
        """Drop a node's counters (it left the topology)."""
        with self._lock:
            self._nodes.pop(node, None)

    def stats(self, nodes: Iterable[str] = ()) -> dict[str, dict[str, float | int | bool]]:
        """Counters per node (every node of ``nodes`` listed, zeros if never used)."""
        with self._lock:
            names = sorted(set(nodes) | set(self._nodes))
            now = self._clock()
            result: dict[str, dict[str, float | int | bool]] = {}
            for name in names:
                health = self._nodes.get(name, NodeHealth())
                record: dict[str, float | int | bool] = dict(asdict(health))
                record["ejected"] = health.ejected_until > now
                result[name] = record
            return result
