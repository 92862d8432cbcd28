"""Keyless commands (server-wide state, combined answers) on real redis-servers: every one is
classified, writes reach every node, and merged reads answer as one server would."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import redis
from hashring.adapters.redis import AsyncShardedRedis, ShardedRedis, UnsupportedCommandError
from hashring.adapters.redis._answers import merger
from hashring.adapters.redis._commands import CONNECTION_STATE, CommandTable, plan_command
from hashring.adapters.redis._server_wide import RULES, Answer, Route
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis._parsers.commands import CommandsParser
from redis_servers import RedisServer, RedisServerFactory

pytestmark = pytest.mark.redis

NAMES = ("n0", "n1", "n2")
SPIN = "local t = redis.call('TIME') repeat local u = redis.call('TIME') until (u[1] - t[1]) * 1000000 + u[2] - t[2] > 3000"  # noqa: E501
"""A script that keeps its node busy for 3 ms: a slowlog entry and a latency spike."""


@pytest.fixture
def servers(redis_server_factory: RedisServerFactory) -> list[RedisServer]:
    """Three fresh servers owned by this test (their users, config and logs change)."""
    return redis_server_factory(3)


@pytest.fixture
def by_node(servers: list[RedisServer]) -> dict[str, redis.Redis]:
    """Node name -> a direct decoding client of that node."""
    return {n: s.client(decode_responses=True) for n, s in zip(NAMES, servers, strict=True)}


@pytest.fixture
def sharded(servers: list[RedisServer]) -> Iterator[ShardedRedis]:
    """A decoding ShardedRedis over the three fresh servers."""
    urls = {n: s.url for n, s in zip(NAMES, servers, strict=True)}
    with ShardedRedis(urls, decode_responses=True) as client:
        yield client


@pytest.fixture
def plain(redis_server_factory: RedisServerFactory) -> redis.Redis:
    """A decoding client of a fourth, unsharded server: the reference answer."""
    return redis_server_factory(1)[0].client(decode_responses=True)


def _keys_per_node(client: ShardedRedis | AsyncShardedRedis, prefix: str) -> dict[str, str]:
    """One key owned by each node."""
    found: dict[str, str] = {}
    for i in range(10_000):
        found.setdefault(client.node_for(f"{prefix}{i}"), f"{prefix}{i}")
        if len(found) == len(NAMES):
            return found
    raise AssertionError("no key found for some node")  # pragma: no cover


# ---------------------------------------------------------------- every command classified


def _keyless_commands(client: redis.Redis) -> list[str]:
    """Every keyless command and subcommand of the server (lower case, ``"name sub"``)."""
    names = []
    for name, info in CommandsParser(client).commands.items():
        for sub in info.get("subcommands") or []:
            flags = {f.decode() if isinstance(f, bytes) else f for f in sub[2]}
            if sub[3] == 0 and "movablekeys" not in flags:
                full = sub[0].decode() if isinstance(sub[0], bytes) else sub[0]
                names.append(full.lower().replace("|", " "))
        keyless = info.get("first_key_pos", 0) == 0 and "movablekeys" not in info.get("flags", ())
        if not info.get("subcommands") and keyless:
            names.append(name)
    return sorted(names)


def _table(client: redis.Redis) -> CommandTable:
    parser = CommandsParser(client)
    return CommandTable(parser.commands, parser.get_command_policies())


def test_every_keyless_command_of_the_server_is_classified(servers: list[RedisServer]) -> None:
    """Each keyless command is refused, pub/sub, one node by a listed rule, or every node."""
    raw = servers[0].client()
    table = _table(raw)
    names = _keyless_commands(raw)
    assert len(names) > 150
    assert {"acl setuser", "info"} <= set(names)
    routes: dict[str, str] = {}
    for name in names:
        command = table.describe(tuple(name.upper().split()))
        assert command.name == name
        try:
            plan = plan_command(command, tuple(name.split()), [], [], NAMES, "n0")
        except UnsupportedCommandError:
            routes[name] = "refused"
            listed = RULES.get(name) or RULES.get(name.split()[0])
            refused_here = listed is not None and listed.route is Route.REFUSE
            assert name in CONNECTION_STATE or refused_here, name
            continue
        nodes = [part.node for part in plan.parts]
        if nodes == list(NAMES):
            routes[name] = "every"
            continue
        assert nodes == ["n0"], name
        routes[name] = "one"
        pubsub = "pubsub" in command.flags or name.split()[0] in {"publish", "pubsub"}
        listed = RULES.get(name) or RULES.get(name.split()[0])
        one_by_rule = listed is not None and listed.route is Route.ONE
        assert pubsub or one_by_rule or name.endswith(" help"), f"{name} fell to one node"
    every = {n for n, r in routes.items() if r == "every"}
    assert {"acl setuser", "config set", "config resetstat", "save", "bgsave", "client kill",
            "script load", "function load", "slowlog reset", "latency reset", "memory purge",
            "info", "config get", "slowlog get", "acl list", "shutdown"} <= every  # fmt: skip
    assert {"echo", "time", "acl whoami", "client id", "command count", "publish"} <= {
        n for n, r in routes.items() if r == "one"
    }
    assert {"replicaof", "debug", "client unblock", "multi", "auth"} <= {
        n for n, r in routes.items() if r == "refused"
    }


def test_the_rules_name_only_commands_of_the_server(servers: list[RedisServer]) -> None:
    """No stale entry: every name in RULES is a command or subcommand of the server."""
    raw = servers[0].client()
    commands = CommandsParser(raw).commands
    known = set(_keyless_commands(raw)) | set(commands)
    assert sorted(set(RULES) - known) == []


# ---------------------------------------------------------------- writes reach every node


def test_acl_setuser_reaches_every_node_and_the_user_can_log_in(
    sharded: ShardedRedis, servers: list[RedisServer], by_node: dict[str, redis.Redis]
) -> None:
    """ACL SETUSER creates the user on every node: a client logging in as it works on all."""
    assert sharded.acl_setuser("u1", enabled=True, passwords=["+pw1"], keys="*", commands=["+@all"])
    for client in by_node.values():
        assert client.acl_getuser("u1")["enabled"] is True
    urls = {n: s.url for n, s in zip(NAMES, servers, strict=True)}
    with ShardedRedis(urls, username="u1", password="pw1", decode_responses=True) as user:
        keys = _keys_per_node(user, "acl:")
        for key in keys.values():
            assert user.set(key, "v") is True
        assert user.acl_whoami() == "u1"
        assert user.mget(list(keys.values())) == ["v", "v", "v"]
    assert sharded.acl_users() == ["default", "u1"]  # the nodes agree: one answer
    assert sharded.acl_deluser("u1") == 1
    assert [c.acl_users() for c in by_node.values()] == [["default"]] * 3


def test_config_set_and_resetstat_reach_every_node(
    sharded: ShardedRedis, by_node: dict[str, redis.Redis], plain: redis.Redis
) -> None:
    """CONFIG SET changes every node; CONFIG GET of agreeing nodes is one server's dict."""
    assert sharded.config_set("maxmemory-samples", 7) is True
    assert [c.config_get("maxmemory-samples") for c in by_node.values()] == [
        {"maxmemory-samples": "7"}
    ] * 3
    plain.config_set("maxmemory-samples", 7)
    assert sharded.config_get("maxmemory*") == plain.config_get("maxmemory*")
    ports = {n: c.connection_pool.connection_kwargs["port"] for n, c in by_node.items()}
    assert sharded.config_get("port") == {"port": {n: str(p) for n, p in ports.items()}}
    for client in by_node.values():
        client.ping()
    assert sharded.config_resetstat() is True
    for client in by_node.values():
        assert client.info("stats")["total_commands_processed"] <= 2


