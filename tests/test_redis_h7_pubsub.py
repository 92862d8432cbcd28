"""Pub/sub defects found by running redis-py 8.1's own suites through the sharded clients,
each checked against one plain server: ``Subscription`` objects given positionally, a
cancelled ``run()`` that must end, the client's ``aclose`` ending its pub/subs'
subscriptions, ``get_message`` before subscribing, and the typed refusal of the names of
redis-py's ``PubSub`` that belong to its single connection."""
# ruff: noqa: F811 - test parameters name the fixtures imported from test_redis_surface

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis
from hashring.adapters.redis import AsyncShardedRedis, ShardedRedis
from hashring.adapters.redis._surface import REFUSED_PUBSUB, RefusedAttributeError
from redis.typing import Subscription
from redis_servers import RedisServer, RedisServerFactory
from test_redis_surface import (  # noqa: F401 - fixtures: the same three servers and clients
    NAMES,
    _urls,
    anyio_backend,
    asharded,
    servers,
    sharded,
)

from hashring import UnsupportedCommandError

pytestmark = [pytest.mark.redis, pytest.mark.anyio]

NOT_SET = "pubsub connection not set: did you forget to call subscribe() or psubscribe()?"


@pytest.fixture
def plain_url(redis_server_factory: RedisServerFactory) -> str:
    """The URL of one more, unsharded server: the reference answers."""
    return redis_server_factory(1)[0].url


def _binary_names(client: ShardedRedis | AsyncShardedRedis, count: int) -> list[bytes]:
    """``count`` non-UTF-8 names owned by ``count`` different nodes."""
    chosen: dict[str, bytes] = {}
    for i in range(10_000):
        name = b"\x80\x81" + str(i).encode()
        chosen.setdefault(client.node_for(name), name)
        if len(chosen) == count:
            return list(chosen.values())
    raise AssertionError("no names on distinct nodes")  # pragma: no cover


def _message(message: dict[str, Any]) -> tuple[Any, ...]:
    return (message["type"], message["pattern"], message["channel"], message["data"])


# ------------------------------------------------------------------ Subscription objects


def _subscription_program(client: Any, channels: list[bytes]) -> list[Any]:
    """Channels, a pattern and a shard channel subscribed with handlers given as
    ``Subscription`` objects (alone, mixed with names, in a list, and with a keyword);
    every observable answer."""
    got: list[dict[str, Any]] = []
    first, second, third = channels
    pubsub = client.pubsub()
    pubsub.subscribe(Subscription(first, got.append), b"bare")
    pubsub.subscribe([Subscription(second, got.append), b"bare2"], kw=got.append)
    pubsub.psubscribe(Subscription(b"\x80p*", got.append))
    pubsub.ssubscribe(Subscription(third, got.append))
    confirmations: list[Any] = []
    deadline = time.monotonic() + 5
    while len(confirmations) < 7 and time.monotonic() < deadline:
        message = pubsub.get_message(timeout=deadline - time.monotonic())
        if message is not None:
            confirmations.append(_message(message))
    published = [client.publish(name, b"m") for name in (first, second, b"kw", b"\x80pq")]
    published.append(client.spublish(third, b"s"))
    while len(got) < 5 and time.monotonic() < deadline:
        assert pubsub.get_message(timeout=0.05) is None  # the handlers take every message
    observed = [
        sorted(confirmations, key=repr),
        published,
        sorted((_message(m) for m in got), key=repr),
        sorted((k, h == got.append if h else h) for k, h in pubsub.channels.items()),
        sorted(pubsub.patterns),
        sorted(pubsub.shard_channels),
    ]
    pubsub.close()
    return observed


def test_subscription_objects_register_their_handlers_as_one_server(
    sharded: ShardedRedis, plain_url: str
) -> None:
    channels = _binary_names(sharded, 3)
    reference = redis.Redis.from_url(plain_url)
    try:
        expected = _subscription_program(reference, channels)
        assert _subscription_program(sharded, channels) == expected
    finally:
        reference.close()
    assert len(expected[2]) == 5  # every handler ran: the comparison saw something


async def _asubscription_program(client: Any, channels: list[bytes]) -> list[Any]:
    got: list[dict[str, Any]] = []
    first, second, third = channels
    pubsub = client.pubsub()
    await pubsub.subscribe(Subscription(first, got.append), b"bare")
    await pubsub.subscribe([Subscription(second, got.append), b"bare2"], kw=got.append)
    await pubsub.psubscribe(Subscription(b"\x80p*", got.append))
    await pubsub.ssubscribe(Subscription(third, got.append))
    confirmations: list[Any] = []
    deadline = time.monotonic() + 5
    while len(confirmations) < 7 and time.monotonic() < deadline:
        message = await pubsub.get_message(timeout=deadline - time.monotonic())
        if message is not None:
            confirmations.append(_message(message))
    published = [await client.publish(name, b"m") for name in (first, second, b"kw", b"\x80pq")]
    published.append(await client.spublish(third, b"s"))
    while len(got) < 5 and time.monotonic() < deadline:
        assert await pubsub.get_message(timeout=0.05) is None
    observed = [
        sorted(confirmations, key=repr),
        published,
        sorted((_message(m) for m in got), key=repr),
        sorted((k, h == got.append if h else h) for k, h in pubsub.channels.items()),
        sorted(pubsub.patterns),
        sorted(pubsub.shard_channels),
    ]
    await pubsub.aclose()
    return observed


