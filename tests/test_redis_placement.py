"""placement=: the one way the Redis clients say which node owns a key (no server needed:
constructing a client sends nothing)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from hashring.adapters.redis import AsyncShardedRedis, ShardedRedis
from redis_servers import free_port

from hashring import (
    ALGORITHMS,
    HashRing,
    InvalidOptionError,
    Maglev,
    load_topology,
    placement,
)

NAMES = ("n0", "n1", "n2")
KEYS = [f"user:{i}" for i in range(300)] + ["{tag}:a", "{tag}:b"]
CLIENTS = [ShardedRedis, AsyncShardedRedis]
REMOVED = {
    "weights": {"n0": 2},
    "algorithm": "maglev",
    "vnodes": 200,
    "table_size": 1031,
    "hash": "ketama",
    "hash_tags": False,
    "hash_key": b"0123456789abcdef-secret",
}


def _urls() -> dict[str, str]:
    port = free_port()  # nothing listens there: nothing is sent in these tests
    return {name: f"redis://127.0.0.1:{port}/{i}" for i, name in enumerate(NAMES)}


def _close(client: Any) -> None:
    if isinstance(client, AsyncShardedRedis):
        asyncio.run(client.aclose())
    else:
        client.close()


@pytest.mark.parametrize("cls", CLIENTS)
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_an_algorithm_name_places_like_that_placement(cls: Any, algorithm: str) -> None:
    """placement="<name>" places every key as placement(name, nodes) with hash tags on."""
    client = cls(_urls(), placement=algorithm)
    try:
        reference = placement(algorithm, NAMES, hash_tags=True)
        assert [client.node_for(k) for k in KEYS] == reference.get_node_many(KEYS)
        assert client.node_for("{tag}:a") == client.node_for("{tag}:b")
    finally:
        _close(client)


@pytest.mark.parametrize("cls", CLIENTS)
def test_default_is_a_ring_with_hash_tags(cls: Any) -> None:
    """Without placement= the client places keys as a default HashRing over its nodes."""
    client = cls(_urls())
    try:
        assert isinstance(client.placement, HashRing)
        expected = HashRing(dict.fromkeys(NAMES, 1)).get_node_many(KEYS)
        assert [client.node_for(k) for k in KEYS] == expected
    finally:
        _close(client)


@pytest.mark.parametrize("cls", CLIENTS)
def test_a_ready_placement_is_used_as_is(cls: Any) -> None:
    """A Placement instance (weights, options, a hash key) is the one the client routes with."""
    ready = Maglev({"n0": 3, "n1": 1, "n2": 1}, table_size=1031, hash_key=REMOVED["hash_key"])
    expected = ready.get_node_many(KEYS)
    client = cls(_urls(), placement=ready)
    try:
        assert client.placement is ready
        assert [client.node_for(k) for k in KEYS] == expected
    finally:
        _close(client)


@pytest.mark.parametrize("cls", CLIENTS)
def test_placement_nodes_must_match_the_clients_nodes(cls: Any) -> None:
    """A placement over other node names, or something that is not a placement, is refused
    with InvalidOptionError naming the names that differ."""
    with pytest.raises(InvalidOptionError, match="'n2'"):
        cls(_urls(), placement=HashRing({"n0": 1, "n1": 1}))
    with pytest.raises(InvalidOptionError, match="'extra'"):
        cls(_urls(), placement=HashRing({**dict.fromkeys(NAMES, 1), "extra": 1}))
    with pytest.raises(InvalidOptionError, match="algorithm name"):
        cls(_urls(), placement=42)
    with pytest.raises(InvalidOptionError, match="ringg"):
        cls(_urls(), placement="ringg")


@pytest.mark.parametrize("cls", CLIENTS)
@pytest.mark.parametrize("option", sorted(REMOVED))
def test_removed_placement_options_name_placement(cls: Any, option: str) -> None:
    """weights=, algorithm=, vnodes=, table_size=, hash=, hash_tags=, hash_key= are refused
    before redis-py sees them, with an InvalidOptionError naming the option and placement=
    (and never the value: a hash key is a secret)."""
    with pytest.raises(InvalidOptionError, match="placement=") as caught:
        cls(_urls(), **{option: REMOVED[option]})
    assert option in str(caught.value)
    assert "0123456789abcdef" not in str(caught.value)


def test_from_config_passes_the_topology_placement(tmp_path: Path) -> None:
    """from_config routes with load_topology(path).placement(): its algorithm and weights."""
    path = tmp_path / "topology.toml"
    urls = _urls()
    path.write_text(
        '[placement]\nalgorithm = "maglev"\ntable_size = 1031\n\n'
        + "".join(
            f'[nodes.{name}]\nurl = "{url}"\nweight = {i + 1}\n\n'
            for i, (name, url) in enumerate(urls.items())
        )
    )
    expected = load_topology(path).placement().get_node_many(KEYS)
    for cls in CLIENTS:
        client = cls.from_config(path)
        try:
            assert isinstance(client.placement, Maglev)
            assert client.placement.nodes == {"n0": 1.0, "n1": 2.0, "n2": 3.0}
            assert [client.node_for(k) for k in KEYS] == expected
        finally:
            _close(client)


def test_one_placement_object_serves_one_client() -> None:
    """A client takes its placement over (add_node changes it): a second live client may not
    hold the same object, whichever client kind; once the first is gone it may."""
    import gc

    from hashring.adapters.http import HttpRouter

    ring = HashRing(NAMES)
    first = ShardedRedis(_urls(), placement=ring)
    try:
        for make in (
            lambda: ShardedRedis(_urls(), placement=ring),
            lambda: AsyncShardedRedis(_urls(), placement=ring),
            lambda: HttpRouter({n: f"http://127.0.0.1:1/{n}" for n in NAMES}, placement=ring),
        ):
            with pytest.raises(InvalidOptionError, match="already held by a ShardedRedis"):
                make()
        assert set(ring.nodes) == set(NAMES)  # the refused constructions changed nothing
    finally:
        _close(first)
    del first
    gc.collect()
    second = ShardedRedis(_urls(), placement=ring)
    try:
        assert second.placement is ring
    finally:
        _close(second)
