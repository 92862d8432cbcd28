"""``hashring report`` at scale: keys streamed in chunks give exactly the one-shot figures.

Every figure of a chunked analysis (every from->to cell, per-node load, summary, movement) is
compared with a Counter over owners from placements built directly with the library's classes
(``get_node`` per key, not the batch path under test), and with the one-shot analysis, for
every algorithm, weighted and unweighted (jump takes no weights), with hostile chunkings:
one-key chunks, empty chunks, random sizes. Keys files are split across 1 MiB blocks at the
worst places; memory is checked not to grow with the number of keys.
"""

from __future__ import annotations

import json
import random
import tracemalloc
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from cli_runs import run_main

from hashring import (
    ALGORITHMS,
    HashRing,
    InvalidWeightError,
    JumpHash,
    Key,
    Maglev,
    Placement,
    Rebalance,
    Rendezvous,
    rebalance,
)
from hashring._analysis import rebalance_stream
from hashring._pair_counts import DENSE_CELLS, PairCounts
from hashring._topology.config import NodeSpec
from hashring.cli._common import build_topology
from hashring.cli._sources import (
    _CHUNK,
    MAX_KEY_BYTES,
    keys_file_stream,
    list_stream,
    read_keys_file,
    synthetic_keys,
    synthetic_range,
    synthetic_stream,
)
from hashring.cli.report import build_report

CLASSES: dict[str, Any] = {
    "ring": HashRing,
    "maglev": Maglev,
    "rendezvous": Rendezvous,
    "jump": JumpHash,
}
KEYS: list[Key] = [f"user:{i}" for i in range(2_500)] + [f"b{i}".encode() for i in range(500)]


def weights(weighted: bool, count: int = 7) -> dict[str, float]:
    return {f"node-{i}": (1.0 + i % 3 if weighted else 1.0) for i in range(1, count + 1)}


def changes(weighted: bool) -> dict[str, tuple[dict[str, float], dict[str, float]]]:
    """name -> (weights before, weights after)."""
    base = weights(weighted)
    grown = {**base, "node-8": 2.0 if weighted else 1.0}
    shrunk = {name: w for name, w in base.items() if name != "node-3"}
    both = {**shrunk, "node-9": 1.0}
    out = {"add": (base, grown), "remove": (base, shrunk), "add_and_remove": (base, both)}
    if weighted:
        out["reweight"] = (base, {**base, "node-2": 3.5})
    return out


CASES = [
    (algorithm, weighted, change)
    for algorithm in ALGORITHMS
    for weighted in (False, True)
    if not (algorithm == "jump" and weighted)
    for change in changes(weighted)
]


def build(algorithm: str, node_weights: Mapping[str, float]) -> Placement:
    placement: Placement = CLASSES[algorithm](dict(node_weights))
    return placement


def direct_cells(keys: Sequence[Key], before: Placement, after: Placement) -> Counter[Any]:
    """The independent count: one get_node per key on each placement."""
    return Counter((before.get_node(key), after.get_node(key)) for key in keys)


def figures(result: Rebalance) -> dict[str, Any]:
    """Every figure of a result, as plain values (exact floats, cells in row-major order)."""
    return {
        "keys": result.keys,
        "cells": list(result.cells().items()),
        "arrays": (
            result.cell_rows.tolist(),
            result.cell_columns.tolist(),
            result.cell_keys.tolist(),
        ),
        "before": result.before,
        "after": result.after,
        "moved": result.moved,
        "stayed": result.stayed,
        "moved_pairs": list(result.moved_pairs().items()),
        "matrix": result.matrix.tolist(),
        "ideal": result.ideal_fraction,
    }


def hostile_chunkings(keys: Sequence[Key], seed: int) -> dict[str, list[Sequence[Key]]]:
    rng = random.Random(seed)
    sizes: list[Sequence[Key]] = []
    start = 0
    while start < len(keys):
        size = rng.choice([0, 0, 1, 2, 3, 17, 64, 500, 1_500])
        sizes.append(keys[start : start + size])
        start += size
    ones: list[Sequence[Key]] = []
    for key in keys:
        ones += [[], [key], []]
    return {
        "one_chunk": [keys],
        "one_key_chunks_between_empty_ones": ones,
        "random_sizes_with_empty_ones": sizes,
        "empty_chunks_around": [[], [], *[keys[i : i + 999] for i in range(0, len(keys), 999)], []],
    }


