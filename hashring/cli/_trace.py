"""``hashring simulate --trace FILE``: a recorded request stream, replayed.

The format is UTF-8 text, one arrival per line::

    # time (seconds)  key        [work (units; optional)]
    0.000             user:42    1.5
    0.012             user:7     0.4

Fields are separated by spaces or tabs; a key holds no whitespace. Times are finite numbers
from 0 to 1e12, in non-decreasing order (ties allowed); work, when given, is a finite number
above 0 and at most 1e12, and is given on every line or on none (without it, each request's
work is drawn as ``--service`` says). Blank lines and lines starting with ``#`` are skipped.
Anything else (a NUL byte, bytes that are not UTF-8, a field that is not a number, NaN,
infinity, a negative or huge number, a time earlier than the line before, a line longer than
:data:`MAX_LINE_CHARS`) is refused with the line it is on, before anything is simulated.
"""

from __future__ import annotations

import math
import sys
from typing import BinaryIO

from .._simulation import MAX_TIME
from ._common import UsageError

__all__ = ["MAX_LINE_CHARS", "MAX_TRACE_BYTES", "Trace", "read_trace"]

MAX_TRACE_BYTES = 256 << 20
"""Largest trace (256 MiB, room for the most requests a run takes): a trace is held in
memory while it is read."""
MAX_LINE_CHARS = 1 << 16
"""Longest line a trace may hold."""
_CHUNK = 1 << 20


class Trace:
    """A parsed trace: per request its time, its key's index into ``key_names``, and its
    work (``work`` is None when the trace gives none)."""

    __slots__ = ("key_names", "keys", "times", "work")

    def __init__(
        self,
        times: list[float],
        keys: list[int],
        work: list[float] | None,
        key_names: list[str],
    ) -> None:
        self.times = times
        self.keys = keys
        self.work = work
        self.key_names = key_names


def read_trace(path: str, *, max_requests: int) -> Trace:
    """Read and check the trace at ``path`` (``-``: standard input). O(bytes).

    Raises:
        UsageError: the file cannot be read, is too large, is not text, or a line breaks
            the format (module docstring); the message names the line.
    """
    flag = f"--trace {path}"
    data = _read_bytes(path, flag)
    if b"\0" in data:
        at = data.count(b"\n", 0, data.index(b"\0")) + 1
        raise UsageError(f"{flag}: line {at}: a NUL byte: a trace is text, not a binary file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        at = data.count(b"\n", 0, exc.start) + 1
        raise UsageError(f"{flag}: line {at}: not UTF-8 text (a binary file?)") from None
    if text.startswith("\ufeff"):
        text = text[1:]
    times: list[float] = []
    keys: list[int] = []
    work: list[float] = []
    with_work: bool | None = None
    key_at: dict[str, int] = {}
    previous = 0.0
    for number, line in enumerate(text.split("\n"), start=1):
        if len(line) > MAX_LINE_CHARS:
            raise UsageError(f"{flag}: line {number}: longer than {MAX_LINE_CHARS:,} characters")
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        where = f"{flag}: line {number}"
        if len(fields) not in (2, 3):
            raise UsageError(
                f"{where}: expected TIME KEY [WORK], got {len(fields)} field"
                f"{'s' if len(fields) != 1 else ''}"
            )
        if with_work is None:
            with_work = len(fields) == 3
        elif with_work != (len(fields) == 3):
            raise UsageError(f"{where}: give the work on every line or on none")
        if len(times) >= max_requests:
            raise UsageError(f"{flag}: more than {max_requests:,} requests")
        moment = _number(fields[0], where, "time", low_included=True)
        if moment < previous:
            raise UsageError(
                f"{where}: time {fields[0][:30]} is earlier than the line before "
                f"({previous:g}): list arrivals in time order"
            )
        previous = moment
        times.append(moment)
        key = fields[1]
        index = key_at.get(key)
        if index is None:
            index = key_at[key] = len(key_at)
        keys.append(index)
        if with_work:
            work.append(_number(fields[2], where, "work", low_included=False))
    if not times:
        raise UsageError(f"{flag}: no arrivals (one 'TIME KEY [WORK]' per line)")
    if times[-1] <= times[0]:
        raise UsageError(f"{flag}: every arrival is at the same time: a trace must span some time")
    return Trace(times, keys, work if with_work else None, list(key_at))


def _read_bytes(path: str, flag: str) -> bytes:
    try:
        if path == "-":
            if sys.stdin is None or not hasattr(sys.stdin, "buffer"):
                raise UsageError(f"{flag}: standard input is closed")
            return _bounded_read(sys.stdin.buffer, flag)
        with open(path, "rb") as handle:
            return _bounded_read(handle, flag)
    except FileNotFoundError:
        raise UsageError(f"{flag}: no such file") from None
    except IsADirectoryError:
        raise UsageError(f"{flag}: is a folder, not a trace file") from None
    except OSError as exc:
        raise UsageError(f"{flag}: cannot read: {exc.strerror or exc}") from None


def _bounded_read(handle: BinaryIO, flag: str) -> bytes:
    """The handle's bytes, read in chunks: a NUL byte (``/dev/zero``, a binary file) stops
    the read at its chunk, and more than :data:`MAX_TRACE_BYTES` is refused at the bound."""
    chunks: list[bytes] = []
    size = 0
    while chunk := handle.read(_CHUNK):
        chunks.append(chunk)
        size += len(chunk)
        if size > MAX_TRACE_BYTES:
            raise UsageError(f"{flag}: larger than {MAX_TRACE_BYTES >> 20:,} MiB")
        if b"\0" in chunk:
            break
    return b"".join(chunks)


def _number(text: str, where: str, what: str, *, low_included: bool) -> float:
    """A finite number in [0, MAX_TIME] (above 0 unless ``low_included``)."""
    shown = text[:30] + ("..." if len(text) > 30 else "")
    if len(text) > 64:
        raise UsageError(f"{where}: {what} {shown!r} is too long to be a number")
    try:
        value = float(text)
    except ValueError:
        raise UsageError(f"{where}: {what} {shown!r} is not a number") from None
    if not math.isfinite(value):
        raise UsageError(f"{where}: {what} {shown!r} is not a finite number")
    low_ok = value >= 0 if low_included else value > 0
    if not low_ok or value > MAX_TIME:
        bound = "from 0" if low_included else "above 0"
        raise UsageError(f"{where}: {what} {shown} must be {bound} and at most {MAX_TIME:g}")
    return value
