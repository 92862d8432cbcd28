"""Writes during a migration window, on real servers: before the migration starts a write of
a moving key runs on its old owner (where clients of the previous topology see it); once the
marker is set it pulls the key to its new owner first, so read-modify-writes continue from
the moved value and deletes cannot be undone by the migration. Keys that stay are untouched
by the window; multi-key commands split per route; blocking writes wait for the marker."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from hashring.adapters.migrate import MigrationSession
from hashring.adapters.redis import (
    AsyncShardedRedis,
    CrossShardError,
    ShardedRedis,
    UnsupportedCommandError,
)
from hashring.adapters.redis._window_routes import MOVED_REMEMBERED, Window

from hashring import Placement, load_topology
from hashring._topology.clients import done_key, marker_key
from tests.redis_servers import RedisServer, RedisServerFactory
from tests.waiting import wait_until

pytestmark = pytest.mark.redis


class Flow:
    """Three old nodes, a fourth added by the window; files old.toml and window.toml."""

    def __init__(self, servers: list[RedisServer], tmp_path: Path) -> None:
        self.servers = servers
        text = "".join(f'[nodes.n{i}]\nurl = "{s.url}"\n' for i, s in enumerate(servers))
        three = "".join(f'[nodes.n{i}]\nurl = "{s.url}"\n' for i, s in enumerate(servers[:3]))
        self.old_path = tmp_path / "old.toml"
        self.old_path.write_text(three, encoding="utf-8")
        self.path = tmp_path / "window.toml"
        self.path.write_text(text + '[migration]\nprevious = "old.toml"\n', encoding="utf-8")
        self.old_topology, self.window = load_topology(self.old_path), load_topology(self.path)
        self.old: Placement = self.old_topology.placement()
        self.new: Placement = self.window.placement()
        self.marker = marker_key(self.window.version)
        self.direct = {f"n{i}": s.client() for i, s in enumerate(servers)}

    def moving(self, count: int, prefix: str = "m") -> list[str]:
        keys = (f"{prefix}{i}" for i in range(100_000))
        return [k for k in keys if self.old.get_node(k) != self.new.get_node(k)][:count]

    def staying(self, count: int, prefix: str = "s") -> list[str]:
        keys = (f"{prefix}{i}" for i in range(100_000))
        return [k for k in keys if self.old.get_node(k) == self.new.get_node(k)][:count]

    def on_old(self, key: str) -> redis.Redis:
        return self.direct[self.old.get_node(key)]

    def on_new(self, key: str) -> redis.Redis:
        return self.direct[self.new.get_node(key)]

    def start_migration(self) -> None:
        """What ``hashring migrate --apply`` does once every client runs the window."""
        with MigrationSession(self.old_topology, self.window) as session:
            session.set_marker(self.marker, self.old_topology.nodes)

    def migrate(self) -> None:
        with MigrationSession(self.old_topology, self.window) as session:
            session.set_marker(self.marker, self.old_topology.nodes)
            result = session.migrate(allow_volatile=True)
        assert result.failed == 0


@pytest.fixture
def flow(redis_server_factory: RedisServerFactory, tmp_path: Path) -> Iterator[Flow]:
    made = Flow(redis_server_factory(4), tmp_path)
    yield made
    for client in made.direct.values():
        client.close()


@pytest.fixture
def client(flow: Flow) -> Iterator[ShardedRedis]:
    made = ShardedRedis.from_config(flow.path)
    yield made
    made.close()


def test_before_the_marker_a_moving_key_is_written_on_its_old_owner(
    flow: Flow, client: ShardedRedis
) -> None:
    key = flow.moving(1)[0]
    old_client = ShardedRedis.from_config(flow.old_path)
    try:
        old_client.set(key, "from-old-topology")
        assert client.set(key, "from-window") is True
        assert flow.on_old(key).get(key) == b"from-window"
        assert flow.on_new(key).exists(key) == 0
        assert old_client.get(key) == b"from-window"  # a client of the old topology sees it
        assert client.get(key) == b"from-window"  # through the read fallback
    finally:
        old_client.close()


def test_once_the_marker_is_set_a_write_pulls_the_key_first(
    flow: Flow, client: ShardedRedis
) -> None:
    counter, doomed, hashed = flow.moving(3)
    for key in (counter, doomed):
        flow.on_old(key).set(key, "41", ex=1000)
    flow.on_old(hashed).hset(hashed, mapping={"a": "1"})
    flow.start_migration()
    assert client.incr(counter) == 42  # continued from the moved value
    assert client._members.window.has_moved([counter])  # its next commands go there directly
    assert client.incr(counter) == 43
    assert flow.on_old(counter).exists(counter) == 0
    assert flow.on_new(counter).get(counter) == b"43"
    assert 0 < flow.on_new(counter).ttl(counter) <= 1000  # the TTL moved with it
    assert client.delete(doomed) == 1
    assert client.hset(hashed, "b", "2") == 1
    flow.migrate()  # nothing left to resurrect
    assert flow.on_new(doomed).exists(doomed) == 0
    assert flow.on_old(doomed).exists(doomed) == 0
    assert flow.on_new(hashed).hgetall(hashed) == {b"a": b"1", b"b": b"2"}
    assert client.get(doomed) is None


def test_a_write_before_the_marker_is_moved_by_the_migration(
    flow: Flow, client: ShardedRedis
) -> None:
    keys = flow.moving(20)
    for i, key in enumerate(keys):
        client.set(key, str(i))
        client.incr(key)
    flow.migrate()
    for i, key in enumerate(keys):
        assert flow.on_new(key).get(key) == str(i + 1).encode()
        assert flow.on_old(key).exists(key) == 0
        assert client.get(key) == str(i + 1).encode()


def test_keys_that_stay_are_written_where_they_are(flow: Flow, client: ShardedRedis) -> None:
    key = flow.staying(1)[0]
    assert client.set(key, "v") is True
    assert flow.on_new(key).get(key) == b"v"
    flow.start_migration()
    assert client.append(key, "w") == 2
    assert flow.on_new(key).get(key) == b"vw"


@pytest.mark.parametrize("started", [False, True], ids=["before-marker", "after-marker"])
def test_multi_key_writes_split_per_route(flow: Flow, client: ShardedRedis, started: bool) -> None:
    moving, staying = flow.moving(6), flow.staying(6)
    keys = [k for pair in zip(moving, staying, strict=True) for k in pair]
    if started:
        flow.start_migration()
    assert client.mset({k: f"v-{k}" for k in keys}) is True
    assert client.mget(keys) == [f"v-{k}".encode() for k in keys]
    assert client.delete(*keys[:4], "absent-key") == 4
    assert client.exists(*keys) == len(keys) - 4
    flow.migrate()
    for key in keys[4:]:
        assert flow.on_new(key).get(key) == f"v-{key}".encode()
    for key in keys[:4]:
        assert flow.on_new(key).exists(key) == 0
        assert flow.on_old(key).exists(key) == 0


def test_a_one_node_command_over_two_routes_is_refused(flow: Flow, client: ShardedRedis) -> None:
    """RENAME of two keys moving to one new node from two old owners: CrossShardError (a
    client of the previous topology would refuse it too), nothing sent."""
    moving = flow.moving(200)
    source = moving[0]
    target = next(k for k in moving if flow.old.get_node(k) != flow.old.get_node(source))
    assert flow.new.get_node(target) == flow.new.get_node(source)
    client.set(source, "v")
    with pytest.raises(CrossShardError):
        client.rename(source, target)
    assert client.get(source) == b"v"


def test_blocking_writes_wait_for_the_marker(flow: Flow, client: ShardedRedis) -> None:
    key = flow.moving(1)[0]
    flow.on_old(key).rpush(key, "x")
    with pytest.raises(UnsupportedCommandError, match="until the migration has started"):
        client.blpop([key], timeout=1)
    assert flow.on_old(key).llen(key) == 1  # nothing was sent
    flow.start_migration()
    assert client.blpop([key], timeout=1) == (key.encode(), b"x")
    assert flow.on_old(key).exists(key) == 0


def test_a_wrongtype_error_is_the_servers_own_through_the_gate(
    flow: Flow, client: ShardedRedis
) -> None:
    key = flow.moving(1)[0]
    client.hset(key, "f", "v")
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        client.incr(key)
    flow.start_migration()
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        client.incr(key)
    assert client.hgetall(key) == {b"f": b"v"}


def test_a_key_on_both_owners_raises_an_explained_busykey(flow: Flow, client: ShardedRedis) -> None:
    key = flow.moving(1)[0]
    flow.on_old(key).set(key, "old")
    flow.on_new(key).set(key, "stray")
    flow.start_migration()
    with pytest.raises(redis.ResponseError, match="exists both on"):
        client.set(key, "new")
    assert flow.on_old(key).get(key) == b"old"
    assert flow.on_new(key).get(key) == b"stray"


def test_decoded_answers_through_the_gate(flow: Flow) -> None:
    decoded = ShardedRedis.from_config(flow.path, decode_responses=True, protocol=3)
    try:
        key = flow.moving(1)[0]
        assert decoded.hset(key, mapping={"a": "1", "b": "2"}) == 2
        assert decoded.hincrbyfloat(key, "a", 0.5) == 1.5
        assert decoded.hgetall(key) == {"a": "1.5", "b": "2"}
        flow.start_migration()
        assert decoded.hincrbyfloat(key, "a", 0.5) == 2.0
        assert decoded.hgetall(key) == {"a": "2", "b": "2"}
    finally:
        decoded.close()


def test_the_async_client_gates_and_pulls(flow: Flow) -> None:
    counter, doomed = flow.moving(2)
    staying = flow.staying(1)[0]

    async def scenario() -> list[Any]:
        client = AsyncShardedRedis.from_config(flow.path)
        try:
            seen = [await client.set(counter, "1"), await client.incr(counter)]
            seen.append(flow.on_old(counter).get(counter))
            await client.set(doomed, "x")
            await client.set(staying, "s")
            flow.start_migration()
            seen.append(await client.incr(counter))
            seen.append(await client.delete(doomed))
            seen.append(await client.mset({counter: "10", staying: "t"}))
            return seen
        finally:
            await client.aclose()

    assert asyncio.run(scenario()) == [True, 2, b"2", 3, 1, True]
    assert flow.on_new(counter).get(counter) == b"10"
    assert flow.on_old(counter).exists(counter) == 0
    assert flow.on_new(staying).get(staying) == b"t"
    flow.migrate()
    assert flow.on_new(doomed).exists(doomed) == 0


def test_a_pipeline_that_writes_runs_each_command_by_the_window_rules(
    flow: Flow, client: ShardedRedis
) -> None:
    moving, staying = flow.moving(2), flow.staying(2)
    pipe = client.pipeline(transaction=False)
    for key in (*moving, *staying):
        pipe.set(key, f"v-{key}").incr(f"{{{key}}}:n").get(key)
    pipe.hset(moving[0], "f", "v")  # WRONGTYPE in its place
    answers = pipe.execute(raise_on_error=False)
    assert answers[:-1] == [x for k in (*moving, *staying) for x in (True, 1, f"v-{k}".encode())]
    assert isinstance(answers[-1], redis.ResponseError)
    assert "WRONGTYPE" in str(answers[-1])
    for key in moving:
        assert flow.on_old(key).get(key) == f"v-{key}".encode()  # gated: the old owner
    flow.migrate()
    for key in (*moving, *staying):
        assert flow.on_new(key).get(key) == f"v-{key}".encode()


def test_a_transaction_on_moving_keys_waits_for_the_marker(
    flow: Flow, client: ShardedRedis
) -> None:
    key = flow.moving(1)[0]
    client.set(key, "5")
    pipe = client.pipeline()
    pipe.incr(key).incr(key)
    with pytest.raises(UnsupportedCommandError, match="MULTI/EXEC cannot run"):
        pipe.execute()
    with pytest.raises(UnsupportedCommandError, match="WATCH cannot run"):
        client.pipeline().watch(key)
    assert flow.on_old(key).get(key) == b"5"  # nothing was sent
    flow.start_migration()
    pipe = client.pipeline()
    assert pipe.incr(key).incr(key).execute() == [6, 7]
    assert flow.on_new(key).get(key) == b"7"
    assert flow.on_old(key).exists(key) == 0

    def double(pipe: Any) -> None:
        value = int(pipe.get(key))
        pipe.multi()
        pipe.set(key, value * 2)

    assert client.transaction(double, key) == [True]
    assert client.get(key) == b"14"


def test_async_pipelines_and_transactions_in_the_window(flow: Flow) -> None:
    moving, staying = flow.moving(2), flow.staying(1)[0]

    async def scenario() -> list[Any]:
        client = AsyncShardedRedis.from_config(flow.path)
        try:
            pipe = client.pipeline(transaction=False)
            pipe.set(moving[0], "a").set(staying, "b").get(moving[0])
            seen: list[Any] = [await pipe.execute()]
            seen.append(flow.on_old(moving[0]).get(moving[0]))
            with pytest.raises(UnsupportedCommandError):
                await client.pipeline().incr(moving[1]).execute()
            flow.start_migration()
            seen.append(await client.pipeline().set(moving[0], "c").get(moving[0]).execute())
            return seen
        finally:
            await client.aclose()

    assert asyncio.run(scenario()) == [[True, True, b"a"], b"a", [True, b"c"]]
    assert flow.on_new(moving[0]).get(moving[0]) == b"c"
    assert flow.on_old(moving[0]).exists(moving[0]) == 0


def test_reads_of_moving_keys_learn_that_the_migration_started(
    flow: Flow, client: ShardedRedis
) -> None:
    """Before the marker a read of a moving key asks its old owner first (where such keys
    are) and looks at the marker in the same round trip (at most once every
    MARKER_LOOK_INTERVAL seconds per node); once it has seen it, the new owner first: either
    way the answer is the key's only copy."""
    key, absent_key = flow.moving(2)
    flow.on_old(key).set(key, "v")
    window = client._members.window
    assert client.get(key) == b"v"
    assert client.get(absent_key) is None
    assert window.started == set()
    flow.start_migration()
    answers: list[Any] = []

    def learned() -> bool:
        answers.append(client.get(key))
        return bool(window.started)

    wait_until(learned, "a read to see the marker")
    assert set(answers) == {b"v"}
    assert window.started == {flow.old.get_node(key)}
    other = ShardedRedis.from_config(flow.path)
    try:
        assert other.set(key, "w") is True  # pulls the key to its new owner first
    finally:
        other.close()
    assert not window.has_moved([key])
    assert client.get(key) == b"w"  # found on its new owner once the migration started
    assert window.has_moved([key])
    assert flow.on_old(key).exists(key) == 0


