"""ShardedExecutor: affinity, per-key order, balancers, bounded loads, map, shutdown,
exceptions, resize and stats, with real worker processes."""

from __future__ import annotations

import concurrent.futures
import math
import pathlib
import pickle
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import Future

import dispatch_tasks as tasks
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hashring import BoundedLoad, HashRing, InvalidKeyError, InvalidOptionError, balancer
from hashring.dispatch import RemoteTraceback, ShardedExecutor
from tests.waiting import wait_until

WAIT = 30.0
"""Upper bound of every wait on a future (generous: the machine is shared)."""


class Gate:
    """Files that let a test hold tasks in their workers and release them."""

    def __init__(self, folder: pathlib.Path) -> None:
        self.folder = folder
        self.release_path = folder / "release"
        self.count = 0

    def hold(self, pool: ShardedExecutor, key: str | None = None) -> tuple[Future[int], str]:
        self.count += 1
        marker = str(self.folder / f"started-{self.count}")
        future = pool.submit(tasks.hold, marker, str(self.release_path), key=key)
        return future, marker

    def release(self) -> None:
        self.release_path.touch()


@pytest.fixture(scope="module")
def pool() -> Iterator[ShardedExecutor]:
    """Three workers on a ring, shared by the tests that leave it as they found it."""
    with ShardedExecutor(3) as executor:
        yield executor


def keys_of(pool: ShardedExecutor, worker: str, count: int) -> list[str]:
    found = [k for k in (f"key-{i}" for i in range(10_000)) if pool.placement.get_node(k) == worker]
    return found[:count]


def run_where(pool: ShardedExecutor, keys: list[str]) -> list[int]:
    """The pid each key's task ran in."""
    futures = [pool.submit(tasks.where, key=k) for k in keys]
    return [f.result(timeout=WAIT)[0] for f in futures]


def test_keyed_tasks_run_in_the_worker_owning_the_key(pool: ShardedExecutor) -> None:
    """Every task of key K runs in the process of K's owner under the placement."""
    pids = pool.worker_pids()
    keys = [f"user:{i}" for i in range(120)]
    futures = [pool.submit(tasks.where, k, key=k) for k in keys for _ in range(2)]
    ran = [f.result(timeout=WAIT)[0] for f in futures]
    expected = [pids[pool.placement.get_node(k)] for k in keys for _ in range(2)]
    assert ran == expected
    assert len(set(ran)) == 3


def test_tasks_of_one_key_run_in_submission_order(pool: ShardedExecutor) -> None:
    """Interleaved keys: each key's tasks run in the order they were submitted."""
    futures = [(k, seq, pool.submit(tasks.where, key=k)) for seq in range(40) for k in "abcdefg"]
    ranks: dict[str, list[int]] = {}
    for k, _, future in futures:
        ranks.setdefault(k, []).append(future.result(timeout=WAIT)[1])
    for k, order in ranks.items():
        assert order == sorted(order), k


def test_hash_tags_keep_related_keys_on_one_worker(pool: ShardedExecutor) -> None:
    """Keys sharing a {tag} run on one worker; bytes and str spellings place alike."""
    futures = [pool.submit(tasks.where, key=f"cart:{{7}}:{i}") for i in range(20)]
    futures.append(pool.submit(tasks.where, key=b"user:{7}"))
    assert len({f.result(timeout=WAIT)[0] for f in futures}) == 1


def test_submit_passes_args_and_kwargs_and_submit_keyed_passes_key(
    pool: ShardedExecutor,
) -> None:
    """submit's key= is the affinity key; submit_keyed passes a key= keyword to the task."""
    _, _, args, kwargs = pool.submit(tasks.where, 1, 2, x=3, key="k").result(timeout=WAIT)
    assert (args, kwargs) == ((1, 2), {"x": 3})
    pid, _, args, kwargs = pool.submit_keyed("k", tasks.where, 1, key="for the task").result(
        timeout=WAIT
    )
    assert (args, kwargs) == ((1,), {"key": "for the task"})
    assert pid == pool.worker_pids()[pool.placement.get_node("k")]
    assert pool.submit_keyed(None, tasks.add, 2, b=3).result(timeout=WAIT) == 5


