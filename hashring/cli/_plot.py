"""``hashring report --plot``: load per node against its fair share, and what moves where.

The PNG has a title naming the change, the keys moved, the excess movement and the ideal,
and two panels:

- load per node: keys before (grey) and after (blue) the change, each node's fair share
  marked by a black tick (its weight's share of the keys, so weighted nodes are judged by
  their own share, never by a mean line);
- movement: up to :data:`MATRIX_NODES` nodes, the from->to matrix with the count in every
  non-empty cell, keys that stay in light grey and keys that move in their own colours
  (orange: necessary, red: excess; paler for fewer keys, on a log scale); beyond, per node
  the keys moved out (down) and in (up), split necessary / excess the same way, since a
  matrix of hundreds of rows cannot be read. Beyond :data:`BARS_NODES` nodes the load panel
  shows each node's keys over its fair share as points around a line at 1.0.

Colours, not shades of one scale, separate staying from moving, so the few keys that move
stand out next to the many that stay, at any fleet size.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .._analysis import Rebalance
from ._common import UsageError
from ._report_output import natural_sorted

__all__ = ["MATRIX_NODES", "change_title", "check_plotting", "plot_report", "save_figure"]

MATRIX_NODES = 24
"""Up to this many nodes (either side) the movement panel is the matrix with counts."""
BARS_NODES = 60
"""Up to this many nodes bars show keys per node; beyond, points show keys over fair share
and the movement panel draws steps, since thousands of bars are unreadable and slow."""
LABELS_SHOWN = 40
"""Most node names written under an axis; beyond, every k-th name."""
STAYED, NECESSARY, EXCESS = "#d0d0d0", "#f28e2b", "#d62728"
BEFORE, AFTER, FAIR = "#a8a8a8", "#4e79a7", "black"


def check_plotting(path: str) -> None:
    """Fail early, before any work, when ``--plot path`` cannot be honoured.

    Raises:
        UsageError: ``path`` does not end in ``.png``, or matplotlib is not installed.
    """
    if not path.lower().endswith(".png"):
        raise UsageError(f"--plot {path}: the plot is a PNG file: give a path ending in .png")
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise UsageError("--plot needs matplotlib: pip install 'hashring[plot]'") from None


def change_title(result: Rebalance) -> str:
    """One line naming the change (nodes removed, added, reweighted; counted beyond three)
    and what it moved: ``remove node-3: 11.16% of keys moved, excess 0.00% (ideal 10.00%)``.
    O(nodes)."""
    before = {node.name: node.weight for node in result.before.nodes}
    after = {node.name: node.weight for node in result.after.nodes}
    removed = natural_sorted(set(before) - set(after))
    added = natural_sorted(set(after) - set(before))
    reweighted = natural_sorted(n for n in set(before) & set(after) if before[n] != after[n])
    parts = []
    for verb, names, label in (
        ("remove", removed, lambda n: n),
        ("add", added, lambda n: n if after[n] == 1 else f"{n}={after[n]:g}"),
        ("weight", reweighted, lambda n: f"{n} {before[n]:g}->{after[n]:g}"),
    ):
        if len(names) > 3:
            parts.append(f"{verb} {len(names):,} nodes")
        elif names:
            parts.append(f"{verb} {', '.join(map(label, names))}")
    change = "; ".join(parts) or "no change"
    return (
        f"{change}: {result.moved_fraction:.2%} of {result.keys:,} keys moved, "
        f"excess {result.excess_fraction:.2%} (ideal {result.ideal_fraction:.2%})"
    )


def plot_report(result: Rebalance, path: str) -> None:
    """Write the PNG described in the module docstring to ``path``.

    Runtime O(nodes + cells) plus matplotlib's drawing (about a second at 1,000 nodes).

    Raises:
        UsageError: matplotlib is not installed, or the file cannot be written.
    """
    check_plotting(path)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = natural_sorted(set(result.from_nodes) | set(result.to_nodes))
    small = len(names) <= MATRIX_NODES
    width = 9.0 if small else max(10.0, min(0.25 * len(names) + 4, 18.0))
    figure, (bars, moves) = plt.subplots(
        2,
        1,
        figsize=(width, 12 if small else 9),
        gridspec_kw={"height_ratios": [1, 1.5 if small else 1]},
        layout="constrained",
    )
    figure.suptitle(change_title(result), fontsize="large", fontweight="bold")
    _load_panel(bars, result, names)
    if small:
        _matrix_panel(moves, result)
    else:
        _flow_panel(moves, result, names)
    save_figure(figure, path, plt)


def save_figure(figure: Any, path: str, plt: Any) -> None:
    """Write ``figure`` to ``path`` as a PNG and close it (closed also when writing fails).

    Raises:
        UsageError: the file cannot be written.
    """
    try:
        figure.savefig(path, dpi=100)
    except OSError as exc:
        raise UsageError(f"--plot {path}: cannot write: {exc.strerror}") from None
    finally:
        plt.close(figure)


def _node_axis(axes: Any, names: list[str], *, axis: str = "x") -> None:
    step = max(1, -(-len(names) // LABELS_SHOWN))
    positions = range(0, len(names), step)
    labels = [names[i] for i in positions]
    if axis == "x":
        rotation = 90 if len(names) > 8 or max(map(len, names)) > 8 else 0
        axes.set_xticks(list(positions), labels, rotation=rotation, fontsize="small")
        axes.set_xlim(-0.6, len(names) - 0.4)
    else:
        axes.set_yticks(list(positions), labels, fontsize="small")


def _load_panel(axes: Any, result: Rebalance, names: list[str]) -> None:
    before = {node.name: node for node in result.before.nodes}
    after = {node.name: node for node in result.after.nodes}
    at = np.arange(len(names))
    if len(names) > BARS_NODES:
        for side, colour, label in ((before, BEFORE, "before"), (after, AFTER, "after")):
            ratio = [side[n].share / side[n].fair_share if n in side else np.nan for n in names]
            axes.scatter(at, ratio, s=6, color=colour, label=label, linewidths=0)
        axes.axhline(1.0, color=FAIR, linewidth=1, label="fair share (1.0)")
        axes.set_ylabel("keys / fair share")
    else:
        width = 0.4
        for side, offset, colour, label in (
            (before, -width / 2, BEFORE, "keys before"),
            (after, width / 2, AFTER, "keys after"),
        ):
            keys = [side[n].keys if n in side else 0 for n in names]
            axes.bar(at + offset, keys, width, color=colour, label=label, linewidth=0)
            fair = [side[n].fair_share * result.keys if n in side else np.nan for n in names]
            axes.hlines(
                fair,
                at + offset - width / 2,
                at + offset + width / 2,
                color=FAIR,
                linewidth=1.5,
                label="fair share\n(the weight's share\nof the keys)" if side is after else None,
            )
        axes.set_ylabel("keys")
        axes.yaxis.set_major_formatter("{x:,.0f}")
    _node_axis(axes, names)
    b, a = result.before, result.after
    if b.weights_equal and a.weights_equal:
        figures = f"peak-to-mean {b.summary.peak_to_mean:.3f} -> {a.summary.peak_to_mean:.3f}"
    else:
        figures = f"peak-to-fair {b.peak_to_fair:.3f} -> {a.peak_to_fair:.3f}"
    axes.set_title(f"load per node ({figures})", loc="left", fontsize="medium")
    axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small", frameon=False)
    axes.margins(y=0.08)


def _compact(count: int) -> str:
    for limit, suffix in ((1_000_000_000, "G"), (1_000_000, "M"), (1_000, "k")):
        if count >= limit:
            value = count / limit
            return f"{value:.0f}{suffix}" if value >= 100 else f"{value:.3g}{suffix}"
    return str(count)


def _matrix_panel(axes: Any, result: Rebalance) -> None:
    rows = natural_sorted(result.from_nodes)
    columns = natural_sorted(result.to_nodes)
    row_at = {name: i for i, name in enumerate(rows)}
    column_at = {name: j for j, name in enumerate(columns)}
    image = np.ones((len(rows), len(columns), 3))
    colours = {key: np.array(_rgb(value)) for key, value in _KINDS.items()}
    size = "small" if max(len(rows), len(columns)) <= 12 else "x-small"
    moved = [n for (a, b), n in result.cells().items() if a != b]
    scale = math.log1p(max(moved, default=1))
    for (source, target), count in result.cells().items():
        i, j = row_at[source], column_at[target]
        if source == target:
            kind, strength = "stayed", 1.0
        else:
            kind = "necessary" if result.is_necessary(source, target) else "excess"
            strength = 0.3 + 0.7 * math.log1p(count) / scale  # few keys: a paler cell
        image[i, j] = 1 - strength * (1 - colours[kind])
        axes.text(
            j,
            i,
            _compact(count),
            ha="center",
            va="center",
            fontsize=size,
            color="white" if kind != "stayed" and strength > 0.6 else "black",
            fontweight="normal" if kind == "stayed" else "bold",
        )
    axes.imshow(image, aspect="auto", interpolation="nearest")
    axes.set_xticks(range(len(columns)), columns, rotation=90 if len(columns) > 8 else 0)
    axes.set_yticks(range(len(rows)), rows)
    axes.tick_params(labelsize="small")
    axes.set_xlabel("owner after")
    axes.set_ylabel("owner before")
    axes.set_title("keys from -> to", loc="left", fontsize="medium")
    _kind_legend(axes)


_KINDS = {"stayed": STAYED, "necessary": NECESSARY, "excess": EXCESS}


def _rgb(colour: str) -> tuple[float, float, float]:
    from matplotlib.colors import to_rgb

    return to_rgb(colour)


def _kind_legend(axes: Any) -> None:
    from matplotlib.patches import Patch

    labels = {
        "stayed": "stayed",
        "necessary": "moved, necessary",
        "excess": "moved, excess\n(a perfect placement\navoids it)",
    }
    axes.legend(
        handles=[Patch(color=_KINDS[kind], label=labels[kind]) for kind in _KINDS],
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        fontsize="small",
        frameon=False,
    )


def _flow_panel(axes: Any, result: Rebalance, names: list[str]) -> None:
    at = {name: i for i, name in enumerate(names)}
    flows = {kind: (np.zeros(len(names)), np.zeros(len(names))) for kind in ("necessary", "excess")}
    for (source, target), count in result.moved_pairs().items():
        out, into = flows["necessary" if result.is_necessary(source, target) else "excess"]
        out[at[source]] -= count
        into[at[target]] += count
    positions = np.arange(len(names))
    edges = np.arange(len(names) + 1) - 0.5
    for direction in (0, 1):
        base = np.zeros(len(names))
        for kind in ("necessary", "excess"):
            values = flows[kind][direction]
            label = None if direction else _legend_label(kind)
            if len(names) > BARS_NODES:
                axes.stairs(
                    base + values, edges, baseline=base, fill=True, color=_KINDS[kind], label=label
                )
            else:
                axes.bar(
                    positions,
                    values,
                    0.8,
                    bottom=base,
                    color=_KINDS[kind],
                    linewidth=0,
                    label=label,
                )
            base = base + values
    axes.axhline(0, color="black", linewidth=0.8)
    _node_axis(axes, names)
    axes.set_ylabel("keys moved")
    necessary, excess = result.necessary, result.excess
    axes.set_title(
        f"keys moved per node, out (down) and in (up): {necessary:,} necessary, "
        f"{excess:,} excess ({len(names):,} nodes: too many for a from->to matrix)",
        loc="left",
        fontsize="medium",
    )
    axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small", frameon=False)
    axes.yaxis.set_major_formatter("{x:,.0f}")


def _legend_label(kind: str) -> str:
    return "necessary" if kind == "necessary" else "excess\n(a perfect placement\navoids it)"
