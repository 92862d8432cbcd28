"""ShardedRedisCache in a real Django settings configuration, against real redis-servers: the
behaviour Django's own cache tests ask of its RedisCache (tests/cache/tests.py,
RedisCacheTests), sharding, LOCATION and OPTIONS, and the errors for bad ones."""

from __future__ import annotations

import ast
import asyncio
import pickle
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from django_settings import SHARDED, configure_django, custom_key_func
from redis_servers import RedisServer

import hashring
from hashring import ConfigError, InvalidOptionError, KeyEncodingError, load_topology
from hashring._topology.clients import client_name

configure_django()

from django.core.cache import CacheKeyWarning, caches  # noqa: E402 - needs the settings
from django.core.cache.backends.base import BaseCache  # noqa: E402
from django.core.cache.backends.redis import RedisCache, RedisSerializer  # noqa: E402
from django.test import override_settings  # noqa: E402
from hashring.adapters.django import (  # noqa: E402
    ShardedRedisCache,
    ShardedRedisCacheClient,
    node_name,
)
from hashring.adapters.redis import ShardedRedis  # noqa: E402

pytestmark = pytest.mark.redis


def _urls(servers: list[RedisServer]) -> list[str]:
    return [server.url for server in servers]


def _sharded(cache: BaseCache) -> ShardedRedis:
    assert isinstance(cache, ShardedRedisCache)
    return cache._cache.get_client()


def _node_keys(servers: list[RedisServer]) -> dict[str, set[str]]:
    """Node name -> the keys its server holds (db 0)."""
    found = {}
    for server in servers:
        with redis.Redis(host=server.host, port=server.port, decode_responses=True) as client:
            found[node_name(server.url)] = set(client.scan_iter())
    return found


def _key_on_each_node(cache: BaseCache, count: int = 3) -> list[str]:
    """Cache keys (before make_key) owned by ``count`` distinct nodes."""
    client = _sharded(cache)
    chosen: dict[str, str] = {}
    for i in range(10_000):
        key = f"k{i}"
        chosen.setdefault(client.node_for(cache.make_key(key)), key)
        if len(chosen) == count:
            return list(chosen.values())
    raise AssertionError("no keys on distinct nodes")


class Unpicklable:
    def __getstate__(self) -> Any:
        raise pickle.PickleError("no")


def cached_function() -> int:
    return 42


@pytest.fixture
def django_caches(clean_redis_servers: list[RedisServer]) -> Iterator[Any]:
    """Django's ``caches`` under CACHES naming ShardedRedisCache over the three shared servers,
    in the variants Django's cache tests use (prefix, version 2, custom key functions)."""
    base = {"BACKEND": SHARDED, "LOCATION": _urls(clean_redis_servers)}
    setting = {
        "default": base,
        "prefix": {**base, "KEY_PREFIX": "cacheprefix"},
        "v2": {**base, "VERSION": 2},
        "custom_key": {**base, "KEY_FUNCTION": custom_key_func},
        "custom_key2": {**base, "KEY_FUNCTION": "django_settings.custom_key_func"},
    }
    with override_settings(CACHES=setting):
        yield caches


@pytest.fixture
def cache(django_caches: Any) -> BaseCache:
    """The default cache of ``django_caches``."""
    backend: BaseCache = django_caches["default"]
    return backend


# ------------------------------------------------------------------ Django's cache API


def test_settings_build_the_sharded_backend(cache: BaseCache) -> None:
    """CACHES naming the backend by import path gives a ShardedRedisCache whose client is a
    RedisCacheClient handing out one ShardedRedis, Django's serializer included."""
    assert isinstance(cache, ShardedRedisCache)
    assert isinstance(cache, RedisCache)
    assert cache._class is ShardedRedisCacheClient
    assert isinstance(cache._cache, ShardedRedisCacheClient)
    assert isinstance(cache._cache.get_client(), ShardedRedis)
    assert cache._cache.get_client("any", write=True) is cache._cache.get_client()
    assert isinstance(cache._cache._serializer, RedisSerializer)
    assert cache._cache._serializer.dumps(123) == 123
    assert isinstance(cache._cache._serializer.dumps(True), bytes)


