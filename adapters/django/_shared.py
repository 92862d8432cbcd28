"""One cache client per configuration and process, shared by every backend instance.

Django makes a cache backend per thread, and per request under ASGI. Django's RedisCache
makes its connection pools per instance; a sharded client costs more to make (its
placement, its worker threads, and the COMMAND table it reads from a server before its
first command), so every instance built from the same LOCATION and OPTIONS in one process
uses the same client (thread-safe, as redis-py's pools are). A forked process makes its own.

A configuration is told apart by value where that is well defined (str, numbers, bool,
None, lists, tuples, dicts of them, paths: a topology file also by its size, modification
time and inode, so an edited file gives a new client, unless the client follows the file)
and by identity for any other object (a Placement, a class, a serializer instance), which
the registry keeps alive so its id is never reused.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Hashable, Mapping
from typing import Any, TypeVar

__all__ = ["shared"]

_T = TypeVar("_T")

_registry: dict[Hashable, tuple[Any, list[object]]] = {}
_lock = threading.Lock()


def shared(configuration: object, build: Callable[[], _T], *, followed: bool = False) -> _T:
    """The object ``build()`` made for an equal ``configuration`` in this process, else a
    new one, kept for the life of the process. ``followed``: the object follows the
    configuration's topology files itself, so a file is told apart by its path alone (an
    edited file is the same configuration). O(size of the configuration); ``build`` runs
    under a lock, at most once per configuration (not at all if it raises: nothing is kept).
    """
    held: list[object] = []
    key = (os.getpid(), followed, _fingerprint(configuration, held, stat=not followed))
    with _lock:
        entry = _registry.get(key)
        if entry is None:
            entry = (build(), held)
            _registry[key] = entry
        made: _T = entry[0]
        return made


def _fingerprint(value: object, held: list[object], *, stat: bool = True) -> Hashable:
    """A hashable stand-in for ``value``, equal for equal configurations (a topology file
    also by its size, modification time and inode when ``stat``)."""
    if value is None or isinstance(value, (str, bytes, int, float)):
        if isinstance(value, str) and value.strip().endswith(".toml"):
            return ("file", value, _stat(value.strip()) if stat else None)
        return (type(value).__name__, value)
    if isinstance(value, os.PathLike):
        return ("file", os.fspath(value), _stat(value) if stat else None)
    if isinstance(value, (list, tuple)):
        items = tuple(_fingerprint(item, held, stat=stat) for item in value)
        return (type(value).__name__, items)
    if isinstance(value, Mapping):
        return (
            "mapping",
            tuple(
                (_fingerprint(k, held, stat=stat), _fingerprint(v, held, stat=stat))
                for k, v in value.items()
            ),
        )
    held.append(value)  # kept alive with the entry, so its id is not reused
    return ("object", id(value))


def _stat(path: str | os.PathLike[str]) -> tuple[int, int, int] | None:
    """Size, modification time and inode of a file (None if it cannot be read: building
    the client then fails and nothing is kept)."""
    try:
        stat = os.stat(os.path.expanduser(path))
    except OSError:
        return None
    return (stat.st_size, stat.st_mtime_ns, stat.st_ino)
