"""Running ShardedRedis / AsyncShardedRedis clients that switch topology by themselves: a file
replaced by rename or a Redis key published anew is followed, connections carry the running
version's name, an invalid topology keeps the running one, and threads hammering the client
through 20 swaps never fail nor lose a write of a key whose owner the swaps leave alone."""

from __future__ import annotations

import asyncio
import logging
import os
import random
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import redis
from hashring.adapters.migrate import MigrationSession, live_clients
from hashring.adapters.redis import AsyncShardedRedis, RedisTopologySource, ShardedRedis

from hashring import Placement, load_topology
from hashring._topology.clients import client_name
from tests.cli_runs import run_checked
from tests.redis_servers import RedisServer, RedisServerFactory
from tests.waiting import WAIT, wait_until

pytestmark = pytest.mark.redis

INTERVAL = 0.02  # seconds between the watcher's looks in these tests


def topology_text(servers: list[RedisServer]) -> str:
    return "".join(f'[nodes.n{i}]\nurl = "{s.url}"\n' for i, s in enumerate(servers))


def replace(path: Path, text: str) -> None:
    """Write a sibling file and rename it over ``path``, as deploy tools do."""
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


_ADMIN: dict[int, redis.Redis] = {}


def hashring_names(servers: list[RedisServer]) -> dict[str, int]:
    """Versions of the hashring connections on ``servers`` -> how many connections."""
    admin = {f"n{i}": admin_client(s) for i, s in enumerate(servers)}
    counts: dict[str, int] = {}
    for live in live_clients(admin):
        counts[live.version] = counts.get(live.version, 0) + 1
    return counts


def admin_client(server: RedisServer) -> redis.Redis:
    """One unnamed client per server (closed with the server at teardown)."""
    client = _ADMIN.get(id(server))
    if client is None or client.connection_pool.connection_kwargs["port"] != server.port:
        client = _ADMIN[id(server)] = server.client()
    return client


def follower_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("hashring-topology")]


async def eventually(condition: Callable[[], object], what: str) -> None:
    """``wait_until`` for a coroutine: polls without blocking the event loop."""
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.005)


@pytest.fixture
def servers(redis_server_factory: RedisServerFactory) -> list[RedisServer]:
    return redis_server_factory(4)


@pytest.fixture
def files(servers: list[RedisServer], tmp_path: Path) -> tuple[Path, str, str]:
    """topology.toml on the first three servers; the three- and four-node texts."""
    three, four = topology_text(servers[:3]), topology_text(servers)
    path = tmp_path / "topology.toml"
    path.write_text(three, encoding="utf-8")
    return path, three, four


def test_a_sync_client_follows_a_file_replaced_by_rename(
    servers: list[RedisServer], files: tuple[Path, str, str], tmp_path: Path
) -> None:
    """Within a bounded wait the client routes by the new file, its version follows, the
    old version's connections are closed and migrate's client wait sees the switch."""
    path, _, four = files
    old = load_topology(path)
    client = ShardedRedis.from_config(path, watch=True, watch_interval=INTERVAL, socket_timeout=5)
    try:
        assert client.version == old.version
        client.mset({f"k{i}": i for i in range(200)})
        assert hashring_names(servers) == {old.version: 3}
        replace(path, four)
        new = load_topology(path)
        wait_until(lambda: client.version == new.version, "the client to take the new file")
        placement = new.placement()
        keys = [f"k{i}" for i in range(200)]
        assert [client.node_for(k) for k in keys] == placement.get_node_many(keys)
        assert sorted(client.clients) == ["n0", "n1", "n2", "n3"]
        client.mset({k: "new" for k in keys})
        for key in keys:  # each write landed on the new owner's server
            owner = int(placement.get_node(key)[1:])
            assert admin_client(servers[owner]).get(key) == b"new"
        assert hashring_names(servers) == {new.version: 4}
        session = MigrationSession(old, new)
        try:
            assert session.wait_for_clients(new.version, timeout=WAIT) == []
        finally:
            session.close()
    finally:
        client.close()
    assert follower_threads() == []
    assert hashring_names(servers) == {}


