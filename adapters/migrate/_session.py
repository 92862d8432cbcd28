"""The session (connections to every node, kept for plan / migrate / verify) and the
one-call API built on it."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from types import TracebackType

from hashring import (
    InvalidOptionError,
    MigrationError,
    Placement,
    Topology,
    VolatileDestinationError,
)
from hashring._topology.clients import done_key

from ._connections import _Links, _nodes
from ._durability import Durability, _durability
from ._live_clients import LiveClient, wait_for_clients
from ._move import _Mover, _scripted
from ._results import (
    DEFAULT_BATCH,
    DEFAULT_TIMEOUT_MS,
    MIN_BUSY,
    MIN_RATE,
    ON_CONFLICT,
    MigrationPlan,
    MigrationResult,
    OnConflict,
    Progress,
)
from ._scan import _check_batch, _Page, _pages, _plan
from ._verify import _Arrivals, _verify

__all__ = ["MigrationSession", "migrate", "plan_migration", "verify"]


class MigrationSession:
    """Connections to every node of both topologies, checked, for plan / migrate / verify.

    Opening one checks the topologies, connects to every node (``INFO server``: also tells
    which names share a server) and keeps the connections (one pool per node, keys as bytes,
    no retries: a failure surfaces at once and a re-run picks up). Use it as a context
    manager, or :meth:`close` it. Not thread-safe: one operation at a time.

    Args:
        old: the topology clients used so far (its nodes are scanned and drained).
        new: the topology to move keys to (its placement, ``new.placement()``, built from
            scratch as a client loading the file would, decides every key's owner).
        timeout_ms: ``MIGRATE``'s timeout: the longest the source may wait on the
            destination at any moment of a transfer (milliseconds).

    Raises:
        ConfigError: a node without URL, a name with two URLs, a destination that is not
            ``redis://``, two names for one database, or two databases of one server where
            one is a destination.
        MigrationError: a node is unreachable or refuses the connection's credentials (the
            first one, URL redacted).
        InvalidOptionError: ``timeout_ms`` is not an int >= 1.
    """

    def __init__(
        self, old: Topology, new: Topology, *, timeout_ms: int = DEFAULT_TIMEOUT_MS
    ) -> None:
        if isinstance(timeout_ms, bool) or not isinstance(timeout_ms, int) or timeout_ms < 1:
            raise InvalidOptionError(f"timeout_ms must be an int >= 1, got {timeout_ms!r}")
        self._links = _Links(_nodes(old, new), socket_timeout=max(60.0, 10 * timeout_ms / 1000))
        self._old_names = frozenset(old.nodes)
        self._placement: Placement = new.placement()
        self._timeout_ms = timeout_ms
        self._arrivals = _Arrivals()
        self._window: tuple[str, frozenset[str]] | None = None  # (marker, nodes): set_marker
        try:
            self._links.connect()
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Close every connection (idempotent)."""
        self._links.close()

    def __enter__(self) -> MigrationSession:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # ------------------------------------------------------------------ facts

    @property
    def nodes(self) -> dict[str, str]:
        """Node name -> redacted URL, for every node scanned (both topologies), sorted."""
        return {name: node.shown for name, node in self._links.nodes.items()}

    def dbsize(self) -> int:
        """Keys over all nodes now (``DBSIZE`` of each): a progress bar's total.

        Raises:
            MigrationError: a node is unreachable.
        """
        total = 0
        for name, client in self._links.clients.items():
            with self._links.talking_to(name):
                total += int(client.dbsize())
        return total

    def durability(self) -> dict[str, Durability]:
        """Every node of the new topology (a possible destination): does it keep what it
        acknowledges through a crash? (See the package for the rule.) Moves nothing.

        Two or three round trips per node (``INFO persistence``, ``INFO replication``,
        ``CONFIG GET appendfsync`` when AOF is on; a refused one makes the answer
        ``"unknown"``, never an error).

        Raises:
            MigrationError: a node is unreachable.
        """
        return _durability(self._links)

    def wait_for_clients(
        self,
        version: str,
        *,
        timeout: float,
        on_wait: Callable[[list[LiveClient]], object] | None = None,
    ) -> list[LiveClient]:
        """Wait until every hashring client connected to any node runs topology ``version``
        (``CLIENT LIST``, see :mod:`._live_clients`), at most ``timeout`` seconds; return the
        stragglers left (empty: all switched). Moves nothing.

        Raises:
            MigrationError: a node is unreachable or refuses ``CLIENT LIST``.
        """
        return wait_for_clients(
            self._links.clients,
            version,
            timeout=timeout,
            servers=self._links.run_ids,
            on_wait=on_wait,
            guard=lambda node: self._links.talking_to(node, "listing the clients of"),
        )

    def set_marker(self, marker: str, nodes: Iterable[str]) -> list[str]:
        """Set the migration window's ``marker`` on each of ``nodes`` (the old owners) now,
        so window clients stop writing moving keys there and pull them instead (see
        ``hashring.adapters.redis._window``), and remember the window as
        :meth:`mark_passes` does. Idempotent; the marker never expires. One round trip per
        node; returns the nodes, sorted.

        Raises:
            MigrationError: a node is unreachable or refuses the write.
        """
        marked = self.mark_passes(marker, nodes)
        for name in marked:
            self._mark(name)
        return marked

    def mark_passes(self, marker: str, nodes: Iterable[str]) -> list[str]:
        """Remember a migration window's ``marker`` for ``nodes`` (the old owners) without
        setting it yet: a later :meth:`migrate` sets it on each of them just before its
        pass over that node (before the node's first ``SCAN``), and the window's done
        marker (``<marker>:done``) once that pass left none of the keys that move away from
        it behind. Until its pass, window clients keep writing a node's moving keys there
        (gated), where they stay until the pass moves them, instead of pulling them one by
        one; a command that cannot be gated sets the marker itself once the migration has
        started on another node (``hashring.adapters.redis._window_routes``). Only after
        no client of the old topology is left (:meth:`wait_for_clients`). Sends nothing;
        returns the nodes, sorted. O(nodes).
        """
        marked = sorted(set(nodes))
        self._window = (marker, frozenset(marked))
        return marked

    def _mark(self, source: str) -> None:
        """Set the remembered window's marker on ``source`` if it is one of its old owners
        (one round trip; nothing otherwise).

        Raises:
            MigrationError: the node is unreachable or refuses the write.
        """
        if self._window is None or source not in self._window[1]:
            return
        with self._links.talking_to(source, "setting the window's marker on"):
            self._links.clients[source].set(self._window[0], b"1")

    def clear_marker(self, marker: str) -> list[str]:
        """Delete ``marker`` and its done marker from every node; returns the nodes that held
        the marker, sorted. Two round trips per node.

        Raises:
            MigrationError: a node is unreachable or refuses the delete.
        """
        held = []
        for name in sorted(self._links.clients):
            with self._links.talking_to(name, "clearing the window's marker on"):
                client = self._links.clients[name]
                if client.delete(marker):
                    held.append(name)
                client.delete(done_key(marker))
        return held

    # ------------------------------------------------------------------ operations

    def plan(
        self,
        *,
        batch: int = DEFAULT_BATCH,
        with_bytes: bool = False,
        progress: Progress | None = None,
    ) -> MigrationPlan:
        """Scan every node and count the keys that are not on their new owner, per pair.

        Moves nothing. ``with_bytes`` adds pipelined ``MEMORY USAGE key SAMPLES 0`` for each
        misplaced key (a share of a round trip and the server's work per key). O(keys).

        Raises:
            MigrationError: a node is unreachable.
            InvalidOptionError: ``batch`` is not an int >= 1.
        """
        _check_batch(batch)
        return _plan(self._pages(batch), self._links, with_bytes, progress)

    def verify(
        self, *, batch: int = DEFAULT_BATCH, progress: Progress | None = None
    ) -> MigrationPlan:
        """The keys still misplaced, and the moved keys that are gone from their destination.

        Scans every node as :meth:`plan` does (``misplaced`` is 0 when the job is done).
        After :meth:`migrate` in this session it also looks, during the same scan, for every
        key that migration moved on its destination: ``checked`` keys, ``expired`` (gone,
        TTL run out: not a loss), ``lost`` per destination (gone from a destination that
        restarted or evicted keys since the session connected: ``restarted``, ``evicted``)
        and ``deleted`` per destination (gone from one that did neither: a client deleted
        them, not a loss). The job is done when ``misplaced == 0 and lost_total == 0``.
        O(keys) time plus one round trip per node; memory: a set of the moved keys'
        fingerprints of one destination at a time.

        Raises:
            MigrationError: a node is unreachable.
            InvalidOptionError: ``batch`` is not an int >= 1.
        """
        _check_batch(batch)
        return _verify(self._pages(batch), self._links, self._arrivals, progress)

    def migrate(
        self,
        *,
        batch: int = DEFAULT_BATCH,
        rate: float | None = None,
        on_conflict: OnConflict = "keep-destination",
        with_bytes: bool = False,
        progress: Progress | None = None,
        allow_volatile: bool = False,
        moved_progress: Progress | None = None,
        max_busy: float | None = None,
    ) -> MigrationResult:
        """Move every misplaced key to its owner under the new topology.

        ``progress(n)`` is called with the keys scanned after every ``SCAN`` page;
        ``moved_progress(n)`` with the keys moved after every round trip that moved some (a
        progress bar of moved keys; their sum is what moved so far if the run is stopped).

        First checks :meth:`durability` of every node of the new topology and refuses
        volatile ones (before anything moves) unless ``allow_volatile``.

        In a migration window (:meth:`mark_passes` or :meth:`set_marker` called first),
        sets the window's marker on each old owner before its pass and the done marker
        after it. One ``SCAN`` page at a time per node; its misplaced keys go out as one ``MIGRATE``
        per destination, pipelined in one round trip (with ``rate``, one ``MIGRATE`` of at
        most ``rate / 10`` keys per round trip, paced by a token bucket so that at most
        ``rate`` keys per second are sent on average; with ``max_busy``, a rest after each
        round trip and each page, so that the pass works at most that share of its wall
        time). Safe to interrupt at any point and to re-run: the server deletes a source
        copy only after the destination acknowledged it, and a re-run moves what is left.
        Counts moved, conflicting and missing keys. O(keys) time, O(batch) memory.

        Args:
            batch: ``SCAN COUNT`` and the most keys in one ``MIGRATE``.
            rate: the most keys sent to ``MIGRATE`` per second, at least :data:`MIN_RATE`
                (None: unlimited).
            max_busy: the largest share of its wall time the pass works, from
                :data:`MIN_BUSY` to 1: after working ``t`` seconds (a page's ``SCAN``, a
                round trip of MIGRATEs, its own computing) it sleeps ``t * (1 - max_busy)
                / max_busy``. A source server is blocked by the pass's commands
                (``MIGRATE`` waits for its destination) only within that work, so it
                serves its clients at least ``1 - max_busy`` of the time, whatever the
                keys' sizes and the servers' speed. None (or 1): no rests.
            on_conflict: ``"keep-destination"``, ``"replace"`` or ``"skip"`` (see the package).
            with_bytes: also sum ``MEMORY USAGE`` of the moved keys per pair.
            progress: called with the number of keys scanned after every page.
            allow_volatile: move keys to destinations that keep them in memory only (no
                AOF, no replica, or persistence unknown): right for caches.

        Raises:
            VolatileDestinationError: a destination is volatile and ``allow_volatile`` is
                False (nothing moved).
            MigrationError: a node is unreachable, a destination refused ``MIGRATE`` for
                another reason than a conflict (out of memory, authentication, timeout), or
                no replica of a replica-backed destination acknowledged a batch: keys moved
                so far stay moved; re-run to finish.
            InvalidOptionError: a bad ``batch``, ``rate``, ``max_busy`` or ``on_conflict``.
        """
        _check_batch(batch)
        _check_pace("max_busy", max_busy, MIN_BUSY, 1.0, "a share of time")
        _check_pace("rate", rate, MIN_RATE, 1e12, "a number of keys per second")
        if on_conflict not in ON_CONFLICT:
            raise InvalidOptionError(
                f"on_conflict must be one of {', '.join(ON_CONFLICT)}, got {on_conflict!r}"
            )
        durability = self.durability()
        volatile = tuple(d for d in durability.values() if not d.durable)
        if volatile and not allow_volatile:
            shown = self.nodes
            raise VolatileDestinationError(
                "refusing to move keys to volatile destinations (a crash or restart would "
                "lose the keys moved there, after their source copies are deleted): "
                + "; ".join(f"{d.node} ({shown[d.node]}): {d.detail}" for d in volatile)
                + ": turn on appendonly (appendfsync always) or attach a replica, or allow "
                "volatile destinations (a cache)",
                volatile,
            )
        mover = _Mover(
            self._links,
            self._arrivals,
            timeout_ms=self._timeout_ms,
            wait_on=frozenset(name for name, d in durability.items() if d.how == "replicas"),
            scripted=_scripted(self._links),
        )
        try:
            return mover.run(
                self._pages(batch, self._mark),
                batch=batch,
                rate=rate,
                busy=max_busy,
                on_conflict=on_conflict,
                with_bytes=with_bytes,
                progress=progress,
                moved_progress=moved_progress,
                finished=self._finished,
            )
        except MigrationError as exc:
            at_risk = {d.node: self._arrivals.count(d.node) for d in volatile}
            at_risk = {name: n for name, n in at_risk.items() if n}
            if not at_risk:
                raise
            risk = ", ".join(f"{n:,} to {name}" for name, n in sorted(at_risk.items()))
            raise MigrationError(
                f"{exc}; keys moved so far to volatile destinations ({risk}) are lost if "
                "those restarted"
            ) from exc.__cause__

    def _finished(self, source: str) -> None:
        """The pass over ``source`` left no key that moves away from it: on an old owner of
        a window this session remembers (:meth:`mark_passes`), set the window's done marker
        (window clients then send those keys straight to their new owner).

        Raises:
            MigrationError: the node is unreachable or refuses the write.
        """
        if self._window is None or source not in self._window[1]:
            return
        with self._links.talking_to(source, "setting the window's done marker on"):
            self._links.clients[source].set(done_key(self._window[0]), b"1")

    def _pages(self, batch: int, starting: Callable[[str], None] | None = None) -> Iterator[_Page]:
        """Every node's keys a ``SCAN`` page at a time, routed (what every operation reads);
        ``starting(node)`` before each node's first ``SCAN``."""
        return _pages(self._links, self._placement, self._old_names, batch, starting)


