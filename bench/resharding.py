"""Online resharding under client load, on real local redis-servers: how fast clients follow
a new topology, what a migration costs the clients, and what the clients cost a migration.

Run by hand (not part of the test run)::

    .venv/bin/python bench/resharding.py                  # a few minutes
    .venv/bin/python bench/resharding.py --quick          # about a minute
    .venv/bin/python bench/resharding.py --part switch    # (a) only; --part load: (b) and (c)
    .venv/bin/python bench/resharding.py --clients 8      # client processes of (b)
    .venv/bin/python bench/resharding.py --part load --repeat 3   # median of 3 passes
    .venv/bin/python bench/resharding.py --part load --migrate-rate 5000     # paced by keys/s
    .venv/bin/python bench/resharding.py --part load --migrate-max-busy 1    # not paced
    .venv/bin/python bench/resharding.py --part load --cpus shared   # see "Where things run"

The script starts its own 5 ``redis-server`` processes on free loopback ports (through
``tests/redis_servers.py``: never port 6379, no persistence) and stops them at the end, also
after an error: data nodes ``n0`` .. ``n3`` and a config server that holds the published
topology. The old topology is ``n0`` .. ``n2``; the new one adds ``n3`` (about a quarter of
the keys move, all to ``n3``). Client processes are started from a forkserver (their imports
done once) and report to this process through a queue.

(a) Switch time: 10 client processes each follow the topology, either a file replaced by
rename (``ShardedRedis.from_config(path, watch=True, watch_interval=I)``) or a Redis key
(``ShardedRedis.from_source(url, key=K, watch_interval=I)``, published with
``RedisTopologySource.publish``, what ``hashring topology push`` runs). Each process polls
its client's ``version`` every 2 ms and reports the moment it changes. The publisher
alternates between the old and the new topology, several times, each publish after a
random (seeded) pause of up to one interval, so that it falls at any phase of the
watchers' looks. Measured per publish: from just before the rename (or the ``publish``
call) to the moment the last of the 10 clients runs the new version; p50 and max over the
publishes, at the default ``watch_interval`` and at 0.05 s. The median single client's
switch time is shown too. Expected: a file is taken at the second look that sees it, so
within about one to two intervals; a key wakes its followers by pub/sub at once (the
interval is only the backstop).

(b) Client throughput during a migration: N client processes (4 by default; one thread
each, synchronous ``ShardedRedis``, ``from_config(watch=True)`` at the default interval) run
a read/write mix over 100,000 hot keys (key ``h:<i>``: 60% strings, 20% counters, 20%
hashes of 4 fields): 80% reads (GET, HGET), 20% writes (SET, and DEL for one string write
in ten, INCR, HSET). The store also holds cold keys nobody touches (400,000; 100,000 with
``--quick``), so that the migration runs long enough to be measured in whole seconds.
Every client counts the operations it completes in each second of the monotonic clock (one
interval, the same for all processes) and reports each interval's count, its failed
operations, its topology version and its CPU seconds; an interval's ops/s is the sum over
the clients, and only intervals every client reported count. Measured in one run, in this
order:

* plain redis-py: the same N processes and mix through ``redis.Redis`` to ``n0`` alone
  (database 1, hot keys loaded there): the client-overhead reference; then the same
  clients while ``hashring migrate`` moves database 0's keys to ``n3`` (the control: what
  a move costs any client of these servers on this machine, through the CPU the migrator
  and the servers' MIGRATEs take), after which the data is loaded again;
* ShardedRedis on the old topology: every whole interval of a steady window (8 s; 4 s with
  ``--quick``), after one interval of warm-up;
* the followed file is replaced by the window topology (``[migration] previous =
  "old.toml"``); once every client reports its version, 3 s of the window before any key
  moves (keys that stay are read and written as outside a window; a moving key is read
  on its old owner first and written there through the marker's gate:
  ``adapters/redis/_window_routes.py``);
* ``hashring migrate --from old.toml --to window.toml --apply --allow-volatile-destination
  --max-busy 0.1 --format json`` runs: paced as the README's runbook has it for a store
  under live load, the pass working at most a tenth of its time (``--migrate-max-busy F``
  passes ``--max-busy F`` instead, ``--migrate-rate R`` ``--rate R``; either replaces the
  default pace, and ``--migrate-max-busy 1`` runs the move unpaced). The move starts when the
  window's marker (``hashring:migrating:<version>``) appears on ``n0`` (polled every 2 ms:
  after its wait for clients the CLI sets it on each old node just before its pass over that
  node, and ``n0`` is the first old node it passes, after ``n3``, which holds no key to
  move) and
  lasts the ``elapsed_seconds`` the CLI reports; only the intervals wholly inside that span
  count;
* 3 s of the window after the move, then the final topology (4 nodes, no ``[migration]``)
  is renamed over the file and measured like the old one.

Each row shows ops/s, its slowest interval, the ratios to the old topology, to the
throughput without a migration and to plain redis-py, the CPU the clients got (cores: CPU
seconds per second, summed) and their CPU per operation. Target: ops/s while keys move >=
0.8x ops/s without a migration, that is the mean of the old topology's ops/s (measured
before the window) and the final topology's (after it): the two steady phases bracket the
move in time, so a drift of the shared machine's speed over the run cancels instead of
counting for or against the window (on this machine one steady phase measured 0.79x to
1.14x of another with no window involved; drift is not always linear, so ``--repeat N`` runs
the ShardedRedis passes N times, each from freshly loaded data, and judges the target on the
median of their ratios, the median run detailing the other rows). The ratios to each of the
two are printed too.
When the
clients' CPUs are busy, ops/s = cores got / CPU per operation: the first says how much CPU
the clients got (below their CPUs' count: they waited on replies, or, with ``--cpus
shared``, the migrator and anything else running took the rest), the second what the
window costs each operation; both are shown, and the CPU ratio is printed under the target.

(c) The migration's own speed: before the clients start, the same data set is migrated
with no client running (then flushed and loaded again), and under the load of (b); both
from the CLI's JSON: ``keys_per_second`` (keys moved per second of the move pass, SCAN
included) and ``(moved + conflicts + missing) / elapsed_seconds`` (keys handled: under load
clients write moving keys on their new owner first, so some are conflicts: the source copy
is dropped), and the CPU seconds the command used (start-up and verification included).
Under load, keys that clients deleted after they moved count as ``lost`` in the CLI's
verification (exit status 1): reported, not an error here.

Where things run (``--cpus``). In production the clients run on application machines and
the servers and the migrator elsewhere; the migration then costs a client only what it
does to its commands (the window's extra round trips and CPU, the servers' MIGRATE work
delaying replies). On one machine they would also compete for the same CPUs: the CPU the
migrator and the servers' MIGRATEs take would come out of the clients' share, a cost of
the benchmark's machine, not of the window (the control shows it: plain redis-py lost 5%
to 28% while keys moved, in earlier runs with everything on every CPU). So by default
(``--cpus split``) every client process is pinned to the lower half of the CPUs
(``os.sched_setaffinity``; CPU 0 of 2) and this process, the servers and the migrate
command to the upper half: the clients' CPUs are theirs alone, as on their own machines,
and what the migration costs them shows as their CPU per operation and as the servers'
slower replies. ``--cpus shared`` runs everything on every CPU, as the runs before this
option did (the clients then pay the migrator's CPU too). The header line says which.

Noise: the machine's CPUs may be shared with other jobs; the load average is printed in
the header. Trust the ratios within one run, not absolute numbers.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import multiprocessing.context
import os
import queue
import random
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
from _measure import Target, exit_on_signal, ms, targets_table, times
from _servers import RedisServer, redis_servers
from hashring.adapters.redis import RedisTopologySource, ShardedRedis
from tabulate import tabulate

from hashring import load_topology
from hashring._topology.clients import marker_key

DATA_NODES = 4
SEED = 20261129
TICK = 1.0
"""Seconds per reporting interval of the load clients (aligned on the monotonic clock)."""
POLL = 0.002
"""Seconds between two looks at ``client.version`` (switch clients) or at the marker."""

SWITCH_CLIENTS = 10
PUBLISHES = 8
QUICK_PUBLISHES = 4
SHORT_INTERVAL = 0.05
DEFAULT_INTERVAL = 0.5  # hashring._topology.watch.DEFAULT_WATCH_INTERVAL, printed as used
SOURCE_KEY = "hashring:topology:bench"

LOAD_CLIENTS = 4
HOT_KEYS = 100_000
COLD_KEYS = 400_000
QUICK_COLD_KEYS = 100_000
READ_SHARE = 0.8
STEADY_SECONDS = 8.0
QUICK_STEADY_SECONDS = 4.0
WINDOW_SECONDS = 3.0
QUICK_WINDOW_SECONDS = 3.0
TARGET = 0.8
LOAD_CHUNK = 10_000
HASH_FIELDS = 4

READY_TIMEOUT = 120.0
SWITCH_TIMEOUT = 30.0
MIGRATE_TIMEOUT = 900.0
WAIT_CLIENTS = 60.0
DEFAULT_BUSY = 0.1
"""``hashring migrate --max-busy`` when neither ``--migrate-rate`` nor ``--migrate-max-busy``
is given: the pace the README's runbook gives for a store under live load."""

