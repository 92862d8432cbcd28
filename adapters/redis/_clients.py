"""The redis-py clients of the nodes, sync and asyncio: connecting to a node, a raw client
for reading the COMMAND table, dropping idle connections, and gathering asyncio calls whose
leases must end however they end.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping
from typing import Any, TypeVar, cast

import redis
import redis.asyncio as aioredis
from redis._parsers.commands import AsyncCommandsParser, CommandsParser, PolicyRecords
from redis.client import NEVER_DECODE

from hashring import InvalidOptionError, redact_url

from ._base import check_target
from ._commands import CONNECTION_ERRORS, CommandTable
from ._leases import Slot, give_back

__all__ = [
    "connect",
    "connect_async",
    "drop_idle_connections",
    "gather_all",
    "gather_leased",
    "raw_async_client",
    "raw_client",
    "read_command_table",
    "read_command_table_async",
]

#: Called with a node (and its slot) that failed to answer: it counts towards its ejection.
Failed = Callable[[str, Slot[Any], bool], None]

_T = TypeVar("_T")


def connect(name: str, target: str | redis.Redis, options: Mapping[str, Any]) -> redis.Redis:
    """A redis.Redis for ``target``: a URL (redis://, rediss://, unix://) or a client as is.

    Raises:
        InvalidOptionError: an unsupported URL scheme or a target of the wrong type.
    """
    check_target(name, target, redis.Redis)
    if isinstance(target, redis.Redis):
        return target
    return _from_url(name, str(target), redis.Redis.from_url, options)


def raw_client(client: redis.Redis) -> redis.Redis:
    """A short-lived client to the same server with ``decode_responses=False``."""
    pool = client.connection_pool
    kwargs = {**pool.connection_kwargs, "decode_responses": False}
    raw = redis.Redis(connection_pool=redis.ConnectionPool(pool.connection_class, **kwargs))
    raw.auto_close_connection_pool = True  # close() must disconnect the pool made here
    return raw


def connect_async(
    name: str, target: str | aioredis.Redis, options: Mapping[str, Any]
) -> aioredis.Redis:
    """A redis.asyncio.Redis for ``target``: a URL (redis://, rediss://, unix://) or a client
    as is. Nothing is connected yet.

    Raises:
        InvalidOptionError: a bad node name, an unsupported URL scheme, a synchronous
            ``redis.Redis``, or a target of another type.
    """
    if isinstance(target, redis.Redis):
        raise InvalidOptionError(
            f"node {name!r}: a synchronous redis.Redis cannot serve AsyncShardedRedis; pass "
            "a redis.asyncio.Redis or a URL"
        )
    check_target(name, target, aioredis.Redis)
    if isinstance(target, aioredis.Redis):
        return target
    return _from_url(name, str(target), aioredis.Redis.from_url, options)


def raw_async_client(client: aioredis.Redis) -> aioredis.Redis:
    """A short-lived client to the same server with ``decode_responses=False``; it owns its
    pool, so ``aclose()`` closes its connection."""
    pool = client.connection_pool
    kwargs = {**pool.connection_kwargs, "decode_responses": False}
    return aioredis.Redis.from_pool(
        aioredis.ConnectionPool(connection_class=pool.connection_class, **kwargs)
    )


def drop_idle_connections(pool: aioredis.ConnectionPool) -> None:
    """Close the pool's idle connections at once (they reconnect on their next use).

    ``pool.disconnect(inuse_connections=False)`` awaits each close, and meanwhile another
    task may take a half-closed connection from the pool; this closes them without
    yielding to the event loop, so no task sees one half-closed. Connections in use are
    left alone. Relies on redis-py's ``_available_connections`` (pinned by a contract test).
    """
    for connection in list(getattr(pool, "_available_connections", ())):
        with contextlib.suppress(Exception):
            connection._close()


async def gather_all(awaitables: Iterable[Awaitable[_T]]) -> list[_T]:
    """Await all concurrently; once every one has finished, raise the first error in order
    (none is left running or unretrieved), else return the answers in order."""
    answers = await asyncio.gather(*awaitables, return_exceptions=True)
    for answer in answers:
        if isinstance(answer, BaseException):
            raise answer
    return cast(list[_T], answers)


async def gather_leased(
    jobs: list[tuple[Slot[aioredis.Redis], Coroutine[Any, Any, _T]]],
) -> list[_T]:
    """Run each job (a coroutine that gives its slot's lease back in a ``finally``)
    concurrently, as :func:`gather_all`.

    A job whose coroutine never started cannot give its lease back itself: when the
    caller is cancelled after ``gather`` scheduled the jobs but before they ran, their
    coroutines are never entered. Those leases are given back here (and a removed node's
    client closed), so every lease ends, whenever the cancellation comes. O(jobs).
    """
    started = [False] * len(jobs)

    async def run(index: int, job: Coroutine[Any, Any, _T]) -> _T:
        started[index] = True
        return await job  # enters the job's try at once: its finally gives the lease back

    try:
        return await gather_all(run(i, job) for i, (_, job) in enumerate(jobs))
    except BaseException:
        unstarted = [slot for (slot, job), began in zip(jobs, started, strict=True) if not began]
        for (_, job), began in zip(jobs, started, strict=True):
            if not began:
                job.close()  # never entered: nothing to unwind, no "never awaited" warning
        closing = give_back(unstarted)  # synchronous: no cancellation can cut it short
        if closing:
            await gather_all(client.aclose() for client in closing)
        raise


_NO_KEYS = ("Invalid arguments", "The command has no key arguments")
"""COMMAND GETKEYS errors that mean "no keys" (as redis-py's parser reads them)."""


def _getkeys(args: tuple[Any, ...]) -> tuple[Any, ...]:
    """The COMMAND GETKEYS asking for ``args``' keys. Its name is bytes: redis-py looks
    response callbacks up by str name, and its callback for ``COMMAND GETKEYS`` decodes
    every key as UTF-8 with replacement (``b"\\xff"`` would come back as ``"\\ufffd"``, a
    different key on another node)."""
    return (b"COMMAND", b"GETKEYS", *args[0].split(), *args[1:])


class KeysParser(CommandsParser):
    """redis-py's ``CommandsParser`` whose movable keys come back as the bytes the server
    read (see :func:`_getkeys`), undecoded whatever the client's ``decode_responses``."""

    def _get_moveable_keys(self, redis_conn: Any, *args: Any) -> Any:
        try:
            return redis_conn.execute_command(*_getkeys(args), **{NEVER_DECODE: True})
        except redis.exceptions.ResponseError as error:
            if any(text in str(error) for text in _NO_KEYS):
                return None
            raise


class AsyncKeysParser(AsyncCommandsParser):
    """:class:`KeysParser` for the asyncio client (asking ``self.node``)."""

    async def _get_moveable_keys(self, *args: Any) -> Any:
        try:
            return await self.node.execute_command(*_getkeys(args), **{NEVER_DECODE: True})
        except redis.exceptions.ResponseError as error:
            if any(text in str(error) for text in _NO_KEYS):
                return None
            raise


# redis-py's get_command_policies() decodes bytes itself and fails on a client with
# decode_responses=True: both readers read the table through a raw client.


def read_command_table(
    sources: list[tuple[str, Slot[redis.Redis]]], failed: Failed
) -> tuple[CommandsParser, CommandTable]:
    """A parser holding the COMMAND table of the first of ``sources`` that answers, and the
    table; each node that fails is reported to ``failed(name, slot, False)``.

    Raises:
        redis.exceptions.ConnectionError, TimeoutError: no node answered (the last error).
    """
    failure: BaseException | None = None
    for name, slot in sources:
        raw = raw_client(slot.client)
        try:
            parser = KeysParser(raw)  # type: ignore[no-untyped-call]
        except CONNECTION_ERRORS as exc:
            failed(name, slot, False)
            failure = exc
            continue
        finally:
            raw.close()
        return parser, CommandTable(parser.commands, parser.get_command_policies())
    assert failure is not None
    raise failure


async def read_command_table_async(
    sources: list[tuple[str, Slot[aioredis.Redis]]], failed: Failed
) -> tuple[AsyncCommandsParser, CommandTable]:
    """:func:`read_command_table` for the asyncio client.

    Raises:
        redis.exceptions.ConnectionError, TimeoutError: no node answered (the last error).
    """
    failure: BaseException | None = None
    for name, slot in sources:
        raw = raw_async_client(slot.client)
        try:
            parser = AsyncKeysParser()
            await parser.initialize(raw)  # type: ignore[arg-type]
            # redis-py annotates the coroutine's result as Awaitable[...]; it is the
            # records themselves.
            policies = cast(PolicyRecords, await parser.get_command_policies())
        except CONNECTION_ERRORS as exc:
            failed(name, slot, False)
            failure = exc
            continue
        finally:
            await raw.aclose()
        return parser, CommandTable(parser.commands, policies)
    assert failure is not None
    raise failure


def _from_url(name: str, url: str, from_url: Callable[..., _T], options: Mapping[str, Any]) -> _T:
    """``from_url(url, **options)``, a bad URL reported without any part of its password.

    Raises:
        InvalidOptionError: redis-py refused the URL.
    """
    try:
        return from_url(url, **options)
    except ValueError:
        pass  # raised below, outside the handler: redis-py's message (kept neither as the
        # cause nor as the context) may quote part of the password, as when an unencoded
        # "/" in it makes the rest look like a port; the redacted URL says enough.
    raise InvalidOptionError(f"node {name!r}: bad URL {redact_url(url)!r}")
