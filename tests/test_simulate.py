"""The dispatch simulation (``hashring._simulation``): queueing theory, conservation, and each
strategy checked against the library object whose rule it simulates.

Queueing figures are checked against closed forms (M/M/1, M/D/1, D/D/1); the load-aware
strategies are replayed request by request through the real :class:`hashring.LeastLoaded`
and :class:`hashring.BoundedLoad` (acquired at arrival, released at departure) and must
choose the same node for every request.
"""

from __future__ import annotations

import heapq
import math
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hashring import BoundedLoad, InvalidOptionError, LeastLoaded, placement
from hashring._simulation import (
    HASHED,
    STRATEGIES,
    Workload,
    poisson_workload,
    serve,
    simulate,
    strategy_nodes,
)

SPEEDS = {"fast": 4.0, "mid": 2.0, "slow": 1.0, "slow-2": 1.0}


def check_fifo_service(
    workload: Workload, nodes: np.ndarray, speeds: np.ndarray, departures: np.ndarray
) -> None:
    """Assert that ``departures`` is FIFO, work-conserving single-server service: at each
    node, in arrival order, a request starts at max(its arrival, the previous departure)."""
    for j in range(len(speeds)):
        at = np.flatnonzero(nodes == j)
        if not len(at):
            continue
        service = workload.work[at] / speeds[j]
        start = departures[at] - service
        previous = np.concatenate(([-np.inf], departures[at][:-1]))
        expected = np.maximum(workload.times[at], previous)
        assert np.allclose(start, expected, rtol=1e-9, atol=1e-9)


def replay(workload: Workload, speeds: dict[str, float], choose: Any) -> list[int]:
    """Run ``workload`` request by request: release what has departed (in departure order),
    ask ``choose(request)`` for a context manager yielding a node name, hold it until the
    request departs. Returns each request's node index."""
    names = list(speeds)
    free = dict.fromkeys(names, 0.0)
    leaving: list[tuple[float, int, Any]] = []
    chosen = []
    for i, t in enumerate(workload.times.tolist()):
        while leaving and leaving[0][0] <= t:
            heapq.heappop(leaving)[2].__exit__(None, None, None)
        held = choose(i)
        node = held.__enter__()
        departure = max(free[node], t) + float(workload.work[i]) / speeds[node]
        free[node] = departure
        heapq.heappush(leaving, (departure, i, held))
        chosen.append(names.index(node))
    return chosen


def test_mm1_mean_latency_matches_queueing_theory() -> None:
    """One node, Poisson arrivals at rho = 0.5, exponential work: mean sojourn 1/(mu - lambda)
    = 2 s and the queue an arrival finds rho/(1 - rho) = 1 (PASTA), within 5%."""
    workload = poisson_workload(requests=200_000, rate=0.5, keys=1, seed=11)
    outcome = simulate(workload, {"only": 1.0}, "round-robin")
    assert outcome.latency["mean"] == pytest.approx(2.0, rel=0.05)
    assert outcome.latency["mean"] - float(workload.work.mean()) == pytest.approx(1.0, rel=0.06)
    assert outcome.mean_queue == pytest.approx(1.0, rel=0.06)
    assert outcome.nodes[0].utilisation == pytest.approx(0.5, rel=0.02)


def test_md1_mean_wait_matches_pollaczek_khinchine() -> None:
    """One node of speed 2, deterministic work at rho = 0.6: mean wait rho / (2 mu (1 - rho))
    = 0.375 s (Pollaczek-Khinchine), within 5%."""
    workload = poisson_workload(requests=200_000, rate=1.2, keys=1, service="deterministic", seed=3)
    outcome = simulate(workload, {"only": 2.0}, "least-loaded")
    assert outcome.latency["mean"] - 0.5 == pytest.approx(0.375, rel=0.05)