CLIENT_CPUS: frozenset[int] | None = None
"""With ``--cpus split`` (set by :func:`main`): the CPUs every client process is pinned to;
this process, the servers and the migrator keep the others. None: nobody is pinned."""


# ------------------------------------------------------------------ client processes


@dataclass(frozen=True)
class ClientSpec:
    """How a client process builds its client: ``kind`` ``file`` (``from_config`` on the
    path ``target``, watched), ``source`` (``from_source`` on the URL ``target``, ``key``)
    or ``plain`` (``redis.Redis.from_url(target)``)."""

    kind: str
    target: str
    interval: float = DEFAULT_INTERVAL
    key: str = SOURCE_KEY


def build_client(spec: ClientSpec) -> Any:
    if spec.kind == "file":
        return ShardedRedis.from_config(spec.target, watch=True, watch_interval=spec.interval)
    if spec.kind == "source":
        return ShardedRedis.from_source(spec.target, key=spec.key, watch_interval=spec.interval)
    return redis.Redis.from_url(spec.target)


def follow_switches(spec: ClientSpec, cid: int, reports: Any, stop: Any) -> None:
    """A switch client (a): report ``ready``, then every change of ``client.version``
    with the monotonic time it was first seen, until ``stop`` is set."""
    client = build_client(spec)
    try:
        last = client.version
        reports.put(("ready", cid, last, time.monotonic()))
        while not stop.wait(POLL):
            version = client.version
            if version != last:
                reports.put(("switched", cid, version, time.monotonic()))
                last = version
    finally:
        client.close()


