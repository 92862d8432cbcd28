"""What ShardedRedis and AsyncShardedRedis share: everything that does no I/O.

Nodes and their clients (leased, see ``_leases``), the placement, health wiring, URLs (kept
for ``repr`` with passwords redacted and to know which clients this object created),
topology files and the swap to a new topology (:meth:`ShardedBase._swap_in`), the lookups
``node_for`` / ``client_for``, and the routing of one command once its keys are known
(:meth:`ShardedBase._owner` for one key, :meth:`ShardedBase._plan_for` for the rest, and
:meth:`ShardedBase._route_one_key_many` for a pipeline's one-key commands, in one batch).
Only connecting (sync or asyncio client classes) and the I/O itself differ between the two
clients.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, Generic, NamedTuple, TypeVar

from hashring import (
    ConfigError,
    EmptyRingError,
    HealthTracker,
    InvalidOptionError,
    Key,
    NodeExistsError,
    Placement,
    Topology,
    as_placement,
    load_topology,
    redact_url,
)
from hashring._balancing.health import Transition
from hashring._placement.nodes import check_node_name
from hashring._topology.clients import client_name
from hashring._topology.watch import TopologyFollower

from ._commands import SCHEMES, Command, CommandTable, Plan, plan_command
from ._cross_node import Replies, cross_node_plan
from ._fallback import Read, round_commands
from ._leases import Members, Slot
from ._owners import SMALL_BATCH, Owners
from ._routing import _routed, describe_nodes, route_index, route_owners, usable_owners
from ._sort import SORTS, encoded, pattern_keys
from ._transaction import PLACEMENT_ONLY
from ._window_routes import Route, Window, moving_routes, window_plan

__all__ = [
    "REMOVED_OPTIONS",
    "ShardedBase",
    "check_target",
    "command_time",
    "config_arguments",
    "refuse_removed_options",
    "topology_arguments",
]

C = TypeVar("C")


REMOVED_OPTIONS = frozenset(
    {"weights", "algorithm", "vnodes", "table_size", "hash", "hash_tags", "hash_key"}
)
"""The placement's options, once keywords of the clients: now said once, in ``placement=``."""


def refuse_removed_options(options: Mapping[str, Any]) -> None:
    """Refuse a placement option passed among a client's redis-py keyword arguments (where
    redis-py would reject it with a less helpful error, or worse, take it). O(options).

    Raises:
        InvalidOptionError: naming the options (never their values: one may be a secret)
            and ``placement=``, which takes them now.
    """
    removed = sorted(REMOVED_OPTIONS.intersection(options))
    if removed:
        raise InvalidOptionError(
            f"{', '.join(removed)}: not options of the client any more; say the placement "
            "once with placement=, an algorithm name or a Placement built with these options "
            "(placement=HashRing(weights, vnodes=..., hash_key=...), "
            "placement=hashring.placement('maglev', weights, ...), or "
            "placement=load_topology(path).placement())"
        )


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


def config_arguments(
    path: str | Path, redis_kwargs: Mapping[str, Any]
) -> tuple[dict[str, str], Placement, dict[str, Any]]:
    """Node URLs, the placement of the topology file at ``path`` (keyed by the secret in
    the environment variable its ``hash_key_env`` names), and ``redis_kwargs`` with the
    connections named after the topology's version (``client_name``, unless given: see
    :mod:`hashring._topology.clients`).

    Raises:
        ConfigError: the file is not valid, a node has no url, or the secret is missing.
    """
    return topology_arguments(load_topology(path), redis_kwargs)


def topology_arguments(
    topology: Topology, redis_kwargs: Mapping[str, Any]
) -> tuple[dict[str, str], Placement, dict[str, Any]]:
    """As :func:`config_arguments`, for a topology already loaded. O(nodes) plus one
    placement build.

    Raises:
        ConfigError: a node has no url.
    """
    missing = [name for name, spec in topology.nodes.items() if spec.url is None]
    if missing:
        raise ConfigError(f"{topology.source}: nodes.{missing[0]}.url is required here")
    nodes = {name: spec.url for name, spec in topology.nodes.items() if spec.url}
    return (
        nodes,
        topology.placement(),
        {"client_name": client_name(topology.version), **redis_kwargs},
    )


