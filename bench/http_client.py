"""Sharded httpx and requests clients against plain ones, on a real local HTTP node.

Run by hand (not part of the test run)::

    .venv/bin/python bench/http_client.py            # full run, about a minute
    .venv/bin/python bench/http_client.py --quick    # smoke run: 10x fewer requests
    .venv/bin/python bench/http_client.py --routing  # only the routing cost (no server)

The script starts its own HTTP node process (``tests/http_node.py``, through
``tests/http_servers.py``: a free loopback port) and stops it at the end, also after an error
or SIGTERM. To isolate the cost of routing, every sharded client has 3 nodes ``n0``, ``n1``,
``n2`` that all point at that ONE server, and the plain clients hit the same server directly:
both sides go over TCP on 127.0.0.1 to the same process, through the same connection pooling
(the sharded clients' delegate pools by origin, so all 3 names share one keep-alive
connection, as the plain client's does). Sharded requests address the logical host
(``http://users/user:42``), plain ones the node (``http://127.0.0.1:PORT/user:42``): the node
sees the same path, the same headers and answers the same JSON body.

Clients (keys ``f"user:{i}"``, default ring placement, health tracking on):

* httpx: ``httpx.Client(transport=ShardedTransport(nodes))`` with
  ``client.get(url, extensions={"shard_key": key})``, and the same client without a key
  (keyless: round-robin), vs a plain ``httpx.Client()`` with ``client.get(url)``.
* httpx async: ``httpx.AsyncClient(transport=AsyncShardedTransport(nodes))`` with
  ``await client.get(url, extensions={"shard_key": key})`` vs a plain ``httpx.AsyncClient()``,
  one request at a time on one event loop (the loop is reused; each timed round is one
  ``run_until_complete``).
* requests: a ``requests.Session`` with a ``ShardedAdapter`` mounted for ``http://users/`` and
  the key in the ``X-Shard-Key`` header; a ``ShardedSession(nodes, host="users")`` with
  ``session.get(url, shard_key=key)``, and the same session without a key (round-robin); vs a
  plain ``requests.Session()`` with ``session.get(url)``.

What is measured (``time.perf_counter``; the garbage collector is off inside every timed
region; every client is warmed up first, and the warm-up checks that each answer comes from
the node with the expected path, and that keyed requests spread over all 3 node names):
requests/s of a Python loop of N sequential GETs (N = 2,000, body read), all clients in
interleaved rounds (6 rounds, order flipped every round), best round of each. The per-request
overhead is ``sharded/N - plain/N`` in µs; the last column is the same difference in the
client process's CPU time (``time.process_time``, least of the rounds), which other jobs on
the machine disturb much less than the wall time: the routing's own cost.

Targets (second table; issue 14): keyed GETs through the sharded httpx client (sync and
async) >= 0.95x the plain ``httpx.Client`` / ``httpx.AsyncClient``'s requests/s; keyed GETs
through ``ShardedSession(shard_key=)`` and through ``ShardedAdapter`` >= 0.95x the plain
``requests.Session``'s. Keyless ratios are reported. If a target is missed, one sharded loop
of that client is profiled (cProfile) and the top 10 functions by own time are printed under
the tables.

Routing cost (third table; no I/O, no server): what ``HttpRouter.route`` costs per request
at 3, 8, 100 and 1,000 nodes (addresses only: nothing is sent), default ring placement,
health on, ``max_attempts=3``, keys ``f"user:{i}"``, best of 15 interleaved rounds:

* "route, keyed": ``with router.route(key) as route: route.first``, the cost of every keyed
  request that succeeds on its first node;
* "route, keyed, failover": the same, then ``route.next()`` until the route is used up (all
  ``max_attempts`` nodes handed out), the cost of a request that fails over twice;
* "route, keyless": ``router.route(None)`` (round-robin);
* peers: ``placement.get_node(key)`` (the floor: one lookup), and
  ``placement.get_nodes(key)`` (the whole preference list, which ``route`` computed for every
  request before it computed only what ``max_attempts`` needs).

Each row prints µs per request at every size and the ratio of the 1,000-node cost to the
3-node cost. Target: "route, keyed" at 1,000 nodes <= 1.2x its cost at 3 nodes.

Noise: the machine has 2 cores shared by the client, the node (a Python
``ThreadingHTTPServer``) and possibly other jobs; the load average is printed in the header.
Trust the ratios within one run, not absolute numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import signal
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import requests
from _measure import Row, exit_on_signal, interleaved, profile_calls, targets_table, times
from hashring.adapters.http import (
    AsyncShardedTransport,
    HttpRouter,
    ShardedAdapter,
    ShardedSession,
    ShardedTransport,
)
from hashring.adapters.http._requests import SHARD_KEY_HEADER
from tabulate import tabulate

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from http_servers import HttpServer, http_server_pool

NODE_NAMES = ("n0", "n1", "n2")
LOGICAL_HOST = "users"
REQUESTS_PER_ROUND = 2_000
ROUTING_SIZES = (3, 8, 100, 1_000)
ROUTING_KEYS = 2_000
ROUTING_TARGET = 1.2
ROUTING_ROUNDS = 15  # a routing loop takes milliseconds: more rounds, less scheduling noise
ROUNDS = 6
WARMUP_REQUESTS = 200
PROFILE_TOP = 10
TARGET = 0.95
SHOWN = {"httpx": "httpx", "async": "httpx async", "requests": "requests"}


# ------------------------------------------------------------------ timing helpers


# ------------------------------------------------------------------ request loops


def httpx_plain(client: httpx.Client, urls: Sequence[str]) -> None:
    get = client.get
    for url in urls:
        get(url)


def httpx_keyed(client: httpx.Client, pairs: Sequence[tuple[str, str]]) -> None:
    get = client.get
    for url, key in pairs:
        get(url, extensions={"shard_key": key})


async def httpx_async_plain(client: httpx.AsyncClient, urls: Sequence[str]) -> None:
    get = client.get
    for url in urls:
        await get(url)


async def httpx_async_keyed(client: httpx.AsyncClient, pairs: Sequence[tuple[str, str]]) -> None:
    get = client.get
    for url, key in pairs:
        await get(url, extensions={"shard_key": key})


def on_loop(loop: asyncio.AbstractEventLoop, run: Callable[[], Any]) -> Callable[[], object]:
    """A sync callable running the coroutine ``run()`` makes to completion on ``loop``."""
    return lambda: loop.run_until_complete(run())


def requests_plain(session: requests.Session, urls: Sequence[str]) -> None:
    get = session.get
    for url in urls:
        get(url)


def requests_header(session: requests.Session, pairs: Sequence[tuple[str, str]]) -> None:
    get = session.get
    for url, key in pairs:
        get(url, headers={SHARD_KEY_HEADER: key})


def requests_session_keyed(session: ShardedSession, pairs: Sequence[tuple[str, str]]) -> None:
    get = session.get
    for url, key in pairs:
        get(url, shard_key=key)


# ------------------------------------------------------------------ checks


def check_answer(status: int, body: Any, path: str, node: str | None, what: str) -> None:
    """One warm-up answer: status 200, the node's JSON, the path the node should have seen."""
    if status != 200 or not isinstance(body, dict) or body.get("path") != path:
        raise AssertionError(f"{what}: unexpected answer {status} {body!r:.200}")
    if node is not None and node not in NODE_NAMES:
        raise AssertionError(f"{what}: answered by unknown node {node!r}")


