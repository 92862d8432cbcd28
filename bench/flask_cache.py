"""Flask-Caching: ShardedRedisCache over 3 servers against RedisCache on one, same run.

Run by hand (not part of the test run)::

    .venv/bin/python bench/flask_cache.py            # full run, about 20 seconds
    .venv/bin/python bench/flask_cache.py --quick    # smoke run: 10x fewer operations

The script starts 3 ``redis-server`` processes on free loopback ports (``tests/redis_servers``:
never 6379, persistence off) and stops them at the end. Both caches are built by
Flask-Caching from a Flask app's config: ``CACHE_TYPE="RedisCache"`` on the first server,
``CACHE_TYPE="hashring.adapters.flask.ShardedRedisCache"`` over all three.

Measured (``time.perf_counter``, gc off in timed regions, both caches warmed up, rounds
alternate between the caches with the order flipped every round, best round kept):

* ``get`` and ``set`` of one key: ops/s of a loop of N calls (N = 2,000), 15 rounds;
  also through a ShardedRedisCache over the first server alone ("one-node": the client's
  own cost, without the spread over 3 server processes competing for 2 cores) and through
  a RedisCache per server, each key's chosen in advance ("floor": 3 servers, no routing);
* ``get_many`` and ``set_many`` of 500 keys (MGET split per node / a pipeline per node,
  run in parallel), 15 rounds;
* a ``@cache.cached`` view through Flask's test client, 1,000 requests served from the
  cache, 5 rounds (what an application sees: Flask's request handling included).

Targets: single-key ``get``/``set`` and the cached view through the one-node cache >= 0.9x
RedisCache's ops/s (routing adds a few µs to a ~50 µs loopback round trip); over 3 servers,
and ``get_many``/``set_many``, reported, not targets (three servers answer in parallel, but
on 2 loaded cores each extra server process is one more to be scheduled).
Noise: 2 shared cores; the load average is printed. Trust ratios within one run.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

from _measure import exit_on_signal, interleaved, loop_get, ms, times
from _servers import RedisServer, redis_servers
from flask import Flask
from flask_caching import Cache
from tabulate import tabulate

NODES = 3
SINGLE_OPS = 2_000
SINGLE_ROUNDS = 15
MULTI_KEYS = 500
MULTI_ROUNDS = 15
VIEW_REQUESTS = 1_000
VIEW_ROUNDS = 5
TARGET = 0.9


def build(config: dict[str, Any]) -> tuple[Flask, Cache, Any]:
    """A Flask app with a cached view at /item/<n>, its Cache and the backend."""
    app = Flask("bench")
    cache = Cache(app, config=config)

    @app.route("/item/<int:n>")
    @cache.cached(timeout=600)
    def item(n: int) -> str:
        return f"item {n}"

    return app, cache, app.extensions["cache"][cache]


def loop_set(set_: Callable[[str, Any], Any], keys: Sequence[str]) -> None:
    for key in keys:
        set_(key, key)


def loop_owner_get(owners: Sequence[Any], keys: Sequence[str]) -> None:
    for cache, key in zip(owners, keys, strict=True):
        cache.get(key)


def loop_owner_set(owners: Sequence[Any], keys: Sequence[str]) -> None:
    for cache, key in zip(owners, keys, strict=True):
        cache.set(key, key)


def loop_requests(app: Flask, paths: Sequence[str]) -> None:
    client = app.test_client()
    for path in paths:
        client.get(path)


def run(servers: list[RedisServer], scale: int) -> int:
    plain_app, _, plain = build({"CACHE_TYPE": "RedisCache", "CACHE_REDIS_URL": servers[0].url})
    app, _, sharded = build(
        {
            "CACHE_TYPE": "hashring.adapters.flask.ShardedRedisCache",
            "CACHE_REDIS_NODES": [server.url for server in servers],
        }
    )
    one_app, _, one = build(
        {
            "CACHE_TYPE": "hashring.adapters.flask.ShardedRedisCache",
            "CACHE_REDIS_NODES": [servers[0].url],
        }
    )
    single = [f"user:{i}" for i in range(SINGLE_OPS // scale)]
    # The floor of a 3-server spread: a RedisCache per server, each key's chosen in advance.
    per_server = {
        server.url.removeprefix("redis://"): build(
            {"CACHE_TYPE": "RedisCache", "CACHE_REDIS_URL": server.url}
        )[2]
        for server in servers
    }
    owners = [per_server[sharded.client.node_for(f"flask_cache_{key}")] for key in single]
    multi = {f"item:{i}": {"id": i, "name": f"n{i}"} for i in range(MULTI_KEYS)}
    paths = [f"/item/{i % 50}" for i in range(VIEW_REQUESTS // scale)]
    try:
        for cache, flask_app in ((plain, plain_app), (sharded, app), (one, one_app)):
            loop_set(cache.set, single)
            cache.set_many(multi)
            if cache.get_many(*multi) != list(multi.values()):
                raise AssertionError(f"{type(cache).__name__}.get_many returned wrong values")
            loop_requests(flask_app, paths[:100])
        best = interleaved(
            {
                "plain get": partial(loop_get, plain.get, single),
                "sharded get": partial(loop_get, sharded.get, single),
                "one-node get": partial(loop_get, one.get, single),
                "floor get": partial(loop_owner_get, owners, single),
                "plain set": partial(loop_set, plain.set, single),
                "sharded set": partial(loop_set, sharded.set, single),
                "one-node set": partial(loop_set, one.set, single),
                "floor set": partial(loop_owner_set, owners, single),
            },
            SINGLE_ROUNDS,
        )
        best |= interleaved(
            {
                "plain get_many": partial(plain.get_many, *multi),
                "sharded get_many": partial(sharded.get_many, *multi),
                "plain set_many": partial(plain.set_many, multi),
                "sharded set_many": partial(sharded.set_many, multi),
            },
            MULTI_ROUNDS,
        )
        best |= interleaved(
            {
                "plain view": partial(loop_requests, plain_app, paths),
                "sharded view": partial(loop_requests, app, paths),
                "one-node view": partial(loop_requests, one_app, paths),
            },
            VIEW_ROUNDS,
        )
    finally:
        sharded.close()
        one.close()
        for cache in (plain, *per_server.values()):
            cache._write_client.close()
    rows = []
    targets = []
    for op, count in (("get", len(single)), ("set", len(single)), ("view", len(paths))):
        theirs = best[f"plain {op}"]
        variants = ("one-node", "sharded", "floor") if op != "view" else ("one-node", "sharded")
        for variant in variants:
            mine = best[f"{variant} {op}"]
            ratio = theirs / mine
            rows.append(
                [f"{op} (ops/s), {variant}", f"{count / mine:,.0f}", f"{count / theirs:,.0f}",
                 times(ratio), f"{(mine - theirs) / count * 1e6:+,.1f} µs per call"]
            )  # fmt: skip
        ratio = theirs / best[f"one-node {op}"]
        targets.append((f"{op}, one node: >= {TARGET}x RedisCache", times(ratio), ratio >= TARGET))
    for op in ("get_many", "set_many"):
        mine, theirs = best[f"sharded {op}"], best[f"plain {op}"]
        rows.append(
            [f"{op} of {MULTI_KEYS} keys", ms(mine), ms(theirs), times(theirs / mine),
             "RedisCache time / sharded time"]
        )  # fmt: skip
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"Flask-Caching: ShardedRedisCache over {NODES} servers vs RedisCache on one "
          f"(load average {load})\n")  # fmt: skip
    print(
        tabulate(
            rows,
            headers=["measure (row: the cache measured)", "row", "RedisCache", "ratio", "note"],
            colalign=("left", "right", "right", "right", "left"),
        )
    )
    print()
    status = {True: "met", False: "MISSED"}
    print(
        tabulate(
            [(name, value, status[ok]) for name, value, ok in targets],
            headers=["target", "measured", "status"],
        )
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="10x fewer operations (smoke run)")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, exit_on_signal)
    with redis_servers(NODES) as servers:
        return run(servers, 10 if args.quick else 1)


if __name__ == "__main__":
    sys.exit(main())
