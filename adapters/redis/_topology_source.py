"""Topologies kept in a Redis key, for fleets without shared files.

A topology is stored as a hash at one key (default ``hashring:topology``) of a Redis server
the operator chooses (a config server, not one of the shards)::

    toml      the topology document as published (UTF-8 TOML, as in a topology file)
    previous  during a migration, the document its ``[migration] previous`` names
    version   the document's :attr:`hashring.Topology.version`

Publishing (:meth:`RedisTopologySource.publish`, ``hashring topology push``) validates the
file first, then writes the three fields and announces the new version on the pub/sub channel
named like the key, in one Lua script: a compare-and-set on the version, so an operator
replaces only the version they name (none, for the first), and two operators cannot overwrite
each other. Followers (:meth:`RedisTopologySource.follow`) wake up on the announcement and
also look at the version every ``interval`` seconds, a backstop for a lost message or a
dropped connection.

A client computes the version from the document itself; when that differs from the stored
one (the publisher's ``hash_key_env`` secret differs from this process's), the topology is
refused: two processes keyed differently would place keys differently.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis

from hashring import (
    ConfigError,
    InvalidOptionError,
    Topology,
    TopologyConflictError,
    TopologyFollower,
    redact_url,
)
from hashring._topology.config import MAX_TOPOLOGY_BYTES, topology_from_bytes
from hashring._topology.watch import DEFAULT_WATCH_INTERVAL

__all__ = [
    "DEFAULT_TOPOLOGY_KEY",
    "SOURCE_ERRORS",
    "SOURCE_TIMEOUTS",
    "RedisTopologyFollower",
    "RedisTopologySource",
]

DEFAULT_TOPOLOGY_KEY = "hashring:topology"

_PUBLISH = """
local current = redis.call('HGET', KEYS[1], 'version')
if not current then current = '' end
if current ~= ARGV[1] then return {0, current} end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'toml', ARGV[2], 'version', ARGV[4])
if ARGV[3] ~= '' then redis.call('HSET', KEYS[1], 'previous', ARGV[3]) end
redis.call('PUBLISH', KEYS[1], ARGV[4])
return {1, ARGV[4]}
"""

SOURCE_ERRORS = (redis.RedisError, OSError)
SOURCE_TIMEOUTS = {"socket_timeout": 10.0, "socket_connect_timeout": 10.0}
"""redis-py options a source made from a URL gets unless told otherwise: a config server that
hangs makes a look fail after 10 s (logged, the running topology kept) instead of blocking
the follower for good."""
"""What reaching the source's server can raise (a caller catching them needs no redis-py)."""
STOP_SLICE = 0.25
"""The longest a follower blocks on its subscription before it looks whether it was stopped."""


