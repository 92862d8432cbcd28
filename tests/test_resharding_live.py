"""The proof of issue 13: online resharding under live traffic, with real processes.

Four redis-server nodes (n0..n2 old, n3 new; AOF on, so ``migrate --apply`` accepts them)
and four client processes (``tests/resharding_client.py``: two ``ShardedRedis`` with three
threads, two ``AsyncShardedRedis`` with three tasks) that follow the topology by themselves,
from a watched file (``from_config(..., watch=True)``) or from a Redis key on a fifth server
(``from_source``). Each worker owns a disjoint slice of 50,000 pre-populated keys (strings,
counters, hashes) and runs SET / INCR / HSET / DEL and reads for the whole test, checking
every answer against its own model and logging every acknowledged write; all workers also
increment 200 shared counters (the same keys from clients of both topologies).

Meanwhile the operator's flow runs: publish the window (four nodes, ``[migration] previous =
"old.toml"``); ``hashring migrate --from old.toml --to window.toml --apply`` in a child
process, SIGKILLed once it has moved keys (2,000 ``cold:`` keys that no client touches show
when), then re-run to completion; publish the final topology; ``hashring migrate --from
window.toml --to final.toml --apply`` (clears the window's marker). Each step first waits
(bounded) until every worker has acknowledged writes since the step before, so traffic
overlaps every phase.

Then, against the logs and a scan of every node: no acknowledged write lost (shared
counters count every acknowledged INCR), no deleted key back, no read that missed the
latest value its client had acknowledged, no command raising anything but a connection
error or timeout, every key on its owner under the final topology and on no other node, no
marker or unknown key left, every client on the final version, work done in each phase and
while keys moved. The re-run exits 0: nothing misplaced, nothing lost (keys it moved that
clients then deleted count as ``deleted``, bounded by the DELs acknowledged meanwhile).

About 20 to 40 s per test on two cores (the workers are paced at WORKER_RATE operations per
second so that the migrator and the verdict get CPU). A failure prints every count and the
first examples of each kind (``-s`` also shows them for a pass).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hashring.adapters.redis import ShardedRedis

from hashring import load_topology
from hashring._topology.clients import MARKER_PREFIX
from tests.cli_runs import run_checked
from tests.redis_servers import RedisServer, RedisServerFactory
from tests.resharding_client import (
    SHARED,
    WRITES,
    Worker,
    apply_write,
    initial_state,
    key_name,
    kind_of,
    read_as_state,
)
from tests.test_cli_migrate import AOF
from tests.test_redis_watch import replace
from tests.waiting import wait_until

pytestmark = pytest.mark.redis

KEYS = 50_000
COLD = 2_000
PROCESSES = ("sync", "async", "sync", "async")
THREADS = 3
WATCH_INTERVAL = 0.1
WORKER_RATE = 150
"""Most operations per second of one worker: traffic all along, CPU left for the rest."""
STEP_ACKS = 25
"""Writes every worker must acknowledge after a step of the flow before the next one."""
PHASE_ACKS = THREADS * STEP_ACKS
"""Writes each client process must have acknowledged in each phase (old, window, final)
and while the migrator ran (the flow's waits give at least that many)."""
RATE = 4_000
"""Keys per second of the migrate run that is killed: slow enough to kill it mid-way."""
BOUND = 90.0
"""Seconds any one wait of this module may take before the test fails."""
CLIENT = Path(__file__).with_name("resharding_client.py")
EXAMPLES = 5
TOLERATED = ("ConnectionError", "TimeoutError")
"""Errors a client may meet (an effect then unknown: the key is re-read); any other
exception raised by a command fails the test."""
SOURCE_KEY = "hashring:live-topology"


# ------------------------------------------------------------------------------ the fleet


@dataclass
class Fleet:
    """The client processes, their status files and logs."""

    directory: Path
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def stop_file(self) -> Path:
        return self.directory / "stop"

    @property
    def start_file(self) -> Path:
        return self.directory / "go"

    def start(self, where: list[str]) -> None:
        per = KEYS // len(PROCESSES)
        for p, mode in enumerate(PROCESSES):
            with open(self.directory / f"client-{p}.err", "wb") as err:
                self.processes.append(
                    subprocess.Popen(
                        [
                            sys.executable, str(CLIENT), "--mode", mode, *where,
                            "--worker-id", str(p), "--keys", f"{p * per}:{(p + 1) * per}",
                            "--threads", str(THREADS), "--seed", "13",
                            "--rate", str(WORKER_RATE),
                            "--watch-interval", str(WATCH_INTERVAL),
                            "--log", str(self.log(p)), "--status", str(self.status_path(p)),
                            "--stop-file", str(self.stop_file),
                            "--start-file", str(self.start_file),
                        ],
                        stdin=subprocess.DEVNULL, stdout=err, stderr=err,
                    )
                )  # fmt: skip

    def log(self, p: int) -> Path:
        return self.directory / f"client-{p}.jsonl"

    def status_path(self, p: int) -> Path:
        return self.directory / f"client-{p}.status"

    def stderr(self, p: int) -> str:
        return (self.directory / f"client-{p}.err").read_text(errors="replace")[-3000:]

    def statuses(self) -> list[dict[str, Any] | None]:
        found: list[dict[str, Any] | None] = []
        for p, process in enumerate(self.processes):
            if process.poll() is not None and not self.stop_file.exists():
                raise AssertionError(
                    f"client {p} exited with {process.returncode}:\n{self.stderr(p)}"
                )
            path = self.status_path(p)
            found.append(json.loads(path.read_text()) if path.exists() else None)
        return found

    def acks(self) -> list[int]:
        """Writes acknowledged so far, per worker (0 for a client not reporting yet)."""
        return [
            a for s in self.statuses() for a in (s["acks"] if s else [0] * THREADS)
        ]  # fmt: skip

    def wait_acks(self, what: str) -> None:
        """Until every worker has acknowledged STEP_ACKS more writes than now."""
        base = self.acks()
        wait_until(
            lambda: all(a >= b + STEP_ACKS for a, b in zip(self.acks(), base, strict=True)),
            f"every worker to acknowledge {STEP_ACKS} writes {what}",
            timeout=BOUND,
            poll=0.02,
        )

    def wait_version(self, version: str) -> None:
        wait_until(
            lambda: all(s is not None and s["version"] == version for s in self.statuses()),
            f"every client to run version {version}",
            timeout=BOUND,
            poll=0.02,
        )

    def stop(self) -> None:
        self.stop_file.write_text("stop")
        for p, process in enumerate(self.processes):
            try:
                process.wait(BOUND)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                raise AssertionError(f"client {p} did not stop:\n{self.stderr(p)}") from None
            assert process.returncode == 0, f"client {p}: {process.returncode}\n{self.stderr(p)}"

    def kill(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
                process.wait()

    def records(self) -> tuple[list[list[dict[str, Any]]], list[dict[str, Any]]]:
        """Each client's records (workers' records in their order) and summary."""
        logs, summaries = [], []
        for p in range(len(self.processes)):
            lines = self.log(p).read_text().splitlines()
            records = [json.loads(line) for line in lines]
            assert records, f"client {p}: empty log"
            assert records[-1]["kind"] == "summary", f"client {p}: no summary"
            logs.append(records[:-1])
            summaries.append(records[-1])
        return logs, summaries


# ------------------------------------------------------------------------------ the cluster


class Cluster:
    """Four nodes; old.toml (n0..n2), window.toml (n0..n3, previous old.toml), final.toml
    (n0..n3), and the live file topology.toml beside them."""

    def __init__(self, servers: list[RedisServer], directory: Path) -> None:
        self.servers = servers
        self.directory = directory
        self.nodes = {f"n{i}": s.client(decode_responses=True) for i, s in enumerate(servers)}
        tables = "".join(f'[nodes.n{i}]\nurl = "{s.url}"\n' for i, s in enumerate(servers))
        three = "".join(f'[nodes.n{i}]\nurl = "{s.url}"\n' for i, s in enumerate(servers[:3]))
        self.texts = {
            "old": three,
            "window": '[migration]\nprevious = "old.toml"\n' + tables,
            "final": tables,
        }
        for name, text in self.texts.items():
            self.file(name).write_text(text)
        self.live = directory / "topology.toml"
        self.version = {name: load_topology(self.file(name)).version for name in self.texts}
        self.children: list[subprocess.Popen[bytes]] = []

    def file(self, name: str) -> Path:
        return self.directory / f"{name}.toml"

    def populate(self) -> None:
        """KEYS worker keys at their initial state, COLD cold keys and SHARED counters at 0,
        through a ShardedRedis on old.toml (closed after: its connections are named)."""
        client = ShardedRedis.from_config(self.file("old"), client_name="loader")
        try:
            strings = {key_name(n): initial_state(n) for n in range(KEYS) if kind_of(n) != "hash"}
            strings.update({f"cold:{i}": f"c{i}" for i in range(COLD)})
            strings.update({f"shared:{i}": 0 for i in range(SHARED)})
            items = list(strings.items())
            for start in range(0, len(items), 10_000):  # MSET: one command per node
                client.mset(dict(items[start : start + 10_000]))
            pipe = client.pipeline(transaction=False)
            for n in range(KEYS):
                if kind_of(n) == "hash":
                    pipe.hset(key_name(n), mapping=initial_state(n))
            pipe.execute()
        finally:
            client.close()
        assert sum(node.dbsize() for node in self.nodes.values()) == KEYS + COLD + SHARED

    def migrate(self, source: str, target: str, *extra: str) -> subprocess.Popen[bytes]:
        """``hashring migrate --from SOURCE --to TARGET --apply --format json`` as a child
        (killed at teardown if it still runs)."""
        child = subprocess.Popen(
            [
                sys.executable, "-m", "hashring", "migrate", "--from", str(self.file(source)),
                "--to", str(self.file(target)), "--apply", "--format", "json",
                "--wait-clients", "60", *extra,
            ],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        self.children.append(child)
        return child

    def contents(self) -> dict[str, list[tuple[str, Any]]]:
        """Every key of every node -> [(node, value)] (a hash as a dict; keys of other
        names than the test's are only listed, with their TYPE)."""
        found: dict[str, list[tuple[str, Any]]] = defaultdict(list)
        for name, node in self.nodes.items():
            strings, hashes, others = [], [], []
            for key in node.scan_iter(count=5_000):
                prefix, _, index = key.partition(":")
                if prefix == "k" and index.isdigit() and kind_of(int(index)) == "hash":
                    hashes.append(key)
                elif prefix in ("k", "cold", "shared") and index.isdigit():
                    strings.append(key)
                else:
                    others.append(key)
            pipe = node.pipeline(transaction=False)
            for start in range(0, len(strings), 2_000):
                pipe.mget(strings[start : start + 2_000])
            for key in hashes:
                pipe.hgetall(key)
            for key in others:
                pipe.type(key)
            answers = pipe.execute()
            chunks = (len(strings) + 1_999) // 2_000
            values = [v for chunk in answers[:chunks] for v in chunk] + answers[chunks:]
            for key, value in zip(strings + hashes + others, values, strict=True):
                found[key].append((name, value))
        return found


# ------------------------------------------------------------------------------ the flow


@dataclass
class Timeline:
    """Monotonic times of the flow's steps, and what the migrate re-run answered."""

    marks: dict[str, float] = field(default_factory=dict)
    rerun: tuple[int, dict[str, Any], str] = (0, {}, "")
    """Exit status, JSON report and stderr of the migrate run that finished the move."""

    def mark(self, name: str) -> None:
        self.marks[name] = time.monotonic()


def cold_on_new_node(cluster: Cluster) -> Callable[[], int]:
    """How many cold keys that move to n3 under the window are on n3 now."""
    placement = load_topology(cluster.file("window")).placement()
    cold = [f"cold:{i}" for i in range(COLD)]
    moving = [k for k, owner in zip(cold, placement.get_node_many(cold), strict=True)
              if owner == "n3"]  # fmt: skip
    assert moving
    return lambda: int(cluster.nodes["n3"].exists(*moving))


def finished(process: subprocess.Popen[bytes], what: str) -> tuple[int, dict[str, Any], str]:
    try:
        out, err = process.communicate(timeout=BOUND)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
        raise AssertionError(f"{what} did not finish: {err.decode(errors='replace')}") from None
    text = err.decode(errors="replace")
    try:
        report = json.loads(out)
    except ValueError:
        raise AssertionError(f"{what}: exit {process.returncode}, no report: {text}") from None
    return process.returncode, report, text


def run_flow(
    cluster: Cluster, fleet: Fleet, where: list[str], publish: Callable[[str], None]
) -> Timeline:
    """The operator's flow under traffic (see the module docstring)."""
    times = Timeline()
    publish("old")
    fleet.start(where)  # the clients start up while the keys are written; they wait for "go"
    times.mark("populate")
    cluster.populate()
    fleet.wait_version(cluster.version["old"])
    times.mark("start")
    fleet.start_file.write_text("go")
    fleet.wait_acks("on the old topology")

    times.mark("window")
    publish("window")
    fleet.wait_version(cluster.version["window"])
    fleet.wait_acks("in the window, before the migration")

    moved = cold_on_new_node(cluster)
    assert moved() == 0
    times.mark("migrate")
    first = cluster.migrate("old", "window", "--rate", str(RATE))
    wait_until(
        lambda: moved() > 0 or first.poll() is not None,
        "the migrator to move keys",
        timeout=BOUND,
        poll=0.01,
    )
    assert first.poll() is None, (
        f"migrate ended (exit {first.returncode}) before it could be killed: "
        f"{first.communicate()[1].decode(errors='replace')}"
    )
    first.send_signal(signal.SIGKILL)
    first.communicate(timeout=BOUND)
    assert first.returncode == -signal.SIGKILL
    times.mark("killed")
    assert moved() > 0, "nothing had moved when the migrator was killed"
    fleet.wait_acks("between the killed migrate and its re-run")

    times.mark("rerun")
    times.rerun = finished(cluster.migrate("old", "window"), "the migrate re-run")
    times.mark("migrated")
    fleet.wait_acks("in the window, after the migration")

    times.mark("final")
    publish("final")
    fleet.wait_version(cluster.version["final"])
    status, report, stderr = finished(cluster.migrate("window", "final"), "leaving the window")
    assert status == 0, (report, stderr)
    assert report["window"]["cleared_on"] == ["n0", "n1", "n2"], report["window"]
    fleet.wait_acks("on the final topology")
    times.mark("stop")
    fleet.stop()
    times.mark("stopped")
    return times


# ------------------------------------------------------------------------------ the verdict


def examples(items: list[Any]) -> str:
    """The first EXAMPLES of ``items``, one JSON each (cut at 300 characters)."""
    return "; ".join(json.dumps(i, default=str)[:300] for i in items[:EXAMPLES]) or "-"


@dataclass
class Replay:
    """What the clients' logs say: the state every key must have, and what happened."""

    expected: dict[str, Any]
    """Key -> its state after every acknowledged write (shared counters: the increments)."""
    uncertain: set[str] = field(default_factory=set)
    """Keys whose last write raised and that no re-read has settled."""
    raised: Counter[str] = field(default_factory=Counter)
    """Shared counter -> INCRs that raised (each may or may not have run)."""
    violations: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    acks: list[Counter[str]] = field(default_factory=list)
    """Per client: acknowledged writes per phase, and while keys moved ("moving")."""
    deletes_while_moving: int = 0
    """DELs acknowledged from the migrate re-run's start until the final topology."""


def replay(logs: list[list[dict[str, Any]]], times: Timeline) -> Replay:
    """Fold every client's records, in each worker's order, over the keys' initial states."""
    expected: dict[str, Any] = {key_name(n): initial_state(n) for n in range(KEYS)}
    expected.update({f"cold:{i}": f"c{i}" for i in range(COLD)})
    expected.update({f"shared:{i}": 0 for i in range(SHARED)})
    done = Replay(expected, acks=[Counter() for _ in logs])
    marks = times.marks
    edges = [("old", marks["start"]), ("window", marks["window"]), ("final", marks["final"])]
    for acks, records in zip(done.acks, logs, strict=True):
        for record in records:
            kind, key = record["kind"], record.get("key")
            if kind == "ack":
                op, t = record["op"], record["t"]
                if op == "SHARED":
                    expected[key] += 1
                else:
                    expected[key] = apply_write(expected[key], op, record)
                acks[max((low, phase) for phase, low in edges if low <= t)[1]] += 1
                acks["moving"] += marks["migrate"] <= t <= marks["migrated"]
                if op == "DEL" and marks["rerun"] <= t < marks["final"]:
                    done.deletes_while_moving += 1  # (a margin: the re-run ends before)
            elif kind == "violation":
                done.violations.append(record)
            elif kind == "error":
                done.errors.append(record)
                if record["op"] in WRITES:
                    done.uncertain.add(record["args"][0])
                elif record["op"] == "SHARED":
                    done.raised[record["args"][0]] += 1
            elif kind == "resync":
                expected[key] = record["state"]
                done.uncertain.discard(key)
    return done


def state_kind(key: str) -> str:
    """The type of a key of this test, as :func:`read_as_state` takes it."""
    prefix, _, index = key.partition(":")
    return {"cold": "string", "shared": "counter"}.get(prefix) or kind_of(int(index))


def verdict(cluster: Cluster, fleet: Fleet, times: Timeline) -> None:
    """Replay the logs into the expected state of every key and compare it with a scan of
    every node; collect the clients' violations; assert, with every count in each message
    and the first examples of each kind of failure."""
    times.mark("verdict")
    logs, summaries = fleet.records()
    done = replay(logs, times)
    expected = done.expected
    found = cluster.contents()
    times.mark("scanned")
    markers = sorted(k for k in found if k.startswith(MARKER_PREFIX))
    strays = sorted(k for k in found if k not in expected and k not in markers)
    keys = sorted(expected)
    final = load_topology(cluster.file("final")).placement()
    owners = dict(zip(keys, final.get_node_many(keys), strict=True))
    lost, resurrected, misplaced, twice = [], [], [], []
    for key in keys:
        copies = found.get(key, [])
        if len(copies) > 1:
            twice.append({"key": key, "copies": copies})
        if any(node != owners[key] for node, _ in copies):
            misplaced.append({"key": key, "owner": owners[key], "copies": copies})
        if key in done.uncertain:
            continue
        on_owner = [value for node, value in copies if node == owners[key]]
        actual = read_as_state(state_kind(key), on_owner[0]) if on_owner else None
        want = expected[key]
        if key.startswith("shared:"):  # every acknowledged INCR, at most the ones that raised
            if not want <= (actual or 0) <= want + done.raised[key]:
                lost.append({"key": key, "kind": "shared", "increments": want, "found": actual,
                             "raised": done.raised[key], "copies": copies})  # fmt: skip
        elif actual != want and want is None:
            resurrected.append({"key": key, "found": actual, "copies": copies})
        elif actual != want:
            kind = "cold" if key.startswith("cold:") else state_kind(key)
            lost.append({"key": key, "kind": kind, "expected": want, "found": actual,
                         "copies": copies})  # fmt: skip

    status, report, stderr = times.rerun
    violations, errors = done.violations, done.errors
    by_op = Counter(v["op"] for v in violations)
    lost_kinds = Counter(item["kind"] for item in lost)
    unexpected = [e for e in errors if e["type"] not in TOLERATED]
    violating = len({k for v in violations for k in v["keys"]})
    steps = {k: round(v - times.marks["start"], 2) for k, v in times.marks.items()}
    numbers = "\n".join(
        [
            f"lost={len(lost)} {dict(lost_kinds)} resurrected={len(resurrected)}",
            f"read-your-writes violations={len(violations)} {dict(by_op)} on {violating} keys",
            f"misplaced={len(misplaced)} twice={len(twice)} markers={markers} "
            f"strays={len(strays)} uncertain={len(done.uncertain)}",
            f"errors={len(errors)} {dict(Counter(e['type'] for e in errors))}",
            f"acks per client and phase={[dict(c) for c in done.acks]}",
            f"ops={[s['ops'] for s in summaries]}",
            f"versions={[s['version'] for s in summaries]} final={cluster.version['final']}",
            f"migrate re-run: exit {status}, moved={report.get('moved')} "
            f"conflicts={report.get('conflicts')} misplaced={report.get('misplaced')} "
            f"lost={report.get('lost')} (deletes acknowledged meanwhile: "
            f"{done.deletes_while_moving})",
            f"seconds from start: {steps}",
        ]
    )
    print(numbers)
    start = times.marks["start"]
    print("errors:", examples([e | {"t": round(e["t"] - start, 3)} for e in errors]))

    assert not lost, (
        f"{len(lost)} acknowledged writes lost: "
        + " | ".join(examples([i for i in lost if i["kind"] == k]) for k in lost_kinds)
        + f"\n{numbers}"
    )
    assert not resurrected, (
        f"{len(resurrected)} deleted keys resurrected: {examples(resurrected)}\n{numbers}"
    )
    assert not violations, (
        f"{len(violations)} read-your-writes violations: "
        + " | ".join(examples([v for v in violations if v["op"] == op]) for op in by_op)
        + f"\n{numbers}"
    )
    assert not unexpected, (
        f"{len(unexpected)} commands raised (not a connection error or timeout): "
        f"{examples(unexpected)}\n{numbers}"
    )
    assert not misplaced, f"{len(misplaced)} keys misplaced: {examples(misplaced)}\n{numbers}"
    assert not twice, f"{len(twice)} keys on two nodes: {examples(twice)}\n{numbers}"
    assert not markers, f"window markers left: {markers}\n{numbers}"
    assert not strays, f"{len(strays)} keys nobody wrote: {examples(strays)}\n{numbers}"
    assert not done.uncertain, f"keys left uncertain after errors: {done.uncertain}\n{numbers}"
    assert all(s["version"] == cluster.version["final"] for s in summaries), numbers
    for p, acks in enumerate(done.acks):
        for phase in ("old", "window", "final", "moving"):
            assert acks[phase] >= PHASE_ACKS, f"client {p}: too little work ({phase})\n{numbers}"
    # The re-run moved the rest, left nothing misplaced and lost nothing: keys it moved
    # that clients then deleted count as deleted (no more than the deletes acknowledged).
    assert report["misplaced"] == 0, (report, stderr)
    assert report["failed"] == 0, (report, stderr)
    assert report["lost"] == 0, (report, stderr)
    assert report["deleted"] <= done.deletes_while_moving, (report, done.deletes_while_moving)
    assert status == 0, f"migrate re-run exit {status}: {stderr}"


# ------------------------------------------------------------------------------ the tests


@pytest.fixture
def cluster(redis_server_factory: RedisServerFactory, tmp_path: Path) -> Iterator[Cluster]:
    nodes = Cluster(redis_server_factory(4, extra_args=AOF), tmp_path)
    try:
        yield nodes
    finally:
        for child in nodes.children:
            if child.poll() is None:
                child.kill()
            child.communicate()


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    clients = Fleet(tmp_path)
    try:
        yield clients
    finally:
        clients.kill()


def test_live_resharding_following_a_file(cluster: Cluster, fleet: Fleet) -> None:
    """Clients on from_config(watch=True): the live file is replaced by rename at each
    step; nothing acknowledged is lost or resurrected, every read sees its client's latest
    write, every key ends on its final owner, every client on the final version."""

    def publish(name: str) -> None:
        replace(cluster.live, cluster.texts[name])

    times = run_flow(cluster, fleet, ["--config", str(cluster.live)], publish)
    verdict(cluster, fleet, times)


def test_live_resharding_following_a_redis_key(
    cluster: Cluster, fleet: Fleet, redis_server_factory: RedisServerFactory
) -> None:
    """The same flow with clients on from_source(url, key=...): the operator publishes each
    topology with `hashring topology push` (compare-and-set on the version it replaces)."""
    (config,) = redis_server_factory(1)
    published: list[str] = []

    def publish(name: str) -> None:
        expect = ["--expect", published[-1]] if published else []
        result = run_checked(
            "topology", "push", str(cluster.file(name)), "--to", config.url,
            "--key", SOURCE_KEY, *expect,
        )  # fmt: skip
        assert result.status == 0, result.stderr
        published.append(cluster.version[name])

    times = run_flow(cluster, fleet, ["--source", config.url, "--key", SOURCE_KEY], publish)
    verdict(cluster, fleet, times)


def test_a_write_that_raised_is_settled_by_a_re_read() -> None:
    """The clients' model: a write that raised leaves its key uncertain between its state
    before and after; the key's next operation is a re-read, which accepts either state
    (and adopts it) and counts anything else as a violation; the replay follows."""
    worker = Worker(0, [0, 1, 2], seed=1, rate=None)
    worker.failed("INCR", ("k:1",), ConnectionError("gone"))
    worker.failed("DEL", ("k:0",), TimeoutError("slow"))
    worker.failed("GET", ("k:2",), ConnectionError("gone"))  # a read: nothing uncertain
    assert worker.uncertain == {1: [1, 2], 0: ["i0", None]}
    op, method, args, check = worker.resync(1)
    assert (op, method, args) == ("RESYNC", "get", ("k:1",))
    check("2")
    op, method, args, check = worker.resync(0)
    check("neither")
    assert worker.uncertain == {}
    assert worker.model[1] == 2
    assert worker.violations == 1
    assert [r["kind"] for r in worker.records] == ["error"] * 3 + ["resync", "resync", "violation"]
    times = Timeline(dict.fromkeys(("start", "window", "final", "migrate", "migrated", "rerun"), 0))
    done = replay([worker.records], times)
    assert done.expected["k:1"] == 2
    assert done.expected["k:0"] == "neither"
    assert done.expected["k:2"] == initial_state(2)  # a failed read changes nothing
    assert done.uncertain == set()
    assert len(done.errors) == 3
