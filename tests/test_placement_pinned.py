"""Placement pinned: a few hundred answers of every algorithm, stored before any speed work.

``tests/data/placement_pinned.json`` holds, for each configuration below, the owner of each
of :data:`KEYS` (``get_node``) and the first three nodes of the preference lists of the first
:data:`PREFERENCE_KEYS` keys (``get_nodes``), as indices into the sorted node names
(little-endian uint16, zlib, base64). The
answers were computed by the code of commit 5419244, before the lookups were made faster:
a lookup may get faster, it may never answer differently. Each check runs twice
(``ring_path``): the rings through the C index and through the Python table.
Regenerate only for a deliberate, announced change of placement
(``python tests/test_placement_pinned.py --write``).
"""

from __future__ import annotations

import base64
import json
import random
import sys
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import keys as any_keys
from strategies import node_names

from hashring import EmptyRingError, HashRing, InvalidKeyError, JumpHash, Key, Maglev, Rendezvous
from hashring._placement.hashes import GOLDEN64, MASK64, mix64
from hashring._placement.scores import INT_PATH_NODES, RendezvousScores

DATA = Path(__file__).resolve().parent / "data" / "placement_pinned.json"
PREFERENCE_KEYS = 60
PREFERENCE_DEPTH = 3
SECRET = bytes(range(32))


def _keys() -> list[Key]:
    """ASCII str, non-ASCII str, bytes and hash-tagged keys, from a fixed seed."""
    rng = random.Random(14)
    keys: list[Key] = [f"key:{i}" for i in range(200)]
    keys += [
        "".join(chr(rng.randrange(0x80, 0x3000)) for _ in range(rng.randrange(1, 9)))
        for _ in range(40)
    ]
    keys += [rng.randbytes(rng.randrange(0, 20)) for _ in range(40)]
    keys += [f"user:{{{rng.randrange(10**6)}}}:cart" for _ in range(20)]
    return keys


KEYS = _keys()


def _names(count: int) -> list[str]:
    return [f"node-{i}" for i in range(count)]


def _weighted(count: int) -> dict[str, float]:
    """Unequal weights with repeats (so ties between equal weights occur too)."""
    steps = (0.25, 1.0, 1.0, 2.0, 3.5, 0.5, 7.0)
    return {name: steps[i % len(steps)] for i, name in enumerate(_names(count))}


def _jump_after_changes(count: int, removed: list[int], added: int) -> JumpHash:
    """A JumpHash after removing nodes from the middle (MementoHash) and adding some back."""
    jump = JumpHash(_names(count))
    for i in removed:
        jump.remove_node(f"node-{i}")
    for i in range(added):
        jump.add_node(f"new-{i}")
    return jump


CONFIGS: dict[str, Callable[[], Any]] = {
    "ring mmh3 10": lambda: HashRing(_names(10)),
    "ring mmh3 weighted 12": lambda: HashRing(_weighted(12), vnodes=40),
    "ring ketama 10": lambda: HashRing(_names(10), hash="ketama"),
    "ring ketama weighted 12": lambda: HashRing(_weighted(12), hash="ketama"),
    "ring ketama 300": lambda: HashRing(_names(300), hash="ketama"),
    "ring keyed 10": lambda: HashRing(_names(10), hash_key=SECRET),
    "rendezvous 1": lambda: Rendezvous(_names(1)),
    "rendezvous 4": lambda: Rendezvous(_names(4)),
    "rendezvous 8": lambda: Rendezvous(_names(8)),
    "rendezvous 16": lambda: Rendezvous(_names(16)),
    "rendezvous 32": lambda: Rendezvous(_names(32)),
    "rendezvous 100": lambda: Rendezvous(_names(100)),
    "rendezvous ketama 8": lambda: Rendezvous(_names(8), hash="ketama"),
    "rendezvous keyed 8": lambda: Rendezvous(_names(8), hash_key=SECRET),
    "rendezvous weighted 2": lambda: Rendezvous({"a": 1.0, "b": 3.0}),
    "rendezvous weighted 8": lambda: Rendezvous(_weighted(8)),
    "rendezvous weighted 32": lambda: Rendezvous(_weighted(32)),
    "rendezvous weighted 100": lambda: Rendezvous(_weighted(100)),
    "rendezvous weighted ketama 8": lambda: Rendezvous(_weighted(8), hash="ketama"),
    "maglev 10": lambda: Maglev(_names(10), table_size=4099),
    "maglev weighted 10": lambda: Maglev(_weighted(10), table_size=4099),
    "jump 1": lambda: JumpHash(_names(1)),
    "jump 10": lambda: JumpHash(_names(10)),
    "jump 100": lambda: JumpHash(_names(100)),
    "jump 1000": lambda: JumpHash(_names(1000)),
    "jump ketama 10": lambda: JumpHash(_names(10), hash="ketama"),
    "jump memento 10": lambda: _jump_after_changes(10, [3, 7, 0], 1),
    "jump memento 100": lambda: _jump_after_changes(100, [5, 50, 99, 98, 17], 2),
    "jump memento 1000": lambda: _jump_after_changes(1000, [*range(1, 400, 7), 999, 0], 5),
    "jump removed last 50": lambda: _jump_after_changes(50, [49, 48, 47], 0),
}


