"""The ``hashring`` command line, run in-process through ``hashring.cli.main(argv)``.

The process boundary (the installed script and ``python -m``, their exit status, argv bytes,
a reader closing the pipe) is tested with real subprocesses in ``tests/test_cli_process.py``.

Report numbers are checked against an independent computation: owners from placements built
directly, counted with Counter, statistics from the statistics module.
"""

from __future__ import annotations

import io
import json
import math
import statistics
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from cli_runs import CliRun, run_main

from hashring import HashRing, JumpHash, Maglev, load_topology
from hashring.cli import main

REPORT_KEYS = {"schema", "keys", "before", "after", "movement", "matrix"}
SIDE_KEYS = {"topology", "nodes", "summary"}
NODE_KEYS = {"name", "weight", "keys", "share", "fair_share", "deviation", "hash_space"}
SUMMARY_KEYS = {"mean", "max", "min", "stdev", "cv", "peak_to_mean", "peak_to_fair", "cv_of_fair"}


def cli(*args: str, stdin: str | None = None, check: int | None = 0) -> CliRun:
    """Run ``hashring ARGS`` in this process; assert its exit status unless ``check`` is None."""
    result = run_main(*args, stdin=(stdin or "").encode())
    if check is not None:
        assert result.status == check, (result.text, result.stderr)
    assert "Traceback" not in result.stderr
    return result


