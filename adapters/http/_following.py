"""HTTP adapters built from a topology, and following it as it changes.

Every HTTP adapter (:class:`ShardedTransport`, :class:`AsyncShardedTransport`,
:class:`ShardedAdapter`, and :class:`ShardedSession` through its adapter) takes its nodes
from a topology with ``from_config(path)`` (a file, see :func:`hashring.load_topology`) or
``from_source(url, key=...)`` (a Redis key, see
:class:`hashring.adapters.redis.RedisTopologySource`): node name -> the node's ``url``,
``placement=topology.placement()`` (algorithm, weights, hash key and hash tags as the
topology says), and :attr:`FollowsTopology.version`.

Following. ``from_config(path, watch=True)`` runs a :class:`hashring.TopologyWatcher` on the
file, ``from_source`` a :class:`~hashring.adapters.redis.RedisTopologyFollower` on the key;
each new valid topology builds a new :class:`HttpRouter` (:meth:`HttpRouter.successor`) that
replaces the adapter's ``router`` in one assignment. A request reads ``router`` once when it
starts and runs on that snapshot to its end: its owner, its failover nodes, their URLs and
its in-flight counts all come from the topology it started with. The health tracker is
shared from snapshot to snapshot, so a node whose URL did not change keeps its counters and
its ejection. A topology that does not load, or that cannot run here (a node without a
``url``, a URL that is not http or https), is logged on the ``hashring.topology`` logger and
the running one is kept. Nodes added or removed by hand are replaced by the next topology's.

A ``[migration]`` section has no meaning for HTTP routing (there are no keys to fall back
to on a previous owner): the adapter routes by the new topology alone.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Self

from hashring import ConfigError, InvalidOptionError, Topology, load_topology
from hashring._topology.watch import (
    DEFAULT_WATCH_INTERVAL,
    TopologyFollower,
    TopologyWatcher,
    follow_topology,
)

from ._router import HttpRouter

__all__ = [
    "ROUTER_OPTIONS",
    "TOPOLOGY_KEY",
    "FollowsTopology",
    "check_options",
    "router_of",
]

ROUTER_OPTIONS = frozenset(inspect.signature(HttpRouter).parameters) - {"nodes", "placement"}
"""The :class:`HttpRouter` options ``from_config`` / ``from_source`` pass to the router (the
rest go to the adapter)."""


TOPOLOGY_KEY = "hashring:topology"
"""``from_source``'s default key: :data:`hashring.adapters.redis.DEFAULT_TOPOLOGY_KEY`
(spelled out here because the Redis adapter is imported only when ``from_source`` runs)."""


def _nodes(topology: Topology) -> dict[str, str]:
    """Node name -> URL of every node of ``topology``.

    Raises:
        ConfigError: a node has no url.
    """
    missing = [name for name, spec in topology.nodes.items() if spec.url is None]
    if missing:
        raise ConfigError(f"{topology.source}: nodes.{missing[0]}.url is required here")
    return {name: spec.url for name, spec in topology.nodes.items() if spec.url is not None}


def router_of(topology: Topology, options: Mapping[str, Any]) -> HttpRouter:
    """A router over ``topology``'s nodes and placement with the router ``options``.
    O(nodes) plus one placement build.

    Raises:
        ConfigError: a node has no url.
        InvalidOptionError, InvalidWeightError: a URL that is not http(s), or a bad option.
    """
    router = HttpRouter(_nodes(topology), placement=topology.placement(), **options)
    router.version = topology.version
    return router


def _split(options: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``options`` as (router options, adapter options).

    Raises:
        InvalidOptionError: ``placement=`` given (the topology says its own).
    """
    if "placement" in options:
        raise InvalidOptionError(
            "placement= is not allowed with a topology: its [placement] and node weights "
            "say the placement"
        )
    router = {name: value for name, value in options.items() if name in ROUTER_OPTIONS}
    return router, {name: value for name, value in options.items() if name not in router}


def check_options(cls: type, options: Mapping[str, Any], allowed: set[str]) -> None:
    """Refuse an option of ``options`` outside ``allowed`` and the router's.

    Raises:
        TypeError: one is unknown (as for a keyword argument a function does not take).
    """
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise TypeError(f"{cls.__name__}: unexpected option {unknown[0]!r}")


