"""The exception tree of hashring.

Every error the library raises on purpose derives from :class:`HashRingError`, and each
subclass also derives from the built-in exception it refines, so callers can catch either::

    HashRingError
    ├── EmptyRingError        (LookupError)   a lookup on a placement with no nodes
    ├── UnknownNodeError      (KeyError)      a node name that is not in the placement
    ├── NodeExistsError       (ValueError)    adding a node name that is already there
    ├── InvalidWeightError    (ValueError)    a weight that is not a positive finite number
    ├── InvalidOptionError    (ValueError)    a bad constructor or call option (vnodes, hash, n)
    ├── NotEnoughNodesError   (ValueError)    get_nodes(key, n) with n above the node count
    ├── CrossShardError       (ValueError)    a command whose keys live on several nodes
    ├── UnsupportedCommandError (ValueError)  a command that cannot be sharded (MULTI, SELECT)
    ├── ConfigError           (ValueError)    a topology file that is not valid
    ├── TopologyConflictError (RuntimeError)  a published topology changed meanwhile
    ├── InvalidKeyError       (TypeError)     a key that is neither str nor bytes
    │   └── KeyEncodingError  (ValueError)    a str key that has no UTF-8 form (lone surrogate)
    └── MigrationError        (RuntimeError)  a live key migration could not be carried out
        └── VolatileDestinationError          a destination would keep moved keys in memory
                                              only (refused before any key moves)

Errors from libraries below hashring (redis-py, HTTP clients) are never swallowed: they
propagate unchanged, or are wrapped with ``raise ... from exc`` where hashring adds meaning.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ConfigError",
    "CrossShardError",
    "EmptyRingError",
    "HashRingError",
    "InvalidKeyError",
    "InvalidOptionError",
    "InvalidWeightError",
    "KeyEncodingError",
    "MigrationError",
    "NodeExistsError",
    "NotEnoughNodesError",
    "TopologyConflictError",
    "UnknownNodeError",
    "UnsupportedCommandError",
    "VolatileDestinationError",
]


class HashRingError(Exception):
    """Root of every error hashring raises on purpose."""


class EmptyRingError(HashRingError, LookupError):
    """A key was looked up on a placement that holds no nodes."""


class UnknownNodeError(HashRingError, KeyError):
    """A node name was given that the placement does not hold."""

    def __str__(self) -> str:
        # KeyError's own __str__ shows the repr of its argument; show the message as written.
        return str(self.args[0]) if self.args else ""


class NodeExistsError(HashRingError, ValueError):
    """A node was added under a name the placement already holds."""


class InvalidWeightError(HashRingError, ValueError):
    """A node weight was not a positive finite number."""


class InvalidOptionError(HashRingError, ValueError):
    """An option had a value outside what is allowed (vnodes, hash, n, node names...)."""


class NotEnoughNodesError(HashRingError, ValueError):
    """``get_nodes(key, n)`` asked for more distinct nodes than the placement holds."""


class InvalidKeyError(HashRingError, TypeError):
    """A key was not a ``str`` or a bytes-like object (``bytes``, ``bytearray``, ``memoryview``)."""


class KeyEncodingError(InvalidKeyError, ValueError):
    """A ``str`` key could not be encoded as UTF-8 (it holds a lone surrogate, such as the
    ``"\\udcff"`` that ``json.loads`` or ``os.fsdecode`` can produce).

    Also a ``ValueError``, like the ``UnicodeEncodeError`` redis-py's encoder raises for it.
    Encode such a key yourself (for example ``key.encode("utf-8", "surrogateescape")``) to
    place it as bytes.
    """


class CrossShardError(HashRingError, ValueError):
    """A command's keys live on several nodes and it cannot be split; nothing was sent.

    Keep such keys together with a ``{hash tag}``.
    """

    def __init__(self, message: str, nodes: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.nodes = nodes


class UnsupportedCommandError(HashRingError, ValueError):
    """A command that holds connection state (MULTI, WATCH, SELECT, ...) and cannot be sharded."""


class ConfigError(HashRingError, ValueError):
    """A topology file is not valid; the message names the file, the key and what is allowed."""


class TopologyConflictError(HashRingError, RuntimeError):
    """Publishing a topology was refused because the stored one is not the version the
    publisher said it replaces (another operator published meanwhile, or nothing was
    expected and one is there). Nothing was written.

    ``current`` is the stored version (None when none is stored); ``expected`` the version
    the publisher named (None: it expected none).
    """

    def __init__(self, message: str, current: str | None, expected: str | None) -> None:
        super().__init__(message)
        self.current = current
        self.expected = expected


class MigrationError(HashRingError, RuntimeError):
    """A live key migration (``hashring.adapters.migrate``, ``hashring migrate``) could not be
    carried out: a node unreachable, ``MIGRATE`` refused by a destination (other than for a
    conflict), a timeout, a replica that did not acknowledge. Keys moved so far stay moved:
    re-run to finish.

    A ``RuntimeError``: the operation failed while running, for reasons that are not all I/O
    (a refused command, a replica that stayed silent, a destination refused by policy), and
    the layer below it (redis-py, whose ``ConnectionError`` is no ``OSError``) is not an
    ``OSError`` either; the redis-py error is kept as ``__cause__`` when no credential shows
    in it.
    """


class VolatileDestinationError(MigrationError):
    """A destination would hold moved keys in memory only (no AOF, no replica, or its
    persistence cannot be told); raised before any key moves, unless volatile destinations
    are allowed.

    ``volatile`` holds the ``hashring.adapters.migrate.Durability`` of each such destination
    (``.node``, ``.how``, ``.detail``; typed ``Any`` here: the core imports no adapter).
    """

    def __init__(self, message: str, volatile: tuple[Any, ...] = ()) -> None:
        super().__init__(message)
        self.volatile = volatile
