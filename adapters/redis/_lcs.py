"""LCS of two strings computed on the client, byte for byte as the server (``lcsCommand``
in redis/redis ``src/t_string.c``); no I/O.

The server fills an (n+1) x (m+1) table and walks it back from the end, preferring to drop
a byte of the first string only when that keeps a strictly longer LCS. The same walk is
done here over bit-parallel rows (Hyyrö's LCS recurrence: one Python integer of m bits per
byte of the first string), so the work is O(n * m / 64) word operations and n * m / 8 bytes
instead of n * m table cells.

The server refuses a table of more than ``proto-max-bulk-len`` bytes (4 bytes a cell,
512 MB by default); the client refuses above :data:`MAX_CELLS` cells, the default server's
own bound, with UnsupportedCommandError.
"""

from __future__ import annotations

from dataclasses import dataclass

from ._errors import UnsupportedCommandError

__all__ = ["MAX_CELLS", "Lcs", "Match", "lcs"]

MAX_CELLS = 512 * 1024 * 1024 // 4
"""The most (n + 1) * (m + 1) cells computed: what a default server accepts."""


@dataclass(frozen=True)
class Match:
    """One matched range: ``a[a_start:a_end + 1] == b[b_start:b_end + 1]``."""

    a_start: int
    a_end: int
    b_start: int
    b_end: int

    @property
    def length(self) -> int:
        return self.a_end - self.a_start + 1


@dataclass(frozen=True)
class Lcs:
    """The longest common subsequence, its length, and its ranges from the end."""

    text: bytes
    length: int
    matches: list[Match]


def _rows(a: bytes, b: bytes) -> list[int]:
    """Row i (0..n) as an integer whose bit j is 0 exactly when LCS(a[:i], b[:j+1]) is one
    more than LCS(a[:i], b[:j])."""
    m = len(b)
    full = (1 << m) - 1
    masks: dict[int, int] = {}
    for j, byte in enumerate(b):
        masks[byte] = masks.get(byte, 0) | (1 << j)
    row = full
    rows = [row]
    for byte in a:
        match = row & masks.get(byte, 0)
        row = ((row + match) | (row - match)) & full
        rows.append(row)
    return rows


def lcs(a: bytes, b: bytes, min_match: int = 0) -> Lcs:
    """The server's LCS of ``a`` and ``b``: the string, its length and the ranges it
    reports (IDX), from the last one, those of at least ``min_match`` bytes.

    >>> found = lcs(b"ohmytext", b"mynewtext")
    >>> found.text, found.length, [(m.a_start, m.a_end, m.b_start, m.b_end) for m in found.matches]
    (b'mytext', 6, [(4, 7, 5, 8), (2, 3, 0, 1)])

    Runtime complexity: O(len(a) * len(b) / 64).

    Raises:
        UnsupportedCommandError: more than :data:`MAX_CELLS` table cells.
    """
    if (len(a) + 1) * (len(b) + 1) > MAX_CELLS:
        raise UnsupportedCommandError(
            f"LCS of strings of {len(a)} and {len(b)} bytes on different nodes: more than "
            f"{MAX_CELLS} table cells, which a default server refuses too"
        )
    rows = _rows(a, b)

    def cell(i: int, j: int) -> int:
        return j - (rows[i] & ((1 << j) - 1)).bit_count()

    alen = len(a)
    total = cell(alen, len(b))
    text = bytearray(total)
    index = total
    matches: list[Match] = []
    a_start = alen  # alen: no range under way
    a_end = b_start = b_end = 0
    i, j = alen, len(b)
    while i > 0 and j > 0:
        emit = False
        if a[i - 1] == b[j - 1]:
            text[index - 1] = a[i - 1]
            if a_start == alen:
                a_start = a_end = i - 1
                b_start = b_end = j - 1
            elif a_start == i and b_start == j:
                a_start -= 1
                b_start -= 1
            else:
                emit = True
            if a_start == 0 or b_start == 0:
                emit = True
            index -= 1
            i -= 1
            j -= 1
        else:
            if cell(i - 1, j) > cell(i, j - 1):
                i -= 1
            else:
                j -= 1
            if a_start != alen:
                emit = True
        if emit:
            found = Match(a_start, a_end, b_start, b_end)
            if min_match == 0 or found.length >= min_match:
                matches.append(found)
            a_start = alen
    return Lcs(bytes(text), total, matches)
