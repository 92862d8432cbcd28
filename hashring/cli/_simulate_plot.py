"""``hashring simulate --plot``: the strategies side by side in one PNG.

Three panels, one row per strategy in each, titled with the workload:

- utilisation per node (a grid: strategies down, nodes across; white at 0%, blue towards
  100%, red above 100%, where a node is offered more work than it can do), with the
  percentage in each cell up to :data:`LABELLED_NODES` nodes;
- latency p50, p99 and p99.9 (seconds, log scale): a dot for each, joined by a line;
- affinity: the fraction of requests served on their key's home node.
"""

from __future__ import annotations

import numpy as np

from .._simulation import Outcome
from ._common import UsageError
from ._plot import check_plotting, save_figure

__all__ = ["LABELLED_NODES", "MAX_PLOTTED_NODES", "check_plot", "plot_simulation"]

MAX_PLOTTED_NODES = 200
"""Most nodes a plot draws (the grid's columns)."""
LABELLED_NODES = 16
"""Up to this many nodes each grid cell shows its percentage and each column its name."""


def check_plot(path: str, nodes: int) -> None:
    """Fail before any work when ``--plot path`` cannot be honoured.

    Raises:
        UsageError: not a ``.png`` path, matplotlib missing, more than
            :data:`MAX_PLOTTED_NODES` nodes.
    """
    check_plotting(path)
    if nodes > MAX_PLOTTED_NODES:
        raise UsageError(f"--plot draws at most {MAX_PLOTTED_NODES} nodes, not {nodes:,}")


def plot_simulation(outcomes: list[Outcome], title: str, path: str) -> None:
    """Write the PNG described in the module docstring to ``path``. O(strategies x nodes)
    plus matplotlib's drawing.

    Raises:
        UsageError: matplotlib is not installed, or the file cannot be written.
    """
    check_plotting(path)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import LinearSegmentedColormap

    names = [node.name for node in outcomes[0].nodes]
    strategies = [outcome.strategy for outcome in outcomes]
    figure = plt.figure(
        figsize=(max(11.0, min(0.5 * len(names) + 6, 20.0)), 9), layout="constrained"
    )
    grid = figure.add_gridspec(2, 2, height_ratios=[1.2, 1], width_ratios=[2, 1])
    utilisation = figure.add_subplot(grid[0, :])
    latency = figure.add_subplot(grid[1, 0])
    affinity = figure.add_subplot(grid[1, 1], sharey=latency)
    figure.suptitle(title, fontsize="medium", fontweight="bold")

    values = np.array([[node.utilisation for node in outcome.nodes] for outcome in outcomes])
    colours = LinearSegmentedColormap.from_list(
        "utilisation", [(0.0, "#ffffff"), (0.5, "#4e79a7"), (0.5, "#f4a582"), (1.0, "#b2182b")]
    )
    image = utilisation.imshow(
        np.clip(values, 0, 2), cmap=colours, vmin=0, vmax=2, aspect="auto", interpolation="nearest"
    )
    if len(names) <= LABELLED_NODES:
        for (i, j), value in np.ndenumerate(values):
            utilisation.text(
                j,
                i,
                f"{value:.0%}",
                ha="center",
                va="center",
                fontsize="small",
                color="white" if value > 0.7 else "black",
            )
        utilisation.set_xticks(range(len(names)), names, fontsize="small")
    else:
        utilisation.set_xlabel(f"{len(names):,} nodes")
        utilisation.set_xticks([])
    utilisation.set_yticks(range(len(strategies)), strategies, fontsize="small")
    utilisation.set_title(
        "utilisation per node (busy time / window; red: above 100%, the queue grows)",
        loc="left",
        fontsize="medium",
    )
    bar = figure.colorbar(image, ax=utilisation, ticks=[0, 0.5, 1, 1.5, 2], shrink=0.8)
    bar.ax.set_yticklabels(["0%", "50%", "100%", "150%", ">=200%"])

    rows = np.arange(len(strategies))
    for key, marker, label in (("p50", "o", "p50"), ("p99", "s", "p99"), ("p999", "^", "p99.9")):
        points = [outcome.latency[key] for outcome in outcomes]
        latency.scatter(points, rows, marker=marker, label=label, zorder=3)
    for row, outcome in enumerate(outcomes):
        latency.plot(
            [outcome.latency["p50"], outcome.latency["p999"]], [row, row], color="#bbbbbb", zorder=1
        )
    latency.set_xscale("log")
    latency.set_yticks(rows, strategies, fontsize="small")
    latency.invert_yaxis()
    latency.set_xlabel("seconds from arrival to departure (log scale)")
    latency.set_title("latency", loc="left", fontsize="medium")
    latency.legend(fontsize="small", loc="lower right")
    latency.grid(axis="x", which="both", alpha=0.3)

    shares = [outcome.affinity for outcome in outcomes]
    affinity.barh(rows, shares, color="#59a14f")
    for row, share in enumerate(shares):
        inside = share > 0.5
        affinity.text(
            share - 0.02 if inside else share + 0.02,
            row,
            f"{share:.2f}",
            ha="right" if inside else "left",
            va="center",
            fontsize="small",
            color="white" if inside else "black",
        )
    affinity.set_xlim(0, 1)
    affinity.set_xlabel("fraction of requests served on their key's home node")
    affinity.set_title("affinity", loc="left", fontsize="medium")
    affinity.tick_params(labelleft=False)
    save_figure(figure, path, plt)
