"""HashRing: consistent hashing with virtual nodes (points) and weights.

How it works
    Each node owns a stream of points on the 32-bit circle (see ``_hashes``); a key belongs
    to the first point at or after its position, clockwise, wrapping past 2**32 - 1 to the
    first point -- the rule of libketama and twemproxy. Two nodes whose points coincide are
    ordered by node name, so the node with the smaller name owns the keys that land there;
    both points are kept, so removing either node never removes the other's point.

Lookup structures (one immutable snapshot, swapped in one assignment)
    * ``points``: every point, sorted by (position, owner name), a ``uint32`` array;
    * ``owners``: the owner of each point as an index into the sorted node names, plus one
      wrap-around entry at the end;
    * a bucket table of 2**bits entries (2 to 8 per point) splitting the circle into equal
      ranges: an entry is the owner name when no point falls inside its range (so every key
      in it has that owner), else ``None`` and the lookup walks the few points of a finer
      bucket index (:meth:`_Snapshot.owner_at`).

    ``get_node`` is therefore one hash and one list index for most keys. A membership
    change copies the table (a C-speed pointer copy), merges the changed node's points with
    numpy, and recomputes only the table entries whose owner can have changed.

The C accelerator (``_ring_native``, optional)
    Where the extension module ``hashring._placement._ring_native`` was built (``_NATIVE``
    is its ``RingIndex``, chosen once at import), each snapshot holds instead a
    ``RingIndex``: the same bucket table as compact ``uint32`` entries (the owner's index,
    or the index of the bucket's first point) beside the (point, owner) pairs, built in C
    from ``points`` and ``owners`` with the snapshot and never changed after. ``get_node``
    is then the hash and one C call (:meth:`HashRing._get_node_native`,
    :meth:`HashRing._get_node_digest_native`), and the batch paths place every position in
    one C pass. A ring keeps the path it was built with; answers are the same bit for bit.
"""

from __future__ import annotations

import math
import struct
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from itertools import chain
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from .._errors import EmptyRingError, InvalidOptionError, InvalidWeightError
from .hashes import MASK32, U32Array, hash_scheme, ketama_counts
from .keys import Key, hash_tag, short_repr
from .nodes import IndexArray, NodeSet, preference_count
from .ring_table import (
    MIN_TABLE_BITS,
    Table,
    build_table,
    merge_points,
    patch_table,
    table_bits,
)

__all__ = ["DEFAULT_VNODES", "MAX_POINTS", "HashRing"]

_FULL_LIST_THRESHOLD = 8  # get_nodes walks in Python up to this n, with numpy above

DEFAULT_VNODES = 160
MAX_POINTS = 1 << 24
"""Most points a ring may hold (16,777,216: 100,000 nodes at 160 vnodes fit). Checked before
any point is hashed, so an oversized ``vnodes`` or weight fails at once."""

if TYPE_CHECKING:
    from ._ring_native import RingIndex

try:  # the C lookup index (hashring/_placement/_ring_native.c), when it could be built
    from ._ring_native import RingIndex as _RingIndex
except ImportError:  # pragma: no cover - an install whose optional C build failed
    _RingIndex = None  # type: ignore[assignment,misc]
_NATIVE: type[RingIndex] | None = _RingIndex
"""The C lookup index type, or None (then every ring uses the Python table). Read once per
ring, at construction: a test sets it to None to run the Python path beside the C one."""

U64Array = npt.NDArray[np.uint64]
_unpack_u32 = struct.Struct("<I").unpack_from
_NO_TABLE: Table = [None]
"""The table of a snapshot that has a native index: every bucket defers to ``owner_at``."""


