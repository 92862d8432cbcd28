"""Runtime faults of ShardedRedis and AsyncShardedRedis against real redis-server processes.

* Membership changes under load: commands in flight on a removed node finish on an open
  client, which is closed after the last of them; nothing but redis errors ever escapes.
* Half-open recovery: a SIGKILLed (then restarted) or SIGSTOPped node gets one probe per
  ejection cycle however many threads or tasks run, and no stale pooled connection fails
  after it recovers.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import redis
from hashring.adapters.redis import AsyncShardedRedis, ShardedRedis
from redis.backoff import NoBackoff
from redis.retry import Retry
from redis_servers import RedisServer, RedisServerFactory

pytestmark = pytest.mark.redis

NAMES = ("n0", "n1", "n2")
EXTRA = "x"  # the node added and removed in a loop
STRESS_SECONDS = 4.0  # each stress loop stops after this long...
STRESS_CYCLES = 150  # ...or after this many add/remove cycles
WORKERS = 6


def _no_retry(**extra: Any) -> dict[str, Any]:
    """Options that make every connection failure visible: no redis-py retries."""
    return {"retry": Retry(NoBackoff(), 0), "socket_timeout": 10, **extra}


def _urls(servers: list[RedisServer]) -> dict[str, str]:
    return {name: server.url for name, server in zip(NAMES, servers, strict=True)}


def _named_connections(observer: redis.Redis, name: str) -> int:
    return sum(1 for entry in observer.client_list() if entry.get("name") == name)


def _wait_for_connections(observer: redis.Redis, name: str, expected: int) -> int:
    """Poll CLIENT LIST until ``expected`` connections are named ``name`` (or 10 s pass)."""
    deadline = time.monotonic() + 10.0
    count = _named_connections(observer, name)
    while count != expected and time.monotonic() < deadline:
        time.sleep(0.02)
        count = _named_connections(observer, name)
    return count


def _key_owned_by(placement_of: Callable[[str], str], node: str, prefix: str) -> str:
    for i in range(100_000):
        key = f"{prefix}:{i}"
        if placement_of(key) == node:
            return key
    raise AssertionError(f"no key of {node}")  # pragma: no cover


@dataclass
class Tally:
    """What the workers did: commands, and errors by kind (thread-safe)."""

    commands: int = 0
    redis_errors: int = 0
    other_errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, error: BaseException | None) -> None:
        with self.lock:
            self.commands += 1
            if isinstance(error, redis.ConnectionError):
                self.redis_errors += 1
            elif error is not None:
                self.other_errors.append(f"{type(error).__name__}: {error}")


def _sync_workload(client: ShardedRedis, rng: random.Random) -> None:
    """One round of mixed commands: single-key, split multi-key, fan-out, pipeline."""
    key = f"k:{rng.randrange(2000)}"
    choice = rng.randrange(5)
    if choice == 0:
        client.set(key, "v")
    elif choice == 1:
        client.get(key)
    elif choice == 2:
        client.mget([f"k:{rng.randrange(2000)}" for _ in range(8)])
    elif choice == 3:
        client.dbsize()
    else:
        with client.pipeline(transaction=False) as pipe:
            pipe.set(key, "p").get(key).delete(f"k:{rng.randrange(2000)}")
            pipe.execute()


# ------------------------------------------------------------------ membership under load


def test_add_remove_loop_under_threads_raises_only_redis_errors(
    redis_server_factory: RedisServerFactory,
) -> None:
    """Threads run commands while a node is added and removed in a loop: no ValueError,
    AttributeError, KeyError or EBADF; every removed client is closed in the end."""
    servers = redis_server_factory(4)
    extra = servers[3]
    observer = extra.client()
    tally = Tally()
    stop = threading.Event()
    with ShardedRedis(_urls(servers[:3]), client_name="stress", **_no_retry()) as client:

        def work(seed: int) -> None:
            rng = random.Random(seed)
            while not stop.is_set():
                try:
                    _sync_workload(client, rng)
                except Exception as exc:
                    tally.count(exc)
                else:
                    tally.count(None)

        workers = [threading.Thread(target=work, args=(seed,)) for seed in range(WORKERS)]
        for worker in workers:
            worker.start()
        cycles = 0
        deadline = time.monotonic() + STRESS_SECONDS
        try:
            while cycles < STRESS_CYCLES and time.monotonic() < deadline:
                client.add_node(EXTRA, extra.url)
                time.sleep(0.002)
                client.remove_node(EXTRA)
                cycles += 1
        finally:
            stop.set()
            for worker in workers:
                worker.join(30)
        assert not any(worker.is_alive() for worker in workers)
        assert sorted(client.clients) == list(NAMES)
        assert EXTRA not in client.stats()  # late outcomes do not bring a removed node back
    assert tally.other_errors == []
    assert tally.redis_errors == 0  # nothing was sent to a node after its removal
    assert cycles >= 10
    assert tally.commands >= 100
    assert _wait_for_connections(observer, "stress", 0) == 0  # every removed client closed


def test_command_in_flight_on_a_removed_node_finishes(
    redis_server_factory: RedisServerFactory,
) -> None:
    """A BLPOP blocked on a node that is removed meanwhile still gets its answer; the node's
    client is closed right after it, not before."""
    servers = redis_server_factory(4)
    extra = servers[3]
    observer = extra.client()
    with ShardedRedis(
        _urls(servers[:3]), client_name="inflight", decode_responses=True, **_no_retry()
    ) as client:
        client.add_node(EXTRA, extra.url)
        key = _key_owned_by(client.node_for, EXTRA, "queue")
        answer: list[Any] = []
        waiter = threading.Thread(target=lambda: answer.append(client.blpop([key], timeout=20)))
        waiter.start()
        deadline = time.monotonic() + 10
        while "blpop" not in str(observer.client_list()) and time.monotonic() < deadline:
            time.sleep(0.01)
        client.remove_node(EXTRA)
        assert client.node_for(key) != EXTRA
        assert _named_connections(observer, "inflight") == 1  # still open: BLPOP waits on it
        observer.rpush(key, "job")
        waiter.join(20)
        assert answer == [(key, "job")]
        assert _wait_for_connections(observer, "inflight", 0) == 0  # closed after it


def test_remove_node_closes_at_once_when_idle(redis_server_factory: RedisServerFactory) -> None:
    """With nothing in flight, remove_node closes the node's connections before returning."""
    servers = redis_server_factory(2)
    observer = servers[1].client()
    with ShardedRedis(
        {"a": servers[0].url, "b": servers[1].url}, client_name="idle", **_no_retry()
    ) as client:
        client.mset({f"i:{n}": n for n in range(50)})
        assert _named_connections(observer, "idle") >= 1
        client.remove_node("b")
        assert _wait_for_connections(observer, "idle", 0) == 0