class FollowsTopology:
    """What every HTTP adapter shares to be built from a topology and to follow it: the
    ``from_config`` / ``from_source`` constructors, :attr:`version`, the swap and the stop.
    A subclass says how to build itself over a ready router (:meth:`_of_router`)."""

    router: HttpRouter
    """The routing snapshot requests start on (replaced, never changed, by a switch)."""
    _follower: TopologyFollower | None = None
    _source: Any = None  # a RedisTopologySource this adapter follows and closes

    @classmethod
    def _of_router(cls, router: HttpRouter, options: dict[str, Any]) -> Self:
        """An adapter over ``router`` with the adapter ``options`` (not the router's).

        Raises:
            TypeError: an unknown option. InvalidOptionError: a bad one.
        """
        raise NotImplementedError

    @classmethod
    def from_config(
        cls,
        path: str | Path,
        *,
        watch: bool = False,
        watch_interval: float = DEFAULT_WATCH_INTERVAL,
        **options: Any,
    ) -> Self:
        """An adapter over the topology file at ``path``: its nodes' ``url`` values and
        ``placement=load_topology(path).placement()``; ``options`` are the adapter's other
        arguments (``placement=`` excepted). :attr:`version` is the topology's version.

        With ``watch=True`` a :class:`hashring.TopologyWatcher` thread looks at the file
        every ``watch_interval`` seconds (rewritten in place, renamed over, or swapped
        through a symlink) and switches the adapter to each new valid topology in one
        assignment (see the ``_following`` module); an invalid one is logged on the
        ``hashring.topology`` logger and the running one kept. ``close()`` stops the thread.

        Raises:
            ConfigError: the file is not a valid topology, a node has no url, or the hash
                key secret is missing.
            InvalidOptionError: ``placement=`` given, a node URL that is not http(s), a
                ``watch_interval`` not in [0.01, 3600] seconds, or as the constructor.
        """
        router_options, own = _split(options)
        if not watch:
            return cls._of_router(router_of(load_topology(path), router_options), own)

        def follow(on_change: Callable[[Topology], object]) -> TopologyFollower:
            return TopologyWatcher(path, on_change, interval=watch_interval, start=False)

        return follow_topology(follow, lambda t: cls._of_router(router_of(t, router_options), own))

    @classmethod
    def from_source(
        cls,
        url: str,
        *,
        key: str = TOPOLOGY_KEY,
        watch_interval: float = DEFAULT_WATCH_INTERVAL,
        source_kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> Self:
        """An adapter over the topology stored at ``key`` on the Redis server at ``url``
        (see :class:`hashring.adapters.redis.RedisTopologySource`; ``source_kwargs`` are
        its redis-py options), following it: a thread woken by the announcement ``hashring
        topology push`` publishes, and looking every ``watch_interval`` seconds anyway,
        switches the adapter to each new valid topology, as ``from_config(watch=True)``.
        ``close()`` stops the thread and closes the source's connections. Needs redis-py
        (``pip install 'hashring[redis]'``).

        Raises:
            ConfigError: no valid topology is stored, or a node has no url.
            InvalidOptionError: a bad ``key``, ``url`` or ``watch_interval``, or as
                :meth:`from_config`.
            ImportError: redis-py is not installed.
            redis.RedisError: the source's server cannot be reached.
        """
        router_options, own = _split(options)
        try:
            from ..redis import RedisTopologySource
        except ImportError as exc:
            raise ImportError(
                f"from_source needs redis-py ({exc.name} is missing): "
                "pip install 'hashring[redis]'",
                name=exc.name,
            ) from exc
        source = RedisTopologySource(url, key=key, **dict(source_kwargs or {}))

        def follow(on_change: Callable[[Topology], object]) -> TopologyFollower:
            return source.follow(on_change, interval=watch_interval, start=False)

        return follow_topology(
            follow, lambda t: cls._of_router(router_of(t, router_options), own), source
        )

    @property
    def version(self) -> str | None:
        """The version of the topology the adapter runs (None: built from URLs)."""
        return self.router.version

    def _swap(self, topology: Topology) -> None:
        """Run ``topology`` from now on: a new router (sharing the health tracker) swapped
        in with one assignment; requests under way finish on the router they started on.
        Called by the follower's thread.

        Raises:
            ConfigError, InvalidOptionError, InvalidWeightError: ``topology`` cannot run
                here; the running router is kept.
        """
        self.router = self.router.successor(
            _nodes(topology), placement=topology.placement(), version=topology.version
        )
