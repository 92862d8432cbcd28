"""Defects found by running redis-py's own suite through the sharded clients (INFO fields,
CLIENT TRACKING REDIRECT, SCAN pages), each checked against one plain redis-server holding
the same keys, sync and async."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import redis
from hashring.adapters.redis import AsyncShardedRedis, ShardedRedis, UnsupportedCommandError
from hashring.adapters.redis._answers import (
    INFO_MAX,
    INFO_MIN,
    INFO_STATUS,
    INFO_SUMMED,
    human_bytes,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis_servers import RedisServer, RedisServerFactory

pytestmark = pytest.mark.redis

NAMES = ("n0", "n1", "n2")
IDENTITIES = frozenset({"process_id", "run_id", "tcp_port", "master_replid"})
"""INFO fields that name one server: per node (``{node: value}``) on a sharded client."""


def _urls(servers: list[RedisServer]) -> dict[str, str]:
    return {n: s.url for n, s in zip(NAMES, servers, strict=True)}


@pytest.fixture
def servers(redis_server_factory: RedisServerFactory) -> list[RedisServer]:
    """Three fresh servers owned by this test (their configuration changes)."""
    return redis_server_factory(3)


@pytest.fixture
def plain(redis_server_factory: RedisServerFactory) -> redis.Redis:
    """A client of a fourth, unsharded server: the reference answer."""
    return redis_server_factory(1)[0].client()


@pytest.fixture
def sharded(clean_redis_servers: list[RedisServer]) -> Iterator[ShardedRedis]:
    """A ShardedRedis (bytes answers, as plain's) over the three shared flushed servers."""
    with ShardedRedis(_urls(clean_redis_servers)) as client:
        yield client


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def async_sharded(clean_redis_servers: list[RedisServer]) -> AsyncIterator[AsyncShardedRedis]:
    async with AsyncShardedRedis(_urls(clean_redis_servers)) as client:
        yield client


def _wait(condition: Any, seconds: float = 10.0) -> bool:
    """Poll ``condition()`` until true or ``seconds`` pass; its last value."""
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.02)
    return bool(condition())


# ---------------------------------------------------------------- 1. INFO fields combined


def test_info_fields_have_one_servers_types_and_counts(
    sharded: ShardedRedis, plain: redis.Redis
) -> None:
    """Every INFO field has the Python type one server gives it, identities aside; the
    write counter since the last save is the plain server's count (redis-py's test_bgsave
    does int() on it)."""
    for client in (sharded, plain):  # scripts cached by earlier tests differ per node
        client.script_flush()
    changes = "rdb_changes_since_last_save"
    before = [c.info("persistence")[changes] for c in (sharded, plain)]
    for client in (sharded, plain):
        for i in range(40):
            client.set(f"info:{i}", i, ex=1000)
    one, many = plain.info("everything"), sharded.info("everything")
    # Per-command and per-error sections exist only for what a server has run: the shared
    # servers' histories differ (a PING, a leftover script), so those compare where both have them.
    historical = ("cmdstat_", "errorstat_", "latency_percentiles_usec_")
    differing = {
        name: (one[name], many.get(name))
        for name in one
        if name not in IDENTITIES
        and not (name.startswith(historical) and name not in many)
        and type(many.get(name)) is not type(one[name])
    }
    assert differing == {}
    assert "cmdstat_set" in many  # every node ran SET: the history sections are merged too
    assert all(isinstance(many[name], dict) for name in IDENTITIES)
    persistence = sharded.info("persistence")
    assert persistence[changes] - before[0] == 40
    assert plain.info("persistence")[changes] - before[1] == 40
    assert type(persistence["rdb_bgsave_in_progress"]) is int
    assert many["db0"] == plain.info("keyspace")["db0"] | {"avg_ttl": many["db0"]["avg_ttl"]}


def test_info_combines_each_field_by_its_class(sharded: ShardedRedis) -> None:
    """Summed fields are the nodes' sum, flags and durations their maximum, save time and
    uptime their minimum, statuses ok when all are; ratios and *_human fields are computed
    from the sums as the server formats them."""
    nodes = [sharded.clients[name] for name in NAMES]
    for i in range(30):
        sharded.set(f"kind:{i}", "x" * i)
    parts = [c.info("persistence") | c.info("memory") for c in nodes]
    merged = sharded.info("persistence") | sharded.info("memory")
    assert merged["rdb_changes_since_last_save"] == sum(
        p["rdb_changes_since_last_save"] for p in parts
    )
    assert merged["rdb_last_save_time"] == min(p["rdb_last_save_time"] for p in parts)
    assert merged["rdb_last_bgsave_time_sec"] == max(p["rdb_last_bgsave_time_sec"] for p in parts)
    assert merged["rdb_last_bgsave_status"] == "ok"
    for name in ("loading", "async_loading", "aof_rewrite_in_progress", "rdb_bgsave_in_progress"):
        assert merged[name] == 0
        assert type(merged[name]) is int
    assert merged["used_memory_human"] == human_bytes(merged["used_memory"])
    assert merged["used_memory_rss_human"] == human_bytes(merged["used_memory_rss"])
    assert merged["mem_fragmentation_ratio"] == round(
        merged["used_memory_rss"] / merged["used_memory"], 2
    )
    assert merged["allocator_frag_ratio"] == round(
        merged["allocator_active"] / merged["allocator_allocated"], 2
    )
    assert merged["used_memory_peak_perc"].endswith("%")
    assert isinstance(merged["used_memory_dataset_perc"], str)