def test_a_client_looks_for_the_markers_at_most_once_per_interval_per_node() -> None:
    """Window.markers: both markers on the first look at a node, nothing more on that node
    until MARKER_LOOK_INTERVAL has passed (other nodes are looked at meanwhile), only the
    done marker once the marker was seen, nothing once the done marker was."""
    window = Window.of(None, "0123456789abcdef")
    assert window.markers("n0") == (window.marker, window.done_marker)
    assert window.markers("n0") == (None, None)  # looked at just now
    assert window.markers("n1") == (window.marker, window.done_marker)
    window.saw("n0", True, False)
    wait_until(lambda: window.markers("n0") != (None, None), "the next look at n0")
    assert window.markers("n0") == (None, None)
    wait_until(lambda: window.markers("n0") == (None, window.done_marker), "a look after it")
    window.saw("n1", True, True)
    assert window.markers("n1") == (None, None)
    assert not window.moves("n3", "n1")
    assert window.moves("n3", "n0")


def test_a_client_remembers_a_bounded_number_of_moved_keys() -> None:
    window = Window.of(None, "0123456789abcdef")
    window.note_moved(["a", b"b", 7, bytearray(b"c")])
    assert window.has_moved(["a", b"b", 7])
    assert not window.has_moved([bytearray(b"c")])  # unhashable: never remembered
    window.note_moved([f"k{i}" for i in range(MOVED_REMEMBERED)])
    assert not window.has_moved(["a"])  # full: it started over
    assert window.has_moved(["k0", f"k{MOVED_REMEMBERED - 1}"])