def test_bad_keys_are_refused_before_anything_runs(pool: ShardedExecutor) -> None:
    """A key that is not str or bytes, or a lone surrogate, raises from submit itself."""
    with pytest.raises(InvalidKeyError):
        pool.submit(tasks.square, 2, key=42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="UTF-8"):
        pool.submit(tasks.square, 2, key="\udcff")


def test_round_robin_spreads_keyless_tasks_evenly(pool: ShardedExecutor) -> None:
    """The default balancer sends keyless tasks to each worker in turn."""
    futures = [pool.submit(tasks.where) for _ in range(30)]
    counts = Counter(f.result(timeout=WAIT)[0] for f in futures)
    assert sorted(counts.values()) == [10, 10, 10]


@pytest.mark.parametrize("strategy", ["least-loaded", "power-of-two"])
def test_load_aware_balancers_avoid_the_busy_worker(strategy: str, tmp_path: pathlib.Path) -> None:
    """least-loaded and power-of-two read live queue lengths: a worker holding a backlog of
    keyed tasks gets no keyless task while others are idle."""
    gate = Gate(tmp_path)
    with ShardedExecutor(3, balancer=strategy, seed=7) as executor:
        backlog_key = keys_of(executor, "worker-0", 1)[0]
        held = [gate.hold(executor, backlog_key)[0] for _ in range(6)]
        keyless = [executor.submit(tasks.where) for _ in range(8)]
        pids = Counter(f.result(timeout=WAIT)[0] for f in keyless)
        gate.release()
        busy = executor.worker_pids()["worker-0"]
        assert {f.result(timeout=WAIT) for f in held} == {busy}
        assert busy not in pids
        assert sum(pids.values()) == 8


def test_random_balancer_is_seeded_and_uses_every_worker() -> None:
    """balancer="random" with a seed reaches every worker."""
    with ShardedExecutor(3, balancer="random", seed=1) as executor:
        pids = {executor.submit(tasks.where).result(timeout=WAIT)[0] for _ in range(60)}
        assert pids == set(executor.worker_pids().values())


def test_bounded_load_spills_a_hot_key_along_its_preference_list(tmp_path: pathlib.Path) -> None:
    """With bounded_load, a hot key's tasks go to its owner up to the cap, then to the next
    workers of its preference list; no worker holds more than the cap."""
    gate = Gate(tmp_path)
    with ShardedExecutor(3, bounded_load=0.25) as executor:
        hot = "hot-key"
        preference = executor.placement.get_nodes(hot)
        held = [gate.hold(executor, hot)[0] for _ in range(12)]
        queued = {w.name: w.queued + w.running for w in executor.stats().workers}
        gate.release()
        names = {pid: name for name, pid in executor.worker_pids().items()}
        ran = [names[f.result(timeout=WAIT)] for f in held]
        stats = executor.stats()
    assert ran[0] == preference[0]
    assert set(ran) == set(preference)
    assert max(queued.values()) <= math.ceil(1.25 * 12 / 3)
    assert stats.spilled == sum(name != preference[0] for name in ran)


