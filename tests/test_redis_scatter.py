"""Scatter-gather without a thread per node (``_scatter``, ``_scatter_async``): multi-node
commands and pipelines write every node's request from the calling thread, then read the
replies; same answers and types as one plain server in every protocol and decoding; a
killed, hung or slow node gives redis-py's typed errors, honours the retry policy and leaves
no connection leased or out of step."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis
from hashring.adapters.redis import AsyncShardedRedis, ShardedRedis
from redis.backoff import NoBackoff
from redis.retry import Retry
from redis_servers import RedisServer, RedisServerFactory

pytestmark = pytest.mark.redis

NAMES = ("n0", "n1", "n2")
CONFIGS: dict[str, dict[str, Any]] = {
    "default": {},
    "decoded": {"decode_responses": True},
    "resp2": {"protocol": 2},
    "resp2-unified-decoded": {"protocol": 2, "legacy_responses": False, "decode_responses": True},
    "resp3": {"protocol": 3},
    "resp3-unified-decoded": {"protocol": 3, "legacy_responses": False, "decode_responses": True},
}
KEYS = [f"sc:{i}" for i in range(24)]


def _urls(servers: list[RedisServer]) -> dict[str, str]:
    return {name: server.url for name, server in zip(NAMES, servers, strict=True)}


def _no_retry(**extra: Any) -> dict[str, Any]:
    return {"retry": Retry(NoBackoff(), 0), "socket_timeout": 5, **extra}


def _in_use(client: Any) -> int:
    """Connections of ``client``'s nodes taken from their pools and not given back."""
    return sum(len(node.connection_pool._in_use_connections) for node in client.clients.values())


def _key_on(client: Any, node: str, prefix: str) -> str:
    return next(f"{prefix}:{i}" for i in range(10_000) if client.node_for(f"{prefix}:{i}") == node)


@pytest.fixture
def spawned_threads(monkeypatch: pytest.MonkeyPatch) -> list[threading.Thread]:
    """Every thread started while the test runs (observed, not replaced)."""
    started: list[threading.Thread] = []
    start = threading.Thread.start

    def observed(thread: threading.Thread) -> None:
        started.append(thread)
        start(thread)

    monkeypatch.setattr(threading.Thread, "start", observed)
    return started


# ------------------------------------------------------------------ no worker thread


def test_multi_node_commands_and_pipelines_start_no_thread(
    clean_redis_servers: list[RedisServer], spawned_threads: list[threading.Thread]
) -> None:
    """MGET, MSET, DEL, EXISTS, a keyless fan-out and a transaction=False pipeline over
    three nodes run on the calling thread: no thread is started."""
    with ShardedRedis(_urls(clean_redis_servers), decode_responses=True) as client:
        assert len({client.node_for(key) for key in KEYS}) == 3
        client.mset({key: key.upper() for key in KEYS})
        assert client.mget(KEYS) == [key.upper() for key in KEYS]
        assert client.exists(*KEYS) == len(KEYS)
        assert client.dbsize() == len(KEYS)
        pipe = client.pipeline(transaction=False)
        for key in KEYS:
            pipe.get(key)
        pipe.mget(KEYS[:5])
        assert pipe.execute() == [key.upper() for key in KEYS] + [[k.upper() for k in KEYS[:5]]]
        assert client.delete(*KEYS) == len(KEYS)
        assert _in_use(client) == 0
    assert spawned_threads == []


# ------------------------------------------------------------------ answers as one server


@pytest.fixture(params=sorted(CONFIGS))
def config(request: pytest.FixtureRequest) -> dict[str, Any]:
    return CONFIGS[request.param]


def _exchange(client: Any, pipe: Any) -> list[Any]:
    """The same multi-key commands and pipeline, on a sharded or a plain client."""
    shuffled = [*KEYS[7:], "sc:missing", *KEYS[:7]]
    answers = [
        client.mset({key: f"v-{key}".encode() for key in KEYS}),
        client.mget(shuffled),
        client.mget(*shuffled[:3]),
        client.exists(*shuffled),
        client.touch(*shuffled),
        client.unlink(KEYS[0], "sc:missing"),
        client.delete(KEYS[1], KEYS[2]),
        client.dbsize(),
    ]
    for key in shuffled:
        pipe.get(key)
    pipe.incr(KEYS[3])  # a string value: an error reply in its place
    pipe.mget(shuffled)
    pipe.hset("sc:h", mapping={"a": 1, "b": 2})
    pipe.hgetall("sc:h")
    pipe.mset({KEYS[4]: 4, KEYS[5]: 5})
    pipe.exists(*shuffled)
    answers.append([repr(a) if isinstance(a, Exception) else a for a in pipe.execute(False)])
    return answers


