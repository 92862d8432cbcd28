"""Pipelines, transactions and WATCH of ShardedRedis / AsyncShardedRedis, as redis-py's.

Differential tests run the same sequence on a sharded client and on one plain redis-server
through redis-py's own pipeline, and compare answers, exceptions (class and message) and the
data left behind; the rest pins the sharded rules: one node per transaction, refusals before
anything is sent, and never a fallback node.
"""

from __future__ import annotations

import asyncio
import gc
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis
from hashring.adapters.redis import AsyncShardedRedis, OwnerEjectedError, ShardedRedis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.backoff import NoBackoff
from redis.retry import Retry
from redis_servers import RedisServer, RedisServerFactory

from hashring import CrossShardError

pytestmark = pytest.mark.redis

NAMES = ("n0", "n1", "n2")
FAST: dict[str, Any] = {
    "decode_responses": True,
    "retry": Retry(NoBackoff(), 0),
    "socket_connect_timeout": 1.0,
    "socket_timeout": 2.0,
}


def _urls(servers: list[RedisServer], names: tuple[str, ...] = NAMES) -> dict[str, str]:
    return {name: server.url for name, server in zip(names, servers, strict=True)}


@pytest.fixture
def sharded(clean_redis_servers: list[RedisServer]) -> Iterator[ShardedRedis]:
    """A decoding ShardedRedis over the three shared (flushed) servers, nodes n0..n2."""
    with ShardedRedis(_urls(clean_redis_servers), **FAST) as client:
        yield client


@pytest.fixture
def by_node(clean_redis_servers: list[RedisServer]) -> dict[str, redis.Redis]:
    """Node name -> a direct decoding client of that node's server (stats reset)."""
    clients = {
        name: server.client(decode_responses=True)
        for name, server in zip(NAMES, clean_redis_servers, strict=True)
    }
    for client in clients.values():
        client.config_resetstat()
    return clients


@pytest.fixture
def plain_server(redis_server_factory: RedisServerFactory) -> RedisServer:
    """A fourth, unsharded server: the differential tests' reference."""
    return redis_server_factory(1)[0]


@pytest.fixture
def plain(plain_server: RedisServer) -> redis.Redis:
    """A decoding redis.Redis on the reference server."""
    return plain_server.client(decode_responses=True)


def _tag_on(client: ShardedRedis | AsyncShardedRedis, node: str) -> str:
    """A hash tag whose keys live on ``node``."""
    return next(f"{{t{i}}}" for i in range(10_000) if client.node_for(f"{{t{i}}}") == node)


def _calls(client: redis.Redis, command: str) -> int:
    """How many times the server ran ``command`` since its stats were reset."""
    stats = client.info("commandstats").get(f"cmdstat_{command}", {})
    return int(stats.get("calls", 0))


def _outcome(run: Callable[[], Any]) -> Any:
    """``run()``'s answer, or its exception as (class name, message), errors in answers too."""
    try:
        answer = run()
    except redis.RedisError as exc:
        return ("raised", type(exc).__name__, str(exc))
    if isinstance(answer, list):
        return [(type(a).__name__, str(a)) if isinstance(a, Exception) else a for a in answer]
    return answer


def _in_use(client: redis.Redis) -> int:
    """Connections of ``client``'s pool checked out now."""
    return len(client.connection_pool._in_use_connections)  # type: ignore[attr-defined]


# ------------------------------------------------------------------ the sequences compared

KEYS = ("{t}a", "{t}b", "{t}c")
key_st = st.sampled_from(KEYS)
value_st = st.sampled_from(["1", "7", "x", ""])
op_st = st.one_of(
    st.tuples(st.just("set"), key_st, value_st),
    st.tuples(st.just("get"), key_st),
    st.tuples(st.just("incr"), key_st),
    st.tuples(st.just("lpush"), key_st, value_st),
    st.tuples(st.just("hset"), key_st, st.just("f"), value_st),
    st.tuples(st.just("delete"), key_st),
    st.tuples(st.just("mget"), key_st, key_st),
    st.tuples(st.just("ping")),
    st.tuples(st.just("echo"), value_st),
    st.tuples(st.just("execute_command"), st.just("SET"), key_st),  # wrong arity: EXECABORT
)
Op = tuple[Any, ...]


