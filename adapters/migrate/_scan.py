"""Scanning: every node's keys a ``SCAN`` page at a time, each page routed under the new
topology, and the plan (misplaced keys per pair) counted from the pages."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from typing import NamedTuple, cast

from hashring import InvalidOptionError, Placement
from hashring._topology.clients import MARKER_PREFIX

from ._connections import _Links
from ._results import MigrationPlan, Pair, Progress, _int, _sorted_pairs, _Tally

_MARKER = MARKER_PREFIX.encode()


class _Page(NamedTuple):
    """One ``SCAN`` page of one node, routed."""

    source: str
    """The node scanned."""
    keys: list[bytes]
    """Every key of the page."""
    moves: dict[str, list[bytes]]
    """The page's misplaced keys by owner under the new topology (in scan order)."""


def _pages(
    links: _Links,
    placement: Placement,
    old_names: frozenset[str],
    batch: int,
    starting: Callable[[str], None] | None = None,
) -> Iterator[_Page]:
    """Every node's keys, one ``SCAN COUNT batch`` page at a time, routed with
    ``get_node_many``; at least one page per node (empty for a node without keys), so a
    consumer sees every node's pass end. Memory: one page. O(keys) over the whole iteration.
    ``starting(node)`` is called before the first ``SCAN`` of each node (a migration
    window's marker is set there: see ``MigrationSession.mark_passes``).

    A migration window's markers (``hashring:migrating:<version>``) belong to the node they
    are on: they are never listed, so never moved, planned or verified.

    Nodes new to the topology are scanned first: they only gain keys, so keys moved into
    them are not scanned a second time (a reweight can still make a node scan a key it just
    got).

    Raises:
        MigrationError: a node is unreachable.
    """
    get_node_many = placement.get_node_many
    for source in sorted(links.clients, key=lambda name: (name in old_names, name)):
        client = links.clients[source]
        if starting is not None:
            starting(source)
        cursor = 0
        listed = False
        while True:
            with links.talking_to(source):
                cursor, keys = cast(
                    tuple[int, list[bytes]], client.scan(cursor=cursor, count=batch)
                )
            keys = [key for key in keys if not key.startswith(_MARKER)]  # node-local
            if keys or (cursor == 0 and not listed):  # a node without keys: one empty page
                moves: dict[str, list[bytes]] = {}
                for key, owner in zip(keys, get_node_many(keys) if keys else (), strict=True):
                    if owner != source:
                        moves.setdefault(owner, []).append(key)
                yield _Page(source, keys, moves)
                listed = True
            if cursor == 0:
                break


def _plan(
    pages: Iterable[_Page], links: _Links, with_bytes: bool, progress: Progress | None
) -> MigrationPlan:
    """Count the misplaced keys of ``pages`` per pair; with ``with_bytes`` also their
    ``MEMORY USAGE`` (one pipelined round trip per page that has misplaced keys). Moves
    nothing. O(keys).

    Raises:
        MigrationError: a node is unreachable.
    """
    start = time.perf_counter()
    pairs: dict[Pair, int] = {}
    sizes: dict[Pair, int] | None = {} if with_bytes else None
    scanned = in_place = 0
    for source, keys, moves in pages:
        scanned += len(keys)
        in_place += _Tally.add_page(pairs, source, keys, moves)
        if sizes is not None and moves:
            with links.talking_to(source):
                pipe = links.clients[source].pipeline(transaction=False)
                for group in moves.values():
                    for key in group:
                        pipe.memory_usage(key, samples=0)
                usage = pipe.execute(raise_on_error=False)
            at = 0
            for owner, group in moves.items():
                total = sum(_int(u) for u in usage[at : at + len(group)])
                at += len(group)
                pair = Pair(source, owner)
                sizes[pair] = sizes.get(pair, 0) + total
        if progress is not None:
            progress(len(keys))
    return MigrationPlan(
        scanned=scanned,
        in_place=in_place,
        pairs=_sorted_pairs(pairs),
        bytes=None if sizes is None else _sorted_pairs(sizes),
        seconds=time.perf_counter() - start,
    )


def _check_batch(batch: int) -> None:
    """Raises InvalidOptionError unless ``batch`` is an int >= 1."""
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise InvalidOptionError(f"batch must be an int >= 1, got {batch!r}")
