"""Scatter-gather over the nodes' connections for ``AsyncShardedRedis``: the asyncio twin of
``_scatter`` (read its docstring: the same two passes, errors, retries and guarantees).

One coroutine writes every node's packed request (``await pool.get_connection()``,
``_packing.pack_commands``, ``await send_packed_command``), then reads the replies node by node with
the node client's own ``parse_response``: no task per node, no ``gather``. The servers work
in parallel while the event loop waits on the first node's reply.

Cancellation (a ``CancelledError`` at any ``await``, or one that redis-py's write swallowed,
noticed after each node's step): a connection whose replies were not
all read is closed at once, without awaiting (redis-py's ``read_response`` already
disconnects the one it was reading), every connection goes back to its pool and every lease
is given back (a removed node's client closed), then the cancellation propagates.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from contextlib import suppress
from typing import Any, NamedTuple

import redis.asyncio as aioredis
import redis.exceptions

from ._answers import Failure
from ._commands import CONNECTION_ERRORS
from ._leases import Slot
from ._packing import pack_commands
from ._scatter import Call

__all__ = ["AsyncShare", "scatter_async"]

AsyncOutcome = Callable[[str, Slot[aioredis.Redis], bool], None]
"""Records whether a node answered (``AsyncShardedRedis._outcome``)."""


class AsyncShare(NamedTuple):
    """One node's commands in a scatter, on a leased slot."""

    node: str
    slot: Slot[aioredis.Redis]
    calls: Sequence[Call]


async def scatter_async(
    shares: Sequence[AsyncShare],
    outcome: AsyncOutcome,
    leave: Callable[[Slot[aioredis.Redis]], Awaitable[None]],
) -> list[list[Any] | Failure]:
    """``_scatter.scatter`` for the asyncio client: per share, the answers in order (an
    error reply in its command's place) or the ``Failure`` that ended the node's attempt;
    each node's outcome recorded; every lease given back (``await leave(slot)``).

    Raises:
        BaseException: only what is not an ``Exception`` (a cancellation...), after every
            connection was given back (closed if it had replies pending) and every lease
            ended.
    """
    flights = [_AsyncFlight(share) for share in shares]
    task = asyncio.current_task()
    cancels = task.cancelling() if task is not None else 0
    try:
        for flight in flights:
            await flight.write()
            _raise_if_cancelled(task, cancels)
        for flight in flights:
            await flight.read()
            _raise_if_cancelled(task, cancels)
            error = flight.error
            if error is None:
                outcome(flight.share.node, flight.share.slot, True)
            elif isinstance(error, CONNECTION_ERRORS):
                outcome(flight.share.node, flight.share.slot, False)
    finally:
        for flight in flights:
            flight.close_if_pending()  # synchronous: no cancellation can cut it short
        for flight in flights:
            await flight.end(leave)
    return [flight.result() for flight in flights]


def _raise_if_cancelled(task: asyncio.Task[Any] | None, cancels: int) -> None:
    """Raise the cancellation of ``task`` that arrived since it had ``cancels`` of them,
    if something swallowed it: on Python 3.11, ``asyncio.wait_for`` (which redis-py's
    ``send_packed_command`` uses) returns normally when cancelled just as its write
    completed, and the command would go on as if nothing had asked it to stop.

    Raises:
        asyncio.CancelledError: a cancellation was requested meanwhile.
    """
    if task is not None and task.cancelling() > cancels:
        raise asyncio.CancelledError


class _AsyncFlight:
    """One share under way: its leased connection, what was sent, what came back."""

    __slots__ = ("answers", "conn", "done", "error", "share", "via_pipeline", "written")

    def __init__(self, share: AsyncShare) -> None:
        self.share = share
        self.conn: Any = None
        self.written = False
        self.done = False
        self.error: Exception | None = None
        self.answers: list[Any] = []
        client = share.slot.client
        pool = client.connection_pool
        self.via_pipeline = bool(client.single_connection_client) or bool(
            getattr(pool, "cache", None)
        )

    async def write(self) -> None:
        """Lease a connection and write the whole request (nothing on a failure)."""
        if self.via_pipeline:
            return
        pool = self.share.slot.client.connection_pool
        try:
            self.conn = await pool.get_connection()  # type: ignore[no-untyped-call]
        except Exception as error:  # the connect was retried; redis-py raises it too
            self.error = error
            self.done = True
            return
        try:
            packed = pack_commands(self.conn, [args for args, _ in self.share.calls])
        except Exception as error:  # DataError: nothing was sent
            self.error = error
            self.done = True
            return
        try:
            self.written = True
            await self.conn.send_packed_command(packed)
        except Exception as error:
            self.error = error

    async def read(self) -> None:
        """Read every reply (or run redis-py's pipeline, or retry after a failure)."""
        if self.via_pipeline:
            await self._through_pipeline()
            return
        if self.conn is None or (self.error is not None and self.done):
            return
        if self.error is None:
            try:
                self.answers = await self._parse_all()
                self.done = True
                return
            except Exception as error:
                self.error = error
        await self._retry(self.error)

    async def _parse_all(self) -> list[Any]:
        client, conn = self.share.slot.client, self.conn
        answers: list[Any] = []
        for args, options in self.share.calls:
            try:
                answers.append(await client.parse_response(conn, args[0], **options))
            except redis.exceptions.ResponseError as error:
                answers.append(error)
        return answers

    async def _retry(self, first: Exception) -> None:
        """The connection's retry policy from the failure just seen (see
        ``_scatter._Flight._retry``)."""
        conn = self.conn
        pending = [first]

        async def attempt() -> list[Any]:
            if pending:
                raise pending.pop()
            packed = pack_commands(conn, [args for args, _ in self.share.calls])
            await conn.send_packed_command(packed)
            return await self._parse_all()

        async def failed(error: Exception) -> None:
            await conn.disconnect()

        try:
            self.answers = await conn.retry.call_with_retry(attempt, failed)
            self.error = None
            self.done = True
        except Exception as error:
            self.error = error

    async def _through_pipeline(self) -> None:
        """redis-py's own path for a client whose connection is not the pool's."""
        pipe = self.share.slot.client.pipeline(transaction=False)
        try:
            for args, options in self.share.calls:
                pipe.execute_command(*args, **options)
            self.answers = await pipe.execute(raise_on_error=False)
        except Exception as error:
            self.error = error
        finally:
            await pipe.reset()  # type: ignore[no-untyped-call]
        self.done = True

    def close_if_pending(self) -> None:
        """Close the connection now if replies may still be waiting on it."""
        conn = self.conn
        if conn is not None and self.written and (not self.done or self.error is not None):
            with suppress(Exception):
                conn._close()

    async def end(self, leave: Callable[[Slot[aioredis.Redis]], Awaitable[None]]) -> None:
        """Give the connection back to its pool, then the lease."""
        try:
            conn, self.conn = self.conn, None
            if conn is not None:
                await self.share.slot.client.connection_pool.release(conn)
        finally:
            await leave(self.share.slot)

    def result(self) -> list[Any] | Failure:
        return Failure(self.error) if self.error is not None else self.answers