def test_simple_add_and_default(cache: BaseCache) -> None:
    """set/get, add only when absent, a cached None is returned rather than the default."""
    cache.set("key", "value")
    assert cache.get("key") == "value"
    assert cache.add("addkey1", "value") is True
    assert cache.add("addkey1", "newvalue") is False
    assert cache.get("addkey1") == "value"
    cache.set("key_default_none", None)
    assert cache.get("key_default_none", default="default") is None
    assert cache.get("does_not_exist") is None
    assert cache.get("does_not_exist", "bang!") == "bang!"


def test_prefix_and_versions_keep_keys_apart(django_caches: Any) -> None:
    """KEY_PREFIX and VERSION give separate keys; version= reads across them."""
    cache, prefixed, v2 = (django_caches[a] for a in ("default", "prefix", "v2"))
    cache.set("somekey", "value")
    assert prefixed.has_key("somekey") is False
    prefixed.set("somekey", "value2")
    assert cache.get("somekey") == "value"
    assert prefixed.get("somekey") == "value2"
    v2.set("answer", 42)
    assert cache.get("answer") is None
    assert cache.get("answer", version=2) == 42
    assert v2.get("answer", version=1) is None


def test_custom_key_functions(django_caches: Any) -> None:
    """KEY_FUNCTION as a callable and as an import path make the same keys."""
    django_caches["custom_key"].set("answer1", 42)
    assert django_caches["default"].get("answer1") is None
    assert django_caches["custom_key2"].get("answer1") == 42
    assert _sharded(django_caches["default"]).get("CUSTOM--1-answer1") == b"42"


def test_get_many_set_many_delete_many_span_nodes(
    cache: BaseCache, clean_redis_servers: list[RedisServer]
) -> None:
    """get_many/set_many/delete_many over keys of every node: each key lands on its owner,
    missing keys are left out, an iterator of keys works, None values are returned."""
    keys = _key_on_each_node(cache)
    assert cache.set_many({k: k.upper() for k in keys}) == []
    held = _node_keys(clean_redis_servers)
    client = _sharded(cache)
    for key in keys:
        made = cache.make_key(key)
        assert {n for n, ks in held.items() if made in ks} == {client.node_for(made)}
    assert cache.get_many([*keys, "e"]) == {k: k.upper() for k in keys}
    assert cache.get_many(iter(keys[:2])) == {k: k.upper() for k in keys[:2]}
    assert cache.get_many([]) == {}
    cache.set_many({"x": None, "y": 1})
    assert cache.get_many(["x", "y"]) == {"x": None, "y": 1}
    cache.delete_many([*keys[:2], "nope"])
    assert cache.get_many(keys) == {keys[2]: keys[2].upper()}
    cache.delete_many([])


def test_set_many_timeouts_per_key(cache: BaseCache) -> None:
    """set_many sets each key's expiry on its own node; None persists; 0 and negative delete."""
    keys = _key_on_each_node(cache)
    client = _sharded(cache)
    cache.set_many({k: 1 for k in keys}, timeout=100)
    assert all(0 < client.ttl(cache.make_key(k)) <= 100 for k in keys)
    cache.set_many({k: 2 for k in keys}, timeout=None)
    assert all(client.ttl(cache.make_key(k)) == -1 for k in keys)
    cache.set_many({k: 3 for k in keys})  # DEFAULT_TIMEOUT: 300 s
    assert all(200 < client.ttl(cache.make_key(k)) <= 300 for k in keys)
    for timeout in (0, -5):
        cache.set_many({k: 4 for k in keys}, timeout=None)
        cache.set_many({k: 5 for k in keys}, timeout=timeout)
        assert cache.get_many(keys) == {}


