"""httpx transports that send each request to the node owning its shard key.

>>> import httpx                                                          # doctest: +SKIP
>>> from hashring.adapters.http import ShardedTransport                   # doctest: +SKIP
>>> client = httpx.Client(transport=ShardedTransport({
...     "users-1": "http://10.0.0.1:8080", "users-2": "http://10.0.0.2:8080/api"}))
...                                                                       # doctest: +SKIP
>>> client.get("http://users/42", extensions={"shard_key": "42"})         # doctest: +SKIP

``AsyncShardedTransport`` is the same for ``httpx.AsyncClient``. Both wrap a real httpx
transport (default ``httpx.HTTPTransport()`` / ``httpx.AsyncHTTPTransport()``: pass your own
for HTTP/2, retries, TLS or pool limits), which keeps one connection pool for every node.

URLs. A request names a *logical* host (``http://users/42``, or a path under the client's
``base_url``); the transport replaces scheme, host and port with the chosen node's, puts the
node's base path in front of the request path (``/api`` above: the node sees ``/api/42``) and
sets the ``Host`` header to the node's host (a ``Host`` header set by the caller is replaced
too). A URL with no host, or a scheme other than http/https, raises ``httpx.UnsupportedProtocol``
-- what httpx's own transport raises -- before anything is sent.

Shard key. ``request.extensions["shard_key"]`` (str or bytes; ``{hash tags}`` apply), else
``key_func(request)`` if given (e.g. ``lambda r: r.url.path.split("/")[2]``). Any other type
raises :class:`hashring.InvalidKeyError`. A request with no key goes to the node the keyless
``balancer`` picks (round-robin by default).

Failover. The nodes tried are the key's preference list (the owner first) without ejected
nodes, at most ``max_attempts``. The next node is tried only when the request is idempotent
(GET, HEAD, OPTIONS, PUT, DELETE, TRACE, or ``extensions={"idempotent": True}``) *and* its
body can be sent again: bytes (``content=``, ``json=``, ``data=`` without files), never a
one-shot stream (a generator, an iterator, multipart files). A POST is never replayed.

* Node failures, which count against the node's health (ejection after ``failure_limit``
  consecutive ones for ``retry_timeout`` seconds) and move a replayable request on:
  ``httpx.ConnectError`` and ``httpx.ConnectTimeout`` (nothing reached the node), and
  ``httpx.RemoteProtocolError``, ``httpx.ReadError``, ``httpx.WriteError`` (the node closed
  or reset the connection before the response headers: the request may have run, which is
  what idempotent means is harmless).
* ``httpx.ReadTimeout`` and ``httpx.WriteTimeout`` count against the node's health but are not
  retried: the caller's timeout is spent, and a slow request is usually slow everywhere.
* A status in ``retry_statuses`` counts as a node failure; a replayable request moves on (the
  failed response is closed first). When no node is left the last response is returned.
* Everything else (``PoolTimeout``, ``ProxyError``, ``LocalProtocolError``, ...) propagates
  unchanged and says nothing about the node.

When a request cannot move on, the last node's httpx exception is re-raised unchanged (a note
names the nodes tried). Failures while the *body* is read, after the transport has returned
the response, are the client's to see: the transport does not observe them.

Each response carries ``response.extensions["hashring_node"]`` (the node that answered) and
``response.extensions["hashring_attempts"]`` (the nodes tried, in order). For the load-aware
balancers and ``bounded_load`` a request counts as in flight until its headers arrive.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable, Mapping
from typing import Generic, TypeVar

import httpx

from hashring import InvalidOptionError, Key, redact_url

from ._http_routing import HttpRouter

__all__ = ["FAILOVER_ERRORS", "HEALTH_ERRORS", "AsyncShardedTransport", "ShardedTransport"]

FAILOVER_ERRORS: tuple[type[httpx.TransportError], ...] = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.RemoteProtocolError,
    httpx.ReadError,
    httpx.WriteError,
)
"""Errors that count against a node and move a replayable idempotent request to the next."""

HEALTH_ERRORS: tuple[type[httpx.TransportError], ...] = (
    *FAILOVER_ERRORS,
    httpx.ReadTimeout,
    httpx.WriteTimeout,
)
"""Errors that count against a node's health."""

_T = TypeVar("_T", httpx.BaseTransport, httpx.AsyncBaseTransport)


