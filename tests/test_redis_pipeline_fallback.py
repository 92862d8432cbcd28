"""read_fallback in pipelines: a ``transaction=False`` pipeline during a migration answers
as one server holding all the keys would, sync and async.

Two topologies over real servers: ``old`` (n0..n2) holds the data; ``new`` (n0..n3,
``read_fallback=old``) owns some keys on n3, which holds nothing yet. Every pipeline is
compared with the same pipeline on one plain server holding the same keys (answers, Python
types, errors). Writes are blind overwrites (SET): a write never falls back, so a
read-modify-write of a key not yet migrated differs by design (see ``_fallback``).
"""
# ruff: noqa: F811 - test parameters name the fixtures imported from test_redis_read_fallback

from __future__ import annotations

import random
import threading
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis
from hashring.adapters.redis import AsyncShardedRedis, CrossShardError, ShardedRedis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis_servers import RedisServer
from test_redis_read_fallback import (  # noqa: F401 - fixtures: the same servers, per module
    NEW,
    OLD,
    _migrate,
    _seed_moving,
    _urls,
    anyio_backend,
    five,
    plain,
    servers,
    topologies,
)

from hashring import UnsupportedCommandError

pytestmark = pytest.mark.redis


def _keys(new: Any, old: Any) -> dict[str, list[str]]:
    """Tag-less keys by fate: ``moved`` (to n3: on their old owner only), ``kept`` (the same
    owner in both topologies), ``absent`` (nowhere: two that moved, two that did not)."""
    n3: list[str] = []
    other: list[str] = []
    for i in range(10_000):
        key = f"k{i}"
        (n3 if new.node_for(key) == "n3" else other).append(key)
        if len(n3) >= 5 and len(other) >= 5:
            assert all(new.node_for(k) == old.node_for(k) for k in other)
            return {
                "moved": n3[:3],
                "kept": other[:3],
                "absent": [n3[3], other[3], n3[4], other[4]],
            }
    raise AssertionError("not enough keys")


def _seed(old: Any, plain: redis.Redis, keys: dict[str, list[str]]) -> None:
    """Moved and kept keys hold strings (and a list: WRONGTYPE for GET), through the old
    topology and on the plain server."""
    for client in (old, plain):
        for i, key in enumerate(keys["moved"] + keys["kept"]):
            if i % 3 == 2:
                client.rpush(key, "a", "b")
            else:
                client.set(key, f"value-{key}")


def _run(client: Any, ops: list[tuple[str, tuple[str, ...]]], raise_on_error: bool) -> Any:
    """``ops`` in one non-transactional pipeline: its answers (with their types), or the
    error it raised (class and message)."""
    pipe = client.pipeline(transaction=False)
    for op, args in ops:
        getattr(pipe, op)(*args)
    try:
        answers = pipe.execute(raise_on_error=raise_on_error)
    except redis.exceptions.RedisError as error:
        return ("raised", type(error), str(error))
    return [_shown(answer) for answer in answers]


def _shown(answer: Any) -> Any:
    if isinstance(answer, Exception):
        return ("error", type(answer), str(answer))
    return (answer, type(answer))


OPS = ("get", "strlen", "exists", "type", "lrange", "mget", "set")


def _op(name: str, keys: list[str], value: int) -> tuple[str, tuple[str, ...]]:
    if name == "set":
        return "set", (keys[0], f"new-{value}")
    if name == "lrange":
        return "lrange", (keys[0], "0", "-1")
    if name in ("mget", "exists"):
        return name, tuple(keys)
    return name, (keys[0],)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_pipeline_answers_as_one_server(
    topologies: tuple[ShardedRedis, ShardedRedis], plain: redis.Redis, data: st.DataObject
) -> None:
    """Reads of moved, kept and absent keys mixed with writes, in any order, in one
    pipeline: the same answers and errors as one server (raise_on_error both ways)."""
    old, new = topologies
    for client in (new, plain):  # every example starts afresh (new's nodes include old's)
        client.flushall()
    keys = _keys(new, old)
    _seed(old, plain, keys)
    every = [k for group in keys.values() for k in group]
    ops = data.draw(
        st.lists(
            st.builds(
                _op,
                st.sampled_from(OPS),
                st.lists(st.sampled_from(every), min_size=1, max_size=3),
                st.integers(0, 9),
            ),
            min_size=1,
            max_size=12,
        )
    )
    raise_on_error = data.draw(st.booleans())
    assert _run(new, ops, raise_on_error) == _run(plain, ops, raise_on_error)


def test_read_after_write_in_one_pipeline_sees_the_write(
    topologies: tuple[ShardedRedis, ShardedRedis], plain: redis.Redis
) -> None:
    """A read behind a write of its key (moved, absent) sees the write; a read before a
    write of its key sees the value before it (moved: the old topology's; absent: None)."""
    old, new = topologies
    keys = _keys(new, old)
    _seed(old, plain, keys)
    moved, absent = keys["moved"][0], keys["absent"][0]
    for key in (moved, absent):
        ops = [("get", (key,)), ("set", (key, "w")), ("get", (key,)), ("strlen", (key,))]
        ours = _run(new, ops, True)
        assert ours == _run(plain, ops, True)
        assert ours[0][0] == (None if key == absent else f"value-{moved}")
        assert ours[2] == ("w", str)


