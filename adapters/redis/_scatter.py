"""Scatter-gather over the nodes' connections, one thread for all nodes (``ShardedRedis``).

Sending a command's parts (or a pipeline's per-node batches, or a migration read's round)
to several nodes goes in two passes on the calling thread: first every node's whole
request is packed and written on a connection leased from that node's pool
(``pool.get_connection()``, then ``_packing.pack_commands``: the bytes redis-py's
``pack_commands`` would give, packed faster; then ``send_packed_command``, as redis-py's
pipeline does), then the replies are read node by node and parsed by the node client's own
``parse_response`` (its response callbacks, ``decode_responses``, RESP2/RESP3 and the
``NEVER_DECODE`` / ``EMPTY_RESPONSE`` options exactly as redis-py applies them). The servers
work in parallel while one thread parses: no worker thread, no hand-off between threads.

Errors, per node (each node's outcome is independent of the others'):

* a reply that is an error (``ResponseError`` and its subclasses) takes its command's
  place among the answers, as in redis-py's ``pipeline.execute(raise_on_error=False)``;
* a connection error (or a socket timeout) while writing or reading is handled with the
  connection's own ``retry`` policy, as redis-py does for a command or a pipeline: the
  connection is disconnected, and while the policy allows another attempt (after its
  backoff) the node's whole request is sent again on it and read (so that node is then
  done on its own, after the first pass; like redis-py, a retried request may run twice).
  A failure to connect at all (``get_connection``) is not retried further, as in
  redis-py, whose pool has already retried the connect. The last error is the node's
  outcome, as a :class:`~._answers.Failure`;
* an encoding error (``DataError``) while packing: nothing is sent to that node, its
  outcome is that error.

A connection whose replies were not all read (an error, or an interrupt such as
``KeyboardInterrupt`` in the middle) is disconnected before it goes back to its pool, so
no pooled connection is ever left with replies waiting on it. Every connection goes back to
its pool and every lease is given back, whatever happens.

Timeouts: each node's socket timeout bounds its write and its read; the nodes are waited
on one after the other, so a write that blocks on a node that stopped reading (a request
larger than the socket buffers) delays the nodes after it by up to that timeout.

Clients with ``single_connection_client=True`` or client-side caching keep redis-py's own
path (a ``pipeline(transaction=False)`` per node, in the second pass): their one
connection, or the cache's proxy connection, is not taken from the pool here.

No thread pool is kept anywhere: measured side by side (``bench/redis_client.py``, 4 local
servers, with and without hiredis), the thread-per-node version lost in every case, MGET and
MSET of 1,000 keys (about 2.1x a one-node MGET/MSET with hiredis, against 1.6 to 1.8x for
this scatter then, before ``_packing`` and ``_owners``), pipelines of 1,000 commands (2.2x
against 1.4x) and of 10,000 (3.0x against 1.8x): replies are parsed under the GIL either
way, so the threads only added hand-offs.

Complexity: O(commands + reply size); one packed write and one read loop per node.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import suppress
from typing import Any, NamedTuple

import redis
import redis.exceptions

from ._answers import Failure
from ._commands import CONNECTION_ERRORS
from ._leases import Slot
from ._packing import pack_commands

__all__ = ["Call", "Outcome", "Share", "scatter"]

Call = tuple[tuple[Any, ...], dict[str, Any]]
"""One command for a node: its arguments and redis-py's options for it."""
Outcome = Callable[[str, Slot[redis.Redis], bool], None]
"""Records whether a node answered (``ShardedRedis._outcome``)."""


class Share(NamedTuple):
    """One node's commands in a scatter, on a leased slot."""

    node: str
    slot: Slot[redis.Redis]
    calls: Sequence[Call]