def report(*args: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(cli("report", "--format", "json", *args).text)
    return document


def write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def independent(keys: list[str], before: Any, after: Any) -> dict[str, Any]:
    """Movement and load statistics computed without hashring's analysis code."""
    owners_b = [before.get_node(key) for key in keys]
    owners_a = [after.get_node(key) for key in keys]
    pairs = Counter((b, a) for b, a in zip(owners_b, owners_a, strict=True) if b != a)
    loads_b = [Counter(owners_b)[name] for name in sorted(before.nodes)]
    loads_a = [Counter(owners_a)[name] for name in sorted(after.nodes)]
    return {"pairs": pairs, "loads_before": loads_b, "loads_after": loads_a}


def assert_summary(summary: dict[str, Any], loads: list[int]) -> None:
    mean = statistics.fmean(loads)
    assert summary["mean"] == pytest.approx(mean)
    assert summary["max"] == max(loads)
    assert summary["min"] == min(loads)
    assert summary["stdev"] == pytest.approx(statistics.pstdev(loads))
    assert summary["cv"] == pytest.approx(statistics.pstdev(loads) / mean)
    assert summary["peak_to_mean"] == pytest.approx(max(loads) / mean)


# ------------------------------------------------------------------------------- report


def test_report_add_node_matches_an_independent_computation() -> None:
    """Moved keys, pairs, loads and statistics equal a direct computation (ring, add one)."""
    doc = report("--nodes", "a,b,c,d", "--add", "e", "--keys", "20000")
    keys = [f"key:{i}" for i in range(20_000)]
    expected = independent(keys, HashRing(["a", "b", "c", "d"]), HashRing(list("abcde")))
    assert set(doc) == REPORT_KEYS
    assert doc["schema"] == "hashring.report/1"
    assert doc["keys"] == {"count": 20_000, "source": "synthetic"}
    moved = sum(expected["pairs"].values())
    assert doc["movement"]["moved"] == moved
    assert doc["movement"]["fraction"] == pytest.approx(moved / 20_000)
    assert doc["movement"]["ideal_fraction"] == pytest.approx(1 / 5)
    pairs = {(p["from"], p["to"]): p["keys"] for p in doc["movement"]["pairs"]}
    assert pairs == dict(expected["pairs"])
    assert all(target == "e" for _, target in pairs)
    assert [p["keys"] for p in doc["movement"]["pairs"]] == sorted(pairs.values(), reverse=True)
    assert_summary(doc["before"]["summary"], expected["loads_before"])
    assert_summary(doc["after"]["summary"], expected["loads_after"])
    assert [n["keys"] for n in doc["after"]["nodes"]] == expected["loads_after"]
    for side in ("before", "after"):
        assert set(doc[side]) == SIDE_KEYS
        assert set(doc[side]["summary"]) == SUMMARY_KEYS
        for node in doc[side]["nodes"]:
            assert set(node) == NODE_KEYS
            assert node["deviation"] == pytest.approx(node["share"] / node["fair_share"] - 1)
        spaces = [node["hash_space"] for node in doc[side]["nodes"]]
        assert math.fsum(spaces) == pytest.approx(1.0)
    matrix = doc["matrix"]
    assert matrix["from"] == list("abcd")
    assert matrix["to"] == list("abcde")
    assert sum(map(sum, matrix["keys"])) == 20_000
    assert [row[4] for row in matrix["keys"]] == [pairs.get((n, "e"), 0) for n in "abcd"]


def test_report_between_topology_files(tmp_path: Path) -> None:
    """--from/--to files: remove a node and reweight another (Maglev), checked independently."""
    nodes = {"a": 1, "b": 2, "c": 1}
    old = write(
        tmp_path / "old.toml",
        '[placement]\nalgorithm = "maglev"\ntable_size = 1031\n'
        + "".join(
            f'[nodes.{n}]\nurl = "redis://127.0.0.1:1/0"\nweight = {w}\n' for n, w in nodes.items()
        ),
    )
    new = write(
        tmp_path / "new.toml",
        '[placement]\nalgorithm = "maglev"\ntable_size = 1031\n'
        '[nodes.a]\nurl = "redis://127.0.0.1:1/0"\nweight = 3\n'
        '[nodes.b]\nurl = "redis://127.0.0.1:1/0"\nweight = 2\n',
    )
    doc = report("--from", old, "--to", new, "--keys", "10000")
    keys = [f"key:{i}" for i in range(10_000)]
    expected = independent(
        keys, Maglev(nodes, table_size=1031), Maglev({"a": 3, "b": 2}, table_size=1031)
    )
    assert doc["movement"]["moved"] == sum(expected["pairs"].values())
    # shares 1/4, 2/4, 1/4 -> 3/5, 2/5: |0.35| + |0.1| + |0.25| over two
    assert doc["movement"]["ideal_fraction"] == pytest.approx(0.35)
    assert doc["before"]["topology"]["algorithm"] == "maglev"
    assert doc["after"]["topology"]["source"] == new
    assert [n["hash_space"] for n in doc["before"]["nodes"]] == [None, None, None]
    assert_summary(doc["after"]["summary"], expected["loads_after"])


def test_report_jump_applies_the_change_to_the_live_placement() -> None:
    """Jump's buckets depend on history: replacing a node moves only that node's keys."""
    doc = report("--nodes", "6", "--algorithm", "jump", "--remove", "node-3", "--add", "x")
    before = JumpHash([f"node-{i}" for i in range(1, 7)])
    after = JumpHash([f"node-{i}" for i in range(1, 7)])
    after.remove_node("node-3")
    after.add_node("x")
    keys = [f"key:{i}" for i in range(50_000)]  # the first of the report's 1,000,000
    expected = independent(keys, before, after)
    assert {(p["from"], p["to"]) for p in doc["movement"]["pairs"]} == {("node-3", "x")}
    assert set(expected["pairs"]) == {("node-3", "x")}
    assert doc["movement"]["fraction"] == pytest.approx(1 / 6, rel=0.02)


def test_report_keys_from_stdin_and_file(tmp_path: Path) -> None:
    """--keys-file reads one key per line (blank lines skipped); '-' reads stdin."""
    keys = [f"user:{i}" for i in range(500)]
    text = "\n".join(keys) + "\n\n"
    from_stdin = json.loads(
        cli("report", "--nodes", "3", "--keys-file", "-", "--format", "json", stdin=text).text
    )
    from_file = report("--nodes", "3", "--keys-file", write(tmp_path / "keys.txt", text))
    assert from_stdin["keys"]["count"] == from_file["keys"]["count"] == 500
    assert from_stdin["movement"] == from_file["movement"]
    expected = independent(
        keys,
        HashRing(["node-1", "node-2", "node-3"]),
        HashRing(["node-1", "node-2", "node-3", "node-4"]),
    )
    assert from_file["movement"]["moved"] == sum(expected["pairs"].values())


def test_report_text_csv_and_plot(tmp_path: Path) -> None:
    """The terminal table, CSV rows per node, and a PNG plot."""
    text = cli("report", "--nodes", "4", "--weight", "node-2=2", "--keys", "20000").text
    for label in ("moved:", "ideal", "peak-to-mean", "coeff. of variation", "movement matrix"):
        assert label in text
    assert "1 -> 2" in text  # node-2's weight change
    rows = cli("report", "--nodes", "4", "--remove", "node-4", "--keys", "8000", "--format", "csv")
    lines = rows.text.splitlines()
    assert lines[0].split(",")[:3] == ["node", "weight_before", "keys_before"]
    by_node = {line.split(",")[0]: line.split(",") for line in lines[1:]}
    assert set(by_node) == {"node-1", "node-2", "node-3", "node-4"}
    assert by_node["node-4"][6:11] == ["", "", "", "", ""]  # absent after the change
    assert int(by_node["node-4"][11]) == int(by_node["node-4"][2])  # all its keys moved out
    plot = tmp_path / "report.png"
    cli("report", "--nodes", "5", "--keys", "5000", "--plot", str(plot))
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_many_nodes_lists_the_largest_moves() -> None:
    """Beyond a dozen nodes the text shows the largest from->to pairs, not the whole matrix."""
    text = cli("report", "--nodes", "30", "--remove", "node-7", "--keys", "30000").text
    assert "largest moves" in text
    assert "node-7" in text.split("largest moves")[1]


@pytest.mark.redis
def test_report_samples_keys_from_live_nodes(tmp_path: Path, redis_servers: list[Any]) -> None:
    """--sample-from SCANs real keys from every node, in proportion to their sizes."""
    config = write(
        tmp_path / "live.toml",
        "".join(f'[nodes.r{i}]\nurl = "{server.url}"\n' for i, server in enumerate(redis_servers)),
    )
    for i, server in enumerate(redis_servers):
        client = server.client()
        client.mset({f"s{i}:{j}": "v" for j in range(1000 * (i + 1))})
    doc = report("--from", config, "--sample-from", config, "--sample", "3000")
    assert doc["keys"]["source"] == f"sample:{config}"
    assert abs(doc["keys"]["count"] - 3000) <= 3
    assert sum(node["keys"] for node in doc["before"]["nodes"]) == doc["keys"]["count"]
    redis_servers[1].kill()
    failed = cli("report", "--sample-from", config, check=1)
    assert "ConnectionError" in failed.stderr


# ------------------------------------------------------------------------ lookup, compare


def test_lookup_prints_owner_and_preference_list(tmp_path: Path) -> None:
    """Owners and preference lists equal the placement's; URLs are shown without passwords."""
    config = write(
        tmp_path / "c.toml",
        '[nodes.a]\nurl = "redis://:s3cret@127.0.0.1:7001/0"\n'
        '[nodes.b]\nurl = "redis://127.0.0.1:7002/0"\n[nodes.c]\nurl = "redis://127.0.0.1:7003/0"\n',
    )
    ring = HashRing(["a", "b", "c"])
    out = json.loads(
        cli(
            "lookup", "user:1", "k{tag}", "--config", config, "--replicas", "2", "--format", "json"
        ).text
    )
    assert out["schema"] == "hashring.lookup/1"
    for row in out["keys"]:
        assert row["preference"] == ring.get_nodes(row["key"], 2)
        assert row["owner"] == ring.get_node(row["key"])
    on_a = next(f"k{i}" for i in range(1000) if ring.get_node(f"k{i}") == "a")
    text = cli("lookup", on_a, "--config", config).text
    assert "s3cret" not in text
    assert "redis://:***@127.0.0.1:7001/0" in text


def test_compare_runs_every_algorithm() -> None:
    """Every algorithm is measured on the same change; each moves about the ideal 1/5."""
    out = json.loads(cli("compare", "--nodes", "4", "--keys", "20000", "--format", "json").text)
    assert out["schema"] == "hashring.compare/1"
    rows = {row["algorithm"]: row for row in out["algorithms"]}
    assert set(rows) == {"ring", "maglev", "rendezvous", "jump"}
    for row in rows.values():
        assert row["problem"] is None
        assert row["ideal_fraction"] == pytest.approx(0.2)
        assert 0.1 < row["moved_fraction"] < 0.3
        assert row["keys_per_second"] > 0
        moved = row["necessary_fraction"] + row["excess_fraction"]
        assert moved == pytest.approx(row["moved_fraction"])
        # equal weights: load against fair share is load against the mean
        assert row["peak_to_fair_after"] == pytest.approx(row["peak_to_mean_after"])
    assert rows["ring"]["excess_fraction"] == 0  # the ring moves keys only to the new node
    assert rows["maglev"]["excess_fraction"] > 0  # maglev reshuffles some between survivors
    weighted = json.loads(
        cli(
            "compare", "--nodes", "a,b", "--weight", "a=2", "--keys", "2000", "--format", "json"
        ).text
    )
    problems = {row["algorithm"]: row["problem"] for row in weighted["algorithms"]}
    assert "weights" in str(problems["jump"])
    assert problems["ring"] is None
    ring = next(row for row in weighted["algorithms"] if row["algorithm"] == "ring")
    # a weighs twice b: its raw peak-to-mean is about 4/3, its load against its fair share ~1
    assert ring["peak_to_mean_after"] > 1.2
    assert ring["peak_to_fair_after"] < 1.15


def test_main_writes_to_the_streams_it_is_given_and_restores_sys() -> None:
    """main(argv, stdin=, stdout=, stderr=) reads and writes those streams, not sys's, and
    leaves sys.stdin/stdout/stderr as they were (after success and after an error)."""
    saved = sys.stdin, sys.stdout, sys.stderr
    source = io.TextIOWrapper(io.BytesIO(b"k1\nk2\n"), encoding="utf-8")
    out, err = io.StringIO(), io.StringIO()
    args = ["report", "--nodes", "2", "--keys-file", "-", "--format", "json"]
    assert main(args, stdin=source, stdout=out, stderr=err) == 0
    assert json.loads(out.getvalue())["keys"]["count"] == 2
    assert err.getvalue() == ""
    assert (sys.stdin, sys.stdout, sys.stderr) == saved
    bad_out, bad_err = io.StringIO(), io.StringIO()
    assert main(["report", "--keys", "0"], stdout=bad_out, stderr=bad_err) == 2
    assert bad_err.getvalue().startswith("hashring: error: ")
    assert bad_out.getvalue() == ""
    assert (sys.stdin, sys.stdout, sys.stderr) == saved


# ------------------------------------------------------------------ errors and exit codes


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["report", "--nodes", "3", "--remove", "nope"], "no node 'nope'"),
        (["report", "--nodes", "3", "--add", "node-1"], "already a node"),
        (["report", "--nodes", "3", "--weight", "node-1=0"], "must be a positive number"),
        (["report", "--nodes", "3", "--weight", "node-1"], "expected NODE=WEIGHT"),
        (["report", "--nodes", "a,a"], "named twice"),
        (["report", "--nodes", "1", "--remove", "node-1"], "removes every node"),
        (["report", "--algorithm", "jump", "--vnodes", "10"], "vnodes applies to"),
        (["report", "--table-size", "1000", "--algorithm", "maglev"], "prime"),
        (["report", "--from", "/nonexistent.toml"], "cannot read the topology file"),
        (["report", "--keys-file", "/nonexistent"], "cannot read"),
        (["report", "--format", "xml"], "invalid choice"),
        (["report", "--keys", "0"], "must be at least 1"),
        (["lookup", "k", "--nodes", "2", "--replicas", "3"], "only 2 nodes"),
        (["report", "--add", "x="], "'' is not a number"),
        (["report", "--weight", "node-1=1e308"], "from 1e-12 to 1e+12"),
        (["report", "--weight", "node-1=1e6"], "at most 16,777,216"),
        (["report", "--plot", "out.txt"], "ending in .png"),
        (["report", "--sample", "5"], "--sample-from only"),
        (["report", "--nodes", ""], "give a count"),
        (["report", "--algorithm", "maglev", "--table-size", "7"], "cannot hold 8 nodes"),
        (["report", "--to", "x.toml", "--vnodes", "10"], "only the before side"),
        (["compare", "--algorithm", "ring"], "does not apply"),
        (["compare", "--keys", "0"], "must be at least 1"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_bad_usage_exits_2_with_one_clear_line(args: list[str], message: str) -> None:
    """Usage and config errors: exit status 2, one line naming the problem, no traceback."""
    result = cli(*args, check=2)
    assert message in result.stderr
    assert result.stderr.startswith("hashring: error: ")
    assert result.stderr.count("\n") == 1


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('[nodes.a]\nurl = "redis://h/0"\nwieght = 2\n', "unknown key nodes.a.wieght"),
        ('[nodes.a]\nurl = "redis://h/0"\nweight = 0\n', "must be a positive finite number"),
        ('[nodes.a]\nurl = "redis://h/0"\nweight = "2"\n', "must be a positive finite number"),
        ('[nodes.a]\nurl = "no-scheme"\n', "must be a URL with a scheme"),
        ('[nodes.a]\nurl = "redis://h/0"\n[nodes.a]\nurl = "redis://h/1"\n', "not valid TOML"),
        ('[placement]\nalgorithm = "ringg"\n[nodes.a]\n', "use one of ring, maglev"),
        ('[placement]\nvnodes = "160"\n[nodes.a]\n', "placement.vnodes"),
        ("[placement]\n", "no nodes"),
    ],
)
def test_bad_config_names_file_and_key(tmp_path: Path, toml: str, message: str) -> None:
    """Config errors name the file and the key, with exit status 2."""
    path = write(tmp_path / "bad.toml", toml)
    result = cli("report", "--from", path, check=2)
    assert message in result.stderr
    assert path in result.stderr
    assert result.stderr.count("\n") == 1


