"""hashring.adapters.celery: QueueRouter's decisions, and real Celery workers obeying them.

Unit tests call the router as Celery does (``router(name, args, kwargs, options,
task=...)``) and through Celery's own ``Router``; the integration tests run one real worker
per queue (solo pool, ``tests/celery_workers.py``) on a redis-server broker and backend
started by the fixtures, and check where every task actually ran (its worker's pid).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from celery import Celery
from celery_app import TASK, make_app
from celery_workers import CeleryWorkers, worker_environment
from hashring.adapters.celery import QueueRouter, TaskKeys
from hypothesis import given, settings
from hypothesis import strategies as st
from redis_servers import RedisServer, redis_server_pool
from strategies import keys, node_names

from hashring import (
    EmptyRingError,
    HashRing,
    HashRingError,
    InvalidKeyError,
    InvalidOptionError,
    InvalidWeightError,
    KeyEncodingError,
    NodeExistsError,
    UnknownNodeError,
    placement,
)

QUEUES = ("shard-0", "shard-1", "shard-2")
RESULT_TIMEOUT = 30.0
SAMPLE_KEYS = [f"tenant-{i}" for i in range(1000)]


def memory_app() -> Celery:
    """The test app on Celery's in-memory transport: a real task object, no network."""
    return make_app("memory://", "cache+memory://")


# ------------------------------------------------------------------ decisions (no broker)


@given(key=keys, names=st.lists(node_names, min_size=1, max_size=6, unique=True))
def test_every_router_over_the_same_queues_routes_a_key_alike(key: Any, names: list[str]) -> None:
    """Routing is deterministic: the same key gets the same queue from any router built
    over the same queues (in any order), call after call, and it is queue_for(key)."""
    first = QueueRouter(names, key_kwarg="tenant_id")
    second = QueueRouter(list(reversed(names)), key_kwarg="tenant_id")
    routes = [router("t", (), {"tenant_id": key}, {}) for router in (first, first, second)]
    assert routes == [{"queue": first.queue_for(key)}] * 3
    assert routes[0]["queue"] in names


def routers_over(names: list[str], algorithm: str) -> QueueRouter:
    """A router over ``names`` by ``algorithm`` (Maglev with a small table, to build fast)."""
    if algorithm == "maglev":
        spec = placement("maglev", names, hash_tags=False, table_size=4099)
        return QueueRouter(names, placement=spec, key_kwarg="k")
    return QueueRouter(names, placement=algorithm, key_kwarg="k")


@settings(max_examples=15)
@given(
    names=st.lists(node_names, min_size=2, max_size=8, unique=True),
    algorithm=st.sampled_from(["ring", "maglev", "rendezvous"]),
)
def test_adding_a_queue_moves_about_one_in_n_plus_one_keys_and_only_to_it(
    names: list[str], algorithm: str
) -> None:
    """Adding a queue to the list of N moves about 1/(N+1) of the keys, all onto the new
    queue (Maglev, which trades minimal movement for balance, moves a few more)."""
    *old, new = names
    before, after = routers_over(old, algorithm), routers_over(names, algorithm)
    moved = [key for key in SAMPLE_KEYS if before.queue_for(key) != after.queue_for(key)]
    onto_new = sum(after.queue_for(key) == new for key in moved)
    ideal = 1 / len(names)
    assert 0.5 * ideal < onto_new / len(SAMPLE_KEYS) < 1.6 * ideal
    if algorithm == "maglev":
        assert len(moved) <= 1.2 * onto_new + 0.02 * len(SAMPLE_KEYS)
    else:
        assert onto_new == len(moved)


