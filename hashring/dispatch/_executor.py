"""ShardedExecutor: a ``concurrent.futures.Executor`` that sends each task to a worker
process by its key.

Machinery (all in the parent unless said):

* one *slot* per worker name (``worker-0``, ``worker-1``, ...): a queue of tasks not yet
  sent (``pending``), the tasks sent and not answered (``sent``, in order), the current
  process, its task pipe and its result pipe;
* one feeder thread per slot process: it moves tasks from ``pending`` to the task pipe in
  batches, keeping at most ``_WINDOW`` tasks sent and unanswered, so tasks not sent can
  still be cancelled and re-routed;
* one collector thread: it waits on every result pipe and every process sentinel, completes
  futures, and replaces a worker that died.

Every worker answers its tasks in the order they were sent, so the task a dead worker was
running is always the oldest one it has not answered.

Why pipes and not ``multiprocessing.Queue``: a round trip of a tiny task measured about
18 us through a pipe in batches of 16 against 54 to 73 us through a queue item by item; and
a worker killed while writing to a shared result queue can leave its lock held, which
per-worker result pipes cannot.
"""

from __future__ import annotations

import atexit
import itertools
import multiprocessing
import pickle
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import BrokenExecutor, Executor, Future
from functools import partial
from multiprocessing.connection import Connection, wait
from multiprocessing.context import BaseContext
from typing import Any, TypeVar

from .._analysis import LoadSummary
from .._balancing.balancers import Balancer, PowerOfTwo, RandomChoice, balancer
from .._balancing.bounded import BoundedLoad
from .._errors import InvalidOptionError
from .._placement.algorithms import as_placement
from .._placement.contract import Placement
from .._placement.keys import Key, check_key
from ._errors import WorkerDiedError
from ._stats import ExecutorStats, WorkerStats
from ._worker import Failure, rebuild_exception, run_chunk, run_worker

__all__ = ["ShardedExecutor"]

T = TypeVar("T")

_WINDOW = 32
"""Tasks a worker may hold sent and unanswered; the feeder refills at half of it."""
_REFILL = _WINDOW // 2
_READ_BATCH = 256
"""Results read from one pipe before the collector takes the lock once for all of them."""
MAX_WORKERS = 1024
"""The largest worker count accepted (each worker is a process and three threads' work)."""

_LIVE: weakref.WeakSet[ShardedExecutor] = weakref.WeakSet()


@atexit.register
def _shutdown_at_exit() -> None:  # pragma: no cover - runs at interpreter exit
    """Finish every executor still open, so that no worker outlives the program (registered
    after multiprocessing's own exit hook, so it runs before that hook joins the workers)."""
    for executor in list(_LIVE):
        executor.shutdown(wait=True)


class _Task:
    __slots__ = ("counted", "future", "id", "key", "payload", "slot")

    def __init__(self, task_id: int, future: Future[Any], payload: bytes, key: Key | None):
        self.id = task_id
        self.future = future
        self.payload = payload
        self.key = key
        self.slot = ""
        self.counted = False


class _Slot:
    """One worker name and its current process."""

    def __init__(self, name: str, lock: threading.RLock) -> None:
        self.name = name
        self.cond = threading.Condition(lock)
        self.pending: deque[_Task] = deque()
        self.sent: deque[_Task] = deque()
        self.generation = 0
        self.process: Any = None
        self.results: Connection | None = None
        self.results_open = False
        self.stopping = False
        self.retired = False
        self.started = time.monotonic()
        self.completed = 0
        self.failed = 0
        self.busy = 0.0
        self.restarts = 0


