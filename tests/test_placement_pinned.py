"""Placement pinned: a few hundred answers of every algorithm, stored before any speed work.

``tests/data/placement_pinned.json`` holds, for each configuration below, the owner of each
of :data:`KEYS` (``get_node``) and the first three nodes of the preference lists of the first
:data:`PREFERENCE_KEYS` keys (``get_nodes``), as indices into the sorted node names
(little-endian uint16, zlib, base64). The
answers were computed by the code of commit 5419244, before the lookups were made faster:
a lookup may get faster, it may never answer differently. Regenerate only for a deliberate,
announced change of placement (``python tests/test_placement_pinned.py --write``).
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

from hashring import HashRing, JumpHash, Key, Maglev, Rendezvous

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
def test_single_lookups_answer_as_pinned(label: str) -> None:
    """get_node and get_nodes give the pinned owners and preference lists."""
    got = answers(CONFIGS[label]())
    for part in ("owners", "preferences"):
        expected = PINNED[label][part]
        assert got[part] == expected, f"{label} {part}: {_first_difference(expected, got[part])}"


@pytest.mark.parametrize("label", sorted(CONFIGS))
def test_batch_lookups_answer_as_pinned(label: str) -> None:
    """get_node_many gives the pinned owners, for the whole batch and for each part of it."""
    placement = CONFIGS[label]()
    names = sorted(placement.nodes)
    expected = [names[i] for i in PINNED[label]["owners"]]
    assert placement.get_node_many(KEYS) == expected
    # Batches of one kind of key take the batch path's other branches (all-str join, bytes).
    for start, stop in ((0, 200), (200, 240), (240, 280), (280, 300)):
        assert placement.get_node_many(KEYS[start:stop]) == expected[start:stop]


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
