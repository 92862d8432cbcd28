"""How a sharded client routes one Redis command: a *plan* of per-node parts and a merge.

No I/O: this module reads the COMMAND table it is given and plans; the clients send.

Everything is read from the server's own COMMAND table, through redis-py's
``CommandsParser`` (key positions, flags) and its ``get_command_policies()`` (the request and
response policies Redis publishes for clusters). The few rules that are ours are listed here:

========================  ==================================================================
keys on one node          sent to that node as is
``multi_shard`` commands  MGET, MSET, DEL, UNLINK, EXISTS, TOUCH: split per node, run in
                          parallel, answers merged in the caller's order or combined by the
                          command's response policy (sum for DEL/EXISTS/...)
MSETNX                    atomic: only when all its keys share a node
computed reads            SUNION, SINTER, SDIFF, SINTERCARD, ZUNION, ZINTER, ZDIFF,
                          ZINTERCARD, LCS: each key's share read, the answer computed on the
                          client as one server would (``_cross_node``); their STOREs refused
SORT/SORT_RO patterns     BY/GET patterns' keys routed with the sorted key (``_sort``)
other multi-key commands  refused with CrossShardError naming the nodes, before sending
EVAL/EVALSHA/FCALL (_RO)  keys taken from ``numkeys``; keyless scripts go to the default node
keyless commands          every node (see ``_server_wide``), answers combined into one
                          server's (``_answers``): DBSIZE, SLOWLOG LEN sum; PING, FLUSHALL,
                          CONFIG SET, ACL SETUSER, SCRIPT LOAD, SAVE ... succeed when all do
                          (a failure names its node; the others keep the change); SCRIPT
                          EXISTS ands; KEYS, CLIENT LIST concatenate; RANDOMKEY any node's;
                          INFO, CONFIG GET, MEMORY STATS, FUNCTION STATS field by field
                          (by the tables of ``_answers``: counters summed, flags the
                          largest, ratios recomputed, equal values kept, else
                          ``{node: value}``);
                          SLOWLOG GET, ACL LOG the newest n of all nodes; LATENCY LATEST /
                          HISTORY merged by time; DOCTOR-style reports under node headings;
                          ACL LIST/GETUSER, FUNCTION LIST, ROLE ... the answer if all nodes
                          agree, else ``{node: answer}``; SCRIPT KILL, CLIENT KILL succeed
                          when one node does
node-independent keyless  the default node (the first by name): ECHO, TIME, COMMAND ...,
                          ACL CAT/WHOAMI, CLIENT ID/INFO/GETNAME, ``... HELP``
refused keyless           REPLICAOF, FAILOVER, DEBUG, CLIENT UNBLOCK, CLIENT KILL ID,
                          CLIENT TRACKING REDIRECT ...:
                          UnsupportedCommandError before sending
SCAN                      through ``scan()`` / ``scan_iter()``, which walk every node
connection state          MULTI, EXEC, WATCH, SELECT, AUTH, QUIT, RESET, SUBSCRIBE, ...:
                          UnsupportedCommandError saying what to use instead
                          (``CONNECTION_HINTS``: ``pipeline(transaction=True)``, ``pubsub()``,
                          the URL's database number, ``password=``, ``close()``, ...)
channels                  PUBLISH/SPUBLISH by channel, PUBSUB introspection on every node,
                          merged: see ``_channels``
========================  ==================================================================
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis
from redis._parsers.commands import CommandPolicies, RequestPolicy, ResponsePolicy

from ._answers import merger, settled
from ._channels import PUBSUB_MERGES, channel_keys
from ._errors import CrossShardError, UnsupportedCommandError
from ._owners import Grouping, Owners
from ._server_wide import PUBSUB, Answer, Route, per_node_id, rule_for, tip_answer
from ._sort import SORTS

__all__ = [
    "CONNECTION_ERRORS",
    "CONNECTION_HINTS",
    "CONNECTION_STATE",
    "SCHEMES",
    "SCRIPTING",
    "Command",
    "CommandTable",
    "Compute",
    "Part",
    "Plan",
    "first_answer",
    "known_keys",
    "parser_args",
    "plan_command",
    "script_keys",
]

CONNECTION_ERRORS = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)
"""Errors that count against a node's health (the asyncio client raises the same classes)."""
SCHEMES = ("redis://", "rediss://", "unix://")