def test_reads_ask_first_the_side_that_lately_held_such_keys() -> None:
    """Old owner first until the marker is seen there, then whichever side the recent reads
    of keys moving from that node found them on (the counts halve every 64 reads)."""
    window = Window.of(None, "0123456789abcdef")
    assert window.old_first("n0")  # no marker seen: nothing has moved
    window.started.add("n0")
    assert not window.old_first("n0")  # the marker seen, nothing found yet: new first
    window.found("n0", on_old=True)
    assert window.old_first("n0")
    for _ in range(40):
        window.found("n0", on_old=False)
    assert not window.old_first("n0")
    for _ in range(200):
        window.found("n0", on_old=True)
    assert window.old_first("n0")  # recent reads weigh most
    assert window.old_first("n1")  # another old owner: its marker not seen yet


def test_many_keys_are_told_staying_or_moving_in_one_batch(
    flow: Flow, client: ShardedRedis
) -> None:
    """From 16 keys a command's keys are placed in both topologies by the batch paths:
    40 keys that stay run as outside a window; one moving key among them sends the whole
    command through the window's rules."""
    staying, moving = flow.staying(40), flow.moving(1)[0]
    assert client.mset({k: "s" for k in staying}) is True
    assert [flow.on_new(k).get(k) for k in staying] == [b"s"] * 40
    assert client.mset({**{k: "t" for k in staying}, moving: "m"}) is True
    assert flow.on_old(moving).get(moving) == b"m"  # gated: its old owner
    assert client.mget([*staying, moving]) == [b"t"] * 40 + [b"m"]


