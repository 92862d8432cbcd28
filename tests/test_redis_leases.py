"""Leases, probe claims and the COMMAND table under cancellation and dead or hung nodes,
against real redis-server processes.

* A task cancelled after ``gather`` scheduled its parts but before they ran gives every
  lease back, and a removed node's client is closed.
* A probe claim lives as long as its command, whatever redis-py retries, and is given back
  when the command ends without an outcome; a server error proves the node alive.
* The COMMAND table comes from the first node that answers; reading it never blocks
  ``add_node``/``remove_node``.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
import time
from typing import Any

import pytest
import redis
from hashring.adapters.redis import AsyncShardedRedis, ShardedRedis
from redis_servers import RedisServer, RedisServerFactory

pytestmark = pytest.mark.redis

NAMES = ("n0", "n1", "n2")
WAIT = 20.0  # seconds: bound of every poll


def _urls(servers: list[RedisServer]) -> dict[str, str]:
    return {name: server.url for name, server in zip(NAMES, servers, strict=True)}


def _key_on(client: Any, node: str, prefix: str = "k") -> str:
    return next(
        f"{prefix}{i}" for i in range(100_000) if client.placement.get_node(f"{prefix}{i}") == node
    )


def _poll(condition: Any, what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.005)


# ------------------------------------------------------------------ cancellation


def test_cancelled_fan_out_gives_every_lease_back(redis_server_factory: RedisServerFactory) -> None:
    """MGET over three nodes cancelled after 0, 1, 2 and 3 loop iterations (60 trials each):
    every slot's in-flight count is back to 0, and a node removed afterwards has its client
    closed (the server sees none of its connections)."""
    servers = redis_server_factory(3)
    observer = servers[0].client()
    name = "lease-test"

    async def scenario() -> dict[int, int]:
        client = AsyncShardedRedis(_urls(servers), client_name=name)
        keys = [_key_on(client, node, f"{node}:") for node in NAMES for _ in range(1)]
        keys += [f"k{i}" for i in range(20)]
        await client.mset({key: "v" for key in keys})
        cancelled: dict[int, int] = {}
        for delay in range(4):
            for _ in range(60):
                task = asyncio.create_task(client.mget(keys))
                for _ in range(delay):
                    await asyncio.sleep(0)
                task.cancel()
                try:
                    await task
                except asyncio.CancelledError:
                    cancelled[delay] = cancelled.get(delay, 0) + 1
            in_flight = {n: s.in_flight for n, s in client._members.slots.items()}
            assert in_flight == dict.fromkeys(NAMES, 0), (delay, in_flight)
        assert observer.client_list() is not None
        slot = client._members.slots["n0"]
        await client.remove_node("n0")
        assert slot.in_flight == 0
        await client.aclose()
        return cancelled

    cancelled = asyncio.run(scenario())
    assert cancelled.get(1, 0) > 0  # some tasks were cancelled with their parts scheduled
    _poll(
        lambda: not any(e.get("name") == name for e in observer.client_list()),
        "the removed node's connections to close",
    )


# ------------------------------------------------------------------ probe claims


def test_one_command_at_a_time_on_a_hung_node_with_redis_py_default_retry(
    redis_server_factory: RedisServerFactory,
) -> None:
    """redis-py's default Retry (10 retries) makes one command on a SIGSTOPped node last
    many socket timeouts, far longer than retry_timeout: still, at most one command at a
    time is on the hung node (its probe), however many threads run."""
    servers = redis_server_factory(2)
    nodes = {
        name: redis.Redis(port=s.port, socket_timeout=0.1, socket_connect_timeout=0.1)
        for name, s in zip(("n0", "n1"), servers, strict=True)
    }
    retry = nodes["n0"].get_retry()
    assert retry is not None
    assert retry.get_retries() >= 3  # redis-py's default, kept
    with ShardedRedis(nodes, health=True, failure_limit=1, retry_timeout=0.3) as client:
        key = _key_on(client, "n0")
        client.set(key, "v")
        servers[0].pause()
        try:
            with pytest.raises(redis.RedisError):
                client.get(key)  # ejects n0 (after all its retries)
            slot = client._members.slots["n0"]
            peak = 0
            stop = time.monotonic() + 3.0

            def work() -> None:
                while time.monotonic() < stop:
                    with contextlib.suppress(redis.RedisError):
                        client.get(key)

            workers = [threading.Thread(target=work) for _ in range(8)]
            for worker in workers:
                worker.start()
            while any(worker.is_alive() for worker in workers):
                peak = max(peak, slot.in_flight)
                time.sleep(0.002)
            for worker in workers:
                worker.join(60)
        finally:
            servers[0].resume()
        assert peak == 1
        assert client.stats()["n0"]["probes"] >= 1
        for node in nodes.values():
            node.close()


def _eject_then_half_open(client: ShardedRedis, server: RedisServer, key: str) -> None:
    """Eject the node of ``key`` (SIGSTOP, one timed-out command), bring it back, and wait
    until its retry_timeout is over (half-open, no probe claimed)."""
    server.pause()
    try:
        with pytest.raises(redis.TimeoutError):
            client.get(key)
    finally:
        server.resume()
    node = client.placement.get_node(key)
    assert client.stats()[node]["ejected"] is True
    _poll(lambda: not client.stats()[node]["ejected"], "half-open")


def test_a_probe_answered_with_a_server_error_restores_the_node(
    redis_server_factory: RedisServerFactory,
) -> None:
    """A probe whose command the server refuses (WRONGTYPE, a ResponseError) proves the
    node alive: it is restored at once."""
    servers = redis_server_factory(2)
    options: dict[str, Any] = {"retry": redis.retry.Retry(redis.backoff.NoBackoff(), 0)}
    urls = {"n0": servers[0].url, "n1": servers[1].url}
    with ShardedRedis(
        urls, health=True, failure_limit=1, retry_timeout=0.2, socket_timeout=0.3, **options
    ) as client:
        key = _key_on(client, "n0")
        client.rpush(key, "a list")
        _eject_then_half_open(client, servers[0], key)
        with pytest.raises(redis.ResponseError):
            client.incr(key)  # the probe: WRONGTYPE
        stats = client.stats()["n0"]
        assert (stats["ejected_until"], stats["consecutive_failures"]) == (0.0, 0)


def test_a_probe_that_ends_without_an_outcome_frees_its_claim(
    redis_server_factory: RedisServerFactory,
) -> None:
    """A probe whose command raised before the node could answer (redis-py refused to
    encode a value: DataError) records nothing; its claim is given back at once, so the next
    command, from another thread, probes the node and restores it."""
    servers = redis_server_factory(2)
    options: dict[str, Any] = {"retry": redis.retry.Retry(redis.backoff.NoBackoff(), 0)}
    urls = {"n0": servers[0].url, "n1": servers[1].url}
    with ShardedRedis(
        urls, health=True, failure_limit=1, retry_timeout=0.2, socket_timeout=0.3, **options
    ) as client:
        key = _key_on(client, "n0")
        client.set(key, "v")
        _eject_then_half_open(client, servers[0], key)
        with pytest.raises(redis.DataError):
            client.set(key, object())  # type: ignore[arg-type]  # claims the probe
        got: list[Any] = []
        other = threading.Thread(target=lambda: got.append(client.get(key)))
        other.start()
        other.join(WAIT)
        assert got == [b"v"]  # n0's value: the other thread probed n0
        assert client.stats()["n0"]["ejected_until"] == 0.0


# ------------------------------------------------------------------ the COMMAND table


def test_first_node_dead_before_the_first_command(redis_server_factory: RedisServerFactory) -> None:
    """n0 (the first by name) SIGKILLed before any command: commands on the other nodes
    work, sync and async; n0's failure is counted."""
    servers = redis_server_factory(3)
    urls = _urls(servers)
    servers[0].kill()
    options: dict[str, Any] = {"health": True, "failure_limit": 1, "retry_timeout": 60}
    options["socket_timeout"] = 2
    with ShardedRedis(urls, **options) as client:
        key = _key_on(client, "n1")
        assert client.set(key, "v") is True
        assert client.get(key) == b"v"
        assert client.stats()["n0"]["errors"] == 1

    async def scenario() -> None:
        async with AsyncShardedRedis(urls, **options) as client:
            assert await client.get(key) == b"v"
            assert await client.set(key, "w") is True
            assert client.stats()["n0"]["errors"] == 1

    asyncio.run(scenario())