def test_info_field_classes_are_disjoint() -> None:
    """A field is combined one way only."""
    groups = [INFO_SUMMED, INFO_MAX, INFO_MIN, INFO_STATUS]
    assert sum(map(len, groups)) == len(frozenset().union(*groups))


def test_human_bytes_matches_the_servers_notation(plain: redis.Redis) -> None:
    """human_bytes writes a count as the server's INFO does: checked on maxmemory_human,
    which the server derives from the maxmemory we set (B, K, M, G, T, P and edges)."""
    for count in (0, 1, 1023, 1024, 1536, 1024**2 - 1, 1024**2, 5 * 1024**3 + 7, 3 * 1024**5):
        plain.config_set("maxmemory", count)
        info = plain.info("memory")
        assert info["maxmemory"] == count
        assert human_bytes(count) == info["maxmemory_human"]


def test_bgsave_in_progress_on_one_node_is_in_progress(servers: list[RedisServer]) -> None:
    """While one node saves (slowed down by rdb-key-save-delay), the sharded INFO says a
    save is in progress (1, an int), and 0 once it is done; the changes it saved are no
    longer counted."""
    with ShardedRedis(_urls(servers)) as client:
        for i in range(60):
            client.set(f"save:{i}", i)
        slow = servers[0].client()
        slow.config_set("rdb-key-save-delay", 20_000)  # 20 ms a key
        assert slow.dbsize() > 0
        before = client.info("persistence")["rdb_changes_since_last_save"]
        unsaved_elsewhere = sum(
            s.client().info("persistence")["rdb_changes_since_last_save"] for s in servers[1:]
        )
        slow.bgsave()
        assert client.info("persistence")["rdb_bgsave_in_progress"] == 1
        slow.config_set("rdb-key-save-delay", 0)
        assert _wait(lambda: client.info("persistence")["rdb_bgsave_in_progress"] == 0, 30)
        after = client.info("persistence")
        assert after["rdb_changes_since_last_save"] == unsaved_elsewhere < before
        assert after["rdb_last_bgsave_status"] == "ok"


@pytest.mark.anyio
async def test_async_info_counters_are_ints(async_sharded: AsyncShardedRedis) -> None:
    """The asyncio client combines INFO by the same tables."""
    changes = "rdb_changes_since_last_save"
    before = (await async_sharded.info("persistence"))[changes]
    for i in range(25):
        await async_sharded.set(f"ainfo:{i}", i)
    persistence = await async_sharded.info("persistence")
    assert persistence[changes] - before == 25
    assert type(persistence["rdb_bgsave_in_progress"]) is int
    memory = await async_sharded.info("memory")
    assert memory["used_memory_human"] == human_bytes(memory["used_memory"])


# ---------------------------------------------------------------- 2. CLIENT TRACKING REDIRECT


def _redirected(servers: list[RedisServer]) -> list[str]:
    """Connections on any of ``servers`` whose tracking redirects somewhere."""
    return [
        entry["id"]
        for server in servers
        for entry in server.client().client_list()
        if entry.get("redir") not in (None, "-1", "0")
    ]


def test_client_tracking_redirect_is_refused_before_sending(
    sharded: ShardedRedis, clean_redis_servers: list[RedisServer], plain: redis.Redis
) -> None:
    """CLIENT TRACKING ON REDIRECT id names a connection of one node: refused, nothing
    sent anywhere; without REDIRECT it still reaches every node; a PREFIX that reads
    'redirect' is not the option; CLIENT KILL ID stays refused."""
    target = sharded.client_id()
    with pytest.raises(UnsupportedCommandError, match=r"per node.*client_tracking_on"):
        sharded.client_tracking_on(clientid=target)
    with pytest.raises(UnsupportedCommandError):
        sharded.execute_command("CLIENT", "TRACKING", "on", "redirect", target)
    with pytest.raises(UnsupportedCommandError):
        sharded.client_tracking_on(clientid=target, prefix=["a:"], bcast=True)
    assert _redirected(clean_redis_servers) == []
    on = sharded.client_tracking_on(prefix=["redirect"], bcast=True)
    assert on == plain.client_tracking_on(prefix=["redirect"], bcast=True)
    assert sharded.client_tracking_off() == plain.client_tracking_off()
    with pytest.raises(UnsupportedCommandError, match="client_kill_filter"):
        sharded.client_kill_filter(_id=target)