def test_jump_moves_keys_minimally_only_when_the_new_name_sorts_last() -> None:
    """Jump numbers queues in name order: add_queue, or a new name sorting after the others,
    moves keys only onto it; a name sorting in the middle renumbers (and moves) more."""
    old = ["shard-1", "shard-2", "shard-3"]
    before = QueueRouter(old, placement="jump", key_kwarg="k")
    for after in (
        QueueRouter([*old, "shard-4"], placement="jump", key_kwarg="k"),
        QueueRouter(old, placement="jump", key_kwarg="k"),
    ):
        if len(after.queues) == 3:
            after.add_queue("shard-0")  # at runtime: the next bucket, whatever its name
        new = (set(after.queues) - set(old)).pop()
        moved = [key for key in SAMPLE_KEYS if before.queue_for(key) != after.queue_for(key)]
        assert all(after.queue_for(key) == new for key in moved)
        assert 0.15 < len(moved) / len(SAMPLE_KEYS) < 0.35
    middle = QueueRouter(["shard-0", *old], placement="jump", key_kwarg="k")
    moved = [key for key in SAMPLE_KEYS if before.queue_for(key) != middle.queue_for(key)]
    assert len(moved) / len(SAMPLE_KEYS) > 0.5


@settings(max_examples=25)
@given(names=st.lists(node_names, min_size=2, max_size=8, unique=True), data=st.data())
def test_removing_a_queue_moves_only_its_keys(names: list[str], data: st.DataObject) -> None:
    """Removing a queue (at runtime or from the list) moves its keys and no other."""
    gone = data.draw(st.sampled_from(names))
    before = QueueRouter(names, key_kwarg="k")
    after = QueueRouter([name for name in names if name != gone], key_kwarg="k")
    live = QueueRouter(names, key_kwarg="k")
    live.remove_queue(gone)
    for key in SAMPLE_KEYS[:500]:
        owner = before.queue_for(key)
        assert after.queue_for(key) == live.queue_for(key)
        assert owner == gone or after.queue_for(key) == owner


def test_add_queue_at_runtime_places_like_a_router_built_with_it() -> None:
    """add_queue at runtime gives the same routes as a router built with the queue, and
    the keyless balancer picks the new queue too."""
    live = QueueRouter(["a", "b"], key_kwarg="k")
    live.add_queue("c")
    built = QueueRouter(["a", "b", "c"], key_kwarg="k")
    assert all(live.queue_for(key) == built.queue_for(key) for key in SAMPLE_KEYS[:500])
    assert {live("t", (), {}, {})["queue"] for _ in range(3)} == {"a", "b", "c"}
    with pytest.raises(NodeExistsError):
        live.add_queue("c")
    with pytest.raises(UnknownNodeError):
        live.remove_queue("nope")


def test_weights_give_a_queue_a_matching_share_of_keys_and_keyless_tasks() -> None:
    """A queue of weight 2 owns about twice the keys of one of weight 1, and round-robin
    sends it exactly two of every three keyless tasks."""
    router = QueueRouter({"big": 2, "small": 1}, key_kwarg="k")
    share = Counter(router.queue_for(key) for key in SAMPLE_KEYS)
    assert 1.6 < share["big"] / share["small"] < 2.5
    keyless = Counter(router("t", (), {}, {})["queue"] for _ in range(300))
    assert keyless == {"big": 200, "small": 100}


@given(rounds=st.integers(1, 20), n=st.integers(1, 8))
def test_round_robin_spreads_keyless_tasks_evenly(rounds: int, n: int) -> None:
    """Keyless tasks go round-robin: over rounds * N tasks, each queue gets exactly rounds."""
    router = QueueRouter([f"q{i}" for i in range(n)], key_kwarg="tenant_id")
    picks = Counter(router("t", (), {"tenant_id": None}, {})["queue"] for _ in range(rounds * n))
    assert picks == {f"q{i}": rounds for i in range(n)}


def test_random_balancer_spreads_keyless_tasks() -> None:
    """balancer="random" spreads keyless tasks over every queue, near evenly."""
    router = QueueRouter(["a", "b", "c"], key_kwarg="k", balancer="random")
    picks = Counter(router("t", (), {}, {})["queue"] for _ in range(3000))
    assert set(picks) == {"a", "b", "c"}
    assert all(800 < count < 1200 for count in picks.values())