class RedisTopologySource:
    """The topology stored at ``key`` on the Redis server at ``target`` (a URL, with any
    redis-py keyword arguments over :data:`SOURCE_TIMEOUTS`, or a ready ``redis.Redis``,
    which stays the caller's).

    Raises:
        InvalidOptionError: ``key`` is empty or has no UTF-8 form, or ``target`` is neither a
            URL nor a ``redis.Redis``.
    """

    def __init__(
        self, target: str | redis.Redis, *, key: str = DEFAULT_TOPOLOGY_KEY, **redis_kwargs: Any
    ) -> None:
        if not isinstance(key, str) or not key:
            raise InvalidOptionError("key= must be a non-empty str")
        try:
            key.encode()
        except UnicodeEncodeError:
            raise InvalidOptionError("key= has no UTF-8 form (a lone surrogate)") from None
        self.key = key
        if isinstance(target, redis.Redis):
            self._client, self._owned = target, False
            kwargs = target.connection_pool.connection_kwargs
            self._where = f"redis://{kwargs.get('host', '?')}:{kwargs.get('port', '?')} key {key}"
        elif isinstance(target, str):
            self._where = f"{redact_url(target)} key {key}"
            try:
                options = {**SOURCE_TIMEOUTS, **redis_kwargs}  # a hung server never hangs us
                self._client, self._owned = redis.Redis.from_url(target, **options), True
            except ValueError as exc:
                raise InvalidOptionError(f"{redact_url(target)}: {exc}") from None
        else:
            raise InvalidOptionError(
                f"target: a redis:// URL or a redis.Redis, not a {type(target).__name__}"
            )
        self._script = self._client.register_script(_PUBLISH)

    @property
    def where(self) -> str:
        """The server and key, for messages (password redacted)."""
        return self._where

    def version(self) -> str | None:
        """The stored version, or None when no topology is stored. One round trip.

        Raises:
            ConfigError: the key holds something other than a topology.
            redis.RedisError: the server cannot be reached.
        """
        try:
            raw = self._client.hget(self.key, "version")
        except redis.ResponseError as exc:
            raise self._not_a_topology(exc) from None
        return None if raw is None else _text(raw)

    def read(self) -> Topology | None:
        """The stored topology, validated, or None when none is stored. One round trip plus
        parsing and one placement build.

        Raises:
            ConfigError: the stored document is not valid, names a previous topology that is
                not stored with it, or its version here differs from the stored one (the
                publisher used another hash key secret).
            redis.RedisError: the server cannot be reached.
        """
        try:
            stored_fields = self._client.hgetall(self.key)
        except redis.ResponseError as exc:
            raise self._not_a_topology(exc) from None
        if not stored_fields:
            return None
        fields = {  # a ready client may decode responses: back to bytes
            _bytes(name): _bytes(value) for name, value in stored_fields.items()
        }
        document = fields.get(b"toml")
        if document is None:
            raise ConfigError(f"{self._where}: the hash has no toml field: not a topology")
        stored_previous = fields.get(b"previous")

        def previous(name: str) -> bytes:
            if stored_previous is None:
                raise ConfigError(
                    f"names previous {name!r:.80}, but no previous document is stored with "
                    "it: publish it with `hashring topology push`, which stores both"
                )
            return stored_previous

        topology = topology_from_bytes(document, self._where, read_previous=previous)
        stored = _text(fields.get(b"version", b""))
        if stored != topology.version:
            raise ConfigError(
                f"{self._where}: stored as version {stored!r:.40}, but it is version "
                f"{topology.version} here: is the hash_key_env secret the same as the "
                "publisher's? (publish with `hashring topology push`)"
            )
        return topology

    def publish(self, path: str | Path, *, expect: str | None) -> Topology:
        """Validate the topology file at ``path`` (and the previous file it names) and store
        it, if the stored version is ``expect`` (None: if none is stored); announce the new
        version on the channel named like the key. Atomic: one Lua script.

        Raises:
            ConfigError: the file is not a valid topology.
            TopologyConflictError: the stored version is not ``expect``; nothing written.
            redis.RedisError: the server cannot be reached.
        """
        documents: dict[str, bytes] = {}
        path = Path(path)

        def read_file(name: str) -> bytes:
            documents["previous"] = _read_bytes(path.parent / name)
            return documents["previous"]

        document = _read_bytes(path)
        topology = topology_from_bytes(document, str(path), read_previous=read_file)
        try:
            done, current = self._script(
                keys=[self.key],
                args=[expect or "", document, documents.get("previous", b""), topology.version],
            )
        except redis.ResponseError as exc:
            raise self._not_a_topology(exc) from None
        if not done:
            now = _text(current) or None
            raise TopologyConflictError(
                f"{self._where}: holds version {now or 'none'}, not "
                f"{expect or 'none'} as expected: someone published meanwhile, or the "
                "expected version is wrong; nothing was written (look with `hashring "
                f"topology show`, then publish with --expect {now or 'none'})",
                current=now,
                expected=expect,
            )
        return topology

    def follow(
        self,
        on_change: Callable[[Topology], object],
        *,
        interval: float = DEFAULT_WATCH_INTERVAL,
        start: bool = True,
    ) -> RedisTopologyFollower:
        """A :class:`RedisTopologyFollower` of this source (see it)."""
        return RedisTopologyFollower(self, on_change, interval=interval, start=start)

    def pubsub(self) -> redis.client.PubSub:
        """A pub/sub object on this source's server (the announcements' channel is
        :attr:`key`)."""
        pubsub: redis.client.PubSub = self._client.pubsub(  # type: ignore[no-untyped-call]
            ignore_subscribe_messages=True
        )
        return pubsub

    def close(self) -> None:
        """Close the connection pool, when this object created the client."""
        if self._owned:
            self._client.close()

    def __repr__(self) -> str:
        return f"RedisTopologySource({self._where!r})"

    def _not_a_topology(self, exc: redis.ResponseError) -> ConfigError:
        return ConfigError(f"{self._where}: not a hashring topology hash: {exc}")


