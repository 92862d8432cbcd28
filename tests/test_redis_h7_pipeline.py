"""Pipelines as redis-py's, found by running redis-py's own suites through the sharded
clients (h7): Lua ``Script`` objects queued in a pipeline are loaded by ``execute()``
(redis-py's ``Pipeline.load_scripts``), an asyncio pipeline is awaitable, and the module
accessors are refused. Differential: each run is compared with one plain server."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis
from hashring.adapters.redis import AsyncShardedRedis, ShardedRedis, UnsupportedCommandError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis_servers import RedisServer, RedisServerFactory

pytestmark = pytest.mark.redis

NAMES = ("n0", "n1", "n2")
MULTIPLY = "local value = redis.call('GET', KEYS[1]) return value * ARGV[1]"
COUNT = "return #KEYS + #ARGV"
BROKEN = "return redis.call('INCR', KEYS[1])"  # an error at run time on a non-integer
NOT_LUA = "return ("
SCRIPTS = {"multiply": MULTIPLY, "count": COUNT, "broken": BROKEN}


def _urls(servers: list[RedisServer]) -> dict[str, str]:
    return {name: server.url for name, server in zip(NAMES, servers, strict=True)}


@pytest.fixture
def sharded(clean_redis_servers: list[RedisServer]) -> Iterator[ShardedRedis]:
    """A ShardedRedis over the three shared (flushed) servers."""
    with ShardedRedis(_urls(clean_redis_servers)) as client:
        client.script_flush()
        yield client


@pytest.fixture
def by_node(clean_redis_servers: list[RedisServer]) -> list[redis.Redis]:
    """A direct client of each node's server."""
    return [server.client() for server in clean_redis_servers]


@pytest.fixture
def plain_server(redis_server_factory: RedisServerFactory) -> RedisServer:
    """A fourth, unsharded server: the reference."""
    return redis_server_factory(1)[0]


@pytest.fixture
def plain(plain_server: RedisServer) -> redis.Redis:
    """A redis.Redis on the reference server."""
    return plain_server.client()


def _outcome(run: Callable[[], Any]) -> Any:
    """``run()``'s answer, or its exception as (class name, message), errors in answers too."""
    try:
        answer = run()
    except redis.RedisError as exc:
        return ("raised", type(exc).__name__, str(exc))
    if isinstance(answer, list):
        return [(type(a).__name__, str(a)) if isinstance(a, Exception) else a for a in answer]
    return answer


# ------------------------------------------------------------------ the programs compared

KEYS = ("a", "b", "c", "d", "{t}e")
key_st = st.sampled_from(KEYS)
op_st = st.one_of(
    st.tuples(st.just("set"), key_st, st.sampled_from(["2", "5", "x"])),
    st.tuples(st.just("get"), key_st),
    st.tuples(st.just("script"), st.just("multiply"), st.tuples(key_st), st.just((3,))),
    st.tuples(st.just("script"), st.just("count"), st.just(()), st.just((1, 2))),
    st.tuples(st.just("script"), st.just("broken"), st.tuples(key_st), st.just(())),
)
Op = tuple[Any, ...]


def _buffer(client: Any, pipe: Any, ops: list[Op]) -> None:
    """Buffer ``ops`` on ``pipe``; a script op calls a Script registered on ``client``."""
    for name, *args in ops:
        if name == "script":
            script, keys, argv = args
            client.register_script(SCRIPTS[script])(list(keys), list(argv), client=pipe)
        else:
            getattr(pipe, name)(*args)


def _program(
    client: Any, ops: list[Op], transaction: bool, raise_on_error: bool, loaded: list[str]
) -> Any:
    client.flushall()
    client.script_flush()
    for script in loaded:
        client.script_load(SCRIPTS[script])
    with client.pipeline(transaction=transaction) as pipe:
        _buffer(client, pipe, ops)
        assert len(pipe) == len(ops)
        outcome = _outcome(lambda: pipe.execute(raise_on_error=raise_on_error))
        assert len(pipe) == 0
        assert not pipe.scripts
    queued = sorted({op[1] for op in ops if op[0] == "script"})
    shas = [client.register_script(SCRIPTS[name]).sha for name in queued]
    exists = client.script_exists(*shas) if shas else []
    state = {key: (client.type(key), client.dump(key)) for key in KEYS}
    return outcome, exists, state


