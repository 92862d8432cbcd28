"""Load and movement analysis: how keys spread over nodes, and what a topology change moves.

The measures of the load-balancing study this library grew from, computed over the keys each
node receives: mean load, maximum and minimum, standard deviation, coefficient of variation
and peak-to-mean (maximum over mean; 1.0 is perfect balance). A change is judged by the
fraction of keys that move against the ideal: the least any placement could move, which is
the total variation distance between the old and new weight shares (``1/(n+1)`` for adding
one node to ``n`` equal ones, ``1/n`` for removing one of ``n``).

The ideal is an expectation: hashed keys land on nodes at random, so a sample of ``N`` keys
moves ``Binomial(N, ideal)`` keys under a perfect placement, and :meth:`Rebalance.ideal_band`
gives that spread. What a change moves splits into *necessary* keys, which go from a node
whose fair share shrinks (or that is removed) to one whose fair share grows (or that is
added), the only moves a perfect placement makes, and *excess* keys, every other move (between
two nodes whose shares both grew, both shrank or stayed, or against the change). With equal
weights, :attr:`Side.peak_to_fair` and :attr:`Side.cv_of_fair` equal peak-to-mean and the
coefficient of variation; with unequal weights they judge each node against its own fair
share, where the raw figures would count the intended imbalance as skew.

>>> from hashring import HashRing
>>> before = HashRing(["a", "b", "c"])
>>> after = HashRing(["a", "b", "c", "d"])
>>> report = rebalance([f"k{i}" for i in range(10_000)], before, after)
>>> round(report.ideal_fraction, 4), report.moved == sum(report.moved_pairs().values())
(0.25, True)
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import numpy.typing as npt

from ._pair_counts import DENSE_CELLS, PairCounts
from ._placement.contract import Placement
from ._placement.keys import Key

__all__ = [
    "CONFIDENCE",
    "DENSE_CELLS",
    "LoadSummary",
    "NodeLoad",
    "Rebalance",
    "Side",
    "ideal_band",
    "ideal_movement",
    "rebalance",
    "rebalance_stream",
]

I64Array = npt.NDArray[np.int64]

CONFIDENCE = 0.95
"""The confidence of :func:`ideal_band` unless told otherwise."""
SHARE_TOLERANCE = 1e-12
"""Relative change of a fair share below which a node neither grows nor shrinks."""


@dataclass(frozen=True)
class LoadSummary:
    """Summary statistics of per-node loads (population statistics): key counts, task counts
    or busy seconds. The study's "load factor" (the sum of loads over the node count) is
    :attr:`mean`; :attr:`peak_to_mean` is the imbalance."""

    mean: float
    max: float
    """The largest load (an ``int`` when every load is one)."""
    min: float
    """The smallest load (an ``int`` when every load is one)."""
    stdev: float
    cv: float
    """Coefficient of variation: stdev / mean."""
    peak_to_mean: float
    """max / mean: how far the busiest node sits above the mean (1.0 is perfect for equal
    weights; with unequal weights the heavy nodes are meant to sit above it, and
    :attr:`NodeLoad.deviation` is the weighted view)."""

    @classmethod
    def of(cls, counts: Sequence[float]) -> LoadSummary:
        """Summarise ``counts`` (one load per node, ints or floats). O(nodes).

        Raises:
            ValueError: ``counts`` is empty, or holds a load that is negative or not finite.
        """
        if not len(counts):
            raise ValueError("no nodes to summarise")
        values = np.asarray(counts, dtype=np.float64)
        if not np.isfinite(values).all() or (values < 0).any():
            raise ValueError("loads must be finite and not negative")
        mean = float(values.mean())
        stdev = float(values.std())
        items = counts.tolist() if isinstance(counts, np.ndarray) else list(counts)
        return cls(
            mean=mean,
            max=max(items),
            min=min(items),
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

    @property
    def weights_equal(self) -> bool:
        """Every node has the same weight (then fair share and mean load coincide)."""
        return len({node.weight for node in self.nodes}) <= 1

    @property
    def load_over_fair(self) -> tuple[float, ...]:
        """Per node, its share of the keys over its fair share (1.0: exactly fair). O(nodes)."""
        return tuple(node.share / node.fair_share for node in self.nodes)

    @property
    def peak_to_fair(self) -> float:
        """The largest load over fair share: how far the node furthest above its fair share
        sits (1.0 is perfect; for equal weights it is :attr:`LoadSummary.peak_to_mean`).
        0.0 for no keys. O(nodes)."""
        return max(self.load_over_fair, default=0.0)

    @property
    def cv_of_fair(self) -> float:
        """Coefficient of variation of load over fair share across nodes (population stdev
        over mean of :attr:`load_over_fair`; for equal weights it is
        :attr:`LoadSummary.cv`). 0.0 for no keys. O(nodes)."""
        ratios = self.load_over_fair
        mean = statistics.fmean(ratios) if ratios else 0.0
        return statistics.pstdev(ratios) / mean if mean else 0.0


@dataclass(frozen=True)
class Rebalance:
    """The effect of replacing placement ``before`` by ``after`` on a set of keys.

    The from->to counts are kept sparse: one *cell* per (node before, node after) pair that
    at least one key took, so memory grows with the nodes and the pairs keys actually took,
    never with the keys themselves (:func:`rebalance_stream`) nor with nodes² (a fleet of
    100,000 nodes has 10^10 pairs, and at most ``keys`` non-empty cells).
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

    @cached_property
    def share_trends(self) -> Mapping[str, int]:
        """Per node (either side): +1 if its fair share grows with the change (or it is
        added), -1 if it shrinks (or it is removed), 0 if it stays (within
        :data:`SHARE_TOLERANCE`). O(nodes) on the first call, then cached."""
        before = {node.name: node.fair_share for node in self.before.nodes}
        after = {node.name: node.fair_share for node in self.after.nodes}
        return {
            name: _trend(before.get(name, 0.0), after.get(name, 0.0))
            for name in (*before, *(name for name in after if name not in before))
        }

    def is_necessary(self, source: str, target: str) -> bool:
        """Whether keys moving ``source`` -> ``target`` are necessary: ``source``'s fair share
        shrinks and ``target``'s grows, the only moves a perfect placement makes. O(1) after
        :attr:`share_trends`."""
        trends = self.share_trends
        return trends.get(source, 0) < 0 < trends.get(target, 0)

    @property
    def necessary(self) -> int:
        """Moved keys that went from a shrinking (or removed) node to a growing (or added)
        one. O(nodes + cells)."""
        return self._movement_split()[0]

    @property
    def excess(self) -> int:
        """Moved keys that are not :attr:`necessary`: the movement a perfect placement
        avoids (0 for the ring, rendezvous and jump when nodes are only added or removed)."""
        return self.moved - self.necessary

    @property
    def between_surviving(self) -> int:
        """Moved keys whose owners before and after both exist on both sides (whatever
        their weights). O(nodes + cells)."""
        return self._movement_split()[1]

    @property
    def necessary_fraction(self) -> float:
        """necessary / keys (0.0 for no keys)."""
        return self.necessary / self.keys if self.keys else 0.0

    @property
    def excess_fraction(self) -> float:
        """excess / keys (0.0 for no keys)."""
        return self.excess / self.keys if self.keys else 0.0

    def ideal_band(self, confidence: float = CONFIDENCE) -> tuple[float, float]:
        """The fractions a perfect placement moves for this many keys, ``confidence`` of
        the time: see :func:`ideal_band`."""
        return ideal_band(self.ideal_fraction, self.keys, confidence)

    def _movement_split(self) -> tuple[int, int]:
        trends_of = self.share_trends
        both = set(self.from_nodes) & set(self.to_nodes)
        rows, columns = self.cell_rows, self.cell_columns

        def flags(names: Sequence[str]) -> tuple[npt.NDArray[np.bool_], ...]:
            trends = np.array([trends_of[n] for n in names], dtype=np.int64)
            survives = np.array([n in both for n in names], dtype=np.bool_)
            return trends < 0, trends > 0, survives

        shrinks, _, survives_b = flags(self.from_nodes)
        _, grows, survives_a = flags(self.to_nodes)
        to_index = {name: j for j, name in enumerate(self.to_nodes)}
        same = np.array([to_index.get(name, -1) for name in self.from_nodes], dtype=np.int64)
        moved = same[rows] != columns if len(self.from_nodes) else np.zeros(0, dtype=np.bool_)
        necessary = shrinks[rows] & grows[columns] & moved
        surviving = survives_b[rows] & survives_a[columns] & moved
        return int(self.cell_keys[necessary].sum()), int(self.cell_keys[surviving].sum())

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