class _Attempts:
    """One request's way through its nodes: what to send, and whether it may move on."""

    def __init__(self, router: HttpRouter, request: httpx.Request) -> None:
        self.router = router
        self.request = request
        marked = request.extensions.get("idempotent", False)
        if not isinstance(marked, bool):
            raise InvalidOptionError(
                f"extensions['idempotent'] must be a bool, not {type(marked).__name__}"
            )
        try:
            request.content  # noqa: B018 - raises RequestNotRead for a one-shot stream
            replayable = True
        except httpx.RequestNotRead:
            replayable = False
        self.may_move_on = replayable and router.idempotent(request.method, marked)
        self.tried: list[str] = []

    def key(self) -> Key | None:
        """``extensions["shard_key"]``, else ``key_func(request)``, else None (keyless)."""
        return self.router.shard_key(self.request.extensions.get("shard_key"), self.request)

    def to(self, node: str) -> httpx.Request:
        """The request, sent to ``node``: URL and Host header rewritten, body and
        extensions as they are."""
        self.tried.append(node)
        url = httpx.URL(self.router.url_for(node, str(self.request.url)))
        headers = self.request.headers.copy()
        headers["Host"] = url.netloc.decode("ascii")
        return httpx.Request(
            self.request.method,
            url,
            headers=headers,
            stream=self.request.stream,
            extensions=self.request.extensions,
        )

    def retry_status(self, response: httpx.Response, node: str, last: bool) -> bool:
        """Record the node's health from ``response``; whether to try the next node."""
        failed = response.status_code in self.router.retry_statuses
        self.router.health.record(node, not failed)
        if failed and self.may_move_on and not last:
            return True
        response.extensions["hashring_node"] = node
        response.extensions["hashring_attempts"] = tuple(self.tried)
        return False

    def retry_error(self, exc: httpx.TransportError, node: str, last: bool) -> bool:
        """Record the node's health from ``exc``; whether to try the next node."""
        if not isinstance(exc, HEALTH_ERRORS):
            return False
        self.router.health.record(node, False)
        if isinstance(exc, FAILOVER_ERRORS) and self.may_move_on and not last:
            return True
        exc.add_note(f"hashring: nodes tried: {', '.join(self.tried)}")
        return False


def _check_url(request: httpx.Request) -> None:
    """Refuse a URL that names no logical host, or a scheme other than http/https."""
    url = request.url
    if url.scheme in ("http", "https") and url.host:
        return
    shown = redact_url(str(url))
    if not url.host:
        message = (
            f"request URL {shown!r} names no logical host: use an absolute URL such as "
            "http://users/42 (or set the client's base_url)"
        )
    else:
        message = f"request URL {shown!r} has an unsupported scheme: use http:// or https://"
    raise httpx.UnsupportedProtocol(message, request=request)


class _ShardedBase(Generic[_T]):
    """What both transports share: the router, the delegate, membership and stats."""

    router: HttpRouter
    """The routing core (placement, keyless balancer, health)."""

    def __init__(
        self,
        nodes: Mapping[str, str],
        *,
        transport: _T | None = None,
        weights: Mapping[str, float] | None = None,
        algorithm: str = "ring",
        vnodes: int | None = None,
        table_size: int | None = None,
        hash: str = "mmh3",
        hash_tags: bool = True,
        key_func: Callable[[httpx.Request], Key | None] | None = None,
        balancer: str = "round-robin",
        bounded_load: float | None = None,
        health: bool = True,
        failure_limit: int = 2,
        retry_timeout: float = 30.0,
        max_attempts: int = 3,
        retry_statuses: tuple[int, ...] | frozenset[int] = (),
    ) -> None:
        if transport is not None and not isinstance(transport, self._delegate_type()):
            raise InvalidOptionError(
                f"transport must be an {self._delegate_type().__qualname__}, "
                f"not {type(transport).__name__}"
            )
        self.router = HttpRouter(
            nodes, weights=weights, algorithm=algorithm, vnodes=vnodes, table_size=table_size,
            hash=hash, hash_tags=hash_tags, key_func=key_func, balancer=balancer,
            bounded_load=bounded_load, health=health, failure_limit=failure_limit,
            retry_timeout=retry_timeout, max_attempts=max_attempts,
            retry_statuses=retry_statuses,
        )  # fmt: skip
        self._transport: _T = self._default_transport() if transport is None else transport

    @staticmethod
    @abstractmethod
    def _delegate_type() -> type[_T]: ...

    @staticmethod
    @abstractmethod
    def _default_transport() -> _T: ...

    def add_node(self, name: str, url: str, weight: float = 1) -> None:
        """Add a node at runtime (thread-safe); some keys move to it.

        Raises:
            NodeExistsError, InvalidOptionError, InvalidWeightError: bad node or URL.
        """
        self.router.add_node(name, url, weight)

    def remove_node(self, name: str) -> None:
        """Remove a node at runtime (thread-safe); its keys move to their next nodes.

        Raises:
            UnknownNodeError: ``name`` is not a node.
        """
        self.router.remove_node(name)

    def stats(self) -> dict[str, dict[str, float | int | bool]]:
        """Per-node counters: commands (attempts), errors, ejections, ejected."""
        return self.router.stats()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(nodes={self.router.node_urls!r})"