SCRIPTING = frozenset({"eval", "evalsha", "eval_ro", "evalsha_ro", "fcall", "fcall_ro"})
ATOMIC_MULTI_KEY = frozenset({"msetnx"})
_TRANSACTION = (
    "use pipeline(transaction=True) with keys sharing a {hash tag}, or client_for(key) "
    "for direct access to one node"
)
_SUBSCRIBE = "use pubsub(), which subscribes each channel on its owner"
_OPTIONS = "it would change one pooled connection of one node"
CONNECTION_HINTS: dict[str, str] = {
    **dict.fromkeys(("multi", "exec", "discard", "watch", "unwatch"), _TRANSACTION),
    **dict.fromkeys(
        ("subscribe", "psubscribe", "ssubscribe", "unsubscribe", "punsubscribe", "sunsubscribe"),
        _SUBSCRIBE,
    ),
    "select": f"{_OPTIONS}; put the database number in every node's URL "
    "(redis://host:6379/2) or pass db= to the constructor",
    "swapdb": "it swaps databases on one node only; run it on each node with clients[name]",
    "auth": f"{_OPTIONS}; pass username= and password= to the constructor (or put them in "
    "the node URLs)",
    "hello": f"{_OPTIONS}; pass protocol=, username=, password= or client_name= to the constructor",
    "quit": "use close() (aclose() on the asyncio client), which closes every node's connections",
    "reset": "use close() (aclose() on the asyncio client) and a new client; a sharded "
    "client's connections hold no state to reset",
    "monitor": "monitor each node with clients[name].monitor()",
    "client reply": "use client_for(key) for direct access to one node's connection",
    "scan": "use scan() or scan_iter(), which walk every node",
}
"""Commands that hold or change one connection's state, refused before anything is sent,
each with what to use instead."""
CONNECTION_STATE = frozenset(CONNECTION_HINTS)


@dataclass(frozen=True)
class Part:
    """One node's share of a command."""

    node: str
    args: tuple[Any, ...]


@dataclass
class Plan:
    """Where a command goes and how its answers combine."""

    parts: list[Part]
    merge: Callable[[list[Any]], Any]
    command: str
    readonly: bool = False
    keys: list[Any] = field(default_factory=list)
    any_success: bool = False
    """The command succeeds when one part does (SCRIPT KILL, CLIENT KILL): the other
    parts' errors are dropped (see ``_answers.settled``)."""
    respond: Callable[[Any, Mapping[str, Any]], Any] | None = None
    """Shapes the merged answer with the caller's redis-py options (a computed answer
    through the response callback its command has in redis-py); None: the merge is the
    answer."""

    def finish(self, answers: list[Any], options: Mapping[str, Any]) -> Any:
        """The command's answer from its parts' ``answers``, given the caller's options."""
        merged = self.merge(answers)
        return merged if self.respond is None else self.respond(merged, options)

    def settle(self, outcomes: list[Any], options: Mapping[str, Any]) -> Any:
        """The command's answer from its parts' ``outcomes`` (a ``Failure`` for a part that
        raised; see ``_answers.settled``), given the caller's options.

        Raises:
            the first failed part's error, as ``_answers.settled`` says.
        """
        nodes = [part.node for part in self.parts]
        answers = settled(self.command, nodes, outcomes, self.any_success, self.readonly)
        return self.finish(answers, options)


Compute = Callable[[str, tuple[Any, ...], list[Any], list[str]], Plan | None]
"""Plans a command whose keys span nodes and whose answer is computed on the client:
(name, args, keys, owners) -> a plan, or None when it cannot be."""


