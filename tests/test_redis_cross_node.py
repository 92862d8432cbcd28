"""Multi-key reads across nodes computed on the client, and SORT patterns, against one plain
redis-server holding the same keys: same answer, same Python type, or the same error."""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis
from hashring.adapters.redis import AsyncShardedRedis, ShardedRedis
from hashring.adapters.redis._lcs import lcs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis_servers import RedisServer, RedisServerFactory

from hashring import CrossShardError, UnsupportedCommandError, placement

pytestmark = pytest.mark.redis

NAMES = ("n0", "n1", "n2")
CONFIGS: dict[str, dict[str, Any]] = {
    "default": {},
    "default-decoded": {"decode_responses": True},
    "resp2": {"protocol": 2},
    "resp2-unified-decoded": {"protocol": 2, "legacy_responses": False, "decode_responses": True},
    "resp3": {"protocol": 3},
    "resp3-unified": {"legacy_responses": False},
}
SETTINGS = settings(
    max_examples=25,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _urls(servers: list[RedisServer]) -> dict[str, str]:
    return {name: server.url for name, server in zip(NAMES, servers, strict=True)}


def _spread_keys(client: ShardedRedis, per_node: int = 2) -> list[str]:
    """``per_node`` keys on each node, interleaved (k0 on one node, k1 on another, ...)."""
    found: dict[str, list[str]] = {name: [] for name in NAMES}
    i = 0
    while any(len(keys) < per_node for keys in found.values()):
        key = f"k{i}"
        i += 1
        mine = found[client.node_for(key)]
        if len(mine) < per_node:
            mine.append(key)
    return [found[name][r] for r in range(per_node) for name in NAMES]


@dataclass
class Pair:
    """A sharded client and a plain client of one server, built with the same options."""

    sharded: ShardedRedis
    plain: redis.Redis
    keys: list[str]
    decoded: bool

    def flush(self) -> None:
        for node in self.sharded.clients.values():
            node.flushall()
        self.plain.flushall()


@pytest.fixture(params=sorted(CONFIGS))
def pair(
    request: pytest.FixtureRequest,
    clean_redis_servers: list[RedisServer],
    redis_server_factory: RedisServerFactory,
) -> Iterator[Pair]:
    """A ShardedRedis over 3 nodes and a plain client of a 4th server, in every protocol
    and decoding."""
    options = CONFIGS[request.param]
    plain = redis_server_factory(1)[0].client(**options)
    with ShardedRedis(_urls(clean_redis_servers), **options) as sharded:
        yield Pair(sharded, plain, _spread_keys(sharded), bool(options.get("decode_responses")))


# ------------------------------------------------------------------ comparing answers


def canon(value: Any) -> Any:
    """A value with its Python types made part of it (and -0.0 told from 0.0)."""
    if isinstance(value, float):
        return ("float", repr(value))
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, [canon(v) for v in value])
    if isinstance(value, dict):
        return ("dict", sorted(((canon(k), canon(v)) for k, v in value.items()), key=repr))
    if isinstance(value, (set, frozenset)):
        return (type(value).__name__, sorted((canon(v) for v in value), key=repr))
    if isinstance(value, BaseException):
        return ("error", type(value).__name__, str(value))
    return (type(value).__name__, value)


def outcome(call: Callable[[Any], Any], client: Any) -> Any:
    try:
        return canon(call(client))
    except redis.exceptions.ResponseError as error:
        return canon(error)
    except UnicodeDecodeError as error:
        return canon(error)


# ------------------------------------------------------------------ data and commands

INF = math.inf
SCORES = st.one_of(
    st.sampled_from([-INF, INF, -0.0, 0.0, 1e308, -1e308, 5e-324, 0.1, 1.0, 2.0, 3.0]),
    st.floats(allow_nan=False, width=64),
)
WEIGHTS = st.sampled_from([0, 1, -1, 2.5, INF, -INF, 1e308, 0.1, 1e-300])
TEXT_MEMBERS = ["a", "b", "", "é", "日本", "10", "-1", "x y", "\x00z", "😀"]
BINARY_MEMBERS = [m.encode() for m in TEXT_MEMBERS] + [b"\xff", b"\xc3", b"a\xff"]


