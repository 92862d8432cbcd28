"""ShardedRedis against plain redis-py and redis-shard, on real local redis-servers.

Run by hand (not part of the test run)::

    .venv/bin/python bench/redis_client.py            # full run, twice (see below), minutes
    .venv/bin/python bench/redis_client.py --quick    # smoke run: 10x fewer operations

Every run measures everything twice, each time in a child process of its own with its own
servers: with hiredis (the ``redis`` extra installs it) and with redis-py's pure-Python
parser (the child makes ``import hiredis`` fail before redis-py is imported: redis-py picks
its reply parser and command packer once, at import, from ``redis.utils.HIREDIS_AVAILABLE``).
Each child prints its tables; then the targets of both are printed side by side.
``--parser hiredis`` or ``--parser python`` runs one of them only.

The script starts its own 4 ``redis-server`` processes on free loopback ports (through
``tests/redis_servers.py``: never port 6379, persistence off) and stops them at the end, also
after an error. Every client talks to those same servers over TCP on 127.0.0.1 with
``decode_responses=True``: ShardedRedis over all 4 (nodes ``node-0`` .. ``node-3``, default
ring placement), redis-shard's ``RedisShardAPI`` over the same 4 (its default crc32 ring),
and a plain ``redis.Redis`` to ``node-0`` alone. Keys are ``f"user:{i}"`` for every client.

What is measured (``time.perf_counter``; the garbage collector is off inside every timed
region; every client is warmed up first, which also loads ShardedRedis's command table; the
clients are measured in alternating rounds, order flipped every round, best round kept):

* single-key GET and SET: ops/s of a Python loop of N round trips (N = 2,000), 15 rounds,
  ShardedRedis vs plain ``redis.Redis`` (many short rounds: the loopback round trip on 2
  shared cores flips between about 35 and 75 µs for seconds at a time, and best-of needs
  every client to get rounds in the fast state); the per-call overhead is
  ``1/sharded - 1/plain`` in µs. Also shown, not targets: a ShardedRedis over ``node-0``
  alone (the plain client's server: client overhead without the 4-server spread) and
  ``client_for(key).get(key)`` (hashring placement, no command planning).
* MGET and MSET of 1,000 keys: seconds per call, 15 rounds, ShardedRedis (split per node,
  every node's request written before any reply is read) vs ``RedisShardAPI.mget/mset``
  (split per node, run one node after the other) vs a loop of 1,000 single GETs / SETs
  through ShardedRedis; plain ``redis.Redis`` MGET / MSET of the same 1,000 keys on one
  node for reference. Every client first MSETs the keys itself, and MGET answers are
  checked against the values written.
* pipelines of 1,000 (15 rounds) and 10,000 (3 rounds) mixed commands (SET, GET, INCR,
  HSET, LPUSH in turn, on string keys each SET read back by the next GET, 500 counters,
  200 hashes, 100 lists): build plus ``execute()``,
  ``ShardedRedis.pipeline(transaction=False)`` over 4 nodes vs
  ``redis.Redis.pipeline(transaction=False)`` on one node.

* the asyncio clients, on one event loop: AsyncShardedRedis over the 4 nodes (and over
  ``node-0`` alone) vs a plain ``redis.asyncio.Redis`` on ``node-0``, single-key GET and SET
  loops (N = 2,000, 15 rounds) and MGET / MSET of 1,000 keys (15 rounds); the routing
  overhead per call is shown in µs next to each ratio, as for the synchronous client.

* routing only (``--routing-only`` runs just this): the same GET/SET loops and MGET/MSET
  of 1,000 keys, sync and async, with every node client's connection pool (and the plain
  clients') replaced by a stub whose connection answers at once, so the network's noise is
  gone and the difference to plain redis-py is the routing overhead per call. (The stub
  connection packs nothing, so the faster packing of split requests, ``_packing``, is not
  in these rows: only the full run shows it.)

Targets (second table): issue 14's first, measured side by side in the same run: MGET and
MSET of 1,000 keys over 4 nodes <= 1.15x the plain one-node MGET / MSET of the same keys,
a pipeline of 1,000 mixed commands <= 1.2x the plain one-node pipeline; then single-key GET
and SET through ShardedRedis >= 0.9x the plain client's ops/s; MGET and MSET of 1,000 keys
>= 2x faster than redis-shard and >= 10x faster than 1,000 single commands through
ShardedRedis; the 10,000-command pipeline's ratio reported. If a single-key
target is missed, one ShardedRedis GET loop is profiled (cProfile), and if an MGET / MSET
target is missed, 50 ShardedRedis MGETs are; the top 10 functions by own time are printed
under the tables (the per-node parts run on the calling thread, so the profile sees their
socket waits and parsing too).

Noise: the machine has 2 cores shared with the servers (and possibly other jobs); the load
average is printed in the header. Trust the ratios within one run, not absolute numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
from collections import deque
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, cast

import redis
import redis.asyncio as aioredis
import redis.connection
import redis.utils
from _measure import (
    STATUS,
    Row,
    exit_on_signal,
    interleaved,
    loop_get,
    ms,
    profile_calls,
    targets_table,
    times,
)
from _servers import RedisServer, redis_servers
from hashring.adapters.redis import AsyncShardedRedis, ShardedRedis
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.retry import Retry
from redis_shard.shard import RedisShardAPI  # type: ignore[import-untyped]
from tabulate import tabulate

NODES = 4
SINGLE_OPS = 2_000
SINGLE_ROUNDS = 15
MULTI_KEYS = 1_000
MULTI_ROUNDS = 15
PIPELINE_COMMANDS = 10_000
PIPELINE_ROUNDS = 3
SHORT_PIPELINE_COMMANDS = 1_000
SHORT_PIPELINE_ROUNDS = 15
WARMUP_OPS = 300
PROFILE_TOP = 10
PROFILE_MULTI_CALLS = 50


# ------------------------------------------------------------------ timing helpers


def loop_set(set_: Callable[[str, str], Any], items: Sequence[tuple[str, str]]) -> None:
    for key, value in items:
        set_(key, value)


def loop_routed_get(sharded: ShardedRedis, keys: Sequence[str]) -> None:
    """GET through ``client_for``: hashring placement, then the node's own redis.Redis."""
    client_for = sharded.client_for
    for key in keys:
        client_for(key).get(key)