# --------------------------------------------------------------------------- one-call API


def plan_migration(
    old: Topology,
    new: Topology,
    *,
    batch: int = DEFAULT_BATCH,
    with_bytes: bool = False,
    progress: Progress | None = None,
) -> MigrationPlan:
    """What :func:`migrate` would move: misplaced keys per ``(from, to)`` pair. Moves nothing.

    Opens a :class:`MigrationSession` (see it for the checks), runs
    :meth:`MigrationSession.plan` and closes it. O(keys) time, O(batch) memory.

    Raises:
        ConfigError: the topologies cannot be migrated between (see :class:`MigrationSession`).
        MigrationError: a node is unreachable.
    """
    with MigrationSession(old, new) as session:
        return session.plan(batch=batch, with_bytes=with_bytes, progress=progress)


def migrate(
    old: Topology,
    new: Topology,
    *,
    batch: int = DEFAULT_BATCH,
    rate: float | None = None,
    on_conflict: OnConflict = "keep-destination",
    timeout_ms: int = DEFAULT_TIMEOUT_MS,
    with_bytes: bool = False,
    progress: Progress | None = None,
    allow_volatile: bool = False,
    max_busy: float | None = None,
) -> MigrationResult:
    """Move every key that is not on its owner under ``new`` to that owner (no verification:
    call :func:`verify` after it, which then checks locations only; for the loss check run
    :meth:`MigrationSession.migrate` then :meth:`MigrationSession.verify` in one session).
    See :meth:`MigrationSession.migrate`.

    Raises:
        ConfigError: the topologies cannot be migrated between (see :class:`MigrationSession`).
        VolatileDestinationError: a destination keeps no persistence and ``allow_volatile``
            is False (nothing moved).
        MigrationError: a node is unreachable or a destination refused ``MIGRATE``.
    """
    with MigrationSession(old, new, timeout_ms=timeout_ms) as session:
        return session.migrate(
            batch=batch,
            rate=rate,
            on_conflict=on_conflict,
            with_bytes=with_bytes,
            progress=progress,
            allow_volatile=allow_volatile,
            max_busy=max_busy,
        )


def verify(
    old: Topology,
    new: Topology,
    *,
    batch: int = DEFAULT_BATCH,
    progress: Progress | None = None,
) -> MigrationPlan:
    """The keys still misplaced after a migration (``.misplaced`` is 0 when it is complete).

    Raises:
        ConfigError: the topologies cannot be migrated between (see :class:`MigrationSession`).
        MigrationError: a node is unreachable.
    """
    with MigrationSession(old, new) as session:
        return session.verify(batch=batch, progress=progress)


def _check_pace(name: str, value: object, low: float, high: float, what: str) -> None:
    """Raises InvalidOptionError unless ``value`` is None or an int or float from ``low``
    to ``high`` (``what`` says what it is)."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise InvalidOptionError(f"{name} must be {what} from {low:g} to {high:g}, got {value!r}")
