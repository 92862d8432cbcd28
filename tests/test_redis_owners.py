"""Keys grouped per node with numpy (``_owners``) split and merge as the per-key loop did.

No server: the split of a multi-key command and the merge of its answers are checked
against a plain Python reference, and ``route_index`` against ``route_owners``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import redis.connection
from hashring.adapters.redis._owners import Grouping, Owners
from hashring.adapters.redis._routing import route_index, route_owners
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import keys as any_keys

from hashring import HashRing, HealthTracker, JumpHash, Maglev, Rendezvous

NODES = ["n-b", "n-a", "n-c", "n-d"]


def _reference(owners: list[str]) -> dict[str, list[int]]:
    """Key positions per node, nodes by name, positions in order: the old loop's grouping."""
    groups: dict[str, list[int]] = {}
    for index, owner in enumerate(owners):
        groups.setdefault(owner, []).append(index)
    return {node: groups[node] for node in sorted(groups)}


@given(
    owners=st.lists(st.sampled_from(NODES), min_size=1, max_size=80), step=st.sampled_from([1, 2])
)
def test_grouping_splits_and_merges_as_the_per_key_loop(owners: list[str], step: int) -> None:
    """Each node gets its keys' arguments in the caller's order, nodes by name, and the
    nodes' answers come back in the caller's key order (lists kept as items)."""
    expected = _reference(owners)
    for grouping in (Owners.of(owners).grouping(), Grouping.of_names(owners)):  # numpy, Python
        assert grouping.nodes == list(expected)
        assert grouping.sizes == [len(v) for v in expected.values()]
        items = tuple(f"arg-{i}-{j}" for i in range(len(owners)) for j in range(step))
        taken = grouping.take(items, step)
        assert list(taken) == [
            items[i * step + j] for v in expected.values() for i in v for j in range(step)
        ]
        answers = [[[i] if i % 3 == 0 else f"value-{i}" for i in v] for v in expected.values()]
        restored = grouping.restore(answers)
        assert restored == [[i] if i % 3 == 0 else f"value-{i}" for i in range(len(owners))]


def test_grouping_sorts_nodes_given_out_of_order() -> None:
    """Names in any order still give nodes sorted by name (the parts' order)."""
    owners = Owners(np.array([0, 2, 1, 0], dtype=np.intp), ("zeta", "alpha", "mid"))
    grouping = owners.grouping()
    assert grouping.nodes == ["alpha", "mid", "zeta"]
    assert grouping.take(("k0", "k1", "k2", "k3")) == ["k2", "k1", "k0", "k3"]
    assert owners.tolist() == ["zeta", "mid", "alpha", "zeta"]


def test_a_short_or_odd_answer_is_refused() -> None:
    """A node answering another number of values than it has keys is an error, not a shift."""
    grouping = Owners.of(["a", "b", "a"]).grouping()
    with pytest.raises(ValueError, match="'a' answered 1 values for 2 keys"):
        grouping.restore([["x"], ["y"]])
    with pytest.raises(ValueError, match="3 arguments for 3 keys of 2"):
        grouping.take(("a1", "v1", "b1"), 2)


PLACEMENTS = [HashRing(NODES), Maglev(NODES), Rendezvous(NODES), JumpHash(NODES)]
ENCODER = redis.connection.Encoder("utf-8", "strict", False)


@settings(max_examples=50)
@given(
    keys=st.lists(
        st.one_of(any_keys, st.integers(), st.floats(allow_nan=False)), min_size=1, max_size=40
    )
)
def test_route_index_places_as_route_owners(keys: list[Any]) -> None:
    """Every key gets the node route_owners gives it, with any placement."""
    health = HealthTracker(enabled=False)
    for placement in PLACEMENTS:
        expected = route_owners(placement, health, ENCODER, keys)
        assert route_index(placement, health, ENCODER, keys).tolist() == expected


def test_route_index_steps_around_an_ejected_node() -> None:
    """An ejected owner's keys go to the next usable node of their preference list."""
    health = HealthTracker(enabled=True, failure_limit=1, retry_timeout=60.0)
    placement = HashRing(NODES)
    keys = [f"user:{i}" for i in range(200)]
    health.record("n-a", False)
    owners = route_index(placement, health, ENCODER, keys).tolist()
    assert "n-a" not in owners
    assert owners == route_owners(placement, health, ENCODER, keys)
    plain = placement.get_node_many(keys)
    assert [o for o, p in zip(owners, plain, strict=True) if p != "n-a"] == [
        p for p in plain if p != "n-a"
    ]
    few = [key for key, owner in zip(keys, plain, strict=True) if owner == "n-a"][:3]
    assert "n-a" not in route_index(placement, health, ENCODER, [*few, "x"]).tolist()
