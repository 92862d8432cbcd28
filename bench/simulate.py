"""How long ``hashring simulate`` takes: 1,000,000 requests through every strategy.

Run by hand (not part of the test run)::

    .venv/bin/python bench/simulate.py              # 1,000,000 requests, the default nodes
    .venv/bin/python bench/simulate.py --quick      # 100,000 requests

Measured in one run on the same workload (``hashring simulate``'s defaults: six nodes of
speeds 4, 4, 2, 2, 1, 1 at load 0.7, 10,000 keys of Zipf 0.8 popularity, exponential work),
best of ``--repeats``:

* per strategy, the whole ``simulate()`` call (dispatch, FIFO service, figures), and its
  ratio to the floor;
* floor: ``serve()`` alone on a ready assignment (the vectorised FIFO service every strategy
  pays) and the workload's generation;
* peer, for the load-aware strategies: the library's own objects driven request by request
  (``LeastLoaded.acquire()`` / ``BoundedLoad.acquire(key)`` entered at arrival and exited
  at departure, as tests/test_simulate.py replays them) on the first 100,000 requests,
  scaled: the cost of simulating with the real objects instead of the dedicated pass.

Wall and CPU seconds are both printed: on a shared machine the CPU time (``process_time``) is
what the work costs and the wall time what it took there. Targets: every strategy simulates
1,000,000 requests in under 10 s of CPU, all of them together in under 30 s.
"""

from __future__ import annotations

import argparse
import heapq
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
from _measure import best_result, timed
from tabulate import tabulate

from hashring import BoundedLoad, LeastLoaded, placement
from hashring._simulation import (
    STRATEGIES,
    Workload,
    poisson_workload,
    serve,
    simulate,
    strategy_nodes,
)
from hashring.cli.simulate import DEFAULT_NODES, parse_speeds

PEER_REQUESTS = 100_000


def wall_and_cpu(fn: Any, repeats: int) -> tuple[float, float]:
    """Best wall seconds and best CPU seconds (this process) of ``repeats`` calls of ``fn``:
    on a shared machine CPU time is what the work costs, wall time what it took here."""
    walls, cpus = [], []
    for _ in range(repeats):
        cpu_start = time.process_time()
        wall, _ = timed(fn)
        cpus.append(time.process_time() - cpu_start)
        walls.append(wall)
    return min(walls), min(cpus)


def library_replay(workload: Workload, speeds: dict[str, float], choose: Any) -> None:
    """Drive a library balancer request by request (acquire at arrival, release at
    departure), as a simulation built on the real objects would."""
    free = dict.fromkeys(speeds, 0.0)
    leaving: list[tuple[float, int, Any]] = []
    for i, t in enumerate(workload.times.tolist()):
        while leaving and leaving[0][0] <= t:
            heapq.heappop(leaving)[2].__exit__(None, None, None)
        held = choose(i)
        node = held.__enter__()
        departure = max(free[node], t) + float(workload.work[i]) / speeds[node]
        free[node] = departure
        heapq.heappush(leaving, (departure, i, held))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=1_000_000)
    parser.add_argument("--quick", action="store_true", help="100,000 requests, one repeat")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    requests = 100_000 if args.quick else args.requests
    repeats = 1 if args.quick else args.repeats
    speeds = parse_speeds(DEFAULT_NODES)
    rate = 0.7 * sum(speeds.values())

    generate, workload = best_result(
        lambda: poisson_workload(requests=requests, rate=rate, keys=10_000, zipf=0.8, seed=1),
        repeats,
    )
    rows = []
    total = cpu_total = 0.0
    speed_array = np.array(list(speeds.values()))
    nodes, _ = strategy_nodes(workload, speeds, "ring")
    floor, floor_cpu = wall_and_cpu(
        lambda: serve(workload.times, workload.work, nodes, speed_array), repeats
    )
    for strategy in STRATEGIES:
        whole, cpu = wall_and_cpu(lambda s=strategy: simulate(workload, speeds, s, seed=1), repeats)
        total += whole
        cpu_total += cpu
        rows.append(
            [
                strategy,
                f"{whole:.2f}",
                f"{cpu:.2f}",
                f"{cpu / requests * 1e6:.2f}",
                f"{cpu / floor_cpu:.1f}x",
                "yes" if cpu < 10 else "NO",
            ]
        )
    print(
        f"{requests:,} requests over {len(speeds)} nodes ({DEFAULT_NODES}), load 0.7, "
        f"best of {repeats}; workload generated in {generate:.2f} s; FIFO service floor "
        f"(serve() on a ready assignment) {floor:.2f} s wall, {floor_cpu:.2f} s CPU; load "
        f"average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    )
    print(
        tabulate(
            rows,
            headers=["strategy", "wall s", "CPU s", "CPU us/request", "CPU / floor", "<10 s CPU"],
            stralign="right",
            colalign=("left",),
            disable_numparse=True,
        )
    )
    print(
        f"all strategies: {total:.1f} s wall, {cpu_total:.1f} s CPU "
        f"(target < 30 s CPU: {'met' if cpu_total < 30 else 'MISSED'})"
    )

    peer = Workload.of(
        workload.times[:PEER_REQUESTS],
        workload.keys[:PEER_REQUESTS],
        workload.work[:PEER_REQUESTS],
        workload.key_names,
        start=0.0,
    )
    count = peer.requests
    peers = []
    for strategy, choose_factory in (
        ("least-loaded", lambda: (lambda b: lambda i: b.acquire())(LeastLoaded(speeds))),
        (
            "bounded-load",
            lambda: (lambda b: lambda i: b.acquire(peer.key_names[peer.keys[i]]))(
                BoundedLoad(placement("ring", speeds))
            ),
        ),
    ):
        ours, _ = timed(lambda s=strategy: strategy_nodes(peer, speeds, s))
        theirs, _ = timed(lambda f=choose_factory: library_replay(peer, speeds, f()))
        peers.append(
            [
                strategy,
                f"{ours / count * 1e6:.2f}",
                f"{theirs / count * 1e6:.2f}",
                f"{theirs / ours:.1f}x",
            ]
        )
    print()
    print(f"dispatch per request, {count:,} requests: this pass vs the library object replayed")
    print(
        tabulate(
            peers,
            headers=["strategy", "simulation us", "library replay us", "replay / simulation"],
            stralign="right",
            colalign=("left",),
            disable_numparse=True,
        )
    )


if __name__ == "__main__":
    main()
