"""What the httpx and requests adapters share: nodes, shard keys, targets, failover, health.

A request names a *logical* host (``http://users/42``); the adapter picks the node that owns
the request's shard key and rewrites scheme, host, port (and a base path, if the node URL has
one) to that node's. ``HttpRouter.route(key)`` gives a :class:`Route`: the node to try first,
then (on a failure that allows it) the next ones, in this order:

* with a key: the key's preference list (the owner first), without ejected nodes; with
  ``bounded_load`` set, the first node with room under bounded-load consistent hashing;
* without a key: the node the keyless balancer picks, then the others in name order.

Nodes that health has ejected are skipped, unless every candidate is ejected (then all are
tried, in order). A half-open node (its ``retry_timeout`` over) is tried by one request at a
time, the one holding its probe (see :class:`hashring.HealthTracker`); a later node of a
route is claimed only when the request actually moves on to it, so a request that succeeds
on its first node never holds another node's probe. At most ``max_attempts`` nodes are tried.
Only the first node counts as in flight for least-loaded / power-of-two / bounded loads.
Failover (trying the next node) is for idempotent requests only: GET, HEAD, OPTIONS, PUT,
DELETE, TRACE, or any request marked idempotent; the adapters never replay anything else.
And by default only when the request cannot have reached the node (connection refused,
connect timeout, name resolution): a request whose connection broke or timed out *after* it
was sent may have run there (or crashed the node), and replaying it on every node in turn
would spread the damage. ``retry_after_send=True`` lifts that for idempotent requests.

Credentials. A user name and password in a node URL (``http://app:s3cret@10.0.0.7:8080``,
percent-encoded) are never part of the URL sent: the adapters send them as an HTTP Basic
``Authorization`` header (user and password as UTF-8), unless the request carries its own
``Authorization``. Reprs, errors and ``node_urls`` show the password as ``***``.

Hash tags are off by default for the HTTP adapters (``hash_tags=False``), unlike the core
placements and the Redis clients: HTTP shard keys are often built from what a client sends
(a session id, a user name, a path segment), and with tags on, a client that puts
``{x}`` in its keys pins every one of them to one node with no search at all -- which
``hash_key`` cannot prevent. Nothing in an HTTP adapter needs keys co-located (there are no
multi-key commands); turn tags on (``hash_tags=True``) when your keys are yours and you want
``cart:{user:42}`` and ``orders:{user:42}`` on the same node.
"""

from __future__ import annotations

import base64
import math
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_to_bytes, urlsplit, urlunsplit

from hashring import (
    BoundedLoad,
    HealthTracker,
    InvalidOptionError,
    Key,
    Placement,
    placement,
    redact_url,
)
from hashring import balancer as make_balancer
from hashring._placement.keys import check_key
from hashring._placement.nodes import check_node_name, check_weight
from hashring._topology.urls import split_userinfo

__all__ = ["IDEMPOTENT_METHODS", "HttpRouter", "NodeURL", "Route", "parse_node_url"]

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})


@dataclass(frozen=True)
class NodeURL:
    """A node's base URL: scheme, host[:port] (no credentials) and base path (no trailing
    slash); ``authorization`` is the Basic ``Authorization`` value for the URL's user and
    password, if it had any (never shown in a repr)."""

    name: str
    scheme: str
    netloc: str
    path: str
    authorization: str | None = field(default=None, repr=False, compare=False)
    shown: str = field(default="", repr=False, compare=False)

    def rewrite(self, url: str) -> str:
        """``url`` (on any host) sent to this node: its path and query after the base path.

        >>> NodeURL("n", "http", "10.0.0.7:8080", "/api").rewrite("http://users/42?x=1")
        'http://10.0.0.7:8080/api/42?x=1'
        """
        parts = urlsplit(url)
        if not parts.scheme or not parts.netloc:
            raise InvalidOptionError(
                f"request URL {redact_url(url)!r} names no logical host: use an absolute URL "
                "such as http://users/42 (or set the client's base_url)"
            )
        path = self.path + (parts.path if parts.path.startswith("/") else "/" + parts.path)
        return urlunsplit((self.scheme, self.netloc, path, parts.query, parts.fragment))

    @property
    def display(self) -> str:
        """The base URL as given, password shown as ``***``."""
        return self.shown or f"{self.scheme}://{self.netloc}{self.path}"

    def __repr__(self) -> str:
        return f"NodeURL({self.name!r}, {self.display!r})"


