"""Differential test: the same sequence of Django cache calls through Django's RedisCache on
one server and through ShardedRedisCache on three gives the same answers, the same warnings
and the same final state (the same raw bytes under the same keys, with the same expiries),
every key of the sharded state on its owner node."""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import redis
from django_settings import configure_django, custom_key_func
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis_servers import RedisServer

configure_django()

from django.core.cache.backends.base import BaseCache  # noqa: E402 - needs the settings
from django.core.cache.backends.redis import RedisCache  # noqa: E402
from hashring.adapters.django import ShardedRedisCache, node_name  # noqa: E402

pytestmark = pytest.mark.redis

REFERENCE_DB = 1  # Django's RedisCache: db 1 of the first server; ShardedRedisCache: db 0 of all
OMIT = "<omitted>"  # the argument is not passed (DEFAULT_TIMEOUT, the cache's VERSION)

KEY_POOL = [
    "a",
    "b",
    "ключ",
    "键:値",
    "emoji 😀",
    "key with spaces",
    "tab\tkey",
    "L" * 260,
    "{tag}one",
    "{tag}two",
]
keys = st.one_of(
    st.sampled_from(KEY_POOL),
    st.text(st.characters(exclude_categories=("Cs",)), max_size=8),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=False),
    st.text(max_size=10),
    st.binary(max_size=10),
)
values = st.one_of(
    st.integers(-100, 100),  # often: incr and decr then have something to work on
    st.recursive(
        scalars,
        lambda inner: st.one_of(
            st.lists(inner, max_size=3),
            st.tuples(inner, inner),
            st.dictionaries(st.text(max_size=4), inner, max_size=3),
        ),
        max_leaves=6,
    ),
)
timeouts = st.sampled_from([OMIT, None, 0, -1, -100, 0.5, 300, 1000.7, 86_400 * 40])
versions = st.sampled_from([OMIT, 1, 2, 3])
deltas = st.one_of(st.integers(-5, 5), st.sampled_from([2**63, -(2**63) - 1, 2**64]))


@dataclass(frozen=True)
class Call:
    """One cache call: method name, arguments, keyword arguments (OMIT ones dropped), and
    whether its a* twin is awaited instead."""

    method: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any] = field(default_factory=dict)
    awaited: bool = False

    def run(self, cache: BaseCache) -> Any:
        kwargs = {k: v for k, v in self.kwargs.items() if v is not OMIT}
        args = tuple(_Default(a.value) if isinstance(a, _Default) else a for a in self.args)
        if self.method == "contains":
            return args[0] in cache
        if not self.awaited:
            return getattr(cache, self.method)(*args, **kwargs)
        coroutine = getattr(cache, f"a{self.method}")(*args, **kwargs)
        return asyncio.run(coroutine)


@dataclass(frozen=True)
class _Default:
    """A callable default for get_or_set (each run gets its own, so nothing is shared)."""

    value: Any

    def __call__(self) -> Any:
        return self.value


def _call(method: str, *args: Any, **kwargs: Any) -> st.SearchStrategy[Call]:
    return st.builds(
        lambda awaited, *a, **k: Call(method, a, k, awaited), st.booleans(), *args, **kwargs
    )


CALLS: dict[str, list[st.SearchStrategy[Call]]] = {
    "get": [_call("get", keys, version=versions), _call("get", keys, values)],
    "set": [_call("set", keys, values, timeout=timeouts, version=versions)],
    "add": [_call("add", keys, values, timeout=timeouts, version=versions)],
    "get_or_set": [
        _call("get_or_set", keys, values, timeout=timeouts, version=versions),
        _call("get_or_set", keys, st.builds(_Default, values), timeout=timeouts),
    ],
    "touch": [_call("touch", keys, timeout=timeouts, version=versions)],
    "delete": [_call("delete", keys, version=versions)],
    "get_many": [_call("get_many", st.lists(keys, max_size=6), version=versions)],
    "set_many": [
        _call("set_many", st.dictionaries(keys, values, max_size=6), timeout=timeouts),
        _call("set_many", st.dictionaries(keys, values, max_size=4), version=versions),
    ],
    "delete_many": [_call("delete_many", st.lists(keys, max_size=6), version=versions)],
    "has_key": [_call("has_key", keys, version=versions)],
    "contains": [_call("contains", keys)],
    "incr": [_call("incr", keys, deltas, version=versions)],
    "decr": [_call("decr", keys, deltas, version=versions)],
    "incr_version": [_call("incr_version", keys, delta=st.integers(-2, 2), version=versions)],
    "decr_version": [_call("decr_version", keys, delta=st.integers(-2, 2), version=versions)],
    "clear": [_call("clear")],
    "close": [_call("close")],
}
"""Strategies of calls, by method."""