def test_without_a_balancer_keyless_tasks_are_left_to_celery() -> None:
    """balancer=None: a keyless task gets None (Celery's other routes and default queue
    apply), a keyed one still its queue."""
    router = QueueRouter(["a", "b"], key_kwarg="k", balancer=None)
    assert router("t", (), {}, {}) is None
    assert router("t", (), {"k": "x"}, {}) == {"queue": router.queue_for("x")}
    assert router.keyless is None
    router.add_queue("c")
    router.remove_queue("a")
    assert router.queues.keys() == {"b", "c"}


@pytest.mark.parametrize(
    ("same", "other"),
    [
        (42, "42"),
        (-7, "-7"),
        (b"acme", "acme"),
        (bytearray(b"acme"), "acme"),
        ("caf\u00e9", "caf\u00e9"),
    ],
)
def test_int_and_bytes_keys_place_like_their_str(same: object, other: str) -> None:
    """An int key is placed as its decimal str (tenant_id=42 and "42" share a queue), bytes
    as the same UTF-8 text."""
    router = QueueRouter([f"q{i}" for i in range(16)], key_kwarg="k")
    assert router("t", (), {"k": same}, {}) == router("t", (), {"k": other}, {})


@pytest.mark.parametrize(
    "bad",
    [1.5, math.nan, True, [1], {"a": 1}, object(), 10**5000],
    ids=["float", "nan", "bool", "list", "dict", "object", "huge-int"],
)
def test_keys_of_other_types_are_refused(bad: object) -> None:
    """A float, bool, container or other object (or an int too long to print) as a key
    raises InvalidKeyError, a TypeError."""
    router = QueueRouter(["a", "b"], key_kwarg="k")
    with pytest.raises(InvalidKeyError) as caught:
        router("t", (), {"k": bad}, {})
    assert isinstance(caught.value, TypeError)
    with pytest.raises(InvalidKeyError):
        router.queue_for(bad)  # type: ignore[arg-type]


@given(text=st.text(), surrogate=st.characters(categories=["Cs"]))
def test_a_lone_surrogate_key_raises_key_encoding_error(text: str, surrogate: str) -> None:
    """A str key holding a lone surrogate raises KeyEncodingError (also a ValueError), from
    the keyword, the header and key_func alike."""
    key = text + surrogate
    router = QueueRouter(["a", "b"], key_kwarg="k", key_header="h")
    by_func = QueueRouter(["a", "b"], key_func=lambda *_: key)
    for call in (
        lambda: router("t", (), {"k": key}, {}),
        lambda: router("t", (), {}, {"headers": {"h": key}}),
        lambda: by_func("t", (), {}, {}),
    ):
        with pytest.raises(KeyEncodingError) as caught:
            call()
        assert isinstance(caught.value, ValueError)


def test_key_sources_are_tried_header_then_argument_then_function() -> None:
    """The header wins over the task argument, which wins over key_func; a source that
    holds None falls through to the next; key_func sees (name, args, kwargs, options)."""
    seen: list[tuple[Any, ...]] = []

    def from_payload(name: str, args: Any, kwargs: Any, options: Any) -> object:
        seen.append((name, args, dict(kwargs), dict(options)))
        return kwargs.get("payload", {}).get("tenant")

    router = QueueRouter(
        [f"q{i}" for i in range(16)],
        key_header="tenant",
        key_kwarg="tenant_id",
        key_func=from_payload,
    )
    keys = TaskKeys(key_header="tenant", key_kwarg="tenant_id", key_func=from_payload)
    both = {"headers": {"tenant": "from-header"}}
    assert keys.find("t", (), {"tenant_id": "from-kwarg"}, both) == "from-header"
    assert keys.find("t", (), {"tenant_id": "from-kwarg"}, {"headers": {"tenant": None}}) == (
        "from-kwarg"
    )
    payload = {"payload": {"tenant": "from-func"}}
    assert keys.find("t", (1,), payload, {"headers": None}) == "from-func"
    assert seen[-1] == ("t", (1,), payload, {"headers": None})
    assert router("t", (), payload, {}) == {"queue": router.queue_for("from-func")}
    assert keys.find("t", (), {}, {}) is None


