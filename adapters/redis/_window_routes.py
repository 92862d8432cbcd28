"""Where a write goes during a migration window. No I/O.

A client running a window topology (one with ``[migration] previous``; see
``hashring.Topology.previous``) holds a :class:`Window`: the client of the previous
topology and the window's marker (``hashring:migrating:<version>``). Reads fall back over
the previous topology (``_fallback``); this module decides what a command that writes does.

Each key of a write gets a *route*: its owner under the new topology and, when that is
another node, its owner under the previous one (the key *moves*). The command is planned
over routes as it would be over nodes (``_commands.plan_command``): a one-node command
whose keys have different routes raises CrossShardError, exactly as it would under either
topology alone; a command split per key (MSET, DEL, UNLINK, TOUCH) gets one part per route.
A part whose keys stay runs on its node as always; a part whose keys move runs through the
window's two moves (``_window``): gated on the old owner until the migration starts there
(the marker is set), then pulled to the new owner and run there. What each command does:

===========================  ===========================================================
write of keys that stay      sent to their node, as outside a window
write of moving keys,        ``WATCH marker``, ``EXISTS marker``, then ``MULTI``, the
before the marker            command, ``EXEC`` on the old owner (two round trips): the
                             key stays where clients of the previous topology use it
write of moving keys,        ``MIGRATE ... KEYS`` from the old owner to the new one (the
once the marker is set       keys that are there move, with their TTLs; one round trip),
                             then the command on the new owner: a delete or an overwrite
                             after the pull cannot be undone by the migration
blocking commands (BLPOP,    cannot run inside MULTI: pulled and run on the new owner once
XREADGROUP ... BLOCK, ...)   the marker is set there; before it, if the marker is on
and MULTI-less commands      another old owner (the migration has started), the client
                             sets it on theirs first; if it is on none, refused
                             (UnsupportedCommandError, nothing sent)
transactions and WATCH on    the same (set the marker if the migration has started
moving keys                  elsewhere, else refused); then the keys are pulled, watched
                             and run on the new owner
pipelines that write         their commands run one at a time, in order, each as above
                             (a pipeline without ``transaction`` promises no atomicity)
reads                        one key: the old owner first until the marker is seen there
                             (in the same round trip), then the new owner; else new owner
                             first, then the previous topology (``_fallback``)
keyless commands             as outside a window (the new topology's nodes)
===========================  ===========================================================

A client remembers each old owner on which it saw the marker (the marker is never removed
while any client runs the window: ``hashring migrate`` clears it only once every client
runs the final topology), so later writes skip the gate's round trip there; and the keys
it pulled, or found on their new owner, once the marker was set on their old one: such a
key never goes back (nothing writes a moving key on its old owner after the marker), so
its reads and writes go to its new owner directly, at the cost of a key outside a window.

Once ``hashring migrate`` has finished its pass over an old owner, leaving behind none of
the keys that move away from it, it sets the window's done marker there
(``hashring:migrating:<version>:done``). A client looks for it in the round trips it sends
that node anyway (a read of a moving key there, a pull; at most once every
:data:`MARKER_LOOK_INTERVAL` seconds per node, so most such reads carry no extra command),
and from then on every key moving
away from that node is read and written on its new owner as a key that stays: the window
costs nothing more for them, which is most keys soon after a move and all of them once it
has finished.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis

from hashring._topology.clients import done_key, marker_key
from hashring._topology.moves import Destination

from ._commands import (
    CONNECTION_ERRORS,
    Command,
    CommandTable,
    Plan,
    _text,
    known_keys,
    plan_command,
)
from ._errors import UnsupportedCommandError

__all__ = [
    "MARKER_LOOK_INTERVAL",
    "MOVED_REMEMBERED",
    "PULL_TIMEOUT_MS",
    "Route",
    "Window",
    "alone_read",
    "conflict",
    "moving_routes",
    "needs_marker",
    "not_started",
    "one_at_a_time",
    "one_at_a_time_async",
    "window_plan",
    "writes",
]

MOVED_REMEMBERED = 1 << 17
"""Keys a client remembers as moved for good during one window (about 10 MB at most)."""

_REMEMBERED_TYPES = frozenset({str, bytes, int})

MARKER_LOOK_INTERVAL = 0.05
"""Seconds between two looks for a window's markers on one old owner, piggybacked on the
round trips a client sends it anyway (:meth:`Window.markers`)."""

PULL_TIMEOUT_MS = 5_000
"""``MIGRATE``'s timeout for a pull: the longest the old owner may wait on the new one at any
moment of the transfer (milliseconds)."""


@dataclass
class Route:
    """Where a part of a write runs: ``node`` under the new topology; ``source`` its keys'
    owner under the previous topology when they move, else None; ``keys`` the part's keys
    (what a pull moves)."""

    node: str
    source: str | None
    keys: list[Any]


@dataclass
class Window:
    """A migration window a client runs: the previous topology's client (its
    ``read_fallback``) and the window's marker. Thread-safe (its sets and dicts are only
    added to)."""

    previous: Any
    """The client of the previous topology (a ``ShardedRedis`` or ``AsyncShardedRedis``)."""
    marker: str
    """``hashring:migrating:<window version>``."""
    done_marker: str = field(init=False)
    """``hashring:migrating:<window version>:done``, from the marker: set on an old owner
    once every key moving away from it has moved (``hashring._topology.clients.done_key``)."""
    started: set[str] = field(default_factory=set)
    """The old owners on which the marker was seen: the migration has started there."""
    done: set[str] = field(default_factory=set)
    """The old owners on which the done marker was seen: the keys moving away from them are
    on their new owners for good, and go there as keys that stay do."""
    _moved: set[Any] = field(default_factory=set)
    _found: dict[str, list[int]] = field(default_factory=dict)
    _destinations: dict[str, Destination] = field(default_factory=dict)
    _looked: dict[str, float] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def old_first(self, source: str) -> bool:
        """Whether a read of one key moving from ``source`` should ask its old owner first:
        always until the marker is seen there (no key has moved), then while the reads of
        such keys lately found them on the old owner at least as often as on the new one
        (early in a move most have not moved yet; later most have). Both orders answer
        alike under the window's rules; the guess only saves a round trip. O(1)."""
        if source not in self.started:
            return True
        found = self._found.get(source)
        return found is not None and found[0] >= found[1]

    def __post_init__(self) -> None:
        self.done_marker = done_key(self.marker)

    def moves(self, owner: str, source: str) -> bool:
        """Whether a key placed on ``owner`` by the new topology and on ``source`` by the
        previous one still moves: the two differ and the migration has not finished on
        ``source`` (its done marker not seen). O(1)."""
        return owner != source and source not in self.done

    def markers(self, node: str) -> tuple[str | None, str | None]:
        """The markers a round trip to the old owner ``node`` should look for: the marker
        until it was seen there, the done marker until it was; asked at most once every
        :data:`MARKER_LOOK_INTERVAL` seconds per node (``(None, None)`` in between: what
        they tell only saves round trips later, so a look more or less changes no answer,
        and most reads of moving keys carry no extra command). O(1); races only add a look.
        """
        if node in self.done:
            return None, None
        now = time.monotonic()
        if now - self._looked.get(node, -MARKER_LOOK_INTERVAL) < MARKER_LOOK_INTERVAL:
            return None, None
        self._looked[node] = now
        return None if node in self.started else self.marker, self.done_marker

    def saw(self, node: str, started: bool, finished: bool) -> None:
        """Remember what a look at the old owner ``node`` found: its marker (the migration
        has started there), its done marker (it has finished there). O(1)."""
        if started:
            self.started.add(node)
        if finished:
            self.done.add(node)

    def found(self, source: str, on_old: bool) -> None:
        """Count where a read found a key moving from ``source`` (recent reads weigh most:
        the counts are halved every 64 reads). O(1); races only blur the guess."""
        found = self._found.setdefault(source, [0, 0])
        found[0 if on_old else 1] += 1
        if found[0] + found[1] >= 64:
            found[0] //= 2
            found[1] //= 2

    def note_moved(self, keys: Sequence[Any]) -> None:
        """Remember that ``keys`` are on their new owner for good: pulled there (or found
        gone from their old owner) once the marker was set on it, after which nothing
        writes them there again. At most :data:`MOVED_REMEMBERED` keys are remembered (the
        set starts over when full); keys of unhashable types are not. O(keys)."""
        moved = self._moved
        if len(moved) + len(keys) > MOVED_REMEMBERED:
            moved.clear()
        for key in keys:
            if key.__class__ in _REMEMBERED_TYPES:
                moved.add(key)

    def has_moved(self, keys: Sequence[Any]) -> bool:
        """Whether every one of ``keys`` is remembered on its new owner for good: a read
        or a write of them goes there directly, as outside a window. O(keys)."""
        moved = self._moved
        return bool(moved) and all(
            key.__class__ in _REMEMBERED_TYPES and key in moved for key in keys
        )

    @classmethod
    def of(cls, previous: Any, version: str) -> Window:
        """The window of the topology ``version`` whose previous topology runs on
        ``previous``. O(1)."""
        return cls(previous, marker_key(version))

    def destination(self, node: str, client: Any) -> Destination:
        """Where pulls to ``node`` (its ready client ``client``) go, read once. O(1).

        Raises:
            UnsupportedCommandError: the node is reached through a unix socket or TLS
                (``MIGRATE`` cannot reach it); nothing was sent.
        """
        found = self._destinations.get(node)
        if found is None:
            try:
                made = Destination.of(client)
            except ValueError as error:
                raise UnsupportedCommandError(
                    f"node {node!r} cannot receive keys during a migration window: {error}"
                ) from None
            with self._lock:
                found = self._destinations.setdefault(node, made)
        return found