@dataclass(frozen=True)
class Command:
    """What the COMMAND table says about one command (or subcommand)."""

    name: str
    flags: frozenset[str]
    first_key: int
    last_key: int
    step: int
    request: RequestPolicy
    response: ResponsePolicy
    fixed_keys: bool = False
    """Keys sit at fixed positions (first, last, step): no need to ask redis-py or the server."""
    one_key: int = 0
    """The position of the command's only key, when it always has exactly one (at a fixed
    position: ``args[one_key]``, present when ``len(args) > one_key``) and such an
    invocation is planned as is to the key's owner, its answer that node's (no
    connection hint, no pub/sub merge, no SORT pattern); 0 otherwise. Lets a pipeline
    route such commands in one batch without planning each (``_routing.Routed``)."""

    def keys_of(self, args: Sequence[Any]) -> list[Any] | None:
        """The keys of ``args`` when their positions are fixed, else None (ask the parser)."""
        if not self.fixed_keys:
            return None
        last = self.last_key if self.last_key >= 0 else len(args) + self.last_key
        return list(args[self.first_key : last + 1 : self.step])


class CommandTable:
    """The server's commands, resolved once from ``CommandsParser`` data.

    A subcommand (OBJECT ENCODING, MEMORY USAGE, XINFO STREAM, CONFIG GET, ...) is described
    by its own entry in its container's ``subcommands`` (its flags and key positions), not
    by its container's (whose flags are empty on Redis 7); its keys are still asked of
    redis-py's parser (``fixed_keys`` False), as redis-py sends some subcommands as one
    argument (``"MEMORY USAGE"``) and others as two.

    Args:
        commands: ``CommandsParser.commands`` (name -> COMMAND INFO as parsed by redis-py).
        policies: ``CommandsParser.get_command_policies()``.
    """

    def __init__(self, commands: dict[str, Any], policies: dict[str, dict[str, Any]]) -> None:
        self._commands = commands
        self._policies: dict[str, CommandPolicies] = {}
        for module, entries in policies.items():
            for name, policy in entries.items():
                full = name if module == "core" else f"{module}.{name}"
                self._policies[full.lower()] = policy
        self._subcommands: dict[str, Sequence[Any]] = {}
        for info in commands.values():
            for entry in info.get("subcommands") or ():
                self._subcommands[_text(entry[0]).lower().replace("|", " ")] = entry
        self._cache: dict[str, Command] = {}
        self._by_first: dict[Any, Command] = {}

    def describe(self, args: Sequence[Any]) -> Command:
        """The command (or ``"name subcommand"``) that ``args`` invoke. O(1) once cached."""
        first = args[0]
        known = self._by_first.get(first) if first.__class__ in (str, bytes) else None
        if known is not None:
            return known
        words = _text(first).lower().split() or [""]
        name = words[0]
        if len(words) > 1:
            name = f"{name} {words[1]}"
        elif len(args) > 1:
            sub = f"{name} {_text(args[1]).lower()}"
            if sub in self._subcommands or sub in self._policies:
                name = sub
        cached = self._cache.get(name)
        if cached is None:
            cached = self._cache[name] = self._build(name)
        info = self._commands.get(words[0], {})
        if (
            len(words) == 1
            and not info.get("subcommands")
            and first.__class__ in (str, bytes)
            and len(self._by_first) < 4096
        ):
            self._by_first[first] = cached  # no subcommand can change what args[0] means
        return cached

    def _build(self, name: str) -> Command:
        head = name.split(" ", 1)[0]
        info = self._commands.get(head, {})
        entry = self._subcommands.get(name)
        if entry is not None:  # a subcommand's own flags and key positions, not its container's
            info = _subcommand_info(entry)
        policy = self._policies.get(name) or self._policies.get(head)
        request = policy.request_policy if policy else RequestPolicy.DEFAULT_KEYLESS
        response = policy.response_policy if policy else ResponsePolicy.DEFAULT_KEYLESS
        flags = frozenset(_text(flag) for flag in info.get("flags", ()))
        first, step = int(info.get("first_key_pos", 0)), int(info.get("step_count", 0))
        fixed = (
            " " not in name
            and first > 0
            and step > 0
            and not {"movablekeys", "pubsub"} & flags
            and name not in SCRIPTING
            and name not in CONNECTION_STATE
        )
        last = int(info.get("last_key_pos", 0))
        one_key = first if fixed and last == first and name not in SORTS else 0
        return Command(
            name=name,
            flags=flags,
            first_key=first,
            last_key=last,
            step=step,
            request=request,
            response=response,
            fixed_keys=fixed,
            one_key=one_key if name not in PUBSUB_MERGES else 0,
        )