def _encode(indices: list[int]) -> str:
    return base64.b64encode(zlib.compress(np.array(indices, dtype="<u2").tobytes(), 9)).decode()


def _decode(text: str) -> list[int]:
    decoded: list[int] = np.frombuffer(
        zlib.decompress(base64.b64decode(text)), dtype="<u2"
    ).tolist()
    return decoded


def answers(placement: Any) -> dict[str, list[int]]:
    """Owners of KEYS and the preference lists of the first keys, as name indices."""
    index = {name: i for i, name in enumerate(sorted(placement.nodes))}
    depth = min(PREFERENCE_DEPTH, len(placement))
    preferences = [
        index[name] for key in KEYS[:PREFERENCE_KEYS] for name in placement.get_nodes(key, depth)
    ]
    return {
        "owners": [index[placement.get_node(key)] for key in KEYS],
        "preferences": preferences,
    }


def _pinned() -> dict[str, dict[str, list[int]]]:
    stored = json.loads(DATA.read_text())
    return {
        label: {part: _decode(text) for part, text in parts.items()}
        for label, parts in stored.items()
    }


PINNED = _pinned() if __name__ != "__main__" else {}


def _first_difference(expected: list[int], got: list[int]) -> str:
    for i, (e, g) in enumerate(zip(expected, got, strict=True)):
        if e != g:
            return f"answer {i} is node index {g}, pinned {e}"
    return "same answers"


def test_every_configuration_is_pinned() -> None:
    """The data file pins exactly the configurations listed here, with every answer."""
    assert set(PINNED) == set(CONFIGS)
    for parts in PINNED.values():
        assert len(parts["owners"]) == len(KEYS)


@pytest.mark.parametrize("label", sorted(CONFIGS))
def test_single_lookups_answer_as_pinned(label: str, ring_path: str) -> None:
    """get_node and get_nodes give the pinned owners and preference lists."""
    got = answers(CONFIGS[label]())
    for part in ("owners", "preferences"):
        expected = PINNED[label][part]
        assert got[part] == expected, f"{label} {part}: {_first_difference(expected, got[part])}"


@pytest.mark.parametrize("label", sorted(CONFIGS))
def test_batch_lookups_answer_as_pinned(label: str, ring_path: str) -> None:
    """get_node_many gives the pinned owners, for the whole batch and for each part of it."""
    placement = CONFIGS[label]()
    names = sorted(placement.nodes)
    expected = [names[i] for i in PINNED[label]["owners"]]
    assert placement.get_node_many(KEYS) == expected
    # Batches of one kind of key take the batch path's other branches (all-str join, bytes).
    for start, stop in ((0, 200), (200, 240), (240, 280), (280, 300)):
        assert placement.get_node_many(KEYS[start:stop]) == expected[start:stop]


@pytest.mark.parametrize("label", sorted(CONFIGS))
def test_batch_indices_answer_as_pinned(label: str, ring_path: str) -> None:
    """get_index_many gives the pinned owners as positions among the sorted node names."""
    placement = CONFIGS[label]()
    index, names = placement.get_index_many(KEYS)
    assert names == tuple(sorted(placement.nodes))
    assert index.dtype == np.intp
    assert index.tolist() == PINNED[label]["owners"]
    for start, stop in ((0, 200), (200, 240), (240, 280), (280, 300)):
        part, _ = placement.get_index_many(iter(KEYS[start:stop]))
        assert part.tolist() == PINNED[label]["owners"][start:stop]
    empty, same = placement.get_index_many([])
    assert empty.size == 0
    assert same == names


