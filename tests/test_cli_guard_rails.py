"""The command line's guard rails: changes it refuses, paths checked before any work, usage
errors named after the subcommand, and what ``migrate --apply`` says and counts as it moves.

Figures are checked against independent computations (placements built directly, keys
counted on the servers with ``DBSIZE``); the interruption runs the real command in a child
process and sends it SIGINT.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from cli_runs import run_checked
from hashring.adapters.migrate import MigrationSession
from redis_servers import RedisServer, RedisServerFactory

from hashring import JumpHash, load_topology

MODULE = [sys.executable, "-m", "hashring"]


def jump_file(path: Path, names: list[str]) -> str:
    path.write_text('[placement]\nalgorithm = "jump"\n' + "".join(f"[nodes.{n}]\n" for n in names))
    return str(path)


# ------------------------------------------------------------------------------ report


def test_to_without_from_is_refused(tmp_path: Path) -> None:
    new = jump_file(tmp_path / "new.toml", ["a", "b"])
    result = run_checked("report", "--to", new, "--keys", "100")
    assert result.status == 2
    assert result.text == ""
    assert result.stderr.startswith("hashring: error: --to needs --from")
    assert result.stderr.count("\n") == 1


def test_to_with_nodes_is_allowed(tmp_path: Path) -> None:
    """--nodes states the before side explicitly: the report runs."""
    new = tmp_path / "new.toml"
    new.write_text("[nodes.node-1]\n[nodes.node-2]\n[nodes.node-3]\n")
    result = run_checked("report", "--nodes", "2", "--to", str(new), "--keys", "1000")
    assert result.status == 0, result.stderr


@pytest.mark.parametrize("command", ["report", "migrate"])
@pytest.mark.parametrize(
    ("before", "after"),
    [
        (["n1", "n2", "n3", "n4", "n5"], ["n1", "n2", "n4", "n5"]),  # remove a middle node
        (["n1", "n3"], ["n1", "n2", "n3"]),  # add a node that does not sort last
    ],
)
def test_jump_files_that_renumber_are_refused(
    tmp_path: Path, command: str, before: list[str], after: list[str]
) -> None:
    """A file-to-file jump change that renumbers buckets: one line saying what to do, exit 2
    (migrate refuses before connecting: the nodes have no URL)."""
    old = jump_file(tmp_path / "old.toml", before)
    new = jump_file(tmp_path / "new.toml", after)
    result = run_checked(command, "--from", old, "--to", new)
    assert result.status == 2
    assert result.stderr.startswith(f"hashring: error: {new}: jump numbers its buckets")
    assert "--add/--remove" in result.stderr
    assert "--write-to NEW.toml" in result.stderr
    assert result.stderr.count("\n") == 1


@pytest.mark.parametrize(
    ("before", "after"),
    [
        (["n1", "n2", "n3", "n4", "n5"], ["n1", "n2", "n3", "n4"]),  # remove the last node
        (["n1", "n2", "n3", "n4"], ["n1", "n2", "n3", "n4", "n5"]),  # add after the last
    ],
)
def test_jump_files_that_keep_numbering_report_exactly(
    tmp_path: Path, before: list[str], after: list[str]
) -> None:
    """Changes that keep the buckets are reported, and the moved keys equal a Counter over
    JumpHash placements built directly (only the changed node's keys move)."""
    old = jump_file(tmp_path / "old.toml", before)
    new = jump_file(tmp_path / "new.toml", after)
    result = run_checked(
        "report", "--from", old, "--to", new, "--keys", "20000", "--format", "json"
    )
    assert result.status == 0, result.stderr
    document = json.loads(result.text)
    keys = [f"key:{i}" for i in range(20000)]
    moved = Counter(
        (a, b)
        for a, b in zip(
            JumpHash(before).get_node_many(keys), JumpHash(after).get_node_many(keys), strict=True
        )
        if a != b
    )
    assert document["movement"]["moved"] == sum(moved.values())
    pairs = {(p["from"], p["to"]): p["keys"] for p in document["movement"]["pairs"]}
    assert pairs == dict(moved)
    changed = set(before) ^ set(after)
    assert all(a in changed or b in changed for a, b in moved)


def test_jump_change_flags_apply_the_history(tmp_path: Path) -> None:
    """--from FILE --remove NODE (the suggested alternative) moves only that node's keys."""
    old = jump_file(tmp_path / "old.toml", ["n1", "n2", "n3", "n4", "n5"])
    result = run_checked(
        "report", "--from", old, "--remove", "n3", "--keys", "20000", "--format", "csv"
    )
    assert result.status == 0, result.stderr
    rows = {line.split(",")[0]: line.split(",") for line in result.text.splitlines()[1:]}
    ring = JumpHash(["n1", "n2", "n3", "n4", "n5"])
    keys = [f"key:{i}" for i in range(20000)]
    on_n3 = Counter(ring.get_node_many(keys))["n3"]
    moved_out = {name: int(row[-2]) for name, row in rows.items()}
    assert moved_out == {"n1": 0, "n2": 0, "n3": on_n3, "n4": 0, "n5": 0}
    assert load_topology(old).algorithm == "jump"


def test_plot_path_is_checked_before_any_work(tmp_path: Path) -> None:
    """A plot into a missing folder fails first: here sampling an unreachable node would
    fail otherwise (so no work was attempted), and no PNG is written anywhere."""
    pytest.importorskip("matplotlib")
    topology = tmp_path / "t.toml"
    topology.write_text('[nodes.a]\nurl = "redis://127.0.0.1:1/0"\n')
    result = run_checked(
        "report", "--from", str(topology), "--sample-from", str(topology),
        "--plot", "/no/such/dir/x.png",
    )  # fmt: skip
    assert result.status == 2
    assert result.stderr == (
        "hashring: error: --plot /no/such/dir/x.png: no such folder /no/such/dir: create it first\n"
    )
    folder = tmp_path / "plots.png"
    folder.mkdir()
    result = run_checked("report", "--nodes", "3", "--keys", "10", "--plot", str(folder))
    assert result.status == 2
    assert "is a folder" in result.stderr


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (
            ["report", "--nodse", "5"],
            "hashring: error: unrecognized arguments: --nodse 5 (did you mean --nodes?) "
            "(see 'hashring report --help')\n",
        ),
        (
            ["lookup", "k", "--nodes", "a", "--zzz"],
            "hashring: error: unrecognized arguments: --zzz (see 'hashring lookup --help')\n",
        ),
        (
            ["migrate", "--from", "a", "--to", "b", "--aply"],
            "hashring: error: unrecognized arguments: --aply (did you mean --apply?) "
            "(see 'hashring migrate --help')\n",
        ),
    ],
)
def test_unrecognized_arguments_name_the_subcommand(argv: list[str], expected: str) -> None:
    result = run_checked(*argv)
    assert result.status == 2
    assert result.text == ""
    assert result.stderr == expected


