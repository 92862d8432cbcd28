"""The asyncio pipeline of ``AsyncShardedRedis``: ``ShardedPipeline``'s twin, on
``redis.asyncio`` (see ``_pipeline`` for the behaviour, ``_transaction`` for the rules).

Buffered command methods return the pipeline; while watching and before ``multi()`` they
return an awaitable that runs the command at once, as in redis.asyncio. ``transaction=False``
pipelines send one redis.asyncio pipeline per node, concurrently; during a migration
(``read_fallback``) their reads fall back as ``_pipeline`` says, and transactions do not.
``await pipe`` gives the pipeline back, as redis.asyncio's (``AsyncScript.__call__(...,
client=pipe)`` awaits the queued EVALSHA); queued Lua scripts are loaded by ``execute()``
and module accessors refused (``_pipeline_surface``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator, Sequence
from contextlib import suppress
from functools import partial
from typing import Any, Literal, Protocol, TypeVar

import redis
import redis.asyncio as aioredis
import redis.asyncio.client as aioclient
from redis._parsers.commands import AsyncCommandsParser
from redis.commands.core import AsyncCoreCommands

from hashring import HealthTracker

from ._commands import Command, CommandTable, Plan, known_keys
from ._fallback import Read, Rounds, may_read, refuse_blocking
from ._leases import REROUTE_ATTEMPTS, Members, NodeRemovedError, Slot
from ._owners import Owners
from ._pipeline_reads import Batch, place
from ._pipeline_surface import ModuleRefusals, calling_script, missing
from ._routing import (
    ANY_NODE,
    Routed,
    raise_first_error,
    refuse_cross_node_transaction,
)
from ._transaction import (
    Buffered,
    OwnerEjectedError,
    Pin,
    answered,
    keyless_node,
    lost_watch,
    merged_answers,
    needs_keys,
    refuse_nested_multi,
    refuse_other_watch,
    refuse_watch_after_multi,
    single_owner,
    transaction_plan,
)
from ._window_routes import one_at_a_time_async, writes

__all__ = ["AsyncShardedPipeline"]

T = TypeVar("T")
Planned = tuple[T, Routed]
"""What a pipeline planned (a :class:`Batch`, or None), its plans and their options."""
AsyncPin = Pin[aioredis.Redis, aioclient.Pipeline]


class _AsyncSharded(Protocol):
    """What a pipeline uses of its ``AsyncShardedRedis``."""

    _health: HealthTracker
    _members: Members[aioredis.Redis]
    read_fallback: Any

    def get_encoder(self) -> Any: ...
    def _encoder_of(self, members: Any) -> Any: ...
    def execute_command(self, *args: Any, **options: Any) -> Awaitable[Any]: ...
    def _command_table(self) -> Awaitable[tuple[AsyncCommandsParser, CommandTable]]: ...
    def _keys(
        self,
        parser: AsyncCommandsParser,
        args: tuple[Any, ...],
        keys: list[Any] | None,
        members: Members[aioredis.Redis],
    ) -> Awaitable[list[Any]]: ...
    def _plan(self, args: tuple[Any, ...], members: Members[aioredis.Redis]) -> Awaitable[Plan]: ...
    def _route_one_key_many(
        self,
        table: CommandTable,
        commands: Sequence[tuple[Any, ...]],
        members: Members[aioredis.Redis],
    ) -> tuple[list[int], Owners | None]: ...
    def _plan_for(
        self,
        command: Command,
        args: tuple[Any, ...],
        keys: list[Any],
        members: Members[aioredis.Redis],
    ) -> Plan: ...
    def _reads_only(
        self, command: Command, args: tuple[Any, ...], members: Any
    ) -> Awaitable[bool]: ...
    def _round_plans(
        self, table: CommandTable, reads: list[Read], members: Members[aioredis.Redis]
    ) -> tuple[list[Plan], list[dict[str, Any]]]: ...
    def _settle(self, rounds: list[Rounds]) -> Awaitable[list[Any]]: ...
    def _send_per_node(
        self,
        planned: Callable[[Members[aioredis.Redis]], Awaitable[Planned[T]]],
        routed: str,
    ) -> Awaitable[tuple[T, list[Any]]]: ...
    def _outcome(self, node: str, slot: Slot[aioredis.Redis], ok: bool) -> None: ...
    async def _pull_ahead(
        self, what: str, keys: list[Any], members: Members[aioredis.Redis]
    ) -> None: ...
    def _leave(self, slot: Slot[aioredis.Redis]) -> Awaitable[None]: ...


def _annotate_async(exc: Exception, number: int, command: tuple[Any, ...]) -> None:
    """redis.asyncio's own message for a failed pipeline command (it differs from the
    synchronous one: it shows the error's ``args``)."""
    aioclient.Pipeline.annotate_exception(None, exc, number, command)  # type: ignore[arg-type]