def check_spread(nodes: Counter[str | None], what: str) -> None:
    if set(nodes) != set(NODE_NAMES):
        raise AssertionError(f"{what}: routed to {dict(nodes)}, expected all of {NODE_NAMES}")


def warm_up(
    plain_x: httpx.Client,
    sharded_x: httpx.Client,
    plain_r: requests.Session,
    adapter_r: requests.Session,
    session_r: ShardedSession,
    paths: Sequence[str],
    node_url: str,
) -> None:
    """Send every client's first requests, checking answers and routing."""
    logical = f"http://{LOGICAL_HOST}"
    spread: dict[str, Counter[str | None]] = {}
    for path in paths:
        key = path[1:]
        r = plain_x.get(node_url + path)
        check_answer(r.status_code, r.json(), path, None, "plain httpx")
        for what, keyed in (("sharded httpx", True), ("sharded httpx keyless", False)):
            ext = {"shard_key": key} if keyed else {}
            r = sharded_x.get(logical + path, extensions=ext)
            node = r.extensions.get("hashring_node")
            check_answer(r.status_code, r.json(), path, node, what)
            spread.setdefault(what, Counter())[node] += 1
        p = plain_r.get(node_url + path)
        check_answer(p.status_code, p.json(), path, None, "plain requests")
        answers = (
            ("ShardedAdapter", adapter_r.get(logical + path, headers={SHARD_KEY_HEADER: key})),
            ("ShardedSession", session_r.get(logical + path, shard_key=key)),
            ("ShardedSession keyless", session_r.get(logical + path)),
        )
        for what, p in answers:
            node = getattr(p, "shard_node", None)
            check_answer(p.status_code, p.json(), path, node, what)
            if SHARD_KEY_HEADER.lower() in p.json()["headers"]:
                raise AssertionError(f"{what}: the node saw the {SHARD_KEY_HEADER} header")
            spread.setdefault(what, Counter())[node] += 1
    for what, nodes in spread.items():
        check_spread(nodes, what)