def test_scripts_and_functions_load_and_flush_on_every_node(
    sharded: ShardedRedis, by_node: dict[str, redis.Redis], plain: redis.Redis
) -> None:
    """SCRIPT LOAD / FUNCTION LOAD reach every node (keyed calls work anywhere), then flush."""
    sha = sharded.script_load("return redis.call('GET', KEYS[1])")
    library = "#!lua name=lib\nredis.register_function('getit', function(k) return redis.call('GET', k[1]) end)"  # noqa: E501
    assert sharded.function_load(library) == "lib"
    plain.function_load(library)
    keys = _keys_per_node(sharded, "fn:")
    for node, key in keys.items():
        sharded.set(key, node)
        assert sharded.evalsha(sha, 1, key) == node
        assert sharded.fcall("getit", 1, key) == node
    assert sharded.script_exists(sha, "0" * 40) == [True, False]
    assert sharded.function_list() == plain.function_list()
    assert sharded.function_stats() == plain.function_stats()
    assert sharded.script_flush() is True
    assert sharded.function_flush() is True
    assert [c.script_exists(sha) for c in by_node.values()] == [[False]] * 3
    assert [c.function_list() for c in by_node.values()] == [[]] * 3


def test_a_write_failing_on_one_node_names_it_and_others_keep_it(
    servers: list[RedisServer], by_node: dict[str, redis.Redis]
) -> None:
    """A fan-out write refused by one node raises that node's error class, naming the node;
    the nodes that applied it keep the change (no password in the message)."""
    for name, client in by_node.items():
        rules = ["+@all", "-config"] if name == "n1" else ["+@all"]
        client.acl_setuser("ops", enabled=True, passwords=["+secret-pw"], keys="*", commands=rules)
    urls = {n: s.url for n, s in zip(NAMES, servers, strict=True)}
    with (
        ShardedRedis(urls, username="ops", password="secret-pw") as ops,
        pytest.raises(redis.exceptions.NoPermissionError) as caught,
    ):
        ops.config_set("maxmemory-samples", 9)
    message = str(caught.value)
    assert "node 'n1'" in message
    assert "it succeeded on 'n0', 'n2', where nothing is undone" in message
    assert "secret" not in message
    assert isinstance(caught.value.__cause__, redis.exceptions.NoPermissionError)
    samples = {
        n: c.config_get("maxmemory-samples")["maxmemory-samples"] for n, c in by_node.items()
    }
    assert samples == {"n0": "9", "n1": "5", "n2": "9"}


