"""The pipeline of ``ShardedRedis``, as redis-py's ``Pipeline`` (``_async_pipeline`` holds
its asyncio twin).

``pipeline()`` defaults to ``transaction=True``, as redis-py: the buffered commands run as
one MULTI/EXEC on the node that owns their keys (see ``_transaction`` for the rules), and
a transaction whose commands span nodes is refused before anything is sent. ``watch()``
pins the watched keys' node: until ``multi()`` commands run at once (on that node's
watching connection when their keys live there, else routed as by the client), then
``execute()`` runs the transaction there, raising redis-py's ``WatchError`` if a watched
key changed. ``transaction=False`` pipelines group the commands per node, write one
request per node before reading any reply, from the calling thread (``_scatter``), and
put the answers back in buffering order
(``_routing.group_per_node``); multi-node commands such as MGET are split.

During a migration (the client's ``read_fallback`` is set), a ``transaction=False``
pipeline's reads answer as the client's direct reads do (``_fallback``): each read with keys
goes out with its keys' EXISTS ahead of it, in its place among the pipeline's commands (so
it sees the pipeline's earlier writes), and a key its new owner does not hold is read from
the old topology after the pipeline (one more round trip; none when every key is present);
a command that may write a key read earlier in the pipeline waits for those reads to settle
(see ``_pipeline_reads``). A blocking read (XREAD ... BLOCK) is refused, nothing sent.
Transactions (MULTI/EXEC, ``transaction=True``, WATCH) never fall back: they run atomically
on their keys' new owner and see only what it holds. Without ``read_fallback`` none of this
runs.

Errors are redis-py's: with ``raise_on_error=True`` (default) the first failed command's
``ResponseError`` is raised after every command ran, prefixed "Command # N (ARGS) of
pipeline caused error: " with N its index in this pipeline; with False each failed
command's exception takes its place. The buffer is emptied, and a watch ended, by every
``execute()`` (whatever it raises, but for a failure to load the queued Lua scripts, which
keeps it as redis-py does), ``reset()``, ``close()`` and leaving a ``with`` block. Lua
``Script`` objects queued in a pipeline are loaded first (``_pipeline_surface``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import suppress
from functools import partial
from typing import Any, Literal, Protocol, TypeVar

import redis
import redis.client
from redis._parsers.commands import CommandsParser
from redis.commands.core import CoreCommands

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
from ._window_routes import one_at_a_time, writes

__all__ = ["Buffered", "ShardedPipeline"]

T = TypeVar("T")
Planned = tuple[T, Routed]
"""What a pipeline planned (a :class:`Batch`, or None), its plans and their options."""
SyncPin = Pin[redis.Redis, redis.client.Pipeline]


class _Sharded(Protocol):
    """What a pipeline uses of its ``ShardedRedis``."""

    _health: HealthTracker
    _members: Members[redis.Redis]
    read_fallback: Any

    def get_encoder(self) -> Any: ...
    def _encoder_of(self, members: Any) -> Any: ...
    def execute_command(self, *args: Any, **options: Any) -> Any: ...
    def _command_table(self) -> tuple[CommandsParser, CommandTable]: ...
    def _keys(
        self,
        parser: CommandsParser,
        args: tuple[Any, ...],
        keys: list[Any] | None,
        members: Members[redis.Redis],
    ) -> list[Any]: ...
    def _plan(self, args: tuple[Any, ...], members: Members[redis.Redis]) -> Plan: ...
    def _route_one_key_many(
        self,
        table: CommandTable,
        commands: Sequence[tuple[Any, ...]],
        members: Members[redis.Redis],
    ) -> tuple[list[int], Owners | None]: ...
    def _plan_for(
        self,
        command: Command,
        args: tuple[Any, ...],
        keys: list[Any],
        members: Members[redis.Redis],
    ) -> Plan: ...
    def _reads_only(self, command: Command, args: tuple[Any, ...], members: Any) -> bool: ...
    def _round_plans(
        self, table: CommandTable, reads: list[Read], members: Members[redis.Redis]
    ) -> tuple[list[Plan], list[dict[str, Any]]]: ...
    def _settle(self, rounds: list[Rounds]) -> list[Any]: ...
    def _send_per_node(
        self, planned: Callable[[Members[redis.Redis]], Planned[T]], routed: str
    ) -> tuple[T, list[Any]]: ...
    def _outcome(self, node: str, slot: Slot[redis.Redis], ok: bool) -> None: ...
    def _pull_ahead(self, what: str, keys: list[Any], members: Members[redis.Redis]) -> None: ...
    def _leave(self, slot: Slot[redis.Redis]) -> None: ...


def _annotate(exc: Exception, number: int, command: tuple[Any, ...]) -> None:
    """redis-py's own message for a failed pipeline command (its function ignores self)."""
    redis.client.Pipeline.annotate_exception(None, exc, number, command)  # type: ignore[arg-type,no-untyped-call]