def _buffer(pipe: Any, ops: list[Op]) -> None:
    for name, *args in ops:
        getattr(pipe, name)(*args)


def _state(client: Any) -> dict[str, Any]:
    """The compared keys: type and value."""
    state = {}
    for key in KEYS:
        kind = client.type(key)
        if kind == "string":
            state[key] = client.get(key)
        elif kind == "list":
            state[key] = client.lrange(key, 0, -1)
        elif kind == "hash":
            state[key] = client.hgetall(key)
    return state


def _watched_run(client: Any, watched: list[str], ops: list[Op], meddle: bool) -> Any:
    """redis-py's recipe: WATCH, an immediate read, maybe a write on another connection
    (the client's own pool: the pipeline holds its connection), MULTI, EXEC."""
    with client.pipeline() as pipe:
        pipe.watch(*watched)
        read = pipe.get(watched[0])
        if meddle:
            client.set(watched[-1], "meddled")
        pipe.multi()
        _buffer(pipe, ops)
        return read, _outcome(pipe.execute)


# ------------------------------------------------------------------ default and refusals


def test_pipeline_defaults_to_a_transaction_and_refuses_spanning_nodes(
    sharded: ShardedRedis, by_node: dict[str, redis.Redis], plain: redis.Redis
) -> None:
    """pipeline() is transactional as redis-py's; spanning nodes is refused, nothing sent."""
    assert sharded.pipeline().transaction is plain.pipeline().transaction is True
    a, b = _tag_on(sharded, "n0") + "a", _tag_on(sharded, "n1") + "b"
    with sharded.pipeline() as pipe:
        pipe.set(a, "1").set(b, "2").get(a)
        with pytest.raises(CrossShardError) as caught:
            pipe.execute()
        assert len(pipe) == 0  # the buffer is emptied, as by redis-py's execute
    assert set(caught.value.nodes) == {"n0", "n1"}
    message = str(caught.value)
    assert "n0: SET, GET" in message
    assert "n1: SET" in message
    assert "pipeline(transaction=False)" in message
    assert isinstance(caught.value, redis.RedisError)
    for client in by_node.values():
        assert _calls(client, "multi") == _calls(client, "set") == client.dbsize() == 0
    with sharded.pipeline(transaction=False) as pipe:  # the way out named in the message
        assert pipe.set(a, "1").set(b, "2").get(a).execute() == [True, True, "1"]


def test_a_transaction_runs_as_multi_exec_on_its_keys_owner(
    sharded: ShardedRedis, by_node: dict[str, redis.Redis]
) -> None:
    """One node's keys: one MULTI/EXEC there and nowhere else (keyless commands included)."""
    tag = _tag_on(sharded, "n2")
    with sharded.pipeline() as pipe:
        pipe.set(tag + "x", "10").incrby(tag + "x", 5).ping().echo("hi").mget(tag + "x", tag)
        assert pipe.execute() == [True, 15, True, "hi", ["15", None]]
    assert {n: (_calls(c, "multi"), _calls(c, "exec")) for n, c in by_node.items()} == {
        "n0": (0, 0),
        "n1": (0, 0),
        "n2": (1, 1),
    }
    assert {n: _calls(c, "ping") + _calls(c, "echo") for n, c in by_node.items()} == {
        "n0": 0,
        "n1": 0,
        "n2": 2,
    }


