"""Rendezvous scoring of one set of nodes, shared by Rendezvous (its ranking) and Maglev
(its preference lists after the owner). See ``rendezvous`` for the scoring rule.

Three ways to the same scores:

* numpy (:meth:`RendezvousScores.scores`): a matrix of keys x nodes, for batches and for
  large node sets;
* C (``_rendezvous_native``, an optional extension module built at install time; see
  :data:`NATIVE`): single lookups (:meth:`RendezvousScores.best_one`) and preference lists
  (:meth:`RendezvousScores.ranking`) at any node count, one call of a few tens of
  nanoseconds plus a few per node. The same mixes in a C loop; with unequal weights C's
  ``log`` (the libm ``math.log`` calls) under the same rule as the integer path below
  (best two scores too close to trust, or u == 1.0: numpy answers; for a ranking, any two
  neighbours in the order too close);
* Python integers (:meth:`RendezvousScores.best_one` without the C module, up to
  :data:`INT_PATH_NODES` nodes, :data:`INT_PATH_WEIGHTED_NODES` with unequal weights):
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

try:
    from ._rendezvous_native import MAX_SIZE as _NATIVE_MAX_SIZE
    from ._rendezvous_native import Scorer
except ImportError:  # pragma: no cover - built at install time unless there is no compiler
    _COMPILED: type[Scorer] | None = None
    _NATIVE_MAX_SIZE = 0
else:
    _COMPILED = Scorer

__all__ = [
    "INT_PATH_NODES",
    "INT_PATH_WEIGHTED_NODES",
    "NATIVE",
    "RendezvousScores",
    "require_scoring",
]

NATIVE: type[Scorer] | None = _COMPILED
"""The C scorer (``hashring._placement._rendezvous_native.Scorer``), or None when the
extension module could not be built or imported: then single lookups score with Python
integers and preference lists with numpy, with the same answers. Read when a scoring is
built (tests set it to None to run the Python path)."""

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
        "native",
        "native_best",
        "seeds",
        "weight_list",
        "weights",
    )

    def __init__(self, weights: Mapping[str, float]) -> None:
        self.names = tuple(sorted(weights))
        self.names_obj = np.array(self.names, dtype=object)
        self.weight_list = [weights[name] for name in self.names]
        self.weights = np.array(self.weight_list, dtype=np.float64)
        self.equal = len(set(weights.values())) <= 1
        seeds = [name_seed(name) for name in self.names]
        self.set_seeds(seeds)
        # The integer path's lanes (see the module docstring): a 1 in every lane, the low
        # 64 bits of every lane (and each seed's share, in set_seeds).
        self.lane_ones = sum(1 << (_LANE * i) for i in range(len(seeds)))
        self.lane_mask = MASK64 * self.lane_ones
        self.lane_bytes = _LANE // 8 * len(seeds)
        # The low 64 bits of every lane, from the lanes' little-endian bytes, in one call.
        self.lane_words = struct.Struct("<" + "Q8x" * len(seeds)).unpack
        # best_one's first test: equal weights and few enough nodes for the integer path.
        self.lanes_equal = self.equal and len(seeds) <= INT_PATH_NODES

    def set_seeds(self, seeds: list[int]) -> None:
        """Score with ``seeds`` (one per node, name order) in every form: numpy's array, the
        integer lanes (each seed after the mix's first xor-shift) and the C scorer (when
        :data:`NATIVE` is there and there are 1 to 2**24 nodes). Called once by
        ``__init__``; tests call it again to craft ties. O(n)."""
        self.seeds = np.array(seeds, dtype=np.uint64)
        self.lane_seeds = sum((s ^ (s >> 30)) << (_LANE * i) for i, s in enumerate(seeds))
        native = None
        if NATIVE is not None and 0 < len(seeds) <= _NATIVE_MAX_SIZE:
            weights = None if self.equal else [float(w) for w in self.weight_list]
            native = NATIVE(seeds, weights)
        self.native = native
        self.native_best = native.best if native is not None else None

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

    def ranking(self, position: int) -> list[int]:
        """Node indices from highest to lowest score for one position (ties: name order).

        In C when :data:`NATIVE` is there (O(n log n), unless numpy must decide: see the
        module docstring), else with numpy (a sort of the node's scores).
        """
        if self.native is not None:
            order = self.native.ranking(position)
            if order is not None:
                return order
        row = self.scores(np.array([position & MASK32], dtype=np.uint32))[0]
        descending = ~row if row.dtype == np.uint64 else -row
        ranked: list[int] = np.argsort(descending, kind="stable").tolist()
        return ranked

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

        The same answer as :meth:`best`. In C when :data:`NATIVE` is there (any node
        count; numpy where the floats are too close to trust). Else the integer path up to
        :data:`INT_PATH_NODES` nodes (:data:`INT_PATH_WEIGHTED_NODES` with unequal
        weights), numpy above. O(n).

        With equal weights the mixes are compared before their last step, ``x ^ (x >> 31)``:
        a right xor-shift keeps the order of 64-bit values (the highest bit where two
        values differ keeps its place and value), so the argmax and the ties are the same,
        and the lanes' products need no last mask (only each lane's low 64 bits are read).
        From :data:`_TOP_BYTE_NODES` nodes the lanes' top bytes are compared first (one
        C-level pass over a bytes slice); only a shared top byte reads the whole words.
        """
        if self.native_best is not None:
            index = self.native_best(position)
            if index >= 0:
                return index
            return int(self.best(np.array([position & MASK32], dtype=np.uint32))[0])
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
    native = scoring.native
    if native is not None:
        require(native.size == len(names), "the C scorer covers every node")
        require(native.equal == scoring.equal, "the C scorer compares as the weights say")
        require(native.mixes(0) == scoring.mixes(0), "the C scorer mixes the seeds")
    require((scoring.native_best is None) == (native is None), "best_one's C call is the scorer's")
