"""Every placement algorithm against the shared contract, plus each one's own promises."""

from __future__ import annotations

import json
import os
import random
import statistics
import subprocess
import sys
from typing import Any

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from strategies import key_lists, node_names

from hashring import (
    ALGORITHMS,
    BoundedLoad,
    EmptyRingError,
    HashRing,
    InvalidKeyError,
    InvalidOptionError,
    InvalidWeightError,
    JumpHash,
    Key,
    LeastLoaded,
    Maglev,
    NodeExistsError,
    NotEnoughNodesError,
    Placement,
    Rendezvous,
    RoundRobin,
    UnknownNodeError,
    as_placement,
    placement,
)
from hashring._placement.jump import Memento, jump, jump_array
from hashring._placement.maglev import is_prime, maglev_table

SPREAD: list[Key] = [f"spread:{i}" for i in range(400)]

OPTIONS: dict[str, dict[str, Any]] = {
    "ring": {"vnodes": 40},
    "maglev": {"table_size": 4099},
    "rendezvous": {},
    "jump": {},
}


def build(algorithm: str, nodes: Any, **extra: Any) -> Any:
    return placement(algorithm, nodes, **OPTIONS[algorithm], **extra)


node_sets = st.lists(node_names, min_size=1, max_size=7, unique=True).map(
    lambda names: dict.fromkeys(names, 1.0)
)
weighted_sets = st.dictionaries(node_names, st.sampled_from([0.5, 1, 2, 3]), min_size=1, max_size=7)
algorithms = st.sampled_from(ALGORITHMS)
# Maglev is not minimal (keys also move between surviving nodes); its movement has its own
# exact, deterministic test below.
minimal_algorithms = st.sampled_from([name for name in ALGORITHMS if name != "maglev"])


def moved(before: list[str], after: list[str]) -> list[tuple[str, str]]:
    return [(b, a) for b, a in zip(before, after, strict=True) if b != a]


# ------------------------------------------------------------------- shared contract


@given(algorithm=algorithms, nodes=node_sets, keys=key_lists, data=st.data())
def test_construction_order_does_not_matter(
    algorithm: str, nodes: dict[str, float], keys: list[Key], data: st.DataObject
) -> None:
    """The same nodes given in any order place every key alike."""
    shuffled = data.draw(st.permutations(list(nodes)))
    a = build(algorithm, nodes)
    b = build(algorithm, {name: nodes[name] for name in shuffled})
    assert a.get_node_many(keys + SPREAD) == b.get_node_many(keys + SPREAD)


@given(
    algorithm=st.sampled_from(["ring", "maglev", "rendezvous"]), nodes=weighted_sets, data=st.data()
)
def test_incremental_order_does_not_matter(
    algorithm: str, nodes: dict[str, float], data: st.DataObject
) -> None:
    """For the stateless algorithms, adding nodes one by one in any order ends the same."""
    order = data.draw(st.permutations(list(nodes)))
    grown = build(algorithm, ())
    for name in order:
        grown.add_node(name, nodes[name])
    grown._check()
    assert grown.get_node_many(SPREAD) == build(algorithm, nodes).get_node_many(SPREAD)


@given(algorithm=algorithms, nodes=node_sets, keys=key_lists, tags=st.booleans())
def test_batch_equals_single_and_preference_lists(
    algorithm: str, nodes: dict[str, float], keys: list[Key], tags: bool
) -> None:
    """get_node_many matches get_node; preference lists are distinct, owner first."""
    p = build(algorithm, nodes, hash_tags=tags)
    owners = p.get_node_many(keys)
    assert owners == [p.get_node(key) for key in keys]
    for key, owner in zip(keys, owners, strict=True):
        everyone = p.get_nodes(key)
        assert everyone[0] == owner
        assert sorted(everyone) == sorted(nodes)
        assert p.get_nodes(key, 1) == [owner]