def run_pipeline(pipe: Any, n: int) -> list[Any]:
    """Buffer ``n`` mixed commands in ``pipe`` and execute it."""
    for i in range(n):
        kind = i % 5
        if kind == 0:
            pipe.set(f"pipe:str:{i}", i)
        elif kind == 1:
            pipe.get(f"pipe:str:{i - 1}")
        elif kind == 2:
            pipe.incr(f"pipe:ctr:{i % 500}")
        elif kind == 3:
            pipe.hset(f"pipe:hash:{i % 200}", f"f{i}", i)
        else:
            pipe.lpush(f"pipe:list:{i % 100}", i)
    answers: list[Any] = pipe.execute()
    if len(answers) != n:
        raise AssertionError(f"pipeline returned {len(answers)} answers for {n} commands")
    return answers


async def aloop_get(get: Callable[[str], Any], keys: Sequence[str]) -> None:
    for key in keys:
        await get(key)


async def aloop_set(set_: Callable[[str, str], Any], items: Sequence[tuple[str, str]]) -> None:
    for key, value in items:
        await set_(key, value)


def measure_async(servers: list[RedisServer], single_n: int, rows: list[Row]) -> None:
    """The asyncio clients: AsyncShardedRedis (4 nodes, and node-0 alone) against a plain
    ``redis.asyncio.Redis`` on node-0, single-key GET/SET loops and MGET/MSET of 1,000 keys,
    all on one event loop (each timed call is one ``run_until_complete``)."""
    names = [f"node-{i}" for i in range(len(servers))]
    loop = asyncio.new_event_loop()
    run = loop.run_until_complete
    sharded = AsyncShardedRedis(
        {name: server.url for name, server in zip(names, servers, strict=True)},
        decode_responses=True,
    )
    sharded_one = AsyncShardedRedis({names[0]: servers[0].url}, decode_responses=True)
    plain = aioredis.Redis(host=servers[0].host, port=servers[0].port, db=0, decode_responses=True)
    try:
        keys = [f"user:{i}" for i in range(max(single_n, MULTI_KEYS))]
        single_keys = keys[:single_n]
        items = [(key, f"value-{key}") for key in single_keys]
        mapping = {key: f"value-{key}" for key in keys[:MULTI_KEYS]}
        multi_keys = list(mapping)
        expected = list(mapping.values())
        for client in (sharded, sharded_one, plain):
            run(aloop_set(client.set, items[:WARMUP_OPS]))
            run(aloop_get(client.get, single_keys[:WARMUP_OPS]))
            run(client.mset(mapping))
            if run(client.mget(multi_keys)) != expected:
                raise AssertionError(f"{type(client).__name__}.mget returned wrong values")
        best = interleaved(
            {
                "plain get": lambda: run(aloop_get(plain.get, single_keys)),
                "sharded get": lambda: run(aloop_get(sharded.get, single_keys)),
                "one-node get": lambda: run(aloop_get(sharded_one.get, single_keys)),
                "plain set": lambda: run(aloop_set(plain.set, items)),
                "sharded set": lambda: run(aloop_set(sharded.set, items)),
            },
            SINGLE_ROUNDS,
        )
        for op in ("get", "set"):
            mine, theirs = best[f"sharded {op}"], best[f"plain {op}"]
            rows.append(
                [
                    f"async single {op.upper()} ({single_n:,} round trips)",
                    ops(mine, single_n),
                    f"plain async 1 node {ops(theirs, single_n)}",
                    times(theirs / mine),
                    f"sharded/plain ops/s ({(mine - theirs) / single_n * 1e6:+,.1f} µs/call)",
                ]
            )
        one, plain_get = best["one-node get"], best["plain get"]
        rows.append(
            [
                "  async GET, AsyncShardedRedis over node-0 only",
                ops(one, single_n),
                f"plain async 1 node {ops(plain_get, single_n)}",
                times(plain_get / one),
                f"this/plain ops/s ({(one - plain_get) / single_n * 1e6:+,.1f} µs)",
            ]
        )
        best = interleaved(
            {
                "sharded mget": lambda: run(sharded.mget(multi_keys)),
                "plain mget": lambda: run(plain.mget(multi_keys)),
                "sharded mset": lambda: run(sharded.mset(mapping)),
                "plain mset": lambda: run(plain.mset(mapping)),
            },
            MULTI_ROUNDS,
        )
        for op in ("mget", "mset"):
            mine, theirs = best[f"sharded {op}"], best[f"plain {op}"]
            rows.append(
                [
                    f"async {op.upper()} {MULTI_KEYS:,} keys, 4 nodes",
                    ms(mine),
                    f"plain async 1 node {ms(theirs)}",
                    times(theirs / mine),
                    f"plain/sharded ({(mine - theirs) * 1e6:+,.0f} µs/call)",
                ]
            )
    finally:
        run(sharded.aclose())
        run(sharded_one.aclose())
        run(plain.aclose())
        loop.close()


