"""Where a keyless command goes: every node, one node, or nowhere (refused); and how its
answers combine. No I/O.

A keyless command reads or changes a server's own state (users, configuration, scripts,
logs, statistics), and a sharded client is one server made of several: so **every keyless
command goes to every node**, its answers combined into the answer one server holding all
the keys would give (see ``_answers``). The COMMAND table's tips say how for the commands
that have them (``request_policy``/``response_policy``); the table :data:`RULES` below is
ours, and says so wherever it adds to or overrides them:

* ``ONE``: answers that do not depend on the node (ECHO, TIME, COMMAND ..., ACL CAT,
  ``... HELP``) or that describe this connection (CLIENT ID, CLIENT INFO, ACL WHOAMI): the
  default node (the first by name) answers;
* ``REFUSE``: commands whose effect on a set of shards is not the effect on one server
  (REPLICAOF on every node would make them all replicas of one server), or that name a
  per-node client id (CLIENT UNBLOCK; CLIENT KILL ID and CLIENT TRACKING REDIRECT by their
  options, :data:`PER_NODE_IDS`): ``UnsupportedCommandError`` before anything is sent;
* ``EVERY`` with an :class:`Answer`: sent to every node and combined.

A keyless command in neither the table nor the tips (a module's, a newer server's) goes to
every node with :attr:`Answer.AGREED`: the answer when every node gives the same one, else
``{node: answer}``; so no keyless command falls through to one node unless listed here.

Left as they were, and not decided here: pub/sub (PUBLISH, PUBSUB ..., flag ``pubsub``:
the default node) and connection state (``CONNECTION_STATE`` in ``_commands``: refused).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

from redis._parsers.commands import RequestPolicy, ResponsePolicy

__all__ = [
    "PER_NODE_IDS",
    "PUBSUB",
    "RULES",
    "Answer",
    "Route",
    "Rule",
    "per_node_id",
    "rule_for",
    "tip_answer",
]

PUBSUB = frozenset({"publish", "spublish", "pubsub"})
"""Pub/sub commands routed elsewhere (the default node), whatever their flags say."""


class Route(Enum):
    """Where a keyless command is sent."""

    ONE = "the default node"
    EVERY = "every node"
    REFUSE = "refused"


class Answer(Enum):
    """How the answers of a command sent to every node combine (see ``_answers``)."""

    FIRST = "all succeeded: any node's answer (they agree: OK, True, a script's SHA)"
    ANY = "succeeds when one node does (the others' errors dropped): sum of ints, else first"
    AGREED = "the answer all nodes give (lists in any order), else {node: answer}"
    SUM = "sum (element-wise for lists)"
    MIN = "minimum"
    MAX = "maximum"
    AND = "logical and (element-wise for lists)"
    OR = "logical or (element-wise for lists)"
    CONCAT = "lists concatenated in node order"
    RANDOM = "any node's non-empty answer, at random"
    FIELDS = "field by field as _answers' tables say (INFO_SUMMED ...), else {node: value}"
    SLOWLOG = "the newest n entries of all nodes, newest first, ids made unique"
    ACL_LOG = "the newest n entries of all nodes, newest first"
    LATENCY_LATEST = "per event: the latest spike of any node, the largest maximum"
    LATENCY_HISTORY = "all nodes' samples by time, the largest per second, the newest 160"
    REPORT = "each node's text under a 'node <name>:' heading, in node order"


@dataclass(frozen=True)
class Rule:
    """The routing of one keyless command: where, how its answers combine, and why."""

    route: Route
    answer: Answer = Answer.FIRST
    why: str = ""


def _one(why: str) -> Rule:
    return Rule(Route.ONE, Answer.FIRST, why)


def _every(answer: Answer, why: str = "server-wide state: every node") -> Rule:
    return Rule(Route.EVERY, answer, why)


def _refuse(why: str) -> Rule:
    return Rule(Route.REFUSE, Answer.FIRST, why)


_SAME = "the same answer from any node"
_CONNECTION = "describes this connection: the default node's"
_WRITE = "changes server-wide state: every node, success when all succeed"
_REPLICATION = (
    "replication is configured per node: use clients[node] (a ShardedRedis over the "
    "replicas is a separate client)"
)

RULES: dict[str, Rule] = {
    # -- node-independent answers: the default node
    "echo": _one(_SAME),
    "time": _one("the default node's clock (nodes' clocks are assumed in sync)"),
    "lolwut": _one(_SAME),
    "command": _one(_SAME + " (every node runs the same server)"),
    "pfselftest": _one(_SAME),
    "acl cat": _one(_SAME),
    "acl genpass": _one("random bytes from the default node"),
    "acl whoami": _one(_CONNECTION + " (every node is authenticated alike)"),
    "cluster": _one("cluster mode only: a standalone node refuses it as one server would"),
    "asking": _one("cluster mode only"),
    "readonly": _one("cluster mode only"),
    "readwrite": _one("cluster mode only"),
    "client id": _one(_CONNECTION),
    "client info": _one(_CONNECTION),
    "client getname": _one(_CONNECTION + " (CLIENT SETNAME names one on every node)"),
    "client getredir": _one(_CONNECTION),
    "client trackinginfo": _one(_CONNECTION),
    # -- refused: the effect on several shards is not one server's
    "replicaof": _refuse(_REPLICATION),
    "slaveof": _refuse(_REPLICATION),
    "failover": _refuse(_REPLICATION),
    "sync": _refuse(_REPLICATION),
    "psync": _refuse(_REPLICATION),
    "replconf": _refuse(_REPLICATION),
    "debug": _refuse("DEBUG is per node (DEBUG OBJECT's key is not routed): use clients[node]"),
    "script debug": _refuse("a debugging session is connection state: use clients[node]"),
    "client unblock": _refuse(
        "client ids are per node (the same id names other clients on other nodes): use "
        "clients[node].client_unblock(...)"
    ),
    # -- every node, one answer
    "keys": _every(Answer.CONCAT, "keys live on every node: concatenated"),
    "randomkey": _every(Answer.RANDOM, "any node's random key"),
    "lastsave": _every(Answer.MIN, "all keys are saved since the oldest node's last save"),
    "info": _every(Answer.FIELDS, "INFO: see INFO_SUMMED and the tables after it in _answers"),
    "config get": _every(Answer.FIELDS, "CONFIG GET: a parameter's value where nodes agree"),
    "config set": _every(Answer.FIRST, _WRITE),
    "config resetstat": _every(Answer.FIRST, _WRITE),
    "config rewrite": _every(Answer.FIRST, _WRITE),
    "memory stats": _every(Answer.FIELDS, "MEMORY STATS: byte counts summed"),
    "memory doctor": _every(Answer.REPORT, "a text report per node"),
    "memory malloc-stats": _every(Answer.REPORT, "a text report per node"),
    "memory purge": _every(Answer.FIRST, _WRITE),
    "latency latest": _every(Answer.LATENCY_LATEST, "tip 'special': combined per event"),
    "latency history": _every(Answer.LATENCY_HISTORY, "tip 'special': merged by time"),
    "latency graph": _every(Answer.REPORT, "a text report per node"),
    "latency doctor": _every(Answer.REPORT, "a text report per node"),
    "latency histogram": _every(Answer.AGREED, "per-command histograms: per node"),
    "latency reset": _every(Answer.AGREED, "counts event series reset, per node if they differ"),
    "slowlog get": _every(Answer.SLOWLOG, "tip default_keyless overridden: one merged log"),
    "slowlog len": _every(Answer.SUM, "the entries of every node's log"),
    "slowlog reset": _every(Answer.FIRST, _WRITE),
    "function stats": _every(Answer.FIELDS, "tip 'special': field by field"),
    "function list": _every(Answer.AGREED, "libraries are loaded on every node"),
    "function dump": _every(Answer.AGREED, "libraries are loaded on every node"),
    "acl setuser": _every(Answer.FIRST, _WRITE),
    "acl deluser": _every(Answer.AGREED, "counts users deleted, per node if they differ"),
    "acl load": _every(Answer.FIRST, _WRITE),
    "acl save": _every(Answer.FIRST, _WRITE),
    "acl list": _every(Answer.AGREED, "users are set on every node"),
    "acl users": _every(Answer.AGREED, "users are set on every node"),
    "acl getuser": _every(Answer.AGREED, "users are set on every node"),
    "acl dryrun": _every(Answer.AGREED, "users are set on every node"),
    "acl log": _every(Answer.ACL_LOG, "one merged log (ACL LOG RESET: every node)"),
    "client list": _every(Answer.CONCAT, "every node's clients (ids are per node)"),
    "client kill": _every(Answer.ANY, "the client is on one node; filters count on all"),
    "client pause": _every(Answer.FIRST, _WRITE),
    "client unpause": _every(Answer.FIRST, _WRITE),
    "client no-evict": _every(Answer.FIRST, _WRITE),
    "client setname": _every(Answer.FIRST, "names a connection to every node"),
    "client tracking": _every(Answer.FIRST, "tracking on a connection to every node"),
    "client caching": _every(Answer.FIRST, "tracking on a connection to every node"),
    "module load": _every(Answer.FIRST, _WRITE),
    "module loadex": _every(Answer.FIRST, _WRITE),
    "module unload": _every(Answer.FIRST, _WRITE),
    "module list": _every(Answer.AGREED, "modules are loaded on every node"),
    "role": _every(Answer.AGREED, "each node's role (per node when offsets differ)"),
    "save": _every(Answer.FIRST, _WRITE),
    "bgsave": _every(Answer.FIRST, _WRITE),
    "bgrewriteaof": _every(Answer.FIRST, _WRITE),
    "shutdown": _every(Answer.FIRST, "every node stops"),
}
"""Our rules for keyless commands, by name (``"name subcommand"`` before ``"name"``).
Any ``... HELP`` subcommand is ``ONE``."""

PER_NODE_IDS: dict[str, tuple[str, frozenset[str] | None, str]] = {
    "client kill": (
        "id",
        None,
        "client ids are per node (the same id names other clients on other nodes): use "
        "clients[node].client_kill_filter(_id=...)",
    ),
    "client tracking": (
        "redirect",
        frozenset({"redirect", "prefix"}),
        "client ids are per node (the id names another connection, or none, on the other "
        "nodes): use clients[node].client_tracking_on(clientid=...) with an id of that "
        "node, or tracking without REDIRECT (RESP3, protocol=3, pushes invalidations on the "
        "tracking connection itself)",
    ),
}
"""Keyless commands refused when an option names a client id, which is per node: ``name:
(option, the options that take a value (None: every option does), why)``. Our rule; the
same command without that option follows :data:`RULES`."""


def per_node_id(name: str, args: Sequence[Any]) -> str | None:
    """Why keyless command ``name`` (lower case) called with ``args`` (the command name as
    one argument or two, then its options) is refused for naming a per-node client id
    (:data:`PER_NODE_IDS`), else None. O(args).

    >>> per_node_id("client tracking", ("CLIENT TRACKING", "ON", "PREFIX", "redirect"))
    >>> per_node_id("client kill", ("CLIENT", "KILL", "ID", 7)) is not None
    True
    """
    entry = PER_NODE_IDS.get(name)
    if entry is None or not args:
        return None
    option, valued, why = entry
    words = list(args[1:] if " " in _word(args[0]).strip() else args[2:])
    if name == "client tracking":
        words = words[1:]  # ON | OFF
    elif len(words) < 2:
        return None  # CLIENT KILL ip:port, the old form
    position = 0
    while position < len(words):
        word = _word(words[position]).lower()
        if word == option:
            return why
        position += 2 if valued is None or word in valued else 1
    return None


def _word(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


_FROM_TIPS = {
    ResponsePolicy.ALL_SUCCEEDED: Answer.FIRST,
    ResponsePolicy.ONE_SUCCEEDED: Answer.ANY,
    ResponsePolicy.AGG_SUM: Answer.SUM,
    ResponsePolicy.AGG_MIN: Answer.MIN,
    ResponsePolicy.AGG_MAX: Answer.MAX,
    ResponsePolicy.AGG_LOGICAL_AND: Answer.AND,
    ResponsePolicy.AGG_LOGICAL_OR: Answer.OR,
}


def tip_answer(response: ResponsePolicy, default: Answer) -> Answer:
    """How answers combine by a command's ``response_policy`` tip (``default`` for the
    tips that say nothing: ``default_keyless``, ``default_keyed``, ``special``). O(1)."""
    return _FROM_TIPS.get(response, default)


def rule_for(name: str, request: RequestPolicy, response: ResponsePolicy) -> Rule:
    """The rule of keyless command ``name`` (``"name"`` or ``"name subcommand"``, lower
    case) whose COMMAND tips are ``request``/``response``: :data:`RULES` first, then the
    tips, then every node with :attr:`Answer.AGREED`. O(1)."""
    rule = RULES.get(name) or RULES.get(name.split(" ", 1)[0])
    if rule is not None:
        return rule
    if name.endswith(" help"):
        return _one(_SAME)
    answer = tip_answer(response, Answer.AGREED)
    if request in (RequestPolicy.ALL_SHARDS, RequestPolicy.ALL_NODES):
        return _every(answer, f"COMMAND tips: {request.value}, {response.value}")
    return _every(answer, "not in the table: every node, per node unless all agree")
