"""A discrete-event simulation of a request stream dispatched over nodes of given speeds.

The study this library grew from compares ways of spreading work over compute nodes: hash
placements, round-robin, random and load-aware dispatch. This module measures them on the
same arrivals. A :class:`Workload` is a stream of requests: arrival times (seconds), a key
per request and its work (work units; a node of speed ``s`` serves ``w`` units in ``w / s``
seconds). Each node is one FIFO server: a request waits for the requests ahead of it at its
node, then is served alone.

Strategies (:data:`STRATEGIES`), every one on the same workload:

``ring``, ``maglev``, ``rendezvous``
    The key's owner under that placement, weighted by speed (:func:`hashring.placement`).
``jump``
    The key's owner under jump hash, which takes no weights: every node gets an equal share
    of the keys whatever its speed.
``bounded-load``
    :class:`hashring.BoundedLoad` over the ring: the first node of the key's preference list
    whose requests in flight are below its cap ``ceil((1 + epsilon) * (L + 1) * speed /
    total speed)`` for ``L`` requests in flight in all.
``round-robin``
    Each node in turn, whatever its speed (the study's round-robin).
``weighted-round-robin``
    :class:`hashring.RoundRobin` with the speeds as weights (smooth weighted round-robin).
``random``
    A node drawn with probability proportional to its speed (as :class:`hashring.RandomChoice`).
``least-loaded``
    The node with the fewest requests in flight per unit of speed; ties go to the node picked
    least recently, then name order (as :class:`hashring.LeastLoaded`).
``power-of-two``
    Two distinct nodes drawn by speed; the one with fewer requests in flight per unit of
    speed, the first on a tie (as :class:`hashring.PowerOfTwo`).

The oblivious strategies (hash placements, round-robin, random) choose every node up front,
vectorised; the load-aware ones (``bounded-load``, ``least-loaded``, ``power-of-two``) read
the requests in flight at each arrival in one pass over the requests (per-node FIFO queues of
departure times, plus one heap of departures where the total or every node's count is
needed). Then the FIFO service at every node is one vectorised Lindley recursion:
``departure[k] = max(arrival[k], departure[k-1]) + service[k]``, solved as ``S[k] +
max(arrival[i] - S[i-1] for i <= k)`` with ``S`` the running sum of service times.

Figures (:class:`Outcome`): per node the requests served, busy seconds and utilisation (busy
seconds over the window, the span of the arrivals: above 1.0 a node is offered more work
than it can do, and its queue grows for as long as the run lasts); the load summary over
nodes (:class:`hashring.LoadSummary` of the utilisations: the busy time of each node, which
is work over speed, so nodes of different speeds compare); the queue each request found at
its node (requests waiting or in service, itself excluded); latency (departure minus
arrival: waiting plus service) at p50, p99 and p99.9; and affinity: the fraction of
requests served on their key's home node, the owner under the strategy's own placement for
the hash placements (1.0 by construction) and under the speed-weighted ring for the others.

>>> workload = poisson_workload(requests=2_000, rate=1.4, keys=100, seed=7)
>>> outcome = simulate(workload, {"fast": 1.0, "slow": 1.0}, "round-robin")
>>> [node.served for node in outcome.nodes]
[1000, 1000]
"""

from __future__ import annotations

import heapq
import math
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from ._analysis import LoadSummary
from ._balancing.balancers import RoundRobin
from ._balancing.bounded import BoundedLoad
from ._errors import InvalidOptionError
from ._placement.algorithms import placement
from ._placement.contract import Placement

__all__ = [
    "HASHED",
    "LOAD_AWARE",
    "MAX_SPEED",
    "MIN_SPEED",
    "NEEDS",
    "SERVICES",
    "STRATEGIES",
    "NodeFigures",
    "Outcome",
    "Workload",
    "poisson_workload",
    "serve",
    "service_work",
    "simulate",
    "strategy_nodes",
]

