"""HealthTracker on its own, on an injected clock: ejection, the single half-open probe,
its lapse, and what record() reports to the adapters."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator

import pytest

from hashring import HealthTracker, InvalidOptionError


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    """A hand-driven clock."""
    return FakeClock()


@pytest.fixture
def tracker(clock: FakeClock) -> Iterator[HealthTracker]:
    """failure_limit=3, retry_timeout=10 s, on the fake clock; its invariants are checked
    after the test."""
    made = HealthTracker(failure_limit=3, retry_timeout=10.0, clock=clock)
    yield made
    made._check()


def test_ejected_after_limit_consecutive_failures(tracker: HealthTracker) -> None:
    """A node is ejected on exactly the failure_limit-th consecutive failure."""
    for _ in range(2):
        tracker.record("a", False)
        assert tracker.usable("a")
    tracker.record("a", False)
    assert not tracker.usable("a")
    assert tracker.usable("b")
    stats = tracker.stats(["a", "b"])
    assert (stats["a"]["errors"], stats["a"]["ejections"], stats["a"]["ejected"]) == (3, 1, True)
    assert stats["b"] == {
        "commands": 0,
        "errors": 0,
        "consecutive_failures": 0,
        "ejections": 0,
        "ejected_until": 0.0,
        "probes": 0,
        "ejected": False,
    }


def test_success_resets_the_consecutive_count(tracker: HealthTracker) -> None:
    """Failures separated by a success do not add up to an ejection."""
    for ok in (False, False, True, False, False):
        tracker.record("a", ok)
    assert tracker.usable("a")
    stats = tracker.stats()["a"]
    assert (stats["commands"], stats["errors"], stats["consecutive_failures"]) == (5, 4, 2)


def test_retry_after_timeout_and_one_failure_re_ejects(
    tracker: HealthTracker, clock: FakeClock
) -> None:
    """An ejected node is usable after retry_timeout; one more failure ejects it again."""
    for _ in range(3):
        tracker.record("a", False)
    clock.advance(9.99)
    assert not tracker.usable("a")
    clock.advance(0.02)
    assert tracker.usable("a")
    assert tracker.stats()["a"]["ejected"] is False
    tracker.record("a", False)
    assert not tracker.usable("a")
    assert tracker.stats()["a"]["ejections"] == 2
    clock.advance(10.01)
    assert tracker.usable("a")


def test_success_after_retry_restores_fully(tracker: HealthTracker, clock: FakeClock) -> None:
    """A success after the timeout clears the failures: the full limit applies again."""
    for _ in range(3):
        tracker.record("a", False)
    clock.advance(10.5)
    tracker.record("a", True)
    tracker.record("a", False)
    tracker.record("a", False)
    assert tracker.usable("a")
    tracker.record("a", False)
    assert not tracker.usable("a")


def test_failures_while_ejected_are_not_new_ejections(tracker: HealthTracker) -> None:
    """More failures during an ejection count as errors, not as further ejections."""
    for _ in range(6):
        tracker.record("a", False)
    stats = tracker.stats()["a"]
    assert (stats["errors"], stats["ejections"]) == (6, 1)


def test_first_usable_skips_ejected_nodes(tracker: HealthTracker) -> None:
    """first_usable returns the first non-ejected node of a preference list, or None."""
    for _ in range(3):
        tracker.record("a", False)
        tracker.record("c", False)
    assert tracker.first_usable(["a", "b", "c"]) == "b"
    assert tracker.first_usable(["c", "a"]) is None
    assert tracker.first_usable([]) is None


def test_disabled_tracker_counts_but_never_ejects(clock: FakeClock) -> None:
    """enabled=False: errors are counted, nodes are never ejected."""
    tracker = HealthTracker(enabled=False, failure_limit=1, clock=clock)
    for _ in range(5):
        tracker.record("a", False)
    assert tracker.usable("a")
    stats = tracker.stats()["a"]
    assert (stats["errors"], stats["ejections"], stats["ejected"]) == (5, 0, False)


def test_forget_drops_a_node(tracker: HealthTracker) -> None:
    """forget() drops a node's counters: it is usable again and gone from stats()."""
    for _ in range(3):
        tracker.record("a", False)
    tracker.forget("a")
    assert tracker.usable("a")
    assert "a" not in tracker.stats()
    tracker.forget("never-seen")  # no error


