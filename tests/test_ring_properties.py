"""Property tests of the ring's invariants: determinism, minimal movement, balance."""

from __future__ import annotations

import math
from typing import Any

from hypothesis import assume, given
from hypothesis import strategies as st
from strategies import key_lists, minimal_options, node_names, node_sets, ring_options

from hashring import HashRing, Key

SPREAD_KEYS: list[Key] = [f"spread:{i}" for i in range(300)]


def owners(ring: HashRing, keys: list[Key]) -> list[str]:
    return ring.get_node_many(keys)


@given(nodes=node_sets(max_size=6), options=ring_options, data=st.data())
def test_insertion_order_does_not_matter(
    nodes: dict[str, float], options: dict[str, Any], data: st.DataObject
) -> None:
    """Same nodes and weights, built in any order and by any path, place keys alike."""
    direct = HashRing(nodes, **options)
    order = data.draw(st.permutations(list(nodes)))
    grown = HashRing(**options)
    grown.add_node("\x00transient", 2)
    for name in order:
        grown.add_node(name)
        grown._check()
    grown.remove_node("\x00transient")
    for name in reversed(order):
        grown.set_weight(name, nodes[name])
    grown._check()
    keys = data.draw(key_lists) + SPREAD_KEYS
    assert owners(grown, keys) == owners(direct, keys)
    assert grown.point_counts() == direct.point_counts()


@given(
    nodes=node_sets(),
    new=node_names,
    weight=st.sampled_from([0.5, 1, 2]),
    options=minimal_options,
    keys=key_lists,
)
def test_adding_a_node_moves_keys_only_to_it(
    nodes: dict[str, float], new: str, weight: float, options: dict[str, Any], keys: list[Key]
) -> None:
    """After add_node, every key either stays or moves to the new node."""
    assume(new not in nodes)
    ring = HashRing(nodes, **options)
    keys = keys + SPREAD_KEYS
    before = owners(ring, keys)
    ring.add_node(new, weight)
    ring._check()
    after = owners(ring, keys)
    assert all(b == a or a == new for b, a in zip(before, after, strict=True))


@given(nodes=node_sets(min_size=2), options=minimal_options, keys=key_lists, data=st.data())
def test_removing_a_node_moves_only_its_keys(
    nodes: dict[str, float], options: dict[str, Any], keys: list[Key], data: st.DataObject
) -> None:
    """After remove_node, only keys of the removed node move, each to its next preference."""
    ring = HashRing(nodes, **options)
    gone = data.draw(st.sampled_from(sorted(nodes)))
    keys = keys + SPREAD_KEYS
    before = owners(ring, keys)
    seconds = [ring.get_nodes(key, 2)[1] for key in keys]
    ring.remove_node(gone)
    ring._check()
    after = owners(ring, keys)
    for b, a, second in zip(before, after, seconds, strict=True):
        assert a == (second if b == gone else b)


@given(nodes=node_sets(), options=minimal_options, data=st.data(), keys=key_lists)
def test_reweighting_moves_keys_only_to_or_from_that_node(
    nodes: dict[str, float], options: dict[str, Any], data: st.DataObject, keys: list[Key]
) -> None:
    """Raising a weight only pulls keys to that node; lowering only pushes keys off it."""
    ring = HashRing(nodes, **options)
    name = data.draw(st.sampled_from(sorted(nodes)))
    new_weight = data.draw(st.sampled_from([0.25, 0.5, 1, 2, 4]))
    keys = keys + SPREAD_KEYS
    before = owners(ring, keys)
    ring.set_weight(name, new_weight)
    ring._check()
    after = owners(ring, keys)
    for b, a in zip(before, after, strict=True):
        if new_weight >= nodes[name]:
            assert b == a or a == name
        else:
            assert b in (a, name)


@given(nodes=node_sets(max_size=5), new=node_names, options=ring_options, keys=key_lists)
def test_ketama_and_all_schemes_move_only_to_new_node_with_equal_weights(
    nodes: dict[str, float], new: str, options: dict[str, Any], keys: list[Key]
) -> None:
    """With equal weights every scheme, ketama included, moves keys only to an added node."""
    assume(new not in nodes)
    equal = dict.fromkeys(nodes, 1.0)
    ring = HashRing(equal, **options)
    keys = keys + SPREAD_KEYS
    before = owners(ring, keys)
    ring.add_node(new)
    after = owners(ring, keys)
    assert all(b == a or a == new for b, a in zip(before, after, strict=True))


@given(nodes=node_sets(), options=ring_options, keys=key_lists, n=st.integers(1, 8))
def test_preference_lists(
    nodes: dict[str, float], options: dict[str, Any], keys: list[Key], n: int
) -> None:
    """Preference lists are distinct, start with the owner and extend one another."""
    ring = HashRing(nodes, **options)
    n = min(n, len(nodes))
    for key in keys:
        full = ring.get_nodes(key)
        assert sorted(full) == sorted(nodes)
        assert full[0] == ring.get_node(key)
        short = ring.get_nodes(key, n)
        assert short == full[:n]
        assert len(set(short)) == n


@given(nodes=node_sets(), options=ring_options, keys=key_lists, tags=st.booleans())
def test_batch_equals_single_lookups(
    nodes: dict[str, float], options: dict[str, Any], keys: list[Key], tags: bool
) -> None:
    """get_node_many gives get_node's answer for every key, in order."""
    ring = HashRing(nodes, hash_tags=tags, **options)
    assert ring.get_node_many(keys) == [ring.get_node(key) for key in keys]
    assert ring.get_node_many(iter(keys)) == ring.get_node_many(keys)


@given(
    weights_list=st.lists(st.sampled_from([0.5, 1, 2, 3, 4]), min_size=2, max_size=6),
    vnodes=st.sampled_from([500, 1000]),
)
def test_weights_shift_shares_in_proportion(weights_list: list[float], vnodes: int) -> None:
    """A node's share of the hash space follows its weight within six standard deviations."""
    nodes = {f"node-{i}": w for i, w in enumerate(weights_list)}
    ring = HashRing(nodes, vnodes=vnodes)
    counts = ring.point_counts()
    total_points = sum(counts.values())
    total_weight = sum(weights_list)
    for name, share in ring.hash_space_shares().items():
        assert counts[name] == round(vnodes * nodes[name])
        expected = nodes[name] / total_weight
        # A node's share is the sum of its m arcs, each about 1/total_points long:
        # its standard deviation is about sqrt(m) / total_points.
        tolerance = 6 * math.sqrt(counts[name]) / total_points
        assert abs(share - expected) <= tolerance, (name, share, expected, tolerance)


def test_key_counts_follow_weights() -> None:
    """Over 100,000 keys, nodes weighted 1:2:3:4 receive keys in that proportion (±10%)."""
    ring = HashRing({"a": 1, "b": 2, "c": 3, "d": 4})
    placed = ring.get_node_many([f"key:{i}" for i in range(100_000)])
    for name, weight in ring.nodes.items():
        share = placed.count(name) / len(placed)
        assert abs(share / (weight / 10) - 1) < 0.10, (name, share)


def test_balance_with_default_vnodes() -> None:
    """With 160 vnodes, 100 equal nodes hold the hash space within the expected spread."""
    ring = HashRing([f"node-{i}" for i in range(100)])
    shares = list(ring.hash_space_shares().values())
    peak_to_mean = max(shares) / (1 / 100)
    assert 1.05 < peak_to_mean < 1.35
