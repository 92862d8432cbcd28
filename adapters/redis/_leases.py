"""Leases on the nodes' clients, so that removing a node never closes a client under a
command.

Membership is one immutable snapshot (:class:`Members`: node -> :class:`Slot`, URLs, the
default node, the placement and the topology version), replaced in one assignment, so a
reader never sees a half-applied change: a command reads it once and routes on it to the
end, so swapping a whole topology (``_swap``) is one assignment too.
A command *leases* the slot of every node it will use before sending anything
(:meth:`Slot.enter`) and gives it back when its node has answered (:meth:`Slot.leave`).
``remove_node`` retires the slot: no new lease is granted, and the client is closed by
whoever leaves last, so commands already under way finish on an open client. A command
routed just before the removal fails to lease and is routed again (nothing was sent).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, cast

import redis

from hashring import Placement

__all__ = [
    "REROUTE_ATTEMPTS",
    "Members",
    "NodeRemovedError",
    "Slot",
    "give_back",
    "lease",
]

C = TypeVar("C")

#: Times a command is routed again when a node it was routed to left meanwhile.
REROUTE_ATTEMPTS = 8


class NodeRemovedError(redis.exceptions.ConnectionError):
    """A node was removed from the topology before a command could be sent to it (nothing
    was sent). Raised only when routing again kept meeting removed nodes."""


class Slot(Generic[C]):
    """One node's client with a count of the commands using it (thread-safe).

    ``enter``/``leave`` bracket every use; ``retire`` marks the node removed. The client
    must be closed exactly once, by the caller that gets True from ``retire`` or ``leave``:
    after the last command in flight, never under one.
    """

    __slots__ = ("_inflight", "_lock", "_retired", "client", "created")

    def __init__(self, client: C, created: bool) -> None:
        self.client = client
        self.created = created  # this object built the client from a URL: it closes it
        self._inflight = 0
        self._retired = False
        self._lock = threading.Lock()

    def enter(self) -> bool:
        """Lease the client for one command; False once the node has been removed. O(1)."""
        with self._lock:
            if self._retired:
                return False
            self._inflight += 1
            return True

    def leave(self) -> bool:
        """Give the lease back; True when the caller must now close the client (it was the
        last lease of a removed node whose client this object created). O(1)."""
        with self._lock:
            self._inflight -= 1
            return self._retired and self._inflight == 0 and self.created

    def retire(self) -> bool:
        """Refuse new leases; True when the caller must close the client now (nothing in
        flight, and this object created it). O(1)."""
        with self._lock:
            self._retired = True
            return self._inflight == 0 and self.created

    @property
    def retired(self) -> bool:
        """Whether the node has been removed."""
        return self._retired

    @property
    def in_flight(self) -> int:
        """Commands using the client now."""
        return self._inflight


@dataclass(frozen=True)
class Members(Generic[C]):
    """The nodes at one moment, with the placement that maps keys to them: replaced as a
    whole (build it with :meth:`of`). The placement object itself changes in place only
    through ``add_node``/``remove_node`` of the client, which build a new snapshot around
    it; a topology swap brings a new placement object in a new snapshot."""

    slots: Mapping[str, Slot[C]]
    urls: Mapping[str, str | None]
    names: tuple[str, ...]
    """The node names, sorted."""
    first: str
    """The default node: the first name ("" with no nodes)."""
    encoder: Any
    """The first node's redis-py ``Encoder`` (None with no nodes): what the command methods
    and the placement of keys use, built once per membership change, not per command."""
    placement: Placement
    """What maps keys to the names of :attr:`slots`."""
    version: str | None
    """The version of the topology these members run (None for a client not built from a
    topology)."""
    window: Any = None
    """The migration window these members run (a ``_window_routes.Window``: the previous
    topology's client and the marker), or None outside one."""

    @classmethod
    def of(
        cls,
        slots: Mapping[str, Slot[C]],
        urls: Mapping[str, str | None],
        placement: Placement,
        version: str | None = None,
        window: Any = None,
    ) -> Members[C]:
        """The snapshot of ``slots`` (and their URLs), placed by ``placement``, running
        topology ``version`` and migration ``window``. O(n log n)."""
        names = tuple(sorted(slots))
        first = names[0] if names else ""
        encoder = cast(Any, slots[first].client).get_encoder() if names else None
        return cls(slots, urls, names, first, encoder, placement, version, window)


def lease(members: Members[C], nodes: Iterable[str]) -> tuple[dict[str, Slot[C]] | None, list[C]]:
    """Lease the slot of every node of ``nodes``, once per time it is named (a plan with
    two parts on one node gives two leases back).

    Returns:
        (node -> slot, []) when every node is still a member; else (None, clients to
        close): nothing stays leased, and a client whose last lease was given back here
        must be closed by the caller.
    """
    leased: dict[str, Slot[C]] = {}
    entered: list[Slot[C]] = []
    for node in nodes:
        slot = members.slots.get(node)
        if slot is None or not slot.enter():
            return None, give_back(entered)
        leased[node] = slot
        entered.append(slot)
    return leased, []


def give_back(slots: Iterable[Slot[C]]) -> list[C]:
    """End one lease of each slot; the clients the caller must now close."""
    return [slot.client for slot in slots if slot.leave()]