def _stub_answer(*args: Any, **options: Any) -> Any:
    """What a stubbed node answers: a list for MGET (one None per key), else True."""
    name = str(args[0]).upper()
    return [None] * (len(args) - 1) if name == "MGET" else True


class _StubConnection:
    """A connection that answers at once (``_stub_answer``) without any socket: what a
    command costs above the network is redis-py's send/parse machinery plus routing."""

    host = port = None
    db = 0

    def __init__(self) -> None:
        self.retry = Retry(NoBackoff(), 0)
        self._pending: deque[Any] = deque()

    def pack_commands(self, commands: Sequence[tuple[Any, ...]]) -> list[bytes]:
        self._pending.extend(_stub_answer(*args) for args in commands)
        return []

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        pass

    def send_command(self, *args: Any, **options: Any) -> None:
        self._pending.append(_stub_answer(*args))

    def read_response(self, disable_decoding: bool = False, **options: Any) -> Any:
        return self._pending.popleft()

    def should_reconnect(self) -> bool:
        return False

    def disconnect(self, *args: Any, **kwargs: Any) -> None:
        self._pending.clear()


class _StubPool:
    """A connection pool handing out one :class:`_StubConnection` (the caller is serial)."""

    cache = None

    def __init__(self, real: Any) -> None:
        self.real = real
        self.connection_kwargs = real.connection_kwargs
        self._connection = _StubConnection()

    def get_connection(self, *args: Any, **kwargs: Any) -> _StubConnection:
        return self._connection

    def release(self, connection: Any) -> None:
        pass

    def get_encoder(self) -> Any:
        return self.real.get_encoder()