def test_keyless_commands_in_transactions(
    sharded: ShardedRedis,
    by_node: dict[str, redis.Redis],
    plain_server: RedisServer,
    plain: redis.Redis,
) -> None:
    """PING/ECHO run on the transaction's node; DBSIZE (every node) is refused unless the
    client has one node; a keyless-only transaction runs on the first node."""
    tag = _tag_on(sharded, "n1")
    sharded.set(_tag_on(sharded, "n0"), "elsewhere")
    with sharded.pipeline() as pipe:
        pipe.set(tag, "v").dbsize()
        with pytest.raises(CrossShardError, match="DBSIZE") as caught:
            pipe.execute()
    assert set(caught.value.nodes) == set(NAMES)
    assert sharded.exists(tag) == 0
    with sharded.pipeline() as pipe:
        assert pipe.ping().echo("e").execute() == [True, "e"]
    assert _calls(by_node["n0"], "multi") == 1
    assert _calls(by_node["n1"], "multi") + _calls(by_node["n2"], "multi") == 0
    with ShardedRedis({"only": plain_server.url}, **FAST) as single:
        for client in (single, plain):
            client.set("k", "1")
        ops: list[Op] = [("set", "k2", "2"), ("dbsize",), ("ping",), ("keys", "k*")]
        answers = []
        for client in (single, plain):
            with client.pipeline() as pipe:
                _buffer(pipe, ops)
                answers.append(pipe.execute())
    for answer in answers:
        answer[3] = sorted(answer[3])  # KEYS order is each server's own
    assert answers[0] == answers[1] == [True, 2, True, ["k", "k2"]]


# ------------------------------------------------------------------ differential


@settings(
    max_examples=30,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    ops=st.lists(op_st, min_size=0, max_size=8),
    raise_on_error=st.booleans(),
    preset=st.lists(st.tuples(key_st, value_st), max_size=3),
)
def test_transactions_answer_as_one_server(
    ops: list[Op],
    raise_on_error: bool,
    preset: list[tuple[str, str]],
    sharded: ShardedRedis,
    plain: redis.Redis,
) -> None:
    """Any transaction gives one server's answers, errors (class, message, "Command # N")
    and data: MULTI/EXEC, EXECABORT, errors in place or raised."""
    outcomes, states = [], []
    for client in (sharded, plain):
        client.flushall()
        for key, value in preset:
            client.set(key, value)

        def run(client: Any = client) -> Any:
            with client.pipeline() as pipe:
                _buffer(pipe, ops)
                assert len(pipe) == len(ops)
                return pipe.execute(raise_on_error=raise_on_error)

        outcomes.append(_outcome(run))
        states.append(_state(client))
    assert outcomes[0] == outcomes[1], ops
    assert states[0] == states[1], ops


@settings(
    max_examples=20,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    ops=st.lists(op_st, min_size=1, max_size=5),
    watched=st.lists(key_st, min_size=1, max_size=3, unique=True),
    meddle=st.booleans(),
)
def test_watch_recipe_answers_as_one_server(
    ops: list[Op],
    watched: list[str],
    meddle: bool,
    sharded: ShardedRedis,
    plain: redis.Redis,
) -> None:
    """WATCH, an immediate read, another client's write or not, MULTI, EXEC: the same read,
    answers or WatchError as on one server."""
    results = []
    for client in (sharded, plain):
        client.flushall()
        client.set("{t}a", "5")
        results.append((_watched_run(client, watched, ops, meddle), _state(client)))
    assert results[0] == results[1]
    if meddle and all(op[0] != "execute_command" for op in ops):  # EXECABORT comes first
        assert results[0][0][1] == ("raised", "WatchError", "Watched variable changed.")


def test_plain_pipeline_errors_are_numbered_as_one_servers(
    sharded: ShardedRedis, plain: redis.Redis
) -> None:
    """transaction=False: "Command # N" counts in the user's pipeline, across nodes."""
    keys = [_tag_on(sharded, node) for node in ("n0", "n1", "n2", "n0")]
    outcomes = []
    for client in (sharded, plain):
        client.set(keys[2], "text")

        def run(client: Any = client) -> Any:
            with client.pipeline(transaction=False) as pipe:
                pipe.set(keys[0], 1).get(keys[1]).incr(keys[3]).incr(keys[2]).lpush(keys[2], 1)
                return pipe.execute()

        outcomes.append(_outcome(run))
    assert outcomes[0] == outcomes[1]
    assert outcomes[0][2].startswith("Command # 4 (INCRBY")


# ------------------------------------------------------------------ WATCH and MULTI