def members(decoded: bool) -> st.SearchStrategy[Any]:
    """Members with ties in bytes order, non-ASCII, and (undecoded) invalid UTF-8."""
    return st.sampled_from(TEXT_MEMBERS if decoded else BINARY_MEMBERS)


def contents(decoded: bool) -> st.SearchStrategy[tuple[str, Any]]:
    """What one key holds: nothing, a set or a sorted set (sorted sets twice as often)."""
    m = members(decoded)
    return st.one_of(
        st.just(("missing", None)),
        st.tuples(st.just("set"), st.sets(m, min_size=1, max_size=6)),
        st.tuples(st.just("zset"), st.dictionaries(m, SCORES, min_size=1, max_size=6)),
        st.tuples(st.just("zset"), st.dictionaries(m, SCORES, min_size=1, max_size=6)),
    )


def load(client: Any, key: str, kind: str, value: Any) -> Any:
    if kind == "set":
        return client.sadd(key, *value)
    if kind == "zset":
        return client.zadd(key, value)
    if kind == "string":
        return client.set(key, value)
    return None


@st.composite
def commands(draw: st.DrawFn, keys: list[str]) -> tuple[str, Callable[[Any], Any]]:
    """One computed read over 1..4 of ``keys`` (repeats allowed), with random options."""
    name = draw(
        st.sampled_from(
            ["sunion", "sinter", "sdiff", "sintercard", "zunion", "zinter", "zdiff", "zintercard"]
        )
    )
    chosen = draw(st.lists(st.sampled_from(keys), min_size=1, max_size=4))
    limit = draw(st.integers(0, 3))
    withscores = draw(st.booleans())
    aggregate = draw(st.sampled_from([None, "SUM", "MIN", "MAX"]))
    weighted = draw(st.booleans())
    cast = draw(st.sampled_from([None, str, float]))
    distinct = list(dict.fromkeys(chosen))
    weights = {key: draw(WEIGHTS) for key in distinct}
    shown = f"{name} {chosen} limit={limit} ws={withscores} agg={aggregate} w={weighted}"
    if name == "sunion":
        return shown, lambda c: c.sunion(*chosen)
    if name == "sinter":
        return shown, lambda c: c.sinter(*chosen)
    if name == "sdiff":
        return shown, lambda c: c.sdiff(*chosen)
    if name == "sintercard":
        return shown, lambda c: c.sintercard(len(chosen), chosen, limit=limit)
    if name == "zintercard":
        return shown, lambda c: c.zintercard(len(chosen), chosen, limit=limit)
    if name == "zdiff":
        return shown, lambda c: c.zdiff(chosen, withscores=withscores)
    sources: Any = weights if weighted else chosen
    if name == "zinter":
        return shown + f" {weights}", lambda c: c.zinter(sources, aggregate, withscores)
    extra = {} if cast is None else {"score_cast_func": cast}
    shown += f" {weights} cast={cast}"
    return shown, lambda c: c.zunion(sources, aggregate, withscores, **extra)


# ------------------------------------------------------------------ differential tests


@SETTINGS
@given(data=st.data())
def test_computed_reads_answer_as_one_server(pair: Pair, data: st.DataObject) -> None:
    """SUNION ... ZINTERCARD over keys on several nodes: the plain server's answer and type,
    in RESP2 and RESP3, bytes and decoded (hostile scores, weights, ties, non-ASCII)."""
    pair.flush()
    for key in pair.keys:
        kind, value = data.draw(contents(pair.decoded), label=key)
        for client in (pair.sharded, pair.plain):
            load(client, key, kind, value)
    for _ in range(4):
        shown, call = data.draw(commands(pair.keys))
        assert outcome(call, pair.sharded) == outcome(call, pair.plain), shown