def _made_by(
    node_client: Callable[[str, str, Mapping[str, Any]], C],
    connect: Callable[[str, str | C, Mapping[str, Any]], C],
) -> Callable[[str, str | C, Mapping[str, Any]], C]:
    """``connect``, with a node given by a URL redis-py speaks made by ``node_client``."""

    def connecting(name: str, target: str | C, options: Mapping[str, Any]) -> C:
        if isinstance(target, str) and target.startswith(SCHEMES):
            check_node_name(name)
            return node_client(name, target, options)
        return connect(name, target, options)  # a ready client, or refused there

    return connecting


class AloneRead(NamedTuple):
    """Where a read of one key asks while ``read_fallback`` is set
    (:meth:`ShardedBase._alone_read`)."""

    window: Window | None
    """The migration window it runs in (None: a fallback outside one)."""
    source: str | None
    """The key's owner under the previous topology (None: not known)."""
    owner: str | None
    """The node to ask on the new side (None: route afresh)."""
    asked: str | None
    """The node to ask on the old side (None: route afresh)."""
    old_first: bool
    """Whether the old side is asked first."""
    looking: Window | None
    """The window whose markers the old side's round trip looks for (None: none)."""


def _window(fallback: Any, topology: Topology) -> Window | None:
    """The migration window of ``topology`` run over ``fallback`` (its previous topology's
    client), or None outside a migration."""
    return None if fallback is None else Window.of(fallback, topology.version)