class _AsyncStubConnection:
    """:class:`_StubConnection` for the asyncio clients."""

    host = port = None
    db = 0

    def __init__(self) -> None:
        self.retry = AsyncRetry(NoBackoff(), 0)
        self._pending: deque[Any] = deque()

    def pack_commands(self, commands: Sequence[tuple[Any, ...]]) -> list[bytes]:
        self._pending.extend(_stub_answer(*args) for args in commands)
        return []

    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        pass

    async def send_command(self, *args: Any, **options: Any) -> None:
        self._pending.append(_stub_answer(*args))

    async def read_response(self, disable_decoding: bool = False, **options: Any) -> Any:
        return self._pending.popleft()

    def should_reconnect(self) -> bool:
        return False

    async def disconnect(self, *args: Any, **kwargs: Any) -> None:
        self._pending.clear()


class _AsyncStubPool:
    """:class:`_StubPool` for the asyncio clients."""

    cache = None

    def __init__(self, real: Any) -> None:
        self.real = real
        self.connection_kwargs = real.connection_kwargs
        self._connection = _AsyncStubConnection()

    async def get_connection(self, *args: Any, **kwargs: Any) -> _AsyncStubConnection:
        return self._connection

    async def release(self, connection: Any) -> None:
        pass

    def get_encoder(self) -> Any:
        return self.real.get_encoder()


def measure_routing(servers: list[RedisServer], single_n: int, rows: list[Row]) -> None:
    """The routing cost alone, without the network's noise: every client's (node clients'
    and the plain ones', sync and asyncio) connection pool is replaced by a stub whose one
    connection answers at once (``_StubPool``, ``_AsyncStubPool``), so a sharded command
    costs redis-py's command method and response parsing + routing, and a plain one the
    same without the routing; the difference is the routing overhead per call. The COMMAND
    table is read from the real servers first."""
    names = [f"node-{i}" for i in range(len(servers))]
    urls = {name: server.url for name, server in zip(names, servers, strict=True)}
    keys = [f"user:{i}" for i in range(max(single_n, MULTI_KEYS))]
    single_keys = keys[:single_n]
    items = [(key, "v") for key in single_keys]
    mapping = dict.fromkeys(keys[:MULTI_KEYS], "v")
    multi_keys = list(mapping)
    loop = asyncio.new_event_loop()
    run = loop.run_until_complete
    sharded = ShardedRedis(urls, decode_responses=True)
    asharded = AsyncShardedRedis(urls, decode_responses=True)
    plain = redis.Redis(host=servers[0].host, port=servers[0].port, decode_responses=True)
    aplain = aioredis.Redis(host=servers[0].host, port=servers[0].port, decode_responses=True)
    sync_clients = [*sharded.clients.values(), plain]
    async_clients = [*asharded.clients.values(), aplain]
    real_pools: dict[int, Any] = {}
    try:
        sharded.mget(multi_keys[:10])  # reads the COMMAND table
        run(asharded.mget(multi_keys[:10]))
        real_pools = {id(c): c.connection_pool for c in [*sync_clients, *async_clients]}
        for client in sync_clients:
            client.connection_pool = cast(Any, _StubPool(client.connection_pool))
        for aclient in async_clients:
            aclient.connection_pool = cast(Any, _AsyncStubPool(aclient.connection_pool))
        best = interleaved(
            {
                "sync plain get": partial(loop_get, plain.get, single_keys),
                "sync sharded get": partial(loop_get, sharded.get, single_keys),
                "sync plain set": partial(loop_set, plain.set, items),
                "sync sharded set": partial(loop_set, sharded.set, items),
                "sync plain mget": partial(plain.mget, multi_keys),
                "sync sharded mget": partial(sharded.mget, multi_keys),
                "sync plain mset": partial(plain.mset, mapping),
                "sync sharded mset": partial(sharded.mset, mapping),
                "async plain get": lambda: run(aloop_get(aplain.get, single_keys)),
                "async sharded get": lambda: run(aloop_get(asharded.get, single_keys)),
                "async plain set": lambda: run(aloop_set(aplain.set, items)),
                "async sharded set": lambda: run(aloop_set(asharded.set, items)),
                "async plain mget": lambda: run(aplain.mget(multi_keys)),
                "async sharded mget": lambda: run(asharded.mget(multi_keys)),
                "async plain mset": lambda: run(aplain.mset(mapping)),
                "async sharded mset": lambda: run(asharded.mset(mapping)),
            },
            SINGLE_ROUNDS,
        )
        for kind in ("sync", "async"):
            for op, calls in (("get", single_n), ("set", single_n), ("mget", 1), ("mset", 1)):
                mine, theirs = best[f"{kind} sharded {op}"], best[f"{kind} plain {op}"]
                what = f"{MULTI_KEYS:,} keys" if calls == 1 else "1 key"
                rows.append(
                    [
                        f"routing only, {kind} {op.upper()} {what}",
                        f"{mine / calls * 1e6:,.1f} µs",
                        f"plain, stubbed {theirs / calls * 1e6:,.1f} µs",
                        times(mine / theirs),
                        f"sharded/plain time ({(mine - theirs) / calls * 1e6:+,.1f} µs/call)",
                    ]
                )
    finally:
        for client in sync_clients:
            client.connection_pool = real_pools.get(id(client), client.connection_pool)
        for aclient in async_clients:
            aclient.connection_pool = real_pools.get(id(aclient), aclient.connection_pool)
        sharded.close()
        plain.close()
        run(asharded.aclose())
        run(aplain.aclose())
        loop.close()


