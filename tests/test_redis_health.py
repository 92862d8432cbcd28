"""Node health: HealthTracker on its own, and ShardedRedis around a killed redis-server."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from hashring.adapters.redis import ShardedRedis
from redis.backoff import NoBackoff
from redis.retry import Retry
from redis_servers import RedisServer, free_port

from hashring import HealthTracker, InvalidOptionError

NAMES = ("n0", "n1", "n2")
VICTIM = "n1"  # never the default node n0, which also serves the COMMAND table
RETRY_TIMEOUT = 1.0


def _fast(**extra: Any) -> dict[str, Any]:
    """Options that make a dead node fail at once: no redis-py retries, short timeouts."""
    return {
        "decode_responses": True,
        "retry": Retry(NoBackoff(), 0),
        "socket_connect_timeout": 0.5,
        "socket_timeout": 0.5,
        **extra,
    }


def _open(servers: list[RedisServer], **options: Any) -> ShardedRedis:
    urls = {name: server.url for name, server in zip(NAMES, servers, strict=True)}
    return ShardedRedis(urls, **_fast(**options))


def _split_keys(client: ShardedRedis, count: int = 90) -> tuple[list[str], list[str]]:
    """Write ``count`` keys (value = key); return (keys on VICTIM, keys on other nodes)."""
    sample = [f"hk:{i}" for i in range(count)]
    client.mset({key: key for key in sample})
    victim = [key for key in sample if client.node_for(key) == VICTIM]
    others = [key for key in sample if client.node_for(key) != VICTIM]
    assert victim
    assert others
    return victim, others


@pytest.fixture
def servers(redis_servers: list[RedisServer]) -> dict[str, RedisServer]:
    """Node name -> its fresh server (each test may kill one)."""
    return dict(zip(NAMES, redis_servers, strict=True))


@pytest.fixture
def healthy(servers: dict[str, RedisServer]) -> Iterator[ShardedRedis]:
    """A ShardedRedis with health on: failure_limit=2, retry_timeout=1 s."""
    with _open(
        list(servers.values()), health=True, failure_limit=2, retry_timeout=RETRY_TIMEOUT
    ) as client:
        yield client


@pytest.mark.redis
def test_dead_node_is_ejected_then_restored(
    healthy: ShardedRedis, servers: dict[str, RedisServer]
) -> None:
    """A killed node fails failure_limit times, its keys move to the next node, then return."""
    victim_keys, other_keys = _split_keys(healthy)
    key = victim_keys[0]
    fallback = healthy.placement.get_nodes(key)[1]
    servers[VICTIM].kill()

    failures = 0
    for attempt in range(6):
        try:
            healthy.get(key)
            break
        except redis.ConnectionError:
            failures += 1
        other = other_keys[attempt % len(other_keys)]
        assert healthy.get(other) == other  # other nodes keep answering
    ejected_at = time.monotonic()
    assert failures == 2  # exactly failure_limit
    assert healthy.node_for(key) == fallback
    assert all(healthy.node_for(k) != VICTIM for k in victim_keys)
    assert healthy.set(key, "on-fallback") is True
    assert healthy.get(key) == "on-fallback"
    with servers[fallback].client(decode_responses=True) as direct:
        assert direct.get(key) == "on-fallback"
    assert healthy.mget(other_keys) == other_keys
    stats = healthy.stats()
    assert (stats[VICTIM]["errors"], stats[VICTIM]["ejections"]) == (2, 1)
    assert stats[VICTIM]["ejected"] is True
    assert all(stats[name]["errors"] == 0 for name in NAMES if name != VICTIM)

    # Timeout over, node still dead: one failure ejects it again at once.
    time.sleep(max(0.0, ejected_at + RETRY_TIMEOUT + 0.05 - time.monotonic()))
    assert healthy.node_for(key) == VICTIM
    with pytest.raises(redis.ConnectionError):
        healthy.get(key)
    ejected_at = time.monotonic()
    assert healthy.get(key) == "on-fallback"  # stale copy on the fallback node
    assert healthy.stats()[VICTIM]["ejections"] == 2

    # Node back, timeout over: its keys go to it again (it restarted empty).
    servers[VICTIM].restart()
    time.sleep(max(0.0, ejected_at + RETRY_TIMEOUT + 0.05 - time.monotonic()))
    assert healthy.node_for(key) == VICTIM
    assert healthy.get(key) is None
    assert healthy.set(key, "home") is True
    with servers[VICTIM].client(decode_responses=True) as direct:
        assert direct.get(key) == "home"
    stats = healthy.stats()
    assert stats[VICTIM]["ejected"] is False
    assert stats[VICTIM]["consecutive_failures"] == 0
    assert stats[VICTIM]["errors"] == 3


@pytest.mark.redis
def test_failing_pipelines_count_towards_ejection(
    healthy: ShardedRedis, servers: dict[str, RedisServer]
) -> None:
    """Pipelines that hit a dead node count as failures; once ejected they use the fallback."""
    victim_keys, other_keys = _split_keys(healthy)
    servers[VICTIM].kill()
    for _ in range(2):
        with healthy.pipeline(transaction=False) as pipe:
            pipe.get(victim_keys[0]).get(other_keys[0])
            with pytest.raises(redis.ConnectionError):
                pipe.execute()
    with healthy.pipeline(transaction=False) as pipe:
        pipe.set(victim_keys[0], "x").get(victim_keys[0]).get(other_keys[0])
        assert pipe.execute() == [True, "x", other_keys[0]]
    assert healthy.stats()[VICTIM]["ejections"] == 1


@pytest.mark.redis
def test_without_health_a_dead_node_keeps_failing(servers: dict[str, RedisServer]) -> None:
    """health=False (the default): the dead node's keys fail every time and never move."""
    with _open(list(servers.values())) as client:
        victim_keys, other_keys = _split_keys(client)
        key = victim_keys[0]
        servers[VICTIM].kill()
        for attempt in range(5):
            with pytest.raises(redis.ConnectionError):
                client.get(key)
            assert client.node_for(key) == VICTIM
            assert client.get(other_keys[attempt]) == other_keys[attempt]
        stats = client.stats()[VICTIM]
        assert (stats["errors"], stats["ejections"], stats["ejected"]) == (5, 0, False)


