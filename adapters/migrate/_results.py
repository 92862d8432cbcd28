"""The migration's options and what a pass returns: :class:`MigrationPlan` (a scan: what
would move, or what is left) and :class:`MigrationResult` (a move). Pure data, no I/O."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sized
from dataclasses import dataclass, field
from typing import Literal, NamedTuple

__all__ = [
    "DEFAULT_BATCH",
    "DEFAULT_TIMEOUT_MS",
    "ON_CONFLICT",
    "MigrationPlan",
    "MigrationResult",
    "OnConflict",
    "Pair",
    "Progress",
]

OnConflict = Literal["keep-destination", "replace", "skip"]
"""What to do with a key that is on its destination already (see the package docstring)."""
ON_CONFLICT: tuple[OnConflict, ...] = ("keep-destination", "replace", "skip")
"""Every :data:`OnConflict` policy, the default first (the CLI's ``--on-conflict`` choices)."""
DEFAULT_BATCH = 1000
"""Keys per ``SCAN COUNT`` and the most keys in one ``MIGRATE``."""
DEFAULT_TIMEOUT_MS = 5000
"""``MIGRATE``'s (and ``WAIT``'s) timeout in milliseconds."""
MIN_RATE = 0.01
"""The lowest ``rate`` a move takes, in keys per second: a wait of at most 100 s per key
(lower ones would wait for days, or overflow ``time.sleep``)."""
MIN_BUSY = 0.01
"""The lowest ``max_busy`` a move takes: rests of at most 99 times the work before them."""

Progress = Callable[[int], object]
"""Called with the number of keys just scanned, after every ``SCAN`` page."""


class Pair(NamedTuple):
    """Where misplaced keys are and where they belong: the key of every per-pair count.

    A tuple, so ``(source, destination)`` unpacking and ``("n0", "n3")`` lookups work; sorted
    by source, then destination.
    """

    source: str
    """The node the keys were found on."""
    destination: str
    """Their owner under the new topology."""


@dataclass(frozen=True)
class MigrationPlan:
    """What a scan found: keys per ``(from, to)`` pair that are not on their new owner.

    Returned by :func:`plan_migration` (what would move) and :func:`verify` (what is left).
    """

    scanned: int
    """Keys scanned over all nodes."""
    in_place: int
    """Keys already on their owner under the new topology."""
    pairs: dict[Pair, int]
    """Misplaced keys per ``(node found on, owner under the new topology)``, sorted."""
    bytes: dict[Pair, int] | None = None
    """``MEMORY USAGE`` totals per pair when asked for (``with_bytes``), else None."""
    seconds: float = 0.0
    """Wall time of the scan."""
    checked: int = 0
    """Verification after a migration in the same session: keys moved by it that were
    looked for on their destination (0 otherwise)."""
    expired: int = 0
    """Of ``checked``, keys not found whose TTL had run out (not a loss)."""
    lost: dict[str, int] = field(default_factory=dict)
    """Of ``checked``, keys not on their destination (TTL not run out) that the destination
    may have dropped itself: it restarted or evicted keys since the session connected (it is
    in ``restarted`` or ``evicted``). Per destination (only those with some)."""
    deleted: dict[str, int] = field(default_factory=dict)
    """Of ``checked``, keys not on their destination (TTL not run out) although it neither
    restarted nor evicted a key since the session connected: a client deleted them (``DEL``,
    ``UNLINK``, ``FLUSHDB``, ``RENAME``, ...), not a loss. Per destination (only those with
    some)."""
    restarted: tuple[str, ...] = ()
    """Nodes whose ``run_id`` changed since the session connected (they restarted, or a
    replica took over)."""
    evicted: tuple[str, ...] = ()
    """Nodes whose ``INFO stats`` ``evicted_keys`` changed since the session connected (they
    evicted keys under ``maxmemory``, or their stats were reset), or that do not report it."""

    @property
    def misplaced(self) -> int:
        """Keys not on their owner (the plan's keys to move; 0 when the job is done)."""
        return sum(self.pairs.values())

    @property
    def lost_total(self) -> int:
        """Moved keys lost (gone from a destination that restarted or evicted), over all
        destinations."""
        return sum(self.lost.values())

    @property
    def deleted_total(self) -> int:
        """Moved keys deleted by clients since they moved, over all destinations."""
        return sum(self.deleted.values())

    @property
    def keys_per_second(self) -> float:
        """Keys scanned per second."""
        return self.scanned / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class MigrationResult:
    """What :func:`migrate` did.

    Accounting, per pair and in total: ``to_move = moved + missing + failed + conflicts``
    with ``keep-destination`` and ``skip``; with ``replace`` conflicts are overwritten and
    so are part of ``moved``: ``to_move = moved + missing + failed``.
    """

    on_conflict: OnConflict
    scanned: int
    """Keys scanned over all nodes (a key moved into a node whose scan had not reached it
    yet is seen again there, in place: nodes new to the topology are scanned first)."""
    in_place: int
    """Keys already on their owner under the new topology."""
    planned: dict[Pair, int]
    """Misplaced keys found per pair (the keys the pass tried to move)."""
    moved: dict[Pair, int]
    """Keys moved per pair (now on their owner, source copy gone)."""
    conflicts: dict[Pair, int]
    """Keys found on both source and destination, per pair (policy applied)."""
    missing: int
    """Keys that expired or were deleted between ``SCAN`` and ``MIGRATE`` (not an error)."""
    failed: int = 0
    """Keys a ``MIGRATE`` reported an error for that are on the source only (still
    misplaced; a re-run retries them)."""
    bytes: dict[Pair, int] | None = None
    """``MEMORY USAGE`` totals of the moved keys per pair, when asked for."""
    seconds: float = 0.0
    """Wall time of the pass."""
    worked_seconds: float = 0.0
    """Of :attr:`seconds`, the time the pass worked: scanning, its round trips and its own
    computing (not its rests)."""
    rested_seconds: float = 0.0
    """Of :attr:`seconds`, the time the pass slept to keep its pace (``rate`` and
    ``max_busy``); 0.0 without either."""

    @property
    def to_move(self) -> int:
        """Misplaced keys found by the pass."""
        return sum(self.planned.values())

    @property
    def moved_total(self) -> int:
        """Keys moved over all pairs."""
        return sum(self.moved.values())

    @property
    def conflicts_total(self) -> int:
        """Conflicts over all pairs."""
        return sum(self.conflicts.values())

    @property
    def keys_per_second(self) -> float:
        """Keys moved per second of the pass (scanning included)."""
        return self.moved_total / self.seconds if self.seconds > 0 else 0.0


# --------------------------------------------------------------------------- counting


def _sorted_pairs(counts: Mapping[Pair, int]) -> dict[Pair, int]:
    """``counts`` as a dict sorted by pair. O(p log p) for p pairs."""
    return {pair: counts[pair] for pair in sorted(counts)}


@dataclass
class _Tally:
    """The running counts of one pass (per pair, and in total)."""

    planned: dict[Pair, int] = field(default_factory=dict)
    moved: dict[Pair, int] = field(default_factory=dict)
    conflicts: dict[Pair, int] = field(default_factory=dict)
    bytes: dict[Pair, int] = field(default_factory=dict)
    missing: int = 0
    failed: int = 0

    @staticmethod
    def add(counts: dict[Pair, int], pair: Pair, n: int) -> None:
        """Add ``n`` to ``counts[pair]``; a pair is only created for a non-zero count."""
        if n:
            counts[pair] = counts.get(pair, 0) + n

    @staticmethod
    def add_page(
        counts: dict[Pair, int], source: str, keys: Sized, moves: Mapping[str, Sized]
    ) -> int:
        """Add a SCAN page's misplaced keys to ``counts`` per (source, owner) pair; return
        how many of the page's ``keys`` are in place."""
        moving = 0
        for owner, group in moves.items():
            _Tally.add(counts, Pair(source, owner), len(group))
            moving += len(group)
        return len(keys) - moving


def _int(value: object, default: int = 0) -> int:
    """``value`` if a server answered an int (``bool`` is not one), else ``default``."""
    return value if isinstance(value, int) and not isinstance(value, bool) else default