def _calls(node: redis.Redis, command: str) -> int:
    """How many times ``node`` ran ``command`` (INFO commandstats)."""
    stats = node.info("commandstats").get(f"cmdstat_{command}")
    return int(stats["calls"]) if stats else 0


def test_migrate_sets_the_done_marker_where_its_pass_left_nothing_and_clears_it(
    flow: Flow,
) -> None:
    """After a pass that moved everything, every old owner holds the window's done marker
    (never moved: it is node-local); clearing the marker clears it too."""
    keys = flow.moving(30)
    for key in keys:
        flow.on_old(key).set(key, "v")
    flow.migrate()
    done = done_key(flow.marker)
    assert {name for name, node in flow.direct.items() if node.exists(done)} == {"n0", "n1", "n2"}
    assert all(flow.on_new(key).get(key) == b"v" for key in keys)
    with MigrationSession(flow.window, flow.window) as session:
        assert session.clear_marker(flow.marker) == ["n0", "n1", "n2"]
    assert not any(node.exists(done) or node.exists(flow.marker) for node in flow.direct.values())


def test_a_node_whose_pass_kept_a_conflict_gets_no_done_marker(flow: Flow) -> None:
    """With --on-conflict skip, a key on both owners stays on its old one: that node is not
    done (its keys still need the window's rules); the others are."""
    [key] = flow.moving(1)
    flow.on_old(key).set(key, "old")
    flow.on_new(key).set(key, "new")
    kept = flow.old.get_node(key)
    with MigrationSession(flow.old_topology, flow.window) as session:
        session.set_marker(flow.marker, flow.old_topology.nodes)
        result = session.migrate(allow_volatile=True, on_conflict="skip")
    assert result.conflicts_total == 1
    done = done_key(flow.marker)
    assert {n for n, node in flow.direct.items() if node.exists(done)} == {"n0", "n1", "n2"} - {
        kept
    }