def check_against_counter(result: Rebalance, expected: Counter[Any], keys: int) -> None:
    """Every figure of ``result`` against the Counter of (owner before, owner after)."""
    assert result.keys == keys == sum(expected.values())
    assert result.cells() == {pair: expected[pair] for pair in sorted(expected)}
    moved = {pair: n for pair, n in expected.items() if pair[0] != pair[1]}
    assert result.moved == sum(moved.values())
    assert result.stayed == keys - result.moved
    assert result.moved_pairs() == dict(sorted(moved.items(), key=lambda i: (-i[1], i[0])))
    for side, position in ((result.before, 0), (result.after, 1)):
        loads = Counter(pair[position] for pair in expected.elements())
        assert {n.name: n.keys for n in side.nodes} == {n.name: loads[n.name] for n in side.nodes}
        assert sum(n.keys for n in side.nodes) == keys
        assert side.summary.max == max(loads[n.name] for n in side.nodes)
        assert side.summary.min == min(loads[n.name] for n in side.nodes)
        assert side.summary.mean == pytest.approx(keys / len(side.nodes))
        for node in side.nodes:
            assert node.share == loads[node.name] / keys


@pytest.mark.parametrize(("algorithm", "weighted", "change"), CASES)
def test_chunked_analysis_equals_one_shot_and_a_direct_count(
    algorithm: str, weighted: bool, change: str
) -> None:
    """Chunks of every size (one key, empty, random) give exactly the one-shot figures, and
    both match a Counter over get_node on placements built directly."""
    weights_before, weights_after = changes(weighted)[change]
    before, after = build(algorithm, weights_before), build(algorithm, weights_after)
    expected = direct_cells(KEYS, before, after)
    one_shot = rebalance(KEYS, before, after)
    check_against_counter(one_shot, expected, len(KEYS))
    want = figures(one_shot)
    for name, chunks in hostile_chunkings(KEYS, seed=len(CASES)).items():
        assert figures(rebalance_stream(chunks, before, after)) == want, name
    lazily = (KEYS[i : i + 333] for i in range(0, len(KEYS), 333))  # a generator, read once
    assert figures(rebalance_stream(lazily, before, after)) == want


def test_jump_takes_no_weights() -> None:
    """Why jump has no weighted case above: its constructor refuses weights."""
    with pytest.raises(InvalidWeightError):
        JumpHash({"a": 1.0, "b": 2.0})


@pytest.mark.parametrize("merge_cells", [1, 3, 50, 1 << 20])
@pytest.mark.parametrize("weighted", [False, True])
def test_sparse_counts_equal_a_counter_however_chunks_merge(
    merge_cells: int, weighted: bool
) -> None:
    """The sparse cells (forced with dense_cells=0, folded after 1 to 2**20 waiting cells)
    equal a Counter of the pairs, and the dense counts (bincount for long chunks, add.at for
    short ones) equal it too."""
    before = build("maglev", weights(weighted, 40))
    after = build("maglev", {**weights(weighted, 37), "x": 1.5, "y": 1.0})
    expected = direct_cells(KEYS, before, after)
    from_nodes, to_nodes = sorted(dict(before.nodes)), sorted(dict(after.nodes))
    for dense_cells in (0, DENSE_CELLS):
        for chunks in hostile_chunkings(KEYS, seed=merge_cells).values():
            counts = PairCounts(
                from_nodes, to_nodes, dense_cells=dense_cells, merge_cells=merge_cells
            )
            for chunk in chunks:
                counts.add(before.get_node_many(chunk), after.get_node_many(chunk))
            counts._check()
            rows, columns, cells = counts.cells()
            got = {
                (from_nodes[i], to_nodes[j]): n
                for i, j, n in zip(rows.tolist(), columns.tolist(), cells.tolist(), strict=True)
            }
            assert list(got) == sorted(got)  # row-major order
            assert got == dict(expected)
            assert counts.keys == len(KEYS)


