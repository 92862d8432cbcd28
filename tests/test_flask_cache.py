"""ShardedRedisCache in a real Flask app with Flask-Caching, against real redis-servers: the
same answers, stored bytes and final state as Flask-Caching's RedisCache on one server."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from flask import Flask
from flask_caching import Cache
from hashring.adapters.flask import ShardedRedisCache
from hashring.adapters.redis import ShardedRedis
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from redis_servers import RedisServer, RedisServerFactory, free_port

from hashring import ConfigError, InvalidOptionError, Maglev

pytestmark = pytest.mark.redis

BACKEND = "hashring.adapters.flask.ShardedRedisCache"
SECRET = "s3cret-pw"


def make_app(config: dict[str, Any]) -> tuple[Flask, Cache]:
    """A Flask app and its Cache built by Flask-Caching from ``config``."""
    app = Flask(__name__)
    return app, Cache(app, config=config)


def backend(app: Flask, cache: Cache) -> Any:
    """The backend object Flask-Caching built for ``cache``."""
    return app.extensions["cache"][cache]


@pytest.fixture
def urls(clean_redis_servers: list[RedisServer]) -> list[str]:
    return [server.url for server in clean_redis_servers]


@pytest.fixture
def sharded_app(urls: list[str]) -> Iterator[tuple[Flask, Cache, ShardedRedisCache]]:
    app, cache = make_app({"CACHE_TYPE": BACKEND, "CACHE_REDIS_NODES": urls})
    sharded = backend(app, cache)
    yield app, cache, sharded
    sharded.close()


def holders(servers: list[RedisServer], key: str) -> list[str]:
    """The URLs of the servers holding ``key`` (db 0)."""
    found = []
    for server in servers:
        with redis.Redis(host=server.host, port=server.port) as raw:
            if raw.exists(key):
                found.append(server.url)
    return found


# ------------------------------------------------------------------ the Flask app


def test_cached_view_is_served_from_its_owner_node(
    clean_redis_servers: list[RedisServer],
    sharded_app: tuple[Flask, Cache, ShardedRedisCache],
) -> None:
    """A @cache.cached view is computed once, stored on the node owning its key only."""
    app, cache, sharded = sharded_app
    calls: Counter[str] = Counter()

    @app.route("/hello/<name>")
    @cache.cached(timeout=100)
    def hello(name: str) -> str:
        calls[name] += 1
        return f"hello {name} #{calls[name]}"

    client = app.test_client()
    names = [f"user-{i}" for i in range(24)]
    for name in names:
        first = client.get(f"/hello/{name}").get_data(as_text=True)
        assert client.get(f"/hello/{name}").get_data(as_text=True) == first == f"hello {name} #1"
    assert set(calls.values()) == {1}
    owners = set()
    for name in names:
        key = f"flask_cache_view//hello/{name}"
        owner = sharded.client.node_for(key)
        assert holders(clean_redis_servers, key) == [f"redis://{owner}"]
        owners.add(owner)
    assert len(owners) == 3  # 24 keys over 3 nodes: every node holds some
    with app.app_context():
        assert cache.delete("view//hello/user-0")
    assert client.get("/hello/user-0").get_data(as_text=True) == "hello user-0 #2"


def test_memoized_function_through_the_test_client(
    sharded_app: tuple[Flask, Cache, ShardedRedisCache],
) -> None:
    """@cache.memoize caches per argument, and delete_memoized forgets one or every result."""
    app, cache, sharded = sharded_app
    calls: Counter[int] = Counter()

    @cache.memoize(timeout=100)
    def square(n: int) -> int:
        calls[n] += 1
        return n * n

    @app.route("/square/<int:n>")
    def view(n: int) -> str:
        return str(square(n))

    client = app.test_client()
    for _ in range(2):
        assert [client.get(f"/square/{n}").get_data(as_text=True) for n in range(12)] == [
            str(n * n) for n in range(12)
        ]
    assert calls == Counter(dict.fromkeys(range(12), 1))
    with app.app_context():
        cache.delete_memoized(square, 3)
    client.get("/square/3")
    client.get("/square/4")
    assert (calls[3], calls[4]) == (2, 1)
    with app.app_context():
        cache.delete_memoized(square)  # a new version: every result is stale
    client.get("/square/4")
    assert calls[4] == 2
    assert sharded.client.dbsize() > 12  # results and version keys, over the nodes


def test_clear_deletes_the_prefixed_keys_of_every_node_only(
    sharded_app: tuple[Flask, Cache, ShardedRedisCache],
) -> None:
    """clear() with a key prefix deletes that prefix's keys on every node, nothing else."""
    app, cache, sharded = sharded_app
    with app.app_context():
        assert cache.set_many({f"k{i}": i for i in range(30)}) == [f"k{i}" for i in range(30)]
    foreign = [f"other:{i}" for i in range(10)]
    sharded.client.mset(dict.fromkeys(foreign, b"x"))
    assert sum(1 for c in sharded.client.clients.values() if c.dbsize()) == 3
    with app.app_context():
        assert cache.clear() is True
        assert cache.get_many(*[f"k{i}" for i in range(30)]) == [None] * 30
    assert sorted(sharded.client.keys("*")) == sorted(k.encode() for k in foreign)


