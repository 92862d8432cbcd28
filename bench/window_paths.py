"""What each path of a migration window costs a client, one process, on real local
redis-servers: the client CPU per operation of every way a key is read or written while keys
move, against a ``GET`` on the old topology, measured interleaved so that the machine's drift
cancels.

Run by hand (not part of the test run)::

    .venv/bin/python bench/window_paths.py              # about a minute
    .venv/bin/python bench/window_paths.py --rounds 10  # quicker, noisier

The script starts 4 ``redis-server`` processes on free loopback ports (``tests/redis_servers.py``:
never port 6379, no persistence) and loads 100,000 keys (as ``bench/resharding.py`` does) on
an old topology of 3 nodes; the window adds the fourth. The window's marker is set on ``n0``
only, as ``hashring migrate`` does when its pass reaches ``n0``: keys moving away from ``n0``
are in the pull regime, keys moving away from ``n1`` and ``n2`` in the gated one (not
reached yet). A second client writes a quarter of n0's moving keys first, so that they are
on their new owner without this client knowing.

Paths, each a sample of keys drawn from its own set, every round taking them in a new random
order (seeded), the median over the rounds of the client's thread CPU per operation:

* old topology: ``GET`` and ``SET`` through a ShardedRedis of the old topology;
* a key that stays, through the window's client;
* a read of a moving key whose old owner is not reached (old owner first, one round trip);
* a read of a moving key on a node being passed, found on the side asked first, and one
  found on the other side (pulled meanwhile: two round trips);
* a write of a moving key whose old owner is not reached (the gate: two round trips);
* a write of a moving key on a node being passed (a ``MIGRATE`` pull, then the write; each
  key once: a pulled key is then written directly).

Client CPU is what the window adds on a machine whose CPUs are busy; on clients with their
own CPUs, count round trips instead (the ``bench/resharding.py`` docstring). Absolute times
drift on shared machines: read the ratios.
"""

from __future__ import annotations

import argparse
import random
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from _measure import exit_on_signal, times
from _servers import redis_servers
from hashring.adapters.redis import ShardedRedis
from resharding import load_data, topology_text
from tabulate import tabulate

from hashring import load_topology

KEYS = 100_000
SEED = 20261129
PER_ROUND = 400
"""Operations per path per round (an eighth of that for pulls, which use each key once)."""
MARKER_LOOK = 0.06
"""Seconds to let a client's next read look for the markers again (``MARKER_LOOK_INTERVAL``)."""


class Case(NamedTuple):
    """One path: the operation timed on each key drawn from ``keys``, ``count`` operations per
    round, and what runs untimed ahead of each of its rounds."""

    operation: Callable[[str], Any]
    keys: list[str]
    count: int = PER_ROUND
    before: Callable[[], None] | None = None


def measure(cases: dict[str, Case], rounds: int, rng: random.Random) -> dict[str, list[float]]:
    """Thread CPU seconds per operation of each case, per round, the cases in a new random
    order each round."""
    found: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(rounds):
        order = list(cases)
        rng.shuffle(order)
        for name in order:
            case = cases[name]
            sample = [case.keys[rng.randrange(len(case.keys))] for _ in range(case.count)]
            if case.before is not None:
                case.before()
            start = time.thread_time()
            for key in sample:
                case.operation(key)
            found[name].append((time.thread_time() - start) / case.count)
    return found


def run(rounds: int) -> list[list[Any]]:
    rng = random.Random(SEED)
    with redis_servers(4) as servers, tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        urls = [s.url for s in servers]
        old_path, window_path = workdir / "old.toml", workdir / "window.toml"
        old_path.write_text(topology_text(urls[:3]), encoding="utf-8")
        window_path.write_text(topology_text(urls, previous="old.toml"), encoding="utf-8")
        load_data(servers, old_path, KEYS, 0)
        before_p, after_p = (
            load_topology(old_path).placement(),
            load_topology(window_path).placement(),
        )
        strings = [f"h:{i}" for i in range(KEYS) if i % 5 < 3]
        stay = [k for k in strings if before_p.get_node(k) == after_p.get_node(k)]
        moving = [k for k in strings if before_p.get_node(k) != after_p.get_node(k)]
        passed = [k for k in moving if before_p.get_node(k) == "n0"]
        gated = [k for k in moving if before_p.get_node(k) != "n0"]
        rng.shuffle(passed)
        quarter = len(passed) // 4
        pulled, on_old, fresh = (
            passed[:quarter],
            passed[quarter : 2 * quarter],
            passed[2 * quarter :],
        )
        old = ShardedRedis.from_config(old_path)
        window = ShardedRedis.from_config(window_path)
        other = ShardedRedis.from_config(window_path)
        try:
            marker = window._members.window.marker
            servers[0].client().set(marker, b"1")  # n0's pass has begun
            for key in pulled:
                other.set(key, "moved")  # on the new owner; this client does not know it
            window.get(on_old[0])
            time.sleep(MARKER_LOOK)
            window.get(on_old[1])  # the client has seen n0's marker
            state = window._members.window

            def old_first() -> None:  # reads of n0's keys ask n0 first, nothing remembered
                state._moved.clear()
                state._found["n0"] = [1 << 20, 0]

            fresh_keys = iter(fresh)  # a pull takes the next key: each is pulled once
            cases = {
                "old topology: GET": Case(old.get, stay),
                "old topology: SET": Case(lambda k: old.set(k, "s"), stay),
                "window, a key that stays: GET": Case(window.get, stay),
                "read, old owner not reached yet": Case(window.get, gated),
                "read, old owner being passed, key where asked first": Case(
                    window.get, on_old, before=old_first
                ),
                "read, old owner being passed, key on the other side": Case(
                    window.get, pulled, before=old_first
                ),
                "write, old owner not reached yet (gated)": Case(
                    lambda k: window.set(k, "g"), gated
                ),
                "write, old owner being passed (pull, write)": Case(
                    lambda _: window.set(next(fresh_keys), "p"), stay, count=PER_ROUND // 8
                ),
            }
            found = measure(cases, rounds, rng)
        finally:
            for client in (old, window, other):
                client.close()
    base = statistics.median(found["old topology: GET"])
    return [
        [name, f"{statistics.median(v) * 1e6:,.1f}", times(statistics.median(v) / base)]
        for name, v in found.items()
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=25, help="interleaved rounds (default 25)")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    signal.signal(signal.SIGTERM, exit_on_signal)
    print(f"window paths: client CPU per operation, median of {args.rounds} interleaved rounds")
    rows = run(args.rounds)
    print(tabulate(rows, headers=["path", "us per operation", "vs old topology GET"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
