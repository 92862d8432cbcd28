"""``hashring simulate``: its outputs (text, JSON, PNG), replayed traces, and the one-line
usage errors for hostile flags and trace files (exit status 2, no traceback)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from cli_runs import run_checked

from hashring import placement
from hashring._simulation import STRATEGIES

SMALL = ("--requests", "20000", "--keys", "2000")
README = Path(__file__).resolve().parent.parent / "README.md"


def simulate_json(*args: str, stdin: bytes = b"") -> dict[str, Any]:
    result = run_checked("simulate", *args, "--format", "json", stdin=stdin)
    assert result.status == 0, result.stderr
    document: dict[str, Any] = json.loads(result.text)
    return document


def by_strategy(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {entry["strategy"]: entry for entry in document["strategies"]}


def test_text_report_lists_every_strategy_and_node() -> None:
    """The default text shows the workload, a row per strategy, per-node utilisation and the
    round-robin overload note."""
    result = run_checked("simulate", *SMALL)
    assert result.status == 0, result.stderr
    text = result.text
    assert "20,000 requests Poisson arrivals, 2,000 keys (Zipf s=0.8)" in text
    assert "of the nodes' 14 work units/s" in text
    for strategy in STRATEGIES:
        assert f"\n{strategy} " in text
    assert "utilisation per node" in text
    assert "round-robin: above 100%: slow-1" in text
    assert result.stderr == ""


def test_json_figures_add_up() -> None:
    """JSON: every strategy serves every request once; hash placements have affinity 1.0;
    round-robin serves each node the same count; the load summary is of the utilisations."""
    document = simulate_json(*SMALL, "--nodes", "a=3,b=1,c=1")
    assert document["schema"] == "hashring.simulate/1"
    assert document["workload"]["requests"] == 20_000
    assert document["nodes"] == [
        {"name": "a", "speed": 3.0},
        {"name": "b", "speed": 1.0},
        {"name": "c", "speed": 1.0},
    ]
    rows = by_strategy(document)
    assert list(rows) == list(STRATEGIES)
    for entry in rows.values():
        assert sum(node["served"] for node in entry["nodes"]) == 20_000
        utilisation = [node["utilisation"] for node in entry["nodes"]]
        assert entry["load"]["max"] == max(utilisation)
        assert entry["load"]["peak_to_mean"] == pytest.approx(
            max(utilisation) / (sum(utilisation) / 3)
        )
        assert entry["seconds"] > 0
    for algorithm in ("ring", "maglev", "rendezvous", "jump"):
        assert rows[algorithm]["affinity"] == 1.0
    assert [node["served"] for node in rows["round-robin"]["nodes"]] == [6667, 6667, 6666]
    assert document["workload"]["offered_load"] == pytest.approx(0.7, rel=0.03)


def test_strategies_seed_and_uniform_keys() -> None:
    """--strategies runs only those, in that order; the same --seed gives the same figures;
    --zipf 0 draws keys uniformly."""
    args = ("--strategies", "power-of-two,ring", "--zipf", "0", "--seed", "7", *SMALL)
    first = simulate_json(*args)
    again = simulate_json(*args)
    assert [entry["strategy"] for entry in first["strategies"]] == ["power-of-two", "ring"]
    for one, two in zip(first["strategies"], again["strategies"], strict=True):
        assert one["nodes"] == two["nodes"]
        assert one["latency"] == two["latency"]
    assert first["workload"]["zipf"] == 0.0


def test_a_count_of_nodes_and_a_rate() -> None:
    """--nodes N gives N speed-1 nodes; --rate sets the arrivals (offered load = rate / N)."""
    document = simulate_json("--nodes", "4", "--rate", "2", "--strategies", "random", *SMALL)
    assert [node["name"] for node in document["nodes"]] == [f"node-{i}" for i in range(1, 5)]
    assert document["workload"]["rate"] == pytest.approx(2.0, rel=0.03)
    assert document["workload"]["offered_load"] == pytest.approx(0.5, rel=0.03)


def test_a_trace_is_replayed_exactly(tmp_path: Path) -> None:
    """A D/D/1 trace (one a second, 2 units of work, one speed-1 node) gives the exact
    latencies 2, 3, ..., 11; its keys are the trace's, placed by the ring."""
    lines = ["# time key work", *(f"{t} user:{t % 3} 2" for t in range(10)), ""]
    trace = tmp_path / "trace.txt"
    trace.write_text("\n".join(lines))
    document = simulate_json("--trace", str(trace), "--nodes", "only", "--strategies", "ring")
    assert document["workload"]["requests"] == 10
    assert document["workload"]["keys"] == 3
    assert document["workload"]["source"] == "trace"
    latency = document["strategies"][0]["latency"]
    assert latency["max"] == 11.0
    assert latency["mean"] == pytest.approx(6.5)
    stdin = simulate_json(
        "--trace",
        "-",
        "--nodes",
        "a=2,b=1",
        "--strategies",
        "ring",
        stdin="\n".join(lines).encode(),
    )
    ring = placement("ring", {"a": 2.0, "b": 1.0})
    served = {node["name"]: node["served"] for node in stdin["strategies"][0]["nodes"]}
    expected = {"a": 0, "b": 0}
    for t in range(10):
        expected[ring.get_node(f"user:{t % 3}")] += 1
    assert served == expected