def test_clear_without_a_prefix_flushes_every_node(urls: list[str]) -> None:
    """clear() with no key prefix runs FLUSHDB on every node, as RedisCache on its one."""
    app, cache = make_app(
        {"CACHE_TYPE": BACKEND, "CACHE_REDIS_NODES": urls, "CACHE_KEY_PREFIX": ""}
    )
    sharded = backend(app, cache)
    try:
        sharded.client.mset({f"x{i}": i for i in range(30)})
        with app.app_context():
            assert cache.clear() is True
        assert sharded.client.dbsize() == 0
    finally:
        sharded.close()


def test_with_health_a_dead_node_is_skipped_and_the_app_keeps_caching(
    redis_server_factory: RedisServerFactory,
) -> None:
    """CACHE_OPTIONS health=True: after failure_limit errors a killed node's keys are cached
    on the next node of their preference list, and the view keeps being served from cache."""
    servers = redis_server_factory(3)
    app, cache = make_app(
        {
            "CACHE_TYPE": BACKEND,
            "CACHE_REDIS_NODES": {f"n{i}": server.url for i, server in enumerate(servers)},
            "CACHE_OPTIONS": {
                "health": True,
                "failure_limit": 1,
                "retry_timeout": 300,
                "socket_connect_timeout": 5,
            },
        }
    )
    sharded = backend(app, cache)
    calls: Counter[str] = Counter()

    @app.route("/page/<name>")
    @cache.cached(timeout=100)
    def page(name: str) -> str:
        calls[name] += 1
        return f"{name} #{calls[name]}"

    try:
        client = app.test_client()
        key = "view//page/home"
        victim, fallback = sharded.client.placement.get_nodes(f"flask_cache_{key}", 2)
        assert client.get("/page/home").text == "home #1"
        servers[int(victim[1:])].kill()
        with app.app_context(), pytest.raises(redis.ConnectionError):
            cache.get(key)  # the one failure that ejects the node
        assert sharded.client.node_for(f"flask_cache_{key}") == fallback
        assert client.get("/page/home").text == "home #2"  # a miss on the fallback node...
        assert client.get("/page/home").text == "home #2"  # ... then cached there
        assert sharded.client.stats()[victim]["ejected"] is True
    finally:
        sharded.close()


# ------------------------------------------------------------------ one format


VALUES: list[Any] = [
    0,
    -7,
    2**63,
    True,
    1.5,
    "häj",
    b"\x00\xff",
    None,
    [1, {"a": (2, None)}],
    {"nested": [b"x", 3.0]},
]