def test_bounded_load_counts_return_to_zero_across_resizes(tmp_path: pathlib.Path) -> None:
    """With bounded_load, resizing while tasks are queued loses no task and leaves no load
    counted once everything is done (the caps stay right)."""
    gate = Gate(tmp_path)
    with ShardedExecutor(3, bounded_load=0.5, balancer="power-of-two", seed=3) as executor:
        held = [gate.hold(executor, f"k{i % 4}")[0] for i in range(6)]
        queued = [executor.submit(tasks.square, i, key=f"k{i % 9}") for i in range(60)]
        keyless = [executor.submit(tasks.square, i) for i in range(20)]
        executor.resize(2)
        executor.resize(4)
        gate.release()
        assert [f.result(timeout=WAIT) for f in queued] == [i * i for i in range(60)]
        assert [f.result(timeout=WAIT) for f in keyless] == [i * i for i in range(20)]
        assert all(f.result(timeout=WAIT) > 0 for f in held)
        wait_until(lambda: not executor._draining, "removed workers to exit")
        assert executor._bounded is not None
        assert dict(executor._bounded._in_flight) == {}
        executor._bounded._check()
        assert executor._balancer.in_flight() == dict.fromkeys(executor.worker_pids(), 0)


def test_map_matches_the_builtin_with_and_without_chunks(pool: ShardedExecutor) -> None:
    """map returns fn over the iterables in order, for any chunksize."""
    expected = [a + b for a, b in zip(range(50), range(100, 150), strict=True)]
    assert list(pool.map(tasks.add, range(50), range(100, 150))) == expected
    assert list(pool.map(tasks.add, range(50), range(100, 150), chunksize=7)) == expected
    with pytest.raises(ValueError, match="chunksize"):
        pool.map(tasks.square, [1], chunksize=0)


def test_map_timeout_raises_while_tasks_are_held(tmp_path: pathlib.Path) -> None:
    """map's timeout bounds the wait for results."""
    gate = Gate(tmp_path)
    with ShardedExecutor(1) as executor:
        held, _ = gate.hold(executor)
        results = executor.map(tasks.square, [1, 2], timeout=0.2)
        with pytest.raises(TimeoutError):
            list(results)
        gate.release()
        assert held.result(timeout=WAIT) == executor.worker_pids()["worker-0"]


def test_shutdown_cancel_futures_cancels_the_unsent_tasks(tmp_path: pathlib.Path) -> None:
    """shutdown(cancel_futures=True) cancels the queued tasks, runs the ones already sent, and
    leaves no future pending; submit afterwards raises."""
    gate = Gate(tmp_path)
    executor = ShardedExecutor(1)
    held, marker = gate.hold(executor)
    wait_until(lambda: pathlib.Path(marker).exists(), "the held task to start")
    queued = [executor.submit(tasks.square, i) for i in range(200)]
    executor.shutdown(wait=False, cancel_futures=True)
    with pytest.raises(RuntimeError, match="after shutdown"):
        executor.submit(tasks.square, 1)
    gate.release()
    executor.shutdown(wait=True)
    assert held.result(timeout=0) > 0
    assert all(f.done() for f in queued)
    cancelled = [f for f in queued if f.cancelled()]
    assert len(cancelled) >= 200 - 32  # at most one window was already sent
    assert all(f.result() == i * i for i, f in enumerate(queued) if not f.cancelled())


def test_leaving_the_with_block_runs_queued_tasks_and_stops_the_workers() -> None:
    """The context manager waits for queued tasks, then every worker process has exited."""
    with ShardedExecutor(2) as executor:
        futures = [executor.submit(tasks.square, i, key=str(i)) for i in range(100)]
        processes = [slot.process for slot in executor._slots.values()]
    assert [f.result(timeout=0) for f in futures] == [i * i for i in range(100)]
    assert all(p.exitcode == 0 for p in processes)


def test_task_exceptions_carry_the_worker_traceback(pool: ShardedExecutor) -> None:
    """A task's exception is raised by result(), its __cause__ the worker's traceback."""
    future = pool.submit(tasks.fail, "no good", key="k")
    with pytest.raises(ValueError, match="no good") as raised:
        future.result(timeout=WAIT)
    cause = raised.value.__cause__
    assert isinstance(cause, RemoteTraceback)
    assert "dispatch_tasks.py" in str(cause)
    assert "in fail\n    raise ValueError(message)" in str(cause)


