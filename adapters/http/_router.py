"""The router every HTTP adapter shares: nodes, placement, shard keys, health, failover.

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
on its first node never holds another node's probe. At most ``max_attempts`` nodes are tried,
and only as much of the preference list is computed as the request reads: routing costs the
same on 3 nodes as on 1,000. Only the first node counts as in flight for least-loaded /
power-of-two / bounded loads.

Failover (trying the next node, :class:`Attempts`) is for idempotent requests only: GET,
HEAD, OPTIONS, PUT, DELETE, TRACE, or any request marked idempotent; the adapters never
replay anything else. And by default only when the request cannot have reached the node
(connection refused, connect timeout, name resolution): a request whose connection broke or
timed out *after* it was sent may have run there (or crashed the node), and replaying it on
every node in turn would spread the damage. ``retry_after_send=True`` lifts that for
idempotent requests.

Placement. ``placement=`` is an algorithm name (``"ring"``, the default, ``"maglev"``,
``"rendezvous"``, ``"jump"``, ...: built over the nodes, weight 1, default options) or a ready
:class:`hashring.Placement` whose nodes are exactly the adapter's (weights, ``vnodes``,
``hash_key``, hash tags and every other option are said where it is built, e.g.
``HashRing({"a": 2, "b": 1}, hash_key=secret, hash_tags=False)`` or
``load_topology(path).placement()``). See :func:`hashring.as_placement`. The keyless balancer
takes the placement's weights.

Hash tags are off when ``placement=`` is a name (``hash_tags=False``), unlike the core
placements and the Redis clients: HTTP shard keys are often built from what a client sends
(a session id, a user name, a path segment), and with tags on, a client that puts ``{x}`` in
its keys pins every one of them to one node with no search at all -- which ``hash_key``
cannot prevent. Nothing in an HTTP adapter needs keys co-located (there are no multi-key
commands); pass a placement built with tags on (``placement("ring", names)``, whose
``hash_tags`` default is True) when your keys are yours and you want ``cart:{user:42}`` and
``orders:{user:42}`` on the same node.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from functools import partial
from types import TracebackType
from typing import Any

from hashring import (
    BoundedLoad,
    HealthTracker,
    InvalidOptionError,
    Key,
    Placement,
    as_placement,
)
from hashring import balancer as make_balancer
from hashring._placement.keys import check_key

from ._attempts import Attempts, Order, Route, moves_on
from ._urls import NodeURL, parse_node_url

__all__ = ["IDEMPOTENT_METHODS", "PROBE_GRACE", "HttpRouter"]

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
"""Methods whose requests may be replayed on another node without being marked."""


class HttpRouter:
    """Nodes, placement, keyless balancer, bounded loads, health and failover of an HTTP
    adapter.

    Args:
        nodes: node name -> base URL (``http://host:port[/base/path]``).
        placement: an algorithm name (default ``"ring"``; hash tags off) or a ready
            :class:`hashring.Placement` over exactly these node names (see the module
            docstring and :func:`hashring.as_placement`). With ``hash_key`` in it nobody
            without the secret can compute which keys land on a node: recommended when
            shard keys come from clients.
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
        InvalidOptionError, InvalidWeightError: bad nodes or options, or a placement whose
            nodes are not the node names.
    """

    def __init__(
        self,
        nodes: Mapping[str, str],
        *,
        placement: str | Placement = "ring",
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
        self._urls: dict[str, NodeURL] = {
            name: parse_node_url(name, url) for name, url in nodes.items()
        }
        self._names: tuple[str, ...] = tuple(sorted(self._urls))
        self.placement: Placement = as_placement(placement, self._urls, hash_tags=False, owner=self)
        self.keyless = make_balancer(balancer, dict(self.placement.nodes))
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
        self.version: str | None = None
        """The version of the topology this router was built from (None: built from URLs)."""
        self._options: dict[str, Any] = {
            "key_func": key_func, "balancer": balancer, "bounded_load": bounded_load,
            "health": health, "failure_limit": failure_limit, "retry_timeout": retry_timeout,
            "max_attempts": max_attempts, "retry_statuses": retry_statuses,
            "retry_after_send": retry_after_send,
        }  # fmt: skip

    def successor(
        self, nodes: Mapping[str, str], *, placement: Placement, version: str | None
    ) -> HttpRouter:
        """A new router over ``nodes`` and ``placement`` (a ready placement over exactly
        their names), for topology ``version``, with this router's options and its health
        tracker: a node whose URL (credentials included) is the same keeps its counters and
        its ejection; those of nodes that left or changed URL are forgotten. This router is
        left as it is, so a request under way on it finishes on it. O(nodes) plus
        :func:`hashring.as_placement`.

        Raises:
            InvalidOptionError, InvalidWeightError: a bad node name or URL, or a placement
                whose nodes are not the node names; nothing is forgotten then.
        """
        router = HttpRouter(nodes, placement=placement, **self._options)
        router.version = version
        router.health = health = self.health
        for name, before in self._urls.items():
            after = router._urls.get(name)
            if after is None or (after, after.authorization) != (before, before.authorization):
                health.forget(name)
        return router

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

    def route(self, key: Key | None) -> AbstractContextManager[Route]:
        """The nodes to try for ``key`` (None: keyless), as a :class:`Route`; its first
        choice counts as in flight (for the load-aware strategies) until the block exits.

        When the block exits, whatever the outcome, a half-open node's probe that this
        request claimed and no outcome resolved (an error outside the health errors, a
        cancelled async attempt) is given back, so the next request may probe.

        Runtime: one owner lookup (``get_node``, or the balancer's pick) and O(1) health
        checks while the first choice is usable; the rest of the preference list is computed
        only when the request moves on (see :class:`Route`), whatever the number of nodes.

        Raises:
            EmptyRingError: there are no nodes.
        """
        return _RouteScope(self, key)

    def attempts(
        self,
        key: Key | None,
        method: str,
        *,
        idempotent: bool,
        one_shot: bool,
        mark_hint: str,
    ) -> AbstractContextManager[Attempts]:
        """One request's :class:`Attempts` over its :meth:`route`: the failover policy every
        adapter's send loop follows (see the ``_attempts`` module).

        Raises:
            EmptyRingError: there are no nodes.
        """
        return _AttemptsScope(self, key, method, idempotent, one_shot, mark_hint)

    def _open(self, key: Key | None) -> tuple[Route, AbstractContextManager[str] | None]:
        """``key``'s :class:`Route` and what holds its first choice in flight (None: nothing
        does; else exit it when the request ends)."""
        hold: AbstractContextManager[str]
        order: Order
        if key is None:
            hold = self.keyless.acquire()
            order = _prefix(self._names)
        elif self.bounded is not None:
            hold = self.bounded.acquire(key)
            order = partial(self.placement.get_nodes, key)
        else:
            placement = self.placement
            return self._route(placement.get_node(key), partial(placement.get_nodes, key)), None
        first = hold.__enter__()
        try:
            return self._route(first, order), hold
        except BaseException as exc:
            hold.__exit__(type(exc), exc, exc.__traceback__)
            raise

    def node_url(self, node: str) -> NodeURL:
        """``node``'s parsed base URL (credentials kept apart). O(1).

        Raises:
            KeyError: ``node`` is not a node.
        """
        return self._urls[node]

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
        return moves_on(replayable, reached, self.retry_after_send)

    # ------------------------------------------------------------------ membership

    def add_node(self, name: str, url: str, weight: float = 1) -> None:
        """Add a node at runtime (thread-safe). O(n) for the name list, plus the
        placement's own cost.

        Raises:
            NodeExistsError, InvalidOptionError, InvalidWeightError: bad node or URL.
        """
        parsed = parse_node_url(name, url)
        with self._lock:
            self.placement.add_node(name, weight)
            self.keyless.add_node(name, weight)
            self._urls = {**self._urls, name: parsed}
            self._names = tuple(sorted(self._urls))

    def remove_node(self, name: str) -> None:
        """Remove a node at runtime (thread-safe). O(n) for the name list, plus the
        placement's own cost.

        Raises:
            UnknownNodeError: ``name`` is not a node.
        """
        with self._lock:
            self.placement.remove_node(name)
            self.keyless.remove_node(name)
            self._urls = {n: u for n, u in self._urls.items() if n != name}
            self._names = tuple(sorted(self._urls))
        self.health.forget(name)

    @property
    def node_urls(self) -> dict[str, str]:
        """Node name -> base URL, passwords redacted."""
        return {name: u.display for name, u in self._urls.items()}

    def stats(self) -> dict[str, dict[str, float | int | bool]]:
        """Per-node counters of this router's nodes: requests, errors, ejections, ejected."""
        urls = self._urls
        counters = self.health.stats(urls)
        return {name: counters[name] for name in sorted(urls)}

    def _route(self, first: str, order: Order) -> Route:
        """``first``, then the nodes ``order`` lists without it, as a :class:`Route`."""
        return Route(self.health, first, order, self._names, self.max_attempts)


def _prefix(names: tuple[str, ...]) -> Callable[[int | None], tuple[str, ...]]:
    """``n -> names[:n]``: the keyless order (node names, sorted)."""

    def order(n: int | None) -> tuple[str, ...]:
        return names if n is None else names[:n]

    return order


class _RouteScope:
    """``with router.route(key) as route``: the route, its first choice held in flight and
    its unresolved probe claims given back on exit (see :meth:`HttpRouter.route`)."""

    __slots__ = ("_hold", "_key", "_route", "_router")

    def __init__(self, router: HttpRouter, key: Key | None) -> None:
        self._router = router
        self._key = key
        self._route: Route | None = None
        self._hold: AbstractContextManager[str] | None = None

    def __enter__(self) -> Route:
        self._route, self._hold = self._router._open(self._key)
        return self._route

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        try:
            if self._hold is not None:
                self._hold.__exit__(exc_type, exc, traceback)
        finally:
            if self._route is not None:
                self._router.health.release(self._route.tried)


class _AttemptsScope(_RouteScope):
    """``with router.attempts(...) as attempt``: an :class:`Attempts` over the route of
    :class:`_RouteScope` (see :meth:`HttpRouter.attempts`)."""

    __slots__ = ("_idempotent", "_mark_hint", "_method", "_one_shot")

    def __init__(
        self,
        router: HttpRouter,
        key: Key | None,
        method: str,
        idempotent: bool,
        one_shot: bool,
        mark_hint: str,
    ) -> None:
        super().__init__(router, key)
        self._method = method
        self._idempotent = idempotent
        self._one_shot = one_shot
        self._mark_hint = mark_hint

    def __enter__(self) -> Attempts:  # type: ignore[override]  # the attempts, not the route
        route = super().__enter__()
        router = self._router
        return Attempts(
            route,
            self._method,
            health=router.health,
            retry_statuses=router.retry_statuses,
            retry_after_send=router.retry_after_send,
            idempotent=self._idempotent,
            one_shot=self._one_shot,
            mark_hint=self._mark_hint,
        )


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
