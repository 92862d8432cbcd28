"""ShardedRedisCache: Flask-Caching's RedisCache over a ShardedRedis client.

The cache *is* Flask-Caching's ``RedisCache`` (its subclass), given a
:class:`~hashring.adapters.redis.ShardedRedis` where RedisCache takes one ``redis.Redis``:
every method, the key prefix, the timeouts and the serialiser are RedisCache's own code
(of the installed Flask-Caching and cachelib), sending the same commands with the same
bytes, which the client routes per key. Nothing of it is rewritten here: what this module
adds is the configuration (``factory``), ``close`` and a ``repr`` without credentials.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Flask
from flask_caching.backends.rediscache import RedisCache

from hashring import InvalidOptionError

from ..redis import ShardedRedis
from ._settings import read_settings

__all__ = ["ShardedRedisCache"]


class ShardedRedisCache(RedisCache):
    """Flask-Caching's RedisCache, its keys spread over several Redis servers by a hashring
    placement. Used from a Flask app's config::

        CACHE_TYPE = "hashring.adapters.flask.ShardedRedisCache"
        CACHE_REDIS_NODES = ["redis://10.0.0.1:6379/0", "redis://10.0.0.2:6379/0"]
        CACHE_OPTIONS = {"placement": "ring", "health": True}   # and redis-py keywords

    (see :meth:`factory` for every key), or built around a ready client:
    ``ShardedRedisCache(ShardedRedis(nodes), key_prefix="app:")``.

    Methods, answers and the bytes stored are those of
    ``flask_caching.backends.rediscache.RedisCache``: ``get``, ``get_many``, ``get_dict``,
    ``set``, ``add``, ``set_many``, ``delete``, ``delete_many``, ``unlink``, ``has``,
    ``clear``, ``inc``, ``dec``. Costs: one command to one node for a single key;
    ``get_many`` and ``unlink`` split their MGET/UNLINK per node and ``set_many`` its
    pipeline, the nodes' parts sent in parallel; ``delete_many`` (Flask-Caching 2.5) one
    DEL split per node, then one EXISTS per key, as RedisCache; ``clear`` runs KEYS on
    every node then DEL per node (with a key prefix), or FLUSHDB on every node (without).

    Args:
        client: the ShardedRedis the cache talks to (it must not decode responses).
        default_timeout: seconds a value lives when ``set`` is given no timeout
            (``0``: forever).
        key_prefix: a str, or a callable returning one, put before every key.
        ignore_delete_many_errors: if false, ``delete_many`` raises ``RuntimeError`` when a
            key is still there after the delete.
        check_connection: PING every node now; raise ``RuntimeError`` if one fails.

    Raises:
        InvalidOptionError: ``client`` is not a ShardedRedis, or decodes responses.
        RuntimeError: with ``check_connection``, a node did not answer (naming it).
    """

    def __init__(
        self,
        client: ShardedRedis,
        *,
        default_timeout: int = 300,
        key_prefix: str | Callable[[], str] | None = None,
        ignore_delete_many_errors: bool = False,
        check_connection: bool = False,
    ) -> None:
        if not isinstance(client, ShardedRedis):
            raise InvalidOptionError(
                f"ShardedRedisCache takes a ShardedRedis client, not {type(client).__name__}"
            )
        if client.get_connection_kwargs().get("decode_responses"):
            raise InvalidOptionError(
                "decode_responses is not supported by a Redis cache (values are bytes: "
                "pickles and integers), as for Flask-Caching's RedisCache"
            )
        RedisCache.__init__(
            self,
            host=client,
            default_timeout=default_timeout,
            key_prefix=key_prefix,  # type: ignore[arg-type]  # cachelib takes a callable too
            ignore_delete_many_errors=ignore_delete_many_errors,
        )
        self.client = client
        if check_connection:
            for name, node in client.clients.items():
                try:
                    node.ping()
                except Exception as exc:
                    raise RuntimeError(f"could not connect to Redis node {name!r}: {exc}") from exc

    @classmethod
    def factory(
        cls,
        app: Flask,
        config: dict[str, Any],
        args: list[Any],
        kwargs: dict[str, Any],
    ) -> ShardedRedisCache:
        """Build the cache from a Flask app's configuration (Flask-Caching calls this for
        ``CACHE_TYPE = "hashring.adapters.flask.ShardedRedisCache"``). No I/O unless
        ``check_connection`` is set: nodes are connected on first use.

        Keys read:

        * ``CACHE_REDIS_NODES``: a list of ``redis://``/``rediss://``/``unix://`` URLs
          (each node named by its URL without scheme, credentials and query:
          ``10.0.0.1:6379/0``), a ``{name: url or redis.Redis}`` dict, or the path of a
          topology file (``hashring.load_topology``: nodes, URLs, weights, algorithm);
        * ``CACHE_OPTIONS``: the client's keywords, ShardedRedis's (``placement``,
          ``health``, ``failure_limit``, ``retry_timeout``, ``max_workers``,
          ``heartbeat_interval``, ``read_fallback``), with a topology file
          ``from_config``'s ``watch`` and ``watch_interval`` (follow the file: a daemon
          thread switches the client to each new valid topology, until :meth:`close`),
          and redis-py's (``socket_timeout``, ...), and the cache's
          (``check_connection``);
        * ``CACHE_REDIS_PASSWORD``: the password of nodes whose URL carries none;
        * Flask-Caching's ``CACHE_KEY_PREFIX``, ``CACHE_DEFAULT_TIMEOUT``,
          ``CACHE_IGNORE_ERRORS`` and ``CACHE_SERIALIZER`` as for RedisCache.

        Raises:
            InvalidOptionError: see :func:`read_settings`; also a bad node name, URL or
                placement (from ShardedRedis).
            ConfigError: the topology file is not valid.
        """
        settings = read_settings(config, args, kwargs)
        if settings.path is not None:
            client = ShardedRedis.from_config(settings.path, **settings.client)
        else:
            assert settings.nodes is not None
            client = ShardedRedis(settings.nodes, **settings.client)
        try:
            return cls(client, **settings.cache)
        except BaseException:
            client.close()
            raise

    def close(self) -> None:
        """Close the client: its node connections, its threads and the follower of a
        watched topology file."""
        self.client.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.client!r}, key_prefix={self.key_prefix!r})"