def ideal_band(fraction: float, keys: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The range of fractions a perfect placement moves, ``confidence`` of the time, when
    the ideal is ``fraction`` and ``keys`` hashed keys are placed.

    Each key moves independently with probability ``fraction``, so the moved count is
    ``Binomial(keys, fraction)``; the band is its normal approximation,
    ``fraction +/- z * sqrt(fraction * (1 - fraction) / keys)``, clipped to [0, 1]
    (``z`` = 1.96 for 95%). A moved fraction inside it is the ideal as far as this sample
    can tell. O(1).

    >>> low, high = ideal_band(0.1, 200_000)
    >>> round(low, 5), round(high, 5)
    (0.09869, 0.10131)

    Raises:
        ValueError: ``confidence`` is not strictly between 0 and 1, or ``fraction`` is
            outside [0, 1].
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence {confidence} is not between 0 and 1")
    if not 0 <= fraction <= 1:
        raise ValueError(f"fraction {fraction} is not between 0 and 1")
    if keys <= 0:
        return fraction, fraction
    z = statistics.NormalDist().inv_cdf((1 + confidence) / 2)
    half = z * math.sqrt(fraction * (1 - fraction) / keys)
    return max(0.0, fraction - half), min(1.0, fraction + half)


def _trend(before: float, after: float) -> int:
    if math.isclose(before, after, rel_tol=SHARE_TOLERANCE, abs_tol=0.0):
        return 0
    return 1 if after > before else -1


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
    ``get_node_many`` (one per key, in order). Runtime: the two batch passes plus O(keys)
    numpy work (O(keys log keys) for fleets above :data:`DENSE_CELLS` from->to pairs).
    Memory: the keys and their owners, plus O(nodes + cells); :func:`rebalance_stream`
    analyses keys chunk by chunk in memory independent of their number.

    Raises:
        EmptyRingError: a placement has no nodes.
        InvalidKeyError: a key is neither str nor bytes.
        ValueError: given owners are not one per key.
    """
    owners_b = before.get_node_many(keys) if before_owners is None else before_owners
    owners_a = after.get_node_many(keys) if after_owners is None else after_owners
    if len(owners_b) != len(keys):
        raise ValueError(f"{len(owners_b)} owners for {len(keys)} keys: give one per key")
    counts = PairCounts(sorted(dict(before.nodes)), sorted(dict(after.nodes)))
    counts.add(owners_b, owners_a)
    return _result(counts, before, after)


def rebalance_stream(
    chunks: Iterable[Sequence[Key]], before: Placement, after: Placement
) -> Rebalance:
    """:func:`rebalance` over keys given in chunks: the same result as one call on all the
    keys concatenated (chunks of any size, empty ones included).

    Each chunk is placed with both placements and counted, then dropped: memory is one
    chunk's keys and owners plus O(nodes + cells), whatever the number of keys (cells: the
    non-empty from->to pairs, at most :data:`DENSE_CELLS` counted densely). Runtime: the two
    batch passes plus O(keys) numpy work (O(keys log chunk) above :data:`DENSE_CELLS` pairs).
    ``chunks`` is read once, lazily: a generator may read a file or count progress as it goes.

    >>> from hashring import HashRing
    >>> keys = [f"k{i}" for i in range(1_000)]
    >>> before, after = HashRing(["a", "b"]), HashRing(["a", "b", "c"])
    >>> chunked = rebalance_stream(([], keys[:1], keys[1:600], [], keys[600:]), before, after)
    >>> chunked.cells() == rebalance(keys, before, after).cells()
    True

    Raises:
        EmptyRingError: a placement has no nodes (and a chunk has keys).
        InvalidKeyError: a key is neither str nor bytes.
    """
    counts = PairCounts(sorted(dict(before.nodes)), sorted(dict(after.nodes)))
    for chunk in chunks:
        counts.add(before.get_node_many(chunk), after.get_node_many(chunk))
    return _result(counts, before, after)


def _result(counts: PairCounts, before: Placement, after: Placement) -> Rebalance:
    """The :class:`Rebalance` of finished counts. O(nodes + cells)."""
    rows, columns, cell_keys = counts.cells()
    from_nodes, to_nodes = counts.from_nodes, counts.to_nodes
    loads_b = np.zeros(len(from_nodes), dtype=np.int64)
    loads_a = np.zeros(len(to_nodes), dtype=np.int64)
    np.add.at(loads_b, rows, cell_keys)
    np.add.at(loads_a, columns, cell_keys)
    return Rebalance(
        keys=counts.keys,
        before=_side(before, from_nodes, loads_b, counts.keys),
        after=_side(after, to_nodes, loads_a, counts.keys),
        from_nodes=from_nodes,
        to_nodes=to_nodes,
        cell_rows=rows,
        cell_columns=columns,
        cell_keys=cell_keys,
        ideal_fraction=ideal_movement(dict(before.nodes), dict(after.nodes)),
    )


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