def test_single_key_timeouts(cache: BaseCache) -> None:
    """set/add/touch/get_or_set with None, 0, negative, float and long timeouts."""
    client = _sharded(cache)
    cache.set("forever", "v", timeout=None)
    assert client.ttl(cache.make_key("forever")) == -1
    cache.set("zero", "v", timeout=0)
    assert cache.get("zero") is None
    cache.set("neg", "v", timeout=-1)
    assert cache.has_key("neg") is False
    cache.set("float", "v", timeout=100.2)
    assert 0 < client.ttl(cache.make_key("float")) <= 100
    cache.set("long", "v", timeout=60 * 60 * 24 * 30 + 1)
    assert client.ttl(cache.make_key("long")) > 60 * 60 * 24 * 30 - 10
    assert cache.add("zero-add", "v", timeout=0) is True
    assert cache.has_key("zero-add") is False
    assert cache.touch("forever", 50) is True
    assert 0 < client.ttl(cache.make_key("forever")) <= 50
    assert cache.touch("forever", None) is True
    assert client.ttl(cache.make_key("forever")) == -1
    assert cache.touch("absent") is False
    assert cache.touch("forever", 0) is True
    assert cache.has_key("forever") is False


def test_delete_has_key_and_in(cache: BaseCache) -> None:
    """delete says whether it deleted; has_key and `in` see cached None values."""
    cache.set_many({"key1": "spam", "key2": "eggs"})
    assert cache.delete("key1") is True
    assert cache.delete("key1") is False
    assert cache.get("key2") == "eggs"
    cache.set("null", None)
    assert cache.has_key("null") is True
    assert "null" in cache
    assert "goodbye" not in cache


def test_incr_decr(cache: BaseCache) -> None:
    """incr/decr on ints stored unpickled; ValueError when absent, ResponseError on a pickled
    value, as RedisCache."""
    cache.set("answer", 41)
    assert cache.incr("answer") == 42
    assert cache.incr("answer", 10) == 52
    assert cache.decr("answer", 10) == 42
    assert cache.get("answer") == 42
    assert _sharded(cache).get(cache.make_key("answer")) == b"42"
    with pytest.raises(ValueError, match="not found"):
        cache.incr("does_not_exist")
    with pytest.raises(ValueError, match="not found"):
        cache.decr("does_not_exist", -1)
    cache.set("null", None)
    with pytest.raises(redis.ResponseError):
        cache.incr("null")


def test_incr_version_and_decr_version(cache: BaseCache) -> None:
    """Moving a value between versions moves it between keys, possibly between nodes."""
    cache.set("answer", 42, version=2)
    assert cache.incr_version("answer", version=2) == 3
    assert cache.get("answer", version=2) is None
    assert cache.get("answer", version=3) == 42
    assert cache.decr_version("answer", version=3, delta=2) == 1
    assert cache.get("answer") == 42
    with pytest.raises(ValueError, match="not found"):
        cache.incr_version("does_not_exist")


def test_get_or_set(cache: BaseCache) -> None:
    """get_or_set stores the default (or the callable's value) once; None is cached."""
    assert cache.get_or_set("mykey", "default") == "default"
    assert cache.get_or_set("mykey", "other") == "default"
    assert cache.get_or_set("callable", cached_function) == 42
    assert cache.get_or_set("none", None) is None
    assert cache.has_key("none") is True


def test_data_types_unicode_and_binary(cache: BaseCache) -> None:
    """Every picklable type round-trips; unicode keys and values; bytes values."""
    values: dict[str, Any] = {
        "string": "this is a string",
        "int": 42,
        "big": 2**70,
        "bool": True,
        "float": 1.5,
        "list": [1, 2, 3, 4],
        "tuple": (1, 2, 3, 4),
        "dict": {"A": 1, "B": 2},
        "function": cached_function,
        "class": Unpicklable,
        "bytes": b"\x00\xff",
        "Iñtërnâtiônàlizætiøn": "Iñtërnâtiônàlizætiøn2",
    }
    for key, value in values.items():
        cache.set(key, value)
        assert cache.get(key) == value
        assert type(cache.get(key)) is type(value)
    assert cache.get_many(list(values)) == values


def test_unpicklable_value_raises(cache: BaseCache) -> None:
    """A value that cannot be pickled raises before anything is written or deleted, by
    set_many too, whatever its timeout (as RedisCache: it serialises first)."""
    with pytest.raises(pickle.PickleError):
        cache.set("unpicklable", Unpicklable())
    assert cache.has_key("unpicklable") is False
    cache.set("kept", 1)
    for timeout in (None, 0, 10):
        with pytest.raises(pickle.PickleError):
            cache.set_many({"kept": 2, "other": Unpicklable()}, timeout=timeout)
    assert cache.get_many(["kept", "other"]) == {"kept": 1}


