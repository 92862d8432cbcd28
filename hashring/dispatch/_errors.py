"""The error a task gets when the worker process running it dies."""

from __future__ import annotations

from concurrent.futures.process import BrokenProcessPool

from .._errors import HashRingError

__all__ = ["WorkerDiedError"]


class WorkerDiedError(HashRingError, BrokenProcessPool):
    """The worker process running this task died (``os._exit``, a signal, out of memory)
    before the task finished.

    Only the task that was running fails: the worker is replaced and the executor stays
    usable, unlike ``ProcessPoolExecutor`` where ``BrokenProcessPool`` breaks the whole
    pool. Also a ``BrokenProcessPool`` (a ``RuntimeError``), so code written against
    ``ProcessPoolExecutor`` catches it as before.

    Attributes:
        worker: the worker's name (``"worker-3"``).
        pid: the process id of the worker that died.
        exitcode: its exit code (``-9`` for SIGKILL), as ``multiprocessing`` reports it.
    """

    def __init__(self, message: str, *, worker: str, pid: int | None, exitcode: int | None):
        super().__init__(message)
        self.worker = worker
        self.pid = pid
        self.exitcode = exitcode