def parse_node_url(name: str, url: Any) -> NodeURL:
    """Validate a node's base URL (``http://`` or ``https://``, a host, no query).

    User name and password (percent-encoded) become :attr:`NodeURL.authorization`; the
    returned ``netloc`` has none.

    Raises:
        InvalidOptionError: anything else, with the reason; the URL in the message is redacted.
    """
    check_node_name(name)
    if not isinstance(url, str):
        raise InvalidOptionError(f"node {name!r}: the URL must be a str, not {type(url).__name__}")
    shown = redact_url(url)
    if not url.isascii():
        try:
            url.encode()
        except UnicodeEncodeError:
            raise InvalidOptionError(
                f"node {name!r}: {shown!r} cannot be encoded as UTF-8 (a lone surrogate)"
            ) from None
    try:
        parts = urlsplit(url)
        _, at, host = parts.netloc.rpartition("@")
        if split_userinfo(url)[1] != (parts.netloc.rpartition("@")[0] if at else None):
            raise InvalidOptionError(
                f"node {name!r}: {shown!r} holds an '@' after its host: percent-encode "
                "'/', '?', '#' and '@' in a user name or password (%2F, %3F, %23, %40)"
            )
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError as exc:
        if isinstance(exc, InvalidOptionError):
            raise
        raise InvalidOptionError(f"node {name!r}: malformed URL {shown!r}: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise InvalidOptionError(
            f"node {name!r}: unsupported scheme in {shown!r}: use http:// or https://"
        )
    if not parts.hostname or parts.query or parts.fragment:
        raise InvalidOptionError(
            f"node {name!r}: {shown!r} must be a base URL with a host and no query, "
            "such as http://10.0.0.7:8080 or https://search-3.internal/api"
        )
    authorization = None
    if at:
        user, _, password = parts.netloc.rpartition("@")[0].partition(":")
        pair = unquote_to_bytes(user) + b":" + unquote_to_bytes(password)
        authorization = "Basic " + base64.b64encode(pair).decode("ascii")
    return NodeURL(
        name,
        parts.scheme,
        host,
        parts.path.rstrip("/"),
        authorization=authorization,
        shown=redact_url(url.rstrip("/")),
    )


class Route:
    """The nodes one request may try: :attr:`first`, then :meth:`next` after each failure.

    Built by :meth:`HttpRouter.route`. ``candidates`` is the order to follow (the first
    choice, then the rest of the preference list); ejected nodes are skipped, and a
    half-open node is taken only if this request gets its probe, claimed when the request
    reaches it. If no candidate is usable at all, every one is tried, in order.
    """

    def __init__(self, health: HealthTracker, candidates: list[str], max_attempts: int) -> None:
        self._health = health
        self._left = max_attempts
        self.tried: list[str] = []
        """The nodes handed out so far, in order."""
        self._checked = any(health.usable(node, claim=False) for node in candidates)
        self._rest = iter(candidates)
        first = self.next()
        if first is None:  # the probes of the only usable nodes were claimed meanwhile
            self._checked, self._rest, self._left = False, iter(candidates), max_attempts
            first = self.next()
        if first is None:
            raise AssertionError("a route has at least one candidate")  # pragma: no cover
        self.first: str = first
        """The node to send to first."""

    def next(self) -> str | None:
        """The next node to try (its probe claimed if it is half-open), or None when no
        node is left or ``max_attempts`` are used up. O(candidates) in all."""
        while self._left > 0:
            node = next(self._rest, None)
            if node is None:
                return None
            if not self._checked or self._health.usable(node):
                self._left -= 1
                self.tried.append(node)
                return node
        return None


