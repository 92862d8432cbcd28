"""HashRing's C index (``hashring._placement._ring_native``) against its Python table.

Two rings built alike, one through each path, must answer every lookup the same, bit for
bit, through every membership change; both must answer as a bisect of the sorted points.
The C entry points must refuse bad arguments with TypeError or ValueError (never crash or
read out of bounds), and lookups must stay whole while other threads change membership.
"""

from __future__ import annotations

import os
import random
import sys
import threading
from bisect import bisect_left
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import keys as any_keys

from hashring import EmptyRingError, HashRing, Key
from hashring._placement import ring as ring_module
from hashring._placement.hashes import MASK32

NATIVE = ring_module._NATIVE

if NATIVE is None:  # an install whose optional C build failed: nothing here to compare
    if os.environ.get("HASHRING_REQUIRE_NATIVE") == "1":
        raise ImportError("hashring._placement._ring_native is not built")
    pytest.skip("hashring._placement._ring_native is not built", allow_module_level=True)

RingIndex: Any = NATIVE


def _pair(*args: Any, **kwargs: Any) -> tuple[HashRing, HashRing]:
    """The same ring twice: through the C index, and through the Python table."""
    native = HashRing(*args, **kwargs)
    ring_module._NATIVE = None
    try:
        python = HashRing(*args, **kwargs)
    finally:
        ring_module._NATIVE = NATIVE
    assert native._snapshot.index is not None or not native._snapshot.points.size
    assert python._snapshot.index is None
    return native, python


def _both(change: Callable[[HashRing], None], rings: tuple[HashRing, HashRing]) -> None:
    for ring in rings:
        change(ring)


