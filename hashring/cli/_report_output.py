"""``hashring report``'s output: the JSON document (schema ``hashring.report/1``, described in
:mod:`hashring.cli.report`), the CSV rows and the text rendering of a :class:`Rebalance`."""

from __future__ import annotations

import csv
import math
import re
import sys
from collections.abc import Iterable
from typing import Any

from tabulate import tabulate

from .._analysis import CONFIDENCE, NodeLoad, Rebalance, Side
from .._topology.config import Topology
from ._common import escape

__all__ = [
    "CSV_COLUMNS",
    "ORDERS",
    "SCHEMA",
    "escape_lines",
    "natural_key",
    "natural_sorted",
    "render_text",
    "report_json",
    "write_csv",
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
MATRIX_LIMIT = 12
"""Text output prints the whole from->to matrix up to this many nodes, else the top pairs."""
PAIRS_SHOWN = 15
NODE_ROWS = 100
"""Text output lists every node up to this many, else the :data:`NODES_SHOWN` furthest from
their fair share."""
NODES_SHOWN = 20
ORDERS = ("auto", "name", "worst")
"""``--order`` of the per-node table: ``name`` (natural order: node-2 before node-10),
``worst`` (furthest from the fair share after the change first), ``auto`` (by name up to
:data:`MATRIX_LIMIT` nodes, worst first beyond)."""
JSON_MATRIX_CELLS = 1_000_000
"""The JSON document holds the dense matrix up to this many cells (from nodes x to nodes)."""


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
            "peak_to_fair": side.peak_to_fair,
            "cv_of_fair": side.cv_of_fair,
        },
    }