calls = st.one_of(*(strategy for strategies in CALLS.values() for strategy in strategies))


def _outcome(cache: BaseCache, call: Call) -> tuple[Any, ...]:
    """What a call answered (or raised: class and message), and the warnings it gave."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            answer: tuple[Any, ...] = ("answer", call.run(cache))
        except Exception as exc:
            answer = ("raised", type(exc).__name__, str(exc))
    return (*answer, [f"{w.category.__name__}: {w.message}" for w in caught])


def _state(clients: list[redis.Redis]) -> dict[bytes, tuple[bytes, int]]:
    """Every key of the clients' databases: its raw value and TTL (-1: no expiry)."""
    state: dict[bytes, tuple[bytes, int]] = {}
    for client in clients:
        for key in client.scan_iter(count=1000):
            value, ttl = client.get(key), client.ttl(key)
            assert value is not None
            state[key] = (value, ttl)
    return state


def _same_ttl(a: int, b: int) -> bool:
    return a == b or (a > 0 and b > 0 and abs(a - b) <= 5)


CONFIGS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "prefix-version-no-timeout": {"KEY_PREFIX": "app", "VERSION": 2, "TIMEOUT": None},
    "key-function": {"KEY_FUNCTION": custom_key_func, "KEY_PREFIX": "ключ", "TIMEOUT": 60},
}


@dataclass
class Pair:
    """Django's RedisCache and ShardedRedisCache under the same params, and raw clients of
    their databases."""

    reference: BaseCache
    sharded: ShardedRedisCache
    reference_db: redis.Redis
    node_dbs: dict[str, redis.Redis]

    def flush(self) -> None:
        for client in (self.reference_db, *self.node_dbs.values()):
            client.flushdb()


@pytest.fixture(params=sorted(CONFIGS))
def pair(request: pytest.FixtureRequest, clean_redis_servers: list[RedisServer]) -> Iterator[Pair]:
    """Both backends over the shared servers for one of CONFIGS."""
    params = CONFIGS[request.param]
    first = clean_redis_servers[0]
    reference = RedisCache(f"redis://{first.host}:{first.port}/{REFERENCE_DB}", params)
    sharded = ShardedRedisCache([s.url for s in clean_redis_servers], params)
    reference_db = redis.Redis(host=first.host, port=first.port, db=REFERENCE_DB)
    node_dbs = {
        node_name(s.url): redis.Redis(host=s.host, port=s.port) for s in clean_redis_servers
    }
    yield Pair(reference, sharded, reference_db, node_dbs)
    for raw in (reference_db, *node_dbs.values()):
        raw.close()


def _same_state(pair: Pair) -> None:
    """Both backends hold the same raw values under the same keys with the same expiries;
    every sharded key is on the node that owns it."""
    reference = _state([pair.reference_db])
    client = pair.sharded._cache.get_client()
    sharded: dict[bytes, tuple[bytes, int]] = {}
    for name, raw in pair.node_dbs.items():
        held = _state([raw])
        assert all(client.node_for(key) == name for key in held), name
        sharded.update(held)
    assert sharded.keys() == reference.keys()
    for key, (value, ttl) in reference.items():
        assert sharded[key][0] == value, key
        assert _same_ttl(sharded[key][1], ttl), (key, sharded[key][1], ttl)


