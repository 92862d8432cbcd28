"""A client process for the live resharding test (``tests/test_resharding_live.py``).

Run as a program::

    python tests/resharding_client.py --mode sync|async (--config PATH | --source URL --key K)
        --worker-id P --keys START:STOP --log LOG.jsonl --status STATUS.json
        --stop-file STOP [--start-file GO] [--threads 3] [--seed S] [--watch-interval 0.1]
        [--rate OPS_PER_SECOND_PER_WORKER]

It opens one hashring client (``ShardedRedis`` / ``AsyncShardedRedis``, ``from_config(...,
watch=True)`` or ``from_source``) and runs ``--threads`` workers on it (threads, or tasks on
one event loop), each owning a disjoint slice of the keys ``k:START`` .. ``k:STOP-1``
(worker ``t`` owns the indices ``n`` with ``n // 3 % threads == t``: keys of every type), so
that "the latest value this client acknowledged before the read" is well defined per key.
A key's type follows its index (:func:`kind_of`): a string (SET), a counter (INCR) or a
hash (HSET), each deletable (DEL); its value before the test is :func:`initial_state`.
Besides, every worker of every client increments the counters ``shared:0`` ..
``shared:199`` now and then (5% of its operations; never read): their final values must
count every acknowledged increment, whichever topology each client ran.

The workers start once the ``--start-file`` exists (at once without it), and loop until the
stop file appears (or SIGTERM). Each picks a key of its slice (seeded RNG; half the picks
from a small hot set, so keys are read back and rewritten) and an operation, and checks
every answer against its model of the key at once:

* writes: SET (unique value), INCR (answer must be the model's count + 1), HSET (answer
  must be the number of new fields), DEL (answer must be 1 if the model holds the key);
* reads: GET, HGET, HGETALL, EXISTS and MGET of several of its keys: the answer must be the
  model's state (read-your-writes).

Every acknowledged write is logged (``ack``: time, op, key, value); every wrong answer is a
``violation`` (the model keeps the intended state: the acknowledged writes). A command that
raises is an ``error`` (type, message, last frames); its effect is unknown, so the key
becomes uncertain with the candidate states (before / after the command); the next time the
worker picks it, it re-reads the key (``resync``): the answer must be one of the candidates
(else a violation) and becomes the model. Keys still uncertain at the end are re-read then.

Log: JSON Lines, one record per line, each worker's records in its order (kept in memory,
written at exit, also after SIGTERM). The last line is the summary: ``{"kind": "summary",
"ops", "acks", "errors", "violations", "uncertain", "version", "versions"}``. The status
file (rewritten every 50 ms, by rename) holds the running version, the versions seen with
the time each was first seen, and the counts per worker, for the test's bounded waits.

All times are ``time.monotonic()``, the system-wide CLOCK_MONOTONIC on Linux, so they
compare with the test process's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

KINDS = ("string", "counter", "hash")
FIELDS = ("f0", "f1", "f2", "f3")
HOT_KEYS = 150
"""Keys per worker that half the picks come from (so writes are read back and rewritten)."""
MULTI_KEYS = 4
"""Keys per EXISTS / MGET."""
SHARED = 200
"""Counters ``shared:0`` .. that every worker of every client increments (no reads)."""
SHARED_SHARE = 0.05
"""Of a worker's operations, the share that are INCRs of a shared counter."""
STATUS_INTERVAL = 0.05
"""Seconds between two writes of the status file."""
RESYNC_ATTEMPTS = 20
"""Rounds of re-reads of the keys left uncertain when the worker stops."""
WRITES = ("SET", "INCR", "HSET", "DEL")

State = Any
"""A key's state: None (absent); a str (string key); an int (counter); a dict (hash)."""


# ------------------------------------------------------------------ the key space and model


def key_name(n: int) -> str:
    """The key with index ``n``."""
    return f"k:{n}"


def kind_of(n: int) -> str:
    """The type of key ``n``: string, counter or hash, by ``n % 3``."""
    return KINDS[n % 3]


def initial_state(n: int) -> State:
    """What key ``n`` holds before the test (written by the test's pre-population)."""
    kind = kind_of(n)
    if kind == "string":
        return f"i{n}"
    if kind == "counter":
        return n
    return {"f0": f"i{n}", "f1": f"i{n}"}


def write_fields(op: str, args: tuple[Any, ...]) -> dict[str, Any]:
    """What the log records of the write ``op`` sent with redis-py arguments ``args``."""
    if op == "SET":
        return {"v": args[1]}
    if op == "HSET":
        return {"f": args[1], "v": args[2]}
    return {}