def test_watch_immediate_mode_and_watch_error(
    sharded: ShardedRedis, by_node: dict[str, redis.Redis]
) -> None:
    """While watching, reads answer at once (on any node); a changed key raises WatchError
    and the pipeline is reusable; the connection goes back to the pool."""
    tag, other = _tag_on(sharded, "n1"), _tag_on(sharded, "n2")
    sharded.set(tag, "1")
    sharded.set(other, "o")
    owner = sharded.clients["n1"]
    with sharded.pipeline() as pipe:
        assert pipe.watch(tag) is True
        assert pipe.watching
        assert pipe.get(tag) == "1"
        assert pipe.get(other) == "o"  # another node's key: routed as by the client
        assert pipe.mget(tag, other) == ["1", "o"]
        assert pipe.dbsize() == 2  # fans out as by the client
        assert len(pipe) == 0
        by_node["n1"].set(tag, "changed")
        pipe.multi()
        pipe.set(tag, "mine")
        assert len(pipe) == 1
        with pytest.raises(redis.WatchError, match="Watched variable changed"):
            pipe.execute()
        assert not pipe.watching
        assert _in_use(owner) == 0
        pipe.watch(tag)
        pipe.multi()
        assert pipe.set(tag, "mine").get(tag).execute() == [True, "mine"]
    assert _in_use(owner) == 0
    assert _calls(by_node["n2"], "watch") == 0


def test_multi_discard_unwatch_reset_behave_as_redis_py(
    sharded: ShardedRedis, plain: redis.Redis
) -> None:
    """multi/watch misuse, discard, unwatch, reset, close, len and bool: as redis-py."""
    outcomes = []
    for client in (sharded, plain):
        seen: list[Any] = []
        pipe = client.pipeline()
        seen.append(bool(pipe))
        pipe.multi()
        seen.append(_outcome(pipe.multi))
        seen.append(_outcome(lambda pipe=pipe: pipe.watch("{t}a")))
        pipe.reset()
        pipe.set("{t}a", 1)
        seen.append(_outcome(pipe.multi))
        seen.append(len(pipe))
        pipe.close()
        seen.append(len(pipe))
        seen.append(pipe.unwatch())
        pipe.watch("{t}a")
        seen.append(_outcome(pipe.discard))  # DISCARD without MULTI, sent at once
        seen.append(pipe.unwatch())
        seen.append(pipe.watching)
        pipe.watch("{t}a")
        pipe.multi()
        pipe.set("{t}a", 2)
        pipe.discard()  # buffered inside MULTI
        seen.append(_outcome(pipe.execute))
        seen.append(_outcome(pipe.execute))  # empty and not watching
        pipe.watch("{t}a")
        pipe.reset()
        seen.append((pipe.watching, len(pipe), client.get("{t}a")))
        outcomes.append(seen)
    assert outcomes[0] == outcomes[1]


def test_watch_on_a_plain_pipeline_and_after_unwatch(
    sharded: ShardedRedis, plain: redis.Redis
) -> None:
    """transaction=False with watch() and no multi(): commands buffered before the watch run
    without MULTI, as redis-py; after unwatch() the watched node binds nothing."""
    a, b = _tag_on(sharded, "n0"), _tag_on(sharded, "n1")
    outcomes = []
    for client in (sharded, plain):
        seen: list[Any] = []
        with client.pipeline(transaction=False) as pipe:
            pipe.set(b, "before").get(b)
            seen.append(pipe.watch(a))
            seen.append(pipe.get(b))
            seen.append(_outcome(pipe.execute))
            seen.append(pipe.watching)
        with client.pipeline() as pipe:
            pipe.watch(a)
            seen.append(pipe.unwatch())
            seen.append(_outcome(pipe.set(b, "after").get(b).execute))
        outcomes.append(seen)
    expected = [True, None, [True, "before"], False, True, [True, "after"]]
    assert outcomes[0] == outcomes[1] == expected


def test_transaction_method_as_redis_py(sharded: ShardedRedis, plain: redis.Redis) -> None:
    """client.transaction(func, *watches): EXEC answers, value_from_callable, watch_delay."""
    answers = []
    for client in (sharded, plain):
        client.set("{t}a", "4")

        def double(pipe: Any) -> int:
            value = int(pipe.get("{t}a"))
            pipe.multi()
            pipe.set("{t}a", value * 2).get("{t}b")
            return value

        answers.append(client.transaction(double, "{t}a", "{t}b"))
        answers.append(client.transaction(double, "{t}a", value_from_callable=True))
        answers.append(client.transaction(double, "{t}a", watch_delay=0.01))
        answers.append(client.get("{t}a"))
    assert answers[:4] == answers[4:] == [[True, None], 8, [True, None], "32"]


