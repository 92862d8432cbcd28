"""Set and sorted-set algebra computed exactly as the server computes it; no I/O.

Sorted-set scores are doubles, and double addition is not associative, so ZUNION/ZINTER
are computed from every source's own members and scores, in the server's order
(``zunionInterDiffGenericCommand`` in redis/redis ``src/t_zset.c``):

* sources sorted by cardinality (stable: equal sizes keep their order), a missing key
  being an empty source and a set's members scoring 1;
* a member's first score is ``weight * score``, 0 when that is NaN (``inf * 0``); every
  further score is aggregated with ``SUM`` (``inf + -inf`` gives 0), ``MIN`` or ``MAX``;
  for ZINTER only the smallest source's product is checked for NaN, as in the server;
* the result ordered by score, ties by member bytes (``-0.0`` ties with ``0.0``).

Every function here is O(total members) plus O(r log r) to order r results.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

__all__ = ["Source", "ordered", "zdiff", "zinter", "zunion"]

Source = dict[bytes, float]
"""One key's members (as bytes) and scores, in the order they were read."""

Aggregate = Callable[[float, float], float]


def _sum(target: float, value: float) -> float:
    total = target + value
    return 0.0 if math.isnan(total) else total


def _min(target: float, value: float) -> float:
    return value if value < target else target


def _max(target: float, value: float) -> float:
    return value if value > target else target


AGGREGATES: dict[bytes, Aggregate] = {b"sum": _sum, b"min": _min, b"max": _max}


def _by_size(sources: Sequence[Source], weights: Sequence[float]) -> list[tuple[Source, float]]:
    return sorted(zip(sources, weights, strict=True), key=lambda pair: len(pair[0]))


def zunion(sources: Sequence[Source], weights: Sequence[float], aggregate: Aggregate) -> Source:
    """ZUNION's members and scores (unordered).

    >>> zunion([{b"a": 1.0}, {b"a": 2.0, b"b": 1.0}], [1.0, 2.0], _sum)
    {b'a': 5.0, b'b': 2.0}
    """
    result: Source = {}
    for source, weight in _by_size(sources, weights):
        for member, score in source.items():
            value = weight * score
            if math.isnan(value):
                value = 0.0
            known = result.get(member)
            result[member] = value if known is None else aggregate(known, value)
    return result


def zinter(
    sources: Sequence[Source],
    weights: Sequence[float],
    aggregate: Aggregate,
    limit: int = 0,
) -> Source:
    """ZINTER's members and scores (unordered); with ``limit`` > 0, stops after that many
    members (ZINTERCARD's LIMIT: only the count is then meaningful).

    >>> zinter([{b"a": 1.0, b"b": 1.0}, {b"a": 2.0}], [1.0, 1.0], _max)
    {b'a': 2.0}
    """
    ranked = _by_size(sources, weights)
    result: Source = {}
    (first, first_weight), rest = ranked[0], ranked[1:]
    for member, score in first.items():
        total = first_weight * score
        if math.isnan(total):
            total = 0.0
        for source, weight in rest:
            other = source.get(member)
            if other is None:
                break
            total = aggregate(total, other * weight)
        else:
            result[member] = total
            if limit and len(result) >= limit:
                break
    return result


def zdiff(sources: Sequence[Source]) -> Source:
    """ZDIFF: the first source's members found in no other, with their own scores.

    >>> zdiff([{b"a": 1.0, b"b": 2.0}, {b"a": 5.0}])
    {b'b': 2.0}
    """
    first, rest = sources[0], sources[1:]
    return {m: s for m, s in first.items() if not any(m in other for other in rest)}


def ordered(result: Source) -> list[tuple[bytes, float]]:
    """A sorted set's members in the server's order: by score, then by member bytes."""
    return sorted(result.items(), key=lambda item: (item[1], item[0]))