class ShardedTransport(_ShardedBase[httpx.BaseTransport], httpx.BaseTransport):
    """An ``httpx.Client`` transport over several nodes, sharded by key.

    Args:
        nodes: node name -> base URL (``http://host:port[/base/path]``, http or https).
        transport: the httpx transport that sends to the nodes (default
            ``httpx.HTTPTransport()``); closed by :meth:`close`.
        weights: optional node name -> weight (default 1).
        algorithm, vnodes, table_size, hash, hash_tags: the placement (see
            :func:`hashring.placement`).
        key_func: ``key_func(request) -> key or None`` for requests without
            ``extensions["shard_key"]``.
        balancer: keyless strategy: ``"round-robin"`` (default), ``"random"``,
            ``"least-loaded"`` or ``"power-of-two"``.
        bounded_load: epsilon for bounded-load consistent hashing (None: plain).
        health: eject a node after ``failure_limit`` consecutive failures for
            ``retry_timeout`` seconds (default on).
        max_attempts: nodes an idempotent request may try (default 3).
        retry_statuses: statuses that count as a node failure and move a replayable
            idempotent request to the next node (default none).

    Raises:
        InvalidOptionError, InvalidWeightError: bad nodes or options.
    """

    @staticmethod
    def _delegate_type() -> type[httpx.BaseTransport]:
        return httpx.BaseTransport

    @staticmethod
    def _default_transport() -> httpx.BaseTransport:
        return httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` to its key's node, failing over as the module docstring says.

        Raises:
            InvalidKeyError: a shard key that is neither str nor bytes.
            httpx.UnsupportedProtocol: a URL without a logical host or with another scheme.
            httpx.HTTPError: the last node's error, unchanged.
        """
        _check_url(request)
        attempts = _Attempts(self.router, request)
        with self.router.route(attempts.key()) as nodes:
            for index, node in enumerate(nodes):
                last = index == len(nodes) - 1
                try:
                    response = self._transport.handle_request(attempts.to(node))
                except httpx.TransportError as exc:
                    if attempts.retry_error(exc, node, last):
                        continue
                    raise
                if not attempts.retry_status(response, node, last):
                    return response
                response.close()
        raise AssertionError("unreachable: the last node returns or raises")  # pragma: no cover

    def close(self) -> None:
        """Close the delegate transport (its connection pool)."""
        self._transport.close()


class AsyncShardedTransport(_ShardedBase[httpx.AsyncBaseTransport], httpx.AsyncBaseTransport):
    """An ``httpx.AsyncClient`` transport over several nodes, sharded by key.

    Same arguments as :class:`ShardedTransport`; ``transport`` defaults to
    ``httpx.AsyncHTTPTransport()`` and is closed by :meth:`aclose`.
    """

    @staticmethod
    def _delegate_type() -> type[httpx.AsyncBaseTransport]:
        return httpx.AsyncBaseTransport

    @staticmethod
    def _default_transport() -> httpx.AsyncBaseTransport:
        return httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` to its key's node, failing over as the module docstring says.

        Raises:
            InvalidKeyError: a shard key that is neither str nor bytes.
            httpx.UnsupportedProtocol: a URL without a logical host or with another scheme.
            httpx.HTTPError: the last node's error, unchanged.
        """
        _check_url(request)
        attempts = _Attempts(self.router, request)
        with self.router.route(attempts.key()) as nodes:
            for index, node in enumerate(nodes):
                last = index == len(nodes) - 1
                try:
                    response = await self._transport.handle_async_request(attempts.to(node))
                except httpx.TransportError as exc:
                    if attempts.retry_error(exc, node, last):
                        continue
                    raise
                if not attempts.retry_status(response, node, last):
                    return response
                await response.aclose()
        raise AssertionError("unreachable: the last node returns or raises")  # pragma: no cover

    async def aclose(self) -> None:
        """Close the delegate transport (its connection pool)."""
        await self._transport.aclose()
