"""Moving keys: each page's misplaced keys sent to their source server as pipelined
``MIGRATE``\\ s (with their TTLs read for the loss check), conflicts resolved by policy,
replica-backed destinations made to ``WAIT``, the pace kept by a token bucket and by rests
(:class:`_Pace`)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator

import redis

from hashring import MigrationError
from hashring._topology.moves import migrate_command

from ._connections import _Links
from ._durability import _wait_for_replica
from ._results import MigrationResult, OnConflict, Pair, Progress, _int, _sorted_pairs, _Tally
from ._scan import _Page
from ._verify import _Arrivals

# The PTTL of every key of a batch in one command: a pipelined PTTL per key costs redis-py
# about 20 us a key, this about 3 (measured on a 1,000-key batch). Read-only.
_PTTL_SCRIPT = "local t = {} for i, k in ipairs(KEYS) do t[i] = redis.call('PTTL', k) end return t"


class _Pace:
    """How fast a move pass goes: at most ``rate`` keys per second on average (a token
    bucket) and working at most ``busy`` of its wall time (rests in between).

    :meth:`take` before each round trip that sends ``n`` keys: the bucket holds at most a
    tenth of a second of keys; a take larger than what is in it goes through at once and the
    debt is paid by sleeping, so any batch size works. :meth:`rest` after each round trip
    and each page: it sleeps ``worked * (1 - busy) / busy``, ``worked`` being the time
    since the previous rest ended, waits of :meth:`take` left out (the scan of the page,
    the round trip, the pass's own computing). A source server spends only part of that
    time on the pass's commands (``SCAN``, ``MIGRATE``, which blocks the source until its
    destination answers), so it serves its clients at least ``1 - busy`` of the time.
    """

    def __init__(self, rate: float | None, busy: float | None) -> None:
        self._rate = rate
        self._capacity = 0.0 if rate is None else max(1.0, rate / 10)
        self._tokens = self._capacity
        self._last = self._since = time.perf_counter()
        self._factor = 0.0 if busy is None else (1.0 - busy) / busy
        self._worked = 0.0  # since the last rest, before the current stretch
        self.worked = 0.0
        """Seconds of work so far (rests and the bucket's waits left out)."""
        self.rested = 0.0
        """Seconds slept so far, by rests and by the bucket."""

    def take(self, n: int) -> None:
        if self._rate is None:
            return
        now = time.perf_counter()
        self._tokens = min(self._capacity, self._tokens + (now - self._last) * self._rate)
        self._last = now
        self._tokens -= n
        if self._tokens < 0:
            self._worked += now - self._since
            self._since = self._sleep(-self._tokens / self._rate)

    def rest(self) -> None:
        now = time.perf_counter()
        worked = self._worked + now - self._since
        self._worked = 0.0
        self.worked += worked
        self._since = self._sleep(worked * self._factor) if self._factor else now

    def _sleep(self, seconds: float) -> float:
        """Sleep ``seconds``, counted in :attr:`rested`; the time it ended."""
        start = time.perf_counter()
        time.sleep(seconds)
        end = time.perf_counter()
        self.rested += end - start
        return end


def _chunks(keys: list[bytes], size: int) -> Iterator[list[bytes]]:
    for start in range(0, len(keys), size):
        yield keys[start : start + size]


def _scripted(links: _Links) -> frozenset[str]:
    """The nodes that run a script (``EVAL "return 1" 0``): their TTLs are read with
    :data:`_PTTL_SCRIPT`, the others' with one ``PTTL`` per key. One round trip per node.

    Raises:
        MigrationError: a node is unreachable.
    """
    scripted = set()
    for name, client in links.clients.items():
        with links.talking_to(name):
            try:
                client.eval("return 1", 0)
            except redis.ResponseError:  # scripting off or not allowed: PTTL per key
                continue
        scripted.add(name)
    return frozenset(scripted)


class _Mover:
    """One move pass over the pages given to :meth:`run` (see the package docstring).

    Every key moved is added to ``arrivals`` (for the loss check); after every round trip
    that moved keys to a node of ``wait_on``, that node must have a replica acknowledge
    them (``WAIT``). ``scripted`` names the sources that read TTLs with one script.
    """

    def __init__(
        self,
        links: _Links,
        arrivals: _Arrivals,
        *,
        timeout_ms: int,
        wait_on: frozenset[str],
        scripted: frozenset[str],
    ) -> None:
        self._links = links
        self._arrivals = arrivals
        self._timeout_ms = timeout_ms
        self._wait_on = wait_on
        self._scripted = scripted
        self._left: dict[str, int] = {}  # per source: misplaced keys its pass left there

    def run(
        self,
        pages: Iterable[_Page],
        *,
        batch: int,
        rate: float | None,
        busy: float | None = None,
        on_conflict: OnConflict,
        with_bytes: bool,
        progress: Progress | None,
        moved_progress: Progress | None = None,
        finished: Callable[[str], None] | None = None,
    ) -> MigrationResult:
        """Move the misplaced keys of every page; count. O(keys) time, O(batch) memory.

        ``progress(n)`` is called with the keys scanned after every page,
        ``moved_progress(n)`` with the keys moved after every round trip that moved some,
        ``finished(source)`` after the last page of a source (the pages of one source come
        together) when its pass left none of its misplaced keys there (none failed, no
        conflict kept on it).

        Raises:
            MigrationError: a node is unreachable, a destination refused ``MIGRATE`` for
                another reason than a conflict, or a replica did not acknowledge.
        """
        start = time.perf_counter()
        tally = _Tally()
        pace = _Pace(rate, busy)
        per_send = batch if rate is None else max(1, min(batch, int(rate / 10)))
        scanned = in_place = 0
        current: str | None = None
        for source, keys, moves in pages:
            if source != current:
                self._finish(current, finished)
                current = source
            scanned += len(keys)
            in_place += len(keys) - sum(len(group) for group in moves.values())
            for owner, group in moves.items():
                _Tally.add(tally.planned, Pair(source, owner), len(group))
            if rate is None:
                sends = [list(moves.items())] if moves else []
            else:
                sends = [
                    [(owner, chunk)]
                    for owner, group in moves.items()
                    for chunk in _chunks(group, per_send)
                ]
            for send in sends:
                pace.take(sum(len(chunk) for _, chunk in send))
                moved_before = sum(tally.moved.values())
                self._send(source, send, on_conflict, with_bytes, tally)
                if moved_progress is not None:
                    moved_progress(sum(tally.moved.values()) - moved_before)
                pace.rest()
            if progress is not None:
                progress(len(keys))
            pace.rest()
        self._finish(current, finished)
        return MigrationResult(
            on_conflict=on_conflict,
            scanned=scanned,
            in_place=in_place,
            planned=_sorted_pairs(tally.planned),
            moved=_sorted_pairs(tally.moved),
            conflicts=_sorted_pairs(tally.conflicts),
            missing=tally.missing,
            failed=tally.failed,
            bytes=_sorted_pairs(tally.bytes) if with_bytes else None,
            seconds=time.perf_counter() - start,
            worked_seconds=pace.worked,
            rested_seconds=pace.rested,
        )

    def _finish(self, source: str | None, finished: Callable[[str], None] | None) -> None:
        """Tell ``finished`` that the pass over ``source`` is over, unless it left keys."""
        if source is not None and finished is not None and not self._left.get(source):
            finished(source)

    def _send(
        self,
        source: str,
        send: list[tuple[str, list[bytes]]],
        on_conflict: OnConflict,
        with_bytes: bool,
        tally: _Tally,
    ) -> None:
        """One round trip to ``source``: per destination, [MEMORY USAGE...], TTLs, MIGRATE."""
        links = self._links
        replace = on_conflict == "replace"
        if replace:
            for owner, keys in send:
                with links.talking_to(owner):
                    busy = int(links.clients[owner].exists(*keys))
                _Tally.add(tally.conflicts, Pair(source, owner), busy)
        scripted = source in self._scripted
        pipe = links.clients[source].pipeline(transaction=False)
        for owner, keys in send:
            target = links.nodes[owner]
            if with_bytes:
                for key in keys:
                    pipe.memory_usage(key, samples=0)
            if scripted:
                pipe.eval(_PTTL_SCRIPT, len(keys), *keys)
            else:
                for key in keys:
                    pipe.pttl(key)
            pipe.execute_command(  # type: ignore[no-untyped-call]
                *migrate_command(
                    target.destination, keys, timeout_ms=self._timeout_ms, replace=replace
                )
            )
        sent_at = time.monotonic()
        with links.talking_to(source):
            replies = pipe.execute(raise_on_error=False)
        at = 0
        arrived: set[str] = set()
        failure: MigrationError | None = None
        read_all = False
        try:  # every reply is read, so that each destination that took keys is known
            for owner, keys in send:
                pair = Pair(source, owner)
                usage = replies[at : at + len(keys)] if with_bytes else []
                at += len(usage)
                if scripted:
                    found = replies[at]
                    if not isinstance(found, list) or len(found) != len(keys):
                        raise MigrationError(
                            f"node {source!r} ({links.nodes[source].shown}) refused the PTTL "
                            f"script ({links.scrub(str(found))}) after accepting it: its keys "
                            "moved in this round trip are not checked; re-run to finish"
                        )
                    answer, at = replies[at + 1], at + 2
                else:
                    found, answer = replies[at : at + len(keys)], replies[at + len(keys)]
                    at += len(keys) + 1
                ttls = [_int(ttl, -2) for ttl in found]
                existed = sum(1 for ttl in ttls if ttl != -2)
                tally.missing += len(keys) - existed
                if not isinstance(answer, Exception):  # OK, or NOKEY when none was left
                    moved = existed if answer == b"OK" else 0
                    tally.missing += existed - moved
                    _Tally.add(tally.moved, pair, moved)
                    if moved:
                        arrived.add(owner)
                        for key, ttl in zip(keys, ttls, strict=True):
                            if ttl != -2:
                                self._arrivals.add(owner, key, ttl, sent_at)
                    if with_bytes:
                        _Tally.add(tally.bytes, pair, sum(_int(u) for u in usage))
                    continue
                left = self._resolve(pair, keys, ttls, sent_at, on_conflict, tally)
                if len(left) < existed:
                    arrived.add(owner)
                if with_bytes:
                    sizes = (_int(u) for key, u in zip(keys, usage, strict=True) if key not in left)
                    _Tally.add(tally.bytes, pair, sum(sizes))
                message = links.scrub(str(answer))
                if "BUSYKEY" not in message and failure is None:
                    failure = MigrationError(  # raised once every reply is read
                        f"MIGRATE {source} -> {owner} ({links.nodes[owner].address}) "
                        f"failed: {message}; keys moved so far stay moved, re-run to finish"
                    )
            read_all = True
        finally:  # a destination that took keys is waited for, whatever failed meanwhile
            # (with a reply left unread, any destination of this round trip may have)
            took = arrived if read_all else {owner for owner, _ in send}
            for owner in sorted(took & self._wait_on):
                _wait_for_replica(links, owner, self._timeout_ms)
        if failure is not None:
            raise failure

    def _resolve(
        self,
        pair: Pair,
        keys: list[bytes],
        ttls: list[int],
        sent_at: float,
        on_conflict: OnConflict,
        tally: _Tally,
    ) -> set[bytes]:
        """After a ``MIGRATE`` error: find the keys left on the source, apply the conflict
        policy to those the destination holds too, count. Returns the keys left."""
        links = self._links
        source, owner = pair
        existed = sum(1 for ttl in ttls if ttl != -2)
        with links.talking_to(source):
            pipe = links.clients[source].pipeline(transaction=False)
            for key in keys:
                pipe.exists(key)
            on_source = pipe.execute()
        left = [key for key, there in zip(keys, on_source, strict=True) if there]
        _Tally.add(tally.moved, pair, max(0, existed - len(left)))
        staying = set(left)
        for key, ttl in zip(keys, ttls, strict=True):
            if ttl != -2 and key not in staying:
                self._arrivals.add(owner, key, ttl, sent_at)
        if not left:
            return set()
        with links.talking_to(owner):
            pipe = links.clients[owner].pipeline(transaction=False)
            for key in left:
                pipe.exists(key)
            on_destination = pipe.execute()
        busy = [key for key, there in zip(left, on_destination, strict=True) if there]
        tally.failed += len(left) - len(busy)
        if on_conflict == "replace":
            tally.failed += len(busy)  # not a conflict: REPLACE was asked and did not happen
            self._left[source] = self._left.get(source, 0) + len(left)
            return set(left)
        _Tally.add(tally.conflicts, pair, len(busy))
        kept = len(left)
        if busy and on_conflict == "keep-destination":
            if owner in self._wait_on:  # the copies kept must be durable before these go
                _wait_for_replica(links, owner, self._timeout_ms)
            with links.talking_to(source):
                links.clients[source].unlink(*busy)
            kept -= len(busy)
        self._left[source] = self._left.get(source, 0) + kept
        return set(left)
