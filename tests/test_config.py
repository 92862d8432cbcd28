"""Topology files at the function level: hash_key_env, malformed TOML, and the sparse
movement analysis that lets a report describe a fleet of 100,000 nodes."""

from __future__ import annotations

import json
import time
import tracemalloc
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from hashring import (
    ConfigError,
    HashRing,
    JumpHash,
    Maglev,
    load_topology,
    parse_topology,
    placement,
    rebalance,
    transition,
)
from hashring._analysis import DENSE_CELLS
from hashring._topology.config import MAX_TOPOLOGY_BYTES, NodeSpec
from hashring.cli._common import build_topology
from hashring.cli.report import build_report, report_json

SECRET = "correct horse battery staple"
KEYS = [f"key:{i}" for i in range(5_000)]


def write(path: Path, content: str | bytes) -> Path:
    if isinstance(content, str):
        content = content.encode()
    path.write_bytes(content)
    return path


def keyed_file(tmp_path: Path, variable: str = "HASHRING_KEY", algorithm: str = "ring") -> Path:
    return write(
        tmp_path / "keyed.toml",
        f'[placement]\nalgorithm = "{algorithm}"\nhash_key_env = "{variable}"\n'
        '[nodes.a]\nurl = "redis://:pw@127.0.0.1:7001/0"\n[nodes.b]\n[nodes.c]\n',
    )


# ------------------------------------------------------------------------- hash_key_env


@pytest.mark.parametrize("algorithm", ["ring", "maglev", "rendezvous", "jump"])
def test_hash_key_env_keys_the_placement(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, algorithm: str
) -> None:
    """The variable's UTF-8 bytes are the placement's hash_key, for every algorithm."""
    monkeypatch.setenv("HASHRING_KEY", SECRET)
    topology = load_topology(keyed_file(tmp_path, algorithm=algorithm))
    assert topology.hash_key == SECRET.encode()
    assert topology.hash_key_env == "HASHRING_KEY"
    keyed = placement(algorithm, ["a", "b", "c"], hash_key=SECRET.encode())
    plain = placement(algorithm, ["a", "b", "c"])
    owners = topology.placement().get_node_many(KEYS)
    assert owners == keyed.get_node_many(KEYS)
    assert owners != plain.get_node_many(KEYS)


def test_hash_key_is_utf8_of_the_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Length is counted in UTF-8 bytes: eight 'é' are 16 bytes, enough."""
    monkeypatch.setenv("HASHRING_KEY", "\u00e9" * 8)
    assert load_topology(keyed_file(tmp_path)).hash_key == ("\u00e9" * 8).encode()


def test_the_secret_is_never_shown(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Not in the repr, the options, their JSON, nor the placement's repr."""
    monkeypatch.setenv("HASHRING_KEY", SECRET)
    topology = load_topology(keyed_file(tmp_path))
    for text in (
        repr(topology),
        str(topology),
        repr(topology.options()),
        json.dumps(topology.options()),
        repr(topology.placement()),
    ):
        assert SECRET not in text
        assert "pw@" not in text
    assert topology.options()["hash_key_env"] == "HASHRING_KEY"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (None, "is not set"),
        ("", "holds 0 bytes"),
        ("fifteen-bytes!!", "holds 15 bytes"),
        ("x" * 65, "holds 65 bytes"),
    ],
)
def test_a_bad_hash_key_names_the_variable_not_the_value(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str | None, message: str
) -> None:
    """Unset, too short or too long: a ConfigError naming the variable, never the value."""
    if value is None:
        monkeypatch.delenv("HASHRING_KEY", raising=False)
    else:
        monkeypatch.setenv("HASHRING_KEY", value)
    with pytest.raises(ConfigError, match=message) as caught:
        load_topology(keyed_file(tmp_path))
    assert "HASHRING_KEY" in str(caught.value)
    assert "16 to 64 bytes" in str(caught.value)
    if value:
        assert value not in str(caught.value)


@pytest.mark.parametrize(
    "document",
    [
        {"placement": {"hash_key": "0123456789abcdef0123"}, "nodes": {"a": {}}},
        {"hash_key": "0123456789abcdef0123", "nodes": {"a": {}}},
    ],
)
def test_a_literal_hash_key_is_refused(document: dict[str, object]) -> None:
    """A secret written in the file is refused, pointing at hash_key_env; it is not echoed."""
    with pytest.raises(ConfigError, match="hash_key_env") as caught:
        parse_topology(document, "t.toml")
    assert "0123456789abcdef0123" not in str(caught.value)


def test_hash_key_env_must_be_a_name() -> None:
    """An empty name, or one with '=', is not an environment variable."""
    for name in ("", "A=B"):
        with pytest.raises(ConfigError, match="not an environment variable name"):
            parse_topology({"placement": {"hash_key_env": name}, "nodes": {"a": {}}})
    with pytest.raises(ConfigError, match="must be a str"):
        parse_topology({"placement": {"hash_key_env": 1}, "nodes": {"a": {}}})