class _Snapshot:
    """One immutable state of a ring. Never mutated after construction."""

    __slots__ = (
        "batch_index",
        "bits",
        "counts",
        "empty",
        "index",
        "key_hash",
        "names",
        "names_obj",
        "native_owner_at",
        "native_owner_of_digest",
        "owners",
        "owners_view",
        "padded",
        "padded_view",
        "points",
        "points_view",
        "shift",
        "table",
        "weights",
    )

    def __init__(
        self,
        weights: dict[str, float],
        counts: dict[str, int],
        names: tuple[str, ...],
        names_obj: Any,
        padded: U32Array,
        owners: U32Array,
        table: Table,
        bits: int,
        key_hash: Callable[[Key], int],
        index: RingIndex | None = None,
    ) -> None:
        self.weights = weights
        self.counts = counts
        self.names = names
        self.names_obj = names_obj
        self.padded = padded
        self.points = padded[:-1]
        self.owners = owners
        self.points_view = self.points.data
        self.owners_view = owners.data
        self.table = table
        self.bits = bits
        self.shift = 32 - bits if index is None else 32  # 32: [None][0] (or [-1]) is None
        self.padded_view = padded.data
        self.empty = not self.points.size  # no point: every lookup raises EmptyRingError
        self.batch_index: tuple[npt.NDArray[np.intp], int, memoryview] | None = None
        self.key_hash = key_hash  # here, not on the ring: a slot is the cheapest read
        self.index = index
        # What the C-index lookups call: the index's bound methods (which do not refer
        # back to this snapshot: a snapshot referring to itself would outlive its last use
        # until a garbage collection), or a stand-in that refuses.
        self.native_owner_at: Callable[[int], str]
        self.native_owner_of_digest: Callable[[bytes], str]
        if index is not None:
            self.native_owner_at = index.owner_at
            self.native_owner_of_digest = index.owner_of_digest
        else:
            self.native_owner_at = self.native_owner_of_digest = _Unindexed(
                _empty_error(self) if self.empty else None
            )

    def owner_of_position(self, position: int) -> str:
        """Owner of ``position`` (-2**31 to 2**32 - 1, taken modulo 2**32: mmh3's signed
        hash or an unsigned position) through the C index when the snapshot has one, else
        the Python table; both answer alike. O(1) expected.

        Raises:
            EmptyRingError: the snapshot holds no point.
        """
        if self.index is not None:
            return self.index.owner_at(position)
        owner = self.table[position >> self.shift]
        if owner is not None:
            return owner
        return self.owner_at(position & MASK32)

    def owner_of_digest(self, digest: bytes) -> str:
        """Owner of the position in the first 4 bytes (little-endian) of ``digest``, as
        :meth:`owner_of_position`."""
        if self.index is not None:
            return self.index.owner_of_digest(digest)
        return self.owner_of_position(_unpack_u32(digest)[0])

    def owner_at(self, position: int) -> str:
        """Owner of an unsigned 32-bit ``position``.

        The bucket index of :meth:`bucket_starts` gives the first point of the position's
        bucket; a walk steps over the points before the position in that bucket (one or
        two on average; the padding point 2**32 - 1 stops it). O(1) expected, against the
        ~log2(points) probes of a bisect, each of which would box an int.
        """
        if self.empty:
            raise _empty_error(self)
        starts = self.batch_index or self.bucket_starts()
        index: int = starts[2][position >> starts[1]]
        points = self.padded_view
        while points[index] < position:
            index += 1
        return self.names[self.owners_view[index]]

    def bucket_starts(self) -> tuple[npt.NDArray[np.intp], int, memoryview]:
        """The bucket index: for each of 2**bits equal ranges of the circle (1 to 2 per
        point), the index of its first point; the shift that maps a position to its range;
        and the index as a memoryview (read one int at a time by :meth:`owner_at`).

        Built on first use, then kept by this snapshot (a racing thread builds the same
        tuple, and the assignment is atomic). O(points + 2**bits), vectorised.
        """
        bits = max(MIN_TABLE_BITS, self.points.size.bit_length())
        per_bucket = np.bincount(self.points >> (32 - bits), minlength=1 << bits)
        first = np.cumsum(per_bucket) - per_bucket
        self.batch_index = (first, 32 - bits, first.data)
        return self.batch_index

    def point_indices(self, positions: U32Array) -> npt.NDArray[np.intp]:
        """Index of the first point at or after each position (``len(points)`` past the end).

        Vectorised: the bucket index (:meth:`bucket_starts`) gives a start index, then each
        position steps over the few points before it in its bucket. The padding point
        2**32 - 1 stops every walk.
        """
        first, shift, _ = self.batch_index or self.bucket_starts()
        index: npt.NDArray[np.intp] = first[positions >> shift]
        padded = self.padded
        behind = np.flatnonzero(padded[index] < positions)
        while behind.size:
            index[behind] += 1
            behind = behind[padded[index[behind]] < positions[behind]]
        return index


