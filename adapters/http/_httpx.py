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

Only the logical host is routed. With ``host="users"`` only requests to that host (and port,
if given) are; without it, every request is, except one that follows a redirect (with
``follow_redirects=True``) to a host other than the logical one it came from: httpx builds
that request from the logical one, which the transport marks with
``extensions["hashring_logical_host"]``. Requests that are not routed go unchanged to the
delegate transport, where their URL says: a redirect to ``https://login.example/`` reaches
that host, not a shard node. Pass ``host=`` when one client also talks to other hosts.

Credentials. A user name and password in a node URL (``http://app:s3cret@10.0.0.7:8080``,
percent-encoded) are sent as an HTTP Basic ``Authorization`` header (UTF-8) unless the request
carries its own ``Authorization``; the URL sent has none, and reprs show ``***``.

Shard key. ``request.extensions["shard_key"]`` (str or bytes), else ``key_func(request)`` if
given (e.g. ``lambda r: r.url.path.split("/")[2]``). Any other type raises
:class:`hashring.InvalidKeyError`, a str with no UTF-8 form (a lone surrogate)
:class:`hashring.KeyEncodingError`. ``placement=`` is an algorithm name (``"ring"`` by
default) or a ready :class:`hashring.Placement` over the node names. ``{hash tags}`` are off
when it is a name (keys that clients choose could pin themselves to one node); a placement
built with ``hash_key=`` keys the hash so that nobody without the secret can aim keys at a
node. A request with no key goes to the node the keyless ``balancer`` picks (round-robin by
default).

Failover. The nodes tried are the key's preference list (the owner first) without ejected
nodes, at most ``max_attempts``. The next node is tried only when the request is idempotent
(GET, HEAD, OPTIONS, PUT, DELETE, TRACE, or ``extensions={"idempotent": True}``) *and* its
body can be sent again: bytes (``content=``, ``json=``, ``data=`` without files), never a
one-shot stream (a generator, an iterator, multipart files). A POST is never replayed.

* ``httpx.ConnectError`` and ``httpx.ConnectTimeout`` (:data:`FAILOVER_ERRORS`: nothing reached
  the node) count against the node's health (ejection after ``failure_limit`` consecutive
  failures for ``retry_timeout`` seconds) and move a replayable request on.
* ``httpx.RemoteProtocolError``, ``httpx.ReadError``, ``httpx.WriteError``,
  ``httpx.ReadTimeout`` and ``httpx.WriteTimeout`` (:data:`AFTER_SEND_ERRORS`: the request may
  have reached the node, run there, or crashed it) count against the node's health and are
  raised: replaying them on every node in turn could take every node down. With
  ``retry_after_send=True`` a replayable request moves on after them too (the wait can then
  reach ``max_attempts`` times the client's timeout).
* A status in ``retry_statuses`` counts as a node failure; a replayable request moves on (the
  failed response is closed first). When no node is left the last response is returned.
* Everything else (``PoolTimeout``, ``ProxyError``, ``LocalProtocolError``, ...) propagates
  unchanged and says nothing about the node.

When a request cannot move on, the last node's httpx exception is re-raised unchanged, with a
note naming the nodes tried and why it was not replayed. This policy is the router's (see
``_attempts``), shared with the requests adapter. Failures while the *body* is read, after
the transport has returned the response, are the client's to see: the transport does not
observe them.

Each response carries ``response.extensions["hashring_node"]`` (the node that answered) and
``response.extensions["hashring_attempts"]`` (the nodes tried, in order). For the load-aware
balancers and ``bounded_load`` a request counts as in flight until its headers arrive.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from typing import Any, Generic, Self, TypeVar

import httpx

from hashring import InvalidOptionError, Key, Placement, redact_url
from hashring._topology.watch import stop_following

from ._attempts import Attempts
from ._following import FollowsTopology, check_options
from ._router import HttpRouter
from ._urls import NodeURL

__all__ = [
    "AFTER_SEND_ERRORS",
    "FAILOVER_ERRORS",
    "HEALTH_ERRORS",
    "LOGICAL_HOST_EXTENSION",
    "AsyncShardedTransport",
    "ShardedTransport",
]

FAILOVER_ERRORS: tuple[type[httpx.TransportError], ...] = (httpx.ConnectError, httpx.ConnectTimeout)
"""Errors proving that nothing reached the node: they count against it and move a replayable
idempotent request to the next node."""