@given(
    algorithm=algorithms,
    nodes=node_sets,
    keys=st.lists(st.binary(max_size=12) | st.sampled_from([b"{", b"a{b}c", b"{}x", b"x}{y}"])),
    tags=st.booleans(),
)
def test_batch_of_bytes_equals_single(
    algorithm: str, nodes: dict[str, float], keys: list[bytes], tags: bool
) -> None:
    """A batch of bytes alone (what SCAN gives, placed without per-key checks) is placed as
    each key alone, tags included; a bytes subclass among them changes nothing."""
    p = build(algorithm, nodes, hash_tags=tags)
    single = [p.get_node(key) for key in keys]
    assert p.get_node_many(keys) == single

    class Sub(bytes):
        def find(self, *args: Any) -> int:  # placement must not consult the key's own methods
            return -1

    assert p.get_node_many([*keys, Sub(b"a{b}c")]) == [*single, p.get_node(b"a{b}c")]


@given(algorithm=minimal_algorithms, nodes=node_sets, new=node_names)
def test_adding_moves_keys_only_to_the_new_node(
    algorithm: str, nodes: dict[str, float], new: str
) -> None:
    """After add_node, keys stay or move to the new node."""
    assume(new not in nodes)
    p = build(algorithm, nodes)
    before = p.get_node_many(SPREAD)
    p.add_node(new)
    p._check()
    changes = moved(before, p.get_node_many(SPREAD))
    assert [change for change in changes if change[1] != new] == []


@given(algorithm=minimal_algorithms, nodes=node_sets, data=st.data())
def test_removing_moves_only_the_removed_nodes_keys(
    algorithm: str, nodes: dict[str, float], data: st.DataObject
) -> None:
    """After remove_node, only its keys move, each to its next preference."""
    assume(len(nodes) > 1)
    p = build(algorithm, nodes)
    gone = data.draw(st.sampled_from(sorted(nodes)))
    before = p.get_node_many(SPREAD)
    seconds = [p.get_nodes(key, 2)[1] for key in SPREAD]
    p.remove_node(gone)
    p._check()
    after = p.get_node_many(SPREAD)
    elsewhere = [
        i for i, (b, a) in enumerate(zip(before, after, strict=True)) if b != a and b != gone
    ]
    assert elsewhere == []
    for b, a, second in zip(before, after, seconds, strict=True):
        if b == gone:
            assert a == second


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_errors_are_the_shared_types(algorithm: str) -> None:
    """Every algorithm raises the same typed errors as HashRing."""
    p = build(algorithm, ["a", "b"])
    assert isinstance(p, Placement)
    with pytest.raises(InvalidKeyError):
        p.get_node(5)
    with pytest.raises(InvalidKeyError, match=r"keys\[1\]"):
        p.get_node_many(["x", None])
    with pytest.raises(NotEnoughNodesError):
        p.get_nodes("k", 3)
    with pytest.raises(InvalidOptionError):
        p.get_nodes("k", 0)
    with pytest.raises(NodeExistsError):
        p.add_node("a")
    with pytest.raises(UnknownNodeError):
        p.remove_node("zz")
    with pytest.raises(InvalidWeightError):
        p.add_node("c", -1)
    empty = build(algorithm, ())
    for call in (
        lambda: empty.get_node("k"),
        lambda: empty.get_nodes("k"),
        lambda: empty.get_node_many(["k"]),
    ):
        with pytest.raises(EmptyRingError):
            call()
    assert empty.get_node_many([]) == []


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_hash_tags_keep_related_keys_together(algorithm: str) -> None:
    """Keys sharing a {tag} share an owner in every algorithm."""
    p = build(algorithm, [f"n{i}" for i in range(9)])
    for tag in ("1", "user:7", "x"):
        owners = {p.get_node(f"{prefix}{{{tag}}}") for prefix in ("a:", "b:", "cart:")}
        assert owners == {p.get_node(tag)}


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_placement_is_the_same_in_another_process(algorithm: str) -> None:
    """A fresh interpreter with another PYTHONHASHSEED places keys identically."""
    nodes = [f"cache-{i}" for i in range(7)]
    keys = [f"user:{i}" for i in range(300)]
    script = (
        "import json, sys; from hashring import placement; "
        f"p = placement({algorithm!r}, {nodes!r}, **{OPTIONS[algorithm]!r}); "
        f"print(json.dumps(p.get_node_many({keys!r})))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        timeout=120,
    )
    assert json.loads(out.stdout) == build(algorithm, nodes).get_node_many(keys)