def test_refused_keyless_commands_send_nothing(
    sharded: ShardedRedis, by_node: dict[str, redis.Redis]
) -> None:
    """REPLICAOF, CLIENT UNBLOCK and CLIENT KILL ID are refused before reaching any node."""
    before = [c.info("commandstats") for c in by_node.values()]
    with pytest.raises(UnsupportedCommandError, match="per node"):
        sharded.replicaof("127.0.0.1", 1)
    with pytest.raises(UnsupportedCommandError, match="client ids are per node"):
        sharded.client_unblock(5)
    with pytest.raises(UnsupportedCommandError, match="client ids are per node"):
        sharded.client_kill_filter(_id=5)
    assert [c.role()[0] for c in by_node.values()] == ["master"] * 3
    after = [c.info("commandstats") for c in by_node.values()]
    for old, new in zip(before, after, strict=True):
        for name in ("cmdstat_replicaof", "cmdstat_client|unblock", "cmdstat_client|kill"):
            assert old.get(name) == new.get(name)


def test_client_kill_succeeds_on_the_node_holding_the_client(
    sharded: ShardedRedis, by_node: dict[str, redis.Redis], servers: list[RedisServer]
) -> None:
    """CLIENT KILL addr kills the connection where it is; filters count over every node."""
    victim = servers[2].client(decode_responses=True)
    victim.client_setname("victim")
    address = next(c["addr"] for c in by_node["n2"].client_list() if c["name"] == "victim")
    assert sharded.client_kill(address) is True
    assert all(c["name"] != "victim" for c in by_node["n2"].client_list())
    with pytest.raises(redis.exceptions.ResponseError, match="No such client"):
        sharded.client_kill(address)
    subscribers = [s.client().pubsub() for s in servers[:2]]
    for subscriber in subscribers:
        subscriber.subscribe("news")
    assert sum(1 for c in sharded.client_list() if c["sub"] == "1") == 2
    assert sharded.client_kill_filter(_type="pubsub") == 2  # one on n0, one on n1: summed
    assert sharded.client_kill_filter(_type="pubsub") == 0
    for subscriber in subscribers:
        subscriber.close()