def test_key_warnings(cache: BaseCache) -> None:
    """Keys memcached would refuse warn with CacheKeyWarning, as in every Django backend,
    and are still stored."""
    with pytest.warns(CacheKeyWarning, match="memcached"):
        cache.set("key with spaces", "v")
    with pytest.warns(CacheKeyWarning, match="longer than 250"):
        cache.set("a" * 251, "v")
    with pytest.warns(CacheKeyWarning, match="memcached"):
        assert cache.get_many(["key with spaces"]) == {"key with spaces": "v"}
    with pytest.warns(CacheKeyWarning, match="memcached"):
        cache.delete_many(["key with spaces"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CacheKeyWarning)
        assert cache.get("a" * 251) == "v"


def test_clear_flushes_every_node(cache: BaseCache, clean_redis_servers: list[RedisServer]) -> None:
    """clear() empties the database of every node, and answers True."""
    keys = _key_on_each_node(cache)
    cache.set_many({k: 1 for k in keys})
    assert all(_node_keys(clean_redis_servers).values())
    assert cache.clear() is True
    assert not any(_node_keys(clean_redis_servers).values())


def test_close_keeps_the_cache_usable(cache: BaseCache) -> None:
    """close() (sent by Django at the end of each request) keeps the connections, as
    RedisCache does: the cache works afterwards."""
    cache.set("k", 1)
    cache.close()
    assert cache.get("k") == 1
    asyncio.run(cache.aclose())
    assert cache.get("k") == 1


def test_async_twins(cache: BaseCache) -> None:
    """Every a* method gives what its sync twin gives."""

    async def run() -> list[Any]:
        keys = _key_on_each_node(cache)
        answers = [
            await cache.aset("a", 1),
            await cache.aget("a"),
            await cache.aadd("a", 2),
            await cache.aadd("b", 2, timeout=None),
            await cache.aget_or_set("c", lambda: 3),
            await cache.atouch("a", 100),
            await cache.aincr("a", 5),
            await cache.adecr("a"),
            await cache.aset_many({k: k for k in keys}, timeout=50),
            await cache.aget_many([*keys, "zz"]),
            await cache.ahas_key("b"),
            await cache.aincr_version("b"),
            await cache.adecr_version("b", version=2),
            await cache.adelete("c"),
            await cache.adelete_many(keys),
            await cache.aget_many(keys),
            await cache.aclear(),
            await cache.aget("a", "gone"),
        ]
        return [*answers, keys]

    *answers, keys = asyncio.run(run())
    assert answers == [
        None, 1, False, True, 3, True, 6, 5, [], {k: k for k in keys}, True, 2, 1, True,
        None, {}, True, "gone",
    ]  # fmt: skip


def test_values_cross_between_backends(
    cache: BaseCache, clean_redis_servers: list[RedisServer]
) -> None:
    """What ShardedRedisCache writes, Django's RedisCache on the owner node reads, and back:
    both use Django's serializer (ints unpickled, everything else pickled)."""
    client = _sharded(cache)
    by_name = {node_name(s.url): s.url for s in clean_redis_servers}
    values = {"int": 7, "str": "x", "bool": False, "nested": {"a": [1, (2.5, None)]}}
    for key, value in values.items():
        cache.set(key, value)
        owner = by_name[client.node_for(cache.make_key(key))]
        plain = RedisCache(owner, {})
        assert plain.get(key) == value
        plain.set(key, [value])
        assert cache.get(key) == [value]


def test_pool_options_reach_redis_py(clean_redis_servers: list[RedisServer]) -> None:
    """OPTIONS other than hashring's go to redis-py's connection pool of every node, and
    Django's parser_class/pool_class/serializer options work as in RedisCache."""
    options = {
        "socket_timeout": 0.5,
        "retry_on_timeout": True,
        "pool_class": "redis.BlockingConnectionPool",
        "serializer": "django.core.cache.backends.redis.RedisSerializer",
        "parser_class": "redis._parsers._RESP2Parser",
        "placement": "rendezvous",
    }
    backend = ShardedRedisCache(_urls(clean_redis_servers), {"OPTIONS": options})
    client = _sharded(backend)
    nodes = [client.client_for(f"k{i}") for i in range(60)]
    assert len({id(n) for n in nodes}) == 3  # every node's client was looked at
    for node in nodes:
        assert isinstance(node.connection_pool, redis.BlockingConnectionPool)
        assert node.connection_pool.connection_kwargs["socket_timeout"] == 0.5
        assert node.connection_pool.connection_kwargs["retry_on_timeout"] is True
        assert node.connection_pool.connection_kwargs["parser_class"].__name__ == "_RESP2Parser"
    assert "Rendezvous" in repr(client)
    backend.set("k", "v")
    assert backend.get("k") == "v"


# ------------------------------------------------------------------ LOCATION


def test_node_names_come_from_the_servers() -> None:
    """A URL list names each node host:port/db, whatever the scheme, user or password."""
    assert node_name("redis://10.0.0.1") == "10.0.0.1:6379/0"
    assert node_name("rediss://u:pw@10.0.0.1:7000/3") == "10.0.0.1:7000/3"
    assert node_name("redis://10.0.0.1:7000?db=2") == "10.0.0.1:7000/2"
    assert node_name("redis://[::1]:7000/0") == "[::1]:7000/0"
    assert node_name("redis://:p/w?x@host:1/0") == "host:1/0"
    assert node_name("unix:///tmp/r.sock") == "unix:/tmp/r.sock/0"


def test_location_forms_place_keys_alike(clean_redis_servers: list[RedisServer]) -> None:
    """A list in any order, a ',' or ';' separated str and a dict with the derived names give
    the same node for every key."""
    urls = _urls(clean_redis_servers)
    forms: list[Any] = [
        urls,
        list(reversed(urls)),
        tuple(urls),
        ",".join(urls),
        " ; ".join(urls),
        {node_name(u): u for u in urls},
    ]
    owners = []
    for form in forms:
        client = _sharded(ShardedRedisCache(form, {}))
        owners.append([client.node_for(f":1:k{i}") for i in range(200)])
    assert all(o == owners[0] for o in owners)
    assert set(owners[0]) == {node_name(u) for u in urls}


def test_location_topology_file(clean_redis_servers: list[RedisServer], tmp_path: Path) -> None:
    """A topology file path (str or Path) gives its nodes, weights and placement."""
    nodes = "".join(
        f'[nodes.n{i}]\nurl = "{s.url}"\nweight = {i + 1}\n'
        for i, s in enumerate(clean_redis_servers)
    )
    path = tmp_path / "cache.toml"
    path.write_text(f'[placement]\nalgorithm = "maglev"\n\n{nodes}')
    for location in (path, str(path)):
        backend = ShardedRedisCache(location, {"OPTIONS": {"health": True}})
        client = _sharded(backend)
        assert "Maglev" in repr(client)
        assert {client.node_for(f"k{i}") for i in range(300)} == {"n0", "n1", "n2"}
        backend.set("k", 1)
        assert backend.get("k") == 1
        # named after the file's version, as ShardedRedis.from_config names its connections
        names = {node.client_getname() for node in client.clients.values()}
        assert names == {client_name(load_topology(path).version)}
    with pytest.raises(InvalidOptionError, match="topology file"):
        ShardedRedisCache(path, {"OPTIONS": {"placement": "ring"}})
    (tmp_path / "bad.toml").write_text("[nodes.a]\nweight = 1\n")
    with pytest.raises(ConfigError, match="url is required"):
        ShardedRedisCache(str(tmp_path / "bad.toml"), {})


@pytest.mark.parametrize(
    ("location", "message"),
    [
        ([], "no Redis server"),
        ("", "not a redis"),
        (42, "got int"),
        (["http://h:1/0"], "not a redis"),
        (["redis://h:1/0", "redis://u:secret@h:1/0"], "twice"),
        ({"a": 5}, "not a redis"),
        ({1: "redis://h/0"}, "node names must be str"),
        (["redis://u:secret@h:notaport/0"], "bad port or db"),
        (["redis://u:secret@h:1/x"], "bad port or db"),
    ],
)
def test_bad_location_is_refused(location: Any, message: str) -> None:
    """A bad LOCATION raises InvalidOptionError when the backend is made, never showing a
    password."""
    with pytest.raises(InvalidOptionError, match=message) as caught:
        ShardedRedisCache(location, {})
    assert "secret" not in str(caught.value)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"placement": "nope"}, "nope"),
        ({"health": "yes"}, "health"),
        ({"heartbeat_interval": -1}, "heartbeat_interval"),
        ({"read_fallback": None}, "read_fallback"),
        ({"vnodes": 10}, "vnodes"),
        ({"failure_limit": 0}, "failure_limit"),
        ({"MAX_ENTRIES": 30}, "MAX_ENTRIES"),
    ],
)
def test_bad_options_are_refused(options: dict[str, Any], message: str) -> None:
    """A bad OPTIONS raises InvalidOptionError (a ValueError) when the backend is made, an
    option redis-py does not take included (RedisCache fails at the first command)."""
    with pytest.raises(InvalidOptionError, match=message):
        ShardedRedisCache(["redis://127.0.0.1:1/0"], {"OPTIONS": options})