# ------------------------------------------------------------------ half-open: one probe


def _eject(tracker: HealthTracker, node: str = "a") -> None:
    for _ in range(tracker.failure_limit):
        tracker.record(node, False)
    assert not tracker.usable(node)


def _in_thread(call: Callable[[], object]) -> object:
    """The result of ``call()`` run in another thread (another claimer)."""
    box: list[object] = []
    worker = threading.Thread(target=lambda: box.append(call()))
    worker.start()
    worker.join(10)
    assert box, "the thread did not finish"
    return box[0]


def test_only_one_caller_gets_the_probe(tracker: HealthTracker, clock: FakeClock) -> None:
    """After retry_timeout exactly one thread may use the node; the others are refused."""
    _eject(tracker)
    clock.advance(10.01)
    assert tracker.usable("a")  # this thread takes the probe
    assert tracker.usable("a")  # and keeps it
    others = [_in_thread(lambda: tracker.usable("a")) for _ in range(20)]
    assert others == [False] * 20
    assert tracker.stats()["a"]["probes"] == 1
    assert tracker.first_usable(["a", "b"]) == "a"  # the holder
    assert _in_thread(lambda: tracker.first_usable(["a", "b"])) == "b"  # the others


def test_successful_probe_restores_the_node_for_everyone(
    tracker: HealthTracker, clock: FakeClock
) -> None:
    """A success resolves the probe: the node is usable by every caller, stats say so."""
    _eject(tracker)
    clock.advance(10.01)
    assert tracker.usable("a")
    assert tracker.record("a", True) == "restored"
    assert [_in_thread(lambda: tracker.usable("a")) for _ in range(5)] == [True] * 5
    stats = tracker.stats()["a"]
    assert (stats["ejected"], stats["ejected_until"], stats["consecutive_failures"]) == (
        False, 0.0, 0,
    )  # fmt: skip
    assert tracker.record("a", True) is None  # already healthy: no transition


def test_failed_probe_ejects_for_another_retry_timeout(
    tracker: HealthTracker, clock: FakeClock
) -> None:
    """A failed probe re-ejects at once for a full retry_timeout, then one probe again."""
    _eject(tracker)
    clock.advance(10.01)
    assert tracker.usable("a")
    assert tracker.record("a", False) == "ejected"
    assert not tracker.usable("a")
    assert not _in_thread(lambda: tracker.usable("a"))
    clock.advance(9.9)
    assert not tracker.usable("a")
    clock.advance(0.2)
    assert _in_thread(lambda: tracker.usable("a"))  # another thread probes this time
    assert not tracker.usable("a")
    stats = tracker.stats()["a"]
    assert (stats["ejections"], stats["probes"]) == (2, 2)


def test_ejection_and_restoration_are_reported_once(tracker: HealthTracker) -> None:
    """record() returns "ejected" on the failure that ejects, "restored" on the success that
    ends an ejection, None otherwise."""
    assert [tracker.record("a", False) for _ in range(5)] == [None, None, "ejected", None, None]
    assert tracker.record("a", True) == "restored"
    assert tracker.record("a", True) is None
    disabled = HealthTracker(enabled=False, failure_limit=1)
    assert [disabled.record("a", False) for _ in range(3)] == [None, None, None]


def test_unresolved_probe_lapses_after_probe_timeout(clock: FakeClock) -> None:
    """A claim nobody resolves lapses after probe_timeout; the next caller may probe."""
    tracker = HealthTracker(failure_limit=1, retry_timeout=10.0, probe_timeout=3.0, clock=clock)
    _eject(tracker)
    clock.advance(10.01)
    assert _in_thread(lambda: tracker.usable("a"))  # claimed, never recorded
    clock.advance(2.9)
    assert not tracker.usable("a")
    clock.advance(0.2)
    assert tracker.usable("a")
    assert tracker.stats()["a"]["probes"] == 2