def test_script_kill_succeeds_when_the_busy_node_kills(
    sharded: ShardedRedis, servers: list[RedisServer], by_node: dict[str, redis.Redis]
) -> None:
    """SCRIPT KILL stops the script on the one busy node; the others' NOTBUSY is dropped;
    with no script running anywhere it fails as one server would."""
    with pytest.raises(redis.exceptions.ResponseError, match="NOTBUSY"):
        sharded.script_kill()
    by_node["n1"].config_set("busy-reply-threshold", 10)
    outcome: list[BaseException] = []

    def run() -> None:
        try:
            servers[1].client().eval("while true do end", 0)
        except redis.exceptions.ResponseError as error:
            outcome.append(error)

    runner = threading.Thread(target=run)
    runner.start()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:  # until n1 answers BUSY
        try:
            by_node["n1"].ping()
        except redis.exceptions.BusyLoadingError:
            break
        except redis.exceptions.ResponseError as error:
            if "BUSY" in str(error):
                break
            raise
        time.sleep(0.005)
    assert sharded.script_kill() is True
    runner.join(5)
    assert len(outcome) == 1
    assert "killed" in str(outcome[0]).lower()


def test_one_node_commands_and_connection_answers(
    sharded: ShardedRedis, by_node: dict[str, redis.Redis]
) -> None:
    """ECHO, ACL WHOAMI and CLIENT ID go to the default node only; CLIENT SETNAME names a
    connection on every node."""
    for client in by_node.values():
        client.config_resetstat()
    assert sharded.echo("hi") == "hi"
    assert sharded.acl_whoami() == "default"
    assert isinstance(sharded.client_id(), int)
    echoes = [
        c.info("commandstats").get("cmdstat_echo", {}).get("calls", 0) for c in by_node.values()
    ]
    assert echoes == [1, 0, 0]
    assert sharded.client_setname("sharded") is True
    for client in by_node.values():
        assert any(c["name"] == "sharded" for c in client.client_list())


# ---------------------------------------------------------------- merged reads


def _spin_everywhere(client: ShardedRedis) -> None:
    for key in _keys_per_node(client, "spin:").values():
        client.eval(SPIN, 1, key)