def scatter(
    shares: Sequence[Share], outcome: Outcome, leave: Callable[[Slot[redis.Redis]], None]
) -> list[list[Any] | Failure]:
    """Send every share's calls to its node and read the answers (see the module
    docstring): per share, the answers in order (an error reply in its command's place) or
    the ``Failure`` of the error that ended the node's attempt. Records each node's outcome
    (True: it answered, error replies included; False: a connection error or timeout);
    gives every share's lease back (``leave(slot)``), once per share.

    Raises:
        BaseException: only what is not an ``Exception`` (``KeyboardInterrupt``...), after
            every connection was given back (disconnected if it had replies pending) and
            every lease ended.
    """
    flights = [_Flight(share) for share in shares]
    try:
        for flight in flights:
            flight.write()
        for flight in flights:
            flight.read()
            error = flight.error
            if error is None:
                outcome(flight.share.node, flight.share.slot, True)
            elif isinstance(error, CONNECTION_ERRORS):
                outcome(flight.share.node, flight.share.slot, False)
    finally:
        for flight in flights:
            flight.end(leave)
    return [flight.result() for flight in flights]


class _Flight:
    """One share under way: its leased connection, what was sent, what came back."""

    __slots__ = ("answers", "conn", "done", "error", "share", "via_pipeline", "written")

    def __init__(self, share: Share) -> None:
        self.share = share
        self.conn: Any = None
        self.written = False  # the request went (at least partly) onto the connection
        self.done = False  # every reply read: the connection is clean
        self.error: Exception | None = None
        self.answers: list[Any] = []
        client = share.slot.client
        pool = client.connection_pool
        self.via_pipeline = client.connection is not None or getattr(pool, "cache", None)

    def write(self) -> None:
        """Lease a connection and write the whole request (nothing on a failure)."""
        if self.via_pipeline:
            return
        pool = self.share.slot.client.connection_pool
        try:
            self.conn = pool.get_connection()
        except Exception as error:  # the pool retried the connect; redis-py raises it too
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
            self.conn.send_packed_command(packed)
        except Exception as error:
            self.error = error

    def read(self) -> None:
        """Read every reply (or run redis-py's pipeline, or retry after a failure)."""
        if self.via_pipeline:
            self._through_pipeline()
            return
        if self.conn is None or (self.error is not None and self.done):
            return
        if self.error is None:
            try:
                self.answers = self._parse_all()
                self.done = True
                return
            except Exception as error:
                self.error = error
        self._retry(self.error)

    def _parse_all(self) -> list[Any]:
        client, conn = self.share.slot.client, self.conn
        answers: list[Any] = []
        for args, options in self.share.calls:
            try:
                answers.append(client.parse_response(conn, args[0], **options))  # type: ignore[no-untyped-call]
            except redis.exceptions.ResponseError as error:
                answers.append(error)
        return answers

    def _retry(self, first: Exception) -> None:
        """The connection's retry policy, from the failure just seen: the first attempt of
        ``call_with_retry`` re-raises it (so it counts, is filtered by the policy's
        supported errors and triggers the disconnect), the next ones send again."""
        conn = self.conn
        pending = [first]

        def attempt() -> list[Any]:
            if pending:
                raise pending.pop()
            conn.send_packed_command(pack_commands(conn, [args for args, _ in self.share.calls]))
            return self._parse_all()

        def failed(error: Exception) -> None:
            conn.disconnect()

        try:
            self.answers = conn.retry.call_with_retry(attempt, failed)
            self.error = None
            self.done = True
        except Exception as error:
            self.error = error

    def _through_pipeline(self) -> None:
        """redis-py's own path for a client whose connection is not the pool's."""
        pipe = self.share.slot.client.pipeline(transaction=False)
        try:
            for args, options in self.share.calls:
                pipe.execute_command(*args, **options)  # type: ignore[no-untyped-call]
            self.answers = pipe.execute(raise_on_error=False)
        except Exception as error:
            self.error = error
        finally:
            pipe.reset()
        self.done = True

    def end(self, leave: Callable[[Slot[redis.Redis]], None]) -> None:
        """Give the connection back (disconnected if replies may be pending), then the
        lease."""
        try:
            conn = self.conn
            if conn is not None:
                self.conn = None
                try:
                    if self.written and (not self.done or self.error is not None):
                        with suppress(Exception):
                            conn.disconnect()
                finally:
                    self.share.slot.client.connection_pool.release(conn)
        finally:
            leave(self.share.slot)

    def result(self) -> list[Any] | Failure:
        return Failure(self.error) if self.error is not None else self.answers
