"""The worker process of :class:`~hashring.dispatch.ShardedExecutor` and its wire format.

Each worker reads batches of tasks from its own task pipe and writes one result message per
task to its own result pipe, in the order the tasks came, so the parent always knows which
task a worker was running when it died: the oldest one it sent that has no result yet.

Wire format (every message pickled):

* parent -> worker: ``[(task_id, payload), ...]`` where ``payload`` is the pickled
  ``(fn, args, kwargs)``; ``None`` asks the worker to exit once it is done with its batch.
* worker -> parent: ``(task_id, ok, value, busy_seconds)``; ``value`` is the result when
  ``ok``, else ``(exception_or_None, message, traceback_text)``.

Only the standard library is used here (the module is preloaded in the fork server).
"""

from __future__ import annotations

import pickle
import time
import traceback
from multiprocessing.connection import Connection
from typing import Any

__all__ = ["Failure", "RemoteTraceback", "rebuild_exception", "run_chunk", "run_worker"]

Failure = tuple[BaseException | None, str, str]
"""How a task's exception travels: the exception (None if it cannot be pickled), its
``repr``, and the worker's formatted traceback."""


class RemoteTraceback(Exception):
    """The worker's traceback, set as ``__cause__`` of an exception a task raised (as
    ``ProcessPoolExecutor`` does), so that the traceback printed in the parent shows where
    in the worker the task failed."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text

    def __str__(self) -> str:
        return self.text


def _failure(exc: BaseException) -> Failure:
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:  # an exception that cannot travel: its repr and traceback still do
        return None, repr(exc), text
    return exc, repr(exc), text


def rebuild_exception(failure: Failure) -> BaseException:
    """The exception a failed task's future raises in the parent, its ``__cause__`` the
    worker's traceback. An exception that could not be pickled arrives as a
    ``RuntimeError`` naming it."""
    exc, described, text = failure
    if exc is None:
        exc = RuntimeError(f"the task raised {described}, which cannot be pickled")
    exc.__cause__ = RemoteTraceback(f'\n"""\n{text}"""')
    return exc


def run_worker(tasks: Connection, results: Connection) -> None:
    """The worker's main loop: run every task of every batch in order, answer each one.

    Returns when the parent sends ``None`` or closes the task pipe (the parent is gone).
    """
    clock = time.perf_counter
    dumps = pickle.dumps
    send = results.send_bytes
    while True:
        try:
            batch: list[tuple[int, bytes]] | None = pickle.loads(tasks.recv_bytes())
        except (EOFError, OSError):
            return
        if batch is None:
            return
        for task_id, payload in batch:
            started = clock()
            message: bytes
            try:
                fn, args, kwargs = pickle.loads(payload)
                value: Any = fn(*args, **kwargs)
                busy = clock() - started
                try:
                    message = dumps((task_id, True, value, busy))
                except Exception as exc:  # the result cannot travel back
                    exc.add_note("hashring.dispatch: the task's result could not be pickled")
                    message = dumps((task_id, False, _failure(exc), busy))
            except BaseException as exc:  # the task's own exception, SystemExit included
                message = dumps((task_id, False, _failure(exc), clock() - started))
                del exc
            try:
                send(message)
            except OSError:  # the parent is gone
                return


def run_chunk(fn: Any, chunk: list[tuple[Any, ...]]) -> list[Any]:
    """Run ``fn`` over one chunk of ``map`` calls (``chunksize`` above 1), in order."""
    return [fn(*args) for args in chunk]