def report_json(
    result: Rebalance, before: Topology, after: Topology, source: str
) -> dict[str, Any]:
    """The ``hashring.report/1`` document (see the module docstring)."""
    low, high = result.ideal_band()
    return {
        "schema": SCHEMA,
        "keys": {"count": result.keys, "source": source},
        "before": _side_json(result.before, before),
        "after": _side_json(result.after, after),
        "movement": {
            "moved": result.moved,
            "fraction": result.moved_fraction,
            "ideal_fraction": result.ideal_fraction,
            "ideal_band": {"low": low, "high": high, "confidence": CONFIDENCE},
            "necessary": result.necessary,
            "necessary_fraction": result.necessary_fraction,
            "excess": result.excess,
            "excess_fraction": result.excess_fraction,
            "between_surviving": result.between_surviving,
            "pairs": [
                {"from": a, "to": b, "keys": n, "necessary": result.is_necessary(a, b)}
                for (a, b), n in result.moved_pairs().items()
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


def write_csv(result: Rebalance) -> None:
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
    return natural_sorted(set(result.from_nodes) | set(result.to_nodes))


_DIGITS = re.compile(r"([0-9]+)")


def natural_key(name: str) -> tuple[tuple[str | int, ...], str]:
    """Sort key putting ``node-2`` before ``node-10``: runs of ASCII digits compare as
    numbers, the rest as text; names equal that way (``n01``, ``n1``) fall back to plain
    order. O(len(name)).

    >>> sorted(["node-10", "node-2", "node-1"], key=natural_key)
    ['node-1', 'node-2', 'node-10']
    """
    parts = _DIGITS.split(name)  # text, digits, text, ...: the same type at each index
    return tuple(int(part) if i % 2 else part for i, part in enumerate(parts)), name


def natural_sorted(names: Iterable[str]) -> list[str]:
    """``names`` in natural order (:func:`natural_key`). O(n log n)."""
    return sorted(names, key=natural_key)


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


def render_text(
    result: Rebalance, before: Topology, after: Topology, source: str, *, order: str = "auto"
) -> str:
    """The terminal report: the movement headline, per-node load, summary statistics and the
    movement matrix (the largest moves beyond :data:`MATRIX_LIMIT` nodes).

    The headline leads with the excess movement (what a perfect placement avoids), then the
    necessary movement, the total with the part between surviving nodes, and the ideal as an
    expectation with its 95% sampling band for this many keys. ``order`` (one of
    :data:`ORDERS`) orders the per-node table. Non-printable characters in names, paths and
    the key source are escaped. O(nodes log nodes + cells).

    Raises:
        ValueError: ``order`` is not one of :data:`ORDERS`.
    """
    if order not in ORDERS:
        raise ValueError(f"order {order!r} is not one of {', '.join(ORDERS)}")
    lines = [
        f"keys:   {result.keys:,} ({source})",
        f"before: {_describe(before)}",
        f"after:  {_describe(after)}",
        "",
        *_headline(result),
        "",
        "load per node (vs fair: share / the weight's share - 1; with equal weights, vs the mean)",
        *_node_table(result, order),
        "",
        *_summary_table(result),
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
                [
                    (
                        escape(a),
                        escape(b),
                        f"{n:,}",
                        f"{n / result.keys:.2%}",
                        "necessary" if result.is_necessary(a, b) else "excess",
                    )
                    for (a, b), n in shown
                ],
                headers=["from", "to", "keys", "of all", "kind"],
                colalign=("left", "left", "right", "right", "left"),
                disable_numparse=True,
            )
        )
    return escape_lines("\n".join(lines))


def _headline(result: Rebalance) -> list[str]:
    keys = result.keys
    low, high = result.ideal_band()
    width = len(f"{result.moved:,}")
    digits = _digits(min(x for x in (result.ideal_fraction, low, high, 1.0) if x > 0))

    shares = len(_percent(result.moved_fraction, digits))

    def count(n: int) -> str:
        share = _percent(n / keys if keys else 0.0, digits)
        return f"{n:>{width},} keys = {share:>{shares}}"

    between = result.between_surviving
    lines = [
        f"excess:    {count(result.excess)}  (moves a perfect placement avoids)",
        f"necessary: {count(result.necessary)}  (shrinking or removed nodes -> growing or added)",
        f"moved:     {count(result.moved)}  ({between:,} = "
        f"{_percent(between / keys if keys else 0.0, digits)} between surviving nodes)",
        f"ideal:     {_percent(result.ideal_fraction, digits)} expected for a perfect placement "
        f"(95% band {_percent(low, digits)}-{_percent(high, digits)} for {keys:,} keys)",
    ]
    if result.necessary_fraction < low:
        lines.append(
            "           necessary is below the band: the nodes giving or taking keys hold "
            "less than their fair share"
        )
    elif result.necessary_fraction > high:
        lines.append(
            "           necessary is above the band: the nodes giving or taking keys hold "
            "more than their fair share"
        )
    return lines


def _digits(fraction: float) -> int:
    """Decimals of a percentage that show two significant digits of ``fraction`` (at least
    two, at most eight)."""
    return max(2, min(8, 1 - math.floor(math.log10(fraction * 100))))


def _percent(fraction: float, digits: int = 2) -> str:
    """``fraction`` as a percentage with ``digits`` decimals (``0.1116`` -> ``11.16%``)."""
    return f"{fraction:.{digits}%}"


def _order(result: Rebalance, names: list[str], order: str) -> list[str]:
    """``names`` by name, or worst first (furthest from the fair share after the change, or
    before it for a removed node); ``auto`` is worst first beyond :data:`MATRIX_LIMIT`."""
    if order == "name" or (order == "auto" and len(names) <= MATRIX_LIMIT):
        return natural_sorted(names)
    before = {node.name: node for node in result.before.nodes}
    after = {node.name: node for node in result.after.nodes}

    def distance(name: str) -> float:
        node = after.get(name) or before[name]
        return abs(node.deviation)

    return sorted(names, key=lambda name: (-distance(name), natural_key(name)))


def escape_lines(text: str) -> str:
    """``text`` with each line escaped (:func:`escape`), the line breaks kept."""
    return "\n".join(escape(line) for line in text.split("\n"))


def _node_table(result: Rebalance, order: str) -> list[str]:
    before = {node.name: node for node in result.before.nodes}
    after = {node.name: node for node in result.after.nodes}
    ring = any(node.hash_space is not None for node in (*before.values(), *after.values()))
    names = _all_names(result)
    note = []
    if len(names) > NODE_ROWS:
        note = [
            f"({len(names):,} nodes: the {NODES_SHOWN} furthest from their fair share after "
            "the change; all of them: --format csv or json)"
        ]
        names = _order(result, names, "worst")[:NODES_SHOWN]
    names = _order(result, names, order)
    if order == "worst" or (order == "auto" and len(_all_names(result)) > MATRIX_LIMIT):
        note.append("(worst first: furthest from the fair share after the change; --order name)")
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


def _summary_table(result: Rebalance) -> list[str]:
    before, after = result.before, result.after
    b, a = before.summary, after.summary
    rows = []
    weighted = not (before.weights_equal and after.weights_equal)
    if weighted:
        rows += [
            ("peak-to-fair", f"{before.peak_to_fair:.4f}", f"{after.peak_to_fair:.4f}"),
            ("CV of load/fair", f"{before.cv_of_fair:.4f}", f"{after.cv_of_fair:.4f}"),
        ]
    rows += [
        ("mean load", f"{b.mean:,.1f}", f"{a.mean:,.1f}"),
        ("maximum load", f"{b.max:,}", f"{a.max:,}"),
        ("minimum load", f"{b.min:,}", f"{a.min:,}"),
        ("standard deviation", f"{b.stdev:,.1f}", f"{a.stdev:,.1f}"),
        ("coeff. of variation", f"{b.cv:.4f}", f"{a.cv:.4f}"),
        ("load factor (peak-to-mean)", f"{b.peak_to_mean:.4f}", f"{a.peak_to_mean:.4f}"),
    ]
    table = tabulate(
        [("summary", "before", "after"), *rows],
        tablefmt="plain",
        colalign=("left", "right", "right"),
        disable_numparse=True,
    )
    note = (
        [
            "(weights differ: judge balance by load over fair share, the first two rows; the "
            "raw load rows count the weights' intended imbalance)"
        ]
        if weighted
        else []
    )
    return [*note, table]


def _matrix_table(result: Rebalance) -> str:
    matrix = result.matrix
    rows_at = {name: i for i, name in enumerate(result.from_nodes)}
    columns_at = {name: j for j, name in enumerate(result.to_nodes)}
    targets = natural_sorted(result.to_nodes)
    rows = [
        [
            escape(name),
            *(
                f"{int(n):,}" if n else "."
                for n in (matrix[rows_at[name], columns_at[t]] for t in targets)
            ),
        ]
        for name in natural_sorted(result.from_nodes)
    ]
    return tabulate(
        rows,
        headers=["from \\ to", *map(escape, targets)],
        stralign="right",
        disable_numparse=True,
    )
