"""The placement interface every algorithm implements.

Adapters, the command line and the benchmarks take any :class:`Placement`, so an algorithm
is chosen by constructing it, never by special cases downstream.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Protocol, runtime_checkable

from .keys import Key

__all__ = ["Placement"]


@runtime_checkable
class Placement(Protocol):
    """Maps keys to node names. Lookups are lock-free; membership changes are serialised.

    Keys are ``str`` (hashed as UTF-8) or ``bytes``; anything else raises
    :class:`~hashring.InvalidKeyError`. Placement is deterministic: the same node names,
    weights and options give the same owner for every key, on any machine, whatever order
    the nodes were added in.
    """

    def get_node(self, key: Key) -> str:
        """Owner of ``key``."""
        ...

    def get_nodes(self, key: Key, n: int | None = None) -> list[str]:
        """Preference list of ``key``: ``n`` distinct nodes (all for None), owner first."""
        ...

    def get_node_many(self, keys: Iterable[Key]) -> list[str]:
        """Owners of ``keys``, in order; the fast path for bulk routing and reports."""
        ...

    def add_node(self, name: str, weight: float = 1) -> None:
        """Add a node; raises NodeExistsError if present."""
        ...

    def remove_node(self, name: str) -> None:
        """Remove a node; raises UnknownNodeError if absent."""
        ...

    def set_weight(self, name: str, weight: float) -> None:
        """Change a node's weight; raises UnknownNodeError if absent."""
        ...

    @property
    def nodes(self) -> Mapping[str, float]:
        """Read-only mapping of node name to weight."""
        ...

    def __len__(self) -> int: ...

    def __contains__(self, name: object) -> bool: ...