AFTER_SEND_ERRORS: tuple[type[httpx.TransportError], ...] = (
    httpx.RemoteProtocolError,
    httpx.ReadError,
    httpx.WriteError,
    httpx.ReadTimeout,
    httpx.WriteTimeout,
)
"""Errors after which the request may have reached the node: they count against it, and move
a replayable request on only with ``retry_after_send=True``."""

HEALTH_ERRORS: tuple[type[httpx.TransportError], ...] = (*FAILOVER_ERRORS, *AFTER_SEND_ERRORS)
"""Errors that count against a node's health."""

LOGICAL_HOST_EXTENSION = "hashring_logical_host"
"""Request extension naming the logical host a routed request was addressed to; a redirect
httpx builds from it carries it, so a redirect to another host is not routed."""

_T = TypeVar("_T", httpx.BaseTransport, httpx.AsyncBaseTransport)


_MARK_HINT = "mark it with extensions={'idempotent': True}"
"""How to mark an httpx request idempotent (for the note on an error)."""


def _attempts(router: HttpRouter, request: httpx.Request) -> AbstractContextManager[Attempts]:
    """The router's attempts for ``request``: its shard key (``extensions["shard_key"]``,
    else ``key_func``), method, idempotent mark and whether its body can be sent again.

    Raises:
        InvalidOptionError: ``extensions["idempotent"]`` is not a bool.
        InvalidKeyError, KeyEncodingError: a bad shard key.
    """
    marked = request.extensions.get("idempotent", False)
    if not isinstance(marked, bool):
        raise InvalidOptionError(
            f"extensions['idempotent'] must be a bool, not {type(marked).__name__}"
        )
    try:
        request.content  # noqa: B018 - raises RequestNotRead for a one-shot stream
        one_shot = False
    except httpx.RequestNotRead:
        one_shot = True
    key = router.shard_key(request.extensions.get("shard_key"), request)
    return router.attempts(
        key,
        request.method,
        idempotent=router.idempotent(request.method, marked),
        one_shot=one_shot,
        mark_hint=_MARK_HINT,
    )


class _Target:
    """A node URL prepared for httpx once (see :meth:`NodeURL.prepared`): its parsed parts
    as httpx normalises them, its ``Host`` header and its credentials, so that sending a
    request there parses nothing.

    The URL sent is built from the logical URL's parsed path, query and fragment (already
    validated and escaped by httpx) and this node's scheme, host, port and base path: the
    same URL as parsing ``NodeURL.rewrite(str(logical))`` again, without the parse. httpx
    has no public constructor from parsed parts (``URL.copy_with`` parses every part
    again), so this sets the parse result of an ``httpx.URL`` directly when the installed
    httpx has the layout checked by :data:`_FAST_URLS`, and checks on one sample URL per
    node that the result is the one parsing gives; otherwise it parses.
    """

    __slots__ = ("authorization", "fast", "host", "host_header", "node", "path", "port", "scheme")

    def __init__(self, node: NodeURL) -> None:
        parsed = httpx.URL(f"{node.scheme}://{node.netloc}{node.path}")
        self.node = node
        self.scheme = parsed.scheme
        self.port = parsed.port
        self.host_header = parsed.netloc.decode("ascii")
        self.authorization = node.authorization
        self.fast = False
        if _FAST_URLS:
            reference = parsed._uri_reference
            self.host = reference.host
            self.path = reference.path.rstrip("/")
            sample = httpx.URL("http://logical:81/a%20b/%2F/c;d?x=%20y&z#frag")
            self.fast = str(self.url(sample)) == str(httpx.URL(node.rewrite(str(sample))))

    def url(self, logical: httpx.URL) -> httpx.URL:
        """``logical`` (an absolute URL on the logical host) sent to this node. O(len(url))."""
        if not self.fast:
            return httpx.URL(self.node.rewrite(str(logical)))
        reference = logical._uri_reference
        url = _new_url(httpx.URL)
        url._uri_reference = _ParseResult(
            self.scheme,
            "",
            self.host,
            self.port,
            self.path + (reference.path or "/"),
            reference.query or None,
            reference.fragment or None,
        )
        return url

    def request(self, request: httpx.Request) -> httpx.Request:
        """``request`` sent to this node: URL and ``Host`` header rewritten, the node URL's
        credentials added (unless the request has its own ``Authorization``), method, other
        headers, body stream and extensions as they are. O(len(url) + headers)."""
        sent = httpx.Request(  # copies the headers and the extensions
            request.method,
            self.url(request.url),
            headers=request.headers,
            stream=request.stream,
            extensions=request.extensions,
        )
        headers = sent.headers
        headers["Host"] = self.host_header
        authorization = self.authorization
        if authorization is not None and "Authorization" not in headers:
            headers["Authorization"] = authorization
        return sent


