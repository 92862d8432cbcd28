"""Choosing a placement algorithm by name.

========== =========================================================================
ring       :class:`~hashring.HashRing`: virtual nodes on a circle; ketama compatible
maglev     :class:`~hashring.Maglev`: O(1) table lookups, near-perfect balance
rendezvous :class:`~hashring.Rendezvous`: highest random weight; exact shares, O(n) lookups
jump       :class:`~hashring.JumpHash`: jump hash with MementoHash removals; unweighted
========== =========================================================================
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterable, Mapping

from .._errors import InvalidOptionError
from .contract import Placement
from .jump import JumpHash
from .maglev import DEFAULT_TABLE_SIZE, Maglev
from .rendezvous import Rendezvous
from .ring import DEFAULT_VNODES, HashRing

__all__ = ["ALGORITHMS", "as_placement", "placement"]

ALGORITHMS = ("ring", "maglev", "rendezvous", "jump")
"""The names :func:`placement` accepts."""


def placement(
    algorithm: str = "ring",
    nodes: Iterable[str] | Mapping[str, float] = (),
    *,
    hash: str | Callable[[bytes], int] = "mmh3",
    hash_tags: bool = True,
    vnodes: int | None = None,
    table_size: int | None = None,
    hash_key: bytes | None = None,
) -> Placement:
    """Build the placement ``algorithm`` over ``nodes``.

    ``vnodes`` applies to ``"ring"`` (default 160) and ``table_size`` to ``"maglev"``
    (default 65537); giving either to another algorithm is an error rather than ignored.
    ``hash_key`` (a secret of 16 to 64 bytes) keys every algorithm's key hash, against hash
    flooding (see :class:`~hashring.HashRing`).

    >>> placement("maglev", ["a", "b"], table_size=1031).get_node("k") in ("a", "b")
    True

    Raises:
        InvalidOptionError: an unknown algorithm, or an option it does not take.
        InvalidWeightError, NodeExistsError: as the algorithm's constructor.
    """
    if not isinstance(algorithm, str) or algorithm not in ALGORITHMS:
        raise InvalidOptionError(
            f"unknown algorithm {algorithm!r:.60}: use one of {', '.join(ALGORITHMS)}"
        )
    for option, value, owner in (("vnodes", vnodes, "ring"), ("table_size", table_size, "maglev")):
        if value is not None and algorithm != owner:
            raise InvalidOptionError(
                f"{option} applies to algorithm={owner!r} only, not {algorithm!r}"
            )
    if algorithm == "ring":
        return HashRing(
            nodes,
            vnodes=DEFAULT_VNODES if vnodes is None else vnodes,
            hash=hash,
            hash_tags=hash_tags,
            hash_key=hash_key,
        )
    if algorithm == "maglev":
        size = DEFAULT_TABLE_SIZE if table_size is None else table_size
        return Maglev(nodes, table_size=size, hash=hash, hash_tags=hash_tags, hash_key=hash_key)
    if algorithm == "rendezvous":
        return Rendezvous(nodes, hash=hash, hash_tags=hash_tags, hash_key=hash_key)
    return JumpHash(nodes, hash=hash, hash_tags=hash_tags, hash_key=hash_key)


def as_placement(
    spec: str | Placement,
    names: Iterable[str],
    *,
    hash_tags: bool = True,
    owner: object | None = None,
) -> Placement:
    """The placement an adapter routes with, from its one ``placement=`` argument.

    * an algorithm name (one of :data:`ALGORITHMS`): that algorithm over ``names``, each
      of weight 1, with its default options and the adapter's ``hash_tags`` default;
    * a :class:`Placement` (``HashRing(..., vnodes=200)``, ``placement("maglev", ...,
      hash_key=secret)``, ``load_topology(path).placement()``, or your own): used as it
      is, so weights and every option are said once, where it was built. Its node names
      must be exactly ``names``, the nodes the adapter has clients or URLs for. The adapter
      takes the object over (its ``add_node``/``remove_node`` change it), so one placement
      object serves one adapter: an adapter passes itself as ``owner``, and a placement
      another live adapter already holds is refused. Build one per adapter (equal
      placements place every key alike).

    >>> as_placement("maglev", ["a", "b"]).get_node("k") in ("a", "b")
    True
    >>> as_placement(HashRing({"a": 2, "b": 1}), ["a", "b"]).nodes["a"]
    2.0

    Runtime: one placement build for a name, O(n) for a ready placement.

    Raises:
        InvalidOptionError: an unknown name, something that is neither a name nor a
            placement, a placement whose nodes are not exactly ``names`` (the message lists
            the names missing on either side), or one another adapter already holds.
    """
    wanted = list(names)
    if isinstance(spec, str):
        return placement(spec, wanted, hash_tags=hash_tags)
    if not isinstance(spec, Placement):
        raise InvalidOptionError(
            f"placement must be an algorithm name ({', '.join(ALGORITHMS)}) or a Placement "
            f"such as HashRing(...), not {type(spec).__name__}"
        )
    held = set(spec.nodes)
    unplaced = sorted(set(wanted) - held)
    unknown = sorted(held - set(wanted))
    if unplaced or unknown:
        problems = [
            f"{what}: {_names(group)}"
            for what, group in (
                ("not in the placement", unplaced),
                ("in the placement but without a client", unknown),
            )
            if group
        ]
        raise InvalidOptionError(
            "the placement's nodes must be exactly the adapter's nodes; " + "; ".join(problems)
        )
    if owner is not None:
        _take_over(spec, owner)
    return spec


_HOLDERS: weakref.WeakKeyDictionary[Placement, weakref.ref[object]] = weakref.WeakKeyDictionary()
"""Which adapter holds each ready placement (entries vanish with the placement; a holder
that was garbage-collected no longer counts)."""
_HOLDERS_LOCK = threading.Lock()


def _take_over(spec: Placement, owner: object) -> None:
    """Record ``owner`` as the holder of ``spec``; refuse if another live adapter holds it.

    Placements that cannot be weakly referenced (a custom class with ``__slots__``) are not
    tracked: sharing one of those is the caller's responsibility.
    """
    with _HOLDERS_LOCK:
        try:
            held = _HOLDERS.get(spec)
        except TypeError:  # not weakly referenceable
            return
        holder = held() if held is not None else None
        if holder is not None and holder is not owner:
            raise InvalidOptionError(
                f"this placement object is already held by a {type(holder).__name__}, whose "
                "add_node/remove_node would change it under this adapter: build one "
                "placement per adapter (equal placements place every key alike)"
            )
        _HOLDERS[spec] = weakref.ref(owner)


def _names(names: list[str]) -> str:
    """Up to five names, quoted, for an error message."""
    shown = ", ".join(repr(name) for name in names[:5])
    return shown + (", ..." if len(names) > 5 else "")