def _stack(thread: threading.Thread) -> list[str]:
    frame = sys._current_frames().get(thread.ident or 0)
    names = []
    while frame is not None:
        names.append(frame.f_code.co_name)
        frame = frame.f_back
    return names


def test_membership_changes_never_wait_for_the_command_table(
    redis_server_factory: RedisServerFactory,
) -> None:
    """The first command is stuck reading the COMMAND table from a SIGSTOPped n0 (10 s
    socket timeout): remove_node and add_node of other nodes return at once."""
    servers = redis_server_factory(3)
    options: dict[str, Any] = {"retry": redis.retry.Retry(redis.backoff.NoBackoff(), 0)}
    client = ShardedRedis(_urls(servers), socket_timeout=10, **options)
    servers[0].pause()
    errors: list[BaseException] = []

    def first_command() -> None:
        try:
            client.get("x")
        except redis.RedisError as exc:
            errors.append(exc)

    stuck = threading.Thread(target=first_command)
    stuck.start()
    try:
        _poll(
            lambda: (
                "_command_table" in _stack(stuck)
                and any(
                    n in _stack(stuck) for n in ("recv", "read_response", "_connect", "connect")
                )
            ),
            "the first command to wait on n0",
        )
        started = time.monotonic()
        client.remove_node("n2")
        client.add_node("n3", servers[2].url)
        took = time.monotonic() - started
        assert stuck.is_alive()  # it was still reading the table meanwhile
    finally:
        servers[0].resume()
        stuck.join(WAIT)
    client.close()
    assert took < 2.0
    assert not stuck.is_alive()


# ------------------------------------------------------------------ command names


def test_bytes_command_names_with_movable_keys(redis_server_factory: RedisServerFactory) -> None:
    """ZUNIONSTORE named as bytes is routed by its keys like the str name (sync, async)."""
    servers = redis_server_factory(2)
    urls = {"n0": servers[0].url, "n1": servers[1].url}
    with ShardedRedis(urls) as client:
        client.zadd("{t}a", {"x": 1})
        assert client.execute_command(b"ZUNIONSTORE", "{t}d", 1, "{t}a") == 1

    async def scenario() -> None:
        async with AsyncShardedRedis(urls) as client:
            assert await client.execute_command(b"ZUNIONSTORE", "{t}f", 1, "{t}a") == 1

    asyncio.run(scenario())