@pytest.mark.parametrize("command", [[], ["report"], ["lookup"], ["compare"], ["migrate"]])
def test_help_everywhere(command: list[str]) -> None:
    """--help works for the program and every subcommand."""
    result = cli(*command, "--help")
    assert "usage: hashring" in result.text


def test_placements_build_from_the_shared_config_file(tmp_path: Path) -> None:
    """load_topology(path).placement() builds what the file says, as the CLI reads it."""
    ring_file = write(
        tmp_path / "ring.toml",
        '[placement]\nvnodes = 40\n[nodes.a]\nurl = "redis://h/0"\nweight = 2\n'
        '[nodes.b]\nurl = "redis://h/1"\n',
    )
    ring = load_topology(ring_file).placement()
    assert isinstance(ring, HashRing)
    assert dict(ring.nodes) == {"a": 2.0, "b": 1.0}
    assert ring.get_node_many(["x", "y"]) == HashRing({"a": 2, "b": 1}, vnodes=40).get_node_many(
        ["x", "y"]
    )
    maglev_file = write(tmp_path / "m.toml", '[placement]\nalgorithm = "maglev"\n[nodes.a]\n')
    assert isinstance(load_topology(maglev_file).placement(), Maglev)


def test_change_flags_remove_before_add() -> None:
    """Removals apply before additions: a node can be re-added with a new weight."""
    doc = report("--nodes", "3", "--remove", "node-1", "--add", "node-1=2", "--keys", "3000")
    assert {n["name"]: n["weight"] for n in doc["after"]["nodes"]}["node-1"] == 2.0
    assert doc["movement"]["ideal_fraction"] == pytest.approx(0.5 - 1 / 3)
