"""Key normalisation shared by every placement: type checks and ``{hash tags}``.

A key is ``str`` (placed by its UTF-8 bytes) or bytes-like: ``bytes``, and ``bytearray`` or
``memoryview`` (accepted wherever redis-py accepts them, and placed like the same bytes). A
``str`` with no UTF-8 form (a lone surrogate) raises :class:`KeyEncodingError` before any
hashing. With hash tags on (the default),
a key that contains ``{tag}`` -- the first ``{``, then the first ``}`` after it, with at least
one character between -- is placed by ``tag`` alone: the Redis Cluster rule, so that
``user:{42}:profile`` and ``user:{42}:cart`` always share a node. ``{}`` (empty) and an
unclosed ``{`` leave the key whole.
"""

from __future__ import annotations

import reprlib
from typing import Any

from .._errors import InvalidKeyError, KeyEncodingError

__all__ = ["Key", "check_key", "encode_key", "hash_tag", "short_repr"]

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
    # The base classes' methods, not the key's: a str or bytes subclass cannot change how
    # it is placed by overriding find() or slicing.
    if isinstance(key, str):
        start = str.find(key, "{")
        if start >= 0:
            end = str.find(key, "}", start + 1)
            if end > start + 1:
                return str.__getitem__(key, slice(start + 1, end))
        return key
    start = bytes.find(key, b"{")
    if start >= 0:
        end = bytes.find(key, b"}", start + 1)
        if end > start + 1:
            return bytes.__getitem__(key, slice(start + 1, end))
    return key


def encode_key(key: str) -> bytes:
    """The UTF-8 bytes of a ``str`` key; :class:`KeyEncodingError` if it has none.

    Placing a non-ASCII key by these bytes gives the same node as placing the str itself
    (every hash reads a str key as its UTF-8 bytes).

    >>> encode_key("caf\u00e9")
    b'caf\\xc3\\xa9'
    """
    try:
        return str.encode(key)
    except UnicodeEncodeError as exc:
        raise KeyEncodingError(
            f"key {key!r:.60} cannot be encoded as UTF-8 ({exc.reason} at index {exc.start}); "
            "encode it yourself, e.g. key.encode('utf-8', 'surrogateescape')"
        ) from None


def check_key(key: Any) -> Key:
    """Return ``key`` ready to hash: an ASCII ``str`` or ``bytes`` as it is, any other
    ``str`` as its UTF-8 bytes, a ``bytearray`` or ``memoryview`` as ``bytes``.

    Raises:
        KeyEncodingError: a str key with no UTF-8 form (a lone surrogate).
        InvalidKeyError: any other type.

    Runtime complexity: O(1) for ASCII str and bytes, O(len(key)) otherwise.
    """
    cls = key.__class__
    if cls is str or cls is bytes:
        checked: Key = key
        return checked if cls is bytes or checked.isascii() else encode_key(key)
    if isinstance(key, str):
        return encode_key(str.__str__(key))
    if isinstance(key, (bytes, bytearray, memoryview)):
        try:
            return bytes(key)
        except (TypeError, ValueError, BufferError) as exc:
            raise InvalidKeyError(f"key {type(key).__name__} has no bytes: {exc}") from None
    raise InvalidKeyError(
        f"key must be str or bytes, not {type(key).__name__} ({short_repr(key)}); "
        "convert it explicitly, e.g. str(key)"
    )


def short_repr(value: Any, width: int = 60) -> str:
    """``repr(value)`` cut to ``width`` characters, for error messages.

    Never raises (a hostile ``__repr__`` may) and never builds a huge string: containers are
    abbreviated before they are printed (``reprlib``), and an int of more than 128 bits is
    described by its size.

    >>> short_repr(2**1100)
    'an int of 1101 bits'
    >>> short_repr((1.5,) * 10**6)
    '(1.5, 1.5, 1.5, 1.5, 1.5, 1.5, ...)'
    """
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 128:
        return f"an int of {value.bit_length()} bits"
    try:
        return _REPR.repr(value)[:width]
    except Exception:
        return f"<{type(value).__name__} object>"


_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = 80