def test_watched_keys_must_share_a_node(
    sharded: ShardedRedis, by_node: dict[str, redis.Redis]
) -> None:
    """WATCH over nodes, a second WATCH on another node, and a transaction on another node
    than the watched keys: CrossShardError naming the nodes, nothing sent, watch ended."""
    a, b = _tag_on(sharded, "n0"), _tag_on(sharded, "n1")
    with sharded.pipeline() as pipe:
        with pytest.raises(CrossShardError) as caught:
            pipe.watch(a, b)
        assert set(caught.value.nodes) == {"n0", "n1"}
        assert not pipe.watching
        pipe.watch(a)
        with pytest.raises(CrossShardError):
            pipe.watch(b)
        assert pipe.watching
        pipe.multi()
        pipe.set(b, "x")
        with pytest.raises(CrossShardError) as caught:
            pipe.execute()
        assert set(caught.value.nodes) == {"n0", "n1"}
        assert "WATCH" in str(caught.value)
        assert not pipe.watching
    assert sharded.exists(b) == 0
    assert _calls(by_node["n1"], "watch") == _calls(by_node["n0"], "multi") == 0
    assert _calls(by_node["n0"], "unwatch") == 1  # the refused transaction's watch ended
    assert _in_use(sharded.clients["n0"]) == 0


def test_dropped_pipeline_gives_its_watch_back(sharded: ShardedRedis) -> None:
    """A watching pipeline garbage-collected unwatches and returns its connection."""
    tag = _tag_on(sharded, "n0")
    pipe = sharded.pipeline()
    pipe.watch(tag)
    slot = sharded._members.slots["n0"]
    assert slot.in_flight == 1
    assert _in_use(sharded.clients["n0"]) == 1
    del pipe
    gc.collect()
    assert slot.in_flight == 0
    assert _in_use(sharded.clients["n0"]) == 0


# ------------------------------------------------------------------ contention


def test_threads_incrementing_one_counter_with_the_recipe(
    clean_redis_servers: list[RedisServer],
) -> None:
    """Two clients, two threads each, WATCH/GET/MULTI/SET: the final count is exact."""
    rounds = 60
    clients = [ShardedRedis(_urls(clean_redis_servers), **FAST) for _ in range(2)]
    retries = [0]

    def by_recipe(client: ShardedRedis) -> None:
        for _ in range(rounds):
            with client.pipeline() as pipe:
                while True:
                    try:
                        pipe.watch("{counter}")
                        value = int(pipe.get("{counter}") or 0)
                        pipe.multi()
                        pipe.set("{counter}", value + 1)
                        pipe.execute()
                        break
                    except redis.WatchError:
                        retries[0] += 1

    def by_transaction(client: ShardedRedis) -> None:
        def step(pipe: Any) -> None:
            value = int(pipe.get("{counter}") or 0)
            pipe.multi()
            pipe.set("{counter}", value + 1)

        for _ in range(rounds):
            client.transaction(step, "{counter}")

    threads = [
        threading.Thread(target=work, args=(client,))
        for client in clients
        for work in (by_recipe, by_transaction)
    ]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert not any(thread.is_alive() for thread in threads)
        assert clients[0].get("{counter}") == str(4 * rounds)
    finally:
        for client in clients:
            client.close()


# ------------------------------------------------------------------ topology and health