async def test_async_subscription_objects_register_their_handlers_as_one_server(
    asharded: AsyncShardedRedis, plain_url: str
) -> None:
    channels = _binary_names(asharded, 3)
    reference = aioredis.Redis.from_url(plain_url)
    try:
        expected = await _asubscription_program(reference, channels)
        assert await _asubscription_program(asharded, channels) == expected
    finally:
        await reference.aclose()
    assert len(expected[2]) == 5


# ------------------------------------------------------------------ run() cancellation


async def _run_and_cancel(client: Any) -> tuple[Any, ...]:
    """redis-py's TestPubSubRun::test_callbacks, then run() cancelled: what it delivered,
    whether the cancelled task ended (within 5 s) cancelled, and the tasks left behind."""
    before = asyncio.all_tasks()
    messages: asyncio.Queue[Any] = asyncio.Queue()
    pubsub = client.pubsub()
    await pubsub.subscribe(foo=messages.put_nowait)
    while True:
        message = await pubsub.get_message(timeout=5)
        assert message is not None
        if message["type"] == "subscribe":
            break
    task = asyncio.get_running_loop().create_task(pubsub.run())
    published = await client.publish("foo", "bar")
    got = _message(await asyncio.wait_for(messages.get(), 5))
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=5)
    ended = task in done and task.cancelled()
    if not ended:  # pragma: no cover - the defect: end it so the loop can close
        await pubsub.aclose()
    await pubsub.aclose()
    await asyncio.sleep(0)
    left = [t for t in asyncio.all_tasks() - before if not t.done()]
    return published, got, ended, left


@pytest.mark.parametrize("attempt", range(4))
async def test_async_run_ends_when_cancelled_after_a_callback(
    asharded: AsyncShardedRedis, plain_url: str, attempt: int
) -> None:
    """The callback's message and the cancellation arrive together: run() must end
    cancelled (it hung: asyncio.wait_for swallowed the cancellation), and no task of the
    pub/sub outlives aclose()."""
    reference = aioredis.Redis.from_url(plain_url)
    try:
        expected = await _run_and_cancel(reference)
    finally:
        await reference.aclose()
    assert expected == (1, ("message", None, b"foo", b"bar"), True, [])
    assert await _run_and_cancel(asharded) == expected


async def test_async_get_message_waiting_is_cancelled_and_aclose_leaves_no_task(
    asharded: AsyncShardedRedis,
) -> None:
    before = asyncio.all_tasks()
    pubsub = asharded.pubsub()
    await pubsub.psubscribe("x*")  # a reader on every node
    waiting = asyncio.ensure_future(pubsub.get_message(True, timeout=None))
    done, _ = await asyncio.wait({waiting}, timeout=0.2)
    assert not done  # the confirmations are skipped, then it waits for a message
    waiting.cancel()
    done, _ = await asyncio.wait({waiting}, timeout=5)
    assert waiting in done
    assert waiting.cancelled()
    assert len([t for t in asyncio.all_tasks() - before if not t.done()]) == 3
    await pubsub.aclose()
    assert [t for t in asyncio.all_tasks() - before if not t.done()] == []


# ------------------------------------------------------------------ client close


def test_closing_the_client_ends_its_pubsubs_subscriptions(
    servers: list[RedisServer], plain_url: str
) -> None:
    def attempt(make: Any) -> tuple[int, int]:
        client = make()
        pubsub = client.pubsub()
        pubsub.subscribe("foo")
        assert pubsub.get_message(timeout=5) is not None
        client.close()  # the pub/sub itself is not closed
        other = make()
        try:
            return other.publish("foo", "x"), other.pubsub_numsub("foo")[0][1]
        finally:
            other.close()

    expected = attempt(lambda: redis.Redis.from_url(plain_url))
    assert expected == (0, 0)
    assert attempt(lambda: ShardedRedis(_urls(servers))) == expected


async def test_async_closing_the_client_ends_its_pubsubs_subscriptions(
    servers: list[RedisServer], plain_url: str
) -> None:
    """redis.asyncio's aclose disconnects the pool, the pub/sub's connection included;
    reading the pub/sub again reconnects and re-subscribes. Both, as one server."""

    async def attempt(make: Any) -> tuple[Any, ...]:
        before = asyncio.all_tasks()
        client = make()
        pubsub = client.pubsub()
        await pubsub.subscribe("foo", "bar", "baz")
        for _ in range(3):
            assert await pubsub.get_message(timeout=5) is not None
        await client.aclose()
        left = [t for t in asyncio.all_tasks() - before if not t.done()]
        other = make()
        try:
            after_close = await other.publish("foo", "x")
            await pubsub.get_message(timeout=0.5)  # reconnects and re-subscribes
            after_read = await other.publish("foo", "y")
            seen = []
            deadline = time.monotonic() + 5
            while b"y" not in seen and time.monotonic() < deadline:
                message = await pubsub.get_message(timeout=0.2)
                if message is not None and message["type"] == "message":
                    seen.append(message["data"])
            await pubsub.aclose()
            return after_close, left, after_read, seen
        finally:
            await other.aclose()

    expected = await attempt(lambda: aioredis.Redis.from_url(plain_url))
    assert expected == (0, [], 1, [b"y"])
    assert await attempt(lambda: AsyncShardedRedis(_urls(servers))) == expected


