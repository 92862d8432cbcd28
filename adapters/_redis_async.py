"""AsyncShardedRedis: the asyncio twin of ``ShardedRedis``, on ``redis.asyncio``.

>>> from hashring.adapters._redis_async import AsyncShardedRedis      # doctest: +SKIP
>>> async with AsyncShardedRedis({"cache-1": "redis://10.0.0.1:6379/0",
...                               "cache-2": "redis://10.0.0.2:6379/0"}) as cache:
...     await cache.set("user:42", "x"); await cache.get("user:42")  # doctest: +SKIP

It inherits every command method of ``redis.asyncio.Redis`` (``AsyncCoreCommands``) and
overrides only ``execute_command``. Commands are routed exactly as by the synchronous client,
by the shared planner in ``_redis_commands`` (see its routing table): one part is awaited on
its node; several parts (MGET/MSET/DEL/... split per node, DBSIZE/KEYS/PING/INFO fanned
out) run concurrently with ``asyncio.gather`` and are merged in the caller's order.

Key extraction: redis-py's ``AsyncCommandsParser`` reads the first node's COMMAND table once
(on first use, under an ``asyncio.Lock``) and finds each command's keys, asking the server
(COMMAND GETKEYS) only for commands with movable keys; EVAL/EVALSHA/FCALL keys come from
``numkeys`` (``script_keys``). The table is read through a short-lived client with
``decode_responses=False`` because redis-py's ``get_command_policies()`` calls
``bytes.decode`` on the tips and fails on decoded responses.

Differences from ``ShardedRedis``, all forced by asyncio: ``remove_node``, ``aclose`` (and
its alias ``close``) and pipeline ``execute``/``reset`` are coroutines; there is no
``max_workers`` (no threads). ``add_node`` does no I/O and stays a plain method.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Coroutine, Iterable, Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar, cast

import redis
import redis.asyncio as aioredis
from redis._parsers.commands import AsyncCommandsParser, PolicyRecords
from redis.commands.core import AsyncCoreCommands

from hashring import (
    EmptyRingError,
    InvalidOptionError,
    redact_url,
)

from ._redis_base import (
    REROUTE_ATTEMPTS,
    Members,
    NodeRemovedError,
    ShardedBase,
    Slot,
    check_target,
    config_arguments,
    give_back,
    lease,
)
from ._redis_commands import (
    CONNECTION_ERRORS,
    SCRIPTING,
    CommandTable,
    Entry,
    Part,
    Plan,
    assemble,
    group_per_node,
    missed_reads,
    next_scan_cursor,
    parser_args,
    plan_command,
    refuse_cross_node_transaction,
    route_owners,
    scan_position,
    script_keys,
)

__all__ = ["AsyncShardedPipeline", "AsyncShardedRedis", "connect"]

_T = TypeVar("_T")


def connect(name: str, target: str | aioredis.Redis, options: Mapping[str, Any]) -> aioredis.Redis:
    """A redis.asyncio.Redis for ``target``: a URL (redis://, rediss://, unix://) or a client
    as is. Nothing is connected yet.

    Raises:
        InvalidOptionError: a bad node name, an unsupported URL scheme, a synchronous
            ``redis.Redis``, or a target of another type.
    """
    if isinstance(target, redis.Redis):
        raise InvalidOptionError(
            f"node {name!r}: a synchronous redis.Redis cannot serve AsyncShardedRedis; pass "
            "a redis.asyncio.Redis or a URL"
        )
    check_target(name, target, aioredis.Redis)
    if isinstance(target, aioredis.Redis):
        return target
    try:
        return aioredis.Redis.from_url(str(target), **options)
    except ValueError:
        pass  # raised below, outside the handler: redis-py's message (kept neither as the
        # cause nor as the context) may quote part of the password, as when an unencoded
        # "/" in it makes the rest look like a port; the redacted URL says enough.
    raise InvalidOptionError(f"node {name!r}: bad URL {redact_url(str(target))!r}")


def raw_client(client: aioredis.Redis) -> aioredis.Redis:
    """A short-lived client to the same server with ``decode_responses=False``; it owns its
    pool, so ``aclose()`` closes its connection."""
    pool = client.connection_pool
    kwargs = {**pool.connection_kwargs, "decode_responses": False}
    return aioredis.Redis.from_pool(
        aioredis.ConnectionPool(connection_class=pool.connection_class, **kwargs)
    )


def drop_idle_connections(pool: aioredis.ConnectionPool) -> None:
    """Close the pool's idle connections at once (they reconnect on their next use).

    ``pool.disconnect(inuse_connections=False)`` awaits each close, and meanwhile another
    task may take a half-closed connection from the pool; this closes them without
    yielding to the event loop, so no task sees one half-closed. Connections in use are
    left alone. Relies on redis-py's ``_available_connections`` (pinned by a contract test).
    """
    for connection in list(getattr(pool, "_available_connections", ())):
        with contextlib.suppress(Exception):
            connection._close()


async def gather_all(awaitables: Iterable[Awaitable[_T]]) -> list[_T]:
    """Await all concurrently; once every one has finished, raise the first error in order
    (none is left running or unretrieved), else return the answers in order."""
    answers = await asyncio.gather(*awaitables, return_exceptions=True)
    for answer in answers:
        if isinstance(answer, BaseException):
            raise answer
    return cast(list[_T], answers)


async def gather_leased(
    jobs: list[tuple[Slot[aioredis.Redis], Coroutine[Any, Any, _T]]],
) -> list[_T]:
    """Run each job (a coroutine that gives its slot's lease back in a ``finally``)
    concurrently, as :func:`gather_all`.

    A job whose coroutine never started cannot give its lease back itself: when the
    caller is cancelled after ``gather`` scheduled the jobs but before they ran, their
    coroutines are never entered. Those leases are given back here (and a removed node's
    client closed), so every lease ends, whenever the cancellation comes. O(jobs).
    """
    started = [False] * len(jobs)

    async def run(index: int, job: Coroutine[Any, Any, _T]) -> _T:
        started[index] = True
        return await job  # enters the job's try at once: its finally gives the lease back

    try:
        return await gather_all(run(i, job) for i, (_, job) in enumerate(jobs))
    except BaseException:
        unstarted = [slot for (slot, job), began in zip(jobs, started, strict=True) if not began]
        for (_, job), began in zip(jobs, started, strict=True):
            if not began:
                job.close()  # never entered: nothing to unwind, no "never awaited" warning
        closing = give_back(unstarted)  # synchronous: no cancellation can cut it short
        if closing:
            await gather_all(client.aclose() for client in closing)
        raise


# ---------------------------------------------------------------------- the client


# redis-py's own async mixins disagree on command_info; nothing of ours is involved.
class AsyncShardedRedis(ShardedBase[aioredis.Redis], AsyncCoreCommands):  # type: ignore[misc]
    """A drop-in ``redis.asyncio.Redis`` over several Redis servers, sharded by key.

    Args:
        nodes: node name -> URL (``redis://``, ``rediss://``, ``unix://``) or a ready
            ``redis.asyncio.Redis``.
        weights: optional node name -> weight (default 1).
        algorithm, vnodes, table_size, hash, hash_tags: the placement (see
            :func:`hashring.placement`); hash tags are on by default, as in Redis Cluster.
        hash_key: a secret of at least 16 bytes that keys the placement's hash (see
            :func:`hashring.placement`); default None.
        health: eject a node after ``failure_limit`` consecutive connection errors for
            ``retry_timeout`` seconds, sending its keys to the next node of their preference
            list (default off: right for stores; turn it on for caches). Then exactly one
            command (task) probes the node while the others keep using the fallback; the
            node's idle pooled connections are dropped when it is ejected and when it
            recovers.
        read_fallback: the client of the previous topology during a migration: a read that
            finds nothing on its new owner is retried there.
        **redis_kwargs: passed to ``redis.asyncio.Redis.from_url`` for every URL
            (``decode_responses``, ``socket_timeout``, ``password``, ...).

    Commands raise what ``ShardedRedis`` raises: ``CrossShardError`` (keys on several nodes
    for a command that cannot be split) and ``UnsupportedCommandError`` (connection-state
    commands, raw SCAN) before anything is sent, and redis-py's errors from the nodes.

    Raises:
        InvalidOptionError: a bad node name, URL or placement option.
        InvalidWeightError: a bad weight.
    """

    _is_async_client: Literal[True] = True  # redis-py's typing marker: commands are awaitable
    _event_dispatcher: Any = None  # declared by redis-py's CommandsProtocol; unused here

    def __init__(
        self,
        nodes: Mapping[str, str | aioredis.Redis],
        *,
        weights: Mapping[str, float] | None = None,
        algorithm: str = "ring",
        vnodes: int | None = None,
        table_size: int | None = None,
        hash: str = "mmh3",
        hash_tags: bool = True,
        hash_key: bytes | None = None,
        health: bool = False,
        failure_limit: int = 2,
        retry_timeout: float = 30.0,
        read_fallback: AsyncShardedRedis | None = None,
        **redis_kwargs: Any,
    ) -> None:
        self._setup(
            nodes, connect, weights=weights, algorithm=algorithm, vnodes=vnodes,
            table_size=table_size, hash=hash, hash_tags=hash_tags, hash_key=hash_key,
            health=health, failure_limit=failure_limit, retry_timeout=retry_timeout,
            redis_kwargs=redis_kwargs,
        )  # fmt: skip
        self.read_fallback = read_fallback
        self._table_lock = asyncio.Lock()
        self._parser: AsyncCommandsParser | None = None
        self._table: CommandTable | None = None

    @classmethod
    def from_config(cls, path: str | Path, **redis_kwargs: Any) -> AsyncShardedRedis:
        """A client for the topology file at ``path`` (see :func:`hashring.load_topology`).

        Raises:
            ConfigError: the file is not valid, or a node has no url.
        """
        nodes, options = config_arguments(path)
        return cls(nodes, **options, **redis_kwargs)

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        """Route one command (see the routing table in ``_redis_commands``) and run it;
        the parts of a multi-node command run concurrently.

        The clients of the nodes it uses are leased before anything is sent, so a node
        removed meanwhile closes its client only after this command is done; a command
        routed to a node that left before it was sent is routed again.

        Raises:
            CrossShardError, UnsupportedCommandError: before anything is sent.
            InvalidKeyError, KeyEncodingError: a key the placement refuses (a str with a
                lone surrogate), before anything is sent.
            redis.exceptions.RedisError: from a node (with several parts, the first failed
                part's error, raised once every part has finished); NodeRemovedError (a
                ConnectionError) if the command kept being routed to nodes being removed.
        """
        try:
            return await self._execute(args, options)
        finally:
            self._health.release()  # a probe claim no outcome resolved ends with the command

    async def _execute(self, args: tuple[Any, ...], options: dict[str, Any]) -> Any:
        for _ in range(REROUTE_ATTEMPTS):
            members = self._members
            try:
                plan = await self._plan(args, members)
            except NodeRemovedError:
                continue
            slots, closing = lease(members, (part.node for part in plan.parts))
            if closing:
                await gather_all(client.aclose() for client in closing)
            if slots is None:
                continue
            value = await self._run(plan, options, slots)
            if self.read_fallback is not None and plan.readonly:
                value = await self._fall_back(plan, args, options, value)
            return value
        raise NodeRemovedError(
            f"{args[0]!r} kept being routed to nodes that were being removed; nothing was sent"
        )

    def pipeline(self, transaction: bool = False, shard_hint: Any = None) -> AsyncShardedPipeline:
        """A pipeline whose commands are grouped per node and sent concurrently.

        ``transaction=True`` wraps them in MULTI/EXEC and is refused (before anything is
        sent) unless every command's keys live on one node.
        """
        return AsyncShardedPipeline(self, transaction)

    # ------------------------------------------------------------------ keyless scans

    async def scan(
        self,
        cursor: int = 0,
        match: Any = None,
        count: int | None = None,
        _type: str | None = None,
        **kwargs: Any,
    ) -> tuple[int, list[Any]]:
        """SCAN over every node in turn; the cursor encodes (node, node cursor) as in
        ``ShardedRedis.scan``.

        Start with 0 and stop when 0 comes back, as with one server. Membership changes
        during a scan invalidate the cursor.
        """
        members = self._members
        names = sorted(members.slots)
        if not names:
            raise EmptyRingError("the client has no nodes: add_node() one first")
        index, node_cursor = scan_position(cursor, len(names))
        slot = self._enter(members, names[index])
        try:
            following, keys = await slot.client.scan(
                node_cursor, match=match, count=count, _type=_type, **kwargs
            )
        finally:
            await self._leave(slot)
        return next_scan_cursor(following, index, len(names)), keys

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
        slot = self._detach(name)
        if slot.retire():
            await slot.client.aclose()

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
        """Close every node client this object created (clients passed in stay open)."""
        await gather_all(client.aclose() for client in self._created_clients())

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
        parser, table = self._parser, self._table
        if parser is None or table is None:
            async with self._table_lock:
                if self._parser is None or self._table is None:
                    fresh, policies = await self._read_command_table()
                    self._table = CommandTable(fresh.commands, policies)
                    self._parser = fresh
                parser, table = self._parser, self._table
        assert parser is not None
        assert table is not None
        return parser, table

    async def _read_command_table(self) -> tuple[AsyncCommandsParser, PolicyRecords]:
        """A parser holding the COMMAND table of the first node that answers, and the
        command policies (see :meth:`_command_table`)."""
        slots = self._members.slots
        if not slots:
            raise EmptyRingError("the client has no nodes: add_node() one first")
        names = sorted(slots)
        usable = [n for n in names if self._health.usable(n, claim=False)]
        failure: BaseException | None = None
        for name in usable + [n for n in names if n not in usable]:
            slot = slots[name]
            # get_command_policies() decodes bytes itself and fails on a client with
            # decode_responses=True: read the table in raw mode.
            raw = raw_client(slot.client)
            try:
                fresh = AsyncCommandsParser()
                await fresh.initialize(raw)  # type: ignore[arg-type]
                # redis-py annotates the coroutine's result as Awaitable[...]; it is the
                # records themselves.
                policies = cast(PolicyRecords, await fresh.get_command_policies())
            except CONNECTION_ERRORS as exc:
                self._outcome(name, slot, False)
                failure = exc
                continue
            finally:
                await raw.aclose()
            return fresh, policies
        assert failure is not None
        raise failure

    async def _plan(self, args: tuple[Any, ...], members: Members[aioredis.Redis]) -> Plan:
        """The plan of one command over the nodes of ``members``.

        Raises:
            NodeRemovedError: the node asked for a command's movable keys left meanwhile.
        """
        parser, table = await self._command_table()
        command = table.describe(args)
        keys = command.keys_of(args)
        if keys is None and command.name in SCRIPTING:
            keys = script_keys(args)
        nodes = sorted(members.slots)
        if keys is None:
            # Movable keys are asked of parser.node (COMMAND GETKEYS): a node usable now.
            asked = self._health.first_usable(nodes, claim=False) or nodes[0]
            slot = self._enter(members, asked)
            try:
                parser.node = slot.client  # type: ignore[assignment]
                keys = list(await parser.get_keys(*parser_args(args)) or [])
            except CONNECTION_ERRORS:
                self._outcome(asked, slot, False)
                raise
            finally:
                await self._leave(slot)
        encoder = self.get_encoder()
        owners = route_owners(self._placement, self._health, encoder, keys) if keys else []
        return plan_command(command, args, keys, owners, nodes, nodes[0])

    @staticmethod
    def _enter(members: Members[aioredis.Redis], node: str) -> Slot[aioredis.Redis]:
        """Lease ``node``'s slot (give it back with :meth:`_leave`).

        Raises:
            NodeRemovedError: the node has been removed.
        """
        slot = members.slots.get(node)
        if slot is None or not slot.enter():
            raise NodeRemovedError(f"node {node!r} has been removed")
        return slot

    @staticmethod
    async def _leave(slot: Slot[aioredis.Redis]) -> None:
        """End one lease; the last lease of a removed node closes its client."""
        if slot.leave():
            await slot.client.aclose()

    async def _run(
        self, plan: Plan, options: dict[str, Any], slots: dict[str, Slot[aioredis.Redis]]
    ) -> Any:
        """Run a plan whose nodes' slots are leased (each part gives its lease back)."""
        if len(plan.parts) == 1:
            part = plan.parts[0]
            return plan.merge([await self._call(slots[part.node], part, options)])
        shared = {k: v for k, v in options.items() if k != "keys"}
        calls = [
            (slots[part.node], self._call(slots[part.node], part, shared)) for part in plan.parts
        ]
        return plan.merge(await gather_leased(calls))

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

    def _outcome(self, node: str, slot: Slot[aioredis.Redis], ok: bool) -> None:
        """Record a command's outcome; when the node has just been ejected or has just
        recovered, drop its idle pooled connections (stale after a restart)."""
        if self._record(node, slot, ok) is not None:
            drop_idle_connections(slot.client.connection_pool)

    async def _fall_back(
        self, plan: Plan, args: tuple[Any, ...], options: dict[str, Any], value: Any
    ) -> Any:
        """During a migration: a read that missed on its new owner asks the old topology."""
        fallback = self.read_fallback
        assert fallback is not None
        missed = missed_reads(plan, value, fallback.node_for)
        if missed is None:
            return value
        if plan.command != "mget":
            return await fallback.execute_command(*args, **options)
        older = await fallback.execute_command("MGET", *[plan.keys[i] for i in missed])
        for i, old in zip(missed, older, strict=True):
            value[i] = old
        return value


class AsyncShardedPipeline(AsyncCoreCommands):
    """Buffers commands; ``await execute()`` sends one pipeline per node, concurrently.

    Command methods buffer and return the pipeline (do not await them). Results come back
    in the order the commands were buffered. Errors behave as in redis-py: with
    ``raise_on_error=True`` (default) the first failed command's error is raised after every
    node has answered; with False each failed command's exception takes its place in the
    results.
    """

    _is_async_client: Literal[True] = True
    _event_dispatcher: Any = None

    def __init__(self, sharded: AsyncShardedRedis, transaction: bool) -> None:
        self._sharded = sharded
        self._transaction = transaction
        self._commands: list[tuple[tuple[Any, ...], dict[str, Any]]] = []

    def execute_command(self, *args: Any, **options: Any) -> AsyncShardedPipeline:
        """Buffer one command (routing is decided at ``execute``)."""
        self._commands.append((args, options))
        return self

    async def execute(self, raise_on_error: bool = True) -> list[Any]:
        """Send the buffered commands and return their answers in order; the buffer is
        emptied either way.

        Raises:
            CrossShardError: ``transaction=True`` and the commands span nodes (nothing sent).
            UnsupportedCommandError: a command that cannot be sharded (nothing sent).
            redis.exceptions.ConnectionError, TimeoutError: a node could not be reached.
        """
        commands, self._commands = self._commands, []
        try:
            return await self._execute(commands, raise_on_error)
        finally:
            self._sharded._health.release()  # probe claims no outcome resolved

    async def _execute(
        self, commands: list[tuple[tuple[Any, ...], dict[str, Any]]], raise_on_error: bool
    ) -> list[Any]:
        sharded = self._sharded
        for _ in range(REROUTE_ATTEMPTS):
            members = sharded._members
            try:
                plans = [await sharded._plan(args, members) for args, _ in commands]
            except NodeRemovedError:
                continue
            if self._transaction:
                refuse_cross_node_transaction(plans)
            per_node = group_per_node(plans, [options for _, options in commands])
            slots, closing = lease(members, per_node)
            if closing:
                await gather_all(client.aclose() for client in closing)
            if slots is not None:
                break
        else:
            raise NodeRemovedError(
                "the pipeline kept being routed to nodes that were being removed; nothing was sent"
            )
        sends = [
            (slots[node], self._send(node, slots[node], entries))
            for node, entries in per_node.items()
        ]
        answers = dict(zip(per_node, await gather_leased(sends), strict=True))
        return assemble(plans, per_node, answers, raise_on_error)

    async def _send(self, node: str, slot: Slot[aioredis.Redis], entries: list[Entry]) -> list[Any]:
        """Send one node's share on its leased client; give the lease back."""
        try:
            pipe = slot.client.pipeline(transaction=self._transaction)
            for _, _, part, options in entries:
                pipe.execute_command(*part.args, **options)
            try:
                answers: list[Any] = await pipe.execute(raise_on_error=False)
            except CONNECTION_ERRORS:
                self._sharded._outcome(node, slot, False)
                raise
            finally:
                await pipe.reset()  # type: ignore[no-untyped-call]
            self._sharded._outcome(node, slot, True)
            return answers
        finally:
            await self._sharded._leave(slot)

    def __len__(self) -> int:
        return len(self._commands)

    def __bool__(self) -> bool:
        """Always true, even when empty (as redis-py's pipelines)."""
        return True

    async def reset(self) -> None:  # type: ignore[override]
        """Drop the buffered commands."""
        self._commands = []

    async def aclose(self) -> None:
        """Alias of :meth:`reset`, as on redis-py's pipelines."""
        await self.reset()

    async def __aenter__(self) -> AsyncShardedPipeline:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.reset()
