"""Which topology versions the connected hashring clients run (``CLIENT LIST`` on every
node), and waiting until they all run the new one before keys move.

A client of the old topology that keeps writing while keys move writes keys the migration has
already passed, so they are stranded on the old owner. Clients name their connections with
their topology's version (:mod:`hashring._topology.clients`); before ``--apply`` moves a key,
:func:`wait_for_clients` polls ``CLIENT LIST`` on every node until no hashring connection runs
another version, or its time runs out. A client with no connection open at that moment cannot
be seen: clients following a file or a Redis key switch within about a second, and their pools
reconnect under the new name.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import redis

from hashring._topology.clients import client_version

__all__ = ["LiveClient", "live_clients", "wait_for_clients"]

POLL_SECONDS = 0.5


@dataclass(frozen=True, order=True)
class LiveClient:
    """One connection of a hashring client, as a node's ``CLIENT LIST`` shows it."""

    version: str
    node: str
    address: str
    """The client's ``host:port`` as the server sees it."""
    idle_seconds: int
    """Seconds since the connection last ran a command."""

    def describe(self) -> str:
        """``version V at ADDRESS on NODE (idle Ns)``, for messages."""
        return (
            f"version {self.version} at {self.address} on {self.node} (idle {self.idle_seconds}s)"
        )


def live_clients(
    clients: Mapping[str, redis.Redis],
    servers: Mapping[str, str] | None = None,
    guard: Callable[[str], AbstractContextManager[object]] = lambda node: nullcontext(),
) -> list[LiveClient]:
    """Every hashring connection on the nodes, sorted; a server that two node names share
    (``servers``: node -> run_id) is listed once. One ``CLIENT LIST`` per server, each inside
    ``guard(node)`` (which may turn redis-py's errors into the caller's).

    Raises:
        redis.RedisError: a node cannot be reached or refuses ``CLIENT LIST`` (unless the
            guard turns it into another error).
    """
    seen: set[str] = set()
    found: list[LiveClient] = []
    for node, client in clients.items():
        server = (servers or {}).get(node, node)
        if server in seen:
            continue
        seen.add(server)
        with guard(node):
            entries = client.client_list()
        for entry in entries:
            version = client_version(_text(entry.get("name", "")))
            if version is not None:
                found.append(
                    LiveClient(
                        version,
                        node,
                        _text(entry.get("addr", "?")),
                        _int(entry.get("idle", 0)),
                    )
                )
    return sorted(found)


def wait_for_clients(
    clients: Mapping[str, redis.Redis],
    version: str,
    *,
    timeout: float,
    servers: Mapping[str, str] | None = None,
    on_wait: Callable[[list[LiveClient]], object] | None = None,
    poll: float = POLL_SECONDS,
    guard: Callable[[str], AbstractContextManager[object]] = lambda node: nullcontext(),
) -> list[LiveClient]:
    """Poll until no hashring connection on the nodes runs a version other than ``version``,
    at most ``timeout`` seconds; return the stragglers left (empty: every client switched).
    ``on_wait(stragglers)`` is called after each look that found some.

    Raises:
        redis.RedisError: a node cannot be reached or refuses ``CLIENT LIST``.
    """
    deadline = time.monotonic() + timeout
    while True:
        others = [c for c in live_clients(clients, servers, guard) if c.version != version]
        if not others or time.monotonic() >= deadline:
            return others
        if on_wait is not None:
            on_wait(others)
        time.sleep(min(poll, max(0.0, deadline - time.monotonic())))


def _text(value: object) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _int(value: object) -> int:
    try:
        return int(_text(value))
    except ValueError:
        return 0