@pytest.mark.parametrize("kind", [HashRing, Maglev, Rendezvous, JumpHash])
def test_batch_indices_refuse_as_batch_lookups(kind: Any) -> None:
    """get_index_many refuses what get_node_many refuses, with the same errors."""
    placement = kind(_names(3))
    for bad in ("key", b"key", 42, ["ok", 1.5]):
        with pytest.raises(InvalidKeyError):
            placement.get_index_many(bad)
        with pytest.raises(InvalidKeyError):
            placement.get_node_many(bad)
    for name in _names(3):
        placement.remove_node(name)
    with pytest.raises(EmptyRingError):
        placement.get_index_many(["key"])
    assert placement.get_index_many([])[1] == ()


# ------------------------------------------- the fast single-key paths against numpy's


def _numpy_best(scoring: RendezvousScores, position: int) -> int:
    return int(scoring.best(np.array([position], dtype=np.uint32))[0])


scorings = st.dictionaries(
    node_names, st.sampled_from([0.25, 1.0, 1.0, 2.0, 3.5]), min_size=1, max_size=INT_PATH_NODES + 6
)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])  # the path holds for all
@given(weights=scorings, positions=st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=20))
def test_integer_scoring_is_numpys_bit_for_bit(
    rendezvous_path: str, weights: dict[str, float], positions: list[int]
) -> None:
    """The integer path's mixes are numpy's, and its best node (C's, or the Python
    integers' without the C scorer) is numpy's argmax."""
    scoring = RendezvousScores(weights)
    for position in positions:
        mixed = scoring.scores(np.array([position], dtype=np.uint32))
        if scoring.equal:
            assert scoring.mixes(position) == mixed[0].tolist()
        assert scoring.best_one(position) == _numpy_best(scoring, position)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(weights=scorings, keys=st.lists(any_keys, min_size=1, max_size=20))
def test_rendezvous_and_jump_single_lookups_match_the_batch_path(
    rendezvous_path: str, weights: dict[str, float], keys: list[Key]
) -> None:
    """get_node (C, or Python integers) answers as get_node_many (numpy), weighted or not."""
    hrw = Rendezvous(weights)
    assert [hrw.get_node(key) for key in keys] == hrw.get_node_many(keys)
    jump = JumpHash(list(weights))
    for name in list(weights)[1::3]:
        jump.remove_node(name)
    assert [jump.get_node(key) for key in keys] == jump.get_node_many(keys)


def _unmix64(value: int) -> int:
    """The inverse of mix64 (each xor-shift and product undone, last first)."""
    for shift, factor in ((31, 0x94D049BB133111EB), (27, 0xBF58476D1CE4E5B9)):
        undone = value
        for _ in range(64 // shift + 1):
            undone = value ^ (undone >> shift)
        value = undone * pow(factor, -1, 1 << 64) & MASK64
    undone = value
    for _ in range(64 // 30 + 1):
        undone = value ^ (undone >> 30)
    return undone


def _with_seed(scoring: RendezvousScores, index: int, seed: int) -> RendezvousScores:
    """``scoring`` with node ``index`` given ``seed`` in every form (numpy, integer, C)."""
    seeds = scoring.seeds.tolist()
    seeds[index] = seed
    scoring.set_seeds(seeds)
    return scoring


def test_weighted_close_calls_and_a_zero_logarithm_are_left_to_numpy(rendezvous_path: str) -> None:
    """Exact ties and a mix that makes u == 1.0 get numpy's answer, not math.log's."""
    assert all(_unmix64(mix64(v)) == v for v in (0, 1, 2**63, MASK64, 12345678901234567))
    position = 77
    spread = position * GOLDEN64 & MASK64
    tied = RendezvousScores({"a": 2.0, "b": 2.0, "c": 1.0})
    # Node "b" gets node "a"'s seed: equal weights, equal mixes, an exact tie.
    _with_seed(tied, 1, int(tied.seeds[0]))
    for p in range(position, position + 50):
        assert tied.best_one(p) == _numpy_best(tied, p) != 1
    # Node "c" gets the seed whose mix is all ones: u rounds to 1.0, numpy scores -inf.
    edge = _with_seed(
        RendezvousScores({"a": 2.0, "b": 1.0, "c": 1.0}), 2, _unmix64(MASK64) ^ spread
    )
    assert edge.mixes(position)[2] == MASK64
    with np.errstate(divide="ignore"):
        assert edge.best_one(position) == _numpy_best(edge, position) != 2


def write() -> None:
    """Compute the answers of every configuration and write the data file."""
    data = {
        label: {part: _encode(values) for part, values in answers(build()).items()}
        for label, build in CONFIGS.items()
    }
    DATA.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: python tests/test_placement_pinned.py --write")
    write()