F64Array = npt.NDArray[np.float64]
I64Array = npt.NDArray[np.int64]

HASHED = ("ring", "maglev", "rendezvous", "jump")
"""Strategies that place a request by its key alone."""
LOAD_AWARE = ("bounded-load", "least-loaded", "power-of-two")
"""Strategies that read the requests in flight at each arrival."""
STRATEGIES = (
    *HASHED,
    "bounded-load",
    "round-robin",
    "weighted-round-robin",
    "random",
    "least-loaded",
    "power-of-two",
)
"""Every strategy :func:`simulate` runs, in the order reports list them."""
NEEDS = {
    "ring": "key, speeds",
    "maglev": "key, speeds",
    "rendezvous": "key, speeds",
    "jump": "key",
    "bounded-load": "key, speeds, load",
    "round-robin": "nothing",
    "weighted-round-robin": "speeds",
    "random": "speeds",
    "least-loaded": "speeds, load",
    "power-of-two": "speeds, load of 2",
}
"""What each strategy must know to choose a node: the request's key, the nodes' speeds, the
requests in flight at every node (``load``) or at two of them."""
SERVICES = ("exponential", "deterministic")
"""Service-time distributions: work per request of mean 1 unit."""
MIN_SPEED = 1e-6
MAX_SPEED = 1e6
"""Node speeds (work units per second) lie in ``[MIN_SPEED, MAX_SPEED]``."""
MAX_TIME = 1e12
"""Latest arrival time and largest work a workload may hold (finite sums, sane figures)."""
_CHUNK = 1 << 16
"""Requests per chunk of the load-aware pass (lists of this size, not of the whole run)."""


@dataclass(frozen=True)
class Workload:
    """A request stream: arrival ``times`` (seconds, non-decreasing), per request an index
    into ``key_names`` and its ``work`` (work units, above 0).

    ``start`` is when observation begins (0 for a Poisson stream, the first arrival for a
    trace): utilisation is busy time over the window from ``start`` to the last arrival.
    Build it with :meth:`of` (which checks it) or :func:`poisson_workload`.
    """

    times: F64Array
    keys: I64Array
    work: F64Array
    key_names: Sequence[str]
    start: float = 0.0

    @classmethod
    def of(
        cls,
        times: Sequence[float] | F64Array,
        keys: Sequence[int] | I64Array,
        work: Sequence[float] | F64Array,
        key_names: Sequence[str],
        *,
        start: float | None = None,
    ) -> Workload:
        """A checked workload (``start`` defaults to the first arrival). O(requests).

        Raises:
            InvalidOptionError: no requests; arrays of different lengths; a time that is not
                finite, negative, above :data:`MAX_TIME` or earlier than the one before; a
                work not in (0, MAX_TIME]; a key index outside ``key_names``; a window of
                zero length (every arrival at ``start``).
        """
        t = np.asarray(times, dtype=np.float64)
        k = np.asarray(keys, dtype=np.int64)
        w = np.asarray(work, dtype=np.float64)
        if t.ndim != 1 or not len(t):
            raise InvalidOptionError("a workload needs at least one request")
        if not len(t) == len(k) == len(w):
            raise InvalidOptionError("times, keys and work must have one entry per request")
        if not np.isfinite(t).all() or (t < 0).any() or (t > MAX_TIME).any():
            raise InvalidOptionError(f"arrival times must be finite, from 0 to {MAX_TIME:g}")
        if (np.diff(t) < 0).any():
            raise InvalidOptionError("arrival times must not decrease")
        if not np.isfinite(w).all() or not ((w > 0) & (w <= MAX_TIME)).all():
            raise InvalidOptionError(f"work must be a finite number above 0, at most {MAX_TIME:g}")
        if ((k < 0) | (k >= len(key_names))).any():
            raise InvalidOptionError("a request's key index is outside key_names")
        origin = float(t[0]) if start is None else float(start)
        if not (math.isfinite(origin) and 0 <= origin <= float(t[0])):
            raise InvalidOptionError("start must be a finite time, at most the first arrival")
        if float(t[-1]) <= origin:
            raise InvalidOptionError(
                "the arrivals must span some time: the last one comes after the first"
            )
        return cls(t, k, w, tuple(key_names), origin)

    @property
    def requests(self) -> int:
        """How many requests the stream holds."""
        return len(self.times)

    @property
    def window(self) -> float:
        """Seconds from :attr:`start` to the last arrival: what utilisation divides by."""
        return float(self.times[-1]) - self.start


