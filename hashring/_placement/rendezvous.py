"""Rendezvous (highest random weight) hashing, weighted.

Every node scores every key; the highest score owns it, and the preference list is the nodes
in descending score. Node ``i`` with weight ``w`` scores key ``k`` as ``w / -ln(u)``, where
``u`` in (0, 1) is drawn from ``mix64(position(k) * GOLDEN ^ seed_i)`` (its top 53 bits):
the weighted rule of Schindelhauer and Schomaker, which gives node ``i`` the share
``w_i / sum(w)`` of keys exactly. When all weights are equal the ranking compares the
64-bit mixes themselves (the same order, computed exactly in integers), so placement cannot
depend on how a platform rounds a logarithm. Adding a node moves keys only to it; removing one moves
only its keys, each to its second-highest node. Equal scores go to the node whose name
sorts first.

Lookups cost O(n) for n nodes: a single lookup scores every node in C when the optional
extension module is built (see ``scores``), else up to 48 nodes (24 weighted) with Python
integers and more with numpy; batches are vectorised with numpy, far cheaper per key.
Membership changes cost O(n).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence

from .._errors import EmptyRingError
from .hashes import MASK32, hash_scheme
from .keys import Key, hash_tag
from .nodes import IndexArray, NodeSet, preference_count
from .scores import RendezvousScores, require_scoring

__all__ = ["Rendezvous"]


class _Snapshot:
    __slots__ = ("scoring", "weights")

    def __init__(self, weights: dict[str, float]) -> None:
        self.weights = weights
        self.scoring = RendezvousScores(weights)


class Rendezvous(NodeSet[_Snapshot]):
    """Weighted rendezvous hashing behind the placement interface.

    >>> hrw = Rendezvous({"a": 1, "b": 1, "c": 2})
    >>> hrw.get_nodes("user:42")[0] == hrw.get_node("user:42")
    True

    Args:
        nodes: node names (weight 1 each) or a mapping of node name to weight.
        hash: how keys hash to 32-bit positions: ``"mmh3"`` (default), ``"ketama"`` or a
            callable ``bytes -> int``, as for :class:`~hashring.HashRing`.
        hash_tags: place a key containing ``{tag}`` by its tag alone (default True).
        hash_key: a secret of 16 to 64 bytes that keys the hash of every key (keyed
            BLAKE2b), against hash flooding; see :class:`~hashring.HashRing`.

    Raises:
        InvalidOptionError, InvalidWeightError, NodeExistsError: as HashRing.
    """

    _KIND = "rendezvous placement"

    def __init__(
        self,
        nodes: Iterable[str] | Mapping[str, float] = (),
        *,
        hash: str | Callable[[bytes], int] = "mmh3",
        hash_tags: bool = True,
        hash_key: bytes | None = None,
    ) -> None:
        self._scheme = hash_scheme(hash, hash_key)
        self._init_nodes(nodes, hash_tags)

    def get_node(self, key: Key) -> str:
        """Owner of ``key``: the highest-scoring node. O(n): in C when the extension module
        is built (under a microsecond up to 32 nodes), else with Python integers up to 48
        nodes (24 with unequal weights; a few microseconds) and vectorised with numpy above.

        Raises:
            InvalidKeyError: ``key`` is neither str nor bytes-like.
            KeyEncodingError: ``key`` is a str with no UTF-8 form (a lone surrogate).
            EmptyRingError: there are no nodes.
        """
        scoring = self._snapshot.scoring
        if not scoring.names:
            raise EmptyRingError("the rendezvous placement has no nodes: add one first")
        if key.__class__ is str and key.isascii():  # the fast path of HashRing.get_node
            if "{" in key and self._hash_tags:
                key = hash_tag(key)
        elif key.__class__ is bytes:
            if b"{" in key and self._hash_tags:
                key = hash_tag(key)
        else:
            key = self._routing_key(key)
        return scoring.names[scoring.best_one(self._scheme.key_hash(key))]

    def get_nodes(self, key: Key, n: int | None = None) -> list[str]:
        """Preference list: the ``n`` highest-scoring nodes (all for None). O(n log n), in
        C when the extension module is built, else with numpy.

        Raises:
            InvalidKeyError, InvalidOptionError, NotEnoughNodesError, EmptyRingError:
                as :meth:`HashRing.get_nodes <hashring.HashRing.get_nodes>`.
        """
        scoring = self._scoring()
        position = self._scheme.key_hash(self._routing_key(key)) & MASK32
        count = preference_count(n, len(scoring.names), self._KIND)
        return [scoring.names[i] for i in scoring.ranking(position)[:count]]

    def _place_many(self, routed: Sequence[Key]) -> list[str]:
        """Batch placement: scored in vectorised chunks. O(k * n) in C."""
        scoring = self._scoring()
        best = scoring.best(self._scheme.hash_many(routed))
        owners: list[str] = scoring.names_obj[best].tolist()
        return owners

    def _index_many(self, routed: Sequence[Key]) -> tuple[IndexArray, tuple[str, ...]]:
        """:meth:`_place_many` as positions among the sorted names (the scoring's)."""
        scoring = self._scoring()
        return scoring.best(self._scheme.hash_many(routed)), scoring.names

    def __repr__(self) -> str:
        return (
            f"Rendezvous(nodes={len(self)}, hash={self._scheme.name!r}, "
            f"hash_tags={self._hash_tags})"
        )

    def _check(self) -> None:
        """Verify the scoring against the weights; raise AssertionError if one is broken. O(n)."""
        super()._check()
        snapshot = self._snapshot
        require_scoring(self._require, snapshot.scoring, snapshot.weights)

    def _scoring(self) -> RendezvousScores:
        scoring = self._snapshot.scoring
        if not scoring.names:
            raise EmptyRingError("the rendezvous placement has no nodes: add one first")
        return scoring

    def _apply(self, weights: dict[str, float]) -> None:
        self._snapshot = _Snapshot(weights)
