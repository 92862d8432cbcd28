"""Keys to nodes and answers back, for both clients; no I/O.

``route_owners`` places keys (by the bytes redis-py sends) and steps around ejected nodes
(``route_index``: the same for many keys, as numpy arrays); ``group_per_node`` turns a
batch of commands' routes (:class:`Routed`: a pipeline's) into one batch per node and the
batches' answers back into one answer per command, grouping with numpy (``_owners``)
rather than a Python loop over the commands where it can (``raise_first_error`` raises as
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

import numpy as np
import redis

from hashring import HealthTracker, Placement, redact_url

from ._answers import Failure
from ._commands import Plan, first_answer
from ._errors import CrossShardError
from ._owners import SMALL_BATCH, Grouping, Owners
from ._scatter import Call

__all__ = [
    "ANY_NODE",
    "Grouped",
    "Routed",
    "describe_nodes",
    "group_per_node",
    "next_scan_cursor",
    "raise_first_error",
    "refuse_cross_node_transaction",
    "route_index",
    "route_owners",
    "scan_page_open",
    "scan_position",
    "usable_owners",
]


ANY_NODE = ""
"""The node of a keyless command that any node answers alike (never a node's name: those
are non-empty): in a transaction it runs on the transaction's node."""


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
    routed = _routed(encoder, keys)
    if len(routed) < SMALL_BATCH:  # one key or a few: skip the batch path's numpy calls
        owners = [placement.get_node(key) for key in routed]
    else:
        owners = placement.get_node_many(routed)
    return usable_owners(placement, health, routed, owners, claim=claim)


def usable_owners(
    placement: Placement,
    health: HealthTracker,
    routed: Sequence[Any],
    owners: list[str],
    *,
    claim: bool = True,
) -> list[str]:
    """``owners`` (the placed owners of the ``routed`` keys, as :func:`_routed` gives them),
    each ejected one replaced by the first usable node of its key's preference list (in
    place; ``owners`` is returned). Nothing to do with health tracking off. O(len(owners)),
    plus a preference list per key of an ejected owner."""
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


def route_index(
    placement: Placement,
    health: HealthTracker,
    encoder: Any,
    keys: list[Any],
    *,
    claim: bool = True,
) -> Owners:
    """:func:`route_owners` for many keys, as an :class:`~._owners.Owners` (each key's
    node as a position among the node names, from the placement's ``get_index_many``
    when it has one): the same nodes, without a list of names per key. Ejected owners
    are replaced as by :func:`route_owners` (each distinct owner asked once). O(keys) in
    numpy, plus a preference list per key of an ejected owner.

    Raises:
        as :func:`route_owners`.
    """
    if len(keys) < SMALL_BATCH:  # a few keys: numpy's calls cost more than they save
        return Owners.of(route_owners(placement, health, encoder, keys, claim=claim))
    routed = _routed(encoder, keys)
    index_many = getattr(placement, "get_index_many", None)
    if index_many is None:
        owners = Owners.of(placement.get_node_many(routed))
    else:
        owners = Owners(*index_many(routed))
    if not health.enabled:
        return owners
    names = owners.names
    ejected = [
        i
        for i in np.flatnonzero(np.bincount(owners.index, minlength=len(names))).tolist()
        if not health.usable(names[i], claim=claim)
    ]
    if not ejected:
        return owners
    listed = owners.tolist()
    for i in np.flatnonzero(np.isin(owners.index, ejected)).tolist():
        preference = placement.get_nodes(routed[i])
        listed[i] = health.first_usable(preference, claim=claim) or listed[i]
    return Owners.of(listed)


def _routed(encoder: Any, keys: list[Any]) -> list[Any]:
    """``keys`` as the placement takes them: by the bytes the client sends (see
    :func:`route_owners`). O(keys), in C when every key is a str or bytes.

    Raises:
        KeyEncodingError, redis.exceptions.DataError: as :func:`route_owners`.
    """
    plain = _is_plain(encoder.encoding, encoder.encoding_errors)
    if plain:  # every key an exact str or bytes: placed as is, no per-key Python loop
        types = list(map(type, keys))
        same = types.count(str)
        if same == len(types) or same + types.count(bytes) == len(types):
            return keys
    return [key if plain and key.__class__ in _AS_IS else _encoded(encoder, key) for key in keys]


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


