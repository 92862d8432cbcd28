"""What :meth:`ShardedExecutor.stats` reports: per worker counts and the study's figures."""

from __future__ import annotations

from dataclasses import dataclass

from .._analysis import LoadSummary

__all__ = ["ExecutorStats", "WorkerStats"]


@dataclass(frozen=True)
class WorkerStats:
    """One worker at the moment :meth:`~ShardedExecutor.stats` was called."""

    name: str
    pid: int | None
    """The process id of its current process (None while none runs)."""
    queued: int
    """Tasks assigned to it that have not started."""
    running: int
    """1 while it runs a task, else 0."""
    completed: int
    """Tasks it finished, with a result or with an exception the task raised."""
    failed: int
    """Of ``completed``, those whose task raised."""
    busy_seconds: float
    """Time spent inside tasks (measured in the worker, ``time.perf_counter``)."""
    wall_seconds: float
    """Time since the worker was added to the executor."""
    restarts: int
    """How many times its process died and was replaced."""

    @property
    def utilisation(self) -> float:
        """``busy_seconds / wall_seconds``: the fraction of its life spent running tasks."""
        return self.busy_seconds / self.wall_seconds if self.wall_seconds > 0 else 0.0


@dataclass(frozen=True)
class ExecutorStats:
    """Per worker counts and the study's figures over completed work.

    ``load`` summarises the completed task counts per worker (``hashring.LoadSummary``):
    ``load.mean`` is the study's *load factor* (the sum of the loads over the node count is
    exactly the mean), ``load.max`` the maximum load, and ``load.peak_to_mean`` the
    imbalance (1.0 is perfect). ``busy`` is the same summary over busy seconds, which
    weighs tasks by how long they ran.
    """

    workers: tuple[WorkerStats, ...]
    load: LoadSummary
    """Over completed task counts per worker."""
    busy: LoadSummary
    """Over busy seconds per worker."""
    spilled: int
    """Keyed tasks sent past their owner by ``bounded_load`` (0 without it)."""

    @property
    def utilisation(self) -> float:
        """Mean utilisation of the workers (busy over wall time, averaged)."""
        return sum(w.utilisation for w in self.workers) / len(self.workers)