def poisson_workload(
    *,
    requests: int,
    rate: float,
    keys: int,
    zipf: float = 0.0,
    service: str = "exponential",
    seed: int | None = None,
) -> Workload:
    """A Poisson stream of ``requests`` at ``rate`` per second, from time 0.

    Keys ``key:0`` ... ``key:{keys-1}``; request keys drawn uniformly (``zipf`` 0) or with
    probability proportional to ``1 / rank**zipf`` (``key:0`` the most popular). Work per
    request: 1 unit (``service="deterministic"``) or exponential with mean 1
    (``"exponential"``). Deterministic for a ``seed``. O(requests + keys).

    >>> poisson_workload(requests=3, rate=2.0, keys=1, service="deterministic").work.tolist()
    [1.0, 1.0, 1.0]

    Raises:
        InvalidOptionError: ``requests`` or ``keys`` below 1, ``rate`` not a positive finite
            number, ``zipf`` negative or not finite, an unknown ``service``, arrivals later
            than :data:`MAX_TIME`.
    """
    if requests < 1 or keys < 1:
        raise InvalidOptionError("requests and keys must be at least 1")
    if not (math.isfinite(rate) and rate > 0):
        raise InvalidOptionError(f"rate must be a positive finite number, got {rate!r}")
    if not (math.isfinite(zipf) and zipf >= 0):
        raise InvalidOptionError(f"zipf must be a finite number >= 0, got {zipf!r}")
    arrivals, popularity, sizes = (
        np.random.default_rng(child) for child in np.random.SeedSequence(seed).spawn(3)
    )
    times = np.cumsum(arrivals.exponential(1.0 / rate, requests))
    if zipf:
        cdf = np.cumsum(np.arange(1, keys + 1, dtype=np.float64) ** -zipf)
        drawn = np.searchsorted(cdf, popularity.random(requests) * cdf[-1], side="right")
        key_index = np.minimum(drawn, keys - 1).astype(np.int64)
    else:
        key_index = popularity.integers(0, keys, requests, dtype=np.int64)
    work = service_work(service, requests, sizes)
    return Workload.of(times, key_index, work, [f"key:{i}" for i in range(keys)], start=0.0)


def service_work(service: str, count: int, rng: np.random.Generator) -> F64Array:
    """``count`` works of mean 1 unit: all 1 (``"deterministic"``) or exponential
    (``"exponential"``, each above 0), drawn from ``rng``. O(count).

    Raises:
        InvalidOptionError: an unknown ``service``.
    """
    if service == "deterministic":
        return np.ones(count)
    if service == "exponential":
        return np.maximum(rng.exponential(1.0, count), np.finfo(np.float64).tiny)
    raise InvalidOptionError(f"service must be one of {', '.join(SERVICES)}, got {service!r:.40}")


@dataclass(frozen=True)
class NodeFigures:
    """One node's figures under one strategy."""

    name: str
    speed: float
    served: int
    """Requests this node served."""
    busy: float
    """Seconds spent serving (its requests' work over its speed)."""
    utilisation: float
    """:attr:`busy` over the workload's window; above 1.0 the node was offered more work
    than it can do in the window."""
    mean_queue: float
    """Mean requests found at this node (waiting or in service) by its arrivals (0 if none)."""
    max_queue: int