class Routed(NamedTuple):
    """The routes of a batch of commands (a pipeline's, or a round of migration reads).

    ``calls[i]`` is command ``i``'s ``(args, options)``; ``plans[i]`` its plan, or None
    for a one-key command sent as it is to the node ``owners`` gives it (the ``k``-th None
    takes ``owners``' ``k``-th node), whose answer is that node's (see
    ``Command.one_key``): a pipeline routes those in one batch, without a plan each.
    """

    plans: Sequence[Plan | None]
    calls: Sequence[tuple[tuple[Any, ...], dict[str, Any]]]
    owners: Owners | None = None

    @classmethod
    def of(cls, plans: Sequence[Plan], options: Sequence[dict[str, Any]]) -> Routed:
        """Every command planned: ``plans`` and their ``options``."""
        return cls(plans, [((), opts) for opts in options])


class Grouped:
    """A :class:`Routed` batch grouped per node: ``calls[n]`` is what goes to ``nodes[n]``
    (nodes by name, each node's calls in buffering order; a split command's parts lose the
    ``keys`` option, which names the whole command's keys). :meth:`answers` turns the
    nodes' answers back into one answer per command."""

    __slots__ = ("_grouping", "_routed", "calls", "nodes")

    def __init__(self, routed: Routed) -> None:
        _, calls, owners = routed
        self._routed = routed
        if owners is not None and len(owners) == len(calls):  # every command as it is
            grouping = owners.grouping()
            entries: Sequence[Any] = calls
        else:
            grouping, entries = _entries(routed)
        self._grouping = grouping
        self.nodes = grouping.nodes
        taken = grouping.take(entries)
        self.calls: list[Sequence[Call]] = []
        start = 0
        for size in grouping.sizes:
            self.calls.append(taken[start : start + size])
            start += size

    def answers(self, node_answers: Sequence[Sequence[Any]]) -> list[Any]:
        """Each command's merged answer, in buffering order, from each node's answers (in
        :attr:`nodes` order, one per call). A command with a failed part gets an exception
        in its place (as redis-py's ``raise_on_error=False``): a one-part command its
        node's error as it is, a command of several parts the error ``Plan.settle`` raises
        (naming the failed node; none when ``any_success`` and one part succeeded).
        O(calls).
        """
        flat = self._grouping.restore(node_answers)
        plans, calls, owners = self._routed
        if owners is not None and len(owners) == len(calls):
            return flat
        results: list[Any] = []
        at = 0
        for plan, (_, opts) in zip(plans, calls, strict=True):
            if plan is None:
                results.append(flat[at])
                at += 1
                continue
            count = len(plan.parts)
            if count == 1:  # the common case: no list, no settling
                answer = flat[at]
                at += 1
                if isinstance(answer, Exception) or (
                    plan.respond is None and plan.merge is first_answer
                ):
                    results.append(answer)  # one node's answer, or its error as it gave it
                    continue
                try:
                    results.append(plan.finish([answer], opts))
                except Exception as error:  # a computed answer's error
                    results.append(error)
                continue
            outcomes = [
                Failure(a) if isinstance(a, Exception) else a for a in flat[at : at + count]
            ]
            at += count
            try:  # several parts settle as a direct command's do (``Plan.settle``)
                results.append(plan.settle(outcomes, _without_keys(opts)))
            except Exception as error:  # a failed part (named) or a computed answer's error
                results.append(error)
        return results


def group_per_node(routed: Routed) -> Grouped:
    """Every part of every command of ``routed``, grouped by node (see :class:`Grouped`).
    O(parts), in numpy when every command is a one-key command sent as it is."""
    return Grouped(routed)


def _entries(routed: Routed) -> tuple[Grouping, list[Call]]:
    """The grouping of every part of ``routed``'s commands, in buffering order, and the
    parts' calls. O(parts)."""
    plans, calls, owners = routed
    names: list[str] = list(owners.names) if owners is not None else []
    position = {name: i for i, name in enumerate(names)}
    simple = iter(owners.index.tolist() if owners is not None else ())
    nodes: list[int] = []
    entries: list[Call] = []
    for plan, call in zip(plans, calls, strict=True):
        if plan is None:
            nodes.append(next(simple))
            entries.append(call)
            continue
        opts = call[1] if len(plan.parts) == 1 else _without_keys(call[1])
        for part in plan.parts:
            at = position.get(part.node)
            if at is None:
                at = position[part.node] = len(names)
                names.append(part.node)
            nodes.append(at)
            entries.append((part.args, opts))
    if len(nodes) < SMALL_BATCH:
        return Grouping.of_names([names[i] for i in nodes]), entries
    return Grouping.of(np.array(nodes, dtype=np.intp), names), entries


def _without_keys(options: dict[str, Any]) -> dict[str, Any]:
    """redis-py's options of a split command's parts: without ``keys``."""
    return {k: v for k, v in options.items() if k != "keys"}


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
