"""What ShardedRedis and AsyncShardedRedis share: everything that does no I/O.

Nodes and their clients, the placement, health counters, URLs (kept for ``repr`` with
passwords redacted and to know which clients this object created), topology files, and the
lookups ``node_for`` / ``client_for``. Only connecting (sync or asyncio client classes) and
the I/O itself differ between the two clients.

Membership is one immutable snapshot (:class:`Members`: node -> :class:`Slot`, URLs, the
default node), replaced in one assignment, so a reader never sees a half-applied change.
A command *leases* the slot of every node it will use before sending anything
(:meth:`Slot.enter`) and gives it back when its node has answered (:meth:`Slot.leave`).
``remove_node`` retires the slot: no new lease is granted, and the client is closed by
whoever leaves last, so commands already under way finish on an open client. A command
routed just before the removal fails to lease and is routed again (nothing was sent).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

import redis

from hashring import (
    ConfigError,
    EmptyRingError,
    HealthTracker,
    InvalidOptionError,
    Key,
    NodeExistsError,
    Placement,
    load_topology,
    placement,
    redact_url,
)
from hashring._balancing.health import Transition
from hashring._placement.nodes import check_node_name, check_weight

from ._redis_commands import SCHEMES, describe_nodes, route_owners

__all__ = [
    "Members",
    "NodeRemovedError",
    "ShardedBase",
    "Slot",
    "check_target",
    "config_arguments",
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
    """The nodes at one moment: replaced as a whole, never changed in place."""

    slots: Mapping[str, Slot[C]]
    urls: Mapping[str, str | None]
    first: str  # the default node: the first name ("" with no nodes)


def lease(members: Members[C], nodes: Iterable[str]) -> tuple[dict[str, Slot[C]] | None, list[C]]:
    """Lease the slot of every node of ``nodes`` (each once).

    Returns:
        (node -> slot, []) when every node is still a member; else (None, clients to
        close): nothing stays leased, and a client whose last lease was given back here
        must be closed by the caller.
    """
    leased: dict[str, Slot[C]] = {}
    for node in nodes:
        if node in leased:
            continue
        slot = members.slots.get(node)
        if slot is None or not slot.enter():
            return None, give_back(leased.values())
        leased[node] = slot
    return leased, []


def give_back(slots: Iterable[Slot[C]]) -> list[C]:
    """End one lease of each slot; the clients the caller must now close."""
    return [slot.client for slot in slots if slot.leave()]


def command_time(client: object) -> float:
    """The longest a command on ``client`` may take, redis-py's retries included, in
    seconds (at most an hour): from its pool's ``socket_connect_timeout`` and
    ``socket_timeout`` (0 for unset ones) and its ``retry``.

    redis-py retries a failed command ``retries`` times, and each attempt may reconnect,
    retrying the connect and handshake as often, with a backoff (at most its cap) before
    each retry; so the bound is ``(retries + 1) ** 2`` attempts of connect plus answer,
    plus as many backoffs. O(1).
    """
    pool = getattr(client, "connection_pool", None)
    kwargs = getattr(pool, "connection_kwargs", None) or {}
    attempt = 0.0
    answer = kwargs.get("socket_timeout")
    for value in (kwargs.get("socket_connect_timeout") or answer, answer):
        attempt += min(_seconds(value), 3600.0)
    retry = kwargs.get("retry")
    retries = 0
    pause = 0.0
    if retry is not None:
        try:  # a foreign retry object counts no retries
            count = retry.get_retries()
            retries = min(count, 1000) if isinstance(count, int) and count > 0 else 0
            backoff = getattr(retry, "_backoff", None)
            cap = getattr(backoff, "_cap", getattr(backoff, "_backoff", None))
            if cap is None and backoff is not None:
                cap = backoff.compute(64)
            pause = min(_seconds(cap), 3600.0)
        except Exception:
            retries = 0
    attempts = (retries + 1) ** 2
    return min(attempts * attempt + (attempts - 1) * pause, 3600.0)


def _seconds(value: object) -> float:
    """``value`` as seconds if it is a positive finite number, else 0."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value < 1e300:
        return float(value)
    return 0.0


