"""``hashring migrate --apply`` and the durability of its destinations, on real redis-servers.

Two sources n0, n1 (``old.toml``) and one new node n2 (``new.toml`` = n0..n2): n2 is the
destination under test, started as each test needs it (no persistence, AOF with
``appendfsync always``, a replica, ``CONFIG`` renamed away, a restricted user). Sources
run with AOF (``everysec``) so that only n2's durability is at stake. Servers are killed
with SIGKILL (``RedisServer.kill``) and restarted on the same port and directory; the
migrate process is paused with SIGSTOP where a test needs the kill to land between two of
its batches. What happened is checked without the command's code: full dumps of every node.

The command runs in this process through ``hashring.cli.main(argv)``, its output captured,
except where it must run while a test kills or pauses servers: there it is a child process
(``python -m hashring``), paused with SIGSTOP when a kill must land between two batches.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import random
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from hashring.adapters.migrate import MigrationSession, VolatileDestinationError
from redis_servers import HOST, RedisServer, RedisServerFactory

from hashring import HashRing, HashRingError, MigrationError, load_topology
from hashring.cli import main
from tests.waiting import wait_until

pytestmark = pytest.mark.redis

MODULE = [sys.executable, "-m", "hashring"]
DURABLE_SOURCE = ("--appendonly", "yes", "--appendfsync", "everysec")
AOF_ALWAYS = ("--appendonly", "yes", "--appendfsync", "always")
NAMES = ["n0", "n1", "n2"]
KEYS = 6_000
SLOW = ["--batch", "20", "--rate", "1500"]  # about 75 round trips a second: easy to land in
WAIT_TIMEOUT = 30.0  # seconds, for anything polled


class Copy(NamedTuple):
    """One key as a node holds it."""

    node: str
    payload: bytes
    """``DUMP`` of the value."""


Dump = dict[bytes, Copy]  # every key of every node


def default_sigint() -> None:
    """SIGINT back to its default in the child (a background pytest ignores it)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Fleet:
    """n0, n1 (sources, AOF everysec), n2 (the destination under test); the topologies."""

    def __init__(
        self,
        factory: RedisServerFactory,
        directory: Path,
        destination_args: tuple[str, ...],
        url_of: Callable[[str, RedisServer], str] = lambda name, server: server.url,
    ) -> None:
        self.factory = factory
        self.servers = [
            *factory(2, extra_args=DURABLE_SOURCE),
            *factory(1, extra_args=destination_args),
        ]
        self.clients = {name: s.client() for name, s in zip(NAMES, self.servers, strict=True)}
        self.old = directory / "old.toml"
        self.new = directory / "new.toml"
        urls = [url_of(name, server) for name, server in zip(NAMES, self.servers, strict=True)]
        tables = [f'[nodes.{name}]\nurl = "{url}"\n' for name, url in zip(NAMES, urls, strict=True)]
        self.old.write_text("".join(tables[:2]))
        self.new.write_text("".join(tables))
        self.old_ring = HashRing(NAMES[:2])
        self.new_ring = HashRing(NAMES)

    @property
    def destination(self) -> RedisServer:
        return self.servers[2]

    @property
    def files(self) -> list[str]:
        return ["--from", str(self.old), "--to", str(self.new)]

    def load(self, n: int = KEYS, *, ttl_share: float = 0.0) -> int:
        """``n`` keys on their old owners (some with a TTL of 1-2 h); returns how many move."""
        rng = random.Random(n)
        keys = [f"k:{i}" for i in range(n)]
        pipes = {name: self.clients[name].pipeline(transaction=False) for name in NAMES[:2]}
        for i, (key, owner) in enumerate(zip(keys, self.old_ring.get_node_many(keys), strict=True)):
            pipes[owner].set(key, f"value-{i}-" + "x" * rng.randrange(20))
            if rng.random() < ttl_share:
                pipes[owner].pexpire(key, rng.randrange(3_600_000, 7_200_000))
        for pipe in pipes.values():
            pipe.execute()
        return sum(owner == "n2" for owner in self.new_ring.get_node_many(keys))

    def fresh_client(self, name: str) -> Any:
        """A new client (the old one's connection died with a killed server)."""
        self.clients[name] = self.servers[NAMES.index(name)].client()
        return self.clients[name]

    def dump(self) -> Dump:
        found: Dump = {}
        for name, client in self.clients.items():
            keys = list(client.scan_iter(count=1000))
            pipe = client.pipeline(transaction=False)
            for key in keys:
                pipe.dump(key)
            for key, payload in zip(keys, pipe.execute(), strict=True):
                assert key not in found, f"{key!r} on {found[key].node} and {name}"
                found[key] = Copy(name, payload)
        return found

    def total(self) -> int:
        return sum(int(client.dbsize()) for client in self.clients.values())