def test_placement_factory_refuses_options_for_other_algorithms() -> None:
    """vnodes belongs to the ring and table_size to Maglev; unknown names are refused."""
    with pytest.raises(InvalidOptionError, match="vnodes applies to algorithm='ring' only"):
        placement("maglev", ["a"], vnodes=10)
    with pytest.raises(InvalidOptionError, match="table_size applies"):
        placement("ring", ["a"], table_size=1031)
    with pytest.raises(InvalidOptionError, match="unknown algorithm 'chord'"):
        placement("chord", ["a"])
    assert isinstance(placement("ring", ["a"]), HashRing)
    assert isinstance(placement("jump", ["a"]), JumpHash)


# ------------------------------------------------------------------------------ Maglev


def test_maglev_quotas_are_exact() -> None:
    """Each node holds its weight's share of slots, within one slot."""
    weights = {"a": 1, "b": 2, "c": 3.5, "d": 0.5}
    table = Maglev(weights, table_size=1031)
    counts = table.slot_counts()
    assert sum(counts.values()) == 1031
    for name, weight in weights.items():
        assert abs(counts[name] - 1031 * weight / 7) < 1


def test_maglev_balance_at_100_nodes() -> None:
    """With 100 equal nodes the table's peak-to-mean is at most 1.01."""
    counts = Maglev([f"node-{i}" for i in range(100)]).slot_counts()
    assert max(counts.values()) / (65537 / 100) <= 1.01


def maglev_extra_movement(rng: random.Random, size: int) -> float:
    """Exact fraction of slots that change hands between other nodes when one node joins."""
    count = rng.randint(2, 8)
    names = sorted({f"{rng.getrandbits(40):x}" for _ in range(count + 1)})
    weights = [rng.choice([0.5, 1, 1, 2, 3]) for _ in names]
    full = maglev_table(names, weights, size)
    out = rng.randrange(len(names))
    rest = [i for i in range(len(names)) if i != out]
    smaller = np.array(rest)[
        maglev_table([names[i] for i in rest], [weights[i] for i in rest], size)
    ]
    # Growing from `smaller` to `full` adds node `out`; shrinking back removes it. Either way,
    # a slot that changes hands without involving `out` is movement beyond the minimum.
    return float(np.mean((smaller != full) & (full != out) & (smaller != out)))


def test_maglev_movement_beyond_the_minimum_is_small() -> None:
    """Keys moved between surviving nodes: mean under 1%, worst under 10% (4,099 slots)."""
    rng = random.Random(20261124)
    extras = [maglev_extra_movement(rng, 4099) for _ in range(80)]
    assert statistics.mean(extras) < 0.01, statistics.mean(extras)
    assert max(extras) < 0.10, max(extras)
    assert max(extras) > 0  # Maglev really is not minimal: the measurement sees movement


@pytest.mark.parametrize("size", [0, 1, 4, 65536, 1.5, True, "65537"])
def test_maglev_table_size_must_be_prime(size: Any) -> None:
    """A table size that is not a prime int is refused, naming good sizes."""
    with pytest.raises(InvalidOptionError, match="prime number"):
        Maglev(["a"], table_size=size)


def test_is_prime() -> None:
    """The primality check agrees with a sieve up to 5,000."""
    sieve = np.ones(5000, dtype=bool)
    sieve[:2] = False
    for i in range(2, 71):
        sieve[i * i :: i] = False
    assert [n for n in range(5000) if is_prime(n)] == np.flatnonzero(sieve).tolist()


# -------------------------------------------------------------------------- Rendezvous