# ------------------------------------------------------------------ before subscribing


async def test_async_get_message_before_subscribing_raises_as_redis_asyncio(
    asharded: AsyncShardedRedis, plain_url: str
) -> None:
    reference = aioredis.Redis.from_url(plain_url)
    try:
        for client in (reference, asharded):
            pubsub = client.pubsub()
            for timeout in (0.0, 0.05, None):
                with pytest.raises(RuntimeError, match=r"^pubsub connection not set"):
                    await pubsub.get_message(timeout=timeout)
            await pubsub.subscribe("c")
            assert (await pubsub.get_message(timeout=5))["type"] == "subscribe"
            await pubsub.aclose()
            with pytest.raises(RuntimeError) as raised:  # closed: as never subscribed
                await pubsub.get_message()
            assert str(raised.value) == NOT_SET
    finally:
        await reference.aclose()


def test_get_message_before_subscribing_returns_none_as_redis_redis(
    sharded: ShardedRedis, plain_url: str
) -> None:
    reference = redis.Redis.from_url(plain_url)
    try:
        for client in (reference, sharded):
            pubsub = client.pubsub()
            assert pubsub.get_message() is None
            assert pubsub.get_message(timeout=0.05) is None
            pubsub.close()
    finally:
        reference.close()


# ------------------------------------------------------------------ the rest of PubSub


@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_every_public_name_of_redis_pubsub_works_or_is_refused(
    flavour: str, servers: list[RedisServer]
) -> None:
    if flavour == "sync":
        reference: Any = redis.Redis(port=1).pubsub()  # never connected
        client: Any = ShardedRedis(_urls(servers))
    else:
        reference = aioredis.Redis(port=1).pubsub()
        client = AsyncShardedRedis(_urls(servers))
    pubsub = client.pubsub()
    refused = works = 0
    for name in sorted(n for n in dir(reference) if not n.startswith("_")):
        if name in REFUSED_PUBSUB:
            with pytest.raises(RefusedAttributeError, match=r"\buse\b") as raised:
                getattr(pubsub, name)
            assert isinstance(raised.value, UnsupportedCommandError)
            assert isinstance(raised.value, AttributeError)
            assert getattr(pubsub, name, "default") == "default"
            refused += 1
        else:
            value = getattr(pubsub, name)
            assert callable(value) == callable(getattr(reference, name)), name
            works += 1
    assert refused >= 12, refused
    assert works >= 20, works
    assert pubsub.encoder is client.get_encoder()
    assert pubsub.PUBLISH_MESSAGE_TYPES == reference.PUBLISH_MESSAGE_TYPES
    if flavour == "sync":
        client.close()
    else:
        asyncio.run(client.aclose())


async def test_async_close_and_reset_are_deprecated_as_redis_asyncio(
    asharded: AsyncShardedRedis,
) -> None:
    for name in ("close", "reset"):
        pubsub = asharded.pubsub()
        await pubsub.subscribe("c")
        with pytest.warns(DeprecationWarning, match=rf"{name}.*aclose"):
            await getattr(pubsub, name)()
        with pytest.raises(RuntimeError, match=r"^pubsub connection not set"):
            await pubsub.get_message()


async def test_async_connect_then_run_then_subscribe_as_redis_asyncio(
    asharded: AsyncShardedRedis, plain_url: str
) -> None:
    """redis-py's TestPubSubRun::test_late_subscribe: connect() first (get_message then
    reads instead of raising), run() before anything is subscribed, a handler subscribed
    later gets its message, and the cancelled run() ends."""

    async def attempt(client: Any) -> tuple[Any, ...]:
        messages: asyncio.Queue[Any] = asyncio.Queue()
        pubsub = client.pubsub()
        await pubsub.connect()
        assert await pubsub.get_message(timeout=0.05) is None
        task = asyncio.get_running_loop().create_task(pubsub.run())
        await pubsub.subscribe(foo=messages.put_nowait)
        deadline = time.monotonic() + 5
        while await client.pubsub_numsub("foo") != [(b"foo", 1)]:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
        published = await client.publish("foo", "bar")
        got = _message(await asyncio.wait_for(messages.get(), 5))
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=5)
        ended = task in done and task.cancelled()
        await pubsub.aclose()
        return published, got, ended

    reference = aioredis.Redis.from_url(plain_url)
    try:
        expected = await attempt(reference)
    finally:
        await reference.aclose()
    assert expected == (1, ("message", None, b"foo", b"bar"), True)
    assert await attempt(asharded) == expected
