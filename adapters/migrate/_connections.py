"""The nodes of a migration and the connections to them: URLs checked, one client per node,
redis-py errors turned into one-line :class:`~hashring.MigrationError` with no credential."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.connection import parse_url
from redis.retry import Retry

from hashring import ConfigError, MigrationError, Topology, redact_url
from hashring._topology.moves import Destination

from ._results import _int

_CONNECT_TIMEOUT = 5.0  # seconds to connect to a node before it counts as unreachable


@dataclass(frozen=True)
class _Node:
    """A node's connection facts, parsed from its URL."""

    name: str
    url: str = field(repr=False)
    options: dict[str, Any] = field(repr=False)
    is_destination: bool

    @property
    def shown(self) -> str:
        """The URL with its password redacted: what messages show."""
        return redact_url(self.url)

    @property
    def host(self) -> str:
        return str(self.options.get("host", "localhost"))

    @property
    def port(self) -> int:
        return int(self.options.get("port", 6379))

    @property
    def db(self) -> int:
        return int(self.options.get("db", 0))

    @property
    def address(self) -> str:
        """``host:port/db`` the source servers connect to for this node (no credentials)."""
        return f"{self.host}:{self.port}/{self.db}"

    def secrets(self) -> list[str]:
        password = self.options.get("password")
        return [str(password)] if password else []

    @property
    def destination(self) -> Destination:
        """Where ``MIGRATE`` sends keys for this node: host, port, db and its ``AUTH`` /
        ``AUTH2`` arguments."""
        return Destination.of_options(self.options)


def _nodes(old: Topology, new: Topology) -> dict[str, _Node]:
    """The union of both topologies' nodes, checked, sorted by name. O(nodes).

    Raises:
        ConfigError: a node without URL, a name with two URLs, a destination that is not
            ``redis://``, a URL redis-py cannot parse.
    """
    urls: dict[str, str] = {}
    for topology in (old, new):
        for name, spec in topology.nodes.items():
            if spec.url is None:
                raise ConfigError(
                    f"{topology.source}: nodes.{name}.url is required by migrate: "
                    "give every node the URL of its Redis server"
                )
            known = urls.setdefault(name, spec.url)
            if known != spec.url:
                raise ConfigError(
                    f"node {name!r} has a different URL in {old.source} ({redact_url(known)}) "
                    f"and in {new.source} ({redact_url(spec.url)}): a node name must mean the "
                    "same server in both topologies"
                )
    nodes: dict[str, _Node] = {}
    for name in sorted(urls):
        url = urls[name]
        is_destination = name in new.nodes
        if is_destination and not url.lower().startswith("redis://"):
            raise ConfigError(
                f"{new.source}: nodes.{name}.url = {redact_url(url)!r}: migrate can only move "
                "keys to redis://host:port/db nodes: MIGRATE runs on the source server, which "
                "connects to the destination over plain TCP (no TLS, no unix socket)"
            )
        try:
            options = dict(parse_url(url))  # type: ignore[no-untyped-call]
        except ValueError as exc:
            raise ConfigError(f"node {name!r}: bad URL {redact_url(url)!r}: {exc}") from None
        nodes[name] = _Node(name, url, options, is_destination)
    return nodes