@SETTINGS
@given(data=st.data())
def test_wrongtype_raises_the_servers_error(pair: Pair, data: st.DataObject) -> None:
    """A string among a computed read's keys: the same ResponseError as the server's."""
    pair.flush()
    for key in pair.keys[:-1]:
        kind, value = data.draw(contents(pair.decoded), label=key)
        for client in (pair.sharded, pair.plain):
            load(client, key, kind, value)
    for client in (pair.sharded, pair.plain):
        client.set(pair.keys[-1], "text")
    shown, call = data.draw(commands(pair.keys))
    expected = outcome(call, pair.plain)
    assert outcome(call, pair.sharded) == expected, shown


def lcs_strings(decoded: bool) -> st.SearchStrategy[bytes]:
    alphabet = [b"a", b"b", b"c", "é".encode(), "è".encode()]
    if not decoded:
        alphabet += [b"\x00", b"\xff"]
    return st.lists(st.sampled_from(alphabet), max_size=24).map(b"".join)


@SETTINGS
@given(data=st.data())
def test_lcs_across_nodes_answers_as_one_server(pair: Pair, data: st.DataObject) -> None:
    """LCS, LEN, IDX, MINMATCHLEN, WITHMATCHLEN of strings on two nodes: byte for byte."""
    pair.flush()
    a_key, b_key = pair.keys[0], pair.keys[1]
    assert pair.sharded.node_for(a_key) != pair.sharded.node_for(b_key)
    a, b = data.draw(lcs_strings(pair.decoded)), data.draw(lcs_strings(pair.decoded))
    for client in (pair.sharded, pair.plain):
        if a or data.draw(st.booleans()):
            client.set(a_key, a)
        client.set(b_key, b)
    options = data.draw(
        st.fixed_dictionaries(
            {
                "len": st.booleans(),
                "idx": st.booleans(),
                "minmatchlen": st.integers(-1, 4),
                "withmatchlen": st.booleans(),
            }
        )
    )
    for first, second in ((a_key, b_key), (b_key, a_key)):

        def call(c: Any, first: str = first, second: str = second) -> Any:
            return c.lcs(first, second, **options)

        assert outcome(call, pair.sharded) == outcome(call, pair.plain), (a, b, options)


def test_lcs_of_a_non_string_raises_the_servers_error(pair: Pair) -> None:
    """LCS over a set and a string on two nodes: the server's own LCS error."""
    pair.flush()
    for client in (pair.sharded, pair.plain):
        client.sadd(pair.keys[0], "x")
        client.set(pair.keys[1], "abc")
    with pytest.raises(redis.exceptions.ResponseError, match="must contain string values"):
        pair.sharded.lcs(pair.keys[0], pair.keys[1])
    with pytest.raises(redis.exceptions.ResponseError, match="must contain string values"):
        pair.plain.lcs(pair.keys[0], pair.keys[1])


def test_lcs_refuses_tables_beyond_a_default_servers_bound(sharded: ShardedRedis) -> None:
    """Two 12 kB strings (145M cells > 2**27): UnsupportedCommandError, in bounded time;
    in a pipeline, in the command's place."""
    a_key, b_key = _spread_keys(sharded, 1)[:2]
    sharded.set(a_key, b"ab" * 6000)
    sharded.set(b_key, b"ba" * 6000)
    with pytest.raises(UnsupportedCommandError, match="LCS"):
        sharded.lcs(a_key, b_key)
    pipe = sharded.pipeline(transaction=False)
    pipe.lcs(a_key, b_key, len=True)
    pipe.strlen(a_key)
    refused, length = pipe.execute(raise_on_error=False)
    assert isinstance(refused, UnsupportedCommandError)
    assert length == 12000


