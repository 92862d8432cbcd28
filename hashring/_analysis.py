"""Load and movement analysis: how keys spread over nodes, and what a topology change moves.

The measures of the load-balancing study this library grew from, computed over the keys each
node receives: mean load, maximum and minimum, standard deviation, coefficient of variation
and peak-to-mean (maximum over mean; 1.0 is perfect balance). A change is judged by the
fraction of keys that move against the ideal: the least any placement could move, which is
the total variation distance between the old and new weight shares (``1/(n+1)`` for adding
one node to ``n`` equal ones, ``1/n`` for removing one of ``n``).

>>> from hashring import HashRing
>>> before = HashRing(["a", "b", "c"])
>>> after = HashRing(["a", "b", "c", "d"])
>>> report = rebalance([f"k{i}" for i in range(10_000)], before, after)
>>> round(report.ideal_fraction, 4), report.moved == sum(report.moved_pairs().values())
(0.25, True)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ._placement.contract import Placement
from ._placement.keys import Key

__all__ = [
    "DENSE_CELLS",
    "LoadSummary",
    "NodeLoad",
    "Rebalance",
    "Side",
    "ideal_movement",
    "rebalance",
]

I64Array = npt.NDArray[np.int64]

DENSE_CELLS = 1 << 20
"""Up to this many from->to pairs (about 1,000 nodes on each side) :func:`rebalance` counts
through a dense array (8 MiB at most); above it, by sorting the keys' pair codes."""


@dataclass(frozen=True)
class LoadSummary:
    """Summary statistics of per-node key counts (population statistics)."""

    mean: float
    max: int
    min: int
    stdev: float
    cv: float
    """Coefficient of variation: stdev / mean."""
    peak_to_mean: float
    """max / mean: how far the busiest node sits above the mean (1.0 is perfect for equal
    weights; with unequal weights the heavy nodes are meant to sit above it, and
    :attr:`NodeLoad.deviation` is the weighted view)."""

    @classmethod
    def of(cls, counts: Sequence[int]) -> LoadSummary:
        """Summarise ``counts`` (one per node).

        Raises:
            ValueError: ``counts`` is empty.
        """
        if not counts:
            raise ValueError("no nodes to summarise")
        values = np.asarray(counts, dtype=np.float64)
        mean = float(values.mean())
        stdev = float(values.std())
        return cls(
            mean=mean,
            max=int(values.max()),
            min=int(values.min()),
            stdev=stdev,
            cv=stdev / mean if mean else 0.0,
            peak_to_mean=float(values.max()) / mean if mean else 0.0,
        )


@dataclass(frozen=True)
class NodeLoad:
    """One node's load on one side of a change."""

    name: str
    weight: float
    keys: int
    share: float
    """Fraction of all keys this node holds."""
    fair_share: float
    """The node's weight over the total weight: the share a perfect placement gives it."""
    hash_space: float | None
    """For the ring: the fraction of the 32-bit hash space the node owns; else None."""

    @property
    def deviation(self) -> float:
        """share / fair_share - 1: how far the node sits above (+) or below (-) its fair load.

        With equal weights this is the deviation from the mean load.
        """
        return self.share / self.fair_share - 1


@dataclass(frozen=True)
class Side:
    """Per-node loads and their summary, before or after the change."""

    nodes: tuple[NodeLoad, ...]
    summary: LoadSummary


@dataclass(frozen=True)
class Rebalance:
    """The effect of replacing placement ``before`` by ``after`` on a set of keys.

    The from->to counts are kept sparse: one *cell* per (node before, node after) pair that
    at least one key took, so memory grows with the keys and nodes, never with nodes²
    (a fleet of 100,000 nodes has 10^10 pairs, and at most ``keys`` non-empty cells).
    """

    keys: int
    before: Side
    after: Side
    from_nodes: tuple[str, ...]
    """The nodes before the change, sorted: what :attr:`cell_rows` indexes."""
    to_nodes: tuple[str, ...]
    """The nodes after the change, sorted: what :attr:`cell_columns` indexes."""
    cell_rows: I64Array
    """Per non-empty cell, the index of its node in :attr:`from_nodes` (row-major order)."""
    cell_columns: I64Array
    """Per non-empty cell, the index of its node in :attr:`to_nodes`."""
    cell_keys: I64Array
    """Per non-empty cell, the keys owned by its from node before and its to node after."""
    ideal_fraction: float

    @property
    def matrix(self) -> I64Array:
        """The dense from->to matrix: ``matrix[i, j]`` = keys owned by ``from_nodes[i]``
        before and ``to_nodes[j]`` after.

        Built on each call in O(len(from_nodes) x len(to_nodes)) memory: for large fleets use
        :meth:`cells` or :attr:`cell_keys`.
        """
        dense = np.zeros((len(self.from_nodes), len(self.to_nodes)), dtype=np.int64)
        dense[self.cell_rows, self.cell_columns] = self.cell_keys
        return dense

    def cells(self) -> dict[tuple[str, str], int]:
        """(from, to) -> keys for every non-empty cell, including keys that stayed
        (``from == to``), in row-major order. O(cells)."""
        names_b, names_a = self.from_nodes, self.to_nodes
        return {
            (names_b[i], names_a[j]): n
            for i, j, n in zip(
                self.cell_rows.tolist(),
                self.cell_columns.tolist(),
                self.cell_keys.tolist(),
                strict=True,
            )
        }

    @property
    def moved(self) -> int:
        """Keys whose owner changed."""
        return self.keys - self.stayed

    @property
    def stayed(self) -> int:
        """Keys that kept their owner. O(nodes + cells)."""
        to_index = {name: j for j, name in enumerate(self.to_nodes)}
        same = np.fromiter(
            (to_index.get(name, -1) for name in self.from_nodes),
            dtype=np.int64,
            count=len(self.from_nodes),
        )
        return int(self.cell_keys[same[self.cell_rows] == self.cell_columns].sum())

    @property
    def moved_fraction(self) -> float:
        """moved / keys (0.0 for no keys)."""
        return self.moved / self.keys if self.keys else 0.0

    def moved_pairs(self) -> dict[tuple[str, str], int]:
        """(from, to) -> keys moved, for every pair with at least one key, largest first.

        O(cells log cells).
        """
        pairs = {pair: n for pair, n in self.cells().items() if pair[0] != pair[1]}
        return dict(sorted(pairs.items(), key=lambda item: (-item[1], item[0])))