def _fast_urls() -> bool:
    """Whether this httpx keeps a URL's parse as ``_uri_reference``, a named tuple of the
    seven parts that ``str()`` joins (httpx 0.24 to 0.28 do)."""
    try:
        sample = httpx.URL("http://h:81/p?q#f")
        reference = sample._uri_reference
        fields = ("scheme", "userinfo", "host", "port", "path", "query", "fragment")
        if getattr(type(reference), "_fields", None) != fields:
            return False
        copy = _new_url(httpx.URL)
        copy._uri_reference = type(reference)(*reference)
        return str(copy) == str(sample) and copy == sample
    except Exception:  # pragma: no cover - another httpx: parse instead
        return False


_new_url = object.__new__
_FAST_URLS = _fast_urls()
_ParseResult: Any = type(httpx.URL()._uri_reference) if _FAST_URLS else None


def _to(router: HttpRouter, request: httpx.Request, node: str) -> httpx.Request:
    """``request`` sent to ``node`` (see :meth:`_Target.request`)."""
    return router.node_url(node).prepared(_Target).request(request)


def _answer(response: httpx.Response, attempt: Attempts) -> httpx.Response:
    """``response``, naming the node that answered and the nodes tried."""
    response.extensions["hashring_node"] = attempt.node
    response.extensions["hashring_attempts"] = tuple(attempt.tried)
    return response


def _check_host(host: object) -> str:
    """A logical host name such as ``users`` or ``users.internal:8080``, as httpx writes it
    in ``url.netloc`` (lower case, no default port)."""
    url = None
    if isinstance(host, str) and host.isascii() and host.strip() == host:
        try:
            url = httpx.URL(f"http://{host}/")
        except httpx.InvalidURL:
            url = None
    if url is None or not url.host or url.path != "/" or url.userinfo or url.query or url.fragment:
        raise InvalidOptionError(
            "host must be a logical host name such as 'users' (no scheme, path or "
            f"credentials), got {host!r:.80}"
        )
    return url.netloc.decode("ascii").lower()


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


class _ShardedBase(FollowsTopology, Generic[_T]):
    """What both transports share: the router, the delegate, membership and stats, and
    being built from a topology and following it (:class:`FollowsTopology`)."""

    router: HttpRouter
    """The routing core (placement, keyless balancer, health): the snapshot a request
    starts on, replaced in one assignment when a followed topology changes."""

    def __init__(
        self,
        nodes: Mapping[str, str],
        *,
        host: str | None = None,
        transport: _T | None = None,
        placement: str | Placement = "ring",
        key_func: Callable[[httpx.Request], Key | None] | None = None,
        balancer: str = "round-robin",
        bounded_load: float | None = None,
        health: bool = True,
        failure_limit: int = 2,
        retry_timeout: float = 30.0,
        max_attempts: int = 3,
        retry_statuses: tuple[int, ...] | frozenset[int] = (),
        retry_after_send: bool = False,
    ) -> None:
        self.host = self._check(host, transport)
        self.router = HttpRouter(
            nodes, placement=placement, key_func=key_func, balancer=balancer,
            bounded_load=bounded_load, health=health, failure_limit=failure_limit,
            retry_timeout=retry_timeout, max_attempts=max_attempts,
            retry_statuses=retry_statuses, retry_after_send=retry_after_send,
        )  # fmt: skip
        self._transport: _T = self._default_transport() if transport is None else transport

    @classmethod
    def _of_router(cls, router: HttpRouter, options: dict[str, Any]) -> Self:
        """A transport over ``router``; ``options``: ``host`` and ``transport``.

        Raises:
            TypeError: another option. InvalidOptionError: a bad host or transport.
        """
        check_options(cls, options, {"host", "transport"})
        self = cls.__new__(cls)
        transport = options.get("transport")
        self.host = self._check(options.get("host"), transport)
        self.router = router
        self._transport = self._default_transport() if transport is None else transport
        return self

    def _check(self, host: str | None, transport: _T | None) -> str | None:
        """``host`` as httpx writes it; refuses a bad ``host`` or ``transport``."""
        if transport is not None and not isinstance(transport, self._delegate_type()):
            raise InvalidOptionError(
                f"transport must be an {self._delegate_type().__qualname__}, "
                f"not {type(transport).__name__}"
            )
        return None if host is None else _check_host(host)

    @staticmethod
    @abstractmethod
    def _delegate_type() -> type[_T]: ...

    @staticmethod
    @abstractmethod
    def _default_transport() -> _T: ...

    def _routed(self, request: httpx.Request) -> bool:
        """Whether ``request`` is for the logical host (else it goes where its URL says);
        marks a routed request with the logical host it was addressed to. O(1)."""
        netloc = request.url.netloc.decode("ascii", "replace").lower()
        if self.host is not None:
            return netloc == self.host
        marked = request.extensions.get(LOGICAL_HOST_EXTENSION)
        if marked is not None and marked != netloc:
            return False  # a redirect, built from a routed request, to another host
        request.extensions[LOGICAL_HOST_EXTENSION] = netloc
        return True

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
        host = "" if self.host is None else f"host={self.host!r}, "
        return f"{type(self).__name__}({host}nodes={self.router.node_urls!r})"


