"""``QueueRouter``: a Celery ``task_routes`` entry sending each task to a queue by its key.

Celery calls every router in ``task_routes`` as ``router(name, args, kwargs, options,
task=task)`` when a task is sent (``delay``, ``apply_async``, ``send_task``, canvas), in the
sending process, before anything is published; the first router that returns something other
than None decides, and the call's own ``queue=`` option still wins over it (Celery merges the
call's options over the route).
"""

from __future__ import annotations

import fnmatch
import re
import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from kombu import Queue

from hashring import (
    Balancer,
    InvalidOptionError,
    Key,
    NodeExistsError,
    Placement,
    as_placement,
)
from hashring import balancer as make_balancer
from hashring import placement as make_placement
from hashring._placement.keys import short_repr

from ._keys import KeyFunc, TaskKeys, task_key

__all__ = ["KEYLESS_BALANCERS", "QueueRouter"]

KEYLESS_BALANCERS = ("random", "round-robin")
"""The keyless strategies a router can use. The load-aware ones (least-loaded,
power-of-two) are refused: a router sees tasks sent, never tasks finished, so it has no
load to read."""

_MATCH_CACHE_SIZE = 4096
"""Task names whose filter verdict is remembered (names beyond it are matched each time)."""


class QueueRouter:
    """Route Celery tasks to one of N queues by an affinity key (a ``task_routes`` entry).

    A task with a key goes to the queue that owns the key under ``placement``: every task of
    a key lands on one queue (one worker, whose per-key caches stay warm), and changing the
    queue list moves only the keys it must (about 1/(N+1) of them when a queue is added to
    N). A task without a key goes to the queue the keyless balancer picks (round-robin by
    default), or, with ``balancer=None``, is left to Celery's other routes and default queue.
    Tasks whose names ``tasks`` does not match are left alone (the router answers None).

    >>> router = QueueRouter(["shard-0", "shard-1", "shard-2"], key_kwarg="tenant_id")
    >>> route = router("app.bill", (), {"tenant_id": "acme"}, {})
    >>> route == {"queue": router.queue_for("acme")}
    True
    >>> [router("app.cleanup", (), {}, {})["queue"] for _ in range(4)]
    ['shard-0', 'shard-1', 'shard-2', 'shard-0']

    Args:
        queues: queue names, or queue name -> weight (a queue of weight 2 owns about twice
            the keys). A list, tuple or mapping: a single str is refused.
        placement: an algorithm name (``"ring"``, the default, ``"maglev"``,
            ``"rendezvous"``, ``"jump"``; hash tags off) or a ready
            :class:`hashring.Placement` over exactly the queue names, which carries weights
            and options (then ``queues`` lists names only). See :func:`hashring.as_placement`.
        key_kwarg: the task argument holding the key, by keyword or position.
        key_header: the message header holding the key (``apply_async(headers={...})``).
        key_func: ``key_func(name, args, kwargs, options) -> key or None``. The three
            sources are tried in the order header, argument, function (see ``_keys``).
        tasks: task names or ``fnmatch`` patterns (``"billing.*"``) this router routes;
            None (the default): every task.
        balancer: the keyless strategy, ``"round-robin"`` (default) or ``"random"`` (see
            :data:`KEYLESS_BALANCERS`), or None to leave keyless tasks to Celery.

    Raises:
        InvalidOptionError: no queue, a str for ``queues`` or ``tasks``, a bad queue name,
            no key source, an unknown or load-aware balancer, a placement whose nodes are
            not the queue names, or weights given both in ``queues`` and in a placement.
        NodeExistsError: a queue listed twice.
        InvalidWeightError: a weight that is not a positive finite number (NaN, inf, 0).
    """

    def __init__(
        self,
        queues: Iterable[str] | Mapping[str, float],
        *,
        placement: str | Placement = "ring",
        key_kwarg: str | None = None,
        key_header: str | None = None,
        key_func: KeyFunc | None = None,
        tasks: Iterable[str] | None = None,
        balancer: str | None = "round-robin",
    ) -> None:
        self.keys = TaskKeys(key_kwarg=key_kwarg, key_header=key_header, key_func=key_func)
        self._tasks = _task_filter(tasks)
        self._matched: dict[str, bool] = {}
        self._lock = threading.Lock()
        self.placement: Placement = _queue_placement(queues, placement, owner=self)
        if balancer is not None and balancer not in KEYLESS_BALANCERS:
            raise InvalidOptionError(
                f"balancer must be one of {', '.join(KEYLESS_BALANCERS)} or None, not "
                f"{short_repr(balancer)}: a router sees tasks sent, never tasks finished, so "
                "the load-aware strategies would have no load to read"
            )
        self.keyless: Balancer | None = (
            None if balancer is None else make_balancer(balancer, dict(self.placement.nodes))
        )

    # ------------------------------------------------------------------ routing

    def __call__(
        self,
        name: str,
        args: Sequence[Any] | None,
        kwargs: Mapping[str, Any] | None,
        options: Mapping[str, Any] | None,
        task: Any = None,
        **kw: Any,
    ) -> dict[str, str] | None:
        """The route of one task: ``{"queue": name}``, or None to let Celery's other routes
        decide (a task the ``tasks`` filter does not take, or a keyless task with
        ``balancer=None``). Celery's router signature; ``**kw`` takes what later Celery
        versions may add.

        Runtime: O(1) look-ups to find the key, then one placement lookup (O(log n) for the
        ring) or one balancer pick.

        Raises:
            KeyEncodingError: the key is a str with a lone surrogate.
            InvalidKeyError: the key is not a str, bytes-like value or int.
            EmptyRingError: every queue was removed.
        """
        if not self.routes(name):
            return None
        key = self.keys.find(name, args, kwargs, options, task)
        if key is not None:
            return {"queue": self.placement.get_node(key)}
        if self.keyless is None:
            return None
        return {"queue": self.keyless.pick()}

    def routes(self, name: str) -> bool:
        """Whether this router routes the task ``name`` (the ``tasks`` filter). O(1) after
        the first call for a name."""
        if self._tasks is None:
            return True
        matched = self._matched.get(name)
        if matched is None:
            matched = self._tasks.match(name) is not None
            if len(self._matched) < _MATCH_CACHE_SIZE:
                self._matched[name] = matched
        return matched

    def queue_for(self, key: Key | int) -> str:
        """The queue that owns ``key`` (str, bytes-like or int, as a task's key). One
        placement lookup.

        Raises:
            KeyEncodingError, InvalidKeyError: not a valid key.
            EmptyRingError: there are no queues.
        """
        return self.placement.get_node(task_key(key))

    # ------------------------------------------------------------------ queues

    @property
    def queues(self) -> Mapping[str, float]:
        """Queue name -> weight (a snapshot)."""
        return self.placement.nodes

    def add_queue(self, name: str, weight: float = 1) -> None:
        """Add a queue at runtime (thread-safe): about ``weight / total weight`` of the keys
        move to it, and no other key moves. Tasks already queued stay where they are. Costs
        what the placement's ``add_node`` costs.

        Raises:
            NodeExistsError, InvalidOptionError, InvalidWeightError: bad name or weight.
        """
        with self._lock:
            self.placement.add_node(name, weight)
            if self.keyless is not None:
                self.keyless.add_node(name, weight)

    def remove_queue(self, name: str) -> None:
        """Remove a queue at runtime (thread-safe): its keys move to the other queues, and
        no other key moves. Tasks already queued on it stay there: keep its worker until
        the queue is drained.

        Raises:
            UnknownNodeError: ``name`` is not a queue.
        """
        with self._lock:
            self.placement.remove_node(name)
            if self.keyless is not None:
                self.keyless.remove_node(name)

    def task_queues(self) -> list[Queue]:
        """A kombu :class:`~kombu.Queue` per queue, in name order, for Celery's
        ``task_queues`` setting: each bound to Celery's default exchange with the queue's
        name as its routing key."""
        return [Queue(name, routing_key=name) for name in sorted(self.queues)]

    def worker_commands(self, app: str, *options: str) -> dict[str, list[str]]:
        """Queue name -> the command line of the worker that consumes it and nothing else:
        ``celery -A app worker -Q queue -n queue@%h`` followed by ``options``
        (``"--concurrency=1"``, ``"--pool=solo"``...). One worker per queue keeps each
        key's tasks in one place.

        >>> QueueRouter(["q0"], key_kwarg="k").worker_commands("proj", "--pool=solo")
        {'q0': ['celery', '-A', 'proj', 'worker', '-Q', 'q0', '-n', 'q0@%h', '--pool=solo']}
        """
        return {
            name: ["celery", "-A", app, "worker", "-Q", name, "-n", f"{name}@%h", *options]
            for name in sorted(self.queues)
        }

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(queues={len(self.placement)}, "
            f"placement={type(self.placement).__name__}, {self.keys!r})"
        )