def _subcommand_info(entry: Sequence[Any]) -> dict[str, Any]:
    """A subcommand's entry in COMMAND's reply (``[name, arity, flags, first_key_pos,
    last_key_pos, step_count, ...]``, as redis-py keeps it under its container's
    ``subcommands``) in the shape of ``CommandsParser.commands``' values. O(flags)."""
    return {
        "flags": [_text(flag) for flag in entry[2]],
        "first_key_pos": int(entry[3]),
        "last_key_pos": int(entry[4]),
        "step_count": int(entry[5]),
    }


def known_keys(command: Command, args: Sequence[Any]) -> list[Any] | None:
    """The keys of ``args`` known without asking a server: at the command's fixed positions,
    a script's ``numkeys`` arguments, or a channel command's channel (see ``_channels``);
    None when they must be asked (COMMAND GETKEYS for movable keys). O(keys)."""
    keys = command.keys_of(args)
    if keys is None and command.name in SCRIPTING:
        keys = script_keys(args)
    if keys is None:
        keys = channel_keys(command.name, args)
    return keys


def script_keys(args: Sequence[Any]) -> list[Any]:
    """Keys of EVAL/EVALSHA/FCALL-style commands: ``numkeys`` arguments after it."""
    try:
        count = int(args[2])
    except (IndexError, TypeError, ValueError):
        return []
    return list(args[3 : 3 + count])


def plan_command(
    command: Command,
    args: tuple[Any, ...],
    keys: list[Any],
    owners: Sequence[str] | Owners,
    all_nodes: Sequence[str],
    default_node: str,
    compute: Compute | None = None,
) -> Plan:
    """The plan for ``args``, given its ``keys`` and their ``owners`` (same order: a node
    name per key, or an :class:`~._owners.Owners`, which a split groups with numpy).

    ``compute`` plans a read whose keys span nodes and whose answer the client computes
    (``_cross_node.cross_node_plan``: SUNION, ZINTER, LCS, ...), or returns None.

    Raises:
        UnsupportedCommandError: a command that holds connection state, raw SCAN, or a
            keyless command refused by ``_server_wide`` (REPLICAOF, DEBUG, CLIENT KILL ID ...).
        CrossShardError: keys on several nodes, and the command cannot be split.
    """
    name = command.name
    hint = CONNECTION_HINTS.get(name) or CONNECTION_HINTS.get(name.split(" ", 1)[0])
    if hint is not None:
        raise UnsupportedCommandError(f"{name.upper()} cannot be sharded: {hint}")
    if name in PUBSUB_MERGES:
        parts = [Part(node, args) for node in all_nodes]
        return Plan(parts, PUBSUB_MERGES[name], name, "readonly" in command.flags)
    readonly = "readonly" in command.flags
    if keys:
        if isinstance(owners, Owners):
            distinct = owners.nodes()
        else:
            distinct = list(owners) if len(owners) == 1 else sorted(set(owners))
        if len(distinct) == 1:
            return Plan([Part(distinct[0], args)], first_answer, name, readonly, keys)
        if command.request is RequestPolicy.MULTI_SHARD and name not in ATOMIC_MULTI_KEY:
            grouping = (
                owners.grouping() if isinstance(owners, Owners) else Grouping.of_names(owners)
            )
            return _split(command, args, grouping, readonly, keys)
        listed = owners.tolist() if isinstance(owners, Owners) else list(owners)
        computed = compute(name, args, keys, listed) if compute is not None else None
        if computed is not None:
            return computed
        shown = ", ".join(
            f"{_text(k)!r} -> {o}" for k, o in list(zip(keys, listed, strict=True))[:6]
        )
        raise CrossShardError(
            f"{name.upper()} touches keys on nodes {', '.join(distinct)} ({shown}) and "
            "cannot be split; nothing was sent. Give the keys a common {hash tag} to "
            "keep them on one node.",
            tuple(distinct),
        )
    if name in SCRIPTING or command.first_key > 0 or "movablekeys" in command.flags:
        # a keyed command without keys (a keyless script, a syntax error): as one server
        return Plan([Part(default_node, args)], first_answer, name, readonly)
    if "pubsub" in command.flags or name.split(" ", 1)[0] in PUBSUB:
        return Plan([Part(default_node, args)], first_answer, name, readonly)
    return _plan_keyless(command, args, all_nodes, default_node, readonly)