def test_default_probe_timeout_is_the_retry_timeout(clock: FakeClock) -> None:
    """Without probe_timeout a lost claim blocks the node for one more retry_timeout."""
    tracker = HealthTracker(failure_limit=1, retry_timeout=10.0, clock=clock)
    assert tracker.probe_timeout == 10.0
    _eject(tracker)
    clock.advance(10.01)
    assert _in_thread(lambda: tracker.usable("a"))
    clock.advance(9.9)
    assert not tracker.usable("a")
    clock.advance(0.2)
    assert tracker.usable("a")


def test_claim_false_only_looks(tracker: HealthTracker, clock: FakeClock) -> None:
    """usable(claim=False) says whether the probe is free and takes nothing."""
    _eject(tracker)
    assert not tracker.usable("a", claim=False)
    clock.advance(10.01)
    assert tracker.usable("a", claim=False)
    assert tracker.usable("a", claim=False)
    assert _in_thread(lambda: tracker.usable("a"))  # still free: another thread takes it
    assert not tracker.usable("a", claim=False)
    assert tracker.first_usable(["a", "b"], claim=False) == "b"
    assert tracker.stats()["a"]["probes"] == 1


def test_holder_that_succeeds_elsewhere_frees_the_probe(
    tracker: HealthTracker, clock: FakeClock
) -> None:
    """A caller that took a probe but then succeeded on another node (it went there) frees
    the probe: the recovering node is not blocked by a request that never reached it."""
    _eject(tracker)
    clock.advance(10.01)
    assert tracker.usable("a")  # e.g. a list of candidates checked up front
    assert not _in_thread(lambda: tracker.usable("a"))
    tracker.record("b", True)  # ...but the request went to b
    assert _in_thread(lambda: tracker.usable("a"))
    tracker.record("b", False)  # a failure elsewhere does not free it (failover may follow)
    assert not tracker.usable("a")


def test_each_asyncio_task_is_its_own_claimer(tracker: HealthTracker, clock: FakeClock) -> None:
    """In one event loop, exactly one of many concurrent tasks gets the probe."""
    _eject(tracker)
    clock.advance(10.01)

    async def ask() -> bool:
        await asyncio.sleep(0)
        first = tracker.usable("a")
        await asyncio.sleep(0)
        return first and tracker.usable("a")  # the holder keeps it across awaits

    async def scenario() -> list[bool]:
        return list(await asyncio.gather(*(ask() for _ in range(64))))

    assert sorted(asyncio.run(scenario())) == [False] * 63 + [True]


