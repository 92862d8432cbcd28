"""Dispatching tasks to worker processes by key: :class:`ShardedExecutor`.

A ``concurrent.futures.Executor`` whose keyed tasks run on the worker process that owns
their key under a placement (ring, maglev, rendezvous, jump), in submission order per key;
keyless tasks go to a balancer. Standard library ``multiprocessing`` only: no network.
"""

from __future__ import annotations

from ._errors import WorkerDiedError
from ._executor import MAX_WORKERS, ShardedExecutor
from ._stats import ExecutorStats, WorkerStats
from ._worker import RemoteTraceback

__all__ = [
    "MAX_WORKERS",
    "ExecutorStats",
    "RemoteTraceback",
    "ShardedExecutor",
    "WorkerDiedError",
    "WorkerStats",
]
