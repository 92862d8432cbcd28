"""The Flask-Caching configuration of ShardedRedisCache: the keys it reads, checked, and the
arguments of the cache and of its :class:`~hashring.adapters.redis.ShardedRedis` client.

No I/O: building the client connects lazily (see ``_cache``). Every refusal is an
:class:`~hashring.InvalidOptionError` (a ``ValueError``) naming the configuration key; a
password or a URL's credentials never appear in one (URLs are shown through
:func:`hashring.redact_url`, option values not at all).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hashring import InvalidOptionError, redact_url
from hashring._topology.urls import node_name

__all__ = [
    "CACHE_KEYWORDS",
    "NODES_KEY",
    "ONE_SERVER_KEYS",
    "PASSWORD_KEY",
    "Settings",
    "node_names",
    "read_settings",
]

NODES_KEY = "CACHE_REDIS_NODES"
"""Where the nodes are: a list of URLs, ``{name: url}``, or a topology file's path."""

PASSWORD_KEY = "CACHE_REDIS_PASSWORD"
"""The password of every node whose URL carries none (redis-py: a URL's own one wins)."""

ONE_SERVER_KEYS = ("CACHE_REDIS_HOST", "CACHE_REDIS_PORT", "CACHE_REDIS_DB", "CACHE_REDIS_URL")
"""Flask-Caching's RedisCache keys naming one server: refused, the nodes' URLs say it."""

CACHE_KEYWORDS = frozenset(
    {"default_timeout", "ignore_delete_many_errors", "key_prefix", "check_connection"}
)
"""Options of the cache itself; every other option is the client's (ShardedRedis keywords
such as ``placement`` and ``health``, then redis-py's)."""

_ONE_SERVER_OPTIONS = ("host", "port", "db", "unix_socket_path", "connection_pool")


@dataclass(frozen=True)
class Settings:
    """A checked configuration: the nodes (``{name: url or client}``) or a topology file's
    ``path``, the cache's own keywords and the client's keywords."""

    nodes: dict[str, Any] | None
    path: Path | None
    cache: dict[str, Any] = field(default_factory=dict)
    client: dict[str, Any] = field(default_factory=dict, repr=False)


def read_settings(
    config: Mapping[str, Any], args: Sequence[Any], options: Mapping[str, Any]
) -> Settings:
    """Check what Flask-Caching hands a backend's ``factory``: the app's merged ``config``,
    ``CACHE_ARGS`` as ``args`` and the keywords ``options`` (``default_timeout``,
    ``ignore_delete_many_errors`` and ``CACHE_OPTIONS``, merged by Flask-Caching).

    ``CACHE_KEY_PREFIX``, when truthy, is the key prefix (else a ``key_prefix`` among the
    options), as for RedisCache. O(nodes + options).

    Raises:
        InvalidOptionError: ``CACHE_ARGS`` given; a one-server key (``CACHE_REDIS_URL``,
            ``CACHE_REDIS_HOST``, ...) set; ``CACHE_REDIS_NODES`` missing, empty, of the wrong
            type, holding a bad name or two URLs of one server; ``placement`` with a
            topology file (which says it); ``host``/``port``/``db`` or a true
            ``decode_responses`` among the options; the password both in
            ``CACHE_REDIS_PASSWORD`` and in the options.
    """
    if args:
        raise InvalidOptionError(
            "CACHE_ARGS: ShardedRedisCache takes no positional arguments; its nodes come from "
            f"{NODES_KEY}"
        )
    for key in ONE_SERVER_KEYS:
        if config.get(key) is not None:
            raise InvalidOptionError(
                f"{key} names one server; ShardedRedisCache reads its servers from "
                f"{NODES_KEY} (a list of redis:// URLs, db and password in each URL): remove "
                f"{key} or set it to None in this cache's config"
            )
    cache = {name: value for name, value in options.items() if name in CACHE_KEYWORDS}
    client = {name: value for name, value in options.items() if name not in CACHE_KEYWORDS}
    prefix = config.get("CACHE_KEY_PREFIX")
    if prefix:
        cache["key_prefix"] = prefix
    for name in _ONE_SERVER_OPTIONS:
        if name in client:
            raise InvalidOptionError(
                f"CACHE_OPTIONS: {name!r} names one server; each URL of {NODES_KEY} says "
                "where its node is (host, port, db, unix socket)"
            )
    if client.get("decode_responses"):
        raise InvalidOptionError(
            "CACHE_OPTIONS: decode_responses is not supported by a Redis cache (values are "
            "bytes: pickles and integers), as for Flask-Caching's RedisCache"
        )
    password = config.get(PASSWORD_KEY)
    if password:
        if "password" in client:
            raise InvalidOptionError(
                f"the password is given twice, in {PASSWORD_KEY} and in CACHE_OPTIONS: keep one"
            )
        client["password"] = password
    where = config.get(NODES_KEY)
    if isinstance(where, os.PathLike) or (isinstance(where, str) and "://" not in where):
        _check_watch(client, is_path=True)
        if "placement" in client:
            raise InvalidOptionError(
                f"CACHE_OPTIONS: 'placement' with a topology file in {NODES_KEY}: the file "
                "says the placement ([placement] and node weights); drop one of them"
            )
        if not str(where):
            raise InvalidOptionError(f"{NODES_KEY} is an empty path")
        return Settings(nodes=None, path=Path(where), cache=cache, client=client)
    _check_watch(client, is_path=False)
    client.pop("watch", None)  # False here: not a redis-py option
    return Settings(nodes=node_names(where), path=None, cache=cache, client=client)


