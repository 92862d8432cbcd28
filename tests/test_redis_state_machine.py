"""A hypothesis state machine: ShardedRedis (and AsyncShardedRedis) over three nodes against
one plain server holding the same keys.

Every step runs one command (or a pipeline, or a transaction) on both and compares the
answers: equal values of equal types, or the same error class and message. The only
difference allowed is a refusal where the rules say one is due (a SORT pattern that may
read any node, a cross-node ``*STORE``, a transaction spanning nodes), and then the plain
server's state is left as the refused command would have left the sharded one: untouched.
After every step the two hold the same keys with the same contents, and every key lives
on its owner only.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from hashring.adapters.redis import (
    AsyncShardedRedis,
    CrossShardError,
    ShardedRedis,
    UnsupportedCommandError,
)
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test
from redis_servers import RedisServer, RedisServerFactory

pytestmark = pytest.mark.redis

NAMES = ("n0", "n1", "n2")
KEYS = [b"a", b"b", b"c", b"d", b"e", b"{t}x", b"{t}y", b"{t}z", "ключ".encode(), b"\xff\x00"]
REFUSALS = (CrossShardError, UnsupportedCommandError)

keys = st.sampled_from(KEYS)
key_lists = st.lists(keys, min_size=1, max_size=4)
members = st.sampled_from([b"m1", b"m2", b"m3", b"\xe2\x82\xac", b""])
numbers = st.integers(-5, 5)
scores = st.sampled_from([0.0, -0.0, 1.0, -2.5, 3.0, 1e308, -1e308, float("inf"), float("-inf")])
weights = st.sampled_from([0, 1, 2, -1, 0.5, 1e308, float("inf")])


class _AsyncFacade:
    """An AsyncShardedRedis driven from synchronous code on a private event loop: command
    methods run to completion; ``pipeline()`` gives a facade whose ``execute`` does."""

    def __init__(self, client: AsyncShardedRedis, loop: asyncio.AbstractEventLoop) -> None:
        self._client = client
        self._loop = loop

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self._client, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            return self._loop.run_until_complete(method(*args, **kwargs))

        return call

    def pipeline(self, transaction: bool = True) -> _AsyncPipelineFacade:
        return _AsyncPipelineFacade(self._client.pipeline(transaction=transaction), self._loop)


class _AsyncPipelineFacade:
    def __init__(self, pipe: Any, loop: asyncio.AbstractEventLoop) -> None:
        self._pipe = pipe
        self._loop = loop

    def __getattr__(self, name: str) -> Any:
        return getattr(self._pipe, name)  # command methods buffer synchronously

    def execute(self, raise_on_error: bool = True) -> Any:
        return self._loop.run_until_complete(self._pipe.execute(raise_on_error=raise_on_error))


def _outcome(call: Callable[[Any], Any], client: Any) -> tuple[str, Any]:
    try:
        return ("ok", _normal(call(client)))
    except REFUSALS as refusal:
        return ("refused", type(refusal).__name__)
    except redis.RedisError as error:
        return ("error", (type(error).__name__, str(error)))


def _normal(value: Any) -> Any:
    """Answers compared with their types: lists stay ordered (one server orders them)."""
    if isinstance(value, list):
        return ("list", [_normal(v) for v in value])
    if isinstance(value, tuple):
        return ("tuple", tuple(_normal(v) for v in value))
    if isinstance(value, set):
        return ("set", frozenset(value))
    if isinstance(value, dict):
        return ("dict", {k: _normal(v) for k, v in value.items()})
    if isinstance(value, float) and value != value:
        return ("nan",)
    return (type(value).__name__, value)


def _sorted_answer(call: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def sorted_call(client: Any) -> Any:
        answer = call(client)
        return sorted(answer, key=repr) if isinstance(answer, list) else answer

    return sorted_call


def _contents(client: Any, key: bytes) -> tuple[Any, ...]:
    kind = client.type(key)
    kind = kind.decode() if isinstance(kind, bytes) else kind
    if kind == "string":
        return (kind, client.get(key))
    if kind == "set":
        return (kind, frozenset(client.smembers(key)))
    if kind == "zset":
        return (kind, tuple(client.zrange(key, 0, -1, withscores=True)))
    if kind == "list":
        return (kind, tuple(client.lrange(key, 0, -1)))
    return (kind,)


class ShardedAgainstPlain(RuleBasedStateMachine):
    """Subclassed per test with ``sharded``, ``plain`` and ``nodes`` set."""

    sharded: Any
    plain: redis.Redis
    nodes: dict[str, redis.Redis]
    owner: Callable[[bytes], str]

    def __init__(self) -> None:
        super().__init__()
        for node in self.nodes.values():
            node.flushall()
        self.plain.flushall()

    # ------------------------------------------------------------------ comparing

    def same(self, call: Callable[[Any], Any], unordered: bool = False) -> None:
        """Equal outcomes; ``unordered``: a list answer whose order no server fixes (a
        set's members in hash-table order, which a server's random seed decides)."""
        if unordered:
            call = _sorted_answer(call)
        mine = _outcome(call, self.sharded)
        assert mine[0] != "refused", f"refused: {mine[1]}"
        theirs = _outcome(call, self.plain)
        assert mine == theirs

    def refused(self, call: Callable[[Any], Any]) -> None:
        assert _outcome(call, self.sharded)[0] == "refused"

    def spans(self, *groups: list[bytes]) -> bool:
        return len({self.owner(k) for group in groups for k in group}) > 1

    # ------------------------------------------------------------------ writes

    @rule(key=keys, value=st.one_of(numbers, members))
    def set_string(self, key: bytes, value: Any) -> None:
        self.same(lambda c: c.set(key, value))

    @rule(key=keys, values=st.lists(members, min_size=1, max_size=3))
    def sadd(self, key: bytes, values: list[bytes]) -> None:
        self.same(lambda c: c.sadd(key, *values))

    @rule(key=keys, mapping=st.dictionaries(members, scores, min_size=1, max_size=3))
    def zadd(self, key: bytes, mapping: dict[bytes, float]) -> None:
        self.same(lambda c: c.zadd(key, mapping))

    @rule(key=keys, values=st.lists(numbers, min_size=1, max_size=4))
    def rpush(self, key: bytes, values: list[int]) -> None:
        self.same(lambda c: c.rpush(key, *values))

    @rule(names=key_lists)
    def delete(self, names: list[bytes]) -> None:
        self.same(lambda c: c.delete(*names))

    @rule(names=key_lists, destination=keys, op=st.sampled_from(["sunionstore", "sinterstore"]))
    def set_store(self, names: list[bytes], destination: bytes, op: str) -> None:
        call: Callable[[Any], Any] = lambda c: getattr(c, op)(destination, *names)  # noqa: E731
        if self.spans(names, [destination]):
            self.refused(call)
        else:
            self.same(call)

    # ------------------------------------------------------------------ reads

    @rule(names=key_lists, op=st.sampled_from(["sunion", "sinter", "sdiff", "mget", "exists"]))
    def multi_key_read(self, names: list[bytes], op: str) -> None:
        self.same(lambda c: getattr(c, op)(*names))

    @rule(names=key_lists, limit=st.integers(0, 3))
    def sintercard(self, names: list[bytes], limit: int) -> None:
        self.same(lambda c: c.sintercard(len(names), names, limit=limit))

    @rule(
        names=key_lists,
        op=st.sampled_from(["zunion", "zinter", "zdiff"]),
        withscores=st.booleans(),
        weighted=st.booleans(),
        data=st.data(),
    )
    def zset_algebra(
        self, names: list[bytes], op: str, withscores: bool, weighted: bool, data: Any
    ) -> None:
        if op == "zdiff":
            self.same(lambda c: c.zdiff(names, withscores=withscores))
            return
        aggregate = data.draw(st.sampled_from([None, "SUM", "MIN", "MAX"]))
        if weighted:
            factors = data.draw(st.lists(weights, min_size=len(names), max_size=len(names)))
            spec: Any = dict(zip(names, factors, strict=False))
            if len(spec) != len(names):
                return  # repeated keys cannot carry weights in a mapping
        else:
            spec = names
        self.same(lambda c: getattr(c, op)(spec, aggregate=aggregate, withscores=withscores))

    @rule(names=key_lists, limit=st.integers(0, 3))
    def zintercard(self, names: list[bytes], limit: int) -> None:
        self.same(lambda c: c.zintercard(len(names), names, limit=limit))

    @rule(first=keys, second=keys, option=st.sampled_from(["plain", "len", "idx"]))
    def lcs(self, first: bytes, second: bytes, option: str) -> None:
        kwargs = {"len": option == "len", "idx": option == "idx"}
        self.same(lambda c: c.lcs(first, second, **kwargs))

    @rule(
        key=keys,
        by=st.sampled_from([None, "nosort", "w:{t}*", "w:*"]),
        get=st.sampled_from([None, "#", "w:{t}*", "w:*"]),
        alpha=st.booleans(),
    )
    def sort(self, key: bytes, by: str | None, get: str | None, alpha: bool) -> None:
        call: Callable[[Any], Any] = lambda c: c.sort(key, by=by, get=get, alpha=alpha)  # noqa: E731
        patterns = [p for p in (by, get) if p not in (None, "nosort", "#")]
        tag_node = self.owner(b"w:{t}")  # where a {t} pattern's keys live
        unpinned = any(
            not (p.startswith("w:{t}") and self.owner(key) == tag_node) for p in patterns
        )
        if unpinned:
            self.refused(call)
        else:  # BY nosort on a set, or BY weights that tie (missing ones all count alike):
            # members in hash-table order, which each server's random seed decides
            self.same(call, unordered=by is not None)

    @rule()
    def dbsize(self) -> None:
        self.same(lambda c: c.dbsize())

    # ------------------------------------------------------------------ pipelines

    @rule(
        steps=st.lists(
            st.tuples(st.sampled_from(["get", "incr", "exists", "smembers", "sunion"]), keys),
            min_size=1,
            max_size=5,
        ),
        transaction=st.booleans(),
    )
    def pipeline(self, steps: list[tuple[str, bytes]], transaction: bool) -> None:
        def run(client: Any) -> Any:
            pipe = client.pipeline(transaction=transaction)
            for op, key in steps:
                if op == "sunion":
                    pipe.sunion(key, KEYS[0])
                else:
                    getattr(pipe, op)(key)
            return pipe.execute(raise_on_error=False)

        touched = [k for _, k in steps] + (
            [KEYS[0]] if any(o == "sunion" for o, _ in steps) else []
        )
        if transaction and self.spans(touched):
            self.refused(run)
            return
        mine, theirs = run(self.sharded), run(self.plain)
        assert len(mine) == len(theirs)
        for a, b in zip(mine, theirs, strict=True):
            if isinstance(b, Exception):
                assert type(a) is type(b)
                assert str(a) == str(b)
            else:
                assert _normal(a) == _normal(b)

    # ------------------------------------------------------------------ the state

    @invariant()
    def same_keys_on_their_owners(self) -> None:
        for key in KEYS:
            assert _contents(self.sharded, key) == _contents(self.plain, key), key
            holders = [name for name, node in self.nodes.items() if node.exists(key)]
            assert holders in ([], [self.owner(key)]), (key, holders)


def _machine(
    servers: list[RedisServer], plain: redis.Redis, client: Any, owner: Callable[[bytes], str]
) -> type[ShardedAgainstPlain]:
    nodes = {name: server.client() for name, server in zip(NAMES, servers, strict=True)}
    return type(
        "Machine",
        (ShardedAgainstPlain,),
        {"sharded": client, "plain": plain, "nodes": nodes, "owner": staticmethod(owner)},
    )


SETTINGS = settings(
    max_examples=25,
    stateful_step_count=25,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture
def plain(redis_server_factory: RedisServerFactory) -> redis.Redis:
    return redis_server_factory(1)[0].client()


@pytest.fixture
def urls(clean_redis_servers: list[RedisServer]) -> dict[str, str]:
    return {name: server.url for name, server in zip(NAMES, clean_redis_servers, strict=True)}


@pytest.fixture
def async_facade(urls: dict[str, str]) -> Iterator[_AsyncFacade]:
    loop = asyncio.new_event_loop()
    client = AsyncShardedRedis(urls)
    try:
        yield _AsyncFacade(client, loop)
    finally:
        loop.run_until_complete(client.aclose())
        loop.close()


def test_sync_client_answers_as_one_server(
    clean_redis_servers: list[RedisServer], plain: redis.Redis, urls: dict[str, str]
) -> None:
    with ShardedRedis(urls) as client:
        machine = _machine(clean_redis_servers, plain, client, client.node_for)
        run_state_machine_as_test(machine, settings=SETTINGS)


def test_async_client_answers_as_one_server(
    clean_redis_servers: list[RedisServer], plain: redis.Redis, async_facade: _AsyncFacade
) -> None:
    owner = async_facade._client.node_for
    machine = _machine(clean_redis_servers, plain, async_facade, owner)
    run_state_machine_as_test(machine, settings=SETTINGS)