def _same_answers(pair: Pair, sequence: list[Call]) -> None:
    """Each call answers, raises and warns alike on both backends."""
    for call in sequence:
        expected = _outcome(pair.reference, call)
        assert _outcome(pair.sharded, call) == expected, call


TIMEOUTS = (OMIT, None, 0, -1, 0.5, 300, 1000.7)
SPREAD = ["a", "b", "ключ", "{tag}one", "{tag}two", "key with spaces", "k1", "k2", "k3"]


def _script(awaited: bool, timeout: Any) -> list[Call]:
    """Every method of the cache API once or more under one timeout (where it takes one),
    over keys spread across the nodes, with versions; sync or async."""

    def call(method: str, *args: Any, **kwargs: Any) -> Call:
        return Call(method, args, kwargs, awaited)

    return [
        call("set", "a", 1, timeout=timeout),
        call("set", "b", "text", timeout=timeout, version=2),
        call("add", "ключ", [1, (2.5, None)], timeout=timeout),
        call("add", "a", 5, timeout=timeout),
        call("set_many", {k: k * 2 for k in SPREAD[3:]}, timeout=timeout),
        call("set_many", {k: i for i, k in enumerate(SPREAD)}, timeout=timeout, version=3),
        call("get_or_set", "k1", _Default(b"bytes"), timeout=timeout),
        call("get_or_set", "new", 7.25, timeout=timeout),
        call("touch", "k2", timeout=timeout),
        call("touch", "absent", timeout=timeout),
        call("get", "a"),
        call("get", "b", "default", version=2),
        call("get_many", SPREAD, version=3),
        call("get_many", [*SPREAD, "new", "absent"]),
        call("has_key", "k3"),
        call("contains", "ключ"),
        call("incr", "k3", 2, version=3),
        call("decr", "k1", 1, version=3),
        call("incr", "absent"),
        call("incr", "ключ"),
        call("incr_version", "k2", version=3),
        call("decr_version", "k2", version=4, delta=2),
        call("incr_version", "absent"),
        call("delete", "a"),
        call("delete", "a"),
        call("delete_many", SPREAD[:4], version=3),
        call("get_many", SPREAD, version=3),
        call("close"),
    ]


@pytest.mark.parametrize("awaited", [False, True], ids=["sync", "async"])
def test_every_method_and_timeout_alike(pair: Pair, awaited: bool) -> None:
    """Every method under every kind of timeout (default, None, 0, negative, fractional,
    positive) answers alike on both backends and leaves the same state; then clear() leaves
    both empty."""
    pair.flush()
    for timeout in TIMEOUTS:
        _same_answers(pair, _script(awaited, timeout))
        _same_state(pair)
    _same_answers(pair, [Call("clear", (), {}, awaited), Call("get_many", (SPREAD,))])
    _same_state(pair)
    assert _state(list(pair.node_dbs.values())) == {}


@settings(
    max_examples=30,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(sequence=st.lists(calls, min_size=3, max_size=30))
def test_same_calls_same_answers_same_state(pair: Pair, sequence: list[Call]) -> None:
    """Any sequence of calls answers (or raises, or warns) alike on both backends, and
    afterwards both hold the same raw values under the same keys with the same expiries,
    every sharded key on the node that owns it."""
    pair.flush()
    _same_answers(pair, sequence)
    _same_state(pair)


API = {
    "get", "set", "add", "get_or_set", "touch", "delete", "get_many", "set_many",
    "delete_many", "has_key", "incr", "decr", "incr_version", "decr_version", "clear", "close",
}  # fmt: skip
"""Django's cache API, each method with its a* twin."""


def test_the_script_and_the_strategy_reach_every_method() -> None:
    """The deterministic script and the call strategies call every method of the API, each
    of which has its a* twin."""
    assert {c.method for c in _script(False, OMIT)} | {"clear"} >= API
    assert set(CALLS) >= API
    assert all(callable(getattr(ShardedRedisCache, f"a{method}")) for method in API)