def test_lcs_of_long_strings_matches_the_server(sharded: ShardedRedis, plain: redis.Redis) -> None:
    """Two 3 kB strings (9M cells): the bit-parallel walk gives the server's IDX."""
    a_key, b_key = _spread_keys(sharded, 1)[:2]
    a = bytes((i * 7919) % 4 + 97 for i in range(3000))
    b = bytes((i * 104729) % 5 + 97 for i in range(3100))
    for client in (sharded, plain):
        client.set(a_key, a)
        client.set(b_key, b)
    assert sharded.lcs(a_key, b_key, idx=True, withmatchlen=True, minmatchlen=2) == plain.lcs(
        a_key, b_key, idx=True, withmatchlen=True, minmatchlen=2
    )
    assert sharded.lcs(a_key, b_key) == plain.lcs(a_key, b_key)


@pytest.fixture
def sharded(clean_redis_servers: list[RedisServer]) -> Iterator[ShardedRedis]:
    """A bytes ShardedRedis over the three shared (flushed) servers."""
    with ShardedRedis(_urls(clean_redis_servers)) as client:
        yield client


@pytest.fixture
def plain(redis_server_factory: RedisServerFactory) -> redis.Redis:
    """A bytes client of a fourth, unsharded server: the reference."""
    return redis_server_factory(1)[0].client()


# ------------------------------------------------------------------ pipelines


def _fill(clients: list[Any], keys: list[str]) -> None:
    for client in clients:
        client.sadd(keys[0], "a", "b", "c")
        client.sadd(keys[1], "b", "c", "d")
        client.zadd(keys[2], {"a": 1.5, "b": INF, "c": -0.0})
        client.zadd(keys[3], {"a": 0.1, "b": -INF, "q": 3})
        client.set(keys[4], "ohmytext")
        client.set(keys[5], "mynewtext")


def _program(pipe: Any, keys: list[str]) -> None:
    k = keys
    pipe.sunion(k[0], k[1], k[2])
    pipe.sinter(k[0], k[1])
    pipe.sdiff(k[0], k[1])
    pipe.sintercard(2, [k[0], k[1]], limit=1)
    pipe.zunion({k[2]: 2, k[3]: INF, k[0]: 0}, "SUM", True)
    pipe.zinter([k[2], k[3]], "MIN", True)
    pipe.zdiff([k[2], k[3], k[1]], True)
    pipe.zintercard(2, [k[2], k[3]])
    pipe.lcs(k[4], k[5], idx=True, withmatchlen=True)
    pipe.sunion(k[0], k[4])  # WRONGTYPE
    pipe.lcs(k[0], k[5])  # the LCS error
    pipe.get(k[4])


def test_pipeline_computed_reads_answer_as_one_server(
    sharded: ShardedRedis, plain: redis.Redis
) -> None:
    """A pipeline of computed reads (errors in place with raise_on_error=False): the plain
    pipeline's answers; with raise_on_error=True, its first error."""
    keys = _spread_keys(sharded)
    _fill([sharded, plain], keys)
    answers = []
    for client in (sharded, plain):
        pipe = client.pipeline(transaction=False)
        _program(pipe, keys)
        answers.append(canon(pipe.execute(raise_on_error=False)))
    assert answers[0] == answers[1]
    pipe = sharded.pipeline(transaction=False)
    _program(pipe, keys)
    with pytest.raises(redis.exceptions.ResponseError, match="WRONGTYPE"):
        pipe.execute()


def test_computed_reads_stay_refused_in_a_transaction(sharded: ShardedRedis) -> None:
    """pipeline(transaction=True) with a read spanning nodes: CrossShardError, nothing sent."""
    keys = _spread_keys(sharded)
    pipe = sharded.pipeline(transaction=True)
    pipe.sunion(keys[0], keys[1])
    with pytest.raises(CrossShardError):
        pipe.execute()


# ------------------------------------------------------------------ asyncio