def test_dd1_is_exact() -> None:
    """Arrivals every second, 2 units of work on a speed-1 node: request k leaves at 2(k+1)
    and finds ceil(k/2) requests ahead, exactly."""
    n = 1000
    workload = Workload.of(np.arange(n, dtype=float), np.zeros(n, int), np.full(n, 2.0), ["k"])
    departures, ahead = serve(workload.times, workload.work, np.zeros(n, np.int64), np.ones(1))
    k = np.arange(n)
    assert departures.tolist() == (2.0 * (k + 1)).tolist()
    assert ahead.tolist() == ((k + 1) // 2).tolist()
    fast, none_ahead = serve(workload.times, workload.work, np.zeros(n, np.int64), np.array([2.0]))
    assert fast.tolist() == (k + 1.0).tolist()  # one leaves as the next arrives: not ahead
    assert not none_ahead.any()


def test_service_below_the_clock_resolution_finds_no_queue() -> None:
    """Simultaneous arrivals whose service is too short to move the clock (1e-15 s at time
    1e12) leave as they arrive: no request finds a negative queue, none finds one ahead."""
    times = np.full(3, 1e12)
    departures, ahead = serve(times, np.full(3, 1e-9), np.zeros(3, np.int64), np.array([1e6]))
    assert departures.tolist() == times.tolist()
    assert ahead.tolist() == [0, 0, 0]


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_every_request_is_served_once(strategy: str) -> None:
    """Served counts sum to the requests, busy time to their work over the chosen speeds, and
    the service at every node is FIFO and work-conserving."""
    workload = poisson_workload(requests=5_000, rate=6.0, keys=300, zipf=1.0, seed=5)
    outcome = simulate(workload, SPEEDS, strategy, seed=2)
    assert sum(node.served for node in outcome.nodes) == workload.requests
    nodes, _ = strategy_nodes(workload, SPEEDS, strategy, seed=2)
    speeds = np.array(list(SPEEDS.values()))
    assert sum(node.busy for node in outcome.nodes) == pytest.approx(
        float((workload.work / speeds[nodes]).sum())
    )
    departures, _ = serve(workload.times, workload.work, nodes, speeds)
    check_fifo_service(workload, nodes, speeds, departures)
    assert outcome.latency["p50"] <= outcome.latency["p99"] <= outcome.latency["p999"]


@pytest.mark.parametrize("strategy", ["random", "power-of-two", "bounded-load", "least-loaded"])
def test_a_seed_gives_the_same_run(strategy: str) -> None:
    """The same workload seed and strategy seed give the same assignment; random draws
    change with the strategy seed."""
    first = poisson_workload(requests=3_000, rate=5.0, keys=100, zipf=0.8, seed=9)
    again = poisson_workload(requests=3_000, rate=5.0, keys=100, zipf=0.8, seed=9)
    assert first.times.tolist() == again.times.tolist()
    assert first.keys.tolist() == again.keys.tolist()
    one = strategy_nodes(first, SPEEDS, strategy, seed=4)[0]
    assert one.tolist() == strategy_nodes(again, SPEEDS, strategy, seed=4)[0].tolist()
    if strategy in ("random", "power-of-two"):
        assert one.tolist() != strategy_nodes(first, SPEEDS, strategy, seed=5)[0].tolist()


@pytest.mark.parametrize("algorithm", HASHED)
def test_hash_strategies_send_each_request_to_its_key_owner(algorithm: str) -> None:
    """A hash placement serves every request on its key's owner (placement built directly,
    weighted by speed; jump unweighted): affinity 1.0."""
    workload = poisson_workload(requests=4_000, rate=5.0, keys=500, zipf=0.5, seed=1)
    nodes, _ = strategy_nodes(workload, SPEEDS, algorithm)
    built = placement(algorithm, list(SPEEDS) if algorithm == "jump" else SPEEDS)
    names = list(SPEEDS)
    expected = [names.index(built.get_node(workload.key_names[k])) for k in workload.keys]
    assert nodes.tolist() == expected
    assert simulate(workload, SPEEDS, algorithm).affinity == 1.0


def test_round_robin_spreads_exactly() -> None:
    """Plain round-robin sends request i to node i mod n, whatever the speeds; weighted
    round-robin serves each node in proportion to its speed over whole periods."""
    workload = poisson_workload(requests=8_003, rate=5.0, keys=10, seed=1)
    nodes, _ = strategy_nodes(workload, SPEEDS, "round-robin")
    assert nodes.tolist() == [i % 4 for i in range(8_003)]
    served = [node.served for node in simulate(workload, SPEEDS, "round-robin").nodes]
    assert served == [2001, 2001, 2001, 2000]
    whole = poisson_workload(requests=800, rate=5.0, keys=10, seed=1)  # 100 periods of 8
    weighted = [node.served for node in simulate(whole, SPEEDS, "weighted-round-robin").nodes]
    assert weighted == [400, 200, 100, 100]


MANY = {f"n{i}": float(1 + i % 3) for i in range(40, 0, -1)}
"""Forty nodes of speeds 1 to 3, not in name order: least-loaded's heap then holds many
stale entries and is rebuilt, and ties fall back to name order."""


@pytest.mark.parametrize(("speeds", "rate"), [(SPEEDS, 6.5), (MANY, 70.0)])
def test_least_loaded_chooses_as_the_library_balancer(
    speeds: dict[str, float], rate: float
) -> None:
    """Replaying the stream through hashring.LeastLoaded (weights = speeds) picks the same
    node for every request."""
    workload = poisson_workload(requests=3_000, rate=rate, keys=50, seed=8)
    balancer = LeastLoaded(speeds)
    expected = replay(workload, speeds, lambda i: balancer.acquire())
    assert strategy_nodes(workload, speeds, "least-loaded")[0].tolist() == expected
    balancer._check()


@pytest.mark.parametrize("epsilon", [0.1, 0.25, 1.0])
def test_bounded_load_chooses_as_the_library_bounded_load(epsilon: float) -> None:
    """Replaying the stream through hashring.BoundedLoad over the speed-weighted ring picks
    the same node for every request; affinity is the share not spilled."""
    workload = poisson_workload(requests=3_000, rate=6.5, keys=40, zipf=1.2, seed=2)
    bounded = BoundedLoad(placement("ring", SPEEDS), epsilon=epsilon)
    expected = replay(
        workload, SPEEDS, lambda i: bounded.acquire(workload.key_names[workload.keys[i]])
    )
    assert strategy_nodes(workload, SPEEDS, "bounded-load", epsilon=epsilon)[0].tolist() == expected
    outcome = simulate(workload, SPEEDS, "bounded-load", epsilon=epsilon)
    assert outcome.affinity == pytest.approx(1 - bounded.spilled / workload.requests)
    assert bounded.spilled > 0


def test_power_of_two_picks_the_less_loaded_of_two() -> None:
    """With two nodes both are always the candidates: every request goes to the node with
    fewer requests in flight per unit of speed (the first candidate on a tie)."""
    speeds = {"a": 2.0, "b": 1.0}
    workload = poisson_workload(requests=4_000, rate=2.4, keys=10, seed=6)
    nodes, _ = strategy_nodes(workload, speeds, "power-of-two", seed=1)
    speed = np.array([2.0, 1.0])
    departures, _ = serve(workload.times, workload.work, nodes, speed)
    for i, t in enumerate(workload.times[:1000]):
        earlier = slice(0, i)
        in_flight = [int(((nodes[earlier] == j) & (departures[earlier] > t)).sum()) for j in (0, 1)]
        chosen, other = nodes[i], 1 - nodes[i]
        assert in_flight[chosen] / speed[chosen] <= in_flight[other] / speed[other]


def test_the_study_claims_hold_on_heterogeneous_nodes() -> None:
    """Round-robin overloads the slow nodes; weighted round-robin and the load-aware
    strategies keep every node below 100%; load-aware dispatch has the lowest p99."""
    workload = poisson_workload(requests=40_000, rate=0.7 * 8, keys=1000, seed=1)
    outcomes = {s: simulate(workload, SPEEDS, s, seed=1) for s in STRATEGIES if s != "maglev"}
    assert {node.name for node in outcomes["round-robin"].overloaded} == {"slow", "slow-2"}
    for strategy in ("weighted-round-robin", "least-loaded", "power-of-two", "bounded-load"):
        assert not outcomes[strategy].overloaded, strategy
    best = min(outcomes["least-loaded"].latency["p99"], outcomes["power-of-two"].latency["p99"])
    assert best < outcomes["random"].latency["p99"] < outcomes["round-robin"].latency["p99"]
    assert outcomes["ring"].affinity == 1.0 > outcomes["bounded-load"].affinity
    assert outcomes["bounded-load"].affinity > outcomes["least-loaded"].affinity


@pytest.mark.parametrize(
    ("times", "work", "message"),
    [
        ([0.0, math.nan], [1.0, 1.0], "finite"),
        ([0.0, math.inf], [1.0, 1.0], "finite"),
        ([-1.0, 1.0], [1.0, 1.0], "finite"),
        ([0.0, 2e12], [1.0, 1.0], "finite"),
        ([2.0, 1.0], [1.0, 1.0], "decrease"),
        ([0.0, 1.0], [0.0, 1.0], "work"),
        ([0.0, 1.0], [1.0, math.nan], "work"),
        ([1.0, 1.0], [1.0, 1.0], "span"),
        ([], [], "at least one"),
    ],
)
def test_bad_workloads_are_refused(times: list[float], work: list[float], message: str) -> None:
    """Workload.of refuses NaN, infinite, negative, huge or decreasing times, work that is
    not above 0, and a stream that spans no time."""
    with pytest.raises(InvalidOptionError, match=message):
        Workload.of(times, [0] * len(times), work, ["k"])


@pytest.mark.parametrize(
    ("speeds", "strategy"), [({}, "ring"), ({"a": 0.0}, "ring"), ({"a": 1.0}, "fastest")]
)
def test_bad_nodes_and_strategies_are_refused(speeds: dict[str, float], strategy: str) -> None:
    """No nodes, a speed outside the bounds, an unknown strategy: InvalidOptionError."""
    workload = poisson_workload(requests=10, rate=1.0, keys=1, seed=1)
    with pytest.raises(InvalidOptionError):
        simulate(workload, speeds, strategy)


def test_zipf_makes_the_first_keys_hot() -> None:
    """Zipf popularity: key:0 is drawn about 1/H(K, s) of the time; uniform keys evenly."""
    skewed = poisson_workload(requests=100_000, rate=1.0, keys=100, zipf=1.0, seed=1)
    harmonic = sum(1 / r for r in range(1, 101))
    assert np.mean(skewed.keys == 0) == pytest.approx(1 / harmonic, rel=0.05)
    uniform = poisson_workload(requests=100_000, rate=1.0, keys=100, seed=1)
    assert np.bincount(uniform.keys).max() < 1.2 * 1000
    assert float(np.diff(uniform.times).mean()) == pytest.approx(1.0, rel=0.02)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    speeds=st.lists(st.sampled_from([0.5, 1.0, 2.0, 3.0]), min_size=1, max_size=5),
    gaps=st.lists(st.sampled_from([0.0, 0.1, 0.5, 1.0, 2.5]), min_size=2, max_size=60),
    works=st.lists(st.sampled_from([0.2, 1.0, 1.0, 3.0]), min_size=60, max_size=60),
    keys=st.lists(st.integers(0, 7), min_size=60, max_size=60),
    strategy=st.sampled_from([s for s in STRATEGIES if s != "maglev"]),
)
def test_service_is_fifo_and_conserving_for_any_stream(
    speeds: list[float], gaps: list[float], works: list[float], keys: list[int], strategy: str
) -> None:
    """For any stream (ties in time included) and any strategy: every request served once,
    FIFO work-conserving service, queue and latency figures consistent."""
    times = np.cumsum(gaps)
    if times[-1] <= times[0]:
        times[-1] = times[0] + 1.0
    n = len(times)
    workload = Workload.of(times, keys[:n], works[:n], [f"k{i}" for i in range(8)])
    named = {f"n{j}": speed for j, speed in enumerate(speeds)}
    nodes, home = strategy_nodes(workload, named, strategy, seed=0)
    assert ((nodes >= 0) & (nodes < len(named))).all()
    assert len(home) == 8
    speed = np.array(speeds)
    departures, ahead = serve(workload.times, workload.work, nodes, speed)
    check_fifo_service(workload, nodes, speed, departures)
    assert (ahead >= 0).all()
    outcome = simulate(workload, named, strategy, seed=0)
    assert sum(node.served for node in outcome.nodes) == n
    assert outcome.max_queue == int(ahead.max())
    assert outcome.latency["max"] == pytest.approx(float((departures - workload.times).max()))
    assert 0.0 <= outcome.affinity <= 1.0
