"""AsyncShardedRedis: the asyncio twin of ``ShardedRedis``, on ``redis.asyncio``.

>>> from hashring.adapters.redis import AsyncShardedRedis              # doctest: +SKIP
>>> async with AsyncShardedRedis({"cache-1": "redis://10.0.0.1:6379/0",
...                               "cache-2": "redis://10.0.0.2:6379/0"}) as cache:
...     await cache.set("user:42", "x"); await cache.get("user:42")  # doctest: +SKIP

It inherits every command method of ``redis.asyncio.Redis`` (``AsyncCoreCommands``) and
overrides only ``execute_command``. Commands are routed exactly as by the synchronous client,
by the shared planner in ``_commands`` (see its routing table): one part is awaited on
its node; several parts (MGET/MSET/DEL/... split per node, DBSIZE/KEYS/PING/INFO fanned
out) are written to every node first, then their replies read, by the calling coroutine
(``_scatter_async``: no task per node), and merged in the caller's order.
redis-py's other public names work (``lock``, ``pubsub``, ``initialize``, ``await client``,
...) or raise UnsupportedCommandError saying what to use instead: see ``_surface``.

Keys are found as by the synchronous client (``known_keys``, COMMAND GETKEYS only for movable
keys), through redis-py's ``AsyncCommandsParser``, read once under an ``asyncio.Lock``.

Differences from ``ShardedRedis``, all forced by asyncio: ``remove_node``, ``aclose`` (and
its alias ``close``) and pipeline ``execute``/``reset`` are coroutines; there is no
``max_workers`` (no threads). ``add_node`` does no I/O and stays a plain method.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar

import redis
import redis.asyncio as aioredis
import redis.asyncio.lock
from redis._parsers.commands import AsyncCommandsParser
from redis.commands.core import AsyncCoreCommands

from hashring import EmptyRingError, Placement, Topology, load_topology
from hashring._topology.watch import (
    DEFAULT_WATCH_INTERVAL,
    TopologyWatcher,
    follow_topology,
    stop_following,
)

from ._answers import Failure
from ._async_pipeline import AsyncShardedPipeline, Planned
from ._base import ShardedBase
from ._clients import (
    connect_async,
    drop_idle_connections,
    gather_all,
    read_command_table_async,
)
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
from ._pubsub import AsyncShardedPubSub, stop_readers
from ._routing import (
    Routed,
    group_per_node,
    next_scan_cursor,
    scan_page_open,
    scan_position,
)
from ._scatter_async import AsyncShare, scatter_async
from ._surface import Surface
from ._topology_source import DEFAULT_TOPOLOGY_KEY, RedisTopologyFollower, RedisTopologySource
from ._window import Gated, exists_and_read_async, gated_call_async, pull_async
from ._window_routes import (
    PULL_TIMEOUT_MS,
    Route,
    Window,
    alone_read,
    conflict,
    needs_marker,
    not_started,
)

__all__ = ["AsyncShardedRedis"]

T = TypeVar("T")

_REROUTE: Any = object()
"""What a routing step returns when a node it routed to left before anything was sent."""


def _one(answers: list[Any]) -> Any:
    """A one-command share's answer; its error reply raised as a ``Failure`` (as
    ``execute_command`` would raise it)."""
    answer = answers[0]
    return Failure(answer) if isinstance(answer, redis.exceptions.ResponseError) else answer


async def _close_all(clients: list[aioredis.Redis]) -> None:
    """Close ``clients`` (retired by a swap), every one even if some fail."""
    await asyncio.gather(*(client.aclose() for client in clients), return_exceptions=True)


# ---------------------------------------------------------------------- the client


# redis-py's own async mixins disagree on command_info; nothing of ours is involved.
async def _look_for_marker(window: Window, route: Route, old: aioredis.Redis, what: str) -> None:
    """The sync client's ``_look_for_marker`` on a ``redis.asyncio`` client.

    Raises:
        UnsupportedCommandError: the migration has started nowhere, or the marker cannot be
            set (nothing else sent).
    """
    source = route.source
    assert source is not None
    if source not in window.started:
        if not await old.exists(window.marker):
            if not await _started_elsewhere(window):
                raise not_started(what, route)
            try:
                await old.set(window.marker, b"1")
            except redis.exceptions.ResponseError as error:  # NOPERM, a read-only node ...
                raise not_started(what, route) from error
        window.started.add(source)


async def _started_elsewhere(window: Window) -> bool:
    """The sync client's ``_started_elsewhere`` on ``redis.asyncio`` clients.

    Raises:
        NodeRemovedError: the previous topology's clients were retired (the window ended).
        redis.exceptions.RedisError: an old owner could not be reached.
    """
    if window.started:
        return True
    previous = window.previous
    members = previous._members
    for node in sorted(members.slots):
        slot = previous._enter(members, node, "of the previous topology ")
        try:
            if await slot.client.exists(window.marker):
                window.started.add(node)
                return True
        finally:
            await previous._leave(slot)
    return False


async def _pull_to(window: Window, route: Route, old: aioredis.Redis, new: aioredis.Redis) -> None:
    """The sync client's ``_pull_to`` on ``redis.asyncio`` clients.

    Raises:
        redis.exceptions.RedisError: from the old owner (BUSYKEY explained).
    """
    source = route.source
    done = None if source is None else window.markers(source)[1]
    destination = window.destination(route.node, new)
    try:
        _, finished = await pull_async(
            old, destination, route.keys, timeout_ms=PULL_TIMEOUT_MS, done=done
        )
    except redis.exceptions.ResponseError as error:
        raise conflict(error, route) from None
    if source is not None:
        window.saw(source, False, finished)


class AsyncShardedRedis(Surface, ShardedBase[aioredis.Redis], AsyncCoreCommands):  # type: ignore[misc]
    """A drop-in ``redis.asyncio.Redis`` over several Redis servers, sharded by key.

    Args:
        nodes: node name -> URL (``redis://``, ``rediss://``, ``unix://``) or a ready
            ``redis.asyncio.Redis``.
        placement: an algorithm name (default ``"ring"``) or a ready
            :class:`hashring.Placement` over exactly the names of ``nodes``, as for
            ``ShardedRedis`` (see :func:`hashring.as_placement`).
        health: eject a node after ``failure_limit`` consecutive connection errors for
            ``retry_timeout`` seconds, sending its keys to the next node of their preference
            list (default off: right for stores; turn it on for caches). Then exactly one
            command (task) probes the node while the others keep using the fallback; the
            node's idle pooled connections are dropped when it is ejected and when it
            recovers.
        read_fallback: the client of the previous topology during a migration (its keys
            copied to their new owners, then deleted; writes go to the new owners): every
            read-only command with keys sends each key's EXISTS ahead of it (same round
            trip); a key its new owner lacks is read from this client instead, then from
            the new owner again if neither had it (see ``_fallback``). Blocking reads
            (XREAD ... BLOCK) are refused meanwhile; writes and keyless reads never fall
            back.
        **redis_kwargs: passed to ``redis.asyncio.Redis.from_url`` for every URL
            (``decode_responses``, ``socket_timeout``, ``password``, ...).

    Commands raise what ``ShardedRedis`` raises: ``CrossShardError`` (keys on several nodes
    for a command that cannot be split) and ``UnsupportedCommandError`` (connection-state
    commands, raw SCAN) before anything is sent, and redis-py's errors from the nodes.

    Raises:
        InvalidOptionError: a bad node name, URL or placement, or a placement option
            (``weights``, ``hash_key``, ...) among ``redis_kwargs``: it belongs in
            ``placement=``.
    """

    _is_async_client: Literal[True] = True  # redis-py's typing marker: commands are awaitable
    _event_dispatcher: Any = None  # declared by redis-py's CommandsProtocol; unused here

    def __init__(
        self,
        nodes: Mapping[str, str | aioredis.Redis],
        *,
        placement: str | Placement = "ring",
        health: bool = False,
        failure_limit: int = 2,
        retry_timeout: float = 30.0,
        read_fallback: AsyncShardedRedis | None = None,
        **redis_kwargs: Any,
    ) -> None:
        self._setup(
            nodes, connect_async, placement=placement, health=health,
            failure_limit=failure_limit, retry_timeout=retry_timeout, redis_kwargs=redis_kwargs,
        )  # fmt: skip
        self.read_fallback = read_fallback
        self._settings: dict[tuple[str, str], Any] = {}
        self._table_lock = asyncio.Lock()
        self._table: tuple[AsyncCommandsParser, CommandTable] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None  # the loop of the last command
        self._retired: list[aioredis.Redis] = []  # retired by a swap, to close on the loop
        self._retired_lock = threading.Lock()

    @classmethod
    def from_config(
        cls,
        path: str | Path,
        *,
        watch: bool = False,
        watch_interval: float = DEFAULT_WATCH_INTERVAL,
        **redis_kwargs: Any,
    ) -> AsyncShardedRedis:
        """A client for the topology file at ``path``, as ``ShardedRedis.from_config``:
        its node URLs, ``placement=load_topology(path).placement()``, connections named
        ``hashring-client-<version>``, and with ``watch=True`` a watcher thread switching
        the client to each new valid topology (see :meth:`_swap` for how the old clients
        are closed). No I/O and no event loop needed (the watcher's first look reads the
        file). A ``[migration]`` topology runs a migration window: reads fall back over the
        previous topology, writes of moving keys are gated, then pulled (see
        ``ShardedRedis.from_config``).

        Raises:
            ConfigError: the file is not valid, a node has no url, or the secret is missing.
            InvalidOptionError: a bad ``watch_interval``, or as the constructor.
        """
        if not watch:
            client: AsyncShardedRedis = cls._of_topology(load_topology(path), redis_kwargs)
            return client

        def follow(on_change: Callable[[Topology], object]) -> TopologyWatcher:
            return TopologyWatcher(path, on_change, interval=watch_interval, start=False)

        followed: AsyncShardedRedis = follow_topology(
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
    ) -> AsyncShardedRedis:
        """A client following the topology stored at ``key`` on the Redis server at
        ``url``, as ``ShardedRedis.from_source`` (the source is read with the synchronous
        redis-py client, from the follower's thread; the first read happens here, blocking
        for one round trip).

        Raises:
            ConfigError: no valid topology is stored, or a node has no url.
            InvalidOptionError: a bad ``key``, ``url`` or ``watch_interval``.
            redis.RedisError: the source's server cannot be reached.
        """
        source = RedisTopologySource(url, key=key, **dict(source_kwargs or {}))

        def follow(on_change: Callable[[Topology], object]) -> RedisTopologyFollower:
            return RedisTopologyFollower(source, on_change, interval=watch_interval, start=False)

        client: AsyncShardedRedis = follow_topology(
            follow, lambda t: cls._of_topology(t, redis_kwargs), source
        )
        return client

    def _swap(self, topology: Topology) -> None:
        """Run ``topology`` from now on, as ``ShardedRedis._swap``; callable from any
        thread (the watcher's), as it needs no event loop: building ``redis.asyncio``
        clients does no I/O.

        Closing the old clients: a client whose commands are still under way is closed by
        the last of them, on its loop (the lease mechanism). A client retired idle is
        closed on the event loop this client last ran a command on: scheduled there with
        ``asyncio.run_coroutine_threadsafe`` when that loop is running (so idle old
        connections go away without waiting for traffic); otherwise (no command yet, or
        that loop has stopped) it is kept and closed by the next command or by
        :meth:`aclose`.

        Raises:
            ConfigError, InvalidOptionError: ``topology`` cannot run here; the running
                topology is kept.
        """
        closing = self._swap_in(topology)
        if not closing:
            return
        loop = self._loop
        if loop is not None and loop.is_running():
            closer = _close_all(closing)
            try:
                asyncio.run_coroutine_threadsafe(closer, loop)
                return
            except RuntimeError:  # the loop closed meanwhile
                closer.close()
        with self._retired_lock:
            self._retired.extend(closing)

    async def _close_retired(self) -> None:
        """Close the clients a swap retired while no loop could take them."""
        with self._retired_lock:
            closing, self._retired = self._retired, []
        await _close_all(closing)

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        """Route one command (see the routing table in ``_commands``) and run it;
        the parts of a multi-node command are scattered over the nodes (``_scatter_async``).

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
                ``_answers.settled``); NodeRemovedError (a
                ConnectionError) if the command kept being routed to nodes being removed.
        """
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self._loop = loop  # where a swap closes the clients it retires
        if self._retired:
            await self._close_retired()
        try:
            return await self._execute(args, options)
        finally:
            self._health.release()  # a probe claim no outcome resolved ends with the command

    async def _execute(self, args: tuple[Any, ...], options: dict[str, Any]) -> Any:
        parser, table = await self._command_table()
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
                            return await self._fall_back(
                                command, Read(args, keys, options), (members, node, source)
                            )
                        if not migrating:  # a write (commands that may read: below)
                            answer = await self._window_write(
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
                    return await self._call(slot, Part(node, args), options)
            try:
                known = await self._keys(parser, args, keys, members)
                moving = window is not None and not self._stays(
                    self._with_patterns(command, args, known, members), members
                )
                reading = (
                    migrating
                    and bool(known)
                    and (window is None or moving)
                    and await self._reads_only(command, args, members)
                )
            except NodeRemovedError:
                continue
            if reading:
                return await self._fall_back(command, Read(args, known, options))
            if moving:
                answer = await self._window_write(command, args, known, options, members)
                if answer is _REROUTE:
                    continue
                return answer
            plan = self._plan_for(command, args, known, members)
            slots, closing = lease(members, (part.node for part in plan.parts))
            if closing:
                await gather_all(client.aclose() for client in closing)
            if slots is None:
                continue  # a node of the plan left: nothing was sent, route again
            return await self._run(plan, options, slots)
        raise NodeRemovedError(
            f"{command.name.upper()} kept being routed to nodes that were being removed; "
            "nothing was sent"
        )

    def pipeline(self, transaction: bool = True, shard_hint: Any = None) -> AsyncShardedPipeline:
        """A pipeline, as ``redis.asyncio.Redis.pipeline``: ``transaction=True`` (the
        default) runs MULTI/EXEC on the node owning the keys and refuses spanning nodes
        before sending; ``transaction=False`` sends one pipeline per node concurrently.
        See ``ShardedRedis.pipeline``.
        """
        return AsyncShardedPipeline(self, transaction, shard_hint)

    async def transaction(
        self,
        func: Callable[[AsyncShardedPipeline], Any],
        *watches: Any,
        shard_hint: Any = None,
        value_from_callable: bool = False,
        watch_delay: float | None = None,
    ) -> Any:
        """redis.asyncio's optimistic-locking recipe, as ``ShardedRedis.transaction``;
        ``func`` may be a coroutine function.

        Raises:
            CrossShardError, OwnerEjectedError: as ``ShardedRedis.transaction``.
        """
        async with self.pipeline(True, shard_hint) as pipe:
            while True:
                try:
                    if watches:
                        await pipe.watch(*watches)
                    func_value = func(pipe)
                    if inspect.isawaitable(func_value):
                        func_value = await func_value
                    exec_value = await pipe.execute()
                    return func_value if value_from_callable else exec_value
                except redis.exceptions.WatchError:
                    if watch_delay is not None and watch_delay > 0:
                        await asyncio.sleep(watch_delay)
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
        """redis-py's asyncio ``Lock`` (or ``lock_class``) on this client, as
        ``redis.asyncio.Redis.lock``: its commands and scripts all name the lock's key, so
        they run on the key's owner. Errors as redis-py's Lock."""
        return (lock_class or aioredis.lock.Lock)(
            self, name, timeout=timeout, sleep=sleep, blocking=blocking,  # type: ignore[arg-type]
            blocking_timeout=blocking_timeout, thread_local=thread_local,
            raise_on_release_error=raise_on_release_error,
        )  # fmt: skip

    def pubsub(self, **kwargs: Any) -> AsyncShardedPubSub:
        """A pub/sub over every node, as ``ShardedRedis.pubsub`` (coroutine methods, as
        ``redis.asyncio``'s PubSub). ``kwargs`` as for ``redis.asyncio.Redis.pubsub``."""
        return AsyncShardedPubSub(self, kwargs)

    async def initialize(self) -> AsyncShardedRedis:
        """Initialize every node's client (their single connections, if any); returns self,
        as ``redis.asyncio.Redis.initialize``."""
        await gather_all(client.initialize() for client in self.clients.values())
        return self

    def __await__(self) -> Generator[Any, None, AsyncShardedRedis]:
        return self.initialize().__await__()

    # ------------------------------------------------------------------ keyless scans

    async def scan(
        self,
        cursor: int = 0,
        match: Any = None,
        count: int | None = None,
        _type: str | None = None,
        **kwargs: Any,
    ) -> tuple[int, list[Any]]:
        """SCAN over every node in turn; the cursor encodes (node, node cursor), and a
        page goes on to the next node while the page is short, as in
        ``ShardedRedis.scan``.

        Start with 0 and stop when 0 comes back, as with one server. Membership changes
        during a scan invalidate the cursor.

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
            slot = self._enter(members, names[index])
            try:
                following, keys = await slot.client.scan(
                    node_cursor, match=match, count=count, _type=_type, **kwargs
                )
            finally:
                await self._leave(slot)
            page.extend(keys)
            if not scan_page_open(following, index, len(names), len(page), count):
                return next_scan_cursor(following, index, len(names)), page
            index, node_cursor = index + 1, 0

    async def scan_iter(  # type: ignore[override]
        self, match: Any = None, count: int | None = None, _type: str | None = None, **kwargs: Any
    ) -> AsyncIterator[Any]:
        """Every key of every node (each node's ``scan_iter`` in turn, by node name)."""
        members = self._members
        for name in sorted(members.slots):
            slot = self._enter(members, name)
            try:
                async for key in slot.client.scan_iter(
                    match=match, count=count, _type=_type, **kwargs
                ):
                    yield key
            finally:
                await self._leave(slot)

    # ------------------------------------------------------------------ membership

    async def remove_node(self, name: str) -> None:
        """Remove a node at runtime; does not wait for commands under way.

        Commands already under way on the node finish there (commands routed to it but not
        yet sent are routed again); its client, if this object created it, is closed after
        the last of them, by whichever task finishes last (here, if none is under way).

        Raises:
            UnknownNodeError: ``name`` is not a node.
        """
        with self._lock:  # a swap may run on the watcher's thread
            slot = self._detach(name)
        if slot.retire():
            await slot.client.aclose()

    def add_node(self, name: str, target: str | aioredis.Redis, weight: float = 1) -> None:
        """Add a node at runtime; only keys that move to it change owner. No I/O.
        Thread-safe against a topology swap (the next swap replaces every node by the
        topology's, this one included).

        Raises:
            NodeExistsError, InvalidOptionError, InvalidWeightError: as the placement.
        """
        with self._lock:
            super().add_node(name, target, weight)

    # ------------------------------------------------------------------ lifecycle

    async def check_health(self) -> dict[str, bool]:
        """PING every node once (concurrently) and record the outcome: failures count
        towards ejection, a success restores an ejected node. Returns node -> answered.
        Schedule it in a task for an active heartbeat."""
        slots = self._members.slots

        async def ping(name: str) -> bool | None:
            slot = slots[name]
            if not slot.enter():
                return None  # removed meanwhile
            try:
                try:
                    ok = bool(await slot.client.ping())
                except CONNECTION_ERRORS:
                    ok = False
                self._outcome(name, slot, ok)
                return ok
            finally:
                await self._leave(slot)

        names = sorted(slots)
        answers = await asyncio.gather(*map(ping, names))
        return {name: ok for name, ok in zip(names, answers, strict=True) if ok is not None}

    async def aclose(self) -> None:
        """Stop the thread following a topology (``from_config(watch=True)``,
        ``from_source``; waiting for it, which blocks the loop for at most the look in
        progress), then close every node client this object created (clients passed in stay
        open), the clients retired by a swap not closed yet, and a ``read_fallback`` built
        from ``[migration] previous``,
        their pools' connections included, as ``redis.asyncio.Redis.aclose``: the reader
        tasks of this client's ``pubsub()`` objects are stopped first, so a subscription
        not closed by the application ends with its connection (reading that pub/sub again
        reconnects, as redis-py)."""
        stop_following(self)
        await stop_readers(self)
        await gather_all(client.aclose() for client in self._created_clients())
        await self._close_retired()
        if self._own_fallback and self.read_fallback is not None:
            await self.read_fallback.aclose()

    async def close(self) -> None:
        """Alias of :meth:`aclose`, as on ``redis.asyncio.Redis``."""
        await self.aclose()

    async def __aenter__(self) -> AsyncShardedRedis:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def _command_table(self) -> tuple[AsyncCommandsParser, CommandTable]:
        """The COMMAND table, read once from the first node (by name) that answers: nodes
        are tried in name order, ejected ones last; a node that fails counts a failure
        and the next is tried.

        Raises:
            redis.exceptions.ConnectionError, TimeoutError: no node answered (the last
            node's error).
            EmptyRingError: there are no nodes.
        """
        table = self._table
        if table is None:
            async with self._table_lock:
                if self._table is None:
                    sources = self._table_sources()
                    self._table = await read_command_table_async(sources, self._outcome)
                table = self._table
        return table

    async def _keys(
        self,
        parser: AsyncCommandsParser,
        args: tuple[Any, ...],
        keys: list[Any] | None,
        members: Members[aioredis.Redis],
    ) -> list[Any]:
        """``keys`` if known, else the command's movable keys, asked of a node that is usable
        now (COMMAND GETKEYS through ``parser.node``); a connection error counts against it.

        Raises:
            NodeRemovedError: the node asked left meanwhile.
        """
        if keys is not None:
            return keys
        asked = self._asked_node(members)
        slot = self._enter(members, asked)
        try:
            parser.node = slot.client  # type: ignore[assignment]
            return list(await parser.get_keys(*parser_args(args)) or [])
        except CONNECTION_ERRORS:
            self._outcome(asked, slot, False)
            raise
        finally:
            await self._leave(slot)

    async def _plan(self, args: tuple[Any, ...], members: Members[aioredis.Redis]) -> Plan:
        """The plan of one command over the nodes of ``members`` (for pipelines).

        Raises:
            NodeRemovedError: the node asked for a command's movable keys left meanwhile.
        """
        parser, table = await self._command_table()
        command = table.describe(args)
        keys = await self._keys(parser, args, known_keys(command, args), members)
        return self._plan_for(command, args, keys, members)

    @staticmethod
    def _enter(
        members: Members[aioredis.Redis], node: str, which: str = ""
    ) -> Slot[aioredis.Redis]:
        """Lease ``node``'s slot (give it back with :meth:`_leave`); ``which`` qualifies the
        node in the error ("of the previous topology ").

        Raises:
            NodeRemovedError: the node has been removed.
        """
        slot = members.slots.get(node)
        if slot is None or not slot.enter():
            raise NodeRemovedError(f"node {node!r} {which}has been removed")
        return slot

    @staticmethod
    async def _leave(slot: Slot[aioredis.Redis]) -> None:
        """End one lease; the last lease of a removed node closes its client."""
        if slot.leave():
            await slot.client.aclose()

    async def _run(
        self, plan: Plan, options: dict[str, Any], slots: dict[str, Slot[aioredis.Redis]]
    ) -> Any:
        """Run a plan whose nodes' slots are leased (each part gives its lease back): one
        part through its client's ``execute_command``; several parts scattered over the
        nodes by this coroutine (``_scatter_async``), an error reply raised per part."""
        if len(plan.parts) == 1:
            part = plan.parts[0]
            return plan.finish([await self._call(slots[part.node], part, options)], options)
        shared = {k: v for k, v in options.items() if k != "keys"}
        shares = [
            AsyncShare(part.node, slots[part.node], [(part.args, shared)]) for part in plan.parts
        ]
        outcomes = [
            result if isinstance(result, Failure) else _one(result)
            for result in await scatter_async(shares, self._outcome, self._leave)
        ]
        return plan.settle(outcomes, shared)

    async def _send_per_node(
        self,
        planned: Callable[[Members[aioredis.Redis]], Awaitable[Planned[T]]],
        routed: str,
    ) -> tuple[T, list[Any]]:
        """``ShardedRedis._send_per_node`` for the asyncio client: plan, group per node,
        lease, scatter (``_scatter_async``); what ``planned`` made and each plan's answer.

        Raises:
            NodeRemovedError: the plans kept being routed to nodes being removed.
            redis.exceptions.ConnectionError, TimeoutError: a node could not be reached
                (the first such node's, after every node was read).
        """
        for _ in range(REROUTE_ATTEMPTS):
            members = self._members
            try:
                made, routes = await planned(members)
            except NodeRemovedError:
                continue
            grouped = group_per_node(routes)
            slots, closing = lease(members, grouped.nodes)
            if closing:
                await gather_all(client.aclose() for client in closing)
            if slots is not None:
                break
        else:
            raise NodeRemovedError(
                f"{routed} kept being routed to nodes that were being removed; nothing was sent"
            )
        shares = [
            AsyncShare(node, slots[node], calls)
            for node, calls in zip(grouped.nodes, grouped.calls, strict=True)
        ]
        results = await scatter_async(shares, self._outcome, self._leave)
        answers: list[list[Any]] = []
        for result in results:
            if isinstance(result, Failure):
                raise result.error
            answers.append(result)
        return made, grouped.answers(answers)

    async def _call(self, slot: Slot[aioredis.Redis], part: Part, options: dict[str, Any]) -> Any:
        """Send one part on its leased client, record the outcome, give the lease back."""
        try:
            try:
                answer = await slot.client.execute_command(*part.args, **options)  # type: ignore[no-untyped-call]
            except CONNECTION_ERRORS:
                self._outcome(part.node, slot, False)
                raise
            except redis.exceptions.ResponseError:
                self._outcome(part.node, slot, True)  # the node answered: it is alive
                raise
            self._outcome(part.node, slot, True)
            return answer
        finally:
            await self._leave(slot)

    async def _window_write(
        self,
        command: Command,
        args: tuple[Any, ...],
        keys: list[Any],
        options: dict[str, Any],
        members: Members[aioredis.Redis],
        placed: tuple[str, str] | None = None,
    ) -> Any:
        """``ShardedRedis._window_write``: a write during a migration window (parts one
        after the other, moving keys gated or pulled first).

        Raises:
            as ``ShardedRedis._window_write``.
        """
        plan, routes = self._plan_window(command, args, keys, members, placed)
        slots, closing = lease(members, (routes[part.node].node for part in plan.parts))
        if closing:
            await gather_all(client.aclose() for client in closing)
        if slots is None:
            return _REROUTE
        window: Window = members.window
        if len(plan.parts) == 1:
            part = plan.parts[0]
            route = routes[part.node]
            try:
                answer = await self._window_part(
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
                answer = await self._window_part(
                    window, command, route, part.args, shared, slots[route.node]
                )
            except Exception as error:  # settled below, as _run settles its parts
                outcomes.append(Failure(error))
                continue
            except BaseException:  # cancelled: the parts not run give their leases back
                for rest in plan.parts[index + 1 :]:
                    await self._leave(slots[routes[rest.node].node])
                raise
            outcomes.append(answer)
        return plan.settle(outcomes, shared)

    async def _window_part(
        self,
        window: Window,
        command: Command,
        route: Route,
        args: tuple[Any, ...],
        options: dict[str, Any],
        slot: Slot[aioredis.Redis],
    ) -> Any:
        """``ShardedRedis._window_part``: one part on its leased new node (lease given
        back)."""
        if route.source is not None:
            try:
                gated = await self._gate(window, command, route, args, options, slot.client)
            except BaseException:
                await self._leave(slot)
                raise
            if gated is not None:
                await self._leave(slot)
                return gated.reply
        return await self._call(slot, Part(route.node, args), options)

    async def _gate(
        self,
        window: Window,
        command: Command,
        route: Route,
        args: tuple[Any, ...],
        options: dict[str, Any],
        new: aioredis.Redis,
    ) -> Gated | None:
        """``ShardedRedis._gate`` on ``redis.asyncio`` clients: run on the old owner gated
        by the marker, or pull the keys and return None.

        Raises:
            as ``ShardedRedis._gate``.
        """
        source, previous = route.source, window.previous
        assert source is not None
        slot = self._enter(previous._members, source, "of the previous topology ")
        try:
            old = slot.client
            if needs_marker(command, args):
                await _look_for_marker(window, route, old, command.name.upper())
            elif source not in window.started:
                gated = await gated_call_async(old, window.marker, args, **options)
                if gated.ran:
                    return gated
                window.started.add(source)
            await _pull_to(window, route, old, new)
        finally:
            await previous._leave(slot)
        window.note_moved(route.keys)
        return None

    async def _pull_ahead(
        self, what: str, keys: list[Any], members: Members[aioredis.Redis]
    ) -> None:
        """``ShardedRedis._pull_ahead``: before a WATCH or a transaction on ``keys`` during
        a migration window, the keys that move are pulled to their new owner.

        Raises:
            as ``ShardedRedis._pull_ahead``.
        """
        window = members.window
        for route in self._moving(keys, members):
            previous, source = window.previous, route.source
            assert source is not None  # a moving route has one
            new = self._enter(members, route.node)
            try:
                old = self._enter(previous._members, source, "of the previous topology ")
                try:
                    await _look_for_marker(window, route, old.client, what)
                    await _pull_to(window, route, old.client, new.client)
                    window.note_moved(route.keys)
                finally:
                    await previous._leave(old)
            finally:
                await self._leave(new)

    def _outcome(self, node: str, slot: Slot[aioredis.Redis], ok: bool) -> None:
        """Record a command's outcome; when the node has just been ejected or has just
        recovered, drop its idle pooled connections (stale after a restart)."""
        if self._record(node, slot, ok) is not None:
            drop_idle_connections(slot.client.connection_pool)

    async def _reads_only(self, command: Command, args: tuple[Any, ...], members: Any) -> bool:
        """Whether this invocation only reads (while ``read_fallback`` is set): flagged
        ``readonly``, else every key flagged ``RO`` by ``COMMAND GETKEYSANDFLAGS`` (asked of
        a usable node: SORT or GEORADIUS without STORE, ...).

        Raises:
            NodeRemovedError: the node asked left meanwhile.
        """
        if "readonly" in command.flags:
            return True
        asked = self._asked_node(members)
        slot = self._enter(members, asked)
        try:
            answer = await slot.client.execute_command(*keys_and_flags_args(args))  # type: ignore[no-untyped-call]
        except CONNECTION_ERRORS:
            self._outcome(asked, slot, False)
            raise
        except redis.exceptions.ResponseError:
            return False  # not a valid invocation: the command itself says why
        finally:
            await self._leave(slot)
        return reads_only(answer)

    async def _fall_back(
        self,
        command: Command,
        read: Read,
        placed: tuple[Members[aioredis.Redis], str, str] | None = None,
    ) -> Any:
        """A read-only command with keys while ``read_fallback`` is set, as
        ``ShardedRedis._fall_back``: round 1 on the new owners (each key's EXISTS pipelined
        ahead of the read), then the rounds ``_fallback.resolve`` asks. ``placed``: a read
        of one key placed in a window (see ``ShardedRedis._fall_back_alone``).

        Raises:
            UnsupportedCommandError: a blocking read (XREAD ... BLOCK), before sending.
            CrossShardError: the keys stayed split between the two topologies.
        """
        refuse_blocking(command, read.args)
        if len(read.keys) == 1:
            return await self._fall_back_alone(read, placed)
        [value] = await self._settle([resolve(command, read, (await self._round([read]))[0])])
        if isinstance(value, Exception):
            raise value
        return value

    async def _fall_back_alone(
        self, read: Read, placed: tuple[Members[aioredis.Redis], str, str] | None = None
    ) -> Any:
        """A read of one key while ``read_fallback`` is set: ``EXISTS`` and the read on its
        new owner, then on its old owner, then the new one again, one round trip each,
        until ``_fallback.alone`` says which answer stands (at most three). In a migration
        window, the old owner first when ``Window.old_first`` says such keys are more
        likely there (always before the client has seen the marker there, which it then
        looks at in the same round trip), then the new one (at most two). A previous
        topology that is gone (the window ended under the read) holds nothing. ``placed``
        as ``ShardedRedis._fall_back_alone`` takes it.

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
                    seen = await self._seen_alone(read, None, owner)
                    if seen.present[0] and window is not None and source in window.started:
                        window.note_moved(read.keys)  # found moved, once it could move
                elif fallback is None:
                    seen = absent([read])[0]
                else:
                    try:
                        seen = await fallback._seen_alone(read, looking, asked)
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

    async def _seen_alone(
        self, read: Read, window: Window | None = None, node: str | None = None
    ) -> Seen:
        """What this client's owner of ``read``'s one key holds: its presence and the read's
        answer; given the migration ``window`` this client is the previous topology of,
        whether its marker and its done marker are on that node too (each asked until seen
        there), remembered in ``window.started`` and ``window.done`` (no extra round trip:
        ``_window.exists_and_read_async``), the outcome recorded for health.

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
                    started, finished, present, answer = await exists_and_read_async(
                        slot.client, read.keys[0], read.args, read.options, marker, done
                    )
                except CONNECTION_ERRORS:
                    self._outcome(asked, slot, False)
                    raise
                self._outcome(asked, slot, True)
                if window is not None:
                    window.saw(asked, started, finished)
            finally:
                await self._leave(slot)
            return Seen((present,), answer)
        raise NodeRemovedError("the read kept being routed to nodes that were being removed")

    async def _settle(self, rounds: list[Rounds]) -> list[Any]:
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
                    seen = await self._round(reads)
                elif fallback is None:
                    seen = absent(reads)
                else:
                    try:
                        seen = await fallback._round(reads)
                    except NodeRemovedError:  # its clients retired: the window ended
                        seen = absent(reads)
                side, reads = batch.send(seen)
        except StopIteration as done:
            answers: list[Any] = done.value
            return answers
        finally:
            if fallback is not None:
                fallback._health.release()  # its probe claims end with this command

    async def _round(self, reads: list[Read]) -> list[Seen]:
        """One round of reads on this client's own nodes (never its ``read_fallback``):
        each read's presence commands then the read, one redis-py pipeline per node (not a
        transaction), the nodes concurrently.

        Raises:
            NodeRemovedError: the reads kept being routed to nodes being removed.
            redis.exceptions.ConnectionError, TimeoutError: a node could not be reached.
        """
        _, table = await self._command_table()

        async def planned(members: Members[aioredis.Redis]) -> Planned[None]:
            return None, Routed.of(*self._round_plans(table, reads, members))

        _, answers = await self._send_per_node(planned, "reads")
        return seen_of(reads, answers)