def _check_watch(client: Mapping[str, Any], *, is_path: bool) -> None:
    """Refuse ``watch`` that is not a bool or has no topology file to follow, and
    ``watch_interval`` without ``watch`` (its range is checked by the watcher).

    Raises:
        InvalidOptionError: naming the option and what to do instead.
    """
    watch = client.get("watch", False)
    if not isinstance(watch, bool):
        raise InvalidOptionError(
            f"CACHE_OPTIONS: 'watch' must be True or False, got {type(watch).__name__}"
        )
    if watch and not is_path:
        raise InvalidOptionError(
            f"CACHE_OPTIONS: 'watch' follows a topology file: give {NODES_KEY} as the path "
            "of a topology .toml file (a list or dict of URLs does not change)"
        )
    if "watch_interval" in client and not watch:
        raise InvalidOptionError(
            "CACHE_OPTIONS: 'watch_interval' is how often a followed topology file is looked "
            "at: set 'watch': True with it, or drop it"
        )


def node_names(where: object) -> dict[str, Any]:
    """``CACHE_REDIS_NODES`` as ``{name: url or client}``.

    A mapping is taken as it is (names and URLs are checked by ShardedRedis). A list or tuple
    of URLs names each node ``host:port/db`` as Django's cache does
    (:func:`hashring._topology.urls.node_name`: for ``redis://:pw@10.0.0.1/0``,
    ``10.0.0.1:6379/0``), so reordering the list or changing a password moves no key;
    moving a server to another address moves its keys: give ``{name: url}`` to keep names
    fixed. O(nodes).

    >>> node_names(["redis://10.0.0.1/0", "rediss://:pw@10.0.0.2:6380/1?ssl_cert_reqs=none"])
    {'10.0.0.1:6379/0': 'redis://10.0.0.1/0', '10.0.0.2:6380/1': 'rediss://:pw@10.0.0.2:6380/1?ssl_cert_reqs=none'}

    Raises:
        InvalidOptionError: missing, empty, a single URL, another type, an item that is not
            a str, a URL without host or with a bad port or db, or two URLs of one server.
    """
    if where is None:
        raise InvalidOptionError(
            f"{NODES_KEY} is required: a list of URLs such as ['redis://10.0.0.1:6379/0', "
            "'redis://10.0.0.2:6379/0'], a {name: url} dict, or a topology file's path"
        )
    if isinstance(where, str):
        raise InvalidOptionError(
            f"{NODES_KEY} is one URL ({redact_url(where)!r}); give a list of URLs, a "
            "{name: url} dict or a topology file's path"
        )
    if isinstance(where, Mapping):
        nodes = dict(where)
    elif isinstance(where, (list, tuple)):
        nodes = {}
        for url in where:
            if not isinstance(url, str):
                raise InvalidOptionError(
                    f"{NODES_KEY}: a list holds URLs (str), not {type(url).__name__}; give "
                    "{name: client} to use ready redis.Redis clients"
                )
            name = node_name(url)
            if name in nodes:
                raise InvalidOptionError(
                    f"{NODES_KEY}: {redact_url(nodes[name])!r} and {redact_url(url)!r} both "
                    f"name the server {name!r}; give {{name: url}} to name them yourself"
                )
            nodes[name] = url
    else:
        raise InvalidOptionError(
            f"{NODES_KEY} must be a list of URLs, a {{name: url}} dict or a topology file's "
            f"path, not {type(where).__name__}"
        )
    if not nodes:
        raise InvalidOptionError(f"{NODES_KEY} is empty: give at least one node")
    return nodes
