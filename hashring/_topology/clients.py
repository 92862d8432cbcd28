"""How a hashring client names its connections, so the servers tell which topology runs.

Every connection a sharded client opens to a node is named ``hashring-client-<version>``
(``CLIENT SETNAME``, sent by redis-py when it connects, given ``client_name=``), where
``<version>`` is the :attr:`~hashring.Topology.version` of the topology the client runs.
``CLIENT LIST`` on any node then shows which versions are live: ``hashring migrate`` waits
for every such connection to run the new version before it moves a key, and ``hashring
status`` lists them. Connections named otherwise are not hashring clients and are ignored.

The migration window's markers belong to the same protocol: a key
``hashring:migrating:<version>`` on an old owner (:func:`marker_key`) says the migration to
``<version>`` has started there, and ``hashring:migrating:<version>:done`` (:func:`done_key`)
that it has finished there: every key that moves away from that node has moved.

>>> client_name("1f0c3a9b5d7e2468")
'hashring-client-1f0c3a9b5d7e2468'
>>> client_version("hashring-client-1f0c3a9b5d7e2468"), client_version("worker-3")
('1f0c3a9b5d7e2468', None)
"""

from __future__ import annotations

import re

from .config import VERSION_DIGITS

__all__ = [
    "CLIENT_NAME_PREFIX",
    "MARKER_PREFIX",
    "client_name",
    "client_version",
    "done_key",
    "marker_key",
]

CLIENT_NAME_PREFIX = "hashring-client-"
MARKER_PREFIX = "hashring:migrating:"
"""Keys ``hashring:migrating:<version>``: set by ``hashring migrate`` on the old owners once
every client runs the window topology ``<version>``; never moved by a migration (nor the
``...:done`` keys of :func:`done_key`, which share the prefix)."""
_NAME = re.compile(f"{re.escape(CLIENT_NAME_PREFIX)}([0-9a-f]{{{VERSION_DIGITS}}})")


def client_name(version: str) -> str:
    """The connection name of a client running topology ``version``. O(1).

    Raises:
        ValueError: ``version`` is not a topology version (16 lowercase hex digits).
    """
    name = CLIENT_NAME_PREFIX + version
    if not _NAME.fullmatch(name):
        raise ValueError(f"{version!r:.40} is not a topology version")
    return name


def marker_key(version: str) -> str:
    """The marker a migration to the window topology ``version`` sets on each old owner as
    its pass over that node starts (see ``hashring.adapters.redis._window``). O(1)."""
    return MARKER_PREFIX + version


def done_key(marker: str) -> str:
    """The done marker of the window whose marker is ``marker`` (:func:`marker_key`): set
    by ``hashring migrate`` on an old owner once its pass over that node left no key that
    moves away behind; window clients then send such keys straight to their new owner.
    Shares the marker's prefix, so no migration moves it. O(1)."""
    return marker + ":done"


def client_version(name: str) -> str | None:
    """The topology version a connection named ``name`` runs, or None when the name is not
    a hashring client's. O(len(name))."""
    match = _NAME.fullmatch(name)
    return match.group(1) if match else None