def check_target(name: str, target: object, client_class: type) -> None:
    """Refuse a node target that is neither a ``client_class`` nor a Redis URL.

    Raises:
        InvalidOptionError: a bad node name, an unsupported scheme or a wrong type.
    """
    check_node_name(name)
    if isinstance(target, client_class):
        return
    if not isinstance(target, str) or not target.startswith(SCHEMES):
        shown = redact_url(target) if isinstance(target, str) else type(target).__name__
        raise InvalidOptionError(
            f"node {name!r}: {shown!r} is neither a {client_class.__module__}."
            f"{client_class.__name__} nor a redis://, rediss:// or unix:// URL"
        )


def config_arguments(path: str | Path) -> tuple[dict[str, str], dict[str, Any]]:
    """Node URLs and constructor options from the topology file at ``path`` (the placement's
    ``hash_key`` comes from the environment variable its ``hash_key_env`` names).

    Raises:
        ConfigError: the file is not valid, a node has no url, or the secret is missing.
    """
    topology = load_topology(path)
    missing = [name for name, spec in topology.nodes.items() if spec.url is None]
    if missing:
        raise ConfigError(f"{topology.source}: nodes.{missing[0]}.url is required here")
    nodes = {name: spec.url for name, spec in topology.nodes.items() if spec.url}
    options: dict[str, Any] = {
        "weights": topology.weights,
        "algorithm": topology.algorithm,
        "vnodes": topology.vnodes,
        "table_size": topology.table_size,
        "hash": topology.hash,
        "hash_tags": topology.hash_tags,
        "hash_key": topology.hash_key,  # read from the variable named by hash_key_env
    }
    return nodes, options