def test_a_trace_without_work_draws_it(tmp_path: Path) -> None:
    """A trace of times and keys only takes its work from --service."""
    trace = tmp_path / "trace.txt"
    trace.write_text("".join(f"{t * 0.5}\tk{t % 5}\n" for t in range(100)))
    document = simulate_json(
        "--trace", str(trace), "--service", "deterministic", "--strategies", "round-robin"
    )
    assert document["workload"]["service"] == "deterministic"
    nodes = document["strategies"][0]["nodes"]
    assert [node["served"] for node in nodes] == [17, 17, 17, 17, 16, 16]
    assert [node["busy"] for node in nodes] == [17 / 4, 17 / 4, 17 / 2, 17 / 2, 16, 16]
    text = run_checked("simulate", "--trace", str(trace), "--strategies", "random").text
    assert f"100 requests from trace {trace} (5 keys, exponential work" in text
    assert "; seed 1)" in text


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"0 a\nnan b\n", "line 2: time 'nan' is not a finite number"),
        (b"0 a\ninf b\n", "line 2: time 'inf' is not a finite number"),
        (b"0 a\n1e400 b\n", "is not a finite number"),
        (b"0 a\n-1 b\n", "line 2: time -1 must be from 0"),
        (b"0 a\n1e13 b\n", "must be from 0 and at most 1e+12"),
        (b"5 a\n3 b\n", "line 2: time 3 is earlier than the line before (5)"),
        (b"0 a\n1 b \x00\n", "line 2: a NUL byte"),
        (b"0 a\n1 \xff\xfe\n", "line 2: not UTF-8 text"),
        (b"0 a 1\n1 b\n", "line 2: give the work on every line or on none"),
        (b"0 a 0\n1 b 1\n", "line 1: work 0 must be above 0"),
        (b"0 a -2\n1 b 1\n", "work -2 must be above 0"),
        (b"0 a nan\n1 b 1\n", "work 'nan' is not a finite number"),
        (b"0\n", "line 1: expected TIME KEY [WORK], got 1 field"),
        (b"0 a 1 2\n", "got 4 fields"),
        (b"zero a\n", "time 'zero' is not a number"),
        (b"1" * 100 + b" a\n", "too long to be a number"),
        (b"# only a comment\n\n", "no arrivals"),
        (b"", "no arrivals"),
        (b"3 a\n3 b\n", "every arrival is at the same time"),
    ],
)
def test_hostile_traces_are_one_line_usage_errors(
    tmp_path: Path, content: bytes, message: str
) -> None:
    """A trace with NaN, infinity, negative, huge or unsorted times, binary bytes, bad work
    or the wrong fields is refused in one line naming the line, exit 2."""
    trace = tmp_path / "trace.txt"
    trace.write_bytes(content)
    result = run_checked("simulate", "--trace", str(trace))
    assert result.status == 2
    assert result.stderr.startswith("hashring: error: --trace ")
    assert message in result.stderr
    assert result.stderr.count("\n") == 1
    assert result.stdout == b""


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--load", "0.5", "--rate", "3"), "not allowed with argument"),
        (("--trace", "t.txt", "--load", "0.5"), "not allowed with argument"),
        (("--trace", "/nonexistent/t.txt"), "--trace /nonexistent/t.txt: no such file"),
        (("--trace", "/"), "is a folder"),
        (("--trace", "/dev/zero"), "line 1: a NUL byte: a trace is text, not a binary file"),
        (("--epsilon", "1e7"), "--epsilon 1e+07: at most 1e+06"),
        (("--nodes", "fast=4,slow=0"), "speed must be a number from 1e-06 to 1e+06"),
        (("--nodes", "fast=4,slow=nan"), "speed must be a number"),
        (("--nodes", "fast=x"), "speed 'x' is not a number"),
        (("--nodes", "a,a"), "node 'a' is named twice"),
        (("--nodes", "a,,b"), "empty node name"),
        (("--nodes", "1001"), "give 1 to 1,000 nodes"),
        (("--nodes", "0"), "give 1 to 1,000 nodes"),
        (("--strategies", "ring,fastest"), "unknown strategy 'fastest'"),
        (("--nodes", "a=1e-6,b=1e6"), "--nodes: ring cannot take these speeds: the ring would"),
        (("--strategies", "ring,ring"), "named twice"),
        (("--zipf", "-1"), "must be a number from 0 to 100"),
        (("--zipf", "nan"), "must be a number from 0 to 100"),
        (("--load", "nan"), "must be a positive number"),
        (("--load", "1e308"), "--load 1e+308: at most 100"),
        (("--rate", "1e-9"), "span more than"),
        (("--rate", "1e9"), "--rate 1e+09: more than 100 times what the nodes can serve"),
        (("--requests", "5000001"), "at most 5,000,000"),
        (("--requests", "1e308"), "--requests 1e+308: at most 5,000,000"),
        (("--requests", "0"), "must be at least 1"),
        (("--keys", "1e30"), "at most 1,000,000 keys"),
        (("--keys", "1000001"), "at most 1,000,000 keys"),
        (("--seed", "-3"), "is not an integer from 0"),
        (("--seed", "1e19"), "must be below 2**63"),
        (("--plot", "out.jpg"), "the plot is a PNG file"),
        (("--plot", "/nonexistent/out.png"), "no such folder"),
    ],
)
def test_bad_flags_are_one_line_usage_errors(args: tuple[str, ...], message: str) -> None:
    """Contradictory or out-of-bounds flags: one line on stderr, exit 2, nothing simulated."""
    result = run_checked("simulate", *args)
    assert result.status == 2
    assert result.stderr.startswith("hashring: error: ")
    assert message in result.stderr, result.stderr
    assert result.stderr.count("\n") == 1