def test_unpicklable_things_fail_their_future_clearly(pool: ShardedExecutor) -> None:
    """An unpicklable function or argument, result or exception fails only that future."""
    lock = threading.Lock()
    bad_argument = pool.submit(tasks.square, lock)
    with pytest.raises(TypeError, match="pickle") as raised:
        bad_argument.result(timeout=WAIT)
    assert any("must be picklable" in note for note in raised.value.__notes__)
    with pytest.raises((pickle.PicklingError, AttributeError)):
        pool.submit(lambda: 1).result(timeout=WAIT)
    with pytest.raises(TypeError, match="pickle") as raised:
        pool.submit(tasks.unpicklable_result).result(timeout=WAIT)
    assert any("result could not be pickled" in note for note in raised.value.__notes__)
    with pytest.raises(RuntimeError, match="UnpicklableError") as raised:
        pool.submit(tasks.raise_unpicklable).result(timeout=WAIT)
    assert "UnpicklableError" in str(raised.value.__cause__)
    assert pool.submit(tasks.square, 3).result(timeout=WAIT) == 9


def test_bad_options_are_refused() -> None:
    """Worker counts, balancer names, epsilon, placements and fork contexts are checked."""
    import multiprocessing

    for workers in (0, -1, 1.5, True, 10**6):
        with pytest.raises(InvalidOptionError):
            ShardedExecutor(workers)  # type: ignore[arg-type]
    with pytest.raises(InvalidOptionError, match="balancer"):
        ShardedExecutor(1, balancer="fastest")
    with pytest.raises(InvalidOptionError, match="epsilon"):
        ShardedExecutor(1, bounded_load=float("nan"))
    with pytest.raises(InvalidOptionError, match="exactly"):
        ShardedExecutor(2, placement=HashRing(["a", "b"]))
    with pytest.raises(InvalidOptionError, match="fork"):
        ShardedExecutor(1, mp_context=multiprocessing.get_context("fork"))


def test_a_ready_placement_is_used_as_given(pool: ShardedExecutor) -> None:
    """placement= takes a Placement over the worker names (weights and all)."""
    ring = HashRing({"worker-0": 1, "worker-1": 3})
    with ShardedExecutor(2, placement=ring) as executor:
        assert executor.placement is ring
        keys = [f"w{i}" for i in range(40)]
        pids = executor.worker_pids()
        assert run_where(executor, keys) == [pids[n] for n in ring.get_node_many(keys)]


def test_the_spawn_start_method_works() -> None:
    """mp_context= chooses the start method; spawn runs tasks too."""
    import multiprocessing

    with ShardedExecutor(1, mp_context=multiprocessing.get_context("spawn")) as executor:
        assert executor.submit(tasks.square, 5, key="k").result(timeout=WAIT) == 25


def test_stats_count_what_ran(tmp_path: pathlib.Path) -> None:
    """stats(): per worker completions, failures and busy time match the tasks that ran;
    the figures are LoadSummary over completions (mean = load factor)."""
    gate = Gate(tmp_path)
    with ShardedExecutor(2) as executor:
        names = {pid: name for name, pid in executor.worker_pids().items()}
        keys = [f"k{i}" for i in range(40)]
        futures = [executor.submit(tasks.busy, 0.002, key=k) for k in keys]
        failures = [executor.submit(tasks.fail, "x", key=k) for k in keys[:5]]
        concurrent.futures.wait([*futures, *failures], timeout=WAIT)
        ran = Counter(names[f.result()] for f in futures)
        failed = Counter(executor.placement.get_node(k) for k in keys[:5])
        held, marker = gate.hold(executor, keys[0])
        behind = executor.submit(tasks.square, 2, key=keys[0])
        wait_until(lambda: pathlib.Path(marker).exists(), "the held task to start")
        stats = executor.stats()
        gate.release()
        concurrent.futures.wait([held, behind], timeout=WAIT)
    by_name = {w.name: w for w in stats.workers}
    owner = executor.placement.get_node(keys[0])
    assert (by_name[owner].running, by_name[owner].queued) == (1, 1)
    for name, worker in by_name.items():
        assert worker.completed == ran[name] + failed[name]
        assert worker.failed == failed[name]
        assert worker.busy_seconds >= 0.002 * ran[name]
        assert 0 < worker.utilisation < 1
    completed = [w.completed for w in stats.workers]
    assert stats.load.mean == sum(completed) / 2  # the study's load factor
    assert stats.load.max == max(completed)
    assert stats.load.peak_to_mean == pytest.approx(max(completed) / (sum(completed) / 2))
    assert stats.busy.mean == pytest.approx(sum(w.busy_seconds for w in stats.workers) / 2)
    assert stats.utilisation == pytest.approx(sum(w.utilisation for w in stats.workers) / 2)


