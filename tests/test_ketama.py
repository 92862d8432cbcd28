"""Ketama compatibility: HashRing(hash="ketama") must place keys exactly like twemproxy.

Vectors live in tests/data/ketama/ (see the README there for provenance and how to
regenerate them). vectors.json comes from our C reference model of twemproxy's
ketama_update/ketama_dispatch/hash_md5; upstream_vectors.json holds expected values
published by libmemcached and libketama themselves.
"""

from __future__ import annotations

import json
import pathlib
from typing import Any

import pytest

from hashring import HashRing

DATA_DIR = pathlib.Path(__file__).parent / "data" / "ketama"


def _load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DATA_DIR / name).read_text(encoding="utf-8"))
    return data


VECTORS = _load("vectors.json")
POOLS: list[dict[str, Any]] = VECTORS["pools"]
UPSTREAM: dict[str, dict[str, Any]] = {
    source["id"]: source for source in _load("upstream_vectors.json")["sources"]
}


def _ring(servers: list[dict[str, Any]]) -> HashRing:
    return HashRing({s["name"]: s["weight"] for s in servers}, hash="ketama")


def _misplaced(ring: HashRing, keys: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """(key, expected, actual) for every key the ring places on the wrong server."""
    wrong = []
    for case in keys:
        actual = ring.get_node(case["key"])
        if actual != case["server"]:
            wrong.append((case["key"], case["server"], actual))
    return wrong


@pytest.mark.parametrize("pool", POOLS, ids=[p["id"] for p in POOLS])
def test_ketama_places_keys_like_twemproxy(pool: dict[str, Any]) -> None:
    """Every vector key lands on the server twemproxy's ketama+md5 continuum picks."""
    ring = _ring(pool["servers"])
    assert _misplaced(ring, pool["keys"]) == []


@pytest.mark.parametrize("pool", POOLS, ids=[p["id"] for p in POOLS])
def test_ketama_point_counts_match_twemproxy(pool: dict[str, Any]) -> None:
    """Per-node point counts follow twemproxy's float32 formula, not exact division."""
    ring = _ring(pool["servers"])
    counts = ring.point_counts()
    assert counts == {s["name"]: s["points"] for s in pool["servers"]}
    assert sum(counts.values()) == pool["total_points"]


def test_vectors_include_pools_where_float32_changes_counts() -> None:
    """The vector set keeps pools whose point counts differ from exact arithmetic."""
    affected = {p["id"] for p in POOLS if p["float32_changes_point_counts"]}
    assert {"e_float32_matters", "f_twentyfive_equal"} <= affected
    for pool in POOLS:
        differs = any(s["points"] != s["exact_rational_points"] for s in pool["servers"])
        assert differs == pool["float32_changes_point_counts"]


def test_ketama_matches_libmemcached_published_cases() -> None:
    """libmemcached's 99 published weighted-ketama/md5 key->server cases hold."""
    source = UPSTREAM["libmemcached_ketama_weighted_md5"]
    ring = _ring(source["servers"])
    assert len(source["keys"]) == 99
    assert _misplaced(ring, source["keys"]) == []


def test_ketama_matches_python_ketama_published_case() -> None:
    """python_ketama's published case: 'test' -> 127.0.0.1:11211 on a 320-point ring."""
    source = UPSTREAM["python_ketama_hashing"]
    ring = _ring(source["servers"])
    assert sum(ring.point_counts().values()) == source["total_points"]
    assert _misplaced(ring, source["keys"]) == []