def test_repr_and_errors_hide_passwords() -> None:
    """The backend's repr names nodes and URLs without their passwords."""
    backend = ShardedRedisCache(["redis://app:s3cret@127.0.0.1:1/0"], {})
    assert "s3cret" not in repr(backend)
    assert "127.0.0.1:1/0" in repr(backend)
    with pytest.raises(InvalidOptionError) as caught:
        ShardedRedisCache({"a": "redis://app:s3cret@127.0.0.1:99999/0"}, {})
    assert "s3cret" not in str(caught.value)
    assert caught.value.__cause__ is None
    assert caught.value.__context__ is None


def test_health_sends_a_dead_nodes_keys_elsewhere(redis_servers: list[RedisServer]) -> None:
    """With health on, a node that keeps refusing connections is ejected and its keys are
    served by another node; without it, the error keeps coming, as RedisCache's."""
    urls = _urls(redis_servers)
    params = {"OPTIONS": {"health": True, "failure_limit": 2, "retry_timeout": 60}}
    healthy = ShardedRedisCache(urls, params)
    plain = ShardedRedisCache(urls, {})
    key = _key_on_each_node(healthy)[0]
    owner = _sharded(healthy).node_for(healthy.make_key(key))
    for backend in (healthy, plain):  # the COMMAND table is read while every node answers
        assert backend.get(key) is None
    next(s for s in redis_servers if node_name(s.url) == owner).kill()
    for _ in range(2):
        with pytest.raises(redis.ConnectionError):
            healthy.get(key)
    healthy.set(key, "elsewhere")
    assert healthy.get(key) == "elsewhere"
    assert _sharded(healthy).node_for(healthy.make_key(key)) != owner
    for _ in range(3):
        with pytest.raises(redis.ConnectionError):
            plain.get(key)