@pytest.mark.parametrize("weights", [{"a": 1, "b": 1, "c": 1}, {"a": 1, "b": 2, "c": 5}])
def test_rendezvous_shares_follow_weights(weights: dict[str, float]) -> None:
    """Over 200,000 keys each node's share is its weight's share within 1% absolute."""
    owners = Rendezvous(weights).get_node_many([f"k{i}" for i in range(200_000)])
    total = sum(weights.values())
    for name, weight in weights.items():
        assert abs(owners.count(name) / len(owners) - weight / total) < 0.01


# -------------------------------------------------------------------------------- Jump

# Computed with the C function of Lamping & Veach's paper (Figure 1), compiled with gcc;
# (42, 57) -> 43, (0xDEAD10CC, 666) -> 361 and (256, 1024) -> 520 are also the values in
# published jump implementations' tests.
JUMP_VECTORS = [
    (0, 10, 0),
    (1, 10, 6),
    (2**63, 10, 5),
    (42, 57, 43),
    (0xDEAD10CC, 666, 361),
    (256, 1024, 520),
    (2**64 - 1, 1, 0),
]


@pytest.mark.parametrize(("key", "buckets", "expected"), JUMP_VECTORS)
def test_jump_matches_the_paper(key: int, buckets: int, expected: int) -> None:
    """jump() and jump_array() give the paper's C results."""
    assert jump(key, buckets) == expected
    assert jump_array(np.array([key], dtype=np.uint64), buckets).tolist() == [expected]


@given(ops=st.lists(st.tuples(st.booleans(), st.integers(0, 10**6)), min_size=1, max_size=40))
def test_jump_memento_histories_move_keys_minimally(ops: list[tuple[bool, int]]) -> None:
    """Any history of adds and removes moves keys only off removed / onto added nodes."""
    shards = JumpHash([f"s{i}" for i in range(6)])
    before = shards.get_node_many(SPREAD)
    fresh = 0
    for add, pick in ops:
        names = sorted(shards.nodes)
        if add or len(names) == 1:
            fresh += 1
            shards.add_node(f"new-{fresh}")
            after = shards.get_node_many(SPREAD)
            assert all(a == f"new-{fresh}" for _, a in moved(before, after))
        else:
            gone = names[pick % len(names)]
            shards.remove_node(gone)
            after = shards.get_node_many(SPREAD)
            assert all(b == gone for b, _ in moved(before, after))
        shards._check()
        before = after
    copy = JumpHash.from_memento(json.loads(json.dumps(shards.memento())))
    assert copy.get_node_many(SPREAD) == before


def test_jump_numbers_buckets_and_reuses_removed_ones() -> None:
    """Constructor buckets follow name order; an added node takes the last removed bucket."""
    shards = JumpHash(["c", "a", "b"])
    assert [shards.bucket_of(n) for n in "abc"] == [0, 1, 2]
    shards.remove_node("a")
    shards.add_node("d")
    assert shards.bucket_of("d") == 0
    shards.remove_node("c")  # the last bucket with nothing removed: the array shrinks
    assert shards.memento()["size"] == 2
    with pytest.raises(UnknownNodeError):
        shards.bucket_of("c")


def test_jump_refuses_weights_and_bad_mementos() -> None:
    """Weights other than 1 and inconsistent mementos are refused with clear errors."""
    with pytest.raises(InvalidWeightError, match="weights other than 1 are not supported"):
        JumpHash({"a": 2})
    shards = JumpHash(["a"])
    with pytest.raises(InvalidWeightError):
        shards.set_weight("a", 3)
    shards.set_weight("a", 1)
    with pytest.raises(InvalidOptionError, match="not a JumpHash memento"):
        JumpHash.from_memento({"buckets": {}})
    with pytest.raises(InvalidOptionError, match="inconsistent"):
        JumpHash.from_memento({"buckets": {"a": 5}, "size": 1, "last_removed": 1, "removed": []})


