"""ShardedExecutor when worker processes die: the running task fails, the others finish
elsewhere, the worker is replaced, and no future is ever left pending."""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import pathlib
import signal
from collections.abc import Iterator
from concurrent.futures.process import BrokenProcessPool

import dispatch_tasks as tasks
import pytest

from hashring import HashRingError
from hashring.dispatch import ShardedExecutor, WorkerDiedError
from tests.waiting import wait_until

WAIT = 30.0


@pytest.fixture(scope="module")
def pool() -> Iterator[ShardedExecutor]:
    """Two workers shared by the fault tests: each test kills one, the pool replaces it."""
    with ShardedExecutor(2) as executor:
        yield executor


def test_sigkill_mid_task_fails_that_task_and_reruns_the_queued_ones_elsewhere(
    pool: ShardedExecutor, tmp_path: pathlib.Path
) -> None:
    """SIGKILL during a task: its future raises WorkerDiedError; the key's queued tasks run,
    in order, in the replacement process; nothing stays pending."""
    key = "victim"
    owner = pool.placement.get_node(key)
    marker, release = tmp_path / "started", tmp_path / "release"
    restarts = {w.name: w.restarts for w in pool.stats().workers}
    running = pool.submit(tasks.hold, str(marker), str(release), key=key)
    queued = [pool.submit(tasks.where, i, key=key) for i in range(40)]
    others = [pool.submit(tasks.where, key=f"other-{i}") for i in range(40)]
    wait_until(marker.exists, "the task to start")
    victim = pool.worker_pids()[owner]
    os.kill(victim, signal.SIGKILL)
    with pytest.raises(WorkerDiedError) as died:
        running.result(timeout=WAIT)
    assert (died.value.worker, died.value.pid, died.value.exitcode) == (owner, victim, -9)
    assert isinstance(died.value, HashRingError)
    assert isinstance(died.value, BrokenProcessPool)
    _, pending = concurrent.futures.wait([*queued, *others], timeout=WAIT)
    assert not pending
    results = [f.result() for f in queued]
    replacement = pool.worker_pids()[owner]
    assert replacement != victim
    assert {pid for pid, *_ in results} == {replacement}
    assert [args for _, _, args, _ in results] == [(i,) for i in range(40)]
    ranks = [rank for _, rank, *_ in results]
    assert ranks == sorted(ranks)
    assert all(f.exception() is None for f in others)
    stats = {w.name: w for w in pool.stats().workers}
    assert stats[owner].restarts == restarts[owner] + 1


def test_a_task_that_exits_the_worker_fails_alone(pool: ShardedExecutor) -> None:
    """os._exit inside a task: that future gets WorkerDiedError with the exit code, the
    tasks behind it complete, and the pool keeps working."""
    key = "exit-key"
    before = [pool.submit(tasks.square, i, key=key) for i in range(5)]
    fatal = pool.submit(tasks.exit_now, 3, key=key)
    after = [pool.submit(tasks.square, i, key=key) for i in range(5)]
    with pytest.raises(WorkerDiedError) as died:
        fatal.result(timeout=WAIT)
    assert died.value.exitcode == 3
    assert [f.result(timeout=WAIT) for f in before + after] == [i * i for i in range(5)] * 2
    assert pool.submit(tasks.square, 7).result(timeout=WAIT) == 49


def test_a_worker_killed_while_idle_is_replaced(pool: ShardedExecutor) -> None:
    """A worker that dies with nothing to do is replaced; its keys' next tasks run there."""
    name = "worker-1"
    victim = pool.worker_pids()[name]
    os.kill(victim, signal.SIGKILL)
    wait_until(lambda: pool.worker_pids()[name] != victim, "the replacement")
    key = next(k for k in (f"i{i}" for i in range(1000)) if pool.placement.get_node(k) == name)
    assert pool.submit(tasks.where, key=key).result(timeout=WAIT)[0] == pool.worker_pids()[name]


def test_killing_every_worker_repeatedly_leaves_no_future_pending(
    pool: ShardedExecutor,
) -> None:
    """Kill workers over and over under a stream of tasks: every future ends, each with
    a result or WorkerDiedError, and results are right."""
    futures = []
    for round_ in range(4):
        futures += [pool.submit(tasks.busy, 0.001, key=f"r{round_}-{i}") for i in range(60)]
        futures += [pool.submit(tasks.busy, 0.001) for _ in range(20)]
        for pid in pool.worker_pids().values():
            with contextlib.suppress(ProcessLookupError):  # already gone
                os.kill(pid, signal.SIGKILL)
    _, pending = concurrent.futures.wait(futures, timeout=WAIT)
    assert not pending
    died = [f for f in futures if f.exception() is not None]
    assert all(isinstance(f.exception(), WorkerDiedError) for f in died)
    assert len(died) <= 4 * 2  # at most the task running in each killed worker
    assert all(isinstance(f.result(), int) for f in futures if f not in died)


def test_a_worker_dying_during_shutdown_leaves_no_future_pending(
    tmp_path: pathlib.Path,
) -> None:
    """shutdown(wait=True) returns with every future done even if a worker dies meanwhile."""
    executor = ShardedExecutor(2)
    marker, release = tmp_path / "started", tmp_path / "release"
    running = executor.submit(tasks.hold, str(marker), str(release), key="k")
    queued = [executor.submit(tasks.square, i, key="k") for i in range(20)]
    wait_until(marker.exists, "the task to start")
    victim = executor.worker_pids()[executor.placement.get_node("k")]
    executor.shutdown(wait=False)
    os.kill(victim, signal.SIGKILL)
    executor.shutdown(wait=True)
    assert isinstance(running.exception(timeout=0), WorkerDiedError)
    assert [f.result(timeout=0) for f in queued] == [i * i for i in range(20)]