@pytest.fixture
def fleet_factory(redis_server_factory: RedisServerFactory, tmp_path: Path) -> Callable[..., Fleet]:
    made: list[Fleet] = []  # each fleet writes its topologies to its own directory

    def make(destination_args: tuple[str, ...] = (), **kwargs: Any) -> Fleet:
        directory = tmp_path / f"fleet-{len(made)}"
        directory.mkdir()
        fleet = Fleet(redis_server_factory, directory, destination_args, **kwargs)
        made.append(fleet)
        return fleet

    return make


class Run(NamedTuple):
    """What one ``hashring migrate`` run returned and printed."""

    returncode: int
    stdout: str
    stderr: str


def migrate(*args: str, check: int | None = None) -> Run:
    """``hashring migrate ARGS`` in this process (``hashring.cli.main``), output captured;
    assert the exit status unless ``check`` is None, and that no traceback was printed."""
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        status = main(["migrate", *args])
    result = Run(status, stdout.getvalue(), stderr.getvalue())
    if check is not None:
        assert result.returncode == check, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    return result


def report_of(result: Run) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(result.stdout)
    return document


def one_line(result: Run, *needles: str) -> None:
    assert result.stderr.count("\n") == 1, result.stderr
    for needle in needles:
        assert needle in result.stderr, (needle, result.stderr)


