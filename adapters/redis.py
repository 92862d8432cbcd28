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
from pathlib import Path
from typing import Any, Literal

import redis
from redis._parsers.commands import CommandsParser
from redis.commands.core import CoreCommands

from hashring import (
    InvalidOptionError,
    redact_url,
)

from ._redis_base import ShardedBase, check_target, config_arguments
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

__all__ = ["AsyncShardedPipeline", "AsyncShardedRedis", "ShardedPipeline", "ShardedRedis"]


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
    except ValueError as exc:
        raise InvalidOptionError(f"node {name!r}: bad URL {redact_url(str(target))!r}") from exc


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
        health: eject a node after ``failure_limit`` consecutive connection errors for
            ``retry_timeout`` seconds, sending its keys to the next node of their preference
            list (default off: right for stores; turn it on for caches, accepting that keys
            served elsewhere meanwhile are stale when the node returns).
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
            table_size=table_size, hash=hash, hash_tags=hash_tags, health=health,
            failure_limit=failure_limit, retry_timeout=retry_timeout, redis_kwargs=redis_kwargs,
        )  # fmt: skip
        self.read_fallback = read_fallback
        self._lock = threading.Lock()
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
        """Route one command (see the routing table in ``_redis_commands``) and run it."""
        _, table = self._command_table()
        command = table.describe(args)
        keys = command.keys_of(args)
        if keys is not None and len(keys) == 1:  # the common case, without building a plan
            node = route_owners(self._placement, self._health, self.get_encoder(), keys)[0]
            value = self._call(Part(node, args), options)
            if value is None and self.read_fallback is not None and "readonly" in command.flags:
                single = Plan([Part(node, args)], _first, command.name, True, keys)
                value = self._fall_back(single, args, options, value)
            return value
        plan = self._plan(args, keys)
        value = self._run(plan, options)
        if self.read_fallback is not None and plan.readonly:
            value = self._fall_back(plan, args, options, value)
        return value

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
        names = sorted(self._clients)
        index, node_cursor = scan_position(cursor, len(names))
        client = self._clients[names[index]]
        following, keys = client.scan(node_cursor, match=match, count=count, _type=_type, **kwargs)
        return next_scan_cursor(following, index, len(names)), keys

    def scan_iter(
        self, match: Any = None, count: int | None = None, _type: str | None = None, **kwargs: Any
    ) -> Iterator[Any]:
        """Every key of every node (each node's ``scan_iter`` in turn)."""
        for name in sorted(self._clients):
            yield from self._clients[name].scan_iter(
                match=match, count=count, _type=_type, **kwargs
            )

    # ------------------------------------------------------------------ membership

    def add_node(self, name: str, target: str | redis.Redis, weight: float = 1) -> None:
        """Add a node at runtime; only keys that move to it change owner. Thread-safe.

        Raises:
            NodeExistsError, InvalidOptionError, InvalidWeightError: as the placement.
        """
        with self._lock:
            super().add_node(name, target, weight)

    def remove_node(self, name: str) -> None:
        """Remove a node at runtime (its client is closed if this object created it).

        Raises:
            UnknownNodeError: ``name`` is not a node.
        """
        with self._lock:
            client, created = self._detach(name)
        if created:
            client.close()

    # ------------------------------------------------------------------ lifecycle

    def check_health(self) -> dict[str, bool]:
        """PING every node once and record the outcome: failures count towards ejection,
        a success restores an ejected node. Returns node -> answered."""
        answered = {}
        for name, client in sorted(self._clients.items()):
            try:
                answered[name] = bool(client.ping())
            except CONNECTION_ERRORS:
                answered[name] = False
            self._health.record(name, answered[name])
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
        if self._parser is None or self._table is None:
            with self._lock:
                if self._parser is None:
                    # redis-py's get_command_policies() decodes bytes itself and fails on a
                    # client with decode_responses=True: read the table in raw mode.
                    raw = raw_client(self._default_client())
                    try:
                        parser = CommandsParser(raw)  # type: ignore[no-untyped-call]
                        self._table = CommandTable(parser.commands, parser.get_command_policies())
                    finally:
                        raw.close()
                    self._parser = parser
        assert self._table is not None
        return self._parser, self._table

    def _plan(self, args: tuple[Any, ...], keys: list[Any] | None = None) -> Plan:
        parser, table = self._command_table()
        command = table.describe(args)
        if keys is None:
            keys = command.keys_of(args)
        if keys is None and command.name in SCRIPTING:
            keys = script_keys(args)
        nodes = sorted(self._clients)
        if keys is None:
            # Movable keys are asked of a node (COMMAND GETKEYS): one that is usable now.
            asked = self._clients[self._health.first_usable(nodes) or nodes[0]]
            keys = parser.get_keys(asked, *parser_args(args)) or []  # type: ignore[no-untyped-call]
        owners = (
            route_owners(self._placement, self._health, self.get_encoder(), keys) if keys else []
        )
        return plan_command(command, args, keys, owners, nodes, nodes[0])

    def _run(self, plan: Plan, options: dict[str, Any]) -> Any:
        if len(plan.parts) == 1:
            return plan.merge([self._call(plan.parts[0], options)])
        shared = {k: v for k, v in options.items() if k != "keys"}
        futures: list[Future[Any]] = [
            self._executor.submit(self._call, part, shared) for part in plan.parts
        ]
        return plan.merge([future.result() for future in futures])

    def _call(self, part: Part, options: dict[str, Any]) -> Any:
        client = self._clients[part.node]
        try:
            answer = client.execute_command(*part.args, **options)  # type: ignore[no-untyped-call]
        except CONNECTION_ERRORS:
            self._health.record(part.node, False)
            raise
        self._health.record(part.node, True)
        return answer

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
        plans = [self._sharded._plan(args) for args, _ in commands]
        if self._transaction:
            refuse_cross_node_transaction(plans)
        per_node = group_per_node(plans, [options for _, options in commands])
        futures = {
            node: self._sharded._executor.submit(self._send, node, entries)
            for node, entries in per_node.items()
        }
        answers = {node: future.result() for node, future in futures.items()}
        return assemble(plans, per_node, answers, raise_on_error)

    def _send(self, node: str, entries: list[Entry]) -> list[Any]:
        client = self._sharded._clients[node]
        pipe = client.pipeline(transaction=self._transaction)
        for _, _, part, options in entries:
            pipe.execute_command(*part.args, **options)  # type: ignore[no-untyped-call]
        try:
            answers: list[Any] = pipe.execute(raise_on_error=False)
        except CONNECTION_ERRORS:
            self._sharded._health.record(node, False)
            raise
        finally:
            pipe.reset()
        self._sharded._health.record(node, True)
        return answers

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