class ShardedBase(Generic[C]):
    """Nodes, clients, placement and health of a sharded client of client type ``C``."""

    _members: Members[C]
    _placement: Placement
    _health: HealthTracker
    _redis_kwargs: dict[str, Any]

    def _setup(
        self,
        nodes: Mapping[str, str | C],
        connect: Callable[[str, str | C, Mapping[str, Any]], C],
        *,
        weights: Mapping[str, float] | None,
        algorithm: str,
        vnodes: int | None,
        table_size: int | None,
        hash: str,
        hash_tags: bool,
        hash_key: bytes | None,
        health: bool,
        failure_limit: int,
        retry_timeout: float,
        redis_kwargs: Mapping[str, Any],
    ) -> None:
        self._connect = connect
        self._redis_kwargs = dict(redis_kwargs)
        chosen = {name: check_weight((weights or {}).get(name, 1), name) for name in nodes}
        self._placement = placement(
            algorithm, chosen, hash=hash, hash_tags=hash_tags, vnodes=vnodes,
            table_size=table_size, hash_key=hash_key,
        )  # fmt: skip
        slots = {
            name: Slot(connect(name, target, redis_kwargs), isinstance(target, str))
            for name, target in nodes.items()
        }
        urls = {name: t if isinstance(t, str) else None for name, t in nodes.items()}
        self._members = Members(slots, urls, min(slots, default=""))
        self._health = HealthTracker(
            enabled=health, failure_limit=failure_limit, retry_timeout=retry_timeout
        )
        self._set_probe_timeout()

    def _set_probe_timeout(self) -> None:
        """A probe's claim is given back when its command ends (``release`` in every
        command's ``finally``); its time limit is only a backstop for a claimer that never
        ends: retry_timeout plus the longest a command can take, retries included (without
        a socket timeout a command can wait forever, and then one more probe is let
        through every retry_timeout). O(nodes)."""
        slots = self._members.slots
        longest = max((command_time(slot.client) for slot in slots.values()), default=0.0)
        self._health.probe_timeout = self._health.retry_timeout + longest

    def node_for(self, key: Key | int | float) -> str:
        """The node that owns ``key`` now (an ejected owner's next usable node). Looks only:
        it never takes a recovering node's probe. O(1) for most placements.

        Raises:
            InvalidKeyError: a key of the wrong type; KeyEncodingError (also a ValueError)
                for a str with no UTF-8 form, such as a lone surrogate.
            redis.exceptions.DataError: a type redis-py cannot encode (bool, list, ...).
        """
        encoder = self.get_encoder()
        return route_owners(self._placement, self._health, encoder, [key], claim=False)[0]

    def client_for(self, key: Key | int | float) -> C:
        """The client of the node that owns ``key`` (for direct access to one node; it is
        closed if that node is removed and this object created it)."""
        return self._members.slots[self.node_for(key)].client

    @property
    def clients(self) -> dict[str, C]:
        """Node name -> its client (a copy of the mapping)."""
        return {name: slot.client for name, slot in self._members.slots.items()}

    @property
    def placement(self) -> Placement:
        """The placement that maps keys to node names."""
        return self._placement

    def add_node(self, name: str, target: str | C, weight: float = 1) -> None:
        """Add a node at runtime; only keys that move to it change owner. No I/O.

        Raises:
            NodeExistsError, InvalidOptionError, InvalidWeightError: as the placement.
        """
        before = self._members
        if name in before.slots:
            raise NodeExistsError(f"node {name!r} is already in the placement")
        client = self._connect(name, target, self._redis_kwargs)
        # Client first, placement second: a key routed to the new node finds its client.
        self._members = Members(
            {**before.slots, name: Slot(client, isinstance(target, str))},
            {**before.urls, name: target if isinstance(target, str) else None},
            min(before.first, name) if before.first else name,
        )
        try:
            self._placement.add_node(name, weight)
        except BaseException:
            self._members = before
            raise
        self._set_probe_timeout()

    def _detach(self, name: str) -> Slot[C]:
        """Take node ``name`` out and retire its slot; the caller closes the slot's client
        when ``retire()`` said so (see the subclasses' ``remove_node``).

        Raises:
            UnknownNodeError: ``name`` is not a node.
        """
        # Placement first, client second: nothing new is routed to the node, and what was
        # routed just before finds its slot retired and is routed again.
        self._placement.remove_node(name)
        before = self._members
        slots = {n: s for n, s in before.slots.items() if n != name}
        self._members = Members(
            slots, {n: u for n, u in before.urls.items() if n != name}, min(slots, default="")
        )
        self._health.forget(name)
        return before.slots[name]

    def _created_clients(self) -> list[C]:
        return [slot.client for slot in self._members.slots.values() if slot.created]

    def stats(self) -> dict[str, dict[str, float | int | bool]]:
        """Per-node counters: commands, errors, ejections, probes, ejected."""
        return self._health.stats(self._members.slots)

    def _record(self, node: str, slot: Slot[C], ok: bool) -> Transition | None:
        """Record a command's outcome on a node that is still a member (a removed node's
        counters are gone and stay gone)."""
        if slot.retired:
            return None
        return self._health.record(node, ok)

    def get_encoder(self) -> Any:
        """The encoder redis-py's command methods use (the first node's)."""
        return self._default_client().get_encoder()  # type: ignore[attr-defined]

    def get_connection_kwargs(self) -> dict[str, Any]:
        """Connection options of the first node's client."""
        kwargs: dict[str, Any] = self._default_client().get_connection_kwargs()  # type: ignore[attr-defined]
        return kwargs

    def _default_client(self) -> C:
        """The first node's client.

        Raises:
            EmptyRingError: there are no nodes.
        """
        members = self._members
        slot = members.slots.get(members.first)
        if slot is None:
            raise EmptyRingError("the client has no nodes: add_node() one first")
        return slot.client

    def __repr__(self) -> str:
        return f"{type(self).__name__}({describe_nodes(self._members.urls)}; {self._placement!r})"
