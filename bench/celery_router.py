"""What ``QueueRouter`` adds to sending a Celery task, against Celery's own routing.

Run by hand (not part of the test run)::

    .venv/bin/python bench/celery_router.py           # about a minute
    .venv/bin/python bench/celery_router.py --quick   # smoke run: 10x fewer tasks

No broker process: the producer app publishes on kombu's in-memory transport
(``memory://``), so a send costs what Celery itself costs (message, serialisation, routing,
publish) and nothing of a network. Every app has the same three queues ``tenants-0..2`` in
``task_queues`` and one task ``bench.work(tenant_id, n=0)``; keys are ``f"tenant-{i}"``.

Routers compared (the same task, the same arguments):

* "default queue": no ``task_routes`` (Celery's floor: the default queue);
* "MapRoute": ``task_routes = {"bench.work": {"queue": "tenants-1"}}``, Celery's own
  static routing, the cheapest way to choose a queue (one queue for every task);
* "modulo (peer)": a router function ``QUEUES[crc32(tenant_id) % 3]``, the naive way to
  route by key (every key moves when the queue count changes), over the same three queues;
* "QueueRouter, keyword": ``QueueRouter(queues, key_kwarg="tenant_id")``, key by keyword;
* "QueueRouter, positional": the same router, key passed by position (the task's signature
  is read once per task class);
* "QueueRouter, header": ``key_header="tenant"``, key in ``headers={"tenant": ...}``;
* "QueueRouter, keyless": no key, round-robin.

Two measures, each the best of interleaved rounds (order flipped every round, garbage
collector off while timed): "route" is ``app.amqp.router.route(...)``, the call
``send_task`` makes (what routing costs); "apply_async" is the whole send on the memory
transport (what a caller waits for). The queue each router chose is checked before timing.

Target: every QueueRouter row's ``apply_async`` at least 0.9x the modulo peer's tasks/s
(consistent hashing costs at most a tenth of a send more than the naive modulo). Trust
ratios within one run (the load average is printed), not absolute numbers: on a busy
machine the apply_async column moves by about 10% from run to run (MapRoute, which routes
less, has come out both above and below the modulo peer), the route column much less.
"""

from __future__ import annotations

import argparse
import os
import sys
import zlib
from collections.abc import Callable, Sequence
from typing import Any

from _measure import interleaved, times
from celery import Celery
from hashring.adapters.celery import QueueRouter
from kombu import Queue
from tabulate import tabulate

QUEUES = ("tenants-0", "tenants-1", "tenants-2")
TASK = "bench.work"
ROUTES_PER_ROUND = 10_000
SENDS_PER_ROUND = 1_000
ROUNDS = 9
TARGET = 0.9

Send = tuple[tuple[Any, ...], dict[str, Any], dict[str, Any]]  # args, kwargs, options


def modulo_route(
    name: str, args: Any, kwargs: Any, options: Any, task: Any = None, **kw: Any
) -> dict[str, str]:
    """The naive key router: crc32 of the key modulo the queue count."""
    return {"queue": QUEUES[zlib.crc32(kwargs["tenant_id"].encode()) % len(QUEUES)]}


def make_app(routes: object) -> Celery:
    """A producer on the in-memory transport with the bench task and the three queues."""
    app = Celery("bench", broker="memory://", set_as_current=False)
    app.conf.update(task_queues=[Queue(name, routing_key=name) for name in QUEUES])
    app.conf.task_ignore_result = True
    if routes is not None:
        app.conf.task_routes = routes

    @app.task(name=TASK, shared=False)
    def work(tenant_id: str | None = None, n: int = 0) -> int:  # never run here
        return n

    return app


def cases(keys: Sequence[str]) -> dict[str, tuple[Celery, list[Send]]]:
    """Each router: its app and the sends it is timed with."""
    by_kwarg = QueueRouter(list(QUEUES), key_kwarg="tenant_id")
    by_header = QueueRouter(list(QUEUES), key_header="tenant")
    keyword = [((), {"tenant_id": key}, {}) for key in keys]
    return {
        "default queue": (make_app(None), keyword),
        "MapRoute": (make_app({TASK: {"queue": "tenants-1"}}), keyword),
        "modulo (peer)": (make_app((modulo_route,)), keyword),
        "QueueRouter, keyword": (make_app((by_kwarg,)), keyword),
        "QueueRouter, positional": (make_app((by_kwarg,)), [((key,), {}, {}) for key in keys]),
        "QueueRouter, header": (
            make_app((by_header,)),
            [((), {}, {"headers": {"tenant": key}}) for key in keys],
        ),
        "QueueRouter, keyless": (make_app((by_kwarg,)), [((), {}, {}) for _ in keys]),
    }


