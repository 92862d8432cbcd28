"""Seeded stress of membership changes, and lookups racing with them in threads."""

from __future__ import annotations

import random
import threading
from typing import Any

import pytest
from strategies import crc32

from hashring import HashRing, HashRingError, Key

SCHEMES: list[dict[str, Any]] = [
    {"hash": "mmh3", "vnodes": 16},
    {"hash": "ketama", "vnodes": 16},
    {"hash": crc32, "vnodes": 5},
]


@pytest.mark.parametrize("options", SCHEMES, ids=["mmh3", "ketama", "custom"])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_seeded_stress_keeps_every_invariant(options: dict[str, Any], seed: int) -> None:
    """Random adds, removes, reweights and bad calls; _check() holds after each one."""
    rng = random.Random(seed)
    ring = HashRing(**options)
    model: dict[str, float] = {}
    keys: list[Key] = [f"k{i}" for i in range(500)]
    for _ in range(250):
        action = rng.random()
        name = f"node-{rng.randrange(40)}"
        weight = rng.choice([0.5, 1, 1, 2, 3])
        if action < 0.45:
            if name in model:
                with pytest.raises(HashRingError):
                    ring.add_node(name, weight)
            else:
                ring.add_node(name, weight)
                model[name] = weight
        elif action < 0.75:
            if name in model:
                ring.remove_node(name)
                del model[name]
            else:
                with pytest.raises(HashRingError):
                    ring.remove_node(name)
        elif model:
            target = rng.choice(sorted(model))
            ring.set_weight(target, weight)
            model[target] = weight
        ring._check()
        assert dict(ring.nodes) == model
        if model:
            assert set(ring.get_node_many(keys[:50])) <= set(model)
    if model:
        fresh = HashRing(model, **options)
        assert ring.get_node_many(keys) == fresh.get_node_many(keys)


def test_lookups_never_see_a_half_built_ring() -> None:
    """Readers racing a writer see one whole topology per call, never an error."""
    base = {f"node-{i}": 1.0 for i in range(20)}
    grown = {**base, "node-new": 2.0}
    keys: list[Key] = [f"user:{i}" for i in range(2000)]
    expected_base = HashRing(base).get_node_many(keys)
    expected_grown = HashRing(grown).get_node_many(keys)
    assert expected_base != expected_grown
    per_key = [set(pair) for pair in zip(expected_base, expected_grown, strict=True)]
    prefs = {HashRing(t).get_nodes(keys[7], 3)[0] for t in (base, grown)}

    ring = HashRing(base)
    stop = threading.Event()
    errors: list[BaseException] = []
    reads = [0]
    swaps = [0]

    def reader() -> None:
        try:
            while not stop.is_set():
                batch = ring.get_node_many(keys)
                assert batch in (expected_base, expected_grown)
                for i in range(0, len(keys), 97):
                    assert ring.get_node(keys[i]) in per_key[i]
                assert ring.get_nodes(keys[7], 3)[0] in prefs
                reads[0] += 1
        except BaseException as exc:  # report any failure to the main thread
            errors.append(exc)

    def writer() -> None:
        try:
            for _ in range(150):
                ring.add_node("node-new", 2.0)
                ring.remove_node("node-new")
                swaps[0] += 1
        except BaseException as exc:
            errors.append(exc)
        finally:
            stop.set()

    threads = [threading.Thread(target=reader) for _ in range(3)]
    threads.append(threading.Thread(target=writer))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    assert swaps[0] == 150
    assert reads[0] > 10
    ring._check()


def test_concurrent_writers_serialise() -> None:
    """Many threads adding and removing distinct nodes end in a consistent ring."""
    ring = HashRing(["seed"])

    def churn(worker: int) -> None:
        for i in range(30):
            ring.add_node(f"w{worker}-{i}")
            if i % 3 == 0:
                ring.remove_node(f"w{worker}-{i}")

    threads = [threading.Thread(target=churn, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    expected = {"seed"} | {f"w{w}-{i}" for w in range(4) for i in range(30) if i % 3}
    assert set(ring.nodes) == expected
    ring._check()
    assert ring.get_node_many(["a", "b"]) == HashRing(sorted(expected)).get_node_many(["a", "b"])