def not_started(what: str, route: Route) -> UnsupportedCommandError:
    """The refusal of ``what`` (a blocking or MULTI-less write, a transaction) on moving
    keys before the migration started on their old owner (see :func:`needs_marker`)."""
    return UnsupportedCommandError(
        f"{what} cannot run on keys moving from {route.source!r} to "
        f"{route.node!r} until the migration has started there (it cannot be gated inside "
        "MULTI); nothing was sent. Retry once `hashring migrate` runs, or use the "
        "non-blocking form"
    )


def conflict(error: redis.ResponseError, route: Route) -> redis.ResponseError:
    """The error a pull raises: ``BUSYKEY`` (a moving key exists on both owners: something
    wrote it on the new owner outside the window's rules) explained; any other refusal as
    the server sent it."""
    if "BUSYKEY" not in str(error):
        return error
    shown = ", ".join(repr(_text(key)) for key in route.keys[:6])
    return redis.ResponseError(
        f"BUSYKEY: a key among {shown} exists both on {route.source!r} (its owner under "
        f"the previous topology) and on {route.node!r} (its new owner); nothing was "
        "written. Something wrote it on the new owner outside the migration window (a "
        "client of the final topology too early?); `hashring migrate --on-conflict` "
        "decides which copy stays"
    )


def alone_read(command: Command) -> bool:
    """Whether a command of one known key is a read that goes straight to the one-key
    rounds of a window (``_fallback.alone``) when its key moves: flagged ``readonly``,
    and not SORT_RO (whose BY/GET patterns name more keys). O(1)."""
    return "readonly" in command.flags and command.name != "sort_ro"


