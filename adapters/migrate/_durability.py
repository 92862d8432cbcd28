"""Whether a destination keeps what it acknowledged through a crash (the rule is in the
package docstring), and the ``WAIT`` that makes a replica-backed destination durable."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, cast

import redis

from hashring import MigrationError

from ._connections import _Links
from ._results import _int

__all__ = ["WAIT_CHANNEL", "Durability"]

WAIT_CHANNEL = "hashring:migrate:wait"
"""The channel ``PUBLISH``\\ ed to (no subscriber) before ``WAIT`` on a destination kept
durable by replicas, so that ``WAIT`` has an offset to wait for. A restricted user on such
a destination needs the right to publish to it (ACL ``&hashring:migrate:wait``)."""


@dataclass(frozen=True)
class Durability:
    """Whether a node keeps what it acknowledged through a crash, and why (see the package).

    ``how`` is ``"aof"``, ``"replicas"`` (durable), ``"none"`` or ``"unknown"`` (volatile);
    ``detail`` says it in words, for people.
    """

    node: str
    how: Literal["aof", "replicas", "none", "unknown"]
    detail: str
    fsync: str | None = None
    """``appendfsync`` with AOF on, when ``CONFIG GET`` is allowed; else None."""
    replicas: int = 0
    """Replicas online (``INFO replication``)."""

    @property
    def durable(self) -> bool:
        """True for ``"aof"`` and ``"replicas"``."""
        return self.how in ("aof", "replicas")


def _durability(links: _Links) -> dict[str, Durability]:
    """:class:`Durability` of every destination of ``links``, sorted by name.

    Two or three round trips per node (``INFO persistence``, ``INFO replication``, ``CONFIG
    GET appendfsync`` when AOF is on; a refused one makes the answer ``"unknown"``, never an
    error).

    Raises:
        MigrationError: a node is unreachable.
    """
    found: dict[str, Durability] = {}
    for name, node in links.nodes.items():
        if not node.is_destination:
            continue
        client = links.clients[name]
        persistence = replication = None
        fsync = refused = None
        with links.talking_to(name):
            try:
                persistence = client.info("persistence")
                replication = client.info("replication")
            except redis.ResponseError as exc:
                refused = f"INFO refused: {links.scrub(str(exc))}"
            if persistence is not None and _int(persistence.get("aof_enabled")) == 1:
                try:
                    answer = cast(dict[Any, Any], client.config_get("appendfsync"))
                except redis.ResponseError:
                    answer = {}
                value = answer.get(b"appendfsync", answer.get("appendfsync"))
                if isinstance(value, bytes):
                    value = value.decode("ascii", "replace")
                fsync = value if isinstance(value, str) else None
        found[name] = _classify(name, persistence, replication, fsync, refused)
    return found


def _classify(
    name: str,
    persistence: Mapping[str, Any] | None,
    replication: Mapping[str, Any] | None,
    fsync: str | None,
    refused: str | None,
) -> Durability:
    """A node's :class:`Durability` from its ``INFO persistence`` / ``INFO replication``."""
    if persistence is None or "aof_enabled" not in persistence:
        why = refused or "INFO persistence has no aof_enabled field"
        return Durability(name, "unknown", f"cannot tell whether it persists ({why})")
    aof_ok = str(persistence.get("aof_last_write_status", "ok")) == "ok"
    if _int(persistence.get("aof_enabled")) == 1 and aof_ok:
        policy = fsync or "unknown (CONFIG refused)"
        return Durability(name, "aof", f"AOF on, appendfsync {policy}", fsync=fsync)
    replicas = 0
    if replication is not None and replication.get("role") == "master":
        replicas = sum(
            1
            for field_name, value in replication.items()
            if field_name.startswith("slave")
            and field_name[5:].isdigit()
            and isinstance(value, dict)
            and value.get("state") == "online"
        )
    if replicas:
        return Durability(
            name, "replicas", f"no AOF, {replicas} replica(s) online: WAIT after each batch",
            replicas=replicas,
        )  # fmt: skip
    why = "AOF on but its last write failed, no replica" if not aof_ok else "no AOF and no replica"
    return Durability(name, "none", why)


def _wait_for_replica(links: _Links, owner: str, timeout_ms: int) -> None:
    """``WAIT 1 timeout`` on ``owner`` after keys arrived there; raise if no replica has
    them. A ``PUBLISH`` on the same connection first gives ``WAIT`` the offset to wait
    for: the primary's offset after the ``RESTORE``\\ s the source just sent it. One round
    trip, at most ``timeout_ms`` long.

    Raises:
        MigrationError: no replica acknowledged within ``timeout_ms``, or ``owner`` is
            unreachable.
    """
    with links.talking_to(owner):
        pipe = links.clients[owner].pipeline(transaction=False)
        pipe.publish(WAIT_CHANNEL, b"")
        pipe.execute_command("WAIT", 1, timeout_ms)  # type: ignore[no-untyped-call]
        acked = _int(pipe.execute()[1])
    if acked < 1:
        raise MigrationError(
            f"no replica of node {owner!r} ({links.nodes[owner].shown}) acknowledged the "
            f"keys just moved there within {timeout_ms} ms (WAIT): they are in its "
            "memory only; stopped: check its replicas, then re-run"
        )