def apply_write(state: State, op: str, record: dict[str, Any]) -> State:
    """The state after the acknowledged write ``op`` (as logged in ``record``) on ``state``:
    the intended state, whatever the server answered."""
    if op == "DEL":
        return None
    if op == "SET":
        return record["v"]
    if op == "INCR":
        return (state or 0) + 1
    if op == "HSET":
        new = dict(state or {})
        new[record["f"]] = record["v"]
        return new
    raise ValueError(f"unknown write {op}")


def read_as_state(kind: str, answer: Any) -> State:
    """A GET / HGETALL answer as a state (the resync read of a key of ``kind``)."""
    if kind == "hash":
        return dict(answer) if answer else None
    if answer is None:
        return None
    return int(answer) if kind == "counter" else str(answer)


def expected_get(state: State) -> str | None:
    """What GET answers (decoded) for a string or counter key in ``state``."""
    return None if state is None else str(state)


# ------------------------------------------------------------------ one worker


class Worker:
    """One worker's slice, model and log. The operations are plain (method, args) pairs
    so that the sync and async drivers share everything but the call."""

    def __init__(self, wid: int, indices: list[int], seed: int, rate: float | None) -> None:
        self.wid = wid
        self.interval = 0.0 if rate is None else 1.0 / rate
        self.due = time.monotonic()
        self.indices = indices
        self.hot = indices[:HOT_KEYS]
        self.rng = random.Random(seed)
        self.model: dict[int, State] = {n: initial_state(n) for n in indices}
        self.uncertain: dict[int, list[State]] = {}  # key -> candidate states
        self.records: list[dict[str, Any]] = []
        self.seq = 0
        self.ops = 0
        self.acks = 0
        self.errors = 0
        self.violations = 0

    def pause(self) -> float:
        """Seconds to wait before the next operation so that the worker runs at most
        ``rate`` operations per second on average (0 when it is behind, or unpaced)."""
        self.due = max(self.due + self.interval, time.monotonic() - 1.0)
        return max(0.0, self.due - time.monotonic())

    # choosing
    def pick(self) -> int:
        pool = self.hot if self.rng.random() < 0.5 else self.indices
        return self.rng.choice(pool)

    def certain_sample(self, kinds: tuple[str, ...]) -> list[int]:
        chosen: list[int] = []
        for _ in range(MULTI_KEYS * 3):
            n = self.pick()
            if n not in self.uncertain and kind_of(n) in kinds and n not in chosen:
                chosen.append(n)
            if len(chosen) == MULTI_KEYS:
                break
        return chosen

    def next_op(self) -> tuple[str, str, tuple[Any, ...], Callable[[Any], None]]:
        """(op name, redis-py method, args, check(answer)) of the next operation."""
        if self.rng.random() < SHARED_SHARE:
            shared = f"shared:{self.rng.randrange(SHARED)}"
            return "SHARED", "incr", (shared,), lambda a: self._ack_shared(shared, a)
        n = self.pick()
        key, kind = key_name(n), kind_of(n)
        if n in self.uncertain:
            return self.resync(n)
        r = self.rng.random()
        self.seq += 1
        value = f"w{self.wid}:{self.seq}"
        if r < 0.07:
            return "DEL", "delete", (key,), lambda a: self._ack_del(n, a)
        if r < 0.45:
            if kind == "string":
                return "SET", "set", (key, value), lambda a: self._ack_set(n, value, a)
            if kind == "counter":
                return "INCR", "incr", (key,), lambda a: self._ack_incr(n, a)
            field = self.rng.choice(FIELDS)
            return (
                "HSET", "hset", (key, field, value),
                lambda a: self._ack_hset(n, field, value, a),
            )  # fmt: skip
        if r < 0.7:
            if kind != "hash":
                return (
                    "GET",
                    "get",
                    (key,),
                    lambda a: self._check("GET", [n], a, expected_get(self.model[n])),
                )
            if r < 0.58:
                field = self.rng.choice(FIELDS)

                def hget(answer: Any) -> None:
                    state = self.model[n]
                    self._check("HGET", [n], answer, None if state is None else state.get(field))

                return "HGET", "hget", (key, field), hget
            return (
                "HGETALL",
                "hgetall",
                (key,),
                lambda a: self._check("HGETALL", [n], a, dict(self.model[n] or {})),
            )
        if r < 0.85:
            keys = self.certain_sample(KINDS) or [n]
            return (
                "EXISTS",
                "exists",
                tuple(key_name(k) for k in keys),
                lambda a: self._check(
                    "EXISTS", keys, a, sum(self.model[k] is not None for k in keys)
                ),
            )
        keys = self.certain_sample(("string", "counter"))
        if not keys:
            return self.next_op()
        return (
            "MGET",
            "mget",
            tuple(key_name(k) for k in keys),
            lambda a: self._check("MGET", keys, a, [expected_get(self.model[k]) for k in keys]),
        )

    def resync(self, n: int) -> tuple[str, str, tuple[Any, ...], Callable[[Any], None]]:
        """The re-read of the uncertain key ``n``: its answer must be one of the candidate
        states, and becomes the model."""
        kind = kind_of(n)
        method = "hgetall" if kind == "hash" else "get"

        def check(answer: Any) -> None:
            state = read_as_state(kind, answer)
            candidates = self.uncertain.pop(n)
            ok = state in candidates
            self._log(kind="resync", key=key_name(n), state=state, ok=ok)
            if not ok:
                self._violation("RESYNC", [n], state, candidates)
            self.model[n] = state

        return "RESYNC", method, (key_name(n),), check

    # answers
    def _log(self, **record: Any) -> None:
        record["t"] = time.monotonic()
        record["w"] = self.wid
        self.records.append(record)

    def _violation(self, op: str, keys: list[int], got: Any, expected: Any) -> None:
        self.violations += 1
        self._log(
            kind="violation", op=op, keys=[key_name(k) for k in keys], got=got, expected=expected
        )

    def _check(self, op: str, keys: list[int], answer: Any, expected: Any) -> None:
        if answer != expected:
            self._violation(op, keys, answer, expected)

    def _ack(self, op: str, n: int, **fields: Any) -> None:
        self.acks += 1
        self._log(kind="ack", op=op, key=key_name(n), **fields)
        self.model[n] = apply_write(self.model[n], op, fields)

    def _ack_set(self, n: int, value: str, answer: Any) -> None:
        self._check("SET", [n], answer, True)
        self._ack("SET", n, v=value)

    def _ack_incr(self, n: int, answer: Any) -> None:
        self._check("INCR", [n], answer, (self.model[n] or 0) + 1)
        self._ack("INCR", n, answer=answer)

    def _ack_hset(self, n: int, field: str, value: str, answer: Any) -> None:
        state = self.model[n] or {}
        self._check("HSET", [n], answer, 0 if field in state else 1)
        self._ack("HSET", n, f=field, v=value)

    def _ack_shared(self, key: str, answer: Any) -> None:
        self.acks += 1
        self._log(kind="ack", op="SHARED", key=key, answer=answer)

    def _ack_del(self, n: int, answer: Any) -> None:
        self._check("DEL", [n], answer, 0 if self.model[n] is None else 1)
        self._ack("DEL", n, answer=answer)

    def failed(self, op: str, args: tuple[Any, ...], exc: BaseException) -> None:
        """The command raised: log it; a write's key becomes uncertain (before / after)."""
        self.errors += 1
        frames = traceback.extract_tb(exc.__traceback__)[-3:]
        self._log(
            kind="error", op=op, args=[str(a) for a in args], type=type(exc).__name__,
            msg=str(exc)[:300], where=[f"{Path(f.filename).name}:{f.lineno}" for f in frames],
        )  # fmt: skip
        if op not in WRITES:
            return  # a read, a re-read (the key stays uncertain), or a shared counter (the
            # test allows for an INCR that raised and may have run)
        n = int(str(args[0]).split(":")[1])
        before = self.model[n]
        after = apply_write(before, op, write_fields(op, args))
        candidates = self.uncertain.setdefault(n, [before])
        if after not in candidates:
            candidates.append(after)
        self.model[n] = after

    def summary(self) -> dict[str, Any]:
        return {"ops": self.ops, "acks": self.acks, "errors": self.errors,
                "violations": self.violations, "uncertain": sorted(self.uncertain)}  # fmt: skip


