"""Node sets: validation of names and weights, and the membership API every placement shares.

:class:`NodeSet` holds the lock and the immutable snapshot of a placement and implements
``add_node``, ``remove_node``, ``set_weight``, ``nodes``, ``len``, ``in`` and ``iter`` once.
A subclass only says how to publish a snapshot for a new mapping of weights
(:meth:`NodeSet._apply`) and may refuse weights it cannot honour
(:meth:`NodeSet._check_weights`). Lookups read ``self._snapshot`` once, without a lock;
membership changes are serialised by the lock and publish a new snapshot in one assignment.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from numbers import Real
from types import MappingProxyType
from typing import Any, ClassVar, Generic, Protocol, TypeVar

import numpy as np
import numpy.typing as npt

from .._errors import (
    InvalidKeyError,
    InvalidOptionError,
    InvalidWeightError,
    NodeExistsError,
    NotEnoughNodesError,
    UnknownNodeError,
)
from .keys import Key, check_key, hash_tag, short_repr

__all__ = [
    "MAX_NAME_BYTES",
    "MAX_WEIGHT",
    "MIN_WEIGHT",
    "IndexArray",
    "NodeSet",
    "check_node_name",
    "check_weight",
    "initial_weights",
    "preference_count",
]

IndexArray = npt.NDArray[np.intp]
"""Node positions (into a placement's sorted node names), one per key: ``get_index_many``."""

MAX_NAME_BYTES = 4096
"""Longest node name accepted, in UTF-8 bytes (names are hashed once per point)."""

MIN_WEIGHT = 1e-12
MAX_WEIGHT = 1e12
"""Weights lie in ``[MIN_WEIGHT, MAX_WEIGHT]``. Only their ratios matter to Maglev and
Rendezvous; the bound keeps sums of weights, and the float32 arithmetic of ketama, finite
and exact enough for any fleet. HashRing also bounds the number of points they make."""


def check_node_name(name: Any) -> str:
    """Return ``name`` if it is a usable node name, else raise :class:`InvalidOptionError`.

    A node name is a non-empty ``str`` with a UTF-8 form (no lone surrogates) of at most
    :data:`MAX_NAME_BYTES` bytes.
    """
    if name.__class__ is not str or not name:
        if not isinstance(name, str) or not name:
            raise InvalidOptionError(
                f"node name must be a non-empty str, got {type(name).__name__} {short_repr(name)}"
            )
        name = str.__str__(name)
    if not name.isascii() or len(name) > MAX_NAME_BYTES:
        try:
            size = len(name.encode())
        except UnicodeEncodeError:
            raise InvalidOptionError(
                f"node name {name!r:.60} cannot be encoded as UTF-8 (it holds a lone surrogate)"
            ) from None
        if size > MAX_NAME_BYTES:
            raise InvalidOptionError(
                f"node name {name!r:.40}... is {size:,} bytes long; at most "
                f"{MAX_NAME_BYTES:,} UTF-8 bytes are allowed"
            )
    checked: str = name
    return checked


def check_weight(weight: Any, name: str) -> float:
    """Return ``weight`` as a float if it is a real number in
    ``[MIN_WEIGHT, MAX_WEIGHT]`` (1e-12 to 1e12), else raise :class:`InvalidWeightError`.
    """
    if isinstance(weight, bool) or not isinstance(weight, Real):
        raise InvalidWeightError(
            f"weight of node {name!r:.60} must be a positive finite number, "
            f"not {type(weight).__name__} {short_repr(weight)}"
        )
    try:
        value = float(weight)
    except (OverflowError, ValueError, TypeError):
        value = math.inf
    if not (MIN_WEIGHT <= value <= MAX_WEIGHT):
        raise InvalidWeightError(
            f"weight of node {name!r:.60} must be a positive finite number from {MIN_WEIGHT:g} "
            f"to {MAX_WEIGHT:g}, got {short_repr(weight)}"
        )
    return value


def initial_weights(nodes: Iterable[str] | Mapping[str, float]) -> dict[str, float]:
    """Parse the ``nodes`` argument of a placement: names (weight 1) or name -> weight."""
    if isinstance(nodes, (str, bytes)):
        raise InvalidOptionError(
            f"nodes must be an iterable of node names or a mapping name -> weight, "
            f"not a single {type(nodes).__name__}; did you mean [{nodes!r:.60}]?"
        )
    if isinstance(nodes, Mapping):
        items: Iterable[tuple[Any, Any]] = nodes.items()
    else:
        try:
            items = [(name, 1) for name in nodes]
        except TypeError:
            raise InvalidOptionError(
                "nodes must be an iterable of node names or a mapping name -> weight, "
                f"not {type(nodes).__name__}"
            ) from None
    weights: dict[str, float] = {}
    for given, weight in items:
        name = check_node_name(given)
        if name in weights:
            raise NodeExistsError(f"node {name!r} is listed more than once")
        weights[name] = check_weight(weight, name)
    return weights


def preference_count(n: Any, total: int, kind: str) -> int:
    """Validate the ``n`` of ``get_nodes`` against ``total`` nodes; None means all of them.

    Raises:
        InvalidOptionError: ``n`` is not None or an int >= 1.
        NotEnoughNodesError: ``n`` is larger than ``total`` (get_nodes never returns fewer
            nodes than asked).
    """
    if n is None:
        return total
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise InvalidOptionError(f"n must be an int >= 1 or None, got {n!r}")
    if n > total:
        raise NotEnoughNodesError(
            f"asked for {n} distinct nodes but the {kind} holds {total}; "
            "ask for at most len(placement), or pass n=None for all of them"
        )
    return n


def _key_list(keys: Iterable[Key]) -> list[Any]:
    """``keys`` as a list (itself when it is one), for the batch lookups.

    Raises:
        InvalidKeyError: ``keys`` is a single str or bytes-like, or not iterable.
    """
    if keys.__class__ is list:
        listed: list[Any] = keys
        return listed
    if isinstance(keys, (str, bytes, bytearray, memoryview)):
        raise InvalidKeyError(
            f"keys must be an iterable of keys, not a single {type(keys).__name__}; "
            "for one key use get_node(key)"
        )
    try:
        return list(keys)
    except TypeError:
        raise InvalidKeyError(
            f"keys must be an iterable of keys, not {type(keys).__name__}"
        ) from None


class Snapshot(Protocol):
    """What NodeSet needs of a snapshot: the weights it was built for."""

    @property
    def weights(self) -> dict[str, float]: ...


S = TypeVar("S", bound=Snapshot)


class NodeSet(Generic[S]):
    """Membership of a placement: weighted, uniquely named nodes, changed under a lock.

    Subclasses set ``self._snapshot`` in ``__init__`` (through :meth:`_apply`) and implement
    :meth:`_apply`. ``_hash_tags`` selects the ``{tag}`` rule for :meth:`_routing_key`.
    """

    _KIND = "placement"
    """How error messages name this kind of placement ("ring", "maglev table", ...)."""

    HISTORY_FREE: ClassVar[bool] = True
    """True when placement depends only on the current nodes and weights, never on the order
    of the changes that led to them (False for JumpHash, whose buckets follow its history)."""

    _snapshot: S
    _hash_tags: bool
    _lock: threading.Lock

    def _init_nodes(self, nodes: Iterable[str] | Mapping[str, float], hash_tags: bool) -> None:
        self._hash_tags = bool(hash_tags)
        self._lock = threading.Lock()
        weights = initial_weights(nodes)
        self._check_weights(weights)
        self._apply(weights)

    # ------------------------------------------------------------------ batch lookups

    def get_node_many(self, keys: Iterable[Key]) -> list[str]:
        """Return the owner of each key, in order: ``[get_node(k) for k in keys]``, faster.

        The batch path: ``keys`` is read into a list, checked and hash-tagged in one pass
        (a C-level join when all keys are plain str), hashed in one C-level pass and placed
        with vectorised numpy work. Runtime complexity for k keys: O(k) for HashRing and
        Maglev, O(k log n) for JumpHash, O(k * n) for Rendezvous (all but the key pass in C).

        Raises:
            InvalidKeyError: ``keys`` is not an iterable of keys (a single str or bytes is
                refused), or a key is neither str nor bytes-like (the message gives its
                index).
            KeyEncodingError: a str key has no UTF-8 form (the message gives its index).
            EmptyRingError: there are no nodes and ``keys`` is not empty.
        """
        batch = _key_list(keys)
        if not batch:
            return []
        return self._place_many(self._routing_keys(batch))

    def get_index_many(self, keys: Iterable[Key]) -> tuple[IndexArray, tuple[str, ...]]:
        """Return the owners of ``keys`` as positions among the node names: ``(index,
        names)``, ``names`` the node names sorted (as ``iter(placement)``) and ``index`` an
        ``intp`` array with ``names[index[k]] == get_node(keys[k])`` for every ``k``, both
        read from one snapshot. The batch path of :meth:`get_node_many` without building
        the list of names, for callers that group keys per node with numpy (the Redis
        adapter's MGET/MSET split). Same complexity as :meth:`get_node_many`.

        Raises:
            InvalidKeyError, KeyEncodingError, EmptyRingError: as :meth:`get_node_many`.
        """
        batch = _key_list(keys)
        if not batch:
            return np.empty(0, dtype=np.intp), tuple(sorted(self._snapshot.weights))
        return self._index_many(self._routing_keys(batch))

    # -------------------------------------------------------------- membership

    def add_node(self, name: str, weight: float = 1) -> None:
        """Add node ``name`` with ``weight``.

        Raises:
            InvalidOptionError: ``name`` is not a non-empty str.
            InvalidWeightError: ``weight`` is not a positive finite number (or is one this
                algorithm cannot honour).
            NodeExistsError: ``name`` is already a node.
        """
        name = check_node_name(name)
        value = check_weight(weight, name)
        with self._lock:
            weights = self._snapshot.weights
            if name in weights:
                raise NodeExistsError(
                    f"node {name!r} is already in the {self._KIND}; use set_weight() to change it"
                )
            changed = {**weights, name: value}
            self._check_weights(changed)
            self._apply(changed)

    def remove_node(self, name: str) -> None:
        """Remove node ``name``.

        Raises:
            UnknownNodeError: ``name`` is not a node.
            InvalidOptionError: ``name`` is not a str.
        """
        if not isinstance(name, str):
            check_node_name(name)
        with self._lock:
            weights = dict(self._snapshot.weights)
            if weights.pop(name, None) is None:
                raise self._unknown(name)
            self._apply(weights)

    def set_weight(self, name: str, weight: float) -> None:
        """Change the weight of node ``name``.

        Raises:
            UnknownNodeError: ``name`` is not a node.
            InvalidWeightError: ``weight`` is not a positive finite number (or is one this
                algorithm cannot honour).
            InvalidOptionError: ``name`` is not a str.
        """
        if not isinstance(name, str):
            check_node_name(name)
        value = check_weight(weight, name)
        with self._lock:
            weights = self._snapshot.weights
            if name not in weights:
                raise self._unknown(name)
            changed = {**weights, name: value}
            self._check_weights(changed)
            self._apply(changed)

    # -------------------------------------------------------------- construction

    # -------------------------------------------------------------- inspection

    @property
    def nodes(self) -> Mapping[str, float]:
        """A read-only mapping of node name to weight (a snapshot: it does not change)."""
        return MappingProxyType(self._snapshot.weights)

    def __len__(self) -> int:
        return len(self._snapshot.weights)

    def __contains__(self, name: object) -> bool:
        return name in self._snapshot.weights

    def __iter__(self) -> Iterator[str]:
        """Node names, sorted."""
        return iter(sorted(self._snapshot.weights))

    def _check(self) -> None:
        """Verify the invariants every node set shares; subclasses extend it with their own.

        Raises AssertionError naming the broken invariant. Runtime: O(n) here.
        """
        weights = self._snapshot.weights
        for name, weight in weights.items():
            self._require(check_node_name(name) == name, f"node {name!r} has a valid name")
            self._require(check_weight(weight, name) == weight, f"node {name!r} weight valid")

    def _require(self, condition: bool, what: str) -> None:
        """Raise AssertionError ``"<Class> invariant broken: <what>"`` unless ``condition``."""
        if not condition:
            raise AssertionError(f"{type(self).__name__} invariant broken: {what}")

    # ------------------------------------------------------------ for subclasses

    def _apply(self, weights: dict[str, float]) -> None:
        """Publish the snapshot for ``weights``. Called with the lock held (or from init)."""
        raise NotImplementedError

    def _place_many(self, routed: Sequence[Key]) -> list[str]:
        """Owners of already checked and tagged keys, in order (see get_node_many).

        Raises:
            EmptyRingError: there are no nodes.
        """
        raise NotImplementedError

    def _index_many(self, routed: Sequence[Key]) -> tuple[IndexArray, tuple[str, ...]]:
        """Owners of already checked and tagged keys as positions among the sorted node
        names, and those names (see get_index_many).

        Raises:
            EmptyRingError: there are no nodes.
        """
        raise NotImplementedError

    def _check_weights(self, weights: Mapping[str, float]) -> None:
        """Refuse weights the algorithm cannot honour (default: any valid weight is fine)."""

    def _unknown(self, name: object) -> UnknownNodeError:
        names = sorted(self._snapshot.weights)
        known = ", ".join(repr(n) for n in names[:10])
        more = "" if len(names) <= 10 else ", ..."
        return UnknownNodeError(
            f"no node named {name!r} in the {self._KIND} (nodes: {known}{more})"
        )

    def _routing_key(self, key: Any) -> Key:
        """Check ``key`` and return the part of it that places it.

        A non-ASCII ``str`` (the case the lookups' inlined fast paths leave to this method)
        is encoded here directly, without the detour through ``check_key``.

        Raises:
            InvalidKeyError, KeyEncodingError: as :func:`check_key`.
        """
        if key.__class__ is str and not key.isascii():
            try:
                key = key.encode()
            except UnicodeEncodeError:
                key = check_key(key)  # raises KeyEncodingError, with the message
        else:
            key = check_key(key)
        return hash_tag(key) if self._hash_tags else key

    def _routing_keys(self, batch: list[Any]) -> Sequence[Key]:
        """Check a batch of keys and apply hash tags; fast when all keys are plain str, or
        all are ``bytes`` (what SCAN and redis-py's replies give).

        A batch of str keys is checked by one C-level join (and, unless it is all ASCII,
        one UTF-8 encode of the join, which fails exactly when some key has no UTF-8 form);
        a batch of bytes needs no check, and one join tells whether any key holds a ``{``.
        """
        try:
            joined = "".join(batch)
            if not joined.isascii():
                joined.encode()
        except (TypeError, UnicodeEncodeError):
            if all(key.__class__ is bytes for key in batch):  # what SCAN gives: as fast
                if self._hash_tags and b"{" in b"".join(batch):
                    return [hash_tag(key) for key in batch]
                return batch
            checked: list[Key] = []
            for i, key in enumerate(batch):
                try:
                    checked.append(self._routing_key(key))
                except InvalidKeyError as exc:
                    raise type(exc)(f"keys[{i}]: {exc}") from None
            return checked
        if self._hash_tags and "{" in joined:
            return [hash_tag(key) for key in batch]
        return batch
