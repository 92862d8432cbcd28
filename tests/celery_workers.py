"""Start and stop real Celery workers (``tests/celery_app.py``), one per queue.

Guarantees:

* every worker consumes exactly one queue (``-Q queue -n queue@%h``, the command lines
  :meth:`QueueRouter.worker_commands` gives), with the ``solo`` pool, so a task's result
  carries the pid of the very process that ran it;
* a worker's environment names only the broker and backend given (a redis-server the
  fixtures started): every ``CELERY_*`` variable and every variable mentioning a broker,
  Redis or AMQP is dropped, so nothing can point a worker at the machine's own Redis;
* :meth:`CeleryWorkers.wait_ready` returns once every worker answers ``control.ping``, and
  fails (with the log tails) on a bounded timeout or as soon as a worker exits;
* :meth:`CeleryWorkers.stop` stops every worker (SIGTERM, then SIGKILL after a timeout),
  and is safe to call twice.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from celery import Celery
from hashring.adapters.celery import QueueRouter

TESTS = Path(__file__).resolve().parent
WORKER_OPTIONS = (
    "--pool=solo",
    "--without-gossip",
    "--without-mingle",
    "--without-heartbeat",
    "--loglevel=INFO",
)
READY_TIMEOUT = 90.0  # seconds until every worker must answer a ping (the machine is shared)
STOP_TIMEOUT = 20.0  # seconds for a warm shutdown before SIGKILL
FORBIDDEN_PORT = ":6379"
_DROPPED_MARKERS = ("BROKER", "REDIS", "AMQP", "RABBIT")


class CeleryWorkerError(RuntimeError):
    """A worker did not start, or exited while it should be running."""


def worker_environment(broker: str, backend: str) -> dict[str, str]:
    """This process's environment without anything naming a broker or Redis, plus the
    test app's broker and backend."""
    for url in (broker, backend):
        if FORBIDDEN_PORT in url:
            raise ValueError(f"refusing to start workers on {url}: port 6379 is not ours")
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.upper().startswith("CELERY")
        and not any(marker in name.upper() for marker in _DROPPED_MARKERS)
        and FORBIDDEN_PORT not in value
    }
    env["HASHRING_CELERY_BROKER"] = broker
    env["HASHRING_CELERY_BACKEND"] = backend
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), *filter(None, [os.environ.get("PYTHONPATH")])])
    return env


@dataclass
class CeleryWorkers:
    """Worker processes by queue name, and their log files."""

    app: Celery
    directory: Path
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    hostnames: dict[str, str] = field(default_factory=dict)

    @classmethod
    def start(
        cls, app: Celery, queues: Iterable[str], *, broker: str, backend: str, directory: Path
    ) -> CeleryWorkers:
        """Start one worker per queue; the caller must :meth:`stop` them (also on failure:
        a worker that did start is registered before the next one starts)."""
        workers = cls(app, directory)
        env = worker_environment(broker, backend)
        commands = QueueRouter(list(queues), key_kwarg="unused").worker_commands(
            "celery_app", *WORKER_OPTIONS
        )
        try:
            for queue, command in commands.items():
                with open(directory / f"{queue}.log", "wb") as log:
                    workers.processes[queue] = subprocess.Popen(
                        [sys.executable, "-m", *command],
                        env=env,
                        cwd=directory,
                        stdin=subprocess.DEVNULL,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                    )
        except BaseException:
            workers.stop()
            raise
        return workers

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        """Return once every worker answers ``control.ping``; record their hostnames."""
        deadline = time.monotonic() + timeout
        wanted = set(self.processes)
        while True:
            self.check_running()
            replies = self.app.control.ping(timeout=0.5)
            for reply in replies:
                for hostname in reply:
                    queue = hostname.split("@", 1)[0]
                    if queue in wanted:
                        self.hostnames[queue] = hostname
            if set(self.hostnames) == wanted:
                return
            if time.monotonic() > deadline:
                missing = sorted(wanted - set(self.hostnames))
                raise CeleryWorkerError(
                    f"workers {missing} did not answer a ping within {timeout:.0f}s\n"
                    + self.log_tails(missing)
                )

    def check_running(self) -> None:
        """Raise if a worker has exited."""
        dead = [queue for queue, process in self.processes.items() if process.poll() is not None]
        if dead:
            raise CeleryWorkerError(f"workers {dead} exited\n" + self.log_tails(dead))

    def pid(self, queue: str) -> int:
        """The pid of the worker consuming ``queue`` (with the solo pool, the task's pid)."""
        return self.processes[queue].pid

    def log_tails(self, queues: Iterable[str], lines: int = 20) -> str:
        """The last lines of the named workers' logs."""
        tails = []
        for queue in queues:
            path = self.directory / f"{queue}.log"
            text = path.read_text(errors="replace") if path.exists() else ""
            tails.append(f"--- {queue}:\n" + "\n".join(text.splitlines()[-lines:]))
        return "\n".join(tails)

    def stop(self) -> None:
        """Stop every worker: SIGTERM (warm shutdown) to all, then wait; SIGKILL after
        :data:`STOP_TIMEOUT`."""
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        deadline = time.monotonic() + STOP_TIMEOUT
        for process in self.processes.values():
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(STOP_TIMEOUT)