class _Links:
    """One redis-py client per node (keys as bytes, no retries: a failure surfaces at once),
    the ``run_id`` and ``evicted_keys`` each server had when connected (what tells a key a
    client deleted from one the server dropped: see :meth:`state`), and the error
    translation.

    Built unconnected; :meth:`connect` connects to every node and :meth:`close` closes them.
    """

    def __init__(self, nodes: dict[str, _Node], *, socket_timeout: float) -> None:
        self.nodes = nodes
        self.clients: dict[str, redis.Redis] = {}
        self.run_ids: dict[str, str] = {}
        self.evictions: dict[str, int | None] = {}
        self._socket_timeout = socket_timeout
        self._secrets = [secret for node in nodes.values() for secret in node.secrets()]

    def connect(self) -> None:
        """Connect to every node and record its :meth:`state` (``run_id``, ``evicted_keys``).
        One round trip per node.

        Raises:
            MigrationError: a node is unreachable or refuses the credentials.
            ConfigError: two names for one database, or two databases of one server where
                one is a destination (``MIGRATE`` cannot move keys within one server).
        """
        servers: dict[tuple[str, int], str] = {}
        run_ids: dict[str, tuple[str, bool]] = {}
        for name, node in self.nodes.items():
            pool = redis.ConnectionPool.from_url(
                node.url,
                socket_timeout=self._socket_timeout,
                socket_connect_timeout=_CONNECT_TIMEOUT,
                retry=Retry(NoBackoff(), 0),
            )
            pool.connection_kwargs["decode_responses"] = False  # keys are bytes, always
            client = redis.Redis(connection_pool=pool)
            client.auto_close_connection_pool = True
            self.clients[name] = client
            run_id, evicted = self.state(name, "cannot connect to")
            self.run_ids[name] = run_id
            self.evictions[name] = evicted
            same = servers.setdefault((run_id, node.db), name)
            if same != name:
                raise ConfigError(
                    f"nodes {same!r} and {name!r} are the same database of one redis-server "
                    f"({self.nodes[same].shown} and {node.shown}): give each node its own"
                )
            other = run_ids.setdefault(run_id, (name, node.is_destination))
            if other[0] != name and (other[1] or node.is_destination):
                raise ConfigError(
                    f"nodes {other[0]!r} and {name!r} are databases of one redis-server "
                    f"({self.nodes[other[0]].shown} and {node.shown}): MIGRATE cannot move "
                    "keys between databases of the same server"
                )

    def state(self, name: str, what: str = "lost the connection to") -> tuple[str, int | None]:
        """Node ``name``'s server now: its ``run_id`` (``INFO server``; the node's name if it
        reports none) and its ``evicted_keys`` (``INFO stats``; None if it reports none or
        refuses that section: an ACL may allow ``info|server`` alone). One round trip (both
        pipelined).

        A server drops a key only when a client tells it to, when the key expires, when it
        evicts it (``maxmemory``: ``evicted_keys`` grows) or when it loses its data (a
        restart or a failover: another ``run_id``); so these two facts, read before and
        after, tell whether keys gone meanwhile were deleted by clients.

        Raises:
            MigrationError: the node is unreachable or refuses ``INFO``.
        """
        with self.talking_to(name, what):
            pipe = self.clients[name].pipeline(transaction=False)
            pipe.info("server")
            pipe.info("stats")
            server, stats = pipe.execute(raise_on_error=False)
            if isinstance(server, Exception):
                raise server
        evicted = -1 if isinstance(stats, Exception) else _int(stats.get("evicted_keys"), -1)
        return str(server.get("run_id", name)), evicted if evicted >= 0 else None

    def close(self) -> None:
        """Close every connection (idempotent)."""
        for client in self.clients.values():
            with contextlib.suppress(Exception):
                client.close()
        self.clients = {}

    @contextlib.contextmanager
    def talking_to(self, name: str, what: str = "lost the connection to") -> Iterator[None]:
        """Turn redis-py errors about node ``name`` into a one-line MigrationError."""
        try:
            yield
        except redis.AuthenticationError as exc:
            raise self._error(f"authentication failed on node {name!r}", name, exc) from (
                self._safe(exc)
            )
        except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
            raise self._error(f"{what} node {name!r}", name, exc) from self._safe(exc)
        except redis.ResponseError as exc:
            raise self._error(f"node {name!r} refused a command", name, exc) from self._safe(exc)

    def scrub(self, text: str) -> str:
        """``text`` with every password of every node's URL replaced by ``***``."""
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def _error(self, what: str, name: str, exc: BaseException) -> MigrationError:
        reason = self.scrub(str(exc)) or type(exc).__name__
        return MigrationError(f"{what} ({self.nodes[name].shown}): {reason}")

    def _safe(self, exc: BaseException) -> BaseException | None:
        """``exc`` if no credential shows in it (kept as the cause, for debugging), else None."""
        shown = f"{exc}{exc.args!r}"
        return None if any(secret in shown for secret in self._secrets) else exc
