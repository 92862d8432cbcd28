"""The migration window's building blocks on real servers: a gated call answers exactly as
the command sent directly (RESP2 and RESP3, decoded or not, errors too) and runs nothing once
the marker is set; pulls move a key once however many race, keep TTLs, and never undo a
delete."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis
from hashring.adapters.redis._window import (
    Destination,
    gated_call,
    gated_call_async,
    marker_key,
    pull,
    pull_async,
)

from tests.redis_servers import RedisServer, RedisServerFactory

pytestmark = pytest.mark.redis

MARKER = marker_key("0123456789abcdef")

# Commands with the reply shapes redis-py parses: nil, int, bulk, status, arrays with nils,
# maps (HGETALL, RESP3), sets, doubles (ZSCORE, INCRBYFLOAT, RESP3), nested arrays (ZRANGE
# WITHSCORES, XRANGE, LPOS, SCAN-like), and errors.
SETUP: list[tuple[Any, ...]] = [
    ("SET", "s", "value"),
    ("HSET", "h", "a", "1", "b", "2"),
    ("RPUSH", "l", "x", "y", "x"),
    ("SADD", "set", "m1", "m2"),
    ("ZADD", "z", "1.5", "a", "2", "b"),
    ("XADD", "x", "1-1", "f", "v"),
]
COMMANDS: list[tuple[Any, ...]] = [
    ("GET", "s"),
    ("GET", "missing"),
    ("SET", "s2", "v", "GET"),
    ("SET", "s", "v2", "NX"),
    ("SET", "s3", "v"),
    ("INCR", "n"),
    ("INCRBYFLOAT", "f", "1.25"),
    ("APPEND", "s", "!"),
    ("HGETALL", "h"),
    ("HMGET", "h", "a", "zz", "b"),
    ("HINCRBYFLOAT", "h", "c", "0.5"),
    ("LRANGE", "l", "0", "-1"),
    ("LPOS", "l", "x", "COUNT", "0"),
    ("SMEMBERS", "set"),
    ("SMISMEMBER", "set", "m1", "no"),
    ("ZSCORE", "z", "a"),
    ("ZRANGE", "z", "0", "-1", "WITHSCORES"),
    ("ZINCRBY", "z", "1", "a"),
    ("XRANGE", "x", "-", "+"),
    ("TTL", "s"),
    ("EXPIRE", "s", "100"),
    ("TYPE", "h"),
    ("DEL", "s3"),
    ("EXISTS", "s", "h"),
]


def direct(client: redis.Redis, args: tuple[Any, ...]) -> Any:
    try:
        return ("ok", client.execute_command(*args))
    except redis.ResponseError as exc:
        return ("error", str(exc))


def through_gate(client: redis.Redis, args: tuple[Any, ...]) -> Any:
    try:
        gated = gated_call(client, MARKER, args)
    except redis.ResponseError as exc:
        return ("error", str(exc))
    assert gated.ran
    return ("ok", gated.reply)


@pytest.mark.parametrize("protocol", [2, 3])
@pytest.mark.parametrize("decode", [False, True])
def test_gated_replies_equal_direct_replies(
    redis_server_factory: RedisServerFactory, protocol: int, decode: bool
) -> None:
    """Two servers set up alike: every command answered through the gate on one equals the
    same command sent directly to the other, after redis-py's own parsing; state too."""
    a, b = redis_server_factory(2)
    one = a.client(protocol=protocol, decode_responses=decode)
    two = b.client(protocol=protocol, decode_responses=decode)
    for args in SETUP:
        one.execute_command(*args)
        two.execute_command(*args)
    wrong = [("HGET", "s", "a"), ("GET",), ("SET", "k", "v", "NX", "XX")]  # errors both ways
    for args in [*COMMANDS, *wrong]:
        expected = direct(one, args)
        got = through_gate(two, args)
        assert got == expected, args
    assert sorted(one.keys()) == sorted(two.keys())


def test_the_marker_stops_the_gate(redis_server_factory: RedisServerFactory) -> None:
    """With the marker set nothing runs: the write is left for the new owner."""
    (server,) = redis_server_factory(1)
    client = server.client()
    assert gated_call(client, MARKER, ("SET", "k", "1")).ran
    client.set(MARKER, "1")
    gated = gated_call(client, MARKER, ("SET", "k", "2"))
    assert gated == type(gated)(False)
    assert client.get("k") == b"1"


def test_a_failed_or_refused_command_leaves_the_connection_usable(
    redis_server_factory: RedisServerFactory,
) -> None:
    """Refused when queued, or failing when run: the server's own error, then the next gated
    call on the same pool answers; a killed node is a ConnectionError."""
    (server,) = redis_server_factory(1)
    client = server.client(max_connections=1)
    with pytest.raises(redis.ResponseError, match=r"^wrong number of arguments"):
        gated_call(client, MARKER, ("GET",))
    client.rpush("l", "x")
    with pytest.raises(redis.ResponseError, match=r"^WRONGTYPE"):
        gated_call(client, MARKER, ("GET", "l"))
    assert gated_call(client, MARKER, ("LLEN", "l")).reply == 1
    server.kill()
    with pytest.raises(redis.ConnectionError):
        gated_call(client, MARKER, ("LLEN", "l"))