def test_values_written_by_one_backend_read_through_the_other(
    clean_redis_servers: list[RedisServer],
) -> None:
    """RedisCache and ShardedRedisCache store the same bytes, so each reads the other's."""
    server = clean_redis_servers[0]
    plain_app, plain_cache = make_app({"CACHE_TYPE": "RedisCache", "CACHE_REDIS_URL": server.url})
    app, cache = make_app({"CACHE_TYPE": BACKEND, "CACHE_REDIS_NODES": [server.url]})
    plain, sharded = backend(plain_app, plain_cache), backend(app, cache)
    try:
        for i, value in enumerate(VALUES):
            plain.set(f"p{i}", value)
            sharded.set(f"s{i}", value)
        raw = server.client()
        for i, value in enumerate(VALUES):
            assert sharded.get(f"p{i}") == value == plain.get(f"s{i}")
            assert raw.get(f"flask_cache_p{i}") == raw.get(f"flask_cache_s{i}")
        assert raw.get("flask_cache_p0") == b"0"  # ints as ASCII, for INCRBY
        assert raw.get("flask_cache_p7").startswith(b"!")  # the rest pickled behind a "!"
    finally:
        sharded.close()
        plain._write_client.close()


# ------------------------------------------------------------------ differential run

_text = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=6)
_scalars = st.one_of(
    st.integers(-(2**70), 2**70),
    st.booleans(),
    st.floats(allow_nan=False),
    st.binary(max_size=12),
    _text,
    st.none(),
)
_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.tuples(inner, inner),
        st.dictionaries(_text, inner, max_size=3),
    ),
    max_leaves=5,
)
_timeouts = st.one_of(
    st.sampled_from([None, 0, -1, -300, dt.timedelta(seconds=900)]),
    st.integers(100, 10**7),  # long enough never to expire during the run
    st.integers(-(10**6), -1),
)
_keys = st.one_of(
    _text,  # the last one below has no UTF-8 form: a ValueError in both backends
    st.sampled_from(["ü", "日本語", "{tag}a", "{tag}b", "a b", "k1", "k2", "k3", "\udcff"]),
)
_deltas = st.one_of(st.integers(-1000, 1000), st.sampled_from([2**63 - 1, -(2**63)]))


@st.composite
def programs(draw: st.DrawFn) -> tuple[str, int, list[tuple[Any, ...]]]:
    """A key prefix, a default timeout and a sequence of cache calls over a few keys."""
    universe = draw(st.lists(_keys, min_size=2, max_size=5, unique=True))
    key = st.sampled_from(universe)
    some_keys = st.lists(key, max_size=4)
    call = st.one_of(
        st.tuples(st.just("get"), key),
        st.tuples(st.just("has"), key),
        st.tuples(st.just("get_many"), some_keys),
        st.tuples(st.just("get_dict"), some_keys),
        st.tuples(st.just("set"), key, _values, _timeouts),
        st.tuples(st.just("add"), key, _values, _timeouts),
        st.tuples(st.just("set_many"), st.dictionaries(key, _values, max_size=4), _timeouts),
        st.tuples(st.just("delete"), key),
        st.tuples(st.just("delete_many"), some_keys),
        st.tuples(st.just("unlink"), some_keys),
        st.tuples(st.sampled_from(["inc", "dec"]), key, _deltas),
        st.tuples(st.just("clear")),
    )
    prefix = draw(st.sampled_from(["", "flask_cache_", "app:", "ü{grp}:", "p*"]))
    default_timeout = draw(st.sampled_from([0, 300, 3600]))
    return prefix, default_timeout, draw(st.lists(call, min_size=10, max_size=30))


def _run(cache: Any, call: tuple[Any, ...]) -> tuple[str, Any]:
    """One call's outcome: its answer, or its error (class and message for redis errors;
    a str key with no UTF-8 form is a ValueError in both, worded differently)."""
    name, *args = call
    try:
        if name in ("get_many", "get_dict", "delete_many", "unlink"):
            return "ok", getattr(cache, name)(*args[0])
        if name == "set_many":
            return "ok", cache.set_many(args[0], timeout=args[1])
        return "ok", getattr(cache, name)(*args)
    except redis.RedisError as exc:
        return "error", (type(exc).__name__, str(exc))
    except ValueError:  # UnicodeEncodeError (redis-py), KeyEncodingError (hashring)
        return "error", ("ValueError",)


