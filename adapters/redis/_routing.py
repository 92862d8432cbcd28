"""Keys to nodes and answers back, for both clients; no I/O.

``route_owners`` places keys (by the bytes redis-py sends) and steps around ejected nodes;
``group_per_node`` and ``assemble`` turn a pipeline's plans into one batch per node and
the batches' answers back into one answer per command (``raise_first_error`` raises as
redis-py would); ``refuse_cross_node_transaction`` finds a transaction's one node;
``scan_position`` and ``next_scan_cursor`` encode a sharded SCAN cursor (``scan_page_open``:
when a page goes on to the next node); ``describe_nodes``
shows nodes without passwords. (Reads during a migration: ``_fallback``.)
"""

from __future__ import annotations

import codecs
import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import redis

from hashring import HealthTracker, Placement, redact_url

from ._answers import Failure
from ._commands import Plan, first_answer
from ._errors import CrossShardError

__all__ = [
    "ANY_NODE",
    "Entry",
    "assemble",
    "describe_nodes",
    "group_per_node",
    "next_scan_cursor",
    "raise_first_error",
    "refuse_cross_node_transaction",
    "route_owners",
    "scan_page_open",
    "scan_position",
]


ANY_NODE = ""
"""The node of a keyless command that any node answers alike (never a node's name: those
are non-empty): in a transaction it runs on the transaction's node."""


class Entry(NamedTuple):
    """One buffered pipeline command's share on a node."""

    command: int
    """Index of the command in the pipeline's buffer."""
    part: int
    """Index of this share among the command's parts."""
    args: tuple[Any, ...]
    """What is sent to the node."""
    options: dict[str, Any]
    """redis-py's options for the command (without ``keys`` when it was split)."""


def route_owners(
    placement: Placement,
    health: HealthTracker,
    encoder: Any,
    keys: list[Any],
    *,
    claim: bool = True,
) -> list[str]:
    """The node of each key (placed by the bytes the client sends); with health tracking on,
    an ejected owner is replaced by the first usable node of the key's preference list.

    str keys are placed as str when the client encodes them strictly as UTF-8 (the same
    bytes, and the placement's fast path); anything else (bytearray, memoryview, numbers,
    other encodings) goes through the client's encoder first, so a key is placed by exactly
    the bytes redis-py sends. ``claim`` is passed to the tracker: True when the command
    will be sent to the nodes returned (it may take a recovering node's single probe).
    O(len(keys)) lookups.

    Raises:
        KeyEncodingError: a str key with no UTF-8 form (a lone surrogate), before any
            hashing; with another client encoding, the encoder's UnicodeEncodeError.
        InvalidKeyError: a key the placement refuses.
        redis.exceptions.DataError: a key type redis-py cannot encode.
    """
    plain = _is_plain(encoder.encoding, encoder.encoding_errors)
    if plain and set(map(type, keys)) <= _AS_IS:  # every key as is: no per-key Python loop
        routed = keys
    else:
        routed = [
            key if plain and key.__class__ in _AS_IS else _encoded(encoder, key) for key in keys
        ]
    if len(routed) == 1:  # the common case: skip the batch path's numpy overhead
        owners = [placement.get_node(routed[0])]
    else:
        owners = placement.get_node_many(routed)
    if health.enabled:
        verdicts: dict[str, bool] = {}  # one decision per owner: its keys stay together
        for i, owner in enumerate(owners):
            usable = verdicts.get(owner)
            if usable is None:
                usable = verdicts[owner] = health.usable(owner, claim=claim)
            if not usable:
                preference = placement.get_nodes(routed[i])
                owners[i] = health.first_usable(preference, claim=claim) or owner
    return owners


def refuse_cross_node_transaction(plans: list[Plan], watched: str | None = None) -> str | None:
    """The one node a transaction's ``plans`` (and the node of its ``watched`` keys) use,
    or None when every part is keyless (on :data:`ANY_NODE`). O(parts).

    Raises:
        CrossShardError: they touch more than one node (a transaction cannot span them):
            nothing was sent; the message names each node's commands, and the ways out.
    """
    touched: dict[str, list[str]] = {} if watched is None else {watched: ["WATCH"]}
    for plan in plans:
        for part in plan.parts:
            if part.node != ANY_NODE:
                names = touched.setdefault(part.node, [])
                if plan.command.upper() not in names:
                    names.append(plan.command.upper())
    nodes = sorted(touched)
    if len(nodes) > 1:
        shown = "; ".join(f"{node}: {', '.join(touched[node][:4])}" for node in nodes)
        raise CrossShardError(
            f"a transaction must stay on one node, but it touches {', '.join(nodes)} "
            f"({shown}); nothing was sent. Give its keys (and the watched keys) a common "
            "{hash tag}, or use pipeline(transaction=False) for a pipeline without MULTI/EXEC.",
            tuple(nodes),
        )
    return nodes[0] if nodes else None


def group_per_node(plans: list[Plan], options: list[dict[str, Any]]) -> dict[str, list[Entry]]:
    """Every part of every plan, grouped by node in buffering order. A split command's parts
    lose the ``keys`` option (it names the whole command's keys)."""
    per_node: dict[str, list[Entry]] = {}
    for i, (plan, opts) in enumerate(zip(plans, options, strict=True)):
        shared = opts if len(plan.parts) == 1 else {k: v for k, v in opts.items() if k != "keys"}
        for j, part in enumerate(plan.parts):
            per_node.setdefault(part.node, []).append(Entry(i, j, part.args, shared))
    return per_node


