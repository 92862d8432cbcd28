"""Keyless balancers: where to send a request that has no shard key.

Every balancer offers the same two calls:

* ``pick()``: the node for one request, without recording it;
* ``with balancer.acquire() as node:``: pick a node and count the request as in flight on
  it until the block exits (the load that least-loaded and power-of-two choices read).

Strategies (weights honoured everywhere):

``RoundRobin``
    Smooth weighted round-robin (the nginx rule): over any ``sum(weights)`` consecutive
    picks each node is chosen exactly ``weight`` times, spread out rather than in runs.
    Weights are rounded to integers of at least 1 for this.
``RandomChoice``
    Independent random picks with probability proportional to weight; seedable.
``LeastLoaded``
    The node with the fewest in-flight requests per unit of weight; among equally loaded
    nodes the one picked least recently, so idle traffic rotates instead of piling on one.
``PowerOfTwo``
    Two distinct random candidates (weighted), then the less loaded per unit of weight (the
    first candidate on a tie): nearly least-loaded balance at a fraction of the coordination.

All are thread-safe; membership changes keep the in-flight counts of surviving nodes.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager

from sortedcontainers import SortedKeyList

from .._errors import EmptyRingError, InvalidOptionError
from .._placement.nodes import NodeSet

__all__ = ["Balancer", "LeastLoaded", "PowerOfTwo", "RandomChoice", "RoundRobin", "balancer"]


class _Snapshot:
    __slots__ = ("names", "weight_list", "weights")

    def __init__(self, weights: dict[str, float]) -> None:
        self.weights = weights
        self.names = tuple(sorted(weights))
        self.weight_list = [weights[name] for name in self.names]


class Balancer(NodeSet[_Snapshot]):
    """Base of the keyless strategies: membership, in-flight counts, ``acquire``.

    Subclasses implement :meth:`_choose`, called with ``self._lock`` held.
    """

    _KIND = "balancer"

    def __init__(self, nodes: Iterable[str] | Mapping[str, float] = ()) -> None:
        self._in_flight: Counter[str] = Counter()
        self._init_nodes(nodes, hash_tags=False)

    def pick(self) -> str:
        """The node for one request, without counting it as in flight. O(log n) or better.

        Raises:
            EmptyRingError: there are no nodes.
        """
        with self._lock:
            return self._choose(self._live())

    @contextmanager
    def acquire(self) -> Iterator[str]:
        """Pick a node and count one request in flight on it until the block exits.

        Raises:
            EmptyRingError: there are no nodes.
        """
        with self._lock:
            node = self._choose(self._live())
            self._adjust(node, +1)
        try:
            yield node
        finally:
            with self._lock:
                self._adjust(node, -1)

    def add_in_flight(self, node: str, delta: int) -> None:
        """Count ``delta`` more requests in flight on ``node`` (fewer when negative), for a
        caller that places some requests itself (by key) and balances the rest on the same
        load: the keyed executor counts every task it queues. A node not held is ignored.
        O(log n)."""
        with self._lock:
            self._adjust(node, delta)

    def in_flight(self) -> dict[str, int]:
        """Requests currently in flight per node (every node listed)."""
        with self._lock:
            return {name: self._in_flight[name] for name in self._snapshot.names}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(nodes={len(self)})"

    def _check(self) -> None:
        """Verify the balancer's invariants; raise AssertionError if one is broken. O(n log n)."""
        super()._check()
        snapshot = self._snapshot
        require = self._require
        require(snapshot.names == tuple(sorted(snapshot.weights)), "names are sorted")
        require(
            snapshot.weight_list == [snapshot.weights[n] for n in snapshot.names],
            "weight list follows the names",
        )
        require(set(self._in_flight) <= set(snapshot.weights), "in-flight only on nodes")
        require(all(count >= 0 for count in self._in_flight.values()), "in-flight >= 0")

    def _live(self) -> _Snapshot:
        snapshot = self._snapshot
        if not snapshot.names:
            raise EmptyRingError(f"the {self._KIND} has no nodes: add one first")
        return snapshot

    def _choose(self, snapshot: _Snapshot) -> str:
        raise NotImplementedError

    def _adjust(self, node: str, delta: int) -> None:
        if node in self._snapshot.weights:
            self._in_flight[node] += delta
        else:  # removed while the request was in flight
            self._in_flight.pop(node, None)

    def _apply(self, weights: dict[str, float]) -> None:
        for gone in set(self._in_flight) - weights.keys():
            del self._in_flight[gone]
        self._snapshot = _Snapshot(weights)


