"""``hashring compare``: every placement algorithm on the same keys and the same change."""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from typing import Any

from tabulate import tabulate

from .._analysis import Rebalance, rebalance
from .._errors import HashRingError
from .._placement.algorithms import ALGORITHMS
from .._placement.keys import Key
from .._topology.config import Topology
from ._common import (
    EXIT_OK,
    MAX_KEYS,
    UsageError,
    build_topology,
    check_rendezvous_work,
    escape,
    key_count,
    progress,
    topology_from_args,
)
from ._sources import synthetic_keys
from .report import add_change_flags, after_topology, placements

__all__ = ["register"]

DEFAULT_KEYS = 200_000


@dataclass(frozen=True)
class Row:
    """One algorithm's measurements (``problem`` set when it cannot take this topology)."""

    algorithm: str
    result: Rebalance | None = None
    build_ms: float = 0.0
    get_node_ns: float = 0.0
    keys_per_second: float = 0.0
    problem: str | None = None


def register(commands: Any) -> None:
    """Add the ``compare`` subcommand."""
    parser = commands.add_parser(
        "compare",
        help="the algorithms side by side on the same keys and change",
        description="Run ring, maglev, rendezvous and jump on the same nodes, keys and change; "
        "print balance against each node's fair share (peak-to-fair, coefficient of variation), "
        "keys moved against the ideal and the excess a perfect placement would not move, and "
        "lookup speed. Speeds are measured on this machine, now: compare them with each other, "
        "not with another run.",
        epilog="example: hashring compare --nodes 100 --remove node-7",
    )
    add_change_flags(parser, config_help="topology before the change (default 8 nodes)")
    parser.add_argument(
        "--keys",
        type=key_count,
        default=DEFAULT_KEYS,
        metavar="N",
        help=f"synthetic keys (default {DEFAULT_KEYS:,}, at most {MAX_KEYS:,})",
    )
    parser.add_argument("--format", choices=("text", "json"), default="text")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Carry out ``hashring compare``."""
    if args.algorithm:
        raise UsageError("compare runs every algorithm: --algorithm does not apply")
    before = topology_from_args(args)
    after = after_topology(args, before)
    keys = synthetic_keys(args.keys)
    rows = []
    with progress(len(ALGORITHMS), "algorithms", unit="algorithm") as bar:
        for algorithm in ALGORITHMS:
            rows.append(measure(algorithm, before, after, keys, live=not args.to))
            bar.update(1)
    if args.format == "json":
        document = _json(rows, len(keys)) | {"hash_key_env": before.hash_key_env}
        json.dump(document, sys.stdout, indent=2)
        print()
    else:
        keyed = f"; hash key from ${before.hash_key_env}" if before.hash_key_env else ""
        print(
            escape(
                f"{len(keys):,} synthetic keys; {len(before.nodes)} nodes -> "
                f"{len(after.nodes)}{keyed}"
            )
        )
        print("\n".join(escape(line) for line in _table(rows).split("\n")))
    return EXIT_OK


def _as(topology: Topology, algorithm: str) -> Topology:
    """``topology`` with ``algorithm``, keeping the options that apply to it."""
    options = topology.options() | {"algorithm": algorithm}
    for option, owner in (("vnodes", "ring"), ("table_size", "maglev")):
        if algorithm != owner:
            options[option] = None
    return build_topology(dict(topology.nodes), options, topology.source)


def measure(
    algorithm: str, before: Topology, after: Topology, keys: list[Key], *, live: bool
) -> Row:
    """Build both sides with ``algorithm`` (its default options) and measure them.

    An algorithm that cannot take the topology (jump with weights, Maglev's table smaller
    than the fleet, rendezvous above ``MAX_RENDEZVOUS_WORK``) gets a row with ``problem``.

    ``live`` as for ``report.build_report``: apply the change to the running placement.
    """
    try:
        first, second = _as(before, algorithm), _as(after, algorithm)
        for topology in (first, second):
            check_rendezvous_work(topology, len(keys))
        started = time.perf_counter()
        first.placement()
        build_ms = (time.perf_counter() - started) * 1e3
        old, new = placements(first, second, live=live)
    except (HashRingError, UsageError) as exc:  # e.g. jump refuses unequal weights
        return Row(algorithm, problem=str(exc).split(": ", 1)[-1])
    started = time.perf_counter()
    owners_before = old.get_node_many(keys)
    elapsed = time.perf_counter() - started
    owners_after = new.get_node_many(keys)
    sample = keys[:20_000]
    started = time.perf_counter()
    for key in sample:
        old.get_node(key)
    get_node_ns = (time.perf_counter() - started) / max(len(sample), 1) * 1e9
    result = rebalance(keys, old, new, before_owners=owners_before, after_owners=owners_after)
    return Row(
        algorithm,
        result=result,
        build_ms=build_ms,
        get_node_ns=get_node_ns,
        keys_per_second=len(keys) / elapsed if elapsed else 0.0,
    )


def _table(rows: list[Row]) -> str:
    table = []
    for row in rows:
        if row.result is None:
            table.append([row.algorithm, "n/a (below)"] + [""] * 7)
            continue
        r = row.result
        table.append(
            [
                row.algorithm,
                f"{r.before.peak_to_fair:.4f} -> {r.after.peak_to_fair:.4f}",
                f"{r.after.cv_of_fair:.4f}",
                f"{r.moved_fraction:.2%}",
                f"{r.ideal_fraction:.2%}",
                f"{r.excess_fraction:.2%}",
                f"{row.get_node_ns:,.0f}",
                f"{row.keys_per_second / 1e6:,.2f}",
                f"{row.build_ms:,.1f}",
            ]
        )
    headers = [
        "algorithm",
        "peak-to-fair",
        "cv of fair after",
        "moved",
        "ideal",
        "excess",
        "get_node ns",
        "M keys/s batch",
        "build ms",
    ]
    notes = [f"{row.algorithm}: {row.problem}" for row in rows if row.problem]
    return "\n".join(
        [tabulate(table, headers=headers, stralign="right", disable_numparse=True), *notes]
    )


def _json(rows: list[Row], keys: int) -> dict[str, Any]:
    out = []
    for row in rows:
        entry: dict[str, Any] = {"algorithm": row.algorithm, "problem": row.problem}
        if row.result is not None:
            r = row.result
            entry.update(
                peak_to_mean_before=r.before.summary.peak_to_mean,
                peak_to_mean_after=r.after.summary.peak_to_mean,
                cv_before=r.before.summary.cv,
                cv_after=r.after.summary.cv,
                peak_to_fair_before=r.before.peak_to_fair,
                peak_to_fair_after=r.after.peak_to_fair,
                cv_of_fair_before=r.before.cv_of_fair,
                cv_of_fair_after=r.after.cv_of_fair,
                moved_fraction=r.moved_fraction,
                ideal_fraction=r.ideal_fraction,
                necessary_fraction=r.necessary_fraction,
                excess_fraction=r.excess_fraction,
                get_node_ns=row.get_node_ns,
                keys_per_second=row.keys_per_second,
                build_ms=row.build_ms,
            )
        out.append(entry)
    return {"schema": "hashring.compare/1", "keys": keys, "algorithms": out}