def test_a_positional_key_is_found_through_the_task_signature() -> None:
    """tenant_task.delay("acme") is routed like delay(tenant_id="acme") when Celery hands
    the router the task; without the task object only the keyword is seen."""
    app = memory_app()
    task = app.tasks[TASK]
    router = QueueRouter([f"q{i}" for i in range(16)], key_kwarg="tenant_id")
    expected = {"queue": router.queue_for("acme")}
    assert router(TASK, ("acme", 3), {}, {}, task=task) == expected
    assert router(TASK, (), {"tenant_id": "acme"}, {}, task=task) == expected
    unseen = QueueRouter(["a", "b"], key_kwarg="tenant_id", balancer=None)
    assert unseen(TASK, ("acme",), {}, {}, task=None) is None  # keyless: left to Celery
    other = QueueRouter(["a"], key_kwarg="n")  # the second parameter of where(tenant_id, n)
    assert other.keys.find(TASK, ("x", 5), {}, {}, task) == "5"
    app.close()


def test_the_tasks_filter_leaves_other_tasks_to_celerys_other_routes() -> None:
    """With tasks=[names or patterns], other tasks get None from the router, and Celery
    goes on to the next entry of task_routes."""
    router = QueueRouter(["a", "b"], key_kwarg="k", tasks=["billing.*", "reports.daily"])
    assert router.routes("billing.charge")
    assert router.routes("reports.daily")
    assert not router.routes("reports.daily.extra")
    assert not router.routes("Billing.charge")
    assert router("mail.send", (), {"k": "x"}, {}) is None
    app = memory_app()
    app.conf.task_routes = (router, {"mail.*": {"queue": "mail"}})
    route = app.amqp.router.route({}, "mail.send", (), {"k": "x"})
    assert route["queue"].name == "mail"
    route = app.amqp.router.route({}, "billing.charge", (), {"k": "x"})
    assert route["queue"].name == router.queue_for("x")
    app.close()


def test_celerys_router_takes_the_route_and_an_explicit_queue_still_wins() -> None:
    """In task_routes, Celery's Router turns the route into the queue from task_queues, and
    an apply_async(queue=...) of the call overrides it."""
    router = QueueRouter(list(QUEUES), key_kwarg="tenant_id")
    app = memory_app()
    app.conf.task_routes = (router,)
    app.conf.task_queues = router.task_queues()
    task = app.tasks[TASK]
    route = app.amqp.router.route({}, TASK, ("acme",), {}, task)
    assert route["queue"] is app.amqp.queues[router.queue_for("acme")]
    assert route["queue"].routing_key == router.queue_for("acme")
    explicit = app.amqp.router.route({"queue": "shard-0"}, TASK, ("acme",), {}, task)
    assert explicit["queue"].name == "shard-0"
    app.close()


def test_task_queues_and_worker_commands_cover_every_queue() -> None:
    """task_queues() gives one kombu Queue per queue (routing key = name), and
    worker_commands() one worker per queue consuming only it."""
    router = QueueRouter(["b", "a"], key_kwarg="k")
    assert [(q.name, q.routing_key) for q in router.task_queues()] == [("a", "a"), ("b", "b")]
    commands = router.worker_commands("proj", "--concurrency=4")
    assert commands == {
        name: ["celery", "-A", "proj", "worker", "-Q", name, "-n", f"{name}@%h", "--concurrency=4"]
        for name in ("a", "b")
    }


def test_a_ready_placement_carries_weights_and_options() -> None:
    """placement= a ready Placement over the queue names is used as it is (weights, hash
    tags on); names that differ from the queues are refused."""
    ring = HashRing({"a": 3, "b": 1}, hash_tags=True)
    router = QueueRouter(["a", "b"], placement=ring, key_kwarg="k")
    assert router.placement is ring
    assert router.queue_for("x{t}") == router.queue_for("y{t}")
    assert router.queues == {"a": 3.0, "b": 1.0}
    with pytest.raises(InvalidOptionError, match="not in the placement"):
        QueueRouter(["a", "b", "c"], placement=placement("ring", ["a", "b"]), key_kwarg="k")
    with pytest.raises(InvalidOptionError, match="already held"):
        QueueRouter(["a", "b"], placement=ring, key_kwarg="k")