# ------------------------------------------------------------------ the process


class Status:
    """The process's shared counters, versions seen, and the stop signal."""

    def __init__(self, path: Path, workers: list[Worker]) -> None:
        self.path = path
        self.workers = workers
        self.stop = threading.Event()
        self.go = threading.Event()
        """Set once the start file exists (at once without one): the workers may run."""
        self.versions: dict[str, float] = {}
        self.client: Any = None

    def write(self) -> None:
        version = getattr(self.client, "version", None)
        if version is not None and version not in self.versions:
            self.versions[version] = time.monotonic()
        status = {
            "pid": os.getpid(),
            "version": version,
            "versions": self.versions,
            "acks": [w.acks for w in self.workers],
            "ops": [w.ops for w in self.workers],
            "errors": sum(w.errors for w in self.workers),
            "violations": sum(w.violations for w in self.workers),
        }
        temporary = self.path.with_name(self.path.name + ".tmp")
        temporary.write_text(json.dumps(status))
        os.replace(temporary, self.path)

    def watch(self, stop_file: Path, start_file: Path | None) -> None:
        """Thread: rewrite the status file; set ``go`` once the start file exists and
        ``stop`` once the stop file does."""
        while not self.stop.is_set():
            self.write()
            if start_file is None or start_file.exists():
                self.go.set()
            if stop_file.exists():
                self.stop.set()
            self.stop.wait(STATUS_INTERVAL)