def test_present_keys_need_one_round_trip(
    topologies: tuple[ShardedRedis, ShardedRedis], servers: list[RedisServer]
) -> None:
    """Reads of keys their new owner holds are answered in the pipeline's own round trip:
    the old topology is asked nothing; a key its new owner lacks is asked of the old."""
    old, new = topologies
    keys = _keys(new, old)
    with servers[3].client() as n3:
        for key in keys["moved"]:
            n3.set(key, "migrated")
    for key in keys["kept"]:
        old.set(key, "kept")
    present = [("get", (k,)) for k in keys["moved"] + keys["kept"]] + [
        ("mget", tuple(keys["kept"]))
    ]
    assert _old_calls(new, present) == 0
    old.set(keys["absent"][0], "old")  # a moved key not migrated yet
    assert _old_calls(new, [("get", (keys["absent"][0],))]) > 0
    assert new.pipeline(transaction=False).get(keys["absent"][0]).execute() == ["old"]


def _old_calls(new: ShardedRedis, ops: list[Any]) -> int:
    """How many GET/EXISTS the old topology's client sent while ``ops`` ran in a pipeline
    (the old client's own per-node command counters)."""
    fallback = new.read_fallback
    assert fallback is not None
    before = sum(int(v["commands"]) for v in fallback.stats().values())
    pipe = new.pipeline(transaction=False)
    for op, args in ops:
        getattr(pipe, op)(*args)
    pipe.execute()
    return sum(int(v["commands"]) for v in fallback.stats().values()) - before


def test_cross_node_computed_read_in_a_pipeline(
    topologies: tuple[ShardedRedis, ShardedRedis], plain: redis.Redis
) -> None:
    """SUNION across nodes in a pipeline during a migration answers as the direct command:
    as one server when its keys are all on their new owners, or all only on the old
    topology; keys split between the two (one migrated, one not) are refused with
    CrossShardError in its place (raise_on_error=False) or raised (True), never a union of
    half of them."""
    old, new = topologies
    keys = _keys(new, old)
    kept, moved = keys["kept"][:2], keys["moved"][:2]
    for client in (old, plain):
        for i, key in enumerate(kept + moved):
            client.delete(key)
            client.sadd(key, f"m{i}", "shared")
    for pair in (kept, moved):
        ops = [("sunion", tuple(pair)), ("sinter", tuple(pair)), ("get", ("nothing",))]
        ours = _run(new, ops, True)
        assert ours == _run(plain, ops, True)
        assert ours[0] == (new.sunion(*pair), set)
    split = (kept[0], moved[0])
    answers = _run(new, [("sunion", split), ("scard", (kept[0],))], False)
    assert answers[0][:2] == ("error", CrossShardError)
    assert answers[1] == (2, int)
    with pytest.raises(CrossShardError, match="Command # 1"):
        new.pipeline(transaction=False).sunion(*split).scard(kept[0]).execute()
    with pytest.raises(CrossShardError):
        new.sunion(*split)  # the direct command: the same rule


def test_blocking_read_refuses_the_pipeline_before_sending(
    topologies: tuple[ShardedRedis, ShardedRedis], servers: list[RedisServer]
) -> None:
    """XREAD ... BLOCK in a pipeline during a migration: UnsupportedCommandError, and the
    pipeline's other commands (a SET before it) were not sent."""
    _, new = topologies
    pipe = new.pipeline(transaction=False)
    pipe.set("before", "x").xread({"s": "0"}, block=10)
    with pytest.raises(UnsupportedCommandError, match="BLOCK"):
        pipe.execute()
    assert new.get("before") is None


def test_transactions_never_fall_back(
    topologies: tuple[ShardedRedis, ShardedRedis], plain: redis.Redis
) -> None:
    """A transaction runs atomically on its keys' new owner: a moved key not migrated yet
    reads as absent there (documented), where the plain pipeline falls back."""
    old, new = topologies
    keys = _keys(new, old)
    moved = keys["moved"][0]
    old.set(moved, "old")
    assert new.pipeline(transaction=True).get(moved).execute() == [None]
    assert new.pipeline(transaction=False).get(moved).execute() == ["old"]


def test_without_read_fallback_nothing_extra_is_sent(servers: list[RedisServer]) -> None:
    """A pipeline of a client without read_fallback sends only its commands (no EXISTS)."""
    with ShardedRedis(_urls(servers, NEW), decode_responses=True) as client:
        before = sum(int(v["commands"]) for v in client.stats().values())
        pipe = client.pipeline(transaction=False)
        for i in range(8):
            pipe.get(f"k{i}")
        assert pipe.execute() == [None] * 8
        nodes = {client.node_for(f"k{i}") for i in range(8)}
        after = sum(int(v["commands"]) for v in client.stats().values())
        assert after - before == len(nodes)  # one pipeline per node, counted once each