@dataclass(frozen=True)
class Outcome:
    """One strategy's figures on one workload."""

    strategy: str
    nodes: tuple[NodeFigures, ...]
    load: LoadSummary
    """Summary of the per-node utilisations (busy time, which is work over speed): ``mean``
    is the study's load factor, ``peak_to_mean`` the imbalance (1.0: every node equally
    busy for its speed)."""
    mean_queue: float
    """Mean over requests of the queue each found at its node (itself excluded)."""
    max_queue: int
    latency: dict[str, float]
    """Seconds from arrival to departure: ``mean``, ``p50``, ``p99``, ``p999``, ``max``."""
    affinity: float
    """Fraction of requests served on their key's home node."""
    seconds: float
    """Wall time this strategy's simulation took."""

    @property
    def overloaded(self) -> tuple[NodeFigures, ...]:
        """The nodes offered more work than they can do (utilisation above 1.0)."""
        return tuple(node for node in self.nodes if node.utilisation > 1.0)


def simulate(
    workload: Workload,
    speeds: Mapping[str, float],
    strategy: str,
    *,
    epsilon: float = 0.25,
    seed: int | None = None,
    progress: Callable[[int], Any] | None = None,
) -> Outcome:
    """Dispatch ``workload`` over nodes of ``speeds`` (name -> work units per second) with
    ``strategy`` and measure the outcome (see the module docstring).

    ``epsilon`` is bounded-load's; ``seed`` seeds the random and power-of-two draws.
    ``progress(n)`` is called as requests are dispatched, n at a time. Runtime: O(requests
    log requests) for the oblivious strategies (numpy); one Python pass over the requests,
    O(1) amortised each (O(log nodes) for least-loaded), for the load-aware ones, plus the
    placement of each distinct key once.

    Raises:
        InvalidOptionError: an unknown strategy, no nodes, a speed outside [MIN_SPEED,
            MAX_SPEED], a bad ``epsilon``.
        HashRingError: as the placement raises (for example Maglev's table smaller than the
            node count).
    """
    started = time.perf_counter()
    names, speed = _nodes(speeds)
    assigned, home = strategy_nodes(
        workload, speeds, strategy, epsilon=epsilon, seed=seed, progress=progress
    )
    departures, ahead = serve(workload.times, workload.work, assigned, speed)
    sojourn = departures - workload.times
    served = np.bincount(assigned, minlength=len(names))
    busy = np.bincount(assigned, weights=workload.work / speed[assigned], minlength=len(names))
    queue_sum = np.bincount(assigned, weights=ahead, minlength=len(names))
    queue_max = np.zeros(len(names), dtype=np.int64)
    np.maximum.at(queue_max, assigned, ahead)
    utilisation = busy / workload.window
    nodes = tuple(
        NodeFigures(
            name=name,
            speed=float(speed[j]),
            served=int(served[j]),
            busy=float(busy[j]),
            utilisation=float(utilisation[j]),
            mean_queue=float(queue_sum[j] / served[j]) if served[j] else 0.0,
            max_queue=int(queue_max[j]),
        )
        for j, name in enumerate(names)
    )
    p50, p99, p999 = np.quantile(sojourn, [0.5, 0.99, 0.999]).tolist()
    return Outcome(
        strategy=strategy,
        nodes=nodes,
        load=LoadSummary.of(utilisation.tolist()),
        mean_queue=float(ahead.mean()),
        max_queue=int(ahead.max()),
        latency={
            "mean": float(sojourn.mean()),
            "p50": p50,
            "p99": p99,
            "p999": p999,
            "max": float(sojourn.max()),
        },
        affinity=float(np.mean(assigned == home[workload.keys])),
        seconds=time.perf_counter() - started,
    )


