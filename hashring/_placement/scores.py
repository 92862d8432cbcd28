"""Rendezvous scoring of one set of nodes, shared by Rendezvous (its ranking) and Maglev
(its preference lists after the owner). See ``rendezvous`` for the scoring rule.

Two ways to the same scores:

* numpy (:meth:`RendezvousScores.scores`): a matrix of keys x nodes, for batches and for
  large node sets;
* Python integers (:meth:`RendezvousScores.best_one`, up to :data:`INT_PATH_NODES` nodes,
  :data:`INT_PATH_WEIGHTED_NODES` with unequal weights):
  the SplitMix64 mix of all nodes at once in one integer of 128 bits per node (lanes: the
  64-bit value in the low half, so a lane's product by a 64-bit constant never reaches the
  next lane, and a mask after each product keeps the lanes apart). The mix's first
  xor-shift is linear over bits, so the node seeds' share of it is computed once per node
  set. A handful of integer operations then replaces some fifteen numpy calls, whose fixed
  cost dominates a single lookup over a few nodes. The lanes hold exactly the 64-bit mixes
  numpy computes. With unequal weights the floats ``w / -ln(u)`` are computed with
  ``math.log``; numpy's ``log`` may round differently in the last bits (SIMD code), so when
  the two best scores lie within a relative 2**-30 of each other, or a score divides by
  zero, the lookup defers to numpy and the answer is numpy's, bit for bit.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Mapping

import numpy as np
import numpy.typing as npt

from .hashes import GOLDEN64, MASK32, MASK64, U32Array, mix64_array, name_seed

__all__ = [
    "INT_PATH_NODES",
    "INT_PATH_WEIGHTED_NODES",
    "RendezvousScores",
    "require_scoring",
]

_BATCH_CELLS = 1 << 20  # keys x nodes scored per numpy pass in get_node_many

INT_PATH_NODES = 48
"""Up to this many nodes a single lookup scores with Python integers, above it with numpy
(callgrind: 46,000 instructions at 32 nodes, numpy's 105,000 at any size; kept at 48,
where the integer path was measured last to cost about numpy's)."""
INT_PATH_WEIGHTED_NODES = 24
"""The same for unequal weights, whose floats cost about 2,800 instructions per node more
(148,000 at 32 nodes against numpy's 141,000; 54,500 at 8)."""

_LANE = 128
_MIX1 = 0xBF58476D1CE4E5B9
_MIX2 = 0x94D049BB133111EB
_TOP = (1 << 53) - 1  # a mix whose top 53 bits are all ones gives u == 1.0 (see best_one)
_CLOSE = 1.0 - 2.0**-30  # scores closer than this ratio are left to numpy
_TOP_BYTE_NODES = 12  # from here on best_one compares the lanes' top bytes first


class RendezvousScores:
    """The scoring of one set of nodes: immutable, shared by Rendezvous and Maglev."""

    __slots__ = (
        "equal",
        "lane_bytes",
        "lane_mask",
        "lane_ones",
        "lane_seeds",
        "lane_words",
        "lanes_equal",
        "names",
        "names_obj",
        "seeds",
        "weight_list",
        "weights",
    )

    def __init__(self, weights: Mapping[str, float]) -> None:
        self.names = tuple(sorted(weights))
        self.names_obj = np.array(self.names, dtype=object)
        seeds = [name_seed(name) for name in self.names]
        self.seeds = np.array(seeds, dtype=np.uint64)
        self.weight_list = [weights[name] for name in self.names]
        self.weights = np.array(self.weight_list, dtype=np.float64)
        self.equal = len(set(weights.values())) <= 1
        # The integer path's lanes (see the module docstring): a 1 in every lane, the low
        # 64 bits of every lane, and each seed after the mix's first xor-shift.
        self.lane_ones = sum(1 << (_LANE * i) for i in range(len(seeds)))
        self.lane_mask = MASK64 * self.lane_ones
        self.lane_seeds = sum((s ^ (s >> 30)) << (_LANE * i) for i, s in enumerate(seeds))
        self.lane_bytes = _LANE // 8 * len(seeds)
        # The low 64 bits of every lane, from the lanes' little-endian bytes, in one call.
        self.lane_words = struct.Struct("<" + "Q8x" * len(seeds)).unpack
        # best_one's first test: equal weights and few enough nodes for the integer path.
        self.lanes_equal = self.equal and len(seeds) <= INT_PATH_NODES

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

    def mixes(self, position: int) -> list[int]:
        """The 64-bit mix of every node for one position, computed with Python integers.

        Exactly the values :meth:`scores` gives with equal weights. O(n) integer work in C.
        """
        spread = (position & MASK32) * GOLDEN64 & MASK64
        mask = self.lane_mask
        lanes = ((spread ^ (spread >> 30)) * self.lane_ones ^ self.lane_seeds) * _MIX1 & mask
        lanes = ((lanes ^ (lanes >> 27)) & mask) * _MIX2 & mask
        lanes ^= lanes >> 31
        return list(self.lane_words(lanes.to_bytes(self.lane_bytes, "little")))

    def best_one(self, position: int) -> int:
        """Index of the highest-scoring node for one position (ties: name order).

        The same answer as :meth:`best`; the integer path up to :data:`INT_PATH_NODES`
        nodes (:data:`INT_PATH_WEIGHTED_NODES` with unequal weights), numpy above. O(n).

        With equal weights the mixes are compared before their last step, ``x ^ (x >> 31)``:
        a right xor-shift keeps the order of 64-bit values (the highest bit where two
        values differ keeps its place and value), so the argmax and the ties are the same,
        and the lanes' products need no last mask (only each lane's low 64 bits are read).
        From :data:`_TOP_BYTE_NODES` nodes the lanes' top bytes are compared first (one
        C-level pass over a bytes slice); only a shared top byte reads the whole words.
        """
        if not self.lanes_equal:
            if self.equal or len(self.names) > INT_PATH_WEIGHTED_NODES:
                return int(self.best(np.array([position & MASK32], dtype=np.uint32))[0])
            return self._best_weighted(position)
        spread = (position & MASK32) * GOLDEN64 & MASK64
        mask = self.lane_mask
        lanes = ((spread ^ (spread >> 30)) * self.lane_ones ^ self.lane_seeds) * _MIX1 & mask
        lanes = ((lanes ^ (lanes >> 27)) & mask) * _MIX2
        data = lanes.to_bytes(self.lane_bytes, "little")
        if len(self.names) >= _TOP_BYTE_NODES:
            tops = data[7::16]  # the top byte of each lane's low 64 bits
            top = max(tops)
            if tops.count(top) == 1:
                return tops.index(top)
        words = self.lane_words(data)
        return words.index(max(words))

    def _best_weighted(self, position: int) -> int:
        """:meth:`best_one` with unequal weights: ``w / -ln(u)`` with ``math.log``, numpy's
        answer where the floats are too close to trust (see the module docstring)."""
        mixed = self.mixes(position)
        if max(mixed) >> 11 == _TOP:  # u == 1.0: numpy scores it -inf (a division by -0.0)
            return int(self.best(np.array([position & MASK32], dtype=np.uint32))[0])
        log = math.log
        scores = [
            w / -log(((m >> 11) + 0.5) * 2.0**-53)
            for w, m in zip(self.weight_list, mixed, strict=True)
        ]
        best = max(scores)
        index = scores.index(best)
        scores[index] = -math.inf
        if max(scores) >= best * _CLOSE:  # too close to trust a differently rounded log
            return int(self.best(np.array([position & MASK32], dtype=np.uint32))[0])
        return index

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