def test_removed_watched_node_fails_loudly(redis_servers: list[RedisServer]) -> None:
    """The watched node leaves: WatchError, nothing run anywhere; transaction() retries at
    the keys' new owner; the removed node's client is closed once the watch ends."""
    with ShardedRedis(_urls(redis_servers), **FAST) as client:
        direct = {
            n: s.client(decode_responses=True) for n, s in zip(NAMES, redis_servers, strict=True)
        }
        tag = _tag_on(client, "n1")
        removed = client.clients["n1"]
        with client.pipeline() as pipe:
            pipe.watch(tag)
            client.remove_node("n1")
            assert removed.connection_pool._in_use_connections  # type: ignore[attr-defined]
            pipe.multi()
            pipe.set(tag, "x")
            with pytest.raises(redis.WatchError, match=r"'n1'.*removed"):
                pipe.execute()
        assert not removed.connection_pool._in_use_connections  # type: ignore[attr-defined]
        assert all(_calls(d, "multi") == 0 for d in direct.values())
        assert all(d.get(tag) is None for d in direct.values())

        moves = iter(["n0"])

        def step(pipe: Any) -> None:
            for name in moves:  # the first attempt: its watched node leaves under it
                client.remove_node(name)
            pipe.multi()
            pipe.set(tag, "done")

        tag = _tag_on(client, "n0")
        assert client.transaction(step, tag) == [True]
        assert client.node_for(tag) == "n2"
        assert direct["n2"].get(tag) == "done"
        assert direct["n0"].get(tag) is None


def test_watched_keys_moving_to_an_added_node_fail_loudly(
    redis_servers: list[RedisServer],
) -> None:
    """add_node moves the watched key away from its node: WatchError, nothing run."""
    urls = _urls(redis_servers)
    with ShardedRedis({n: urls[n] for n in NAMES[:2]}, **FAST) as client:
        with ShardedRedis(urls) as bigger:
            key = next(f"k{i}" for i in range(10_000) if bigger.node_for(f"k{i}") == "n2")
        old = client.node_for(key)
        with client.pipeline() as pipe:
            pipe.watch(key)
            client.add_node("n2", urls["n2"])
            pipe.multi()
            pipe.set(key, "x")
            with pytest.raises(redis.WatchError, match=f"moved from node '{old}' to 'n2'"):
                pipe.execute()
        assert all(s.client().get(key) is None for s in redis_servers)


def test_ejected_owner_refuses_transactions_and_never_uses_a_fallback(
    redis_servers: list[RedisServer],
) -> None:
    """With health on and the owner ejected, transactions raise OwnerEjectedError (a
    ConnectionError) and nothing reaches the fallback; plain pipelines use the fallback."""
    with ShardedRedis(
        _urls(redis_servers), health=True, failure_limit=1, retry_timeout=60, **FAST
    ) as client:
        tag = _tag_on(client, "n1")
        fallback = client.placement.get_nodes(tag)[1]
        redis_servers[1].kill()
        with pytest.raises(redis.ConnectionError):
            client.get(tag)
        assert client.stats()["n1"]["ejected"]
        survivor = redis_servers[NAMES.index(fallback)].client()
        survivor.config_resetstat()
        with client.pipeline() as pipe:
            pipe.set(tag, "x")
            with pytest.raises(OwnerEjectedError, match="'n1'"):
                pipe.execute()
        with pytest.raises(redis.ConnectionError):
            client.transaction(lambda pipe: None, tag)
        assert _calls(survivor, "multi") == _calls(survivor, "watch") == survivor.dbsize() == 0
        with client.pipeline(transaction=False) as pipe:
            assert pipe.set(tag, "x").get(tag).execute() == [True, "x"]
        assert survivor.get(tag) == b"x"


def test_owner_dying_mid_watch_then_pipeline_reused(redis_servers: list[RedisServer]) -> None:
    """The watched node dies: WatchError (counted against the node); after its restart the
    same pipeline object runs transactions again."""
    with ShardedRedis(_urls(redis_servers), health=True, failure_limit=3, **FAST) as client:
        tag = _tag_on(client, "n2")
        pipe = client.pipeline()
        pipe.watch(tag)
        redis_servers[2].kill()
        with pytest.raises(redis.WatchError, match="ConnectionError"):
            pipe.get(tag)
        assert not pipe.watching
        assert client.stats()["n2"]["errors"] == 1
        pipe.set(tag, "1")
        with pytest.raises(redis.ConnectionError):
            pipe.execute()
        assert len(pipe) == 0
        redis_servers[2].restart()
        pipe.watch(tag)
        pipe.multi()
        assert pipe.set(tag, "2").incr(tag).execute() == [True, 3]
        pipe.close()
        assert client.get(tag) == "3"