async def _async_answers(
    urls: dict[str, str], plain_url: str, keys: list[str], options: dict[str, Any]
) -> list[Any]:
    async with AsyncShardedRedis(urls, **options) as sharded:
        plain = aioredis.Redis.from_url(plain_url, **options)
        try:
            results = []
            for client in (sharded, plain):
                calls = [
                    lambda c: c.sunion(keys[0], keys[1], keys[2]),
                    lambda c: c.sintercard(3, keys[:3], limit=0),
                    lambda c: c.sdiff(keys[0], keys[1], keys[2]),
                    lambda c: c.zunion({keys[2]: 2, keys[3]: INF, keys[0]: 0}, "MAX", True),
                    lambda c: c.zinter([keys[2], keys[3], keys[2]], None, True),
                    lambda c: c.zdiff([keys[2], keys[3]], True),
                    lambda c: c.zintercard(2, [keys[2], keys[3]], limit=1),
                    lambda c: c.lcs(keys[4], keys[5], idx=True, minmatchlen=2),
                    lambda c: c.lcs(keys[4], keys[5], len=True),
                    lambda c: c.sunion(keys[0], keys[4]),
                ]
                mine = []
                for call in calls:
                    try:
                        mine.append(canon(await call(client)))
                    except redis.exceptions.ResponseError as error:
                        mine.append(canon(error))
                pipe = client.pipeline(transaction=False)
                for call in calls:
                    call(pipe)
                mine.append(canon(await pipe.execute(raise_on_error=False)))
                results.append(mine)
            return results
        finally:
            await plain.aclose()


@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_async_computed_reads_answer_as_one_server(
    config: str, clean_redis_servers: list[RedisServer], plain: redis.Redis
) -> None:
    """AsyncShardedRedis (direct and pipelined): the plain asyncio client's answers."""
    options = CONFIGS[config]
    urls = _urls(clean_redis_servers)
    with ShardedRedis(urls) as sync:
        keys = _spread_keys(sync)
        _fill([sync, plain], keys)
    kwargs = plain.connection_pool.connection_kwargs
    plain_url = f"redis://{kwargs['host']}:{kwargs['port']}/0"
    ours, theirs = asyncio.run(_async_answers(urls, plain_url, keys, options))
    assert ours == theirs


# ------------------------------------------------------------------ what stays as it was


def test_keys_on_one_node_go_as_one_command(sharded: ShardedRedis) -> None:
    """Keys sharing a {tag}: ZUNION and LCS are sent to their node as they are."""
    for key in ("{t}a", "{t}b"):
        sharded.zadd(key, {"m": 1})
    node = sharded.client_for("{t}")
    node.config_resetstat()
    assert sharded.zunion(["{t}a", "{t}b"], withscores=True) == [(b"m", 2.0)]
    stats = node.info("commandstats")
    assert stats["cmdstat_zunion"]["calls"] == 1
    assert "cmdstat_mget" not in stats


def test_store_variants_stay_refused_across_nodes(sharded: ShardedRedis) -> None:
    """ZUNIONSTORE / SINTERSTORE / SDIFFSTORE over nodes: CrossShardError, nothing written."""
    keys = _spread_keys(sharded)
    sharded.sadd(keys[1], "x")
    sharded.sadd(keys[2], "y")
    with pytest.raises(CrossShardError):
        sharded.zunionstore(keys[0], [keys[1], keys[2]])
    with pytest.raises(CrossShardError):
        sharded.sinterstore(keys[0], [keys[1], keys[2]])
    with pytest.raises(CrossShardError):
        sharded.sdiffstore(keys[0], [keys[1], keys[2]])
    assert sharded.exists(keys[0]) == 0


@pytest.mark.parametrize(
    "args",
    [
        ("ZUNION", 2, "A", "B", "WEIGHTS", "nan", 1),
        ("ZUNION", 2, "A", "B", "WEIGHTS", "0x1p3", 1),
        ("ZUNION", 2, "A", "B", "WEIGHTS", "1e400", 1),
        ("ZINTER", 2, "A", "B", "WEIGHTS", 1, "-1e-400"),
        ("ZINTER", 2, "A", "B", "AGGREGATE", "avg"),
        ("ZDIFF", 2, "A", "B", "WEIGHTS", 1, 1),
        ("SINTERCARD", 2, "A", "B", "LIMIT", -1),
        ("ZINTERCARD", 2, "A", "B", "COUNT", 1),
    ],
)
def test_options_not_understood_are_refused(sharded: ShardedRedis, args: tuple[Any, ...]) -> None:
    """Options the client does not fully parse: CrossShardError before sending (the server
    would answer an error)."""
    keys = _spread_keys(sharded)
    real = tuple(keys[0] if a == "A" else keys[1] if a == "B" else a for a in args)
    with pytest.raises(CrossShardError, match="nothing was sent"):
        sharded.execute_command(*real)


