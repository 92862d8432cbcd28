"""The sharded clients' public surface against redis-py's: every name works or is refused,
key types route by their encoded bytes, connection-wide commands are refused with a fitting
hint, and pub/sub, locks and response callbacks answer as one plain server would."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis
from hashring.adapters.redis import AsyncShardedRedis, ShardedRedis
from hashring.adapters.redis._surface import REFUSED_ATTRIBUTES, REFUSED_METHODS
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.backoff import NoBackoff
from redis.retry import Retry
from redis_servers import RedisServer, RedisServerFactory

from hashring import UnsupportedCommandError

pytestmark = [pytest.mark.redis, pytest.mark.anyio]

NAMES = ("n0", "n1", "n2")
PROVIDED_ELSEWHERE = frozenset({"transaction", "pipeline"})
"""Names another part of the client owns: only checked to exist and be callable."""


def _urls(servers: list[RedisServer]) -> dict[str, str]:
    return {name: server.url for name, server in zip(NAMES, servers, strict=True)}


@pytest.fixture
def servers(clean_redis_servers: list[RedisServer]) -> list[RedisServer]:
    return clean_redis_servers


@pytest.fixture
def sharded(servers: list[RedisServer]) -> Iterator[ShardedRedis]:
    with ShardedRedis(_urls(servers)) as client:
        yield client


@pytest.fixture
def plain(redis_server_factory: RedisServerFactory) -> redis.Redis:
    """A client of one more, unsharded server: the reference answers."""
    return redis_server_factory(1)[0].client()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def asharded(servers: list[RedisServer]) -> AsyncIterator[AsyncShardedRedis]:
    async with AsyncShardedRedis(_urls(servers)) as client:
        yield client


def _distinct(client: ShardedRedis | AsyncShardedRedis, count: int, prefix: str = "k") -> list[str]:
    """``count`` names owned by ``count`` different nodes."""
    chosen: dict[str, str] = {}
    for i in range(10_000):
        chosen.setdefault(client.node_for(f"{prefix}{i}"), f"{prefix}{i}")
        if len(chosen) == count:
            return list(chosen.values())
    raise AssertionError("no names on distinct nodes")  # pragma: no cover


# ------------------------------------------------------------------ every public name


def _public(instance: object) -> list[str]:
    return sorted(name for name in dir(instance) if not name.startswith("_"))


def _check_name(name: str, reference: object, client: object) -> str:
    """Check one public name of ``reference`` on ``client``; returns how it was decided."""
    if name in PROVIDED_ELSEWHERE:
        if not hasattr(type(client), name):
            return f"pending {name}"  # another branch of issue 11 adds it
        assert callable(getattr(client, name))
        return "elsewhere"
    if name in REFUSED_ATTRIBUTES:
        with pytest.raises(UnsupportedCommandError, match=r"\buse\b|\bpass\b|\bsee\b") as refused:
            getattr(client, name)
        assert isinstance(refused.value, AttributeError)
        assert getattr(client, name, "default") == "default"
        return "refused attribute"
    value = getattr(client, name)  # anything else must exist
    if name in REFUSED_METHODS:
        with pytest.raises(UnsupportedCommandError, match=r"\buse\b"):
            value("x")
        return "refused method"
    assert callable(value) == callable(getattr(reference, name)), name
    return "works"


def test_every_public_name_of_redis_redis_works_or_is_refused(sharded: ShardedRedis) -> None:
    reference = redis.Redis(port=1)  # never connected
    decided = Counter(_check_name(n, reference, sharded) for n in _public(reference))
    assert decided["works"] > 300, decided
    assert decided["refused method"] >= 25, decided
    assert decided["elsewhere"] + decided["pending transaction"] == 2, decided


async def test_every_public_name_of_redis_asyncio_redis_works_or_is_refused(
    asharded: AsyncShardedRedis,
) -> None:
    reference = aioredis.Redis(port=1)  # never connected
    decided = Counter(_check_name(n, reference, asharded) for n in _public(reference))
    assert decided["works"] > 300, decided
    assert decided["refused method"] >= 25, decided
    assert decided["elsewhere"] + decided["pending transaction"] == 2, decided


def test_refused_class_methods_say_what_to_use() -> None:
    with pytest.raises(UnsupportedCommandError, match=r"from_config"):
        ShardedRedis.from_url("redis://localhost:1/0")
    with pytest.raises(UnsupportedCommandError, match=r"clients\[name\]\.monitor"):
        AsyncShardedRedis.monitor(None)


# ------------------------------------------------------------------ key types

KEY_TYPES = st.one_of(
    st.binary(max_size=6).map(memoryview),
    st.binary(max_size=6).map(bytearray),
    st.integers(min_value=-(10**12), max_value=10**12),
    st.floats(allow_nan=False, width=32),
)


def _encoded(key: Any) -> bytes:
    """The bytes redis-py sends for ``key``."""
    return bytes(redis.Redis().get_encoder().encode(key))


def _owner_holds(client: ShardedRedis, key: Any, by_node: dict[str, redis.Redis]) -> bool:
    encoded = client.get_encoder().encode(key)
    return bool(by_node[client.node_for(bytes(encoded))].exists(bytes(encoded)))


@settings(
    max_examples=25,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(keys=st.lists(KEY_TYPES, min_size=2, max_size=6, unique_by=lambda k: _encoded(k)))
def test_key_types_route_by_their_encoded_bytes_on_every_path(
    sharded: ShardedRedis, plain: redis.Redis, servers: list[RedisServer], keys: list[Any]
) -> None:
    by_node = {n: redis.Redis.from_url(s.url) for n, s in zip(NAMES, servers, strict=True)}
    for client in (*by_node.values(), plain):
        client.flushall()
    pairs = [part for i, key in enumerate(keys[1:]) for part in (key, f"v{i}")]
    for target in (sharded, plain):
        target.rpush(keys[0], b"1")  # the fast one-key path
        target.execute_command("MSET", *pairs)  # split per node
    assert sharded.lrange(keys[0], 0, -1) == plain.lrange(keys[0], 0, -1) == [b"1"]
    assert _owner_holds(sharded, keys[0], by_node)
    for key in keys[1:]:
        assert _owner_holds(sharded, key, by_node)
    assert sharded.mget(keys[1:]) == plain.mget(keys[1:])
    assert sharded.exists(*keys) == plain.exists(*keys)
    pipe, reference = sharded.pipeline(transaction=False), plain.pipeline(transaction=False)
    for target in (pipe, reference):
        target.llen(keys[0]).exists(*keys).mget(keys)
    assert pipe.execute() == reference.execute()
    same = [f"{{t}}{k!r}" for k in keys]  # movable keys: asked of the server, then placed
    for target in (sharded, plain):
        target.zadd(same[0], {"m": 1})
    assert sharded.zunionstore(same[-1], same) == plain.zunionstore(same[-1], same)
    assert sharded.delete(*keys) == plain.delete(*keys)
    for client in by_node.values():
        client.close()


def test_movable_memoryview_keys_route_by_their_bytes(
    sharded: ShardedRedis, plain: redis.Redis
) -> None:
    key = memoryview(b"{m}z")
    for target in (sharded, plain):
        target.zadd(b"{m}z", {"a": 1})
        assert target.zunionstore(memoryview(b"{m}out"), [key]) == 1
    assert sharded.zrange(b"{m}out", 0, -1) == plain.zrange(b"{m}out", 0, -1) == [b"a"]
    assert sharded.client_for(b"{m}z").exists(b"{m}out") == 1


@pytest.mark.parametrize("key", [True, None, [b"a"], {"a": 1}])
def test_keys_redis_py_cannot_encode_raise_its_data_error_before_sending(
    sharded: ShardedRedis, plain: redis.Redis, key: Any
) -> None:
    for target in (plain, sharded):
        with pytest.raises(redis.exceptions.DataError):
            target.set(key, b"v")
    assert sharded.dbsize() == 0


async def test_async_key_types_route_by_their_encoded_bytes(
    asharded: AsyncShardedRedis, servers: list[RedisServer]
) -> None:
    keys: list[Any] = [memoryview(b"b"), bytearray(b"ba"), 7, 2.5, -1]
    for key in keys:
        assert await asharded.rpush(key, b"1") == 1
    assert await asharded.mget(keys) == [None] * len(keys)  # lists, not strings: no answer
    pipe = asharded.pipeline(transaction=False)
    for key in keys:
        pipe.llen(key)
    assert await pipe.execute() == [1] * len(keys)
    for key in keys:
        encoded = bytes(asharded.get_encoder().encode(key))
        owner = asharded.node_for(encoded)
        assert servers[NAMES.index(owner)].client().llen(encoded) == 1
    with pytest.raises(redis.exceptions.DataError):
        await asharded.rpush(True, b"1")


# ------------------------------------------------------------------ connection-wide commands

CONNECTION_WIDE = {
    ("SELECT", 1): r"URL|db=",
    ("SWAPDB", 0, 1): r"clients\[name\]",
    ("AUTH", "pw"): r"password=",
    ("HELLO", 3): r"protocol=",
    ("QUIT",): r"close\(\)",
    ("RESET",): r"close\(\)",
    ("MONITOR",): r"monitor\(\)",
    ("SUBSCRIBE", "c"): r"pubsub\(\)",
    ("MULTI",): r"pipeline\(transaction=True\)",
}


@pytest.mark.parametrize(("args", "hint"), list(CONNECTION_WIDE.items()))
def test_connection_wide_commands_are_refused_with_a_fitting_hint(
    sharded: ShardedRedis, servers: list[RedisServer], args: tuple[Any, ...], hint: str
) -> None:
    sharded.set("before", "1")
    with pytest.raises(UnsupportedCommandError, match=hint) as refused:
        sharded.execute_command(*args)
    if args[0] not in ("MULTI", "SUBSCRIBE"):
        assert "hash tag" not in str(refused.value)
    assert sharded.get("before") == b"1"  # the client still works, on db 0
    assert sum(s.client().dbsize() for s in servers) == 1


async def test_async_connection_wide_commands_are_refused(asharded: AsyncShardedRedis) -> None:
    for args, hint in CONNECTION_WIDE.items():
        with pytest.raises(UnsupportedCommandError, match=hint):
            await asharded.execute_command(*args)
    with pytest.raises(UnsupportedCommandError, match=r"URL|db="):
        await asharded.select(1)


# ------------------------------------------------------------------ pub/sub


def _drain(pubsub: Any, count: int, timeout: float = 5.0) -> list[dict[str, Any]]:
    """``count`` messages (or fewer, after ``timeout`` seconds)."""
    messages: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while len(messages) < count and time.monotonic() < deadline:
        message = pubsub.get_message(timeout=deadline - time.monotonic())
        if message is not None:
            messages.append(message)
    return messages


def _shape(messages: list[dict[str, Any]]) -> tuple[Counter[Any], list[Any]]:
    """Messages as a multiset (the order across nodes is free) and the confirmations'
    counts in arrival order (which must read as one server's)."""
    confirmation = {"subscribe", "unsubscribe", "psubscribe", "punsubscribe"}
    counted = [m["data"] for m in messages if m["type"] in confirmation]
    loose = Counter(
        (m["type"], m["pattern"], m["channel"], None if m["type"] in confirmation else m["data"])
        for m in messages
    )
    return loose, counted


def _pubsub_program(client: Any, channels: list[Any]) -> list[Any]:
    """Subscribe, publish, introspect, unsubscribe; every observable answer, in order."""
    observed: list[Any] = []
    pubsub = client.pubsub()
    pubsub.subscribe(*channels)
    pubsub.psubscribe("p*")
    observed.append(_shape(_drain(pubsub, len(channels) + 1)))
    for channel in [*channels, "pq"]:
        observed.append(client.publish(channel, b"hi"))
    observed.append(_shape(_drain(pubsub, len(channels) + 1)))
    observed.append(sorted(client.pubsub_channels()))
    observed.append(client.pubsub_numsub(*channels, "none"))
    observed.append(client.pubsub_numpat())
    pubsub.unsubscribe()
    pubsub.punsubscribe()
    observed.append(_shape(_drain(pubsub, len(channels) + 1)))
    observed.append(pubsub.get_message(timeout=0.05))
    observed.append(client.pubsub_numsub(*channels))
    pubsub.close()
    return observed


def test_pubsub_answers_as_one_plain_server(sharded: ShardedRedis, plain: redis.Redis) -> None:
    channels: list[Any] = [*_distinct(sharded, 3, "ch"), b"\xff\xfe"]
    assert _pubsub_program(sharded, channels) == _pubsub_program(plain, channels)


CHANNELS = ("c0", "c1", "c2", "x0", "x1", "{t}c", "{t}x")
PATTERNS = ("c*", "x*", "{t}*")
PUBSUB_STEPS = st.one_of(
    st.tuples(st.sampled_from(["subscribe", "unsubscribe", "publish"]), st.sampled_from(CHANNELS)),
    st.tuples(st.sampled_from(["psubscribe", "punsubscribe"]), st.sampled_from(PATTERNS)),
    st.tuples(st.sampled_from(["unsubscribe", "punsubscribe"]), st.none()),
)


def _step(client: Any, pubsub: Any, op: str, name: Any) -> Any:
    """One step of a pub/sub program; PUBLISH's count, else None."""
    if op == "publish":
        return client.publish(name, b"m")
    getattr(pubsub, op)(*([] if name is None else [name]))
    return None


@settings(
    max_examples=25,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(program=st.lists(PUBSUB_STEPS, min_size=1, max_size=8))
def test_random_pubsub_programs_read_as_one_plain_server(
    sharded: ShardedRedis, plain: redis.Redis, program: list[tuple[str, Any]]
) -> None:
    """After each step, the plain server's messages (up to a PING's PONG, which follows
    them on its one connection) are exactly what the sharded pub/sub delivers."""
    reference, under_test = plain.pubsub(), sharded.pubsub()
    try:
        for i, (op, name) in enumerate(program):
            published = _step(plain, reference, op, name)
            assert _step(sharded, under_test, op, name) == published, (op, name)
            expected: list[dict[str, Any]] = []
            if reference.subscribed:  # else redis-py reads nothing, and nor may we
                reference.ping(f"step{i}")
                while reference.subscribed and (message := reference.get_message(timeout=5)):
                    if message["type"] == "pong":
                        if message["data"] == f"step{i}".encode():
                            break
                        continue  # a PONG left unread while nothing was subscribed
                    expected.append(message)
            got = _drain(under_test, len(expected))
            assert _shape(got) == _shape(expected), (op, name)
        assert under_test.get_message(timeout=0.05) is None  # nothing more than one server
    finally:
        reference.close()
        under_test.close()


def test_publish_and_subscribe_meet_on_the_channels_owner_whatever_its_type(
    sharded: ShardedRedis,
) -> None:
    pubsub = sharded.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(b"mv", "{tag}a", 12)
    assert sharded.publish(memoryview(b"mv"), b"1") == 1
    assert sharded.publish(bytearray(b"mv"), b"2") == 1
    assert sharded.publish("12", b"3") == 1
    assert sharded.publish("{tag}a", b"4") == 1
    owner = sharded.node_for("{tag}b")
    assert sharded.clients[owner].pubsub_numsub("{tag}a") == [(b"{tag}a", 1)]
    assert sorted(m["data"] for m in _drain(pubsub, 4)) == [b"1", b"2", b"3", b"4"]
    pubsub.close()


def test_pubsub_handlers_and_run_in_thread(sharded: ShardedRedis) -> None:
    received: list[Any] = []
    arrived = threading.Event()
    channels = _distinct(sharded, 3, "h")

    def handler(message: dict[str, Any]) -> None:
        received.append(message["channel"])
        if len(received) == len(channels) + 1:
            arrived.set()

    pubsub = sharded.pubsub()
    pubsub.subscribe(**{channel: handler for channel in channels})
    pubsub.psubscribe(**{"pat*": handler})
    bare = sharded.pubsub()
    bare.subscribe("nohandler")
    with pytest.raises(redis.exceptions.PubSubError):
        bare.run_in_thread()
    bare.close()
    thread = pubsub.run_in_thread(sleep_time=0.05, daemon=True)
    try:
        deadline = time.monotonic() + 5
        while sharded.pubsub_numpat() < 1 and time.monotonic() < deadline:
            time.sleep(0.01)  # the subscriptions are sent before the thread starts
        for channel in channels:
            assert sharded.publish(channel, b"x") == 1
        assert sharded.publish("pattern", b"y") == 1
        assert arrived.wait(5)
        assert pubsub.patterns == {b"pat*": handler}
    finally:
        thread.stop()
        thread.join(5)
    assert sorted(received) == sorted([c.encode() for c in channels] + [b"pattern"])
    assert pubsub.patterns == {}  # the thread closes the pub/sub when it stops, as redis-py


def test_spublish_reaches_ssubscribe_on_the_owner(sharded: ShardedRedis) -> None:
    channels = _distinct(sharded, 2, "s")
    pubsub = sharded.pubsub()
    pubsub.ssubscribe(*channels)
    confirmations = _drain(pubsub, 2)
    assert sorted(m["data"] for m in confirmations) == [1, 2]
    for channel in channels:
        assert sharded.spublish(channel, b"z") == 1
    got = _drain(pubsub, 2)
    assert sorted(m["channel"] for m in got) == sorted(c.encode() for c in channels)
    assert sharded.pubsub_shardnumsub(*channels) == [(c.encode(), 1) for c in channels]
    pubsub.close()


async def _adrain(pubsub: Any, count: int, timeout: float = 5.0) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    loop_deadline = time.monotonic() + timeout
    while len(messages) < count and time.monotonic() < loop_deadline:
        message = await pubsub.get_message(timeout=loop_deadline - time.monotonic())
        if message is not None:
            messages.append(message)
    return messages


async def test_async_pubsub_answers_as_one_plain_server(
    asharded: AsyncShardedRedis, redis_server_factory: RedisServerFactory
) -> None:
    async def program(client: Any, channels: list[Any]) -> list[Any]:
        observed: list[Any] = []
        pubsub = client.pubsub()
        await pubsub.subscribe(*channels)
        await pubsub.psubscribe("p*")
        observed.append(_shape(await _adrain(pubsub, len(channels) + 1)))
        for channel in [*channels, "pq"]:
            observed.append(await client.publish(channel, b"hi"))
        observed.append(_shape(await _adrain(pubsub, len(channels) + 1)))
        observed.append(await client.pubsub_numsub(*channels))
        observed.append(await client.pubsub_numpat())
        await pubsub.unsubscribe()
        await pubsub.punsubscribe()
        observed.append(_shape(await _adrain(pubsub, len(channels) + 1)))
        await pubsub.aclose()
        return observed

    channels: list[Any] = [*_distinct(asharded, 3, "ach"), b"\xff"]
    reference = aioredis.Redis.from_url(redis_server_factory(1)[0].url)
    try:
        assert await program(asharded, channels) == await program(reference, channels)
    finally:
        await reference.aclose()


async def _astep(client: Any, pubsub: Any, op: str, name: Any) -> Any:
    if op == "publish":
        return await client.publish(name, b"m")
    await getattr(pubsub, op)(*([] if name is None else [name]))
    return None


@settings(
    max_examples=15,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(program=st.lists(PUBSUB_STEPS, min_size=1, max_size=8))
def test_async_random_pubsub_programs_read_as_one_plain_server(
    servers: list[RedisServer], plain: redis.Redis, program: list[tuple[str, Any]]
) -> None:
    """As the synchronous test; redis.asyncio's PubSub reads whatever comes, subscribed
    or not, so every step ends with the PONG of a PING on the plain server."""
    url = plain.connection_pool.connection_kwargs
    reference_url = f"redis://{url['host']}:{url['port']}/0"

    async def run() -> None:
        async with AsyncShardedRedis(_urls(servers)) as client:
            one = aioredis.Redis.from_url(reference_url)
            reference, under_test = one.pubsub(), client.pubsub()
            try:
                for i, (op, name) in enumerate(program):
                    published = await _astep(one, reference, op, name)
                    assert await _astep(client, under_test, op, name) == published
                    await reference.ping(f"step{i}")
                    expected: list[dict[str, Any]] = []
                    while (message := await reference.get_message(timeout=5)) is not None:
                        if message["type"] == "pong":
                            break
                        expected.append(message)
                    got = await _adrain(under_test, len(expected))
                    assert _shape(got) == _shape(expected), (op, name)
                if any(op != "publish" for op, _ in program):
                    assert await under_test.get_message(timeout=0.05) is None
                else:  # no pub/sub command ever sent: redis.asyncio raises too (only our
                    # PINGs connected the reference)
                    with pytest.raises(RuntimeError, match="pubsub connection not set"):
                        await under_test.get_message(timeout=0.05)
            finally:
                await reference.aclose()
                await under_test.aclose()
                await one.aclose()

    asyncio.run(run())


async def test_async_listen_yields_every_nodes_messages(asharded: AsyncShardedRedis) -> None:
    channels = _distinct(asharded, 3, "al")
    pubsub = asharded.pubsub(ignore_subscribe_messages=True)
    await pubsub.subscribe(*channels)
    for channel in channels:
        assert await asharded.publish(channel, channel) == 1
    seen = []
    async for message in pubsub.listen():
        if message is not None:
            seen.append(message["data"])
        if len(seen) == len(channels):
            break
    assert sorted(seen) == sorted(c.encode() for c in channels)
    await pubsub.aclose()


# ------------------------------------------------------------------ locks


def test_lock_lives_on_the_names_owner_and_excludes(
    sharded: ShardedRedis, servers: list[RedisServer]
) -> None:
    for name in _distinct(sharded, 3, "lock"):
        lock = sharded.lock(name, timeout=10)
        assert lock.acquire(blocking=False)
        assert servers[NAMES.index(sharded.node_for(name))].client().exists(name) == 1
        assert not sharded.lock(name).acquire(blocking=False)
        assert lock.owned()
        assert lock.locked()
        assert lock.extend(5)
        lock.release()
        assert not lock.locked()
    with sharded.lock("ctx", blocking_timeout=1):
        assert sharded.get("ctx") is not None


async def test_async_lock_lives_on_the_names_owner(
    asharded: AsyncShardedRedis, servers: list[RedisServer]
) -> None:
    for name in _distinct(asharded, 3, "alock"):
        lock = asharded.lock(name, timeout=10)
        assert await lock.acquire(blocking=False)
        assert servers[NAMES.index(asharded.node_for(name))].client().exists(name) == 1
        assert not await asharded.lock(name).acquire(blocking=False)
        assert await lock.owned()
        await lock.release()
        assert not await lock.locked()


# ------------------------------------------------------------------ callbacks, retry, init


def _wrap(response: Any, **options: Any) -> tuple[str, Any]:
    return ("wrapped", response)


def test_response_callbacks_change_answers_as_on_redis_redis(
    sharded: ShardedRedis, plain: redis.Redis, redis_server_factory: RedisServerFactory
) -> None:
    keys = _distinct(sharded, 3)
    for target in (sharded, plain):
        target.mset({key: key for key in keys})
        target.set_response_callback("GET", _wrap)
    assert [sharded.get(k) for k in keys] == [plain.get(k) for k in keys]
    assert sharded.response_callbacks["get"] is _wrap
    sharded.add_node("n3", redis_server_factory(1)[0].url)
    assert sharded.clients["n3"].response_callbacks["GET"] is _wrap
    keys = _distinct(sharded, 4)
    for target in (sharded, plain):
        target.mset({key: key for key in keys})
    assert [sharded.get(k) for k in keys] == [plain.get(k) for k in keys]
    for target in (sharded, plain):
        del target.response_callbacks["GET"]
    assert (
        [sharded.get(k) for k in keys] == [plain.get(k) for k in keys] == [k.encode() for k in keys]
    )
    assert "GET" not in sharded.response_callbacks
    with pytest.raises(KeyError):
        del sharded.response_callbacks["GET"]


def test_a_split_command_with_a_custom_callback_is_refused_before_sending(
    sharded: ShardedRedis, plain: redis.Redis
) -> None:
    keys = _distinct(sharded, 3)
    tagged = [f"{{t}}{k}" for k in keys]
    for target in (sharded, plain):
        target.mset({key: "v" for key in tagged})
        target.set_response_callback("MGET", _wrap)
        target.set_response_callback("DBSIZE", _wrap)
    assert sharded.mget(tagged) == plain.mget(tagged)  # one node: as redis.Redis
    with pytest.raises(UnsupportedCommandError, match=r"clients\[name\]"):
        sharded.mget(keys)
    with pytest.raises(UnsupportedCommandError, match="callback"):
        sharded.dbsize()
    pipe = sharded.pipeline(transaction=False)
    pipe.dbsize()
    with pytest.raises(UnsupportedCommandError, match="callback"):
        pipe.execute()


def test_set_retry_applies_to_every_node(sharded: ShardedRedis) -> None:
    retry = Retry(NoBackoff(), 2)
    sharded.set_retry(retry)
    assert sharded.get_retry() is retry
    assert all(client.get_retry() is retry for client in sharded.clients.values())
    assert sharded.connection is None


async def test_async_callbacks_initialize_and_await(asharded: AsyncShardedRedis) -> None:
    assert await asharded is asharded
    assert await asharded.initialize() is asharded
    asharded.set_response_callback("GET", _wrap)
    await asharded.set("k", "v")
    assert await asharded.get("k") == ("wrapped", b"v")
    asharded.set_response_callback("KEYS", _wrap)
    with pytest.raises(UnsupportedCommandError, match="callback"):
        await asharded.keys()
    with pytest.raises(UnsupportedCommandError, match="clients"):
        asharded.connection_pool  # noqa: B018