# ------------------------------------------------------------------ formatting


def ops(seconds: float, n: int) -> str:
    return f"{n / seconds:,.0f} ops/s"


# ------------------------------------------------------------------ main


def measure(servers: list[RedisServer], quick: bool, summary: str | None = None) -> int:
    scale = 10 if quick else 1
    single_n = SINGLE_OPS // scale
    pipeline_n = PIPELINE_COMMANDS // scale
    names = [f"node-{i}" for i in range(len(servers))]

    sharded = ShardedRedis(
        {name: server.url for name, server in zip(names, servers, strict=True)},
        decode_responses=True,
    )
    sharded_one = ShardedRedis({names[0]: servers[0].url}, decode_responses=True)
    plain = redis.Redis(host=servers[0].host, port=servers[0].port, db=0, decode_responses=True)
    shard_api = RedisShardAPI(
        [
            {"name": name, "host": s.host, "port": s.port, "db": 0, "decode_responses": True}
            for name, s in zip(names, servers, strict=True)
        ]
    )
    try:
        rows: list[Row] = []  # measure, ShardedRedis, other, ratio, ratio is
        targets: list[tuple[str, str, bool | None]] = []
        issue_targets: list[tuple[str, str, bool | None]] = []  # issue 14's, listed first

        # ---------------------------------------------------------- single-key GET / SET
        keys = [f"user:{i}" for i in range(max(single_n, MULTI_KEYS))]
        values = {key: f"value-{key}" for key in keys}
        single_keys = keys[:single_n]
        items = [(key, values[key]) for key in single_keys]
        for client in (sharded, sharded_one, plain):
            loop_set(client.set, items[:WARMUP_OPS])
            loop_get(client.get, single_keys[:WARMUP_OPS])
        loop_routed_get(sharded, single_keys[:WARMUP_OPS])
        best = interleaved(
            {
                "plain get": partial(loop_get, plain.get, single_keys),
                "sharded get": partial(loop_get, sharded.get, single_keys),
                "one-node get": partial(loop_get, sharded_one.get, single_keys),
                "routed get": partial(loop_routed_get, sharded, single_keys),
                "plain set": partial(loop_set, plain.set, items),
                "sharded set": partial(loop_set, sharded.set, items),
            },
            SINGLE_ROUNDS,
        )
        single_missed = False
        for op in ("get", "set"):
            mine, theirs = best[f"sharded {op}"], best[f"plain {op}"]
            ratio = theirs / mine
            overhead = (mine - theirs) / single_n * 1e6
            rows.append(
                [
                    f"single {op.upper()} ({single_n:,} round trips)",
                    ops(mine, single_n),
                    f"plain 1 node {ops(theirs, single_n)}",
                    times(ratio),
                    "sharded/plain ops/s",
                ]
            )
            rows.append(
                [
                    f"  overhead per {op.upper()}",
                    f"{overhead:+,.1f} µs",
                    f"plain {theirs / single_n * 1e6:,.1f} µs/call",
                    "",
                    "",
                ]
            )
            targets.append(
                (f"single-key {op.upper()} >= 0.9x plain redis.Redis", times(ratio), ratio >= 0.9)
            )
            single_missed = single_missed or ratio < 0.9
        plain_get = best["plain get"]
        for label, name in (
            ("  GET, ShardedRedis over node-0 only", "one-node get"),
            ("  GET, client_for(key).get(key)", "routed get"),
        ):
            rows.append(
                [
                    label,
                    ops(best[name], single_n),
                    f"plain 1 node {ops(plain_get, single_n)}",
                    times(plain_get / best[name]),
                    f"this/plain ops/s ({(best[name] - plain_get) / single_n * 1e6:+,.1f} µs)",
                ]
            )

        # ---------------------------------------------------------- MGET / MSET of 1,000 keys
        multi_keys = keys[:MULTI_KEYS]
        mapping = {key: values[key] for key in multi_keys}
        multi_items = list(mapping.items())
        expected = [values[key] for key in multi_keys]
        for client in (sharded, shard_api, plain):
            client.mset(mapping)
            answer = client.mget(multi_keys)
            if answer != expected:
                raise AssertionError(f"{type(client).__name__}.mget returned wrong values")
        loop_get(sharded.get, multi_keys[:WARMUP_OPS])
        best = interleaved(
            {
                "sharded mget": partial(sharded.mget, multi_keys),
                "shard_api mget": partial(shard_api.mget, multi_keys),
                "plain mget": partial(plain.mget, multi_keys),
                "sharded gets": partial(loop_get, sharded.get, multi_keys),
                "sharded mset": partial(sharded.mset, mapping),
                "shard_api mset": partial(shard_api.mset, mapping),
                "plain mset": partial(plain.mset, mapping),
                "sharded sets": partial(loop_set, sharded.set, multi_items),
            },
            MULTI_ROUNDS,
        )
        multi_missed = False
        for op, single in (("mget", "GET"), ("mset", "SET")):
            mine = best[f"sharded {op}"]
            label = f"{op.upper()} {MULTI_KEYS:,} keys, 4 nodes"
            vs_shard = best[f"shard_api {op}"] / mine
            vs_loop = best[f"sharded {single.lower()}s"] / mine
            rows.append(
                [label, ms(mine), f"redis-shard {ms(best[f'shard_api {op}'])}",
                 times(vs_shard), "redis-shard/sharded"]
            )  # fmt: skip
            rows.append(
                [
                    f"  vs {MULTI_KEYS:,} single {single}s",
                    ms(mine),
                    f"ShardedRedis loop {ms(best[f'sharded {single.lower()}s'])}",
                    times(vs_loop),
                    "loop/sharded",
                ]
            )
            rows.append(
                [
                    f"  plain {op.upper()} on 1 node (reference)",
                    ms(mine),
                    f"plain {ms(best[f'plain {op}'])}",
                    times(best[f"plain {op}"] / mine),
                    f"plain/sharded ({(mine - best[f'plain {op}']) * 1e6:+,.0f} µs/call)",
                ]
            )
            vs_plain = mine / best[f"plain {op}"]
            issue_targets.append(
                (f"{op.upper()} {MULTI_KEYS:,} keys over 4 nodes <= 1.15x plain one-node "
                 f"{op.upper()}", times(vs_plain), vs_plain <= 1.15)
            )  # fmt: skip
            targets.append(
                (f"{op.upper()} {MULTI_KEYS:,} keys >= 2x redis-shard", times(vs_shard),
                 vs_shard >= 2)
            )  # fmt: skip
            targets.append(
                (f"{op.upper()} {MULTI_KEYS:,} keys >= 10x {MULTI_KEYS:,} single {single}s",
                 times(vs_loop), vs_loop >= 10)
            )  # fmt: skip
            multi_missed = multi_missed or vs_shard < 2 or vs_loop < 10 or vs_plain > 1.15

        # ---------------------------------------------------------- pipelines
        run_pipeline(sharded.pipeline(transaction=False), min(pipeline_n, 1_000))
        run_pipeline(plain.pipeline(transaction=False), min(pipeline_n, 1_000))
        short_n = SHORT_PIPELINE_COMMANDS // scale
        best = interleaved(
            {
                "sharded short": lambda: run_pipeline(sharded.pipeline(transaction=False), short_n),
                "plain short": lambda: run_pipeline(plain.pipeline(transaction=False), short_n),
            },
            SHORT_PIPELINE_ROUNDS,
        )
        best.update(
            interleaved(
                {
                    "sharded": lambda: run_pipeline(
                        sharded.pipeline(transaction=False), pipeline_n
                    ),
                    "plain": lambda: run_pipeline(plain.pipeline(transaction=False), pipeline_n),
                },
                PIPELINE_ROUNDS,
            )
        )
        for suffix, n in ((" short", short_n), ("", pipeline_n)):
            pipe_ratio = best[f"sharded{suffix}"] / best[f"plain{suffix}"]
            rows.append(
                [
                    f"pipeline {n:,} mixed commands, 4 nodes",
                    ms(best[f"sharded{suffix}"]),
                    f"plain 1 node {ms(best[f'plain{suffix}'])}",
                    times(pipe_ratio),
                    "sharded/plain time",
                ]
            )
            rows.append(
                [
                    "  per command",
                    f"{best[f'sharded{suffix}'] / n * 1e6:,.1f} µs",
                    f"plain {best[f'plain{suffix}'] / n * 1e6:,.1f} µs",
                    "",
                    "",
                ]
            )
            if suffix:
                issue_targets.append(
                    (f"pipeline {n:,} mixed commands <= 1.2x one-node pipeline",
                     times(pipe_ratio), pipe_ratio <= 1.2)
                )  # fmt: skip
            else:
                targets.append(
                    (f"pipeline {n:,} commands, sharded/plain time", times(pipe_ratio), None)
                )  # fmt: skip
        targets[:0] = issue_targets
        measure_async(servers, single_n, rows)
        measure_routing(servers, single_n, rows)

        profiles: list[tuple[str, str, list[Row]]] = []
        if single_missed:
            profiles.append(
                (f"{single_n:,} single ShardedRedis GETs", "GET",
                 profile_calls(partial(loop_get, sharded.get, single_keys), single_n,
                               top=PROFILE_TOP))
            )  # fmt: skip
        if multi_missed:
            profiles.append(
                (f"{PROFILE_MULTI_CALLS} ShardedRedis MGETs of {MULTI_KEYS:,} keys", "MGET",
                 profile_calls(partial(sharded.mget, multi_keys), PROFILE_MULTI_CALLS,
                               repeats=PROFILE_MULTI_CALLS, top=PROFILE_TOP))
            )  # fmt: skip
    finally:
        sharded.close()
        sharded_one.close()
        plain.close()
        for client in shard_api.connections.values():
            client.close()

    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    mode = "quick" if quick else "full"
    print(
        f"ShardedRedis vs redis.Redis and redis-shard ({mode} run, {len(servers)} local "
        f"redis-servers, Python {sys.version.split()[0]}, redis-py {redis.__version__}, "
        f"reply parser: {parser_name()}, load average {load})"
    )
    print(
        tabulate(
            rows,
            headers=["measure", "ShardedRedis", "other", "ratio", "ratio is"],
            colalign=("left", "right", "right", "right", "left"),
        )
    )
    print()
    if summary is not None:
        with open(summary, "w", encoding="utf-8") as out:
            json.dump({"parser": parser_name(), "targets": targets}, out)
    print(targets_table(targets))
    for what, unit, profile in profiles:
        print()
        print(
            f"cProfile of {what} (a target missed; the profiler inflates absolute times; "
            f"calling thread only): top {PROFILE_TOP} functions by own time"
        )
        print(
            tabulate(
                profile,
                headers=["function", f"calls/{unit}", f"own µs/{unit}", "own share",
                         f"cum µs/{unit}"],
                colalign=("left", "right", "right", "right", "right"),
            )
        )  # fmt: skip
    return 0