def _queue_placement(
    queues: Iterable[str] | Mapping[str, float], spec: str | Placement, *, owner: object
) -> Placement:
    """The placement over the queues; the errors the class docstring lists."""
    if isinstance(queues, (str, bytes)) or not isinstance(queues, Iterable):
        raise InvalidOptionError(
            f"queues must be a list of queue names or a mapping of name to weight, not "
            f"{short_repr(queues)}"
        )
    if not isinstance(queues, Mapping):
        queues = list(queues)  # duplicates kept, to be refused below
    if not queues:
        raise InvalidOptionError("queues is empty: give at least one queue name")
    if isinstance(queues, Mapping):
        if not isinstance(spec, str):
            raise InvalidOptionError(
                "weights are said once: with a ready placement, list the queue names only "
                "(the placement carries the weights)"
            )
        return make_placement(spec, queues, hash_tags=False)
    seen: set[str] = set()
    for name in queues:
        if not isinstance(name, str):  # before the set: a list as a name is unhashable
            raise InvalidOptionError(f"queue names must be str, not {short_repr(name)}")
        if name in seen:
            raise NodeExistsError(f"queue {short_repr(name)} is listed more than once")
        seen.add(name)
    return as_placement(spec, queues, hash_tags=False, owner=owner)


def _task_filter(tasks: Iterable[str] | None) -> re.Pattern[str] | None:
    """One regex matching any of ``tasks`` (names or fnmatch patterns), or None for all."""
    if tasks is None:
        return None
    if isinstance(tasks, (str, bytes)) or not isinstance(tasks, Iterable):
        raise InvalidOptionError(
            f"tasks must be a list of task names or patterns, not {short_repr(tasks)}"
        )
    patterns = list(tasks)
    if not patterns:
        raise InvalidOptionError("tasks is empty: the router would route nothing (use None)")
    for pattern in patterns:
        if not isinstance(pattern, str) or not pattern:
            raise InvalidOptionError(
                f"each task name or pattern must be a non-empty str, not {short_repr(pattern)}"
            )
    return re.compile("|".join(f"(?:{fnmatch.translate(pattern)})" for pattern in patterns))
