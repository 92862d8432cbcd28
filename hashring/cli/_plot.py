"""``hashring report --plot``: load per node before and after, and the movement heatmap."""

from __future__ import annotations

from typing import Any

import numpy as np

from .._analysis import Rebalance
from ._common import UsageError


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


def plot_report(result: Rebalance, path: str) -> None:
    """Write a PNG with two panels: keys per node before/after, and the from->to matrix.

    The heatmap's colour scale is logarithmic, so the few keys that move stand out next to
    the many that stay.

    Raises:
        UsageError: matplotlib is not installed, or the file cannot be written.
    """
    check_plotting(path)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm

    names = sorted(set(result.from_nodes) | set(result.to_nodes))
    before = {node.name: node.keys for node in result.before.nodes}
    after = {node.name: node.keys for node in result.after.nodes}
    width = max(8.0, min(0.25 * len(names), 40.0))
    figure, (bars, heat) = plt.subplots(
        2, 1, figsize=(width, 10), gridspec_kw={"height_ratios": [1, 1.4]}
    )
    positions = np.arange(len(names))
    bars.bar(positions - 0.2, [before.get(n, 0) for n in names], 0.4, label="before")
    bars.bar(positions + 0.2, [after.get(n, 0) for n in names], 0.4, label="after")
    for side, style in ((result.before, "--"), (result.after, ":")):
        bars.axhline(side.summary.mean, linestyle=style, color="grey", linewidth=1)
    bars.set_xticks(positions, names, rotation=90 if len(names) > 12 else 0, fontsize="small")
    bars.set_ylabel("keys")
    bars.set_title(
        f"load per node: peak-to-mean {result.before.summary.peak_to_mean:.3f} -> "
        f"{result.after.summary.peak_to_mean:.3f} (dashed/dotted: mean before/after)"
    )
    bars.legend()
    matrix = result.matrix.astype(float)
    image: Any = heat.imshow(
        np.where(matrix > 0, matrix, np.nan),
        norm=LogNorm(vmin=1, vmax=max(float(matrix.max()), 1.0)),
        cmap="viridis",
        aspect="auto",
    )
    heat.set_xticks(range(len(result.to_nodes)), result.to_nodes, rotation=90, fontsize="small")
    heat.set_yticks(range(len(result.from_nodes)), result.from_nodes, fontsize="small")
    heat.set_xlabel("owner after")
    heat.set_ylabel("owner before")
    heat.set_title(
        f"keys from -> to: {result.moved:,} moved ({result.moved_fraction:.2%}, "
        f"ideal {result.ideal_fraction:.2%})"
    )
    figure.colorbar(image, ax=heat, label="keys (log scale)")
    figure.tight_layout()
    try:
        figure.savefig(path, dpi=100)
    except OSError as exc:
        raise UsageError(f"--plot {path}: cannot write: {exc.strerror}") from None
    finally:
        plt.close(figure)
