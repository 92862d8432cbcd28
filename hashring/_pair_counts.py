"""Keys counted by (node before, node after) pair, chunk by chunk.

:class:`PairCounts` is what :func:`hashring._analysis.rebalance` counts with: it takes the
owners of one chunk of keys at a time, so a stream of any length is analysed in memory that
grows with the from->to pairs the keys took (at most :data:`DENSE_CELLS` cells through a dense
array, else one sorted cell per non-empty pair), never with the keys and never with nodes².
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

__all__ = ["DENSE_CELLS", "PairCounts"]

I64Array = npt.NDArray[np.int64]

DENSE_CELLS = 1 << 20
"""Up to this many from->to pairs (about 1,000 nodes on each side) the counts live in a dense
array (8 MiB at most); above it, as sorted non-empty cells."""
_MERGE_CELLS = 1 << 20
"""Sparse counting folds the chunks' cells into the sorted total once they hold this many
cells, or as many as the total, whichever is more (amortised O(log) work per cell)."""


class PairCounts:
    """Running from->to key counts over a stream of owner chunks.

    ``from_nodes`` and ``to_nodes`` name the nodes before and after (the order the cells
    index). Up to ``dense_cells`` from->to pairs are counted in a dense array, more as sparse
    cells folded together once ``merge_cells`` of them wait (the defaults suit any fleet;
    other values change the cost, never the counts). Not thread-safe: one stream feeds one
    instance.

    >>> counts = PairCounts(["a", "b"], ["a", "b", "c"])
    >>> counts.add(["a", "b"], ["a", "c"])
    >>> counts.add([], [])
    >>> counts.add(["b"], ["c"])
    >>> [array.tolist() for array in counts.cells()], counts.keys
    ([[0, 1], [0, 2], [1, 2]], 3)
    """

    def __init__(
        self,
        from_nodes: Sequence[str],
        to_nodes: Sequence[str],
        *,
        dense_cells: int = DENSE_CELLS,
        merge_cells: int = _MERGE_CELLS,
    ) -> None:
        self.from_nodes = tuple(from_nodes)
        self.to_nodes = tuple(to_nodes)
        self._from_index = {name: i for i, name in enumerate(self.from_nodes)}
        self._to_index = {name: j for j, name in enumerate(self.to_nodes)}
        self._width = len(self.to_nodes)
        self._pairs = len(self.from_nodes) * self._width  # < 2**63 for any real fleet
        self._dense: I64Array | None = None
        self._merge_cells = merge_cells
        if self._pairs <= dense_cells:
            self._dense = np.zeros(self._pairs, dtype=np.int64)
        self._cells: I64Array = np.zeros(0, dtype=np.int64)
        self._cell_keys: I64Array = np.zeros(0, dtype=np.int64)
        self._pending: list[tuple[I64Array, I64Array]] = []
        self._pending_cells = 0
        self.keys = 0
        """Keys counted so far."""

    def add(self, owners_before: Sequence[str], owners_after: Sequence[str]) -> None:
        """Count one chunk: ``owners_before[i]`` and ``owners_after[i]`` own key ``i``.

        O(chunk) plus, for dense counts, O(min(chunk log chunk, pairs)); sparse counts merge
        amortised O(log) per new cell. An empty chunk is a no-op.

        Raises:
            ValueError: the two owner lists differ in length.
            KeyError: an owner is not one of the named nodes.
        """
        count = len(owners_before)
        if len(owners_after) != count:
            raise ValueError(
                f"{count} owners before but {len(owners_after)} after: one of each per key"
            )
        if not count:
            return
        flat = _codes(owners_before, self._from_index) * self._width
        flat += _codes(owners_after, self._to_index)
        self.keys += count
        if self._dense is not None:
            if count * 8 < self._pairs:  # a short chunk: do not sweep the whole array
                np.add.at(self._dense, flat, 1)
            else:
                self._dense += np.bincount(flat, minlength=self._pairs)
            return
        cells, keys = np.unique(flat, return_counts=True)
        self._pending.append((cells, keys.astype(np.int64)))
        self._pending_cells += len(cells)
        if self._pending_cells >= max(len(self._cells), self._merge_cells):
            self._merge()

    def cells(self) -> tuple[I64Array, I64Array, I64Array]:
        """The non-empty cells in row-major order: (rows, columns, keys), rows indexing
        ``from_nodes`` and columns ``to_nodes``. O(cells), or O(pairs) when dense."""
        if self._dense is not None:
            flat = np.flatnonzero(self._dense).astype(np.int64)
            keys = self._dense[flat]
        else:
            self._merge()
            flat, keys = self._cells, self._cell_keys
        rows, columns = np.divmod(flat, self._width) if self._width else (flat, flat)
        return rows.astype(np.int64), columns.astype(np.int64), keys.astype(np.int64)

    def _check(self) -> None:
        """Verify the invariants; raise AssertionError if one is broken. O(cells)."""
        rows, columns, keys = self.cells()
        flat = rows * self._width + columns
        if not (int(keys.sum()) == self.keys and bool((keys > 0).all())):
            raise AssertionError("PairCounts invariant broken: cells hold every key, none empty")
        if not (bool((np.diff(flat) > 0).all()) and bool((flat < max(self._pairs, 1)).all())):
            raise AssertionError("PairCounts invariant broken: cells distinct, sorted, in range")

    def _merge(self) -> None:
        if not self._pending:
            return
        cells = np.concatenate([self._cells, *(c for c, _ in self._pending)])
        keys = np.concatenate([self._cell_keys, *(k for _, k in self._pending)])
        self._pending.clear()
        self._pending_cells = 0
        order = np.argsort(cells, kind="stable")
        cells, keys = cells[order], keys[order]
        starts = np.flatnonzero(np.diff(cells, prepend=np.int64(-1)))
        self._cells = cells[starts]
        self._cell_keys = np.add.reduceat(keys, starts).astype(np.int64)


def _codes(owners: Sequence[str], index: dict[str, int]) -> I64Array:
    return np.fromiter(map(index.__getitem__, owners), dtype=np.int64, count=len(owners))