# ------------------------------------------------------------------ one client per configuration


def test_backends_of_one_configuration_share_their_client(
    clean_redis_servers: list[RedisServer], tmp_path: Path
) -> None:
    """Backends with equal LOCATION and OPTIONS share one client (Django makes a backend per
    thread and per ASGI request); other OPTIONS, another placement object or an edited
    topology file get their own."""
    urls = _urls(clean_redis_servers)
    first = ShardedRedisCache(list(urls), {"OPTIONS": {"socket_timeout": 1}})
    again = ShardedRedisCache(list(urls), {"OPTIONS": {"socket_timeout": 1}, "VERSION": 3})
    assert again._cache is first._cache
    assert ShardedRedisCache(list(urls), {"OPTIONS": {"socket_timeout": 2}})._cache is not (
        first._cache
    )
    assert ShardedRedisCache(list(urls), {})._cache is not first._cache
    ring = hashring.HashRing({node_name(u): 1 for u in urls})
    with_ring = ShardedRedisCache(urls, {"OPTIONS": {"placement": ring}})
    assert ShardedRedisCache(urls, {"OPTIONS": {"placement": ring}})._cache is with_ring._cache
    other_ring = hashring.HashRing({node_name(u): 1 for u in urls})
    assert ShardedRedisCache(urls, {"OPTIONS": {"placement": other_ring}})._cache is not (
        with_ring._cache
    )
    path = tmp_path / "c.toml"
    path.write_text("".join(f'[nodes.n{i}]\nurl = "{u}"\n' for i, u in enumerate(urls)))
    from_file = ShardedRedisCache(path, {})
    assert ShardedRedisCache(path, {})._cache is from_file._cache
    path.write_text("".join(f'[nodes.moved{i}]\nurl = "{u}"\n' for i, u in enumerate(urls)))
    edited = ShardedRedisCache(path, {})  # told apart by size (and mtime, inode)
    assert edited._cache is not from_file._cache
    assert _sharded(edited).node_for("k").startswith("moved")