class RoundRobin(Balancer):
    """Smooth weighted round-robin: each node ``weight`` times per ``sum(weights)`` picks.

    >>> rr = RoundRobin({"a": 2, "b": 1})
    >>> [rr.pick() for _ in range(6)]
    ['a', 'b', 'a', 'a', 'b', 'a']
    """

    _KIND = "round-robin balancer"

    def __init__(self, nodes: Iterable[str] | Mapping[str, float] = ()) -> None:
        self._current: dict[str, int] = {}
        super().__init__(nodes)

    def _choose(self, snapshot: _Snapshot) -> str:
        current = self._current
        total = 0
        best = ""
        for name in snapshot.names:
            weight = max(1, round(snapshot.weights[name]))
            total += weight
            current[name] += weight
            if not best or current[name] > current[best]:
                best = name
        current[best] -= total
        return best

    def _apply(self, weights: dict[str, float]) -> None:
        self._current = {name: self._current.get(name, 0) for name in weights}
        super()._apply(weights)

    def _check(self) -> None:
        """Also: one current weight per node, and they sum to zero between picks (nginx)."""
        super()._check()
        self._require(set(self._current) == set(self._snapshot.weights), "a current per node")
        self._require(sum(self._current.values()) == 0, "current weights sum to zero")


class _Seeded(Balancer):
    """A balancer drawing from a private, optionally seeded random generator.

    Args:
        nodes: names or name -> weight.
        seed: seed for the generator (None: seeded from the OS).
    """

    def __init__(
        self, nodes: Iterable[str] | Mapping[str, float] = (), *, seed: int | None = None
    ) -> None:
        self._random = random.Random(seed)
        super().__init__(nodes)


class RandomChoice(_Seeded):
    """Random picks, probability proportional to weight (``seed=`` for repeatable runs)."""

    _KIND = "random balancer"

    def _choose(self, snapshot: _Snapshot) -> str:
        return self._random.choices(snapshot.names, snapshot.weight_list)[0]


class LeastLoaded(Balancer):
    """The node with the fewest in-flight requests per unit of weight.

    Ties go to the node picked least recently (then name order), so that idle traffic
    rotates. Kept in a sorted list keyed by ``(in_flight / weight, last pick, name)``:
    O(log n) per pick and per release.

    >>> idle = LeastLoaded(["x", "y"])
    >>> [idle.pick() for _ in range(3)]
    ['x', 'y', 'x']
    """

    _KIND = "least-loaded balancer"

    def __init__(self, nodes: Iterable[str] | Mapping[str, float] = ()) -> None:
        self._picked: dict[str, int] = {}
        self._clock = 0
        self._order: SortedKeyList[str, tuple[float, int, str]] = SortedKeyList(key=self._rank)
        super().__init__(nodes)

    def _rank(self, name: str) -> tuple[float, int, str]:
        load = self._in_flight[name] / self._snapshot.weights[name]
        return load, self._picked.get(name, -1), name

    def _choose(self, snapshot: _Snapshot) -> str:
        best: str = self._order[0]
        self._order.remove(best)
        self._clock += 1
        self._picked[best] = self._clock
        self._order.add(best)
        return best

    def _adjust(self, node: str, delta: int) -> None:
        if node in self._snapshot.weights:
            self._order.remove(node)
            super()._adjust(node, delta)
            self._order.add(node)
        else:
            super()._adjust(node, delta)

    def _apply(self, weights: dict[str, float]) -> None:
        super()._apply(weights)
        self._picked = {name: self._picked[name] for name in weights if name in self._picked}
        self._order = SortedKeyList(weights, key=self._rank)

    def _check(self) -> None:
        """Also: the sorted order holds every node once, ranked by its current load."""
        super()._check()
        self._order._check()  # type: ignore[attr-defined]  # sortedcontainers own checker
        names = list(self._order)
        self._require(sorted(names) == sorted(self._snapshot.weights), "order holds each node")
        ranks = [self._rank(name) for name in names]
        self._require(ranks == sorted(ranks), "order is by (load, last pick, name)")


class PowerOfTwo(_Seeded):
    """Power of two choices: two distinct weighted-random candidates, the less loaded wins
    (``seed=`` for repeatable runs)."""

    _KIND = "power-of-two balancer"

    def _choose(self, snapshot: _Snapshot) -> str:
        names = snapshot.names
        if len(names) == 1:
            return names[0]
        weights = list(snapshot.weight_list)  # copied: the first pick's weight is zeroed
        first = self._random.choices(range(len(names)), weights)[0]
        weights[first] = 0.0
        second = self._random.choices(range(len(names)), weights)[0]
        a, b = names[first], names[second]
        load_a = self._in_flight[a] / snapshot.weights[a]
        load_b = self._in_flight[b] / snapshot.weights[b]
        return b if load_b < load_a else a


_STRATEGIES: dict[str, type[Balancer]] = {
    "least-loaded": LeastLoaded,
    "power-of-two": PowerOfTwo,
    "random": RandomChoice,
    "round-robin": RoundRobin,
}


def balancer(strategy: str, nodes: Iterable[str] | Mapping[str, float] = ()) -> Balancer:
    """A keyless balancer by name: ``"round-robin"``, ``"random"``, ``"least-loaded"`` or
    ``"power-of-two"``.

    Raises:
        InvalidOptionError: an unknown strategy.
    """
    try:
        kind = _STRATEGIES[strategy]
    except (KeyError, TypeError):
        raise InvalidOptionError(
            f"unknown balancer {strategy!r}: use one of {', '.join(sorted(_STRATEGIES))}"
        ) from None
    return kind(nodes)
