"""Task dispatch benchmark: hashring.dispatch.ShardedExecutor vs ProcessPoolExecutor.

Run by hand (not part of the test run)::

    .venv/bin/python bench/dispatch.py            # full run, about a minute
    .venv/bin/python bench/dispatch.py --quick    # smoke run: 5x fewer tasks

Both executors have the same number of worker processes (``--workers``, default 2), the
same start method (forkserver) and are started and warmed up before anything is timed; the
rounds alternate between them and the best round of each is kept (the machine is shared).

What is measured:

* 1 ms tasks: throughput (tasks per second) of 2,000 tasks that each spin the CPU for 1 ms,
  submitted all at once and waited for; ShardedExecutor keyless (round-robin) and keyed
  (1,000 distinct keys). Target: ShardedExecutor >= 0.8x ProcessPoolExecutor.
* ~0 ms tasks: 20,000 calls of ``abs(-1)``: the dispatch overhead per task in microseconds
  (elapsed / tasks, so all the machinery: pickling, pipes, futures), keyless and keyed.
* affinity under bounded loads: 3,000 tasks of 0.5 ms whose keys follow a Zipf law
  (exponent 1.1 over 1,000 keys, seeded): the fraction of tasks that ran on the worker
  owning their key, and the imbalance (peak-to-mean of completed tasks per worker, from
  ``stats()``), without bounded loads and with epsilon 1.0, 0.25 and 0.1.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any

import numpy as np
from tabulate import tabulate

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _measure import interleaved

from hashring.dispatch import ShardedExecutor


def spin(seconds: float) -> int:
    """Busy the CPU for ``seconds``; return the pid (a task of known length)."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass
    return os.getpid()


def run_all(submit: Callable[[int], Any], count: int) -> None:
    futures = [submit(i) for i in range(count)]
    done, pending = wait(futures, timeout=600)
    assert not pending
    for future in done:
        future.result()


def throughput(
    pool: ProcessPoolExecutor, sharded: ShardedExecutor, fn: Any, arg: Any, count: int, rounds: int
) -> dict[str, float]:
    """Best seconds for ``count`` tasks through each executor (keyless and keyed)."""
    fns: dict[str, Callable[[], object]] = {
        "ProcessPoolExecutor": lambda: run_all(lambda i: pool.submit(fn, arg), count),
        "ShardedExecutor keyless": lambda: run_all(lambda i: sharded.submit(fn, arg), count),
        "ShardedExecutor keyed": lambda: run_all(
            lambda i: sharded.submit(fn, arg, key=f"key-{i % 1000}"), count
        ),
    }
    for fn_ in fns.values():  # warm-up
        fn_()
    return interleaved(fns, rounds)


def zipf_keys(count: int, distinct: int, exponent: float, seed: int) -> list[str]:
    ranks = np.arange(1, distinct + 1, dtype=np.float64)
    weights = ranks**-exponent
    rng = np.random.default_rng(seed)
    drawn = rng.choice(distinct, size=count, p=weights / weights.sum())
    return [f"item-{i}" for i in drawn]


def affinity(
    workers: int, keys: list[str], epsilon: float | None, context: Any
) -> tuple[float, float, int]:
    """(fraction of tasks on their key's owner, peak-to-mean of completed tasks, spills)."""
    with ShardedExecutor(workers, bounded_load=epsilon, mp_context=context) as sharded:
        pids = sharded.worker_pids()
        futures = [sharded.submit(spin, 0.0005, key=k) for k in keys]
        ran = [f.result(timeout=600) for f in futures]
        owners = sharded.placement.get_node_many(keys)
        home = sum(pid == pids[owner] for pid, owner in zip(ran, owners, strict=True))
        stats = sharded.stats()
    return home / len(keys), stats.load.peak_to_mean, stats.spilled


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="5x fewer tasks")
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()
    scale = 5 if options.quick else 1
    workers = options.workers
    context = multiprocessing.get_context("forkserver")
    summary: list[list[Any]] = []

    with (
        ProcessPoolExecutor(workers, mp_context=context) as pool,
        ShardedExecutor(workers, mp_context=context) as sharded,
    ):
        count = 2000 // scale
        best = throughput(pool, sharded, spin, 0.001, count, options.rounds)
        floor = count / best["ProcessPoolExecutor"]
        rows = []
        for name, seconds in best.items():
            rate = count / seconds
            rows.append([name, f"{rate:,.0f}", f"{rate / floor:.2f}x"])
        print(f"\n1 ms tasks: {count:,} tasks on {workers} workers (best of {options.rounds})")
        print(tabulate(rows, headers=["executor", "tasks/s", "vs ProcessPoolExecutor"]))
        for name in ("ShardedExecutor keyless", "ShardedExecutor keyed"):
            ratio = best["ProcessPoolExecutor"] / best[name]
            summary.append(
                [
                    f"1 ms throughput, {name[16:]}",
                    ">= 0.8x",
                    f"{ratio:.2f}x",
                    "met" if ratio >= 0.8 else "MISSED",
                ]
            )

        count = 20_000 // scale
        best = throughput(pool, sharded, abs, -1, count, options.rounds)
        rows = []
        for name, seconds in best.items():
            rows.append(
                [
                    name,
                    f"{seconds / count * 1e6:.1f}",
                    f"{count / seconds:,.0f}",
                    f"{best['ProcessPoolExecutor'] / seconds:.2f}x",
                ]
            )
        print(f"\n~0 ms tasks (abs(-1)): {count:,} tasks on {workers} workers")
        print(tabulate(rows, headers=["executor", "us per task", "tasks/s", "throughput ratio"]))
        for name in ("ShardedExecutor keyless", "ShardedExecutor keyed"):
            summary.append(
                [
                    f"~0 ms overhead, {name[16:]}",
                    "reported",
                    f"{best[name] / count * 1e6:.1f} us/task",
                    f"PPE {best['ProcessPoolExecutor'] / count * 1e6:.1f} us/task",
                ]
            )

    keys = zipf_keys(3000 // scale, 1000, 1.1, seed=42)
    rows = []
    for epsilon in (None, 1.0, 0.25, 0.1):
        home, imbalance, spilled = affinity(workers, keys, epsilon, context)
        label = "off" if epsilon is None else f"epsilon {epsilon}"
        rows.append([label, f"{home:.1%}", f"{imbalance:.2f}", spilled])
        if epsilon == 0.25:
            summary.append(
                [
                    "affinity, bounded_load=0.25, Zipf 1.1",
                    "reported",
                    f"{home:.1%}",
                    f"peak-to-mean {imbalance:.2f}",
                ]
            )
    print(
        f"\nkey affinity: {len(keys):,} tasks of 0.5 ms, Zipf(1.1) over 1,000 keys, "
        f"{workers} workers"
    )
    print(tabulate(rows, headers=["bounded_load", "ran on owner", "peak-to-mean", "spilled"]))

    print("\nsummary")
    print(tabulate(summary, headers=["measure", "target", "measured", "note"]))


if __name__ == "__main__":
    main()