def parser_name() -> str:
    """The reply parser redis-py picked at import: hiredis when it could import it."""
    name = redis.connection.DefaultParser.__name__
    return f"hiredis ({name})" if redis.utils.HIREDIS_AVAILABLE else f"pure Python ({name})"


_CHILD = """
import sys
if {block!r}:
    sys.modules["hiredis"] = None  # redis-py's import of hiredis fails: HIREDIS_AVAILABLE is False
sys.path.insert(0, {bench!r})
sys.argv = [{script!r}, *{argv!r}]
import runpy
runpy.run_path({script!r}, run_name="__main__")
"""


def run_both(argv: list[str]) -> int:
    """Run the whole measurement twice, each in a child process of its own (each with its
    own servers): with hiredis, then with redis-py's pure-Python parser (the child makes
    ``import hiredis`` fail before redis-py is imported, as without the package: redis-py
    chooses its parser class and its command packer once, at import, from
    ``redis.utils.HIREDIS_AVAILABLE``). Prints both children's tables, then the targets
    of both side by side."""
    script = os.path.abspath(__file__)
    summaries: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="hashring-bench-") as tmp:
        for label, block in (("with hiredis", False), ("without hiredis", True)):
            path = os.path.join(tmp, f"{int(block)}.json")
            child_argv = [*argv, "--parser", "python" if block else "hiredis", "--summary", path]
            code = _CHILD.format(
                block=block, bench=os.path.dirname(script), script=script, argv=child_argv
            )
            print(f"==================== {label}", flush=True)
            done = subprocess.run([sys.executable, "-c", code], check=False)
            if done.returncode != 0:
                return done.returncode
            print(flush=True)
            with open(path, encoding="utf-8") as summary:
                summaries[label] = json.load(summary)
    labels = list(summaries)
    print("==================== targets, with and without hiredis")
    print(", ".join(f"{label}: {summaries[label]['parser']}" for label in labels))
    rows = []
    for i, (name, _, _) in enumerate(summaries[labels[0]]["targets"]):
        row = [name]
        for label in labels:
            _, value, ok = summaries[label]["targets"][i]
            row += [value, STATUS[ok]]
        rows.append(row)
    headers = ["target"] + [word for label in labels for word in (label, "")]
    print(tabulate(rows, headers=headers))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="10x fewer operations (smoke run)")
    parser.add_argument(
        "--routing-only", action="store_true", help="only the routing cost (stubbed nodes)"
    )
    parser.add_argument(
        "--parser",
        choices=("both", "hiredis", "python"),
        default="both",
        help="both (default): the whole run twice, in child processes, with and without "
        "hiredis; hiredis/python: this process only, as imported (python needs hiredis "
        "blocked before redis-py is imported, as the 'both' run does)",
    )
    parser.add_argument("--summary", help=argparse.SUPPRESS)  # the child's targets, as JSON
    args = parser.parse_args(argv)
    if args.parser == "both":
        return run_both(["--quick"] * args.quick + ["--routing-only"] * args.routing_only)
    signal.signal(signal.SIGTERM, exit_on_signal)
    with redis_servers(NODES) as servers:
        if args.routing_only:
            rows: list[Row] = []
            measure_routing(servers, SINGLE_OPS // (10 if args.quick else 1), rows)
            print(f"reply parser: {parser_name()}")
            print(
                tabulate(
                    rows,
                    headers=["measure", "sharded", "plain redis-py", "ratio", "ratio is"],
                    colalign=("left", "right", "right", "right", "left"),
                )
            )
            if args.summary is not None:
                with open(args.summary, "w", encoding="utf-8") as out:
                    json.dump({"parser": parser_name(), "targets": []}, out)
            return 0
        return measure(servers, args.quick, args.summary)


if __name__ == "__main__":
    sys.exit(main())
