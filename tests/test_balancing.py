"""Load-aware strategies: bounded-load consistent hashing and the keyless balancers."""

from __future__ import annotations

import math
import threading
from collections import Counter
from typing import Any

import pytest

from hashring import (
    Balancer,
    BoundedLoad,
    EmptyRingError,
    HashRing,
    InvalidOptionError,
    LeastLoaded,
    PowerOfTwo,
    RandomChoice,
    Rendezvous,
    RoundRobin,
    balancer,
    placement,
)

# ------------------------------------------------------------------------- bounded loads


def cap(epsilon: float, load: int, weight: float, total_weight: float) -> int:
    """The cap, computed here independently of the library."""
    return math.ceil((1 + epsilon) * (load + 1) * weight / total_weight)


def test_bounded_load_fills_owner_then_spills_in_preference_order() -> None:
    """One hot key fills its owner up to the cap, then the next preferences, in order."""
    ring = HashRing([f"n{i}" for i in range(4)])
    bounded = BoundedLoad(ring, epsilon=0.5)
    preference = ring.get_nodes("hot")
    held = []
    chosen = []
    for _ in range(12):
        manager = bounded.acquire("hot")
        node = manager.__enter__()
        held.append(manager)
        chosen.append(node)
    counts = Counter(chosen)
    # with 12 requests in flight, no node holds more than the cap for 12 requests
    assert max(counts.values()) <= cap(0.5, 11, 1, 4)
    assert chosen[0] == preference[0]
    first_spill = next(i for i, node in enumerate(chosen) if node != preference[0])
    assert chosen[first_spill] == preference[1]
    assert bounded.spilled == sum(node != preference[0] for node in chosen)
    for manager in held:
        manager.__exit__(None, None, None)
    assert bounded.in_flight() == dict.fromkeys(ring.nodes, 0)


@pytest.mark.parametrize("weights", [None, {"a": 1, "b": 2, "c": 1, "d": 4}])
def test_bounded_load_never_exceeds_caps_under_concurrency(weights: Any) -> None:
    """Threads hammering a few hot keys never push a node past its cap."""
    nodes = weights or [f"n{i}" for i in range(5)]
    ring = placement("ring", nodes)
    bounded = BoundedLoad(ring, epsilon=0.25)
    holding = threading.Barrier(8)
    done = threading.Event()
    errors: list[BaseException] = []
    per_thread = 15

    def worker(seed: int) -> None:
        managers = []
        try:
            for i in range(per_thread):
                manager = bounded.acquire(f"hot-{(seed + i) % 3}")
                manager.__enter__()
                managers.append(manager)
            holding.wait(timeout=30)
            done.wait(timeout=30)
        except BaseException as exc:  # reported to the main thread
            errors.append(exc)
        finally:
            for manager in managers:
                manager.__exit__(None, None, None)

    threads = [threading.Thread(target=worker, args=(s,)) for s in range(8)]
    for thread in threads:
        thread.start()
    deadline = threading.Event()
    while sum(bounded.in_flight().values()) < 8 * per_thread and not errors:
        deadline.wait(0.01)
    bounded._check()
    loads = bounded.in_flight()
    done.set()
    for thread in threads:
        thread.join(timeout=30)
    assert not errors
    total_load = sum(loads.values())
    assert total_load == 8 * per_thread
    weight_sum = sum(ring.nodes.values())
    for node, load in loads.items():
        # no releases happened, so each node's cap only grew while it was being filled
        assert load <= cap(0.25, total_load - 1, ring.nodes[node], weight_sum), (node, loads)
    assert bounded.in_flight() == dict.fromkeys(ring.nodes, 0)
    bounded._check()


def test_bounded_load_follows_membership_changes() -> None:
    """Nodes added or removed while requests are in flight are honoured."""
    hrw = Rendezvous(["a", "b"])
    bounded = BoundedLoad(hrw)
    with bounded.acquire("k") as first:
        hrw.remove_node(first)
        hrw.add_node("c")
        with bounded.acquire("k") as second:
            assert second in {"a", "b", "c"} - {first}
            bounded._check()
    bounded._check()
    assert set(bounded.in_flight()) == set(hrw.nodes)
    assert set(bounded.caps()) == set(hrw.nodes)


@pytest.mark.parametrize(
    "epsilon", [0, -1, math.inf, math.nan, "0.2", True, 10**400, 1e308, 1e6 * 1.0001]
)
def test_bounded_load_epsilon_must_be_positive(epsilon: Any) -> None:
    """epsilon must be a number in (0, 1e6]: caps stay finite."""
    with pytest.raises(InvalidOptionError, match="epsilon"):
        BoundedLoad(HashRing(["a"]), epsilon=epsilon)