# ------------------------------------------------------------------ asyncio


@pytest.fixture
def anyio_backend() -> str:
    """Run the async tests on asyncio only (redis.asyncio needs it)."""
    return "asyncio"


async def _aoutcome(run: Callable[[], Any]) -> Any:
    try:
        answer = await run()
    except redis.RedisError as exc:
        return ("raised", type(exc).__name__, str(exc))
    if isinstance(answer, list):
        return [(type(a).__name__, str(a)) if isinstance(a, Exception) else a for a in answer]
    return answer


@pytest.mark.anyio
async def test_async_default_transaction_and_refusal(
    clean_redis_servers: list[RedisServer], by_node: dict[str, redis.Redis]
) -> None:
    """AsyncShardedRedis.pipeline() is a transaction on one node; spanning nodes is refused."""
    async with AsyncShardedRedis(_urls(clean_redis_servers), **FAST) as client:
        tag, other = _tag_on(client, "n0"), _tag_on(client, "n2")
        pipe = client.pipeline()
        assert pipe.transaction
        assert bool(pipe)
        pipe.set(tag, "1").set(other, "2")
        with pytest.raises(CrossShardError, match=r"pipeline\(transaction=False\)"):
            await pipe.execute()
        assert len(pipe) == 0
        async with client.pipeline() as pipe:
            pipe.set(tag + "x", "3").incr(tag + "x").ping()
            assert await pipe.execute() == [True, 4, True]
    assert [_calls(c, "multi") for c in by_node.values()] == [1, 0, 0]
    assert by_node["n2"].dbsize() == 0


@pytest.mark.anyio
async def test_async_transactions_answer_as_one_server(
    clean_redis_servers: list[RedisServer], plain_server: RedisServer
) -> None:
    """A fixed mix of transactions and plain pipelines: the same answers and messages as a
    redis.asyncio pipeline on one server (its own "Command # N" format)."""
    programs: list[tuple[bool, bool, list[Op]]] = [
        (True, True, [("set", "{t}a", "x"), ("incr", "{t}a"), ("get", "{t}a")]),
        (True, False, [("set", "{t}a", "x"), ("incr", "{t}a"), ("lpush", "{t}a", "1")]),
        (True, True, [("set", "{t}b", "1"), ("execute_command", "SET", "{t}a"), ("ping",)]),
        (True, True, []),
        (False, True, [("set", "k1", "x"), ("get", "k2"), ("incr", "k3"), ("incr", "k1")]),
        (False, False, [("set", "k1", "x"), ("incr", "k1"), ("mget", "k1", "k2", "k3")]),
    ]
    async with (
        AsyncShardedRedis(_urls(clean_redis_servers), **FAST) as client,
        aioredis.Redis.from_url(plain_server.url, decode_responses=True) as plain,
    ):
        for transaction, raise_on_error, ops in programs:
            outcomes = []
            for target in (client, plain):
                await target.flushall()

                async def run(
                    target: Any = target,
                    transaction: bool = transaction,
                    ops: list[Op] = ops,
                    raise_on_error: bool = raise_on_error,
                ) -> Any:
                    async with target.pipeline(transaction=transaction) as pipe:
                        _buffer(pipe, ops)
                        return await pipe.execute(raise_on_error=raise_on_error)

                outcomes.append(await _aoutcome(run))
            assert outcomes[0] == outcomes[1], ops


@pytest.mark.anyio
async def test_async_watch_recipe_and_misuse(
    clean_redis_servers: list[RedisServer], plain_server: RedisServer
) -> None:
    """watch / immediate reads / multi / WatchError / discard / unwatch, as redis.asyncio."""
    async with (
        AsyncShardedRedis(_urls(clean_redis_servers), **FAST) as client,
        aioredis.Redis.from_url(plain_server.url, decode_responses=True) as plain,
    ):
        outcomes = []
        for target in (client, plain):
            seen: list[Any] = []
            await target.set("{t}a", "5")
            async with target.pipeline() as pipe:
                seen.append(await pipe.watch("{t}a", "{t}b"))
                seen.append(await pipe.get("{t}a"))
                await target.set("{t}b", "meddled")
                pipe.multi()
                seen.append(_outcome(pipe.multi))
                pipe.set("{t}a", "6")
                seen.append(await _aoutcome(pipe.execute))
                seen.append((pipe.watching, len(pipe)))
                await pipe.watch("{t}a")
                seen.append(await _aoutcome(pipe.discard))
                seen.append(await pipe.unwatch())
                await pipe.watch("{t}a")
                pipe.multi()
                pipe.incr("{t}a")
                seen.append(await pipe.execute())
            outcomes.append(seen)
        assert outcomes[0] == outcomes[1]
        assert outcomes[0][3] == ("raised", "WatchError", "Watched variable changed.")


