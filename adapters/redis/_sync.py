"""ShardedRedis: a redis-py client that sends every command to the node owning its keys.

>>> from hashring.adapters.redis import ShardedRedis          # doctest: +SKIP
>>> cache = ShardedRedis({"cache-1": "redis://10.0.0.1:6379/0",
...                       "cache-2": "redis://10.0.0.2:6379/0"})  # doctest: +SKIP
>>> cache.set("user:42", "x"); cache.get("user:42")          # doctest: +SKIP

It inherits every command method of ``redis.Redis`` and overrides only ``execute_command``,
which plans the command (see ``_commands`` for the routing table) and runs the plan:
one part goes straight to its node; several parts are written to their nodes first, then
their replies read, all from the calling thread (``_scatter``): no thread per node.
redis-py's other public names work (``lock``, ``pubsub``, ``response_callbacks``, ...) or
raise UnsupportedCommandError saying what to use instead: see ``_surface``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, Literal, TypeVar

import redis
import redis.lock
from redis._parsers.commands import CommandsParser
from redis.commands.core import CoreCommands

from hashring import EmptyRingError, InvalidOptionError, Placement, Topology, load_topology
from hashring._topology.watch import (
    DEFAULT_WATCH_INTERVAL,
    TopologyWatcher,
    follow_topology,
    stop_following,
)

from ._answers import Failure
from ._base import ShardedBase
from ._clients import connect, read_command_table
from ._commands import (
    CONNECTION_ERRORS,
    Command,
    CommandTable,
    Part,
    Plan,
    known_keys,
    parser_args,
)
from ._fallback import (
    NEW,
    Read,
    Rounds,
    Seen,
    absent,
    alone,
    keys_and_flags_args,
    may_read,
    reads_only,
    refuse_blocking,
    resolve,
    seen_of,
    together,
)
from ._leases import REROUTE_ATTEMPTS, Members, NodeRemovedError, Slot, lease
from ._pipeline import Planned, ShardedPipeline
from ._pubsub import ShardedPubSub
from ._routing import (
    Routed,
    group_per_node,
    next_scan_cursor,
    scan_page_open,
    scan_position,
)
from ._scatter import Share, scatter
from ._surface import Surface
from ._topology_source import DEFAULT_TOPOLOGY_KEY, RedisTopologyFollower, RedisTopologySource
from ._window import Gated, exists_and_read, gated_call, pull
from ._window_routes import (
    PULL_TIMEOUT_MS,
    Route,
    Window,
    alone_read,
    conflict,
    needs_marker,
    not_started,
)

__all__ = ["ShardedRedis"]

T = TypeVar("T")

_REROUTE: Any = object()
"""What a routing step returns when a node it routed to left before anything was sent."""


def _one(answers: list[Any]) -> Any:
    """A one-command share's answer; its error reply raised as a ``Failure`` (as
    ``execute_command`` would raise it)."""
    answer = answers[0]
    return Failure(answer) if isinstance(answer, redis.exceptions.ResponseError) else answer


def _look_for_marker(window: Window, route: Route, old: redis.Redis, what: str) -> None:
    """Make sure the migration has started on ``route``'s old owner ``old`` (its marker
    seen once by this client, or now with EXISTS), for ``what``, which cannot be gated.
    When it has started on another old owner only (``hashring migrate`` marks each node as
    its pass reaches it), start it on ``old`` now: set the marker there (gated writes then
    abort and pull instead, as once the pass has begun). One round trip, more the first
    time (:func:`_started_elsewhere`).

    Raises:
        UnsupportedCommandError: the migration has started nowhere, or the marker cannot be
            set (nothing else sent).
    """
    source = route.source
    assert source is not None
    if source not in window.started:
        if not old.exists(window.marker):
            if not _started_elsewhere(window):
                raise not_started(what, route)
            try:
                old.set(window.marker, b"1")
            except redis.exceptions.ResponseError as error:  # NOPERM, a read-only node ...
                raise not_started(what, route) from error
        window.started.add(source)


def _started_elsewhere(window: Window) -> bool:
    """Whether the migration has started on any old owner: its marker seen there by this
    client, or found now (``EXISTS`` on each old owner until one holds it; remembered).
    ``hashring migrate`` sets the first marker only once no client of the previous topology
    is left, so from then on any window client may set it on another old owner.

    Raises:
        NodeRemovedError: the previous topology's clients were retired (the window ended).
        redis.exceptions.RedisError: an old owner could not be reached.
    """
    if window.started:
        return True
    previous = window.previous
    members = previous._members
    for node in sorted(members.slots):
        with previous._leased(members, node) as client:
            if client.exists(window.marker):
                window.started.add(node)
                return True
    return False


def _pull_to(window: Window, route: Route, old: redis.Redis, new: redis.Redis) -> None:
    """Pull ``route``'s keys from ``old`` to their new owner (client ``new``), looking for
    the window's done marker on ``old`` in the same round trip when ``Window.markers`` says
    to (until it is seen there, at most once every ``MARKER_LOOK_INTERVAL`` seconds).

    Raises:
        redis.exceptions.RedisError: from the old owner (BUSYKEY explained).
    """
    source = route.source
    done = None if source is None else window.markers(source)[1]
    destination = window.destination(route.node, new)
    try:
        _, finished = pull(old, destination, route.keys, timeout_ms=PULL_TIMEOUT_MS, done=done)
    except redis.exceptions.ResponseError as error:
        raise conflict(error, route) from None
    if source is not None:
        window.saw(source, False, finished)


class ShardedRedis(Surface, ShardedBase[redis.Redis], CoreCommands):
    """A drop-in redis-py client over several Redis servers, sharded by key.

    Args:
        nodes: node name -> URL (``redis://``, ``rediss://``, ``unix://``) or a ready
            ``redis.Redis``.
        placement: which node owns a key: an algorithm name (``"ring"``, the default,
            ``"maglev"``, ``"rendezvous"``, ``"jump"``: every node of weight 1, default
            options, hash tags on as in Redis Cluster) or a ready
            :class:`hashring.Placement` over exactly the names of ``nodes``, which carries
            the weights and every option (``HashRing(weights, vnodes=..., hash_key=...)``,
            ``hashring.placement("maglev", weights, table_size=...)``,
            ``load_topology(path).placement()``); see :func:`hashring.as_placement`.
            Clients with the same placement (a ``hash_key`` included) place every key alike.
        health: eject a node after ``failure_limit`` consecutive connection errors for
            ``retry_timeout`` seconds, sending its keys to the next node of their preference
            list (default off: right for stores; turn it on for caches, accepting that keys
            served elsewhere meanwhile are stale when the node returns). Then exactly one
            command probes the node while the others keep using the fallback; the node's
            idle pooled connections are dropped when it is ejected and when it recovers.
        read_fallback: the client of the previous topology during a migration (its keys
            copied to their new owners, then deleted; writes go to the new owners): every
            read-only command with keys sends each key's EXISTS ahead of it (same round
            trip); a key its new owner lacks is read from this client instead, then from
            the new owner again if neither had it (see ``_fallback``). Blocking reads
            (XREAD ... BLOCK) are refused meanwhile; writes and keyless reads never fall
            back.
        max_workers: accepted for compatibility and unused: multi-node commands and
            pipelines no longer use worker threads (see ``_scatter``).
        heartbeat_interval: seconds between active health checks (PING to every node, see
            :meth:`check_health`) in a daemon thread; None (default) for passive tracking
            only.
        node_client: how the client of a node given by URL is made, called as
            ``node_client(name, url, redis_kwargs)`` (no I/O; default
            ``redis.Redis.from_url(url, **redis_kwargs)``), for the nodes given here, nodes
            added by URL, every topology switched to and a migration's previous nodes
            (``redis_kwargs`` then carry the ``client_name`` of the topology's version). This
            object owns what it returns: its ``close()`` must release the connections (set
            ``auto_close_connection_pool`` on a client built over a pool of its own).
        **redis_kwargs: passed to ``redis.Redis.from_url`` for every URL
            (``decode_responses``, ``socket_timeout``, ``password``, ...).

    Raises:
        InvalidOptionError: a bad node name, URL or placement (name, type or nodes), or a
            placement option (``weights``, ``algorithm``, ``vnodes``, ``table_size``,
            ``hash``, ``hash_tags``, ``hash_key``) among ``redis_kwargs``: it belongs in
            ``placement=``.
    """

    _event_dispatcher: Any = None  # declared by redis-py's CommandsProtocol; unused here
    _is_async_client: Literal[False] = False  # redis-py's typing marker: answers, not awaitables

    def __init__(
        self,
        nodes: Mapping[str, str | redis.Redis],
        *,
        placement: str | Placement = "ring",
        health: bool = False,
        failure_limit: int = 2,
        retry_timeout: float = 30.0,
        read_fallback: ShardedRedis | None = None,
        max_workers: int | None = None,
        heartbeat_interval: float | None = None,
        node_client: Callable[[str, str, Mapping[str, Any]], redis.Redis] | None = None,
        **redis_kwargs: Any,
    ) -> None:
        self._setup(
            nodes, connect, placement=placement, health=health, failure_limit=failure_limit,
            retry_timeout=retry_timeout, redis_kwargs=redis_kwargs, node_client=node_client,
        )  # fmt: skip
        self.read_fallback = read_fallback
        self._settings: dict[tuple[str, str], Any] = {}
        self._table_lock = threading.Lock()  # the first read of the COMMAND table
        self._table: tuple[CommandsParser, CommandTable] | None = None
        self._stopping = threading.Event()
        if heartbeat_interval is not None:
            if not (isinstance(heartbeat_interval, (int, float)) and heartbeat_interval > 0):
                raise InvalidOptionError(
                    f"heartbeat_interval must be a positive number, got {heartbeat_interval!r}"
                )
            threading.Thread(
                target=self._beat, args=(float(heartbeat_interval),), daemon=True,
                name="hashring-redis-heartbeat",
            ).start()  # fmt: skip

    @classmethod
    def from_config(
        cls,
        path: str | Path,
        *,
        watch: bool = False,
        watch_interval: float = DEFAULT_WATCH_INTERVAL,
        **redis_kwargs: Any,
    ) -> ShardedRedis:
        """A client for the topology file at ``path`` (see :func:`hashring.load_topology`):
        its node URLs, and ``placement=load_topology(path).placement()`` (keyed by the
        secret its ``hash_key_env`` names). ``redis_kwargs`` as for the constructor; every
        connection is named ``hashring-client-<version>`` after the topology's version
        (``client_name=``, unless given), so ``hashring migrate`` can tell which topology the
        clients run; :attr:`version` is that version.

        With ``watch=True`` a :class:`hashring.TopologyWatcher` thread looks at the file
        every ``watch_interval`` seconds (replaced in place, by rename or by a symlink swap)
        and switches this client to each new valid topology (see :meth:`_swap`); an invalid
        one is logged on the ``hashring.topology`` logger and the running one kept.
        :meth:`close` stops the thread.

        A topology with ``[migration] previous`` runs a migration window: reads answer
        from the new owner, falling back over the previous topology's nodes
        (``read_fallback``) for keys not moved yet; a write of a key whose owner changes
        runs on its old owner, gated by the marker ``hashring:migrating:<version>``, until
        ``hashring migrate`` sets the marker there, then pulls the key to its new owner
        and writes it there (see ``_window_routes`` for every command's rule), so no
        acknowledged write is stranded and no delete is undone by the migration.

        Raises:
            ConfigError: the file is not valid, a node has no url, or the secret is missing.
            InvalidOptionError: ``watch_interval`` is not a number of seconds in
                [0.01, 3600], or as the constructor.
        """
        if not watch:
            client: ShardedRedis = cls._of_topology(load_topology(path), redis_kwargs)
            return client

        def follow(on_change: Callable[[Topology], object]) -> TopologyWatcher:
            return TopologyWatcher(path, on_change, interval=watch_interval, start=False)

        followed: ShardedRedis = follow_topology(
            follow, lambda t: cls._of_topology(t, redis_kwargs)
        )
        return followed

    @classmethod
    def from_source(
        cls,
        url: str,
        *,
        key: str = DEFAULT_TOPOLOGY_KEY,
        watch_interval: float = DEFAULT_WATCH_INTERVAL,
        source_kwargs: Mapping[str, Any] | None = None,
        **redis_kwargs: Any,
    ) -> ShardedRedis:
        """A client for the topology stored at ``key`` on the Redis server at ``url`` (see
        :class:`RedisTopologySource`; ``source_kwargs`` are its redis-py options), following
        it: a :class:`RedisTopologyFollower` thread, woken by the announcement ``hashring
        topology push`` publishes and looking every ``watch_interval`` seconds anyway,
        switches this client to each new valid topology, as ``from_config(watch=True)``.
        :meth:`close` stops the thread and closes the source's connections.

        Raises:
            ConfigError: no valid topology is stored, or a node has no url.
            InvalidOptionError: a bad ``key``, ``url`` or ``watch_interval``, or as the
                constructor.
            redis.RedisError: the source's server cannot be reached.
        """
        source = RedisTopologySource(url, key=key, **dict(source_kwargs or {}))

        def follow(on_change: Callable[[Topology], object]) -> RedisTopologyFollower:
            return RedisTopologyFollower(source, on_change, interval=watch_interval, start=False)

        client: ShardedRedis = follow_topology(
            follow, lambda t: cls._of_topology(t, redis_kwargs), source
        )
        return client

    def _swap(self, topology: Topology) -> None:
        """Run ``topology`` from now on: a client per node of it, connections named after
        its version, swapped in with one assignment; commands under way finish on the
        snapshot they started with, and each old node client is closed by the last of them
        (now, when none is under way). Called by the watcher thread; thread-safe. Nodes
        added or removed by hand are replaced by the topology's.

        Raises:
            ConfigError, InvalidOptionError: ``topology`` cannot run here (a node without a
                url, a URL this client does not speak); the running topology is kept.
        """
        for client in self._swap_in(topology):
            client.close()

    # ------------------------------------------------------------------ routing

    def execute_command(self, *args: Any, **options: Any) -> Any:
        """Route one command (see the routing table in ``_commands``) and run it.

        The clients of the nodes it uses are leased before anything is sent, so a node
        removed meanwhile closes its client only after this command is done; a command
        routed to a node that left before it was sent is routed again.

        Raises:
            CrossShardError, UnsupportedCommandError: before anything is sent.
            InvalidKeyError, KeyEncodingError: a key the placement refuses (a str with a
                lone surrogate), before anything is sent.
            redis.exceptions.RedisError: from a node (with several parts, once all have
                finished: the first failed part's error class, its message naming the node
                and the nodes where it succeeded, where nothing is undone; see
                ``_answers.settled``); NodeRemovedError (a ConnectionError) if the command
                kept being routed to nodes that were just removed.
        """
        try:
            return self._execute(args, options)
        finally:
            self._health.release()  # a probe claim no outcome resolved ends with the command

    def _execute(self, args: tuple[Any, ...], options: dict[str, Any]) -> Any:
        parser, table = self._command_table()
        command = table.describe(args)  # once per command, whatever the reroutes
        keys = known_keys(command, args)
        migrating = self.read_fallback is not None and may_read(command)
        for _ in range(REROUTE_ATTEMPTS):
            members = self._members  # one snapshot: the command routes on it to the end
            window = members.window
            if keys is not None and len(keys) == 1:  # the common case
                if window is None:
                    node = None if migrating else self._owner(keys, members)
                else:
                    node, source = self._window_route(keys, members)
                    if source is not None:  # the key moves
                        if alone_read(command):
                            return self._fall_back(
                                command, Read(args, keys, options), (members, node, source)
                            )
                        if not migrating:  # a write (commands that may read: below)
                            answer = self._window_write(
                                command, args, keys, options, members, (node, source)
                            )
                            if answer is _REROUTE:
                                continue
                            return answer
                        node = None
                if node is not None:
                    slot = members.slots.get(node)
                    if slot is None or not slot.enter():
                        continue  # the node left after routing: nothing was sent, route again
                    return self._call(Part(node, args), options, slot)
            try:
                known = self._keys(parser, args, keys, members)
                moving = window is not None and not self._stays(
                    self._with_patterns(command, args, known, members), members
                )
                reading = (
                    migrating
                    and bool(known)
                    and (window is None or moving)
                    and self._reads_only(command, args, members)
                )
            except NodeRemovedError:
                continue
            if reading:
                return self._fall_back(command, Read(args, known, options))
            if moving:
                answer = self._window_write(command, args, known, options, members)
                if answer is _REROUTE:
                    continue
                return answer
            plan = self._plan_for(command, args, known, members)
            slots, closing = lease(members, (part.node for part in plan.parts))
            for client in closing:
                client.close()
            if slots is None:
                continue  # a node of the plan left: nothing was sent, route again
            return self._run(plan, options, slots)
        raise NodeRemovedError(
            f"{command.name.upper()} kept being routed to nodes that were being removed; "
            "nothing was sent"
        )

    def pipeline(self, transaction: bool = True, shard_hint: Any = None) -> ShardedPipeline:
        """A pipeline, as ``redis.Redis.pipeline`` (see ``_pipeline`` and ``_transaction``).

        ``transaction=True`` (the default, as redis-py) runs the buffered commands as one
        MULTI/EXEC on the node that owns their keys, and is refused with CrossShardError
        (naming the nodes, before anything is sent) when they span nodes;
        ``transaction=False`` groups them per node and writes every group to its node
        before reading any reply (``_scatter``).
        ``watch()``, ``multi()`` and ``WatchError`` behave as in redis-py, on the watched
        keys' node. ``shard_hint`` is passed to the node's redis-py pipeline.
        """
        return ShardedPipeline(self, transaction, shard_hint)

    def transaction(
        self,
        func: Callable[[ShardedPipeline], Any],
        *watches: Any,
        shard_hint: Any = None,
        value_from_callable: bool = False,
        watch_delay: float | None = None,
    ) -> Any:
        """redis-py's optimistic-locking recipe: WATCH ``watches``, call ``func(pipe)``
        (reads run at once until it calls ``pipe.multi()``), execute, and start again on
        ``WatchError`` (after ``watch_delay`` seconds, if given). Returns the EXEC answers,
        or ``func``'s value with ``value_from_callable``.

        Raises:
            CrossShardError: the watched keys, or the transaction's, span nodes (nothing
                sent for that attempt).
            OwnerEjectedError: their node is ejected (a ConnectionError; nothing sent).
        """
        with self.pipeline(True, shard_hint) as pipe:
            while True:
                try:
                    if watches:
                        pipe.watch(*watches)
                    func_value = func(pipe)
                    exec_value = pipe.execute()
                    return func_value if value_from_callable else exec_value
                except redis.exceptions.WatchError:
                    if watch_delay is not None and watch_delay > 0:
                        time.sleep(watch_delay)
                    continue

    # ------------------------------------------------------------------ redis-py helpers

    def lock(
        self,
        name: Any,
        timeout: float | None = None,
        sleep: float = 0.1,
        blocking: bool = True,
        blocking_timeout: float | None = None,
        lock_class: Any = None,
        thread_local: bool = True,
        raise_on_release_error: bool = True,
    ) -> Any:
        """redis-py's ``Lock`` (or ``lock_class``) on this client, as ``redis.Redis.lock``:
        its SET, GET and scripts all name the lock's key, so they all run on the key's
        owner (the scripts are loaded there when missing). Errors as redis-py's Lock."""
        return (lock_class or redis.lock.Lock)(
            self, name, timeout=timeout, sleep=sleep, blocking=blocking,
            blocking_timeout=blocking_timeout, thread_local=thread_local,
            raise_on_release_error=raise_on_release_error,
        )  # fmt: skip

    def pubsub(self, **kwargs: Any) -> ShardedPubSub:
        """A pub/sub over every node: channels subscribed on their owner (where PUBLISH
        routes them), patterns on every node, messages read as one stream (see
        ``_pubsub``). ``kwargs`` as for ``redis.Redis.pubsub``."""
        return ShardedPubSub(self, kwargs)

    # ------------------------------------------------------------------ keyless scans

    def scan(
        self,
        cursor: int = 0,
        match: Any = None,
        count: int | None = None,
        _type: str | None = None,
        **kwargs: Any,
    ) -> tuple[int, list[Any]]:
        """SCAN over every node in turn; the cursor encodes (node, node cursor).

        Start with 0 and stop when 0 comes back, as with one server. A page goes on to the
        next node's first page while the node it read is done and the page has fewer than
        ``count`` keys (10 by default, SCAN's own), so a keyspace smaller than ``count``
        comes back in one page with cursor 0, as from one server; each node is asked at
        most once per call. Every key present for the whole scan is returned at least
        once (SCAN's guarantee). Membership changes during a scan invalidate the cursor.

        Raises:
            EmptyRingError: the client has no nodes.
        """
        members = self._members
        names = sorted(members.slots)
        if not names:
            raise EmptyRingError("the client has no nodes: add_node() one first")
        index, node_cursor = scan_position(cursor, len(names))
        page: list[Any] = []
        while True:
            with self._leased(members, names[index]) as client:
                following, keys = client.scan(
                    node_cursor, match=match, count=count, _type=_type, **kwargs
                )
            page.extend(keys)
            if not scan_page_open(following, index, len(names), len(page), count):
                return next_scan_cursor(following, index, len(names)), page
            index, node_cursor = index + 1, 0

    def scan_iter(
        self, match: Any = None, count: int | None = None, _type: str | None = None, **kwargs: Any
    ) -> Iterator[Any]:
        """Every key of every node (each node's ``scan_iter`` in turn)."""
        members = self._members
        for name in sorted(members.slots):
            with self._leased(members, name) as client:
                yield from client.scan_iter(match=match, count=count, _type=_type, **kwargs)

    # ------------------------------------------------------------------ membership

    def add_node(self, name: str, target: str | redis.Redis, weight: float = 1) -> None:
        """Add a node at runtime; only keys that move to it change owner. Thread-safe.

        Raises:
            NodeExistsError, InvalidOptionError, InvalidWeightError: as the placement.
        """
        with self._lock:
            super().add_node(name, target, weight)

    def remove_node(self, name: str) -> None:
        """Remove a node at runtime. Thread-safe; does not wait.

        Commands already under way on the node finish there (commands routed to it but not
        yet sent are routed again); its client, if this object created it, is closed after
        the last of them, by whichever thread finishes last (now, if none is under way).

        Raises:
            UnknownNodeError: ``name`` is not a node.
        """
        with self._lock:
            slot = self._detach(name)
        if slot.retire():
            slot.client.close()

    # ------------------------------------------------------------------ lifecycle

    def check_health(self) -> dict[str, bool]:
        """PING every node once and record the outcome: failures count towards ejection,
        a success restores an ejected node. Returns node -> answered."""
        answered = {}
        for name, slot in sorted(self._members.slots.items()):
            if not slot.enter():
                continue  # removed meanwhile
            try:
                try:
                    answered[name] = bool(slot.client.ping())
                except CONNECTION_ERRORS:
                    answered[name] = False
                self._record(name, slot, answered[name])
            finally:
                self._leave(slot)
        return answered

    def _beat(self, interval: float) -> None:
        while not self._stopping.wait(interval):
            self.check_health()

    def close(self) -> None:
        """Close every node client this object created, stop the heartbeat and the thread
        following a topology (``from_config(watch=True)``, ``from_source``: waiting for it,
        at most 10 s), and close a ``read_fallback`` built from ``[migration] previous``."""
        self._stopping.set()
        stop_following(self)
        for client in self._created_clients():
            client.close()
        if self._own_fallback and self.read_fallback is not None:
            self.read_fallback.close()

    def __enter__(self) -> ShardedRedis:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ------------------------------------------------------------------ internals

    def _command_table(self) -> tuple[CommandsParser, CommandTable]:
        """The COMMAND table, read once from the first node (by name) that answers.

        Nodes are tried in name order, ejected ones last; a node that fails counts a
        failure (towards its ejection) and the next is tried. The read holds only its own
        lock, never the membership lock, so ``add_node``/``remove_node`` never wait on it.

        Raises:
            redis.exceptions.ConnectionError, TimeoutError: no node answered (the last
            node's error).
            EmptyRingError: there are no nodes.
        """
        table = self._table
        if table is None:
            with self._table_lock:
                if self._table is None:
                    self._table = read_command_table(self._table_sources(), self._outcome)
                table = self._table
        return table

    def _keys(
        self,
        parser: CommandsParser,
        args: tuple[Any, ...],
        keys: list[Any] | None,
        members: Members[redis.Redis],
    ) -> list[Any]:
        """``keys`` if known, else the command's movable keys, asked of a node that is usable
        now (COMMAND GETKEYS); a connection error counts against that node.

        Raises:
            NodeRemovedError: the node asked left meanwhile.
        """
        if keys is not None:
            return keys
        asked = self._asked_node(members)
        with self._leased(members, asked) as client:
            try:
                return list(parser.get_keys(client, *parser_args(args)) or [])  # type: ignore[no-untyped-call]
            except CONNECTION_ERRORS:
                self._outcome(asked, members.slots[asked], False)
                raise

    def _plan(self, args: tuple[Any, ...], members: Members[redis.Redis]) -> Plan:
        """The plan of one command over the nodes of ``members`` (for pipelines).

        Raises:
            NodeRemovedError: the node asked for a command's movable keys left meanwhile.
        """
        parser, table = self._command_table()
        command = table.describe(args)
        keys = self._keys(parser, args, known_keys(command, args), members)
        return self._plan_for(command, args, keys, members)

    @contextmanager
    def _leased(self, members: Members[redis.Redis], node: str) -> Iterator[redis.Redis]:
        """The client of ``node``, leased for the block.

        Raises:
            NodeRemovedError: the node has been removed.
        """
        slot = members.slots.get(node)
        if slot is None or not slot.enter():
            raise NodeRemovedError(f"node {node!r} has been removed")
        try:
            yield slot.client
        finally:
            self._leave(slot)

    @staticmethod
    def _leave(slot: Slot[redis.Redis]) -> None:
        """End one lease; the last lease of a removed node closes its client."""
        if slot.leave():
            slot.client.close()

    def _run(self, plan: Plan, options: dict[str, Any], slots: dict[str, Slot[redis.Redis]]) -> Any:
        """Run a plan whose nodes' slots are leased (each part gives its lease back): one
        part through its client's ``execute_command``; several parts scattered over the
        nodes from this thread (``_scatter``), an error reply raised per part as today."""
        if len(plan.parts) == 1:
            part = plan.parts[0]
            return plan.finish([self._call(part, options, slots[part.node])], options)
        shared = {k: v for k, v in options.items() if k != "keys"}
        shares = [Share(part.node, slots[part.node], [(part.args, shared)]) for part in plan.parts]
        outcomes = [
            result if isinstance(result, Failure) else _one(result)
            for result in scatter(shares, self._outcome, self._leave)
        ]
        return plan.settle(outcomes, shared)

    def _send_per_node(
        self, planned: Callable[[Members[redis.Redis]], Planned[T]], routed: str
    ) -> tuple[T, list[Any]]:
        """Plan (``planned(members)``: what it made, plans and their options), group the
        parts per node, lease the nodes (a client whose node left is closed, and the plans
        made again), scatter the groups over the nodes (``_scatter``: one request per node,
        written before any reply is read); what ``planned`` made and each plan's answer
        (an error reply in its place, see ``_routing.Grouped``). Serves pipelines
        (``transaction=False``) and the rounds of migration reads.

        Raises:
            NodeRemovedError: the plans kept being routed to nodes being removed
                (``routed`` says what; nothing was sent).
            redis.exceptions.ConnectionError, TimeoutError: a node could not be reached
                (the first such node's, after every node was read).
        """
        for _ in range(REROUTE_ATTEMPTS):
            members = self._members
            try:
                made, routes = planned(members)
            except NodeRemovedError:
                continue
            grouped = group_per_node(routes)
            slots, closing = lease(members, grouped.nodes)
            for client in closing:
                client.close()
            if slots is not None:
                break
        else:
            raise NodeRemovedError(
                f"{routed} kept being routed to nodes that were being removed; nothing was sent"
            )
        shares = [
            Share(node, slots[node], calls)
            for node, calls in zip(grouped.nodes, grouped.calls, strict=True)
        ]
        results = scatter(shares, self._outcome, self._leave)
        answers: list[list[Any]] = []
        for result in results:
            if isinstance(result, Failure):
                raise result.error
            answers.append(result)
        return made, grouped.answers(answers)

    def _call(self, part: Part, options: dict[str, Any], slot: Slot[redis.Redis]) -> Any:
        """Send one part on its leased client, record the outcome, give the lease back."""
        try:
            try:
                answer = slot.client.execute_command(*part.args, **options)  # type: ignore[no-untyped-call]
            except CONNECTION_ERRORS:
                self._outcome(part.node, slot, False)
                raise
            except redis.exceptions.ResponseError:
                self._outcome(part.node, slot, True)  # the node answered: it is alive
                raise
            self._outcome(part.node, slot, True)
            return answer
        finally:
            self._leave(slot)

    def _window_write(
        self,
        command: Command,
        args: tuple[Any, ...],
        keys: list[Any],
        options: dict[str, Any],
        members: Members[redis.Redis],
        placed: tuple[str, str] | None = None,
    ) -> Any:
        """A write with ``keys`` during ``members``' migration window (see
        ``_window_routes``): parts whose keys stay run on their node; parts whose keys move
        run gated on their old owner until the migration starts there, then pulled to the
        new owner and run there. Parts run one after the other; their answers merge as
        ``_run``'s do. :data:`_REROUTE` when a node of the plan (or the window) left before
        anything was sent. ``placed``: a command of one key's owner and source, as
        :meth:`_window_route` placed them (not looked up again).

        Raises:
            CrossShardError: a one-node command whose keys do not share a route.
            UnsupportedCommandError: a blocking or MULTI-less write of moving keys before
                the migration started on their old owner.
            redis.exceptions.RedisError: as ``execute_command``; a pull's BUSYKEY
                explained (``_window_routes.conflict``).
        """
        plan, routes = self._plan_window(command, args, keys, members, placed)
        slots, closing = lease(members, (routes[part.node].node for part in plan.parts))
        for client in closing:
            client.close()
        if slots is None:
            return _REROUTE
        window: Window = members.window
        if len(plan.parts) == 1:
            part = plan.parts[0]
            route = routes[part.node]
            try:
                answer = self._window_part(
                    window, command, route, part.args, options, slots[route.node]
                )
            except NodeRemovedError:  # the window ended before anything was sent
                return _REROUTE
            return plan.finish([answer], options)
        shared = {k: v for k, v in options.items() if k != "keys"}
        outcomes: list[Any] = []
        for index, part in enumerate(plan.parts):
            route = routes[part.node]
            try:
                answer = self._window_part(
                    window, command, route, part.args, shared, slots[route.node]
                )
            except Exception as error:  # settled below, as _run settles its parts
                outcomes.append(Failure(error))
                continue
            except BaseException:
                for rest in plan.parts[index + 1 :]:
                    self._leave(slots[routes[rest.node].node])
                raise
            outcomes.append(answer)
        return plan.settle(outcomes, shared)

    def _window_part(
        self,
        window: Window,
        command: Command,
        route: Route,
        args: tuple[Any, ...],
        options: dict[str, Any],
        slot: Slot[redis.Redis],
    ) -> Any:
        """One part of a window write on its leased new node (the lease given back): keys
        that stay, sent there; moving keys, through :meth:`_gate` first."""
        if route.source is not None:
            try:
                gated = self._gate(window, command, route, args, options, slot.client)
            except BaseException:
                self._leave(slot)
                raise
            if gated is not None:
                self._leave(slot)
                return gated.reply
        return self._call(Part(route.node, args), options, slot)

    @staticmethod
    def _gate(
        window: Window,
        command: Command,
        route: Route,
        args: tuple[Any, ...],
        options: dict[str, Any],
        new: redis.Redis,
    ) -> Gated | None:
        """A write of keys moving from ``route.source``: run there, gated by the window's
        marker (``_window.gated_call``), unless the marker is set; then pull the keys to
        their new owner (``_window.pull``) and return None: the caller runs the write there.
        A command that cannot be gated (:func:`needs_marker`) only looks for the marker.

        Raises:
            UnsupportedCommandError: such a command before the marker is set.
            NodeRemovedError: the old owner's client was closed (the window ended).
            redis.exceptions.RedisError: from the old owner (BUSYKEY explained).
        """
        source, previous = route.source, window.previous
        assert source is not None
        with previous._leased(previous._members, source) as old:
            if needs_marker(command, args):
                _look_for_marker(window, route, old, command.name.upper())
            elif source not in window.started:
                gated = gated_call(old, window.marker, args, **options)
                if gated.ran:
                    return gated
                window.started.add(source)
            _pull_to(window, route, old, new)
        window.note_moved(route.keys)
        return None

    def _pull_ahead(self, what: str, keys: list[Any], members: Members[redis.Redis]) -> None:
        """Before ``what`` (a WATCH, a transaction) on ``keys`` during ``members``'
        migration window: the keys that move are pulled to their new owner, which must
        be where the migration has started (a transaction cannot be gated on the old
        owner). Nothing outside a window. One round trip per old owner (two the first time
        a client looks for its marker).

        Raises:
            UnsupportedCommandError: a key moves from a node where the migration has not
                started (nothing sent).
            NodeRemovedError: a node involved has been removed.
            redis.exceptions.RedisError: from a node (BUSYKEY explained).
        """
        window = members.window
        for route in self._moving(keys, members):
            previous = window.previous
            with (
                self._leased(members, route.node) as new,
                previous._leased(previous._members, route.source) as old,
            ):
                _look_for_marker(window, route, old, what)
                _pull_to(window, route, old, new)
                window.note_moved(route.keys)

    def _outcome(self, node: str, slot: Slot[redis.Redis], ok: bool) -> None:
        """Record a command's outcome; when the node has just been ejected or has just
        recovered, drop its idle pooled connections (stale after a restart)."""
        if self._record(node, slot, ok) is not None:
            with suppress(*CONNECTION_ERRORS, OSError):
                slot.client.connection_pool.disconnect(inuse_connections=False)

    def _reads_only(self, command: Command, args: tuple[Any, ...], members: Any) -> bool:
        """Whether this invocation only reads (while ``read_fallback`` is set): flagged
        ``readonly``, else every key flagged ``RO`` by ``COMMAND GETKEYSANDFLAGS`` (asked of
        a usable node: SORT or GEORADIUS without STORE, ...).

        Raises:
            NodeRemovedError: the node asked left meanwhile.
        """
        if "readonly" in command.flags:
            return True
        asked = self._asked_node(members)
        with self._leased(members, asked) as client:
            try:
                answer = client.execute_command(*keys_and_flags_args(args))  # type: ignore[no-untyped-call]
            except CONNECTION_ERRORS:
                self._outcome(asked, members.slots[asked], False)
                raise
            except redis.exceptions.ResponseError:
                return False  # not a valid invocation: the command itself says why
        return reads_only(answer)

    def _fall_back(
        self,
        command: Command,
        read: Read,
        placed: tuple[Members[redis.Redis], str, str] | None = None,
    ) -> Any:
        """A read-only command with keys while ``read_fallback`` is set: round 1 on the new
        owners (each key's EXISTS pipelined ahead of the read, one round trip), then as
        many rounds, alternating with the old topology, as ``_fallback.resolve`` asks.
        ``placed``: a read of one key placed in a window (see :meth:`_fall_back_alone`).

        Raises:
            UnsupportedCommandError: a blocking read (XREAD ... BLOCK), before sending.
            CrossShardError: the keys stayed split between the two topologies.
        """
        refuse_blocking(command, read.args)
        if len(read.keys) == 1:
            return self._fall_back_alone(read, placed)
        [value] = self._settle([resolve(command, read, self._round([read])[0])])
        if isinstance(value, Exception):
            raise value
        return value

    def _fall_back_alone(
        self, read: Read, placed: tuple[Members[redis.Redis], str, str] | None = None
    ) -> Any:
        """A read of one key while ``read_fallback`` is set: ``EXISTS`` and the read on its
        new owner, then on its old owner, then the new one again, one round trip each,
        until ``_fallback.alone`` says which answer stands (at most three). In a migration
        window, the old owner first when ``Window.old_first`` says such keys are more
        likely there (always before the client has seen the marker there, which it then
        looks at in the same round trip), then the new one (at most two). A previous
        topology that is gone (the window ended under the read) holds nothing.

        ``placed``: the members it was routed on in a window, its owner under them and under
        the previous topology, as :meth:`_window_route` placed them; where each side is asked
        is :meth:`_alone_read`'s (shared with the async client).

        Raises:
            redis.exceptions.RedisError: the standing round's error reply, or a node could
                not be reached.
        """
        fallback = self.read_fallback  # None: the window ended since the read began
        window, source, owner, asked, old_first, looking = self._alone_read(read, fallback, placed)
        rounds = alone(read, old_first=old_first)
        side = next(rounds)
        try:
            while True:
                if side == NEW:
                    seen = self._seen_alone(read, None, owner)
                    if seen.present[0] and window is not None and source in window.started:
                        window.note_moved(read.keys)  # found moved, once it could move
                elif fallback is None:
                    seen = absent([read])[0]
                else:
                    try:
                        seen = fallback._seen_alone(read, looking, asked)
                    except NodeRemovedError:  # its clients retired: the window ended
                        seen = absent([read])[0]
                if seen.present[0] and window is not None and source is not None:
                    window.found(source, side != NEW)
                side = rounds.send(seen)
        except StopIteration as done:
            return done.value
        finally:
            if fallback is not None:
                fallback._health.release()  # its probe claims end with this command

    def _seen_alone(
        self, read: Read, window: Window | None = None, node: str | None = None
    ) -> Seen:
        """What this client's owner of ``read``'s one key holds: its presence and the read's
        answer; given the migration ``window`` this client is the previous topology of,
        whether its marker and its done marker are on that node too (each asked until seen
        there), remembered in ``window.started`` and ``window.done`` (no extra round trip:
        ``_window.exists_and_read``), the outcome recorded for health.

        Raises:
            NodeRemovedError: the read kept being routed to nodes being removed.
            redis.exceptions.ConnectionError, TimeoutError: the node could not be reached.
        """
        for _ in range(REROUTE_ATTEMPTS):
            members = self._members
            asked = self._owner(read.keys, members) if node is None else node
            node = None  # a placed node serves the first attempt only
            slot = members.slots.get(asked)
            if slot is None or not slot.enter():
                continue
            marker, done = (None, None) if window is None else window.markers(asked)
            try:
                try:
                    started, finished, present, answer = exists_and_read(
                        slot.client, read.keys[0], read.args, read.options, marker, done
                    )
                except CONNECTION_ERRORS:
                    self._outcome(asked, slot, False)
                    raise
                self._outcome(asked, slot, True)
                if window is not None:
                    window.saw(asked, started, finished)
            finally:
                self._leave(slot)
            return Seen((present,), answer)
        raise NodeRemovedError("the read kept being routed to nodes that were being removed")

    def _settle(self, rounds: list[Rounds]) -> list[Any]:
        """Drive reads' rounds after round 1 (``_fallback.together``): each step one batch
        of reads on this client or on its ``read_fallback``. Each read's answer, or the
        exception it raised, in order (what a pipeline needs too).

        Raises:
            redis.exceptions.ConnectionError, TimeoutError: a node could not be reached.
        """
        fallback = self.read_fallback  # None: the window ended since the read began
        batch = together(rounds)
        try:
            side, reads = next(batch)
            while True:
                if side == NEW:
                    seen = self._round(reads)
                elif fallback is None:
                    seen = absent(reads)
                else:
                    try:
                        seen = fallback._round(reads)
                    except NodeRemovedError:  # its clients retired: the window ended
                        seen = absent(reads)
                side, reads = batch.send(seen)
        except StopIteration as done:
            answers: list[Any] = done.value
            return answers
        finally:
            if fallback is not None:
                fallback._health.release()  # its probe claims end with this command

    def _round(self, reads: list[Read]) -> list[Seen]:
        """One round of reads on this client's own nodes (never its ``read_fallback``):
        each read's presence commands then the read, one redis-py pipeline per node (not a
        transaction), every node's request written before any reply is read (``_scatter``).

        Raises:
            NodeRemovedError: the reads kept being routed to nodes being removed.
            redis.exceptions.ConnectionError, TimeoutError: a node could not be reached.
        """
        _, table = self._command_table()

        def planned(members: Members[redis.Redis]) -> Planned[None]:
            return None, Routed.of(*self._round_plans(table, reads, members))

        _, answers = self._send_per_node(planned, "reads")
        return seen_of(reads, answers)