def test_transition_keeps_the_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Both sides of a keyed change are keyed; only the changed node's keys move (jump)."""
    monkeypatch.setenv("HASHRING_KEY", SECRET)
    before = load_topology(keyed_file(tmp_path, algorithm="jump"))
    after = parse_topology(
        {
            "placement": {"algorithm": "jump", "hash_key_env": "HASHRING_KEY"},
            "nodes": {"a": {}, "b": {}},
        }
    )
    old, new = transition(before, after)
    keyed = JumpHash(["a", "b", "c"], hash_key=SECRET.encode())
    assert old.get_node_many(KEYS) == keyed.get_node_many(KEYS)
    moved = {
        b for b, a in zip(old.get_node_many(KEYS), new.get_node_many(KEYS), strict=True) if b != a
    }
    assert moved == {"c"}


# -------------------------------------------------------------------- malformed TOML


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (bytes(range(256)) * 4, "not UTF-8 text"),
        ('[nodes.caf\u00e9]\nurl = "redis://h/0"\n'.encode("latin-1"), "byte 0xe9 at offset 10"),
        ("[nodes.a]\n".encode("utf-16"), "UTF-16"),
        (b"a = " + b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (b"a = " + b"{b = " * 100_000 + b"}" * 100_000, "nested too deeply"),
        (b"[nodes.a]\nweight = 1" + b"0" * 5000, "4300 digits"),
        (b"[nodes.a]\nweight = 1" + b"0" * 400, "positive finite number"),
        (b"[nodes.a]\nweight = nan", "positive finite number"),
        (b"[placement]\nvnodes = 1" + b"0" * 400 + b"\n[nodes.a]", "vnodes"),
        (b'[placement]\nalgorithm = "maglev"\ntable_size = 2147483647\n[nodes.a]', "table_size"),
        (b"[nodes.a]\nweight = 1e6\n[nodes.b]", "points"),
        (b"[nodes.a]\x00", "not valid TOML"),
        (b"", "no nodes"),
    ],
)
def test_malformed_files_are_config_errors_found_fast(
    tmp_path: Path, content: bytes, message: str
) -> None:
    """Binary, latin-1, UTF-16, deeply nested or out-of-bounds files: a ConfigError naming the
    file, in well under a second each."""
    path = write(tmp_path / "bad.toml", content)
    started = time.perf_counter()
    with pytest.raises(ConfigError, match=message) as caught:
        load_topology(path)
    assert time.perf_counter() - started < 5.0
    assert str(caught.value).startswith(str(path))
    assert "\n" not in str(caught.value)


def test_a_bom_is_skipped(tmp_path: Path) -> None:
    """A UTF-8 byte-order mark (Windows editors write one) does not make the file invalid."""
    path = write(tmp_path / "bom.toml", b"\xef\xbb\xbf[placement]\nvnodes = 40\n[nodes.a]\n")
    topology = load_topology(path)
    assert topology.vnodes == 40
    assert list(topology.nodes) == ["a"]


def test_an_endless_file_is_refused_at_the_size_bound() -> None:
    """/dev/zero is read up to MAX_TOPOLOGY_BYTES + 1 bytes, then refused."""
    started = time.perf_counter()
    with pytest.raises(ConfigError, match="larger than 64 MiB"):
        load_topology("/dev/zero")
    assert time.perf_counter() - started < 10.0
    assert MAX_TOPOLOGY_BYTES == 64 << 20


# ------------------------------------------------------------- sparse movement analysis


def test_rebalance_matches_a_direct_count_on_both_counting_paths() -> None:
    """Dense-array counting (small fleets) and sorting (large fleets) give the same cells as
    a Counter over the owners; the dense matrix property is rebuilt from them."""
    keys = [f"k{i}" for i in range(30_000)]
    for count in (5, 1_100):  # 6 * 5 pairs, and 1,100 * 1,101 > DENSE_CELLS pairs
        names = [f"n{i}" for i in range(count)]
        before = HashRing(names, vnodes=20)
        after = HashRing([*names, "new"], vnodes=20)
        after.remove_node("n1")
        result = rebalance(keys, before, after)
        owners = Counter(zip(before.get_node_many(keys), after.get_node_many(keys), strict=True))
        assert result.cells() == {pair: owners[pair] for pair in sorted(owners)}
        moved = {pair: n for pair, n in owners.items() if pair[0] != pair[1]}
        assert result.moved_pairs() == dict(sorted(moved.items(), key=lambda i: (-i[1], i[0])))
        assert result.moved == sum(moved.values())
        assert result.stayed + result.moved == len(keys)
        assert [n.keys for n in result.before.nodes] == [
            sum(v for (b, _), v in owners.items() if b == name) for name in result.from_nodes
        ]
        if count * (count + 1) <= DENSE_CELLS:
            matrix = result.matrix
            assert matrix.shape == (len(result.from_nodes), len(result.to_nodes))
            assert int(matrix.sum()) == len(keys)
            for (b, a), n in owners.items():
                assert matrix[result.from_nodes.index(b), result.to_nodes.index(a)] == n