async def warm_up_async(
    plain: httpx.AsyncClient, sharded: httpx.AsyncClient, paths: Sequence[str], node_url: str
) -> None:
    """Send the async clients' first requests, checking answers and routing."""
    spread: Counter[str | None] = Counter()
    for path in paths:
        r = await plain.get(node_url + path)
        check_answer(r.status_code, r.json(), path, None, "plain async httpx")
        r = await sharded.get(f"http://{LOGICAL_HOST}{path}", extensions={"shard_key": path[1:]})
        node = r.extensions.get("hashring_node")
        check_answer(r.status_code, r.json(), path, node, "sharded async httpx")
        spread[node] += 1
    check_spread(spread, "sharded async httpx")


# ------------------------------------------------------------------ profiling


# ------------------------------------------------------------------ formatting


def interleaved_with_cpu(
    fns: dict[str, Callable[[], object]], rounds: int
) -> tuple[dict[str, float], dict[str, float]]:
    """Like ``_measure.interleaved`` (best wall seconds of each, order flipped every round,
    gc off), plus the least client CPU seconds (``time.process_time``) of each: the client's
    own work, which the machine's other load inflates far less than the wall time."""
    wall = dict.fromkeys(fns, float("inf"))
    cpu = dict.fromkeys(fns, float("inf"))
    names = list(fns)
    for r in range(rounds):
        for name in names if r % 2 == 0 else reversed(names):
            gc.disable()
            try:
                start, start_cpu = time.perf_counter(), time.process_time()
                fns[name]()
                wall[name] = min(wall[name], time.perf_counter() - start)
                cpu[name] = min(cpu[name], time.process_time() - start_cpu)
            finally:
                gc.enable()
    return wall, cpu


def rps(seconds: float, n: int) -> str:
    return f"{n / seconds:,.0f} req/s"


def us(seconds: float, n: int) -> str:
    return f"{seconds / n * 1e6:,.1f} µs"


# ------------------------------------------------------------------ routing cost


def route_first(router: HttpRouter, keys: Sequence[str | None]) -> None:
    route = router.route
    for key in keys:
        with route(key) as chosen:
            chosen.first  # noqa: B018 - what every request reads


def route_walk(router: HttpRouter, keys: Sequence[str]) -> None:
    route = router.route
    for key in keys:
        with route(key) as chosen:
            while chosen.next() is not None:
                pass


def lookup(get: Callable[[str], object], keys: Sequence[str]) -> None:
    for key in keys:
        get(key)