def test_a_fleet_above_the_dense_bound_streams_to_the_one_shot_cells() -> None:
    """1,100 -> 1,100 nodes (over DENSE_CELLS pairs, so sparse): hostile chunks, same cells."""
    names = [f"n{i}" for i in range(1_100)]
    before = HashRing(names, vnodes=10)
    after = HashRing([*names[1:], "new"], vnodes=10)
    assert len(names) ** 2 > DENSE_CELLS
    keys = [f"k{i}" for i in range(20_000)]
    want = figures(rebalance(keys, before, after))
    assert want["cells"] == sorted(direct_cells(keys, before, after).items())
    for chunks in hostile_chunkings(keys, seed=7).values():
        got = figures(rebalance_stream(chunks, before, after))
        assert got["cells"] == want["cells"]
        assert got["arrays"] == want["arrays"]
        assert (got["before"], got["after"], got["moved"]) == (
            want["before"],
            want["after"],
            want["moved"],
        )


def test_counts_refuse_owners_that_do_not_pair_up() -> None:
    """Owner lists of different lengths fail loudly rather than count a partial chunk."""
    counts = PairCounts(["a"], ["a", "b"])
    with pytest.raises(ValueError, match="one of each per key"):
        counts.add(["a", "a"], ["b"])
    ring = HashRing(["a"])
    with pytest.raises(ValueError, match="one per key"):
        rebalance(["k1", "k2"], ring, ring, before_owners=["a"], after_owners=["a"])


# ------------------------------------------------------------------------ key sources


def test_synthetic_keys_in_chunks_are_the_same_keys() -> None:
    """synthetic_range (a prefix per ten keys) equals the f-string keys for every range,
    and streams account for every key once."""
    for start in range(0, 125):
        for stop in range(start, 260):
            assert synthetic_range(start, stop) == [f"key:{i}" for i in range(start, stop)]
    for start, stop in ((99_995, 100_013), (131_071, 262_145), (10**9 - 3, 10**9 + 12)):
        assert synthetic_range(start, stop) == [f"key:{i}" for i in range(start, stop)]
    for chunk in (1, 7, 10, 1_000, 1 << 17):
        stream = synthetic_stream(3_001, chunk)
        parts = list(stream.chunks)
        assert [key for keys, _ in parts for key in keys] == synthetic_keys(3_001)
        assert sum(step for _, step in parts) == stream.total == 3_001
        assert stream.unit == "key"
        assert all(len(keys) <= chunk for keys, _ in parts)
    listed = list_stream(KEYS, 7)
    parts = list(listed.chunks)
    assert [key for keys, _ in parts for key in keys] == KEYS
    assert sum(step for _, step in parts) == listed.total == len(KEYS)


def hostile_file() -> bytes:
    """Lines split across the 1 MiB read blocks at the worst places: a CRLF torn between two
    blocks, a newline as a block's last byte and first byte, a line of exactly MAX_KEY_BYTES
    spanning a boundary, runs of empty lines, a lone CR, no newline at the end."""
    out = bytearray()

    def fill_to(offset: int) -> None:
        number = 0
        while len(out) < offset - 40:
            out.extend(b"key-%d\n" % number)
            number += 1
        out.extend(b"x" * (offset - len(out)))

    fill_to(_CHUNK - 1)
    out.extend(b"\r\n")  # CR ends block 1, LF starts block 2
    out.extend(b"\n\n\r\n")
    fill_to(2 * _CHUNK - 1)
    out.extend(b"\n")  # the last byte of block 2
    out.extend(b"\n")  # the first byte of block 3
    out.extend(b"y" * MAX_KEY_BYTES + b"\n")  # spans blocks 3 and 4, exactly at the bound
    out.extend(b"a\rb\r\n\r\n")
    fill_to(5 * _CHUNK + 100)
    out.extend(b"last-without-newline")
    return bytes(out)


def test_a_keys_file_read_in_blocks_gives_the_keys_of_one_read(tmp_path: Path) -> None:
    """Block by block, the keys are those of splitlines() over the whole file; the progress
    counts its bytes to its size; a line past the bound is refused even mid-file."""
    data = hostile_file()
    path = tmp_path / "keys.txt"
    path.write_bytes(data)
    expected = [line for line in data.splitlines() if line]
    assert read_keys_file(str(path)) == expected
    stream = keys_file_stream(str(path))
    parts = list(stream.chunks)
    assert stream.unit == "B"
    assert stream.total == len(data)
    assert sum(step for _, step in parts) == len(data)  # the bar ends at the file's size
    assert len(parts) >= 5  # read in blocks, not at once
    too_long = tmp_path / "long.txt"
    too_long.write_bytes(b"a\n" * 300_000 + b"z" * (MAX_KEY_BYTES + 1) + b"\nb\n")
    with pytest.raises(Exception, match="longer than 1 MiB"):
        read_keys_file(str(too_long))