def test_threads_share_the_client_of_the_settings(django_caches: Any) -> None:
    """Django's per-thread backends of one alias use one client: what one thread writes the
    other reads, over the same ShardedRedis."""
    seen: list[Any] = []

    def other_thread() -> None:
        backend = django_caches["default"]
        seen.extend([backend, backend._cache, backend.get("from-main")])

    main = django_caches["default"]
    main.set("from-main", 1)
    worker = threading.Thread(target=other_thread)
    worker.start()
    worker.join(timeout=30)
    assert seen[0] is not main
    assert seen[1] is main._cache
    assert seen[2] == 1


def test_a_key_with_no_utf8_form_is_refused_before_sending(cache: BaseCache) -> None:
    """A key holding a lone surrogate raises KeyEncodingError (a ValueError; RedisCache's
    redis-py raises UnicodeEncodeError, also one) and nothing is written."""
    with pytest.raises(KeyEncodingError):
        cache.set("bad\ud800", 1)
    with pytest.raises(ValueError, match="surrogate"):
        cache.get_many(["fine", "bad\ud800"])
    assert cache.get_many(["fine"]) == {}


def test_the_backend_imports_only_django_hashring_and_its_redis_adapter() -> None:
    """adapters/django imports Django, the standard library, hashring and hashring's Redis
    adapter: no other framework, no network library of its own."""
    folder = Path(__file__).resolve().parent.parent / "adapters" / "django"
    allowed = {"django", "hashring", "__future__"} | set(sys.stdlib_module_names)
    for path in folder.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [("." * node.level) + (node.module or "")]
            else:
                continue
            for name in names:
                if name.startswith(".."):
                    assert name == "..redis", f"{path.name}: {name}"
                elif not name.startswith("."):
                    assert name.split(".")[0] in allowed, f"{path.name}: {name}"
                    assert name.split(".")[0] not in {"redis", "socket", "http"}, name


def test_heartbeat_ejects_and_restores_a_node_without_traffic(
    redis_servers: list[RedisServer],
) -> None:
    """With health and a heartbeat, a killed node is ejected and a restarted one restored
    by the PINGs alone; its keys go elsewhere meanwhile, then back."""
    options = {"health": True, "failure_limit": 1, "retry_timeout": 0.2, "heartbeat_interval": 0.05}
    backend = ShardedRedisCache(_urls(redis_servers), {"OPTIONS": options})
    client = _sharded(backend)
    try:
        key = _key_on_each_node(backend)[0]
        made = backend.make_key(key)
        owner = client.node_for(made)
        server = next(s for s in redis_servers if node_name(s.url) == owner)
        server.kill()
        _wait_for(lambda: client.node_for(made) != owner)
        backend.set(key, "elsewhere")
        assert backend.get(key) == "elsewhere"
        server.restart()
        _wait_for(lambda: client.node_for(made) == owner)
        assert backend.get(key) is None  # the owner is back, empty
    finally:
        client.close()  # stops the heartbeat thread of this client, kept in the registry


def _wait_for(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    """Poll ``condition`` until it holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)