@pytest.mark.parametrize("learn", ["read", "pull"])
def test_once_the_done_marker_is_seen_moving_keys_go_straight_to_their_new_owner(
    flow: Flow, client: ShardedRedis, learn: str
) -> None:
    """A read of a moving key on its old owner, or a pull from it, sees the done marker in
    the same round trip; from then on keys moving away from that node are read and written
    on their new owner alone: their old owner gets no EXISTS, GET or MIGRATE."""
    keys = flow.moving(40)
    source = flow.old.get_node(keys[0])
    same = [k for k in keys if flow.old.get_node(k) == source]
    assert len(same) >= 4
    for key in same:
        flow.on_old(key).set(key, "v")
    flow.migrate()  # every key moved; the done markers set
    window = client._members.window
    assert source not in window.done
    first = same[0]
    if learn == "read":
        assert client.get(first) == b"v"  # asked on the old owner first: absent, then new
    else:
        assert client.set(first, "w") is True  # pulled (NOKEY): the done marker seen
    assert source in window.done
    old_node = flow.direct[source]
    before = {c: _calls(old_node, c) for c in ("exists", "get", "migrate", "set")}
    for key in same[1:]:
        assert client.set(key, "x") is True  # no pull
        assert client.get(key) == b"x"
    assert {c: _calls(old_node, c) for c in ("exists", "get", "migrate", "set")} == before
    assert all(flow.on_new(key).get(key) == b"x" for key in same[1:])
    assert client.mget(same[1:]) == [b"x"] * len(same[1:])  # multi-key reads too


