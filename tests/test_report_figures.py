"""The report's headline figures, weighted summaries, node order and plot, each checked
against an independent computation: owners from placements built directly with the
library's placement classes, counted with Counter, statistics from the statistics module.

Necessary moves are recomputed here from the weights alone: a key moving from a node whose
fair share shrank (or that was removed) to one whose fair share grew (or that was added).
"""

from __future__ import annotations

import json
import math
import re
import statistics
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
from cli_runs import CliRun, run_checked

from hashring import HashRing, JumpHash, Maglev, Rendezvous
from hashring._analysis import ideal_band, rebalance
from hashring.cli._plot import change_title, plot_report
from hashring.cli._report_output import natural_key, natural_sorted

KEYS = 20_000
Weights = dict[str, float]


def cli(*args: str) -> CliRun:
    """Run ``hashring ARGS`` in this process; it must succeed without a traceback."""
    result = run_checked(*args)
    assert result.status == 0, (result.text, result.stderr)
    return result


def report(*args: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(cli("report", "--format", "json", *args).text)
    return document


def nodes(count: int) -> Weights:
    return {f"node-{i}": 1.0 for i in range(1, count + 1)}


def build(algorithm: str, weights: Weights) -> Any:
    """A placement built directly, as the CLI's quick flags describe it."""
    if algorithm == "ring":
        return HashRing(weights)
    if algorithm == "maglev":
        return Maglev(weights)
    if algorithm == "rendezvous":
        return Rendezvous(weights)
    raise AssertionError(algorithm)


def jump_pair(before: list[str], remove: list[str], add: list[str]) -> tuple[Any, Any]:
    """Jump's before and after: the change applied to the live placement (its memento)."""
    after = JumpHash(before)
    for name in remove:
        after.remove_node(name)
    for name in add:
        after.add_node(name)
    return JumpHash(before), after


def shares(weights: Mapping[str, float]) -> dict[str, float]:
    total = math.fsum(weights.values())
    return {name: weight / total for name, weight in weights.items()}


def independent(
    keys: list[str], before: Any, after: Any, w_before: Weights, w_after: Weights
) -> dict[str, Any]:
    """Every headline figure, computed from owners placed one key at a time."""
    owners = [(before.get_node(key), after.get_node(key)) for key in keys]
    moves = Counter(pair for pair in owners if pair[0] != pair[1])
    s_b, s_a = shares(w_before), shares(w_after)

    def trend(name: str) -> int:
        old, new = s_b.get(name, 0.0), s_a.get(name, 0.0)
        return 0 if math.isclose(old, new, rel_tol=1e-9) else (1 if new > old else -1)

    necessary = {pair: trend(pair[0]) < 0 < trend(pair[1]) for pair in moves}
    surviving = [p for p in moves if p[0] in w_after and p[1] in w_before]
    loads = [Counter(o[side] for o in owners) for side in (0, 1)]
    ideal = math.fsum(abs(s_b.get(n, 0) - s_a.get(n, 0)) for n in {*s_b, *s_a}) / 2
    summaries = []
    for load, fair in zip(loads, (s_b, s_a), strict=True):
        ratios = [load[name] / len(keys) / fair[name] for name in sorted(fair)]
        summaries.append(
            {
                "peak_to_fair": max(ratios),
                "cv_of_fair": statistics.pstdev(ratios) / statistics.fmean(ratios),
                "peak_to_mean": max(load.values()) / statistics.fmean(load[n] for n in fair),
            }
        )
    return {
        "moved": sum(moves.values()),
        "pairs": moves,
        "necessary_pairs": necessary,
        "necessary": sum(n for pair, n in moves.items() if necessary[pair]),
        "between_surviving": sum(moves[p] for p in surviving),
        "ideal": ideal,
        "loads": loads,
        "summaries": summaries,
    }


def check(doc: dict[str, Any], expected: dict[str, Any]) -> None:
    """The JSON document's movement and summaries equal the independent figures."""
    movement = doc["movement"]
    count = doc["keys"]["count"]
    assert movement["moved"] == expected["moved"]
    assert movement["necessary"] == expected["necessary"]
    assert movement["excess"] == expected["moved"] - expected["necessary"]
    assert movement["necessary_fraction"] == pytest.approx(expected["necessary"] / count)
    assert movement["excess_fraction"] == pytest.approx(movement["excess"] / count)
    assert movement["between_surviving"] == expected["between_surviving"]
    assert movement["ideal_fraction"] == pytest.approx(expected["ideal"])
    p = expected["ideal"]
    half = statistics.NormalDist().inv_cdf(0.975) * math.sqrt(p * (1 - p) / count)
    band = movement["ideal_band"]
    assert band["confidence"] == 0.95
    assert band["low"] == pytest.approx(max(0.0, p - half))
    assert band["high"] == pytest.approx(min(1.0, p + half))
    flags = {(q["from"], q["to"]): q["necessary"] for q in movement["pairs"]}
    assert flags == expected["necessary_pairs"]
    for side, summary in zip(("before", "after"), expected["summaries"], strict=True):
        got = doc[side]["summary"]
        assert got["peak_to_fair"] == pytest.approx(summary["peak_to_fair"])
        assert got["cv_of_fair"] == pytest.approx(summary["cv_of_fair"])
        assert got["peak_to_mean"] == pytest.approx(summary["peak_to_mean"])


KEY_LIST = [f"key:{i}" for i in range(KEYS)]  # the report's synthetic keys

CHANGES: dict[str, tuple[list[str], Weights, Weights]] = {
    # name: (change flags, weights before, weights after)
    "remove one of 10": (
        ["--nodes", "10", "--remove", "node-3"],
        nodes(10),
        {n: w for n, w in nodes(10).items() if n != "node-3"},
    ),
    "add one to 5": (["--nodes", "5", "--add", "node-6"], nodes(5), nodes(6)),
    "add d=2, weight a=0.5": (
        ["--nodes", "a,b,c", "--add", "d=2", "--weight", "a=0.5"],
        {"a": 1.0, "b": 1.0, "c": 1.0},
        {"a": 0.5, "b": 1.0, "c": 1.0, "d": 2.0},
    ),
    "reweight one": (
        ["--nodes", "4", "--weight", "node-2=3"],
        nodes(4),
        {**nodes(4), "node-2": 3.0},
    ),
    "remove one, add a heavy one": (
        ["--nodes", "6", "--remove", "node-1", "--add", "big=2.5"],
        nodes(6),
        {**{n: w for n, w in nodes(6).items() if n != "node-1"}, "big": 2.5},
    ),
}


@pytest.mark.parametrize("algorithm", ["ring", "maglev", "rendezvous"])
@pytest.mark.parametrize("change", list(CHANGES))
def test_figures_match_an_independent_computation(algorithm: str, change: str) -> None:
    """Moved, necessary, excess, between-survivors, ideal band, pair kinds and the weighted
    summaries equal a Counter over placements built directly (weighted and unweighted)."""
    flags, w_before, w_after = CHANGES[change]
    doc = report(*flags, "--algorithm", algorithm, "--keys", str(KEYS))
    before, after = build(algorithm, w_before), build(algorithm, w_after)
    check(doc, independent(KEY_LIST, before, after, w_before, w_after))


@pytest.mark.parametrize(
    ("flags", "remove", "add"),
    [
        (["--nodes", "10", "--remove", "node-3"], ["node-3"], []),
        (["--nodes", "5", "--add", "node-6"], [], ["node-6"]),
        (["--nodes", "6", "--remove", "node-2", "--add", "x"], ["node-2"], ["x"]),
    ],
)
def test_jump_figures_match_an_independent_computation(
    flags: list[str], remove: list[str], add: list[str]
) -> None:
    """Jump (no weights): the same figures against JumpHash changed directly."""
    doc = report(*flags, "--algorithm", "jump", "--keys", str(KEYS))
    names = [f"node-{i}" for i in range(1, int(flags[1]) + 1)]
    before, after = jump_pair(names, remove, add)
    expected = independent(KEY_LIST, before, after, dict(before.nodes), dict(after.nodes))
    check(doc, expected)
    assert doc["movement"]["excess"] == 0


@pytest.mark.parametrize("algorithm", ["ring", "maglev", "rendezvous", "jump"])
def test_removing_one_of_ten_is_judged_honestly(algorithm: str) -> None:
    """Remove one of 10: ring, rendezvous and jump move no excess key; every key the removed
    node held is necessary; no headline claims a placement beat the least possible."""
    args = ["--nodes", "10", "--remove", "node-3", "--algorithm", algorithm, "--keys", "200000"]
    doc = report(*args)
    movement = doc["movement"]
    removed = next(n for n in doc["before"]["nodes"] if n["name"] == "node-3")
    assert movement["necessary"] == removed["keys"]
    if algorithm == "maglev":
        assert movement["excess"] == movement["between_surviving"] > 0
    else:
        assert movement["excess"] == movement["between_surviving"] == 0
        assert movement["moved"] == removed["keys"]
    text = cli("report", *args).text
    assert "less than the least" not in text
    assert "x the ideal" not in text
    headline = [line.split(":")[0] for line in text.splitlines()[4:8]]
    assert headline == ["excess", "necessary", "moved", "ideal"]
    excess = movement["excess"]
    assert re.search(rf"excess: +{excess:,} keys = +{excess / 200_000:.2%}", text)
    assert f"{movement['between_surviving']:,} = " in text
    assert "between surviving nodes" in text
    assert "expected for a perfect placement (95% band 9.87%-10.13% for 200,000 keys)" in text
    assert "ideal:     10.00% expected" in text


def test_the_issue_ring_example_names_the_imbalance_not_excess() -> None:
    """The ring's 22,320 moved keys for removing node-3 are node-3's keys: all necessary, and
    the note above the band blames the removed node's load, not the movement."""
    text = cli("report", "--nodes", "10", "--remove", "node-3", "--keys", "200000").text
    assert "excess:         0 keys =  0.00%" in text
    assert "necessary: 22,320 keys = 11.16%" in text
    assert "necessary is above the band" in text


def test_small_fractions_keep_two_significant_digits() -> None:
    """Removing one of 2,000 nodes: the ideal 0.05% and its band are not rounded to 0.00%."""
    doc = report("--nodes", "2000", "--remove", "node-7", "--keys", "100000")
    text = cli("report", "--nodes", "2000", "--remove", "node-7", "--keys", "100000").text
    band = doc["movement"]["ideal_band"]
    assert "ideal:     0.050% expected" in text
    assert f"(95% band {band['low']:.3%}-{band['high']:.3%} for 100,000 keys)" in text
    necessary, moved = doc["movement"]["necessary"], doc["movement"]["moved"]
    assert f"necessary: {necessary:>{len(f'{moved:,}')},} keys" in text


def test_weighted_summary_leads_with_load_over_fair() -> None:
    """Unequal weights: the text shows peak-to-fair and CV of load/fair (independently
    computed) before the raw study figures, which stay; equal weights show the raw ones."""
    w_before, w_after = {"a": 1.0, "b": 1.0, "c": 1.0}, {"a": 0.5, "b": 1.0, "c": 1.0, "d": 2.0}
    flags = ["--nodes", "a,b,c", "--add", "d=2", "--weight", "a=0.5", "--keys", str(KEYS)]
    text = cli("report", *flags).text
    expected = independent(KEY_LIST, HashRing(w_before), HashRing(w_after), w_before, w_after)[
        "summaries"
    ]
    rows = {
        line.split("  ")[0]: line.split()[-2:]
        for line in text.splitlines()
        if line.startswith(("peak-to-fair", "CV of load/fair", "load factor", "mean load"))
    }
    for label, key in (("peak-to-fair", "peak_to_fair"), ("CV of load/fair", "cv_of_fair")):
        assert rows[label] == [f"{s[key]:.4f}" for s in expected]
    assert rows["load factor (peak-to-mean)"] == [f"{s['peak_to_mean']:.4f}" for s in expected]
    assert text.index("peak-to-fair") < text.index("mean load") < text.index("load factor")
    assert all(s["peak_to_fair"] < 1.15 for s in expected)  # every node near its fair share
    assert expected[1]["peak_to_mean"] > 1.7  # while the raw figure reads as skew
    plain = cli("report", "--nodes", "4", "--keys", "5000").text
    assert "peak-to-fair" not in plain
    assert "load factor (peak-to-mean)" in plain


def test_equal_weights_fair_figures_equal_the_raw_ones() -> None:
    """With equal weights peak-to-fair is peak-to-mean and CV of load/fair is the CV."""
    doc = report("--nodes", "7", "--keys", str(KEYS))
    for side in ("before", "after"):
        summary = doc[side]["summary"]
        assert summary["peak_to_fair"] == pytest.approx(summary["peak_to_mean"])
        assert summary["cv_of_fair"] == pytest.approx(summary["cv"])


def table_names(text: str) -> list[str]:
    """Node names in the text's per-node table, in printed order."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("load per node"))
    names = []
    for line in lines[start + 1 :]:
        if not line.strip():
            break
        first = line.split()[0]
        if first.startswith("node-"):
            names.append(first)
    return names


def test_nodes_sort_naturally_up_to_a_dozen() -> None:
    """node-2 before node-10 in the node table, the matrix and the CSV rows."""
    text = cli("report", "--nodes", "11", "--keys", "5000").text
    natural = [f"node-{i}" for i in range(1, 13)]
    assert table_names(text) == natural
    matrix_header = text.split("movement matrix")[1].splitlines()[1].split()
    assert matrix_header[3:] == natural
    csv_rows = cli("report", "--nodes", "11", "--keys", "5000", "--format", "csv").text
    assert [row.split(",")[0] for row in csv_rows.splitlines()[1:]] == natural
    assert natural_sorted(["n10", "n2", "n01", "n1", "b", "a10b", "a9c"]) == [
        "a9c",
        "a10b",
        "b",
        "n01",
        "n1",
        "n2",
        "n10",
    ]
    assert natural_key("x") < natural_key("x0")


def test_beyond_a_dozen_nodes_the_worst_come_first() -> None:
    """30 nodes: the table lists furthest-from-fair (after) first; --order name restores
    natural order, --order worst applies to small fleets too."""
    args = ["report", "--nodes", "30", "--remove", "node-7", "--keys", str(KEYS)]
    doc = report(*args[1:])
    deviation = {n["name"]: abs(n["deviation"]) for n in doc["after"]["nodes"]}
    deviation["node-7"] = abs(
        next(n["deviation"] for n in doc["before"]["nodes"] if n["name"] == "node-7")
    )
    worst = sorted(deviation, key=lambda n: (-deviation[n], natural_key(n)))
    text = cli(*args).text
    assert table_names(text) == worst
    assert "worst first" in text
    assert table_names(cli(*args, "--order", "name").text) == natural_sorted(deviation)
    small = ["report", "--nodes", "5", "--keys", "5000", "--order", "worst"]
    small_doc = report(*small[1:-2])
    small_dev = {n["name"]: abs(n["deviation"]) for n in small_doc["after"]["nodes"]}
    assert table_names(cli(*small).text) == sorted(small_dev, key=lambda n: -small_dev[n])


def test_ideal_band_is_the_binomial_spread() -> None:
    """The band is p +/- z*sqrt(p(1-p)/n); no keys give the ideal itself; bad input fails."""
    low, high = ideal_band(0.25, 10_000, 0.99)
    z = statistics.NormalDist().inv_cdf(0.995)
    assert (low, high) == pytest.approx((0.25 - z * 0.0043301, 0.25 + z * 0.0043301), abs=1e-6)
    assert ideal_band(0.0, 1000) == (0.0, 0.0)
    assert ideal_band(0.3, 0) == (0.3, 0.3)
    with pytest.raises(ValueError, match=r"confidence 1\.0 is not between 0 and 1"):
        ideal_band(0.5, 10, 1.0)
    with pytest.raises(ValueError, match=r"fraction 1\.5 is not between 0 and 1"):
        ideal_band(1.5, 10)


def test_rendezvous_removal_falls_in_the_band() -> None:
    """A placement that moves the least does land inside the band for its sample."""
    before = Rendezvous(nodes(10))
    after = Rendezvous({n: w for n, w in nodes(10).items() if n != "node-3"})
    result = rebalance([f"key:{i}" for i in range(200_000)], before, after)
    low, high = result.ideal_band()
    assert low <= result.moved_fraction <= high
    assert result.excess == 0


PLOTS: dict[str, tuple[Callable[[Weights], Any], Weights, Weights]] = {
    "3 unweighted": (HashRing, nodes(3), nodes(4)),
    "3 weighted": (HashRing, {"a": 1, "b": 1, "c": 1}, {"a": 0.5, "b": 1, "c": 1, "d": 2}),
    "30 unweighted": (Maglev, nodes(30), {n: 1 for n in nodes(30) if n != "node-7"}),
    "30 weighted": (
        HashRing,
        {n: 1 + i % 3 for i, n in enumerate(nodes(30))},
        {**{n: 1 + i % 3 for i, n in enumerate(nodes(30))}, "node-31": 3},
    ),
    "1000 unweighted": (HashRing, nodes(1000), nodes(1001)),
    "1000 weighted": (
        Maglev,
        {n: 1 + i % 4 for i, n in enumerate(nodes(1000))},
        {n: 1 + i % 4 for i, n in enumerate(nodes(1000)) if i % 100},
    ),
}


@pytest.mark.parametrize("case", list(PLOTS))
def test_plot_draws_3_30_and_1000_nodes(case: str, tmp_path: Path) -> None:
    """A PNG for every fleet size, weighted and unweighted, titled with the change."""
    pytest.importorskip("matplotlib")
    cls, w_before, w_after = PLOTS[case]
    keys = [f"key:{i}" for i in range(50_000)]
    result = rebalance(keys, cls(w_before), cls(w_after))
    path = tmp_path / "plot.png"
    plot_report(result, str(path))
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert 800 <= width <= 1800
    assert 800 <= height <= 1200
    title = change_title(result)
    removed = sorted(set(w_before) - set(w_after), key=natural_key)
    added = sorted(set(w_after) - set(w_before), key=natural_key)
    if 0 < len(removed) <= 3:
        assert f"remove {', '.join(removed)}" in title
    elif removed:
        assert f"remove {len(removed)} nodes" in title
    if added:
        assert f"add {added[0]}" in title
    owners = zip(cls(w_before).get_node_many(keys), cls(w_after).get_node_many(keys), strict=True)
    moved = sum(1 for old, new in owners if old != new)
    assert f"{moved / len(keys):.2%} of 50,000 keys moved" in title
    assert f"excess {(result.moved - result.necessary) / len(keys):.2%}" in title


def test_change_title_names_reweights() -> None:
    """Weight changes are named with old and new weights."""
    keys = [f"key:{i}" for i in range(1000)]
    result = rebalance(keys, HashRing({"a": 1, "b": 1}), HashRing({"a": 1, "b": 2, "c": 3}))
    assert change_title(result).startswith("add c=3; weight b 1->2: ")
