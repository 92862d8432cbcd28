"""Consistent hashing with bounded loads (Mirrokni, Thorup and Zadimoghaddam, SODA 2018).

Keys keep their consistent-hash owner while it has room: a request for key ``k`` goes to
the first node of ``k``'s preference list whose in-flight load is below its cap, where the
cap of node ``i`` with weight ``w_i`` is ``ceil((1 + epsilon) * (L + 1) * w_i / W)`` for
``L`` requests already in flight and total weight ``W``. Since the caps sum to more than
``L + 1``, some node always has room. No node is ever assigned beyond its cap; a hot key
spills over to the next nodes of its preference list instead of overloading its owner.
"""

from __future__ import annotations

import math
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

from .._errors import InvalidOptionError
from .._placement.contract import Placement
from .._placement.keys import Key, short_repr

__all__ = ["MAX_EPSILON", "BoundedLoad"]

MAX_EPSILON = 1e6
"""Largest ``epsilon`` (a cap a million times the average is no bound at all); it keeps
every cap a finite number."""


class BoundedLoad:
    """Bounded-load consistent hashing over any placement.

    >>> from hashring import HashRing
    >>> bounded = BoundedLoad(HashRing(["a", "b", "c"]), epsilon=0.25)
    >>> with bounded.acquire("user:42") as node:
    ...     node in ("a", "b", "c")
    True

    Args:
        placement: any placement (HashRing, Maglev, Rendezvous, JumpHash); its preference
            lists give the order in which full nodes are skipped. Its membership may change
            while requests are in flight.
        epsilon: how far above the average load a node may go (default 0.25); above 0 and
            at most ``MAX_EPSILON`` (1e6).

    Raises:
        InvalidOptionError: ``epsilon`` is not a number in (0, 1e6].
    """

    def __init__(self, placement: Placement, *, epsilon: float = 0.25) -> None:
        if (
            isinstance(epsilon, bool)
            or not isinstance(epsilon, (int, float))
            or not 0 < epsilon <= MAX_EPSILON
        ):
            raise InvalidOptionError(
                f"epsilon must be a number above 0 and at most {MAX_EPSILON:g}, "
                f"got {short_repr(epsilon)}"
            )
        self.placement = placement
        self.epsilon = float(epsilon)
        self._lock = threading.Lock()
        self._in_flight: Counter[str] = Counter()
        self._spilled = 0

    @contextmanager
    def acquire(self, key: Key) -> Iterator[str]:
        """Choose the node for a request on ``key`` and count it in flight until exit.

        Runtime complexity: O(preference-list walk), usually one lookup.

        Raises:
            InvalidKeyError: ``key`` is neither str nor bytes-like.
            KeyEncodingError: ``key`` is a str with no UTF-8 form (a lone surrogate).
            EmptyRingError: the placement has no nodes.
        """
        with self._lock:
            node = self._choose(key)
            self._in_flight[node] += 1
        try:
            yield node
        finally:
            with self._lock:
                self._in_flight[node] -= 1
                if self._in_flight[node] <= 0:
                    del self._in_flight[node]

    def pick(self, key: Key) -> str:
        """The node for a request on ``key`` given the load in flight now, without counting
        it: pair with :meth:`add_in_flight` when the request's lifetime is not one block.

        Runtime complexity: as :meth:`acquire`.

        Raises:
            InvalidKeyError, KeyEncodingError, EmptyRingError: as :meth:`acquire`.
        """
        with self._lock:
            return self._choose(key)

    def add_in_flight(self, node: str, delta: int) -> None:
        """Count ``delta`` more requests in flight on ``node`` (fewer when negative), for
        requests whose node was chosen by :meth:`pick` or elsewhere. O(1)."""
        with self._lock:
            count = self._in_flight[node] + delta
            if count > 0:
                self._in_flight[node] = count
            else:
                del self._in_flight[node]

    def caps(self) -> dict[str, int]:
        """Each node's cap for the next request, given the load in flight now."""
        with self._lock:
            return self._caps(sum(self._in_flight.values()))

    def caps_at(self, load: int) -> dict[str, int]:
        """Each node's cap for the next request when ``load`` requests are in flight (what
        a simulation of this rule asks, whatever is in flight here). O(nodes).

        >>> from hashring import HashRing
        >>> BoundedLoad(HashRing({"a": 3, "b": 1}), epsilon=0.25).caps_at(7)
        {'a': 8, 'b': 3}

        Raises:
            ValueError: ``load`` is negative.
        """
        if load < 0:
            raise ValueError(f"load must not be negative, got {load}")
        return self._caps(load)

    def in_flight(self) -> dict[str, int]:
        """Requests in flight per node of the placement."""
        with self._lock:
            return {name: self._in_flight[name] for name in self.placement.nodes}

    @property
    def spilled(self) -> int:
        """How many requests went to a node other than their key's owner."""
        return self._spilled

    def __repr__(self) -> str:
        return f"BoundedLoad({self.placement!r}, epsilon={self.epsilon})"

    def _check(self) -> None:
        """Verify the load bookkeeping; raise AssertionError if it is broken. O(n).

        Counts are positive (released nodes are dropped), spills never exceed what was
        handed out, and the placement's own invariants hold where it has a checker.
        """
        with self._lock:
            counts = dict(self._in_flight)
            spilled = self._spilled
        if not all(count > 0 for count in counts.values()):
            raise AssertionError("BoundedLoad invariant broken: in-flight counts are positive")
        if spilled < 0:
            raise AssertionError("BoundedLoad invariant broken: spills are counted up")
        check = getattr(self.placement, "_check", None)
        if check is not None:
            check()

    def _caps(self, load: int) -> dict[str, int]:
        weights = self.placement.nodes
        total = sum(weights.values())
        scale = (1 + self.epsilon) * (load + 1) / total if total else 0.0
        return {name: math.ceil(scale * weight) for name, weight in weights.items()}

    def _choose(self, key: Key) -> str:
        """The first node of ``key``'s preference list below its cap. Called with the lock.

        Walks 1, 2, 4, ... nodes of the list, then the whole list once more with fresh caps
        (membership may have changed under us). Caps sum to more than the load, so a node
        with room exists; should none be found all the same (weights changing between two
        reads), the node with the most room relative to its cap is taken. Always ends.
        """
        placement = self.placement
        in_flight = self._in_flight
        caps = self._caps(sum(in_flight.values()))
        wanted = 1
        for attempt in range(2):
            while True:
                whole = wanted >= len(placement)
                preference = placement.get_nodes(key, None if whole else wanted)
                for rank, node in enumerate(preference):
                    if in_flight[node] < caps.get(node, 0):
                        if rank:
                            self._spilled += 1
                        return node
                if whole:
                    break
                wanted *= 2
            if not attempt:
                caps = self._caps(sum(in_flight.values()))
        rank, node = min(
            enumerate(preference),
            key=lambda item: in_flight[item[1]] / max(1, caps.get(item[1], 0)),
        )
        if rank:
            self._spilled += 1
        return node