def _plan_keyless(
    command: Command,
    args: tuple[Any, ...],
    all_nodes: Sequence[str],
    default_node: str,
    readonly: bool,
) -> Plan:
    """A keyless command's plan from its rule (see ``_server_wide``).

    Raises:
        UnsupportedCommandError: a refused command (REPLICAOF, DEBUG, CLIENT UNBLOCK,
            CLIENT KILL ID, CLIENT TRACKING REDIRECT ...), before anything is sent.
    """
    name = command.name
    rule = rule_for(name, command.request, command.response)
    why = rule.why if rule.route is Route.REFUSE else per_node_id(name, args)
    if why is not None:
        raise UnsupportedCommandError(f"{name.upper()} cannot be sharded: {why}")
    if rule.route is Route.ONE:
        return Plan([Part(default_node, args)], first_answer, name, readonly)
    parts = [Part(node, args) for node in all_nodes]
    merge = merger(rule.answer, all_nodes, args)
    return Plan(parts, merge, name, readonly, any_success=rule.answer is Answer.ANY)


def _split(
    command: Command, args: tuple[Any, ...], grouping: Grouping, readonly: bool, keys: list[Any]
) -> Plan:
    """Split a multi_shard command into one part per node (nodes by name), each with its
    keys' arguments in the caller's order (``_owners.Grouping``: no per-key Python loop).

    Raises:
        ValueError: the arguments are not whole keys (an MSET key without its value).
    """
    first, step = command.first_key, max(1, command.step)
    end = first + len(grouping.order) * step
    prefix, suffix = args[:first], args[end:]
    taken = grouping.take(args[first:end], step)
    nodes = grouping.nodes
    parts = []
    start = 0
    for node, size in zip(nodes, grouping.sizes, strict=True):
        stop = start + size * step
        parts.append(Part(node, (*prefix, *taken[start:stop], *suffix)))
        start = stop
    if command.response is ResponsePolicy.DEFAULT_KEYED:
        return Plan(parts, grouping.restore, command.name, readonly, keys)
    merge_by_tip = merger(tip_answer(command.response, Answer.RANDOM), nodes, args)
    return Plan(parts, merge_by_tip, command.name, readonly, keys)


def first_answer(answers: list[Any]) -> Any:
    """The merge of a one-part plan: that part's answer."""
    return answers[0]


def _text(value: Any) -> str:
    """An argument as text for routing and messages (never raises)."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8", "replace")
    return str(value)


def parser_args(args: tuple[Any, ...]) -> tuple[Any, ...]:
    """``args`` as redis-py's ``get_keys`` can read them.

    It calls ``args[1].lower()`` for any keyless command that has subcommands, which on
    Redis 7 is every command (``SELECT 1``, ``WAIT 1 0``, ``SCAN 0`` raise AttributeError
    there): a second argument that is neither str nor bytes is passed as text (a memoryview
    as bytes). Routing is unchanged: the encoder turns ``1`` and ``"1"`` into the same bytes.
    A bytes-like command name (``b"ZUNIONSTORE"``) is passed as text: redis-py looks
    commands up by str name only.
    """
    first = args[0] if args else None
    if isinstance(first, (bytes, bytearray, memoryview)):
        args = (_text(first), *args[1:])
    if len(args) < 2 or isinstance(args[1], (str, bytes)):
        return args
    second = bytes(args[1]) if isinstance(args[1], memoryview) else str(args[1])
    return (args[0], second, *args[2:])