def assemble(
    plans: list[Plan], per_node: dict[str, list[Entry]], node_answers: Mapping[str, list[Any]]
) -> list[Any]:
    """Each command's merged answer, in buffering order; a command with a failed part gets
    an exception in its place (as redis-py's ``raise_on_error=False``): a one-part
    command its node's error as it is, a command of several parts the error
    ``Plan.settle`` raises (naming the failed node; none when ``any_success`` and one part
    succeeded). O(parts)."""
    single = [len(plan.parts) == 1 for plan in plans]
    answers: list[Any] = [None if len(p.parts) == 1 else [None] * len(p.parts) for p in plans]
    options: list[dict[str, Any]] = [{}] * len(plans)
    for node, entries in per_node.items():
        for entry, answer in zip(entries, node_answers[node], strict=True):
            if single[entry.command]:
                answers[entry.command] = answer  # a one-part plan's answer, as it is
            else:
                answers[entry.command][entry.part] = answer
            options[entry.command] = entry.options
    results: list[Any] = []
    for plan, parts, opts in zip(plans, answers, options, strict=True):
        if len(plan.parts) == 1:  # the common case: no list, no settling
            if isinstance(parts, Exception) or (
                plan.respond is None and plan.merge is first_answer
            ):
                results.append(parts)  # one node's answer, or its error as that node gave it
            else:
                try:
                    results.append(plan.finish([parts], opts))
                except Exception as error:  # a computed answer's error
                    results.append(error)
            continue
        outcomes = [Failure(a) if isinstance(a, Exception) else a for a in parts]
        try:  # several parts settle as a direct command's do (``Plan.settle``)
            results.append(plan.settle(outcomes, opts))
        except Exception as error:  # a failed part (named) or a computed answer's error
            results.append(error)
    return results


def raise_first_error(
    results: list[Any],
    commands: Sequence[tuple[Any, ...]],
    annotate: Callable[[Exception, int, tuple[Any, ...]], None],
) -> None:
    """As redis-py's ``Pipeline.raise_first_error``: the first ``ResponseError`` among
    ``results``, its message prefixed by ``annotate`` (redis-py's own ``annotate_exception``,
    "Command # N (ARGS) of pipeline caused error: ...", N counted from 1 in the user's
    buffer, whatever node ran the command). A ``CrossShardError`` in the results (a read
    during a migration whose keys stayed split between the topologies) counts as a failed
    command too: it is never returned in the list as if it were an answer. O(results).

    Raises:
        redis.exceptions.ResponseError, CrossShardError: that error, when there is one.
    """
    for number, result in enumerate(results, 1):
        if isinstance(result, (redis.exceptions.ResponseError, CrossShardError)):
            annotate(result, number, commands[number - 1])
            raise result


def describe_nodes(urls: Mapping[str, str | None]) -> str:
    """``name=redacted-url`` (or ``name=client``) for every node, sorted by name."""
    return ", ".join(
        f"{name}={redact_url(url) if url else 'client'}" for name, url in sorted(urls.items())
    )


def scan_position(cursor: int, nodes: int) -> tuple[int, int]:
    """A sharded SCAN cursor as (node index in name order, that node's own cursor). O(1).

    >>> scan_position(0, 3), scan_position(7, 3)
    ((0, 0), (1, 2))
    """
    cursor = int(cursor)
    return cursor % nodes, cursor // nodes


SCAN_COUNT = 10
"""The page size a SCAN without COUNT aims at, as one server's (``COUNT`` defaults to 10)."""


def scan_page_open(following: int, index: int, nodes: int, keys: int, count: int | None) -> bool:
    """Whether a sharded SCAN page, which holds ``keys`` keys after node ``index`` (of
    ``nodes``) answered cursor ``following``, takes the next node's first page too: when
    that node is done (``following`` is 0), another node follows, and the page has fewer
    than ``count`` keys (:data:`SCAN_COUNT` when None). So each node is asked at most once
    per page, and a keyspace smaller than COUNT comes back in one page with cursor 0, as
    from one server. O(1).

    >>> scan_page_open(0, 1, 3, 4, None), scan_page_open(2, 1, 3, 0, None)
    (True, False)
    >>> scan_page_open(0, 2, 3, 0, None), scan_page_open(0, 0, 3, 5, 5)
    (False, False)
    """
    limit = SCAN_COUNT if count is None else int(count)
    return not int(following) and index + 1 < nodes and keys < limit


def next_scan_cursor(following: int, index: int, nodes: int) -> int:
    """The sharded cursor after node ``index`` answered ``following``: its next page, else
    the next node's start, else 0 when the last node is done. O(1).

    >>> next_scan_cursor(2, 1, 3), next_scan_cursor(0, 1, 3), next_scan_cursor(0, 2, 3)
    (7, 2, 0)
    """
    if following:
        return int(following) * nodes + index
    return index + 1 if index + 1 < nodes else 0


_AS_IS = frozenset({str, bytes})
"""Key types placed as they are when the client encodes strictly as UTF-8 (exact types:
a subclass goes through the encoder, as redis-py sends it)."""


def _encoded(encoder: Any, key: Any) -> Any:
    """``key`` as the bytes redis-py's ``encoder`` sends: a bytearray or memoryview as its
    bytes, an int or float as its ``repr``, a str in the client's encoding.

    Raises:
        redis.exceptions.DataError: a bool or another type redis-py refuses.
    """
    encoded = encoder.encode(key)
    return encoded if encoded.__class__ is bytes else bytes(encoded)


@functools.cache
def _is_plain(encoding: str, errors: str) -> bool:
    """Whether a client writes str keys as exactly their strict UTF-8 bytes (what the
    placement hashes for a str)."""
    return codecs.lookup(encoding).name == "utf-8" and errors == "strict"
