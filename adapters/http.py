"""HTTP adapters: send each request to the node that owns its shard key.

* httpx: ``httpx.Client(transport=ShardedTransport(nodes, ...))`` and
  ``httpx.AsyncClient(transport=AsyncShardedTransport(nodes, ...))``; the key goes in
  ``extensions={"shard_key": ...}``.
* requests: ``session.mount("http://users/", ShardedAdapter(nodes, ...))``, or
  ``ShardedSession``, whose methods take ``shard_key=``.

Routing, failover and health are shared (``_http_routing.HttpRouter``): a keyed request goes
to the owner of its key (next nodes of its preference list on connection failures, for
idempotent requests only); a request without a key is spread by a keyless balancer.
"""

from __future__ import annotations

from ._http_routing import IDEMPOTENT_METHODS, HttpRouter, NodeURL, parse_node_url
from ._httpx import AsyncShardedTransport, ShardedTransport
from ._requests import ShardedAdapter, ShardedSession

__all__ = [
    "IDEMPOTENT_METHODS",
    "AsyncShardedTransport",
    "HttpRouter",
    "NodeURL",
    "ShardedAdapter",
    "ShardedSession",
    "ShardedTransport",
    "parse_node_url",
]
