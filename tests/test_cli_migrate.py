"""``hashring migrate`` through its real entry point, against real redis-server processes.

The command runs in this process through ``hashring.cli.main(argv)`` (what the console script
calls), its stdout and stderr captured; a child process only where the process boundary is
what is tested: the installed console script (the dry-run test) and interruptions by SIGINT
and SIGKILL.

Four fresh servers per test, with AOF on (``appendfsync everysec``: durable destinations,
so ``--apply`` runs without ``--allow-volatile-destination``; the durability rule itself is
tested in ``test_migrate_durability.py``): ``old.toml`` names three of them (n0..n2),
``new.toml`` all four (n0..n3). What the command did is checked without its code: full
dumps of every node (``DUMP`` payload, ``PTTL``) before and after, and owners from a
``HashRing`` built directly with the same nodes (the topologies use the defaults: ring,
mmh3, 160 vnodes, hash tags).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from hashring.adapters.migrate import ON_CONFLICT, MigrationSession
from redis_servers import RedisServer, RedisServerFactory, free_port

from hashring import HashRing, InvalidOptionError, load_topology
from hashring.cli import main
from hashring.cli._migrate_report import POLICY_TEXT

pytestmark = pytest.mark.redis

HASHRING = str(Path(sys.executable).parent / "hashring")
MODULE = [sys.executable, "-m", "hashring"]
NAMES = ["n0", "n1", "n2", "n3"]
TOP_KEYS = {
    "schema", "mode", "from", "to", "nodes", "options", "scanned", "in_place", "to_move",
    "moved", "conflicts", "missing", "failed", "pairs", "verification", "misplaced",
    "elapsed_seconds", "keys_per_second", "durability", "lost", "deleted", "plan", "clients",
    "window", "rested_seconds",
}  # fmt: skip
PAIR_KEYS = {"from", "to", "keys", "moved", "conflicts", "bytes"}
OPTION_KEYS = {
    "batch", "rate", "max_busy", "timeout_ms", "on_conflict", "bytes",
    "allow_volatile_destination",
}  # fmt: skip
VERIFICATION_KEYS = {
    "scanned", "misplaced", "elapsed_seconds", "pairs", "checked", "expired", "lost",
    "lost_by_node", "restarted", "deleted", "deleted_by_node", "evicted",
}  # fmt: skip
AOF = ("--appendonly", "yes", "--appendfsync", "everysec")


class Copy(NamedTuple):
    """One key as a node holds it."""

    node: str
    payload: bytes
    """``DUMP`` of the value."""
    pttl: int


Dump = dict[bytes, Copy]  # every key of every node


# ------------------------------------------------------------------------------ helpers


class Run(NamedTuple):
    """What one ``hashring migrate`` run returned and printed."""

    returncode: int
    stdout: str
    stderr: str


def migrate(*args: str, script: bool = False, check: int | None = 0) -> Run:
    """Run ``hashring migrate`` in this process (``hashring.cli.main``), or with ``script`` the
    installed console script in a child process; assert the exit status unless ``check`` is
    None, and that no traceback was printed."""
    if script:
        done = subprocess.run(
            [HASHRING, "migrate", *args], capture_output=True, text=True, timeout=120
        )
        result = Run(done.returncode, done.stdout, done.stderr)
    else:
        stdout, stderr = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            status = main(["migrate", *args])
        result = Run(status, stdout.getvalue(), stderr.getvalue())
    if check is not None:
        assert result.returncode == check, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    return result


def migrate_json(*args: str, check: int = 0) -> dict[str, Any]:
    report: dict[str, Any] = json.loads(migrate(*args, "--format", "json", check=check).stdout)
    assert set(report) == TOP_KEYS
    return report


class Cluster:
    """Four servers, old.toml (n0..n2) and new.toml (n0..n3) in ``directory``."""

    def __init__(self, servers: list[RedisServer], directory: Path) -> None:
        self.servers = servers
        self.clients = {name: s.client() for name, s in zip(NAMES, servers, strict=True)}
        self.old = directory / "old.toml"
        self.new = directory / "new.toml"
        self.write_topologies({name: s.url for name, s in zip(NAMES, servers, strict=True)})
        self.old_ring = HashRing(NAMES[:3])
        self.new_ring = HashRing(NAMES)

    def write_topologies(self, urls: dict[str, str]) -> None:
        tables = [f'[nodes.{name}]\nurl = "{urls[name]}"\n' for name in NAMES]
        self.old.write_text("".join(tables[:3]))
        self.new.write_text("".join(tables))

    @property
    def files(self) -> list[str]:
        return ["--from", str(self.old), "--to", str(self.new)]

    def dump(self) -> Dump:
        """Every key of every node: (node, DUMP payload, PTTL)."""
        found: Dump = {}
        for name, client in self.clients.items():
            keys = list(client.scan_iter(count=1000))
            for start in range(0, len(keys), 2000):
                chunk = keys[start : start + 2000]
                pipe = client.pipeline(transaction=False)
                for key in chunk:
                    pipe.dump(key)
                    pipe.pttl(key)
                answers = pipe.execute()
                for i, key in enumerate(chunk):
                    assert key not in found, f"{key!r} on {found[key].node} and {name}"
                    found[key] = Copy(name, answers[2 * i], answers[2 * i + 1])
        return found

    def misplaced(self) -> Counter[tuple[str, str]]:
        """(node, owner) counts of keys not on their owner under the new topology."""
        pairs: Counter[tuple[str, str]] = Counter()
        for name, client in self.clients.items():
            for key in client.scan_iter(count=1000):
                owner = self.new_ring.get_node(key)
                if owner != name:
                    pairs[(name, owner)] += 1
        return pairs


@pytest.fixture
def cluster(redis_server_factory: RedisServerFactory, tmp_path: Path) -> Cluster:
    return Cluster(redis_server_factory(4, extra_args=AOF), tmp_path)


def load(cluster: Cluster, n: int, *, prefix: str = "k", ttl_share: float = 0.3) -> list[str]:
    """``n`` keys on their OLD owners: strings, hashes and lists; some with TTLs of 1-2 h."""
    rng = random.Random(n)
    keys = [f"{prefix}:{i}" if i % 10 else f"{{user:{i // 100}}}:{prefix}:{i}" for i in range(n)]
    pipes = {name: client.pipeline(transaction=False) for name, client in cluster.clients.items()}
    for i, (key, owner) in enumerate(zip(keys, cluster.old_ring.get_node_many(keys), strict=True)):
        pipe = pipes[owner]
        kind = i % 5
        if kind <= 2:
            pipe.set(key, f"value-{i}-" + "x" * rng.randrange(30))
        elif kind == 3:
            pipe.hset(key, mapping={"a": i, "b": f"field-{i}", "c": "y" * rng.randrange(10)})
        else:
            pipe.rpush(key, *[f"item-{i}-{j}" for j in range(1 + i % 4)])
        if rng.random() < ttl_share:
            pipe.pexpire(key, rng.randrange(3_600_000, 7_200_000))
        if len(pipe) >= 5000:
            pipe.execute()
    for pipe in pipes.values():
        pipe.execute()
    return keys


def assert_same_data(before: Dump, after: Dump, elapsed_ms: float) -> None:
    """Same keys, same DUMP payloads, TTLs kept (less the time that passed)."""
    assert after.keys() == before.keys()
    for key, copy in before.items():
        ttl, ttl_after = copy.pttl, after[key].pttl
        assert after[key].payload == copy.payload, key
        if ttl < 0:
            assert ttl_after == ttl, key
        else:
            assert ttl - elapsed_ms - 1000 <= ttl_after <= ttl + 100, (key, ttl, ttl_after)


def placed(dump: Dump) -> dict[bytes, tuple[str, bytes]]:
    """Node and payload of every key (TTLs tick, so they are left out)."""
    return {key: (copy.node, copy.payload) for key, copy in dump.items()}


def assert_on_owners(cluster: Cluster, dump: Dump) -> None:
    owners = cluster.new_ring.get_node_many(list(dump))
    wrong = [(k, c.node, o) for (k, c), o in zip(dump.items(), owners, strict=True) if c.node != o]
    assert not wrong, wrong[:5]


# ------------------------------------------------------------------------------ moving


def test_apply_moves_100k_keys_with_ttls_and_loses_nothing(cluster: Cluster) -> None:
    """3 -> 4 nodes: every key on its new owner, values and TTLs kept (full dumps compared),
    verification 0 misplaced, exit 0."""
    load(cluster, 100_000)
    expected = cluster.misplaced()
    assert set(expected) == {("n0", "n3"), ("n1", "n3"), ("n2", "n3")}
    start = time.monotonic()
    before = cluster.dump()
    report = migrate_json(*cluster.files, "--apply")
    after = cluster.dump()
    assert_same_data(before, after, (time.monotonic() - start) * 1000)
    assert_on_owners(cluster, after)
    assert report["mode"] == "apply"
    assert report["misplaced"] == 0
    assert report["verification"]["misplaced"] == 0
    assert report["verification"]["scanned"] == 100_000
    assert report["moved"] == report["to_move"] == sum(expected.values())
    assert report["conflicts"] == report["missing"] == report["failed"] == 0
    assert {(p["from"], p["to"]): p["moved"] for p in report["pairs"]} == dict(expected)
    assert report["keys_per_second"] > 0
    assert set(report["verification"]) == VERIFICATION_KEYS
    assert report["verification"]["checked"] == report["moved"]
    assert report["lost"] == report["verification"]["lost"] == 0
    assert report["deleted"] == report["verification"]["deleted"] == 0
    assert report["verification"]["restarted"] == report["verification"]["evicted"] == []
    assert {name: d["how"] for name, d in report["durability"].items()} == dict.fromkeys(
        NAMES, "aof"
    )
    assert all(d["fsync"] == "everysec" for d in report["durability"].values())


def default_sigint() -> None:
    """In the child before exec: SIGINT back to its default. A background job (``pytest &``,
    nohup, some CI runners) starts with SIGINT ignored, children inherit that, and Python
    then installs no KeyboardInterrupt handler: the SIGINT sent below would do nothing."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def interrupt_when(cluster: Cluster, moved: int, sig: int) -> tuple[int, str]:
    """Start a slow ``migrate --apply``; send ``sig`` once n3 holds ``moved`` keys; return
    the exit status and stderr."""
    process = subprocess.Popen(
        [*MODULE, "migrate", *cluster.files, "--apply", "--batch", "20", "--rate", "2000"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=default_sigint,  # only signal.signal: safe before exec
        env={**os.environ, "PYTHONFAULTHANDLER": "1"},  # a crash prints its tracebacks
    )
    try:
        deadline = time.monotonic() + 30
        while cluster.clients["n3"].dbsize() < moved and time.monotonic() < deadline:
            assert process.poll() is None, "migrate ended before it could be interrupted"
            time.sleep(0.01)
        process.send_signal(sig)
    finally:
        _, stderr = process.communicate(timeout=10)
    return process.returncode, stderr


def test_interrupted_mid_way_then_rerun_finishes_without_loss(cluster: Cluster) -> None:
    """A migrate stopped with SIGINT, then one killed with SIGKILL, lose nothing; a re-run
    finishes the job and moves nothing twice (full dumps compared)."""
    load(cluster, 20_000, ttl_share=0.2)
    to_move = sum(cluster.misplaced().values())
    start = time.monotonic()
    before = cluster.dump()
    status, stderr = interrupt_when(cluster, 200, signal.SIGINT)
    assert status == 130, stderr
    assert stderr.startswith("hashring: interrupted: ")
    assert stderr.count("\n") == 1
    assert "keys moved so far" in stderr
    assert "re-run the same command to resume" in stderr
    assert cluster.clients["n3"].dbsize() < to_move
    status, _ = interrupt_when(cluster, 600, signal.SIGKILL)
    assert status == -signal.SIGKILL
    moved = cluster.clients["n3"].dbsize()
    assert 600 <= moved < to_move, "the kill did not land mid-way"
    assert sum(cluster.misplaced().values()) == to_move - moved
    report = migrate_json(*cluster.files, "--apply")
    assert report["moved"] == to_move - moved  # nothing moved twice
    assert report["verification"]["checked"] == report["moved"]
    assert report["lost"] == 0
    assert report["misplaced"] == 0
    after = cluster.dump()
    assert_same_data(before, after, (time.monotonic() - start) * 1000)
    assert_on_owners(cluster, after)


def test_dry_run_moves_nothing_and_counts_pairs_independently(cluster: Cluster) -> None:
    """The plan's per-pair counts equal a direct computation; no key moves; exit 0."""
    load(cluster, 20_000)
    stray = [f"stray:{i}" for i in range(300)]  # keys written to wrong nodes, n3 included
    for i, key in enumerate(stray):
        cluster.clients[NAMES[i % 4]].set(key, i)
    expected = cluster.misplaced()
    assert len(expected) > 3  # moves out of n3 and between old nodes too
    before = placed(cluster.dump())
    report = migrate_json(*cluster.files, "--bytes")
    assert placed(cluster.dump()) == before
    assert report["mode"] == "dry-run"
    assert {(p["from"], p["to"]): p["keys"] for p in report["pairs"]} == dict(expected)
    assert report["to_move"] == report["misplaced"] == sum(expected.values())
    assert report["scanned"] == 20_300
    assert report["in_place"] == 20_300 - sum(expected.values())
    assert report["moved"] is report["lost"] is report["deleted"] is None
    assert report["verification"] is None
    assert all(set(pair) == PAIR_KEYS for pair in report["pairs"])
    assert all(pair["bytes"] > 0 and pair["moved"] is None for pair in report["pairs"])
    assert set(report["options"]) == OPTION_KEYS
    assert report["nodes"] == {name: s.url for name, s in zip(NAMES, cluster.servers, strict=True)}
    text = migrate(*cluster.files, script=True).stdout
    assert "dry run" in text
    assert f"{sum(expected.values()):,} to move" in text
    assert placed(cluster.dump()) == before


@pytest.mark.parametrize("policy", ["keep-destination", "replace", "skip"])
def test_conflicts_follow_the_policy(cluster: Cluster, policy: str) -> None:
    """Keys already on their destination: the policy decides, the rest of the batch moves."""
    keys = load(cluster, 3_000, ttl_share=0)
    moving = [k for k in keys if cluster.new_ring.get_node(k) != cluster.old_ring.get_node(k)]
    busy = moving[::50]
    for key in busy:
        cluster.clients["n3"].delete(key)
        cluster.clients["n3"].set(key, "written by a new-topology client")
    sources = {key: cluster.clients[cluster.old_ring.get_node(key)] for key in busy}
    stale = {key: sources[key].dump(key) for key in busy}
    args = [*cluster.files, "--apply", "--on-conflict", policy]
    report = migrate_json(*args, check=1 if policy == "skip" else 0)
    assert report["conflicts"] == len(busy)
    assert report["to_move"] == len(moving)
    assert report["options"]["on_conflict"] == policy
    for key in busy:
        if policy == "replace":
            assert cluster.clients["n3"].dump(key) == stale[key]
            assert not sources[key].exists(key)
        else:
            assert cluster.clients["n3"].get(key) == b"written by a new-topology client"
            assert sources[key].exists(key) == (policy == "skip")
    if policy == "skip":
        assert report["moved"] == len(moving) - len(busy)
        assert report["misplaced"] == len(busy)
        text = migrate(*args, check=1).stdout
        assert f"{len(busy):,} misplaced" in text
    else:
        assert report["misplaced"] == 0
        assert report["moved"] == len(moving) - (len(busy) if policy == "keep-destination" else 0)
        assert not cluster.misplaced()


def test_keys_expiring_mid_way_are_not_errors(cluster: Cluster) -> None:
    """Thousands of keys with TTLs of a few ms to 1.5 s while a slow migrate runs: exit 0."""
    rng = random.Random(7)
    keep = load(cluster, 2_000, prefix="keep", ttl_share=0)
    pipes = {name: client.pipeline(transaction=False) for name, client in cluster.clients.items()}
    doomed = [f"doomed:{i}" for i in range(8_000)]
    for key, owner in zip(doomed, cluster.old_ring.get_node_many(doomed), strict=True):
        pipes[owner].set(key, "x", px=rng.randrange(2, 1500))
    for pipe in pipes.values():
        pipe.execute()
    report = migrate_json(*cluster.files, "--apply", "--batch", "200", "--rate", "6000")
    assert report["misplaced"] == 0
    assert report["failed"] == 0
    assert report["to_move"] == report["moved"] + report["missing"] + report["conflicts"]
    dump = cluster.dump()
    assert {key.decode() for key in dump if b"keep:" in key} == set(keep)
    assert_on_owners(cluster, dump)


def test_engine_counts_keys_deleted_between_scan_and_migrate(cluster: Cluster) -> None:
    """Engine API: keys deleted after SCAN saw them are 'missing' (NOKEY), never errors."""
    keys = load(cluster, 5_000, ttl_share=0)
    session = MigrationSession(load_topology(cluster.old), load_topology(cluster.new))
    deleted: list[bytes] = []
    pages = session._pages

    def deleting_pages(batch: int, *starting: Any) -> Any:
        for page in pages(batch, *starting):
            for group in page.moves.values():
                doomed = group[::3]
                cluster.clients[page.source].delete(*doomed)
                deleted.extend(doomed)
            yield page

    session._pages = deleting_pages
    with session:
        result = session.migrate(batch=100)
        assert result.missing == len(deleted) > 0
        assert result.moved_total + result.missing == result.to_move
        assert session.verify().misplaced == 0
    assert len(cluster.dump()) == len(keys) - len(deleted)


def test_max_busy_rests_in_proportion_to_the_work_and_moves_everything(cluster: Cluster) -> None:
    """Engine API: with ``max_busy=0.25`` the pass sleeps at least 3 s for every second it
    works (each rest is at least (1 - 0.25) / 0.25 times the work before it), its work and
    rests add up to no more than its wall time, and every key still moves; without it, it
    never rests."""
    keys = load(cluster, 3_000, ttl_share=0)
    before = cluster.dump()
    with MigrationSession(load_topology(cluster.old), load_topology(cluster.new)) as session:
        paced = session.migrate(batch=100, max_busy=0.25)
        assert paced.moved_total == paced.to_move > 0
        assert paced.worked_seconds > 0
        assert paced.rested_seconds >= 3 * paced.worked_seconds * 0.999
        assert paced.worked_seconds + paced.rested_seconds <= paced.seconds * 1.001
        assert session.verify().misplaced == 0
    assert_same_data(before, cluster.dump(), 60_000)
    with MigrationSession(load_topology(cluster.new), load_topology(cluster.old)) as session:
        back = session.migrate(batch=100, max_busy=1)  # 1: works all the time, no rests
        assert back.moved_total == back.to_move > 0
        assert back.rested_seconds == 0
        assert back.worked_seconds <= back.seconds
    assert {key.decode() for key in cluster.dump()} == set(keys)


@pytest.mark.parametrize(
    ("option", "value"),
    [
        *[
            ("max_busy", v)
            for v in (0, -0.5, 0.009, 1e-300, 1.5, float("nan"), float("inf"), True, "0.5")
        ],
        *[("rate", v) for v in (0, -1, 0.009, 1e-300, 1.1e12, float("nan"), True, "10")],
    ],
)
def test_a_pace_out_of_bounds_is_refused_before_anything_moves(
    cluster: Cluster, option: str, value: Any
) -> None:
    """A ``max_busy`` below MIN_BUSY or a ``rate`` below MIN_RATE would sleep for days, or
    overflow ``time.sleep`` (1e-300): both are refused, as are values of no meaning."""
    load(cluster, 200, ttl_share=0)
    before = cluster.dump()
    with (
        MigrationSession(load_topology(cluster.old), load_topology(cluster.new)) as session,
        pytest.raises(InvalidOptionError, match=option),
    ):
        session.migrate(**{option: value})
    assert cluster.dump() == before


def test_cli_max_busy_reports_its_rests(cluster: Cluster) -> None:
    """``--max-busy 0.5``: the JSON options carry it, the pass rested (at least as long as
    it worked, so more than nothing), the text says so; the dry run's duration at the
    measured rate is scaled by it."""
    load(cluster, 2_000, ttl_share=0)
    dry = migrate_json(*cluster.files, "--max-busy", "0.5")
    plain = migrate_json(*cluster.files)
    assert dry["rested_seconds"] is None
    assert dry["options"]["max_busy"] == 0.5
    [paced_rate] = [d for d in dry["plan"]["duration"] if "--max-busy" in d["source"]]
    [measured] = plain["plan"]["duration"]
    assert paced_rate["rate"] == pytest.approx(measured["rate"] * 0.5)
    report = migrate_json(*cluster.files, "--apply", "--batch", "100", "--max-busy", "0.5")
    assert report["options"]["max_busy"] == 0.5
    assert report["misplaced"] == 0
    assert report["moved"] == report["to_move"] > 0
    assert 0 < report["rested_seconds"] < report["elapsed_seconds"]
    back = migrate("--from", str(cluster.new), "--to", str(cluster.old), "--apply")
    assert "resting" not in back.stdout
    text = migrate(*cluster.files, "--apply", "--batch", "100", "--max-busy", "0.5").stdout
    assert "s of it resting to keep the pace" in text


def test_destination_with_credentials_gets_auth2_and_they_are_never_shown(
    cluster: Cluster,
) -> None:
    """A password-protected destination: MIGRATE authenticates (AUTH2), output redacts it."""
    load(cluster, 2_000, ttl_share=0)
    target = cluster.clients["n3"]
    target.acl_setuser(
        "mover",
        enabled=True,
        passwords=["+m0ver-s3cret"],
        keys=["*"],
        channels=["*"],
        commands=["+@all"],
    )
    target.config_set("requirepass", "def4ult-s3cret")
    cluster.clients["n3"] = cluster.servers[3].client(username="mover", password="m0ver-s3cret")
    server = cluster.servers[3]
    urls = {name: s.url for name, s in zip(NAMES, cluster.servers, strict=True)}
    urls["n3"] = f"redis://mover:m0ver-s3cret@{server.host}:{server.port}/0"
    cluster.write_topologies(urls)
    result = migrate(*cluster.files, "--apply")
    assert "s3cret" not in result.stdout + result.stderr
    assert f"redis://mover:***@{server.host}:{server.port}/0" in result.stdout
    assert not cluster.misplaced()
    urls["n3"] = f"redis://mover:wr0ng-s3cret@{server.host}:{server.port}/0"
    cluster.write_topologies(urls)
    result = migrate(*cluster.files, "--apply", check=1)
    assert "s3cret" not in result.stdout + result.stderr
    assert result.stderr.startswith("hashring: failed: ")
    assert "n3" in result.stderr
    assert result.stderr.count("\n") == 1
    target = cluster.clients["n3"]
    target.config_set("requirepass", "")  # let the fixture's teardown in without a password


# ------------------------------------------------------------------------------ bad input


def write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def nodes_toml(urls: dict[str, str]) -> str:
    return "".join(f'[nodes.{name}]\nurl = "{url}"\n' for name, url in urls.items())


def one_line_error(result: Run, *needles: str) -> None:
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stdout == ""
    for needle in needles:
        assert needle in result.stderr, (needle, result.stderr)


def test_missing_and_invalid_files_exit_2(tmp_path: Path) -> None:
    good = write(tmp_path / "good.toml", nodes_toml({"a": "redis://127.0.0.1:1/0"}))
    missing = str(tmp_path / "nope.toml")
    result = migrate("--from", missing, "--to", good, check=2)
    one_line_error(result, "hashring: error: ", "nope.toml", "cannot read")
    bad = write(tmp_path / "bad.toml", "[nodes.a\nurl = 1\n")
    result = migrate("--from", good, "--to", bad, check=2)
    one_line_error(result, "hashring: error: ", "bad.toml", "not valid TOML")
    no_url = write(tmp_path / "no_url.toml", "[nodes.a]\nweight = 2\n")
    result = migrate("--from", good, "--to", no_url, check=2)
    one_line_error(result, "nodes.a.url is required")


def test_a_name_with_two_urls_exits_2(tmp_path: Path) -> None:
    old = write(tmp_path / "old.toml", nodes_toml({"a": "redis://:pw-one@127.0.0.1:1/0"}))
    new = write(tmp_path / "new.toml", nodes_toml({"a": "redis://:pw-two@127.0.0.1:2/0"}))
    result = migrate("--from", old, "--to", new, check=2)
    one_line_error(result, "node 'a' has a different URL", "redis://:***@127.0.0.1:1/0")
    assert "pw-one" not in result.stderr
    assert "pw-two" not in result.stderr


@pytest.mark.parametrize(
    ("url", "needle"),
    [("rediss://:tls-s3cret@127.0.0.1:1/0", "TLS"), ("unix:///tmp/redis.sock", "unix socket")],
)
def test_destinations_migrate_cannot_reach_exit_2(tmp_path: Path, url: str, needle: str) -> None:
    """MIGRATE speaks plain TCP only: refused before connecting to anything."""
    old = write(tmp_path / "old.toml", nodes_toml({"a": "redis://127.0.0.1:1/0"}))
    new = write(tmp_path / "new.toml", nodes_toml({"a": "redis://127.0.0.1:1/0", "b": url}))
    for extra in ([], ["--apply"]):
        result = migrate("--from", old, "--to", new, *extra, check=2)
        one_line_error(result, "hashring: error: ", "nodes.b.url", needle)
        assert "s3cret" not in result.stderr


def test_unreachable_node_exits_1_with_a_redacted_url(
    tmp_path: Path, redis_server_factory: RedisServerFactory
) -> None:
    (server,) = redis_server_factory(1)
    port = free_port()
    dead = f"redis://:hunter2-s3cret@127.0.0.1:{port}/0"
    old = write(tmp_path / "old.toml", nodes_toml({"a": server.url}))
    new = write(tmp_path / "new.toml", nodes_toml({"a": server.url, "b": dead}))
    for extra in ([], ["--apply", "--format", "json"]):
        result = migrate("--from", old, "--to", new, *extra, check=1)
        one_line_error(result, "hashring: failed: ", "node 'b'", f":***@127.0.0.1:{port}/0")
        assert "hunter2" not in result.stderr


def test_control_characters_in_node_names_are_escaped(
    tmp_path: Path, redis_server_factory: RedisServerFactory
) -> None:
    """A node name holding ESC is printed as \\x1b in the text output, never sent raw."""
    servers = redis_server_factory(2, extra_args=AOF)
    old = write(tmp_path / "old.toml", f'[nodes.a]\nurl = "{servers[0].url}"\n')
    new = write(
        tmp_path / "new.toml",
        f'[nodes.a]\nurl = "{servers[0].url}"\n[nodes."b\\u001b[2Jc"]\nurl = "{servers[1].url}"\n',
    )
    servers[0].client().mset({f"k{i}": i for i in range(200)})
    for extra in ([], ["--apply"]):
        result = migrate("--from", old, "--to", new, *extra)
        assert "\x1b" not in result.stdout
        assert "b\\x1b[2Jc" in result.stdout


def test_two_names_for_one_database_exit_2(
    tmp_path: Path, redis_server_factory: RedisServerFactory
) -> None:
    """Would MIGRATE a server to itself: refused."""
    (server,) = redis_server_factory(1)
    old = write(tmp_path / "old.toml", nodes_toml({"a": server.url}))
    alias = f"redis://localhost:{server.port}/0"
    new = write(tmp_path / "new.toml", nodes_toml({"a": server.url, "b": alias}))
    one_line_error(migrate("--from", old, "--to", new, check=2), "same database")
    other_db = f"redis://127.0.0.1:{server.port}/1"
    new = write(tmp_path / "new.toml", nodes_toml({"a": server.url, "b": other_db}))
    one_line_error(migrate("--from", old, "--to", new, check=2), "databases of one")


def test_bad_flags_exit_2(tmp_path: Path) -> None:
    """argparse's complaints are one line too, naming the flag."""
    good = write(tmp_path / "good.toml", nodes_toml({"a": "redis://127.0.0.1:1/0"}))
    for flags in (
        ["--batch", "0"],
        ["--rate", "-1"],
        ["--rate", "1e-300"],
        ["--rate", "inf"],
        ["--max-busy", "0"],
        ["--max-busy", "1e-300"],
        ["--max-busy", "1.5"],
        ["--max-busy", "nan"],
        ["--max-busy", "most"],
        ["--on-conflict", "merge"],
        [],
    ):
        args = ["--from", good, *flags] if flags else ["--from", good]
        result = migrate(*args, check=2)
        one_line_error(result, "hashring: error: ", flags[0] if flags else "--to")


def test_on_conflict_takes_exactly_the_engines_policies(tmp_path: Path) -> None:
    """--on-conflict accepts each of the engine's ON_CONFLICT (the one list), names them all
    when it refuses another, and the text output has words for each."""
    good = write(tmp_path / "good.toml", nodes_toml({"a": "redis://127.0.0.1:1/0"}))
    result = migrate("--from", good, "--to", good, "--on-conflict", "merge", check=2)
    one_line_error(result, "--on-conflict", "'merge'", ", ".join(ON_CONFLICT))
    assert set(POLICY_TEXT) == set(ON_CONFLICT)
    for policy in ON_CONFLICT:  # accepted: the run gets as far as connecting (nothing there)
        result = migrate("--from", good, "--to", good, "--on-conflict", policy, check=1)
        one_line_error(result, "hashring: failed: ", "node 'a'")