def pair(factory: RedisServerFactory) -> tuple[RedisServer, RedisServer, Destination]:
    old, new = factory(2)
    return old, new, Destination.of(new.client())


def test_pull_moves_once_keeps_ttl_and_reports_nokey(
    redis_server_factory: RedisServerFactory,
) -> None:
    """A pull moves the value and its TTL; a second pull finds NOKEY; a key already on the
    destination is BUSYKEY and stays on both. Asked for a done marker, the same round trip
    says whether it is on the old owner, and a BUSYKEY then leaves the connection usable."""
    old_server, new_server, destination = pair(redis_server_factory)
    old, new = old_server.client(), new_server.client()
    old.set("k", "v", px=600_000)
    assert pull(old, destination, ["k"], timeout_ms=5000) == (True, False)
    assert old.exists("k") == 0
    assert new.get("k") == b"v"
    assert 0 < new.pttl("k") <= 600_000
    assert pull(old, destination, ["k"], timeout_ms=5000) == (False, False)
    old.set("both", "old")
    new.set("both", "new")
    with pytest.raises(redis.ResponseError, match="BUSYKEY"):
        pull(old, destination, ["both"], timeout_ms=5000)
    assert (old.get("both"), new.get("both")) == (b"old", b"new")
    old.set("j", "w")
    assert pull(old, destination, ["j"], timeout_ms=5000, done="d") == (True, False)
    old.set("d", "1")
    assert pull(old, destination, ["j"], timeout_ms=5000, done="d") == (False, True)
    single = old_server.client(max_connections=1)
    with pytest.raises(redis.ResponseError, match="BUSYKEY"):
        pull(single, destination, ["both"], timeout_ms=5000, done="d")
    [kept] = single.connection_pool._available_connections  # both replies read: not dropped
    assert kept._sock is not None
    assert single.get("both") == b"old"
    assert new.get("d") is None  # the done marker is the old owner's own


def test_racing_pulls_and_a_delete_never_resurrect(
    redis_server_factory: RedisServerFactory,
) -> None:
    """Eight threads pull the same 200 keys while another pulls then deletes each: every key
    moved exactly once, and every deleted key is gone from both nodes."""
    old_server, new_server, destination = pair(redis_server_factory)
    old = old_server.client()
    keys = [f"k{i}" for i in range(200)]
    old.mset({key: f"v-{key}" for key in keys})
    moved = [0]
    lock = threading.Lock()
    start = threading.Barrier(9)

    def puller() -> None:
        client = old_server.client()
        start.wait()
        for key in keys:
            if pull(client, destination, [key], timeout_ms=5000)[0]:
                with lock:
                    moved[0] += 1

    def deleter() -> None:
        client, target = old_server.client(), new_server.client()
        start.wait()
        for key in keys[::2]:
            pull(client, destination, [key], timeout_ms=5000)
            target.delete(key)

    threads = [threading.Thread(target=puller) for _ in range(8)]
    threads.append(threading.Thread(target=deleter))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    new = new_server.client()
    assert old.dbsize() == 0
    assert moved[0] <= len(keys)
    assert sorted(k.decode() for k in new.scan_iter()) == sorted(keys[1::2])
    assert all(new.get(key) == f"v-{key}".encode() for key in keys[1::2])


def test_destination_of_refuses_unix_and_hides_credentials(
    redis_server_factory: RedisServerFactory,
) -> None:
    """Destination.of takes TCP clients only; its repr never shows the password."""
    with pytest.raises(ValueError, match="plain TCP"):
        Destination.of(redis.Redis(unix_socket_path="/tmp/none.sock"))
    with pytest.raises(ValueError, match="plain TCP"):
        Destination.of(redis.Redis(ssl=True))
    secret = Destination.of(redis.Redis(host="h", port=1, username="u", password="s3cret"))
    assert secret.auth == ("AUTH2", "u", "s3cret")
    assert "s3cret" not in repr(secret)


@pytest.mark.parametrize("protocol", [2, 3])
def test_the_asyncio_gate_and_pull_answer_as_the_sync_ones(
    redis_server_factory: RedisServerFactory, protocol: int
) -> None:
    """redis.asyncio: gated replies equal direct ones, the marker stops the gate, a pull
    moves a key once."""
    a, b, c = redis_server_factory(3)
    one = a.client(protocol=protocol, decode_responses=True)
    for args in SETUP:
        one.execute_command(*args)

    async def run() -> list[Any]:
        client = aioredis.Redis(host=b.host, port=b.port, protocol=protocol, decode_responses=True)
        try:
            for args in SETUP:
                await client.execute_command(*args)
            got = []
            for args in COMMANDS:
                gated = await gated_call_async(client, MARKER, args)
                assert gated.ran
                got.append(("ok", gated.reply))
            await client.set(MARKER, "1")
            assert not (await gated_call_async(client, MARKER, ("SET", "s", "x"))).ran
            destination = Destination(c.host, c.port)
            assert await pull_async(client, destination, ["s"], timeout_ms=5000) == (True, False)
            done = await pull_async(client, destination, ["s"], timeout_ms=5000, done=MARKER)
            assert done == (False, True)
            return got
        finally:
            await client.aclose()

    assert asyncio.run(run()) == [direct(one, args) for args in COMMANDS]
    assert c.client().exists("s") == 1