def ideal_movement(before: Mapping[str, float], after: Mapping[str, float]) -> float:
    """The least fraction of keys any placement must move to go from ``before`` to ``after``.

    Both map node names to weights; the answer is the total variation distance between the
    two weight shares, ``sum(|b_i - a_i|) / 2``. O(nodes).

    >>> round(ideal_movement({"a": 1, "b": 1}, {"a": 1, "b": 1, "c": 1}), 12)
    0.333333333333

    Raises:
        ValueError: either side has no nodes or no positive total weight.
    """
    total_before, total_after = math.fsum(before.values()), math.fsum(after.values())
    if not (total_before > 0 and total_after > 0):
        raise ValueError("both topologies need nodes with a positive total weight")
    names = set(before) | set(after)
    return (
        math.fsum(
            abs(before.get(name, 0.0) / total_before - after.get(name, 0.0) / total_after)
            for name in names
        )
        / 2
    )


def rebalance(
    keys: Sequence[Key],
    before: Placement,
    after: Placement,
    *,
    before_owners: Sequence[str] | None = None,
    after_owners: Sequence[str] | None = None,
) -> Rebalance:
    """Place ``keys`` with both placements and measure load and movement.

    ``before_owners`` / ``after_owners`` may pass owners already computed with
    ``get_node_many`` (the report does, to time the passes). Runtime: the two batch passes
    plus O(keys log keys + nodes) numpy work (O(keys + nodes²) for fleets of up to
    :data:`DENSE_CELLS` from->to pairs, where counting through a dense array is faster).
    Memory: O(keys + nodes), whatever the fleet size.

    Raises:
        EmptyRingError: a placement has no nodes.
        InvalidKeyError: a key is neither str nor bytes.
    """
    owners_b = before.get_node_many(keys) if before_owners is None else before_owners
    owners_a = after.get_node_many(keys) if after_owners is None else after_owners
    weights_b, weights_a = dict(before.nodes), dict(after.nodes)
    from_nodes, to_nodes = tuple(sorted(weights_b)), tuple(sorted(weights_a))
    codes_b = _codes(owners_b, from_nodes)
    codes_a = _codes(owners_a, to_nodes)
    pairs = len(from_nodes) * len(to_nodes)
    flat = codes_b * len(to_nodes) + codes_a  # < 2**63 for any fleet a placement can hold
    if pairs <= DENSE_CELLS:
        counts = np.bincount(flat, minlength=pairs)
        cells = np.flatnonzero(counts)
        cell_keys = counts[cells]
    else:
        cells, cell_keys = np.unique(flat, return_counts=True)
    rows, columns = np.divmod(cells.astype(np.int64), len(to_nodes))
    count = len(keys)
    return Rebalance(
        keys=count,
        before=_side(before, from_nodes, np.bincount(codes_b, minlength=len(from_nodes)), count),
        after=_side(after, to_nodes, np.bincount(codes_a, minlength=len(to_nodes)), count),
        from_nodes=from_nodes,
        to_nodes=to_nodes,
        cell_rows=rows,
        cell_columns=columns,
        cell_keys=cell_keys.astype(np.int64),
        ideal_fraction=ideal_movement(weights_b, weights_a),
    )


def _codes(owners: Sequence[str], names: Sequence[str]) -> I64Array:
    index = {name: i for i, name in enumerate(names)}
    return np.fromiter(map(index.__getitem__, owners), dtype=np.int64, count=len(owners))


def _side(placement: Placement, names: Sequence[str], counts: I64Array, keys: int) -> Side:
    weights = dict(placement.nodes)
    total = math.fsum(weights.values())
    shares_fn = getattr(placement, "hash_space_shares", None)
    spaces: Mapping[str, float] = shares_fn() if callable(shares_fn) else {}
    loads: list[int] = counts.tolist()  # Python ints: iterating numpy scalars is slow
    get_space = spaces.get
    nodes = tuple(
        NodeLoad(
            name=name,
            weight=weights[name],
            keys=count,
            share=count / keys if keys else 0.0,
            fair_share=weights[name] / total,
            hash_space=get_space(name),
        )
        for name, count in zip(names, loads, strict=True)
    )
    return Side(nodes, LoadSummary.of(loads))