# ------------------------------------------------------------------ SORT patterns


def _sort_data(clients: list[Any], key: str, tag: str) -> None:
    for client in clients:
        client.rpush(key, 2, 3, 1)
        for i, name in ((1, "u1"), (2, "u2"), (3, "u3")):
            client.set(f"user:{i}", name)
            client.set(f"user:{{{tag}}}:{i}", name)
            client.set(f"w:{{{tag}}}:{i}", 10 - i)
            client.hset(f"h:{{{tag}}}:{i}", "f", f"h{i}")


def test_sort_patterns_across_nodes_are_refused(sharded: ShardedRedis) -> None:
    """The issue's case: SORT GET user:* with user:N on other nodes: CrossShardError (one
    server answers [u1, u2, u3]; it never answers [None, None, None] here)."""
    _sort_data([sharded], "list{x}", "x")
    assert (
        len({sharded.node_for(f"user:{i}") for i in (1, 2, 3)} | {sharded.node_for("list{x}")}) > 1
    )
    with pytest.raises(CrossShardError, match="user:\\*"):
        sharded.sort("list{x}", get="user:*")
    with pytest.raises(CrossShardError, match="score:\\*"):
        sharded.sort("list{x}", by="score:*")
    with pytest.raises(CrossShardError):
        sharded.sort_ro("list{x}", by="w:*{x}")  # the tag after '*' depends on the element


def test_sort_patterns_sharing_the_tag_answer_as_one_server(
    sharded: ShardedRedis, plain: redis.Redis
) -> None:
    """Patterns with the sorted key's {tag} before '*', GET #, constant patterns and BY
    nosort: one server's answers, from SORT and SORT_RO, direct and pipelined."""
    _sort_data([sharded, plain], "list{x}", "x")
    calls: list[Callable[[Any], Any]] = [
        lambda c: c.sort("list{x}", get="user:{x}:*"),
        lambda c: c.sort("list{x}", by="w:{x}:*", get=["#", "h:{x}:*->f"]),
        lambda c: c.sort_ro("list{x}", by="w:{x}:*", get=["user:{x}:*"]),
        lambda c: c.sort("list{x}", by="nosort", get=["#", "fixed"]),
        lambda c: c.sort("list{x}", get="#", desc=True, start=0, num=2),
        lambda c: c.sort("list{x}", get=["user:{x}:*", "#"], groups=True),
    ]
    for call in calls:
        assert canon(call(sharded)) == canon(call(plain))
    pipes = [sharded.pipeline(transaction=False), plain.pipeline(transaction=False)]
    for pipe in pipes:
        for call in calls:
            call(pipe)
    assert canon(pipes[0].execute()) == canon(pipes[1].execute())


def test_sort_store_destination_must_share_the_node(sharded: ShardedRedis) -> None:
    """SORT ... STORE on another node: CrossShardError; with the tag: stored there."""
    _sort_data([sharded], "list{x}", "x")
    other = next(
        k for k in (f"d{i}" for i in range(100)) if sharded.node_for(k) != sharded.node_for("{x}")
    )
    with pytest.raises(CrossShardError):
        sharded.sort("list{x}", store=other)
    assert sharded.sort("list{x}", get="user:{x}:*", store="dest{x}") == 3
    assert sharded.lrange("dest{x}", 0, -1) == [b"u1", b"u2", b"u3"]


