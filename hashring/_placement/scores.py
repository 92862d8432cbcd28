"""Rendezvous scoring of one set of nodes, shared by Rendezvous (its ranking) and Maglev
(its preference lists after the owner). See ``rendezvous`` for the scoring rule."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import numpy.typing as npt

from .hashes import GOLDEN64, MASK32, U32Array, mix64_array, name_seed

__all__ = ["RendezvousScores", "require_scoring"]

_BATCH_CELLS = 1 << 20  # keys x nodes scored per numpy pass in get_node_many


class RendezvousScores:
    """The scoring of one set of nodes: immutable, shared by Rendezvous and Maglev."""

    __slots__ = ("equal", "names", "names_obj", "seeds", "weights")

    def __init__(self, weights: Mapping[str, float]) -> None:
        self.names = tuple(sorted(weights))
        self.names_obj = np.array(self.names, dtype=object)
        self.seeds = np.array([name_seed(name) for name in self.names], dtype=np.uint64)
        self.weights = np.array([weights[name] for name in self.names], dtype=np.float64)
        self.equal = len(set(weights.values())) <= 1

    def scores(self, positions: U32Array) -> npt.NDArray[np.float64] | npt.NDArray[np.uint64]:
        """Scores of every node (columns) for every position (rows); higher wins.

        With equal weights the scores are the raw 64-bit mixes (uint64), else floats.
        """
        spread = positions.astype(np.uint64)[:, None] * np.uint64(GOLDEN64)
        mixed = mix64_array(spread ^ self.seeds[None, :])
        if self.equal:
            return mixed
        uniform = ((mixed >> np.uint64(11)).astype(np.float64) + 0.5) * 2.0**-53
        weighted: npt.NDArray[np.float64] = self.weights / -np.log(uniform)
        return weighted

    def ranking(self, position: int) -> npt.NDArray[np.intp]:
        """Node indices from highest to lowest score for one position (ties: name order)."""
        row = self.scores(np.array([position & MASK32], dtype=np.uint32))[0]
        descending = ~row if row.dtype == np.uint64 else -row
        order: npt.NDArray[np.intp] = np.argsort(descending, kind="stable")
        return order

    def best(self, positions: U32Array) -> npt.NDArray[np.intp]:
        """Index of the highest-scoring node for each position, in chunks."""
        rows = max(1, _BATCH_CELLS // max(1, len(self.names)))
        best = np.empty(positions.size, dtype=np.intp)
        for start in range(0, positions.size, rows):
            chunk = positions[start : start + rows]
            best[start : start + rows] = np.argmax(self.scores(chunk), axis=1)
        return best


def require_scoring(
    require: Callable[[bool, str], None], scoring: RendezvousScores, weights: Mapping[str, float]
) -> None:
    """Check that ``scoring`` is exactly the scoring of ``weights`` (through ``require``)."""
    names = tuple(sorted(weights))
    require(scoring.names == names, "scoring covers exactly the sorted node names")
    require(list(scoring.names_obj) == list(names), "name objects follow the names")
    seeds = [name_seed(name) for name in names]
    require(scoring.seeds.tolist() == seeds, "seeds are the names' hashes")
    require(scoring.weights.tolist() == [weights[n] for n in names], "weights follow names")
    require(scoring.equal == (len(set(weights.values())) <= 1), "equal flag is right")
