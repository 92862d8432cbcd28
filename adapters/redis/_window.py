"""The migration window's two moves on a key whose owner changes: a write gated on the old
owner, and a pull of the key to its new owner. Synchronous building blocks on ready clients;
the sharded clients' routing is what decides when to use them.

Why the gate. Clients take a new topology at different moments, so for a while clients of
the old topology (T0) and of the window (T1) run side by side. If a T1 client wrote a moving
key K on its new owner N while a T0 client still wrote K on its old owner O, K would live
twice and the migration would have to drop one acknowledged write. So until the migration
starts, T1 clients write such keys where T0 clients do, on O, gated by the window's marker
(``hashring:migrating:<version>``, :func:`marker_key`): :func:`gated_call` WATCHes the
marker, finds it absent, and runs the command in MULTI/EXEC, which the server aborts if the
marker appeared meanwhile. ``hashring migrate`` waits until no T0 client is connected
(``CLIENT LIST``), then sets the marker on each old owner just before its pass over that
node: a node not reached yet keeps its moving keys (written there through the gate) until
its pass moves them, so they are not pulled one by one meanwhile.

Why the pull. Once the marker is set, a T1 write on K first pulls K from O to N
(:func:`pull`: ``MIGRATE ... KEYS K`` sent to O, neither ``COPY`` nor ``REPLACE``), then
runs on N. ``MIGRATE`` deletes the source copy only once the destination acknowledged the
key, so the migration and any number of clients can pull the same key concurrently: one
moves it, the others find ``NOKEY``. A read-modify-write (INCR, HSET, APPEND) therefore
continues from the moved value, and a delete after the pull cannot be undone by the
migration, which then finds nothing to move.

Reply fidelity. EXEC hands back each command's reply exactly as the server would have sent
it alone (RESP2 or RESP3, nulls inside arrays included), and :func:`gated_call` parses it with
the client's own response callback and options, as ``Redis.parse_response`` does; an error
is the server's own, unannotated. (A Lua script would be one round trip instead of two, but
RESP3 nulls inside arrays become Lua nils and truncate the array: ``HMGET`` with a missing
field would answer short.) Commands a transaction cannot hold (``WATCH``, ``MULTI``,
``SUBSCRIBE``...) and blocking forms (which a transaction runs without blocking) cannot be
gated; the caller refuses them during the window.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any

import redis
import redis.asyncio as aioredis

from hashring._topology.clients import MARKER_PREFIX, marker_key
from hashring._topology.moves import Destination, migrate_command

from ._packing import pack_commands

__all__ = [
    "MARKER_PREFIX",
    "Destination",
    "Gated",
    "exists_and_read",
    "exists_and_read_async",
    "gated_call",
    "gated_call_async",
    "marker_key",
    "migrate_command",
    "pull",
    "pull_async",
]


@dataclass(frozen=True)
class Gated:
    """What a gated call did: ``ran`` False when the marker was set (nothing ran on the old
    owner: pull, then run on the new one), else the command's parsed ``reply``."""

    ran: bool
    reply: Any = None


def _watch(marker: str) -> list[tuple[Any, ...]]:
    """The gate's first round: WATCH the marker, then look whether it is there."""
    return [("WATCH", marker), ("EXISTS", marker)]


def _transaction(args: Sequence[Any]) -> list[tuple[Any, ...]]:
    """The gate's second round, sent only when the marker was absent."""
    return [("MULTI",), tuple(args), ("EXEC",)]


def _outcome(
    queued: BaseException | None,
    executed: Any,
    client: Any,
    args: Sequence[Any],
    options: dict[str, Any],
) -> Gated:
    """The gate's result from the second round's replies: ``queued`` the error the command
    got when queued (EXEC then aborted), ``executed`` EXEC's reply or error."""
    if queued is not None:
        raise queued
    if isinstance(executed, BaseException):
        raise executed
    if executed is None:  # the marker appeared between WATCH and EXEC: nothing ran
        return Gated(False)
    (reply,) = executed
    if isinstance(reply, redis.ResponseError):
        raise reply
    options.pop("keys", None)
    callback = client.response_callbacks.get(str(args[0]).upper())
    return Gated(True, callback(reply, **options) if callback is not None else reply)


