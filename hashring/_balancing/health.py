"""Passive health tracking shared by every adapter.

After ``failure_limit`` consecutive connection failures a node is *ejected* for
``retry_timeout`` seconds: callers route its keys to the next usable node of their
preference list. Once the timeout has passed the node is *half-open*: exactly one request
(the *probe*) is let through to it, while every other request keeps using the fallback. If
the probe succeeds the node is restored fully; if it fails the node is ejected for another
``retry_timeout``. So a recovering node sees one request per retry cycle, however many
threads or tasks are running, instead of all of them at once.

A probe is claimed by the thread (or asyncio task) whose :meth:`HealthTracker.usable` call
let it through. It is resolved by the next :meth:`HealthTracker.record` for that node; if
its claimer instead records a success on another node (it went elsewhere), or gives the
claim back with :meth:`HealthTracker.release` (its command ended without an outcome: an
error that says nothing about the node, a cancellation), the next caller may probe.
Adapters release in a ``finally``, so a claim lives exactly as long as its command;
``probe_timeout`` (default ``retry_timeout``) is only a backstop for a claimer that never
comes back: once it has passed, the claim lapses.

:meth:`HealthTracker.record` returns ``"ejected"`` when a node has just been ejected and
``"restored"`` when an ejected node has just answered again, so that adapters can drop the
node's pooled connections, which are stale after a restart.

Trade-off: ejection keeps a cache answering while a node is down, but keys served by a
fallback node are written there, and are stale or missing when the node comes back. Turn it
on for caches, leave it off for stores whose data must not diverge.

Counters per node (``stats()``): commands sent, errors, ejections, probes let through, and
whether it is ejected.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Literal

from .._errors import InvalidOptionError
from .._placement.keys import short_repr

__all__ = ["EJECTED", "MAX_SECONDS", "RESTORED", "HealthTracker", "NodeHealth", "Transition"]

Transition = Literal["ejected", "restored"]
EJECTED: Transition = "ejected"
RESTORED: Transition = "restored"


@dataclass
class NodeHealth:
    """Counters of one node (and its probe, if one is in flight).

    ``lock`` guards the counters; the state (``ejected_until`` and the probe) changes only
    with the tracker's lock held as well (taken first), so a holder of ``lock`` alone sees
    the state stand still.
    """

    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)
    commands: int = 0
    errors: int = 0
    consecutive_failures: int = 0
    ejections: int = 0
    ejected_until: float = 0.0
    """0 while healthy; else the end of the current ejection (in the past: half-open)."""
    probes: int = 0
    probe_deadline: float = 0.0
    """0 when no probe is in flight; else when the claim on the probe lapses."""
    probe_owner: object = None


def _claimer() -> object:
    """Who is asking: the running asyncio task, else the current thread."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return threading.get_ident()
    task = asyncio.current_task()
    return task if task is not None else threading.get_ident()


