"""``hashring migrate``'s engine against naive DUMP / RESTORE / DEL, on real local redis-servers.

Run by hand (not part of the test run)::

    .venv/bin/python bench/migrate.py                  # 1,000,000 keys, about a minute
    .venv/bin/python bench/migrate.py --quick          # 100,000 keys, a few seconds
    .venv/bin/python bench/migrate.py --quick --aof    # servers with appendfsync always

The script starts its own 4 ``redis-server`` processes on free loopback ports (through
``tests/redis_servers.py``: never port 6379) and stops them at the end, also after an
error. By default they keep no persistence, so the engine runs with ``allow_volatile=True``
(what the CLI's ``--allow-volatile-destination`` does); with ``--aof`` every server has
``appendonly yes`` and ``appendfsync always`` (durable: the default path, and what fsync
costs on this machine's disk). Nodes ``n0`` .. ``n3``; the old topology is ``n0`` ..
``n2``, the new one all four (default ring placement), so about a quarter of the keys move,
all to ``n3``.

The data set: N small string keys (``key:{i}``, values of 8-16 bytes, no TTL) written to
their owners under the old topology with pipelined MSETs (not timed).

What is measured, in this order, on that one data set (``time.perf_counter``, gc off):

* naive: for the first M misplaced keys (M = 5,000; 2,000 with ``--quick``), one key at a
  time and three round trips per key, no pipelining: ``DUMP`` on the source, ``RESTORE key
  0 payload`` on the destination, ``DEL`` on the source. The naive loop is handed each key's
  source and destination (no SCAN, no routing: that favours it). keys/s = M / seconds; it
  is measured on this subset only and its keys/s is extrapolated as a rate (a per-key loop
  has a constant cost per key, so the rate does not depend on N).
* engine: :meth:`hashring.adapters.migrate.MigrationSession.migrate` (batch 1000, no rate
  limit) over the whole data set, as ``hashring migrate --apply`` runs it: the durability
  check of the destinations, then it SCANs all N keys on all nodes, routes each page with
  ``get_node_many`` and moves the remaining misplaced keys (all but the M moved naively)
  with pipelined ``PTTL`` + ``MIGRATE``, remembering a fingerprint of each moved key.
  keys/s = keys moved / seconds, scanning included. Also shown: keys scanned/s.
* then :meth:`~hashring.adapters.migrate.MigrationSession.verify` in the same session (not
  compared): it must find 0 misplaced and 0 of the moved keys lost (it looks for each on
  its destination while it scans), and the servers must hold N keys in total.

Target: engine keys/s >= 10x naive keys/s.

Noise: the machine has 2 cores shared by the 4 servers and this process (and possibly other
jobs); the load average is printed in the header. Trust the ratio within one run, not
absolute numbers.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence

import redis
from _measure import exit_on_signal, timed, times
from _servers import RedisServer, redis_servers
from hashring.adapters.migrate import MigrationSession
from tabulate import tabulate

from hashring import parse_topology

NODES = 4
KEYS = 1_000_000
NAIVE_KEYS = 5_000
QUICK_KEYS = 100_000
QUICK_NAIVE_KEYS = 2_000
LOAD_CHUNK = 10_000
BATCH = 1000
TARGET = 10.0


def naive_move(clients: dict[str, redis.Redis], moves: Sequence[tuple[str, str, str]]) -> None:
    """DUMP on the source, RESTORE on the destination, DEL on the source: key by key."""
    for key, source, destination in moves:
        payload = clients[source].dump(key)
        if payload is None:
            continue
        clients[destination].restore(key, 0, payload)
        clients[source].delete(key)


def measure(servers: list[RedisServer], quick: bool, aof: bool) -> int:
    n = QUICK_KEYS if quick else KEYS
    naive_n = QUICK_NAIVE_KEYS if quick else NAIVE_KEYS
    names = [f"n{i}" for i in range(len(servers))]
    urls = {name: server.url for name, server in zip(names, servers, strict=True)}
    old = parse_topology({"nodes": {name: {"url": urls[name]} for name in names[:-1]}}, "old")
    new = parse_topology({"nodes": {name: {"url": urls[name]} for name in names}}, "new")
    clients = {
        name: redis.Redis(host=s.host, port=s.port, db=0)
        for name, s in zip(names, servers, strict=True)
    }
    try:
        keys = [f"key:{i}" for i in range(n)]
        before = old.placement().get_node_many(keys)
        after = new.placement().get_node_many(keys)
        for start in range(0, n, LOAD_CHUNK):
            chunks: dict[str, dict[str, str]] = {}
            for i in range(start, min(n, start + LOAD_CHUNK)):
                chunks.setdefault(before[i], {})[keys[i]] = f"v{i:07d}" + "x" * (i % 9)
            for name, mapping in chunks.items():
                clients[name].mset(mapping)
        to_move = sum(b != a for b, a in zip(before, after, strict=True))
        moves = [(key, b, a) for key, b, a in zip(keys, before, after, strict=True) if b != a][
            :naive_n
        ]

        naive_seconds, _ = timed(lambda: naive_move(clients, moves))
        with MigrationSession(old, new) as session:
            engine_seconds, result = timed(
                lambda: session.migrate(batch=BATCH, allow_volatile=not aof)
            )
            verify_seconds, check = timed(lambda: session.verify(batch=BATCH))
        total = sum(int(client.dbsize()) for client in clients.values())
    finally:
        for client in clients.values():
            client.close()

    expected = to_move - len(moves)
    if (
        result.moved_total != expected
        or check.misplaced
        or check.lost_total
        or check.checked != expected
        or total != n
    ):
        print(
            f"WRONG: moved {result.moved_total:,} of {expected:,}, misplaced "
            f"{check.misplaced:,}, lost {check.lost_total:,} of {check.checked:,} checked, "
            f"keys {total:,} of {n:,}",
            file=sys.stderr,
        )
        return 1
    naive_rate = len(moves) / naive_seconds
    engine_rate = result.moved_total / engine_seconds
    ratio = engine_rate / naive_rate
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(
        f"migrate engine vs naive DUMP/RESTORE/DEL ({'quick' if quick else 'full'} run: "
        f"{n:,} small keys, {NODES - 1} -> {NODES} local redis-servers "
        f"({'AOF, appendfsync always' if aof else 'no persistence'}), {to_move:,} to move; "
        f"Python {sys.version.split()[0]}, redis-py {redis.__version__}, load average {load})"
    )
    rows = [
        [
            f"naive: {len(moves):,} keys, 3 round trips each (subset, rate extrapolated)",
            f"{naive_seconds:,.2f} s",
            f"{naive_rate:,.0f} keys/s",
            "",
        ],
        [
            f"engine: migrate(), batch {BATCH}: SCAN {result.scanned:,} keys, move "
            f"{result.moved_total:,}",
            f"{engine_seconds:,.2f} s",
            f"{engine_rate:,.0f} keys/s",
            f"{result.scanned / engine_seconds:,.0f} keys/s scanned",
        ],
        [
            f"verify(): SCAN {check.scanned:,} keys, {check.misplaced} misplaced, "
            f"{check.checked:,} moved keys checked, {check.lost_total} lost",
            f"{verify_seconds:,.2f} s",
            "",
            f"{check.scanned / verify_seconds:,.0f} keys/s scanned",
        ],
    ]
    print(tabulate(rows, headers=["measure", "time", "moved", "note"]))
    print()
    print(
        tabulate(
            [
                (
                    f"engine keys/s >= {TARGET:g}x naive keys/s",
                    times(ratio),
                    "PASS" if ratio >= TARGET else "MISS",
                )
            ],
            headers=["target", "measured", "status"],
        )
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--quick", action="store_true", help=f"{QUICK_KEYS:,} keys instead of {KEYS:,}"
    )
    parser.add_argument(
        "--aof",
        action="store_true",
        help="servers with appendonly yes, appendfsync always (durable destinations)",
    )
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, exit_on_signal)
    extra = ("--appendonly", "yes", "--appendfsync", "always") if args.aof else ()
    with redis_servers(NODES, extra) as servers:
        return measure(servers, args.quick, args.aof)


if __name__ == "__main__":
    sys.exit(main())
