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
    └── InvalidKeyError       (TypeError)     a key that is neither str nor bytes
        └── KeyEncodingError  (ValueError)    a str key that has no UTF-8 form (lone surrogate)

Errors from libraries below hashring (redis-py, HTTP clients) are never swallowed: they
propagate unchanged, or are wrapped with ``raise ... from exc`` where hashring adds meaning.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "CrossShardError",
    "EmptyRingError",
    "HashRingError",
    "InvalidKeyError",
    "InvalidOptionError",
    "InvalidWeightError",
    "KeyEncodingError",
    "NodeExistsError",
    "NotEnoughNodesError",
    "UnknownNodeError",
    "UnsupportedCommandError",
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
