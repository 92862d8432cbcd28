"""Celery integration: route each task to one of N queues by an affinity key.

``QueueRouter`` is a ``task_routes`` entry. A task whose key (a task argument, a message
header, or what a function finds) is K goes to the queue that owns K under the placement,
so all of K's tasks run on the worker consuming that queue; adding a queue to N moves about
1/(N+1) of the keys and no others. Tasks without a key are spread by a keyless balancer
(round-robin by default). ``task_queues()`` and ``worker_commands(app)`` give the matching
Celery settings and one worker command line per queue.

>>> from hashring.adapters.celery import QueueRouter
>>> router = QueueRouter(["shard-0", "shard-1"], key_kwarg="tenant_id")
>>> router("app.bill", (), {"tenant_id": 42}, {}) == {"queue": router.queue_for("42")}
True

Layout: ``_keys`` finds a task's key and makes it a hashring key (``TaskKeys``,
``task_key``); ``_router`` holds ``QueueRouter`` (placement, keyless balancer, task filter,
queue settings). Imports only kombu (for ``kombu.Queue``) and the hashring core.
"""

from __future__ import annotations

from ._keys import KeyFunc, TaskKeys, task_key
from ._router import KEYLESS_BALANCERS, QueueRouter

__all__ = ["KEYLESS_BALANCERS", "KeyFunc", "QueueRouter", "TaskKeys", "task_key"]
