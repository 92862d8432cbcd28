"""Pipelines of the sharded clients: commands buffered, then one pipeline per node.

``execute()`` plans every buffered command (as the client would route it), groups the parts
per node in buffering order, leases those nodes, sends one redis-py pipeline per node (in
parallel threads for ``ShardedPipeline``, concurrent tasks for ``AsyncShardedPipeline``)
and puts the answers back in buffering order (``_routing.group_per_node`` / ``assemble``).
"""

from __future__ import annotations

from collections.abc import Awaitable
from concurrent.futures import Executor, Future
from typing import Any, Literal, NamedTuple, Protocol

import redis
import redis.asyncio as aioredis
from redis.commands.core import AsyncCoreCommands, CoreCommands

from hashring import HealthTracker

from ._clients import gather_all, gather_leased
from ._commands import CONNECTION_ERRORS, Plan
from ._leases import REROUTE_ATTEMPTS, Members, NodeRemovedError, Slot, lease
from ._routing import Entry, assemble, group_per_node, refuse_cross_node_transaction

__all__ = ["AsyncShardedPipeline", "Buffered", "ShardedPipeline"]


class Buffered(NamedTuple):
    """One command buffered by a pipeline."""

    args: tuple[Any, ...]
    options: dict[str, Any]


class _Sharded(Protocol):
    """What a pipeline uses of its ``ShardedRedis``."""

    _health: HealthTracker
    _members: Members[redis.Redis]

    @property
    def _executor(self) -> Executor: ...

    def _plan(self, args: tuple[Any, ...], members: Members[redis.Redis]) -> Plan: ...
    def _outcome(self, node: str, slot: Slot[redis.Redis], ok: bool) -> None: ...
    def _leave(self, slot: Slot[redis.Redis]) -> None: ...


class _AsyncSharded(Protocol):
    """What a pipeline uses of its ``AsyncShardedRedis``."""

    _health: HealthTracker
    _members: Members[aioredis.Redis]

    def _plan(self, args: tuple[Any, ...], members: Members[aioredis.Redis]) -> Awaitable[Plan]: ...
    def _outcome(self, node: str, slot: Slot[aioredis.Redis], ok: bool) -> None: ...
    def _leave(self, slot: Slot[aioredis.Redis]) -> Awaitable[None]: ...


class ShardedPipeline(CoreCommands):
    """Buffers commands; ``execute()`` sends one pipeline per node, in parallel.

    Results come back in the order the commands were buffered. Errors behave as in
    redis-py: with ``raise_on_error=True`` (default) the first failed command's error is
    raised after every node has answered; with False each failed command's exception takes
    its place in the results.
    """

    _event_dispatcher: Any = None
    _is_async_client: Literal[False] = False

    def __init__(self, sharded: _Sharded, transaction: bool) -> None:
        self._sharded = sharded
        self._transaction = transaction
        self._commands: list[Buffered] = []

    def execute_command(self, *args: Any, **options: Any) -> ShardedPipeline:
        """Buffer one command (routing is decided at ``execute``)."""
        self._commands.append(Buffered(args, options))
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

    def _execute(self, commands: list[Buffered], raise_on_error: bool) -> list[Any]:
        sharded = self._sharded
        for _ in range(REROUTE_ATTEMPTS):
            members = sharded._members
            try:
                plans = [sharded._plan(command.args, members) for command in commands]
            except NodeRemovedError:
                continue
            if self._transaction:
                refuse_cross_node_transaction(plans)
            per_node = group_per_node(plans, [command.options for command in commands])
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
            for entry in entries:
                pipe.execute_command(*entry.args, **entry.options)  # type: ignore[no-untyped-call]
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

    def __init__(self, sharded: _AsyncSharded, transaction: bool) -> None:
        self._sharded = sharded
        self._transaction = transaction
        self._commands: list[Buffered] = []

    def execute_command(self, *args: Any, **options: Any) -> AsyncShardedPipeline:
        """Buffer one command (routing is decided at ``execute``)."""
        self._commands.append(Buffered(args, options))
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

    async def _execute(self, commands: list[Buffered], raise_on_error: bool) -> list[Any]:
        sharded = self._sharded
        for _ in range(REROUTE_ATTEMPTS):
            members = sharded._members
            try:
                plans = [await sharded._plan(command.args, members) for command in commands]
            except NodeRemovedError:
                continue
            if self._transaction:
                refuse_cross_node_transaction(plans)
            per_node = group_per_node(plans, [command.options for command in commands])
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
            for entry in entries:
                pipe.execute_command(*entry.args, **entry.options)
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
