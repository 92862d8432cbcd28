"""The ring's sorted points and its bucket table: building, merging and patching them.

Pure numpy functions over ``uint32`` arrays, used by :class:`~hashring.HashRing` to publish a
new snapshot after a membership change (``ring``'s docstring describes the structures).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from .hashes import MASK32, HashScheme, U32Array

__all__ = [
    "MIN_TABLE_BITS",
    "Table",
    "build_table",
    "merge_points",
    "patch_table",
    "previous_point",
    "table_bits",
]

MIN_TABLE_BITS = 8
_MAX_TABLE_BITS = 22
_TABLE_EXTRA_BITS = 2  # 2**(bit_length(points) + 2): between 4 and 8 buckets per point

Table = list[str | None]
"""Bucket table: the owner of every key in a bucket, or None where a point splits it."""


def table_bits(point_count: int, current: int) -> int:
    """Bucket-table size for ``point_count`` points; keeps ``current`` within one bit."""
    if point_count == 0:
        return 0
    wanted = point_count.bit_length() + _TABLE_EXTRA_BITS
    wanted = min(_MAX_TABLE_BITS, max(MIN_TABLE_BITS, wanted))
    return current if current and abs(current - wanted) <= 1 else wanted


def build_table(points: U32Array, owners: U32Array, names_obj: Any, bits: int) -> Table:
    """The whole bucket table, vectorised. O(points + 2**bits)."""
    if bits == 0:
        return [None]
    shift = 32 - bits
    per_bucket = np.bincount(points >> shift, minlength=1 << bits)
    first = np.cumsum(per_bucket) - per_bucket
    entries = names_obj[owners[first]]
    entries[per_bucket > 0] = None
    table: Table = entries.tolist()
    return table


def previous_point(points: U32Array, values: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """For each value, the largest point strictly below it (wrapping: minus 2**32)."""
    if not points.size:
        return np.full(values.shape, -(1 << 33), dtype=np.int64)
    index = np.searchsorted(points, values.astype(np.uint32), side="left") - 1
    wrapped = index < 0
    result = points[np.where(wrapped, points.size - 1, index)].astype(np.int64)
    result[wrapped] -= 1 << 32
    return result


def patch_table(
    table: Table,
    bits: int,
    changed: U32Array,
    old_points: U32Array,
    points: U32Array,
    owners: U32Array,
    names_obj: Any,
) -> Table | None:
    """Copy ``table`` and recompute the entries that the ``changed`` points can affect.

    A bucket's entry depends on whether a point lies inside it and on the first point at or
    after its start, so a changed point ``d`` can only affect its own bucket and the buckets
    that start after the point preceding ``d`` (in the old or the new ring) and at or before
    ``d``. Returns None when so many buckets are affected that a full build is cheaper.
    """
    shift = 32 - bits
    size = 1 << bits
    values = np.unique(changed).astype(np.int64)
    previous = np.maximum(previous_point(old_points, values), previous_point(points, values))
    low = (previous >> shift) + 1
    high = values >> shift
    lengths = high - low + 1
    total = int(lengths.sum())
    if total > size // 4:
        return None
    offsets = np.arange(total) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    buckets = np.unique((np.repeat(low, lengths) + offsets) % size)
    starts = (buckets << shift).astype(np.uint32)
    ends = starts + np.uint32((1 << shift) - 1)
    first = np.searchsorted(points, starts, side="left")
    after = np.searchsorted(points, ends, side="right")
    entries = names_obj[owners[first]]
    entries[after > first] = None
    patched = table.copy()
    for bucket, owner in zip(buckets.tolist(), entries.tolist(), strict=True):
        patched[bucket] = owner
    return patched


def merge_points(
    old_points: U32Array,
    old_owners: U32Array,
    old_names: tuple[str, ...],
    names: tuple[str, ...],
    counts: dict[str, int],
    changed: set[str],
    scheme: HashScheme,
) -> tuple[U32Array, U32Array, U32Array]:
    """Points and owners after replacing the points of the ``changed`` nodes.

    Returns ``(padded, owners, touched)``: the sorted points followed by one padding point
    2**32 - 1, their owners followed by the wrap-around owner, and every point value that
    was removed or added. O(points) in C (numpy merges) plus the hashing of the changed nodes.
    """
    index = {name: i for i, name in enumerate(names)}
    old_count = old_points.size
    if old_count:
        remap = np.fromiter(
            (-1 if name in changed or name not in index else index[name] for name in old_names),
            dtype=np.int64,
            count=len(old_names),
        )
        mapped = remap[old_owners[:old_count]]
        keep = mapped >= 0
        kept = (old_points[keep].astype(np.uint64) << 32) | mapped[keep].astype(np.uint64)
        removed = old_points[~keep]
    else:
        kept = np.empty(0, dtype=np.uint64)
        removed = np.empty(0, dtype=np.uint32)
    present = [(name, counts[name]) for name in sorted(changed) if counts.get(name)]
    new_points = scheme.node_points(present).astype(np.uint64)
    new_owners = np.repeat(
        np.array([index[name] for name, _ in present], dtype=np.uint64),
        [count for _, count in present],
    )
    added = np.sort((new_points << 32) | new_owners)
    if not kept.size:
        merged = added
    elif not added.size:
        merged = kept
    else:
        merged = np.insert(kept, np.searchsorted(kept, added), added)
    padded = np.empty(merged.size + 1, dtype=np.uint32)
    padded[:-1] = merged >> 32
    padded[-1] = MASK32
    owners = np.empty(merged.size + 1, dtype=np.uint32)
    owners[:-1] = merged & MASK32
    owners[-1] = owners[0] if merged.size else 0
    touched = np.concatenate([removed, (added >> 32).astype(np.uint32)])
    return padded, owners, touched