def measure_routing(quick: bool) -> list[tuple[str, str, bool | None]]:
    """Print the routing-cost table; return its target rows."""
    rounds = 3 if quick else ROUTING_ROUNDS
    loops: dict[str, Callable[[], object]] = {}
    units: dict[str, int] = {}
    for size in ROUTING_SIZES:
        router = HttpRouter(
            {f"n{i}": f"http://10.0.{i // 250}.{i % 250}:8080" for i in range(size)}
        )
        # The whole list is slow at 1,000 nodes (that is the point): fewer keys for it.
        count = ROUTING_KEYS // (10 if quick else 1)
        keys = [f"user:{i}" for i in range(count)]
        few = keys[: max(20, count // (size // 10 or 1))]
        placement = router.placement
        for name, fn, used in (
            ("route, keyed", partial(route_first, router, keys), count),
            ("route, keyed, failover", partial(route_walk, router, keys), count),
            ("route, keyless", partial(route_first, router, [None] * count), count),
            ("peer: placement.get_node", partial(lookup, placement.get_node, keys), count),
            ("peer: whole preference list", partial(lookup, placement.get_nodes, few), len(few)),
        ):
            loops[f"{name}@{size}"] = fn
            units[f"{name}@{size}"] = used
        with router.route("user:1") as check:  # the routes hand out what the placement says
            if [check.first, *iter(check.next, None)] != placement.get_nodes("user:1", 3):
                raise AssertionError(f"routing at {size} nodes disagrees with the placement")
    best = interleaved(loops, rounds)
    names = dict.fromkeys(key.split("@")[0] for key in loops)
    rows: list[Row] = []
    targets: list[tuple[str, str, bool | None]] = []
    small, large = ROUTING_SIZES[0], ROUTING_SIZES[-1]
    for name in names:
        per = {size: best[f"{name}@{size}"] / units[f"{name}@{size}"] for size in ROUTING_SIZES}
        ratio = per[large] / per[small]
        rows.append([name, *(f"{per[size] * 1e6:,.1f} µs" for size in ROUTING_SIZES), times(ratio)])
        if name == "route, keyed":
            label = f"route, keyed: {large:,} nodes <= {ROUTING_TARGET}x {small} nodes"
            targets.append((label, times(ratio), ratio <= ROUTING_TARGET))
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(
        f"Routing cost per request (HttpRouter.route, no I/O, ring placement, max_attempts=3, "
        f"best of {rounds} interleaved rounds, load average {load})"
    )
    print(
        tabulate(
            rows,
            headers=[
                "measure",
                *(f"{size:,} nodes" for size in ROUTING_SIZES),
                f"{large:,} / {small} nodes",
            ],
            colalign=("left", *("right",) * (len(ROUTING_SIZES) + 1)),
        )
    )
    return targets


# ------------------------------------------------------------------ main


def measure(
    server: HttpServer, quick: bool, routing_targets: list[tuple[str, str, bool | None]]
) -> int:
    n = REQUESTS_PER_ROUND // (10 if quick else 1)
    nodes = dict.fromkeys(NODE_NAMES, server.url)
    keys = [f"user:{i}" for i in range(n)]
    paths = [f"/{key}" for key in keys]
    node_urls = [server.url + path for path in paths]
    logical_urls = [f"http://{LOGICAL_HOST}{path}" for path in paths]
    pairs = list(zip(logical_urls, keys, strict=True))

    plain_x = httpx.Client()
    sharded_x = httpx.Client(transport=ShardedTransport(nodes))
    plain_r = requests.Session()
    adapter_r = requests.Session()
    adapter_r.mount(f"http://{LOGICAL_HOST}/", ShardedAdapter(nodes))
    session_r = ShardedSession(nodes, host=LOGICAL_HOST)
    loop = asyncio.new_event_loop()
    plain_a = httpx.AsyncClient()
    sharded_a = httpx.AsyncClient(transport=AsyncShardedTransport(nodes))
    try:
        warm_up(
            plain_x, sharded_x, plain_r, adapter_r, session_r,
            paths[:WARMUP_REQUESTS], server.url,
        )  # fmt: skip
        loop.run_until_complete(
            warm_up_async(plain_a, sharded_a, paths[:WARMUP_REQUESTS], server.url)
        )
        loops: dict[str, Callable[[], object]] = {
            "httpx plain": partial(httpx_plain, plain_x, node_urls),
            "httpx keyed": partial(httpx_keyed, sharded_x, pairs),
            "httpx keyless": partial(httpx_plain, sharded_x, logical_urls),
            "async plain": on_loop(loop, partial(httpx_async_plain, plain_a, node_urls)),
            "async keyed": on_loop(loop, partial(httpx_async_keyed, sharded_a, pairs)),
            "requests plain": partial(requests_plain, plain_r, node_urls),
            "requests adapter": partial(requests_header, adapter_r, pairs),
            "requests session": partial(requests_session_keyed, session_r, pairs),
            "requests keyless": partial(requests_plain, session_r, logical_urls),
        }
        best, cpu = interleaved_with_cpu(loops, ROUNDS)

        rows: list[Row] = []  # measure, sharded, plain, ratio, overhead, client CPU
        targets: list[tuple[str, str, bool | None]] = list(routing_targets)
        missed: list[tuple[str, str]] = []
        cases = (  # the rows first
            ("httpx", "httpx keyed", "ShardedTransport, extensions shard_key", True),
            ("requests", "requests session", "ShardedSession, shard_key=", True),
            ("async", "async keyed", "AsyncShardedTransport, extensions shard_key", True),
            ("requests", "requests adapter", "ShardedAdapter, X-Shard-Key header", True),
            ("httpx", "httpx keyless", "ShardedTransport, keyless (round-robin)", False),
            ("requests", "requests keyless", "ShardedSession, keyless (round-robin)", False),
        )
        for library, name, label, is_target in cases:
            plain = best[f"{library} plain"]
            mine = best[name]
            ratio = plain / mine
            rows.append(
                [
                    f"{SHOWN[library]} GET: {label}",
                    rps(mine, n),
                    f"plain {rps(plain, n)}",
                    times(ratio),
                    f"{(mine - plain) / n * 1e6:+,.1f} µs",
                    f"{(cpu[name] - cpu[f'{library} plain']) / n * 1e6:+,.1f} µs",
                ]
            )
            target = f"{SHOWN[library]} GET: {label} >= {TARGET}x plain {SHOWN[library]}"
            targets.append((target, times(ratio), ratio >= TARGET if is_target else None))
            if is_target and ratio < TARGET:
                missed.append((name, label))
        for library in ("httpx", "async", "requests"):
            plain = best[f"{library} plain"]
            rows.append(
                [
                    f"{SHOWN[library]} plain per request (reference)",
                    "",
                    us(plain, n),
                    "",
                    "",
                    f"{us(cpu[f'{library} plain'], n)} CPU",
                ]
            )

        profiles: list[tuple[str, list[Row]]] = []
        for name, label in missed:
            profiles.append(
                (f"{n:,} GETs through {label}", profile_calls(loops[name], n, top=PROFILE_TOP))
            )
    finally:
        for client in (plain_x, sharded_x, plain_r, adapter_r, session_r):
            client.close()
        loop.run_until_complete(plain_a.aclose())
        loop.run_until_complete(sharded_a.aclose())
        loop.close()

    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    mode = "quick" if quick else "full"
    print(
        f"Sharded HTTP clients vs plain ({mode} run, 1 local HTTP node behind {len(nodes)} "
        f"node names, {n:,} GETs per round, best of {ROUNDS} interleaved rounds, Python "
        f"{sys.version.split()[0]}, httpx {httpx.__version__}, requests {requests.__version__}, "
        f"load average {load})"
    )
    print(
        tabulate(
            rows,
            headers=[
                "measure",
                "sharded",
                "plain",
                "sharded/plain req/s",
                "overhead/request",
                "client CPU overhead",
            ],
            colalign=("left", "right", "right", "right", "right", "right"),
        )
    )
    print()
    print(targets_table(targets))
    for what, profile in profiles:
        print()
        print(
            f"cProfile of {what} (a target missed; the profiler inflates absolute times): "
            f"top {PROFILE_TOP} functions by own time"
        )
        print(
            tabulate(
                profile,
                headers=["function", "calls/GET", "own µs/GET", "own share", "cum µs/GET"],
                colalign=("left", "right", "right", "right", "right"),
            )
        )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="10x fewer requests (smoke run)")
    parser.add_argument("--routing", action="store_true", help="only the routing cost")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, exit_on_signal)
    routing_targets = measure_routing(args.quick)
    print()
    if args.routing:
        print(targets_table(routing_targets))
        return 0
    with http_server_pool() as servers:
        servers.append(HttpServer.start("n0"))
        return measure(servers[0], args.quick, routing_targets)


if __name__ == "__main__":
    sys.exit(main())