def route_loop(app: Celery, sends: Sequence[Send]) -> Callable[[], None]:
    route = app.amqp.router.route
    task = app.tasks[TASK]

    def run() -> None:
        for args, kwargs, options in sends:
            route(dict(options), TASK, args, kwargs, task)

    return run


def send_loop(app: Celery, sends: Sequence[Send]) -> Callable[[], None]:
    apply_async = app.tasks[TASK].apply_async

    def run() -> None:
        for args, kwargs, options in sends:
            apply_async(args, kwargs, **options)

    return run


def check(name: str, app: Celery, sends: Sequence[Send]) -> None:
    """The queue each router chooses is the one it should (before anything is timed)."""
    router = app.amqp.router
    task = app.tasks[TASK]
    chosen = [router.route(dict(o), TASK, a, k, task)["queue"].name for a, k, o in sends[:300]]
    if name == "default queue":
        assert set(chosen) == {app.conf.task_default_queue}, chosen[:3]
    elif name == "MapRoute":
        assert set(chosen) == {"tenants-1"}, chosen[:3]
    elif name == "modulo (peer)":
        assert set(chosen) == set(QUEUES), chosen[:3]
    elif name == "QueueRouter, keyless":
        assert [chosen.count(q) for q in QUEUES] == [100, 100, 100], chosen[:6]
    else:
        expected = QueueRouter(list(QUEUES), key_kwarg="k")
        keys = [f"tenant-{i}" for i in range(300)]
        assert chosen == [expected.queue_for(key) for key in keys], name


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="10x fewer tasks")
    quick = parser.parse_args(argv).quick
    n_route = ROUTES_PER_ROUND // (10 if quick else 1)
    n_send = SENDS_PER_ROUND // (10 if quick else 1)
    built = cases([f"tenant-{i}" for i in range(n_route)])
    for name, (app, sends) in built.items():
        check(name, app, sends)
    routes = interleaved(
        {name: route_loop(app, sends) for name, (app, sends) in built.items()}, ROUNDS
    )
    sends = interleaved(
        {name: send_loop(app, sends[:n_send]) for name, (app, sends) in built.items()}, ROUNDS
    )
    peer_route = routes["modulo (peer)"] / n_route
    peer_send = sends["modulo (peer)"] / n_send
    rows, targets = [], []
    for name in built:
        route_us, send_us = routes[name] / n_route * 1e6, sends[name] / n_send * 1e6
        ratio = peer_send * 1e6 / send_us  # tasks/s relative to the peer's
        rows.append(
            [
                name,
                f"{route_us:,.1f} µs",
                f"{route_us - peer_route * 1e6:+,.1f} µs",
                f"{send_us:,.1f} µs",
                f"{1e6 / send_us:,.0f}",
                times(ratio),
            ]
        )
        if name.startswith("QueueRouter"):
            targets.append(
                [name, f">= {TARGET}x", times(ratio), "met" if ratio >= TARGET else "MISSED"]
            )
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(
        f"Celery routing cost per task (memory transport, 3 queues, best of {ROUNDS} "
        f"interleaved rounds, {n_route:,} routes / {n_send:,} sends a round, load {load})"
    )
    print(
        tabulate(
            rows,
            headers=["router", "route", "vs peer", "apply_async", "tasks/s", "vs peer"],
            colalign=("left", "right", "right", "right", "right", "right"),
        )
    )
    print()
    print(tabulate(targets, headers=["target: apply_async tasks/s vs modulo", "want", "got", ""]))
    for app, _ in built.values():
        app.close()
    return 0 if all(row[-1] == "met" for row in targets) else 1


if __name__ == "__main__":
    sys.exit(main())
