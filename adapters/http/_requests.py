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
    ``shard_key=`` of a :class:`ShardedSession` call (it travels beside the request, not in
    a header), else the ``X-Shard-Key`` header (:data:`SHARD_KEY_HEADER`), else
    ``key_func(request)`` (called with the logical :class:`requests.PreparedRequest`), else
    none. Keys are ``str`` or
    ``bytes`` (anything else: :class:`~hashring.InvalidKeyError`; a str with a lone surrogate:
    :class:`~hashring.KeyEncodingError`). ``placement=`` is an algorithm name (``"ring"`` by
    default) or a ready :class:`~hashring.Placement` over the node names. Hash tags are off when
    it is a name (keys from clients could pin themselves to one node with ``{x}``); a placement
    built with ``hash_key=`` keys the hash so that nobody without the secret can aim keys at a
    node. A request without a key goes to the keyless balancer (``balancer=``, round-robin by
    default). ``X-Shard-Key`` and
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
from contextvars import ContextVar
from typing import Any, Self
from urllib.parse import urlsplit

import requests
from requests.adapters import DEFAULT_POOLSIZE, BaseAdapter, HTTPAdapter
from requests.models import PreparedRequest, Response
from urllib3.exceptions import MaxRetryError, NewConnectionError

from hashring import InvalidOptionError, Key, Placement
from hashring._topology.watch import stop_following

from ._following import FollowsTopology, check_options
from ._router import HttpRouter

__all__ = [
    "DEFAULT_TIMEOUT",
    "IDEMPOTENT_HEADER",
    "SHARD_KEY_HEADER",
    "ShardedAdapter",
    "served_by",
]

SHARD_KEY_HEADER = "X-Shard-Key"
"""Request header carrying the shard key; removed before the request is sent."""
IDEMPOTENT_HEADER = "X-Idempotent"
"""``X-Idempotent: true`` marks a request safe to replay on another node; removed before sending."""
_MARK_HINT = f"mark it with {IDEMPOTENT_HEADER}: true"
"""How to mark a requests request idempotent (for the note on an error)."""

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


_CALL: ContextVar[tuple[ShardedAdapter, Key | None, bool] | None] = ContextVar(
    "hashring_sharded_call", default=None
)
"""``(adapter, shard_key, idempotent)`` of the :class:`ShardedSession` call running in this
thread or task: every request that call sends through ``adapter`` (its redirects on the
logical host, re-sends by auth hooks) is routed by them, ahead of the routing headers."""


_new_prepared = object.__new__


def served_by(response: Response) -> str | None:
    """The node that answered ``response`` (None if it did not come through a ShardedAdapter)."""
    node = getattr(response, "shard_node", None)
    return node if isinstance(node, str) else None