def needs_marker(command: Command, args: Sequence[Any]) -> bool:
    """Whether a write cannot be gated inside MULTI (it blocks, or the server refuses it in
    a transaction): it may run on moving keys only once the marker is set. XREAD and
    XREADGROUP block only with a ``BLOCK`` argument. O(args)."""
    flags = command.flags
    if "no_multi" in flags:
        return True
    if "blocking" not in flags:
        return False
    if command.name in ("xread", "xreadgroup"):
        return any(isinstance(arg, (str, bytes)) and _upper(arg) == "BLOCK" for arg in args[1:])
    return True


def _upper(word: str | bytes) -> str:
    return (word.decode("latin-1") if isinstance(word, bytes) else word).upper()


def moving_routes(
    keys: Sequence[Any], owners: Sequence[str], sources: Sequence[str]
) -> list[Route]:
    """The routes of the keys that move (owner under the new topology != owner under the
    previous one), in order of first appearance: what a transaction pulls before it runs
    on its new owner. O(keys).

    >>> moving_routes(["a", "b", "c"], ["n1", "n3", "n3"], ["n1", "n2", "n2"])
    [Route(node='n3', source='n2', keys=['b', 'c'])]
    """
    routes: dict[tuple[str, str], Route] = {}
    for key, owner, source in zip(keys, owners, sources, strict=True):
        if owner != source:
            routes.setdefault((owner, source), Route(owner, source, [])).keys.append(key)
    return list(routes.values())


