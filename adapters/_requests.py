"""requests adapter: send each request on a logical host to the node that owns its shard key.

Mount a :class:`ShardedAdapter` on a session for a logical host, then address that host::

    import requests
    from hashring.adapters.http import ShardedAdapter

    session = requests.Session()
    session.mount("http://users/", ShardedAdapter({"n0": "http://10.0.0.1:8080",
                                                   "n1": "http://10.0.0.2:8080/api"}))
    r = session.get("http://users/42", headers={"X-Shard-Key": "user:42"})
    r.shard_node                     # 'n0' or 'n1': the node that answered

or let :class:`ShardedSession` do the mounting and take the key as a keyword::

    from hashring.adapters.http import ShardedSession

    with ShardedSession(nodes, host="users") as session:
        session.get("http://users/42", shard_key="user:42")
        session.post("http://users/42/events", json={...}, shard_key="user:42")
        session.get("http://users/health")                     # keyless: round-robin

The node's scheme, host and port replace the logical ones, and a base path on the node URL
(``http://10.0.0.2:8080/api``) is prepended to the request's path; the query is kept.

Shard keys
    The ``X-Shard-Key`` header (:data:`SHARD_KEY_HEADER`), else ``key_func(request)`` (called
    with the logical :class:`requests.PreparedRequest`), else none. Keys are ``str`` or
    ``bytes`` (anything else: :class:`~hashring.InvalidKeyError`; a str with a lone surrogate:
    :class:`~hashring.KeyEncodingError`). Hash tags are off unless ``hash_tags=True`` (keys
    from clients could pin themselves to one node with ``{x}``); ``hash_key=`` keys the hash so
    that nobody without the secret can aim keys at a node. A request without a key goes to the
    keyless balancer (``balancer=``, round-robin by default). ``X-Shard-Key`` and
    ``X-Idempotent`` are routing instructions for this adapter: they are removed before the
    request leaves, and nodes never see them. A key given as a header cannot hold CR/LF or
    start with whitespace (requests refuses such header values).

Failover (never for anything that may not be replayed)
    A request is *replayable* when its method is idempotent (GET, HEAD, OPTIONS, PUT, DELETE,
    TRACE) or it carries ``X-Idempotent: true`` (:data:`IDEMPOTENT_HEADER`; ``idempotent=True``
    on :class:`ShardedSession`), **and** its body is ``None``, ``bytes`` or ``str`` (a generator
    or file body is consumed by the first attempt). A replayable request moves to the next node
    of its preference list, up to ``max_attempts`` nodes, when it cannot have reached its node:
    connection refused or unreachable, name resolution failed, or ``ConnectTimeout``; or when
    the node answers a status in ``retry_statuses`` (that response is closed). A request whose
    connection broke *after* it was sent (reset, closed without an answer, TLS or proxy
    failures) or that hit a ``ReadTimeout`` may have run on the node, or crashed it: by default
    it is not replayed, the error is raised; ``retry_after_send=True`` replays it too
    (replayable requests only; the wait can then reach ``max_attempts`` times the timeout).

Timeouts
    Every attempt has a timeout: the ``timeout`` of the call if given (``session.get(url,
    timeout=2)``), else the adapter's ``timeout=`` (default :data:`DEFAULT_TIMEOUT`: 5 s to
    connect, 30 s between bytes of the answer), so a node that accepts connections but never
    answers cannot hang a caller. ``timeout=None`` on the adapter or session waits forever (a
    call cannot ask for that: requests passes ``None`` for "not given").

Responses
    ``response.shard_node`` (also :func:`served_by`) names the node that answered.
    ``response.url``, ``response.request`` and ``response.connection`` stay *logical* (the URL
    you asked for, the request you built, this adapter), as if the logical host had answered:
    relative redirects, cookies and re-sent requests (digest auth) come back through this
    adapter on the same key, and no node URL (or password in one) shows in errors such as
    ``raise_for_status()``. An explicit ``Host`` header naming the logical host is dropped so
    the node receives its own; any other ``Host`` is kept (virtual hosting). User and password
    in a node URL (percent-encoded) are sent as an HTTP Basic ``Authorization`` header (UTF-8)
    unless the request has its own ``Authorization``; the URL sent to the node has no
    credentials, so none show in ``exc.request.url`` or in requests' messages.

Errors
    Errors of requests and urllib3 propagate unchanged (after the last attempt, the last one);
    hashring adds a note (``exc.__notes__``) naming the nodes tried and why nothing was
    replayed. Bad nodes or options raise :class:`~hashring.InvalidOptionError` (a
    ``ValueError``) at construction, a bad key :class:`~hashring.InvalidKeyError` (a
    ``TypeError``; :class:`~hashring.KeyEncodingError`, also a ``ValueError``, for a str that
    has no UTF-8 form) before anything is sent, and a session with no nodes
    :class:`~hashring.EmptyRingError`.

Proxies are the ones requests resolved for the logical URL (put the logical host in
``NO_PROXY``, or set ``session.trust_env = False``, to reach nodes directly when a proxy is
configured in the environment).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import DEFAULT_POOLSIZE, BaseAdapter, HTTPAdapter
from requests.models import PreparedRequest, Response
from requests.structures import CaseInsensitiveDict
from urllib3.exceptions import MaxRetryError, NewConnectionError

from hashring import InvalidOptionError, Key
from hashring._placement.keys import check_key

from ._http_routing import HttpRouter

__all__ = [
    "DEFAULT_TIMEOUT",
    "IDEMPOTENT_HEADER",
    "SHARD_KEY_HEADER",
    "ShardedAdapter",
    "ShardedSession",
    "served_by",
]

SHARD_KEY_HEADER = "X-Shard-Key"
"""Request header carrying the shard key; removed before the request is sent."""
IDEMPOTENT_HEADER = "X-Idempotent"
"""``X-Idempotent: true`` marks a request safe to replay on another node; removed before sending."""

_TRUE = frozenset({"true", "1"})
_FALSE = frozenset({"false", "0"})

Timeout = float | tuple[float, float] | tuple[float, None] | None

DEFAULT_TIMEOUT: Timeout = (5.0, 30.0)
"""The adapters' default per-attempt timeout: (connect, read) seconds, as requests takes it.