def test_an_async_client_follows_the_file_and_closes_the_old_clients_on_its_loop(
    servers: list[RedisServer], files: tuple[Path, str, str]
) -> None:
    """The watcher thread swaps an AsyncShardedRedis; the idle old clients are closed on the
    client's loop without waiting for a command; reads route by the new file."""
    path, _, four = files

    async def scenario() -> tuple[str | None, str | None, dict[str, int]]:
        client = AsyncShardedRedis.from_config(path, watch=True, watch_interval=INTERVAL)
        async with client:
            before = client.version
            await client.mset({f"k{i}": i for i in range(100)})
            assert hashring_names(servers) == {before: 3}
            replace(path, four)
            new = load_topology(path).version
            await eventually(lambda: client.version == new, "the client to take the new file")
            await eventually(
                lambda: before not in hashring_names(servers), "the old connections to close"
            )
            await client.mset({f"k{i}": "x" for i in range(100)})
            assert await client.mget([f"k{i}" for i in range(100)]) == [b"x"] * 100
            names = hashring_names(servers)
        return before, client.version, names

    before, after, names = asyncio.run(scenario())
    assert before != after
    assert names == {after: 4}
    assert follower_threads() == []
    assert hashring_names(servers) == {}


def test_an_invalid_topology_keeps_the_running_one(
    servers: list[RedisServer], files: tuple[Path, str, str], caplog: pytest.LogCaptureFixture
) -> None:
    """A file that is not TOML, and a valid topology whose node URL the client does not
    speak, are logged and refused; the client keeps running its topology."""
    path, three, _ = files
    caplog.set_level(logging.WARNING, logger="hashring.topology")
    client = ShardedRedis.from_config(path, watch=True, watch_interval=INTERVAL)
    try:
        version = client.version
        client.set("k", "v")
        client.dbsize()  # a connection to every node
        replace(path, "[nodes.a\n")
        wait_until(lambda: "not valid" in caplog.text, "the invalid file to be logged")
        replace(path, three + '[nodes.web]\nurl = "http://127.0.0.1:1/"\n')
        wait_until(lambda: "was not taken" in caplog.text, "the refused topology to be logged")
        assert client.version == version
        assert sorted(client.clients) == ["n0", "n1", "n2"]
        assert client.get("k") == b"v"
        assert hashring_names(servers) == {version: 3}
    finally:
        client.close()


def test_threads_keep_working_through_twenty_swaps(
    servers: list[RedisServer], files: tuple[Path, str, str]
) -> None:
    """4 threads run SET/GET/MGET/pipelines while the file flips 20 times between 3 and 4
    nodes: no exception, every key whose owner both topologies agree on reads back what its
    thread wrote last, old connections are all closed, and close() leaves no thread."""
    path, three, four = files
    three_placement = load_topology(path).placement()
    four_file = path.with_name("four.toml")
    four_file.write_text(four, encoding="utf-8")
    four_placement = load_topology(four_file).placement()
    client = ShardedRedis.from_config(path, watch=True, watch_interval=INTERVAL, socket_timeout=5)
    stop = threading.Event()
    errors: list[BaseException] = []
    checked = [0] * 4

    def work(thread: int) -> None:
        rng = random.Random(thread)
        keys = [f"t{thread}:{i}" for i in range(64)]
        stable = [k for k in keys if three_placement.get_node(k) == four_placement.get_node(k)]
        is_stable = set(stable)
        written: dict[str, str] = {}
        step = 0
        try:
            while not stop.is_set():
                step += 1
                key = rng.choice(stable)
                value = f"{thread}-{step}"
                client.set(key, value)
                written[key] = value
                other = rng.choice(keys)
                client.set(other, value)  # a key that may move: only must not fail
                if other in is_stable:
                    written[other] = value
                assert client.get(key) == value.encode()
                batch = rng.sample(stable, 4)
                got = client.mget(batch)
                assert got == [written.get(k, "").encode() or None for k in batch]
                pipe = client.pipeline(transaction=False)
                for k in batch:
                    pipe.set(k, f"{value}:{k}")
                    written[k] = f"{value}:{k}"
                pipe.get(batch[0])
                assert pipe.execute()[-1] == written[batch[0]].encode()
                checked[thread] += 1
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    try:
        for flip in range(20):
            text = four if flip % 2 == 0 else three
            replace(path, text)
            version = load_topology(path).version
            wait_until(lambda v=version: client.version == v or bool(errors), "the swap")  # type: ignore[misc]
            assert not errors, errors[0]
    finally:
        stop.set()
        for thread in threads:
            thread.join(WAIT)
    try:
        assert not errors, repr(errors[0])
        assert all(count > 0 for count in checked), checked
        final = client.version
        assert final == load_topology(path).version
        wait_until(lambda: set(hashring_names(servers)) == {final}, "old connections to close")
        assert sum(hashring_names(servers).values()) <= 4 * len(client.clients)  # per thread+node
    finally:
        client.close()
    assert not any(t.is_alive() for t in threads)
    assert follower_threads() == []
    assert hashring_names(servers) == {}