class HttpRouter:
    """Nodes, placement, keyless balancer, bounded loads and health of an HTTP adapter.

    Args:
        nodes: node name -> base URL (``http://host:port[/base/path]``).
        weights: optional node name -> weight.
        algorithm, vnodes, table_size, hash: the placement (see :func:`hashring.placement`).
        hash_tags: place keys by their ``{tag}`` (default **False** for HTTP: see the module
            docstring).
        hash_key: a secret of 16 to 64 bytes keying the key hash (see
            :func:`hashring.placement`): without it nobody can compute which keys land on a
            node. Recommended when shard keys come from clients.
        key_func: ``key_func(request) -> key or None``, used when a request carries no key.
        balancer: keyless strategy: ``"round-robin"`` (default), ``"random"``,
            ``"least-loaded"`` or ``"power-of-two"``.
        bounded_load: epsilon for bounded-load consistent hashing of keyed requests (None:
            plain consistent hashing).
        health: eject nodes after ``failure_limit`` consecutive connection failures for
            ``retry_timeout`` seconds (default on).
        max_attempts: nodes an idempotent request may try (default 3), >= 1.
        retry_statuses: response statuses that count as a node failure and are retried on
            the next node for idempotent requests (default none).
        retry_after_send: also move an idempotent request to the next node when its
            connection broke or timed out after it was sent (default False: only failures
            that prove the request never reached the node move it on).

    Raises:
        InvalidOptionError, InvalidWeightError: bad nodes or options.
    """

    def __init__(
        self,
        nodes: Mapping[str, str],
        *,
        weights: Mapping[str, float] | None = None,
        algorithm: str = "ring",
        vnodes: int | None = None,
        table_size: int | None = None,
        hash: str = "mmh3",
        hash_tags: bool = False,
        hash_key: bytes | None = None,
        key_func: Callable[[Any], Key | None] | None = None,
        balancer: str = "round-robin",
        bounded_load: float | None = None,
        health: bool = True,
        failure_limit: int = 2,
        retry_timeout: float = 30.0,
        max_attempts: int = 3,
        retry_statuses: tuple[int, ...] | frozenset[int] = (),
        retry_after_send: bool = False,
    ) -> None:
        if not isinstance(retry_after_send, bool):
            raise InvalidOptionError(
                f"retry_after_send must be a bool, not {type(retry_after_send).__name__}"
            )
        if isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or max_attempts < 1:
            raise InvalidOptionError(f"max_attempts must be an int >= 1, got {max_attempts!r}")
        self._lock = threading.Lock()
        self._urls = {name: parse_node_url(name, url) for name, url in nodes.items()}
        chosen = {name: check_weight((weights or {}).get(name, 1), name) for name in nodes}
        self.placement: Placement = placement(
            algorithm, chosen, hash=hash, hash_tags=hash_tags, hash_key=hash_key,
            vnodes=vnodes, table_size=table_size,
        )  # fmt: skip
        self.keyless = make_balancer(balancer, chosen)
        self.bounded = None if bounded_load is None else BoundedLoad(
            self.placement, epsilon=bounded_load
        )  # fmt: skip
        self.health = HealthTracker(
            enabled=health,
            failure_limit=failure_limit,
            retry_timeout=retry_timeout,
            probe_timeout=_probe_timeout(retry_timeout),
        )
        self.key_func = key_func
        self.max_attempts = max_attempts
        self.retry_statuses = frozenset(retry_statuses)
        self.retry_after_send = retry_after_send

    # ------------------------------------------------------------------ routing

    def shard_key(self, explicit: Any, request: Any) -> Key | None:
        """The request's shard key: ``explicit`` if given, else ``key_func(request)``.

        Raises:
            KeyEncodingError: a str key with no UTF-8 form (a lone surrogate such as
                ``"\\udcff"``); an :class:`~hashring.InvalidKeyError` and a ``ValueError``.
            InvalidKeyError: a key that is neither str nor bytes-like.
        """
        if explicit is None and self.key_func is not None:
            explicit = self.key_func(request)
        return None if explicit is None else check_key(explicit)

    @contextmanager
    def route(self, key: Key | None) -> Iterator[Route]:
        """The nodes to try for ``key`` (None: keyless), as a :class:`Route`; its first
        choice counts as in flight (for the load-aware strategies) until the block exits.

        When the block exits, whatever the outcome, a half-open node's probe that this
        request claimed and no outcome resolved (an error outside the health errors, a
        cancelled async attempt) is given back, so the next request may probe.

        Raises:
            EmptyRingError: there are no nodes.
        """
        route: Route | None = None
        try:
            if key is None:
                with self.keyless.acquire() as first:
                    route = self._targets(first, sorted(self._urls))
                    yield route
            elif self.bounded is not None:
                with self.bounded.acquire(key) as first:
                    route = self._targets(first, self.placement.get_nodes(key))
                    yield route
            else:
                preference = self.placement.get_nodes(key)
                route = self._targets(preference[0], preference)
                yield route
        finally:
            if route is not None:
                self.health.release(route.tried)

    def url_for(self, node: str, url: str) -> str:
        """``url`` rewritten to ``node``."""
        return self._urls[node].rewrite(url)

    def authorization(self, node: str) -> str | None:
        """The Basic ``Authorization`` value for ``node``'s URL credentials (None: none)."""
        return self._urls[node].authorization

    @staticmethod
    def idempotent(method: str, marked: bool) -> bool:
        """Whether a request may be replayed on another node."""
        return marked or method.upper() in IDEMPOTENT_METHODS

    def may_move_on(self, replayable: bool, reached: bool) -> bool:
        """Whether a replayable request whose attempt failed goes to the next node:
        always if it cannot have ``reached`` the node, else only with ``retry_after_send``."""
        return replayable and (not reached or self.retry_after_send)

    # ------------------------------------------------------------------ membership

    def add_node(self, name: str, url: str, weight: float = 1) -> None:
        """Add a node at runtime (thread-safe).

        Raises:
            NodeExistsError, InvalidOptionError, InvalidWeightError: bad node or URL.
        """
        parsed = parse_node_url(name, url)
        with self._lock:
            self.placement.add_node(name, weight)
            self.keyless.add_node(name, weight)
            self._urls = {**self._urls, name: parsed}

    def remove_node(self, name: str) -> None:
        """Remove a node at runtime (thread-safe).

        Raises:
            UnknownNodeError: ``name`` is not a node.
        """
        with self._lock:
            self.placement.remove_node(name)
            self.keyless.remove_node(name)
            self._urls = {n: u for n, u in self._urls.items() if n != name}
        self.health.forget(name)

    @property
    def node_urls(self) -> dict[str, str]:
        """Node name -> base URL, passwords redacted."""
        return {name: u.display for name, u in self._urls.items()}

    def stats(self) -> dict[str, dict[str, float | int | bool]]:
        """Per-node counters: requests, errors, ejections, ejected."""
        return self.health.stats(self._urls)

    def _targets(self, first: str, order: list[str]) -> Route:
        """``first``, then ``order`` without it, as a :class:`Route`."""
        candidates = [first, *(node for node in order if node != first)]
        return Route(self.health, candidates, self.max_attempts)


PROBE_GRACE = 35.0
"""Seconds a half-open probe may take beyond ``retry_timeout`` before another request may
probe the node: the longest default attempt (the requests adapter's 5 s connect plus 30 s
read; httpx's default is 5 s), so a probe still waiting on a hung node stays the only one."""


def _probe_timeout(retry_timeout: Any) -> float | None:
    """``retry_timeout + PROBE_GRACE``, or None (the tracker's default, and its own check of
    ``retry_timeout``) when ``retry_timeout`` is not a usable number."""
    if isinstance(retry_timeout, bool) or not isinstance(retry_timeout, (int, float)):
        return None
    total = float(retry_timeout) + PROBE_GRACE
    return total if math.isfinite(total) and retry_timeout > 0 else None