def test_report_of_a_streamed_keys_file_and_stdin_matches_a_direct_count(tmp_path: Path) -> None:
    """The command on a keys file (blocks) and on stdin (keys counted as read) gives every
    cell of a Counter over placements built directly."""
    data = hostile_file()
    keys: list[Key] = [line for line in data.splitlines() if line]
    path = tmp_path / "keys.txt"
    path.write_bytes(data)
    names = ["node-1", "node-2", "node-3"]
    expected = direct_cells(keys, HashRing(names), HashRing([*names, "node-4"]))
    for source, stdin in ((str(path), b""), ("-", data)):
        run = run_main(
            "report", "--nodes", "3", "--keys-file", source, "--format", "json", stdin=stdin
        )
        assert run.status == 0, run.stderr
        document = json.loads(run.text)
        assert document["keys"]["count"] == len(keys)
        cells = {
            (document["matrix"]["from"][i], document["matrix"]["to"][j]): n
            for i, j, n in document["matrix"]["cells"]
        }
        assert cells == dict(expected)


@pytest.mark.parametrize(
    ("algorithm", "weighted"),
    [(a, w) for a in ALGORITHMS for w in (False, True) if not (a == "jump" and w)],
)
def test_report_with_synthetic_keys_matches_a_direct_count(algorithm: str, weighted: bool) -> None:
    """``report --keys N`` (keys made and placed chunk by chunk) against a Counter over the
    same keys on placements built directly (jump takes no weights)."""
    added = "node-6=2.5" if weighted else "node-6"
    run = run_main(
        "report", "--nodes", "5", "--add", added, "--algorithm", algorithm,
        "--keys", "4000", "--format", "json",
    )  # fmt: skip
    assert run.status == 0, run.stderr
    document = json.loads(run.text)
    names = {f"node-{i}": 1.0 for i in range(1, 6)}
    before = build(algorithm, names)
    after = build(algorithm, {**names, "node-6": 2.5 if weighted else 1.0})
    expected = direct_cells(synthetic_keys(4_000), before, after)
    cells = {
        (document["matrix"]["from"][i], document["matrix"]["to"][j]): n
        for i, j, n in document["matrix"]["cells"]
    }
    assert cells == dict(expected)
    assert document["movement"]["moved"] == sum(n for (b, a), n in expected.items() if b != a)
    loads = Counter(a for (_, a), n in expected.items() for _ in range(n))
    assert {n["name"]: n["keys"] for n in document["after"]["nodes"]} == dict(loads)


def test_rendezvous_refuses_a_too_large_keys_file_before_placing_any(tmp_path: Path) -> None:
    """A regular file's keys are counted first: the refusal is immediate and one line."""
    path = tmp_path / "keys.txt"
    path.write_bytes(b"".join(b"k%d\n\n" % i for i in range(500_001)))
    run = run_main(
        "report", "--algorithm", "rendezvous", "--nodes", "10000", "--keys-file", str(path)
    )
    assert run.status == 2
    assert "5,000,000,000" in run.stderr
    assert "Traceback" not in run.stderr
    assert run.seconds < 30


def test_memory_does_not_grow_with_the_number_of_keys() -> None:
    """Ten times the keys, streamed, allocate the same peak (one chunk + counts)."""
    names = {f"node-{i}": 1.0 for i in range(1, 21)}
    topology_b = build_topology({n: NodeSpec(n, None) for n in names}, {"algorithm": "maglev"}, "b")
    grown = {n: NodeSpec(n, None) for n in [*names, "node-21"]}
    topology_a = build_topology(grown, {"algorithm": "maglev"}, "a")
    build_report(synthetic_stream(1_000), topology_b, topology_a)  # imports and caches warm
    peaks = []
    for count in (40_000, 400_000):
        tracemalloc.start()
        try:
            result = build_report(synthetic_stream(count, 1 << 12), topology_b, topology_a)
            peaks.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
        assert result.keys == count
    # Measured: 3.5 MiB both times (both placements' tables, one chunk); the keys and owners
    # of 400,000 keys held at once would take over 25 MiB.
    assert peaks[1] < 1.1 * peaks[0] + (1 << 18), [p / 2**20 for p in peaks]