def test_async_add_remove_loop_under_tasks_raises_only_redis_errors(
    redis_server_factory: RedisServerFactory,
) -> None:
    """Asyncio tasks run commands while another task adds and removes a node in a loop."""
    servers = redis_server_factory(4)
    extra = servers[3]
    observer = extra.client()
    tally = Tally()

    async def scenario() -> int:
        stop = asyncio.Event()
        async with AsyncShardedRedis(
            _urls(servers[:3]), client_name="astress", **_no_retry()
        ) as client:

            async def work(seed: int) -> None:
                rng = random.Random(seed)
                while not stop.is_set():
                    key = f"k:{rng.randrange(2000)}"
                    choice = rng.randrange(5)
                    try:
                        if choice == 0:
                            await client.set(key, "v")
                        elif choice == 1:
                            await client.get(key)
                        elif choice == 2:
                            await client.mget([f"k:{rng.randrange(2000)}" for _ in range(8)])
                        elif choice == 3:
                            await client.dbsize()
                        else:
                            pipe = client.pipeline(transaction=False)
                            pipe.set(key, "p").get(key)
                            await pipe.execute()
                    except Exception as exc:
                        tally.count(exc)
                    else:
                        tally.count(None)

            tasks = [asyncio.create_task(work(seed)) for seed in range(32)]
            cycles = 0
            deadline = time.monotonic() + STRESS_SECONDS
            try:
                while cycles < STRESS_CYCLES and time.monotonic() < deadline:
                    client.add_node(EXTRA, extra.url)
                    await asyncio.sleep(0.002)
                    await client.remove_node(EXTRA)
                    await asyncio.sleep(0)
                    cycles += 1
            finally:
                stop.set()
                await asyncio.wait_for(asyncio.gather(*tasks), 30)
            assert sorted(client.clients) == list(NAMES)
            assert EXTRA not in client.stats()
            return cycles

    cycles = asyncio.run(scenario())
    assert tally.other_errors == []
    assert tally.redis_errors == 0
    assert cycles >= 10
    assert tally.commands >= 100
    assert _wait_for_connections(observer, "astress", 0) == 0


