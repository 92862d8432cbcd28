"""Where a command's keys go, as numpy arrays: each key's node as a position among the node
names (:class:`Owners`), and the keys grouped per node from it. No I/O.

Splitting a 1,000-key MGET or MSET per node and putting the answers back in the caller's
order is the part of a multi-key command that is paid per key; here it is a few numpy
calls (a stable sort of the node positions, a count per node), a gather of the arguments and
a scatter of the answers back, on object arrays, instead of a Python loop over the keys.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from hashring._placement.nodes import IndexArray

__all__ = ["SMALL_BATCH", "Grouping", "Owners"]


class Owners:
    """The node of each key of a command: ``names[index[k]]`` owns key ``k``.

    ``names`` need not be sorted, and may hold nodes no key goes to (a placement's sorted
    node names, as :meth:`hashring.HashRing.get_index_many` gives them).
    """

    __slots__ = ("_grouping", "index", "names")

    def __init__(self, index: IndexArray, names: Sequence[str]) -> None:
        self.index = index
        self.names = names
        self._grouping: Grouping | None = None

    @classmethod
    def of(cls, owners: Sequence[str]) -> Owners:
        """The owners given as one node name per key. O(keys)."""
        names = sorted(set(owners))
        position = {name: i for i, name in enumerate(names)}
        index = np.fromiter(map(position.__getitem__, owners), dtype=np.intp, count=len(owners))
        return cls(index, tuple(names))

    def __len__(self) -> int:
        return int(self.index.size)

    def tolist(self) -> list[str]:
        """One node name per key, in key order. O(keys)."""
        names = self.names
        return [names[i] for i in self.index.tolist()]

    def nodes(self) -> list[str]:
        """The distinct nodes, sorted by name. O(keys) (once; kept with the grouping)."""
        return self.grouping().nodes

    def grouping(self) -> Grouping:
        """The keys grouped per node (computed once). O(keys log keys) in numpy; in Python
        below :data:`SMALL_BATCH` keys."""
        grouping = self._grouping
        if grouping is None:
            if self.index.size < SMALL_BATCH:
                grouping = Grouping.of_names(self.tolist())
            else:
                grouping = Grouping.of(self.index, self.names)
            self._grouping = grouping
        return grouping


SMALL_BATCH = 16
"""Below this many keys, a Python loop places and groups them faster than numpy's calls."""


class Grouping:
    """Keys grouped per node: ``order`` lists the key positions node after node (nodes
    sorted by name, each node's keys in the caller's order), ``sizes`` how many keys each
    of ``nodes`` has. ``order`` is a numpy array, or a list for a few keys
    (:meth:`of_names`), where plain Python is faster than numpy's calls."""

    __slots__ = ("nodes", "order", "sizes")

    def __init__(self, nodes: list[str], order: IndexArray | list[int], sizes: list[int]) -> None:
        self.nodes = nodes
        self.order = order
        self.sizes = sizes

    @classmethod
    def of(cls, index: IndexArray, names: Sequence[str]) -> Grouping:
        """Group the keys of ``index`` (positions in ``names``). O(k log k), in numpy."""
        counts = np.bincount(index, minlength=len(names))
        present = np.flatnonzero(counts).tolist()
        nodes = [names[i] for i in present]
        if nodes != sorted(nodes):  # names not sorted: sort the keys by their node's name
            rank = np.zeros(len(names), dtype=np.intp)
            ordered = sorted(present, key=names.__getitem__)
            rank[ordered] = np.arange(len(ordered))
            index = rank[index]
            present = ordered
            nodes = [names[i] for i in present]
        order: IndexArray = np.argsort(index, kind="stable")
        return cls(nodes, order, counts[present].tolist())

    @classmethod
    def of_names(cls, owners: Sequence[str]) -> Grouping:
        """Group keys given as one node name each, in plain Python (for a few keys). O(k)."""
        groups: dict[str, list[int]] = {}
        for index, owner in enumerate(owners):
            groups.setdefault(owner, []).append(index)
        nodes = sorted(groups)
        order = [index for node in nodes for index in groups[node]]
        return cls(nodes, order, [len(groups[node]) for node in nodes])

    def take(self, items: Sequence[Any], step: int = 1) -> list[Any]:
        """``items`` reordered node after node: item ``order[j]`` at ``j`` (with ``step`` > 1,
        the ``step`` items of each key, kept together: MSET's key and value). Items are
        moved as they are, whatever their type. O(items), in numpy.

        Raises:
            ValueError: ``items`` is not ``step`` items per key.
        """
        order = self.order
        if len(items) != len(order) * step:
            raise ValueError(
                f"{len(items)} arguments for {len(order)} keys of {step} arguments each"
            )
        if isinstance(order, list):
            return [items[i * step + j] for i in order for j in range(step)]
        held = np.fromiter(items, dtype=object, count=len(items))  # each item as is
        if step > 1:
            held = held.reshape(-1, step)
        taken: list[Any] = held[self.order].ravel().tolist()
        return taken

    def restore(self, answers: Sequence[Sequence[Any]]) -> list[Any]:
        """The answers of each node (one per key, in ``nodes`` order) back in the caller's
        key order. O(keys).

        Raises:
            ValueError: a node answered a different number of values than it has keys.
        """
        flat: list[Any] = []
        for node, size, answer in zip(self.nodes, self.sizes, answers, strict=True):
            if len(answer) != size:
                raise ValueError(f"node {node!r} answered {len(answer)} values for {size} keys")
            flat.extend(answer)
        order = self.order
        if isinstance(order, list):
            ordered: list[Any] = [None] * len(flat)
            for value, index in zip(flat, order, strict=True):
                ordered[index] = value
            return ordered
        restored = np.empty(len(flat), dtype=object)
        restored[order] = np.fromiter(flat, dtype=object, count=len(flat))  # items as is
        merged: list[Any] = restored.tolist()
        return merged
