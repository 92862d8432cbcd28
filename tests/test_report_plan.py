"""``hashring report --sample-from``'s plan and ``migrate``'s dry-run plan, on real redis-servers.

Three servers hold keys on their owners under ``old.toml`` (n0..n2); ``new.toml`` adds n3 (a
fourth, empty server), for every algorithm, weighted and unweighted (jump takes no weights).
Every figure of the plan is compared with an independent computation: owners from the
library's placement classes built directly, ``DBSIZE``, ``MEMORY USAGE`` and ``PTTL`` read per
key straight from the servers, summed with a Counter. Sampling every key makes the plan
exact (its interval collapses); sampling a part must put the truth inside the interval.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from cli_runs import CliRun, run_checked
from redis_servers import RedisServer, RedisServerFactory

from hashring import HashRing, JumpHash, Maglev, Placement, Rendezvous

pytestmark = pytest.mark.redis

NAMES = ["n0", "n1", "n2", "n3"]
KEYS = 6000
CLASSES: dict[str, Any] = {
    "ring": HashRing,
    "maglev": Maglev,
    "rendezvous": Rendezvous,
    "jump": JumpHash,
}
CASES = [
    ("ring", False),
    ("ring", True),
    ("maglev", False),
    ("maglev", True),
    ("rendezvous", False),
    ("rendezvous", True),
    ("jump", False),
]
WEIGHTS = {"n0": 1.0, "n1": 2.0, "n2": 0.5, "n3": 1.5}


class Truth(NamedTuple):
    """The plan computed without the code under test."""

    keys: Counter[tuple[str, str]]
    bytes: Counter[tuple[str, str]]
    ttl: Counter[tuple[str, str]]
    live: dict[str, int]


class Cluster:
    def __init__(
        self, servers: list[RedisServer], directory: Path, algorithm: str, weighted: bool
    ) -> None:
        self.clients = {name: s.client() for name, s in zip(NAMES, servers, strict=True)}
        self.weights = {n: (WEIGHTS[n] if weighted else 1.0) for n in NAMES}
        self.old = directory / "old.toml"
        self.new = directory / "new.toml"
        tables = [
            f'[nodes.{n}]\nurl = "{s.url}"\nweight = {self.weights[n]}\n'
            for n, s in zip(NAMES, servers, strict=True)
        ]
        head = f'[placement]\nalgorithm = "{algorithm}"\n'
        self.old.write_text(head + "".join(tables[:3]))
        self.new.write_text(head + "".join(tables))
        kind = CLASSES[algorithm]
        self.old_placement: Placement = kind({n: self.weights[n] for n in NAMES[:3]})
        self.new_placement: Placement = kind(self.weights)

    def load(self, n: int) -> None:
        """``n`` keys of varied sizes and types on their old owners, a third with a TTL."""
        rng = random.Random(n)
        pipes = {name: c.pipeline(transaction=False) for name, c in self.clients.items()}
        keys = [f"k:{i}" for i in range(n)]
        for i, (key, owner) in enumerate(
            zip(keys, self.old_placement.get_node_many(keys), strict=True)
        ):
            pipe = pipes[owner]
            if i % 4:
                pipe.set(key, "v" * rng.randrange(1, 400))
            else:
                pipe.rpush(key, *["item"] * (1 + i % 7))
            if rng.random() < 0.33:
                pipe.expire(key, 3600)
        for pipe in pipes.values():
            pipe.execute()

    def truth(self) -> Truth:
        keys: Counter[tuple[str, str]] = Counter()
        size: Counter[tuple[str, str]] = Counter()
        ttl: Counter[tuple[str, str]] = Counter()
        live = {}
        for name, client in self.clients.items():
            live[name] = int(client.dbsize())
            for key in client.scan_iter(count=1000):
                owner = self.new_placement.get_node(key)
                if owner == name:
                    continue
                keys[(name, owner)] += 1
                size[(name, owner)] += int(client.memory_usage(key, samples=0) or 0)
                ttl[(name, owner)] += client.pttl(key) >= 0
        return Truth(keys, size, ttl, live)

    def report(self, *extra: str) -> CliRun:
        return run_checked(
            "report", "--from", str(self.old), "--to", str(self.new),
            "--sample-from", str(self.old), *extra,
        )  # fmt: skip


@pytest.fixture
def servers(redis_server_factory: RedisServerFactory) -> list[RedisServer]:
    return redis_server_factory(4)


def pairs_of(plan: dict[str, Any], field: str) -> dict[tuple[str, str], float]:
    return {(p["from"], p["to"]): p[field] for p in plan["pairs"]}


@pytest.mark.parametrize(("algorithm", "weighted"), CASES)
def test_whole_sample_plan_is_exact(
    servers: list[RedisServer], tmp_path: Path, algorithm: str, weighted: bool
) -> None:
    """Sampling every key: keys, bytes and TTL keys per pair and in total equal the direct
    computation, intervals are empty, live counts are DBSIZE; migrate's dry run says the same."""
    cluster = Cluster(servers, tmp_path, algorithm, weighted)
    cluster.load(KEYS)
    truth = cluster.truth()
    result = cluster.report("--sample", str(KEYS), "--format", "json", "--rate", "500")
    assert result.status == 0, result.stderr
    plan = json.loads(result.text)["plan"]
    assert plan["sample"] == KEYS
    assert {n["name"]: n["live_keys"] for n in plan["nodes"]} == {
        n: truth.live[n] for n in NAMES[:3]
    }
    assert {n["name"]: n["sampled"] for n in plan["nodes"]} == {n: truth.live[n] for n in NAMES[:3]}
    for field, expected in (("keys", truth.keys), ("bytes", truth.bytes), ("ttl_keys", truth.ttl)):
        assert pairs_of(plan, field) == pytest.approx(dict(expected)), field
        total = plan[field]
        assert total["estimate"] == pytest.approx(sum(expected.values()))
        assert total["low"] == pytest.approx(total["estimate"])
        assert total["high"] == pytest.approx(total["estimate"])
    moving = sum(truth.keys.values())
    assert moving > 0
    rates = {d["source"]: d for d in plan["duration"]}
    assert rates["--rate"]["seconds"] == pytest.approx(moving / 500)
    measured = [d for d in plan["duration"] if d["source"] != "--rate"]
    assert len(measured) == 1
    assert "bench/migrate.py" in measured[0]["source"]
    assert measured[0]["seconds"] == pytest.approx(moving / measured[0]["rate"])
    memory = {m["name"]: m for m in plan["memory"]}
    assert set(memory) == set(NAMES)
    for name in NAMES:
        arriving = sum(b for (_, to), b in truth.bytes.items() if to == name)
        leaving = sum(b for (frm, _), b in truth.bytes.items() if frm == name)
        assert memory[name]["moved_in"] == pytest.approx(arriving)
        assert memory[name]["moved_out"] == pytest.approx(leaving)
        assert memory[name]["after"] == pytest.approx(memory[name]["used"] - leaving + arriving)
        assert memory[name]["maxmemory"] == 0
        assert not memory[name]["over"]
    assert plan["warnings"] == []

    # migrate's dry run prints the same plan (its own exact scan agrees too)
    dry = run_checked(
        "migrate", "--from", str(cluster.old), "--to", str(cluster.new), "--format", "json",
        "--sample", str(KEYS), "--rate", "500",
    )  # fmt: skip
    assert dry.status == 0, dry.stderr
    document = json.loads(dry.text)
    same = document["plan"]
    for field in ("keys", "bytes", "ttl_keys"):
        assert pairs_of(same, field) == pytest.approx(pairs_of(plan, field))
    assert {(p["from"], p["to"]): p["keys"] for p in document["pairs"]} == dict(truth.keys)


