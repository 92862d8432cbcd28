"""Jump consistent hash (Lamping & Veach 2014) with MementoHash removals (Coluzzi et al. 2023).

Buckets and names
    Jump places keys on numbered buckets ``0 .. n-1``. Nodes given to the constructor take
    buckets in the sorted order of their names (so the constructor does not depend on the
    order it was given them). ``add_node`` takes the bucket MementoHash hands out: the most
    recently removed one, or ``n`` when none is removed. ``bucket_of(name)`` tells which.

Removals (MementoHash)
    Removing the last bucket while none other is removed just shrinks ``n`` (plain jump).
    Any other removal is remembered as ``bucket -> (replacer, previously removed)``, where
    ``replacer`` is the working-set size after the removal. A key whose jump bucket was
    removed is rehashed into ``[0, replacer)`` and follows the replacement chain to a live
    bucket. Keys move only from a removed node, and only to an added one.

History
    Like MementoHash itself, the placement is a function of the construction and of the
    sequence of changes since: two processes that apply the same changes in the same order
    agree; processes with different histories agree once one imports the other's
    :meth:`JumpHash.memento` with :meth:`JumpHash.from_memento`.

Weights are not supported (every node is one bucket); use HashRing, Maglev or Rendezvous
for weighted nodes. Lookups cost O(log n) for the jump plus the replacement chain, which
is short (expected O(1 + log(n / working size))).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from .._errors import EmptyRingError, InvalidOptionError, InvalidWeightError
from .hashes import GOLDEN64, MASK32, MASK64, U64Array, hash_scheme, mix64, mix64_array
from .keys import Key, hash_tag, short_repr
from .nodes import IndexArray, NodeSet, check_node_name, preference_count

__all__ = ["JumpHash", "Memento", "jump", "jump_array"]

try:  # Lamping and Veach's loop in C (jump-consistent-hash): jump()'s answers, ~60 ns
    from jump import c_hash as _c_jump
except ImportError:  # pragma: no cover - the dependency ships wheels; the loop below serves
    _c_jump = None
_JUMP_C: Callable[[int, int], int] | None = _c_jump
"""The jump of a 64-bit key into fewer than 2**31 buckets, compiled, or None (then
:meth:`JumpHash.get_node` runs the loop in Python)."""

_JUMP_MULTIPLIER = 2862933555777941757
I64Array = npt.NDArray[np.int64]


def jump(key: int, buckets: int) -> int:
    """Lamping and Veach's jump consistent hash of a 64-bit ``key`` into ``buckets``.

    >>> [jump(k, 10) for k in (0, 1, 2**63)]
    [0, 6, 5]
    """
    bucket, candidate = -1, 0
    while candidate < buckets:
        bucket = candidate
        key = (key * _JUMP_MULTIPLIER + 1) & MASK64
        candidate = int((bucket + 1) * (2147483648.0 / ((key >> 33) + 1)))
    return bucket


def jump_array(keys: U64Array, buckets: int) -> I64Array:
    """:func:`jump` over a uint64 array (same results, vectorised)."""
    keys = keys.copy()
    bucket = np.full(keys.shape, -1, dtype=np.int64)
    candidate = np.zeros(keys.shape, dtype=np.int64)
    going = np.flatnonzero(candidate < buckets)
    while going.size:
        bucket[going] = candidate[going]
        keys[going] = keys[going] * np.uint64(_JUMP_MULTIPLIER) + np.uint64(1)
        ratio = 2147483648.0 / ((keys[going] >> np.uint64(33)) + np.uint64(1)).astype(np.float64)
        candidate[going] = ((bucket[going] + 1).astype(np.float64) * ratio).astype(np.int64)
        going = going[candidate[going] < buckets]
    return bucket


def _rehash(key: int, bucket: int) -> int:
    return mix64(key + (bucket + 1) * GOLDEN64)


def _rehash_array(keys: U64Array, buckets: I64Array) -> U64Array:
    offsets = (buckets + 1).astype(np.uint64) * np.uint64(GOLDEN64)
    return mix64_array(keys + offsets)


class Memento:
    """MementoHash's state: b-array size, last removed bucket, and the removal memory.

    Immutable: :meth:`remove` and :meth:`add` return new states.
    """

    __slots__ = ("last_removed", "removed", "replacers", "size")

    def __init__(self, size: int, last_removed: int, removed: dict[int, tuple[int, int]]):
        self.size = size
        self.last_removed = last_removed
        self.removed = removed
        self.replacers = np.full(size, -1, dtype=np.int64)
        for bucket, (replacer, _) in removed.items():
            if bucket < size:
                self.replacers[bucket] = replacer

    @property
    def working(self) -> int:
        """Number of live buckets."""
        return self.size - len(self.removed)

    def remove(self, bucket: int) -> Memento:
        """The state after removing live ``bucket``. O(removed) to copy the memory."""
        if not self.removed and bucket == self.size - 1:
            return Memento(bucket, bucket, {})
        removed = dict(self.removed)
        removed[bucket] = (self.working - 1, self.last_removed)
        return Memento(self.size, bucket, removed)

    def add(self) -> tuple[int, Memento]:
        """The bucket a new node takes, and the state after adding it."""
        bucket = self.last_removed
        if not self.removed:
            return bucket, Memento(bucket + 1, bucket + 1, {})
        removed = dict(self.removed)
        _, previous = removed.pop(bucket)
        return bucket, Memento(self.size, previous, removed)

    def bucket(self, key: int) -> int:
        """Live bucket of a 64-bit key: jump, then the replacement chain."""
        return self.replace(key, jump(key, self.size))

    def replace(self, key: int, bucket: int) -> int:
        """The live bucket for ``key`` whose jump bucket is ``bucket``: ``bucket`` itself
        unless it was removed, else the end of its replacement chain."""
        entry = self.removed.get(bucket)
        while entry is not None:
            replacer = entry[0]
            bucket = _rehash(key, bucket) % replacer
            entry = self.removed.get(bucket)
            while entry is not None and entry[0] >= replacer:
                bucket = entry[0]
                entry = self.removed.get(bucket)
        return bucket

    def buckets(self, keys: U64Array) -> I64Array:
        """:meth:`bucket` over a uint64 array, vectorised."""
        bucket = jump_array(keys, self.size)
        replacers = self.replacers
        pending = np.flatnonzero(replacers[bucket] >= 0)
        while pending.size:
            replacer = replacers[bucket[pending]]
            moved = _rehash_array(keys[pending], bucket[pending]) % replacer.astype(np.uint64)
            bucket[pending] = moved.astype(np.int64)
            chained = np.flatnonzero(replacers[bucket[pending]] >= replacer)
            while chained.size:
                at = pending[chained]
                bucket[at] = replacers[bucket[at]]
                chained = chained[replacers[bucket[at]] >= replacer[chained]]
            pending = pending[replacers[bucket[pending]] >= 0]
        return bucket


class _Snapshot:
    __slots__ = (
        "bucket_of",
        "buckets",
        "memento",
        "names",
        "names_obj",
        "owners",
        "rank",
        "size",
        "weights",
    )

    def __init__(self, weights: dict[str, float], memento: Memento, bucket_of: dict[str, int]):
        self.weights = weights
        self.memento = memento
        self.size = memento.size  # jump's bucket count
        self.buckets = float(memento.size)  # the same, as get_node's Python loop compares it
        self.bucket_of = bucket_of
        owners: list[str | None] = [None] * memento.size
        for name, bucket in bucket_of.items():
            owners[bucket] = name
        self.owners = owners
        self.names_obj = np.array(owners, dtype=object)
        self.names = tuple(sorted(bucket_of))
        rank = np.full(memento.size, -1, dtype=np.intp)  # bucket -> position in names
        for position, name in enumerate(self.names):
            rank[bucket_of[name]] = position
        self.rank = rank


class JumpHash(NodeSet[_Snapshot]):
    """Jump consistent hashing with arbitrary removals (MementoHash), for unweighted nodes.

    >>> shards = JumpHash(["shard-0", "shard-1", "shard-2"])
    >>> shards.bucket_of("shard-1")
    1
    >>> shards.get_node("user:42") in shards
    True

    Args:
        nodes: node names (weight 1 each; a mapping may only give weight 1).
        hash: how keys hash to 32-bit positions: ``"mmh3"`` (default), ``"ketama"`` or a
            callable ``bytes -> int``, as for :class:`~hashring.HashRing`.
        hash_tags: place a key containing ``{tag}`` by its tag alone (default True).
        hash_key: a secret of 16 to 64 bytes that keys the hash of every key (keyed
            BLAKE2b), against hash flooding; see :class:`~hashring.HashRing`.

    Raises:
        InvalidWeightError: a weight other than 1.
        InvalidOptionError, NodeExistsError: as HashRing.
    """

    _KIND = "jump placement"

    HISTORY_FREE = False

    def __init__(
        self,
        nodes: Iterable[str] | Mapping[str, float] = (),
        *,
        hash: str | Callable[[bytes], int] = "mmh3",
        hash_tags: bool = True,
        hash_key: bytes | None = None,
    ) -> None:
        self._scheme = hash_scheme(hash, hash_key)
        self._snapshot = _Snapshot({}, Memento(0, 0, {}), {})
        self._init_nodes(nodes, hash_tags)

    @classmethod
    def from_memento(
        cls,
        memento: Mapping[str, Any],
        *,
        hash: str | Callable[[bytes], int] = "mmh3",
        hash_tags: bool = True,
        hash_key: bytes | None = None,
    ) -> JumpHash:
        """Rebuild a placement from :meth:`memento`'s output (for example read from JSON).

        Raises:
            InvalidOptionError: the description is malformed or inconsistent.
        """
        placement = cls(hash=hash, hash_tags=hash_tags, hash_key=hash_key)
        try:
            buckets = {check_node_name(name): int(b) for name, b in memento["buckets"].items()}
            removed = {int(b): (int(r), int(p)) for b, r, p in memento["removed"]}
            size, last_removed = int(memento["size"]), int(memento["last_removed"])
        except (AttributeError, KeyError, TypeError, ValueError, OverflowError) as exc:
            raise InvalidOptionError(f"not a JumpHash memento: {exc!r:.200}") from None
        if size != len(buckets) + len(removed):
            raise InvalidOptionError(
                f"JumpHash memento is inconsistent: size {short_repr(size)} is not the "
                f"{len(buckets):,} node buckets plus the {len(removed):,} removed ones"
            )
        numbers = [last_removed, *removed, *(n for pair in removed.values() for n in pair)]
        if any(not 0 <= n <= size for n in numbers):
            raise InvalidOptionError(
                f"JumpHash memento is inconsistent: bucket numbers must lie in 0..{size:,}"
            )
        state = Memento(size, last_removed, removed)
        live = set(range(state.size)) - set(removed)
        if sorted(buckets.values()) != sorted(live) or len(live) != state.working:
            raise InvalidOptionError(
                "JumpHash memento is inconsistent: node buckets must be exactly the live "
                f"buckets of a b-array of size {state.size} with {len(removed)} removed"
            )
        placement._snapshot = _Snapshot(dict.fromkeys(buckets, 1.0), state, buckets)
        try:
            placement._check()
        except AssertionError as exc:
            raise InvalidOptionError(f"JumpHash memento is inconsistent: {exc}") from None
        return placement

    def memento(self) -> dict[str, Any]:
        """The whole state, JSON-serialisable: node buckets, b-array size, removal memory."""
        snapshot = self._snapshot
        state = snapshot.memento
        return {
            "buckets": dict(sorted(snapshot.bucket_of.items(), key=lambda item: item[1])),
            "size": state.size,
            "last_removed": state.last_removed,
            "removed": [[b, r, p] for b, (r, p) in sorted(state.removed.items())],
        }

    def bucket_of(self, name: str) -> int:
        """The bucket number of node ``name``.

        Raises:
            UnknownNodeError: ``name`` is not a node.
        """
        bucket = self._snapshot.bucket_of.get(name)
        if bucket is None:
            raise self._unknown(name)
        return bucket

    def get_node(self, key: Key) -> str:
        """Owner of ``key``. O(log n) plus the replacement chain.

        Raises:
            InvalidKeyError: ``key`` is neither str nor bytes-like.
            KeyEncodingError: ``key`` is a str with no UTF-8 form (a lone surrogate).
            EmptyRingError: there are no nodes.
        """
        snapshot = self._snapshot
        if not snapshot.weights:
            raise EmptyRingError("the jump placement has no nodes: add one first")
        if key.__class__ is str and key.isascii():  # the fast path of HashRing.get_node
            if "{" in key and self._hash_tags:
                key = hash_tag(key)
        elif key.__class__ is bytes:
            if b"{" in key and self._hash_tags:
                key = hash_tag(key)
        else:
            key = self._routing_key(key)
        # mix64 and jump inlined (no call), constants as literals (no global lookups).
        mixed = self._scheme.key_hash(key) & 0xFFFFFFFF
        mixed = ((mixed ^ (mixed >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
        mixed = ((mixed ^ (mixed >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
        key64 = state = mixed ^ (mixed >> 31)
        if _JUMP_C is not None:
            bucket = _JUMP_C(key64, snapshot.size)
        else:
            buckets = snapshot.buckets
            # jump() in floats, the same answer with fewer and cheaper operations: ``after``
            # is bucket + 1 as a float (exact below 2**53), so the product is jump()'s; for
            # x >= 0 int(x) < n exactly when x < n, and ``x // 1.0`` is int(x) without a call.
            after = 1.0
            while True:
                state = (state * 2862933555777941757 + 1) & 0xFFFFFFFFFFFFFFFF
                candidate = after * (2147483648.0 / ((state >> 33) + 1.0))
                if candidate >= buckets:
                    break
                after = candidate // 1.0 + 1.0
            bucket = int(after) - 1
        memento = snapshot.memento
        if memento.removed:
            bucket = memento.replace(key64, bucket)
        owner = snapshot.owners[bucket]
        assert owner is not None  # lookups only land on live buckets
        return owner

    def get_nodes(self, key: Key, n: int | None = None) -> list[str]:
        """Preference list: where the key goes as its owner, then each next owner, leaves.

        The second node is exactly where the key moves if its owner is removed, and so on.
        Runtime complexity: O(n * (log n + removed)).

        Raises:
            InvalidKeyError, InvalidOptionError, NotEnoughNodesError, EmptyRingError:
                as :meth:`HashRing.get_nodes <hashring.HashRing.get_nodes>`.
        """
        snapshot = self._live_snapshot()
        key64 = self._key64(key)
        count = preference_count(n, len(snapshot.weights), self._KIND)
        state = snapshot.memento
        found: list[str] = []
        while True:
            bucket = state.bucket(key64)
            owner = snapshot.owners[bucket]
            assert owner is not None
            found.append(owner)
            if len(found) == count:
                return found
            state = state.remove(bucket)

    def _place_many(self, routed: Sequence[Key]) -> list[str]:
        """Batch placement: vectorised jump and replacement chains. O(k log n) in C."""
        snapshot = self._live_snapshot()
        keys64 = mix64_array(self._scheme.hash_many(routed).astype(np.uint64))
        owners: list[str] = snapshot.names_obj[snapshot.memento.buckets(keys64)].tolist()
        return owners

    def _index_many(self, routed: Sequence[Key]) -> tuple[IndexArray, tuple[str, ...]]:
        """:meth:`_place_many` as positions among the sorted names (through ``rank``)."""
        snapshot = self._live_snapshot()
        keys64 = mix64_array(self._scheme.hash_many(routed).astype(np.uint64))
        return snapshot.rank[snapshot.memento.buckets(keys64)], snapshot.names

    def __repr__(self) -> str:
        state = self._snapshot.memento
        return (
            f"JumpHash(nodes={state.working}, buckets={state.size}, "
            f"hash={self._scheme.name!r}, hash_tags={self._hash_tags})"
        )

    def _check(self) -> None:
        """Verify the memento invariants; raise AssertionError if one is broken."""
        super()._check()
        snapshot = self._snapshot
        state = snapshot.memento
        live = set(range(state.size)) - set(state.removed)
        if set(snapshot.bucket_of.values()) != live or len(live) != len(snapshot.weights):
            raise AssertionError("JumpHash invariant broken: nodes hold exactly the live buckets")
        chain: list[int] = []
        bucket = state.last_removed
        while bucket in state.removed and len(chain) <= len(state.removed):
            chain.append(bucket)
            bucket = state.removed[bucket][1]
        if sorted(chain) != sorted(state.removed) or (state.removed and bucket != state.size):
            raise AssertionError("JumpHash invariant broken: removals form one chain to size")
        replacers = sorted(r for r, _ in state.removed.values())
        if replacers != list(range(state.working, state.working + len(state.removed))):
            raise AssertionError("JumpHash invariant broken: replacers are the shrinking sizes")

    def _key64(self, key: Key) -> int:
        return mix64(self._scheme.key_hash(self._routing_key(key)) & MASK32)

    def _live_snapshot(self) -> _Snapshot:
        snapshot = self._snapshot
        if not snapshot.weights:
            raise EmptyRingError("the jump placement has no nodes: add one first")
        return snapshot

    def _check_weights(self, weights: Mapping[str, float]) -> None:
        for name, weight in weights.items():
            if weight != 1:
                raise InvalidWeightError(
                    f"JumpHash gives every node one bucket, so weights other than 1 are not "
                    f"supported (node {name!r} has {weight}); use HashRing, Maglev or "
                    "Rendezvous for weighted nodes"
                )

    def _apply(self, weights: dict[str, float]) -> None:
        before = self._snapshot
        state = before.memento
        bucket_of = dict(before.bucket_of)
        if not before.weights:
            names: Sequence[str] = sorted(weights)
            bucket_of = {name: i for i, name in enumerate(names)}
            state = Memento(len(names), len(names), {})
        else:
            for name in sorted(before.weights.keys() - weights.keys()):
                state = state.remove(bucket_of.pop(name))
            for name in sorted(weights.keys() - before.weights.keys()):
                bucket, state = state.add()
                bucket_of[name] = bucket
        self._snapshot = _Snapshot(weights, state, bucket_of)
