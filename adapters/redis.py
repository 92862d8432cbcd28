"""ShardedRedis: a redis-py client that sends every command to the node owning its keys.

>>> from hashring.adapters.redis import ShardedRedis          # doctest: +SKIP
>>> cache = ShardedRedis({"cache-1": "redis://10.0.0.1:6379/0",
...                       "cache-2": "redis://10.0.0.2:6379/0"})  # doctest: +SKIP
>>> cache.set("user:42", "x"); cache.get("user:42")          # doctest: +SKIP

It inherits every command method of ``redis.Redis`` and overrides only ``execute_command``,
which plans the command (see ``_redis_commands`` for the routing table) and runs the plan:
one part goes straight to its node; several parts run in parallel, one per node.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, Literal

import redis
from redis._parsers.commands import CommandsParser
from redis.commands.core import CoreCommands

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

__all__ = [
    "AsyncShardedPipeline",
    "AsyncShardedRedis",
    "NodeRemovedError",
    "ShardedPipeline",
    "ShardedRedis",
]


def connect(name: str, target: str | redis.Redis, options: Mapping[str, Any]) -> redis.Redis:
    """A redis.Redis for ``target``: a URL (redis://, rediss://, unix://) or a client as is.

    Raises:
        InvalidOptionError: an unsupported URL scheme or a target of the wrong type.
    """
    check_target(name, target, redis.Redis)
    if isinstance(target, redis.Redis):
        return target
    try:
        return redis.Redis.from_url(str(target), **options)
    except ValueError:
        pass  # raised below, outside the handler: redis-py's message (kept neither as the
        # cause nor as the context) may quote part of the password, as when an unencoded
        # "/" in it makes the rest look like a port; the redacted URL says enough.
    raise InvalidOptionError(f"node {name!r}: bad URL {redact_url(str(target))!r}")


def raw_client(client: redis.Redis) -> redis.Redis:
    """A short-lived client to the same server with ``decode_responses=False``."""
    pool = client.connection_pool
    kwargs = {**pool.connection_kwargs, "decode_responses": False}
    raw = redis.Redis(connection_pool=redis.ConnectionPool(pool.connection_class, **kwargs))
    raw.auto_close_connection_pool = True  # close() must disconnect the pool made here
    return raw


class ShardedRedis(ShardedBase[redis.Redis], CoreCommands):
    """A drop-in redis-py client over several Redis servers, sharded by key.

    Args:
        nodes: node name -> URL (``redis://``, ``rediss://``, ``unix://``) or a ready
            ``redis.Redis``.
        weights: optional node name -> weight (default 1).
        algorithm, vnodes, table_size, hash, hash_tags: the placement (see
            :func:`hashring.placement`); hash tags are on by default, as in Redis Cluster.
        hash_key: a secret of at least 16 bytes that keys the placement's hash (see
            :func:`hashring.placement`), so that nobody without it can aim keys at one node;
            clients with the same secret (and nodes) place every key alike. Default None.
        health: eject a node after ``failure_limit`` consecutive connection errors for
            ``retry_timeout`` seconds, sending its keys to the next node of their preference
            list (default off: right for stores; turn it on for caches, accepting that keys
            served elsewhere meanwhile are stale when the node returns). Then exactly one
            command probes the node while the others keep using the fallback; the node's
            idle pooled connections are dropped when it is ejected and when it recovers.
        read_fallback: the client of the previous topology during a migration: a read that
            finds nothing on its new owner is retried there.
        max_workers: threads for parallel fan-out (default: one per node, at least 4).
        heartbeat_interval: seconds between active health checks (PING to every node, see
            :meth:`check_health`) in a daemon thread; None (default) for passive tracking
            only.
        **redis_kwargs: passed to ``redis.Redis.from_url`` for every URL
            (``decode_responses``, ``socket_timeout``, ``password``, ...).

    Raises:
        InvalidOptionError: a bad node name, URL or placement option.
        InvalidWeightError: a bad weight.
    """

    _event_dispatcher: Any = None  # declared by redis-py's CommandsProtocol; unused here
    _is_async_client: Literal[False] = False  # redis-py's typing marker: answers, not awaitables

    def __init__(
        self,
        nodes: Mapping[str, str | redis.Redis],
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
        read_fallback: ShardedRedis | None = None,
        max_workers: int | None = None,
        heartbeat_interval: float | None = None,
        **redis_kwargs: Any,
    ) -> None:
        self._setup(
            nodes, connect, weights=weights, algorithm=algorithm, vnodes=vnodes,
            table_size=table_size, hash=hash, hash_tags=hash_tags, hash_key=hash_key,
            health=health, failure_limit=failure_limit, retry_timeout=retry_timeout,
            redis_kwargs=redis_kwargs,
        )  # fmt: skip
        self.read_fallback = read_fallback
        self._lock = threading.Lock()  # membership changes; never held across I/O
        self._table_lock = threading.Lock()  # the first read of the COMMAND table
        self._parser: CommandsParser | None = None
        self._table: CommandTable | None = None
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
        self._executor = ThreadPoolExecutor(
            max_workers=max_workers or max(4, len(nodes)), thread_name_prefix="hashring-redis"
        )

    @classmethod
    def from_config(cls, path: str | Path, **redis_kwargs: Any) -> ShardedRedis:
        """A client for the topology file at ``path`` (see :func:`hashring.load_topology`).

        Raises:
            ConfigError: the file is not valid, or a node has no url.
        """
        nodes, options = config_arguments(path)
        return cls(nodes, **options, **redis_kwargs)

    # ------------------------------------------------------------------ routing

    def execute_command(self, *args: Any, **options: Any) -> Any:
        """Route one command (see the routing table in ``_redis_commands``) and run it.

        The clients of the nodes it uses are leased before anything is sent, so a node
        removed meanwhile closes its client only after this command is done; a command
        routed to a node that left before it was sent is routed again.

        Raises:
            CrossShardError, UnsupportedCommandError: before anything is sent.
            InvalidKeyError, KeyEncodingError: a key the placement refuses (a str with a
                lone surrogate), before anything is sent.
            redis.exceptions.RedisError: from a node; NodeRemovedError (a ConnectionError)
                if the command kept being routed to nodes that were just removed.
        """
        try:
            return self._execute(args, options)
        finally:
            self._health.release()  # a probe claim no outcome resolved ends with the command

    def _execute(self, args: tuple[Any, ...], options: dict[str, Any]) -> Any:
        _, table = self._command_table()
        command = table.describe(args)
        keys = command.keys_of(args)
        for _ in range(REROUTE_ATTEMPTS):
            if keys is not None and len(keys) == 1:  # the common case, without a plan
                node = route_owners(self._placement, self._health, self.get_encoder(), keys)[0]
                slot = self._members.slots.get(node)
                if slot is None or not slot.enter():
                    continue  # the node left after routing: nothing was sent, route again
                value = self._call(Part(node, args), options, slot)
                if value is None and self.read_fallback is not None and "readonly" in command.flags:
                    single = Plan([Part(node, args)], _first, command.name, True, keys)
                    value = self._fall_back(single, args, options, value)
                return value
            try:
                plan, slots = self._leased_plan(args, keys)
            except NodeRemovedError:
                continue
            value = self._run(plan, options, slots)
            if self.read_fallback is not None and plan.readonly:
                value = self._fall_back(plan, args, options, value)
            return value
        raise NodeRemovedError(
            f"{command.name.upper()} kept being routed to nodes that were being removed; "
            "nothing was sent"
        )

    def pipeline(self, transaction: bool = False, shard_hint: Any = None) -> ShardedPipeline:
        """A pipeline whose commands are grouped per node and sent in parallel.

        ``transaction=True`` wraps them in MULTI/EXEC and is refused (before anything is
        sent) unless every command's keys live on one node.
        """
        return ShardedPipeline(self, transaction)

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

        Start with 0 and stop when 0 comes back, as with one server. Membership changes
        during a scan invalidate the cursor.
        """
        members = self._members
        names = sorted(members.slots)
        if not names:
            raise EmptyRingError("the client has no nodes: add_node() one first")
        index, node_cursor = scan_position(cursor, len(names))
        with self._leased(members, names[index]) as client:
            following, keys = client.scan(
                node_cursor, match=match, count=count, _type=_type, **kwargs
            )
        return next_scan_cursor(following, index, len(names)), keys

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
        """Close every node client this object created, and its worker threads."""
        self._stopping.set()
        self._executor.shutdown(wait=True)
        for client in self._created_clients():
            client.close()

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
        parser, table = self._parser, self._table
        if parser is None or table is None:
            with self._table_lock:
                if self._parser is None or self._table is None:
                    fresh = self._read_command_table()
                    self._table = CommandTable(fresh.commands, fresh.get_command_policies())
                    self._parser = fresh
                parser, table = self._parser, self._table
        assert parser is not None
        assert table is not None
        return parser, table

    def _read_command_table(self) -> CommandsParser:
        """A parser holding the COMMAND table of the first node that answers (see
        :meth:`_command_table`)."""
        slots = self._members.slots
        if not slots:
            raise EmptyRingError("the client has no nodes: add_node() one first")
        names = sorted(slots)
        usable = [n for n in names if self._health.usable(n, claim=False)]
        failure: BaseException | None = None
        for name in usable + [n for n in names if n not in usable]:
            slot = slots[name]
            # redis-py's get_command_policies() decodes bytes itself and fails on a client
            # with decode_responses=True: read the table in raw mode.
            raw = raw_client(slot.client)
            try:
                parser = CommandsParser(raw)  # type: ignore[no-untyped-call]
            except CONNECTION_ERRORS as exc:
                self._outcome(name, slot, False)
                failure = exc
                continue
            finally:
                raw.close()
            return parser
        assert failure is not None
        raise failure

    def _plan(self, args: tuple[Any, ...], keys: list[Any] | None, members: Members[Any]) -> Plan:
        """The plan of one command over the nodes of ``members``.

        Raises:
            NodeRemovedError: the node asked for a command's movable keys left meanwhile.
        """
        parser, table = self._command_table()
        command = table.describe(args)
        if keys is None:
            keys = command.keys_of(args)
        if keys is None and command.name in SCRIPTING:
            keys = script_keys(args)
        nodes = sorted(members.slots)
        if keys is None:
            # Movable keys are asked of a node (COMMAND GETKEYS): one that is usable now.
            asked = self._health.first_usable(nodes, claim=False) or nodes[0]
            with self._leased(members, asked) as client:
                try:
                    keys = parser.get_keys(client, *parser_args(args)) or []  # type: ignore[no-untyped-call]
                except CONNECTION_ERRORS:
                    self._outcome(asked, members.slots[asked], False)
                    raise
        owners = (
            route_owners(self._placement, self._health, self.get_encoder(), keys) if keys else []
        )
        return plan_command(command, args, keys, owners, nodes, nodes[0])

    def _leased_plan(
        self, args: tuple[Any, ...], keys: list[Any] | None
    ) -> tuple[Plan, dict[str, Slot[redis.Redis]]]:
        """A plan and a lease on the slot of each node it uses.

        Raises:
            NodeRemovedError: one of its nodes left before the lease (nothing leased).
        """
        members = self._members
        plan = self._plan(args, keys, members)
        slots, closing = lease(members, (part.node for part in plan.parts))
        for client in closing:
            client.close()
        if slots is None:
            raise NodeRemovedError("a node of the plan was removed")
        return plan, slots

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
        """Run a plan whose nodes' slots are leased (each part gives its lease back)."""
        if len(plan.parts) == 1:
            part = plan.parts[0]
            return plan.merge([self._call(part, options, slots[part.node])])
        shared = {k: v for k, v in options.items() if k != "keys"}
        futures: list[Future[Any]] = []
        try:
            for part in plan.parts:
                futures.append(self._executor.submit(self._call, part, shared, slots[part.node]))
        except BaseException:
            for part in plan.parts[len(futures) :]:  # never submitted: give their leases back
                self._leave(slots[part.node])
            raise
        return plan.merge([future.result() for future in futures])

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

    def _outcome(self, node: str, slot: Slot[redis.Redis], ok: bool) -> None:
        """Record a command's outcome; when the node has just been ejected or has just
        recovered, drop its idle pooled connections (stale after a restart)."""
        if self._record(node, slot, ok) is not None:
            with suppress(*CONNECTION_ERRORS, OSError):
                slot.client.connection_pool.disconnect(inuse_connections=False)

    def _fall_back(
        self, plan: Plan, args: tuple[Any, ...], options: dict[str, Any], value: Any
    ) -> Any:
        """During a migration: a read that missed on its new owner asks the old topology."""
        fallback = self.read_fallback
        assert fallback is not None
        missed = missed_reads(plan, value, fallback.node_for)
        if missed is None:
            return value
        if plan.command != "mget":
            return fallback.execute_command(*args, **options)
        older = fallback.execute_command("MGET", *[plan.keys[i] for i in missed])
        for i, old in zip(missed, older, strict=True):
            value[i] = old
        return value


class ShardedPipeline(CoreCommands):
    """Buffers commands; ``execute()`` sends one pipeline per node, in parallel.

    Results come back in the order the commands were buffered. Errors behave as in
    redis-py: with ``raise_on_error=True`` (default) the first failed command's error is
    raised after every node has answered; with False each failed command's exception takes
    its place in the results.
    """

    _event_dispatcher: Any = None
    _is_async_client: Literal[False] = False

    def __init__(self, sharded: ShardedRedis, transaction: bool) -> None:
        self._sharded = sharded
        self._transaction = transaction
        self._commands: list[tuple[tuple[Any, ...], dict[str, Any]]] = []

    def execute_command(self, *args: Any, **options: Any) -> ShardedPipeline:
        """Buffer one command (routing is decided at ``execute``)."""
        self._commands.append((args, options))
        return self

    def execute(self, raise_on_error: bool = True) -> list[Any]:
        """Send the buffered commands and return their answers in order.

        Raises:
            CrossShardError: ``transaction=True`` and the commands span nodes (nothing sent).
            UnsupportedCommandError: a command that cannot be sharded (nothing sent).
        """
        commands, self._commands = self._commands, []
        try:
            return self._execute(commands, raise_on_error)
        finally:
            self._sharded._health.release()  # probe claims no outcome resolved

    def _execute(
        self, commands: list[tuple[tuple[Any, ...], dict[str, Any]]], raise_on_error: bool
    ) -> list[Any]:
        sharded = self._sharded
        for _ in range(REROUTE_ATTEMPTS):
            members = sharded._members
            try:
                plans = [sharded._plan(args, None, members) for args, _ in commands]
            except NodeRemovedError:
                continue
            if self._transaction:
                refuse_cross_node_transaction(plans)
            per_node = group_per_node(plans, [options for _, options in commands])
            slots, closing = lease(members, per_node)
            for client in closing:
                client.close()
            if slots is not None:
                break
        else:
            raise NodeRemovedError(
                "the pipeline kept being routed to nodes that were being removed; nothing was sent"
            )
        futures: dict[str, Future[list[Any]]] = {}
        try:
            for node, entries in per_node.items():
                futures[node] = sharded._executor.submit(self._send, node, slots[node], entries)
        except BaseException:
            for node in per_node:
                if node not in futures:
                    sharded._leave(slots[node])
            raise
        answers = {node: future.result() for node, future in futures.items()}
        return assemble(plans, per_node, answers, raise_on_error)

    def _send(self, node: str, slot: Slot[redis.Redis], entries: list[Entry]) -> list[Any]:
        """Send one node's share on its leased client; give the lease back."""
        try:
            pipe = slot.client.pipeline(transaction=self._transaction)
            for _, _, part, options in entries:
                pipe.execute_command(*part.args, **options)  # type: ignore[no-untyped-call]
            try:
                answers: list[Any] = pipe.execute(raise_on_error=False)
            except CONNECTION_ERRORS:
                self._sharded._outcome(node, slot, False)
                raise
            finally:
                pipe.reset()
            self._sharded._outcome(node, slot, True)
            return answers
        finally:
            self._sharded._leave(slot)

    def __len__(self) -> int:
        return len(self._commands)

    def reset(self) -> None:  # type: ignore[override]
        """Drop the buffered commands."""
        self._commands = []

    def __enter__(self) -> ShardedPipeline:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.reset()


def _first(answers: list[Any]) -> Any:
    return answers[0]


from ._redis_async import AsyncShardedPipeline, AsyncShardedRedis  # noqa: E402  (re-export)