@pytest.mark.anyio
async def test_async_client_tracking_redirect_is_refused(
    async_sharded: AsyncShardedRedis, clean_redis_servers: list[RedisServer]
) -> None:
    target = await async_sharded.client_id()
    with pytest.raises(UnsupportedCommandError, match="per node"):
        await async_sharded.client_tracking_on(clientid=target)
    assert _redirected(clean_redis_servers) == []


# ---------------------------------------------------------------- 3. SCAN pages


def _walk(client: ShardedRedis | redis.Redis, **options: Any) -> tuple[list[Any], int]:
    """Every key of a full SCAN from cursor 0, and the number of pages."""
    cursor, keys, pages = 0, [], 0
    while True:
        cursor, page = client.scan(cursor, **options)
        keys.extend(page)
        pages += 1
        if cursor == 0:
            return keys, pages
        assert pages < 10_000


def test_small_keyspace_scans_in_one_page_like_one_server(
    sharded: ShardedRedis, plain: redis.Redis
) -> None:
    """redis-py's test_scan: a few keys come back in one page with cursor 0; with MATCH and
    TYPE too (test_scan_type), where one node's page alone is empty."""
    for client in (sharded, plain):
        client.mset({"a": 1, "b": 2, "c": 3})
        client.sadd("a-set", 1)
        client.hset("a-hash", "f", 2)
        client.lpush("a-list", 3)
    for options in ({}, {"match": "a*", "_type": "SET"}, {"match": "a*"}, {"count": 7}):
        expected = plain.scan(**options)
        assert expected[0] == 0
        cursor, keys = sharded.scan(**options)
        assert (cursor, sorted(keys)) == (0, sorted(expected[1]))
    assert sharded.scan(match="a*", _type="SET") == (0, [b"a-set"])


@settings(max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    size=st.integers(0, 60),
    count=st.sampled_from([None, 1, 3, 10, 25, 100]),
    match=st.sampled_from([None, "k*", "k1*", "nothing*"]),
)
def test_scan_walk_returns_every_key_and_small_first_pages_match_one_server(
    sharded: ShardedRedis, plain: redis.Redis, size: int, count: int | None, match: str | None
) -> None:
    """From cursor 0, following cursors until 0, every matching key comes back (at least
    once; here, with no writes, exactly once) and nothing else; when the keyspace is
    smaller than COUNT, the first page is one server's: cursor 0 and every matching key."""
    for client in (sharded, plain):
        client.flushdb()
        if size:
            client.mset({f"k{i}": i for i in range(size)})
    expected = sorted(plain.keys(match or "*"))
    walked, pages = _walk(sharded, match=match, count=count)
    assert sorted(walked) == expected
    assert pages <= len(NAMES) * (size + 1)
    if size < (10 if count is None else count):
        cursor, first = plain.scan(0, match=match, count=count)
        assert (cursor, sorted(first)) == (0, expected)
        cursor, first = sharded.scan(0, match=match, count=count)
        assert (cursor, sorted(first)) == (0, expected)


def test_scan_pages_stop_at_count_and_resume_at_the_next_node(sharded: ShardedRedis) -> None:
    """A page that has COUNT keys stops there, and its cursor resumes where it stopped: a
    walk over a larger keyspace has several pages and loses nothing."""
    keys = {f"big:{i}".encode() for i in range(300)}
    sharded.mset(dict.fromkeys(keys, 1))
    walked, pages = _walk(sharded, count=20)
    assert set(walked) == keys
    assert len(walked) >= len(keys)
    assert pages > 1
    cursor, first = sharded.scan(0, count=20)
    assert cursor != 0
    assert len(first) >= 1


@pytest.mark.anyio
async def test_async_scan_fills_pages_like_the_sync_client(
    async_sharded: AsyncShardedRedis,
) -> None:
    """The asyncio client: a small keyspace in one page with cursor 0; a large one walked
    whole across pages."""
    await async_sharded.mset({"x": 1, "y": 2, "z": 3})
    await async_sharded.sadd("x-set", 1)
    cursor, keys = await async_sharded.scan()
    assert (cursor, sorted(keys)) == (0, [b"x", b"x-set", b"y", b"z"])
    assert await async_sharded.scan(match="x*", _type="SET") == (0, [b"x-set"])
    many = {f"am:{i}".encode() for i in range(200)}
    await async_sharded.mset(dict.fromkeys(many, 1))
    cursor, walked, pages = 0, [], 0
    while True:
        cursor, page = await async_sharded.scan(cursor, match="am:*", count=15)
        walked.extend(page)
        pages += 1
        if cursor == 0:
            break
    assert set(walked) == many
    assert pages > 1
