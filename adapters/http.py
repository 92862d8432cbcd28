"""HTTP adapters: send each request to the node that owns its shard key.

* httpx: ``httpx.Client(transport=ShardedTransport(nodes, ...))`` and
  ``httpx.AsyncClient(transport=AsyncShardedTransport(nodes, ...))``; the key goes in
  ``extensions={"shard_key": ...}``.
* requests: ``session.mount("http://users/", ShardedAdapter(nodes, ...))``, or
  ``ShardedSession``, whose methods take ``shard_key=``.

Routing, failover and health are shared (``_http_routing.HttpRouter``): a keyed request goes
to the owner of its key; a request without a key is spread by a keyless balancer. An
idempotent request moves to the next node of its preference list only when it cannot have
reached its node (connection refused, connect timeout, DNS), or also after a send with
``retry_after_send=True``. Credentials in node URLs are sent as a Basic ``Authorization``
header, never in the URL. Hash tags are off by default (``hash_tags=True`` turns them on);
``hash_key=`` keys the placement. The requests adapter has a default timeout
(:data:`DEFAULT_TIMEOUT`); the httpx transports route only the logical host (``host=``, and
never a redirect to another host).
"""

from __future__ import annotations

from ._http_routing import IDEMPOTENT_METHODS, HttpRouter, NodeURL, Route, parse_node_url
from ._httpx import AsyncShardedTransport, ShardedTransport
from ._requests import DEFAULT_TIMEOUT, ShardedAdapter, ShardedSession

__all__ = [
    "DEFAULT_TIMEOUT",
    "IDEMPOTENT_METHODS",
    "AsyncShardedTransport",
    "HttpRouter",
    "NodeURL",
    "Route",
    "ShardedAdapter",
    "ShardedSession",
    "ShardedTransport",
    "parse_node_url",
]