@pytest.mark.parametrize(("algorithm", "weighted"), [("ring", False), ("maglev", True)])
def test_partial_sample_interval_holds_the_truth(
    servers: list[RedisServer], tmp_path: Path, algorithm: str, weighted: bool
) -> None:
    """A sample of a third of the keys, scaled per node: the true totals lie within the
    interval (checked at twice its half-width, about 3.9 standard errors, so a run fails by
    chance about once in 10,000), and the scaled live counts are DBSIZE."""
    cluster = Cluster(servers, tmp_path, algorithm, weighted)
    cluster.load(KEYS)
    truth = cluster.truth()
    result = cluster.report("--sample", str(KEYS // 3), "--format", "json")
    assert result.status == 0, result.stderr
    plan = json.loads(result.text)["plan"]
    assert sum(n["sampled"] for n in plan["nodes"]) == pytest.approx(KEYS // 3, abs=3)
    assert {n["name"]: n["live_keys"] for n in plan["nodes"]} == {
        n: truth.live[n] for n in NAMES[:3]
    }
    for field, expected in (("keys", truth.keys), ("bytes", truth.bytes), ("ttl_keys", truth.ttl)):
        total = plan[field]
        true = sum(expected.values())
        half = (total["high"] - total["low"]) / 2
        assert half > 0
        assert abs(total["estimate"] - true) <= 2 * half, (field, total, true)
        assert total["low"] <= total["estimate"] <= total["high"]


def test_maxmemory_warning_and_strict(servers: list[RedisServer], tmp_path: Path) -> None:
    """A destination whose maxmemory the move would exceed: a warning (exit 0), and exit 1
    with --strict; the text output has the plan section and marks the node OVER."""
    cluster = Cluster(servers, tmp_path, "ring", False)
    cluster.load(KEYS)
    truth = cluster.truth()
    n3 = cluster.clients["n3"]
    used = int(n3.info("memory")["used_memory"])
    arriving = sum(b for (_, to), b in truth.bytes.items() if to == "n3")
    limit = used + arriving // 2
    n3.config_set("maxmemory", limit)
    text = cluster.report("--sample", str(KEYS))
    assert text.status == 0
    assert "plan (estimated from" in text.text
    assert "bytes to move" in text.text
    assert "OVER" in text.text
    assert text.stderr.startswith("hashring: warning: n3 would hold about")
    assert "maxmemory" in text.stderr
    strict = cluster.report("--sample", str(KEYS), "--strict", "--format", "json")
    assert strict.status == 1
    memory = {m["name"]: m for m in json.loads(strict.text)["plan"]["memory"]}
    assert memory["n3"]["maxmemory"] == limit
    assert memory["n3"]["over"]
    assert not any(memory[name]["over"] for name in NAMES[:3])
    dry = run_checked("migrate", "--from", str(cluster.old), "--to", str(cluster.new), "--strict")
    assert dry.status == 1
    assert "OVER" in dry.text
    assert "hashring: warning: n3 would hold" in dry.stderr


def test_unreachable_node_is_one_line(tmp_path: Path, servers: list[RedisServer]) -> None:
    """A sampled node that does not answer: one line, exit 1."""
    port = servers[0].port
    servers[0].stop()
    topology = tmp_path / "t.toml"
    topology.write_text(f'[nodes.a]\nurl = "redis://127.0.0.1:{port}/0"\n')
    result = run_checked("report", "--from", str(topology), "--sample-from", str(topology))
    assert result.status == 1
    assert result.stderr.startswith("hashring: failed: sampling keys:")
    assert result.stderr.count("\n") == 1


def test_rate_and_strict_need_sample_from() -> None:
    for flag in (["--rate", "100"], ["--strict"]):
        result = run_checked("report", "--nodes", "3", "--keys", "100", *flag)
        assert result.status == 2
        assert result.stderr == f"hashring: error: {flag[0]} applies to --sample-from only\n"


def test_client_closed_after_sampling(servers: list[RedisServer], tmp_path: Path) -> None:
    """The sampler leaves no connection open on the servers."""
    cluster = Cluster(servers, tmp_path, "ring", False)
    cluster.load(100)
    before = {n: len(c.client_list()) for n, c in cluster.clients.items()}
    assert cluster.report("--sample", "50").status == 0
    after = {n: len(c.client_list()) for n, c in cluster.clients.items()}
    assert after == before
