"""Django's and Flask's sharded caches following a topology file (``watch``), against real
redis-servers and files replaced by rename: a 3 -> 4 node change is taken without a restart
(writes land on the new owners, connections carry the new version's name), an invalid file
keeps the running topology, and a migration window reads keys not moved yet; Django's
end-of-request ``close()`` leaves the follower running."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
from django_settings import SHARDED, configure_django
from flask import Flask
from flask_caching import Cache
from redis_servers import RedisServer, RedisServerFactory
from waiting import wait_until

from hashring import InvalidOptionError, load_topology
from hashring._topology.clients import client_name

configure_django()

from django.core.cache import caches  # noqa: E402 - needs the settings
from django.core.signals import request_finished  # noqa: E402
from django.test import override_settings  # noqa: E402
from hashring.adapters.django import ShardedRedisCache as DjangoCache  # noqa: E402
from hashring.adapters.migrate import live_clients, migrate  # noqa: E402
from hashring.adapters.redis import ShardedRedis  # noqa: E402

pytestmark = pytest.mark.redis

INTERVAL = 0.02  # seconds between the watcher's looks in these tests
FLASK = "hashring.adapters.flask.ShardedRedisCache"


class DjangoMadePool(redis.ConnectionPool):
    """A pool class named in OPTIONS['pool_class']: node clients made Django's way use it."""


# ------------------------------------------------------------------ the two caches, one shape


@dataclass
class Opened:
    """A framework cache built from a followed topology file, as the tests drive it."""

    set: Callable[[str, Any], object]
    get: Callable[[str], Any]
    get_many: Callable[[list[str]], dict[str, Any]]
    stored: Callable[[str], str]  # the key the cache sends to Redis for a cache key
    client: ShardedRedis
    end_request: Callable[[], object]  # what the framework does when a request ends
    pool_class: type  # of every node client's connection pool


@contextmanager
def django_cache(path: Path, options: dict[str, Any]) -> Iterator[Opened]:
    """``caches["followed"]`` under CACHES naming the file, with Django's pool_class."""
    setting = {
        "BACKEND": SHARDED,
        "LOCATION": str(path),
        "OPTIONS": {**options, "pool_class": DjangoMadePool},
    }
    with override_settings(CACHES={"default": setting, "followed": setting}):
        backend = caches["followed"]
        client = backend._cache.get_client()
        try:
            yield Opened(
                backend.set,
                backend.get,
                backend.get_many,
                backend.make_key,
                client,
                lambda: request_finished.send(sender=None),
                DjangoMadePool,
            )
        finally:
            client.close()  # the process keeps it otherwise; this test's file is its own


def _get_many(cache: Cache, keys: list[str]) -> dict[str, Any]:
    return dict(zip(keys, cache.get_many(*keys), strict=True))


@contextmanager
def flask_cache(path: Path, options: dict[str, Any]) -> Iterator[Opened]:
    """Flask-Caching's Cache of an app whose CACHE_REDIS_NODES is the file."""
    app = Flask(__name__)
    config = {"CACHE_TYPE": FLASK, "CACHE_REDIS_NODES": str(path), "CACHE_OPTIONS": options}
    cache = Cache(app, config=config)
    backend = app.extensions["cache"][cache]
    with app.app_context():
        try:
            yield Opened(
                cache.set,
                cache.get,
                lambda keys: _get_many(cache, keys),
                lambda key: backend._get_prefix() + key,
                backend.client,
                lambda: None,  # Flask-Caching closes nothing at the end of a request
                redis.ConnectionPool,
            )
        finally:
            backend.close()


FRAMEWORKS = {"django": django_cache, "flask": flask_cache}
WATCH = {"watch": True, "watch_interval": INTERVAL}


# ------------------------------------------------------------------ servers and files


def topology_text(servers: list[RedisServer]) -> str:
    return "".join(f'[nodes.n{i}]\nurl = "{s.url}"\n' for i, s in enumerate(servers))


def replace(path: Path, text: str) -> None:
    """Write a sibling file and rename it over ``path``, as deploy tools do."""
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


@pytest.fixture
def servers(redis_server_factory: RedisServerFactory) -> list[RedisServer]:
    return redis_server_factory(4)


@pytest.fixture
def admin(servers: list[RedisServer]) -> dict[str, redis.Redis]:
    """Node name -> an unnamed client of its server (closed with the servers)."""
    return {f"n{i}": server.client() for i, server in enumerate(servers)}


@pytest.fixture
def path(servers: list[RedisServer], tmp_path: Path) -> Path:
    """cache.toml on the first three servers (three.toml holds the same text)."""
    three = topology_text(servers[:3])
    (tmp_path / "three.toml").write_text(three, encoding="utf-8")
    (tmp_path / "cache.toml").write_text(three, encoding="utf-8")
    return tmp_path / "cache.toml"


def versions(admin: dict[str, redis.Redis]) -> set[str]:
    """The topology versions named by hashring connections on the servers."""
    return {live.version for live in live_clients(admin)}


def holders(admin: dict[str, redis.Redis], key: str) -> list[str]:
    return [name for name, client in admin.items() if client.exists(key)]