def _race(tracker: HealthTracker, threads: int) -> list[bool]:
    """``tracker.usable("a")`` from ``threads`` threads released at once."""
    start = threading.Barrier(threads)
    answers: list[bool] = []
    lock = threading.Lock()

    def ask() -> None:
        start.wait(10)
        answer = tracker.usable("a")
        with lock:
            answers.append(answer)

    workers = [threading.Thread(target=ask) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(10)
    return answers


def test_many_threads_race_for_one_probe(clock: FakeClock) -> None:
    """64 threads asking at once: one probe per retry cycle, never more."""
    tracker = HealthTracker(failure_limit=1, retry_timeout=10.0, clock=clock)
    _eject(tracker)
    for cycle in range(1, 4):
        clock.advance(10.01)
        answers = _race(tracker, 64)
        assert (len(answers), answers.count(True)) == (64, 1)
        tracker.record("a", False)  # the probe failed
        assert tracker.stats()["a"]["probes"] == cycle


def test_forget_drops_a_probe(tracker: HealthTracker, clock: FakeClock) -> None:
    """forget() on a half-open node drops its probe with its counters."""
    _eject(tracker)
    clock.advance(10.01)
    assert tracker.usable("a")
    tracker.forget("a")
    assert _in_thread(lambda: tracker.usable("a"))


@pytest.mark.parametrize("value", [0, -1.0, float("nan"), float("inf"), 10**400, 1e300, True, "3"])
def test_bad_probe_timeout_raises(value: object) -> None:
    """probe_timeout must be None or a positive number of seconds up to a year."""
    with pytest.raises(InvalidOptionError, match="probe_timeout"):
        HealthTracker(probe_timeout=value)  # type: ignore[arg-type]
    with pytest.raises(InvalidOptionError, match="retry_timeout"):
        HealthTracker(retry_timeout=value)  # type: ignore[arg-type]


def test_release_frees_only_the_callers_unresolved_claim(clock: FakeClock) -> None:
    """``release`` gives back the caller's claim (the next caller may probe at once), never
    another caller's."""
    tracker = HealthTracker(failure_limit=1, retry_timeout=10, clock=clock, probe_timeout=1000)
    tracker.record("a", False)
    clock.now += 10
    assert tracker.usable("a")  # this thread holds the probe
    seen: list[bool] = []

    def other(release: bool) -> None:
        if release:
            tracker.release()
        seen.append(tracker.usable("a"))

    import threading

    for release in (True, False):  # another thread's release frees nothing of ours
        thread = threading.Thread(target=other, args=(release,))
        thread.start()
        thread.join()
    assert seen == [False, False]
    tracker.release(["b"])  # not a node this caller claimed
    assert tracker.stats()["a"]["probes"] == 1
    tracker.release()
    thread = threading.Thread(target=other, args=(False,))
    thread.start()
    thread.join()
    assert seen[-1] is True  # claimed by the other thread now
    assert tracker.stats()["a"]["probes"] == 2


@pytest.mark.parametrize("enabled", [False, True])
def test_counters_are_exact_under_threads(clock: FakeClock, enabled: bool) -> None:
    """8 threads recording at once on shared nodes lose no count, with health off (no
    tracker lock taken) and on (failures below the limit take none either)."""
    tracker = HealthTracker(enabled=enabled, failure_limit=1000, retry_timeout=10.0, clock=clock)
    rounds, threads = 2_000, 8
    start = threading.Barrier(threads)

    def work(index: int) -> None:
        start.wait(10)
        for i in range(rounds):
            tracker.record("ab"[(i + index) % 2], i % 4 != 0)

    workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
    stats = tracker.stats()
    assert stats["a"]["commands"] + stats["b"]["commands"] == rounds * threads
    assert stats["a"]["errors"] + stats["b"]["errors"] == rounds * threads // 4
    assert not stats["a"]["ejected"]
    tracker._check()


def test_check_catches_a_broken_invariant(tracker: HealthTracker, clock: FakeClock) -> None:
    """_check() fails on a probe held by nobody's claims (it can fail, so it checks)."""
    _eject(tracker)
    clock.advance(10.01)
    assert tracker.usable("a")
    tracker._check()
    tracker._claims.clear()
    with pytest.raises(AssertionError):
        tracker._check()
    tracker.record("a", True)  # resolves the probe: consistent again for the fixture


def test_a_record_racing_forget_is_not_lost() -> None:
    """A failure recorded while the node is forgotten (and so re-created) is counted."""
    import sys
    import threading

    tracker = HealthTracker(failure_limit=2)
    tracker.record("a", True)
    node = tracker._nodes["a"]
    node.lock.acquire()  # a concurrent record() stops inside its quiet path
    worker = threading.Thread(target=tracker.record, args=("a", False))
    worker.start()
    deadline = threading.Event()
    for _ in range(1000):  # bounded: until the worker waits on the node's lock
        frame = sys._current_frames().get(worker.ident or -1)
        if frame is not None and frame.f_code.co_name == "record" and frame.f_lineno:
            code_line = frame.f_lineno
            if "health.lock" in _source_line(frame.f_code.co_filename, code_line):
                break
        deadline.wait(0.01)
    tracker.forget("a")
    node.lock.release()
    worker.join(timeout=30)
    stats = tracker.stats(["a"])["a"]
    assert stats["commands"] == 1
    assert stats["errors"] == 1


def _source_line(filename: str, line: int) -> str:
    import linecache

    return linecache.getline(filename, line)
