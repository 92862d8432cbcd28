"""AsyncShardedRedis on real redis-servers: the asyncio twin of the ShardedRedis behaviours."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis
from hashring.adapters.redis import AsyncShardedRedis
from redis.backoff import NoBackoff
from redis.retry import Retry
from redis_servers import RedisServer, RedisServerFactory

from hashring import CrossShardError, InvalidOptionError, UnsupportedCommandError

pytestmark = [pytest.mark.redis, pytest.mark.anyio]

Servers = list[RedisServer]


@pytest.fixture
def anyio_backend() -> str:
    """Run the async tests on asyncio only (redis.asyncio needs it)."""
    return "asyncio"


def urls(servers: Servers) -> dict[str, str]:
    """node-0, node-1, ... -> the servers' URLs."""
    return {f"node-{i}": server.url for i, server in enumerate(servers)}


@pytest.fixture
def shared(clean_redis_servers: Servers) -> Iterator[Servers]:
    """The three shared servers, flushed before the test and again after it."""
    yield clean_redis_servers
    for server in clean_redis_servers:
        server.flushall()


@pytest.fixture
async def sharded(shared: Servers) -> AsyncIterator[AsyncShardedRedis]:
    """A decoding AsyncShardedRedis over the three shared servers."""
    async with AsyncShardedRedis(urls(shared), decode_responses=True) as client:
        yield client


async def named_connections(server: RedisServer, name: str, expected: int | None = None) -> int:
    """Connections to ``server`` named ``name``; with ``expected``, poll up to 3 s for it."""
    async with aioredis.Redis.from_url(server.url) as observer:
        for _ in range(150):
            count = sum(1 for c in await observer.client_list() if c.get("name") == name)
            if expected is None or count == expected:
                break
            await asyncio.sleep(0.02)
        return count


def keys_on_distinct_nodes(client: AsyncShardedRedis, n: int = 2) -> list[str]:
    """``n`` keys owned by ``n`` different nodes."""
    found: dict[str, str] = {}
    for i in range(1000):
        found.setdefault(client.node_for(f"k{i}"), f"k{i}")
        if len(found) == n:
            return list(found.values())
    raise AssertionError("keys did not spread over enough nodes")


async def test_random_sequence_matches_one_plain_server(
    redis_server_factory: RedisServerFactory, sharded: AsyncShardedRedis
) -> None:
    """set/get/mget/mset/delete/exists answer as a plain redis.asyncio client on a 4th server."""
    (reference_server,) = redis_server_factory(1)
    rng = random.Random(20240611)
    keys = [f"key:{i}" for i in range(40)]
    operations: list[tuple[str, Callable[[Any], Any]]] = []
    for step in range(300):
        op = rng.choice(["set", "get", "mget", "mset", "delete", "exists"])
        sample = rng.sample(keys, rng.randint(1, 8))
        key, value = sample[0], f"v{step}"
        calls: dict[str, Callable[[Any], Any]] = {
            "set": lambda c, key=key, value=value: c.set(key, value),
            "get": lambda c, key=key: c.get(key),
            "mget": lambda c, sample=sample: c.mget(sample),
            "mset": lambda c, sample=sample, value=value: c.mset(dict.fromkeys(sample, value)),
            "delete": lambda c, sample=sample: c.delete(*sample),
            "exists": lambda c, sample=sample: c.exists(*sample),
        }
        operations.append((op, calls[op]))
    async with aioredis.Redis.from_url(reference_server.url, decode_responses=True) as plain:
        for step, (op, call) in enumerate(operations):
            assert await call(sharded) == await call(plain), f"step {step}: {op}"
        assert sorted([k async for k in sharded.scan_iter()]) == sorted(await plain.keys())
    assert all([await c.dbsize() > 0 for c in sharded.clients.values()])


async def test_keys_spread_over_every_node_and_live_on_their_owner(
    sharded: AsyncShardedRedis,
) -> None:
    """300 keys land on all three nodes, each key only on the node node_for names."""
    keys = [f"user:{i}" for i in range(300)]
    await sharded.mset({key: key.upper() for key in keys})
    for name, client in sharded.clients.items():
        expected = {key for key in keys if sharded.node_for(key) == name}
        assert expected, f"{name} owns no key"
        assert set(await client.keys()) == expected
    assert await sharded.mget(keys) == [key.upper() for key in keys]


