"""The single-key fast paths against their reference formulations, bit for bit.

``test_placement_pinned`` pins a few hundred answers; these properties reach the corners
the pinned keys may miss: jump's float loop against :func:`jump` over many bucket counts,
the ring's bucket walk (the C index and the Python table) against a bisect at and between
points, and rendezvous's top-byte comparison when two nodes share a seed (an exact tie)
among many nodes.
"""

from __future__ import annotations

import hashlib
from bisect import bisect_left
from collections.abc import Iterator

import mmh3
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import keys as any_keys
from test_placement_pinned import _numpy_best, _with_seed

from hashring import HashRing, JumpHash, Key
from hashring._placement import jump as jump_module
from hashring._placement.hashes import MASK32, mix64
from hashring._placement.jump import jump
from hashring._placement.keys import hash_tag
from hashring._placement.scores import RendezvousScores


def _position(key: Key) -> int:
    routed = hash_tag(key)
    return mmh3.hash(routed.encode() if isinstance(routed, str) else routed) & MASK32


@pytest.fixture(params=["compiled", "python"])
def jump_path(request: pytest.FixtureRequest) -> Iterator[str]:
    """JumpHash.get_node through the compiled jump (jump-consistent-hash) and through its
    Python loop, the fallback when the compiled one cannot be imported."""
    compiled = jump_module._JUMP_C
    assert compiled is not None  # the dependency ships compiled wheels
    if request.param == "python":
        jump_module._JUMP_C = None
    try:
        yield str(request.param)
    finally:
        jump_module._JUMP_C = compiled


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)  # the fixture's setting holds for every example alike
@given(
    buckets=st.one_of(st.integers(1, 40), st.integers(41, 5000)),
    keys=st.lists(any_keys, min_size=1, max_size=30),
)
def test_jump_get_node_is_the_integer_jump(jump_path: str, buckets: int, keys: list[Key]) -> None:
    """JumpHash.get_node gives jump()'s bucket for every key and node count, both ways."""
    names = [f"n{i:05d}" for i in range(buckets)]  # sorted order is bucket order
    placement = JumpHash(names)
    for key in keys:
        assert placement.get_node(key) == names[jump(mix64(_position(key)), buckets)]


def test_jump_get_node_at_exact_candidates(jump_path: str) -> None:
    """Keys whose jump lands exactly on the bucket count's boundary, at many sizes."""
    for buckets in (1, 2, 3, 7, 10, 64, 100, 1000, 4096):
        names = [f"n{i:05d}" for i in range(buckets)]
        placement = JumpHash(names)
        for i in range(400):
            key = f"edge:{buckets}:{i}"
            assert placement.get_node(key) == names[jump(mix64(_position(key)), buckets)]


@settings(max_examples=200, deadline=None)
@given(
    key=st.integers(0, 2**64 - 1),
    buckets=st.one_of(st.integers(1, 100), st.integers(1, 2**31 - 1)),
)
def test_the_compiled_jump_is_jump(key: int, buckets: int) -> None:
    """The compiled jump answers as jump() over the whole key and bucket ranges."""
    assert jump_module._JUMP_C is not None
    assert jump_module._JUMP_C(key, buckets) == jump(key, buckets)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    nodes=st.integers(1, 60),
    hash_name=st.sampled_from(["mmh3", "ketama"]),
    picks=st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=40),
)
def test_ring_bucket_walk_is_a_bisect(
    ring_path: str, nodes: int, hash_name: str, picks: list[int]
) -> None:
    """owner_at (bucket index and walk) and the lookup's entry points (the C index's, or
    their Python equivalents) answer as a bisect of the sorted points, at the points
    themselves, one either side, and the circle's ends; a signed position (mmh3's) as its
    unsigned form, and a digest by its first four bytes, little-endian."""
    ring = HashRing([f"node-{i}" for i in range(nodes)], vnodes=8, hash=hash_name)
    snapshot = ring._snapshot
    assert (snapshot.index is not None) == (ring_path == "native")
    points = snapshot.points.tolist()
    positions = [*picks, 0, MASK32, *points[:: max(1, len(points) // 40)]]
    positions += [min(MASK32, p + 1) for p in positions] + [max(0, p - 1) for p in positions]
    for position in positions:
        expected = snapshot.names[snapshot.owners[bisect_left(points, position)]]
        assert snapshot.owner_at(position) == expected
        assert snapshot.owner_of_position(position) == expected
        signed = position - (1 << 32) if position >= 1 << 31 else position
        assert snapshot.owner_of_position(signed) == expected
        digest = position.to_bytes(4, "little") + b"rest of the digest"[:12]
        assert snapshot.owner_of_digest(digest) == expected


def test_ketama_single_lookup_is_the_md5_of_the_key(ring_path: str) -> None:
    """ketama get_node places by the first four bytes, little-endian, of hashlib's MD5
    (whichever MD5 implementation the lookup itself uses), through either lookup path."""
    ring = HashRing([f"node-{i}" for i in range(30)], hash="ketama")
    snapshot = ring._snapshot
    points = snapshot.points.tolist()
    for i in range(2000):
        key = f"user:{i}"
        position = int.from_bytes(hashlib.md5(key.encode()).digest()[:4], "little")
        expected = snapshot.names[snapshot.owners[bisect_left(points, position)]]
        assert ring.get_node(key) == expected == ring.get_node(key.encode())


def test_rendezvous_top_byte_ties_fall_back_to_whole_words(rendezvous_path: str) -> None:
    """Among many nodes an exact tie (two nodes with one seed) shares the top byte; the
    lookup then compares whole mixes and, like numpy, picks the first node by name."""
    weights = {f"node-{i:02d}": 1.0 for i in range(24)}
    tied = _with_seed(RendezvousScores(weights), 9, int(RendezvousScores(weights).seeds[3]))
    for position in range(0, 2**32, 2**32 // 3000):
        best = tied.best_one(position)
        assert best == _numpy_best(tied, position) != 9


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(positions=st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=50))
def test_rendezvous_many_nodes_match_numpy(rendezvous_path: str, positions: list[int]) -> None:
    """The top-byte path (12 nodes and more; C's loop with the C scorer) gives numpy's
    argmax."""
    for count in (12, 16, 17, 33, 48):
        scoring = RendezvousScores({f"n{i}": 1.0 for i in range(count)})
        best = scoring.best(np.array(positions, dtype=np.uint32)).tolist()
        assert [scoring.best_one(p) for p in positions] == best