def serve(
    times: F64Array, work: F64Array, nodes: I64Array, speeds: F64Array
) -> tuple[F64Array, I64Array]:
    """FIFO service of each request at its node: ``(departures, ahead)``, per request its
    departure time and the requests it found at its node on arrival (waiting or in service;
    one that leaves exactly as it arrives has left).

    ``times`` non-decreasing; ``nodes[i]`` indexes ``speeds``. Vectorised Lindley recursion
    per node (module docstring): O(requests log requests).

    >>> d, ahead = serve(np.array([0.0, 1.0, 1.5]), np.ones(3), np.array([0, 0, 0]),
    ...                  np.array([1.0]))
    >>> d.tolist(), ahead.tolist()
    ([1.0, 2.0, 3.0], [0, 0, 1])
    """
    departures = np.empty(len(times))
    ahead = np.empty(len(times), dtype=np.int64)
    order = np.argsort(nodes, kind="stable")
    bounds = np.concatenate(([0], np.cumsum(np.bincount(nodes, minlength=len(speeds)))))
    for j in range(len(speeds)):
        at = order[bounds[j] : bounds[j + 1]]
        if not len(at):
            continue
        arrivals = times[at]
        service = work[at] / speeds[j]
        total = np.cumsum(service)
        before = np.concatenate(([0.0], total[:-1]))
        leave = total + np.maximum.accumulate(arrivals - before)  # non-decreasing
        departures[at] = leave
        earlier = np.arange(len(at))
        # requests before this one that have left by its arrival (a later one can only
        # count when its service is below the clock's resolution)
        left = np.minimum(np.searchsorted(leave, arrivals, side="right"), earlier)
        ahead[at] = earlier - left
    return departures, ahead


def strategy_nodes(
    workload: Workload,
    speeds: Mapping[str, float],
    strategy: str,
    *,
    epsilon: float = 0.25,
    seed: int | None = None,
    progress: Callable[[int], Any] | None = None,
) -> tuple[I64Array, I64Array]:
    """``(assigned, home)``: per request the index (in ``speeds`` order) of the node that
    serves it under ``strategy``, and per key the index of its home node (see
    :func:`simulate`, which documents the arguments and errors)."""
    if strategy not in STRATEGIES:
        raise InvalidOptionError(
            f"unknown strategy {strategy!r:.60}: use one of {', '.join(STRATEGIES)}"
        )
    names, speed = _nodes(speeds)
    at = {name: j for j, name in enumerate(names)}
    weighted = dict(zip(names, speed.tolist(), strict=True))
    ring = placement("ring", weighted) if strategy not in HASHED[1:] else None
    if strategy in HASHED:
        chosen = (
            ring
            if ring is not None
            else placement(strategy, names if strategy == "jump" else weighted)
        )
        home = _owners(chosen, workload.key_names, at)
        return home[workload.keys], home
    assert ring is not None
    home = _owners(ring, workload.key_names, at)
    rng = np.random.default_rng(seed)
    count = workload.requests
    if strategy == "round-robin":
        assigned = np.arange(count, dtype=np.int64) % len(names)
    elif strategy == "weighted-round-robin":
        assigned = _weighted_round_robin(weighted, at, count)
    elif strategy == "random":
        assigned = rng.choice(len(names), size=count, p=speed / speed.sum()).astype(np.int64)
    elif strategy == "power-of-two":
        assigned = _power_of_two(workload, speed, rng, progress)
    elif strategy == "least-loaded":
        assigned = _least_loaded(workload, names, speed, progress)
    else:
        bounded = BoundedLoad(ring, epsilon=epsilon)
        assigned = _bounded_load(workload, bounded, names, at, home, progress)
    if progress is not None and strategy not in LOAD_AWARE:
        progress(count)
    return assigned, home


def _nodes(speeds: Mapping[str, float]) -> tuple[list[str], F64Array]:
    names = list(speeds)
    if not names:
        raise InvalidOptionError("a simulation needs at least one node")
    values = []
    for name in names:
        value = speeds[name]
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not MIN_SPEED <= value <= MAX_SPEED
        ):
            raise InvalidOptionError(
                f"speed of node {name!r:.60} must be a number from {MIN_SPEED:g} to "
                f"{MAX_SPEED:g}, got {value!r:.40}"
            )
        values.append(float(value))
    return names, np.array(values)


