"""The Celery app the routing tests' workers run (``celery -A celery_app worker ...``).

Its broker and result backend come from ``HASHRING_CELERY_BROKER`` and
``HASHRING_CELERY_BACKEND``, which the fixtures set to a redis-server they started; without
them (when a test imports this module for :func:`make_app`) the app points at Celery's
in-memory transport, so importing it connects nowhere.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from celery import Celery, Task
from celery.signals import worker_shutdown

TASK = "hashring_test.where"
"""The task every routing test sends: it reports where it ran."""


def make_app(broker: str, backend: str) -> Celery:
    """A Celery app on ``broker``/``backend`` with :data:`TASK` registered.

    Settings keep the tests fast and the workers quiet: no mingle, gossip or heartbeats
    (they are off on the command line too), one task prefetched at a time, JSON only.
    """
    app = Celery("hashring_test", broker=broker, backend=backend, set_as_current=False)
    app.conf.update(
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        worker_prefetch_multiplier=1,
        worker_hijack_root_logger=False,
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=3,
        result_expires=600,
        task_default_queue="hashring-default",
    )

    @app.task(name=TASK, bind=True, shared=False)
    def where(self: Task[Any, Any], tenant_id: object = None, n: int = 0) -> dict[str, Any]:
        """Where this task ran: the queue it was delivered from, the worker, its pid."""
        delivery = self.request.delivery_info or {}
        return {
            "queue": delivery.get("routing_key"),
            "hostname": self.request.hostname,
            "pid": os.getpid(),
            "tenant_id": tenant_id,
            "n": n,
        }

    return app


def _exit_at_once(**_: Any) -> None:
    """Leave as soon as Celery has finished its shutdown (consumers stopped, acks flushed):
    the interpreter's own teardown of a worker takes seconds on a busy machine, for nothing
    a test reads."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if "HASHRING_CELERY_BROKER" in os.environ:  # a worker the fixtures started, not a test
    worker_shutdown.connect(_exit_at_once)

app = make_app(
    os.environ.get("HASHRING_CELERY_BROKER", "memory://"),
    os.environ.get("HASHRING_CELERY_BACKEND", "cache+memory://"),
)