def test_the_async_client_learns_the_done_marker_and_skips_the_old_owner(flow: Flow) -> None:
    """AsyncShardedRedis: a pull sees the done marker; later writes and reads of keys moving
    away from that node go to their new owner alone."""
    keys = flow.moving(40)
    source = flow.old.get_node(keys[0])
    same = [k for k in keys if flow.old.get_node(k) == source]
    for key in same:
        flow.on_old(key).set(key, "v")
    flow.migrate()
    old_node = flow.direct[source]

    async def scenario() -> tuple[bool, dict[str, int], list[Any]]:
        client = AsyncShardedRedis.from_config(flow.path)
        try:
            assert await client.set(same[0], "w") is True  # a pull: NOKEY, done marker seen
            learned = source in client._members.window.done
            before = {c: _calls(old_node, c) for c in ("exists", "get", "migrate", "set")}
            got = []
            for key in same[1:]:
                got.append(await client.set(key, "x"))
                got.append(await client.get(key))
            after = {c: _calls(old_node, c) - n for c, n in before.items()}
            return learned, after, got
        finally:
            await client.aclose()

    learned, calls, got = asyncio.run(scenario())
    assert learned
    assert calls == {"exists": 0, "get": 0, "migrate": 0, "set": 0}
    assert got == [True, b"x"] * (len(same) - 1)


@pytest.mark.parametrize("health", [False, True])
def test_reads_of_moving_keys_answer_alike_with_health_tracking_on_or_off(
    flow: Flow, health: bool
) -> None:
    """A read of a moving key goes where the window placed it (owner and source not looked
    up again), or, with health tracking on, where the tracker sends it: the same answers
    either way, sync and async, for a key still on its old owner, one another client pulled
    to its new owner, and one that is nowhere."""
    on_old, pulled, nowhere = flow.moving(3)
    for key in (on_old, pulled):
        flow.on_old(key).set(key, "old")
    flow.start_migration()
    other = ShardedRedis.from_config(flow.path)
    try:
        assert other.set(pulled, "new") is True  # pulled to its new owner first
    finally:
        other.close()
    expected = [b"old", b"new", None] * 2
    client = ShardedRedis.from_config(flow.path, health=health)
    try:
        got = [client.get(key) for key in (on_old, pulled, nowhere) * 2]
    finally:
        client.close()
    assert got == expected

    async def scenario() -> list[Any]:
        made = AsyncShardedRedis.from_config(flow.path, health=health)
        try:
            return [await made.get(key) for key in (on_old, pulled, nowhere) * 2]
        finally:
            await made.aclose()

    assert asyncio.run(scenario()) == expected