def test_hash_tags_are_off_when_the_placement_is_a_name() -> None:
    """With placement= a name, a {tag} in a key does not pin it: keys are placed whole."""
    router = QueueRouter([f"q{i}" for i in range(32)], key_kwarg="k")
    assert len({router.queue_for(f"user-{i}{{same}}") for i in range(200)}) > 1


@pytest.mark.parametrize(
    ("queues", "options", "error", "message"),
    [
        ([], {}, InvalidOptionError, "empty"),
        ({}, {}, InvalidOptionError, "empty"),
        ("shard-0", {}, InvalidOptionError, "list of queue names"),
        (None, {}, InvalidOptionError, "list of queue names"),
        (["a", "b", "a"], {}, NodeExistsError, "more than once"),
        (["a", ""], {}, InvalidOptionError, "non-empty"),
        (["a", 3], {}, InvalidOptionError, "must be str"),
        (["a", ["b"]], {}, InvalidOptionError, "must be str"),
        ({"a": math.nan}, {}, InvalidWeightError, "positive finite"),
        ({"a": math.inf}, {}, InvalidWeightError, "positive finite"),
        ({"a": 1e308}, {}, InvalidWeightError, "positive finite"),
        ({"a": 0}, {}, InvalidWeightError, "positive finite"),
        ({"a": -1}, {}, InvalidWeightError, "positive finite"),
        ({"a": "1"}, {}, InvalidWeightError, "weight"),
        (["a"], {"placement": "ketama"}, InvalidOptionError, "unknown algorithm"),
        (["a"], {"placement": 3}, InvalidOptionError, "algorithm name"),
        ({"a": 2}, {"placement": HashRing({"a": 2})}, InvalidOptionError, "said once"),
        (["a"], {"key_kwarg": None}, InvalidOptionError, "where a task's key comes from"),
        (["a"], {"key_kwarg": ""}, InvalidOptionError, "non-empty str"),
        (["a"], {"key_header": 3}, InvalidOptionError, "non-empty str"),
        (["a"], {"key_func": "tenant"}, InvalidOptionError, "callable"),
        (["a"], {"balancer": "least-loaded"}, InvalidOptionError, "no load to read"),
        (["a"], {"balancer": "power-of-two"}, InvalidOptionError, "no load to read"),
        (["a"], {"balancer": "fastest"}, InvalidOptionError, "balancer must be"),
        (["a"], {"tasks": "billing.*"}, InvalidOptionError, "list of task names"),
        (["a"], {"tasks": []}, InvalidOptionError, "route nothing"),
        (["a"], {"tasks": ["ok", 3]}, InvalidOptionError, "non-empty str"),
    ],
)
def test_bad_configuration_raises_a_typed_error(
    queues: Any, options: dict[str, Any], error: type[HashRingError], message: str
) -> None:
    """Bad queues, weights, key sources, balancers or task filters raise a typed
    HashRingError (also a ValueError) that says what is wrong."""
    options = {"key_kwarg": "k", **options}
    with pytest.raises(error, match=message) as caught:
        QueueRouter(queues, **options)
    assert isinstance(caught.value, (HashRingError, ValueError))
    assert isinstance(caught.value, ValueError)


def test_a_router_whose_queues_were_all_removed_says_so() -> None:
    """Removing every queue at runtime makes routing raise EmptyRingError, not pick None."""
    router = QueueRouter(["a"], key_kwarg="k")
    router.remove_queue("a")
    with pytest.raises(EmptyRingError):
        router("t", (), {"k": "x"}, {})
    with pytest.raises(EmptyRingError):
        router("t", (), {}, {})


# ------------------------------------------------------------------ real workers
#
# One module-scoped set of workers, and one test that runs every scenario on it: under
# `pytest -n 2`, tests of one module may land on both xdist processes, and each would start
# its own workers (seconds each on this machine). The scenarios stay separate functions.