@pytest.mark.parametrize("seed", [1, 2])
def test_no_pipelined_read_misses_a_key_in_flight(
    topologies: tuple[ShardedRedis, ShardedRedis], seed: int
) -> None:
    """A migrator moves keys (copy, then delete) while two threads read them in pipelines
    (the key under way and others, several types): every answer is one server's."""
    old, new = topologies
    keys, checks = _seed_moving(old, 60)
    moving = [k for k in keys if new.node_for(k) != old.node_for(k)]
    assert len(moving) >= 5
    done = threading.Event()
    failures: list[str] = []
    current = [moving[0]]

    def reader(rng: random.Random) -> None:
        pipelines = 0
        while (not done.is_set() or pipelines < 20) and pipelines < 5_000:
            chosen = [current[0], *rng.sample(moving, 3)]
            pipe = new.pipeline(transaction=False)
            for key in chosen:
                checks[key][0](pipe)
            pipe.exists(*chosen)
            expected = [checks[key][1] for key in chosen] + [len(chosen)]
            got = pipe.execute()
            if got != expected:
                failures.append(f"{chosen}: {got!r} != {expected!r}")
            pipelines += 1

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


# ---------------------------------------------------------------------------- asyncio


@pytest.fixture
async def async_topologies(
    servers: list[RedisServer],
) -> Any:
    """The asyncio twins of ``topologies``."""
    old = AsyncShardedRedis(_urls(servers, OLD), decode_responses=True)
    new = AsyncShardedRedis(_urls(servers, NEW), decode_responses=True, read_fallback=old)
    try:
        yield old, new
    finally:
        await new.aclose()
        await old.aclose()


async def _run_async(
    client: Any, ops: list[tuple[str, tuple[str, ...]]], raise_on_error: bool
) -> Any:
    pipe = client.pipeline(transaction=False)
    for op, args in ops:
        getattr(pipe, op)(*args)
    try:
        answers = await pipe.execute(raise_on_error=raise_on_error)
    except redis.exceptions.RedisError as error:
        return ("raised", type(error), str(error))
    return [_shown(answer) for answer in answers]


@pytest.mark.anyio
async def test_async_pipeline_answers_as_one_server(
    async_topologies: tuple[AsyncShardedRedis, AsyncShardedRedis],
    servers: list[RedisServer],
) -> None:
    """The asyncio pipeline: reads before and after writes, moved/kept/absent keys,
    WRONGTYPE from the old topology, MGET and EXISTS across nodes, raise_on_error both
    ways, against one plain server through redis.asyncio; a split SUNION refused in its
    place; XREAD BLOCK refused; a transaction does not fall back."""
    old, new = async_topologies
    keys = _keys(new, old)
    moved, kept, absent = keys["moved"], keys["kept"], keys["absent"]
    ops: list[tuple[str, tuple[str, ...]]] = [
        ("get", (moved[0],)),
        ("set", (absent[0], "w")),
        ("get", (absent[0],)),
        ("mget", (moved[0], kept[0], absent[1], moved[1])),
        ("get", (moved[2],)),  # a list: WRONGTYPE from the old topology
        ("exists", (moved[0], kept[1], absent[1])),
        ("set", (moved[0], "x")),
        ("get", (moved[0],)),
        ("strlen", (kept[0],)),
    ]
    plain = aioredis.Redis.from_url(servers[4].url, decode_responses=True)
    try:
        for raise_on_error in (False, True):
            for client in (new, plain):  # new's nodes include old's
                await client.flushall()
            for client in (old, plain):
                await _seed_async(client, keys)
            ours = await _run_async(new, ops, raise_on_error)
            assert ours == await _run_async(plain, ops, raise_on_error)
            if raise_on_error:
                assert ours[:2] == ("raised", redis.exceptions.ResponseError)
                assert "Command # 5" in ours[2]
            else:
                assert ours[0] == (f"value-{moved[0]}", str)
                assert ours[7] == ("x", str)
    finally:
        await plain.aclose()
    for key in (kept[0], moved[0]):
        await old.delete(key)
        await old.sadd(key, "m")
    await new.clients["n3"].delete(moved[0])
    answers = await _run_async(new, [("sunion", (kept[0], moved[0])), ("get", (kept[1],))], False)
    assert answers[0][:2] == ("error", CrossShardError)
    assert answers[1] == (f"value-{kept[1]}", str)
    with pytest.raises(UnsupportedCommandError):
        await new.pipeline(transaction=False).xread({"s": "0"}, block=10).execute()
    assert await new.pipeline(transaction=True).get(moved[1]).execute() == [None]
    assert await new.pipeline(transaction=False).get(moved[1]).execute() == [f"value-{moved[1]}"]


async def _seed_async(client: Any, keys: dict[str, list[str]]) -> None:
    for i, key in enumerate(keys["moved"] + keys["kept"]):
        if i % 3 == 2:
            await client.rpush(key, "a", "b")
        else:
            await client.set(key, f"value-{key}")