class HealthTracker:
    """Consecutive-failure ejection with a single half-open probe, thread-safe.

    Args:
        enabled: eject failing nodes (False: only count).
        failure_limit: consecutive failures that eject a node (default 2), >= 1.
        retry_timeout: seconds an ejected node is skipped before one probe is let through
            (default 30), > 0.
        clock: monotonic clock, injectable for tests.
        probe_timeout: seconds after which an unresolved probe claim lapses, so that another
            caller may probe (default: ``retry_timeout``), > 0.

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
        probe_timeout: float | None = None,
    ) -> None:
        if (
            isinstance(failure_limit, bool)
            or not isinstance(failure_limit, int)
            or failure_limit < 1
        ):
            raise InvalidOptionError(f"failure_limit must be an int >= 1, got {failure_limit!r}")
        if not _positive(retry_timeout):
            raise InvalidOptionError(
                "retry_timeout must be a positive number of seconds, at most a year, got "
                f"{short_repr(retry_timeout)}"
            )
        if probe_timeout is not None and not _positive(probe_timeout):
            raise InvalidOptionError(
                "probe_timeout must be None or a positive number of seconds, at most a year, "
                f"got {short_repr(probe_timeout)}"
            )
        self.enabled = bool(enabled)
        self.failure_limit = failure_limit
        self.retry_timeout = float(retry_timeout)
        self.probe_timeout = self.retry_timeout if probe_timeout is None else float(probe_timeout)
        self._clock = clock
        self._lock = threading.Lock()
        self._nodes: dict[str, NodeHealth] = {}
        self._claims: dict[object, set[str]] = {}  # claimer -> nodes it holds the probe of

    def usable(self, node: str, *, claim: bool = True) -> bool:
        """Whether a request may go to ``node`` now. O(1).

        True for a healthy node, False for an ejected one. For a half-open node (its
        ``retry_timeout`` is over) it is True for exactly one caller, which then holds the
        node's probe: with ``claim=True`` (default) this call takes the probe if it is free;
        the caller holding it keeps getting True; every other caller gets False until the
        probe is resolved by :meth:`record` or lapses. ``claim=False`` only looks: True when
        the probe is free or held by the caller, and claims nothing.
        """
        health = self._nodes.get(node)
        if health is None or health.ejected_until == 0.0:  # healthy: no lock, no clock
            return True
        now = self._clock()
        if health.ejected_until > now:
            return False
        me = _claimer()
        with self._lock:
            if health.ejected_until == 0.0:
                return True  # restored meanwhile
            if health.ejected_until > now:
                return False  # ejected again meanwhile
            if health.probe_deadline > now:
                return health.probe_owner == me
            if not claim:
                return True
            self._drop_probe(node, health)  # a lapsed claim, if any
            health.probes += 1
            health.probe_deadline = now + self.probe_timeout
            health.probe_owner = me
            self._claims.setdefault(me, set()).add(node)
            return True

    def first_usable(self, preference: Iterable[str], *, claim: bool = True) -> str | None:
        """The first usable node of a preference list, or None if every one is ejected (see
        :meth:`usable`, whose ``claim`` this passes on). O(len(preference))."""
        for node in preference:
            if self.usable(node, claim=claim):
                return node
        return None

    def record(self, node: str, ok: bool) -> Transition | None:
        """Count one command on ``node`` and whether its connection worked. O(1).

        A success restores the node fully (and resolves its probe); a failure counts towards
        ejection, and a failure on a node that was ejected before (a failed probe) ejects it
        again at once.

        Cost: an outcome that changes no state (every outcome with health off; a success on
        a healthy node or a failure below ``failure_limit`` with it on, while nobody holds a
        probe) takes only the node's own lock, never the tracker's; only ejections,
        restorations and probes take the tracker's lock.

        Returns:
            ``"ejected"`` when this failure ejected the node, ``"restored"`` when this
            success ended an ejection, else None.
        """
        health = self._nodes.get(node)
        if health is None:
            with self._lock:
                health = self._nodes.setdefault(node, NodeHealth())
        with health.lock:  # the common case: counters only
            if self._nodes.get(node) is not health:  # forgotten meanwhile: the full path
                quiet = False
            elif ok:
                quiet = health.ejected_until == 0.0 and not self._claims
            else:
                quiet = not self.enabled or health.consecutive_failures + 1 < self.failure_limit
            if quiet:
                health.commands += 1
                if ok:
                    health.consecutive_failures = 0
                else:
                    health.errors += 1
                    health.consecutive_failures += 1
                return None
        me = _claimer() if self._claims else None
        with self._lock:
            health = self._nodes.get(node) or self._nodes.setdefault(node, NodeHealth())
            with health.lock:
                return self._record_locked(node, health, ok, me)

    def _record_locked(
        self, node: str, health: NodeHealth, ok: bool, me: object
    ) -> Transition | None:
        """:meth:`record` with both locks held (the tracker's, then the node's)."""
        health.commands += 1
        if ok:
            was_ejected = health.ejected_until != 0.0
            health.consecutive_failures = 0
            health.ejected_until = 0.0
            self._drop_probe(node, health)
            held = self._claims.get(me) if me is not None else None
            if held:  # the claimer went to another node: its probes are free again
                for other in list(held):
                    lapsed = self._nodes.get(other)
                    if lapsed is not None:
                        self._drop_probe(other, lapsed)
            return RESTORED if was_ejected else None
        health.errors += 1
        health.consecutive_failures += 1
        if not self.enabled or health.consecutive_failures < self.failure_limit:
            return None
        now = self._clock()
        transition: Transition | None = None
        if health.ejected_until <= now:
            health.ejections += 1
            transition = EJECTED
        health.ejected_until = now + self.retry_timeout
        self._drop_probe(node, health)
        return transition

    def release(self, nodes: Iterable[str] | None = None) -> None:
        """Give back the caller's unresolved probe claims (on ``nodes``; default: all it
        holds). Call it when a command or request ends, whatever the outcome: a claim that
        no :meth:`record` resolved (the command raised something that says nothing about
        the node's health, or was cancelled) is freed at once, so the next caller may
        probe. Claims held by other callers are left alone. O(1) when the caller holds
        none, else O(claims held)."""
        if not self._claims:  # nobody holds a probe: the common case, no lock
            return
        me = _claimer()
        with self._lock:
            held = self._claims.get(me)
            if not held:
                return
            for node in list(held) if nodes is None else [n for n in nodes if n in held]:
                health = self._nodes.get(node)
                if health is not None and health.probe_owner == me:
                    self._drop_probe(node, health)
                else:
                    held.discard(node)
            if not held:
                self._claims.pop(me, None)

    def forget(self, node: str) -> None:
        """Drop a node's counters (it left the topology). O(1)."""
        with self._lock:
            health = self._nodes.pop(node, None)
            if health is not None:
                self._drop_probe(node, health)

    def stats(self, nodes: Iterable[str] = ()) -> dict[str, dict[str, float | int | bool]]:
        """Counters per node (every node of ``nodes`` listed, zeros if never used): commands,
        errors, consecutive_failures, ejections, ejected_until, probes, ejected. O(nodes)."""
        with self._lock:
            names = sorted(set(nodes) | set(self._nodes))
            now = self._clock()
            result: dict[str, dict[str, float | int | bool]] = {}
            for name in names:
                health = self._nodes.get(name) or NodeHealth()
                with health.lock:
                    result[name] = {
                        "commands": health.commands,
                        "errors": health.errors,
                        "consecutive_failures": health.consecutive_failures,
                        "ejections": health.ejections,
                        "ejected_until": health.ejected_until,
                        "probes": health.probes,
                        "ejected": health.ejected_until > now,
                    }
            return result

    def _check(self) -> None:
        """Assert every invariant of the tracker (for tests). O(nodes + claims).

        Counters never go negative and errors never exceed commands; an ejected node has
        reached ``failure_limit``; a probe has an owner exactly when it has a deadline, only
        on an ejected node, and is listed under its owner's claims; every listed claim is a
        probe its owner holds.
        """
        with self._lock:
            for name, health in self._nodes.items():
                with health.lock:
                    assert 0 <= health.errors <= health.commands, name
                    assert 0 <= health.consecutive_failures <= health.errors, name
                    if health.ejected_until != 0.0:
                        assert health.consecutive_failures >= self.failure_limit, name
                    assert (health.probe_owner is None) == (health.probe_deadline == 0.0), name
                    if health.probe_owner is not None:
                        assert health.ejected_until != 0.0, name
                        assert name in self._claims.get(health.probe_owner, ()), name
            for owner, held in self._claims.items():
                assert held, owner
                for name in held:
                    assert self._nodes[name].probe_owner == owner, name

    def _drop_probe(self, node: str, health: NodeHealth) -> None:
        """Free ``node``'s probe claim (the lock is held)."""
        owner = health.probe_owner
        health.probe_deadline = 0.0
        health.probe_owner = None
        held = self._claims.get(owner)
        if held is not None:
            held.discard(node)
            if not held:
                del self._claims[owner]


def _positive(value: object) -> bool:
    """A positive number of seconds, finite and at most a year (a float, never overflowing)."""
    return (
        not isinstance(value, bool) and isinstance(value, (int, float)) and 0 < value <= MAX_SECONDS
    )


MAX_SECONDS = 365 * 24 * 3600.0
"""Longest ``retry_timeout`` or ``probe_timeout`` accepted: a year."""