@settings(
    max_examples=25,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    ops=st.lists(op_st, min_size=1, max_size=6),
    transaction=st.booleans(),
    raise_on_error=st.booleans(),
    loaded=st.lists(st.sampled_from(sorted(SCRIPTS)), max_size=2, unique=True),
)
def test_scripts_in_pipelines_answer_as_one_server(
    ops: list[Op],
    transaction: bool,
    raise_on_error: bool,
    loaded: list[str],
    sharded: ShardedRedis,
    plain: redis.Redis,
) -> None:
    """Script objects queued in a pipeline (with other commands, some scripts already
    loaded): the answers, errors ("Command # N"), SCRIPT EXISTS afterwards and data of one
    server (a transaction spanning nodes is refused, nothing sent)."""
    expected = _program(plain, ops, transaction, raise_on_error, loaded)
    actual = _program(sharded, ops, transaction, raise_on_error, loaded)
    if transaction and isinstance(actual[0], tuple) and actual[0][1] == "CrossShardError":
        assert actual[2] == {key: (b"none", None) for key in KEYS}  # nothing sent
        loaded_exists = [
            name in loaded for name in sorted({op[1] for op in ops if op[0] == "script"})
        ]
        assert actual[1] == loaded_exists  # no script loaded either
        return
    assert actual == expected, ops


def test_redis_py_script_object_in_pipeline(
    sharded: ShardedRedis, by_node: list[redis.Redis]
) -> None:
    """redis-py's test_script_object_in_pipeline, through the sharded client: loaded by
    execute() on every node, the SHA unchanged, loaded again after SCRIPT FLUSH."""
    multiply = sharded.register_script(MULTIPLY)
    sha = multiply.sha
    for transaction in (True, False, True):
        sharded.script_flush()
        pipe = sharded.pipeline(transaction=transaction)
        pipe.set("a", 2)
        pipe.get("a")
        assert multiply(keys=["a"], args=[3], client=pipe) is pipe
        assert pipe.scripts == {multiply}
        assert sharded.script_exists(sha) == [False]
        assert pipe.execute() == [True, b"2", 6]
        assert multiply.sha == sha
        assert sharded.script_exists(sha) == [True]
        assert [node.script_exists(sha) for node in by_node] == [[True]] * 3


def test_a_script_that_does_not_compile_sends_nothing(
    sharded: ShardedRedis, plain: redis.Redis
) -> None:
    """SCRIPT LOAD fails: execute() raises a ResponseError, as redis-py's, before any
    command of the pipeline is sent; as redis-py, the buffer and scripts are kept."""
    for client in (plain, sharded):
        for transaction in (True, False):
            pipe = client.pipeline(transaction=transaction)
            pipe.set("a", 1)
            client.register_script(NOT_LUA)(["a"], [], client=pipe)
            with pytest.raises(redis.exceptions.ResponseError, match="Error compiling script"):
                pipe.execute()
            assert len(pipe) == 2
            assert len(pipe.scripts) == 1
            assert client.get("a") is None
            pipe.reset()
            assert not pipe.scripts


def test_a_script_in_a_watched_transaction(sharded: ShardedRedis, plain: redis.Redis) -> None:
    """WATCH, MULTI, a Script queued, EXEC: one server's answer; and while watching
    before MULTI, a Script runs at once (loading itself as redis-py's Script does)."""
    results = []
    for client in (sharded, plain):
        client.set("{t}a", 4)
        multiply = client.register_script(MULTIPLY)
        with client.pipeline() as pipe:
            pipe.watch("{t}a")
            immediate = multiply(["{t}a"], [2], client=pipe)
            pipe.multi()
            pipe.incr("{t}a")
            multiply(["{t}a"], [10], client=pipe)
            results.append((immediate, pipe.execute()))
    assert results[0] == results[1] == (8, [5, 50])


def test_the_sync_pipeline_refuses_module_accessors(sharded: ShardedRedis) -> None:
    """json(), ft(), ... raise UnsupportedCommandError naming client_for(key); nothing is
    buffered."""
    pipe = sharded.pipeline(transaction=False)
    for name in ("json", "ft", "ts", "bf", "cf", "cms", "topk", "tdigest", "vset"):
        with pytest.raises(UnsupportedCommandError, match=r"client_for\(key\)\.pipeline\(\)"):
            getattr(pipe, name)()
    assert len(pipe) == 0