# ------------------------------------------------------------------------------ migrate


def cluster_files(servers: list[RedisServer], directory: Path) -> tuple[Path, Path]:
    names = ["n0", "n1", "n2", "n3"]
    tables = [f'[nodes.{n}]\nurl = "{s.url}"\n' for n, s in zip(names, servers, strict=True)]
    old, new = directory / "old.toml", directory / "new.toml"
    old.write_text("".join(tables[:3]))
    new.write_text("".join(tables))
    return old, new


def fill(servers: list[RedisServer], old: Path, count: int) -> None:
    placement = load_topology(old).placement()
    clients = [s.client() for s in servers[:3]]
    pipes = {f"n{i}": c.pipeline(transaction=False) for i, c in enumerate(clients)}
    keys = [f"k:{i}" for i in range(count)]
    for key, owner in zip(keys, placement.get_node_many(keys), strict=True):
        pipes[owner].set(key, key)
    for pipe in pipes.values():
        pipe.execute()


@pytest.mark.redis
def test_moved_progress_counts_moved_keys(
    redis_server_factory: RedisServerFactory, tmp_path: Path
) -> None:
    """The engine's moved_progress adds up to the keys moved (what the bar counts), and
    progress to the keys scanned; the destination holds exactly the keys moved."""
    servers = redis_server_factory(4)
    old, new = cluster_files(servers, tmp_path)
    fill(servers, old, 5000)
    moved: list[int] = []
    scanned: list[int] = []
    with MigrationSession(load_topology(old), load_topology(new)) as session:
        result = session.migrate(
            batch=100, progress=scanned.append, moved_progress=moved.append, allow_volatile=True
        )
    assert sum(moved) == result.moved_total == servers[3].client().dbsize() > 0
    assert sum(scanned) == result.scanned
    assert all(n > 0 for n in moved)


