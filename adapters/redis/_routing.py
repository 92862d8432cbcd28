"""Keys to nodes and answers back, for both clients; no I/O.

``route_owners`` places keys (by the bytes redis-py sends) and steps around ejected nodes;
``group_per_node`` and ``assemble`` turn a pipeline's plans into one batch per node and
the batches' answers back into one answer per command; ``scan_position`` and
``next_scan_cursor`` encode a sharded SCAN cursor; ``missed_reads`` says which reads to ask
the previous topology during a migration; ``describe_nodes`` shows nodes without passwords.
"""

from __future__ import annotations

import codecs
import functools
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from hashring import HealthTracker, Placement, redact_url

from ._commands import Plan
from ._errors import CrossShardError

__all__ = [
    "Entry",
    "assemble",
    "describe_nodes",
    "group_per_node",
    "missed_reads",
    "next_scan_cursor",
    "refuse_cross_node_transaction",
    "route_owners",
    "scan_position",
]


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
    routed = [
        key if plain and key.__class__ in (str, bytes) else _encoded(encoder, key) for key in keys
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


def refuse_cross_node_transaction(plans: list[Plan]) -> None:
    """Raises:
    CrossShardError: the plans touch more than one node (a transaction cannot span them).
    """
    nodes = sorted({part.node for plan in plans for part in plan.parts})
    if len(nodes) > 1:
        raise CrossShardError(
            f"a transaction must stay on one node, but its commands touch {', '.join(nodes)}; "
            "nothing was sent. Give the keys a common {hash tag}.",
            tuple(nodes),
        )


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
    plans: list[Plan],
    per_node: dict[str, list[Entry]],
    node_answers: Mapping[str, list[Any]],
    raise_on_error: bool,
) -> list[Any]:
    """Each command's merged answer, in buffering order; a command with a failed part gets
    that part's exception.

    Raises:
        Exception: the first failed command's error, when ``raise_on_error`` is true.
    """
    answers: list[list[Any]] = [[None] * len(plan.parts) for plan in plans]
    for node, entries in per_node.items():
        for entry, answer in zip(entries, node_answers[node], strict=True):
            answers[entry.command][entry.part] = answer
    results: list[Any] = []
    for plan, parts in zip(plans, answers, strict=True):
        failed = next((a for a in parts if isinstance(a, Exception)), None)
        results.append(failed if failed is not None else plan.merge(parts))
    if raise_on_error:
        for result in results:
            if isinstance(result, Exception):
                raise result
    return results


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


def next_scan_cursor(following: int, index: int, nodes: int) -> int:
    """The sharded cursor after node ``index`` answered ``following``: its next page, else
    the next node's start, else 0 when the last node is done. O(1).

    >>> next_scan_cursor(2, 1, 3), next_scan_cursor(0, 1, 3), next_scan_cursor(0, 2, 3)
    (7, 2, 0)
    """
    if following:
        return int(following) * nodes + index
    return index + 1 if index + 1 < nodes else 0


def missed_reads(plan: Plan, value: Any, old_owner: Callable[[Any], str]) -> list[int] | None:
    """Which of a read's keys to ask the previous topology during a migration.

    Indices into ``plan.keys``: an MGET's keys that came back None, or ``[0]`` for a
    single-key read that missed on a node that did not own the key before. None when there
    is nothing to ask.
    """
    if plan.command == "mget" and isinstance(value, list):
        return [i for i, v in enumerate(value) if v is None] or None
    if value is None and len(plan.keys) == 1 and old_owner(plan.keys[0]) != plan.parts[0].node:
        return [0]
    return None


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
