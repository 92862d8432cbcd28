"""ShardedRedisCache: Django's RedisCache over several Redis servers, each key on the node
that owns it.

Built on Django's own backend (``django.core.cache.backends.redis``): ``ShardedRedisCache``
is a ``RedisCache`` whose client, a ``RedisCacheClient``, hands out one
:class:`~hashring.adapters.redis.ShardedRedis` (over one redis-py client per node, each
made as Django makes its own: ``pool_class.from_url(url, **options)``) where Django's hands
out a ``redis.Redis`` of the primary or of a random replica. Every cache method, its key
making and validation, its timeouts and its serialiser are therefore Django's; only
``set_many`` is the client's own (Django runs it as one MULTI/EXEC, which cannot span
nodes).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from django.core.cache.backends.redis import RedisCache, RedisCacheClient

from hashring import InvalidOptionError, Placement, redact_url
from hashring._topology.watch import DEFAULT_WATCH_INTERVAL

from ..redis import ShardedRedis
from ._location import Location, read_location
from ._shared import shared

__all__ = ["ShardedRedisCache", "ShardedRedisCacheClient"]

#: ShardedRedis options a cache cannot take.
_REFUSED_OPTIONS = {
    "read_fallback": "during a migration the read fallback comes from a topology file "
    "LOCATION whose [migration] previous names the topology it replaces",
    "node_client": "the cache makes each node's client as Django's RedisCacheClient does "
    "(pool_class, parser_class and the connection options)",
}


class ShardedRedisCacheClient(RedisCacheClient):
    """Django's RedisCacheClient whose ``get_client`` returns one ShardedRedis over the
    nodes of ``location``, whatever the key: every command finds its node there, and
    MGET, MSET and DEL are split per node and sent in parallel.

    Each node's redis-py client is made as Django's client makes its own,
    ``Redis(connection_pool=pool_class.from_url(url, **options))``, but owned by the
    ShardedRedis: closing it (when a followed topology drops or replaces the node) closes
    its pool. A topology file LOCATION is read as ``ShardedRedis.from_config`` reads it:
    connections named ``hashring-client-<version>``, and a ``[migration] previous`` runs
    the migration window (reads fall back to the previous topology's nodes, writes of
    moving keys are gated then pulled); with ``watch`` the client follows the file.

    Attributes:
        location: the nodes LOCATION named when the client was made (see ``_location``;
            its repr shows no password); a followed file's current nodes are the
            ShardedRedis's.

    Args:
        location: the nodes (see ``_location``).
        placement: an algorithm name (``"ring"``, the default, ``"maglev"``,
            ``"rendezvous"``, ``"jump"``) or a ready :class:`hashring.Placement` over the
            node names; refused with a topology file, which says its placement.
        health: eject a node after ``failure_limit`` consecutive connection errors for
            ``retry_timeout`` seconds, its keys served by the next node of their
            preference list meanwhile (see ShardedRedis); default off.
        failure_limit, retry_timeout, max_workers: as for ShardedRedis.
        heartbeat_interval: seconds between PINGs of every node from a daemon thread (one
            per shared client, so per configuration and process), counted as commands'
            outcomes are: a dead node is ejected, a recovered one restored, without
            waiting for traffic; None (default) for none.
        watch: follow the topology file LOCATION (``True``; default ``False``): a daemon
            thread looks at it every ``watch_interval`` seconds and switches the client to
            each new valid topology, as ``ShardedRedis.from_config(path, watch=True)``
            does; one thread per shared client, running for the life of the process
            (Django's ``close()`` at the end of a request leaves it running).
        watch_interval: seconds between the looks, in [0.01, 3600] (default 0.5, as for
            ``from_config``); only with ``watch``.
        serializer, pool_class, parser_class, **options: as for Django's RedisCacheClient:
            the serialiser (Django's ``RedisSerializer`` by default), the connection pool
            class and the parser class (import paths or objects), and redis-py's
            connection options (``socket_timeout``, ``password``, ...).

    Raises:
        InvalidOptionError: ``read_fallback`` or ``node_client`` (options of ShardedRedis a
            cache cannot take), ``placement`` with a topology file, a ``health`` or
            ``watch`` that is not a bool, ``watch`` without a topology file LOCATION,
            ``watch_interval`` without ``watch`` or out of range, a URL redis-py refuses
            (shown without its password), or anything ShardedRedis refuses (placement name
            or nodes, node names, a placement option such as ``vnodes`` among the redis-py
            options).
        ConfigError: the topology file is not valid (from ``from_config``).
    """

    _pool_class: Any  # set by RedisCacheClient.__init__
    _pool_options: dict[str, Any]
    _client: Any
    _serializer: Any

    def __init__(
        self,
        location: Location,
        *,
        placement: str | Placement | None = None,
        health: bool = False,
        failure_limit: int = 2,
        retry_timeout: float = 30.0,
        max_workers: int | None = None,
        heartbeat_interval: float | None = None,
        watch: bool = False,
        watch_interval: float | None = None,
        serializer: Any = None,
        pool_class: Any = None,
        parser_class: Any = None,
        **options: Any,
    ) -> None:
        refused = sorted(_REFUSED_OPTIONS.keys() & options.keys())
        if refused:
            name = refused[0]
            raise InvalidOptionError(
                f"OPTIONS[{name!r}] is not a cache option: {_REFUSED_OPTIONS[name]}"
            )
        for flag, value in (("health", health), ("watch", watch)):
            if not isinstance(value, bool):
                raise InvalidOptionError(
                    f"OPTIONS[{flag!r}] must be True or False, got {type(value).__name__}"
                )
        path = location.path
        _check_watch(path, watch, watch_interval)
        if path is not None and placement is not None:
            raise InvalidOptionError(
                "OPTIONS['placement'] cannot be used with a topology file LOCATION: the "
                "file's [placement] table says the placement"
            )
        super().__init__(
            list(location.nodes.values()),
            serializer=serializer,
            pool_class=pool_class,
            parser_class=parser_class,
            **options,
        )
        self.location = location
        sharded = dict(
            health=health,
            failure_limit=failure_limit,
            retry_timeout=retry_timeout,
            max_workers=max_workers,
            heartbeat_interval=heartbeat_interval,
            node_client=self._connect,
            **self._pool_options,  # checked there (a placement option is refused), and
            # given to _connect for every node
        )
        if path is None:
            self._sharded = ShardedRedis(location.nodes, placement=placement or "ring", **sharded)
        else:
            interval = DEFAULT_WATCH_INTERVAL if watch_interval is None else watch_interval
            self._sharded = ShardedRedis.from_config(
                path, watch=watch, watch_interval=interval, **sharded
            )
        try:
            _check_connection_options(next(iter(self._sharded.clients.values())).connection_pool)
        except BaseException:
            self._sharded.close()  # its follower thread too
            raise

    def _connect(self, name: str, url: str, options: Mapping[str, Any]) -> Any:
        """The redis-py client of one node, made as Django's client makes its own (no I/O),
        with ``options`` the ShardedRedis's (Django's pool options, and ``client_name``
        naming a topology file's version); closing it closes its pool, which the
        ShardedRedis owns.

        Raises:
            InvalidOptionError: redis-py refused the URL (shown without its password).
        """
        try:
            pool = self._pool_class.from_url(url, **options)
        except ValueError:
            pass  # raised below, outside the handler: redis-py's message may quote the
            # password (an unencoded '/' in it reads as a port); the redacted URL says enough
        else:
            client = self._client(connection_pool=pool)
            client.auto_close_connection_pool = True
            return client
        raise InvalidOptionError(f"node {name!r}: redis-py refused the URL {redact_url(url)!r}")

    def get_client(self, key: Any = None, *, write: bool = False) -> ShardedRedis:  # type: ignore[override]
        """The ShardedRedis of every node (``key`` and ``write`` do not choose a server:
        it routes each command itself). O(1), no I/O."""
        return self._sharded

    def set_many(self, data: Mapping[Any, Any], timeout: Any) -> None:
        """Write every key of ``data`` with ``timeout`` (seconds, or None for no expiry; 0
        deletes, as Django's MSET then EXPIRE 0 leaves nothing).

        Django sends MSET and one EXPIRE per key in one MULTI/EXEC, which cannot span
        nodes. Here: no timeout is one MSET split per node; a timeout is one
        ``SET key value EX timeout`` per key in a pipeline grouped per node (so no reader
        ever sees a key without its expiry); 0 is a DEL split per node. The nodes are
        written in parallel, each node's share atomically per key, the whole not
        atomically across nodes. O(len(data)).
        """
        client = self._sharded
        values = {key: self._serializer.dumps(value) for key, value in data.items()}
        if timeout == 0:  # serialised all the same: a value that cannot be raises, as there
            client.delete(*values)
            return
        if timeout is None:
            client.mset(values)
            return
        with client.pipeline(transaction=False) as pipe:
            for key, value in values.items():
                pipe.set(key, value, ex=timeout)
            pipe.execute()


def _check_watch(path: Path | None, watch: bool, interval: object) -> None:
    """Refuse ``watch`` without a topology file to follow, and ``watch_interval`` without
    ``watch`` (its range is checked by the watcher).

    Raises:
        InvalidOptionError: naming the option and what to do instead.
    """
    if watch and path is None:
        raise InvalidOptionError(
            "OPTIONS['watch'] follows a topology file: give LOCATION as the path of a "
            "topology .toml file (a list or dict of URLs does not change)"
        )
    if interval is not None and not watch:
        raise InvalidOptionError(
            "OPTIONS['watch_interval'] is how often a followed topology file is looked at: "
            "set OPTIONS['watch'] = True with it, or drop it"
        )


def _check_connection_options(pool: Any) -> None:
    """Refuse connection options redis-py does not take now, not at the first command (as
    Django's RedisCache does, with a TypeError): a connection object is made, and dropped,
    without connecting.

    Raises:
        InvalidOptionError: naming the option redis-py refused (never a value).
    """
    connection_class = getattr(pool, "connection_class", None)
    kwargs = getattr(pool, "connection_kwargs", None)
    if connection_class is None or not isinstance(kwargs, dict):
        return  # a pool class of another shape: its options are its own business
    try:
        connection_class(**kwargs)
    except TypeError as exc:
        raise InvalidOptionError(f"OPTIONS: redis-py refused an option: {exc}") from None


class ShardedRedisCache(RedisCache):
    """A Django cache backend over several Redis servers, each key on the node that owns it
    by consistent hashing; otherwise Django's ``RedisCache`` (every method, timeouts,
    versions, key functions, warnings, serialisation, and the ``a*`` async twins).

    ``LOCATION``: a list of URLs (or a str of them separated by ``,`` or ``;``), a
    ``{node name: URL}`` dict, or a topology file path (see ``_location``). ``OPTIONS``:
    ``placement``, ``health``, ``failure_limit``, ``retry_timeout``, ``max_workers``,
    ``heartbeat_interval``, ``watch`` and ``watch_interval`` (follow a topology file);
    ``serializer``, ``pool_class``, ``parser_class`` as Django's; the rest are redis-py
    connection options. Everything is checked, and every node's client made, when the
    first backend of a configuration is created in a process (no I/O but reading a
    topology file: connections open at the first command); every later backend of the
    same LOCATION and OPTIONS (Django makes one per thread, and one per request under
    ASGI) shares that client, its connections, its node health and its topology
    follower (see ``_shared``): O(size of the configuration) then. Without ``watch`` an
    edited topology file is a new configuration (told apart by size, modification time
    and inode), so backends made after the edit get a new client; with ``watch`` it is
    the same one, which has switched.

    ``get_many``, ``set_many`` and ``delete_many`` cost one round trip per node involved,
    in parallel; ``clear`` flushes the database of every node (FLUSHDB on each).
    ``close`` (which Django calls at the end of every request) keeps the pooled
    connections and the topology follower, as Django's RedisCache keeps its pools.

    Raises:
        InvalidOptionError: a bad LOCATION or OPTIONS (see ``read_location`` and
            :class:`ShardedRedisCacheClient`); ConfigError: a topology file that is not
            valid.
    """

    _cache: ShardedRedisCacheClient  # RedisCache's cached_property, set in __init__

    def __init__(self, server: Any, params: dict[str, Any]) -> None:
        super().__init__(server, params)
        options = params.get("OPTIONS", {})
        if not isinstance(options, Mapping) or not all(isinstance(k, str) for k in options):
            raise InvalidOptionError("OPTIONS must be a dict of str keys")
        self._class = ShardedRedisCacheClient
        client_class = self._class
        self._cache = shared(
            (client_class, server, options),
            lambda: client_class(read_location(server), **options),
            followed=options.get("watch") is True,
        )

    def __repr__(self) -> str:
        """The running nodes (redacted URLs) and placement: a followed file's latest."""
        return f"{type(self).__name__}({self._cache.get_client()!r})"