def _read(connection: Any) -> Any:
    """One reply, an error reply returned rather than raised."""
    try:
        return connection.read_response()
    except redis.ResponseError as exc:
        return exc


async def _aread(connection: Any) -> Any:
    try:
        return await connection.read_response()
    except redis.ResponseError as exc:
        return exc


@contextmanager
def _borrowed(client: redis.Redis) -> Iterator[Any]:
    """One connection of ``client``'s pool for a few pipelined commands, given back after,
    and disconnected first when anything escapes the block (replies may be left unread: the
    connection is out of step; error replies the block reads and keeps are its own). Yields
    redis-py's untyped Connection."""
    pool = client.connection_pool
    connection: Any = pool.get_connection()
    try:
        yield connection
    except BaseException:
        connection.disconnect()
        raise
    finally:
        pool.release(connection)


@asynccontextmanager
async def _aborrowed(client: aioredis.Redis) -> AsyncIterator[Any]:
    """:func:`_borrowed` for a ``redis.asyncio`` client."""
    pool = client.connection_pool
    connection: Any = await pool.get_connection()  # type: ignore[no-untyped-call]
    try:
        yield connection
    except BaseException:
        await connection.disconnect()
        raise
    finally:
        await pool.release(connection)


def gated_call(old: redis.Redis, marker: str, args: Sequence[Any], **options: Any) -> Gated:
    """Run ``args`` (a command and its arguments) on the old owner unless it holds
    ``marker``: WATCH and EXISTS in one round trip, then MULTI, the command and EXEC in one
    more, on one connection of ``old``'s pool. The reply is parsed by ``old``'s response
    callback for the command with ``options``, as a direct call would be.

    Raises:
        redis.ResponseError: the command's own error (WRONGTYPE, wrong arguments ...), as
            the server sends it.
        redis.RedisError: the node cannot be reached (the connection is dropped).
    """
    with _borrowed(old) as connection:
        connection.send_packed_command(pack_commands(connection, _watch(marker)))
        connection.read_response()
        if connection.read_response():
            connection.send_command("UNWATCH")
            connection.read_response()
            return Gated(False)
        connection.send_packed_command(pack_commands(connection, _transaction(args)))
        connection.read_response()
        queued = _read(connection)
        executed = _read(connection)
    return _outcome(
        queued if isinstance(queued, BaseException) else None, executed, old, args, options
    )


async def gated_call_async(
    old: aioredis.Redis, marker: str, args: Sequence[Any], **options: Any
) -> Gated:
    """:func:`gated_call` for a ``redis.asyncio`` client: the same two round trips.

    Raises:
        redis.ResponseError, redis.RedisError: as :func:`gated_call`.
    """
    async with _aborrowed(old) as connection:
        await connection.send_packed_command(pack_commands(connection, _watch(marker)))
        await connection.read_response()
        if await connection.read_response():
            await connection.send_command("UNWATCH")
            await connection.read_response()
            return Gated(False)
        await connection.send_packed_command(pack_commands(connection, _transaction(args)))
        await connection.read_response()
        queued = await _aread(connection)
        executed = await _aread(connection)
    return _outcome(
        queued if isinstance(queued, BaseException) else None, executed, old, args, options
    )


def _asks(
    marker: str | None, done: str | None, key: Any, args: Sequence[Any]
) -> list[tuple[Any, ...]]:
    """The commands of :func:`exists_and_read`'s round trip."""
    asks = [("EXISTS", name) for name in (marker, done) if name is not None]
    return [*asks, ("EXISTS", key), tuple(args)]


def exists_and_read(
    client: redis.Redis,
    key: Any,
    args: Sequence[Any],
    options: dict[str, Any],
    marker: str | None = None,
    done: str | None = None,
) -> tuple[bool, bool, bool, Any]:
    """``EXISTS key`` and the one-key read ``args`` pipelined on one connection of
    ``client`` (one round trip), with ``EXISTS marker`` and ``EXISTS done`` ahead of them
    when a window's ``marker`` or done marker is given: whether the marker is there, whether
    the done marker is (each False when not asked), whether the key is, and the read's
    answer parsed as ``client.execute_command(*args, **options)`` would (its error reply
    returned, not raised). What a read of a moving key asks each side in a migration window.

    Raises:
        redis.RedisError: the node cannot be reached (the connection is dropped).
    """
    with _borrowed(client) as connection:
        connection.send_packed_command(pack_commands(connection, _asks(marker, done, key, args)))
        # EXISTS answers an integer: no response callback to apply.
        started = marker is not None and bool(connection.read_response())
        finished = done is not None and bool(connection.read_response())
        present = bool(connection.read_response())
        try:
            answer = client.parse_response(connection, args[0], **options)  # type: ignore[no-untyped-call]
        except redis.ResponseError as error:
            answer = error
    return started, finished, present, answer