def _owners(chosen: Placement, key_names: Sequence[str], at: Mapping[str, int]) -> I64Array:
    """Per key, the index of its owner under ``chosen``: each distinct key placed once."""
    return np.fromiter(
        (at[owner] for owner in chosen.get_node_many(key_names)),
        dtype=np.int64,
        count=len(key_names),
    )


def _weighted_round_robin(weights: dict[str, float], at: Mapping[str, int], count: int) -> I64Array:
    """The library's smooth weighted round-robin: one period of picks, repeated."""
    balancer = RoundRobin(weights)
    period = min(count, sum(max(1, round(weight)) for weight in weights.values()))
    cycle = np.array([at[balancer.pick()] for _ in range(period)], dtype=np.int64)
    return np.resize(cycle, count)


def _power_of_two(
    workload: Workload,
    speed: F64Array,
    rng: np.random.Generator,
    progress: Callable[[int], Any] | None,
) -> I64Array:
    """Two distinct candidates drawn by speed (vectorised); the one with fewer requests in
    flight per unit of speed when the request arrives, the first on a tie."""
    n = len(speed)
    count = workload.requests
    first = rng.choice(n, size=count, p=speed / speed.sum()).astype(np.int64)
    if n == 1:
        if progress is not None:
            progress(count)
        return first
    second = np.empty(count, dtype=np.int64)
    order = np.argsort(first, kind="stable")
    bounds = np.concatenate(([0], np.cumsum(np.bincount(first, minlength=n))))
    for j in range(n):  # the second from the speeds with the first's zeroed
        others = speed.copy()
        others[j] = 0.0
        rows = order[bounds[j] : bounds[j + 1]]
        second[rows] = rng.choice(n, size=len(rows), p=others / others.sum())
    queues: list[deque[float]] = [deque() for _ in range(n)]
    free = [0.0] * n
    speeds = speed.tolist()
    assigned = np.empty(count, dtype=np.int64)
    for low in range(0, count, _CHUNK):
        high = min(low + _CHUNK, count)
        times = workload.times[low:high].tolist()
        work = workload.work[low:high].tolist()
        chosen = [0] * (high - low)
        for i, (t, a, b) in enumerate(
            zip(times, first[low:high].tolist(), second[low:high].tolist(), strict=True)
        ):
            qa = queues[a]
            while qa and qa[0] <= t:
                qa.popleft()
            qb = queues[b]
            while qb and qb[0] <= t:
                qb.popleft()
            c = b if len(qb) / speeds[b] < len(qa) / speeds[a] else a
            f = free[c]
            d = (f if f > t else t) + work[i] / speeds[c]
            free[c] = d
            queues[c].append(d)
            chosen[i] = c
        assigned[low:high] = chosen
        if progress is not None:
            progress(high - low)
    return assigned


