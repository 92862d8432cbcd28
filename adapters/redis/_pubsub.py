"""Sharded pub/sub: ``pubsub()`` of ``ShardedRedis`` and ``AsyncShardedRedis``.

One redis-py ``PubSub`` per node it needs: SUBSCRIBE and SSUBSCRIBE send each channel to its
owner (placed like a key, as PUBLISH routes it, see ``_channels``), PSUBSCRIBE sends each
pattern to every node (a message is published on its channel's owner, which may be any
node), and the nodes' messages are read as one stream whose (un)subscribe confirmations
read as one server's (``_channels.Confirmations``: same counts, in the order sent, a
pattern confirmed once). Handlers (``subscribe(ch=handler)``, or
``redis.typing.Subscription(name, handler)`` given positionally, as redis-py 8.1 takes them)
work as in redis-py: the node's ``PubSub`` calls them. Published messages of different nodes
come in the order they are read (one server orders them by publication; nodes cannot).

Async: one reader task per node in use; none outlives ``aclose()``, and
``AsyncShardedRedis.aclose()`` stops them (so its pool's disconnect ends the subscriptions,
as redis.asyncio's; reading the pub/sub again reconnects). ``get_message`` before anything
is subscribed (or connected) raises RuntimeError, as redis.asyncio; the sync one waits and
returns None, as redis-py. Names of redis-py's ``PubSub`` that belong to its one connection
(``connection``, ``parse_response``, ...) raise ``RefusedAttributeError`` (``_surface``).

Costs: SUBSCRIBE of k channels is one command per owner node (k placement lookups);
PSUBSCRIBE is one command per node. Membership is read when a subscription is made: a node
added later receives no pattern, and a channel whose owner changes stays subscribed on its
old owner; re-subscribe after ``add_node``/``remove_node``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import select
import threading
import time
import weakref
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from typing import Any, Generic, Protocol, TypeVar

import redis
import redis.asyncio as aioredis
from redis.client import PubSubWorkerThread
from redis.commands.helpers import (
    list_or_args,
    parse_pubsub_subscriptions,
    pubsub_subscription_args,
)
from redis.utils import warn_deprecated

from hashring import EmptyRingError

from ._channels import Confirmations
from ._surface import refuse_pubsub_attributes

__all__ = ["AsyncShardedPubSub", "ShardedPubSub", "stop_readers"]

_PUBLISHED = ("message", "pmessage", "smessage", "pong")
_HOLDING = {"subscribe": "channels", "unsubscribe": "channels", "ssubscribe": "shard",
            "sunsubscribe": "shard"}  # fmt: skip

P = TypeVar("P")


class _Owners(Protocol):
    """What a pub/sub uses of its sharded client."""

    def node_for(self, key: Any) -> str: ...
    def get_encoder(self) -> Any: ...

    @property
    def clients(self) -> Mapping[str, Any]: ...


def _names(args: Sequence[Any]) -> list[Any]:
    """Channels or patterns given as redis-py takes them: names or lists of names."""
    return list(list_or_args(args[0], args[1:])) if args else []


def _subscriptions(args: Sequence[Any], kwargs: Mapping[str, Any]) -> dict[Any, Any]:
    """Name -> handler (None without) of a (P|S)SUBSCRIBE, as redis-py reads them: names,
    lists of names, ``redis.typing.Subscription(name, handler)`` objects and
    ``name=handler`` keywords (a later one of a name wins)."""
    return parse_pubsub_subscriptions(tuple(args), kwargs)


def _arguments(subscriptions: Mapping[Any, Any]) -> list[Any]:
    """``subscriptions`` as positional arguments of a node PubSub's (p|s)subscribe: a name,
    or a ``Subscription`` carrying its handler (binary names need no keyword)."""
    return pubsub_subscription_args(subscriptions)


class _Shared(Generic[P]):
    """The bookkeeping both pub/subs share: one node PubSub per node used, which node holds
    each channel, and the confirmations merged. No I/O."""

    PUBLISH_MESSAGE_TYPES = redis.client.PubSub.PUBLISH_MESSAGE_TYPES
    UNSUBSCRIBE_MESSAGE_TYPES = redis.client.PubSub.UNSUBSCRIBE_MESSAGE_TYPES
    HEALTH_CHECK_MESSAGE = redis.client.PubSub.HEALTH_CHECK_MESSAGE

    def __init__(self, sharded: _Owners, kwargs: dict[str, Any]) -> None:
        self._sharded = sharded
        self.ignore_subscribe_messages = bool(kwargs.pop("ignore_subscribe_messages", False))
        self._kwargs = kwargs
        self._subs: dict[str, P] = {}
        self._held: dict[str, dict[Any, str]] = {"channels": {}, "shard": {}}
        self._confirmations = Confirmations()
        self._outbox: deque[dict[str, Any]] = deque()
        self._turn = itertools.count()

    def _sub(self, node: str) -> P:
        sub = self._subs.get(node)
        if sub is None:
            client = self._sharded.clients[node]
            sub = self._subs[node] = client.pubsub(ignore_subscribe_messages=False, **self._kwargs)
        return sub

    def _by_owner(
        self, kind: str, args: Sequence[Any], kwargs: Mapping[str, Any]
    ) -> dict[str, list[Any]]:
        """The arguments of a SUBSCRIBE or SSUBSCRIBE (``kind``) for each node owning some
        of its channels (names, or ``Subscription`` objects with their handlers), now held
        there. O(channels) lookups."""
        subscriptions = _subscriptions(args, kwargs)
        groups: dict[str, dict[Any, Any]] = {}
        held = self._held[_HOLDING[kind]]
        for name, handler in subscriptions.items():
            node = self._sharded.node_for(name)
            groups.setdefault(node, {})[name] = handler
            held[name] = node
        self._confirmations.sent(kind, [self._normal(name) for name in subscriptions], 1)
        return {node: _arguments(group) for node, group in groups.items()}

    def _holding(self, kind: str, args: Sequence[Any]) -> dict[str, list[Any]]:
        """The nodes an UNSUBSCRIBE or SUNSUBSCRIBE (``kind``) goes to, with their names:
        where the channels are held (every node holding any when none is given)."""
        held = self._held[_HOLDING[kind]]
        names = _names(args)
        if not names:
            nodes = sorted(set(held.values()))
            if not nodes:  # one node answers "nothing to unsubscribe", as one server
                nodes = sorted(self._subs)[:1] or [self._first()]
            held.clear()
            self._confirmations.sent_all(kind, 1)
            return {node: [] for node in nodes}
        groups: dict[str, list[Any]] = {}
        for name in names:
            node = held.pop(name, None) or self._sharded.node_for(name)
            groups.setdefault(node, []).append(name)
        self._confirmations.sent(kind, [self._normal(name) for name in names], 1)
        return groups

    def _normal(self, name: Any) -> Any:
        """A channel or pattern as messages name it (bytes, or str when decoded)."""
        encoder = self._sharded.get_encoder()
        return encoder.decode(encoder.encode(name))

    def _first(self) -> str:
        names = sorted(self._sharded.clients)
        if not names:
            raise EmptyRingError("the client has no nodes: add_node() one first")
        return names[0]

    def _every(self, kind: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> list[str]:
        """The nodes a PSUBSCRIBE (every node) or PUNSUBSCRIBE (every node holding
        patterns) goes to; each confirms every pattern."""
        nodes = sorted(self._sharded.clients) if kind == "psubscribe" else sorted(self._subs)
        if not nodes:
            nodes = [self._first()]
        given = _subscriptions(args, kwargs) if kind == "psubscribe" else _names(args)
        names = [self._normal(name) for name in given]
        if names:
            self._confirmations.sent(kind, names, len(nodes))
        else:
            self._confirmations.sent_all(kind, len(nodes))
        return nodes

    def _take(self, message: Any, ignore: bool) -> tuple[bool, Any]:
        """Merge one node's message (None: nothing new) into the outbox and take the next
        message to deliver: (True, message), or (False, None) when none is ready (a
        duplicate, an ignored confirmation, or one waiting for an earlier one)."""
        if message is not None:
            self._outbox.extend(self._confirmations.merge(message))
        while self._outbox:
            taken = self._outbox.popleft()
            if taken["type"] in _PUBLISHED or not (ignore or self.ignore_subscribe_messages):
                return True, taken
        return False, None

    def _order(self) -> list[P]:
        """The node PubSubs that may have messages, starting at a rotating one (fair)."""
        subs = [sub for sub in self._subs.values() if getattr(sub, "connection", None)]
        if not subs:
            return subs
        start = next(self._turn) % len(subs)
        return subs[start:] + subs[:start]

    @property
    def encoder(self) -> Any:
        """The client's encoder (every node's encodes alike), as ``PubSub.encoder``."""
        return self._sharded.get_encoder()

    @property
    def channels(self) -> dict[Any, Any]:
        """Channel -> handler (None without), over every node, as ``PubSub.channels``."""
        return {k: v for sub in self._subs.values() for k, v in sub.channels.items()}  # type: ignore[attr-defined]

    @property
    def patterns(self) -> dict[Any, Any]:
        """Pattern -> handler (None without), as ``PubSub.patterns`` (each once)."""
        return {k: v for sub in self._subs.values() for k, v in sub.patterns.items()}  # type: ignore[attr-defined]

    @property
    def shard_channels(self) -> dict[Any, Any]:
        """Shard channel -> handler (None without), as ``PubSub.shard_channels``."""
        return {k: v for sub in self._subs.values() for k, v in sub.shard_channels.items()}  # type: ignore[attr-defined]

    @property
    def subscribed(self) -> bool:
        """Whether anything is subscribed, as redis-py's ``PubSub.subscribed``: from the
        first subscription sent until the confirmation that leaves nothing subscribed is
        read (see ``Confirmations.active``)."""
        return self._confirmations.active

    def _check_handlers(self) -> None:
        for kind, names in (("Channel", self.channels), ("Pattern", self.patterns),
                            ("Shard Channel", self.shard_channels)):  # fmt: skip
            for name, handler in names.items():
                if handler is None:
                    raise redis.exceptions.PubSubError(
                        f"{kind}: {name!r} has no handler registered"
                    )


class ShardedPubSub(_Shared[redis.client.PubSub]):
    """A redis-py ``PubSub`` over a ``ShardedRedis``'s nodes (see the module docstring).

    ``get_message`` reads the nodes in turn (waiting on all their sockets at once when none
    has a message), so one thread reads everything; ``listen`` and ``run_in_thread`` work
    on top of it as in redis-py.
    """

    def __init__(self, sharded: _Owners, kwargs: dict[str, Any]) -> None:
        super().__init__(sharded, kwargs)
        self._woken = threading.Event()  # set by every subscription, for get_message

    def subscribe(self, *args: Any, **kwargs: Callable[..., Any]) -> None:
        """Subscribe each channel on its owner. O(channels) lookups, one command per node."""
        for node, arguments in self._by_owner("subscribe", args, kwargs).items():
            self._sub(node).subscribe(*arguments)
        self._woken.set()

    def ssubscribe(self, *args: Any, target_node: Any = None, **kwargs: Callable[..., Any]) -> None:
        """Subscribe each shard channel on its owner (SPUBLISH routes it there)."""
        for node, arguments in self._by_owner("ssubscribe", args, kwargs).items():
            self._sub(node).ssubscribe(*arguments)
        self._woken.set()

    def psubscribe(self, *args: Any, **kwargs: Callable[..., Any]) -> None:
        """Subscribe the patterns on every node (one confirmation each, as one server)."""
        arguments = _arguments(_subscriptions(args, kwargs))
        for node in self._every("psubscribe", args, kwargs):
            self._sub(node).psubscribe(*arguments)
        self._woken.set()

    def unsubscribe(self, *args: Any) -> None:
        """Unsubscribe the channels (every channel when none is given) where they are held."""
        for node, names in self._holding("unsubscribe", args).items():
            self._sub(node).unsubscribe(*names)  # type: ignore[no-untyped-call]

    def sunsubscribe(self, *args: Any, target_node: Any = None) -> None:
        """Unsubscribe the shard channels (all when none is given) where they are held."""
        for node, names in self._holding("sunsubscribe", args).items():
            self._sub(node).sunsubscribe(*names)  # type: ignore[no-untyped-call]

    def punsubscribe(self, *args: Any) -> None:
        """Unsubscribe the patterns (all when none is given) on every node holding them."""
        for node in self._every("punsubscribe", args, {}):
            self._sub(node).punsubscribe(*args)  # type: ignore[no-untyped-call]

    def get_message(
        self, ignore_subscribe_messages: bool = False, timeout: float | None = 0.0
    ) -> Any:
        """The next message of any node, or None after ``timeout`` seconds (None: wait until
        one comes), as ``PubSub.get_message``. Handled messages are consumed (None).
        While nothing is subscribed it waits for a subscription (from another thread) and
        reads nothing, as redis-py."""
        deadline = None if timeout is None else time.monotonic() + timeout
        found, message = self._take(None, ignore_subscribe_messages)
        if found:
            return message
        if not self.subscribed:
            self._woken.clear()
            if not self.subscribed and not self._woken.wait(timeout):
                return None
        while True:
            subs = self._order()
            read = False
            for sub in subs:
                response = sub.parse_response(block=False, timeout=0)  # type: ignore[no-untyped-call]
                if response is None:
                    continue
                read = True
                handled = sub.handle_message(response, False)  # type: ignore[no-untyped-call]
                if handled is None:
                    return None  # a handler took it, as redis-py
                found, message = self._take(handled, ignore_subscribe_messages)
                if found:
                    return message
            if read:
                continue  # something came that is not to deliver yet: read on at once
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return None
            sockets = [s for s in (getattr(sub.connection, "_sock", None) for sub in subs) if s]
            if not sockets:
                if remaining is None:
                    raise RuntimeError(
                        "pubsub connection not set: did you forget to call subscribe() "
                        "or psubscribe()?"
                    )
                time.sleep(remaining)  # as redis-py: nothing subscribed, wait out the timeout
                return None
            with contextlib.suppress(OSError, ValueError):
                select.select(sockets, [], [], remaining)

    get_sharded_message = get_message

    def listen(self) -> Iterator[Any]:
        """Every message of every node while anything is subscribed, as ``PubSub.listen``."""
        while self.subscribed or self._outbox:
            message = self.get_message(timeout=None)
            if message is not None:
                yield message

    def ping(self, message: Any = None) -> bool:
        """PING one node's pub/sub connection (one PONG comes back, as from one server)."""
        nodes = [n for n, s in self._subs.items() if s.connection] or [self._first()]
        return bool(self._sub(nodes[0]).ping(message))

    def run_in_thread(
        self,
        sleep_time: float = 0.0,
        daemon: bool = False,
        exception_handler: Any = None,
        pubsub: Any = None,
        sharded_pubsub: bool = False,
    ) -> PubSubWorkerThread:
        """A thread calling handlers for every message, as ``PubSub.run_in_thread``.

        Raises:
            redis.exceptions.PubSubError: a channel or pattern without a handler.
        """
        self._check_handlers()
        thread = PubSubWorkerThread(
            pubsub or self,
            sleep_time,
            daemon=daemon,
            exception_handler=exception_handler,
            sharded_pubsub=sharded_pubsub,
        )
        thread.start()
        return thread

    def close(self) -> None:
        """Close every node's pub/sub connection and forget every subscription."""
        subs, self._subs = self._subs, {}
        for sub in subs.values():
            sub.close()
        self._held = {"channels": {}, "shard": {}}
        self._confirmations.clear()
        self._outbox.clear()

    reset = close

    def __enter__(self) -> ShardedPubSub:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class AsyncShardedPubSub(_Shared[aioredis.client.PubSub]):
    """A ``redis.asyncio`` ``PubSub`` over an ``AsyncShardedRedis``'s nodes.

    One reader task per node in use feeds a queue that ``get_message``, ``listen`` and
    ``run`` read; ``aclose`` cancels them.
    """

    def __init__(self, sharded: _Owners, kwargs: dict[str, Any]) -> None:
        super().__init__(sharded, kwargs)
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._readers: dict[str, asyncio.Task[None]] = {}
        _LIVE.add(self)

    async def _read(self, sub: aioredis.client.PubSub) -> None:
        while True:
            try:
                response = await sub.parse_response(block=True)
                if response is not None:
                    await self._queue.put(await sub.handle_message(response, False))  # type: ignore[no-untyped-call]
            except asyncio.CancelledError:
                raise
            except Exception as error:  # handed to the reader of the queue
                await self._queue.put(error)
                return

    def _start(self, node: str) -> None:
        """Start the node's reader, unless one is running (one that failed is replaced)."""
        reader = self._readers.get(node)
        if reader is None or reader.done():
            self._readers[node] = asyncio.ensure_future(self._read(self._subs[node]))

    async def _resume(self) -> None:
        """Start a reader for every node PubSub holding a connection that has none running
        (stopped by the client's ``aclose`` or ended by an error), reconnecting (and so
        re-subscribing) first, as redis-py's PubSub does when read again."""
        for node, sub in self._subs.items():
            reader = self._readers.get(node)
            connection = sub.connection
            if connection is None or (reader is not None and not reader.done()):
                continue
            if not connection.is_connected:
                await connection.connect()
            self._start(node)

    async def _stop(self) -> None:
        """Cancel the readers and wait until they end (those of this event loop; a
        reader of a loop that is gone is only cancelled)."""
        readers, self._readers = self._readers, {}
        loop = asyncio.get_running_loop()
        mine = []
        for task in readers.values():
            task.cancel()
            if task.get_loop() is loop:
                mine.append(task)
        for task in mine:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def subscribe(self, *args: Any, **kwargs: Callable[..., Any]) -> None:
        """Subscribe each channel on its owner. O(channels) lookups, one command per node."""
        for node, arguments in self._by_owner("subscribe", args, kwargs).items():
            await self._sub(node).subscribe(*arguments)
            self._start(node)

    async def ssubscribe(
        self, *args: Any, target_node: Any = None, **kwargs: Callable[..., Any]
    ) -> None:
        """Subscribe each shard channel on its owner (SPUBLISH routes it there)."""
        for node, arguments in self._by_owner("ssubscribe", args, kwargs).items():
            await self._sub(node).ssubscribe(*arguments)
            self._start(node)

    async def psubscribe(self, *args: Any, **kwargs: Callable[..., Any]) -> None:
        """Subscribe the patterns on every node (one confirmation each, as one server)."""
        arguments = _arguments(_subscriptions(args, kwargs))
        for node in self._every("psubscribe", args, kwargs):
            await self._sub(node).psubscribe(*arguments)
            self._start(node)

    async def unsubscribe(self, *args: Any) -> None:
        """Unsubscribe the channels (every channel when none is given) where they are held."""
        for node, names in self._holding("unsubscribe", args).items():
            await self._sub(node).unsubscribe(*names)
            self._start(node)

    async def sunsubscribe(self, *args: Any, target_node: Any = None) -> None:
        """Unsubscribe the shard channels (all when none is given) where they are held."""
        for node, names in self._holding("sunsubscribe", args).items():
            await self._sub(node).sunsubscribe(*names)
            self._start(node)

    async def punsubscribe(self, *args: Any) -> None:
        """Unsubscribe the patterns (all when none is given) on every node holding them."""
        for node in self._every("punsubscribe", args, {}):
            await self._sub(node).punsubscribe(*args)
            self._start(node)

    async def get_message(
        self, ignore_subscribe_messages: bool = False, timeout: float | None = 0.0
    ) -> Any:
        """The next message of any node, or None after ``timeout`` seconds (None: wait until
        one comes), as ``PubSub.get_message``. Handled messages are consumed (None).
        Cancelling it while it waits cancels it (a message that came meanwhile stays queued).

        Raises:
            RuntimeError: nothing was ever subscribed (or pinged) since creation or
                ``aclose``, as redis.asyncio ("pubsub connection not set").
        """
        found, message = self._take(None, ignore_subscribe_messages)
        if found:
            return message
        if not any(sub.connection is not None for sub in self._subs.values()):
            raise RuntimeError(
                "pubsub connection not set: did you forget to call subscribe() or psubscribe()?"
            )
        await self._resume()
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while not found:
            remaining = None if deadline is None else max(0.0, deadline - loop.time())
            try:
                if remaining == 0:
                    item = self._queue.get_nowait()
                else:  # not wait_for: on 3.11 it can swallow a cancellation (bpo-42130)
                    async with asyncio.timeout(remaining):
                        item = await self._queue.get()
            except (TimeoutError, asyncio.QueueEmpty):
                return None
            if isinstance(item, Exception):
                raise item
            if item is None:
                return None  # a handler took it, as redis-py
            found, message = self._take(item, ignore_subscribe_messages)
        return message

    async def listen(self) -> AsyncIterator[Any]:
        """Every message of every node while anything is subscribed, as ``PubSub.listen``."""
        while self.subscribed or self._outbox:
            message = await self.get_message(timeout=None)
            if message is not None:
                yield message

    async def connect(self) -> None:
        """Connect the pub/sub, as ``PubSub.connect``: every node connection in use (the
        first node's when none is), reconnecting (and re-subscribing) a dropped one.
        ``get_message`` then reads instead of raising RuntimeError. One connect per node."""
        for node in sorted(self._subs) or [self._first()]:
            await self._sub(node).connect()  # type: ignore[no-untyped-call]
            self._start(node)

    async def ping(self, message: Any = None) -> None:
        """PING one node's pub/sub connection (one PONG comes back, as from one server)."""
        nodes = [n for n, s in self._subs.items() if s.connection] or [self._first()]
        await self._sub(nodes[0]).ping(message)
        self._start(nodes[0])

    async def run(
        self, *, exception_handler: Any = None, poll_timeout: float = 1.0, pubsub: Any = None
    ) -> None:
        """Call handlers for every message until cancelled, as ``PubSub.run``.

        Raises:
            redis.exceptions.PubSubError: a channel or pattern without a handler.
        """
        self._check_handlers()
        while True:
            try:
                await (pubsub or self).get_message(
                    ignore_subscribe_messages=True, timeout=poll_timeout
                )
            except asyncio.CancelledError:
                raise
            except BaseException as error:
                if exception_handler is None:
                    raise
                result = exception_handler(error, self)
                if asyncio.iscoroutine(result):
                    await result
            await asyncio.sleep(0)

    async def aclose(self) -> None:
        """Stop the readers (none outlives this), close every node's pub/sub connection,
        forget everything: ``get_message`` then raises RuntimeError, as redis.asyncio."""
        await self._stop()
        subs, self._subs = self._subs, {}
        for sub in subs.values():
            await sub.aclose()  # type: ignore[no-untyped-call]
        self._held = {"channels": {}, "shard": {}}
        self._confirmations.clear()
        self._outbox.clear()
        self._queue = asyncio.Queue()

    async def close(self) -> None:
        """Deprecated alias of :meth:`aclose` (DeprecationWarning), as redis.asyncio's."""
        warn_deprecated("close", "Use aclose() instead", "5.0.1", stacklevel=3)  # type: ignore[no-untyped-call]
        await self.aclose()

    async def reset(self) -> None:
        """Deprecated alias of :meth:`aclose` (DeprecationWarning), as redis.asyncio's."""
        warn_deprecated("reset", "Use aclose() instead", "5.0.1", stacklevel=3)  # type: ignore[no-untyped-call]
        await self.aclose()

    async def __aenter__(self) -> AsyncShardedPubSub:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


refuse_pubsub_attributes(ShardedPubSub)
refuse_pubsub_attributes(AsyncShardedPubSub)

_LIVE: weakref.WeakSet[AsyncShardedPubSub] = weakref.WeakSet()
"""Every AsyncShardedPubSub not yet garbage: ``stop_readers`` finds a client's here."""


async def stop_readers(sharded: object) -> None:
    """Stop the reader tasks of every pub/sub of ``sharded`` (``AsyncShardedRedis.aclose``).

    redis.asyncio's ``aclose`` disconnects the pool, the pub/sub's connection included, and
    nothing reads it again unless the application does; a reader task left running would
    reconnect and re-subscribe at once (a later PUBLISH would count it). The pub/subs keep
    their subscriptions: reading one again resumes its readers, as redis-py reconnects.
    O(live pub/subs)."""
    for pubsub in list(_LIVE):
        if pubsub._sharded is sharded:
            await pubsub._stop()