class AsyncShardedPipeline(ModuleRefusals, AsyncCoreCommands):  # type: ignore[misc]
    """redis.asyncio's ``Pipeline`` over the sharded nodes (see the module docstring).

    Buffered command methods return the pipeline (do not await them); while watching and
    before ``multi()`` they run at once and return an awaitable, as in redis.asyncio.
    Attributes as redis-py's: ``transaction``, ``explicit_transaction``, ``watching``,
    ``command_stack``, ``shard_hint``, ``scripts``; ``len(pipe)``, ``bool(pipe)`` (always
    True); ``await pipe`` is the pipeline. The module accessors (``json()``, ...) raise
    ``UnsupportedCommandError``.
    """

    _is_async_client: Literal[True] = True
    _event_dispatcher: Any = None

    def __init__(
        self, sharded: _AsyncSharded, transaction: bool = True, shard_hint: Any = None
    ) -> None:
        self._sharded = sharded
        self.transaction = transaction
        self.shard_hint = shard_hint
        self.explicit_transaction = False
        self.command_stack: list[Buffered] = []
        self.scripts: set[Any] = set()
        self._pin: AsyncPin | None = None

    @property
    def watching(self) -> bool:
        """Whether keys are watched (``watch()`` was called and no EXEC/UNWATCH ended it)."""
        return self._pin is not None and self._pin.pipe.watching

    def execute_command(self, *args: Any, **options: Any) -> Any:
        """Buffer one command (routed at ``execute``) and return the pipeline; while
        watching and before ``multi()``, return the awaitable that runs it at once."""
        if (self.watching or args[0] == "WATCH") and not self.explicit_transaction:
            return self.immediate_execute_command(*args, **options)
        self.command_stack.append(Buffered(args, options))
        return self

    def pipeline_execute_command(self, *args: Any, **options: Any) -> AsyncShardedPipeline:
        """Buffer one command, whatever the mode."""
        self.command_stack.append(Buffered(args, options))
        return self

    async def immediate_execute_command(self, *args: Any, **options: Any) -> Any:
        """Run one command now, as ``ShardedPipeline.immediate_execute_command``.

        Raises:
            CrossShardError, OwnerEjectedError, redis.exceptions.WatchError: as there.
        """
        try:
            if (await self._sharded._command_table())[1].describe(args).name == "watch":
                return await self._watch(args, options)
            pin = self._pin
            if pin is None or not pin.pipe.watching:
                return await self._sharded.execute_command(*args, **options)
            plan = (await self._plans([Buffered(args, options)], self._sharded._members))[0]
            if len(plan.parts) == 1 and plan.parts[0].node in (ANY_NODE, pin.node):
                answer = await self._on_pin(
                    pin,
                    pin.pipe.immediate_execute_command(*args, **options),  # type: ignore[no-untyped-call]
                )
                return plan.merge([answer])
            return await self._sharded.execute_command(*args, **options)
        finally:
            self._sharded._health.release()

    def evalsha(self, sha: Any, numkeys: int, *keys_and_args: Any) -> Any:
        """Buffer EVALSHA, as redis.asyncio; called by a redis-py ``AsyncScript`` for
        ``sha``, the script joins :attr:`scripts`, which ``execute()`` loads first."""
        script = calling_script(sha)
        if script is not None:
            self.scripts.add(script)
        return self.execute_command("EVALSHA", sha, numkeys, *keys_and_args)

    async def load_scripts(self) -> None:
        """As ``ShardedPipeline.load_scripts``.

        Raises:
            redis.exceptions.ResponseError: a script does not compile (SCRIPT LOAD's).
            redis.exceptions.ConnectionError, TimeoutError: a node could not be reached.
        """
        scripts = list(self.scripts)
        sharded = self._sharded
        shas = [script.sha for script in scripts]
        exists = await sharded.execute_command("SCRIPT EXISTS", *shas)
        for script in missing(scripts, exists):
            script.sha = await sharded.execute_command("SCRIPT LOAD", script.script)

    async def _load_scripts_first(self, stack: list[Buffered]) -> None:
        """Plan ``stack`` (a refusal resets the pipeline, nothing sent), then load the
        queued scripts; as redis-py, a failure of the loading keeps the buffer."""
        try:
            await self._refuse_early(stack)
        except BaseException:
            await self.reset()
            raise
        finally:
            self._sharded._health.release()  # the execution plans (and claims) again
        await self.load_scripts()

    async def _refuse_early(self, stack: list[Buffered]) -> None:
        """As ``ShardedPipeline._refuse_early``.

        Raises:
            CrossShardError, UnsupportedCommandError: as ``execute``.
        """
        members = self._sharded._members
        with suppress(NodeRemovedError):
            if self.transaction or self.explicit_transaction:
                pin = self._pin
                watched = pin.node if pin is not None and pin.pipe.watching else None
                refuse_cross_node_transaction(await self._plans(stack, members), watched)
            else:
                await self._plain(stack, members)

    def __await__(self) -> Generator[Any, None, AsyncShardedPipeline]:
        """``await pipe`` is ``pipe``, as redis.asyncio's pipelines (a buffered command
        method returns the pipeline, so ``await pipe.get(key)`` buffers it)."""
        return self._async_self().__await__()

    async def _async_self(self) -> AsyncShardedPipeline:
        return self

    async def watch(self, *names: Any) -> Any:  # type: ignore[override]
        """Watch ``names`` on their node (they must share one).

        Raises:
            redis.exceptions.RedisError: after ``multi()``.
        """
        refuse_watch_after_multi(self)
        return await self.execute_command("WATCH", *names)

    async def unwatch(self) -> Any:  # type: ignore[override]
        """Forget the watched keys (UNWATCH on their node); True when not watching."""
        return (self.watching and await self.execute_command("UNWATCH")) or True

    def multi(self) -> None:
        """Start the transactional block after ``watch()``; ``execute()`` ends it.

        Raises:
            redis.exceptions.RedisError: nested, or after commands were buffered.
        """
        refuse_nested_multi(self)
        self.explicit_transaction = True

    async def discard(self) -> None:
        """DISCARD, as redis-py: sent at once while watching, else buffered."""
        answer = self.execute_command("DISCARD")
        if answer is not self:
            await answer

    async def execute(self, raise_on_error: bool = True) -> list[Any]:
        """Send the buffered commands and return their answers in order; then reset.
        Queued Lua scripts (:attr:`scripts`) are loaded first (``load_scripts``).

        Raises:
            What ``ShardedPipeline.execute`` raises.
        """
        stack = self.command_stack
        if not stack and not self.watching:
            return []
        if self.scripts:
            await self._load_scripts_first(stack)
        try:
            if self.transaction or self.explicit_transaction:
                return await self._execute_transaction(stack, raise_on_error)
            return await self._execute_pipeline(stack, raise_on_error)
        finally:
            await self.reset()
            self._sharded._health.release()  # probe claims no outcome resolved

    # ------------------------------------------------------------------ transactions

    async def _plans(
        self, commands: list[Buffered], members: Members[aioredis.Redis]
    ) -> list[Plan]:
        sharded = self._sharded
        parser, table = await sharded._command_table()
        plans = []
        for args, _ in commands:
            command = table.describe(args)
            keys: list[Any] = []
            if needs_keys(command):
                keys = await sharded._keys(parser, args, known_keys(command, args), members)
            plans.append(
                transaction_plan(
                    command, args, keys, members.placement, sharded._encoder_of(members), members
                )
            )
        return plans

    async def _watch(self, args: tuple[Any, ...], options: dict[str, Any]) -> Any:
        sharded = self._sharded
        keys = list(args[1:])
        await sharded._pull_ahead("WATCH", keys, sharded._members)  # a migration window's
        pin = self._pin
        if pin is not None and pin.pipe.watching:
            members = sharded._members
            owner = single_owner(members.placement, sharded._encoder_of(members), keys)
            refuse_other_watch(pin.node, owner)
        else:
            if pin is not None:
                await self._unpin()
            pin = self._pin = await self._pin_owner(keys)
        pin.keys.extend(keys)
        return await self._on_pin(
            pin,
            pin.pipe.immediate_execute_command(*args, **options),  # type: ignore[no-untyped-call]
        )

    async def _pin_owner(self, keys: list[Any]) -> AsyncPin:
        """Lease the node owning ``keys`` (a keyless WATCH: the first usable node)."""
        sharded = self._sharded
        for _ in range(REROUTE_ATTEMPTS):
            members = sharded._members
            node = single_owner(members.placement, sharded._encoder_of(members), keys)
            pin = await self._pin_node(members, node or keyless_node(members, sharded._health))
            if pin is not None:
                return pin
        raise NodeRemovedError("the watched keys kept being routed to removed nodes")

    async def _pin_node(self, members: Members[aioredis.Redis], node: str) -> AsyncPin | None:
        """As ``ShardedPipeline._pin_node``.

        Raises:
            OwnerEjectedError: the node is ejected (nothing leased or sent).
        """
        slot = members.slots.get(node)
        if slot is None or not slot.enter():
            return None
        if not self._sharded._health.usable(node):
            await self._sharded._leave(slot)
            raise OwnerEjectedError(
                f"node {node!r} owns the transaction's keys but is ejected as unhealthy; a "
                "transaction runs only on its keys' owner: nothing was sent"
            )
        return Pin(node, slot, slot.client.pipeline(True, self.shard_hint))

    async def _unpin(self) -> None:
        """UNWATCH if watching, release the connection, give the node's lease back."""
        pin, self._pin = self._pin, None
        if pin is not None:
            try:
                await pin.pipe.reset()  # type: ignore[no-untyped-call]
            finally:
                await self._sharded._leave(pin.slot)

    async def _on_pin(self, pin: AsyncPin, call: Awaitable[T]) -> T:
        """Await ``call`` on the pinned node's pipeline and record the node's health."""
        try:
            answer = await call
        except BaseException as exc:
            ok = answered(exc)
            if ok is not None:
                self._sharded._outcome(pin.node, pin.slot, ok)
            raise
        self._sharded._outcome(pin.node, pin.slot, True)
        return answer

    async def _execute_transaction(self, stack: list[Buffered], raise_on_error: bool) -> list[Any]:
        sharded = self._sharded
        if self._pin is not None and not self._pin.pipe.watching:
            await self._unpin()  # an UNWATCHed watch: its node no longer binds the transaction
        for _ in range(REROUTE_ATTEMPTS):
            members = sharded._members
            try:
                plans = await self._plans(stack, members)
                keys = [key for plan in plans for key in plan.keys]
                await sharded._pull_ahead("MULTI/EXEC", keys, members)  # a migration window's
            except NodeRemovedError:
                continue
            pin = self._pin
            if pin is not None:
                lost = lost_watch(pin, members.placement, sharded._encoder_of(members))
                if lost is not None:
                    raise redis.exceptions.WatchError(lost)
                refuse_cross_node_transaction(plans, pin.node)
                break
            node = refuse_cross_node_transaction(plans) or keyless_node(members, sharded._health)
            self._pin = pin = await self._pin_node(members, node)
            if pin is not None:
                break
        else:
            raise NodeRemovedError(
                "the transaction kept being routed to nodes that were being removed; "
                "nothing was sent"
            )
        inner = pin.pipe
        for args, options in stack:
            inner.pipeline_execute_command(*args, **options)  # type: ignore[no-untyped-call]
        answers = await self._on_pin(pin, inner.execute(raise_on_error))
        return merged_answers(plans, answers)

    # ------------------------------------------------------------------ plain pipelines

    async def _execute_pipeline(self, commands: list[Buffered], raise_on_error: bool) -> list[Any]:
        stack = [command.args for command in commands]
        sharded = self._sharded
        if sharded._members.window is not None and writes(
            (await sharded._command_table())[1], commands
        ):
            results = await one_at_a_time_async(sharded.execute_command, commands)
        elif sharded.read_fallback is None:
            _, results = await self._send_planned(partial(self._plain, commands))
        else:
            results = await self._execute_migrating(commands)
        if raise_on_error:
            raise_first_error(results, stack, _annotate_async)
        return results

    async def _execute_migrating(self, commands: list[Buffered]) -> list[Any]:
        """As ``ShardedPipeline._execute_migrating``."""
        results: list[Any] = []
        rest = commands
        while rest:
            batch, flat = await self._send_planned(partial(self._batch, rest, rest is commands))
            answers, positions, rounds = batch.answers(flat)
            if rounds:
                place(answers, positions, await self._sharded._settle(rounds))
            results.extend(answers)
            rest = rest[len(batch) :]
        return results

    async def _plain(
        self, commands: list[Buffered], members: Members[aioredis.Redis]
    ) -> Planned[None]:
        """As ``ShardedPipeline._plain``."""
        sharded = self._sharded
        _, table = await sharded._command_table()
        others, owners = sharded._route_one_key_many(table, [c.args for c in commands], members)
        plans: list[Plan | None] = [None] * len(commands)
        for index in others:
            plans[index] = await sharded._plan(commands[index].args, members)
        return None, Routed(plans, commands, owners)

    async def _batch(
        self, commands: list[Buffered], first: bool, members: Members[aioredis.Redis]
    ) -> Planned[Batch]:
        """As ``ShardedPipeline._batch``.

        Raises:
            UnsupportedCommandError: a blocking read (XREAD ... BLOCK), nothing sent.
            CrossShardError, UnsupportedCommandError: as without ``read_fallback``.
            NodeRemovedError: the node asked for movable keys left meanwhile.
        """
        sharded = self._sharded
        parser, table = await sharded._command_table()
        encoder = sharded.get_encoder()
        batch = Batch()
        full = False
        for args, options in commands:
            if full and not first:
                break
            command = table.describe(args)
            keys = await sharded._keys(parser, args, known_keys(command, args), members)
            encoded = [bytes(encoder.encode(key)) for key in keys]
            if keys and may_read(command) and await sharded._reads_only(command, args, members):
                refuse_blocking(command, args)
                read = Read(args, keys, options)
                round_one = sharded._round_plans(table, [read], members)
                if not full:
                    batch.add_read(command, read, round_one, encoded)
                continue
            full = full or batch.barrier(command, encoded)
            plan = sharded._plan_for(command, args, keys, members)
            if not full:
                batch.add(plan, options)
        return batch, Routed.of(batch.plans, batch.options)

    async def _send_planned(
        self, planned: Callable[[Members[aioredis.Redis]], Awaitable[Planned[T]]]
    ) -> tuple[T, list[Any]]:
        """As ``ShardedPipeline._send_planned``: every node's request written before any
        reply is read (the client's ``_send_per_node``).

        Raises:
            NodeRemovedError: the plans kept being routed to nodes being removed.
            redis.exceptions.ConnectionError, TimeoutError: a node could not be reached.
        """
        return await self._sharded._send_per_node(planned, "the pipeline")

    # ------------------------------------------------------------------ lifecycle

    def __len__(self) -> int:
        return len(self.command_stack)

    def __bool__(self) -> bool:
        """Always true, even when empty (as redis-py's pipelines)."""
        return True

    async def reset(self) -> None:  # type: ignore[override]
        """Drop the buffered commands, end ``multi()``, UNWATCH the watched keys and give
        their node's connection back."""
        self.command_stack = []
        self.scripts = set()
        self.explicit_transaction = False
        await self._unpin()

    async def aclose(self) -> None:
        """Alias of :meth:`reset`, as on redis-py's pipelines."""
        await self.reset()

    async def __aenter__(self) -> AsyncShardedPipeline:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.reset()