def _least_loaded(
    workload: Workload,
    names: list[str],
    speed: F64Array,
    progress: Callable[[int], Any] | None,
) -> I64Array:
    """The node with the fewest requests in flight per unit of speed, ties to the least
    recently picked, then name order. A heap of departures keeps every node's count; a
    heap of ``(load, last pick, name rank, node)`` entries (stale ones skipped) finds the
    least loaded in O(log nodes)."""
    n = len(names)
    count = workload.requests
    speeds = speed.tolist()
    rank = {name: r for r, name in enumerate(sorted(names))}
    ranks = [rank[name] for name in names]
    in_flight = [0] * n
    picked = [-1] * n
    order = [(0.0, -1, ranks[j], j) for j in range(n)]
    heapq.heapify(order)
    leaving: list[tuple[float, int]] = []
    free = [0.0] * n
    clock = 0
    assigned = np.empty(count, dtype=np.int64)
    heappush, heappop, heapreplace = heapq.heappush, heapq.heappop, heapq.heapreplace
    for low in range(0, count, _CHUNK):
        high = min(low + _CHUNK, count)
        times = workload.times[low:high].tolist()
        work = workload.work[low:high].tolist()
        chosen = [0] * (high - low)
        for i, t in enumerate(times):
            while leaving and leaving[0][0] <= t:
                j = heappop(leaving)[1]
                in_flight[j] -= 1
                heappush(order, (in_flight[j] / speeds[j], picked[j], ranks[j], j))
            while True:  # skip stale entries: a node's entry is current when its load and
                load, last, _, c = order[0]  # last pick match the node's
                if last == picked[c] and load == in_flight[c] / speeds[c]:
                    break
                heappop(order)
            clock += 1
            picked[c] = clock
            in_flight[c] += 1
            heapreplace(order, (in_flight[c] / speeds[c], clock, ranks[c], c))
            f = free[c]
            d = (f if f > t else t) + work[i] / speeds[c]
            free[c] = d
            heappush(leaving, (d, c))
            chosen[i] = c
            if len(order) > 8 * n + 64:  # drop the stale entries that sank
                order = [(in_flight[j] / speeds[j], picked[j], ranks[j], j) for j in range(n)]
                heapq.heapify(order)
        assigned[low:high] = chosen
        if progress is not None:
            progress(high - low)
    return assigned


def _bounded_load(
    workload: Workload,
    bounded: BoundedLoad,
    names: list[str],
    at: Mapping[str, int],
    home: I64Array,
    progress: Callable[[int], Any] | None,
) -> I64Array:
    """The first node of the key's preference list below its cap (``bounded.caps_at`` of
    the requests in flight, memoised per load); preference lists are built only for the keys
    that spill, once each."""
    n = len(names)
    count = workload.requests
    speeds = bounded.placement.nodes
    speed = [float(speeds[name]) for name in names]
    queues: list[deque[float]] = [deque() for _ in range(n)]
    leaving: list[float] = []
    free = [0.0] * n
    caps_by_load: list[list[int]] = []
    preferences: dict[int, list[int]] = {}
    key_names = workload.key_names
    assigned = np.empty(count, dtype=np.int64)
    heappush, heappop = heapq.heappush, heapq.heappop
    for low in range(0, count, _CHUNK):
        high = min(low + _CHUNK, count)
        times = workload.times[low:high].tolist()
        work = workload.work[low:high].tolist()
        keys = workload.keys[low:high].tolist()
        owners = home[workload.keys[low:high]].tolist()
        chosen = [0] * (high - low)
        for i, t in enumerate(times):
            while leaving and leaving[0] <= t:
                heappop(leaving)
            load = len(leaving)
            while len(caps_by_load) <= load:
                named = bounded.caps_at(len(caps_by_load))
                caps_by_load.append([named[name] for name in names])
            caps = caps_by_load[load]
            c = owners[i]
            q = queues[c]
            while q and q[0] <= t:
                q.popleft()
            if len(q) >= caps[c]:
                key = keys[i]
                preference = preferences.get(key)
                if preference is None:
                    preference = [at[name] for name in bounded.placement.get_nodes(key_names[key])]
                    preferences[key] = preference
                best, room = c, len(q) / caps[c]
                for j in preference[1:]:
                    q = queues[j]
                    while q and q[0] <= t:
                        q.popleft()
                    if len(q) < caps[j]:
                        best = j
                        break
                    if len(q) / caps[j] < room:  # never reached: the caps sum above the load
                        best, room = j, len(q) / caps[j]
                c = best
                q = queues[c]
            f = free[c]
            d = (f if f > t else t) + work[i] / speed[c]
            free[c] = d
            q.append(d)
            heappush(leaving, d)
            chosen[i] = c
        assigned[low:high] = chosen
        if progress is not None:
            progress(high - low)
    return assigned