@pytest.mark.parametrize(
    "flag",
    [("--requests", "10"), ("--keys", "10"), ("--zipf", "1"), ("--service", "deterministic")],
)
def test_trace_refuses_flags_it_overrides(tmp_path: Path, flag: tuple[str, str]) -> None:
    """Flags describing Poisson arrivals (and --service when the trace gives work) do not
    apply to a trace."""
    trace = tmp_path / "trace.txt"
    trace.write_text("0 a 1\n1 b 1\n")
    result = run_checked("simulate", "--trace", str(trace), *flag)
    assert result.status == 2
    assert "does not apply" in result.stderr


def test_node_names_are_escaped_in_text(tmp_path: Path) -> None:
    """A node name with a terminal escape is printed escaped in text, exact in JSON."""
    args = ("--nodes", "evil\x1b[2J=2,ok=1", "--strategies", "ring", *SMALL)
    text = run_checked("simulate", *args).text
    assert "\x1b" not in text
    assert "evil\\x1b[2J" in text
    document = simulate_json(*args)
    assert document["nodes"][0]["name"] == "evil\x1b[2J"


def test_plot_writes_a_png(tmp_path: Path) -> None:
    """--plot FILE.png writes a PNG of the figures."""
    path = tmp_path / "simulate.png"
    args = ("--requests", "3000", "--strategies", "ring,round-robin,least-loaded")
    result = run_checked("simulate", *args, "--plot", str(path))
    assert result.status == 0, result.stderr
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert path.stat().st_size > 20_000


def test_the_readme_shows_the_default_run() -> None:
    """The output pasted in the README is what the default `hashring simulate` prints."""
    found = re.search(
        r"<!-- simulate-output -->\n```text\n(.*?)```", README.read_text("utf-8"), re.DOTALL
    )
    assert found, "README has no <!-- simulate-output --> block"
    result = run_checked("simulate")
    assert result.status == 0, result.stderr
    assert result.text == found.group(1)