def test_migrate_marks_each_old_owner_just_before_its_pass(
    flow: Flow, client: ShardedRedis
) -> None:
    """mark_passes sets nothing; migrate sets the marker on each old owner before its first
    SCAN, in pass order (new nodes first, then the old ones by name). Meanwhile a window
    client writes a key moving away from a node not reached yet there, through the gate (the
    pass then moves it), and pulls one moving away from a node already marked."""
    keys = flow.moving(60)
    for key in keys:
        flow.on_old(key).set(key, "v")
    by_source: dict[str, list[str]] = {}
    for key in keys:
        by_source.setdefault(flow.old.get_node(key), []).append(key)
    early, late = by_source["n0"][0], by_source["n2"][0]
    marked: list[tuple[str, ...]] = []
    wrote: list[tuple[bool, bool]] = []

    def look(_: int) -> None:
        now = tuple(name for name, node in sorted(flow.direct.items()) if node.exists(flow.marker))
        if now == ("n0",) and not wrote:  # during n0's pass: n2 not reached yet
            client.set(late, "gated")
            client.set(early, "pulled")
            wrote.append(
                (bool(flow.on_old(late).exists(late)), bool(flow.on_new(early).exists(early)))
            )
        marked.append(now)

    with MigrationSession(flow.old_topology, flow.window) as session:
        assert session.mark_passes(flow.marker, flow.old_topology.nodes) == ["n0", "n1", "n2"]
        assert not any(node.exists(flow.marker) for node in flow.direct.values())
        session.migrate(allow_volatile=True, batch=5, progress=look)
    assert marked[0] == ()  # n3's pass: new nodes first, no marker yet
    assert list(dict.fromkeys(marked)) == [(), ("n0",), ("n0", "n1"), ("n0", "n1", "n2")]
    assert wrote == [(True, True)]  # written on n2 through the gate; pulled from n0
    assert flow.on_new(late).get(late) == b"gated"  # moved by n2's pass
    assert flow.on_new(early).get(early) == b"pulled"
    assert not any(flow.on_old(key).exists(key) for key in keys)


def test_a_transaction_marks_its_keys_old_owner_once_the_migration_started_elsewhere(
    flow: Flow, client: ShardedRedis
) -> None:
    """The marker is on one old owner only (its pass has begun): a transaction, a WATCH and
    a blocking command on keys moving from another old owner set the marker there
    themselves, pull the keys and run; the async client too."""
    keys = flow.moving(60)
    sources = sorted({flow.old.get_node(key) for key in keys})
    first, other = sources[0], sources[1]
    key, watched, listed, key_async = [k for k in keys if flow.old.get_node(k) == other][:4]
    flow.on_old(key).set(key, "5")
    flow.on_old(listed).rpush(listed, "x")
    with MigrationSession(flow.old_topology, flow.window) as session:
        session.set_marker(flow.marker, [first])
    assert not flow.direct[other].exists(flow.marker)
    assert client.pipeline().incr(key).incr(key).execute() == [6, 7]
    assert flow.direct[other].exists(flow.marker)  # set by the client
    assert flow.on_new(key).get(key) == b"7"
    assert flow.on_old(key).exists(key) == 0
    assert client.transaction(lambda pipe: pipe.multi(), watched) == []
    assert client.blpop([listed], timeout=1) == (listed.encode(), b"x")

    async def scenario() -> list[Any]:
        made = AsyncShardedRedis.from_config(flow.path)
        try:
            flow.direct[other].delete(flow.marker)  # as if not reached: the client sets it
            return await made.pipeline().set(key_async, "a").get(key_async).execute()
        finally:
            await made.aclose()

    assert asyncio.run(scenario()) == [True, b"a"]
    assert flow.direct[other].exists(flow.marker)
    assert flow.on_new(key_async).get(key_async) == b"a"