class ShardedTransport(_ShardedBase[httpx.BaseTransport], httpx.BaseTransport):
    """An ``httpx.Client`` transport over several nodes, sharded by key.

    Args:
        nodes: node name -> base URL (``http://host:port[/base/path]``, http or https).
        host: the logical host (``"users"``, ``"users:8080"``): only requests to it are
            routed, any other goes unchanged to ``transport``. Default None: every request is
            routed, except a redirect to another host than the routed request it follows.
        transport: the httpx transport that sends to the nodes (default
            ``httpx.HTTPTransport()``); closed by :meth:`close`.
        placement: an algorithm name (default ``"ring"``, hash tags off) or a ready
            :class:`hashring.Placement` over exactly the node names, with its weights and
            options (``hash_key=`` recommended when keys come from clients); see
            :func:`hashring.as_placement`.
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
        retry_after_send: also move a replayable request on after :data:`AFTER_SEND_ERRORS`
            (default False).

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
            KeyEncodingError: a str shard key with no UTF-8 form (a lone surrogate).
            httpx.UnsupportedProtocol: a URL without a logical host or with another scheme.
            httpx.HTTPError: the last node's error, unchanged.
        """
        if not self._routed(request):
            return self._transport.handle_request(request)
        _check_url(request)
        router = self.router  # the snapshot this request runs on, failover included
        with _attempts(router, request) as attempt:
            while True:
                try:
                    response = self._transport.handle_request(_to(router, request, attempt.node))
                except HEALTH_ERRORS as exc:
                    if attempt.failed(exc, reached=isinstance(exc, AFTER_SEND_ERRORS)):
                        continue
                    raise
                if attempt.answered(response.status_code):
                    return _answer(response, attempt)
                response.close()

    def close(self) -> None:
        """Stop following a topology (``from_config(watch=True)``, ``from_source``: the
        thread, waited for at most 10 s, and the source's connections), then close the
        delegate transport (its connection pool). Idempotent."""
        stop_following(self)
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
            KeyEncodingError: a str shard key with no UTF-8 form (a lone surrogate).
            httpx.UnsupportedProtocol: a URL without a logical host or with another scheme.
            httpx.HTTPError: the last node's error, unchanged.
        """
        if not self._routed(request):
            return await self._transport.handle_async_request(request)
        _check_url(request)
        router = self.router  # the snapshot this request runs on, failover included
        with _attempts(router, request) as attempt:
            while True:
                try:
                    response = await self._transport.handle_async_request(
                        _to(router, request, attempt.node)
                    )
                except HEALTH_ERRORS as exc:
                    if attempt.failed(exc, reached=isinstance(exc, AFTER_SEND_ERRORS)):
                        continue
                    raise
                if attempt.answered(response.status_code):
                    return _answer(response, attempt)
                await response.aclose()

    async def aclose(self) -> None:
        """Stop following a topology, as :meth:`ShardedTransport.close` (joining the thread
        in this call: a file watcher's at once, a Redis follower's within 0.25 s, or its
        look's socket timeout), then close the delegate transport (its connection pool)."""
        stop_following(self)
        await self._transport.aclose()