class ShardedBase(Generic[C]):
    """Nodes, clients, placement and health of a sharded client of client type ``C``."""

    _members: Members[C]
    read_fallback: Any
    _health: HealthTracker
    _redis_kwargs: dict[str, Any]

    def _setup(
        self,
        nodes: Mapping[str, str | C],
        connect: Callable[[str, str | C, Mapping[str, Any]], C],
        *,
        placement: str | Placement,
        health: bool,
        failure_limit: int,
        retry_timeout: float,
        redis_kwargs: Mapping[str, Any],
        node_client: Callable[[str, str, Mapping[str, Any]], C] | None = None,
    ) -> None:
        """Check the options, build the placement (see :func:`hashring.as_placement`; hash
        tags on by default, as in Redis Cluster) and a client per node: ``connect`` makes
        it, or ``node_client`` for a node given by URL when it is set (then also for
        nodes added, topologies switched to and a migration's previous nodes). No I/O.

        Raises:
            InvalidOptionError: a removed placement option among ``redis_kwargs``, a bad
                node name or URL, or a placement whose nodes are not ``nodes``.
        """
        refuse_removed_options(redis_kwargs)
        self._lock = threading.Lock()  # membership changes and swaps; never held across I/O
        self._follower: TopologyFollower | None = None
        self._source: Any = None  # a RedisTopologySource this object follows and closes
        self._named = False  # connections named after the topology version (from_config)
        self._own_fallback = False  # read_fallback built here from [migration] previous
        self._node_client = node_client
        self._connect = connect if node_client is None else _made_by(node_client, connect)
        self._redis_kwargs = dict(redis_kwargs)
        for name in nodes:
            check_node_name(name)
        placing = as_placement(placement, nodes, hash_tags=True, owner=self)
        slots = {
            name: Slot(self._connect(name, target, redis_kwargs), isinstance(target, str))
            for name, target in nodes.items()
        }
        urls = {name: t if isinstance(t, str) else None for name, t in nodes.items()}
        self._members = Members.of(slots, urls, placing)
        self._health = HealthTracker(
            enabled=health, failure_limit=failure_limit, retry_timeout=retry_timeout
        )
        self._set_probe_timeout()

    # ------------------------------------------------------------------ topologies

    @classmethod
    def _of_topology(cls, topology: Topology, redis_kwargs: Mapping[str, Any]) -> Any:
        """A client running ``topology`` (``redis_kwargs`` as for ``from_config``): its
        connections named after its version unless ``client_name`` is given, and, in a
        migration, ``read_fallback`` over the previous topology's nodes. No I/O.

        Raises:
            ConfigError: a node (of either topology) has no url.
            InvalidOptionError: as the constructor.
        """
        if topology.previous is not None:
            topology_arguments(topology.previous, {})  # refused before anything is built
        nodes, placing, options = topology_arguments(topology, redis_kwargs)
        client = cls(nodes, placement=placing, **options)  # type: ignore[call-arg]
        client._named = "client_name" not in redis_kwargs
        fallback = client._fallback_of(topology, client._redis_kwargs)
        client._members = replace(
            client._members, version=topology.version, window=_window(fallback, topology)
        )
        client.read_fallback = fallback
        client._own_fallback = fallback is not None
        return client

    def _fallback_of(self, topology: Topology, redis_kwargs: Mapping[str, Any]) -> Any:
        """A client of this class over ``topology.previous``'s nodes with ``redis_kwargs``
        (so its connections carry the new version's name too), or None outside a
        migration. No I/O.

        Raises:
            ConfigError: a previous node has no url.
            InvalidOptionError: a previous node's URL this client does not speak.
        """
        previous = topology.previous
        if previous is None:
            return None
        nodes, placing, _ = topology_arguments(previous, {})
        options = dict(redis_kwargs)
        if self._node_client is not None:  # its nodes made as this client's are
            options["node_client"] = self._node_client
        fallback = type(self)(nodes, placement=placing, **options)  # type: ignore[call-arg]
        fallback._members = replace(fallback._members, version=previous.version)
        return fallback

    def _swap(self, topology: Topology) -> None:
        """Run ``topology`` from now on (the subclasses close what it retires)."""
        raise NotImplementedError

    def _swap_in(self, topology: Topology) -> list[C]:
        """Validate ``topology`` and build a client for every one of its nodes (new pools
        even for nodes whose URL did not change, their connections named
        ``hashring-client-<version>`` unless the caller named them), the placement and, in a
        migration, the ``read_fallback`` over the previous nodes; then swap them in with one
        assignment of the members snapshot, and retire every old slot (its client closes
        when its last command gives the lease back; a command that routed on the old
        snapshot and finds its slot retired is routed again on the new one). Health counters
        of nodes that vanished or changed URL are forgotten. No I/O.

        Returns the clients the caller must close now (retired with nothing in flight).

        Raises:
            ConfigError: a node has no url. InvalidOptionError: a URL this client does not
                speak, or a placement that does not build; nothing was changed.
        """
        with self._lock:
            kwargs = dict(self._redis_kwargs)
            if self._named:
                kwargs["client_name"] = client_name(topology.version)
            nodes, placing, _ = topology_arguments(topology, kwargs)
            placing = as_placement(placing, nodes, hash_tags=True, owner=self)
            slots = {
                name: Slot(self._connect(name, url, kwargs), True) for name, url in nodes.items()
            }
            fallback = self._fallback_of(topology, kwargs)
            for slot in slots.values():
                self._adopt(slot.client)
            members = Members.of(
                slots, dict(nodes), placing, topology.version, _window(fallback, topology)
            )
            before = self._members
            old_fallback = self.read_fallback if self._own_fallback else None
            if fallback is not None:  # first: a command on the old members may fall back
                self.read_fallback = fallback
            self._redis_kwargs = kwargs
            self._members = members  # the swap: one assignment
            if fallback is None and self._own_fallback:
                self.read_fallback = None
            self._own_fallback = fallback is not None
            for name in before.names:
                if before.urls.get(name) != members.urls.get(name):
                    self._health.forget(name)
            self._set_probe_timeout()
            closing = [slot.client for slot in before.slots.values() if slot.retire()]
            if old_fallback is not None:
                closing.extend(old_fallback._retire_all())
            return closing

    def _retire_all(self) -> list[C]:
        """Retire every slot (this client is being replaced); the clients to close now."""
        return [slot.client for slot in self._members.slots.values() if slot.retire()]

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
        members = self._members
        encoder = self._encoder_of(members)
        return route_owners(members.placement, self._health, encoder, [key], claim=False)[0]

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
        """The placement that maps keys to node names (the running topology's)."""
        return self._members.placement

    @property
    def _placement(self) -> Placement:
        return self._members.placement

    @property
    def version(self) -> str | None:
        """The version of the topology this client runs (see
        :attr:`hashring.Topology.version`), or None for a client not built from a topology
        (``from_config`` / ``from_source``). O(1)."""
        return self._members.version

    def add_node(self, name: str, target: str | C, weight: float = 1) -> None:
        """Add a node at runtime; only keys that move to it change owner. No I/O.

        Raises:
            NodeExistsError, InvalidOptionError, InvalidWeightError: as the placement.
        """
        before = self._members
        if name in before.slots:
            raise NodeExistsError(f"node {name!r} is already in the placement")
        client = self._connect(name, target, self._redis_kwargs)
        self._adopt(client)
        # Client first, placement second: a key routed to the new node finds its client.
        self._members = Members.of(
            {**before.slots, name: Slot(client, isinstance(target, str))},
            {**before.urls, name: target if isinstance(target, str) else None},
            before.placement,
            before.version,
            before.window,
        )
        try:
            before.placement.add_node(name, weight)
        except BaseException:
            self._members = before
            raise
        self._set_probe_timeout()

    def _adopt(self, client: C) -> None:
        """Give a node added at runtime the client-wide settings made so far (see
        ``_surface.Surface``); nothing here."""

    def _detach(self, name: str) -> Slot[C]:
        """Take node ``name`` out and retire its slot; the caller closes the slot's client
        when ``retire()`` said so (see the subclasses' ``remove_node``).

        Raises:
            UnknownNodeError: ``name`` is not a node.
        """
        # Placement first, client second: nothing new is routed to the node, and what was
        # routed just before finds its slot retired and is routed again.
        before = self._members
        before.placement.remove_node(name)
        slots = {n: s for n, s in before.slots.items() if n != name}
        urls = {n: u for n, u in before.urls.items() if n != name}
        self._members = Members.of(slots, urls, before.placement, before.version, before.window)
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
        """The encoder redis-py's command methods use: the first node's client's, built once
        per membership change (redis-py's own ``get_encoder`` builds one per call). O(1).

        Raises:
            EmptyRingError: there are no nodes.
        """
        return self._encoder_of(self._members)

    @staticmethod
    def _encoder_of(members: Members[C]) -> Any:
        """``members``' encoder (see :meth:`get_encoder`).

        Raises:
            EmptyRingError: there are no nodes.
        """
        encoder = members.encoder
        if encoder is None:
            raise EmptyRingError("the client has no nodes: add_node() one first")
        return encoder

    # ------------------------------------------------------------------ routing, no I/O

    def _table_sources(self) -> list[tuple[str, Slot[C]]]:
        """The nodes to read the COMMAND table from, in the order to try them: usable ones
        by name, then ejected ones. Claims nothing. O(n).

        Raises:
            EmptyRingError: there are no nodes.
        """
        members = self._members
        if not members.names:
            raise EmptyRingError("the client has no nodes: add_node() one first")
        usable = [n for n in members.names if self._health.usable(n, claim=False)]
        ejected = [n for n in members.names if n not in usable]
        return [(name, members.slots[name]) for name in usable + ejected]

    def _owner(self, keys: list[Any], members: Members[C]) -> str:
        """The node of ``members`` a one-key command goes to (claiming a recovering node's
        probe, as the command will be sent there). O(1) for most placements.

        Raises:
            EmptyRingError, InvalidKeyError, KeyEncodingError: as :meth:`node_for`.
        """
        encoder = self._encoder_of(members)
        return route_owners(members.placement, self._health, encoder, keys)[0]

    def _plan_for(
        self, command: Command, args: tuple[Any, ...], keys: list[Any], members: Members[C]
    ) -> Plan:
        """The plan of ``args`` (described as ``command``, with its ``keys``) over the nodes
        of ``members``. O(keys) lookups.

        SORT's BY/GET patterns are routed as keys (see ``_sort``); the placement's hash
        tags are read from its ``_hash_tags`` (a placement without it counts as tag-less).

        Raises:
            CrossShardError, UnsupportedCommandError: the command cannot be planned, or
                its answers, reshaped by a custom response callback, cannot be merged.
            InvalidKeyError, KeyEncodingError: a key the placement refuses.
        """
        placing, encoder = members.placement, self._encoder_of(members)
        keys = self._with_patterns(command, args, keys, members)
        owners: list[str] | Owners = []
        if len(keys) >= SMALL_BATCH:  # grouped per node with numpy when split (``_owners``)
            owners = route_index(placing, self._health, encoder, keys)
        elif keys:
            owners = route_owners(placing, self._health, encoder, keys)

        def compute(name: str, a: tuple[Any, ...], k: list[Any], o: list[str]) -> Plan | None:
            replies = Replies.of(members.slots[members.first].client)
            return cross_node_plan(name, a, k, o, replies)

        plan = plan_command(command, args, keys, owners, members.names, members.first, compute)
        if len(plan.parts) > 1:
            self._check_merge(args)
        return plan

    def _with_patterns(
        self, command: Command, args: tuple[Any, ...], keys: list[Any], members: Members[C]
    ) -> list[Any]:
        """``keys``, and for SORT the keys its BY/GET patterns read (they must share the
        node too; the placement's hash tags are read from its ``_hash_tags``). O(args)."""
        if command.name not in SORTS:
            return keys
        tags = getattr(members.placement, "_hash_tags", False) is True
        words = encoded(self._encoder_of(members), args)
        nodes = len(members.names)
        return [*keys, *pattern_keys(command.name, words, hash_tags=tags, nodes=nodes)]

    def _plan_window(
        self,
        command: Command,
        args: tuple[Any, ...],
        keys: list[Any],
        members: Members[C],
        placed: tuple[str, str] | None = None,
    ) -> tuple[Plan, dict[str, Route]]:
        """The plan of a write with ``keys`` during ``members``' migration window, over
        routes (see ``_window_routes``): each key's owner under the new topology and, when
        it moves, under the previous one. O(keys) lookups in each topology; none for a
        command of one key (not SORT) whose owner and source :meth:`_window_route` ``placed``.

        Raises:
            CrossShardError: a one-node command whose keys do not share a route.
            InvalidKeyError, KeyEncodingError: a key the placement refuses.
        """
        if placed is None:
            keys = self._with_patterns(command, args, keys, members)
            owners, sources = self._owners_and_sources(keys, members, self._health)
        else:
            routed = _routed(self._encoder_of(members), keys)
            owners = usable_owners(members.placement, self._health, routed, [placed[0]])
            sources = [placed[1]]
        plan, routes = window_plan(
            command, args, keys, owners, sources, members.names, members.first
        )
        if len(plan.parts) > 1:
            self._check_merge(args)
        return plan, routes

    def _stays(self, keys: list[Any], members: Members[C]) -> bool:
        """Whether a command's ``keys`` during ``members``' migration window keep their
        owner (as placed under both topologies), move away from a node where the migration
        has finished (its done marker seen), or are remembered moved for good: then it
        runs as outside a window. Two lookups per key (batched from SMALL_BATCH keys), no
        lists of routes.

        Raises:
            InvalidKeyError, KeyEncodingError: a key the placement refuses.
        """
        window: Window = members.window
        if window.has_moved(keys):
            return True
        routed = _routed(self._encoder_of(members), keys)
        new, old, moves = members.placement, window.previous._members.placement, window.moves
        if len(routed) >= SMALL_BATCH:  # many keys: the placements' batch paths
            owners, sources = new.get_node_many(routed), old.get_node_many(routed)
            return owners == sources or not any(map(moves, owners, sources))
        return not any(moves(new.get_node(key), old.get_node(key)) for key in routed)

    def _window_route(self, keys: list[Any], members: Members[C]) -> tuple[str, str | None]:
        """Where a command of one key goes during ``members``' migration window, from the
        two lookups that tell whether the key moves: ``(node, None)`` when it stays (placed
        alike under both topologies, moving away from a node where the migration has
        finished, or remembered moved for good), ``node`` chosen as
        :meth:`_owner` chooses it; ``(owner, source)`` when it moves, its owner placed under
        each topology (no health fallback, nothing claimed: the caller routes a moving key
        its own way). O(1) for most placements.

        Raises:
            InvalidKeyError, KeyEncodingError: a key the placement refuses.
        """
        window: Window = members.window
        routed = _routed(self._encoder_of(members), keys)
        placement = members.placement
        owner = placement.get_node(routed[0])
        source = window.previous._members.placement.get_node(routed[0])
        if window.moves(owner, source) and not window.has_moved(keys):
            return owner, source
        return usable_owners(placement, self._health, routed, [owner])[0], None

    def _alone_read(
        self, read: Read, fallback: Any, placed: tuple[Members[C], str, str] | None
    ) -> AloneRead:
        """Where a read of one key asks while ``fallback`` (this client's ``read_fallback``,
        read once by the caller; None: the window ended since the read began) is set.
        ``placed``: the members it was routed on in a window, its owner under them and under
        the previous topology, as :meth:`_window_route` placed them, not looked up again
        unless health tracking may send the read elsewhere (or the topology changed since).
        Without it, the key's previous owner is looked up when a window runs. No I/O.

        Raises:
            InvalidKeyError, KeyEncodingError: a key the placement refuses.
        """
        window: Window | None = self._members.window
        source = owner = None
        if placed is not None:
            members, owner, source = placed
            window = members.window
            if self._health.enabled or self._members is not members:
                owner = None
        elif window is not None and fallback is not None:
            source = fallback._owner(read.keys, fallback._members)
        asked = None if fallback is None or fallback._health.enabled else source
        old_first = window is not None and source is not None and window.old_first(source)
        looking = None if window is None or source in window.done else window  # markers
        return AloneRead(window, source, owner, asked, old_first, looking)

    def _moving(self, keys: list[Any], members: Members[C]) -> list[Route]:
        """The routes of ``keys`` that move in ``members``' migration window (none outside
        one), placed as a transaction places them (no health fallback). O(keys) lookups.

        Raises:
            InvalidKeyError, KeyEncodingError: a key the placement refuses.
        """
        if members.window is None or not keys:
            return []
        return moving_routes(keys, *self._owners_and_sources(keys, members, PLACEMENT_ONLY))

    def _owners_and_sources(
        self, keys: list[Any], members: Members[C], health: HealthTracker
    ) -> tuple[list[str], list[str]]:
        """Each key's owner under ``members`` (with ``health``'s fallbacks) and under the
        previous topology of their window (as placed; the owner itself when that node's
        migration has finished: the key is where it goes). O(keys) lookups."""
        window: Window = members.window
        previous: Members[C] = window.previous._members
        encoder = self._encoder_of(members)
        owners = route_owners(members.placement, health, encoder, keys)
        sources = route_owners(previous.placement, PLACEMENT_ONLY, encoder, keys)
        if window.done:  # keys moving away from a node where the migration finished stay
            sources = [s if window.moves(o, s) else o for o, s in zip(owners, sources, strict=True)]
        return owners, sources

    def _route_one_key_many(
        self, table: CommandTable, commands: Sequence[tuple[Any, ...]], members: Members[C]
    ) -> tuple[list[int], Owners | None]:
        """Route the one-key commands of ``commands`` (a pipeline's: see
        ``Command.one_key``, sent as they are to their key's owner) in one batch
        (``route_index``): the positions of the other commands, which the caller plans
        one by one (``_plan``), and the owners of the one-key commands' keys, in order
        (None when there is none). O(commands) plus one batch lookup.

        Raises:
            InvalidKeyError, KeyEncodingError: a key the placement refuses.
        """
        keys: list[Any] = []
        others: list[int] = []
        describe = table.describe
        for index, args in enumerate(commands):
            at = describe(args).one_key
            if at and len(args) > at:
                keys.append(args[at])
            else:
                others.append(index)
        if not keys:
            return others, None
        encoder = self._encoder_of(members)
        return others, route_index(members.placement, self._health, encoder, keys)

    def _check_merge(self, args: tuple[Any, ...]) -> None:
        """Refuse a command split over nodes whose answers a custom response callback
        reshapes (see ``_surface.Surface``); nothing here."""

    def _asked_node(self, members: Members[C]) -> str:
        """The node asked for a command's movable keys (COMMAND GETKEYS): the first usable
        one by name, else the first. Claims nothing."""
        return self._health.first_usable(members.names, claim=False) or members.first

    def _round_plans(
        self,
        table: CommandTable,
        reads: list[Read],
        members: Members[C],
    ) -> tuple[list[Plan], list[dict[str, Any]]]:
        """The plans of one round of reads during a migration (see ``_fallback``): each
        read's presence commands, then the read, planned over this client's ``members``
        (never its own ``read_fallback``), with their options. O(keys) lookups.

        Raises:
            CrossShardError: a read's keys are on several of this client's nodes (the old
                topology placing a read's keys apart) and it cannot be split.
        """
        commands = round_commands(reads)
        keys = [each for read in reads for each in ([[k] for k in read.keys] + [read.keys])]
        plans = [
            self._plan_for(table.describe(args), args, its_keys, members)
            for (args, _), its_keys in zip(commands, keys, strict=True)
        ]
        return plans, [options_of for _, options_of in commands]

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
        members = self._members
        return f"{type(self).__name__}({describe_nodes(members.urls)}; {members.placement!r})"
