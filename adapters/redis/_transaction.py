"""Transactions of the sharded pipelines: where MULTI/EXEC and WATCH run; no I/O (what
``ShardedPipeline`` and ``AsyncShardedPipeline`` share).

A transaction (``pipeline(transaction=True)``, the default as in redis-py, or ``multi()``
after ``watch()``) runs on exactly one node, the *owner* of its keys, through a redis-py
pipeline on that node's client: MULTI/EXEC, EXECABORT, ``WatchError``, response callbacks
and redis-py's "Command # N (...) of pipeline caused error" messages are redis-py's own,
and N is the command's index in the user's pipeline (every command is sent as is).

Rules (ours, on top of the COMMAND table's routing in ``_commands``):

==========================  ===============================================================
keys of the transaction     placed by the placement alone: health never moves a transaction
                            to a fallback node; an ejected owner refuses it
                            (:class:`OwnerEjectedError`, nothing sent)
watched keys                must share one node with each other and with the transaction's
                            keys (else ``CrossShardError`` naming the nodes, nothing sent)
keyless, default-node       (ECHO, TIME, keyless scripts, ...) the transaction's node
PING                        the transaction's node (fans out outside transactions; any node
                            answers it alike)
fan-out keyless             (DBSIZE, KEYS, FLUSHDB, INFO, ...) need every node: refused with
                            CrossShardError unless the client has a single node
MULTI EXEC DISCARD          sent as is to the transaction's node, which answers them as one
WATCH UNWATCH               server would (errors inside MULTI, ``DISCARD without MULTI``)
only keyless commands       the first usable node by name
watched node removed,       the transaction is not run: ``WatchError`` (the recipe retries,
watched keys moved          watching the keys at their new owner)
==========================  ===============================================================
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, NamedTuple, Protocol, TypeVar

import redis

from hashring import HealthTracker, Placement

from ._commands import CONNECTION_ERRORS, Command, Part, Plan, first_answer, plan_command
from ._errors import CrossShardError
from ._leases import Members, Slot
from ._routing import ANY_NODE, route_owners

__all__ = [
    "ANYWHERE",
    "PLACEMENT_ONLY",
    "TRANSACTION_CONTROL",
    "Buffered",
    "OwnerEjectedError",
    "Pin",
    "answered",
    "keyless_node",
    "lost_watch",
    "merged_answers",
    "needs_keys",
    "refuse_nested_multi",
    "refuse_other_watch",
    "refuse_watch_after_multi",
    "single_owner",
    "transaction_plan",
]

C = TypeVar("C")
P = TypeVar("P")

TRANSACTION_CONTROL = frozenset({"multi", "exec", "discard", "watch", "unwatch"})
"""Sent as is to the transaction's node (they hold that connection's transaction state)."""
ANYWHERE = frozenset({"ping"})
"""Fan-out commands outside transactions whose answer is the same from any node."""

PLACEMENT_ONLY = HealthTracker(enabled=False)  # owners as placed, never a fallback


class OwnerEjectedError(redis.exceptions.ConnectionError):
    """The node that owns a transaction's keys is ejected by health tracking: the
    transaction runs only on its owner, never on a fallback node; nothing was sent."""


class Buffered(NamedTuple):
    """One command buffered by a pipeline (``(args, options)``, as redis-py's stack)."""

    args: tuple[Any, ...]
    options: dict[str, Any]


class _Pipeline(Protocol):
    """What redis-py's checks of ``multi()`` and ``watch()`` read of a pipeline."""

    explicit_transaction: bool
    command_stack: list[Buffered]


@dataclass
class Pin(Generic[C, P]):
    """A transaction's node: its leased slot and the redis-py pipeline (one connection)
    that WATCHes and runs MULTI/EXEC there."""

    node: str
    slot: Slot[C]
    pipe: P
    keys: list[Any] = field(default_factory=list)
    """The keys watched on it."""


def needs_keys(command: Command) -> bool:
    """Whether ``command``'s keys decide where it runs in a transaction (not for the
    transaction-control commands and PING, which run on the transaction's node)."""
    return command.name not in TRANSACTION_CONTROL and command.name not in ANYWHERE


def transaction_plan(
    command: Command,
    args: tuple[Any, ...],
    keys: list[Any],
    placement: Placement,
    encoder: Any,
    members: Members[Any],
) -> Plan:
    """The plan of one command in a transaction: its keys' owners as placed (no health
    fallback), a keyless default-node command (and the rules above) on :data:`ANY_NODE`.
    O(keys) lookups.

    Raises:
        UnsupportedCommandError: a connection-state command other than transaction control.
        CrossShardError: keys on several nodes for a command that cannot be split.
        InvalidKeyError, KeyEncodingError: a key the placement refuses.
    """
    if not needs_keys(command):
        return Plan([Part(ANY_NODE, args)], first_answer, command.name)
    owners = route_owners(placement, PLACEMENT_ONLY, encoder, keys) if keys else []
    return plan_command(command, args, keys, owners, members.names, ANY_NODE)


def single_owner(placement: Placement, encoder: Any, keys: Sequence[Any]) -> str | None:
    """The node that owns every one of ``keys`` as placed (None for no keys). O(keys).

    Raises:
        CrossShardError: the keys live on several nodes (nothing was sent).
    """
    if not keys:
        return None
    owners = route_owners(placement, PLACEMENT_ONLY, encoder, list(keys))
    nodes = sorted(set(owners))
    if len(nodes) > 1:
        shown = ", ".join(f"{k!r} -> {o}" for k, o in list(zip(keys, owners, strict=True))[:6])
        raise CrossShardError(
            f"WATCH touches keys on nodes {', '.join(nodes)} ({shown}); nothing was sent. "
            "Watched keys and the transaction's keys must share one node: give them a "
            "common {hash tag}.",
            tuple(nodes),
        )
    return nodes[0]


def refuse_other_watch(watched: str, node: str | None) -> None:
    """Raises:
    CrossShardError: keys of another ``node`` than the ``watched`` one (nothing sent).
    """
    if node is not None and node != watched:
        raise CrossShardError(
            f"WATCH of keys on node {node} while watching keys on node {watched}; nothing "
            "was sent. Watched keys and the transaction's keys must share one node: give "
            "them a common {hash tag}.",
            tuple(sorted((node, watched))),
        )


def keyless_node(members: Members[Any], health: HealthTracker) -> str:
    """The node of a transaction with no keys: the first usable one by name, else the
    first (claiming a recovering node's probe, as the transaction is sent there)."""
    return health.first_usable(members.names) or members.first


def lost_watch(pin: Pin[Any, Any], placement: Placement, encoder: Any) -> str | None:
    """Why the watch on ``pin`` no longer guards its keys' owner (its node was removed, or
    the keys moved to another node), or None while it does. O(watched keys)."""
    if pin.slot.retired:
        return (
            f"node {pin.node!r}, which holds the watched keys, was removed; the transaction "
            "was not run. Watch the keys again (at their new owner)"
        )
    try:
        owner = single_owner(placement, encoder, pin.keys)
    except CrossShardError:
        owner = "several nodes"
    if owner is None or owner == pin.node:
        return None
    shown = repr(owner) if owner in placement.nodes else owner
    return (
        f"the watched keys moved from node {pin.node!r} to {shown}; the transaction was not "
        "run. Watch the keys again (at their new owner)"
    )


def answered(exc: BaseException) -> bool | None:
    """What an error of a command on a node says of its health: False for a connection
    failure (a ``WatchError`` redis-py raised for one included), True when the node
    answered (an error reply, a changed watched key), None when it says nothing (an error
    raised before sending, a cancellation, ...)."""
    if isinstance(exc, CONNECTION_ERRORS):
        return False
    if isinstance(exc, redis.exceptions.WatchError):
        return not isinstance(exc.__context__, CONNECTION_ERRORS)
    return True if isinstance(exc, redis.exceptions.ResponseError) else None


def refuse_nested_multi(pipe: _Pipeline) -> None:
    """redis-py's checks of ``multi()``.

    Raises:
        redis.exceptions.RedisError: MULTI already issued, or commands buffered before it.
    """
    if pipe.explicit_transaction:
        raise redis.exceptions.RedisError("Cannot issue nested calls to MULTI")
    if pipe.command_stack:
        raise redis.exceptions.RedisError(
            "Commands without an initial WATCH have already been issued"
        )


def refuse_watch_after_multi(pipe: _Pipeline) -> None:
    """Raises:
    redis.exceptions.RedisError: ``watch()`` after ``multi()``, as redis-py.
    """
    if pipe.explicit_transaction:
        raise redis.exceptions.RedisError("Cannot issue a WATCH after a MULTI")


def merged_answers(plans: list[Plan], answers: list[Any]) -> list[Any]:
    """A transaction's answers, each through its plan's merge (errors stay in place)."""
    return [
        answer if isinstance(answer, Exception) else plan.merge([answer])
        for plan, answer in zip(plans, answers, strict=True)
    ]