def test_async_command_in_flight_on_a_removed_node_finishes(
    redis_server_factory: RedisServerFactory,
) -> None:
    """An awaited BLPOP on a node removed meanwhile completes; the client closes after it."""
    servers = redis_server_factory(4)
    extra = servers[3]
    observer = extra.client()

    async def scenario() -> tuple[str, Any]:
        async with AsyncShardedRedis(
            _urls(servers[:3]), client_name="ainflight", decode_responses=True, **_no_retry()
        ) as client:
            client.add_node(EXTRA, extra.url)
            key = _key_owned_by(client.node_for, EXTRA, "queue")
            waiter = asyncio.create_task(client.blpop([key], timeout=20))
            deadline = time.monotonic() + 10
            while "blpop" not in str(observer.client_list()) and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            await client.remove_node(EXTRA)  # does not wait for the BLPOP
            assert not waiter.done()
            assert _named_connections(observer, "ainflight") == 1
            observer.rpush(key, "job")
            return key, await asyncio.wait_for(waiter, 20)

    key, answer = asyncio.run(scenario())
    assert answer == (key, "job")
    assert _wait_for_connections(observer, "ainflight", 0) == 0


# ------------------------------------------------------------------ half-open recovery

VICTIM = "n1"  # never the default node n0, which also serves the COMMAND table
RETRY_TIMEOUT = 0.5
SOCKET_TIMEOUT = 0.5
FAILURE_LIMIT = 2
DEAD_SECONDS = 3.0  # how long the victim stays killed or stopped
AFTER_SECONDS = 2.0  # traffic kept up after it is back
LAG = 0.3  # slack for a busy event loop or scheduler noting an error late
TASKS = 64
THREADS = 16


def _health_options() -> dict[str, Any]:
    return {
        "health": True,
        "failure_limit": FAILURE_LIMIT,
        "retry_timeout": RETRY_TIMEOUT,
        "retry": Retry(NoBackoff(), 0),
        "socket_timeout": SOCKET_TIMEOUT,
        "socket_connect_timeout": SOCKET_TIMEOUT,
    }