def window_plan(
    command: Command,
    args: tuple[Any, ...],
    keys: list[Any],
    owners: list[str],
    sources: list[str],
    names: Sequence[str],
    first: str,
) -> tuple[Plan, dict[str, Route]]:
    """The plan of a write with ``keys`` whose owners are ``owners`` under the new topology
    and ``sources`` under the previous one (same order), over routes, and what each part's
    node label means (a node name for keys that stay; a label naming both nodes, never a
    node name, for keys that move). O(keys).

    Raises:
        CrossShardError: a one-node command whose keys do not share one route (nothing
            sent): they are on different nodes under one of the two topologies.
        UnsupportedCommandError: as ``plan_command``.
    """
    routes: dict[str, Route] = {}
    labels: list[str] = []
    for key, owner, source in zip(keys, owners, sources, strict=True):
        label = owner
        if owner != source:
            label = f"{owner} (moving from {source})"
            while label in names:  # a node named like a label: keep labels apart
                label += "'"
        route = routes.get(label)
        if route is None:
            route = routes[label] = Route(owner, None if owner == source else source, [])
        route.keys.append(key)
        labels.append(label)
    return plan_command(command, args, keys, labels, names, first), routes


def writes(table: CommandTable, commands: Sequence[tuple[tuple[Any, ...], Any]]) -> bool:
    """Whether a pipeline's ``commands`` (``(args, options)``) hold a command that may write
    a key (not flagged ``readonly``, with keys or keys only the server can tell): during a
    window such a pipeline runs :func:`one_at_a_time`. O(commands)."""
    for args, _ in commands:
        command = table.describe(args)
        if "readonly" not in command.flags and known_keys(command, args) != []:
            return True
    return False


def one_at_a_time(
    execute: Callable[..., Any], commands: Sequence[tuple[tuple[Any, ...], dict[str, Any]]]
) -> list[Any]:
    """Each of ``commands`` through ``execute`` (the client's ``execute_command``: every
    window rule applies to it), in order; an error reply or a refusal in its command's
    place, as a pipeline's answers hold them. One command's round trips after another's.

    Raises:
        redis.exceptions.ConnectionError, TimeoutError: a node could not be reached (the
            commands after it are not sent).
    """
    results: list[Any] = []
    for args, options in commands:
        try:
            results.append(execute(*args, **options))
        except CONNECTION_ERRORS:
            raise
        except redis.exceptions.RedisError as error:
            results.append(error)
    return results


async def one_at_a_time_async(
    execute: Callable[..., Awaitable[Any]],
    commands: Sequence[tuple[tuple[Any, ...], dict[str, Any]]],
) -> list[Any]:
    """:func:`one_at_a_time` for an ``AsyncShardedRedis``."""
    results: list[Any] = []
    for args, options in commands:
        try:
            results.append(await execute(*args, **options))
        except CONNECTION_ERRORS:
            raise
        except redis.exceptions.RedisError as error:
            results.append(error)
    return results
