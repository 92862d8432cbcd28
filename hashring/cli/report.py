"""``hashring report``: what a topology change moves, and how load spreads before and after.

The JSON document (``--format json``) has a stable schema, ``"schema": "hashring.report/1"``;
fields may be added in a later version of the same schema, never renamed or removed::

    {
      "schema": "hashring.report/1",
      "keys": {"count": 1000000, "source": "synthetic"},    # or "file:PATH", "sample:PATH"
      "before": SIDE, "after": SIDE,
      "movement": {
        "moved": 111504, "fraction": 0.1115, "ideal_fraction": 0.1111,
        "pairs": [{"from": "node-1", "to": "node-9", "keys": 13950}, ...]   # largest first
      },
      "matrix": {"from": [names], "to": [names],
                 "keys": [[int, ...], ...] | null,     # rows: from; null above 1,000,000 cells
                 "cells": [[row, column, keys], ...]}  # the non-zero cells, row-major
    }
    SIDE = {
      "topology": {"source": str, "algorithm": str, "hash": str, "vnodes": int | null,
                   "table_size": int | null, "hash_tags": bool,
                   "hash_key_env": str | null},   # the variable's name, never the secret
      "nodes": [{"name": str, "weight": float, "keys": int, "share": float,
                 "fair_share": float, "deviation": float, "hash_space": float | null}, ...],
      "summary": {"mean": float, "max": int, "min": int, "stdev": float, "cv": float,
                  "peak_to_mean": float}
    }

``share`` is the node's fraction of the keys, ``fair_share`` its weight's fraction of the total
weight, ``deviation`` = share / fair_share - 1 (the deviation from the mean, for equal
weights), ``hash_space`` the fraction of the 32-bit hash space a ring node owns (null for the
other algorithms). ``matrix.keys`` is the dense from->to matrix while it has at most
:data:`JSON_MATRIX_CELLS` cells (about 1,000 nodes a side), else null; ``matrix.cells`` always
lists the non-empty cells as ``[row, column, keys]`` (indices into ``from`` and ``to``), so
a fleet of any size is described in O(keys + nodes). ``--format csv`` writes one row per
node with the columns :data:`CSV_COLUMNS` (cells empty where a node is absent on one side).

Text and CSV output escape non-printable characters in node names, keys and paths
(``\\x1b``); JSON keeps names exact (JSON escapes them itself). Fleets above
:data:`NODE_ROWS` nodes list only the :data:`NODES_SHOWN` nodes furthest from their fair
share in the text output (all of them: JSON or CSV).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Sequence
from typing import Any

from tabulate import tabulate

from .._analysis import NodeLoad, Rebalance, Side, rebalance
from .._placement.contract import Placement
from .._placement.keys import Key
from .._topology.config import NodeSpec, Topology, load_topology, transition
from ._common import (
    EXIT_OK,
    MAX_KEYS,
    UsageError,
    add_topology_flags,
    build_topology,
    check_rendezvous_work,
    escape,
    key_count,
    parse_node,
    parse_weights,
    progress,
    topology_from_args,
)
from ._sources import DEFAULT_SAMPLE, read_keys_file, sample_keys, synthetic_keys

__all__ = [
    "CSV_COLUMNS",
    "add_change_flags",
    "after_topology",
    "placements",
    "register",
    "report_json",
]

SCHEMA = "hashring.report/1"
CSV_COLUMNS = (
    "node",
    "weight_before",
    "keys_before",
    "share_before",
    "deviation_before",
    "hash_space_before",
    "weight_after",
    "keys_after",
    "share_after",
    "deviation_after",
    "hash_space_after",
    "moved_out",
    "moved_in",
)
SAMPLE = 100_000
"""Keys read by ``--sample-from`` unless ``--sample`` says otherwise."""
_OPTION_FLAGS = ("algorithm", "hash", "vnodes", "table_size", "hash_key_env")
MATRIX_LIMIT = 12
"""Text output prints the whole from->to matrix up to this many nodes, else the top pairs."""
PAIRS_SHOWN = 15
NODE_ROWS = 100
"""Text output lists every node up to this many, else the :data:`NODES_SHOWN` furthest from
their fair share."""
NODES_SHOWN = 20
JSON_MATRIX_CELLS = 1_000_000
"""The JSON document holds the dense matrix up to this many cells (from nodes x to nodes)."""
PLOT_NODES = 200
"""Most nodes ``--plot`` draws (one bar pair and one heatmap row and column each)."""

EXAMPLES = """\
examples:
  hashring report                                  8 nodes + node-9, 1,000,000 synthetic keys
  hashring report --nodes 10 --remove node-3
  hashring report --nodes a,b,c --add d=2 --weight a=0.5 --algorithm maglev
  hashring report --from old.toml --to new.toml --keys-file keys.txt --format json
  hashring report --from old.toml --add cache-4 --sample-from old.toml --plot change.png