def test_sync_answers_are_one_servers_in_every_protocol_and_decoding(
    clean_redis_servers: list[RedisServer],
    redis_server_factory: RedisServerFactory,
    config: dict[str, Any],
) -> None:
    """Split commands and pipelines answer in the caller's order with the values and
    Python types of one plain server, error replies in their place."""
    plain = redis_server_factory(1)[0].client(**config)
    with ShardedRedis(_urls(clean_redis_servers), **config) as sharded:
        mine = _exchange(sharded, sharded.pipeline(transaction=False))
        theirs = _exchange(plain, plain.pipeline(transaction=False))
        assert mine == theirs
        assert [type(a) for a in mine[1]] == [type(a) for a in theirs[1]]
        assert _in_use(sharded) == 0


async def _async_exchange(client: Any, pipe: Any) -> list[Any]:
    shuffled = [*KEYS[7:], "sc:missing", *KEYS[:7]]
    answers = [
        await client.mset({key: f"v-{key}".encode() for key in KEYS}),
        await client.mget(shuffled),
        await client.exists(*shuffled),
        await client.touch(*shuffled),
        await client.delete(KEYS[1], KEYS[2]),
        await client.dbsize(),
    ]
    for key in shuffled:
        pipe.get(key)
    pipe.incr(KEYS[3])
    pipe.mget(shuffled)
    pipe.exists(*shuffled)
    answers.append([repr(a) if isinstance(a, Exception) else a for a in await pipe.execute(False)])
    return answers


def test_async_answers_are_one_servers_in_every_protocol_and_decoding(
    clean_redis_servers: list[RedisServer],
    redis_server_factory: RedisServerFactory,
    config: dict[str, Any],
) -> None:
    """The asyncio client's split commands and pipelines answer as one plain server."""
    server = redis_server_factory(1)[0]

    async def run() -> tuple[list[Any], list[Any], int]:
        plain = aioredis.Redis(host=server.host, port=server.port, **config)
        async with AsyncShardedRedis(_urls(clean_redis_servers), **config) as sharded:
            mine = await _async_exchange(sharded, sharded.pipeline(transaction=False))
            theirs = await _async_exchange(plain, plain.pipeline(transaction=False))
            in_use = _in_use(sharded)
        await plain.aclose()
        return mine, theirs, in_use

    mine, theirs, in_use = asyncio.run(run())
    assert mine == theirs
    assert in_use == 0


# ------------------------------------------------------------------ faults


@pytest.fixture
def fresh(redis_servers: list[RedisServer]) -> Iterator[list[RedisServer]]:
    """Three fresh servers; any paused one resumed at the end."""
    yield redis_servers
    for server in redis_servers:
        server.resume()


def _faulty_calls(client: ShardedRedis, *, writes: bool) -> list[Callable[[], Any]]:
    def pipeline() -> Any:
        pipe = client.pipeline(transaction=False)
        for key in KEYS:
            pipe.get(key)
        return pipe.execute()

    calls = [lambda: client.mget(KEYS), pipeline, lambda: client.exists(*KEYS)]
    return [*calls, lambda: client.mset(dict.fromkeys(KEYS, 1))] if writes else calls


def test_killed_node_gives_connection_error_and_leaks_no_connection(
    fresh: list[RedisServer],
) -> None:
    """With a node killed, MGET, MSET and a pipeline raise ConnectionError; the live nodes'
    connections all went back to their pools and still answer in step."""
    with ShardedRedis(_urls(fresh), **_no_retry()) as client:
        client.mset({key: key for key in KEYS})
        fresh[1].kill()
        for call in _faulty_calls(client, writes=True):
            with pytest.raises(redis.exceptions.ConnectionError):
                call()
            assert _in_use(client) == 0
        alive = [key for key in KEYS if client.node_for(key) != "n1"]
        assert client.mget(alive) == [b"1"] * len(alive)  # the MSET's live parts stay applied