def test_a_client_follows_a_redis_key(
    redis_server_factory: RedisServerFactory,
    servers: list[RedisServer],
    files: tuple[Path, str, str],
) -> None:
    """from_source: `hashring topology push` of a new file switches the running client
    (woken by the announcement); close() stops the follower."""
    path, _, four = files
    config = redis_server_factory(1)[0]
    old = RedisTopologySource(config.url).publish(path, expect=None)
    client = ShardedRedis.from_source(config.url, watch_interval=0.05, socket_timeout=5)
    try:
        assert client.version == old.version
        assert sorted(client.clients) == ["n0", "n1", "n2"]
        four_file = path.with_name("four.toml")
        four_file.write_text(four, encoding="utf-8")
        pushed = run_checked(
            "topology", "push", str(four_file), "--to", config.url, "--expect", old.version
        )
        assert pushed.status == 0, pushed.stderr
        new = load_topology(four_file).version
        wait_until(lambda: client.version == new, "the client to take the pushed topology")
        client.set("k", "v")
        assert client.get("k") == b"v"
        assert set(hashring_names(servers)) == {new}
    finally:
        client.close()
    assert follower_threads() == []


def test_a_migration_topology_reads_keys_not_moved_yet(
    servers: list[RedisServer], files: tuple[Path, str, str]
) -> None:
    """A file with [migration] previous: writes go to the new owners, a key still on its
    old owner reads back through read_fallback (named with the new version); the final
    file without [migration] drops the fallback."""
    path, three, four = files
    previous = path.with_name("three.toml")
    previous.write_text(three, encoding="utf-8")
    old, final = load_topology(previous).placement(), load_topology_text(path, four)
    moved = next(f"m{i}" for i in range(1000) if old.get_node(f"m{i}") != final.get_node(f"m{i}"))
    client = ShardedRedis.from_config(path, watch=True, watch_interval=INTERVAL)
    try:
        client.set(moved, "before")
        assert client.read_fallback is None
        replace(path, four + '[migration]\nprevious = "three.toml"\n')
        window = load_topology(path).version
        wait_until(lambda: client.version == window, "the client to enter the window")
        assert client.node_for(moved) == final.get_node(moved)
        assert client.read_fallback is not None
        assert client.get(moved) == b"before"  # from its old owner
        client.set("fresh", "new")
        fresh_owner = int(final.get_node("fresh")[1:])
        assert admin_client(servers[fresh_owner]).get("fresh") == b"new"
        names = {c.client_getname() for c in client.read_fallback.clients.values()}
        assert names == {client_name(window)}
        replace(path, four)
        done = load_topology(path).version
        wait_until(lambda: client.version == done, "the client to finish the window")
        assert client.read_fallback is None
        assert client.get(moved) is None  # never migrated: the new owner lacks it
        wait_until(lambda: set(hashring_names(servers)) <= {done}, "window connections to close")
    finally:
        client.close()
    assert hashring_names(servers) == {}


def load_topology_text(path: Path, text: str) -> Placement:
    """The placement of ``text`` (written next to ``path``)."""
    other = path.with_name("placement.toml")
    other.write_text(text, encoding="utf-8")
    return load_topology(other).placement()


def test_topology_versions_of_plain_clients_are_none(servers: list[RedisServer]) -> None:
    """A client built from URLs has no topology version; add_node keeps a topology's."""
    client = ShardedRedis({"a": servers[0].url})
    try:
        assert client.version is None
        client.add_node("b", servers[1].url)
        assert client.version is None
    finally:
        client.close()


def test_a_command_under_way_finishes_on_the_old_client(
    servers: list[RedisServer], files: tuple[Path, str, str]
) -> None:
    """A BLPOP blocked when the topology switches keeps its old connection and answers;
    the old client is closed once it has (its lease given back), not before."""
    path, _, four = files
    client = ShardedRedis.from_config(path, watch=True, watch_interval=INTERVAL)
    try:
        old = client.version
        owner = servers[int(client.node_for("queue")[1:])]
        answer: list[object] = []
        waiter = threading.Thread(target=lambda: answer.append(client.blpop(["queue"], 20)))
        waiter.start()
        blocked = admin_client(owner)
        wait_until(lambda: blocked.info("clients")["blocked_clients"] == 1, "BLPOP to block")
        replace(path, four)
        new = load_topology(path).version
        wait_until(lambda: client.version == new, "the client to take the new file")
        assert hashring_names([owner]) == {old: 1}  # still under way on the old client
        blocked.rpush("queue", "job")
        waiter.join(WAIT)
        assert answer == [[b"queue", b"job"]] or answer == [(b"queue", b"job")]
        wait_until(lambda: old not in hashring_names(servers), "the old client to close")
    finally:
        client.close()