def _raw_state(clients: list[redis.Redis]) -> dict[bytes, tuple[bytes | None, str]]:
    """Every key of these databases: its stored bytes and whether it expires."""
    state: dict[bytes, tuple[bytes | None, str]] = {}
    for client in clients:
        for key in client.keys("*"):
            assert key not in state, f"{key!r} is on two nodes"
            ttl = client.ttl(key)
            state[key] = (client.get(key), "forever" if ttl == -1 else "expires")
    return state


DIFFERENTIAL = settings(
    max_examples=40,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


class CachePairs:
    """RedisCache on db 1 of the first server and ShardedRedisCache on db 0 of all three,
    built by Flask-Caching once per (key prefix, default timeout), closed at teardown."""

    def __init__(self, servers: list[RedisServer]) -> None:
        self.servers = servers
        self.built: dict[tuple[str, int], tuple[Any, ShardedRedisCache]] = {}
        one = servers[0]
        self.raw_plain = redis.Redis(host=one.host, port=one.port, db=1)
        self.raw_nodes = [redis.Redis(host=s.host, port=s.port) for s in servers]

    def get(self, prefix: str, default_timeout: int) -> tuple[Any, ShardedRedisCache]:
        if (prefix, default_timeout) not in self.built:
            common = {"CACHE_KEY_PREFIX": prefix, "CACHE_DEFAULT_TIMEOUT": default_timeout}
            plain_url = f"redis://127.0.0.1:{self.servers[0].port}/1"
            plain_app, plain_cache = make_app(
                {**common, "CACHE_TYPE": "RedisCache", "CACHE_REDIS_URL": plain_url}
            )
            urls = [server.url for server in self.servers]
            app, cache = make_app({**common, "CACHE_TYPE": BACKEND, "CACHE_REDIS_NODES": urls})
            self.built[prefix, default_timeout] = (
                backend(plain_app, plain_cache),
                backend(app, cache),
            )
        return self.built[prefix, default_timeout]

    def close(self) -> None:
        for plain, sharded in self.built.values():
            plain._write_client.close()
            sharded.close()
        for raw in [self.raw_plain, *self.raw_nodes]:
            raw.close()


@pytest.fixture
def cache_pairs(clean_redis_servers: list[RedisServer]) -> Iterator[CachePairs]:
    pairs = CachePairs(clean_redis_servers)
    yield pairs
    pairs.close()


@seed(20261129)
@DIFFERENTIAL
@given(program=programs())
def test_same_calls_same_answers_as_redis_cache(
    cache_pairs: CachePairs, program: tuple[str, int, list[tuple[Any, ...]]]
) -> None:
    """A sequence of cache calls through RedisCache on one server and ShardedRedisCache on
    three gives the same answers, stored bytes, expiries and final readable state."""
    prefix, default_timeout, calls = program
    for server in cache_pairs.servers:
        server.flushall()
    plain, sharded = cache_pairs.get(prefix, default_timeout)
    for foreign in ("other:keep", "pother"):  # outside the prefix (unless it is empty)
        cache_pairs.raw_plain.set(foreign, b"x")
        sharded.client.set(foreign, b"x")
    for call in calls:
        assert _run(sharded, call) == _run(plain, call), call
    universe = {k for call in calls for k in _keys_of(call)}
    for key in sorted(universe):
        for name in ("get", "has"):
            assert _run(sharded, (name, key)) == _run(plain, (name, key)), (name, key)
    on_nodes = _raw_state(cache_pairs.raw_nodes)
    assert on_nodes == _raw_state([cache_pairs.raw_plain])
    for key in on_nodes:  # each key on its owner node only (_raw_state checks "only")
        assert sharded.client.clients[sharded.client.node_for(key)].exists(key)


def _keys_of(call: tuple[Any, ...]) -> list[Any]:
    name, *args = call
    if name in ("get_many", "get_dict", "delete_many", "unlink", "set_many"):
        return list(args[0])
    return [args[0]] if args else []


# ------------------------------------------------------------------ configuration


def test_cache_options_reach_the_client_and_redis_py(urls: list[str]) -> None:
    """CACHE_OPTIONS give ShardedRedis's keywords (placement, health) and redis-py's."""
    app, cache = make_app(
        {
            "CACHE_TYPE": BACKEND,
            "CACHE_REDIS_NODES": {"a": urls[0], "b": urls[1], "c": urls[2]},
            "CACHE_OPTIONS": {"placement": "maglev", "health": True, "socket_timeout": 7},
            "CACHE_REDIS_PASSWORD": SECRET,
            "CACHE_DEFAULT_TIMEOUT": 123,
        }
    )
    sharded = backend(app, cache)
    try:
        assert isinstance(sharded.client.placement, Maglev)
        assert set(sharded.client.placement.nodes) == {"a", "b", "c"}
        assert sharded.client._health.enabled
        kwargs = sharded.client.clients["b"].get_connection_kwargs()
        assert (kwargs["socket_timeout"], kwargs["password"]) == (7, SECRET)
        assert sharded.default_timeout == 123
        assert SECRET not in repr(sharded)
    finally:
        sharded.close()


def test_a_list_names_nodes_by_address(urls: list[str]) -> None:
    """A list of URLs names each node by its address, whatever the order and password."""
    secret_urls = [url.replace("redis://", f"redis://:{SECRET}@") for url in urls]
    names = {url.removeprefix("redis://") for url in urls}
    keys = [f"key-{i}" for i in range(50)]
    owners = []
    for given_urls in (urls, list(reversed(urls)), secret_urls):
        cache = ShardedRedisCache.factory(
            Flask(__name__), {"CACHE_REDIS_NODES": given_urls}, [], {"default_timeout": 300}
        )
        try:
            assert set(cache.client.placement.nodes) == names
            owners.append([cache.client.node_for(key) for key in keys])
            assert SECRET not in repr(cache)
        finally:
            cache.close()
    assert owners[0] == owners[1] == owners[2]
    assert len(set(owners[0])) == 3


def test_topology_file_gives_nodes_and_placement(urls: list[str], tmp_path: Path) -> None:
    """CACHE_REDIS_NODES may be a topology file's path: its nodes, weights and algorithm."""
    nodes = "".join(
        f'[nodes.n{i}]\nurl = "{url}"\nweight = {i + 1}\n' for i, url in enumerate(urls)
    )
    path = tmp_path / "topology.toml"
    path.write_text(f'[placement]\nalgorithm = "rendezvous"\n\n{nodes}', encoding="utf-8")
    for where in (str(path), path):
        app, cache = make_app({"CACHE_TYPE": BACKEND, "CACHE_REDIS_NODES": where})
        sharded = backend(app, cache)
        try:
            assert dict(sharded.client.placement.nodes) == {"n0": 1, "n1": 2, "n2": 3}
            assert type(sharded.client.placement).__name__ == "Rendezvous"
            with app.app_context():
                assert cache.set("k", [1]) is True
                assert cache.get("k") == [1]
        finally:
            sharded.close()
    path.write_text("[placement]\nalgorithm = 'nope'\n", encoding="utf-8")
    with pytest.raises(ConfigError):
        make_app({"CACHE_TYPE": BACKEND, "CACHE_REDIS_NODES": str(path)})


BAD_CONFIGS: list[tuple[dict[str, Any], str]] = [
    ({}, "CACHE_REDIS_NODES is required"),
    ({"CACHE_REDIS_NODES": f"redis://:{SECRET}@127.0.0.1:1/0"}, "is one URL"),
    ({"CACHE_REDIS_NODES": 42}, "must be a list of URLs"),
    ({"CACHE_REDIS_NODES": []}, "is empty"),
    ({"CACHE_REDIS_NODES": {}}, "is empty"),
    ({"CACHE_REDIS_NODES": [b"redis://h/0"]}, "holds URLs (str)"),
    (
        {"CACHE_REDIS_NODES": [f"redis://:{SECRET}@h:1/0", f"redis://:{SECRET}x@h:1/0"]},
        "both name the server 'h:1/0'",
    ),
    ({"CACHE_REDIS_NODES": {"a": f"http://:{SECRET}@h:1/"}}, "is neither a"),
    ({"CACHE_REDIS_NODES": ["redis://h/0"], "CACHE_REDIS_URL": "redis://h/0"}, "CACHE_REDIS_URL"),
    ({"CACHE_REDIS_NODES": ["redis://h/0"], "CACHE_REDIS_HOST": "h"}, "CACHE_REDIS_HOST"),
    ({"CACHE_REDIS_NODES": ["redis://h/0"], "CACHE_ARGS": ["h"]}, "CACHE_ARGS"),
    (
        {"CACHE_REDIS_NODES": ["redis://h/0"], "CACHE_OPTIONS": {"decode_responses": True}},
        "decode_responses",
    ),
    ({"CACHE_REDIS_NODES": ["redis://h/0"], "CACHE_OPTIONS": {"port": 1}}, "'port'"),
    (
        {
            "CACHE_REDIS_NODES": ["redis://h/0"],
            "CACHE_REDIS_PASSWORD": SECRET,
            "CACHE_OPTIONS": {"password": SECRET},
        },
        "given twice",
    ),
    (
        {"CACHE_REDIS_NODES": ["redis://h/0"], "CACHE_OPTIONS": {"vnodes": 10}},
        "placement=",
    ),
    (
        {"CACHE_REDIS_NODES": ["redis://h/0"], "CACHE_OPTIONS": {"placement": "nope"}},
        "nope",
    ),
    ({"CACHE_REDIS_NODES": "topology.toml", "CACHE_OPTIONS": {"placement": "ring"}}, "drop one"),
]


@pytest.mark.parametrize(("config", "message"), BAD_CONFIGS)
def test_bad_config_is_a_typed_error_without_secrets(config: dict[str, Any], message: str) -> None:
    """A bad configuration raises InvalidOptionError naming the problem, never a password."""
    with pytest.raises(InvalidOptionError) as raised:
        make_app({"CACHE_TYPE": BACKEND, **config})
    assert message in str(raised.value)
    assert SECRET not in str(raised.value)


def test_the_constructor_takes_a_sharded_client_that_returns_bytes(urls: list[str]) -> None:
    """ShardedRedisCache(client) refuses a plain redis.Redis and a decoding client."""
    with pytest.raises(InvalidOptionError, match="takes a ShardedRedis"):
        ShardedRedisCache(redis.Redis.from_url(urls[0]))  # type: ignore[arg-type]
    with (
        ShardedRedis({"a": urls[0]}, decode_responses=True) as decoding,
        pytest.raises(InvalidOptionError, match="decode_responses"),
    ):
        ShardedRedisCache(decoding)
    with ShardedRedis({"a": urls[0]}) as client:
        cache = ShardedRedisCache(client, key_prefix=lambda: "dyn:", default_timeout=0)
        assert cache.set("k", 1) is True
        assert client.get("dyn:k") == b"1"
        assert client.ttl("dyn:k") == -1  # default_timeout 0: forever


def test_check_connection_names_the_node_that_does_not_answer(urls: list[str]) -> None:
    """check_connection PINGs every node at start-up and names one that is down."""
    dead = f"redis://:{SECRET}@127.0.0.1:{free_port()}/0"
    config = {
        "CACHE_TYPE": BACKEND,
        "CACHE_REDIS_NODES": {"up": urls[0], "down": dead},
        "CACHE_OPTIONS": {"check_connection": True, "socket_connect_timeout": 5},
    }
    with pytest.raises(RuntimeError, match="node 'down'") as raised:
        make_app(config)
    assert SECRET not in str(raised.value)
    app, cache = make_app({**config, "CACHE_REDIS_NODES": {"up": urls[0]}})
    backend(app, cache).close()
