"""Maglev hashing (Eisenbud et al., NSDI 2016): a lookup table of prime size, O(1) lookups.

Table population (the paper's, with weights)
    Each node walks its own permutation of the table's slots, ``(offset + j * skip) mod M``,
    with ``offset`` and ``skip`` from two MurmurHash3 hashes of its name. Nodes take turns;
    on its turn a node claims the next slot of its permutation that is still empty. With
    equal weights the turns go round-robin in name order, exactly as in the paper; with
    weights, node ``i`` takes its ``k``-th turn at time ``k / w_i`` (equal times: name
    order), so it claims slots in proportion to its weight. Population stops when every
    slot is taken. The table depends only on the node names, weights and ``M``, never on the
    order nodes were added in; with equal weights every node holds ``M / n`` slots, within
    one.

    The turns are processed in vectorised batches: every turn of a batch finds its candidate
    slot at once (a node with several turns takes its first, second, ... empty slots), and
    the batch commits up to the first turn whose slot an earlier turn of the batch also
    wants, which keeps the result exactly that of the sequential algorithm. Batches of about
    sqrt(2 * empty slots) turns rarely collide: 1,000 nodes and M = 655,373 take about 0.7 s.

Movement
    Maglev is not minimal: besides the keys a change must move, some keys move between the
    surviving nodes, because every node's turns shift: at the default 65,537 slots, removing
    one of 3 / 10 / 100 equal nodes also moves 0.03% / 0.2% / 0.5% of all keys between the
    others. The distribution has a long tail when a table holds few slots per node: over
    1,500 random 2-node fleets at 65,537 slots the mean was 0.03%, the 99th percentile 0.2%
    and the worst 2.3%; at 4,099 slots a 2-node fleet once moved 7.5%. Keep ``M`` well above
    100 slots per node. ``bench/algorithms.py`` measures it; ``tests/test_algorithms.py``
    checks mean and worst case on seeded fleets.

Lookups
    ``table[position(key) mod M]``: one hash and one list index. Preference lists start with
    the table's owner and continue in rendezvous order (see ``_rendezvous``), so failover
    targets spread evenly.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import mmh3
import numpy as np
import numpy.typing as npt

from .._errors import EmptyRingError, InvalidOptionError
from .hashes import MASK32, hash_scheme
from .keys import Key, hash_tag, short_repr
from .nodes import IndexArray, NodeSet, preference_count
from .scores import RendezvousScores, require_scoring

__all__ = ["MAX_TABLE_SIZE", "Maglev", "maglev_table"]

DEFAULT_TABLE_SIZE = 65537
MAX_TABLE_SIZE = 4_194_301
"""The largest prime below 2**22: the biggest table accepted (41,000 nodes at 100 slots per
node; a build takes several seconds and some hundreds of MB). Checked before the primality
test and before any allocation."""
_OFFSET_SEED = 0x6D61676C  # "magl"
_SKIP_SEED = 0x65760001

I64Array = npt.NDArray[np.int64]


def is_prime(value: int) -> bool:
    """Deterministic primality test by trial division (table sizes are small)."""
    if value < 2:
        return False
    if value % 2 == 0:
        return value == 2
    return all(value % d for d in range(3, math.isqrt(value) + 1, 2))


def _ordinals(groups: I64Array) -> I64Array:
    """For each element, how many earlier elements share its group (0, 1, 2, ...)."""
    order = np.argsort(groups, kind="stable")
    ranked = groups[order]
    starts = np.flatnonzero(np.r_[True, ranked[1:] != ranked[:-1]])
    lengths = np.diff(np.r_[starts, ranked.size])
    within = np.arange(ranked.size) - np.repeat(starts, lengths)
    ordinals: I64Array = np.empty_like(within)
    ordinals[order] = within
    return ordinals


def maglev_table(names: list[str], weights: list[float], size: int) -> I64Array:
    """The owner (index into ``names``, which must be sorted) of each of ``size`` slots.

    Runtime complexity: O(M log M) slots examined, in vectorised batches.
    """
    offsets = np.array(
        [mmh3.hash(name, _OFFSET_SEED, False) % size for name in names], dtype=np.int64
    )
    skips = np.array(
        [mmh3.hash(name, _SKIP_SEED, False) % (size - 1) + 1 for name in names], dtype=np.int64
    )
    walk = _Walk(offsets, skips, size)
    speed = np.array(weights, dtype=np.float64)
    turns_taken = np.zeros(len(names), dtype=np.int64)
    horizon = 0.0
    while walk.empty:
        horizon += max(16.0, math.sqrt(2.0 * walk.empty)) / float(speed.sum())
        due = np.maximum(np.floor(horizon * speed).astype(np.int64), turns_taken)
        counts = due - turns_taken
        node = np.repeat(np.arange(len(names)), counts)
        turn = np.repeat(turns_taken + 1, counts) + _ordinals(node)
        turns_taken = due
        order = np.lexsort((node, turn / speed[node]))
        walk.take_turns(node[order])
    return walk.table


class _Walk:
    """The table being filled and where each node stands in its permutation."""

    def __init__(self, offsets: I64Array, skips: I64Array, size: int) -> None:
        self.offsets = offsets
        self.skips = skips
        self.size = size
        self.table = np.full(size, -1, dtype=np.int64)
        self.free = np.ones(size, dtype=np.bool_)
        self.position = np.zeros(offsets.size, dtype=np.int64)
        self.empty = size

    def take_turns(self, turns: I64Array) -> None:
        """Let each node of ``turns``, in order, claim its next empty slot.

        Works on about sqrt(2 * empty) turns at a time, so that two turns rarely want the
        same slot; everything before the first such clash is committed, then the rest is
        looked at again.
        """
        while turns.size and self.empty:
            chunk = turns[: min(self.empty, max(16, math.isqrt(2 * self.empty)))]
            ranks = self._next_empty_ranks(chunk)
            slots = self._slot(chunk, ranks)
            _, first = np.unique(slots, return_index=True)
            clash = np.setdiff1d(np.arange(slots.size), first)
            done = int(clash[0]) if clash.size else slots.size
            self.table[slots[:done]] = chunk[:done]
            self.free[slots[:done]] = False
            np.maximum.at(self.position, chunk[:done], ranks[:done] + 1)
            self.empty -= done
            turns = turns[done:]

    def _slot(self, node: I64Array, rank: I64Array) -> I64Array:
        slots: I64Array = (self.offsets[node] + (rank % self.size) * self.skips[node]) % self.size
        return slots

    def _next_empty_ranks(self, turns: I64Array) -> I64Array:
        """For each turn, the rank of the empty slot it would take (k-th turn of a node in
        the list: the node's k-th next empty slot). Windows may find more empty slots than
        wanted; only the first ones of each node are used."""
        nodes, wanted = np.unique(turns, return_counts=True)
        found: list[I64Array] = []
        owners: list[I64Array] = []
        start = self.position[nodes].copy()
        density = self.size / max(1, self.empty)
        while nodes.size:
            # Scan the next `width` ranks of each node's permutation in one flat array: the
            # element at flat index j of a run starting at flat index r is rank start + j - r.
            width = np.minimum(np.ceil(wanted * density * 1.25 + 2), self.size).astype(np.int64)
            ends = np.cumsum(width)
            skips = self.skips[nodes]
            base = self._slot(nodes, start) - (ends - width) * skips
            flat = np.arange(int(ends[-1]))
            slot = (np.repeat(base, width) + flat * np.repeat(skips, width)) % self.size
            hits = np.flatnonzero(self.free[slot])
            run = np.searchsorted(ends, hits, side="right")
            found.append(start[run] + hits - (ends - width)[run])
            owners.append(nodes[run])
            wanted = wanted - np.bincount(run, minlength=nodes.size)
            start = start + width
            short = wanted > 0
            nodes, wanted, start = nodes[short], wanted[short], start[short]
        rank = np.concatenate(found)
        owner = np.concatenate(owners)
        order = np.lexsort((rank, owner))  # by node, then rank: the k-th empty slot of each
        ranks_by_node = rank[order]
        first_of_node = np.searchsorted(owner[order], turns)
        result: I64Array = ranks_by_node[first_of_node + _ordinals(turns)]
        return result


class _EmptyTable(list[str]):
    """The table of a Maglev without nodes: any lookup raises EmptyRingError."""

    def __getitem__(self, index: Any) -> Any:
        raise EmptyRingError("the maglev table has no nodes: add one first")


class _Snapshot:
    __slots__ = ("key_hash", "names_obj", "owners", "scoring", "size", "table", "weights")

    def __init__(
        self, weights: dict[str, float], size: int, key_hash: Callable[[Key], int]
    ) -> None:
        self.weights = weights
        self.size = size
        self.key_hash = key_hash  # here, not on the Maglev: a slot is the cheapest read
        self.scoring = RendezvousScores(weights)
        names = list(self.scoring.names)
        self.names_obj = self.scoring.names_obj
        if names:
            self.owners = maglev_table(names, [weights[n] for n in names], size)
            self.table: list[str] = self.names_obj[self.owners].tolist()
        else:
            self.owners = np.zeros(0, dtype=np.int64)
            self.table = _EmptyTable()


class Maglev(NodeSet[_Snapshot]):
    """Maglev hashing behind the placement interface: O(1) lookups, near-perfect balance.

    >>> table = Maglev(["a", "b", "c"], table_size=1031)
    >>> table.get_node("user:42") in table
    True

    Args:
        nodes: node names (weight 1 each) or a mapping of node name to weight.
        table_size: the table's size M, a prime of at most ``MAX_TABLE_SIZE`` (4,194,301;
            default 65537). Balance is within one slot
            of each node's share, so keep M at least 100 times the node count; a node whose
            share rounds to zero slots owns no keys (it still appears in preference lists).
        hash: how keys hash to 32-bit positions: ``"mmh3"`` (default), ``"ketama"`` or a
            callable ``bytes -> int``, as for :class:`~hashring.HashRing`.
        hash_tags: place a key containing ``{tag}`` by its tag alone (default True).
        hash_key: a secret of 16 to 64 bytes that keys the hash of every key (keyed
            BLAKE2b), against hash flooding; see :class:`~hashring.HashRing`.

    Membership changes rebuild the table: O(M log M), vectorised (about 0.1 s at the default
    size, 0.7 s for 1,000 nodes and M = 655,373).

    Raises:
        InvalidOptionError: ``table_size`` is not a prime up to ``MAX_TABLE_SIZE`` or is
            smaller than the node count,
            or bad ``hash`` or node name.
        InvalidWeightError, NodeExistsError: as HashRing.
    """

    _KIND = "maglev table"

    def __init__(
        self,
        nodes: Iterable[str] | Mapping[str, float] = (),
        *,
        table_size: int = DEFAULT_TABLE_SIZE,
        hash: str | Callable[[bytes], int] = "mmh3",
        hash_tags: bool = True,
        hash_key: bytes | None = None,
    ) -> None:
        if (
            isinstance(table_size, bool)
            or not isinstance(table_size, int)
            or not 2 <= table_size <= MAX_TABLE_SIZE
            or not is_prime(table_size)
        ):
            raise InvalidOptionError(
                f"table_size must be a prime number from 2 to {MAX_TABLE_SIZE:,} (such as "
                f"65537 or 655373), got {short_repr(table_size)}"
            )
        self._size = table_size
        self._scheme = hash_scheme(hash, hash_key)
        self._key_hash = self._scheme.key_hash
        self._init_nodes(nodes, hash_tags)

    def get_node(self, key: Key) -> str:
        """Owner of ``key``: one hash and one table index. O(1).

        Raises:
            InvalidKeyError: ``key`` is neither str nor bytes-like.
            KeyEncodingError: ``key`` is a str with no UTF-8 form (a lone surrogate).
            EmptyRingError: there are no nodes.
        """
        snapshot = self._snapshot
        # Inlined routing (see NodeSet._routing_key): this is the hot path.
        if key.__class__ is str and key.isascii():
            if "{" in key and self._hash_tags:
                key = hash_tag(key)
        elif key.__class__ is bytes:
            if b"{" in key and self._hash_tags:
                key = hash_tag(key)
        else:  # non-ASCII str, bytes-like, or a wrong type
            key = self._routing_key(key)
        return snapshot.table[(snapshot.key_hash(key) & MASK32) % snapshot.size]

    def get_nodes(self, key: Key, n: int | None = None) -> list[str]:
        """Preference list: the owner, then the other nodes in rendezvous order. O(n log n).

        Raises:
            InvalidKeyError, InvalidOptionError, NotEnoughNodesError, EmptyRingError:
                as :meth:`HashRing.get_nodes <hashring.HashRing.get_nodes>`.
        """
        snapshot = self._snapshot
        owner = self.get_node(key)
        count = preference_count(n, len(snapshot.scoring.names), self._KIND)
        position = self._key_hash(self._routing_key(key)) & MASK32
        names = snapshot.scoring.names
        rest = [names[i] for i in snapshot.scoring.ranking(position) if names[i] != owner]
        return [owner, *rest][:count]

    def _place_many(self, routed: Sequence[Key]) -> list[str]:
        """Batch placement: hashed in one pass, looked up with one gather. O(k)."""
        snapshot = self._snapshot
        if not snapshot.weights:
            raise EmptyRingError("the maglev table has no nodes: add one first")
        slots = self._scheme.hash_many(routed) % np.uint32(snapshot.size)
        owners: list[str] = snapshot.names_obj[snapshot.owners[slots]].tolist()
        return owners

    def _index_many(self, routed: Sequence[Key]) -> tuple[IndexArray, tuple[str, ...]]:
        """:meth:`_place_many` as positions among the sorted names (the scoring's)."""
        snapshot = self._snapshot
        if not snapshot.weights:
            raise EmptyRingError("the maglev table has no nodes: add one first")
        slots = self._scheme.hash_many(routed) % np.uint32(snapshot.size)
        return snapshot.owners[slots].astype(np.intp, copy=False), snapshot.scoring.names

    def slot_counts(self) -> dict[str, int]:
        """How many table slots each node holds (its share of keys, times M)."""
        snapshot = self._snapshot
        held = np.bincount(snapshot.owners, minlength=len(snapshot.scoring.names))
        return {name: int(c) for name, c in zip(snapshot.scoring.names, held, strict=True)}

    def __repr__(self) -> str:
        return (
            f"Maglev(nodes={len(self)}, table_size={self._size}, "
            f"hash={self._scheme.name!r}, hash_tags={self._hash_tags})"
        )

    def _check(self) -> None:
        """Verify the table against a rebuild; raise AssertionError if an invariant is broken.

        Runtime complexity: O(M log M), one full table build.
        """
        super()._check()
        snapshot = self._snapshot
        require = self._require
        weights = snapshot.weights
        require_scoring(require, snapshot.scoring, weights)
        names = list(snapshot.scoring.names)
        require(snapshot.size == self._size, "the snapshot has the table size")
        if not names:
            require(len(snapshot.owners) == 0, "an empty table owns nothing")
            return
        require(len(snapshot.table) == snapshot.size, "one owner per slot")
        rebuilt = maglev_table(names, [weights[n] for n in names], snapshot.size)
        require(bool(np.array_equal(snapshot.owners, rebuilt)), "table matches a full rebuild")
        require(snapshot.table == snapshot.names_obj[rebuilt].tolist(), "names follow owners")
        counts = np.bincount(rebuilt, minlength=len(names))
        require(int(counts.sum()) == snapshot.size, "every slot is filled")

    def _check_weights(self, weights: Mapping[str, float]) -> None:
        if len(weights) > self._size:
            raise InvalidOptionError(
                f"a Maglev table of {self._size} slots cannot hold {len(weights)} nodes: use a "
                "prime table_size of at least 100 slots per node"
            )

    def _apply(self, weights: dict[str, float]) -> None:
        self._snapshot = _Snapshot(weights, self._size, self._key_hash)
