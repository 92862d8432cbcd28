"""Verification and the loss check: what is still misplaced, and whether every key a
migration moved is on its destination (by fingerprints remembered while moving)."""

from __future__ import annotations

import hashlib
import time
from array import array
from collections.abc import Iterable

from ._connections import _Links
from ._results import MigrationPlan, Pair, Progress, _sorted_pairs, _Tally
from ._scan import _Page


def _fingerprint(key: bytes) -> int:
    """8 bytes of BLAKE2b of ``key``, as an int. O(len(key))."""
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "little")


class _Arrivals:
    """Fingerprints of the keys moved to each destination, to check later that they are there.

    8 bytes per key without TTL; 8 + 8 (its expiry, on ``time.monotonic``'s clock, never
    later than the real one) per key with a TTL.
    """

    def __init__(self) -> None:
        self._plain: dict[str, array[int]] = {}
        self._ttl: dict[str, tuple[array[int], array[float]]] = {}

    def add(self, node: str, key: bytes, pttl: int, sent_at: float) -> None:
        """Remember that ``key`` (``PTTL`` ``pttl`` read at ``sent_at``) reached ``node``."""
        if pttl < 0:
            self._plain.setdefault(node, array("Q")).append(_fingerprint(key))
        else:
            fps, deadlines = self._ttl.setdefault(node, (array("Q"), array("d")))
            fps.append(_fingerprint(key))
            deadlines.append(sent_at + pttl / 1000)

    def count(self, node: str | None = None) -> int:
        """Keys remembered for ``node`` (None: over all nodes)."""
        nodes = set(self._plain) | set(self._ttl) if node is None else {node}
        return sum(
            len(self._plain.get(name, ())) + len(self._ttl.get(name, ((), ()))[0]) for name in nodes
        )

    def nodes(self) -> list[str]:
        """The destinations some key was moved to, sorted."""
        return sorted(set(self._plain) | set(self._ttl))

    def pending(self, node: str) -> tuple[set[int], dict[int, float]]:
        """The fingerprints to look for on ``node``: (without TTL, {with TTL: expiry})."""
        fps, deadlines = self._ttl.get(node, (array("Q"), array("d")))
        return set(self._plain.get(node, ())), dict(zip(fps, deadlines, strict=True))


def _verify(
    pages: Iterable[_Page], links: _Links, arrivals: _Arrivals, progress: Progress | None
) -> MigrationPlan:
    """Count the misplaced keys of ``pages`` per pair and, while at it, look for every key
    of ``arrivals`` on its destination; then ask every node for its :meth:`_Links.state`.

    A moved key not found, its TTL not run out, is ``lost`` when its destination restarted
    (another ``run_id``) or evicted keys (``evicted_keys`` changed, or is not reported)
    since the session connected, and ``deleted`` (by a client) otherwise: a server drops a
    key on no other occasion. The state is read after the scan, so a drop the scan saw has
    happened by then.

    ``pages`` must give each node's pages one after the other (as :func:`_pages` does): a
    destination's fingerprints are settled when its last page has gone by. O(keys) time;
    memory: a set of one destination's fingerprints at a time.

    Raises:
        MigrationError: a node is unreachable.
    """
    start = time.perf_counter()
    pairs: dict[Pair, int] = {}
    scanned = in_place = 0
    arrived = set(arrivals.nodes())
    gone: dict[str, int] = {}
    expired = 0

    def settle(node: str, plain: set[int], with_ttl: dict[int, float]) -> None:
        """Count the fingerprints not seen on ``node``: expired, or gone."""
        nonlocal expired
        now = time.monotonic()
        missing = len(plain) + sum(1 for deadline in with_ttl.values() if deadline > now)
        expired += len(plain) + len(with_ttl) - missing
        if missing:
            gone[node] = missing

    current: tuple[str, set[int], dict[int, float]] | None = None
    for source, keys, moves in pages:
        if current is not None and current[0] != source:
            settle(*current)
            current = None
        if current is None and source in arrived:
            arrived.discard(source)
            current = (source, *arrivals.pending(source))
        if current is not None:
            _, plain, with_ttl = current
            for key in keys:
                fp = _fingerprint(key)
                plain.discard(fp)
                with_ttl.pop(fp, None)
        scanned += len(keys)
        in_place += _Tally.add_page(pairs, source, keys, moves)
        if progress is not None:
            progress(len(keys))
    if current is not None:
        settle(*current)
    for node in sorted(arrived):  # destinations whose scan found no key at all
        settle(node, *arrivals.pending(node))
    restarted, evicted = [], []
    for name in links.clients:
        run_id, evictions = links.state(name)
        since = links.evictions.get(name, evictions)
        if run_id != links.run_ids.get(name, run_id):
            restarted.append(name)
            since = 0  # a restart starts the count again
        if evictions is None or evictions != since:
            evicted.append(name)
    dropping = set(restarted) | set(evicted)
    return MigrationPlan(
        scanned=scanned,
        in_place=in_place,
        pairs=_sorted_pairs(pairs),
        seconds=time.perf_counter() - start,
        checked=arrivals.count(),
        expired=expired,
        lost={node: gone[node] for node in sorted(gone) if node in dropping},
        deleted={node: gone[node] for node in sorted(gone) if node not in dropping},
        restarted=tuple(restarted),
        evicted=tuple(evicted),
    )