def test_hung_node_times_out_and_its_late_replies_are_never_read(
    fresh: list[RedisServer],
) -> None:
    """A SIGSTOPped node makes reads (MGET, a pipeline, EXISTS) raise redis-py's
    TimeoutError after its socket timeout (nothing hangs); once it resumes, the next
    commands get their own answers, never the late replies of the timed-out ones."""
    with ShardedRedis(_urls(fresh), **_no_retry(socket_timeout=0.5)) as client:
        client.mset({key: key for key in KEYS})
        fresh[2].pause()
        for call in _faulty_calls(client, writes=False):
            began = time.monotonic()
            with pytest.raises(redis.exceptions.TimeoutError):
                call()
            assert time.monotonic() - began < 30
            assert _in_use(client) == 0
        fresh[2].resume()
        assert client.mget(KEYS) == [key.encode() for key in KEYS]
        assert client.exists(*KEYS, "sc:missing") == len(KEYS)


def test_a_slow_node_is_retried_as_its_retry_policy_says(fresh: list[RedisServer]) -> None:
    """A node that answers after several socket timeouts: with retries on timeouts the
    request is sent again until it answers; without, TimeoutError."""
    patient = {"retry": Retry(NoBackoff(), 50), "retry_on_timeout": True, "socket_timeout": 0.2}
    with (
        ShardedRedis(_urls(fresh), **patient) as client,
        ShardedRedis(_urls(fresh), **_no_retry(socket_timeout=0.2)) as impatient,
    ):
        client.mset({key: key for key in KEYS})
        assert impatient.mget(KEYS) == client.mget(KEYS)  # both clients connected
        with fresh[0].client() as direct:
            direct.execute_command("CLIENT", "PAUSE", 1000, "ALL")
        assert client.mget(KEYS) == [key.encode() for key in KEYS]
        assert _in_use(client) == 0
        with fresh[0].client() as direct:
            direct.execute_command("CLIENT", "PAUSE", 1000, "ALL")
        with pytest.raises(redis.exceptions.TimeoutError):
            impatient.mget(KEYS)
        assert _in_use(impatient) == 0


def test_async_killed_and_hung_nodes_give_typed_errors_and_leak_nothing(
    fresh: list[RedisServer],
) -> None:
    """The asyncio client: a killed node gives ConnectionError, a hung one TimeoutError;
    no connection stays leased; after the hung node resumes, answers are in step."""

    async def run() -> None:
        async with AsyncShardedRedis(_urls(fresh), **_no_retry(socket_timeout=0.5)) as client:
            await client.mset({key: key for key in KEYS})
            fresh[2].pause()
            with pytest.raises(redis.exceptions.TimeoutError):
                await client.mget(KEYS)
            assert _in_use(client) == 0
            fresh[2].resume()
            assert await client.mget(KEYS) == [key.encode() for key in KEYS]
            fresh[1].kill()
            with pytest.raises(redis.exceptions.ConnectionError):
                await client.mget(KEYS)
            pipe = client.pipeline(transaction=False)
            for key in KEYS:
                pipe.get(key)
            with pytest.raises(redis.exceptions.ConnectionError):
                await pipe.execute()
            assert _in_use(client) == 0

    asyncio.run(run())


def test_async_cancelled_scatter_leaks_no_connection(fresh: list[RedisServer]) -> None:
    """A multi-node MGET cancelled while a node hangs gives every connection back, and
    the next MGET after the node resumes reads its own answers."""

    async def run() -> None:
        async with AsyncShardedRedis(_urls(fresh), **_no_retry(socket_timeout=10)) as client:
            await client.mset({key: key for key in KEYS})
            fresh[0].pause()
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(client.mget(KEYS), 0.3)
            assert _in_use(client) == 0
            fresh[0].resume()
            assert await client.mget(KEYS) == [key.encode() for key in KEYS]

    asyncio.run(run())


def test_a_node_owning_no_key_of_the_split_is_not_asked(
    clean_redis_servers: list[RedisServer],
) -> None:
    """An MGET whose keys live on two of three nodes leases and writes to those two only."""
    with ShardedRedis(_urls(clean_redis_servers), **_no_retry()) as client:
        keys = [_key_on(client, "n0", "a"), _key_on(client, "n1", "b")]
        client.mset(dict.fromkeys(keys, "x"))
        clean_redis_servers[2].pause()
        try:
            assert client.mget(keys) == [b"x", b"x"]
        finally:
            clean_redis_servers[2].resume()