def run_sync(args: argparse.Namespace, workers: list[Worker], status: Status) -> None:
    from hashring.adapters.redis import ShardedRedis

    options = {"decode_responses": True, "socket_timeout": 10}
    if args.config:
        client = ShardedRedis.from_config(
            args.config, watch=True, watch_interval=args.watch_interval, **options
        )
    else:
        client = ShardedRedis.from_source(
            args.source, key=args.key, watch_interval=args.watch_interval, **options
        )
    status.client = client

    def loop(worker: Worker) -> None:
        while not (status.go.wait(0.01) or status.stop.is_set()):
            pass
        while not status.stop.is_set():
            op, method, call_args, check = worker.next_op()
            worker.ops += 1
            status.stop.wait(worker.pause())
            try:
                answer = getattr(client, method)(*call_args)
            except Exception as exc:
                worker.failed(op, call_args, exc)
            else:
                check(answer)
        for _ in range(RESYNC_ATTEMPTS):  # settle the uncertain keys
            for n in list(worker.uncertain):
                op, method, call_args, check = worker.resync(n)
                try:
                    check(getattr(client, method)(*call_args))
                except Exception as exc:
                    worker.failed(op, call_args, exc)

    threads = [threading.Thread(target=loop, args=(w,)) for w in workers]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        status.write()
        client.close()


def run_async(args: argparse.Namespace, workers: list[Worker], status: Status) -> None:
    from hashring.adapters.redis import AsyncShardedRedis

    async def main() -> None:
        options = {"decode_responses": True, "socket_timeout": 10}
        if args.config:
            client = AsyncShardedRedis.from_config(
                args.config, watch=True, watch_interval=args.watch_interval, **options
            )
        else:
            client = AsyncShardedRedis.from_source(
                args.source, key=args.key, watch_interval=args.watch_interval, **options
            )
        status.client = client

        async def loop(worker: Worker) -> None:
            while not (status.go.is_set() or status.stop.is_set()):
                await asyncio.sleep(0.01)
            while not status.stop.is_set():
                op, method, call_args, check = worker.next_op()
                worker.ops += 1
                await asyncio.sleep(worker.pause())
                try:
                    answer = await getattr(client, method)(*call_args)
                except Exception as exc:
                    worker.failed(op, call_args, exc)
                else:
                    check(answer)
            for _ in range(RESYNC_ATTEMPTS):
                for n in list(worker.uncertain):
                    op, method, call_args, check = worker.resync(n)
                    try:
                        check(await getattr(client, method)(*call_args))
                    except Exception as exc:
                        worker.failed(op, call_args, exc)

        try:
            await asyncio.gather(*(loop(w) for w in workers))
        finally:
            status.write()
            await client.aclose()

    asyncio.run(main())


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", choices=("sync", "async"), required=True)
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--config", type=Path)
    where.add_argument("--source")
    parser.add_argument("--key", default="hashring:topology")
    parser.add_argument("--worker-id", type=int, required=True)
    parser.add_argument("--keys", required=True, metavar="START:STOP")
    parser.add_argument("--threads", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--watch-interval", type=float, default=0.1)
    parser.add_argument("--rate", type=float, default=None, help="most ops/s per worker")
    parser.add_argument("--log", type=Path, required=True)
    parser.add_argument("--status", type=Path, required=True)
    parser.add_argument("--stop-file", type=Path, required=True)
    parser.add_argument("--start-file", type=Path, default=None)
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse(argv)
    start, stop = (int(x) for x in args.keys.split(":"))
    workers = [
        Worker(
            args.worker_id * args.threads + t,
            [n for n in range(start, stop) if n // len(KINDS) % args.threads == t],
            seed=args.seed * 1_000 + args.worker_id * args.threads + t,
            rate=args.rate,
        )
        for t in range(args.threads)
    ]
    status = Status(args.status, workers)
    signal.signal(signal.SIGTERM, lambda *_: status.stop.set())
    watcher = threading.Thread(
        target=status.watch, args=(args.stop_file, args.start_file), daemon=True
    )
    watcher.start()
    try:
        (run_sync if args.mode == "sync" else run_async)(args, workers, status)
    finally:
        status.stop.set()
        versions = status.versions
        with open(args.log, "w", encoding="utf-8") as log:
            for worker in workers:
                for record in worker.records:
                    log.write(json.dumps(record) + "\n")
            summary = {
                "kind": "summary",
                "mode": args.mode,
                "ops": sum(w.ops for w in workers),
                "acks": sum(w.acks for w in workers),
                "errors": sum(w.errors for w in workers),
                "violations": sum(w.violations for w in workers),
                "uncertain": [key_name(n) for w in workers for n in w.summary()["uncertain"]],
                "version": getattr(status.client, "version", None),
                "versions": versions,
                "workers": [w.summary() for w in workers],
            }
            log.write(json.dumps(summary) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
