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
from typing import Any

from django.core.cache.backends.redis import RedisCache, RedisCacheClient

from hashring import InvalidOptionError, Placement, redact_url
from hashring._topology.clients import client_name

from ..redis import ShardedRedis
from ._location import Location, read_location
from ._shared import shared

__all__ = ["ShardedRedisCache", "ShardedRedisCacheClient"]

#: ShardedRedis options a cache cannot take.
_REFUSED_OPTIONS = {
    "read_fallback": "a cache needs no fallback during a migration: a key not moved yet "
    "is a miss, computed again",
}


class ShardedRedisCacheClient(RedisCacheClient):
    """Django's RedisCacheClient whose ``get_client`` returns one ShardedRedis over the
    nodes of ``location``, whatever the key: every command finds its node there, and
    MGET, MSET and DEL are split per node and sent in parallel.

    Attributes:
        location: the nodes (see ``_location``; its repr shows no password).

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
        serializer, pool_class, parser_class, **options: as for Django's RedisCacheClient:
            the serialiser (Django's ``RedisSerializer`` by default), the connection pool
            class and the parser class (import paths or objects), and redis-py's
            connection options (``socket_timeout``, ``password``, ...).

    Raises:
        InvalidOptionError: ``read_fallback`` (an option of ShardedRedis a cache cannot
            take), ``placement`` with a topology
            file, a ``health`` that is not a bool, a URL redis-py refuses (shown without
            its password), or anything ShardedRedis refuses (placement name or nodes, node
            names, a placement option such as ``vnodes`` among the redis-py options).
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
        if not isinstance(health, bool):
            raise InvalidOptionError(
                f"OPTIONS['health'] must be True or False, got {type(health).__name__}"
            )
        if location.placement is not None and placement is not None:
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
        clients = {name: self._connect(name, url) for name, url in location.nodes.items()}
        _check_connection_options(next(iter(clients.values())).connection_pool)
        self._sharded = ShardedRedis(
            clients,
            placement=location.placement or placement or "ring",
            health=health,
            failure_limit=failure_limit,
            retry_timeout=retry_timeout,
            max_workers=max_workers,
            heartbeat_interval=heartbeat_interval,
            **self._pool_options,  # checked there (a placement option is refused), and used
            # for nodes added at runtime with a URL
        )

    def _connect(self, name: str, url: str) -> Any:
        """The redis-py client of one node, made as Django's client makes its own (no I/O).

        Raises:
            InvalidOptionError: redis-py refused the URL (shown without its password).
        """
        options = self._pool_options
        if self.location.version is not None:  # named as ShardedRedis.from_config names them
            options = {"client_name": client_name(self.location.version), **options}
        try:
            pool = self._pool_class.from_url(url, **options)
        except ValueError:
            pass  # raised below, outside the handler: redis-py's message may quote the
            # password (an unencoded '/' in it reads as a port); the redacted URL says enough
        else:
            return self._client(connection_pool=pool)
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
    ``heartbeat_interval``;
    ``serializer``, ``pool_class``, ``parser_class`` as Django's; the rest are redis-py
    connection options. Everything is checked, and every node's client made, when the
    first backend of a configuration is created in a process (no I/O but reading a
    topology file: connections open at the first command); every later backend of the
    same LOCATION and OPTIONS (Django makes one per thread, and one per request under
    ASGI) shares that client, its connections and its node health (see ``_shared``):
    O(size of the configuration) then.

    ``get_many``, ``set_many`` and ``delete_many`` cost one round trip per node involved,
    in parallel; ``clear`` flushes the database of every node (FLUSHDB on each).
    ``close`` keeps the pooled connections, as Django's RedisCache does.

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
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._cache.location!r})"
