"""Read-only multi-key commands whose keys span nodes, answered exactly on the client.

Redis Cluster refuses these; their answer can be computed from what each key holds, so a
sharded client reads every node's share and computes the answer one server would give,
then shapes it as redis-py would (the client's protocol, decoding and response callback
for the original command and options). No I/O here: :func:`cross_node_plan` returns a
:class:`~._commands.Plan` whose parts read and whose merge computes.

=====================  ============================================  ======================
command                parts (one per node, or per key)               computed
=====================  ============================================  ======================
SUNION                 ``SUNION`` of each node's keys                 union
SINTER, SINTERCARD     ``SINTER`` of each node's keys                 intersection (count,
                                                                      LIMIT)
SDIFF                  first key's node: ``SDIFF`` of the first key   first minus the rest
                       and its node's others; other nodes ``SUNION``
ZUNION, ZINTER,        ``ZUNION 1 key WITHSCORES`` per distinct key   in the server's order
ZDIFF, ZINTERCARD      (a set's members score 1)                      (``_set_algebra``)
LCS                    ``TYPE`` and ``MGET`` of each key              ``_lcs``
=====================  ============================================  ======================

The ``*STORE`` variants (and SORT ... STORE) are not here: they write, and stay refused
unless their keys share a node. A WRONGTYPE key raises the server's own error (every part
checks its keys' types as the command would); LCS raises the server's LCS errors. Options
that are not fully understood (a weight that is not a plain decimal number, an unknown
word) are refused with CrossShardError before anything is sent, where the server would
answer an error. The parts are read concurrently, not as one snapshot: a command racing
with writes to its keys may see some keys before and others after a write.

Costs and limits: every source's members travel to the client (ZUNION ... per key, the
set commands per node), so a computed read costs O(total members) in transfer and memory,
about twice a plain server's client-side time for large answers; a client with
``decode_responses=True`` decodes every member it reads, so a member not valid in its
encoding raises UnicodeDecodeError even when one server's answer would leave it out.
During a migration (``read_fallback``) a computed read follows ``_fallback``'s rule: its
answer comes from whichever topology holds all its keys, and keys split between the two
raise CrossShardError.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import redis
from redis.client import EMPTY_RESPONSE, NEVER_DECODE
from redis.utils import check_protocol_version

from ._commands import Part, Plan
from ._errors import CrossShardError
from ._lcs import lcs
from ._set_algebra import AGGREGATES, Source, ordered, zdiff, zinter, zunion

__all__ = ["COMPUTED", "Replies", "cross_node_plan"]

COMPUTED = frozenset(
    {"sunion", "sinter", "sdiff", "sintercard", "zunion", "zinter", "zdiff", "zintercard", "lcs"}
)

_INTEGER = re.compile(rb"-?(0|[1-9][0-9]*)\Z")
_DECIMAL = re.compile(rb"[+-]?(inf|([0-9]+\.?[0-9]*|\.[0-9]+)(e[+-]?[0-9]+)?)\Z", re.IGNORECASE)
_DROPPED = ("keys", NEVER_DECODE, EMPTY_RESPONSE)


@dataclass(frozen=True)
class Replies:
    """How a client's answers look: its wire protocol (RESP3 unless ``protocol=2``), its
    decoding and its response callbacks (those of the first node's client: every node
    client is built with the same options)."""

    resp3: bool
    encoder: Any
    callbacks: Mapping[str, Callable[..., Any]]

    @classmethod
    def of(cls, client: Any) -> Replies:
        """The conventions of ``client`` (a redis-py client, sync or asyncio). O(1)."""
        protocol = client.connection_pool.connection_kwargs.get("protocol")
        resp3 = check_protocol_version(protocol, 3)  # redis-py 8 speaks RESP3 unless told
        return cls(resp3, client.get_encoder(), client.response_callbacks)

    def raw(self, value: Any) -> bytes:
        """A member or string as the server's bytes (undoing the client's decoding)."""
        return value if isinstance(value, bytes) else bytes(self.encoder.encode(value))

    def wire(self, value: bytes) -> Any:
        """Bytes as the client's parser gives a bulk string (decoded when it decodes)."""
        return self.encoder.decode(value)

    def respond(self, name: str, raw: Any, options: Mapping[str, Any]) -> Any:
        """``raw`` (as the parser gives it) through the client's callback for ``name``."""
        callback = self.callbacks.get(name)
        if callback is None:
            return raw
        return callback(raw, **{k: v for k, v in options.items() if k not in _DROPPED})


def cross_node_plan(
    name: str,
    args: tuple[Any, ...],
    keys: list[Any],
    owners: list[str],
    replies: Replies | None,
) -> Plan | None:
    """The plan of a read in :data:`COMPUTED` whose keys span nodes, or None when the
    command is not one of them (or ``replies`` is unknown). O(args).

    Raises:
        CrossShardError: options not understood (nothing is sent).
    """
    if name not in COMPUTED or replies is None:
        return None
    words = [bytes(replies.encoder.encode(arg)) for arg in args]
    if name == "lcs":
        return _lcs_plan(words, keys, owners, replies)
    if name.startswith("z"):
        return _zset_plan(name, words, keys, owners, replies)
    return _set_plan(name, words, keys, owners, replies)