def test_workers_inherit_nothing_that_points_at_another_broker(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A worker's environment drops CELERY_*, broker and Redis variables and any value naming
    port 6379, and refuses to point a worker at 6379 itself."""
    monkeypatch.setenv("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0")
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6380/0")
    monkeypatch.setenv("SOME_CACHE", "localhost:6379")
    monkeypatch.setenv("KEEP_ME", "yes")
    env = worker_environment("redis://127.0.0.1:5001/0", "redis://127.0.0.1:5001/1")
    assert env["HASHRING_CELERY_BROKER"] == "redis://127.0.0.1:5001/0"
    assert env["KEEP_ME"] == "yes"
    assert not {"CELERY_BROKER_URL", "REDIS_URL", "SOME_CACHE"} & set(env)
    assert not any(":6379" in value for value in env.values())
    with pytest.raises(ValueError, match="6379"):
        worker_environment("redis://127.0.0.1:6379/0", "redis://127.0.0.1:5001/1")


@pytest.fixture(scope="module")
def redis_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One redis-server (tests/redis_servers.py) for this module's broker and backend."""
    with redis_server_pool(tmp_path_factory) as factory:
        yield factory(1)[0]


def redis_url(server: RedisServer, db: int) -> str:
    return f"redis://{server.host}:{server.port}/{db}"


@pytest.fixture(scope="module")
def workers(
    redis_broker: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[CeleryWorkers]:
    """One solo-pool worker per queue of QUEUES, answering pings; stopped at teardown,
    also when starting them failed."""
    broker, backend = redis_url(redis_broker, 0), redis_url(redis_broker, 1)
    control = make_app(broker, backend)
    started = CeleryWorkers.start(
        control, QUEUES, broker=broker, backend=backend, directory=tmp_path_factory.mktemp("celery")
    )
    try:
        started.wait_ready()
        yield started
    finally:
        started.stop()
        control.close()


class Producer:
    """A producer app routing with ``router`` (task_routes and task_queues set as the
    README sets them), on ``broker``; :meth:`run` sends tasks and waits for their results."""

    def __init__(self, broker: RedisServer, router: QueueRouter) -> None:
        self.router = router
        self.app = make_app(redis_url(broker, 0), redis_url(broker, 1))
        self.app.conf.task_routes = (router,)
        self.app.conf.task_queues = router.task_queues()
        self.task = self.app.tasks[TASK]

    def run(self, calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """apply_async each call's options; every result, in order (bounded waits)."""
        sent = [self.task.apply_async(**call) for call in calls]
        return [result.get(timeout=RESULT_TIMEOUT) for result in sent]

    def close(self) -> None:
        self.app.close()


@pytest.fixture
def send(redis_broker: RedisServer) -> Iterator[Callable[[QueueRouter], Producer]]:
    """``send(router)``: a Producer routing with ``router``; all closed at teardown."""
    made: list[Producer] = []

    def producer(router: QueueRouter) -> Producer:
        made.append(Producer(redis_broker, router))
        return made[-1]

    yield producer
    for each in made:
        each.close()


def ran_on(workers: CeleryWorkers, result: dict[str, Any]) -> str:
    """The queue whose worker ran a task, checked three ways: the queue it was delivered
    from, the worker's name (queue@host) and its pid (solo pool: the worker's own)."""
    queue = str(result["queue"])
    assert result["pid"] == workers.pid(queue)
    assert result["hostname"] == workers.hostnames[queue]
    return queue


def keyed_tasks_run_on_their_keys_queue(workers: CeleryWorkers, producer: Producer) -> None:
    """Each task with key K runs on the worker of K's queue (str and int keys, by keyword,
    position and header), and every result arrives."""
    router = producer.router
    tenants: list[str | int] = [f"tenant-{i}" for i in range(24)] + list(range(12))
    calls = (
        [{"kwargs": {"tenant_id": t, "n": i}} for i, t in enumerate(tenants)]
        + [{"args": (t, i)} for i, t in enumerate(tenants)]
        + [{"headers": {"tenant": t}, "kwargs": {"n": i}} for i, t in enumerate(tenants)]
    )
    results = producer.run(calls)
    assert [r["n"] for r in results] == [i for _ in range(3) for i in range(len(tenants))]
    for call, result in zip(calls, results, strict=True):
        key = (call.get("headers") or {}).get("tenant", result["tenant_id"])
        assert ran_on(workers, result) == router.queue_for(key)
    assert {ran_on(workers, r) for r in results} == set(QUEUES)


def a_changed_queue_list_moves_only_the_expected_keys(
    workers: CeleryWorkers, send: Callable[[QueueRouter], Producer]
) -> None:
    """Adding shard-2 to two queues moves keys only onto it; then removing shard-1 moves
    only shard-1's keys; every other key keeps running on the same worker process."""
    tenants = [f"tenant-{i}" for i in range(40)]
    lists = {
        "before": ["shard-0", "shard-1"],
        "added": ["shard-0", "shard-1", "shard-2"],
        "removed": ["shard-0", "shard-2"],  # from "added"
    }
    ran: dict[str, dict[str, int]] = {}
    for name, queues in lists.items():
        router = QueueRouter(queues, key_kwarg="tenant_id")
        results = send(router).run([{"kwargs": {"tenant_id": t}} for t in tenants])
        assert all(ran_on(workers, r) == router.queue_for(r["tenant_id"]) for r in results)
        ran[name] = {r["tenant_id"]: r["pid"] for r in results}
    pid = workers.pid
    moved_by_adding = {t for t in tenants if ran["added"][t] != ran["before"][t]}
    assert moved_by_adding
    assert len(moved_by_adding) < len(tenants) / 2
    assert {ran["added"][t] for t in moved_by_adding} == {pid("shard-2")}
    moved_by_removing = {t for t in tenants if ran["removed"][t] != ran["added"][t]}
    assert moved_by_removing
    assert moved_by_removing == {t for t in tenants if ran["added"][t] == pid("shard-1")}
    assert pid("shard-1") not in ran["removed"].values()


def keyless_tasks_are_spread_over_every_queue(workers: CeleryWorkers, producer: Producer) -> None:
    """Tasks without a key go round-robin: 4 per queue out of 12, each on its queue's worker."""
    results = producer.run([{"kwargs": {"n": i}} for i in range(12)])
    assert Counter(ran_on(workers, r) for r in results) == {queue: 4 for queue in QUEUES}


@pytest.mark.redis
def test_real_workers_run_each_task_where_the_router_sends_it(
    workers: CeleryWorkers, send: Callable[[QueueRouter], Producer]
) -> None:
    """On real workers (one per queue): keyed tasks run on their key's queue, a changed
    queue list moves only the expected keys, keyless tasks spread, every result arrives."""
    router = QueueRouter(list(QUEUES), key_kwarg="tenant_id", key_header="tenant")
    keyed_tasks_run_on_their_keys_queue(workers, send(router))
    a_changed_queue_list_moves_only_the_expected_keys(workers, send)
    keyless_tasks_are_spread_over_every_queue(
        workers, send(QueueRouter(list(QUEUES), key_kwarg="tenant_id"))
    )
    workers.check_running()


@pytest.mark.redis
def test_a_bad_key_fails_at_apply_async_and_publishes_nothing(
    redis_broker: RedisServer, send: Callable[[QueueRouter], Producer]
) -> None:
    """A key with a lone surrogate (or of a wrong type) raises at apply_async in the caller,
    before anything is published; a good key on the same router is published."""
    idle = ["idle-0", "idle-1"]  # queues no worker consumes: what is published stays there
    producer = send(QueueRouter(idle, key_kwarg="tenant_id"))
    broker = redis_broker.client()
    try:
        with pytest.raises(KeyEncodingError):
            producer.task.apply_async(kwargs={"tenant_id": "caf\udce9"})
        with pytest.raises(InvalidKeyError):
            producer.task.apply_async(args=(2.5,))
        assert [broker.llen(queue) for queue in idle] == [0, 0]
        producer.task.apply_async(kwargs={"tenant_id": "acme"})
        assert broker.llen(producer.router.queue_for("acme")) == 1
    finally:
        broker.delete(*idle)
