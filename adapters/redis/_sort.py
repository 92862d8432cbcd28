"""SORT and SORT_RO with BY/GET patterns: the keys a pattern reads, routed like keys.

A pattern (``BY weight_*``, ``GET user:*->name``) makes the server read one key per sorted
element: the pattern with its first ``*`` replaced by the element (``->field`` names a hash
field and is not part of the key). Only the sorted key (and STORE's destination) are keys
in the COMMAND table, so a sharded client must route the patterns itself, as Redis Cluster
does (``patternHashSlot`` in redis/redis ``src/cluster.c``): a pattern is allowed when every
key it can name lives on the sorted key's node. Here that is:

=================================  =========================================================
``GET #``                          the element itself: reads no key, always allowed
a pattern with no ``*``            the server reads no key (``BY nosort`` skips sorting,
                                   ``GET fixed`` answers nil): always allowed
a ``{tag}`` before the first ``*``  (hash tags on) every key it names has that tag: routed
                                   as a key with that tag, so it must share the node
anything else                      its keys may be on any node: allowed only when the client
                                   has one node, else CrossShardError
=================================  =========================================================

The tag rule is the placement's own (:func:`hashring._placement.keys.hash_tag`): the first
``{`` and the first ``}`` after it, non-empty between; a tag wholly inside the part before
the first ``*`` is the tag of every key the pattern names, whatever the element is.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ._errors import CrossShardError

__all__ = ["SORTS", "pattern_keys"]

SORTS = frozenset({"sort", "sort_ro"})

_OPTION_ARGS = {b"asc": 0, b"desc": 0, b"alpha": 0, b"limit": 2, b"by": 1, b"get": 1}


def patterns(name: str, args: Sequence[bytes]) -> list[bytes]:
    """The BY and GET patterns of ``SORT key ...`` (``args`` as bytes), read as the server
    reads its options (``sortCommandGeneric`` in ``src/sort.c``). Parsing stops at an option
    the server would refuse as a syntax error (the server answers that error). O(args).

    >>> patterns("sort", [b"SORT", b"k", b"BY", b"w_*", b"LIMIT", b"0", b"1", b"GET", b"#"])
    [b'w_*', b'#']
    """
    found: list[bytes] = []
    j = 2
    while j < len(args):
        option = args[j].lower()
        left = len(args) - j - 1
        if option == b"store" and name == "sort" and left >= 1:
            j += 2
            continue
        skip = _OPTION_ARGS.get(option)
        if skip is None or left < skip:
            break
        if option in (b"by", b"get"):
            found.append(args[j + 1])
        j += 1 + skip
    return found


def pattern_keys(name: str, args: Sequence[bytes], *, hash_tags: bool, nodes: int) -> list[bytes]:
    """Keys to route with a SORT's own keys so that its patterns' keys share their node:
    one key carrying each pattern's fixed ``{tag}``. O(len(args)).

    Args:
        name: ``"sort"`` or ``"sort_ro"``.
        args: the command's arguments, as the bytes sent.
        hash_tags: whether the placement places keys by their ``{tag}``.
        nodes: how many nodes the client has.

    Raises:
        CrossShardError: a pattern may name keys on any node and the client has several
            nodes; nothing was sent.
    """
    keys: list[bytes] = []
    for pattern in patterns(name, args):
        star = pattern.find(b"*")
        if pattern == b"#" or star < 0:
            continue
        tagged = _tag_key(pattern[:star]) if hash_tags else None
        if tagged is not None:
            keys.append(tagged)
        elif nodes > 1:
            shown = pattern.decode("utf-8", "replace")
            raise CrossShardError(
                f"{name.upper()} pattern {shown!r} may read keys on any node; nothing was "
                "sent. Give the pattern the sorted key's {hash tag} before its '*' "
                "(user:{tag}:*), or use GET # / BY nosort.",
                (),
            )
    return keys


def _tag_key(prefix: bytes) -> bytes | None:
    """A key with the ``{tag}`` that every key starting with ``prefix`` has, or None when
    the tag depends on what follows ``prefix``."""
    start = prefix.find(b"{")
    if start < 0:
        return None
    end = prefix.find(b"}", start + 1)
    if end <= start + 1:
        return None
    return prefix[: end + 1]


def encoded(encoder: Any, args: Sequence[Any]) -> list[bytes]:
    """``args`` as the bytes the client sends (through redis-py's encoder)."""
    return [bytes(encoder.encode(arg)) for arg in args]
