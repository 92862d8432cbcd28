"""What ShardedRedis and AsyncShardedRedis share: everything that does no I/O.

Nodes and their clients, the placement, health counters, URLs (kept for ``repr`` with
passwords redacted and to know which clients this object created), topology files, and the
lookups ``node_for`` / ``client_for``. Only connecting (sync or asyncio client classes) and
the I/O itself differ between the two clients.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Generic, TypeVar

from hashring import (
    ConfigError,
    HealthTracker,
    InvalidOptionError,
    Key,
    Placement,
    load_topology,
    placement,
    redact_url,
)
from hashring._nodes import check_node_name, check_weight

from ._redis_commands import SCHEMES, describe_nodes, route_owners

__all__ = ["ShardedBase", "check_target", "config_arguments"]

C = TypeVar("C")


def check_target(name: str, target: object, client_class: type) -> None:
    """Refuse a node target that is neither a ``client_class`` nor a Redis URL.

    Raises:
        InvalidOptionError: a bad node name, an unsupported scheme or a wrong type.
    """
    check_node_name(name)
    if isinstance(target, client_class):
        return
    if not isinstance(target, str) or not target.startswith(SCHEMES):
        shown = redact_url(target) if isinstance(target, str) else type(target).__name__
        raise InvalidOptionError(
            f"node {name!r}: {shown!r} is neither a {client_class.__module__}."
            f"{client_class.__name__} nor a redis://, rediss:// or unix:// URL"
        )


def config_arguments(path: str | Path) -> tuple[dict[str, str], dict[str, Any]]:
    """Node URLs and constructor options from the topology file at ``path``.

    Raises:
        ConfigError: the file is not valid, or a node has no url.
    """
    topology = load_topology(path)
    missing = [name for name, spec in topology.nodes.items() if spec.url is None]
    if missing:
        raise ConfigError(f"{topology.source}: nodes.{missing[0]}.url is required here")
    nodes = {name: spec.url for name, spec in topology.nodes.items() if spec.url}
    options: dict[str, Any] = {
        "weights": topology.weights,
        "algorithm": topology.algorithm,
        "vnodes": topology.vnodes,
        "table_size": topology.table_size,
        "hash": topology.hash,
        "hash_tags": topology.hash_tags,
    }
    return nodes, options


class ShardedBase(Generic[C]):
    """Nodes, clients, placement and health of a sharded client of client type ``C``."""

    _clients: dict[str, C]
    _first: str  # the default node: the first name, kept with _clients
    _urls: dict[str, str | None]
    _placement: Placement
    _health: HealthTracker
    _redis_kwargs: dict[str, Any]

    def _setup(
        self,
        nodes: Mapping[str, str | C],
        connect: Callable[[str, str | C, Mapping[str, Any]], C],
        *,
        weights: Mapping[str, float] | None,
        algorithm: str,
        vnodes: int | None,
        table_size: int | None,
        hash: str,
        hash_tags: bool,
        health: bool,
        failure_limit: int,
        retry_timeout: float,
        redis_kwargs: Mapping[str, Any],
    ) -> None:
        self._connect = connect
        self._redis_kwargs = dict(redis_kwargs)
        self._urls = {name: t if isinstance(t, str) else None for name, t in nodes.items()}
        self._clients = {name: connect(name, t, redis_kwargs) for name, t in nodes.items()}
        self._first = min(self._clients, default="")
        chosen = {name: check_weight((weights or {}).get(name, 1), name) for name in nodes}
        self._placement = placement(
            algorithm, chosen, hash=hash, hash_tags=hash_tags, vnodes=vnodes,
            table_size=table_size,
        )  # fmt: skip
        self._health = HealthTracker(
            enabled=health, failure_limit=failure_limit, retry_timeout=retry_timeout
        )

    def node_for(self, key: Key | int | float) -> str:
        """The node that owns ``key`` now (an ejected owner's next usable node)."""
        return route_owners(self._placement, self._health, self.get_encoder(), [key])[0]

    def client_for(self, key: Key | int | float) -> C:
        """The client of the node that owns ``key``."""
        return self._clients[self.node_for(key)]

    @property
    def clients(self) -> dict[str, C]:
        """Node name -> its client (a copy of the mapping)."""
        return dict(self._clients)

    @property
    def placement(self) -> Placement:
        """The placement that maps keys to node names."""
        return self._placement

    def add_node(self, name: str, target: str | C, weight: float = 1) -> None:
        """Add a node at runtime; only keys that move to it change owner. No I/O.

        Raises:
            NodeExistsError, InvalidOptionError, InvalidWeightError: as the placement.
        """
        client = self._connect(name, target, self._redis_kwargs)
        self._placement.add_node(name, weight)
        self._clients = {**self._clients, name: client}
        self._first = min(self._first, name) if self._first else name
        self._urls = {**self._urls, name: target if isinstance(target, str) else None}

    def _detach(self, name: str) -> tuple[C, bool]:
        """Take node ``name`` out; return its client and whether this object created it.

        Raises:
            UnknownNodeError: ``name`` is not a node.
        """
        self._placement.remove_node(name)
        clients = dict(self._clients)
        client = clients.pop(name)
        self._first = min(clients, default="")
        self._clients = clients
        urls = dict(self._urls)
        created = urls.pop(name, None) is not None
        self._urls = urls
        self._health.forget(name)
        return client, created

    def _created_clients(self) -> list[C]:
        return [c for name, c in self._clients.items() if self._urls.get(name) is not None]

    def stats(self) -> dict[str, dict[str, float | int | bool]]:
        """Per-node counters: commands, errors, ejections, ejected."""
        return self._health.stats(self._clients)

    def get_encoder(self) -> Any:
        """The encoder redis-py's command methods use (the first node's)."""
        return self._default_client().get_encoder()  # type: ignore[attr-defined]

    def get_connection_kwargs(self) -> dict[str, Any]:
        """Connection options of the first node's client."""
        kwargs: dict[str, Any] = self._default_client().get_connection_kwargs()  # type: ignore[attr-defined]
        return kwargs

    def _default_client(self) -> C:
        return self._clients[self._first]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({describe_nodes(self._urls)}; {self._placement!r})"