@dataclass
class Outage:
    """Drives one outage of the victim (in a thread) and keeps its timestamps."""

    server: RedisServer
    mode: str  # "kill": SIGKILL, then restart on the same port; "stop": pause (SIGSTOP), resume
    stats: Callable[[], dict[str, dict[str, float | int | bool]]]
    errors: list[tuple[float, str]] = field(default_factory=list)
    ejected_at: float = 0.0
    back_at: float = 0.0
    done: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def error(self, exc: BaseException) -> None:
        with self.lock:
            self.errors.append((time.monotonic(), f"{type(exc).__name__}: {exc}"))

    def run(self) -> None:
        try:
            time.sleep(0.5)  # traffic warms every node's connection pool
            if self.mode == "kill":
                self.server.kill()
            else:
                self.server.pause()
            deadline = time.monotonic() + DEAD_SECONDS
            while time.monotonic() < deadline:
                if not self.ejected_at and self.stats()[VICTIM]["ejections"]:
                    self.ejected_at = time.monotonic()
                time.sleep(0.005)
            if self.mode == "kill":
                self.server.restart()  # same port, answers PING when this returns
            else:
                self.server.resume()
            self.back_at = time.monotonic()
            time.sleep(AFTER_SECONDS)
        finally:
            self.server.resume()  # whatever happened (a no-op once it runs)
            self.done.set()

    def check(self, workers: int) -> None:
        """The bounds: before the ejection, at most what was in flight; after it, at most
        one failed probe per ejection cycle; once the node is back, nothing."""
        stats = self.stats()[VICTIM]
        assert self.ejected_at, "the victim was never ejected"
        settled = self.ejected_at + SOCKET_TIMEOUT + 2 * LAG  # sent before the ejection
        late = [message for at, message in self.errors if at > settled]
        # retry cycles of the outage as it happened (a restart on a busy machine can take
        # longer than DEAD_SECONDS), plus the one under way at each end
        cycles = int((self.back_at - self.ejected_at) / RETRY_TIMEOUT) + 2
        assert len(late) <= stats["probes"] <= cycles, late
        assert len(self.errors) <= workers + FAILURE_LIMIT + cycles
        back = self.back_at + LAG + (SOCKET_TIMEOUT if self.mode == "stop" else 0.0)
        after = [message for at, message in self.errors if at > back]
        assert after == []  # no stale pooled connection fails once the node is back
        assert stats["ejected"] is False
        assert stats["consecutive_failures"] == 0


@pytest.mark.parametrize("mode", ["kill", "stop"])
def test_recovery_with_64_tasks_sends_one_probe_per_cycle(
    redis_server_factory: RedisServerFactory, mode: str
) -> None:
    """64 asyncio tasks, victim SIGKILLed then restarted (or SIGSTOPped then continued):
    once ejected, it costs at most one error per retry cycle, and none once it is back."""
    servers = redis_server_factory(3)

    async def scenario() -> Outage:
        async with AsyncShardedRedis(_urls(servers), **_health_options()) as client:
            outage = Outage(servers[1], mode, client.stats)
            driver = threading.Thread(target=outage.run)

            async def work(seed: int) -> None:
                rng = random.Random(seed)
                while not outage.done.is_set():
                    try:
                        await client.set(f"k:{rng.randrange(1000)}", "v")
                    except redis.RedisError as exc:
                        outage.error(exc)

            driver.start()
            try:
                await asyncio.wait_for(asyncio.gather(*(work(s) for s in range(TASKS))), 60)
            finally:
                driver.join(30)
            key = _key_owned_by(lambda k: client.placement.get_node(k), VICTIM, "home")
            assert client.node_for(key) == VICTIM
            assert await client.set(key, "back") is True
            return outage

    outage = asyncio.run(scenario())
    outage.check(TASKS)


@pytest.mark.parametrize("mode", ["kill", "stop"])
def test_recovery_with_threads_sends_one_probe_per_cycle(
    redis_server_factory: RedisServerFactory, mode: str
) -> None:
    """The same outage with 16 threads on ShardedRedis: the same bounds."""
    servers = redis_server_factory(3)
    with ShardedRedis(_urls(servers), max_workers=THREADS, **_health_options()) as client:
        outage = Outage(servers[1], mode, client.stats)

        def work(seed: int) -> None:
            rng = random.Random(seed)
            while not outage.done.is_set():
                try:
                    client.set(f"k:{rng.randrange(1000)}", "v")
                except redis.RedisError as exc:
                    outage.error(exc)

        workers = [threading.Thread(target=work, args=(s,)) for s in range(THREADS)]
        driver = threading.Thread(target=outage.run)
        driver.start()
        for worker in workers:
            worker.start()
        driver.join(60)
        for worker in workers:
            worker.join(30)
        assert not any(worker.is_alive() for worker in workers)
        key = _key_owned_by(lambda k: client.placement.get_node(k), VICTIM, "home")
        assert client.node_for(key) == VICTIM
        assert client.set(key, "back") is True
    outage.check(THREADS)


# ------------------------------------------------------------------ hostile keys

