"""Runtime faults of ShardedRedis and AsyncShardedRedis against real redis-server processes.

* Membership changes under load: commands in flight on a removed node finish on an open
  client, which is closed after the last of them; nothing but redis errors ever escapes.
* Half-open recovery: a SIGKILLed (then restarted) or SIGSTOPped node gets one probe per
  ejection cycle however many threads or tasks run, and no stale pooled connection fails
  after it recovers.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import redis
from hashring.adapters.redis import AsyncShardedRedis, ShardedRedis
from redis.backoff import NoBackoff
from redis.retry import Retry
from redis_servers import RedisServer, RedisServerFactory

pytestmark = pytest.mark.redis

NAMES = ("n0", "n1", "n2")
EXTRA = "x"  # the node added and removed in a loop
STRESS_SECONDS = 4.0  # each stress loop stops after this long...
STRESS_CYCLES = 150  # ...or after this many add/remove cycles
WORKERS = 6


def _no_retry(**extra: Any) -> dict[str, Any]:
    """Options that make every connection failure visible: no redis-py retries."""
    return {"retry": Retry(NoBackoff(), 0), "socket_timeout": 10, **extra}


def _urls(servers: list[RedisServer]) -> dict[str, str]:
    return {name: server.url for name, server in zip(NAMES, servers, strict=True)}


def _named_connections(observer: redis.Redis, name: str) -> int:
    return sum(1 for entry in observer.client_list() if entry.get("name") == name)


def _wait_for_connections(observer: redis.Redis, name: str, expected: int) -> int:
    """Poll CLIENT LIST until ``expected`` connections are named ``name`` (or 10 s pass)."""
    deadline = time.monotonic() + 10.0
    count = _named_connections(observer, name)
    while count != expected and time.monotonic() < deadline:
        time.sleep(0.02)
        count = _named_connections(observer, name)
    return count


def _key_owned_by(placement_of: Callable[[str], str], node: str, prefix: str) -> str:
    for i in range(100_000):
        key = f"{prefix}:{i}"
        if placement_of(key) == node:
            return key
    raise AssertionError(f"no key of {node}")  # pragma: no cover


@dataclass
class Tally:
    """What the workers did: commands, and errors by kind (thread-safe)."""

    commands: int = 0
    redis_errors: int = 0
    other_errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, error: BaseException | None) -> None:
        with self.lock:
            self.commands += 1
            if isinstance(error, redis.ConnectionError):
                self.redis_errors += 1
            elif error is not None:
                self.other_errors.append(f"{type(error).__name__}: {error}")


def _sync_workload(client: ShardedRedis, rng: random.Random) -> None:
    """One round of mixed commands: single-key, split multi-key, fan-out, pipeline."""
    key = f"k:{rng.randrange(2000)}"
    choice = rng.randrange(5)
    if choice == 0:
        client.set(key, "v")
    elif choice == 1:
        client.get(key)
    elif choice == 2:
        client.mget([f"k:{rng.randrange(2000)}" for _ in range(8)])
    elif choice == 3:
        client.dbsize()
    else:
        with client.pipeline() as pipe:
            pipe.set(key, "p").get(key).delete(f"k:{rng.randrange(2000)}")
            pipe.execute()


# ------------------------------------------------------------------ membership under load


def test_add_remove_loop_under_threads_raises_only_redis_errors(
    redis_server_factory: RedisServerFactory,
) -> None:
    """Threads run commands while a node is added and removed in a loop: no ValueError,
    AttributeError, KeyError or EBADF; every removed client is closed in the end."""
    servers = redis_server_factory(4)
    extra = servers[3]
    observer = extra.client()
    tally = Tally()
    stop = threading.Event()
    with ShardedRedis(_urls(servers[:3]), client_name="stress", **_no_retry()) as client:

        def work(seed: int) -> None:
            rng = random.Random(seed)
            while not stop.is_set():
                try:
                    _sync_workload(client, rng)
                except Exception as exc:
                    tally.count(exc)
                else:
                    tally.count(None)

        workers = [threading.Thread(target=work, args=(seed,)) for seed in range(WORKERS)]
        for worker in workers:
            worker.start()
        cycles = 0
        deadline = time.monotonic() + STRESS_SECONDS
        try:
            while cycles < STRESS_CYCLES and time.monotonic() < deadline:
                client.add_node(EXTRA, extra.url)
                time.sleep(0.002)
                client.remove_node(EXTRA)
                cycles += 1
        finally:
            stop.set()
            for worker in workers:
                worker.join(30)
        assert not any(worker.is_alive() for worker in workers)
        assert sorted(client.clients) == list(NAMES)
        assert EXTRA not in client.stats()  # late outcomes do not bring a removed node back
    assert tally.other_errors == []
    assert tally.redis_errors == 0  # nothing was sent to a node after its removal
    assert cycles >= 10
    assert tally.commands >= 100
    assert _wait_for_connections(observer, "stress", 0) == 0  # every removed client closed


def test_command_in_flight_on_a_removed_node_finishes(
    redis_server_factory: RedisServerFactory,
) -> None:
    """A BLPOP blocked on a node that is removed meanwhile still gets its answer; the node's
    client is closed right after it, not before."""
    servers = redis_server_factory(4)
    extra = servers[3]
    observer = extra.client()
    with ShardedRedis(
        _urls(servers[:3]), client_name="inflight", decode_responses=True, **_no_retry()
    ) as client:
        client.add_node(EXTRA, extra.url)
        key = _key_owned_by(client.node_for, EXTRA, "queue")
        answer: list[Any] = []
        waiter = threading.Thread(target=lambda: answer.append(client.blpop([key], timeout=20)))
        waiter.start()
        deadline = time.monotonic() + 10
        while "blpop" not in str(observer.client_list()) and time.monotonic() < deadline:
            time.sleep(0.01)
        client.remove_node(EXTRA)
        assert client.node_for(key) != EXTRA
        assert _named_connections(observer, "inflight") == 1  # still open: BLPOP waits on it
        observer.rpush(key, "job")
        waiter.join(20)
        assert answer == [(key, "job")]
        assert _wait_for_connections(observer, "inflight", 0) == 0  # closed after it


def test_remove_node_closes_at_once_when_idle(redis_server_factory: RedisServerFactory) -> None:
    """With nothing in flight, remove_node closes the node's connections before returning."""
    servers = redis_server_factory(2)
    observer = servers[1].client()
    with ShardedRedis(
        {"a": servers[0].url, "b": servers[1].url}, client_name="idle", **_no_retry()
    ) as client:
        client.mset({f"i:{n}": n for n in range(50)})
        assert _named_connections(observer, "idle") >= 1
        client.remove_node("b")
        assert _wait_for_connections(observer, "idle", 0) == 0