def test_memento_vectorised_lookup_matches_scalar() -> None:
    """Memento.buckets agrees with Memento.bucket after a chain of removals."""
    state = Memento(50, 50, {})
    for bucket in (3, 49, 17, 0, 25, 48, 1):
        state = state.remove(bucket)
    keys = np.random.default_rng(1).integers(0, 2**63, 5000, dtype=np.uint64)
    assert state.buckets(keys).tolist() == [state.bucket(int(k)) for k in keys]
    assert not set(state.buckets(keys).tolist()) & set(state.removed)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_readers_see_one_whole_topology_while_a_writer_changes_it(algorithm: str) -> None:
    """Lookups racing add/remove see the old or the new placement, whole, never an error."""
    import threading
    import time

    base = [f"node-{i}" for i in range(8)]
    keys: list[Key] = [f"user:{i}" for i in range(1500)]
    p = build(algorithm, base)
    before = p.get_node_many(keys)
    p.add_node("node-new")
    after = p.get_node_many(keys)
    p.remove_node("node-new")
    assert p.get_node_many(keys) == before
    assert before != after
    stop = threading.Event()
    errors: list[BaseException] = []
    reads = [0]

    def reader() -> None:
        try:
            while not stop.is_set():
                assert p.get_node_many(keys) in (before, after)
                assert p.get_node(keys[5]) in (before[5], after[5])
                reads[0] += 1
                time.sleep(0.0005)  # let the writer have the GIL: it races, not starves
        except BaseException as exc:  # reported to the main thread
            errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for thread in threads:
        thread.start()
    try:
        for _ in range(25):
            p.add_node("node-new")
            p.remove_node("node-new")
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
    assert not errors, errors
    assert reads[0] > 0


def test_invariant_checkers_catch_corruption() -> None:
    """Each _check() fails on a broken structure, so the tests that call it can fail."""
    table = Maglev({"a": 1, "b": 2}, table_size=1031)
    table._check()
    table._snapshot.owners[0] = 1 - table._snapshot.owners[0]
    with pytest.raises(AssertionError, match="table matches a full rebuild"):
        table._check()
    hrw = Rendezvous({"a": 1, "b": 2})
    hrw._check()
    hrw._snapshot.scoring.weights[0] = 5.0
    with pytest.raises(AssertionError, match="weights follow names"):
        hrw._check()
    rr = RoundRobin({"a": 2, "b": 1})
    rr.pick()
    rr._check()
    rr._current["a"] += 1
    with pytest.raises(AssertionError, match="sum to zero"):
        rr._check()
    least = LeastLoaded(["a", "b"])
    least._check()
    least._in_flight["a"] = 3  # changed behind the sorted order's back
    with pytest.raises(AssertionError):  # sortedcontainers' own checker, or ours
        least._check()
    bounded = BoundedLoad(HashRing(["a", "b"]))
    bounded._in_flight["a"] = 0
    with pytest.raises(AssertionError, match="positive"):
        bounded._check()


def test_as_placement_builds_a_name_or_checks_a_ready_placement() -> None:
    """One placement= argument: an algorithm name, or a placement whose nodes match."""
    for name in ALGORITHMS:
        built = as_placement(name, ["a", "b", "c"])
        assert sorted(built.nodes) == ["a", "b", "c"]
        assert built.get_node_many(SPREAD) == placement(name, ["a", "b", "c"]).get_node_many(SPREAD)
    untagged = as_placement("ring", ["a", "b"], hash_tags=False)
    assert untagged.get_node("x{t}") == HashRing(["a", "b"], hash_tags=False).get_node("x{t}")
    ready = Maglev({"a": 2, "b": 1}, table_size=1031)
    assert as_placement(ready, ["b", "a"]) is ready
    with pytest.raises(InvalidOptionError, match="not in the placement: 'c'"):
        as_placement(ready, ["a", "b", "c"])
    with pytest.raises(InvalidOptionError, match="without a client: 'b'"):
        as_placement(ready, ["a"])
    with pytest.raises(InvalidOptionError, match="unknown algorithm"):
        as_placement("ketama", ["a"])
    with pytest.raises(InvalidOptionError, match="not dict"):
        as_placement({"a": 1}, ["a"])  # type: ignore[arg-type]