@pytest.mark.anyio
async def test_async_transaction_method_and_contention(
    clean_redis_servers: list[RedisServer],
) -> None:
    """transaction() with a coroutine function, two clients' tasks on one counter: exact."""
    rounds = 40
    clients = [AsyncShardedRedis(_urls(clean_redis_servers), **FAST) for _ in range(2)]
    try:

        async def step(pipe: Any) -> int:
            value = int(await pipe.get("{counter}") or 0)
            pipe.multi()
            pipe.set("{counter}", value + 1)
            return value

        async def work(client: AsyncShardedRedis) -> None:
            for _ in range(rounds):
                await client.transaction(step, "{counter}", value_from_callable=True)

        await asyncio.wait_for(
            asyncio.gather(*(work(client) for client in clients for _ in range(2))), 60
        )
        assert await clients[0].get("{counter}") == str(4 * rounds)
        assert await clients[1].transaction(step, "{counter}") == [True]
    finally:
        for client in clients:
            await client.aclose()


@pytest.mark.anyio
async def test_async_removed_watched_node_and_ejected_owner(
    redis_servers: list[RedisServer],
) -> None:
    """The watched node leaves: WatchError, nothing run; an ejected owner: OwnerEjectedError,
    nothing sent to the fallback."""
    async with AsyncShardedRedis(
        _urls(redis_servers), health=True, failure_limit=1, retry_timeout=60, **FAST
    ) as client:
        direct = {
            n: s.client(decode_responses=True) for n, s in zip(NAMES, redis_servers, strict=True)
        }
        tag = _tag_on(client, "n1")
        async with client.pipeline() as pipe:
            await pipe.watch(tag)
            await client.remove_node("n1")
            pipe.multi()
            pipe.set(tag, "x")
            with pytest.raises(redis.WatchError, match="removed"):
                await pipe.execute()
        assert all(_calls(d, "multi") == 0 for d in direct.values())

        tag = _tag_on(client, "n2")
        fallback = client.placement.get_nodes(tag)[1]
        redis_servers[2].kill()
        with pytest.raises(redis.ConnectionError):
            await client.get(tag)
        async with client.pipeline() as pipe:
            pipe.set(tag, "x")
            with pytest.raises(OwnerEjectedError):
                await pipe.execute()
        assert _calls(direct[fallback], "multi") == direct[fallback].dbsize() == 0


@pytest.mark.anyio
async def test_async_owner_dying_mid_watch_then_pipeline_reused(
    redis_servers: list[RedisServer],
) -> None:
    """The watched node dies: the read fails as redis.asyncio's (without retries it raises
    the ConnectionError itself), counted against the node; after its restart the same
    pipeline object runs transactions again."""
    async with AsyncShardedRedis(
        _urls(redis_servers), health=True, failure_limit=3, **FAST
    ) as client:
        tag = _tag_on(client, "n0")
        pipe = client.pipeline()
        await pipe.watch(tag)
        redis_servers[0].kill()
        with pytest.raises(redis.ConnectionError):
            await pipe.get(tag)
        assert client.stats()["n0"]["errors"] == 1
        await pipe.reset()
        assert not pipe.watching
        pipe.set(tag, "1")
        with pytest.raises(redis.ConnectionError):
            await pipe.execute()
        redis_servers[0].restart()
        await pipe.watch(tag)
        pipe.multi()
        assert await pipe.set(tag, "2").incr(tag).execute() == [True, 3]
        await pipe.aclose()
        assert await client.get(tag) == "3"