def test_rebalance_of_100000_nodes_uses_memory_in_keys_not_nodes_squared() -> None:
    """100,000 -> 100,001 nodes (jump, cheap): the analysis allocates under 160 MiB (a dense
    from->to matrix would be 80 GB; measured: 72 MiB, mostly the per-node loads) and takes
    seconds."""
    names = [f"node-{i}" for i in range(100_000)]
    before = JumpHash(names)
    after = JumpHash(names)
    after.add_node("node-new")
    keys = [f"key:{i}" for i in range(200_000)]
    owners_b, owners_a = before.get_node_many(keys), after.get_node_many(keys)
    tracemalloc.start()
    started = time.perf_counter()
    try:
        result = rebalance(keys, before, after, before_owners=owners_b, after_owners=owners_a)
        pairs = result.moved_pairs()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    elapsed = time.perf_counter() - started
    assert peak < 160 * 2**20, f"peak {peak / 2**20:.0f} MiB"
    assert elapsed < 60.0
    assert len(result.to_nodes) == 100_001
    assert len(result.cell_keys) <= len(keys)
    assert int(result.cell_keys.sum()) == len(keys)
    expected = sum(1 for b, a in zip(owners_b, owners_a, strict=True) if b != a)
    assert result.moved == expected == sum(pairs.values())
    assert {target for _, target in pairs} <= {"node-new"}
    assert result.cell_keys.dtype == np.int64


def test_report_json_of_a_large_fleet_lists_cells_not_a_dense_matrix() -> None:
    """Above a million cells the JSON matrix is null and the non-empty cells are listed;
    small fleets keep the dense matrix, with the same cells."""
    names = [f"n{i}" for i in range(1_100)]
    before = build_topology({n: NodeSpec(n, None) for n in names}, {"algorithm": "jump"}, "b")
    grown = {n: NodeSpec(n, None) for n in [*names, "x"]}
    after = build_topology(grown, {"algorithm": "jump"}, "a")
    keys: list[str | bytes] = [f"k{i}" for i in range(20_000)]
    document = report_json(build_report(keys, before, after, live=True), before, after, "s")
    matrix = document["matrix"]
    assert matrix["keys"] is None
    assert sum(n for _, _, n in matrix["cells"]) == 20_000
    moved = {
        (matrix["from"][i], matrix["to"][j]): n
        for i, j, n in matrix["cells"]
        if matrix["from"][i] != matrix["to"][j]
    }
    assert moved == {(p["from"], p["to"]): p["keys"] for p in document["movement"]["pairs"]}
    small = build_topology({"a": NodeSpec("a", None)}, {}, "t")
    grown_small = build_topology({n: NodeSpec(n, None) for n in "ab"}, {}, "t2")
    tiny = report_json(build_report(keys[:100], small, grown_small), small, grown_small, "s")
    dense = [[0, 0]]
    for row, column, count in tiny["matrix"]["cells"]:
        dense[row][column] = count
    assert tiny["matrix"]["keys"] == dense
    assert sum(n for _, _, n in tiny["matrix"]["cells"]) == 100


def test_maglev_topology_from_config_still_works(tmp_path: Path) -> None:
    """A plain file (no hash key) builds as before."""
    path = write(tmp_path / "m.toml", '[placement]\nalgorithm = "maglev"\n[nodes.a]\n[nodes.b]\n')
    topology = load_topology(path)
    assert topology.hash_key is None
    assert topology.hash_key_env is None
    assert isinstance(topology.placement(), Maglev)


def test_each_placement_call_returns_an_independent_placement(tmp_path: Path) -> None:
    """The placement built to validate the file is handed out once; later calls build anew."""
    topology = load_topology(write(tmp_path / "t.toml", "[nodes.a]\n[nodes.b]\n"))
    first, second = topology.placement(), topology.placement()
    assert first is not second
    first.add_node("c")
    assert dict(second.nodes) == {"a": 1.0, "b": 1.0}
    assert dict(topology.placement().nodes) == {"a": 1.0, "b": 1.0}


@pytest.mark.parametrize(
    ("url_toml", "secrets"),
    [
        ('"redis://u:s3cr/3t@127.0.0.1:7001/0"', ["s3cr", "3t"]),
        ('"redis://u:hun#ter2@127.0.0.1:7001/0"', ["hun", "ter2"]),
        ('"redis://u:hun?ter2@127.0.0.1:7001/0"', ["hun", "ter2"]),
        ('"redis://user:[s3cr]@h/0"', ["s3cr"]),
        ('["redis://u:hunter2@h:1/0"]', ["hunter2"]),
        ("{ url = 'redis://u:hunter2@h:1/0' }", ["hunter2"]),
    ],
)
def test_config_errors_never_show_a_password(
    tmp_path: Path, url_toml: str, secrets: list[str]
) -> None:
    """A bad node URL is reported without any piece of its password, however it is bad."""
    path = write(tmp_path / "t.toml", f"[nodes.a]\nurl = {url_toml}\n")
    with pytest.raises(ConfigError) as info:
        load_topology(path)
    message = str(info.value)
    assert "nodes.a.url" in message
    for secret in secrets:
        assert secret not in message