@pytest.mark.parametrize(
    "options",
    [
        {"failure_limit": 0},
        {"failure_limit": -1},
        {"failure_limit": True},
        {"failure_limit": 1.5},
        {"failure_limit": "2"},
        {"retry_timeout": 0},
        {"retry_timeout": -1.0},
        {"retry_timeout": float("nan")},
        {"retry_timeout": True},
        {"retry_timeout": "30"},
    ],
)
def test_bad_options_raise(options: dict[str, Any]) -> None:
    """Bad failure_limit / retry_timeout raise InvalidOptionError (tracker and ShardedRedis)."""
    with pytest.raises(InvalidOptionError):
        HealthTracker(**options)
    url = f"redis://127.0.0.1:{free_port()}/0"  # never connected: construction is lazy
    with pytest.raises(InvalidOptionError):
        ShardedRedis({"a": url}, health=True, **options)


@pytest.mark.redis
def test_heartbeat_ejects_a_dead_node_without_traffic_and_restores_it(
    servers: dict[str, RedisServer],
) -> None:
    """With heartbeat_interval set, PINGs alone eject a killed node and restore it."""
    with _open(
        list(servers.values()), health=True, failure_limit=2, retry_timeout=60,
        heartbeat_interval=0.1,
    ) as client:  # fmt: skip
        victim_keys, _ = _split_keys(client)
        servers[VICTIM].kill()
        deadline = time.monotonic() + 10
        while not client.stats()[VICTIM]["ejected"] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert client.stats()[VICTIM]["ejected"]
        assert client.node_for(victim_keys[0]) != VICTIM
        servers[VICTIM].restart()
        deadline = time.monotonic() + 10
        while client.stats()[VICTIM]["ejected"] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not client.stats()[VICTIM]["ejected"]  # long before the 60 s retry timeout
        assert client.node_for(victim_keys[0]) == VICTIM


@pytest.mark.redis
def test_check_health_reports_each_node(servers: dict[str, RedisServer]) -> None:
    """check_health() PINGs every node once and counts a dead one's failure."""
    with _open(list(servers.values()), health=True, failure_limit=1) as client:
        assert client.check_health() == dict.fromkeys(NAMES, True)
        servers[VICTIM].kill()
        assert client.check_health() == {**dict.fromkeys(NAMES, True), VICTIM: False}
        assert client.stats()[VICTIM]["ejected"]


@pytest.mark.redis
def test_async_check_health(servers: dict[str, RedisServer]) -> None:
    """The asyncio client's check_health() ejects a dead node too."""
    import asyncio

    from hashring.adapters.redis import AsyncShardedRedis

    async def scenario() -> dict[str, bool]:
        urls = {name: server.url for name, server in servers.items()}
        async with AsyncShardedRedis(urls, health=True, failure_limit=1, **_fast()) as client:
            servers[VICTIM].kill()
            answered = await client.check_health()
            assert client.stats()[VICTIM]["ejected"]
            return answered

    assert asyncio.run(scenario()) == {**dict.fromkeys(NAMES, True), VICTIM: False}


def test_heartbeat_interval_must_be_positive() -> None:
    """A heartbeat_interval that is not a positive number is refused."""
    with pytest.raises(InvalidOptionError, match="heartbeat_interval"):
        ShardedRedis({"a": "redis://127.0.0.1:1/0"}, heartbeat_interval=0)


@pytest.mark.redis
def test_a_slow_probe_on_a_hung_node_is_the_only_one(servers: dict[str, RedisServer]) -> None:
    """A probe stuck on a SIGSTOPped node for a whole socket_timeout (longer than
    retry_timeout) keeps its claim: every other command meanwhile uses the fallback at once."""
    import threading

    with _open(
        list(servers.values()), health=True, failure_limit=1, retry_timeout=0.2,
        socket_timeout=1.0,
    ) as client:  # fmt: skip
        victim_keys, _ = _split_keys(client)
        key = victim_keys[0]
        servers[VICTIM].pause()
        with pytest.raises(redis.TimeoutError):
            client.get(key)  # ejects it
        time.sleep(0.25)  # retry_timeout over: the next command is the probe
        probe_error: list[BaseException] = []

        def probe() -> None:
            try:
                client.get(key)
            except redis.RedisError as exc:
                probe_error.append(exc)

        prober = threading.Thread(target=probe)
        prober.start()
        claimed = time.monotonic() + 10
        while client.stats()[VICTIM]["probes"] == 0 and time.monotonic() < claimed:
            time.sleep(0.005)
        assert client.stats()[VICTIM]["probes"] == 1  # the prober holds it
        slowest = 0.0
        deadline = time.monotonic() + 0.8
        while time.monotonic() < deadline:
            started = time.monotonic()
            client.get(key)  # never the hung node while the probe holds it: no error
            slowest = max(slowest, time.monotonic() - started)
            time.sleep(0.02)
        prober.join(10)
        assert slowest < 0.5
        assert len(probe_error) == 1
        assert isinstance(probe_error[0], redis.TimeoutError)
        stats = client.stats()[VICTIM]
        assert (stats["probes"], stats["errors"], stats["ejections"]) == (1, 2, 2)
        servers[VICTIM].resume()
