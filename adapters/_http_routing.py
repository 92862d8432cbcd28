"""What the httpx and requests adapters share: nodes, shard keys, targets, failover, health.

A request names a *logical* host (``http://users/42``); the adapter picks the node that owns
the request's shard key and rewrites scheme, host, port (and a base path, if the node URL has
one) to that node's. ``HttpRouter.route(key)`` gives, in order, the nodes to try:

* with a key: the key's preference list (the owner first), without ejected nodes; with
  ``bounded_load`` set, the first node with room under bounded-load consistent hashing;
* without a key: the node the keyless balancer picks, then the others in name order.

Only the first node counts as in flight for least-loaded / power-of-two / bounded loads.
Failover (trying the next node) is for idempotent requests only: GET, HEAD, OPTIONS, PUT,
DELETE, TRACE, or any request marked idempotent; the adapters never replay anything else.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

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
from hashring._keys import check_key
from hashring._nodes import check_node_name, check_weight

__all__ = ["IDEMPOTENT_METHODS", "HttpRouter", "NodeURL", "parse_node_url"]

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})


@dataclass(frozen=True)
class NodeURL:
    """A node's base URL: scheme, host, port and base path (no trailing slash)."""

    name: str
    scheme: str
    netloc: str
    path: str

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

    def __repr__(self) -> str:
        return (
            f"NodeURL({self.name!r}, {redact_url(f'{self.scheme}://{self.netloc}{self.path}')!r})"
        )


def parse_node_url(name: str, url: Any) -> NodeURL:
    """Validate a node's base URL (``http://`` or ``https://``, a host, no query).

    Raises:
        InvalidOptionError: anything else, with the reason.
    """
    check_node_name(name)
    if not isinstance(url, str):
        raise InvalidOptionError(f"node {name!r}: the URL must be a str, not {type(url).__name__}")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError as exc:
        raise InvalidOptionError(
            f"node {name!r}: malformed URL {redact_url(url)!r}: {exc}"
        ) from None
    if parts.scheme not in ("http", "https"):
        raise InvalidOptionError(
            f"node {name!r}: unsupported scheme in {redact_url(url)!r}: use http:// or https://"
        )
    if not parts.hostname or parts.query or parts.fragment:
        raise InvalidOptionError(
            f"node {name!r}: {redact_url(url)!r} must be a base URL with a host and no query, "
            "such as http://10.0.0.7:8080 or https://search-3.internal/api"
        )
    return NodeURL(name, parts.scheme, parts.netloc, parts.path.rstrip("/"))


class HttpRouter:
    """Nodes, placement, keyless balancer, bounded loads and health of an HTTP adapter.

    Args:
        nodes: node name -> base URL (``http://host:port[/base/path]``).
        weights: optional node name -> weight.
        algorithm, vnodes, table_size, hash, hash_tags: the placement (see
            :func:`hashring.placement`).
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
        hash_tags: bool = True,
        key_func: Callable[[Any], Key | None] | None = None,
        balancer: str = "round-robin",
        bounded_load: float | None = None,
        health: bool = True,
        failure_limit: int = 2,
        retry_timeout: float = 30.0,
        max_attempts: int = 3,
        retry_statuses: tuple[int, ...] | frozenset[int] = (),
    ) -> None:
        if isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or max_attempts < 1:
            raise InvalidOptionError(f"max_attempts must be an int >= 1, got {max_attempts!r}")
        self._lock = threading.Lock()
        self._urls = {name: parse_node_url(name, url) for name, url in nodes.items()}
        chosen = {name: check_weight((weights or {}).get(name, 1), name) for name in nodes}
        self.placement: Placement = placement(
            algorithm, chosen, hash=hash, hash_tags=hash_tags, vnodes=vnodes,
            table_size=table_size,
        )  # fmt: skip
        self.keyless = make_balancer(balancer, chosen)
        self.bounded = None if bounded_load is None else BoundedLoad(
            self.placement, epsilon=bounded_load
        )  # fmt: skip
        self.health = HealthTracker(
            enabled=health, failure_limit=failure_limit, retry_timeout=retry_timeout
        )
        self.key_func = key_func
        self.max_attempts = max_attempts
        self.retry_statuses = frozenset(retry_statuses)

    # ------------------------------------------------------------------ routing

    def shard_key(self, explicit: Any, request: Any) -> Key | None:
        """The request's shard key: ``explicit`` if given, else ``key_func(request)``.

        Raises:
            InvalidKeyError: a key that is neither str nor bytes.
        """
        if explicit is None and self.key_func is not None:
            explicit = self.key_func(request)
        return None if explicit is None else check_key(explicit)

    @contextmanager
    def route(self, key: Key | None) -> Iterator[list[str]]:
        """The nodes to try, in order (at most ``max_attempts``); the first one counts as in
        flight (for the load-aware strategies) until the block exits.

        Raises:
            EmptyRingError: there are no nodes.
        """
        if key is None:
            with self.keyless.acquire() as first:
                yield self._targets(first, sorted(self._urls))
        elif self.bounded is not None:
            with self.bounded.acquire(key) as first:
                yield self._targets(first, self.placement.get_nodes(key))
        else:
            preference = self.placement.get_nodes(key)
            yield self._targets(preference[0], preference)

    def url_for(self, node: str, url: str) -> str:
        """``url`` rewritten to ``node``."""
        return self._urls[node].rewrite(url)

    @staticmethod
    def idempotent(method: str, marked: bool) -> bool:
        """Whether a request may be replayed on another node."""
        return marked or method.upper() in IDEMPOTENT_METHODS

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
        return {
            name: redact_url(f"{u.scheme}://{u.netloc}{u.path}") for name, u in self._urls.items()
        }

    def stats(self) -> dict[str, dict[str, float | int | bool]]:
        """Per-node counters: requests, errors, ejections, ejected."""
        return self.health.stats(self._urls)

    def _targets(self, first: str, order: list[str]) -> list[str]:
        """``first``, then ``order`` without it; usable nodes before ejected ones."""
        candidates = [first, *(node for node in order if node != first)]
        usable = [node for node in candidates if self.health.usable(node)]
        return (usable or candidates)[: self.max_attempts]