def default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.redis
def test_interrupted_apply_says_what_moved_and_that_rerun_resumes(
    redis_server_factory: RedisServerFactory, tmp_path: Path
) -> None:
    """SIGINT during --apply: exit 130, one line giving the keys moved so far (at most one
    round trip short of what n3, the only destination, holds) and that re-running resumes;
    the re-run moves the rest."""
    servers = redis_server_factory(4)
    old, new = cluster_files(servers, tmp_path)
    fill(servers, old, 8000)
    n3 = servers[3].client()
    argv = ["--from", str(old), "--to", str(new), "--allow-volatile-destination"]
    process = subprocess.Popen(
        [*MODULE, "migrate", *argv, "--apply", "--batch", "20", "--rate", "1000"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=default_sigint,
    )
    try:
        deadline = time.monotonic() + 30
        while n3.dbsize() < 200 and time.monotonic() < deadline:
            assert process.poll() is None, "migrate ended before it could be interrupted"
            time.sleep(0.01)
        process.send_signal(signal.SIGINT)
    finally:
        _, stderr = process.communicate(timeout=10)
    assert process.returncode == 130
    assert stderr.count("\n") == 1, stderr
    found = re.fullmatch(
        r"hashring: interrupted: ([\d,]+) keys moved so far \(([\d,]+) scanned\), .*re-run the "
        r"same command to resume: keys already moved are not moved again\n",
        stderr,
    )
    assert found, stderr
    said = int(found.group(1).replace(",", ""))
    there = n3.dbsize()
    assert there >= 200
    assert there - 20 <= said <= there
    rerun = run_checked("migrate", *argv, "--apply")
    assert rerun.status == 0, rerun.stderr


# ------------------------------------------------------------------------------ jump history


def test_write_to_carries_jump_history(tmp_path: Path) -> None:
    """report --write-to writes the file with jump's bucket history: built from it, the
    placement is the running one with the change applied (a JumpHash built directly, then
    remove_node), and a report from the old file to it moves only the removed node's keys."""
    names = ["n1", "n2", "n3", "n4", "n5"]
    old = jump_file(tmp_path / "old.toml", names)
    new = jump_file(tmp_path / "new.toml", ["n1", "n2", "n4", "n5"])
    written = tmp_path / "written.toml"
    result = run_checked(
        "report", "--from", old, "--to", new, "--keys", "1000", "--write-to", str(written)
    )
    assert result.status == 0, result.stderr
    assert "topology written to" in result.stderr
    topology = load_topology(written)
    running = JumpHash(names)
    running.remove_node("n3")
    keys = [f"key:{i}" for i in range(20000)]
    assert topology.placement().get_node_many(keys) == running.get_node_many(keys)
    assert "[placement.history]" in written.read_text()
    document = json.loads(
        run_checked(
            "report", "--from", old, "--to", str(written), "--keys", "20000", "--format", "json"
        ).text
    )
    on_n3 = Counter(JumpHash(names).get_node_many(keys))["n3"]
    assert document["movement"]["moved"] == on_n3
    assert {p["from"] for p in document["movement"]["pairs"]} == {"n3"}
    # a further change from the written file keeps the history (no refusal, exact again)
    later = tmp_path / "later.toml"
    run_checked(
        "report", "--from", str(written), "--remove", "n1", "--keys", "10", "--write-to", str(later)
    )
    running.remove_node("n1")
    assert load_topology(later).placement().get_node_many(keys) == running.get_node_many(keys)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '[placement]\nalgorithm = "ring"\n[placement.history]\nsize = 1\n',
            "placement.history is jump's bucket history",
        ),
        (
            '[placement]\nalgorithm = "jump"\n[placement.history]\nsize = 1\n'
            "last_removed = 1\nremoved = []\n[placement.history.buckets]\nb = 0\n",
            "must name exactly the nodes",
        ),
        (
            '[placement]\nalgorithm = "jump"\n[placement.history]\nsize = 3\n'
            "last_removed = 1\nremoved = []\n[placement.history.buckets]\na = 0\n",
            "inconsistent",
        ),
        (
            '[placement]\nalgorithm = "jump"\n[placement.history]\nsize = 1\n'
            'last_removed = 1\nremoved = "x"\n[placement.history.buckets]\na = 0\n',
            "integer triples",
        ),
    ],
)
def test_bad_history_is_a_config_error(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "t.toml"
    path.write_text(text + "[nodes.a]\n")
    result = run_checked("report", "--from", str(path), "--keys", "10")
    assert result.status == 2
    assert message in result.stderr
    assert result.stderr.count("\n") == 1


def test_written_topology_reads_back_equal(tmp_path: Path) -> None:
    """Names that need quoting, urls and weights survive the round trip."""
    source = tmp_path / "t.toml"
    source.write_text(
        '[placement]\nalgorithm = "maglev"\ntable_size = 251\nhash_tags = false\n'
        '[nodes."a.b \\"q\\" é"]\nurl = "redis://127.0.0.1:7000/0"\nweight = 2.5\n'
        "[nodes.c]\n"
    )
    written = tmp_path / "w.toml"
    assert run_checked("report", "--from", str(source), "--remove", "c", "--add", "d=1.5",
               "--keys", "10", "--write-to", str(written)).status == 0  # fmt: skip
    back = load_topology(written)
    assert back.options() == load_topology(source).options()
    assert {n: (s.url, s.weight) for n, s in back.nodes.items()} == {
        'a.b "q" é': ("redis://127.0.0.1:7000/0", 2.5),
        "d": (None, 1.5),
    }


@pytest.mark.redis
def test_migrate_to_a_file_with_history_moves_only_the_removed_nodes_keys(
    redis_server_factory: RedisServerFactory, tmp_path: Path
) -> None:
    """Jump, n1 removed: with the written file, migrate moves exactly the keys n1 held, to
    the owners a JumpHash with n1 removed gives (Counter over keys read from the servers)."""
    servers = redis_server_factory(4)
    names = ["n0", "n1", "n2", "n3"]
    tables = [f'[nodes.{n}]\nurl = "{s.url}"\n' for n, s in zip(names, servers, strict=True)]
    head = '[placement]\nalgorithm = "jump"\n'
    old, new = tmp_path / "old.toml", tmp_path / "new.toml"
    old.write_text(head + "".join(tables))
    new.write_text(head + "".join(t for t in tables if "n1]" not in t))
    refused = run_checked("migrate", "--from", str(old), "--to", str(new))
    assert refused.status == 2
    assert "--write-to" in refused.stderr
    written = tmp_path / "written.toml"
    assert run_checked("report", "--from", str(old), "--to", str(new), "--keys", "10",
               "--write-to", str(written)).status == 0  # fmt: skip
    clients = {n: s.client() for n, s in zip(names, servers, strict=True)}
    keys = [f"k:{i}" for i in range(3000)]
    for key, owner in zip(keys, JumpHash(names).get_node_many(keys), strict=True):
        clients[owner].set(key, key)
    running = JumpHash(names)
    running.remove_node("n1")
    expected = Counter(("n1", running.get_node(key)) for key in clients["n1"].scan_iter(count=1000))
    dry = json.loads(
        run_checked("migrate", "--from", str(old), "--to", str(written), "--format", "json").text
    )
    assert {(p["from"], p["to"]): p["keys"] for p in dry["pairs"]} == dict(expected)
