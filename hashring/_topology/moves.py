"""Moving keys between Redis servers with ``MIGRATE``: where the keys go (a
:class:`Destination`, its credentials never shown) and the command a source server is sent
(:func:`migrate_command`). Pure data: ``hashring migrate`` and a migration window's pulls
(``hashring.adapters.redis._window``) send what is built here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Destination", "migrate_command"]


@dataclass(frozen=True)
class Destination:
    """Where ``MIGRATE`` moves keys, as the source server must reach it."""

    host: str
    port: int
    db: int = 0
    auth: tuple[str, ...] = ()
    """``("AUTH", password)`` or ``("AUTH2", username, password)``, or empty."""

    def __repr__(self) -> str:  # never the credentials
        return f"Destination(host={self.host!r}, port={self.port}, db={self.db})"

    @classmethod
    def of(cls, client: Any) -> Destination:
        """The destination a ready ``redis.Redis`` connects to (TCP only: ``MIGRATE`` cannot
        reach a unix socket or speak TLS).

        Raises:
            ValueError: the client connects through a unix socket or TLS.
        """
        kwargs = client.connection_pool.connection_kwargs
        if "path" in kwargs or client.connection_pool.connection_class.__name__ != "Connection":
            raise ValueError("MIGRATE reaches plain TCP destinations only (no unix, no TLS)")
        return cls.of_options(kwargs)

    @classmethod
    def of_options(cls, options: Mapping[str, Any]) -> Destination:
        """The destination of redis-py connection options (``connection_kwargs``, or what
        ``redis.connection.parse_url`` gives): host, port, db, and ``AUTH`` / ``AUTH2``
        with the password (and username) when there is one. O(1)."""
        password, username = options.get("password"), options.get("username")
        auth: tuple[str, ...] = ()
        if password:
            auth = ("AUTH2", str(username), str(password)) if username else ("AUTH", str(password))
        return cls(
            str(options.get("host", "localhost")),
            int(options.get("port", 6379)),
            int(options.get("db", 0)),
            auth,
        )


def migrate_command(
    destination: Destination, keys: Sequence[Any], *, timeout_ms: int, replace: bool = False
) -> list[Any]:
    """``MIGRATE host port "" db timeout [REPLACE] [AUTH ...] KEYS key...``: the command a
    source server is sent to move ``keys`` to ``destination`` (the window's pulls and
    ``hashring migrate`` build it here). O(keys)."""
    return [
        "MIGRATE", destination.host, destination.port, "", destination.db, timeout_ms,
        *(["REPLACE"] if replace else []), *destination.auth, "KEYS", *keys,
    ]  # fmt: skip