Without --to, --add, --remove or --weight the change is: add one node.
"""


def register(commands: Any) -> None:
    """Add the ``report`` subcommand."""
    parser = commands.add_parser(
        "report",
        help="what a topology change moves, and load before/after",
        description="Place keys with the topology before and after a change and report the "
        "keys moved against the ideal, the from->to movement matrix, per-node load and the "
        "balance statistics (mean, max, min, stdev, coefficient of variation, peak-to-mean).",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_change_flags(parser, config_help="topology before the change (default: 8 nodes)")
    keys = parser.add_argument_group("keys (default: a built-in synthetic sample)")
    source = keys.add_mutually_exclusive_group()
    source.add_argument(
        "--keys",
        type=key_count,
        default=DEFAULT_SAMPLE,
        metavar="N",
        help=f"number of synthetic keys (default {DEFAULT_SAMPLE:,}, at most {MAX_KEYS:,})",
    )
    source.add_argument("--keys-file", metavar="PATH", help="one key per line; - for stdin")
    source.add_argument(
        "--sample-from", metavar="FILE.toml", help="SCAN a sample of real keys from these nodes"
    )
    keys.add_argument(
        "--sample",
        type=key_count,
        metavar="N",
        help="keys to sample with --sample-from (default 100,000)",
    )
    output = parser.add_argument_group("output")
    output.add_argument("--format", choices=("text", "json", "csv"), default="text")
    output.add_argument("--plot", metavar="FILE.png", help="draw load and movement to a PNG")
    parser.set_defaults(run=run)


def add_change_flags(parser: argparse.ArgumentParser, *, config_help: str) -> None:
    """The flags describing a topology (``--from`` or quick flags) and a change to it."""
    add_topology_flags(parser, config_flag="--from", config_help=config_help, weight_flag=False)
    change = parser.add_argument_group("the change (a file, or change flags; default: add a node)")
    change.add_argument("--to", metavar="NEW.toml", help="topology after the change")
    change.add_argument(
        "--add", action="append", default=[], metavar="NODE[=W]", help="add a node (repeatable)"
    )
    change.add_argument(
        "--remove", action="append", default=[], metavar="NODE", help="remove a node (repeatable)"
    )
    change.add_argument(
        "--weight", action="append", default=[], metavar="NODE=W", help="reweight a node"
    )


def run(args: argparse.Namespace) -> int:
    """Carry out ``hashring report``."""
    if args.plot:
        from ._plot import check_plotting

        check_plotting(args.plot)
    if args.sample is not None and not args.sample_from:
        raise UsageError("--sample applies to --sample-from only")
    before = topology_from_args(args)
    after = after_topology(args, before)
    if args.plot and len(set(before.nodes) | set(after.nodes)) > PLOT_NODES:
        raise UsageError(f"--plot draws at most {PLOT_NODES} nodes: use --format csv or json")
    if args.keys_file is None and args.sample_from is None:  # the count is known up front
        for topology in (before, after):
            check_rendezvous_work(topology, args.keys)
    keys, source = _keys(args)
    for topology in (before, after):
        check_rendezvous_work(topology, len(keys))
    result = build_report(keys, before, after, live=not args.to)
    if args.format == "json":
        json.dump(report_json(result, before, after, source), sys.stdout, indent=2)
        print()
    elif args.format == "csv":
        _write_csv(result)
    else:
        print(render_text(result, before, after, source))
    if args.plot:
        from ._plot import plot_report

        plot_report(result, args.plot)
        print(f"plot written to {args.plot}", file=sys.stderr)
    return EXIT_OK


def build_report(
    keys: Sequence[Key], before: Topology, after: Topology, *, live: bool = False
) -> Rebalance:
    """Place ``keys`` both ways and analyse; a progress bar covers the two passes.

    ``live`` as for :func:`placements`.
    """
    both = placements(before, after, live=live)
    owners = []
    with progress(2 * len(keys), "placing keys") as bar:
        for placement in both:
            step = 1 << 18
            placed: list[str] = []
            for start in range(0, len(keys), step):
                placed.extend(placement.get_node_many(keys[start : start + step]))
                bar.update(min(step, len(keys) - start))
            owners.append(placed)
    return rebalance(keys, *both, before_owners=owners[0], after_owners=owners[1])


def after_topology(args: argparse.Namespace, before: Topology) -> Topology:
    """The topology after the change: ``--to``, or ``before`` with the change flags applied.

    Raises:
        UsageError: contradictory or impossible changes.
        ConfigError: a bad ``--to`` file.
    """
    changes = args.add or args.remove or args.weight
    if args.to:
        if changes:
            raise UsageError("give either --to or --add/--remove/--weight, not both")
        given = [f"--{flag.replace('_', '-')}" for flag in _OPTION_FLAGS if getattr(args, flag)]
        if given:
            raise UsageError(
                f"{', '.join(given)} would change only the before side: with --to, set "
                "placement options in the two files"
            )
        return load_topology(args.to)
    specs = dict(before.nodes)
    if not changes:
        args.add = [_fresh_name(specs)]
    for name in args.remove:
        if name not in specs:
            raise UsageError(f"--remove {name}: no node {name!r} left in {before.source}")
        del specs[name]
    for item in args.add:
        name, weight = parse_node(item, "--add", weight_required=False)
        if name in specs:
            raise UsageError(f"--add {item}: {name!r} is already a node")
        specs[name] = NodeSpec(name, None, weight)
    for name, weight in parse_weights(args.weight).items():
        if name not in specs:
            raise UsageError(f"--weight {name}={weight:g}: no node {name!r} after the change")
        specs[name] = NodeSpec(name, specs[name].url, weight)
    if not specs:
        raise UsageError("the change removes every node")
    described = [f"remove {name}" for name in args.remove] + [f"add {item}" for item in args.add]
    described += [f"weight {item}" for item in args.weight]
    return build_topology(specs, before.options(), f"{before.source}, {', '.join(described)}")


def placements(before: Topology, after: Topology, *, live: bool) -> tuple[Placement, Placement]:
    """Both sides' placements: ``live`` applies the change to the running placement
    (``hashring.transition``, as change flags describe); otherwise each side is built from
    its topology, as clients started from those files build it (only jump differs)."""
    return transition(before, after) if live else (before.placement(), after.placement())


def _fresh_name(specs: dict[str, NodeSpec]) -> str:
    number = len(specs) + 1
    while f"node-{number}" in specs:
        number += 1
    return f"node-{number}"


def _keys(args: argparse.Namespace) -> tuple[list[Key], str]:
    if args.keys_file:
        return read_keys_file(args.keys_file), f"file:{args.keys_file}"
    if args.sample_from:
        keys = sample_keys(load_topology(args.sample_from), args.sample or SAMPLE)
        if not keys:
            raise UsageError(f"--sample-from {args.sample_from}: the nodes hold no keys")
        return keys, f"sample:{args.sample_from}"
    return synthetic_keys(args.keys), "synthetic"


# ----------------------------------------------------------------------------- formats


def _topology_json(topology: Topology) -> dict[str, Any]:
    return {"source": topology.source, **topology.options()}


def _side_json(side: Side, topology: Topology) -> dict[str, Any]:
    summary = side.summary
    return {
        "topology": _topology_json(topology),
        "nodes": [
            {
                "name": node.name,
                "weight": node.weight,
                "keys": node.keys,
                "share": node.share,
                "fair_share": node.fair_share,
                "deviation": node.deviation,
                "hash_space": node.hash_space,
            }
            for node in side.nodes
        ],
        "summary": {
            "mean": summary.mean,
            "max": summary.max,
            "min": summary.min,
            "stdev": summary.stdev,
            "cv": summary.cv,
            "peak_to_mean": summary.peak_to_mean,
        },
    }


def report_json(
    result: Rebalance, before: Topology, after: Topology, source: str
) -> dict[str, Any]:
    """The ``hashring.report/1`` document (see the module docstring)."""
    return {
        "schema": SCHEMA,
        "keys": {"count": result.keys, "source": source},
        "before": _side_json(result.before, before),
        "after": _side_json(result.after, after),
        "movement": {
            "moved": result.moved,
            "fraction": result.moved_fraction,
            "ideal_fraction": result.ideal_fraction,
            "pairs": [
                {"from": a, "to": b, "keys": n} for (a, b), n in result.moved_pairs().items()
            ],
        },
        "matrix": {
            "from": list(result.from_nodes),
            "to": list(result.to_nodes),
            "keys": (
                result.matrix.tolist()
                if len(result.from_nodes) * len(result.to_nodes) <= JSON_MATRIX_CELLS
                else None
            ),
            "cells": [
                list(cell)
                for cell in zip(
                    result.cell_rows.tolist(),
                    result.cell_columns.tolist(),
                    result.cell_keys.tolist(),
                    strict=True,
                )
            ],
        },
    }


def _write_csv(result: Rebalance) -> None:
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    before = {node.name: node for node in result.before.nodes}
    after = {node.name: node for node in result.after.nodes}
    moved_out: dict[str, int] = {}
    moved_in: dict[str, int] = {}
    for (source, target), count in result.moved_pairs().items():
        moved_out[source] = moved_out.get(source, 0) + count
        moved_in[target] = moved_in.get(target, 0) + count
    for name in _all_names(result):
        row: list[Any] = [escape(name)]
        for node in (before.get(name), after.get(name)):
            if node is None:
                row += [""] * 5
            else:
                space = "" if node.hash_space is None else f"{node.hash_space:.6f}"
                row += [
                    f"{node.weight:g}",
                    node.keys,
                    f"{node.share:.6f}",
                    f"{node.deviation:.6f}",
                    space,
                ]
        row += [moved_out.get(name, 0), moved_in.get(name, 0)]
        writer.writerow(row)


def _all_names(result: Rebalance) -> list[str]:
    return sorted(set(result.from_nodes) | set(result.to_nodes))


def _describe(topology: Topology) -> str:
    options = [topology.algorithm]
    if topology.algorithm == "ring":
        options.append(f"vnodes={topology.vnodes or 160}")
    if topology.algorithm == "maglev" and topology.table_size:
        options.append(f"table_size={topology.table_size}")
    if topology.hash != "mmh3":
        options.append(f"hash={topology.hash}")
    if topology.hash_key_env:
        options.append(f"hash key from ${topology.hash_key_env}")
    return f"{len(topology.nodes):,} nodes, {' '.join(options)} ({topology.source})"


def render_text(result: Rebalance, before: Topology, after: Topology, source: str) -> str:
    """The terminal report: movement, per-node load, summary statistics, movement matrix.

    Non-printable characters in names, paths and the key source are escaped."""
    lines = [
        f"keys:   {result.keys:,} ({source})",
        f"before: {_describe(before)}",
        f"after:  {_describe(after)}",
        "",
        f"moved:  {result.moved:,} keys = {result.moved_fraction:.2%} "
        f"(ideal {result.ideal_fraction:.2%}"
        + (
            f", {result.moved_fraction / result.ideal_fraction:.2f}x the ideal)"
            if result.ideal_fraction
            else ")"
        ),
        "",
        "load per node (vs fair: share / the weight's share - 1; with equal weights, vs the mean)",
        *_node_table(result),
        "",
        "summary            before        after",
        _summary_table(result),
        "",
    ]
    pairs = result.moved_pairs()
    names = _all_names(result)
    if not pairs:
        lines.append("movement: no key changes owner")
    elif len(names) <= MATRIX_LIMIT:
        lines.append("movement matrix: keys from (rows, before) to (columns, after)")
        lines.append(_matrix_table(result))
    else:
        lines.append(f"largest moves ({len(pairs):,} from->to pairs; all of them: --format json)")
        shown = list(pairs.items())[:PAIRS_SHOWN]
        lines.append(
            tabulate(
                [(escape(a), escape(b), f"{n:,}", f"{n / result.keys:.2%}") for (a, b), n in shown],
                headers=["from", "to", "keys", "of all"],
                colalign=("left", "left", "right", "right"),
            )
        )
    return escape_lines("\n".join(lines))


def escape_lines(text: str) -> str:
    """``text`` with each line escaped (:func:`escape`), the line breaks kept."""
    return "\n".join(escape(line) for line in text.split("\n"))


def _node_table(result: Rebalance) -> list[str]:
    before = {node.name: node for node in result.before.nodes}
    after = {node.name: node for node in result.after.nodes}
    ring = any(node.hash_space is not None for node in (*before.values(), *after.values()))
    names = _all_names(result)
    note = []
    if len(names) > NODE_ROWS:

        def distance(name: str) -> float:
            node = after.get(name) or before[name]
            return abs(node.deviation)

        note = [
            f"({len(names):,} nodes: the {NODES_SHOWN} furthest from their fair share after "
            "the change; all of them: --format csv or json)"
        ]
        names = sorted(names, key=lambda name: (-distance(name), name))[:NODES_SHOWN]
    rows = []
    for name in names:
        old, new = before.get(name), after.get(name)
        weights = {f"{node.weight:g}" for node in (old, new) if node is not None}
        row = [
            escape(name),
            " -> ".join(_weights(old, new)) if len(weights) > 1 else weights.pop(),
        ]
        for node in (old, new):
            row += (
                ["-", "-", "-"]
                if node is None
                else [f"{node.keys:,}", f"{node.share:.2%}", f"{node.deviation:+.2%}"]
            )
        if ring:
            row += [_space(old), _space(new)]
        rows.append(row)
    headers = ["node", "weight", "keys before", "share", "vs fair", "keys after", "share"]
    headers += ["vs fair"] + (["hash space before", "after"] if ring else [])
    return [*note, tabulate(rows, headers=headers, stralign="right", disable_numparse=True)]


def _weights(old: NodeLoad | None, new: NodeLoad | None) -> list[str]:
    return [f"{node.weight:g}" if node else "-" for node in (old, new)]


def _space(node: NodeLoad | None) -> str:
    return "-" if node is None or node.hash_space is None else f"{node.hash_space:.2%}"


def _summary_table(result: Rebalance) -> str:
    b, a = result.before.summary, result.after.summary
    rows = [
        ("mean load", f"{b.mean:,.1f}", f"{a.mean:,.1f}"),
        ("maximum load", f"{b.max:,}", f"{a.max:,}"),
        ("minimum load", f"{b.min:,}", f"{a.min:,}"),
        ("standard deviation", f"{b.stdev:,.1f}", f"{a.stdev:,.1f}"),
        ("coeff. of variation", f"{b.cv:.4f}", f"{a.cv:.4f}"),
        ("peak-to-mean", f"{b.peak_to_mean:.4f}", f"{a.peak_to_mean:.4f}"),
    ]
    return tabulate(
        rows, tablefmt="plain", colalign=("left", "right", "right"), disable_numparse=True
    )


def _matrix_table(result: Rebalance) -> str:
    rows = [
        [escape(name), *(f"{int(n):,}" if n else "." for n in result.matrix[i])]
        for i, name in enumerate(result.from_nodes)
    ]
    return tabulate(
        rows,
        headers=["from \\ to", *map(escape, result.to_nodes)],
        stralign="right",
        disable_numparse=True,
    )