class ShardedPipeline(ModuleRefusals, CoreCommands):
    """redis-py's ``Pipeline`` over the sharded nodes (see the module docstring).

    Attributes as redis-py's: ``transaction``, ``explicit_transaction`` (``multi()`` was
    called), ``watching``, ``command_stack``, ``shard_hint``, ``scripts`` (the Lua scripts
    ``execute()`` loads first: see ``_pipeline_surface``). ``len(pipe)`` counts the
    buffered commands; ``bool(pipe)`` is always True. The module accessors (``json()``,
    ``ft()``, ...) raise ``UnsupportedCommandError``.
    """

    _event_dispatcher: Any = None
    _is_async_client: Literal[False] = False

    def __init__(self, sharded: _Sharded, transaction: bool = True, shard_hint: Any = None) -> None:
        self._sharded = sharded
        self.transaction = transaction
        self.shard_hint = shard_hint
        self.explicit_transaction = False
        self.command_stack: list[Buffered] = []
        self.scripts: set[Any] = set()
        self._pin: SyncPin | None = None

    @property
    def watching(self) -> bool:
        """Whether keys are watched (``watch()`` was called and no EXEC/UNWATCH ended it)."""
        return self._pin is not None and self._pin.pipe.watching

    def execute_command(self, *args: Any, **options: Any) -> Any:
        """Buffer one command (routed at ``execute``); while watching and before ``multi()``,
        run it at once instead and return its answer (as redis-py)."""
        if (self.watching or args[0] == "WATCH") and not self.explicit_transaction:
            return self.immediate_execute_command(*args, **options)
        self.command_stack.append(Buffered(args, options))
        return self

    def pipeline_execute_command(self, *args: Any, **options: Any) -> ShardedPipeline:
        """Buffer one command, whatever the mode."""
        self.command_stack.append(Buffered(args, options))
        return self

    def immediate_execute_command(self, *args: Any, **options: Any) -> Any:
        """Run one command now: WATCH on its keys' node (pinning it); any other command on
        the watching connection if its keys live on the watched node (or it is keyless),
        else routed as by the client.

        Raises:
            CrossShardError: WATCH keys on another node than those already watched, or on
                several nodes (nothing sent).
            OwnerEjectedError: the watched keys' owner is ejected (nothing sent).
            redis.exceptions.WatchError: the connection failed while watching.
        """
        try:
            if self._describe(args).name == "watch":
                return self._watch(args, options)
            pin = self._pin
            if pin is None or not pin.pipe.watching:
                return self._sharded.execute_command(*args, **options)
            plan = self._plans([Buffered(args, options)], self._sharded._members)[0]
            if len(plan.parts) == 1 and plan.parts[0].node in (ANY_NODE, pin.node):
                answer = self._on_pin(
                    pin,
                    lambda: pin.pipe.immediate_execute_command(*args, **options),  # type: ignore[no-untyped-call]
                )
                return plan.merge([answer])
            return self._sharded.execute_command(*args, **options)
        finally:
            self._sharded._health.release()

    def evalsha(self, sha: Any, numkeys: int, *keys_and_args: Any) -> Any:
        """Buffer EVALSHA, as redis-py; called by a redis-py ``Script`` for ``sha``, the
        script joins :attr:`scripts`, which ``execute()`` loads first."""
        script = calling_script(sha)
        if script is not None:
            self.scripts.add(script)
        return self.execute_command("EVALSHA", sha, numkeys, *keys_and_args)

    def load_scripts(self) -> None:
        """Make every script of :attr:`scripts` exist on every node: SCRIPT EXISTS of
        their SHAs through the client, then SCRIPT LOAD of those missing somewhere (as
        redis-py's ``Pipeline.load_scripts``, setting each loaded script's ``sha``).

        Raises:
            redis.exceptions.ResponseError: a script does not compile (SCRIPT LOAD's).
            redis.exceptions.ConnectionError, TimeoutError: a node could not be reached.
        """
        scripts = list(self.scripts)
        sharded = self._sharded
        exists = sharded.execute_command("SCRIPT EXISTS", *[script.sha for script in scripts])
        for script in missing(scripts, exists):
            script.sha = sharded.execute_command("SCRIPT LOAD", script.script)

    def _load_scripts_first(self, stack: list[Buffered]) -> None:
        """Plan ``stack`` (a refusal resets the pipeline, nothing sent), then load the
        queued scripts; as redis-py, a failure of the loading keeps the buffer."""
        try:
            self._refuse_early(stack)
        except BaseException:
            self.reset()
            raise
        finally:
            self._sharded._health.release()  # the execution plans (and claims) again
        self.load_scripts()

    def _refuse_early(self, stack: list[Buffered]) -> None:
        """Plan ``stack`` once before scripts are loaded, so that a refusal comes before
        anything is sent (the plans are made again by the execution, which retries a
        removed node).

        Raises:
            CrossShardError, UnsupportedCommandError: as ``execute``.
        """
        members = self._sharded._members
        with suppress(NodeRemovedError):
            if self.transaction or self.explicit_transaction:
                pin = self._pin
                watched = pin.node if pin is not None and pin.pipe.watching else None
                refuse_cross_node_transaction(self._plans(stack, members), watched)
            else:
                self._plain(stack, members)

    def watch(self, *names: Any) -> Any:
        """Watch ``names`` on their node (they must share one; see
        ``immediate_execute_command``).

        Raises:
            redis.exceptions.RedisError: after ``multi()``.
        """
        refuse_watch_after_multi(self)
        return self.execute_command("WATCH", *names)

    def unwatch(self) -> Any:
        """Forget the watched keys (UNWATCH on their node); True when not watching."""
        return (self.watching and self.execute_command("UNWATCH")) or True

    def multi(self) -> None:
        """Start the transactional block after ``watch()``; ``execute()`` ends it.

        Raises:
            redis.exceptions.RedisError: nested, or after commands were buffered.
        """
        refuse_nested_multi(self)
        self.explicit_transaction = True

    def discard(self) -> None:
        """DISCARD, as redis-py: sent at once while watching, else buffered."""
        self.execute_command("DISCARD")

    def execute(self, raise_on_error: bool = True) -> list[Any]:
        """Send the buffered commands and return their answers in order; then reset.
        Queued Lua scripts (:attr:`scripts`) are loaded first (``load_scripts``).

        Raises:
            CrossShardError: a transaction whose commands (or watched keys) span nodes, or
                a command that cannot be split (nothing sent); during a migration, with
                ``raise_on_error``, a read whose keys stayed split between the topologies
                (annotated as a failed command; without it, in that command's place).
            UnsupportedCommandError: a command that cannot be sharded, or a blocking read
                during a migration (nothing sent).
            OwnerEjectedError: the transaction's node is ejected (nothing sent).
            redis.exceptions.WatchError: a watched key changed, or the watched node was
                removed or its keys moved (the transaction did not run).
            redis.exceptions.ResponseError: with ``raise_on_error``, the first failed
                command's, annotated as redis-py's (EXECABORT as redis-py).
            redis.exceptions.ConnectionError, TimeoutError: a node could not be reached.
            redis.exceptions.ResponseError: a queued script does not compile (nothing of
                the pipeline was sent; as redis-py, the buffer is kept).
        """
        stack = self.command_stack
        if not stack and not self.watching:
            return []
        if self.scripts:
            self._load_scripts_first(stack)
        try:
            if self.transaction or self.explicit_transaction:
                return self._execute_transaction(stack, raise_on_error)
            return self._execute_pipeline(stack, raise_on_error)
        finally:
            self.reset()
            self._sharded._health.release()  # probe claims no outcome resolved

    # ------------------------------------------------------------------ transactions

    def _describe(self, args: tuple[Any, ...]) -> Any:
        return self._sharded._command_table()[1].describe(args)

    def _plans(self, commands: list[Buffered], members: Members[redis.Redis]) -> list[Plan]:
        sharded = self._sharded
        parser, table = sharded._command_table()
        plans = []
        for args, _ in commands:
            command = table.describe(args)
            keys: list[Any] = []
            if needs_keys(command):
                keys = sharded._keys(parser, args, known_keys(command, args), members)
            plans.append(
                transaction_plan(
                    command, args, keys, members.placement, sharded._encoder_of(members), members
                )
            )
        return plans

    def _watch(self, args: tuple[Any, ...], options: dict[str, Any]) -> Any:
        sharded = self._sharded
        keys = list(args[1:])
        sharded._pull_ahead("WATCH", keys, sharded._members)  # a migration window's
        pin = self._pin
        if pin is not None and pin.pipe.watching:
            members = sharded._members
            owner = single_owner(members.placement, sharded._encoder_of(members), keys)
            refuse_other_watch(pin.node, owner)
        else:
            if pin is not None:
                self._unpin()
            pin = self._pin = self._pin_owner(keys)
        pin.keys.extend(keys)
        watching = pin
        return self._on_pin(
            watching,
            lambda: watching.pipe.immediate_execute_command(*args, **options),  # type: ignore[no-untyped-call]
        )

    def _pin_owner(self, keys: list[Any]) -> SyncPin:
        """Lease the node owning ``keys`` (a keyless WATCH: the first usable node)."""
        sharded = self._sharded
        for _ in range(REROUTE_ATTEMPTS):
            members = sharded._members
            node = single_owner(members.placement, sharded._encoder_of(members), keys)
            pin = self._pin_node(members, node or keyless_node(members, sharded._health))
            if pin is not None:
                return pin
        raise NodeRemovedError("the watched keys kept being routed to removed nodes")

    def _pin_node(self, members: Members[redis.Redis], node: str) -> SyncPin | None:
        """Lease ``node`` and open a redis-py transaction pipeline on it; None if the node
        has just been removed.

        Raises:
            OwnerEjectedError: the node is ejected (nothing leased or sent).
        """
        slot = members.slots.get(node)
        if slot is None or not slot.enter():
            return None
        if not self._sharded._health.usable(node):
            self._sharded._leave(slot)
            raise OwnerEjectedError(
                f"node {node!r} owns the transaction's keys but is ejected as unhealthy; a "
                "transaction runs only on its keys' owner: nothing was sent"
            )
        return Pin(node, slot, slot.client.pipeline(True, self.shard_hint))

    def _unpin(self) -> None:
        """UNWATCH if watching, release the connection, give the node's lease back."""
        pin, self._pin = self._pin, None
        if pin is not None:
            try:
                pin.pipe.reset()
            finally:
                self._sharded._leave(pin.slot)

    def _on_pin(self, pin: SyncPin, call: Callable[[], T]) -> T:
        """Run ``call`` on the pinned node's pipeline and record the node's health."""
        try:
            answer = call()
        except BaseException as exc:
            ok = answered(exc)
            if ok is not None:
                self._sharded._outcome(pin.node, pin.slot, ok)
            raise
        self._sharded._outcome(pin.node, pin.slot, True)
        return answer

    def _execute_transaction(self, stack: list[Buffered], raise_on_error: bool) -> list[Any]:
        sharded = self._sharded
        if self._pin is not None and not self._pin.pipe.watching:
            self._unpin()  # an UNWATCHed watch: its node no longer binds the transaction
        for _ in range(REROUTE_ATTEMPTS):
            members = sharded._members
            try:
                plans = self._plans(stack, members)
                keys = [key for plan in plans for key in plan.keys]
                sharded._pull_ahead("MULTI/EXEC", keys, members)  # a migration window's
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
            self._pin = pin = self._pin_node(members, node)
            if pin is not None:
                break
        else:
            raise NodeRemovedError(
                "the transaction kept being routed to nodes that were being removed; "
                "nothing was sent"
            )
        inner = pin.pipe
        for args, options in stack:
            inner.pipeline_execute_command(*args, **options)
        answers = self._on_pin(pin, lambda: inner.execute(raise_on_error))
        return merged_answers(plans, answers)

    # ------------------------------------------------------------------ plain pipelines

    def _execute_pipeline(self, commands: list[Buffered], raise_on_error: bool) -> list[Any]:
        stack = [command.args for command in commands]
        sharded = self._sharded
        if sharded._members.window is not None and writes(sharded._command_table()[1], commands):
            results = one_at_a_time(sharded.execute_command, commands)
        elif sharded.read_fallback is None:
            _, results = self._send_planned(partial(self._plain, commands))
        else:
            results = self._execute_migrating(commands)
        if raise_on_error:
            raise_first_error(results, stack, _annotate)
        return results

    def _execute_migrating(self, commands: list[Buffered]) -> list[Any]:
        """The answers of ``commands`` while ``read_fallback`` is set: batch by batch (see
        ``_pipeline_reads``), each read settled with the old topology."""
        results: list[Any] = []
        rest = commands
        while rest:
            batch, flat = self._send_planned(partial(self._batch, rest, rest is commands))
            answers, positions, rounds = batch.answers(flat)
            if rounds:
                place(answers, positions, self._sharded._settle(rounds))
            results.extend(answers)
            rest = rest[len(batch) :]
        return results

    def _plain(self, commands: list[Buffered], members: Members[redis.Redis]) -> Planned[None]:
        """``commands``' plans and options, as routed without ``read_fallback``.

        Raises:
            CrossShardError, UnsupportedCommandError, NodeRemovedError: as ``_plan``.
        """
        sharded = self._sharded
        _, table = sharded._command_table()
        others, owners = sharded._route_one_key_many(table, [c.args for c in commands], members)
        plans: list[Plan | None] = [None] * len(commands)
        for index in others:
            plans[index] = sharded._plan(commands[index].args, members)
        return None, Routed(plans, commands, owners)

    def _batch(
        self, commands: list[Buffered], first: bool, members: Members[redis.Redis]
    ) -> Planned[Batch]:
        """The next batch of ``commands`` (at least one), reads spliced in as their round-1
        plans (see ``_pipeline_reads``); the ``first`` batch plans the commands after it
        too, so that a refusal comes before anything is sent.

        Raises:
            UnsupportedCommandError: a blocking read (XREAD ... BLOCK), nothing sent.
            CrossShardError, UnsupportedCommandError: as without ``read_fallback``.
            NodeRemovedError: the node asked for movable keys left meanwhile.
        """
        sharded = self._sharded
        parser, table = sharded._command_table()
        encoder = sharded.get_encoder()
        batch = Batch()
        full = False
        for args, options in commands:
            if full and not first:
                break
            command = table.describe(args)
            keys = sharded._keys(parser, args, known_keys(command, args), members)
            encoded = [bytes(encoder.encode(key)) for key in keys]
            if keys and may_read(command) and sharded._reads_only(command, args, members):
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

    def _send_planned(
        self, planned: Callable[[Members[redis.Redis]], Planned[T]]
    ) -> tuple[T, list[Any]]:
        """Plan (``planned(members)``: what it made, plans and their options), lease the
        nodes, write one request per node before reading any reply (the client's
        ``_send_per_node``); what ``planned`` made and each plan's answer.

        Raises:
            NodeRemovedError: the plans kept being routed to nodes being removed.
            redis.exceptions.ConnectionError, TimeoutError: a node could not be reached.
        """
        return self._sharded._send_per_node(planned, "the pipeline")

    # ------------------------------------------------------------------ lifecycle

    def __len__(self) -> int:
        return len(self.command_stack)

    def __bool__(self) -> bool:
        """Always true, even when empty (as redis-py's pipelines)."""
        return True

    def reset(self) -> None:  # type: ignore[override]
        """Drop the buffered commands, end ``multi()``, UNWATCH the watched keys and give
        their node's connection back."""
        self.command_stack = []
        self.scripts = set()
        self.explicit_transaction = False
        self._unpin()

    def close(self) -> None:
        """Alias of :meth:`reset`, as on redis-py's pipelines."""
        self.reset()

    def __enter__(self) -> ShardedPipeline:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.reset()

    def __del__(self) -> None:
        with suppress(Exception):  # as redis-py: a pipeline dropped while watching unwatches
            self.reset()
