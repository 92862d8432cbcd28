"""read_fallback during a migration: every read-only command answers as one server would.

Two topologies over real servers: ``old`` (n0..n2) holds the data; ``new`` (n0..n3,
``read_fallback=old``) owns some keys on n3, which holds nothing yet. Every read is compared
with one plain server holding the same keys (answer and Python type), for keys moved (on
their old owner only), kept and absent; then a migrator thread (task) copies keys to their
new owners and deletes them from the old while readers read: no read reports a present
key missing.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import random
import threading
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import pytest
import redis
from hashring.adapters.redis import AsyncShardedRedis, ShardedRedis
from hashring.adapters.redis._fallback import MAX_ROUNDS, Read, Seen, may_read, resolve, settle
from hypothesis import given, settings
from hypothesis import strategies as st
from redis._parsers.commands import CommandsParser
from redis_servers import RedisServer, redis_server_pool

from hashring import CrossShardError, UnsupportedCommandError

pytestmark = pytest.mark.redis

OLD = ("n0", "n1", "n2")
NEW = ("n0", "n1", "n2", "n3")
Key = Callable[[str], str]


@pytest.fixture(scope="module")
def five(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[RedisServer]]:
    """Five servers for this module: four for the topologies, the last a plain one."""
    with redis_server_pool(tmp_path_factory) as factory:
        yield factory(5)


@pytest.fixture
def servers(five: list[RedisServer]) -> list[RedisServer]:
    """The five servers, flushed."""
    for server in five:
        if not server.is_running():
            server.restart()
        server.flushall()
    return five


@pytest.fixture
def anyio_backend() -> str:
    """Async tests on asyncio (redis.asyncio needs it)."""
    return "asyncio"


def _urls(servers: list[RedisServer], names: tuple[str, ...]) -> dict[str, str]:
    return {name: server.url for name, server in zip(names, servers, strict=False)}


@pytest.fixture
def topologies(servers: list[RedisServer]) -> Iterator[tuple[ShardedRedis, ShardedRedis]]:
    """(old over n0..n2, new over n0..n3 with read_fallback=old), decoding."""
    with (
        ShardedRedis(_urls(servers, OLD), decode_responses=True) as old,
        ShardedRedis(_urls(servers, NEW), decode_responses=True, read_fallback=old) as new,
    ):
        yield old, new


@pytest.fixture
def plain(servers: list[RedisServer]) -> Iterator[redis.Redis]:
    """One plain server, the reference."""
    with servers[4].client(decode_responses=True) as client:
        yield client


def _tag(new: ShardedRedis, old: ShardedRedis, moved: bool, prefix: str = "t") -> str:
    """A ``{hash tag}`` whose keys move to n3 (``moved``) or stay where they were."""
    for i in range(10_000):
        tag = f"{{{prefix}{i}}}"
        if (new.node_for(tag) == "n3") is moved and (
            moved or new.node_for(tag) == old.node_for(tag)
        ):
            return tag
    raise AssertionError("no such tag")


LIB = (
    "#!lua name=h5lib\n"
    "redis.register_function{function_name='rget', callback=function(keys, args) "
    "return redis.call('GET', keys[1]) end, flags={'no-writes'}}"
)
SCRIPT = "return redis.call('GET', KEYS[1])"
SHA = hashlib.sha1(SCRIPT.encode()).hexdigest()


def _seed(client: Any, k: Key) -> None:
    """The same data, through ``client`` (the old topology or the plain server)."""
    client.set(k("str"), "hello world")
    client.set(k("str2"), "hello there")
    client.expireat(k("str"), 4_000_000_000)
    client.set(k("num"), "7")
    client.hset(k("hash"), mapping={"f1": "v1", "f2": "22", "f3": "v3"})
    client.rpush(k("list"), "3", "1", "2", "1")
    client.sadd(k("set"), "a", "b", "c")
    client.sadd(k("set2"), "b", "c", "d")
    client.zadd(k("zset"), {"a": 1, "b": 2, "c": 3})
    client.zadd(k("zset2"), {"b": 5, "c": 6, "d": 7})
    client.xadd(k("stream"), {"f": "1"}, id="1-1")
    client.xadd(k("stream"), {"f": "2"}, id="2-1")
    client.xgroup_create(k("stream"), "g", id="0")
    client.geoadd(k("geo"), (13.361389, 38.115556, "palermo"), (15.087269, 37.502669, "catania"))
    client.pfadd(k("hll"), "a", "b", "c")
    client.pfadd(k("hll2"), "c", "d")


class _Then(NamedTuple):
    """An answer (or an awaitable of one) compared after ``then`` (sorted when random)."""

    answer: Any
    then: Callable[[Any], Any]


def _sorted(value: Any, part: int | None = None) -> _Then:
    """Compare sorted (``answer[part]`` sorted: SSCAN's page)."""
    return _Then(value, lambda answer: sorted(answer if part is None else answer[part]))


# (command names as in the COMMAND table, the read, how to normalize a random order)
READS: list[tuple[tuple[str, ...], Callable[[Any, Key], Any]]] = [
    (("get",), lambda c, k: c.get(k("str"))),
    (("strlen",), lambda c, k: c.strlen(k("str"))),
    (("getrange",), lambda c, k: c.getrange(k("str"), 0, 4)),
    (("substr",), lambda c, k: c.substr(k("str"), 1, 3)),
    (("getbit",), lambda c, k: c.getbit(k("str"), 1)),
    (("bitcount",), lambda c, k: c.bitcount(k("str"))),
    (("bitpos",), lambda c, k: c.bitpos(k("str"), 1)),
    (("bitfield_ro",), lambda c, k: c.bitfield_ro(k("str"), "u8", 0, items=[("u4", 8)])),
    (("lcs",), lambda c, k: c.lcs(k("str"), k("str2"))),
    (("mget",), lambda c, k: c.mget([k("str"), k("absent"), k("num"), k("str")])),
    (("exists",), lambda c, k: c.exists(k("str"), k("str"), k("absent"), k("hash"))),
    (("touch",), lambda c, k: c.touch(k("str"), k("absent"), k("list"))),
    (("type",), lambda c, k: c.type(k("hash"))),
    (("type",), lambda c, k: c.type(k("str"))),
    (("ttl",), lambda c, k: c.ttl(k("num"))),
    (("pttl",), lambda c, k: c.pttl(k("num"))),
    (("expiretime",), lambda c, k: c.expiretime(k("str"))),
    (("pexpiretime",), lambda c, k: c.pexpiretime(k("str"))),
    (("dump",), lambda c, k: c.dump(k("hash"))),
    (("sort_ro",), lambda c, k: c.execute_command("SORT_RO", k("list"), "DESC")),
    (("llen",), lambda c, k: c.llen(k("hash"))),  # WRONGTYPE, from whichever side holds it
    (("eval_ro",), lambda c, k: c.eval_ro(SCRIPT, 1, k("str"))),
    (("evalsha_ro",), lambda c, k: c.evalsha_ro(SHA, 1, k("str"))),
    (("fcall_ro",), lambda c, k: c.fcall_ro("rget", 1, k("str"))),
    (("hget",), lambda c, k: c.hget(k("hash"), "f1")),
    (("hgetall",), lambda c, k: c.hgetall(k("hash"))),
    (("hmget",), lambda c, k: c.hmget(k("hash"), ["f1", "nope", "f3"])),
    (("hkeys",), lambda c, k: c.hkeys(k("hash"))),
    (("hvals",), lambda c, k: c.hvals(k("hash"))),
    (("hlen",), lambda c, k: c.hlen(k("hash"))),
    (("hexists",), lambda c, k: c.hexists(k("hash"), "f2")),
    (("hstrlen",), lambda c, k: c.hstrlen(k("hash"), "f2")),
    (("hrandfield",), lambda c, k: _sorted(c.hrandfield(k("hash"), 10))),
    (("hscan",), lambda c, k: c.hscan(k("hash"), 0, count=100)),
    (("lrange",), lambda c, k: c.lrange(k("list"), 0, -1)),
    (("llen",), lambda c, k: c.llen(k("list"))),
    (("lindex",), lambda c, k: c.lindex(k("list"), 1)),
    (("lpos",), lambda c, k: c.lpos(k("list"), "1", count=0)),
    (("smembers",), lambda c, k: c.smembers(k("set"))),
    (("scard",), lambda c, k: c.scard(k("set"))),
    (("sismember",), lambda c, k: c.sismember(k("set"), "b")),
    (("smismember",), lambda c, k: c.smismember(k("set"), ["a", "z"])),
    (("srandmember",), lambda c, k: _sorted(c.srandmember(k("set"), 10))),
    (("sscan",), lambda c, k: _sorted(c.sscan(k("set"), 0, count=100), 1)),
    (("sinter",), lambda c, k: c.sinter(k("set"), k("set2"))),
    (("sunion",), lambda c, k: c.sunion(k("set"), k("set2"))),
    (("sdiff",), lambda c, k: c.sdiff(k("set"), k("set2"))),
    (("sintercard",), lambda c, k: c.sintercard(2, [k("set"), k("set2")])),
    (("zrange",), lambda c, k: c.zrange(k("zset"), 0, -1, withscores=True)),
    (("zrevrange",), lambda c, k: c.zrevrange(k("zset"), 0, 1)),
    (("zrangebyscore",), lambda c, k: c.zrangebyscore(k("zset"), 1, 2)),
    (("zrevrangebyscore",), lambda c, k: c.zrevrangebyscore(k("zset"), 3, 2)),
    (("zrangebylex",), lambda c, k: c.zrangebylex(k("zset"), "-", "[b")),
    (("zrevrangebylex",), lambda c, k: c.zrevrangebylex(k("zset"), "+", "[b")),
    (("zscore",), lambda c, k: c.zscore(k("zset"), "b")),
    (("zmscore",), lambda c, k: c.zmscore(k("zset"), ["a", "z"])),
    (("zcard",), lambda c, k: c.zcard(k("zset"))),
    (("zcount",), lambda c, k: c.zcount(k("zset"), 2, 3)),
    (("zlexcount",), lambda c, k: c.zlexcount(k("zset"), "-", "+")),
    (("zrank",), lambda c, k: c.zrank(k("zset"), "c")),
    (("zrevrank",), lambda c, k: c.zrevrank(k("zset"), "c")),
    (("zrandmember",), lambda c, k: _sorted(c.zrandmember(k("zset"), 10))),
    (("zscan",), lambda c, k: c.zscan(k("zset"), 0, count=100)),
    (("zunion",), lambda c, k: c.zunion([k("zset"), k("zset2")], withscores=True)),
    (("zinter",), lambda c, k: c.zinter([k("zset"), k("zset2")])),
    (("zdiff",), lambda c, k: c.zdiff([k("zset"), k("zset2")])),
    (("zintercard",), lambda c, k: c.zintercard(2, [k("zset"), k("zset2")])),
    (("xlen",), lambda c, k: c.xlen(k("stream"))),
    (("xrange",), lambda c, k: c.xrange(k("stream"))),
    (("xrevrange",), lambda c, k: c.xrevrange(k("stream"), count=1)),
    (("xread",), lambda c, k: c.xread({k("stream"): "1-1"})),
    (("xpending",), lambda c, k: c.xpending(k("stream"), "g")),
    (("geopos",), lambda c, k: c.geopos(k("geo"), "palermo", "nowhere")),
    (("geodist",), lambda c, k: c.geodist(k("geo"), "palermo", "catania", unit="km")),
    (("geohash",), lambda c, k: c.geohash(k("geo"), "palermo")),
    (("geosearch",), lambda c, k: c.geosearch(k("geo"), member="palermo", radius=200, unit="km")),
    (
        ("georadius_ro",),
        lambda c, k: c.execute_command("GEORADIUS_RO", k("geo"), 15, 37, 200, "km", "ASC"),
    ),
    (
        ("georadiusbymember_ro",),
        lambda c, k: c.execute_command("GEORADIUSBYMEMBER_RO", k("geo"), "palermo", 200, "km"),
    ),
    (("pfcount",), lambda c, k: c.pfcount(k("hll"))),
    (("pfcount",), lambda c, k: c.pfcount(k("hll"), k("hll2"))),
]

# Flagged as writes for their STORE argument, read-only without it (redis-py's sort_ro()
# and georadius() send SORT and GEORADIUS): COMMAND GETKEYSANDFLAGS says RO for every key.
READS_FLAGGED_AS_WRITES: list[tuple[tuple[str, ...], Callable[[Any, Key], Any]]] = [
    (("sort",), lambda c, k: c.sort_ro(k("list"))),
    (("sort",), lambda c, k: c.sort(k("list"), desc=True)),
    (("georadius",), lambda c, k: c.georadius(k("geo"), 15, 37, 200, unit="km", sort="ASC")),
    (
        ("georadiusbymember",),
        lambda c, k: c.georadiusbymember(k("geo"), "palermo", 200, unit="km", sort="ASC"),
    ),
]

# Subcommands: CommandTable holds their container command's (empty) flags, so they are
# recognised as reads by COMMAND GETKEYSANDFLAGS (every key RO).
SUBCOMMAND_READS: list[tuple[tuple[str, ...], Callable[[Any, Key], Any]]] = [
    (("object|encoding",), lambda c, k: c.object("encoding", k("hash"))),
    (("object|refcount",), lambda c, k: c.object("refcount", k("hash"))),
    (("object|freq",), lambda c, k: c.object("freq", k("hash"))),
    (("memory|usage",), lambda c, k: _Then(c.memory_usage(k("str")), lambda n: n is not None)),
    (("xinfo|stream",), lambda c, k: c.xinfo_stream(k("stream"))),
    (("xinfo|groups",), lambda c, k: c.xinfo_groups(k("stream"))),
    (("xinfo|consumers",), lambda c, k: c.xinfo_consumers(k("stream"), "g")),
]

NOT_COMPARED = {
    "object|idletime": "time-dependent on one server too",
    "xread": "covered by READS without BLOCK; with BLOCK it is refused (test below)",
}


def _outcome(read: Callable[[Any, Key], Any], client: Any, k: Key) -> tuple[str, Any, type]:
    """("ok", answer, type) or ("error", message, class) of ``read(client, k)``."""
    try:
        value = read(client, k)
    except redis.exceptions.ResponseError as error:
        return "error", str(error), type(error)
    if isinstance(value, _Then):
        value = value.then(value.answer)
    return "ok", value, type(value)


async def _outcome_async(
    read: Callable[[Any, Key], Any], client: Any, k: Key
) -> tuple[str, Any, type]:
    try:
        value = read(client, k)
        if isinstance(value, _Then):
            value = value.then(await value.answer)
        elif inspect.isawaitable(value):
            value = await value
    except redis.exceptions.ResponseError as error:
        return "error", str(error), type(error)
    return "ok", value, type(value)


def _prepare(old: Any, plain: redis.Redis, tags: list[str], *shared: Any) -> None:
    """The same data under each tag in the old topology and the plain server; the script
    and the function library on ``plain`` and ``shared`` (a client of every node)."""
    for tag in tags:
        _seed(old, lambda name, tag=tag: f"{tag}{name}")
        _seed(plain, lambda name, tag=tag: f"{tag}{name}")
    for client in (plain, *shared):
        client.function_load(LIB, replace=True)
        client.script_load(SCRIPT)


def _ids(reads: list[tuple[tuple[str, ...], Any]]) -> list[str]:
    return [f"{names[0]}-{i}" for i, (names, _) in enumerate(reads)]


ALL_READS = READS + READS_FLAGGED_AS_WRITES + SUBCOMMAND_READS


@pytest.mark.parametrize(("names", "read"), ALL_READS, ids=_ids(ALL_READS))
def test_every_read_answers_as_one_server(
    topologies: tuple[ShardedRedis, ShardedRedis],
    plain: redis.Redis,
    servers: list[RedisServer],
    names: tuple[str, ...],
    read: Callable[[Any, Key], Any],
) -> None:
    """A read-only command on keys on their old owner only, kept or absent answers as one
    server holding them all (answer and type)."""
    old, new = topologies
    moved, kept = _tag(new, old, True), _tag(new, old, False)
    _prepare(old, plain, [moved, kept], new)  # new's nodes are the old topology's and n3
    with servers[3].client() as fresh:
        assert fresh.dbsize() == 0  # nothing migrated: moved keys are on their old owner only
    for tag in (moved, kept, "{absent}"):
        k: Key = lambda name, tag=tag: f"{tag}{name}"  # noqa: E731
        assert _outcome(read, new, k) == _outcome(read, plain, k), (names, tag)


def test_reads_cover_the_command_table(plain: redis.Redis) -> None:
    """Every read-only command with keys in the server's COMMAND table is compared above."""
    parser = CommandsParser(plain)  # type: ignore[no-untyped-call]
    table: set[str] = set()
    for name, info in parser.commands.items():
        for entry in [info, *({"name": s[0], **_sub(s)} for s in info.get("subcommands", []))]:
            keyed = entry["first_key_pos"] > 0 or "movablekeys" in entry["flags"]
            if "readonly" in [_str(f) for f in entry["flags"]] and keyed:
                table.add(_str(entry["name"]) if entry is not info else name)
    covered = {n for names, _ in READS + SUBCOMMAND_READS for n in names} | set(NOT_COMPARED)
    assert table - covered == set()
    assert covered - table == set()


def test_subcommands_have_their_own_flags(servers: list[RedisServer], plain: redis.Redis) -> None:
    """Every subcommand in the server's COMMAND table is described with its own flags and
    first key (COMMAND INFO container|sub), however redis-py spells it (one argument
    ``"MEMORY USAGE"`` or two); only the keyed read-only ones may fall back."""
    with ShardedRedis({"n0": servers[4].url}) as sharded:
        table = sharded._command_table()[1]
    checked = 0
    for name, info in CommandsParser(plain).commands.items():  # type: ignore[no-untyped-call]
        for entry in info.get("subcommands", []):
            full = _str(entry[0])
            [own] = plain.execute_command("COMMAND INFO", full)  # [name, arity, flags, first, ...]
            flags = {_str(f) for f in own[2]}
            word = full.split("|", 1)[1]
            for args in (
                (name.upper(), word.upper(), "k"),
                (f"{name.upper()} {word.upper()}", "k"),
            ):
                command = table.describe(args)
                assert command.name == f"{name} {word}", args
                assert command.flags == flags, args
                assert command.first_key == own[3], args
                assert may_read(command) == ("readonly" in flags), args
            checked += 1
    assert checked > 100  # Redis 7 has some 200 subcommands
    assert "readonly" in table.describe(("OBJECT", "ENCODING", "k")).flags
    assert "write" in table.describe(("XGROUP", "DESTROY", "k", "g")).flags
    assert not may_read(table.describe(("CONFIG", "GET", "maxmemory")))


def _str(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _sub(entry: list[Any]) -> dict[str, Any]:
    return {"flags": entry[2], "first_key_pos": entry[3]}


def test_mget_across_nodes_settles_per_key(
    topologies: tuple[ShardedRedis, ShardedRedis], plain: redis.Redis
) -> None:
    """MGET/EXISTS/TOUCH split over nodes: each key moved, kept or absent answers alone."""
    old, new = topologies
    data = {f"m:{i}": f"v{i}" for i in range(120)}
    old.mset(data)
    plain.mset(data)
    keys = [*data, "m:absent", "m:0", *list(data)[:5]]
    assert {new.node_for(k) for k in data} == set(NEW)
    assert any(new.node_for(k) != old.node_for(k) for k in data)
    assert new.mget(keys) == plain.mget(keys)
    assert new.exists(*keys) == plain.exists(*keys)
    assert new.touch(*keys) == plain.touch(*keys)
    new.set("m:0", "fresh")  # written on its new owner: the new owner wins
    plain.set("m:0", "fresh")
    assert new.mget(keys) == plain.mget(keys)


def test_read_fallback_finds_keys_in_the_old_topology(
    topologies: tuple[ShardedRedis, ShardedRedis], servers: list[RedisServer]
) -> None:
    """During a migration, reads of keys not yet on their new owner come from the old one
    (moved from test_redis_client.py)."""
    old, new = topologies
    sample = [f"mig:{i}" for i in range(200)]
    old.mset({key: f"v{key}" for key in sample})
    moved = [key for key in sample if new.node_for(key) != old.node_for(key)]
    kept = [key for key in sample if key not in moved]
    assert moved
    assert kept
    with servers[3].client() as fresh:
        assert fresh.dbsize() == 0  # nothing was migrated: values come from the fallback
    for key in moved[:20] + kept[:20]:
        assert new.get(key) == f"v{key}"
    mixed = [*moved[:10], "mig:absent", *kept[:10]]
    expected = [f"v{key}" if key != "mig:absent" else None for key in mixed]
    assert new.mget(mixed) == expected
    new.set(moved[0], "fresh")
    assert new.get(moved[0]) == "fresh"  # the new owner wins once it has the key
    assert old.get(moved[0]) == f"v{moved[0]}"


def _split_tag_group(old: ShardedRedis, new: ShardedRedis) -> tuple[str, str]:
    """Two keys of one moving tag group, the first moved already, the second not."""
    tag = _tag(new, old, True)
    first, second = f"{tag}a", f"{tag}b"
    old.sadd(first, "x")
    old.sadd(second, "y")
    new.client_for(first).restore(first, 0, old.client_for(first).dump(first))
    old.client_for(first).delete(first)
    return first, second


def test_keys_split_between_topologies_are_refused(
    topologies: tuple[ShardedRedis, ShardedRedis],
) -> None:
    """A read of a tag group half moved answers from neither half: CrossShardError after
    the bounded rounds; once moved, the right answer."""
    old, new = topologies
    first, second = _split_tag_group(old, new)
    with pytest.raises(CrossShardError, match="split between the old and the new"):
        new.sunion(first, second)
    assert new.smembers(first) == {"x"}  # each key alone is answered
    assert new.smembers(second) == {"y"}
    new.client_for(second).restore(second, 0, old.client_for(second).dump(second))
    old.client_for(second).delete(second)
    assert new.sunion(first, second) == {"x", "y"}


def test_keyless_reads_never_fall_back(
    topologies: tuple[ShardedRedis, ShardedRedis], servers: list[RedisServer]
) -> None:
    """DBSIZE, KEYS, RANDOMKEY read the new topology's nodes only, and send no EXISTS."""
    old, new = topologies
    tag = _tag(new, old, True)
    old.set(f"{tag}k", "v")
    with servers[3].client() as fresh:
        fresh.config_resetstat()
        assert new.dbsize() == 1  # n3 holds nothing; the key counts once, on its old owner
        assert "cmdstat_exists" not in fresh.info("commandstats")


def test_new_owner_wins_and_writes_never_fall_back(
    topologies: tuple[ShardedRedis, ShardedRedis], servers: list[RedisServer]
) -> None:
    """A key on its new owner answers from there; a write goes to the new owner only.
    (Known limit, pinned: a key deleted on its new owner reads its old copy meanwhile.)"""
    old, new = topologies
    tag = _tag(new, old, True)
    old.hset(f"{tag}h", mapping={"a": "old"})
    assert new.hgetall(f"{tag}h") == {"a": "old"}
    assert new.hset(f"{tag}h", "b", "new") == 1  # HSET on the new owner: the hash is new
    assert new.hgetall(f"{tag}h") == {"b": "new"}
    assert old.hgetall(f"{tag}h") == {"a": "old"}
    assert new.delete(f"{tag}h") == 1
    assert new.hgetall(f"{tag}h") == {"a": "old"}  # still held by the old topology


def test_hot_path_sends_exists_only_when_migrating(
    topologies: tuple[ShardedRedis, ShardedRedis], servers: list[RedisServer]
) -> None:
    """With read_fallback, a present key costs one EXISTS on its owner and nothing on the
    old topology; without it, nothing but the read."""
    old, new = topologies
    tag = _tag(new, old, True)
    new.set(f"{tag}k", "v")
    stats = [server.client() for server in servers[:4]]
    try:
        for s in stats:
            s.config_resetstat()
        assert new.get(f"{tag}k") == "v"
        calls = {i: s.info("commandstats") for i, s in enumerate(stats)}
        assert calls[3]["cmdstat_exists"]["calls"] == 1
        assert calls[3]["cmdstat_get"]["calls"] == 1
        assert all("cmdstat_get" not in calls[i] for i in range(3))
        new.read_fallback = None
        stats[3].config_resetstat()
        assert new.get(f"{tag}k") == "v"
        assert "cmdstat_exists" not in stats[3].info("commandstats")
    finally:
        for s in stats:
            s.close()


def test_blocking_read_is_refused_before_sending(
    topologies: tuple[ShardedRedis, ShardedRedis],
) -> None:
    """XREAD ... BLOCK during a migration is refused with a typed error; without BLOCK it
    is answered."""
    old, new = topologies
    old.xadd("s", {"f": "1"}, id="1-1")
    with pytest.raises(UnsupportedCommandError, match="BLOCK"):
        new.xread({"s": "0-0"}, block=10)
    assert new.xread({"s": "0-0"}) == [["s", [("1-1", {"f": "1"})]]]


# ------------------------------------------------------------------ concurrent migration


def _migrate(
    old: ShardedRedis,
    new: ShardedRedis,
    keys: list[str],
    order: random.Random,
    current: list[str],
) -> Iterator[None]:
    """Copy each key to its new owner, then delete it from the old (as ``hashring
    migrate``), naming the key under way in ``current[0]``; yields after each step."""
    order.shuffle(keys)
    for key in keys:
        current[0] = key
        payload = old.client_for(key).dump(key)
        assert payload is not None
        new.client_for(key).restore(key, 0, payload, replace=True)
        yield
        old.client_for(key).delete(key)
        yield


def _seed_moving(old: Any, count: int) -> tuple[list[str], dict[str, Callable[[Any], Any]]]:
    """Keys of several types and, for each, a read and its one-server answer."""
    keys, checks = [], {}
    for i in range(count):
        key = f"c:{i}"
        kind = i % 5
        if kind == 0:
            old.set(key, f"v{i}")
            checks[key] = (lambda c, key=key: c.get(key), f"v{i}")
        elif kind == 1:
            old.hset(key, mapping={"a": "1", "b": str(i)})
            checks[key] = (lambda c, key=key: c.hgetall(key), {"a": "1", "b": str(i)})
        elif kind == 2:
            old.rpush(key, *range(i % 7 + 1))
            checks[key] = (lambda c, key=key: c.llen(key), i % 7 + 1)
        elif kind == 3:
            old.sadd(key, "x")
            checks[key] = (lambda c, key=key: c.type(key), "set")
        else:
            old.zadd(key, {"m": i})
            checks[key] = (lambda c, key=key: c.exists(key), 1)
        keys.append(key)
    return keys, checks


@pytest.mark.parametrize("seed", [1, 2])
def test_no_read_misses_a_key_in_flight(
    topologies: tuple[ShardedRedis, ShardedRedis], seed: int
) -> None:
    """A migrator thread moves keys (copy, then delete) while two readers read: every read
    of a present key answers as one server would."""
    old, new = topologies
    keys, checks = _seed_moving(old, 60)
    moving = [k for k in keys if new.node_for(k) != old.node_for(k)]
    assert len(moving) >= 5
    done = threading.Event()
    failures: list[str] = []
    current = [moving[0]]

    def reader(rng: random.Random) -> None:
        reads = 0
        while not done.is_set() or reads < 50:
            key = current[0] if rng.random() < 0.7 else rng.choice(moving)
            read, expected = checks[key]
            got = read(new)
            if got != expected:
                failures.append(f"{key}: {got!r} != {expected!r}")
            if rng.random() < 0.2:
                chosen = rng.sample(moving, 4)
                got = new.exists(*chosen)
                if got != 4:
                    failures.append(f"exists {chosen}: {got}")
            reads += 1
            if reads > 20_000:
                break

    threads = [
        threading.Thread(target=reader, args=(random.Random(seed * 10 + i),)) for i in range(2)
    ]
    for thread in threads:
        thread.start()
    try:
        for _ in _migrate(old, new, list(moving), random.Random(seed), current):
            pass
    finally:
        done.set()
        for thread in threads:
            thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    assert failures == []
    assert all(old.exists(k) == 0 for k in moving)  # the migration did finish


# ------------------------------------------------------------------ asyncio


@pytest.fixture
async def async_topologies(
    servers: list[RedisServer],
) -> Any:
    async with (
        AsyncShardedRedis(_urls(servers, OLD), decode_responses=True) as old,
        AsyncShardedRedis(_urls(servers, NEW), decode_responses=True, read_fallback=old) as new,
    ):
        yield old, new


@pytest.mark.anyio
async def test_async_every_read_answers_as_one_server(
    async_topologies: tuple[AsyncShardedRedis, AsyncShardedRedis],
    topologies: tuple[ShardedRedis, ShardedRedis],
    plain: redis.Redis,
) -> None:
    """AsyncShardedRedis: every read of READS on moved, kept and absent keys answers as one
    server (the data seeded through a synchronous client of the same old topology)."""
    sync_old, sync_new = topologies
    _, new = async_topologies
    moved, kept = _tag(sync_new, sync_old, True), _tag(sync_new, sync_old, False)
    _prepare(sync_old, plain, [moved, kept], sync_new)
    for names, read in ALL_READS:
        for tag in (moved, kept, "{absent}"):
            k: Key = lambda name, tag=tag: f"{tag}{name}"  # noqa: E731
            got = await _outcome_async(read, new, k)
            assert got == _outcome(read, plain, k), (names, tag)


@pytest.mark.anyio
async def test_async_refuses_blocking_and_splits_mget(
    async_topologies: tuple[AsyncShardedRedis, AsyncShardedRedis], plain: redis.Redis
) -> None:
    """AsyncShardedRedis: XREAD BLOCK refused; MGET/EXISTS over nodes settle per key."""
    old, new = async_topologies
    data = {f"m:{i}": f"v{i}" for i in range(60)}
    await old.mset(data)
    plain.mset(data)
    keys = [*data, "m:absent", "m:3"]
    assert await new.mget(keys) == plain.mget(keys)
    assert await new.exists(*keys) == plain.exists(*keys)
    with pytest.raises(UnsupportedCommandError):
        await new.xread({"s": "0-0"}, block=10)


@pytest.mark.anyio
async def test_async_keys_split_between_topologies_are_refused(
    async_topologies: tuple[AsyncShardedRedis, AsyncShardedRedis],
    topologies: tuple[ShardedRedis, ShardedRedis],
) -> None:
    """AsyncShardedRedis: a half-moved tag group is refused, each key alone answered."""
    _, new = async_topologies
    first, second = _split_tag_group(*topologies)
    with pytest.raises(CrossShardError):
        await new.sunion(first, second)
    assert await new.smembers(second) == {"y"}


@pytest.mark.anyio
@pytest.mark.parametrize("seed", [3])
async def test_async_no_read_misses_a_key_in_flight(
    async_topologies: tuple[AsyncShardedRedis, AsyncShardedRedis],
    topologies: tuple[ShardedRedis, ShardedRedis],
    seed: int,
) -> None:
    """A migrator (a thread, with synchronous clients) moves keys while async readers read:
    no read misses a present key."""
    sync_old, sync_new = topologies
    _, new = async_topologies
    keys, checks = _seed_moving(sync_old, 60)
    moving = [k for k in keys if sync_new.node_for(k) != sync_old.node_for(k)]
    done = threading.Event()
    current = [moving[0]]

    def migrator() -> None:
        try:
            for _ in _migrate(sync_old, sync_new, list(moving), random.Random(seed), current):
                pass
        finally:
            done.set()

    thread = threading.Thread(target=migrator)
    thread.start()
    failures: list[str] = []

    async def reader(rng: random.Random) -> None:
        reads = 0
        while (not done.is_set() or reads < 50) and reads < 20_000:
            key = current[0] if rng.random() < 0.7 else rng.choice(moving)
            read, expected = checks[key]
            got = await read(new)
            if got != expected:
                failures.append(f"{key}: {got!r} != {expected!r}")
            reads += 1

    await asyncio.gather(*(reader(random.Random(seed * 10 + i)) for i in range(3)))
    thread.join(timeout=60)
    assert not thread.is_alive()
    assert failures == []


# ------------------------------------------------------------------ the rounds, as a model


@settings(max_examples=100)
@given(
    count=st.integers(1, 3),
    moves=st.lists(st.integers(0, 2), max_size=12),
    present=st.lists(st.booleans(), min_size=3, max_size=3),
    steps=st.lists(st.integers(0, 3), min_size=MAX_ROUNDS, max_size=MAX_ROUNDS),
)
def test_rounds_answer_some_moment_of_the_read(
    count: int, moves: list[int], present: list[bool], steps: list[int]
) -> None:
    """Model: keys copied then deleted by a migrator between rounds; the settled answer is
    the truth at some moment during the read, or CrossShardError when keys stay split."""
    keys = list(range(count))
    exists = {k for k in keys if present[k]}
    new: set[int] = set()
    old: set[int] = set(exists)
    todo = [(key, phase) for key in moves if key in exists for phase in (0, 1)]
    todo = [step for i, step in enumerate(todo) if step not in todo[:i]]
    truths = []

    def advance(n: int) -> None:
        for _ in range(min(n, len(todo))):
            key, phase = todo.pop(0)
            if phase == 0:
                new.add(key)  # copied to its new owner
            else:
                old.discard(key)  # then deleted from the old one
            truths.append(frozenset(new | old))

    def look(side: set[int]) -> Seen:
        return Seen(tuple(k in side for k in keys), frozenset(side))

    truths.append(frozenset(new | old))
    read = Read(("X", *keys), keys, {})
    command = _plain_command()
    rounds = resolve(command, read, look(new))
    ended = False
    try:
        asked = next(rounds)
        for step in steps:
            advance(step)
            asked = rounds.send([look(new if asked[0] == "new" else old) for _ in asked[1]])
    except StopIteration as done:
        ended, answer = True, done.value
    except CrossShardError:
        assert count > 1  # one key always settles
        return
    assert ended, "the rounds did not end"
    assert answer & set(keys) in {t & set(keys) for t in truths}


def _plain_command() -> Any:
    from hashring.adapters.redis._commands import Command
    from redis._parsers.commands import RequestPolicy, ResponsePolicy

    return Command("x", frozenset({"readonly"}), 1, -1, 1, RequestPolicy.DEFAULT_KEYED,
                   ResponsePolicy.DEFAULT_KEYED)  # fmt: skip


def test_settle_examples() -> None:
    """One key settles in three rounds at most; split keys do not settle."""
    assert settle([(True,)]) == 0
    assert settle([(False,), (True,)]) == 1
    assert settle([(False,), (False,), (False,)]) == 2
    assert settle([(False,), (False,), (True,)]) == 2
    assert settle([(True, False), (False, True)]) is None
    assert settle([(True, False), (False, True), (True, True)]) == 2