def follower_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("hashring-topology")]


# ------------------------------------------------------------------ following a change


@pytest.mark.parametrize("framework", sorted(FRAMEWORKS))
def test_the_cache_follows_a_three_to_four_node_change(
    framework: str, servers: list[RedisServer], admin: dict[str, redis.Redis], path: Path
) -> None:
    """After the file is replaced by a four-node one, the running cache (a request's end
    in between) writes each key on its new owner, over connections named after the new
    version; the three-node version's connections are gone."""
    three = load_topology(path).version
    with FRAMEWORKS[framework](path, WATCH) as cache:
        assert cache.client.version == three
        cache.set("before", "b")
        assert versions(admin) == {three}
        cache.end_request()
        replace(path, topology_text(servers))
        four = load_topology(path)
        wait_until(lambda: cache.client.version == four.version, "the cache to switch")
        keys = [f"k{i}" for i in range(60)]
        for key in keys:
            cache.set(key, f"value of {key}")
        placement = four.placement()
        owners = {key: placement.get_node(cache.stored(key)) for key in keys}
        assert "n3" in owners.values()  # the new node took some keys
        for key in keys:
            assert holders(admin, cache.stored(key)) == [owners[key]]
        assert cache.get_many(keys) == {key: f"value of {key}" for key in keys}
        assert sorted(cache.client.clients) == ["n0", "n1", "n2", "n3"]
        names = {node.client_getname() for node in cache.client.clients.values()}
        assert names == {client_name(four.version)}
        pools = {type(node.connection_pool) for node in cache.client.clients.values()}
        assert pools == {cache.pool_class}
        # the old clients are closed by the watcher thread just after the swap
        wait_until(lambda: versions(admin) == {four.version}, "the old connections to close")
    assert follower_threads() == []


def test_django_keeps_one_following_client_across_requests_and_threads(
    servers: list[RedisServer], admin: dict[str, redis.Redis], path: Path
) -> None:
    """Django's end-of-request close() stops nothing; backends made later, by another
    thread or after the file changed, share the client that switched; its node clients
    are closed with their pools when replaced."""
    with django_cache(path, WATCH) as cache:
        first = caches["followed"]
        cache.end_request()
        first.close()  # what close_caches does, on every backend of the request's thread
        assert len(follower_threads()) == 1
        replace(path, topology_text(servers))
        four = load_topology(path).version
        wait_until(lambda: cache.client.version == four, "the cache to switch")
        seen: list[Any] = []
        worker = threading.Thread(target=lambda: seen.append(caches["followed"]._cache))
        worker.start()
        worker.join(timeout=30)
        assert seen == [first._cache]
        params = {"OPTIONS": {**WATCH, "pool_class": DjangoMadePool}}
        assert DjangoCache(str(path), params)._cache is first._cache  # the file has changed
        assert len(follower_threads()) == 1
        assert repr(first).count("redis://") == 4  # the running nodes
        first.set("k", 1)
        wait_until(lambda: versions(admin) == {four}, "the old connections to close")


# ------------------------------------------------------------------ an invalid file