def test_slowlog_get_is_one_log_newest_first_with_unique_ids(
    sharded: ShardedRedis, by_node: dict[str, redis.Redis]
) -> None:
    """SLOWLOG GET n: at most n entries of all nodes, newest first, ids unique; LEN sums."""
    assert sharded.config_set("slowlog-log-slower-than", 0) is True
    for i in range(12):
        sharded.set(f"slow:{i}", i)
    per_node = {n: c.slowlog_get(128) for n, c in by_node.items()}
    total = sum(len(entries) for entries in per_node.values())
    assert sharded.slowlog_len() >= total  # the reads above were logged too
    for count in (1, 3, 100):
        merged = sharded.slowlog_get(count)
        assert isinstance(merged, list)
        assert 0 < len(merged) <= count
        assert len({e["id"] for e in merged}) == len(merged)
        starts = [e["start_time"] for e in merged]
        assert starts == sorted(starts, reverse=True)
        node_ids = {e["id"] % 3 for e in merged}
        for entry in merged:
            node = NAMES[entry["id"] % 3]
            original = {e["id"]: e for e in by_node[node].slowlog_get(128)}[entry["id"] // 3]
            assert {**original, "id": entry["id"]} == entry
        if count == 100:
            assert node_ids == {0, 1, 2}
    assert len(sharded.slowlog_get()) == 10
    assert sharded.slowlog_reset() is True
    assert sharded.config_set("slowlog-log-slower-than", 10_000_000) is True
    assert [c.slowlog_len() for c in by_node.values()] == [1, 1, 1]  # CONFIG SET itself


def test_acl_log_is_one_log_newest_first(
    sharded: ShardedRedis, servers: list[RedisServer], by_node: dict[str, redis.Redis]
) -> None:
    """ACL LOG merges every node's entries, newest first, at most ``count``; RESET clears all."""
    for server in (servers[2], servers[0], servers[1]):
        with pytest.raises(redis.exceptions.AuthenticationError):
            server.client(username="intruder", password="wrong").ping()
    merged = sharded.acl_log()
    assert len(merged) == 3
    assert all(e["reason"] == "auth" and e["username"] == "intruder" for e in merged)
    ages = [e["age-seconds"] for e in merged]
    assert ages == sorted(ages)
    assert len(sharded.acl_log(count=2)) == 2
    assert sharded.acl_log_reset() is True
    assert [c.acl_log() for c in by_node.values()] == [[], [], []]


def test_info_merges_field_by_field_like_one_server(
    sharded: ShardedRedis, by_node: dict[str, redis.Redis], plain: redis.Redis
) -> None:
    """INFO: one dict; keyspace counters summed to the plain server's; equal fields kept;
    per-node fields as {node: value}; the same for every section asked."""
    values = {f"info:{i}": str(i) for i in range(90)}
    sharded.mset(values)
    plain.mset(values)
    assert sharded.info("keyspace") == plain.info("keyspace")
    merged = sharded.info()
    assert type(merged) is type(plain.info())
    assert merged["redis_version"] == plain.info()["redis_version"]
    assert merged["process_id"] == {n: c.info()["process_id"] for n, c in by_node.items()}
    clients = sum(c.info("clients")["connected_clients"] for c in by_node.values())
    assert abs(sharded.info("clients")["connected_clients"] - clients) <= 3
    stats = sharded.info("commandstats")["cmdstat_mset"]
    assert stats["calls"] == 3
    assert stats["usec_per_call"] == round(stats["usec"] / 3, 2)


def test_memory_stats_and_reports(
    sharded: ShardedRedis, by_node: dict[str, redis.Redis], plain: redis.Redis
) -> None:
    """MEMORY STATS sums key counts (as the plain server's); DOCTOR reports carry node names."""
    values = {f"mem:{i}": "x" * 10 for i in range(50)}
    sharded.mset(values)
    plain.mset(values)
    merged = sharded.memory_stats()
    assert merged["keys.count"] == plain.memory_stats()["keys.count"] == 50

    def table_overhead() -> int:
        return sum(c.memory_stats()["db.0"]["overhead.hashtable.main"] for c in by_node.values())

    # A dict being rehashed (after the MSET) changes its overhead between two snapshots:
    # compare the merge with the nodes' sum once it holds still on both sides of it.
    deadline = time.monotonic() + 30
    while True:
        before = table_overhead()
        merged = sharded.memory_stats()
        if before == table_overhead() or time.monotonic() > deadline:
            break
    assert merged["db.0"]["overhead.hashtable.main"] == before
    report = sharded.execute_command("MEMORY DOCTOR")
    assert isinstance(report, str)
    assert [line for line in report.splitlines() if line.startswith("node ")] == [
        f"node {n}:" for n in NAMES
    ]
    assert sharded.memory_purge() is True


def test_latency_latest_and_history_merge_by_time(
    sharded: ShardedRedis, by_node: dict[str, redis.Redis]
) -> None:
    """LATENCY LATEST: per event the latest spike of any node and the largest maximum;
    LATENCY HISTORY: every node's samples by time; LATENCY RESET reaches every node."""
    assert sharded.config_set("latency-monitor-threshold", 1) is True
    _spin_everywhere(sharded)
    # Monitoring off again (the default): no command of this test, slow on a loaded
    # machine, adds an event between the snapshots compared below.
    assert sharded.config_set("latency-monitor-threshold", 0) is True
    per_node = {n: c.latency_latest() for n, c in by_node.items()}
    assert all(per_node.values())
    merged = {row[0]: row for row in sharded.latency_latest()}
    for event, row in merged.items():
        rows = [r for rows in per_node.values() for r in rows if r[0] == event]
        assert row[3] == max(r[3] for r in rows)
        assert (row[1], row[2]) == max((r[1], r[2]) for r in rows)
    history = sharded.latency_history("command")
    samples = [s for c in by_node.values() for s in c.latency_history("command")]
    assert [s[0] for s in history] == sorted({s[0] for s in samples})
    assert max(s[1] for s in history) == max(s[1] for s in samples)
    assert sharded.latency_reset() in (1, {n: 1 for n in NAMES})
    assert [c.latency_latest() for c in by_node.values()] == [[], [], []]


def test_save_and_bgsave_reach_every_node(
    sharded: ShardedRedis, by_node: dict[str, redis.Redis]
) -> None:
    """SAVE and BGSAVE reach every node; LASTSAVE is the oldest node's (all keys saved
    since)."""
    sharded.mset({f"save:{i}": i for i in range(30)})
    assert sharded.save() is True
    changes = [c.info("persistence")["rdb_changes_since_last_save"] for c in by_node.values()]
    assert changes == [0, 0, 0]
    assert sharded.lastsave() == min(c.lastsave() for c in by_node.values())
    sharded.mset({f"save:{i}": -i for i in range(30)})
    assert sharded.bgsave() is True
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(
        c.info("persistence")["rdb_changes_since_last_save"] for c in by_node.values()
    ):
        time.sleep(0.01)
    changes = [c.info("persistence")["rdb_changes_since_last_save"] for c in by_node.values()]
    assert changes == [0, 0, 0]
    assert sharded.dbsize() == 30


def test_resp3_answers_have_the_plain_servers_shape(
    servers: list[RedisServer], plain: redis.Redis
) -> None:
    """With protocol=3 the merged answers are of the plain server's types."""
    urls = {n: s.url for n, s in zip(NAMES, servers, strict=True)}
    reference = plain.connection_pool.connection_kwargs
    with (
        ShardedRedis(urls, protocol=3) as sharded,
        redis.Redis(host=reference["host"], port=reference["port"], protocol=3) as one,
    ):
        for command in ("info", "function_stats", "slowlog_get", "memory_stats", "acl_list"):
            ours, theirs = getattr(sharded, command)(), getattr(one, command)()
            assert type(ours) is type(theirs), command
        assert sharded.config_get("maxmemory*") == one.config_get("maxmemory*")
        assert sharded.function_stats() == one.function_stats()


# ---------------------------------------------------------------- asyncio twin


@pytest.fixture
def anyio_backend() -> str:
    """Run the async tests on asyncio only (redis.asyncio needs it)."""
    return "asyncio"


@pytest.fixture
async def async_sharded(servers: list[RedisServer]) -> AsyncIterator[AsyncShardedRedis]:
    """A decoding AsyncShardedRedis over the three fresh servers."""
    urls = {n: s.url for n, s in zip(NAMES, servers, strict=True)}
    async with AsyncShardedRedis(urls, decode_responses=True) as client:
        yield client


@pytest.mark.anyio
async def test_async_acl_setuser_reaches_every_node(
    async_sharded: AsyncShardedRedis, servers: list[RedisServer], by_node: dict[str, redis.Redis]
) -> None:
    """The asyncio client sends ACL SETUSER to every node too; the user logs in on all."""
    assert await async_sharded.acl_setuser("u2", enabled=True, passwords=["+pw2"], keys="*",
                                           commands=["+@all"])  # fmt: skip
    urls = {n: s.url for n, s in zip(NAMES, servers, strict=True)}
    async with AsyncShardedRedis(urls, username="u2", password="pw2") as user:
        for key in _keys_per_node(user, "async:").values():
            assert await user.set(key, "v") is True
    assert [c.acl_users() for c in by_node.values()] == [["default", "u2"]] * 3


@pytest.mark.anyio
async def test_async_merges_and_partial_failure(
    async_sharded: AsyncShardedRedis, servers: list[RedisServer], by_node: dict[str, redis.Redis]
) -> None:
    """The asyncio client merges INFO, SLOWLOG and CONFIG GET alike, and names a failed node."""
    await async_sharded.mset({f"a:{i}": i for i in range(30)})
    assert (await async_sharded.info("keyspace"))["db0"]["keys"] == 30
    assert await async_sharded.config_set("slowlog-log-slower-than", 0) is True
    await async_sharded.mset({f"b:{i}": i for i in range(30)})
    log = await async_sharded.slowlog_get(4)
    assert len(log) == 4
    assert len({e["id"] for e in log}) == 4
    assert (await async_sharded.config_get("slowlog-log-slower-than")) == {
        "slowlog-log-slower-than": "0"
    }
    by_node["n2"].acl_setuser("ro", enabled=True, passwords=["+pw"], keys="*",
                              commands=["+@all", "-config"])  # fmt: skip
    for name in ("n0", "n1"):
        by_node[name].acl_setuser("ro", enabled=True, passwords=["+pw"], keys="*",
                                  commands=["+@all"])  # fmt: skip
    urls = {n: s.url for n, s in zip(NAMES, servers, strict=True)}
    async with AsyncShardedRedis(urls, username="ro", password="pw") as limited:
        with pytest.raises(redis.exceptions.NoPermissionError, match="node 'n2'"):
            await limited.config_set("maxmemory-samples", 8)
    samples = [c.config_get("maxmemory-samples")["maxmemory-samples"] for c in by_node.values()]
    assert samples == ["8", "8", "5"]


# ---------------------------------------------------------------- differential


LIBRARY = "#!lua name={0}\nredis.register_function('{0}_f', function() return 1 end)"
SCRIPTS = ("return 1", "return 2")
users = st.sampled_from(["alice", "bob"])
state_steps = st.one_of(
    st.tuples(st.just("acl_setuser"), users, st.booleans(), st.sampled_from(["+@all", "-@all"])),
    st.tuples(st.just("acl_deluser"), st.lists(users, min_size=1, max_size=2)),
    st.tuples(st.just("config_set"), st.sampled_from(["maxmemory-samples", "hz"]),
              st.integers(1, 40)),
    st.tuples(st.just("script_load"), st.sampled_from(SCRIPTS)),
    st.tuples(st.just("script_flush")),
    st.tuples(st.just("function_load"), st.sampled_from(["la", "lb"]), st.booleans()),
    st.tuples(st.just("function_delete"), st.sampled_from(["la", "lb"])),
)  # fmt: skip


def _apply(step: tuple[Any, ...], client: Any) -> Any:
    """Run one state-changing step: its answer, or its error's class and message."""
    try:
        if step[0] == "acl_setuser":
            return client.acl_setuser(step[1], enabled=step[2], commands=[step[3]], reset=True)
        if step[0] == "acl_deluser":
            return client.acl_deluser(*step[1])
        if step[0] == "config_set":
            return client.config_set(step[1], step[2])
        if step[0] == "script_load":
            return client.script_load(step[1])
        if step[0] == "script_flush":
            return client.script_flush()
        if step[0] == "function_load":
            return client.function_load(LIBRARY.format(step[1]), replace=step[2])
        return client.function_delete(step[1])
    except redis.exceptions.ResponseError as error:
        return ("error", type(error).__name__, str(error).split(" (node ")[0])


def _observe(client: Any) -> Any:
    """What a client sees of the server-wide state, answers and their types."""
    seen = [
        client.acl_users(),
        [client.acl_getuser(u) for u in ("alice", "bob")],
        client.config_get("maxmemory-samples"),
        client.config_get("hz"),
        client.script_exists(*[sha1(s) for s in SCRIPTS]),
        client.function_list(),
        client.function_stats(),
    ]
    seen[5] = sorted(seen[5], key=repr)  # FUNCTION LIST: hash-table order, on one server too
    return [(type(answer).__name__, answer) for answer in seen]


def sha1(script: str) -> str:
    """A script's SHA1, as SCRIPT LOAD answers it."""
    return hashlib.sha1(script.encode()).hexdigest()


def _reset_server_state(clients: list[redis.Redis]) -> None:
    for client in clients:
        for user in client.acl_users():
            if user != "default":
                client.acl_deluser(user)
        client.script_flush()
        client.function_flush()
        client.config_set("maxmemory-samples", 5)
        client.config_set("hz", 10)


@settings(max_examples=15, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(program=st.lists(state_steps, min_size=1, max_size=8))
def test_server_state_differential_against_one_plain_server(
    sharded: ShardedRedis,
    by_node: dict[str, redis.Redis],
    plain: redis.Redis,
    program: list[tuple[Any, ...]],
) -> None:
    """Any sequence of ACL / CONFIG / SCRIPT / FUNCTION changes answers, and leaves the
    server-wide state seen through ShardedRedis, exactly as one plain server."""
    _reset_server_state([*by_node.values(), plain])
    for step in program:
        assert _apply(step, sharded) == _apply(step, plain), step
        assert _observe(sharded) == _observe(plain), step
    for client in by_node.values():  # and every node holds that state
        assert _observe(client) == _observe(plain)


# ---------------------------------------------------------------- merges as functions


entries = st.lists(
    st.fixed_dictionaries({"id": st.integers(0, 50), "start_time": st.integers(0, 20)}),
    max_size=8,
)


@settings(max_examples=60)
@given(logs=st.lists(entries, min_size=1, max_size=4), count=st.integers(0, 12))
def test_slowlog_merge_keeps_the_newest_with_unique_ids(
    logs: list[list[dict[str, int]]], count: int
) -> None:
    """The merged slowlog has min(count, total) entries, newest first, each one a node's
    entry under a unique id that names its node."""
    ordered = [sorted(log, key=lambda e: -e["start_time"]) for log in logs]
    ordered = [[{**e, "id": len(log) - i} for i, e in enumerate(log)] for log in ordered]
    nodes = [f"n{i}" for i in range(len(logs))]
    merged = merger(Answer.SLOWLOG, nodes, ("SLOWLOG GET", count))(ordered)
    assert len(merged) == min(count, sum(map(len, ordered)))
    assert len({e["id"] for e in merged}) == len(merged)
    assert [e["start_time"] for e in merged] == sorted(
        (e["start_time"] for e in merged), reverse=True
    )
    everything = sorted((e["start_time"] for log in ordered for e in log), reverse=True)
    assert [e["start_time"] for e in merged] == everything[: len(merged)]
    for entry in merged:
        node = entry["id"] % len(logs)
        assert {**entry, "id": entry["id"] // len(logs)} in ordered[node]


@settings(max_examples=60)
@given(
    answers=st.lists(
        st.dictionaries(st.sampled_from(["keys", "expires", "tcp_port", "role"]),
                        st.integers(0, 5), min_size=1),
        min_size=1, max_size=4,
    )
)  # fmt: skip
def test_fields_merge_sums_counters_and_never_guesses(answers: list[dict[str, int]]) -> None:
    """INFO-style merge: counters are sums; another field is a value only when every node
    gives it, else {node: value} for the nodes that have it."""
    nodes = [f"n{i}" for i in range(len(answers))]
    merged = merger(Answer.FIELDS, nodes, ("INFO",))(answers)
    for field, value in merged.items():
        given_by = {n: a[field] for n, a in zip(nodes, answers, strict=True) if field in a}
        if field in ("keys", "expires"):
            assert value == sum(given_by.values())
        elif len(given_by) == len(nodes) and len(set(given_by.values())) == 1:
            assert value == next(iter(given_by.values()))
        else:
            assert value == given_by


def test_agreed_is_one_answer_or_per_node() -> None:
    """AGREED: the common answer (lists in any order), else {node: answer}."""
    merge = merger(Answer.AGREED, ["a", "b"], ("ACL LIST",))
    assert merge([["x"], ["x"]]) == ["x"]
    assert merge([["x", "y"], ["y", "x"]]) == ["x", "y"]
    assert merge([["x"], ["y"]]) == {"a": ["x"], "b": ["y"]}
    assert merge([["x", "x"], ["x"]]) == {"a": ["x", "x"], "b": ["x"]}