# ------------------------------------------------------------------ asyncio


@pytest.fixture
def anyio_backend() -> str:
    """Run the async tests on asyncio only (redis.asyncio needs it)."""
    return "asyncio"


async def _aprogram(client: Any, transaction: bool, a: str, b: str) -> Any:
    await client.flushall()
    await client.script_flush()
    multiply = client.register_script(MULTIPLY)
    broken = client.register_script(BROKEN)
    pipe = client.pipeline(transaction=transaction)
    assert await pipe is pipe
    pipe.set(a, 2)
    assert await pipe.get(a) is pipe
    await multiply(keys=[a], args=[3], client=pipe)
    await client.register_script(COUNT)(args=[1, 2, 3], client=pipe)
    pipe.set(b, "x")
    await broken(keys=[b], client=pipe)
    answers = await pipe.execute(raise_on_error=False)
    shown = [(type(a).__name__, str(a)) if isinstance(a, Exception) else a for a in answers]
    try:
        await broken(keys=[b], client=pipe)
        await pipe.execute()
    except redis.exceptions.ResponseError as exc:
        raised = str(exc)
    exists = await client.script_exists(multiply.sha, broken.sha)
    await pipe.reset()
    return shown, raised, exists


@pytest.mark.anyio
async def test_async_scripts_in_pipelines_answer_as_one_server(
    clean_redis_servers: list[RedisServer], plain_server: RedisServer
) -> None:
    """``await pipe`` is the pipeline; AsyncScript objects queued in it (awaited, as
    redis-py's test suite does) are loaded by execute(): one server's answers, errors and
    SCRIPT EXISTS, transaction or not (the commands' keys span nodes for False)."""
    async with (
        AsyncShardedRedis(_urls(clean_redis_servers)) as client,
        aioredis.Redis.from_url(plain_server.url) as plain,
    ):
        spread = next(
            (a, b) for a in "abcdef" for b in "abcdef" if client.node_for(a) != client.node_for(b)
        )
        for transaction, (a, b) in ((False, spread), (True, ("{t}a", "{t}b"))):
            expected = await _aprogram(plain, transaction, a, b)
            assert await _aprogram(client, transaction, a, b) == expected
            assert expected[0][2] == 6
            assert expected[2] == [True, True]


@pytest.mark.anyio
async def test_async_redis_py_script_object_in_pipeline(
    clean_redis_servers: list[RedisServer], by_node: list[redis.Redis]
) -> None:
    """redis-py's asyncio test_script_object_in_pipeline through AsyncShardedRedis."""
    async with AsyncShardedRedis(_urls(clean_redis_servers)) as client:
        multiply = client.register_script(MULTIPLY)
        sha = multiply.sha
        for transaction in (True, False):
            await client.script_flush()
            pipe = client.pipeline(transaction=transaction)
            pipe.set("a", 2)
            pipe.get("a")
            assert await multiply(keys=["a"], args=[3], client=pipe) is pipe
            assert await client.script_exists(sha) == [False]
            assert await pipe.execute() == [True, b"2", 6]
            assert multiply.sha == sha
            assert not pipe.scripts
            assert [node.script_exists(sha) for node in by_node] == [[True]] * 3
        pipe = client.pipeline()
        await client.register_script(NOT_LUA)(["a"], [], client=pipe)
        pipe.set("a", 7)
        with pytest.raises(redis.exceptions.ResponseError, match="Error compiling script"):
            await pipe.execute()
        assert await client.get("a") == b"2"


@pytest.mark.anyio
async def test_the_async_pipeline_refuses_module_accessors(
    clean_redis_servers: list[RedisServer],
) -> None:
    """As the sync pipeline: typed refusals naming client_for(key), nothing buffered."""
    async with AsyncShardedRedis(_urls(clean_redis_servers)) as client:
        pipe = client.pipeline()
        for name in ("json", "ft", "ts", "bf", "cf", "cms", "topk", "tdigest", "vset"):
            with pytest.raises(UnsupportedCommandError, match=r"client_for\(key\)"):
                getattr(pipe, name)()
        assert len(pipe) == 0
        await pipe.reset()