def test_bounded_load_caps_stay_finite_at_the_extremes() -> None:
    """The largest epsilon with the most unequal weights still gives finite, usable caps."""
    bounded = BoundedLoad(HashRing({"a": 1e-12, "b": 1}), epsilon=1e6)
    with bounded.acquire("k") as first, bounded.acquire("k") as second:
        assert {first, second} <= {"a", "b"}
        assert all(cap >= 0 for cap in bounded.caps().values())
    bounded._check()


def test_bounded_load_on_empty_placement() -> None:
    """Acquiring on an empty placement raises EmptyRingError and holds nothing."""
    bounded = BoundedLoad(HashRing())
    with pytest.raises(EmptyRingError), bounded.acquire("k"):
        pass
    assert bounded.in_flight() == {}


# --------------------------------------------------------------------------- balancers


def test_round_robin_is_smooth_and_exact() -> None:
    """Every window of sum(weights) picks holds each node exactly weight times."""
    rr = RoundRobin({"a": 5, "b": 1, "c": 2})
    picks = [rr.pick() for _ in range(8 * 10)]
    for start in range(0, len(picks), 8):
        assert Counter(picks[start : start + 8]) == {"a": 5, "b": 1, "c": 2}
    assert "aaaaa" not in "".join(picks)  # smooth: the heavy node is interleaved


def test_random_choice_follows_weights() -> None:
    """Seeded random picks follow the weights (within 2% over 30,000 picks)."""
    chooser = RandomChoice({"a": 1, "b": 3}, seed=7)
    picks = Counter(chooser.pick() for _ in range(30_000))
    assert abs(picks["b"] / 30_000 - 0.75) < 0.02


def test_least_loaded_picks_fewest_in_flight_per_weight() -> None:
    """acquire() goes to the lowest in-flight / weight; ties to the least recently picked."""
    ll = LeastLoaded({"a": 1, "b": 2})
    with ll.acquire() as first, ll.acquire() as second, ll.acquire() as third:
        assert (first, second, third) == ("a", "b", "b")
        assert ll.in_flight() == {"a": 1, "b": 2}
        with ll.acquire() as fourth:
            assert fourth == "a"
    assert ll.in_flight() == {"a": 0, "b": 0}
    idle = LeastLoaded(["x", "y", "z"])
    assert [idle.pick() for _ in range(6)] == ["x", "y", "z", "x", "y", "z"]


def test_power_of_two_prefers_the_less_loaded_candidate() -> None:
    """With one node busy and one idle, two choices always avoid the busy one."""
    p2 = PowerOfTwo(["busy", "idle"], seed=3)
    with p2.acquire() as node:
        other = "idle" if node == "busy" else "busy"
        assert all(p2.pick() == other for _ in range(50))


def test_power_of_two_spreads_idle_traffic_evenly() -> None:
    """With no load at all, ties go to a random candidate: every node gets its share."""
    p2 = PowerOfTwo([f"n{i}" for i in range(4)], seed=11)
    picks = Counter(p2.pick() for _ in range(8_000))
    assert all(abs(picks[f"n{i}"] / 8_000 - 0.25) < 0.03 for i in range(4)), picks


@pytest.mark.parametrize("strategy", ["round-robin", "random", "least-loaded", "power-of-two"])
def test_balancers_under_threads_and_membership_changes(strategy: str) -> None:
    """Concurrent acquire/release with nodes coming and going ends with nothing in flight."""
    chooser = balancer(strategy, [f"n{i}" for i in range(4)])
    assert isinstance(chooser, Balancer)
    errors: list[BaseException] = []
    seen: Counter[str] = Counter()
    lock = threading.Lock()

    def worker() -> None:
        try:
            for _ in range(300):
                with chooser.acquire() as node, lock:
                    seen[node] += 1
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for i in range(20):
        chooser.add_node(f"extra-{i}")
        chooser._check()
        chooser.remove_node(f"extra-{i}")
        chooser._check()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors
    chooser._check()
    assert sum(seen.values()) == 1200
    assert chooser.in_flight() == dict.fromkeys(chooser.nodes, 0)
    assert {f"n{i}" for i in range(4)} <= set(seen)


def test_balancer_errors() -> None:
    """Unknown strategies and empty balancers fail with clear errors."""
    with pytest.raises(InvalidOptionError, match="unknown balancer 'fastest'"):
        balancer("fastest")
    empty = RoundRobin()
    with pytest.raises(EmptyRingError, match="no nodes"):
        empty.pick()
    with pytest.raises(EmptyRingError), empty.acquire():
        pass