def _refuse(name: str, why: str) -> Any:
    raise CrossShardError(
        f"{name.upper()} spans nodes and {why}; nothing was sent (one server would answer "
        "an error; or give the keys a common {hash tag})"
    )


def _integer(name: str, word: bytes) -> int:
    if not _INTEGER.match(word):
        _refuse(name, f"{word!r} is not an integer")
    return int(word)


def _groups(keys: list[Any], owners: list[str]) -> dict[str, list[Any]]:
    """Each node's keys, nodes in the order their first key comes."""
    groups: dict[str, list[Any]] = {}
    for key, owner in zip(keys, owners, strict=True):
        groups.setdefault(owner, []).append(key)
    return groups


def _plan(name: str, parts: list[Part], merge: Callable[[list[Any]], Any], keys: list[Any],
          respond: Callable[[Any, Mapping[str, Any]], Any]) -> Plan:  # fmt: skip
    return Plan(parts, merge, name, True, keys, respond=respond)


# ------------------------------------------------------------------ sets


def _set_plan(
    name: str, words: list[bytes], keys: list[Any], owners: list[str], replies: Replies
) -> Plan:
    limit = 0
    if name == "sintercard":
        count = _integer(name, words[1])
        if count != len(keys):
            _refuse(name, "numkeys does not match its keys")
        rest = words[2 + count :]
        while rest:
            if rest[0].lower() != b"limit" or len(rest) < 2:
                _refuse(name, "has an option other than LIMIT")
            limit = _integer(name, rest[1])
            if limit < 0:
                _refuse(name, "LIMIT is negative")
            rest = rest[2:]
    groups = _groups(keys, owners)
    first = owners[0]
    parts = []
    for node, mine in groups.items():
        if name == "sdiff":
            verb = b"SDIFF" if node == first else b"SUNION"
        else:
            verb = b"SUNION" if name == "sunion" else b"SINTER"
        parts.append(Part(node, (verb, *mine)))
    nodes = list(groups)

    def merge(answers: list[Any]) -> Any:
        shares = [set(answer) for answer in answers]
        if name == "sunion":
            result = set().union(*shares)
        elif name == "sdiff":
            result = shares[nodes.index(first)].difference(
                *(s for n, s in zip(nodes, shares, strict=True) if n != first)
            )
        else:
            result = shares[0].intersection(*shares[1:])
        if name == "sintercard":
            return min(len(result), limit) if limit else len(result)
        return result if any(isinstance(a, set) for a in answers) else list(result)

    def respond(value: Any, options: Mapping[str, Any]) -> Any:
        return replies.respond(name.upper(), value, options)

    return _plan(name, parts, merge, keys, respond)


# ------------------------------------------------------------------ sorted sets


@dataclass
class _ZOptions:
    weights: list[float]
    aggregate: bytes = b"sum"
    withscores: bool = False
    limit: int = 0


def _zoptions(name: str, words: list[bytes], keys: list[Any]) -> _ZOptions:
    """ZUNION/ZINTER/ZDIFF/ZINTERCARD options, parsed as ``zunionInterDiffGenericCommand``."""
    count = _integer(name, words[1])
    if count != len(keys) or count < 1:
        _refuse(name, "numkeys does not match its keys")
    options = _ZOptions([1.0] * count)
    rest = words[2 + count :]
    card, diff = name == "zintercard", name == "zdiff"
    while rest:
        word = rest[0].lower()
        if not diff and not card and word == b"weights" and len(rest) >= count + 1:
            for i, weight in enumerate(rest[1 : count + 1]):
                options.weights[i] = _weight(name, weight)
            rest = rest[count + 1 :]
        elif not diff and not card and word == b"aggregate" and len(rest) >= 2:
            if rest[1].lower() not in AGGREGATES:
                _refuse(name, f"AGGREGATE {rest[1]!r} is not SUM, MIN or MAX")
            options.aggregate = rest[1].lower()
            rest = rest[2:]
        elif not card and word == b"withscores":
            options.withscores = True
            rest = rest[1:]
        elif card and word == b"limit" and len(rest) >= 2:
            options.limit = _integer(name, rest[1])
            if options.limit < 0:
                _refuse(name, "LIMIT is negative")
            rest = rest[2:]
        else:
            _refuse(name, f"option {rest[0]!r} is not understood")
    return options


def _weight(name: str, word: bytes) -> float:
    """A weight as the server reads it (``getDoubleFromObject``: strtod, refusing NaN and
    values that overflow to infinity or underflow to zero)."""
    if not _DECIMAL.match(word):
        _refuse(name, f"weight {word!r} is not a plain decimal number")
    value = float(word)
    mantissa = word.lower().split(b"e")[0]
    if (math.isinf(value) and b"inf" not in mantissa) or (
        value == 0 and any(digit in mantissa for digit in b"123456789")
    ):
        _refuse(name, f"weight {word!r} is out of the range of a double")
    return value