class ShardedAdapter(FollowsTopology, BaseAdapter):
    """A requests transport adapter that sends each request to the node owning its shard key.

    Args:
        nodes: node name -> base URL (``http://host:port[/base/path]``, or ``https://``).
        adapter: the adapter that does the I/O (default: a pooling
            :class:`requests.adapters.HTTPAdapter` with a pool per node); closed by
            :meth:`close`.
        placement: an algorithm name (default ``"ring"``, hash tags off) or a ready
            :class:`hashring.Placement` over exactly the node names, with its weights and
            options (``hash_key=`` recommended when keys come from clients); see
            :func:`hashring.as_placement`.
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

    Use :meth:`from_router` to share one :class:`HttpRouter` (and its health) between clients,
    and :meth:`from_config` / :meth:`from_source` to build the adapter from a topology and
    follow it (see the ``_following`` module).

    Raises:
        InvalidOptionError, InvalidWeightError: bad nodes, URLs or options.
    """

    def __init__(
        self,
        nodes: Mapping[str, str],
        *,
        adapter: BaseAdapter | None = None,
        placement: str | Placement = "ring",
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
            nodes, placement=placement, key_func=key_func, balancer=balancer,
            bounded_load=bounded_load, health=health, failure_limit=failure_limit,
            retry_timeout=retry_timeout, max_attempts=max_attempts,
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
    ) -> Self:
        """An adapter over an existing router (its nodes, placement, options and health)."""
        if not isinstance(router, HttpRouter):
            raise InvalidOptionError(f"router must be an HttpRouter, not {type(router).__name__}")
        self = cls.__new__(cls)
        self._setup(router, adapter, timeout)
        return self

    @classmethod
    def _of_router(cls, router: HttpRouter, options: dict[str, Any]) -> Self:
        """:meth:`from_router`; ``options``: ``adapter`` and ``timeout``.

        Raises:
            TypeError: another option. InvalidOptionError: a bad adapter or timeout.
        """
        check_options(cls, options, {"adapter", "timeout"})
        return cls.from_router(router, **options)

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
        headers = request.headers
        call = _CALL.get()
        if call is not None and call[0] is self:  # ShardedSession.request(shard_key=...)
            explicit = call[1] if call[1] is not None else headers.get(SHARD_KEY_HEADER)
            marked = call[2] or _idempotent_mark(headers.get(IDEMPOTENT_HEADER))
        else:
            explicit = headers.get(SHARD_KEY_HEADER)
            marked = _idempotent_mark(headers.get(IDEMPOTENT_HEADER))
        router = self.router  # the snapshot this request runs on, failover included
        key = router.shard_key(explicit, request)
        method = (request.method or "").upper()
        one_shot = not (request.body is None or isinstance(request.body, (bytes, str)))
        if timeout is None:
            timeout = self.timeout
        with router.attempts(
            key,
            method,
            idempotent=router.idempotent(method, marked),
            one_shot=one_shot,
            mark_hint=_MARK_HINT,
        ) as attempt:
            while True:
                node = attempt.node
                try:
                    response = self.adapter.send(
                        self._for_node(router, request, url, node), stream=stream, timeout=timeout,
                        verify=verify, cert=cert, proxies=proxies,
                    )  # fmt: skip
                except (requests.ConnectionError, requests.Timeout) as exc:
                    if attempt.failed(exc, reached=_may_have_reached(exc)):
                        continue
                    raise
                if attempt.answered(response.status_code):
                    return self._logical(response, request, url, node)
                response.close()

    def close(self) -> None:
        """Stop following a topology (``from_config(watch=True)``, ``from_source``: the
        thread, waited for at most 10 s, and the source's connections), then close the
        delegate adapter (its connection pools). Idempotent."""
        stop_following(self)
        self.adapter.close()

    def _for_node(
        self, router: HttpRouter, request: PreparedRequest, url: str, node: str
    ) -> PreparedRequest:
        """``request`` addressed to ``node`` (of ``router``, the request's snapshot), without
        the routing headers: a shallow copy (method, body, hooks as they are) with the URL
        rewritten (see :meth:`NodeURL.rewrite`) and, only when they must change (routing
        headers, a ``Host`` naming the logical host, the node URL's credentials), its own
        copy of the headers; else it shares the logical request's headers, which nothing on
        the way writes to. O(len(url)), plus O(headers) when they change."""
        target = router.node_url(node)
        outgoing = _new_prepared(PreparedRequest)
        outgoing.__dict__.update(request.__dict__)
        outgoing.url = target.rewrite(url)
        headers = request.headers
        authorization = target.authorization
        if (
            SHARD_KEY_HEADER in headers
            or IDEMPOTENT_HEADER in headers
            or "Host" in headers
            or (authorization is not None and "Authorization" not in headers)
        ):
            headers = outgoing.headers = headers.copy()
            headers.pop(SHARD_KEY_HEADER, None)
            headers.pop(IDEMPOTENT_HEADER, None)
            host = headers.get("Host")
            if host is not None and _text(host).lower() == urlsplit(url).netloc.lower():
                del headers["Host"]
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