async def test_fan_out_dbsize_keys_ping_info(sharded: AsyncShardedRedis) -> None:
    """DBSIZE sums, KEYS concatenates, PING succeeds, INFO sums the keyspace."""
    keys = [f"fan:{i}" for i in range(60)]
    await sharded.mset(dict.fromkeys(keys, "1"))
    per_node = [await c.dbsize() for c in sharded.clients.values()]
    assert await sharded.dbsize() == sum(per_node) == 60
    assert sorted(await sharded.keys("fan:*")) == sorted(keys)
    assert await sharded.ping() is True
    info = await sharded.info("keyspace")
    assert info["db0"]["keys"] == 60


async def test_scan_iter_and_scan_cursor_return_every_key_once(
    sharded: AsyncShardedRedis,
) -> None:
    """scan_iter and the composite scan() cursor walk every node and yield each key once."""
    keys = {f"scan:{i}" for i in range(500)}
    await sharded.mset(dict.fromkeys(keys, "x"))
    iterated = [key async for key in sharded.scan_iter(match="scan:*", count=40)]
    assert len(iterated) == len(keys)
    assert set(iterated) == keys
    cursor, walked = 0, []
    while True:
        cursor, batch = await sharded.scan(cursor, count=40)
        walked.extend(batch)
        if cursor == 0:
            break
    assert sorted(walked) == sorted(keys)


async def test_pipeline_order_and_raise_on_error(sharded: AsyncShardedRedis) -> None:
    """Answers come back in buffering order; errors follow redis-py's raise_on_error rules."""
    a, b, c = keys_on_distinct_nodes(sharded, 3)
    async with sharded.pipeline(transaction=False) as pipe:
        pipe.set(a, "1").set(b, "text").incr(a).incr(b).mget([a, b, c]).get(c).delete(a, b)
        assert len(pipe) == 7
        results = await pipe.execute(raise_on_error=False)
        assert len(pipe) == 0
    assert results[:3] == [True, True, 2]
    assert isinstance(results[3], redis.ResponseError)
    assert results[4:] == [["2", "text", None], None, 2]

    pipe = sharded.pipeline(transaction=False)
    pipe.set(a, "x").incr(a).set(c, "after")
    with pytest.raises(redis.ResponseError):
        await pipe.execute()
    assert await sharded.mget([a, c]) == ["x", "after"]  # the other commands still ran
    assert await sharded.pipeline().execute() == []


async def test_transaction_pipeline_stays_on_one_node(sharded: AsyncShardedRedis) -> None:
    """transaction=True runs MULTI/EXEC on one node and refuses spanning nodes before sending."""
    a, b = keys_on_distinct_nodes(sharded)
    pipe = sharded.pipeline(transaction=True)
    pipe.set(a, "1").set(b, "2")
    with pytest.raises(CrossShardError) as raised:
        await pipe.execute()
    assert set(raised.value.nodes) == {sharded.node_for(a), sharded.node_for(b)}
    assert await sharded.exists(a, b) == 0
    pipe = sharded.pipeline(transaction=True)
    pipe.set("{cart:7}items", "3").incrby("{cart:7}items", 2).get("{cart:7}items")
    assert await pipe.execute() == [True, 5, "5"]


async def test_cross_shard_and_unsupported_commands_send_nothing(
    sharded: AsyncShardedRedis,
) -> None:
    """Unsplittable multi-node commands raise CrossShardError; connection state is refused."""
    a, b = keys_on_distinct_nodes(sharded)
    await sharded.set(a, "1")
    with pytest.raises(CrossShardError):
        await sharded.rename(a, b)
    with pytest.raises(CrossShardError):
        await sharded.msetnx({a: "2", b: "2"})
    assert await sharded.mget([a, b]) == ["1", None]
    for args in (("MULTI",), ("WATCH", a), ("SELECT", 1), ("SCAN", 0)):
        with pytest.raises(UnsupportedCommandError):
            await sharded.execute_command(*args)
    with pytest.raises(UnsupportedCommandError):
        await sharded.select(1)
    await sharded.set("{t}one", "1")
    assert await sharded.rename("{t}one", "{t}two") is True
    assert await sharded.eval("return redis.call('GET', KEYS[1])", 1, "{t}two") == "1"