def _zset_plan(
    name: str, words: list[bytes], keys: list[Any], owners: list[str], replies: Replies
) -> Plan:
    options = _zoptions(name, words, keys)
    distinct: dict[bytes, int] = {}
    parts: list[Part] = []
    for key, word, owner in zip(keys, words[2:], owners, strict=False):
        if word not in distinct:
            distinct[word] = len(parts)
            parts.append(Part(owner, (b"ZUNION", 1, key, b"WITHSCORES")))
    positions = [distinct[word] for word in words[2 : 2 + len(keys)]]

    def merge(answers: list[Any]) -> Any:
        read = [_source(answer, replies) for answer in answers]
        sources = [read[p] for p in positions]
        if name == "zdiff":
            result = zdiff(sources)
        elif name == "zunion":
            result = zunion(sources, options.weights, AGGREGATES[options.aggregate])
        else:
            result = zinter(sources, options.weights, AGGREGATES[options.aggregate], options.limit)
        if name == "zintercard":
            return len(result)
        return _zreply(ordered(result), options.withscores, replies)

    def respond(value: Any, opts: Mapping[str, Any]) -> Any:
        return replies.respond(name.upper(), value, opts)

    return _plan(name, parts, merge, keys, respond)


def _source(answer: Any, replies: Replies) -> Source:
    """``ZUNION 1 key WITHSCORES`` as the parser gives it (RESP2: flat, scores as text;
    RESP3: pairs, scores as floats) -> member bytes -> score."""
    if answer and isinstance(answer[0], list):
        return {replies.raw(m): float(s) for m, s in answer}
    it = iter(answer)
    return {replies.raw(m): float(s) for m, s in zip(it, it, strict=True)}


def _zreply(items: list[tuple[bytes, float]], withscores: bool, replies: Replies) -> list[Any]:
    """The server's reply to ZUNION/ZINTER/ZDIFF as the client's parser gives it."""
    if not withscores:
        return [replies.wire(m) for m, _ in items]
    if replies.resp3:
        return [[replies.wire(m), s] for m, s in items]
    flat: list[Any] = []
    for member, score in items:
        flat.append(replies.wire(member))
        flat.append(replies.wire(_score_text(score)))
    return flat


def _score_text(score: float) -> bytes:
    """A double as the server writes it in RESP2 (``addReplyDouble``: ``%.17g``)."""
    if score in (float("inf"), float("-inf")):
        return b"inf" if score > 0 else b"-inf"
    return format(score, ".17g").encode()


# ------------------------------------------------------------------ LCS


def _lcs_plan(words: list[bytes], keys: list[Any], owners: list[str], replies: Replies) -> Plan:
    parts = []
    for key, owner in zip(keys, owners, strict=True):
        parts.append(Part(owner, (b"TYPE", key)))
        parts.append(Part(owner, (b"MGET", key)))

    def merge(answers: list[Any]) -> Any:
        kinds = [replies.raw(answers[0]), replies.raw(answers[2])]
        if any(kind not in (b"string", b"none") for kind in kinds):
            raise redis.exceptions.ResponseError("The specified keys must contain string values")
        a, b = (replies.raw(answers[i][0]) if answers[i][0] is not None else b"" for i in (1, 3))
        getlen = getidx = withmatchlen = False
        minmatchlen = 0
        j = 3
        while j < len(words):
            word = words[j].lower()
            if word == b"idx":
                getidx = True
            elif word == b"len":
                getlen = True
            elif word == b"withmatchlen":
                withmatchlen = True
            elif word == b"minmatchlen" and j + 1 < len(words):
                if not _INTEGER.match(words[j + 1]) or not -(2**63) <= int(words[j + 1]) < 2**63:
                    raise redis.exceptions.ResponseError("value is not an integer or out of range")
                minmatchlen = max(0, int(words[j + 1]))
                j += 1
            else:
                raise redis.exceptions.ResponseError("syntax error")
            j += 1
        if getlen and getidx:
            raise redis.exceptions.ResponseError(
                "If you want both the length and indexes, please just use IDX."
            )
        found = lcs(a, b, minmatchlen)
        if not getidx:
            return found.length if getlen else replies.wire(found.text)
        ranges = []
        for match in found.matches:
            entry: list[Any] = [[match.a_start, match.a_end], [match.b_start, match.b_end]]
            if withmatchlen:
                entry.append(match.length)
            ranges.append(entry)
        label_matches, label_len = replies.wire(b"matches"), replies.wire(b"len")
        if replies.resp3:
            return {label_matches: ranges, label_len: found.length}
        return [label_matches, ranges, label_len, found.length]

    def respond(value: Any, options: Mapping[str, Any]) -> Any:
        return replies.respond("LCS", value, options)

    return _plan("lcs", parts, merge, keys, respond)