@pytest.mark.parametrize("framework", sorted(FRAMEWORKS))
def test_an_invalid_file_keeps_the_running_topology(
    framework: str,
    servers: list[RedisServer],
    admin: dict[str, redis.Redis],
    path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A file that is not TOML, then a topology with a node URL the cache cannot speak, are
    logged and refused: the cache keeps its three nodes and their version."""
    caplog.set_level(logging.WARNING, logger="hashring.topology")
    three = load_topology(path).version
    with FRAMEWORKS[framework](path, WATCH) as cache:
        cache.set("k", "v")
        replace(path, "[nodes.a\n")
        wait_until(lambda: "not valid" in caplog.text, "the invalid file to be logged")
        web = '[nodes.web]\nurl = "http://127.0.0.1:1/"\n'
        replace(path, topology_text(servers) + web)
        wait_until(lambda: "was not taken" in caplog.text, "the refused topology to be logged")
        assert cache.client.version == three
        assert sorted(cache.client.clients) == ["n0", "n1", "n2"]
        assert cache.get("k") == "v"
        assert versions(admin) == {three}


# ------------------------------------------------------------------ the migration window


@pytest.mark.parametrize("framework", sorted(FRAMEWORKS))
def test_a_window_reads_keys_not_moved_yet_and_the_final_file_ends_it(
    framework: str, servers: list[RedisServer], admin: dict[str, redis.Redis], path: Path
) -> None:
    """In a window ([migration] previous), keys still on their old owners read back and a
    moving key's write stays on its old owner (no marker yet), over fallback clients named
    after the window; once migrated, the final file drops the fallback and every key reads
    from its new owner."""
    window_text = topology_text(servers) + '[migration]\nprevious = "three.toml"\n'
    old = load_topology(path)
    with FRAMEWORKS[framework](path, WATCH) as cache:
        keys = [f"k{i}" for i in range(60)]
        for key in keys:
            cache.set(key, f"old {key}")
        replace(path, window_text)
        window = load_topology(path)
        wait_until(lambda: cache.client.version == window.version, "the cache to enter")
        assert cache.client.read_fallback is not None
        before, after = old.placement(), window.placement()
        moving = [
            k for k in keys if before.get_node(cache.stored(k)) != after.get_node(cache.stored(k))
        ]
        assert moving
        assert cache.get_many(keys) == {key: f"old {key}" for key in keys}
        assert cache.get(moving[0]) == f"old {moving[0]}"
        cache.set(moving[0], "rewritten")  # gated: on its old owner until the marker
        assert holders(admin, cache.stored(moving[0])) == [before.get_node(cache.stored(moving[0]))]
        assert cache.get(moving[0]) == "rewritten"
        fallback = cache.client.read_fallback.clients.values()
        assert {node.client_getname() for node in fallback} == {client_name(window.version)}
        assert {type(node.connection_pool) for node in fallback} == {cache.pool_class}
        wait_until(lambda: versions(admin) == {window.version}, "the old connections to close")
        moved = migrate(old, window, allow_volatile=True)
        assert moved.moved_total == len(moving)
        replace(path, topology_text(servers))
        final = load_topology(path).version
        wait_until(lambda: cache.client.version == final, "the cache to leave the window")
        assert cache.client.read_fallback is None
        expected = {key: f"old {key}" for key in keys} | {moving[0]: "rewritten"}
        assert cache.get_many(keys) == expected
        wait_until(lambda: versions(admin) == {final}, "the window's connections to close")


# ------------------------------------------------------------------ refusals


@pytest.mark.parametrize(
    ("location", "options", "message"),
    [
        (["redis://127.0.0.1:1/0"], {"watch": True}, "follows a topology file"),
        ("TOPOLOGY", {"watch_interval": 1}, "watch_interval"),
        ("TOPOLOGY", {"watch": "yes"}, "True or False"),
        ("TOPOLOGY", {"watch": True, "watch_interval": 0}, "watch_interval"),
        ("TOPOLOGY", {"node_client": print}, "node_client"),
    ],
)
def test_django_refuses_watch_without_a_file_or_with_bad_values(
    location: Any, options: dict[str, Any], message: str, tmp_path: Path
) -> None:
    """watch needs a topology file LOCATION, watch_interval needs watch and a range; no
    follower thread is left running by a refusal."""
    if location == "TOPOLOGY":
        location = tmp_path / "refused.toml"
        location.write_text('[nodes.a]\nurl = "redis://127.0.0.1:1/0"\n')
    with pytest.raises(InvalidOptionError, match=message):
        DjangoCache(location, {"OPTIONS": options})
    assert follower_threads() == []


@pytest.mark.parametrize(
    ("nodes", "options", "message"),
    [
        (["redis://127.0.0.1:1/0"], {"watch": True}, "follows a topology file"),
        ("TOPOLOGY", {"watch_interval": 1}, "watch_interval"),
        ("TOPOLOGY", {"watch": 1}, "True or False"),
        ("TOPOLOGY", {"watch": True, "watch_interval": 0}, "watch_interval"),
    ],
)
def test_flask_refuses_watch_without_a_file_or_with_bad_values(
    nodes: Any, options: dict[str, Any], message: str, tmp_path: Path
) -> None:
    """As for Django: CACHE_OPTIONS' watch needs a topology file in CACHE_REDIS_NODES."""
    if nodes == "TOPOLOGY":
        nodes = tmp_path / "refused.toml"
        nodes.write_text('[nodes.a]\nurl = "redis://127.0.0.1:1/0"\n')
    config = {"CACHE_TYPE": FLASK, "CACHE_REDIS_NODES": nodes, "CACHE_OPTIONS": options}
    with pytest.raises(InvalidOptionError, match=message):
        Cache(Flask(__name__), config=config)
    assert follower_threads() == []


def test_flask_without_watch_takes_watch_false_with_urls(
    clean_redis_servers: list[RedisServer],
) -> None:
    """``watch: False`` next to a list of URLs is accepted and not handed to redis-py."""
    app = Flask(__name__)
    urls = [server.url for server in clean_redis_servers]
    config = {"CACHE_TYPE": FLASK, "CACHE_REDIS_NODES": urls, "CACHE_OPTIONS": {"watch": False}}
    cache = Cache(app, config=config)
    with app.app_context():
        cache.set("k", "v")
        assert cache.get("k") == "v"
    app.extensions["cache"][cache].close()


def test_django_without_watch_runs_a_window_file_as_from_config(
    servers: list[RedisServer], path: Path
) -> None:
    """A window file LOCATION without watch also reads a key not moved yet from its old
    owner, over connections named after the window (as ShardedRedis.from_config)."""
    old = DjangoCache(str(path), {})
    old.set_many({f"k{i}": i for i in range(40)})
    window = path.with_name("window.toml")
    window.write_text(topology_text(servers) + '[migration]\nprevious = "three.toml"\n')
    backend = DjangoCache(str(window), {})
    client = backend._cache.get_client()
    try:
        assert client.version == load_topology(window).version
        assert client.read_fallback is not None
        assert backend.get_many([f"k{i}" for i in range(40)]) == {f"k{i}": i for i in range(40)}
    finally:
        client.close()
        old._cache.get_client().close()