def test_resize_moves_only_the_keys_it_must() -> None:
    """Growing moves keys only to the new worker; shrinking moves only the removed workers'
    keys; tasks follow the placement after each change."""
    keys = [f"item:{i}" for i in range(400)]
    with ShardedExecutor(3) as executor:
        before = executor.placement.get_node_many(keys)
        executor.resize(4)
        grown = executor.placement.get_node_many(keys)
        moved = [(a, b) for a, b in zip(before, grown, strict=True) if a != b]
        assert moved
        assert all(b == "worker-3" for _, b in moved)
        assert len(moved) < 0.4 * len(keys)
        pids = executor.worker_pids()
        ran = [
            f.result(timeout=WAIT)[0] for f in [executor.submit(tasks.where, key=k) for k in keys]
        ]
        assert ran == [pids[n] for n in grown]
        executor.resize(2)
        shrunk = executor.placement.get_node_many(keys)
        for a, b in zip(grown, shrunk, strict=True):
            assert a == b or a in ("worker-2", "worker-3")
        pids = executor.worker_pids()
        assert set(pids) == {"worker-0", "worker-1"}
        ran = [
            f.result(timeout=WAIT)[0] for f in [executor.submit(tasks.where, key=k) for k in keys]
        ]
        assert ran == [pids[n] for n in shrunk]
        with pytest.raises(InvalidOptionError):
            executor.resize(0)


def test_growing_keeps_a_moved_keys_order_until_its_backlog_drains(
    tmp_path: pathlib.Path,
) -> None:
    """A key that moves to a new worker keeps going to its old one while tasks of it are
    still queued there, so its tasks stay in order."""
    gate = Gate(tmp_path)
    with ShardedExecutor(2) as executor:
        old = dict(executor.placement.nodes)
        assert old
        keys = [f"m{i}" for i in range(300)]
        before = executor.placement.get_node_many(keys)
        executor.resize(3)
        mover = next(
            k
            for k, a, b in zip(keys, before, executor.placement.get_node_many(keys), strict=True)
            if a != b
        )
        executor.resize(2)
        held, _ = gate.hold(executor, mover)
        first = [executor.submit(tasks.where, key=mover) for _ in range(5)]
        executor.resize(3)
        later = [executor.submit(tasks.where, key=mover) for _ in range(5)]
        gate.release()
        results = [f.result(timeout=WAIT) for f in [*first, *later]]
        assert len({pid for pid, *_ in results}) == 1
        ranks = [rank for _, rank, *_ in results]
        assert ranks == sorted(ranks)
        assert held.result(timeout=WAIT) == results[0][0]
        settled = executor.submit(tasks.where, key=mover).result(timeout=WAIT)[0]
        assert settled == executor.worker_pids()[executor.placement.get_node(mover)]
        assert settled != results[0][0]