def _default_context() -> BaseContext:
    """``forkserver`` where the platform has it, with the worker module preloaded in the
    fork server so that a new worker starts in milliseconds; ``spawn`` elsewhere. Never
    ``fork``: forking a process that runs threads (this executor runs some) is unsafe and
    deprecated since Python 3.12."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    from multiprocessing import forkserver

    server = getattr(forkserver, "_forkserver", None)
    preload = list(getattr(server, "_preload_modules", None) or ["__main__"])
    if run_worker.__module__ not in preload:
        context.set_forkserver_preload([*preload, run_worker.__module__])
    return context


def _check_count(n: Any, what: str) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_WORKERS:
        raise InvalidOptionError(f"{what} must be an int from 1 to {MAX_WORKERS}, got {n!r:.40}")
    return n


class ShardedExecutor(Executor):
    """A ``concurrent.futures.Executor`` over ``workers`` processes that runs each keyed task
    on the worker owning its key.

    >>> import operator
    >>> with ShardedExecutor(2) as pool:  # doctest: +SKIP
    ...     pool.submit(operator.add, 2, 3, key="user:42").result()
    5

    Routing:

    * ``submit(fn, *args, key=k)``: the task runs on the worker that owns ``k`` under the
      placement (workers are named ``worker-0``, ``worker-1``, ...), so per-key state (a
      cache, a connection) stays warm in one process. Tasks of one key run one after the
      other in submission order (tasks submitted by one thread, or ordered by the caller
      across threads).
    * a task without a key goes to the ``balancer``: ``"round-robin"`` (default),
      ``"random"``, ``"least-loaded"`` or ``"power-of-two"``, on the live queue lengths
      (queued plus running tasks of every kind on each worker).
    * ``bounded_load=epsilon``: a worker takes a keyed task only while its queued plus
      running tasks are below ``(1 + epsilon)`` times the average (``hashring.BoundedLoad``);
      a hot key spills to the next workers of its preference list (``get_nodes``). Tasks of
      a key then keep their order only while the key stays on one worker: two tasks of a
      key that spilled to different workers may run at the same time.

    Ordering across membership changes: after :meth:`resize` adds workers, a key that moves
    keeps going to its old worker until its tasks there are done, then moves. When
    :meth:`resize` removes a worker, its tasks not yet sent are re-routed in order, but a
    task of a moved key that the removed worker already holds may still be running when
    the key's next task starts on its new owner.

    Failures: an exception raised by a task is raised by ``future.result()`` with the
    worker's traceback as its ``__cause__`` (as ``ProcessPoolExecutor`` does); a function,
    arguments or result that cannot be pickled fail that task's future. A worker process
    that dies (``os._exit``, SIGKILL, out of memory) is replaced by a new process under the
    same name, so no key moves: the task it was running (the oldest it had not answered)
    fails with :class:`WorkerDiedError`, and its other tasks are sent to the replacement
    (the key's owner from then on) in their order. No future is ever left pending.

    Start method: ``forkserver`` by default where available (workers start in
    milliseconds: the worker module is preloaded in the fork server), else ``spawn``;
    ``mp_context=`` chooses another (``fork`` is refused: this executor runs threads). As
    with ``ProcessPoolExecutor``, tasks must be importable by the workers (module-level
    functions), and a script must create the executor under ``if __name__ == "__main__":``.

    Complexity: ``submit`` is one placement lookup (O(log n) or O(1)) plus pickling the task;
    the feeder sends tasks in batches, so the per-task overhead is tens of microseconds.

    Args:
        workers: the number of worker processes, 1 to ``MAX_WORKERS`` (1024).
        placement: an algorithm name (``"ring"``, ``"maglev"``, ``"rendezvous"``,
            ``"jump"``) or a ready ``Placement`` over exactly the worker names
            (``hashring.as_placement``); the executor takes it over.
        balancer: the keyless strategy, by name.
        bounded_load: ``epsilon`` for bounded-load placement of keyed tasks (None: off).
        mp_context: a ``multiprocessing`` context (default: see above).
        seed: seeds the random and power-of-two balancers.

    Raises:
        InvalidOptionError: a bad count, placement, balancer, epsilon, or a ``fork`` context.
    """

    def __init__(
        self,
        workers: int,
        *,
        placement: str | Placement = "ring",
        balancer: str = "round-robin",
        bounded_load: float | None = None,
        mp_context: BaseContext | None = None,
        seed: int | None = None,
    ) -> None:
        count = _check_count(workers, "workers")
        names = [f"worker-{i}" for i in range(count)]
        self._placement = as_placement(placement, names, owner=self)
        self._balancer = _balancer(balancer, dict(self._placement.nodes), seed)
        self._bounded = (
            None if bounded_load is None else BoundedLoad(self._placement, epsilon=bounded_load)
        )
        if mp_context is None:
            mp_context = _default_context()
        elif mp_context.get_start_method() == "fork":
            raise InvalidOptionError(
                "the fork start method is unsafe in a process that runs threads: "
                "use forkserver or spawn"
            )
        self._context = mp_context
        self._lock = threading.RLock()
        self._ids = itertools.count()
        self._slots: dict[str, _Slot] = {}
        self._draining: list[_Slot] = []
        self._homes: dict[Key, list[Any]] = {}
        self._closing = False
        self._feeders: list[threading.Thread] = []
        self._wake_reader, self._wake_writer = mp_context.Pipe(duplex=False)
        self._woken = False
        with self._lock:
            try:
                for name in names:
                    self._slots[name] = slot = _Slot(name, self._lock)
                    self._start(slot)
            except BaseException:
                for slot in self._slots.values():
                    if slot.process is not None:
                        slot.process.kill()
                        slot.process.join()
                raise
        self._collector = threading.Thread(
            target=self._collect, name="hashring-dispatch-collector", daemon=True
        )
        self._collector.start()
        _LIVE.add(self)

    # ------------------------------------------------------------------ submitting

    def submit(  # type: ignore[override]  # adds the keyword-only key
        self, fn: Callable[..., T], /, *args: Any, key: Key | None = None, **kwargs: Any
    ) -> Future[T]:
        """Run ``fn(*args, **kwargs)`` on the worker owning ``key`` (any worker if None).

        A keyword argument named ``key`` is taken as the affinity key, not passed to
        ``fn``: use :meth:`submit_keyed` to pass one through.

        Runtime complexity: O(placement lookup) plus pickling ``fn`` and its arguments.

        Raises:
            RuntimeError: the executor was shut down.
            InvalidKeyError, KeyEncodingError: ``key`` is not a str or bytes-like key.
        """
        return self.submit_keyed(key, fn, *args, **kwargs)

    def submit_keyed(
        self, key: Key | None, fn: Callable[..., T], /, *args: Any, **kwargs: Any
    ) -> Future[T]:
        """:meth:`submit` with the affinity key first, so that every keyword argument
        (``key=`` included) goes to ``fn``.

        Raises:
            RuntimeError: the executor was shut down.
            InvalidKeyError, KeyEncodingError: ``key`` is not a str or bytes-like key.
        """
        checked = None if key is None else check_key(key)
        future: Future[T] = Future()
        try:
            payload = pickle.dumps((fn, args, kwargs), pickle.HIGHEST_PROTOCOL)
        except Exception as exc:
            exc.add_note(
                "hashring.dispatch: a task's function and arguments must be picklable "
                "(a module-level function, no locks or open files) to reach a worker process"
            )
            if self._closing:
                raise RuntimeError("cannot schedule new futures after shutdown") from None
            future.set_exception(exc)
            return future
        with self._lock:
            if self._closing:
                raise RuntimeError("cannot schedule new futures after shutdown")
            task = _Task(next(self._ids), future, payload, checked)
            self._enqueue(task, self._route(checked))
        return future

    def map(
        self,
        fn: Callable[..., T],
        *iterables: Iterable[Any],
        timeout: float | None = None,
        chunksize: int = 1,
    ) -> Iterator[T]:
        """``map(fn, *iterables)`` over the workers, results in order (keyless tasks).

        As ``ProcessPoolExecutor.map``: the iterables are read at once; ``timeout`` (seconds
        from this call) bounds the wait for each result (``TimeoutError``); ``chunksize``
        sends that many calls as one task, which cuts the per-task overhead of small calls.

        Raises:
            ValueError: ``chunksize`` below 1.
            RuntimeError: the executor was shut down.
        """
        if isinstance(chunksize, bool) or not isinstance(chunksize, int) or chunksize < 1:
            raise ValueError("chunksize must be >= 1")
        if chunksize == 1:
            return super().map(fn, *iterables, timeout=timeout)
        chunks = _chunks(zip(*iterables, strict=False), chunksize)
        results = super().map(partial(run_chunk, fn), chunks, timeout=timeout)
        return itertools.chain.from_iterable(results)

    # ---------------------------------------------------------------- membership

    def resize(self, workers: int) -> None:
        """Grow or shrink to ``workers`` processes, moving only the keys that must move.

        Growing adds ``worker-<i>`` for the lowest free indexes; shrinking removes the
        highest-numbered workers. The placement moves only the keys that the change moves
        (about ``|change| / workers`` of them for ring, maglev, rendezvous and jump). A
        removed worker finishes the tasks it already holds and exits; its tasks not yet sent
        are re-routed in order. Returns once new workers are started (not waiting for
        removed ones to finish).

        Raises:
            InvalidOptionError: ``workers`` is not an int from 1 to ``MAX_WORKERS``.
            RuntimeError: the executor was shut down.
        """
        count = _check_count(workers, "workers")
        with self._lock:
            if self._closing:
                raise RuntimeError("cannot resize an executor after shutdown")
            names = sorted(self._slots, key=_index)
            for name in names[count:][::-1]:
                self._retire(self._slots[name])
            index = 0
            while len(self._slots) < count:
                name = f"worker-{index}"
                index += 1
                if name in self._slots:
                    continue
                self._placement.add_node(name)
                self._balancer.add_node(name)
                self._slots[name] = slot = _Slot(name, self._lock)
                self._start(slot)
            self._wake()

    @property
    def placement(self) -> Placement:
        """The placement of keyed tasks over the current workers (read it, do not change
        it: :meth:`resize` does)."""
        return self._placement

    def worker_pids(self) -> dict[str, int]:
        """The process id of each current worker, by name."""
        with self._lock:
            return {name: slot.process.pid for name, slot in self._slots.items()}

    def stats(self) -> ExecutorStats:
        """Per worker counts (queued, running, completed, failed, busy seconds,
        utilisation) and the study's figures over completed work.

        ``stats().load`` is ``hashring.LoadSummary.of(completed per worker)``: its ``mean``
        is the study's load factor (sum of loads / node count), ``max`` the maximum load,
        ``peak_to_mean`` the imbalance. Covers the current workers. O(workers).
        """
        now = time.monotonic()
        with self._lock:
            workers = tuple(
                WorkerStats(
                    name=slot.name,
                    pid=None if slot.process is None else slot.process.pid,
                    queued=len(slot.pending) + max(0, len(slot.sent) - 1),
                    running=1 if slot.sent else 0,
                    completed=slot.completed,
                    failed=slot.failed,
                    busy_seconds=slot.busy,
                    wall_seconds=now - slot.started,
                    restarts=slot.restarts,
                )
                for slot in sorted(self._slots.values(), key=lambda s: _index(s.name))
            )
            spilled = 0 if self._bounded is None else self._bounded.spilled
        return ExecutorStats(
            workers=workers,
            load=LoadSummary.of([w.completed for w in workers]),
            busy=LoadSummary.of([w.busy_seconds for w in workers]),
            spilled=spilled,
        )

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Accept no more tasks; run the ones queued (or cancel them) and stop the workers.

        Args:
            wait: return only once every task is done and every worker has exited.
            cancel_futures: cancel the tasks not yet sent to a worker.
        """
        cancelled: list[_Task] = []
        with self._lock:
            self._closing = True
            for slot in [*self._slots.values(), *self._draining]:
                if cancel_futures:
                    cancelled.extend(slot.pending)
                    for task in slot.pending:
                        self._count(task, -1)
                    slot.pending.clear()
                slot.stopping = True
                slot.cond.notify_all()
            self._wake()
        for task in cancelled:
            task.future.cancel()
        if wait:
            self._collector.join()
            for feeder in list(self._feeders):
                feeder.join()
        _LIVE.discard(self)

    # ------------------------------------------------------------ routing (lock held)

    def _route(self, key: Key | None) -> _Slot:
        if key is None:
            name = self._balancer.pick()
        elif self._bounded is not None:
            name = self._bounded.pick(key)
        else:
            home = self._homes.get(key)
            if home is not None and home[0] in self._slots:
                name = home[0]
            else:
                name = self._placement.get_node(key)
        return self._slots[name]

    def _enqueue(self, task: _Task, slot: _Slot) -> None:
        task.slot = slot.name
        slot.pending.append(task)
        self._count(task, +1)
        if len(slot.sent) <= _REFILL:
            slot.cond.notify()

    def _count(self, task: _Task, delta: int) -> None:
        """Add (+1) or remove (-1) the task from the live loads and its key's home."""
        if delta > 0:
            task.counted = True
        elif not task.counted:
            return
        else:
            task.counted = False
        self._balancer.add_in_flight(task.slot, delta)
        if self._bounded is not None:  # caps count every task, keyed or not
            self._bounded.add_in_flight(task.slot, delta)
            return
        key = task.key
        if key is None:
            return
        home = self._homes.get(key)
        if delta > 0:
            if home is not None and home[0] == task.slot:
                home[1] += 1
            else:
                self._homes[key] = [task.slot, 1]
        elif home is not None and home[0] == task.slot:
            home[1] -= 1
            if not home[1]:
                del self._homes[key]

    def _retire(self, slot: _Slot) -> None:
        """Take ``slot`` out of the placement; re-route its unsent tasks; let it drain."""
        del self._slots[slot.name]
        self._placement.remove_node(slot.name)
        self._balancer.remove_node(slot.name)
        slot.retired = slot.stopping = True
        self._draining.append(slot)
        for task in slot.sent:
            self._count(task, -1)
        moved = list(slot.pending)
        slot.pending.clear()
        for task in moved:
            self._count(task, -1)
            self._enqueue(task, self._route(task.key))
        slot.cond.notify_all()

    # ------------------------------------------------------------ worker processes

    def _start(self, slot: _Slot) -> None:
        """Start a process for ``slot`` and its feeder thread. Called with the lock held."""
        context = self._context
        task_reader, task_writer = context.Pipe(duplex=False)
        result_reader, result_writer = context.Pipe(duplex=False)
        process = context.Process(  # type: ignore[attr-defined]
            target=run_worker,
            args=(task_reader, result_writer),
            name=f"hashring-dispatch-{slot.name}",
        )
        try:
            process.start()
        finally:
            task_reader.close()
            result_writer.close()
        slot.process = process
        slot.results = result_reader
        slot.results_open = True
        feeder = threading.Thread(
            target=self._feed,
            args=(slot, slot.generation, task_writer),
            name=f"hashring-dispatch-feeder-{slot.name}",
            daemon=True,
        )
        self._feeders = [t for t in self._feeders if t.is_alive()]
        self._feeders.append(feeder)
        feeder.start()

    def _feed(self, slot: _Slot, generation: int, conn: Connection) -> None:
        """Feeder thread: send ``slot``'s pending tasks to its process, a window at a time."""
        cond = slot.cond
        try:
            while True:
                with cond:
                    while slot.generation == generation and not (
                        (slot.pending and len(slot.sent) <= _REFILL)
                        or (slot.stopping and not slot.pending)
                    ):
                        cond.wait()
                    if slot.generation != generation:
                        return
                    batch: list[tuple[int, bytes]] | None = None
                    if slot.pending:
                        batch = []
                        room = _WINDOW - len(slot.sent)
                        while slot.pending and len(batch) < room:
                            task = slot.pending.popleft()
                            future = task.future  # running already: sent before
                            if not (future.running() or future.set_running_or_notify_cancel()):
                                self._count(task, -1)  # cancelled while queued
                                continue
                            slot.sent.append(task)
                            batch.append((task.id, task.payload))
                        if not batch:
                            continue
                conn.send_bytes(pickle.dumps(batch, pickle.HIGHEST_PROTOCOL))
                if batch is None:
                    return
        except OSError:  # the worker died: the collector re-queues what it held
            return
        finally:
            conn.close()

    def _wake(self) -> None:
        """Make the collector look again at the workers. Called with the lock held."""
        if not self._woken:
            self._woken = True
            self._wake_writer.send_bytes(b"")

    def _collect(self) -> None:
        """Collector thread: complete futures from results, replace workers that die.

        Should it ever fail, every task still held fails with ``BrokenExecutor`` and the
        workers are stopped, rather than leaving futures pending forever.
        """
        try:
            self._collect_until_closed()
        except BaseException as exc:
            self._break(exc)
            raise

    def _break(self, cause: BaseException) -> None:
        with self._lock:
            self._closing = True
            slots = [*self._slots.values(), *self._draining]
            self._slots.clear()
            self._draining.clear()
            held = [task for slot in slots for task in (*slot.sent, *slot.pending)]
            for slot in slots:
                slot.sent.clear()
                slot.pending.clear()
                slot.generation += 1
                slot.cond.notify_all()
                slot.process.kill()
        for task in held:
            error = BrokenExecutor(f"the executor's collector thread failed: {cause!r}")
            if task.future.running() or task.future.set_running_or_notify_cancel():
                task.future.set_exception(error)

    def _collect_until_closed(self) -> None:
        while True:
            with self._lock:
                slots = [*self._slots.values(), *self._draining]
                if self._closing and not slots:
                    break
                watched: dict[Any, tuple[_Slot, int, bool]] = {}
                for slot in slots:
                    if slot.results_open:
                        watched[slot.results] = (slot, slot.generation, True)
                    watched[slot.process.sentinel] = (slot, slot.generation, False)
            ready = wait([self._wake_reader, *watched])
            # results before deaths: a dead worker's last answers are read first
            ready.sort(key=lambda obj: not isinstance(obj, Connection))
            for obj in ready:
                if obj is self._wake_reader:
                    with self._lock:
                        self._wake_reader.recv_bytes()
                        self._woken = False
                    continue
                slot, generation, is_results = watched[obj]
                if slot.generation != generation:
                    continue
                if is_results:
                    self._read_results(slot, drain=False)
                else:
                    self._reap(slot)
        self._wake_reader.close()
        self._wake_writer.close()

    def _read_results(self, slot: _Slot, *, drain: bool) -> None:
        """Complete the tasks ``slot`` answered; with ``drain``, read until end of pipe."""
        conn = slot.results
        assert conn is not None
        while slot.results_open:
            messages: list[bytes] = []
            try:
                while len(messages) < _READ_BATCH and (drain or not messages or conn.poll()):
                    messages.append(conn.recv_bytes())
            except (EOFError, OSError):
                slot.results_open = False
                conn.close()
            done: list[tuple[Future[Any], bool, Any]] = []
            with self._lock:
                for message in messages:
                    task = slot.sent.popleft()
                    try:
                        _, ok, value, busy = pickle.loads(message)
                    except Exception as exc:
                        exc.add_note("hashring.dispatch: the task's result could not be unpickled")
                        ok, value, busy = False, exc, 0.0
                    else:
                        if not ok:
                            value = _rebuilt(value)
                    slot.completed += 1
                    slot.failed += not ok
                    slot.busy += busy
                    self._count(task, -1)
                    done.append((task.future, ok, value))
                if len(slot.sent) <= _REFILL:
                    slot.cond.notify()
            for future, ok, value in done:
                if ok:
                    future.set_result(value)
                else:
                    future.set_exception(value)
            if not drain:
                return

    def _reap(self, slot: _Slot) -> None:
        """``slot``'s process ended: finish a stopped worker, or replace a dead one."""
        if slot.results_open:
            self._read_results(slot, drain=True)
        process = slot.process
        process.join()
        failed: list[tuple[Future[Any], BaseException]] = []
        with self._lock:
            slot.generation += 1  # the old feeder exits
            slot.cond.notify_all()
            if slot.sent:
                slot.restarts += 1
                dead = slot.sent.popleft()
                self._count(dead, -1)
                failed.append((dead.future, _died(slot, process)))
                slot.pending.extendleft(reversed(slot.sent))
                slot.sent.clear()
            elif not slot.stopping or slot.pending:
                slot.restarts += 1  # died idle (or before its stop): replace it all the same
            if slot.pending and slot.retired:
                moved = list(slot.pending)
                slot.pending.clear()
                for task in moved:
                    self._count(task, -1)
                    if self._slots:
                        self._enqueue(task, self._route(task.key))
                    else:
                        failed.append((task.future, _died(slot, process)))
            if slot.pending or not slot.stopping:
                try:
                    self._start(slot)
                except Exception as exc:  # no replacement: nothing may stay pending
                    for task in slot.pending:
                        self._count(task, -1)
                        error = _died(slot, process)
                        error.add_note(f"its replacement could not start: {exc!r}")
                        failed.append((task.future, error))
                    slot.pending.clear()
                    self._forget(slot)
            else:
                self._forget(slot)
        for future, reason in failed:
            if future.running() or future.set_running_or_notify_cancel():
                future.set_exception(reason)

    def _forget(self, slot: _Slot) -> None:
        """Drop a slot whose process has ended for good. Called with the lock held."""
        if slot.retired:
            self._draining.remove(slot)
            return
        del self._slots[slot.name]
        if not self._closing:  # its replacement could not start: the name leaves
            self._placement.remove_node(slot.name)
            self._balancer.remove_node(slot.name)
            self._closing = not self._slots

    def __repr__(self) -> str:
        return (
            f"ShardedExecutor(workers={len(self._slots)}, placement={self._placement!r}, "
            f"balancer={type(self._balancer).__name__})"
        )


def _balancer(strategy: str, weights: dict[str, float], seed: int | None) -> Balancer:
    chosen = balancer(strategy, weights)
    if seed is not None and isinstance(chosen, (RandomChoice, PowerOfTwo)):
        chosen = type(chosen)(weights, seed=seed)
    return chosen


def _rebuilt(failure: Failure) -> BaseException:
    return rebuild_exception(failure)


def _died(slot: _Slot, process: Any) -> WorkerDiedError:
    return WorkerDiedError(
        f"worker {slot.name} (pid {process.pid}) died with exit code {process.exitcode} "
        "before this task finished",
        worker=slot.name,
        pid=process.pid,
        exitcode=process.exitcode,
    )


def _index(name: str) -> int:
    return int(name.rsplit("-", 1)[1])


def _chunks(calls: Iterator[tuple[Any, ...]], size: int) -> Iterator[list[tuple[Any, ...]]]:
    while chunk := list(itertools.islice(calls, size)):
        yield chunk