SURROGATE = "\udcff"  # a lone surrogate: no UTF-8 form (json.loads('"\\udcff"') makes one)

# Run in a child process, so that a crash of the interpreter (mmh3 segfaults on such a str)
# fails the test instead of the run. It prints one JSON line: call -> the exception class
# names it raised (MRO), or "ok"; and node -> commands the server processed during the calls.
_HOSTILE_SCRIPT = r"""
import asyncio, json, sys
import redis
from hashring.adapters.redis import AsyncShardedRedis, ShardedRedis

urls = json.loads(sys.argv[1])
bad = "\udcff"
outcome = {}

def note(name, call):
    try:
        call()
    except BaseException as exc:
        outcome[name] = [cls.__name__ for cls in type(exc).__mro__]
    else:
        outcome[name] = "ok"

directs = {name: redis.Redis.from_url(url, single_connection_client=True)
           for name, url in urls.items()}

def processed():
    return {n: int(d.info("stats")["total_commands_processed"]) for n, d in directs.items()}

first = processed()
calibration = {n: c - first[n] for n, c in processed().items()}  # our own INFO

def pipe(client, *calls):
    p = client.pipeline(transaction=False)
    for method, args in calls:
        getattr(p, method)(*args)
    return p.execute()

sync = ShardedRedis(urls)
sync.ping()  # reads the COMMAND table: not counted below
for health in (False, True):
    client = ShardedRedis(urls, health=health)
    client.ping()
    before = processed()
    tag = "health" if health else "plain"
    note(f"{tag}.get", lambda: client.get(bad))
    note(f"{tag}.set", lambda: client.set("x" + bad, "v"))
    note(f"{tag}.tagged", lambda: client.get("user:{" + bad + "}:cart"))
    note(f"{tag}.mget", lambda: client.mget(["a", bad, "b"]))
    note(f"{tag}.mset", lambda: client.mset({"a": 1, bad: 2}))
    note(f"{tag}.delete", lambda: client.delete("a", bad))
    note(f"{tag}.exists", lambda: client.exists(bad))
    note(f"{tag}.pipeline", lambda: pipe(client, ("set", ("a", 1)), ("get", (bad,))))
    note(f"{tag}.node_for", lambda: client.node_for(bad))
    note(f"{tag}.client_for", lambda: client.client_for(bad))
    after = processed()
    outcome[f"{tag}.sent"] = {n: after[n] - before[n] - calibration[n] for n in urls}
    client.close()

async def run_async():
    async with AsyncShardedRedis(urls) as client:
        await client.ping()
        before = processed()
        async def call(name, coro_fn):
            try:
                await coro_fn()
            except BaseException as exc:
                outcome[name] = [cls.__name__ for cls in type(exc).__mro__]
            else:
                outcome[name] = "ok"
        await call("async.get", lambda: client.get(bad))
        await call("async.set", lambda: client.set("x" + bad, "v"))
        await call("async.mget", lambda: client.mget(["a", bad]))
        await call("async.mset", lambda: client.mset({"a": 1, bad: 2}))
        await call("async.delete", lambda: client.delete(bad, "a"))
        async def apipe():
            p = client.pipeline(transaction=False)
            p.set("a", 1).get(bad)
            return await p.execute()
        await call("async.pipeline", apipe)
        note("async.node_for", lambda: client.node_for(bad))
        after = processed()
        outcome["async.sent"] = {n: after[n] - before[n] - calibration[n] for n in urls}

asyncio.run(run_async())
# Another client encoding: redis-py's own encoder refuses the key first.
latin = ShardedRedis(urls, encoding="latin-1")
latin.ping()
note("latin1.get", lambda: latin.get(bad))
note("latin1.node_for", lambda: latin.node_for(bad))
latin.close()
print(json.dumps(outcome))
"""