def run_load(spec: ClientSpec, cid: int, hot: int, reports: Any, stop: Any) -> None:
    """A load client (b): the read/write mix over ``hot`` keys until ``stop`` is set,
    reporting ``("tick", cid, interval, ops, errors, version, cpu)`` for every completed
    interval of :data:`TICK` seconds (``cpu``: this process's CPU seconds in it), and the
    first few distinct errors."""
    client = build_client(spec)
    rng = random.Random(SEED + cid)
    keys = [f"h:{i}" for i in range(hot)]
    fields = [f"f{i}" for i in range(HASH_FIELDS)]
    randrange, rand = rng.randrange, rng.random
    monotonic, process_time = time.monotonic, time.process_time
    ops = errors = 0
    seen_errors: set[str] = set()
    reports.put(("ready", cid, getattr(client, "version", None), monotonic()))
    interval = int(monotonic() // TICK)
    cpu = process_time()
    try:
        while True:
            i = randrange(hot)
            key = keys[i]
            kind = i % 5
            ok = True
            try:
                if rand() < READ_SHARE:
                    if kind < 4:
                        client.get(key)
                    else:
                        client.hget(key, fields[i % HASH_FIELDS])
                elif kind < 3:
                    if rand() < 0.1:
                        client.delete(key)
                    else:
                        client.set(key, f"v{i}-{cid}")
                elif kind == 3:
                    client.incr(key)
                else:
                    client.hset(key, fields[randrange(HASH_FIELDS)], cid)
            except Exception as exc:  # counted and shown, whatever it is: the run goes on
                ok = False
                message = f"{type(exc).__name__}: {exc}"[:200]
                if len(seen_errors) < 3 and message not in seen_errors:
                    seen_errors.add(message)
                    reports.put(("error", cid, message, monotonic()))
            now = int(monotonic() // TICK)
            if now != interval:
                version = getattr(client, "version", None)
                used, cpu = cpu, process_time()
                reports.put(("tick", cid, interval, ops, errors, version, cpu - used))
                ops = errors = 0
                interval = now
                if stop.is_set():
                    break
            if ok:
                ops += 1
            else:
                errors += 1
    finally:
        client.close()


def pinned(cpus: frozenset[int] | None, target: Callable[..., None], *args: Any) -> None:
    """``target(*args)`` in a client process, first pinned to ``cpus`` (when not None)."""
    if cpus is not None:
        os.sched_setaffinity(0, cpus)
    target(*args)


class Fleet:
    """Client processes running ``target(spec, cid, *extra, reports, stop)``; their reports
    collected in :attr:`messages` (in arrival order)."""

    def __init__(
        self,
        ctx: multiprocessing.context.BaseContext,
        target: Callable[..., None],
        specs: Sequence[ClientSpec],
        extra: tuple[Any, ...] = (),
    ) -> None:
        self.reports = ctx.Queue()
        self.stop_event = ctx.Event()
        self.messages: list[tuple[Any, ...]] = []
        self.processes = [
            ctx.Process(  # type: ignore[attr-defined]
                target=pinned,
                args=(CLIENT_CPUS, target, spec, cid, *extra, self.reports, self.stop_event),
                daemon=True,
                name=f"bench-client-{cid}",
            )
            for cid, spec in enumerate(specs)
        ]
        for process in self.processes:
            process.start()

    def pump(self, timeout: float) -> None:
        """Take the reports that arrive within ``timeout`` seconds (at least one look)."""
        deadline = time.monotonic() + timeout
        while True:
            with suppress(queue.Empty):
                self.messages.append(
                    self.reports.get(timeout=max(0.0, min(0.05, deadline - time.monotonic())))
                )
            if time.monotonic() >= deadline:
                return

    def wait_until(self, condition: Callable[[], bool], timeout: float, what: str) -> None:
        """Take reports until ``condition()`` holds; raise after ``timeout`` seconds or when a
        client process died."""
        deadline = time.monotonic() + timeout
        while not condition():
            dead = [p.name for p in self.processes if p.exitcode not in (None, 0)]
            if dead:
                raise RuntimeError(f"client processes died while waiting for {what}: {dead}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out after {timeout:g} s waiting for {what}")
            self.pump(0.05)

    def run_for(self, seconds: float) -> tuple[float, float]:
        """Take reports for ``seconds``; the (start, end) monotonic times of that span."""
        start = time.monotonic()
        self.pump(seconds)
        return start, time.monotonic()

    def of(self, kind: str) -> list[tuple[Any, ...]]:
        return [m for m in self.messages if m[0] == kind]

    def ready(self) -> bool:
        return len({m[1] for m in self.of("ready")}) == len(self.processes)

    def close(self) -> None:
        """Stop every client (bounded), taking their last reports."""
        self.stop_event.set()
        deadline = time.monotonic() + 30
        while any(p.is_alive() for p in self.processes) and time.monotonic() < deadline:
            self.pump(0.05)
        for process in self.processes:
            if process.is_alive():
                process.terminate()
            process.join(5)
        self.pump(0.05)


@contextmanager
def fleet(
    ctx: multiprocessing.context.BaseContext,
    target: Callable[..., None],
    specs: Sequence[ClientSpec],
    extra: tuple[Any, ...] = (),
) -> Iterator[Fleet]:
    clients = Fleet(ctx, target, specs, extra)
    try:
        clients.wait_until(clients.ready, READY_TIMEOUT, "the clients to start")
        yield clients
    finally:
        clients.close()


# ------------------------------------------------------------------ topologies and data


def topology_text(urls: Sequence[str], previous: str | None = None) -> str:
    text = "".join(f'[nodes.n{i}]\nurl = "{url}"\n' for i, url in enumerate(urls))
    return text + (f'\n[migration]\nprevious = "{previous}"\n' if previous else "")


def staged(path: Path, text: str) -> Path:
    """``text`` written to a sibling of ``path``, ready to be renamed over it."""
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text, encoding="utf-8")
    return temporary


def replace(path: Path, text: str) -> None:
    """Write a sibling file and rename it over ``path``, as deploy tools do."""
    os.replace(staged(path, text), path)


def load_data(servers: list[RedisServer], old_path: Path, hot: int, cold: int) -> None:
    """Flush the data nodes, then write the hot keys (strings, counters, hashes) and the
    cold keys (strings) to their owners under the old topology (pipelined, not timed)."""
    placement = load_topology(old_path).placement()
    clients = {f"n{i}": s.client(socket_timeout=60.0) for i, s in enumerate(servers)}
    try:
        for client in clients.values():
            client.flushall()
        names = [f"h:{i}" for i in range(hot)] + [f"c:{i}" for i in range(cold)]
        for start in range(0, len(names), LOAD_CHUNK):
            chunk = names[start : start + LOAD_CHUNK]
            owners = placement.get_node_many(chunk)
            strings: dict[str, dict[str, Any]] = {}
            hashes: dict[str, list[str]] = {}
            for offset, (name, owner) in enumerate(zip(chunk, owners, strict=True)):
                i = start + offset
                if i < hot and i % 5 == 4:
                    hashes.setdefault(owner, []).append(name)
                else:
                    strings.setdefault(owner, {})[name] = i if i < hot and i % 5 == 3 else f"v{i}"
            for owner, mapping in strings.items():
                clients[owner].mset(mapping)
            for owner, hash_names in hashes.items():
                pipe = clients[owner].pipeline(transaction=False)
                for name in hash_names:
                    pipe.hset(
                        name, mapping={f: name for f in (f"f{k}" for k in range(HASH_FIELDS))}
                    )
                pipe.execute()
    finally:
        for client in clients.values():
            client.close()


def load_plain(server: RedisServer, hot: int) -> None:
    """The hot keys on ``server``'s database 1, for the plain redis-py clients."""
    client = server.client(db=1, socket_timeout=60.0)
    try:
        client.flushdb()
        for start in range(0, hot, LOAD_CHUNK):
            pipe = client.pipeline(transaction=False)
            for i in range(start, min(hot, start + LOAD_CHUNK)):
                name = f"h:{i}"
                if i % 5 == 4:
                    pipe.hset(name, mapping={f"f{k}": name for k in range(HASH_FIELDS)})
                else:
                    pipe.set(name, i if i % 5 == 3 else f"v{i}")
            pipe.execute()
    finally:
        client.close()


# ------------------------------------------------------------------ (a) switch time


@dataclass
class SwitchResult:
    how: str
    interval: float
    all_switched: list[float] = field(default_factory=list)
    """Per publish: seconds until the last client ran the new version."""
    each: list[float] = field(default_factory=list)
    """Per publish and client: seconds until that client ran it."""


def measure_switch(
    ctx: multiprocessing.context.BaseContext,
    servers: list[RedisServer],
    config: RedisServer,
    workdir: Path,
    how: str,
    interval: float,
    publishes: int,
    rng: random.Random,
) -> SwitchResult:
    urls = [s.url for s in servers]
    texts = [topology_text(urls[:-1]), topology_text(urls)]
    paths = [workdir / "switch-3.toml", workdir / "switch-4.toml"]
    for path, text in zip(paths, texts, strict=True):
        path.write_text(text, encoding="utf-8")
    versions = [load_topology(p).version for p in paths]
    followed = workdir / "switch.toml"
    source: RedisTopologySource | None = None
    if how == "file":
        replace(followed, texts[0])
        spec = ClientSpec("file", str(followed), interval)
    else:
        config.client().delete(SOURCE_KEY)
        source = RedisTopologySource(config.url, key=SOURCE_KEY)
        source.publish(paths[0], expect=None)
        spec = ClientSpec("source", config.url, interval, SOURCE_KEY)
    result = SwitchResult(how, interval)
    try:
        with fleet(ctx, follow_switches, [spec] * SWITCH_CLIENTS) as clients:
            for n in range(1, publishes + 1):
                new = n % 2
                clients.pump(rng.uniform(0.0, interval))
                before = len(clients.messages)
                started = time.monotonic()
                if source is None:
                    os.replace(staged(followed, texts[new]), followed)
                else:
                    source.publish(paths[new], expect=versions[1 - new])

                def switched(
                    before: int = before, version: str = versions[new]
                ) -> dict[int, float]:
                    return {
                        m[1]: m[3]
                        for m in clients.messages[before:]
                        if m[0] == "switched" and m[2] == version
                    }

                clients.wait_until(
                    lambda: len(switched()) == SWITCH_CLIENTS,
                    SWITCH_TIMEOUT,
                    f"all clients to run version {versions[new]}",
                )
                seconds = [t - started for t in switched().values()]
                result.all_switched.append(max(seconds))
                result.each.extend(seconds)
    finally:
        if source is not None:
            source.close()
    return result


def run_switch(
    ctx: multiprocessing.context.BaseContext,
    servers: list[RedisServer],
    config: RedisServer,
    workdir: Path,
    quick: bool,
) -> tuple[list[Any], list[Target]]:
    rng = random.Random(SEED)
    publishes = QUICK_PUBLISHES if quick else PUBLISHES
    rows: list[Any] = []
    targets: list[Target] = []
    for how in ("file", "source"):
        for interval in (DEFAULT_INTERVAL, SHORT_INTERVAL):
            r = measure_switch(ctx, servers, config, workdir, how, interval, publishes, rng)
            label = "file, renamed over" if how == "file" else "Redis key, published"
            rows.append(
                [
                    label,
                    f"{interval:g} s",
                    len(r.all_switched),
                    ms(statistics.median(r.all_switched)),
                    ms(max(r.all_switched)),
                    ms(statistics.median(r.each)),
                ]
            )
            targets.append(
                (
                    f"(a) {SWITCH_CLIENTS} clients switched, {label}, watch_interval "
                    f"{interval:g} s: p50 / max",
                    f"{ms(statistics.median(r.all_switched))} / {ms(max(r.all_switched))}",
                    None,
                )
            )
    return rows, targets


# ------------------------------------------------------------------ (b) and (c) load


Tick = tuple[int, int, float]
"""One interval summed over the clients: operations, errors, CPU seconds."""


def per_interval(messages: Sequence[tuple[Any, ...]], clients: int) -> dict[int, Tick]:
    """Interval -> (ops, errors, CPU seconds) summed over the clients, for the intervals
    every client reported."""
    sums: dict[int, list[float]] = {}
    for _, _, interval, n, errors, _, cpu in (m for m in messages if m[0] == "tick"):
        entry = sums.setdefault(interval, [0, 0, 0.0, 0])
        entry[0] += n
        entry[1] += errors
        entry[2] += cpu
        entry[3] += 1
    return {i: (int(n), int(e), cpu) for i, (n, e, cpu, count) in sums.items() if count == clients}


@dataclass
class Window:
    """The whole intervals of one phase of (b)."""

    what: str
    ticks: list[Tick]

    @property
    def mean(self) -> float:
        """Operations per second, over the intervals."""
        seconds = len(self.ticks) * TICK
        return sum(t[0] for t in self.ticks) / seconds if self.ticks else float("nan")

    @property
    def slowest(self) -> float:
        return min((t[0] / TICK for t in self.ticks), default=float("nan"))

    @property
    def errors(self) -> int:
        return sum(t[1] for t in self.ticks)

    @property
    def cores(self) -> float:
        """CPU seconds the clients got per second (how many cores they ran on)."""
        return sum(t[2] for t in self.ticks) / (len(self.ticks) * TICK) if self.ticks else 0.0

    @property
    def cpu_per_op(self) -> float:
        """The clients' CPU seconds per operation."""
        ops = sum(t[0] for t in self.ticks)
        return sum(t[2] for t in self.ticks) / ops if ops else float("nan")


def window(what: str, ticks: dict[int, Tick], start: float, end: float) -> Window:
    """The intervals wholly inside [start, end]."""
    return Window(
        what, [ticks[i] for i in sorted(ticks) if i * TICK >= start and (i + 1) * TICK <= end]
    )


@dataclass
class Migration:
    """One ``hashring migrate --apply`` run: its JSON report, exit status, the monotonic
    time the window's marker appeared (None if never seen), and the CPU seconds the
    command used (all of it: start-up, the wait for clients, the move, the verification)."""

    report: dict[str, Any]
    status: int
    marker_seen: float | None
    cpu: float


def migrate_cli(
    old: Path, new: Path, marker: str, watch: RedisServer, pace: Sequence[str]
) -> Migration:
    """Run ``hashring migrate --apply --format json`` with the flags ``pace`` (``--rate``,
    ``--max-busy``), watching for the window's marker on ``watch``."""
    command = [
        sys.executable, "-m", "hashring", "migrate", "--from", str(old), "--to", str(new),
        "--apply", "--allow-volatile-destination", "--format", "json",
        "--wait-clients", str(WAIT_CLIENTS), *pace,
    ]  # fmt: skip
    seen: list[float] = []
    done = threading.Event()
    probe = watch.client()

    def look() -> None:
        while not done.is_set():
            if probe.exists(marker):
                seen.append(time.monotonic())
                return
            done.wait(POLL)

    looker = threading.Thread(target=look, daemon=True)
    looker.start()
    cpu = _children_cpu()
    try:
        finished = subprocess.run(
            command, capture_output=True, text=True, timeout=MIGRATE_TIMEOUT, check=False
        )
    finally:
        cpu = _children_cpu() - cpu
        done.set()
        looker.join(5)
        probe.close()
    try:
        report: dict[str, Any] = json.loads(finished.stdout)
    except json.JSONDecodeError:
        raise RuntimeError(
            f"hashring migrate exited {finished.returncode} without a JSON report: "
            f"{finished.stderr.strip()[-2000:]}"
        ) from None
    return Migration(report, finished.returncode, seen[0] if seen else None, cpu)


def migrate_meanwhile(
    clients: Fleet, old: Path, new: Path, marker: str, watch: RedisServer, pace: Sequence[str]
) -> Migration | None:
    """:func:`migrate_cli` in a thread while ``clients`` keep reporting (their reports
    pumped until it ends); its result, or None if it raised."""
    result: list[Migration] = []
    mover = threading.Thread(
        target=lambda: result.append(migrate_cli(old, new, marker, watch, pace)), daemon=True
    )
    mover.start()
    clients.wait_until(lambda: not mover.is_alive(), MIGRATE_TIMEOUT, "hashring migrate")
    return result[0] if result else None


def _children_cpu() -> float:
    """CPU seconds of this process's waited-for children (the migrate command: the client
    processes are the forkserver's children, the servers are waited for at the end)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def running(clients: Fleet, version: str) -> bool:
    """Whether every client's latest interval ran ``version``."""
    latest = {m[1]: m[5] for m in clients.of("tick")}
    return len(latest) == len(clients.processes) and set(latest.values()) == {version}


def handled_rate(report: dict[str, Any]) -> float:
    handled = report["moved"] + report["conflicts"] + report["missing"]
    return float(handled / report["elapsed_seconds"])


@dataclass
class Cycle:
    """One pass of (b) on ShardedRedis: its phases, in order, and the migration under load."""

    windows: list[Window]
    loaded: Migration

    @property
    def on_old(self) -> Window:
        return self.windows[0]

    @property
    def during(self) -> Window:
        return self.windows[2]

    @property
    def on_final(self) -> Window:
        return self.windows[4]

    @property
    def reference(self) -> float:
        """Ops/s without a migration: the mean of the old and the final topology's."""
        return (self.on_old.mean + self.on_final.mean) / 2

    @property
    def ratio(self) -> float:
        """Ops/s while keys move over :attr:`reference`."""
        return self.during.mean / self.reference


def sharded_cycle(
    ctx: multiprocessing.context.BaseContext,
    servers: list[RedisServer],
    workdir: Path,
    n_clients: int,
    pace: Sequence[str],
    cold: int,
    steady: float,
    window_seconds: float,
    marker: str,
    notes: list[str],
) -> Cycle:
    """(b) on ShardedRedis once, from freshly loaded data: clients following the file on
    the old topology, the window, the move, after it, the final topology. Problems are
    added to ``notes``.

    Raises:
        RuntimeError: the migration under load failed or did not report.
    """
    old_path, window_path, followed = (
        workdir / "old.toml",
        workdir / "window.toml",
        workdir / "cluster.toml",
    )
    window_text = window_path.read_text(encoding="utf-8")
    final_text = (workdir / "final.toml").read_text(encoding="utf-8")
    window_version = load_topology(window_path).version
    final_version = load_topology(workdir / "final.toml").version
    load_data(servers, old_path, HOT_KEYS, cold)

    # (b) ShardedRedis following the file: old topology, window, migration, after it.
    shutil.copyfile(old_path, followed)
    spec = ClientSpec("file", str(followed), DEFAULT_INTERVAL)
    with fleet(ctx, run_load, [spec] * n_clients, (HOT_KEYS,)) as c:
        c.pump(TICK)
        old_span = c.run_for(steady)
        replace(followed, window_text)

        c.wait_until(
            lambda: running(c, window_version), SWITCH_TIMEOUT, "the clients to run the window"
        )
        window_span = c.run_for(window_seconds)
        loaded = migrate_meanwhile(c, old_path, window_path, marker, servers[0], pace)
        after_span = c.run_for(window_seconds)
        replace(followed, final_text)
        c.wait_until(
            lambda: running(c, final_version), SWITCH_TIMEOUT, "the clients to run the final"
        )
        final_span = c.run_for(steady)
    if loaded is None:
        raise RuntimeError("hashring migrate under load did not report")
    if loaded.marker_seen is None or loaded.report["misplaced"]:
        raise RuntimeError(
            f"the migration under load failed: exit {loaded.status}, misplaced "
            f"{loaded.report['misplaced']}, marker seen: {loaded.marker_seen is not None}"
        )
    if loaded.status != 0:
        notes.append(
            f"hashring migrate under load exited {loaded.status}: {loaded.report['lost']:,} "
            "moved keys lost (a destination restarted or evicted); misplaced 0"
        )
    ticks = per_interval(c.messages, n_clients)
    moving = (loaded.marker_seen, loaded.marker_seen + loaded.report["elapsed_seconds"])
    windows = [
        window("ShardedRedis, old topology (3 nodes)", ticks, *old_span),
        window("ShardedRedis, window topology, before the move", ticks, *window_span),
        window("ShardedRedis, window topology, while keys move", ticks, *moving),
        window("ShardedRedis, window topology, after the move", ticks, *after_span),
        window("ShardedRedis, final topology (4 nodes)", ticks, *final_span),
    ]
    stale = [
        m for m in c.of("tick") if moving[0] <= m[2] * TICK < moving[1] and m[5] != window_version
    ]
    if stale:
        notes.append(f"{len(stale)} client intervals during the move ran another version")
    failed = sum(m[4] for m in c.of("tick"))
    if failed:
        first = sorted({m[2] for m in c.of("error")})
        notes.append(
            f"{failed:,} ShardedRedis operations failed over the whole run (counted in the "
            f"intervals above only when inside a window); first errors: {'; '.join(first)}"
        )
    if not windows[2].ticks:
        notes.append(
            f"the move lasted {loaded.report['elapsed_seconds']:.2f} s: no whole interval of "
            f"{TICK:g} s inside it; use more cold keys"
        )
    return Cycle(windows, loaded)


def run_load_part(
    ctx: multiprocessing.context.BaseContext,
    servers: list[RedisServer],
    workdir: Path,
    quick: bool,
    n_clients: int,
    pace: Sequence[str],
    repeat: int = 1,
) -> tuple[list[Any], list[Any], list[Target], list[str]]:
    """(c), the control of (b), then ``repeat`` passes of (b) on ShardedRedis (the target is
    judged on the median of their ratios): the rows of (b), of (c), the targets, notes.

    Raises:
        RuntimeError: a migration failed or did not report.
    """
    cold = QUICK_COLD_KEYS if quick else COLD_KEYS
    steady = QUICK_STEADY_SECONDS if quick else STEADY_SECONDS
    window_seconds = QUICK_WINDOW_SECONDS if quick else WINDOW_SECONDS
    urls = [s.url for s in servers]
    old_path, window_path = workdir / "old.toml", workdir / "window.toml"
    old_path.write_text(topology_text(urls[:-1]), encoding="utf-8")
    window_path.write_text(topology_text(urls, previous="old.toml"), encoding="utf-8")
    (workdir / "final.toml").write_text(topology_text(urls), encoding="utf-8")
    marker = marker_key(load_topology(window_path).version)
    notes: list[str] = []

    # (c) without load: migrate the data set with no client running.
    load_data(servers, old_path, HOT_KEYS, cold)
    quiet = migrate_cli(old_path, window_path, marker, servers[0], pace)
    if quiet.status != 0 or quiet.report["misplaced"] or quiet.marker_seen is None:
        raise RuntimeError(
            f"the migration without load failed: exit {quiet.status}, misplaced "
            f"{quiet.report['misplaced']}, marker seen: {quiet.marker_seen is not None}"
        )
    load_data(servers, old_path, HOT_KEYS, cold)
    load_plain(servers[0], HOT_KEYS)

    # (b) plain redis-py to one node; then the same clients while keys move on the same
    # servers (db 0, not theirs): the control, what a move costs any client on this
    # machine (the CPU the migrator and the servers' MIGRATEs take), sharded or not.
    plain_url = f"redis://{servers[0].host}:{servers[0].port}/1"
    with fleet(ctx, run_load, [ClientSpec("plain", plain_url)] * n_clients, (HOT_KEYS,)) as c:
        c.pump(TICK)
        span = c.run_for(steady)
        control = migrate_meanwhile(c, old_path, window_path, marker, servers[0], pace)
    plain_ticks = per_interval(c.messages, n_clients)
    plain = window("plain redis-py, n0 only", plain_ticks, *span)
    if control is None or control.marker_seen is None:
        raise RuntimeError("the control migration did not report or set no marker")
    started = control.marker_seen
    plain_moving = window(
        "plain redis-py, n0 only, while keys move (control)",
        plain_ticks,
        started,
        started + control.report["elapsed_seconds"],
    )
    cycles = [
        sharded_cycle(
            ctx, servers, workdir, n_clients, pace, cold, steady, window_seconds, marker, notes
        )
        for _ in range(repeat)
    ]
    # the cycle whose ratio is the median (the lower middle one of an even count) details
    # the target; every cycle's phases are shown
    cycle = sorted(cycles, key=lambda c: c.ratio)[(len(cycles) - 1) // 2]
    ratio = statistics.median(c.ratio for c in cycles)
    on_old, during, on_final = cycle.on_old, cycle.during, cycle.on_final

    def row(w: Window, what: str, of: Cycle) -> list[Any]:
        return [
            what,
            len(w.ticks),
            f"{w.mean:,.0f}",
            f"{w.slowest:,.0f}",
            times(w.mean / of.on_old.mean),
            times(w.mean / of.reference),
            times(w.mean / plain.mean),
            f"{w.cores:.2f}",
            f"{w.cpu_per_op * 1e6:,.0f}",
            w.errors,
        ]

    load_rows = [row(plain, plain.what, cycle), row(plain_moving, plain_moving.what, cycle)]
    for number, each in enumerate(cycles, 1):
        tag = f" [{number}]" if len(cycles) > 1 else ""
        load_rows += [row(w, w.what + tag, each) for w in each.windows]
    migrate_rows: list[Any] = []
    runs = [("no client load", quiet)] + [
        (f"{n_clients} clients running" + (f" [{i}]" if len(cycles) > 1 else ""), c.loaded)
        for i, c in enumerate(cycles, 1)
    ]
    for label, run in runs:
        report = run.report
        migrate_rows.append(
            [
                label,
                f"{report['scanned']:,}",
                f"{report['to_move']:,}",
                f"{report['moved']:,}",
                f"{report['conflicts']:,}",
                f"{report['missing']:,}",
                f"{report['elapsed_seconds']:.2f} s",
                f"{report['keys_per_second']:,.0f}",
                f"{handled_rate(report):,.0f}",
                f"{run.cpu:.2f} s",
            ]
        )
    quiet_rate = quiet.report["keys_per_second"]
    loaded_rate = cycle.loaded.report["keys_per_second"]
    each_ratio = ", ".join(times(c.ratio) for c in cycles)
    shown = times(ratio) + (f" (median of {each_ratio})" if len(cycles) > 1 else "")
    scope = f"; {len(cycles)} runs, median" if len(cycles) > 1 else ""
    detail = " (the median run)" if len(cycles) > 1 else ""
    targets: list[Target] = [
        (
            f"(b) ops/s while keys move >= {TARGET:g}x ops/s without a migration (mean of "
            f"the old topology before it and the final one after it; {n_clients} clients"
            f"{scope})",
            shown,
            None if ratio != ratio else ratio >= TARGET,
        ),
        (
            f"(b) ops/s while keys move vs the old topology alone / the final one alone{detail}",
            f"{times(during.mean / on_old.mean)} / {times(during.mean / on_final.mean)}",
            None,
        ),
        (
            "(b) control: plain redis-py ops/s while keys move vs without",
            times(plain_moving.mean / plain.mean),
            None,
        ),
        (
            "(b) the sharded ratio over the control's (what the window itself costs)",
            times(ratio / (plain_moving.mean / plain.mean)),
            None,
        ),
        (
            f"(b) ops/s while keys move vs plain redis-py, 1 node{detail}",
            times(during.mean / plain.mean),
            None,
        ),
        (
            f"(b) ops/s on the old topology vs plain redis-py, 1 node{detail}",
            times(on_old.mean / plain.mean),
            None,
        ),
        (
            f"(b) client CPU per operation while keys move vs on the old topology{detail}",
            f"{times(during.cpu_per_op / on_old.cpu_per_op)} "
            f"({during.cpu_per_op * 1e6:,.0f} vs {on_old.cpu_per_op * 1e6:,.0f} µs)",
            None,
        ),
        (
            f"(c) migration keys moved/s under client load vs without{detail}",
            f"{times(loaded_rate / quiet_rate)} ({loaded_rate:,.0f} vs {quiet_rate:,.0f})",
            None,
        ),
    ]
    return load_rows, migrate_rows, targets, notes


# ------------------------------------------------------------------ main


def forkserver() -> multiprocessing.context.BaseContext:
    """A forkserver context with the clients' imports done once in the server."""
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["redis", "hashring.adapters.redis", "__main__"])
    return ctx


def split_cpus() -> str:
    """Pin this process (and so the servers, the forkserver and the migrate commands it
    starts) to the upper half of its CPUs, and set :data:`CLIENT_CPUS` to the lower half;
    what was done, in words. With fewer than 2 CPUs, or no ``os.sched_setaffinity`` (not
    Linux), nothing is pinned."""
    global CLIENT_CPUS
    if not hasattr(os, "sched_setaffinity"):
        return "everything on every CPU (no sched_setaffinity here)"
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return "everything on the one CPU"
    half = len(cpus) // 2
    CLIENT_CPUS = frozenset(cpus[:half])
    os.sched_setaffinity(0, cpus[half:])
    return f"clients on CPUs {cpus[:half]}, the servers and the migrator on {cpus[half:]}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--quick", action="store_true", help="about a minute: fewer keys, shorter windows"
    )
    parser.add_argument("--part", choices=("all", "switch", "load"), default="all")
    parser.add_argument(
        "--clients", type=int, default=LOAD_CLIENTS, help="load client processes of (b)"
    )
    parser.add_argument(
        "--migrate-rate",
        type=float,
        default=None,
        help="hashring migrate --rate (keys/s) for (b) and (c), instead of the default pace",
    )
    parser.add_argument(
        "--migrate-max-busy",
        type=float,
        default=None,
        help="hashring migrate --max-busy (a share of time, 0.01 to 1) for (b) and (c), "
        f"instead of the default pace (--max-busy {DEFAULT_BUSY:g}); 1: not paced",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="passes of (b) on ShardedRedis, each from freshly loaded data (default 1); the "
        "target is judged on the median of their ratios",
    )
    parser.add_argument(
        "--cpus",
        choices=("split", "shared"),
        default="split",
        help="split (default): the client processes on half of the CPUs, the servers, the "
        "migrator and this process on the others, as on a deployment where clients do not "
        "share their machines with them; shared: everything on every CPU",
    )
    args = parser.parse_args(argv)
    pace = [
        *(["--rate", f"{args.migrate_rate:g}"] if args.migrate_rate else []),
        *(["--max-busy", f"{args.migrate_max_busy:g}"] if args.migrate_max_busy else []),
    ] or ["--max-busy", f"{DEFAULT_BUSY:g}"]
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    signal.signal(signal.SIGTERM, exit_on_signal)
    placement = split_cpus() if args.cpus == "split" else "everything on every CPU"
    ctx = forkserver()
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(
        f"online resharding ({'quick' if args.quick else 'full'} run; Python "
        f"{sys.version.split()[0]}, redis-py {redis.__version__}, {os.cpu_count()} CPUs, "
        f"load average {load}; {placement})"
    )
    targets: list[Target] = []
    with (
        redis_servers(DATA_NODES + 1) as servers,
        tempfile.TemporaryDirectory(prefix="hashring-resharding-") as tmp,
    ):
        data, config = servers[:DATA_NODES], servers[DATA_NODES]
        workdir = Path(tmp)
        if args.part in ("all", "switch"):
            rows, found = run_switch(ctx, data, config, workdir, args.quick)
            targets += found
            print(
                f"\n(a) time from publishing a topology to all {SWITCH_CLIENTS} client processes "
                "running it"
            )
            print(
                tabulate(
                    rows,
                    headers=[
                        "followed",
                        "watch_interval",
                        "publishes",
                        "all: p50",
                        "all: max",
                        "one client: p50",
                    ],
                )
            )
        if args.part in ("all", "load"):
            load_rows, migrate_rows, found, notes = run_load_part(
                ctx, data, workdir, args.quick, args.clients, pace, args.repeat
            )
            targets += found
            print(
                f"\n(b) client throughput, {args.clients} client processes, {HOT_KEYS:,} hot keys, "
                f"{READ_SHARE:.0%} reads (per {TICK:g} s interval, summed over the clients)"
            )
            print(
                tabulate(
                    load_rows,
                    headers=[
                        "clients",
                        "intervals",
                        "ops/s",
                        "slowest",
                        "vs old topology",
                        "vs no migration",
                        "vs plain",
                        "client CPU (cores)",
                        "client CPU µs/op",
                        "errors",
                    ],
                )
            )
            flags = "".join(f" {flag}" for flag in pace)
            print(f"\n(c) hashring migrate --apply{flags} (its JSON report), 3 -> 4 nodes")
            print(
                tabulate(
                    migrate_rows,
                    headers=[
                        "while",
                        "scanned",
                        "to move",
                        "moved",
                        "conflicts",
                        "missing",
                        "move pass",
                        "moved/s",
                        "handled/s",
                        "migrate CPU",
                    ],
                )
            )
            for note in notes:
                print(f"note: {note}")
    print()
    print(targets_table(targets))
    return 0


if __name__ == "__main__":
    sys.exit(main())
