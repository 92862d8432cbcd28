"""HTTP adapters: send each request to the node that owns its shard key.

* httpx: ``httpx.Client(transport=ShardedTransport(nodes, ...))`` and
  ``httpx.AsyncClient(transport=AsyncShardedTransport(nodes, ...))``; the key goes in
  ``extensions={"shard_key": ...}``.
* requests: ``session.mount("http://users/", ShardedAdapter(nodes, ...))``, or
  ``ShardedSession``, whose methods take ``shard_key=``.

Every adapter says which placement in one argument, ``placement=``: an algorithm name
(``"ring"``, the default, ``"maglev"``, ``"rendezvous"``, ``"jump"``, ...) or a ready
:class:`hashring.Placement` over exactly the node names, which carries weights and options
(``vnodes``, ``hash_key``, hash tags...; see :func:`hashring.as_placement`). Hash tags are off
by default for HTTP when a name is given: keys that clients choose could otherwise pin
themselves to one node with ``{x}``; pass a placement built with tags on to co-locate keys.

>>> from hashring import HashRing
>>> from hashring.adapters.http import HttpRouter
>>> nodes = {"a": "http://10.0.0.1:8080", "b": "http://10.0.0.2:8080/api"}
>>> weighted = HashRing({"a": 2, "b": 1}, hash_tags=False)  # tags off, as for a name
>>> HttpRouter(nodes, placement=weighted).placement.nodes["a"]
2.0

Layout: one router (``_router.HttpRouter``: nodes, placement, keyless balancer, bounded loads,
health) holding one attempt and failover policy (``_attempts``: which node next, when to move
on, health claims), driving three thin send loops that only do their client's I/O: the httpx
sync and async transports (``_httpx``) and the requests adapter (``_requests``; the session
in ``_session``). Node URLs are parsed in ``_urls``. Every adapter can be built from a
topology and follow it (``from_config(path, watch=True)``, ``from_source(url, key=...)``;
``_following``): each new topology builds a new router, swapped in with one assignment, and
each request reads the router once, so it runs, failover included, on one topology.

Routing: a keyed request goes to the owner of its key; a request without a key is spread by
a keyless balancer. An idempotent request moves to the next node of its preference list only
when it cannot have reached its node (connection refused, connect timeout, DNS), or also
after a send with ``retry_after_send=True``. Credentials in node URLs are sent as a Basic
``Authorization`` header, never in the URL. The requests adapter has a default timeout
(:data:`DEFAULT_TIMEOUT`); the httpx transports route only the logical host (``host=``, and
never a redirect to another host).
"""

from __future__ import annotations

from ._attempts import Attempts, Route
from ._httpx import AsyncShardedTransport, ShardedTransport
from ._requests import DEFAULT_TIMEOUT, ShardedAdapter
from ._router import IDEMPOTENT_METHODS, HttpRouter
from ._session import ShardedSession
from ._urls import NodeURL, parse_node_url

__all__ = [
    "DEFAULT_TIMEOUT",
    "IDEMPOTENT_METHODS",
    "AsyncShardedTransport",
    "Attempts",
    "HttpRouter",
    "NodeURL",
    "Route",
    "ShardedAdapter",
    "ShardedSession",
    "ShardedTransport",
    "parse_node_url",
]