def test_sort_patterns_without_hash_tags_are_refused(
    clean_redis_servers: list[RedisServer],
) -> None:
    """A placement without hash tags: every '*' pattern may name any node's key."""
    ring = placement("ring", NAMES, hash_tags=False)
    with ShardedRedis(_urls(clean_redis_servers), placement=ring) as client:
        key = "list{x}"
        client.rpush(key, 1)
        with pytest.raises(CrossShardError):
            client.sort(key, get="user:{x}:*")
        assert client.sort(key, get="#", by="nosort") == [b"1"]


def test_sort_patterns_on_one_node_always_run(redis_server_factory: RedisServerFactory) -> None:
    """With a single node every pattern's keys are on it: one server's answer."""
    server = redis_server_factory(1)[0]
    with ShardedRedis({"only": server.url}) as client:
        _sort_data([client], "list", "x")
        assert client.sort("list", get="user:*") == [b"u1", b"u2", b"u3"]


async def _async_sort(urls: dict[str, str]) -> tuple[list[Any], list[Any]]:
    async with AsyncShardedRedis(urls) as client:
        await client.rpush("list{x}", 2, 3, 1)
        for i in (1, 2, 3):
            await client.set(f"user:{{x}}:{i}", f"u{i}")
            await client.set(f"user:{i}", f"u{i}")
        direct = await client.sort("list{x}", get="user:{x}:*")
        pipe = client.pipeline(transaction=False)
        pipe.sort("list{x}", get=["#", "user:{x}:*"])
        pipelined = await pipe.execute()
        try:
            await client.sort("list{x}", get="user:*")
        except CrossShardError:
            pipelined.append("refused")
        return direct, pipelined


def test_async_sort_patterns(clean_redis_servers: list[RedisServer]) -> None:
    """AsyncShardedRedis: tagged patterns answer, untagged ones are refused."""
    direct, pipelined = asyncio.run(_async_sort(_urls(clean_redis_servers)))
    assert direct == [b"u1", b"u2", b"u3"]
    assert pipelined == [[b"1", b"u1", b"2", b"u2", b"3", b"u3"], "refused"]


def _named(server: RedisServer, name: str) -> int:
    observer = server.client()
    return sum(1 for entry in observer.client_list() if entry.get("name") == name)


def test_two_parts_on_one_node_give_both_leases_back(
    clean_redis_servers: list[RedisServer],
) -> None:
    """A computed read with two parts on one node (sync, then async), then remove_node:
    the node's client is closed at once (no lease left over or given back twice)."""
    urls = _urls(clean_redis_servers)
    with ShardedRedis(urls, client_name="legs") as client:
        keys = _spread_keys(client)  # keys[0] and keys[3] share a node
        node = client.node_for(keys[0])
        assert client.node_for(keys[3]) == node
        client.zadd(keys[0], {"a": 1})
        client.zadd(keys[3], {"a": 2})
        assert client.zunion([keys[0], keys[3], keys[1]], withscores=True) == [(b"a", 3.0)]

        async def twice() -> Any:
            async with AsyncShardedRedis(urls) as aclient:
                return await aclient.zunion([keys[0], keys[3], keys[1]], withscores=True)

        assert asyncio.run(twice()) == [(b"a", 3.0)]
        server = clean_redis_servers[NAMES.index(node)]
        assert _named(server, "legs") >= 1
        held = client.clients[node]  # kept alive: only remove_node may close it
        client.remove_node(node)
        assert _named(server, "legs") == 0
        assert held.connection_pool is not None