def _probe_positions(ring: HashRing, rng: random.Random, count: int) -> list[int]:
    """Random positions, the circle's ends, every point (up to a thousand of them), one
    either side of each, and positions past the last point (the wrap-around)."""
    points = ring._snapshot.points.tolist()
    step = max(1, len(points) // 1000)
    positions = [rng.randrange(1 << 32) for _ in range(count)] + [0, 1, MASK32 - 1, MASK32]
    for point in [*points[::step], points[0], points[-1]] if points else []:
        positions += [point, max(0, point - 1), min(MASK32, point + 1)]
    if points and points[-1] < MASK32:
        positions += [points[-1] + 1, (points[-1] + MASK32) // 2]
    return positions


def _assert_same(native: HashRing, python: HashRing, rng: random.Random, keys: int) -> None:
    """Every lookup path of the two rings answers alike, and as a bisect of the points."""
    snap, ref = native._snapshot, python._snapshot
    assert snap.names == ref.names
    assert np.array_equal(snap.padded, ref.padded)
    assert np.array_equal(snap.owners, ref.owners)
    native._check()
    python._check()
    if not ref.points.size:
        for ring in (native, python):
            with pytest.raises(EmptyRingError):
                ring.get_node("k")
            with pytest.raises(EmptyRingError):
                ring.get_node_many(["k", b"j"])
        return
    points = ref.points.tolist()
    for position in _probe_positions(python, rng, 300):
        expected = ref.names[ref.owners[bisect_left(points, position)]]
        assert snap.owner_of_position(position) == expected, position
        assert snap.owner_of_digest(position.to_bytes(16, "little")) == expected, position
        assert ref.owner_of_position(position) == expected, position
        assert ref.owner_at(position) == expected, position
    words: list[Key] = [f"user:{rng.randrange(10**9)}" for _ in range(keys)]
    words += [rng.randbytes(rng.randrange(0, 12)) for _ in range(keys // 10)]
    words += [f"é{i}{{tag{i % 7}}}" for i in range(keys // 10)]
    owners = [python.get_node(key) for key in words]
    assert [native.get_node(key) for key in words] == owners
    assert native.get_node_many(words) == python.get_node_many(words) == owners
    index, names = native.get_index_many(words)
    ref_index, ref_names = python.get_index_many(words)
    assert names == ref_names
    assert index.dtype == ref_index.dtype == np.intp
    assert index.tolist() == ref_index.tolist() == [names.index(o) for o in owners]


# ------------------------------------------------------------------ answers, both paths


@pytest.mark.parametrize("hash_name", ["mmh3", "ketama"])
@pytest.mark.parametrize("nodes", [1, 2, 3, 10, 100, 1000, 2000])
def test_native_and_python_agree_on_rings_of_many_sizes(hash_name: str, nodes: int) -> None:
    """From 1 to 2,000 nodes (160 points each: up to 320,000 points, a 2**21 table)."""
    rng = random.Random(nodes * 7 + len(hash_name))
    rings = _pair([f"node-{i}" for i in range(nodes)], hash=hash_name)
    _assert_same(*rings, rng, 2000 if nodes <= 100 else 600)


@pytest.mark.parametrize("hash_name", ["mmh3", "ketama", "custom", "keyed"])
def test_native_and_python_agree_through_membership_changes(hash_name: str) -> None:
    """Adds, removes and reweights (each publishing a new snapshot) keep both paths equal,
    down to an empty ring and back."""
    rng = random.Random(hash_name)
    options: dict[str, Any] = {"vnodes": 40}
    if hash_name == "custom":
        options["hash"] = lambda data: int.from_bytes(data[:4].ljust(4, b"\0"), "big") * 2654435761
    elif hash_name == "keyed":
        options["hash_key"] = bytes(range(32))
    else:
        options["hash"] = hash_name
    rings = _pair({f"node-{i}": rng.choice([0.5, 1, 2, 3]) for i in range(30)}, **options)
    _assert_same(*rings, rng, 300)
    for step in range(12 if hash_name == "custom" else 40):  # a custom hash is slow to check
        action = rng.choice(["add", "remove", "weight"])
        present = sorted(rings[0].nodes)
        if action == "add" or not present:
            name = f"new-{step}"
            weight = rng.choice([0.25, 1, 4])
            _both(lambda ring, n=name, w=weight: ring.add_node(n, w), rings)
        elif action == "remove":
            victim = rng.choice(present)
            _both(lambda ring, v=victim: ring.remove_node(v), rings)
        else:
            target = rng.choice(present)
            weight = rng.choice([0.5, 1.5, 6])
            _both(lambda ring, t=target, w=weight: ring.set_weight(t, w), rings)
        _assert_same(*rings, rng, 150)
    for name in sorted(rings[0].nodes):
        _both(lambda ring, n=name: ring.remove_node(n), rings)
    _assert_same(*rings, rng, 10)  # empty: both raise EmptyRingError
    _both(lambda ring: ring.add_node("again"), rings)
    _assert_same(*rings, rng, 100)


def test_empty_rings_raise_on_both_paths() -> None:
    """No node: EmptyRingError from every lookup, and no C index; a ketama node whose tiny
    weight gives it no point owns no key on either path."""
    native, python = _pair([])
    assert native._snapshot.index is None  # no point: nothing for the C index to hold
    for ring in (native, python):
        with pytest.raises(EmptyRingError, match="no nodes"):
            ring.get_node("k")
        with pytest.raises(EmptyRingError, match="no nodes"):
            ring.get_node_many(["k"])
        with pytest.raises(EmptyRingError, match="no nodes"):
            ring.get_index_many(["k"])
    native, python = _pair({"tiny": 1e-12, "big": 1.0}, hash="ketama")
    assert native.point_counts()["tiny"] == 0
    _assert_same(native, python, random.Random(5), 300)
    assert "tiny" not in native.get_node_many([f"k{i}" for i in range(2000)])


def test_keys_landing_exactly_on_points_and_the_wrap_around() -> None:
    """Keys whose ketama position is exactly a point, and positions past the last point,
    which belong to the first point's owner."""
    native, python = _pair([f"node-{i}" for i in range(50)], hash="ketama")
    snapshot = native._snapshot
    points = snapshot.points
    for i in (0, 1, len(points) // 2, len(points) - 1):
        point = int(points[i])
        owner = snapshot.names[snapshot.owners[i]]
        for digest in (point.to_bytes(4, "little"), point.to_bytes(16, "little")):
            assert snapshot.owner_of_digest(digest) == owner
            assert python._snapshot.owner_of_digest(digest) == owner
    first_owner = snapshot.names[snapshot.owners[0]]
    for position in (int(points[-1]) + 1, MASK32):
        assert snapshot.owner_of_position(position) == first_owner
        assert python._snapshot.owner_of_position(position) == first_owner
    assert snapshot.owner_of_position(0) == python._snapshot.owner_of_position(0)


def test_a_ring_keeps_the_path_it_was_built_with() -> None:
    """The choice is made once per ring: later snapshots follow it whatever _NATIVE says."""
    native, python = _pair(["a", "b", "c"])
    ring_module._NATIVE = None
    try:
        native.add_node("d")
    finally:
        ring_module._NATIVE = NATIVE
    python.add_node("d")
    assert native._snapshot.index is not None
    assert python._snapshot.index is None
    assert native.get_node.__func__ is HashRing._get_node_native  # type: ignore[attr-defined]
    assert python.get_node.__func__ is HashRing.get_node  # type: ignore[attr-defined]
    ketama, _ = _pair(["a"], hash="ketama")
    assert ketama.get_node.__func__ is HashRing._get_node_digest_native  # type: ignore[attr-defined]


@settings(max_examples=60, deadline=None)
@given(
    weights=st.dictionaries(
        st.text(min_size=1, max_size=6), st.sampled_from([0.25, 1, 1, 2, 5]), max_size=12
    ),
    hash_name=st.sampled_from(["mmh3", "ketama"]),
    vnodes=st.sampled_from([4, 8, 160]),
    changes=st.lists(st.tuples(st.integers(0, 2), st.integers(0, 40)), max_size=6),
    keys=st.lists(any_keys, max_size=30),
    positions=st.lists(st.integers(0, MASK32), max_size=30),
)
def test_native_matches_python_property(
    weights: dict[str, float],
    hash_name: str,
    vnodes: int,
    changes: list[tuple[int, int]],
    keys: list[Key],
    positions: list[int],
) -> None:
    """Any weights, hash and sequence of changes: every key and position alike."""
    rings = _pair(weights, hash=hash_name, vnodes=vnodes)
    for action, seed in changes:
        present = sorted(rings[0].nodes)
        if (action == 0 or not present) and f"+{seed}" not in present:
            _both(lambda ring, s=seed: ring.add_node(f"+{s}", 1 + s % 3), rings)
        elif not present:
            continue
        elif action == 1:
            victim = present[seed % len(present)]
            _both(lambda ring, n=victim: ring.remove_node(n), rings)
        else:
            name = present[seed % len(present)]
            _both(lambda ring, n=name, s=seed: ring.set_weight(n, 0.5 + s % 4), rings)
        native, python = rings
        if python._snapshot.empty:
            continue
        assert [native.get_node(k) for k in keys] == [python.get_node(k) for k in keys]
        if keys:
            assert native.get_node_many(keys) == python.get_node_many(keys)
        ref = python._snapshot
        for position in positions:
            owner = ref.owner_of_position(position)
            assert native._snapshot.owner_of_position(position) == owner
    rings[0]._check()


# ------------------------------------------------------------------ argument checks


def _index(count: int = 5, names: tuple[str, ...] = ("a", "b"), bits: int = 4) -> Any:
    points = np.sort(np.random.default_rng(count).integers(0, MASK32, count, dtype=np.uint32))
    padded = np.append(points, np.uint32(MASK32))
    owners = (np.arange(count + 1) % len(names)).astype(np.uint32)
    owners[-1] = owners[0]
    return RingIndex(padded, owners, names, bits), padded, owners


def test_constructor_refuses_bad_arguments() -> None:
    index, padded, owners = _index()
    assert (index.size, index.bits, index.names) == (5, 4, ("a", "b"))
    assert index.nbytes == 16 * 4 + 6 * 8
    bad_types: list[tuple[Any, ...]] = [
        (padded.tolist(), owners, ("a", "b"), 4),  # a list, not a buffer
        (padded.astype(np.int64), owners, ("a", "b"), 4),
        (padded.astype(np.int32), owners, ("a", "b"), 4),  # signed
        (padded.astype(np.float32), owners, ("a", "b"), 4),
        (padded, owners.astype(np.uint16), ("a", "b"), 4),
        (padded.reshape(2, 3), owners.reshape(2, 3), ("a", "b"), 4),
        (padded[::2], owners[::2], ("a", "b"), 4),  # not contiguous
        (padded, owners, ["a", "b"], 4),  # names a list
        (padded, owners, ("a", 2), 4),
        (padded, owners, ("a", "b"), 4.0),
        (padded, owners, ("a", "b")),
        ("points", owners, ("a", "b"), 4),
    ]
    for args in bad_types:
        with pytest.raises(TypeError):
            RingIndex(*args)
    unsorted = padded.copy()
    unsorted[[0, 1]] = unsorted[[1, 0]]
    no_padding = padded.copy()
    no_padding[-1] = 7
    high_owner = owners.copy()
    high_owner[2] = 2
    bad_values: list[tuple[tuple[Any, ...], str]] = [
        ((padded, owners[:-1], ("a", "b"), 4), "one length"),
        ((padded[-1:], owners[-1:], ("a", "b"), 4), "1 to"),  # the padding alone
        ((padded[:0], owners[:0], ("a", "b"), 4), "1 to"),
        ((unsorted, owners, ("a", "b"), 4), "sorted"),
        ((no_padding, owners, ("a", "b"), 4), "padding"),
        ((padded, high_owner, ("a", "b"), 4), "not an index"),
        ((padded, owners, ("a",), 4), "not an index"),
        ((padded, owners, ("a", "b"), 0), "bits"),
        ((padded, owners, ("a", "b"), 29), "bits"),
        ((padded, owners, ("a", "b"), -1), "bits"),
    ]
    for args, message in bad_values:
        with pytest.raises(ValueError, match=message):
            RingIndex(*args)


def test_lookups_refuse_bad_arguments() -> None:
    index, _, _ = _index()
    for digest in ("abcd", bytearray(b"abcdabcd"), memoryview(b"abcdabcd"), 1234, None):
        with pytest.raises(TypeError, match="bytes"):
            index.owner_of_digest(digest)
    for short in (b"", b"abc"):
        with pytest.raises(ValueError, match="at least 4"):
            index.owner_of_digest(short)
    for position in (1.0, "1", None, True, b"\0\0\0\0"):
        with pytest.raises(TypeError, match="int"):
            index.owner_at(position)
        with pytest.raises(TypeError, match="int"):
            index.index_at(position)
    for position in (1 << 32, -(1 << 31) - 1, 1 << 100, -(1 << 100)):
        with pytest.raises(ValueError, match="position"):
            index.owner_at(position)
    assert index.owner_at(-1) == index.owner_at(MASK32)
    assert index.owner_at(-(1 << 31)) == index.owner_at(1 << 31)
    assert index.owner_of_digest(b"\xff\xff\xff\xff") == index.owner_at(MASK32)
    for positions in ([1, 2], np.array([1, 2], dtype=np.int64), np.zeros((2, 2), np.uint32)):
        with pytest.raises(TypeError, match="positions"):
            index.owners_of(positions)
    positions = np.array([0, 5, MASK32], dtype=np.uint32)
    assert index.owners_of(positions) == [index.owner_at(int(p)) for p in positions]
    out = np.full(3, -1, dtype=np.intp)
    assert index.fill_indices(positions, out) is None
    assert out.tolist() == [index.index_at(int(p)) for p in positions]
    for bad_out in (np.empty(3, np.int32), np.empty(3, np.uint64), [0, 0, 0], b"x" * 24):
        with pytest.raises(TypeError, match="out"):
            index.fill_indices(positions, bad_out)
    with pytest.raises(ValueError, match="length"):
        index.fill_indices(positions, np.empty(4, np.intp))
    readonly = np.empty(3, np.intp)
    readonly.flags.writeable = False
    with pytest.raises(TypeError, match="writable"):
        index.fill_indices(positions, readonly)
    with pytest.raises(TypeError, match="2 arguments"):
        index.fill_indices(positions)
    empty = np.empty(0, dtype=np.uint32)
    assert index.owners_of(empty) == []
    index.fill_indices(empty, np.empty(0, np.intp))


def test_the_index_copies_its_inputs() -> None:
    """Changing the arrays it was built from afterwards changes no answer."""
    index, padded, owners = _index(200, ("a", "b", "c"), 6)
    probe = np.arange(0, MASK32, 99_991, dtype=np.uint32)
    before = index.owners_of(probe)
    entries, pairs = index.entries(), index.pairs()
    padded[:-1] = 0
    owners[:] = 2
    assert index.owners_of(probe) == before
    assert (index.entries(), index.pairs()) == (entries, pairs)


def test_the_check_catches_a_wrong_index() -> None:
    """_check compares the C index with the snapshot, so a mismatch fails it."""
    ring = HashRing([f"n{i}" for i in range(6)], vnodes=20)
    ring._check()
    snapshot = ring._snapshot
    owners = snapshot.owners.copy()
    owners[3] = (owners[3] + 1) % 6
    snapshot.index = RingIndex(snapshot.padded, owners, snapshot.names, snapshot.bits)
    with pytest.raises(AssertionError, match="index owners"):
        ring._check()


# ------------------------------------------------------------------ threads


@pytest.fixture
def stop_event() -> Iterator[threading.Event]:
    event = threading.Event()
    yield event
    event.set()


@pytest.mark.parametrize("hash_name", ["ketama", "mmh3"])
def test_lookups_from_many_threads_while_membership_changes(
    hash_name: str, stop_event: threading.Event
) -> None:
    """Four reader threads look up through the C index while a writer adds, reweights and
    removes nodes: every answer is that of the ring before or after a change, never an
    error, and each reader runs through at least one change."""
    names = [f"node-{i}" for i in range(200)]
    ring = HashRing(names, hash=hash_name)
    keys: list[Key] = [f"user:{i}" for i in range(400)]
    states = [ring.get_node_many(keys)]
    ring.add_node("extra", 3)
    states.append(ring.get_node_many(keys))
    ring.set_weight("extra", 0.5)
    states.append(ring.get_node_many(keys))
    ring.remove_node("extra")
    assert ring.get_node_many(keys) == states[0]
    allowed = [set(column) for column in zip(*states, strict=True)]
    errors: list[BaseException] = []
    passes = [0] * 4
    started = threading.Barrier(5)

    def reader(slot: int) -> None:
        try:
            started.wait(timeout=60)
            while not stop_event.is_set():
                for i, key in enumerate(keys):
                    assert ring.get_node(key) in allowed[i]
                assert ring.get_node_many(keys) in states
                index, names_now = ring.get_index_many(keys)
                assert [names_now[j] for j in index.tolist()] in states
                passes[slot] += 1
        except BaseException as exc:  # reported to the main thread
            errors.append(exc)
            stop_event.set()

    threads = [threading.Thread(target=reader, args=(slot,)) for slot in range(4)]
    for thread in threads:
        thread.start()
    started.wait(timeout=60)
    changes = 0
    while changes < 30 or (min(passes) < 2 and changes < 3000 and not errors):
        ring.add_node("extra", 3)
        ring.set_weight("extra", 0.5)
        ring.remove_node("extra")
        changes += 1
    stop_event.set()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    assert min(passes) >= 2, passes
    ring._check()


@pytest.mark.parametrize("hash_name", ["ketama", "mmh3"])
def test_a_replaced_snapshot_is_freed_at_once(ring_path: str, hash_name: str) -> None:
    """Nothing in a snapshot refers back to it (no bound method of its own), so the one it
    replaces is freed by reference counting, not left for the cycle collector with its
    arrays and table, and an empty one has no such reference either."""
    ring = HashRing(["a", "b", "c"], hash=hash_name)
    for change in (lambda: ring.add_node("d"), lambda: ring.remove_node("d")):
        snapshot = ring._snapshot
        change()
        assert sys.getrefcount(snapshot) == 2  # this name and getrefcount's argument
    for name in ["a", "b", "c"]:
        ring.remove_node(name)
    empty = ring._snapshot
    ring.add_node("e")
    assert sys.getrefcount(empty) == 2