def test_submitting_from_many_threads_while_resizing_loses_nothing() -> None:
    """Four threads submit keyed and keyless tasks while the pool grows and shrinks: every
    future completes with the right value, and stats count every task once."""
    total_per_thread = 300
    results: list[list[Future[int]]] = [[] for _ in range(4)]
    start = threading.Barrier(5)

    def submitter(index: int) -> None:
        start.wait(timeout=WAIT)
        for i in range(total_per_thread):
            key = None if i % 3 == 0 else f"t{index}-{i % 17}"
            results[index].append(executor.submit(tasks.square, i, key=key))

    with ShardedExecutor(3, balancer="least-loaded") as executor:
        threads = [threading.Thread(target=submitter, args=(i,)) for i in range(4)]
        for thread in threads:
            thread.start()
        start.wait(timeout=WAIT)
        for size in (4, 2, 5, 3):
            executor.resize(size)
        for thread in threads:
            thread.join(timeout=WAIT)
        _, pending = concurrent.futures.wait([f for batch in results for f in batch], timeout=WAIT)
        assert not pending
        for batch in results:
            assert [f.result() for f in batch] == [i * i for i in range(total_per_thread)]
        wait_until(lambda: not executor._draining, "removed workers to exit")
        assert len(executor.worker_pids()) == 3
        assert executor._homes == {}
        executor._balancer._check()
        assert executor._balancer.in_flight() == dict.fromkeys(executor.worker_pids(), 0)


def test_readme_example_runs_as_a_script(tmp_path: pathlib.Path) -> None:
    """The README's dispatch example runs as written, as a script (the start method needs
    the __main__ guard)."""
    readme = (pathlib.Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme.split("## Dispatching tasks to worker processes", 1)[1].split("\n## ", 1)[0]
    block = section.split("```python\n", 1)[1].split("```", 1)[0]
    script = tmp_path / "example.py"
    script.write_text(block)
    result = subprocess.run(
        [sys.executable, "-W", "error", str(script)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr


# ------------------------------------------------------------- routing invariants (no processes)


@given(
    ops=st.lists(st.tuples(st.integers(0, 30), st.booleans()), min_size=1, max_size=80),
    epsilon=st.sampled_from([0.1, 0.25, 1.0]),
)
def test_bounded_pick_with_add_in_flight_never_exceeds_the_cap(
    ops: list[tuple[int, bool]], epsilon: float
) -> None:
    """BoundedLoad.pick + add_in_flight (how the executor counts tasks): a picked node is
    below its cap, and in_flight always equals the tasks counted and not released."""
    bounded = BoundedLoad(HashRing(["a", "b", "c", "d"]), epsilon=epsilon)
    held: list[str] = []
    for key, release in ops:
        if release and held:
            bounded.add_in_flight(held.pop(key % len(held)), -1)
        else:
            caps = bounded.caps()
            node = bounded.pick(f"key-{key}")
            assert bounded.in_flight()[node] < caps[node]
            bounded.add_in_flight(node, +1)
            held.append(node)
        assert bounded.in_flight() == {n: held.count(n) for n in "abcd"}
        bounded._check()


@given(
    strategy=st.sampled_from(["round-robin", "random", "least-loaded", "power-of-two"]),
    ops=st.lists(st.tuples(st.sampled_from("abc"), st.integers(-1, 2)), max_size=60),
)
def test_balancer_add_in_flight_tracks_the_counts(
    strategy: str, ops: list[tuple[str, int]]
) -> None:
    """Balancer.add_in_flight keeps in_flight() equal to the sum of the deltas, and
    least-loaded picks a node of the smallest count."""
    chosen = balancer(strategy, ["a", "b", "c"])
    counts = dict.fromkeys("abc", 0)
    for node, delta in ops:
        if counts[node] + delta < 0:
            continue
        chosen.add_in_flight(node, delta)
        counts[node] += delta
        assert chosen.in_flight() == counts
        chosen._check()
        if strategy == "least-loaded":
            assert counts[chosen.pick()] == min(counts.values())
