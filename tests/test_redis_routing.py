"""What both Redis clients do without I/O, done once: the single-key fast path (sync and
async), one ``describe`` per command, one cached encoder per membership."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
import redis
from hashring.adapters.redis import AsyncShardedRedis, ShardedRedis
from redis_servers import RedisServer

pytestmark = pytest.mark.redis

NAMES = ("n0", "n1", "n2")


def _urls(servers: list[RedisServer]) -> dict[str, str]:
    return {name: server.url for name, server in zip(NAMES, servers, strict=True)}


def _count_calls(monkeypatch: pytest.MonkeyPatch, owner: Any, name: str) -> list[int]:
    """Count the calls of ``owner.name`` (still calling it); the count is ``calls[0]``."""
    calls = [0]
    original = getattr(owner, name)

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, counted)
    return calls


def _refuse(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("a single-key command built a plan")


def test_sync_single_key_commands_build_no_plan(
    clean_redis_servers: list[RedisServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    """GET/SET/INCR of one key go straight to the owner; MGET describes its command once."""
    with ShardedRedis(_urls(clean_redis_servers), decode_responses=True) as client:
        _, table = client._command_table()
        monkeypatch.setattr(client, "_plan_for", _refuse)
        client.set("k", "v")
        assert client.get("k") == "v"
        assert client.incr("n") == 1
        monkeypatch.undo()
        described = _count_calls(monkeypatch, table, "describe")
        keys = [f"m:{i}" for i in range(50)]
        client.mset(dict.fromkeys(keys, "x"))
        assert described[0] == 1
        assert client.mget(keys) == ["x"] * 50
        assert described[0] == 2
        assert len({client.node_for(k) for k in keys}) == 3  # really split over nodes


def test_async_single_key_commands_build_no_plan(
    clean_redis_servers: list[RedisServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The asyncio client has the same fast path and describes a multi-key command once."""

    async def scenario() -> None:
        async with AsyncShardedRedis(_urls(clean_redis_servers), decode_responses=True) as c:
            _, table = await c._command_table()
            monkeypatch.setattr(c, "_plan_for", _refuse)
            await c.set("k", "v")
            assert await c.get("k") == "v"
            assert await c.incr("n") == 1
            monkeypatch.undo()
            described = _count_calls(monkeypatch, table, "describe")
            keys = [f"m:{i}" for i in range(50)]
            await c.mset(dict.fromkeys(keys, "x"))
            assert described[0] == 1
            assert await c.mget(keys) == ["x"] * 50
            assert described[0] == 2

    asyncio.run(scenario())


def _settings(encoder: Any) -> tuple[str, str, bool]:
    return encoder.encoding, encoder.encoding_errors, encoder.decode_responses


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_encoder_is_cached_and_follows_the_first_node(
    clean_redis_servers: list[RedisServer], kind: str
) -> None:
    """get_encoder() returns one object until membership changes, with the settings
    redis-py's own get_encoder() gives for the first node's client."""
    urls = {"b": clean_redis_servers[1].url, "c": clean_redis_servers[2].url}
    server = clean_redis_servers[0]

    async def scenario() -> None:
        closing: list[Callable[[], Any]] = []
        if kind == "sync":
            client: Any = ShardedRedis(urls, encoding="utf-16", decode_responses=True)
            plain: Any = redis.Redis.from_url(urls["b"], encoding="utf-16", decode_responses=True)
            other: Any = redis.Redis(host=server.host, port=server.port, encoding="latin-1")
        else:
            import redis.asyncio as aioredis

            client = AsyncShardedRedis(urls, encoding="utf-16", decode_responses=True)
            plain = aioredis.Redis.from_url(urls["b"], encoding="utf-16", decode_responses=True)
            other = aioredis.Redis(host=server.host, port=server.port, encoding="latin-1")
            closing += [client.aclose, plain.aclose, other.aclose]
        first = client.get_encoder()
        assert client.get_encoder() is first
        assert _settings(first) == _settings(plain.get_encoder()) == ("utf-16", "strict", True)
        client.add_node("a", other)  # "a" sorts first: its client's encoder is used now
        assert _settings(client.get_encoder()) == ("latin-1", "strict", False)
        if kind == "sync":
            client.remove_node("a")
            client.close()
            plain.close()
            other.close()
        else:
            await client.remove_node("a")
        assert _settings(client.get_encoder()) == _settings(first)
        for close in closing:
            await close()

    asyncio.run(scenario())