def start_slow_migrate(fleet: Fleet, *extra: str) -> subprocess.Popen[str]:
    """``migrate --apply`` at about 75 round trips a second, in the background."""
    return subprocess.Popen(
        [*MODULE, "migrate", *fleet.files, "--apply", *SLOW, *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=default_sigint,  # only signal.signal: safe before exec
    )


def wait_for_arrivals(fleet: Fleet, process: subprocess.Popen[str], n: int) -> None:
    destination = fleet.clients["n2"]

    def arrived() -> bool:
        assert process.poll() is None, "migrate ended before the destination was killed"
        return int(destination.dbsize()) >= n

    wait_until(arrived, f"{n} keys on n2")


def settle_sources(fleet: Fleet) -> None:
    """Wait until the sources have finished every MIGRATE the (now stopped) run had sent.

    A source executes MIGRATE synchronously, so its answer to a PING from another client
    comes only after the commands already in its input buffers: killing the destination
    after that cannot break a MIGRATE in flight (which would fail the run instead of
    losing keys).
    """
    for name, client in fleet.clients.items():
        if name != "n2":
            assert client.ping()


# ------------------------------------------------------------------------------ refusal


def test_volatile_destination_is_refused_before_anything_moves(fleet_factory: Any) -> None:
    """No AOF, no replica: --apply exits 2 with one line naming n2, and no key moves."""
    fleet = fleet_factory()
    assert fleet.load() > 0
    before = fleet.dump()
    result = migrate(*fleet.files, "--apply", check=2)
    one_line(result, "hashring: error: ", "volatile", "n2", "--allow-volatile-destination")
    assert "no AOF and no replica" in result.stderr
    assert "n0 (" not in result.stderr
    assert "n1 (" not in result.stderr
    assert result.stdout == ""
    assert fleet.dump() == before
    dry = report_of(migrate(*fleet.files, "--format", "json", check=0))
    assert dry["durability"]["n2"] == {
        "durable": False, "how": "none", "replicas": 0, "fsync": None,
        "detail": dry["durability"]["n2"]["detail"],
    }  # fmt: skip
    assert dry["durability"]["n0"]["how"] == "aof"
    text = migrate(*fleet.files, check=0).stdout
    assert "n2 VOLATILE" in text
    assert "--apply would refuse the volatile destination(s) n2" in text
    with (
        MigrationSession(load_topology(fleet.old), load_topology(fleet.new)) as session,
        pytest.raises(VolatileDestinationError) as caught,
    ):
        session.migrate()
    assert [d.node for d in caught.value.volatile] == ["n2"]
    assert isinstance(caught.value, MigrationError)  # hashring's error tree
    assert isinstance(caught.value, HashRingError)
    assert isinstance(caught.value, RuntimeError)
    assert fleet.dump() == before


def test_volatile_destination_with_the_flag_moves_and_checks(fleet_factory: Any) -> None:
    """--allow-volatile-destination: everything moves, nothing lost, every move checked."""
    fleet = fleet_factory()
    to_move = fleet.load(ttl_share=0.3)
    before = fleet.dump()
    report = report_of(
        migrate(
            *fleet.files, "--apply", "--allow-volatile-destination", "--format", "json", check=0
        )
    )
    assert report["options"]["allow_volatile_destination"] is True
    assert report["moved"] == report["verification"]["checked"] == to_move
    assert report["misplaced"] == report["lost"] == 0
    assert report["verification"]["expired"] == 0
    after = fleet.dump()
    assert {key: copy.payload for key, copy in after.items()} == {
        key: copy.payload for key, copy in before.items()
    }
    assert all(copy.node == fleet.new_ring.get_node(key) for key, copy in after.items())


def test_unknown_durability_counts_as_volatile(fleet_factory: Any) -> None:
    """A user that may not run INFO persistence: 'cannot tell', refused like a volatile one;
    a server with CONFIG renamed away but AOF on is recognised from INFO (fsync unknown)."""
    fleet = fleet_factory(
        url_of=lambda name, s: (
            f"redis://mover:m0ver-s3cret@{s.host}:{s.port}/0" if name == "n2" else s.url
        )
    )
    admin = fleet.destination.client()
    admin.execute_command(
        "ACL",
        "SETUSER",
        "mover",
        "on",
        ">m0ver-s3cret",
        "~*",
        "&*",
        "+@all",
        "-info",
        "+info|server",
    )
    fleet.load(600)
    before = fleet.dump()
    result = migrate(*fleet.files, "--apply", check=2)
    one_line(
        result, "n2", "cannot tell whether it persists", "no permissions", "redis://mover:***@"
    )
    assert "s3cret" not in result.stderr
    assert fleet.dump() == before
    aof = fleet_factory(("--rename-command", "CONFIG", "", *AOF_ALWAYS))
    dry = report_of(migrate(*aof.files, "--format", "json", check=0))
    assert dry["durability"]["n2"]["how"] == "aof"
    assert dry["durability"]["n2"]["fsync"] is None
    assert "CONFIG refused" in dry["durability"]["n2"]["detail"]


def test_sources_without_scripting_still_check_every_move(fleet_factory: Any) -> None:
    """Sources whose user may not run scripts: TTLs are read with one PTTL per key instead,
    and the loss check still covers every moved key."""
    fleet = fleet_factory(
        AOF_ALWAYS,
        url_of=lambda name, s: (
            f"redis://plain:pl4in-s3cret@{s.host}:{s.port}/0" if name != "n2" else s.url
        ),
    )
    for name in NAMES[:2]:
        fleet.clients[name].execute_command(
            "ACL", "SETUSER", "plain", "on", ">pl4in-s3cret", "~*", "&*", "+@all", "-@scripting"
        )
    to_move = fleet.load(ttl_share=0.5)
    result = migrate(*fleet.files, "--apply", "--format", "json", check=0)
    report = report_of(result)
    assert "s3cret" not in result.stdout + result.stderr
    assert report["moved"] == report["verification"]["checked"] == to_move
    assert report["lost"] == report["verification"]["expired"] == report["misplaced"] == 0
    assert fleet.total() == KEYS


# ------------------------------------------------------------------------------ crashes


def test_aof_destination_killed_mid_run_loses_nothing(fleet_factory: Any) -> None:
    """AOF (appendfsync always) destination SIGKILLed mid-run, restarted on its port and
    directory: the run fails (exit 1), the re-run finishes, exit 0, every key and value kept."""
    fleet = fleet_factory(AOF_ALWAYS)
    to_move = fleet.load()
    before = fleet.dump()
    process = start_slow_migrate(fleet)
    try:
        wait_for_arrivals(fleet, process, 300)
        fleet.destination.kill()
    finally:
        stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 1, (stdout, stderr)
    assert stderr.startswith("hashring: failed: "), stderr
    assert stderr.count("\n") == 1, stderr
    fleet.destination.restart()
    fleet.fresh_client("n2")
    kept = int(fleet.clients["n2"].dbsize())
    assert 300 <= kept < to_move  # the AOF gave back every key acknowledged before the kill
    assert fleet.total() == KEYS
    report = report_of(migrate(*fleet.files, "--apply", "--format", "json", check=0))
    assert report["moved"] == report["verification"]["checked"] == to_move - kept
    assert report["misplaced"] == report["lost"] == 0
    assert report["durability"]["n2"]["fsync"] == "always"
    after = fleet.dump()
    assert len(after) == KEYS
    assert {key: copy.payload for key, copy in after.items()} == {
        key: copy.payload for key, copy in before.items()
    }


@pytest.mark.parametrize("output", ["json", "text"])
def test_volatile_destination_restarted_empty_mid_run_reports_the_loss(
    fleet_factory: Any, output: str
) -> None:
    """With the flag, a volatile destination SIGKILLed and restarted empty between two
    batches of one run (the migrate paused meanwhile): the run goes on, its verification
    counts exactly the keys lost, names n2 as restarted, exit 1."""
    fleet = fleet_factory()
    fleet.load(ttl_share=0.3)
    process = start_slow_migrate(fleet, "--allow-volatile-destination", "--format", output)
    try:
        wait_for_arrivals(fleet, process, 300)
        process.send_signal(signal.SIGSTOP)
        settle_sources(fleet)
        fleet.destination.kill()
        fleet.destination.restart()  # no persistence: empty
        fleet.fresh_client("n2")
        process.send_signal(signal.SIGCONT)
    finally:
        process.send_signal(signal.SIGCONT)
        stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 1, (stdout, stderr)
    assert "Traceback" not in stderr
    assert stdout, stderr  # the run went on to its report (a failed run prints none)
    lost = KEYS - fleet.total()  # counted independently: no key here expires within hours
    assert lost >= 300
    if output == "text":
        assert f"{lost:,} lost, 0 expired (TTL ran out); restarted during the run: n2" in stdout
        assert (
            f"LOST: {lost:,} keys moved to n2 are not there (n2 restarted during the run and "
            "keeps no persistence: they are gone for good)"
        ) in stdout
        assert "verification: scanned" in stdout
        return
    report = json.loads(stdout)
    assert report["lost"] == report["verification"]["lost"] == lost
    assert report["verification"]["lost_by_node"] == {"n2": lost}
    assert report["verification"]["restarted"] == ["n2"]
    assert report["verification"]["checked"] == report["moved"]
    assert report["misplaced"] == 0  # every key left is on its owner: locations alone say "ok"


def test_volatile_destination_killed_names_the_keys_at_risk(fleet_factory: Any) -> None:
    """With the flag, a volatile destination SIGKILLed mid-run: the failure line says how
    many keys this run moved there and that they are lost if it restarted."""
    fleet = fleet_factory()
    fleet.load()
    process = start_slow_migrate(fleet, "--allow-volatile-destination")
    try:
        wait_for_arrivals(fleet, process, 300)
        fleet.destination.kill()
    finally:
        _, stderr = process.communicate(timeout=60)
    assert process.returncode == 1
    assert stderr.startswith("hashring: failed: "), stderr
    assert stderr.count("\n") == 1, stderr
    assert "to n2) are lost if those restarted" in stderr
    moved = int(stderr.split("volatile destinations (")[1].split(" to n2")[0].replace(",", ""))
    assert moved >= 300


# ------------------------------------------------- moved keys gone: deleted, or evicted


def originals(fleet: Fleet) -> int:
    """How many of the keys :meth:`Fleet.load` wrote are on some node."""
    return sum(len(list(c.scan_iter(match="k:*", count=1000))) for c in fleet.clients.values())


def fill_until_evicted(fleet: Fleet) -> None:
    """Cap n2's memory a little above what it uses, then write keys n2 owns (so nothing is
    misplaced) until it has evicted one of the keys moved there."""
    n2 = fleet.clients["n2"]
    moved = list(n2.scan_iter(count=1000))
    n2.config_set("maxmemory", int(n2.info("memory")["used_memory"]) + 100_000)
    names = (f"fill:{i}" for i in itertools.count())
    owned = (name for name in names if fleet.new_ring.get_node(name) == "n2")
    for _ in range(500):  # 500 * 20 kB: far past the cap
        pipe = n2.pipeline(transaction=False)
        for name in itertools.islice(owned, 20):
            pipe.set(name, b"x" * 1000)
        pipe.execute()
        if n2.exists(*moved) < len(moved):
            return
    pytest.fail("n2 evicted none of the keys moved to it")


@pytest.mark.parametrize("output", ["json", "text"])
def test_moved_keys_clients_delete_are_deleted_not_lost(fleet_factory: Any, output: str) -> None:
    """Keys a client deletes on their destination after they moved (the run paused
    meanwhile, so the deletes land before its verification): counted as deleted by clients,
    per node, not as lost; exit 0."""
    fleet = fleet_factory(DURABLE_SOURCE)
    fleet.load(ttl_share=0.3)
    process = start_slow_migrate(fleet, "--format", output)
    try:
        wait_for_arrivals(fleet, process, 300)
        process.send_signal(signal.SIGSTOP)
        arrived = list(itertools.islice(fleet.clients["n2"].scan_iter(count=100), 50))
        deleted = fleet.clients["n2"].delete(*arrived)
    finally:
        process.send_signal(signal.SIGCONT)
        stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, (stdout, stderr)
    assert "Traceback" not in stderr
    assert deleted == 50
    assert KEYS - fleet.total() == deleted  # counted independently: nothing else is gone
    if output == "text":
        assert ": 0 lost, 0 expired (TTL ran out)\n" in stdout
        assert "50 moved keys deleted by clients since (not a loss): 50 on n2" in stdout
        assert "LOST" not in stdout
        return
    report = json.loads(stdout)
    assert report["deleted"] == report["verification"]["deleted"] == deleted
    assert report["verification"]["deleted_by_node"] == {"n2": deleted}
    assert report["lost"] == report["verification"]["lost"] == 0
    assert report["verification"]["lost_by_node"] == {}
    assert report["verification"]["restarted"] == report["verification"]["evicted"] == []
    assert report["verification"]["checked"] == report["moved"]
    assert report["misplaced"] == 0


@pytest.mark.parametrize("output", ["json", "text"])
def test_moved_keys_a_destination_evicts_are_lost(fleet_factory: Any, output: str) -> None:
    """A destination with maxmemory and allkeys-lru that evicts keys after they moved (a
    client fills it while the run is paused, until a moved key is gone): those keys are
    lost, n2 is named as evicting, nothing counts as deleted; exit 1."""
    fleet = fleet_factory(("--maxmemory-policy", "allkeys-lru"))
    fleet.load()
    process = start_slow_migrate(fleet, "--allow-volatile-destination", "--format", output)
    try:
        wait_for_arrivals(fleet, process, 300)
        process.send_signal(signal.SIGSTOP)
        settle_sources(fleet)
        fill_until_evicted(fleet)
    finally:
        process.send_signal(signal.SIGCONT)
        stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 1, (stdout, stderr)
    assert "Traceback" not in stderr
    assert stdout, stderr  # the run went on to its report (a failed run prints none)
    lost = KEYS - originals(fleet)  # counted independently: no key here expires
    assert lost > 0
    if output == "text":
        assert f": {lost:,} lost, 0 expired (TTL ran out); evicted keys during the run: n2" in (
            stdout
        )
        assert (
            f"LOST: {lost:,} keys moved to n2 are not there (n2 evicted keys during the run: "
            "its INFO stats evicted_keys changed, or cannot be read)"
        ) in stdout
        assert "deleted by clients" not in stdout
        return
    report = json.loads(stdout)
    assert report["lost"] == report["verification"]["lost"] == lost
    assert report["verification"]["lost_by_node"] == {"n2": lost}
    assert report["verification"]["evicted"] == ["n2"]
    assert report["verification"]["restarted"] == []
    assert report["deleted"] == report["verification"]["deleted"] == 0
    assert report["verification"]["deleted_by_node"] == {}
    assert report["misplaced"] == 0


def test_a_destination_that_hides_its_evictions_counts_gone_keys_as_lost(
    fleet_factory: Any,
) -> None:
    """Engine API: a destination whose user may run INFO server but not INFO stats cannot
    tell whether it evicted: moved keys a client deleted there count as lost, not deleted."""
    fleet = fleet_factory(
        url_of=lambda name, s: f"redis://mover:pw@{s.host}:{s.port}/0" if name == "n2" else s.url
    )
    fleet.clients["n2"].execute_command(
        "ACL", "SETUSER", "mover", "on", ">pw", "~*", "&*", "+@all", "-info", "+info|server"
    )
    fleet.load(600)
    with MigrationSession(load_topology(fleet.old), load_topology(fleet.new)) as session:
        moved = session.migrate(allow_volatile=True).moved_total
        arrived = list(itertools.islice(fleet.clients["n2"].scan_iter(count=100), 20))
        deleted = fleet.clients["n2"].delete(*arrived)
        check = session.verify()
    assert deleted == 20
    assert check.checked == moved > 20
    assert check.lost == {"n2": deleted}
    assert check.deleted == {}
    assert check.evicted == ("n2",)
    assert check.restarted == ()


# ------------------------------------------------------------------------------ replicas


def replica_online(primary: Any) -> bool:
    """Whether ``primary`` (a client) lists a replica as online: what migrate's durability
    check reads (the replica's own ``master_link_status`` can say "up" before this)."""
    info = primary.info("replication")
    return any(
        isinstance(value, dict) and value.get("state") == "online"
        for field, value in info.items()
        if field.startswith("slave")
    )


def replica_of(fleet: Fleet) -> RedisServer:
    """A replica of n2, online."""
    (replica,) = fleet.factory(1, extra_args=("--replicaof", HOST, str(fleet.destination.port)))
    wait_until(lambda: replica_online(fleet.clients["n2"]), "the replica to be online")
    return replica


def test_destination_with_a_replica_is_durable_and_waits_for_it(fleet_factory: Any) -> None:
    """No AOF but a replica online: accepted without the flag, every batch acknowledged by
    the replica (WAIT); with the replica frozen (SIGSTOP), the run stops with exit 1."""
    fleet = fleet_factory()
    replica = replica_of(fleet)
    to_move = fleet.load(2_000)
    report = report_of(migrate(*fleet.files, "--apply", "--format", "json", check=0))
    assert report["durability"]["n2"]["how"] == "replicas"
    assert report["durability"]["n2"]["replicas"] == 1
    assert report["moved"] == to_move
    assert report["misplaced"] == report["lost"] == 0
    follower = replica.client()
    wait_until(lambda: int(follower.dbsize()) == to_move, "the replica to hold every key")
    more = [f"late:{i}" for i in range(500)]
    for key, owner in zip(more, fleet.old_ring.get_node_many(more), strict=True):
        fleet.clients[owner].set(key, "written by an old-topology client")
    replica.process.send_signal(signal.SIGSTOP)
    try:
        result = migrate(*fleet.files, "--apply", "--timeout", "300", check=1)
    finally:
        replica.process.send_signal(signal.SIGCONT)
    one_line(result, "hashring: failed: ", "no replica of node 'n2'", "WAIT")


def test_a_failed_destination_does_not_skip_the_wait_of_another(
    redis_server_factory: RedisServerFactory, tmp_path: Path
) -> None:
    """One round trip moves keys to n2 (a replica, no AOF) and to n3, which refuses them
    (its user may not RESTORE): the run fails with exit 1, and n2 was still made to WAIT
    for its replica for the keys it took, before the error was raised."""
    source, with_replica, refusing = (
        *redis_server_factory(1, extra_args=DURABLE_SOURCE),
        *redis_server_factory(1),
        *redis_server_factory(1, extra_args=AOF_ALWAYS),
    )
    (replica,) = redis_server_factory(1, extra_args=("--replicaof", HOST, str(with_replica.port)))
    follower, primary = replica.client(), with_replica.client()
    wait_until(lambda: follower.info("replication")["master_link_status"] == "up", "replica")
    wait_until(lambda: replica_online(primary), "the primary to count its replica online")
    refusing.client().execute_command(
        "ACL", "SETUSER", "mover", "on", ">m0ver-s3cret", "~*", "&*", "+@all",
        "-restore", "-restore-asking",
    )  # fmt: skip
    urls = {
        "n0": source.url,
        "n2": with_replica.url,
        "n3": f"redis://mover:m0ver-s3cret@{refusing.host}:{refusing.port}/0",
    }
    old, new = tmp_path / "old.toml", tmp_path / "new.toml"
    old.write_text(f'[nodes.n0]\nurl = "{urls["n0"]}"\n')
    new.write_text("".join(f'[nodes.{n}]\nurl = "{u}"\n' for n, u in urls.items()))
    ring = HashRing(list(urls))
    keys = [f"k:{i}" for i in range(600)]
    owners = ring.get_node_many(keys)
    assert {"n2", "n3"} <= set(owners)
    source.client().mset(dict.fromkeys(keys, "v"))
    result = migrate("--from", str(old), "--to", str(new), "--apply", "--batch", "1000", check=1)
    one_line(result, "MIGRATE n0 -> n3")
    assert "s3cret" not in result.stderr
    took = int(primary.dbsize())
    assert took == owners.count("n2")  # n2 took its keys in the failed round trip...
    assert int(primary.info("commandstats").get("cmdstat_wait", {}).get("calls", 0)) >= 1
    wait_until(lambda: int(follower.dbsize()) == took, "the replica to hold n2's keys")