class _Unindexed:
    """``native_owner_at`` and ``native_owner_of_digest`` of a snapshot without a C index.

    A ring on the C index publishes such a snapshot only when it holds no point: calls
    raise its EmptyRingError. Holds the error's message, never the snapshot.
    """

    __slots__ = ("message",)

    def __init__(self, error: EmptyRingError | None) -> None:
        self.message = None if error is None else str(error)

    def __call__(self, position: object) -> str:
        if self.message is None:
            raise RuntimeError("this ring snapshot has no C index: use owner_of_position")
        raise EmptyRingError(self.message)


def _empty_error(snapshot: _Snapshot) -> EmptyRingError:
    if snapshot.names:
        return EmptyRingError("no node of this ring holds a point: raise vnodes or the weights")
    return EmptyRingError("the ring has no nodes: add one with add_node(name) first")


def _empty_snapshot() -> _Snapshot:
    padded = np.full(1, MASK32, dtype=np.uint32)
    names_obj = np.empty(0, dtype=object)
    return _Snapshot(
        {}, {}, (), names_obj, padded, np.zeros(1, dtype=np.uint32), [None], 0, lambda key: 0
    )


class HashRing(NodeSet[_Snapshot]):
    """A consistent-hash ring with virtual nodes, weights and a choice of hash.

    ``HashRing(["a", "b"])`` gives each node weight 1; ``HashRing({"a": 1, "b": 2})`` gives
    ``b`` twice the points, and so about twice the keys, of ``a``.

    >>> ring = HashRing(["cache-1", "cache-2", "cache-3"])
    >>> ring.get_node("user:42") in ring
    True
    >>> ring.get_node("user:{42}:cart") == ring.get_node("user:{42}:profile")
    True
    >>> len(ring.get_nodes("user:42", 2))
    2

    Methods, by role:

    * lookups (lock-free, safe while other threads change membership): :meth:`get_node`,
      :meth:`get_nodes`, :meth:`get_node_many`;
    * membership (thread-safe, serialised): :meth:`add_node`, :meth:`remove_node`,
      :meth:`set_weight`. Adding or removing a node moves only the keys it gains or loses;
      each change costs O(p) hashing for the node's p points plus C-speed copies of the
      arrays and table (about 3 ms at 1,000 nodes x 160 vnodes). With ``"mmh3"`` or a
      custom hash, raising a weight moves keys only to that node and lowering it only away
      from it; with ``"ketama"`` and unequal weights every node's point count is
      recomputed, as twemproxy does;
    * inspection: :attr:`nodes`, ``len(ring)``, ``name in ring``, ``iter(ring)``,
      :meth:`point_counts`, :meth:`hash_space_shares`, :meth:`_check`.

    Args:
        nodes: node names (weight 1 each) or a mapping of node name to weight.
        vnodes: points per unit of weight (default 160). With ``hash="ketama"`` it plays
            twemproxy's 160 points per server and must be a multiple of 4.
        hash: ``"mmh3"`` (default), ``"ketama"`` (libketama/twemproxy compatible) or a
            callable ``bytes -> int`` (low 32 bits used). See ``hashring._placement.hashes``.
        hash_tags: place a key containing ``{tag}`` by its tag alone (default True).
        hash_key: a secret of 16 to 64 bytes that makes key positions a keyed BLAKE2b PRF,
            so that nobody without it can choose keys that land on one node (hash
            flooding). Node points are unchanged. Default None: the public, unkeyed hash.

    Raises:
        InvalidOptionError: bad ``vnodes`` (an int from 1 to ``MAX_POINTS``), ``hash``,
            ``hash_key``, node name, or ``nodes`` given as a str.
        InvalidWeightError: a weight outside ``[MIN_WEIGHT, MAX_WEIGHT]``, or weights that
            would give the ring more than ``MAX_POINTS`` (16,777,216) points.
        NodeExistsError: a node listed twice.

    Placement is a pure function of the node names, weights and options: the same inputs
    give the same owner for every key on any machine, whatever order nodes were added in.
    """

    _KIND = "ring"

    def __init__(
        self,
        nodes: Iterable[str] | Mapping[str, float] = (),
        *,
        vnodes: int = DEFAULT_VNODES,
        hash: str | Callable[[bytes], int] = "mmh3",
        hash_tags: bool = True,
        hash_key: bytes | None = None,
    ) -> None:
        if isinstance(vnodes, bool) or not isinstance(vnodes, int) or not 1 <= vnodes <= MAX_POINTS:
            raise InvalidOptionError(
                f"vnodes must be an int from 1 to {MAX_POINTS:,}, got {short_repr(vnodes)}"
            )
        self._scheme = hash_scheme(hash, hash_key)
        if self._scheme.point_counts is ketama_counts and vnodes % 4:
            raise InvalidOptionError(
                f"with hash='ketama' vnodes must be a multiple of 4 (4 points per MD5 "
                f"digest; twemproxy uses 160), got {vnodes}"
            )
        self._vnodes = vnodes
        self._key_hash = self._scheme.key_hash
        self._key_digest = self._scheme.key_digest
        self._native = _NATIVE
        if self._key_digest is not None:  # ketama: the digest inlined (see _get_node_digest)
            self.get_node = (  # type: ignore[method-assign]
                self._get_node_digest if self._native is None else self._get_node_digest_native
            )
        elif self._native is not None:
            self.get_node = self._get_node_native  # type: ignore[method-assign]
        self._snapshot = _empty_snapshot()
        self._init_nodes(nodes, hash_tags)

    # ----------------------------------------------------------------- lookups

    def get_node(self, key: Key) -> str:
        """Return the name of the node that owns ``key``.

        Runtime complexity: O(1) for most keys (one hash, one table index); O(log points)
        for keys whose table bucket holds a point.

        Raises:
            InvalidKeyError: ``key`` is neither str nor bytes-like.
            KeyEncodingError: ``key`` is a str with no UTF-8 form (a lone surrogate).
            EmptyRingError: the ring has no nodes.
        """
        snapshot = self._snapshot
        if key.__class__ is str and key.isascii():
            if "{" in key and self._hash_tags:
                key = hash_tag(key)
        elif key.__class__ is bytes:
            if b"{" in key and self._hash_tags:
                key = hash_tag(key)
        else:  # non-ASCII str, bytes-like, or a wrong type
            key = self._routing_key(key)
        position = snapshot.key_hash(key)
        owner = snapshot.table[position >> snapshot.shift]
        if owner is not None:
            return owner
        return snapshot.owner_at(position & MASK32)

    def _get_node_digest(self, key: Key) -> str:
        """:meth:`get_node` for digest schemes (ketama), installed as ``get_node`` by the
        constructor: the same answers, with the MD5 inlined.

        A str key is tagged, then encoded: ``{`` and ``}`` are ASCII and no UTF-8 sequence
        holds an ASCII byte, so this is the tag of its UTF-8 bytes, as ``get_node`` takes.
        """
        snapshot = self._snapshot
        data: Any = key
        if type(data) is str:
            if "{" in data and self._hash_tags:
                data = hash_tag(data)
            try:
                data = data.encode()
            except UnicodeEncodeError:
                data = self._routing_key(key)  # raises KeyEncodingError, with the message
        elif type(data) is bytes:
            if b"{" in data and self._hash_tags:
                data = hash_tag(data)
        else:
            data = self._routing_key(data)
            if type(data) is not bytes:
                data = str.encode(data)
        digest: Any = self._key_digest
        position: int = _unpack_u32(digest(data).digest())[0]
        owner = snapshot.table[position >> snapshot.shift]
        if owner is not None:
            return owner
        return snapshot.owner_at(position)

    def _get_node_native(self, key: Key) -> str:
        """:meth:`get_node` through the snapshot's C index (installed as ``get_node`` by the
        constructor when ``_ring_native`` is built): the same key handling as
        :meth:`get_node`, then one C call from the hash to the owner's name."""
        snapshot = self._snapshot
        if key.__class__ is str and key.isascii():
            if "{" in key and self._hash_tags:
                key = hash_tag(key)
        elif key.__class__ is bytes:
            if b"{" in key and self._hash_tags:
                key = hash_tag(key)
        else:  # non-ASCII str, bytes-like, or a wrong type
            key = self._routing_key(key)
        return snapshot.native_owner_at(snapshot.key_hash(key))

    def _get_node_digest_native(self, key: Key) -> str:
        """:meth:`_get_node_digest` through the snapshot's C index: the same key handling,
        then one C call from the MD5 digest to the owner's name."""
        snapshot = self._snapshot
        data: Any = key
        if type(data) is str:
            if "{" in data and self._hash_tags:
                data = hash_tag(data)
            try:
                data = data.encode()
            except UnicodeEncodeError:
                data = self._routing_key(key)  # raises KeyEncodingError, with the message
        elif type(data) is bytes:
            if b"{" in data and self._hash_tags:
                data = hash_tag(data)
        else:
            data = self._routing_key(data)
            if type(data) is not bytes:
                data = str.encode(data)
        digest: Any = self._key_digest
        return snapshot.native_owner_of_digest(digest(data).digest())

    def get_nodes(self, key: Key, n: int | None = None) -> list[str]:
        """Return the preference list of ``key``: ``n`` distinct nodes, owner first.

        The nodes are those met walking clockwise from the key's position (the order in
        which the key would fail over). ``n=None`` returns every node. Nodes that hold no
        point (possible only with ``hash="ketama"`` and tiny weights) come last, by name.

        Runtime complexity: O(log points + points walked); the walk is short for small ``n``
        (about ``n * vnodes * ln(n) / len(ring)`` points) and is done with numpy above 8.

        Raises:
            InvalidKeyError: ``key`` is neither str nor bytes-like.
            KeyEncodingError: ``key`` is a str with no UTF-8 form (a lone surrogate).
            InvalidOptionError: ``n`` is not an int >= 1.
            NotEnoughNodesError: ``n`` is larger than the number of nodes (this method never
                returns fewer nodes than asked; pass ``n=None`` for all of them).
            EmptyRingError: the ring has no nodes.
        """
        snapshot = self._snapshot
        key = self._routing_key(key)
        if not snapshot.points.size:
            raise _empty_error(snapshot)
        n = preference_count(n, len(snapshot.names), self._KIND)
        size = snapshot.points.size
        start = bisect_left(snapshot.points_view, self._key_hash(key) & MASK32) % size
        if n <= _FULL_LIST_THRESHOLD:
            found: list[int] = []
            owners = snapshot.owners_view
            for i in chain(range(start, size), range(start)):
                owner = owners[i]
                if owner not in found:
                    found.append(owner)
                    if len(found) == n:
                        break
        else:
            walk = np.roll(snapshot.owners[:size], -start)
            distinct, first_seen = np.unique(walk, return_index=True)
            found = distinct[np.argsort(first_seen)][:n].tolist()
        if len(found) < n:
            missing = sorted(set(range(len(snapshot.names))) - set(found))
            found.extend(missing[: n - len(found)])
        return [snapshot.names[i] for i in found]

    def _place_many(self, routed: Sequence[Key]) -> list[str]:
        """Batch placement: one C-level hashing pass and a vectorised bucket index. O(k)."""
        snapshot = self._snapshot
        if not snapshot.points.size:
            raise _empty_error(snapshot)
        positions = self._scheme.hash_many(routed)
        if snapshot.index is not None:
            return snapshot.index.owners_of(positions)
        index = snapshot.point_indices(positions)
        owners: list[str] = snapshot.names_obj[snapshot.owners[index]].tolist()
        return owners

    def _index_many(self, routed: Sequence[Key]) -> tuple[IndexArray, tuple[str, ...]]:
        """:meth:`_place_many` as positions among the sorted names (the snapshot's own)."""
        snapshot = self._snapshot
        if not snapshot.points.size:
            raise _empty_error(snapshot)
        positions = self._scheme.hash_many(routed)
        if snapshot.index is not None:
            owners = np.empty(positions.size, dtype=np.intp)
            snapshot.index.fill_indices(positions, owners)
            return owners, snapshot.names
        index = snapshot.point_indices(positions)
        return snapshot.owners[index].astype(np.intp), snapshot.names

    # -------------------------------------------------------------- inspection

    def point_counts(self) -> dict[str, int]:
        """Number of points each node holds on the circle."""
        return dict(self._snapshot.counts)

    def hash_space_shares(self) -> dict[str, float]:
        """Fraction of the 32-bit hash space each node owns (they sum to 1).

        Runtime complexity: O(points), vectorised.
        """
        snapshot = self._snapshot
        points = snapshot.points.astype(np.int64)
        if not points.size:
            return dict.fromkeys(snapshot.names, 0.0)
        arcs = np.diff(points, prepend=points[-1] - (1 << 32))
        owned = np.bincount(
            snapshot.owners[: points.size], weights=arcs, minlength=len(snapshot.names)
        )
        return {
            name: float(share) / 2**32 for name, share in zip(snapshot.names, owned, strict=True)
        }

    def __iter__(self) -> Iterator[str]:
        """Node names, sorted."""
        return iter(self._snapshot.names)

    def __repr__(self) -> str:
        snapshot = self._snapshot
        return (
            f"HashRing(nodes={len(snapshot.names)}, points={snapshot.points.size}, "
            f"hash={self._scheme.name!r}, vnodes={self._vnodes}, hash_tags={self._hash_tags})"
        )

    def _check(self) -> None:
        """Verify every invariant of the current snapshot; raise AssertionError if broken.

        Runtime complexity: O(points + table), with a full rebuild to compare against.
        """
        super()._check()
        snapshot = self._snapshot
        weights = snapshot.weights
        require = self._require
        require(snapshot.names == tuple(sorted(weights)), "names are the sorted node names")
        require(
            snapshot.counts == self._scheme.point_counts(weights, self._vnodes),
            "point counts follow the weights",
        )
        size = snapshot.points.size
        require(size == sum(snapshot.counts.values()), "one point per counted vnode")
        require(snapshot.owners.size == size + 1, "owners has a wrap-around entry")
        require(snapshot.padded.size == size + 1, "points are padded")
        require(int(snapshot.padded[-1]) == MASK32, "the padding point is 2**32 - 1")
        if size:
            require(snapshot.owners[-1] == snapshot.owners[0], "wrap entry is the first owner")
            keys = (snapshot.points.astype(np.uint64) << 32) | snapshot.owners[:size]
            require(bool(np.all(keys[1:] >= keys[:-1])), "points sorted by (position, name)")
        for i, name in enumerate(snapshot.names):
            mine = np.sort(snapshot.points[snapshot.owners[:size] == i])
            expected = np.sort(self._scheme.node_points([(name, snapshot.counts[name])]))
            require(np.array_equal(mine, expected), f"node {name!r} holds exactly its points")
        require(snapshot.bits == table_bits(size, snapshot.bits), "table size fits points")
        if snapshot.index is None:
            rebuilt = build_table(
                snapshot.points, snapshot.owners, snapshot.names_obj, snapshot.bits
            )
            require(snapshot.table == rebuilt, "bucket table matches a full rebuild")
        else:
            require(size > 0, "only a ring with points has a native index")
            self._check_native(snapshot, snapshot.index)

    def _check_native(self, snapshot: _Snapshot, index: RingIndex) -> None:
        """The C index holds this snapshot's points, owners and names, and its bucket table
        matches one computed with numpy. O(points + 2**bits)."""
        require = self._require
        size = snapshot.points.size
        require(index.names is snapshot.names, "the index names the snapshot's nodes")
        require(index.size == size and index.bits == snapshot.bits, "index sizes")
        pairs = np.frombuffer(index.pairs(), dtype=np.uint32).reshape(-1, 2)
        require(np.array_equal(pairs[:, 0], snapshot.padded), "index points are the points")
        require(np.array_equal(pairs[:, 1], snapshot.owners), "index owners are the owners")
        shift = 32 - snapshot.bits
        per_bucket = np.bincount(snapshot.points >> shift, minlength=1 << snapshot.bits)
        first = np.cumsum(per_bucket) - per_bucket
        expected = np.where(per_bucket > 0, first, snapshot.owners[first] | np.uint32(1 << 31))
        entries = np.frombuffer(index.entries(), dtype=np.uint32)
        require(np.array_equal(entries, expected), "index table matches a numpy rebuild")
        require(snapshot.table is _NO_TABLE, "no Python table beside the index")

    # ------------------------------------------------------------------ private

    def _check_weights(self, weights: Mapping[str, float]) -> None:
        """Refuse weights that would give the ring more than MAX_POINTS points, before any
        point is hashed. O(n)."""
        vnodes = self._vnodes
        total: float
        if self._scheme.point_counts is ketama_counts:
            total = vnodes * len(weights)  # twemproxy's counts sum to at most this
        else:
            total = sum(max(1, math.floor(vnodes * w + 0.5)) for w in weights.values())
        if total > MAX_POINTS:
            raise InvalidWeightError(
                f"the ring would hold about {total:,.0f} points (vnodes={vnodes} x the "
                f"weights of {len(weights):,} nodes); at most {MAX_POINTS:,} are allowed: "
                "lower vnodes or the weights"
            )

    def _apply(self, weights: dict[str, float]) -> None:
        before = self._snapshot
        counts = self._scheme.point_counts(weights, self._vnodes)
        changed = {
            name
            for name in before.counts.keys() | counts.keys()
            if before.counts.get(name) != counts.get(name)
        }
        names = tuple(sorted(weights))
        padded, owners, touched = merge_points(
            before.points, before.owners, before.names, names, counts, changed, self._scheme
        )
        points = padded[:-1]
        names_obj = np.array(names, dtype=object)
        bits = table_bits(points.size, before.bits)
        if self._native is not None and bits:  # the C index replaces the Python table
            index = self._native(padded, owners, names, bits)
            self._snapshot = _Snapshot(
                weights, counts, names, names_obj, padded, owners, _NO_TABLE, bits,
                self._key_hash, index,
            )  # fmt: skip
            return
        table = None
        if bits and bits == before.bits and before.index is None:
            table = patch_table(
                before.table, bits, touched, before.points, points, owners, names_obj
            )
        if table is None:
            table = build_table(points, owners, names_obj, bits)
        self._snapshot = _Snapshot(
            weights, counts, names, names_obj, padded, owners, table, bits, self._key_hash
        )