def test_surrogate_keys_raise_typed_errors_and_send_nothing(
    clean_redis_servers: list[RedisServer],
) -> None:
    """A key with a lone surrogate, through both clients (single-key, MGET/MSET/DEL,
    pipelines, node_for): a typed error before anything is sent; the interpreter lives."""
    import json
    import subprocess
    import sys

    urls = _urls(clean_redis_servers)
    child = subprocess.run(
        [sys.executable, "-c", _HOSTILE_SCRIPT, json.dumps(urls)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert child.returncode == 0, (child.returncode, child.stderr[-2000:])
    outcome = json.loads(child.stdout.strip().splitlines()[-1])
    calls = {name: mro for name, mro in outcome.items() if not name.endswith(".sent")}
    assert len(calls) == 2 * 10 + 7 + 2
    for name, mro in calls.items():
        if name.startswith("latin1."):
            assert "UnicodeEncodeError" in mro, (name, mro)  # redis-py's own encoder
        else:
            assert mro[0] == "KeyEncodingError", (name, mro)
            assert {"InvalidKeyError", "HashRingError", "ValueError", "TypeError"} <= set(mro)
    for name in ("plain.sent", "health.sent", "async.sent"):
        assert outcome[name] == dict.fromkeys(NAMES, 0), name  # nothing reached a server
    for server in clean_redis_servers:
        with server.client() as direct:
            assert direct.dbsize() == 0


@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
def test_bytes_like_keys_are_placed_like_the_same_bytes(
    clean_redis_servers: list[RedisServer], kind: Callable[[bytes], Any]
) -> None:
    """bytearray and memoryview keys work wherever redis-py takes them, on the same node as
    the same bytes: single-key, MSET/MGET/DEL, pipelines, node_for."""
    with ShardedRedis(_urls(clean_redis_servers)) as client:
        raw = [f"bk:{i}".encode() for i in range(60)]
        assert {client.node_for(kind(key)) for key in raw} == set(NAMES)
        assert [client.node_for(kind(key)) for key in raw] == [client.node_for(k) for k in raw]
        assert client.set(kind(raw[0]), b"one") is True
        assert client.get(raw[0]) == b"one"
        pairs = [part for key in raw for part in (kind(key), key)]  # a bytearray is unhashable
        assert client.execute_command("MSET", *pairs) is True
        assert client.mget([kind(key) for key in raw]) == raw
        with client.pipeline(transaction=False) as pipe:
            for key in raw[:10]:
                pipe.get(kind(key))
            assert pipe.execute() == raw[:10]
        for key in raw:  # each key lives on the node node_for names
            with clean_redis_servers[NAMES.index(client.node_for(key))].client() as direct:
                assert direct.get(key) == key
        assert client.delete(*[kind(key) for key in raw]) == len(raw)

    async def scenario() -> list[Any]:
        async with AsyncShardedRedis(_urls(clean_redis_servers)) as aclient:
            assert [aclient.node_for(kind(key)) for key in raw] == [
                aclient.node_for(k) for k in raw
            ]
            await aclient.execute_command("MSET", *[p for k in raw for p in (kind(k), k)])
            pipe = aclient.pipeline(transaction=False)
            pipe.get(kind(raw[0])).get(kind(raw[1]))
            assert await pipe.execute() == raw[:2]
            return list(await aclient.mget([kind(key) for key in raw]))

    assert asyncio.run(scenario()) == raw


def test_sampling_a_hung_node_fails_instead_of_hanging(
    redis_server_factory: RedisServerFactory,
) -> None:
    """sample_keys (hashring report --sample-from) gives up on a SIGSTOPped node."""
    from hashring.adapters.redis._sampling import sample_keys

    from hashring import parse_topology

    servers = redis_server_factory(2)
    servers[0].client().mset({f"s:{i}": i for i in range(50)})
    nodes = {n: {"url": s.url} for n, s in zip(NAMES, servers, strict=False)}
    topology = parse_topology({"nodes": nodes})
    assert len(sample_keys(topology, 20, timeout=2.0)) == 20
    servers[1].pause()
    started = time.monotonic()
    with pytest.raises(redis.TimeoutError):
        sample_keys(topology, 20, timeout=0.3)
    assert time.monotonic() - started < 5.0
