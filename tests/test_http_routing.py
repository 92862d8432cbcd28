"""HttpRouter routes: the same nodes as the whole preference list would give, computed lazily."""

from __future__ import annotations

import random

import pytest
from hashring.adapters.http import HttpRouter, Route

from hashring import HashRing, HealthTracker, Key

MAX_ATTEMPTS = 3


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class CountingRing(HashRing):
    """A HashRing that remembers the ``n`` of every ``get_nodes`` call."""

    def __init__(self, nodes: dict[str, float]) -> None:
        super().__init__(nodes, hash_tags=False)
        self.asked: list[int | None] = []

    def get_nodes(self, key: Key, n: int | None = None) -> list[str]:
        self.asked.append(n)
        return super().get_nodes(key, n)


def urls(count: int) -> dict[str, str]:
    return {f"n{i}": f"http://10.0.{i // 250}.{i % 250}:8080" for i in range(count)}


def walk(route: Route) -> list[str]:
    """Every node the route hands out: its first, then next() until None."""
    return [route.first, *iter(route.next, None)]


def reference(health: HealthTracker, candidates: list[str], max_attempts: int) -> list[str]:
    """The route the adapters computed before routes were lazy, over the whole list."""
    checked = any(health.usable(node, claim=False) for node in candidates)
    chosen = [node for node in candidates if not checked or health.usable(node)]
    if not chosen:  # the probes of the only usable nodes were claimed
        chosen = list(candidates)
    return chosen[:max_attempts]


def tracker(clock: FakeClock) -> HealthTracker:
    return HealthTracker(failure_limit=1, retry_timeout=10.0, clock=clock)


def eject(health: HealthTracker, clock: FakeClock, down: list[str], half_open: list[str]) -> None:
    """Eject ``down`` now and ``half_open`` long enough ago that their probes are free."""
    clock.now -= 20.0
    for node in half_open:
        health.record(node, False)
    clock.now += 20.0
    for node in down:
        health.record(node, False)


@pytest.mark.parametrize("count", [1, 3, 8, 40])
def test_lazy_routes_equal_the_whole_preference_list(count: int) -> None:
    """Under seeded random ejections (some half-open), every keyed and keyless route hands
    out exactly the nodes, in the order, that the whole preference list gave."""
    rng = random.Random(count)
    names = sorted(urls(count))
    for trial in range(60):
        down = rng.sample(names, rng.randint(0, count))
        half_open = rng.sample(down, rng.randint(0, len(down))) if trial % 3 else []
        clock = FakeClock()
        lazy = HttpRouter(urls(count), max_attempts=rng.randint(1, count + 1))
        lazy.health = tracker(clock)
        whole = tracker(clock)
        for health in (lazy.health, whole):
            eject(health, clock, [n for n in down if n not in half_open], half_open)
        key = f"user:{trial}"
        with lazy.route(key) as route:
            got = walk(route)
        assert got == reference(whole, lazy.placement.get_nodes(key), lazy.max_attempts)
        whole.release()
        with lazy.route(None) as route:
            first = route.first
            got = walk(route)
        expected = reference(whole, [first, *(n for n in names if n != first)], lazy.max_attempts)
        assert got == expected


def test_a_usable_owner_needs_no_preference_list() -> None:
    """On 1,000 nodes a request whose owner is usable asks for no preference list at all,
    and moving on asks for max_attempts nodes, never for all of them."""
    ring = CountingRing(dict.fromkeys(urls(1000), 1))
    router = HttpRouter(urls(1000), placement=ring, max_attempts=MAX_ATTEMPTS)
    for i in range(50):
        with router.route(f"user:{i}") as route:
            assert route.first == ring.get_node(f"user:{i}")
    assert ring.asked == []
    expected = ring.get_nodes("user:7", MAX_ATTEMPTS)
    ring.asked.clear()
    with router.route("user:7") as route:
        assert walk(route) == expected
    assert ring.asked == [MAX_ATTEMPTS]


def test_ejected_owners_grow_the_list_only_as_far_as_needed() -> None:
    """With the first five nodes of a key's list ejected the route skips them, reading a
    bounded prefix of the list; with every node ejected it tries the first max_attempts
    in order without asking for the whole list."""
    clock = FakeClock()
    ring = CountingRing(dict.fromkeys(urls(1000), 1))
    router = HttpRouter(urls(1000), placement=ring, max_attempts=MAX_ATTEMPTS)
    router.health = tracker(clock)
    preference = ring.get_nodes("k", 20)
    for node in preference[:5]:
        router.health.record(node, False)
    ring.asked.clear()
    with router.route("k") as route:
        assert walk(route) == preference[5:8]
    assert ring.asked == [3, 6, 12]
    for node in ring.nodes:
        router.health.record(node, False)
    ring.asked.clear()
    with router.route("k") as route:
        assert walk(route) == preference[:MAX_ATTEMPTS]
    assert ring.asked == [MAX_ATTEMPTS]


def test_bounded_load_first_choice_leads_the_route() -> None:
    """With bounded loads a spilled request starts on the node with room, then follows its
    key's list without that node."""
    router = HttpRouter(urls(5), bounded_load=0.25, max_attempts=5)
    preference = router.placement.get_nodes("k")
    with router.route("k") as held, router.route("k") as spilled:
        assert held.first == preference[0]
        assert walk(spilled) == [spilled.first, *(n for n in preference if n != spilled.first)]
        assert spilled.first != preference[0]


@pytest.mark.parametrize(("removed", "left"), [(6, 3), (7, 2), (9, 0)])
def test_nodes_removed_meanwhile_do_not_break_a_route(removed: int, left: int) -> None:
    """Nodes removed after a route began (even below max_attempts, even all but its first)
    are not handed out, and the route goes on with the nodes that are left."""
    router = HttpRouter(urls(10), max_attempts=4)
    with router.route("k") as route:
        owner = route.first
        for name in [n for n in sorted(router.node_urls) if n != owner][:removed]:
            router.remove_node(name)
        rest = list(iter(route.next, None))
    assert len(rest) == left
    assert owner not in rest
    assert set(rest) <= set(router.node_urls)
    assert rest == [n for n in router.placement.get_nodes("k") if n != owner][:left]