async def exists_and_read_async(
    client: aioredis.Redis,
    key: Any,
    args: Sequence[Any],
    options: dict[str, Any],
    marker: str | None = None,
    done: str | None = None,
) -> tuple[bool, bool, bool, Any]:
    """:func:`exists_and_read` for a ``redis.asyncio`` client.

    Raises:
        redis.RedisError: the node cannot be reached (the connection is dropped).
    """
    async with _aborrowed(client) as connection:
        await connection.send_packed_command(
            pack_commands(connection, _asks(marker, done, key, args))
        )
        started = marker is not None and bool(await connection.read_response())
        finished = done is not None and bool(await connection.read_response())
        present = bool(await connection.read_response())
        try:
            answer = await client.parse_response(connection, args[0], **options)
        except redis.ResponseError as error:
            answer = error
    return started, finished, present, answer


def _moved(answer: Any) -> bool:
    text = answer.decode() if isinstance(answer, bytes) else str(answer)
    return text != "NOKEY"


def _distinct(client: Any, keys: Sequence[Any]) -> list[bytes]:
    """``keys`` as the bytes ``client`` sends, each once (``MIGRATE`` answers BUSYKEY for a
    key named twice: the second copy finds the first). O(keys)."""
    encoder = client.get_encoder()
    return list(dict.fromkeys(bytes(encoder.encode(key)) for key in keys))


def pull(
    old: redis.Redis,
    destination: Destination,
    keys: Sequence[Any],
    *,
    timeout_ms: int,
    done: str | None = None,
) -> tuple[bool, bool]:
    """Move ``keys`` from the old owner to ``destination`` with one ``MIGRATE`` sent to the
    old owner (values and TTLs kept; the source copy deleted once the destination has it),
    with ``EXISTS done`` ahead of it on the same connection when a window's done marker is
    given. Returns whether at least one key moved (False when none was there: ``NOKEY``)
    and whether the done marker is there (False when not asked). A key named twice is sent
    once. One round trip, plus the transfer between the servers.

    Raises:
        redis.ResponseError: ``BUSYKEY``: a key exists on the destination too (nothing of
            that key moved; the caller decides); or another refusal (IOERR: the old owner
            cannot reach the destination).
        redis.RedisError: the old owner cannot be reached (the connection is dropped).
    """
    command = migrate_command(destination, _distinct(old, keys), timeout_ms=timeout_ms)
    asks = [command] if done is None else [("EXISTS", done), command]
    with _borrowed(old) as connection:  # on the connection: no retry, as with a done marker
        connection.send_packed_command(pack_commands(connection, asks))
        finished = done is not None and bool(connection.read_response())
        answer = _read(connection)  # the last reply: an error leaves the connection usable
    if isinstance(answer, redis.ResponseError):
        raise answer
    return _moved(answer), finished


async def pull_async(
    old: aioredis.Redis,
    destination: Destination,
    keys: Sequence[Any],
    *,
    timeout_ms: int,
    done: str | None = None,
) -> tuple[bool, bool]:
    """:func:`pull` for a ``redis.asyncio`` client.

    Raises:
        redis.ResponseError, redis.RedisError: as :func:`pull`.
    """
    command = migrate_command(destination, _distinct(old, keys), timeout_ms=timeout_ms)
    asks = [command] if done is None else [("EXISTS", done), command]
    async with _aborrowed(old) as connection:
        await connection.send_packed_command(pack_commands(connection, asks))
        finished = done is not None and bool(await connection.read_response())
        answer = await _aread(connection)  # the last reply: an error leaves it usable
    if isinstance(answer, redis.ResponseError):
        raise answer
    return _moved(answer), finished