def test_async_add_remove_loop_under_tasks_raises_only_redis_errors(
    redis_server_factory: RedisServerFactory,
) -> None:
    """Asyncio tasks run commands while another task adds and removes a node in a loop."""
    servers = redis_server_factory(4)
    extra = servers[3]
    observer = extra.client()
    tally = Tally()

    async def scenario() -> int:
        stop = asyncio.Event()
        async with AsyncShardedRedis(
            _urls(servers[:3]), client_name="astress", **_no_retry()
        ) as client:

            async def work(seed: int) -> None:
                rng = random.Random(seed)
                while not stop.is_set():
                    key = f"k:{rng.randrange(2000)}"
                    choice = rng.randrange(5)
                    try:
                        if choice == 0:
                            await client.set(key, "v")
                        elif choice == 1:
                            await client.get(key)
                        elif choice == 2:
                            await client.mget([f"k:{rng.randrange(2000)}" for _ in range(8)])
                        elif choice == 3:
                            await client.dbsize()
                        else:
                            pipe = client.pipeline()
                            pipe.set(key, "p").get(key)
                            await pipe.execute()
                    except Exception as exc:
                        tally.count(exc)
                    else:
                        tally.count(None)

            tasks = [asyncio.create_task(work(seed)) for seed in range(32)]
            cycles = 0
            deadline = time.monotonic() + STRESS_SECONDS
            try:
                while cycles < STRESS_CYCLES and time.monotonic() < deadline:
                    client.add_node(EXTRA, extra.url)
                    await asyncio.sleep(0.002)
                    await client.remove_node(EXTRA)
                    await asyncio.sleep(0)
                    cycles += 1
            finally:
                stop.set()
                await asyncio.wait_for(asyncio.gather(*tasks), 30)
            assert sorted(client.clients) == list(NAMES)
            assert EXTRA not in client.stats()
            return cycles

    cycles = asyncio.run(scenario())
    assert tally.other_errors == []
    assert tally.redis_errors == 0
    assert cycles >= 10
    assert tally.commands >= 100
    assert _wait_for_connections(observer, "astress", 0) == 0


def test_async_command_in_flight_on_a_removed_node_finishes(
    redis_server_factory: RedisServerFactory,
) -> None:
    """An awaited BLPOP on a node removed meanwhile completes; the client closes after it."""
    servers = redis_server_factory(4)
    extra = servers[3]
    observer = extra.client()

    async def scenario() -> tuple[str, Any]:
        async with AsyncShardedRedis(
            _urls(servers[:3]), client_name="ainflight", decode_responses=True, **_no_retry()
        ) as client:
            client.add_node(EXTRA, extra.url)
            key = _key_owned_by(client.node_for, EXTRA, "queue")
            waiter = asyncio.create_task(client.blpop([key], timeout=20))
            deadline = time.monotonic() + 10
            while "blpop" not in str(observer.client_list()) and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            await client.remove_node(EXTRA)  # does not wait for the BLPOP
            assert not waiter.done()
            assert _named_connections(observer, "ainflight") == 1
            observer.rpush(key, "job")
            return key, await asyncio.wait_for(waiter, 20)

    key, answer = asyncio.run(scenario())
    assert answer == (key, "job")
    assert _wait_for_connections(observer, "ainflight", 0) == 0