async def test_500_concurrent_mixed_calls_on_300_keys(shared: Servers) -> None:
    """asyncio.gather of 500 mixed get/set calls, from a cold client, answers every one right."""
    nodes = urls(shared)
    keys = [f"c:{i}" for i in range(300)]
    async with AsyncShardedRedis(nodes, decode_responses=True) as setup:
        await setup.mset({key: f"old:{key}" for key in keys[200:]})
    rng = random.Random(7)
    calls: list[tuple[str, str]] = [("set", key) for key in keys[:200]]
    calls += [("get", rng.choice(keys[200:])) for _ in range(300)]
    rng.shuffle(calls)
    async with AsyncShardedRedis(nodes, decode_responses=True) as client:
        answers = await asyncio.gather(
            *(
                client.set(key, f"new:{key}") if op == "set" else client.get(key)
                for op, key in calls
            )
        )
        for (op, key), answer in zip(calls, answers, strict=True):
            assert answer == (True if op == "set" else f"old:{key}"), (op, key)
        expected = [f"new:{key}" for key in keys[:200]] + [f"old:{key}" for key in keys[200:]]
        assert await client.mget(keys) == expected
        assert sum(int(s["commands"]) for s in client.stats().values()) >= 500


@pytest.mark.parametrize(
    "target", ["http://x", "redis://host:notaport", "localhost:7000", 5, None, redis.Redis()]
)
def test_bad_targets_raise_invalid_option(target: Any) -> None:
    """A target that is neither a redis/rediss/unix URL nor a redis.asyncio.Redis is refused."""
    with pytest.raises(InvalidOptionError, match="node 'a'"):
        AsyncShardedRedis({"a": target})


def test_repr_hides_passwords() -> None:
    """repr shows each node's URL with its password redacted, or 'client'."""
    given = aioredis.Redis()
    client = AsyncShardedRedis({"a": "redis://:s3cret@127.0.0.1:1/0", "b": given})
    assert "s3cret" not in repr(client)
    assert "a=redis://:***@127.0.0.1:1/0" in repr(client)
    assert "b=client" in repr(client)


async def test_membership_from_config_and_closing(redis_servers: Servers, tmp_path: Path) -> None:
    """from_config places keys; add/remove_node move only their keys; aclose closes ours only."""
    first, second, third = redis_servers
    config = tmp_path / "topology.toml"
    config.write_text(f'[nodes.a]\nurl = "{first.url}"\n[nodes.b]\nurl = "{second.url}"\n')
    given = aioredis.Redis.from_url(third.url, decode_responses=True, client_name="given")
    async with AsyncShardedRedis.from_config(
        config, decode_responses=True, client_name="made"
    ) as client:
        keys = [f"m:{i}" for i in range(200)]
        await client.mset(dict.fromkeys(keys, "v"))
        before = {key: client.node_for(key) for key in keys}
        assert set(before.values()) == {"a", "b"}
        client.add_node("c", given)
        moved = [key for key in keys if client.node_for(key) != before[key]]
        assert moved
        assert all(client.node_for(key) == "c" for key in moved)
        assert await client.mget(moved) == [None] * len(moved)  # not migrated: new owner
        await client.remove_node("c")
        assert {key: client.node_for(key) for key in keys} == before
        assert await client.mget(keys) == ["v"] * 200
        assert client.get_connection_kwargs()["decode_responses"] is True
        assert await named_connections(first, "made") >= 1
    assert [await named_connections(s, "made", 0) for s in (first, second)] == [0, 0]
    assert await named_connections(third, "given") >= 1  # a client passed in stays open
    assert await given.ping() is True
    await given.aclose()


async def test_health_ejects_a_dead_node_and_read_fallback(redis_servers: Servers) -> None:
    """With health on, a killed node's keys move to the next node; read_fallback finds old keys."""
    nodes = urls(redis_servers)
    no_retry = {"retry": Retry(NoBackoff(), 0), "socket_connect_timeout": 2}
    async with (
        AsyncShardedRedis(dict(list(nodes.items())[:2]), decode_responses=True) as old,
        AsyncShardedRedis(
            nodes, decode_responses=True, read_fallback=old, health=True, failure_limit=1,
            **no_retry,
        ) as new,
    ):  # fmt: skip
        keys = [f"h:{i}" for i in range(100)]
        await old.mset(dict.fromkeys(keys, "old"))
        moved = [key for key in keys if new.node_for(key) == "node-2"]
        assert moved
        assert await new.mget(keys) == ["old"] * 100
        assert await new.get(moved[0]) == "old"

        redis_servers[2].kill()
        with pytest.raises(redis.ConnectionError):
            await new.set(moved[0], "fresh")
        assert new.stats()["node-2"]["ejected"] is True
        assert new.node_for(moved[0]) != "node-2"
        assert await new.set(moved[0], "fresh") is True
        assert await new.get(moved[0]) == "fresh"
