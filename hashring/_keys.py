"""Key normalisation shared by every placement: type checks and ``{hash tags}``.

A key is ``str`` (placed by its UTF-8 bytes) or ``bytes``. With hash tags on (the default),
a key that contains ``{tag}`` -- the first ``{``, then the first ``}`` after it, with at least
one character between -- is placed by ``tag`` alone: the Redis Cluster rule, so that
``user:{42}:profile`` and ``user:{42}:cart`` always share a node. ``{}`` (empty) and an
unclosed ``{`` leave the key whole.
"""

from __future__ import annotations

from typing import Any

from ._errors import InvalidKeyError

__all__ = ["Key", "check_key", "hash_tag", "routing_key"]

Key = str | bytes
"""What a placement accepts as a key."""


def hash_tag(key: Key) -> Key:
    """Return the part of ``key`` that places it: its ``{tag}`` if it has one, else ``key``.

    >>> hash_tag("user:{42}:cart")
    '42'
    >>> hash_tag(b"{a}{b}")
    b'a'
    >>> hash_tag("no{}tag"), hash_tag("open{only")
    ('no{}tag', 'open{only')

    Runtime complexity: O(len(key)).
    """
    if isinstance(key, str):
        start = key.find("{")
        if start >= 0:
            end = key.find("}", start + 1)
            if end > start + 1:
                return key[start + 1 : end]
        return key
    start = key.find(b"{")
    if start >= 0:
        end = key.find(b"}", start + 1)
        if end > start + 1:
            return key[start + 1 : end]
    return key


def check_key(key: Any) -> Key:
    """Return ``key`` if it is ``str`` or ``bytes``; raise :class:`InvalidKeyError` otherwise."""
    if isinstance(key, (str, bytes)):
        return key
    raise InvalidKeyError(
        f"key must be str or bytes, not {type(key).__name__} ({key!r:.60}); "
        "convert it explicitly, e.g. str(key)"
    )


def routing_key(key: Any, hash_tags: bool) -> Key:
    """Check ``key`` and return the part that places it (its tag when ``hash_tags``)."""
    key = check_key(key)
    return hash_tag(key) if hash_tags else key
