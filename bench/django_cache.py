"""ShardedRedisCache against Django's own RedisCache, on real local redis-servers.

Run by hand (not part of the test run)::

    .venv/bin/python bench/django_cache.py            # full run, about 20 seconds
    .venv/bin/python bench/django_cache.py --quick    # smoke run: 10x fewer operations

The script starts 3 ``redis-server`` processes on free loopback ports (through
``tests/redis_servers.py``: never port 6379, persistence off) and stops them at the end.
Django is configured with no apps. Backends, made as ``caches[alias]`` makes them
(``Backend(LOCATION, params)``), all with Django's defaults (pickling serializer, 300 s
timeout):

* ``RedisCache`` on the first server (the peer: what the sharded backend must stay close to);
* ``ShardedRedisCache`` over the 3 servers (default ring placement);
* ``ShardedRedisCache`` over the first server alone (the client's overhead without the
  spread);
* for single keys, a ``RedisCache`` per server with each key sent to its owner, looked up
  before the timed loop (the floor of sharding with Django's own client).

What is measured (``time.perf_counter``, gc off in timed regions, backends warmed up first,
measured in alternating rounds, order flipped every round, best round kept):

* ``get`` and ``set`` of one key: ops/s of a loop of N calls (N = 2,000), 15 rounds;
* ``get_many`` / ``set_many`` of 1,000 keys (``set_many`` with the default timeout, so
  per-key expiries), and ``delete_many`` of them: seconds per call, 15 rounds;
* making a backend: ``RedisCache`` plus its first ``get`` (new pool, new connection), the
  first ``ShardedRedisCache`` of a configuration plus its first ``get`` (placement, clients,
  the COMMAND table read), and a later one of the same configuration (shared client).

Targets: single-key ``get`` and ``set`` >= 0.9x the ops/s of RedisCache per node by hand
(the same 3 servers: round trips to 3 server processes on 2 shared cores cost more than to
one, which is no client's doing); ``get_many`` and
``set_many`` of 1,000 keys over 3 nodes no slower than 1.5x RedisCache's time on one server
(ratio >= 0.67x); a later backend of a configuration (what Django makes per thread and per
ASGI request) plus its first ``get`` at most 2x the time of RedisCache's (ratio >= 0.5x).

Noise: 2 cores shared with the servers and possibly other jobs; the load average is printed.
Trust the ratios within one run, not absolute numbers.
"""

from __future__ import annotations

import argparse
import itertools
import os
import signal
import sys
from collections.abc import Callable, Sequence
from typing import Any

from _measure import exit_on_signal, interleaved, ms, times
from _servers import redis_servers
from tabulate import tabulate

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
from django_settings import configure_django

configure_django()

from django.core.cache.backends.base import BaseCache  # noqa: E402 - needs the settings
from django.core.cache.backends.redis import RedisCache  # noqa: E402
from hashring.adapters.django import ShardedRedisCache  # noqa: E402

_fresh = itertools.count(1)
HAND = "RedisCache per node (by hand)"


def measure(urls: list[str], quick: bool) -> int:
    n = 200 if quick else 2_000
    rounds = 5 if quick else 15
    batch = 100 if quick else 1_000
    backends: dict[str, BaseCache] = {
        "RedisCache (1 server)": RedisCache(urls[0], {}),
        "ShardedRedisCache (3)": ShardedRedisCache(urls, {}),
        "ShardedRedisCache (1)": ShardedRedisCache(urls[:1], {}),
    }
    keys = [f"user:{i}" for i in range(n)]
    many = {f"item:{i}": {"id": i, "name": f"n{i}"} for i in range(batch)}
    for backend in backends.values():
        backend.set_many(many)
        assert backend.get_many(list(many)) == many
        for key in keys:
            backend.set(key, key)

    def loop(call: Callable[[str], Any]) -> Callable[[], None]:
        return lambda: [call(key) for key in keys] and None

    # the floor for single keys over the same 3 servers: Django's RedisCache per node, each
    # key sent to its owner (looked up beforehand, outside the timed loop)
    sharded = backends["ShardedRedisCache (3)"]
    assert isinstance(sharded, ShardedRedisCache)
    by_node = {name: RedisCache(url, {}) for name, url in sharded._cache.location.nodes.items()}
    owner = {k: by_node[sharded._cache.get_client().node_for(sharded.make_key(k))] for k in keys}
    for key in keys:
        owner[key].set(key, key)
    hand_routed = {
        "get": loop(lambda k: owner[k].get(k)),
        "set": loop(lambda k: owner[k].set(k, k)),
    }

    rows: list[list[Any]] = []
    best: dict[str, dict[str, float]] = {}
    operations: dict[str, Callable[[BaseCache], Callable[[], object]]] = {
        "get": lambda b: loop(b.get),
        "set": lambda b: loop(lambda k: b.set(k, k)),
        f"get_many {batch}": lambda b: lambda: b.get_many(list(many)),
        f"set_many {batch}": lambda b: lambda: b.set_many(many),
        f"delete_many {batch} + set_many": lambda b: (
            lambda: (
                b.delete_many(list(many)),
                b.set_many(many),
            )
        ),
    }
    for operation, make in operations.items():
        timed = {name: make(b) for name, b in backends.items()}
        if operation in hand_routed:
            timed[HAND] = hand_routed[operation]
        best[operation] = interleaved(timed, rounds)
        per_call = n if operation in ("get", "set") else 1
        plain = best[operation]["RedisCache (1 server)"]
        for name, seconds in best[operation].items():
            rows.append([operation, name, ms(seconds / per_call), times(plain / seconds)])

    def cold() -> None:  # a configuration never seen: build, then read the COMMAND table
        ShardedRedisCache(urls, {"OPTIONS": {"socket_timeout": 30 + next(_fresh)}}).get("k")

    made = interleaved(
        {
            "RedisCache (1 server)": lambda: RedisCache(urls[0], {}).get("k"),
            "ShardedRedisCache (3), first": cold,
            "ShardedRedisCache (3), later": lambda: ShardedRedisCache(urls, {}).get("k"),
        },
        max(3, rounds // 3),
    )
    for name, seconds in made.items():
        rows.append(
            ["new backend + get", name, ms(seconds), times(made["RedisCache (1 server)"] / seconds)]
        )
    print(f"load average: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(tabulate(rows, headers=["operation", "backend", "per call", "vs RedisCache"]))

    def ratio(operation: str, peer: str = "RedisCache (1 server)") -> float:
        return best[operation][peer] / best[operation]["ShardedRedisCache (3)"]

    later = made["RedisCache (1 server)"] / made["ShardedRedisCache (3), later"]
    targets = [
        ("get ops/s >= 0.9x RedisCache per node", ratio("get", HAND), 0.9),
        ("set ops/s >= 0.9x RedisCache per node", ratio("set", HAND), 0.9),
        (f"get_many {batch} >= 0.67x RedisCache", ratio(f"get_many {batch}"), 0.67),
        (f"set_many {batch} >= 0.67x RedisCache", ratio(f"set_many {batch}"), 0.67),
        ("later backend + get >= 0.5x RedisCache", later, 0.5),
    ]
    print()
    print(
        tabulate(
            [
                (name, times(value), "PASS" if value >= goal else "MISS")
                for name, value, goal in targets
            ],
            headers=["target", "measured", "status"],
        )
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="10x fewer operations")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, exit_on_signal)
    with redis_servers(3) as servers:
        return measure([s.url for s in servers], args.quick)


if __name__ == "__main__":
    sys.exit(main())