def _lcs_table_walk(a: bytes, b: bytes, min_match: int) -> tuple[bytes, int, list[Any]]:
    """The server's ``lcsCommand`` transcribed with its full table (the reference)."""
    table = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            if a[i - 1] == b[j - 1]:
                table[i][j] = table[i - 1][j - 1] + 1
            else:
                table[i][j] = max(table[i - 1][j], table[i][j - 1])
    text, ranges = bytearray(), []
    start = len(a)
    a_end = b_start = b_end = 0
    i, j = len(a), len(b)
    while i > 0 and j > 0:
        emit = False
        if a[i - 1] == b[j - 1]:
            text.insert(0, a[i - 1])
            if start == len(a):
                start, a_end, b_start, b_end = i - 1, i - 1, j - 1, j - 1
            elif start == i and b_start == j:
                start, b_start = start - 1, b_start - 1
            else:
                emit = True
            emit = emit or start == 0 or b_start == 0
            i, j = i - 1, j - 1
        else:
            if table[i - 1][j] > table[i][j - 1]:
                i -= 1
            else:
                j -= 1
            emit = start != len(a)
        if emit:
            if min_match == 0 or a_end - start + 1 >= min_match:
                ranges.append((start, a_end, b_start, b_end))
            start = len(a)
    return bytes(text), table[len(a)][len(b)], ranges


@settings(max_examples=200)
@given(
    a=st.binary(max_size=90) | st.lists(st.sampled_from(b"ab"), max_size=150).map(bytes),
    b=st.binary(max_size=90) | st.lists(st.sampled_from(b"ab"), max_size=150).map(bytes),
    min_match=st.integers(0, 4),
)
def test_bit_parallel_lcs_walks_back_as_the_server_table(
    a: bytes, b: bytes, min_match: int
) -> None:
    """The bit-parallel rows give the same string, length and ranges as the server's table
    (no server needed: longer strings than the differential test)."""
    found = lcs(a, b, min_match)
    ranges = [(m.a_start, m.a_end, m.b_start, m.b_end) for m in found.matches]
    assert (found.text, found.length, ranges) == _lcs_table_walk(a, b, min_match)


PREFIXES = ["u:", "u:{x}:", "{x}", "{}:", "{y}", "a{x", "x}:", "{x}{y}"]
SUFFIXES = ["", ":n", "{x}", "}"]


@st.composite
def sort_patterns(draw: st.DrawFn) -> tuple[str, bool]:
    """A BY/GET pattern (hash field or not, with or without '*') and whether it reads a
    hash field."""
    field = draw(st.booleans())
    prefix = ("h" if field else "s") + draw(st.sampled_from(PREFIXES))
    star = "*" if draw(st.integers(0, 5)) else ""
    pattern = prefix + star + draw(st.sampled_from(SUFFIXES))
    return (pattern + "->f" if field else pattern), field


@settings(
    max_examples=60,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_sort_patterns_answer_or_refuse(
    sharded: ShardedRedis, plain: redis.Redis, data: st.DataObject
) -> None:
    """SORT/SORT_RO with random BY/GET patterns over list{x}: one server's answer, or
    CrossShardError exactly when a pattern has a '*' and no {tag} before it."""
    for client in (sharded, plain):
        for node in [*sharded.clients.values()] if client is sharded else [client]:
            node.flushall()
        client.rpush("list{x}", 3, 1, 2)
    gets = data.draw(st.lists(sort_patterns(), max_size=3))
    by = data.draw(st.none() | sort_patterns())
    for pattern, field in [*gets, *([by] if by else [])]:
        key_part = pattern[: -len("->f")] if field else pattern
        for element in ("1", "2", "3"):
            key = key_part.replace("*", element, 1)
            for client in (sharded, plain):
                if field:
                    client.hset(key, "f", f"{10 - int(element)}.5")
                else:
                    client.set(key, f"{10 - int(element)}")
    readonly = data.draw(st.booleans())
    options: dict[str, Any] = {"get": [p for p, _ in gets] or None, "by": by[0] if by else None}

    def call(c: Any) -> Any:
        return (c.sort_ro if readonly else c.sort)("list{x}", **options)

    def pinned(pattern: str) -> bool:
        head = pattern.split("*", 1)[0]
        return "*" not in pattern or bool(re.match(r"[^{]*\{[^}]+\}", head))

    must_pass = all(pinned(p) for p, _ in [*gets, *([by] if by else [])])
    try:
        ours = outcome(call, sharded)
    except CrossShardError:
        assert not must_pass, options
        return
    assert ours == outcome(call, plain), options