class RedisTopologyFollower(TopologyFollower):
    """Follows a :class:`RedisTopologySource` and calls ``on_change`` with each new valid
    topology, from a daemon thread named ``hashring-topology-follow``: woken by the
    announcement on the key's channel, and looking at the stored version every
    ``interval`` seconds anyway. A server that cannot be reached, or a topology that is not
    valid, is logged on the ``hashring.topology`` logger once and the running topology is
    kept; the follower reconnects by itself.

    Raises:
        ConfigError: no valid topology is stored now (the first load must succeed).
        InvalidOptionError: ``interval`` is not a number of seconds in [0.01, 3600].
        redis.RedisError: the server cannot be reached for the first load.
    """

    THREAD_NAME = "hashring-topology-follow"

    def __init__(
        self,
        source: RedisTopologySource,
        on_change: Callable[[Topology], object],
        *,
        interval: float = DEFAULT_WATCH_INTERVAL,
        start: bool = True,
    ) -> None:
        self.source = source
        self._pubsub: redis.client.PubSub | None = None
        self._first = True
        super().__init__(on_change, interval=interval, start=start)

    def stop(self, timeout: float | None = None) -> None:
        super().stop(timeout)
        if self._thread is None or not self._thread.is_alive():
            self._drop_pubsub()

    def _where(self) -> str:
        return self.source.where

    def _look(self) -> object:
        try:
            return self.source.version()
        except ConfigError as exc:
            return ("not a topology", str(exc))
        except SOURCE_ERRORS as exc:
            return ("unreachable", type(exc).__name__)

    def _load(self) -> Topology:
        try:
            topology = self.source.read()
        except SOURCE_ERRORS as exc:
            if self._first:
                raise
            raise ConfigError(
                f"{self.source.where}: cannot be read: {type(exc).__name__}: {exc}"
            ) from None
        if topology is None:
            raise ConfigError(f"{self.source.where}: holds no topology")
        self._first = False
        return topology

    def _wait(self) -> bool:
        """Wait for an announcement, at most ``interval`` seconds; False once stopped."""
        if self._stopped.is_set():
            self._drop_pubsub()
            return False
        deadline = time.monotonic() + self.interval
        try:
            if self._pubsub is None:
                self._pubsub = self.source.pubsub()
                self._pubsub.subscribe(self.source.key)
            # In slices of at most STOP_SLICE seconds, so stop() is honoured that soon.
            while not self._stopped.is_set() and (left := deadline - time.monotonic()) > 0:
                if self._pubsub.get_message(timeout=min(left, STOP_SLICE)) is not None:
                    while self._pubsub.get_message(timeout=0) is not None:
                        pass  # several announcements: one look serves them all
                    break
        except SOURCE_ERRORS:
            self._drop_pubsub()
            self._stopped.wait(max(0.0, deadline - time.monotonic()))
        if self._stopped.is_set():
            self._drop_pubsub()
            return False
        return True

    def _drop_pubsub(self) -> None:
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            with contextlib.suppress(*SOURCE_ERRORS):
                pubsub.close()


def _text(raw: bytes | str) -> str:
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw


def _bytes(raw: bytes | str) -> bytes:
    return raw.encode() if isinstance(raw, str) else raw


def _read_bytes(path: Path) -> bytes:
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_TOPOLOGY_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the topology file: {exc.strerror}") from exc
    return raw