5 s to connect (a node on the same network connects in milliseconds; 5 s rides out two SYN
retransmissions), 30 s between bytes of the answer. Without it requests waits forever on a
node that accepts a connection and never answers. Override it with ``timeout=`` on the
adapter or session, or per call."""
Cert = bytes | str | tuple[bytes | str, bytes | str] | None


def served_by(response: Response) -> str | None:
    """The node that answered ``response`` (None if it did not come through a ShardedAdapter)."""
    node = getattr(response, "shard_node", None)
    return node if isinstance(node, str) else None


class ShardedAdapter(BaseAdapter):
    """A requests transport adapter that sends each request to the node owning its shard key.

    Args:
        nodes: node name -> base URL (``http://host:port[/base/path]``, or ``https://``).
        adapter: the adapter that does the I/O (default: a pooling
            :class:`requests.adapters.HTTPAdapter` with a pool per node); closed by
            :meth:`close`.
        weights, algorithm, vnodes, table_size, hash: the placement (see
            :func:`hashring.placement`).
        hash_tags: place keys by their ``{tag}`` (default False: see the module docstring of
            ``hashring.adapters._http_routing``).
        hash_key: a secret of 16 to 64 bytes keying the key hash (recommended when keys come
            from clients).
        key_func: ``key_func(prepared_request) -> key or None`` for requests without an
            ``X-Shard-Key`` header.
        balancer: keyless strategy: ``"round-robin"`` (default), ``"random"``,
            ``"least-loaded"`` or ``"power-of-two"``.
        bounded_load: epsilon for bounded-load consistent hashing of keyed requests.
        health, failure_limit, retry_timeout: ejection of failing nodes (on by default: 2
            failures in a row eject a node for 30 s).
        max_attempts: nodes a replayable request may try (default 3).
        retry_statuses: statuses that count as a node failure and are retried on the next node
            for replayable requests (default none; e.g. ``(502, 503, 504)``).
        retry_after_send: also replay a replayable request whose connection broke or timed
            out after it was sent (default False).
        timeout: per-attempt timeout when a call gives none (default
            :data:`DEFAULT_TIMEOUT`; None: wait forever).

    Use :meth:`from_router` to share one :class:`HttpRouter` (and its health) between clients.

    Raises:
        InvalidOptionError, InvalidWeightError: bad nodes, URLs or options.
    """

    def __init__(
        self,
        nodes: Mapping[str, str],
        *,
        adapter: BaseAdapter | None = None,
        weights: Mapping[str, float] | None = None,
        algorithm: str = "ring",
        vnodes: int | None = None,
        table_size: int | None = None,
        hash: str = "mmh3",
        hash_tags: bool = False,
        hash_key: bytes | None = None,
        key_func: Callable[[PreparedRequest], Key | None] | None = None,
        balancer: str = "round-robin",
        bounded_load: float | None = None,
        health: bool = True,
        failure_limit: int = 2,
        retry_timeout: float = 30.0,
        max_attempts: int = 3,
        retry_statuses: tuple[int, ...] | frozenset[int] = (),
        retry_after_send: bool = False,
        timeout: Timeout = DEFAULT_TIMEOUT,
    ) -> None:
        router = HttpRouter(
            nodes, weights=weights, algorithm=algorithm, vnodes=vnodes, table_size=table_size,
            hash=hash, hash_tags=hash_tags, hash_key=hash_key, key_func=key_func,
            balancer=balancer, bounded_load=bounded_load, health=health,
            failure_limit=failure_limit, retry_timeout=retry_timeout, max_attempts=max_attempts,
            retry_statuses=retry_statuses, retry_after_send=retry_after_send,
        )  # fmt: skip
        self._setup(router, adapter, timeout)

    @classmethod
    def from_router(
        cls,
        router: HttpRouter,
        *,
        adapter: BaseAdapter | None = None,
        timeout: Timeout = DEFAULT_TIMEOUT,
    ) -> ShardedAdapter:
        """An adapter over an existing router (its nodes, placement, options and health)."""
        if not isinstance(router, HttpRouter):
            raise InvalidOptionError(f"router must be an HttpRouter, not {type(router).__name__}")
        self = cls.__new__(cls)
        self._setup(router, adapter, timeout)
        return self

    def _setup(self, router: HttpRouter, adapter: BaseAdapter | None, timeout: Timeout) -> None:
        super().__init__()
        self.timeout: Timeout = _check_timeout(timeout)
        if adapter is not None and not isinstance(adapter, BaseAdapter):
            raise InvalidOptionError(
                "adapter must be a requests.adapters.BaseAdapter (such as HTTPAdapter), "
                f"not {type(adapter).__name__}"
            )
        self.router = router
        self.adapter: BaseAdapter = adapter or HTTPAdapter(
            pool_connections=max(DEFAULT_POOLSIZE, len(router.node_urls))
        )

    # ------------------------------------------------------------------ transport

    def send(
        self,
        request: PreparedRequest,
        stream: bool = False,
        timeout: Timeout = None,
        verify: bool | str = True,
        cert: Cert = None,
        proxies: Mapping[str, str] | None = None,
    ) -> Response:
        """Send ``request`` to the node owning its shard key, failing over as allowed.

        ``timeout`` None means the adapter's ``timeout`` (see the module docstring).

        Raises:
            InvalidKeyError: a shard key that is neither str nor bytes.
            KeyEncodingError: a str shard key with no UTF-8 form (a lone surrogate).
            InvalidOptionError: an ``X-Idempotent`` value other than true/false/1/0.
            EmptyRingError: there are no nodes.
            requests.RequestException: what the last node tried raised (never swallowed).
        """
        url = request.url
        if not url:
            raise InvalidOptionError("the request has no URL")
        key = self.router.shard_key(request.headers.get(SHARD_KEY_HEADER), request)
        method = (request.method or "").upper()
        marked = _idempotent_mark(request.headers.get(IDEMPOTENT_HEADER))
        idempotent = self.router.idempotent(method, marked)
        one_shot = not (request.body is None or isinstance(request.body, (bytes, str)))
        replayable = idempotent and not one_shot
        if timeout is None:
            timeout = self.timeout
        failures: list[str] = []  # "'n0' (ConnectionError)", "'n1' (status 503)", ...
        with self.router.route(key) as route:
            node = route.first
            while True:
                outgoing = self._for_node(request, url, node)
                try:
                    response = self.adapter.send(
                        outgoing, stream=stream, timeout=timeout, verify=verify, cert=cert,
                        proxies=proxies,
                    )  # fmt: skip
                except (requests.ConnectionError, requests.Timeout) as exc:
                    self.router.health.record(node, False)
                    reached = _may_have_reached(exc)
                    failures.append(f"{node!r} ({type(exc).__name__})")
                    moving = self.router.may_move_on(replayable, reached)
                    following = route.next() if moving else None
                    if following is None:
                        sent = reached and replayable and not moving
                        exc.add_note(_why(method, failures, idempotent, one_shot, sent))
                        raise
                    node = following
                    continue
                failed = response.status_code in self.router.retry_statuses
                self.router.health.record(node, not failed)
                following = route.next() if failed and replayable else None
                if following is None:
                    return self._logical(response, request, url, node)
                failures.append(f"{node!r} (status {response.status_code})")
                response.close()
                node = following

    def close(self) -> None:
        """Close the delegate adapter (its connection pools)."""
        self.adapter.close()

    def _for_node(self, request: PreparedRequest, url: str, node: str) -> PreparedRequest:
        """A copy of ``request`` addressed to ``node``, without the routing headers."""
        outgoing = request.copy()
        outgoing.url = self.router.url_for(node, url)
        headers = outgoing.headers
        headers.pop(SHARD_KEY_HEADER, None)
        headers.pop(IDEMPOTENT_HEADER, None)
        host = headers.get("Host")
        if host is not None and _text(host).lower() == urlsplit(url).netloc.lower():
            del headers["Host"]
        authorization = self.router.authorization(node)
        if authorization is not None and "Authorization" not in headers:
            headers["Authorization"] = authorization
        return outgoing

    def _logical(
        self, response: Response, request: PreparedRequest, url: str, node: str
    ) -> Response:
        """``response`` as if the logical host had answered ``request``, naming ``node``."""
        response.shard_node = node  # type: ignore[attr-defined]  # documented addition
        response.url = url
        response.request = request
        response.connection = self  # type: ignore[assignment]  # re-sends come back here
        return response

    def __repr__(self) -> str:
        return f"{type(self).__name__}(nodes={self.router.node_urls!r})"


class ShardedSession(requests.Session):
    """A requests.Session whose logical host ``host`` is served by sharded nodes.

    Mounts one :class:`ShardedAdapter` for ``http://{host}/`` and ``https://{host}/``; other
    URLs behave as in any session. Every request method takes two more keywords:

    * ``shard_key``: the request's shard key (str or bytes), sent as ``X-Shard-Key``;
    * ``idempotent``: True marks the request safe to replay on another node.

    Args:
        nodes: node name -> base URL, as for :class:`ShardedAdapter`.
        host: the logical host name (default ``"shard"``), such as ``"users"``.
        adapter, timeout, and the routing options: as for :class:`ShardedAdapter`.

    Raises:
        InvalidOptionError, InvalidWeightError: a bad host, node, URL or option.
    """

    def __init__(
        self,
        nodes: Mapping[str, str],
        *,
        host: str = "shard",
        adapter: BaseAdapter | None = None,
        weights: Mapping[str, float] | None = None,
        algorithm: str = "ring",
        vnodes: int | None = None,
        table_size: int | None = None,
        hash: str = "mmh3",
        hash_tags: bool = False,
        hash_key: bytes | None = None,
        key_func: Callable[[PreparedRequest], Key | None] | None = None,
        balancer: str = "round-robin",
        bounded_load: float | None = None,
        health: bool = True,
        failure_limit: int = 2,
        retry_timeout: float = 30.0,
        max_attempts: int = 3,
        retry_statuses: tuple[int, ...] | frozenset[int] = (),
        retry_after_send: bool = False,
        timeout: Timeout = DEFAULT_TIMEOUT,
    ) -> None:
        self.host = _check_host(host)
        sharded = ShardedAdapter(
            nodes, adapter=adapter, weights=weights, algorithm=algorithm, vnodes=vnodes,
            table_size=table_size, hash=hash, hash_tags=hash_tags, hash_key=hash_key,
            key_func=key_func, balancer=balancer, bounded_load=bounded_load, health=health,
            failure_limit=failure_limit, retry_timeout=retry_timeout,
            max_attempts=max_attempts, retry_statuses=retry_statuses,
            retry_after_send=retry_after_send, timeout=timeout,
        )  # fmt: skip
        super().__init__()
        self.sharded_adapter = sharded
        self.router = sharded.router
        for scheme in ("http", "https"):
            self.mount(f"{scheme}://{self.host}/", sharded)

    def request(
        self,
        method: str | bytes,
        url: str | bytes,
        *args: Any,
        shard_key: Key | None = None,
        idempotent: bool = False,
        **kwargs: Any,
    ) -> Response:
        """``Session.request`` plus ``shard_key=`` and ``idempotent=`` (see the class).

        Raises:
            InvalidKeyError: ``shard_key`` is neither str nor bytes.
            KeyEncodingError: ``shard_key`` is a str with no UTF-8 form (a lone surrogate).
            InvalidOptionError: ``shard_key`` or ``idempotent`` for a URL off the logical
                host, or a key that cannot travel in a header.
        """
        routing: dict[str, str | bytes] = {}
        if shard_key is not None:
            routing[SHARD_KEY_HEADER] = _header_key(check_key(shard_key))
        if idempotent:
            routing[IDEMPOTENT_HEADER] = "true"
        if routing:
            target = urlsplit(url.decode() if isinstance(url, bytes) else url)
            if target.scheme.lower() not in ("http", "https") or target.netloc.lower() != self.host:
                raise InvalidOptionError(
                    f"shard_key/idempotent given for a URL off the logical host {self.host!r}: "
                    f"address it as http://{self.host}/..."
                )
            if len(args) >= 3:  # headers passed positionally (params, data, headers, ...)
                args = (*args[:2], _merged(args[2], routing), *args[3:])
            else:
                kwargs["headers"] = _merged(kwargs.pop("headers", None), routing)
        return super().request(method, url, *args, **kwargs)

    def send(self, request: PreparedRequest, **kwargs: Any) -> Response:
        """``Session.send``; routing headers are dropped from requests that leave the logical
        host (a redirect elsewhere), so other hosts never see them."""
        headers = request.headers
        if (SHARD_KEY_HEADER in headers or IDEMPOTENT_HEADER in headers) and self.get_adapter(
            request.url or ""
        ) is not self.sharded_adapter:
            request = request.copy()
            request.headers.pop(SHARD_KEY_HEADER, None)
            request.headers.pop(IDEMPOTENT_HEADER, None)
        return super().send(request, **kwargs)

    # The verbs, typed with the two extra keywords (requests' own versions pass them through
    # at run time, but their signatures do not declare them).

    def get(
        self,
        url: str | bytes,
        params: Any = None,
        *,
        shard_key: Key | None = None,
        idempotent: bool = False,
        **kwargs: Any,
    ) -> Response:
        """GET ``url`` (see :meth:`request`)."""
        kwargs.setdefault("allow_redirects", True)
        return self.request(
            "GET", url, params=params, shard_key=shard_key, idempotent=idempotent, **kwargs
        )

    def options(
        self,
        url: str | bytes,
        *,
        shard_key: Key | None = None,
        idempotent: bool = False,
        **kwargs: Any,
    ) -> Response:
        """OPTIONS ``url`` (see :meth:`request`)."""
        kwargs.setdefault("allow_redirects", True)
        return self.request("OPTIONS", url, shard_key=shard_key, idempotent=idempotent, **kwargs)

    def head(
        self,
        url: str | bytes,
        *,
        shard_key: Key | None = None,
        idempotent: bool = False,
        **kwargs: Any,
    ) -> Response:
        """HEAD ``url`` (see :meth:`request`); redirects are not followed by default."""
        kwargs.setdefault("allow_redirects", False)
        return self.request("HEAD", url, shard_key=shard_key, idempotent=idempotent, **kwargs)

    def post(
        self,
        url: str | bytes,
        data: Any = None,
        json: Any = None,
        *,
        shard_key: Key | None = None,
        idempotent: bool = False,
        **kwargs: Any,
    ) -> Response:
        """POST ``url`` (see :meth:`request`); never replayed unless ``idempotent=True``."""
        return self.request(
            "POST", url, data=data, json=json, shard_key=shard_key, idempotent=idempotent,
            **kwargs,
        )  # fmt: skip

    def put(
        self,
        url: str | bytes,
        data: Any = None,
        *,
        shard_key: Key | None = None,
        idempotent: bool = False,
        **kwargs: Any,
    ) -> Response:
        """PUT ``url`` (see :meth:`request`)."""
        return self.request(
            "PUT", url, data=data, shard_key=shard_key, idempotent=idempotent, **kwargs
        )

    def patch(
        self,
        url: str | bytes,
        data: Any = None,
        *,
        shard_key: Key | None = None,
        idempotent: bool = False,
        **kwargs: Any,
    ) -> Response:
        """PATCH ``url`` (see :meth:`request`); never replayed unless ``idempotent=True``."""
        return self.request(
            "PATCH", url, data=data, shard_key=shard_key, idempotent=idempotent, **kwargs
        )

    def delete(
        self,
        url: str | bytes,
        *,
        shard_key: Key | None = None,
        idempotent: bool = False,
        **kwargs: Any,
    ) -> Response:
        """DELETE ``url`` (see :meth:`request`)."""
        return self.request("DELETE", url, shard_key=shard_key, idempotent=idempotent, **kwargs)

    # ------------------------------------------------------------------ topology

    def add_node(self, name: str, url: str, weight: float = 1) -> None:
        """Add a node at runtime (thread-safe); see :meth:`HttpRouter.add_node`."""
        self.router.add_node(name, url, weight)

    def remove_node(self, name: str) -> None:
        """Remove a node at runtime (thread-safe); see :meth:`HttpRouter.remove_node`."""
        self.router.remove_node(name)

    def stats(self) -> dict[str, dict[str, float | int | bool]]:
        """Per-node counters: commands (requests), errors, ejections, ejected."""
        return self.router.stats()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(host={self.host!r}, nodes={self.router.node_urls!r})"


# ---------------------------------------------------------------------- helpers


def _text(value: str | bytes) -> str:
    return value.decode("latin-1") if isinstance(value, bytes) else value


def _idempotent_mark(value: str | bytes | None) -> bool:
    """Whether an ``X-Idempotent`` header value marks the request replayable."""
    if value is None:
        return False
    text = _text(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise InvalidOptionError(
        f"{IDEMPOTENT_HEADER} must be true, false, 1 or 0, not {_text(value)!r:.60}"
    )


def _header_key(key: Key) -> Key:
    """``key`` if it can travel in a header value (no CR/LF, no leading whitespace)."""
    text = _text(key)
    if "\r" in text or "\n" in text or text[:1].isspace():
        raise InvalidOptionError(
            f"shard key {key!r:.60} cannot be sent in the {SHARD_KEY_HEADER} header: "
            "it holds CR/LF or starts with whitespace"
        )
    return key


def _merged(headers: Any, routing: Mapping[str, str | bytes]) -> CaseInsensitiveDict[str | bytes]:
    """``headers`` (a mapping or None) with the routing headers set, whatever their case."""
    merged: CaseInsensitiveDict[str | bytes] = CaseInsensitiveDict(headers or {})
    merged.update(routing)
    return merged


def _check_host(host: Any) -> str:
    """A logical host name such as ``users`` or ``users.internal:8080``."""
    if isinstance(host, str) and host:
        try:
            parts = urlsplit(f"http://{host}/")
            parts.port  # noqa: B018 - raises ValueError for a bad port
        except ValueError:
            parts = None
        if parts is not None and parts.netloc == host and parts.path == "/" and "@" not in host:
            return host.lower()
    raise InvalidOptionError(
        f"host must be a logical host name such as 'users' (no scheme, path or credentials), "
        f"got {host!r}"
    )


def _why(method: str, failures: list[str], idempotent: bool, one_shot: bool, sent: bool) -> str:
    """The note added to the error of a request's last attempt (``sent``: stopped because
    the failed attempt may have reached its node)."""
    note = f"hashring: {method} failed on {', '.join(failures)}"
    if not idempotent:
        return (
            f"{note}; not replayed on another node: {method} is not idempotent "
            f"(mark it with {IDEMPOTENT_HEADER}: true if it is safe to replay)"
        )
    if one_shot:
        return f"{note}; not replayed on another node: its body is a one-shot stream"
    if sent:
        return (
            f"{note}; not replayed on another node: the connection failed after the request "
            "was sent, so it may have run there (retry_after_send=True replays it)"
        )
    return f"{note}: every node it was allowed to try (max_attempts, ejected nodes last)"


def _may_have_reached(exc: requests.RequestException) -> bool:
    """Whether a failed attempt may have reached its node (False only when it is certain
    that nothing was sent: connection refused or unreachable, DNS failure, connect timeout).

    O(1)."""
    if isinstance(exc, requests.ConnectTimeout):
        return False
    reason = exc.args[0] if exc.args else None
    if isinstance(reason, MaxRetryError):
        reason = reason.reason
    # NewConnectionError covers refused and unreachable connections and NameResolutionError.
    return not isinstance(reason, NewConnectionError)


def _check_timeout(timeout: Any) -> Timeout:
    """``timeout`` if requests would take it: None, a positive number of seconds, or a
    (connect, read) pair of them (read may be None)."""
    if timeout is None:
        return None
    pair = isinstance(timeout, tuple) and len(timeout) == 2
    for index, part in enumerate(timeout if pair else (timeout,)):
        if pair and index == 1 and part is None:
            continue
        if isinstance(part, bool) or not isinstance(part, (int, float)) or not part > 0:
            raise InvalidOptionError(
                "timeout must be None, a positive number of seconds or a (connect, read) "
                f"pair of them, got {timeout!r}"
            )
    return timeout  # type: ignore[no-any-return]
