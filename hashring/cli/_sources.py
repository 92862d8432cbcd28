"""Where a report's keys come from: a synthetic sample or a file, streamed in chunks (a sample
of live Redis nodes: ``_plan.sample_live_nodes``)."""

from __future__ import annotations

import argparse
import os
import stat
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import BinaryIO

from .._placement.keys import Key
from ._common import UsageError, positive_int

DEFAULT_SAMPLE = 1_000_000
"""Synthetic keys in a report when no other source is given."""
MAX_STREAMED_KEYS = 1_000_000_000
"""Most keys ``report`` places from ``--keys`` or ``--keys-file``. They stream in chunks, so
memory does not grow with them; the bound caps the run time instead (about ten minutes on
one core) and keeps an endless ``--keys-file -`` from running for ever."""
MAX_KEY_BYTES = 1 << 20
"""Longest line ``--keys-file`` accepts (1 MiB): a longer one is not a key list."""
MAX_KEYS_FILE_BYTES = 64 << 30
"""Largest ``--keys-file`` (64 GiB, room for :data:`MAX_STREAMED_KEYS` keys of 60 bytes)."""
CHUNK_KEYS = 1 << 17
"""Keys placed per chunk: small enough to stay in cache, large enough that the per-chunk
numpy calls cost nothing (bench/report.py --scale measures it)."""
_CHUNK = 1 << 20
_DIGITS = tuple("0123456789")


@dataclass(frozen=True)
class KeyStream:
    """A report's keys in chunks, read lazily, once.

    ``chunks`` yields ``(keys, progress)``: a chunk of keys and how far it advances a progress
    bar counting ``unit`` (``"key"``; ``"B"`` for a file, whose size is known before its keys)
    up to ``total`` (None when unknown: standard input).
    """

    chunks: Iterable[tuple[Sequence[Key], int]]
    total: int | None
    unit: str = "key"


def streamed_key_count(text: str) -> int:
    """argparse type: a count of streamed keys, 1 to :data:`MAX_STREAMED_KEYS`."""
    value = positive_int(text)
    if value > MAX_STREAMED_KEYS:
        raise argparse.ArgumentTypeError(f"{text}: at most {MAX_STREAMED_KEYS:,} keys are allowed")
    return value


def synthetic_keys(count: int) -> list[Key]:
    """``key:0`` ... ``key:{count-1}``: the built-in sample (deterministic, no server)."""
    return [f"key:{i}" for i in range(count)]


def synthetic_stream(count: int, chunk: int = CHUNK_KEYS) -> KeyStream:
    """:func:`synthetic_keys` in chunks of ``chunk`` keys, each made when it is needed.
    Memory: one chunk."""

    def chunks() -> Iterator[tuple[Sequence[Key], int]]:
        for start in range(0, count, chunk):
            stop = min(start + chunk, count)
            yield synthetic_range(start, stop), stop - start

    return KeyStream(chunks(), count)


def synthetic_range(start: int, stop: int) -> list[Key]:
    """``key:{start}`` ... ``key:{stop-1}``, as :func:`synthetic_keys` makes them, in a third
    of the time: one formatted prefix per ten keys, joined to each last digit. O(keys)."""
    low, high = max(-(-start // 10) * 10, 10), stop // 10 * 10
    if high <= low:
        return [f"key:{i}" for i in range(start, stop)]
    keys: list[Key] = [f"key:{i}" for i in range(start, low)]
    prefixes = map("key:{}".format, range(low // 10, high // 10))
    keys += [prefix + digit for prefix in prefixes for digit in _DIGITS]
    keys += [f"key:{i}" for i in range(high, stop)]
    return keys


def list_stream(keys: Sequence[Key], chunk: int = CHUNK_KEYS) -> KeyStream:
    """Keys already in memory (a ``--sample-from`` sample), in chunks of ``chunk`` keys."""
    steps = (
        (keys[start : start + chunk], min(chunk, len(keys) - start))
        for start in range(0, len(keys), chunk)
    )
    return KeyStream(steps, len(keys))


def keys_file_stream(path: str) -> KeyStream:
    """The keys of ``path``, one per line (``-`` reads stdin), in chunks of about 1 MiB.

    Line ends are stripped and empty lines skipped. Lines are kept as bytes, so any key a
    server holds can be listed; keys hash over the same bytes as their UTF-8 str form. The
    file is opened when the first chunk is asked for and read 1 MiB at a time; the stream
    fails as soon as the keys read pass :data:`MAX_STREAMED_KEYS`, a line passes
    :data:`MAX_KEY_BYTES` or the bytes pass :data:`MAX_KEYS_FILE_BYTES`, so an endless source
    (``/dev/zero``) fails at once. The progress of a regular file counts its bytes (its size
    is the total); of anything else, its keys. Memory: one chunk, whatever the file's size.

    Raises (while iterating):
        UsageError: the file cannot be read, breaks a bound, or holds no keys.
    """
    size: int | None = None
    if path != "-":
        try:
            info = os.stat(path)
        except OSError as exc:
            raise UsageError(f"--keys-file {path}: cannot read: {exc.strerror}") from None
        if stat.S_ISREG(info.st_mode):
            size = info.st_size
    return KeyStream(_file_chunks(path, size is not None), size, "B" if size is not None else "key")


def _file_chunks(path: str, count_bytes: bool) -> Iterator[tuple[Sequence[Key], int]]:
    try:
        if path == "-":
            if sys.stdin is None or not hasattr(sys.stdin, "buffer"):
                raise UsageError("--keys-file -: standard input is closed")
            yield from _bounded_chunks(sys.stdin.buffer, path, count_bytes)
        else:
            with open(path, "rb") as handle:
                yield from _bounded_chunks(handle, path, count_bytes)
    except OSError as exc:
        raise UsageError(f"--keys-file {path}: cannot read: {exc.strerror}") from None


def _bounded_chunks(
    handle: BinaryIO, path: str, count_bytes: bool
) -> Iterator[tuple[Sequence[Key], int]]:
    size = keys = unreported = 0  # unreported: bytes read but not yet yielded as progress
    tail = b""
    while block := handle.read(_CHUNK):
        size += len(block)
        unreported += len(block)
        if size > MAX_KEYS_FILE_BYTES:
            raise UsageError(f"--keys-file {path}: larger than {MAX_KEYS_FILE_BYTES >> 30} GiB")
        last = block.rfind(b"\n")
        if last < 0:
            tail += block
            _check_line(len(tail), path)
            continue
        first = block.find(b"\n")
        _check_line(len(tail) + first, path)
        head, tail = tail + block[: last + 1], block[last + 1 :]
        _check_line(_longest_line(block, first, last), path)
        _check_line(len(tail), path)
        chunk: list[Key] = [line for line in head.splitlines() if line]
        keys += len(chunk)
        if keys > MAX_STREAMED_KEYS:
            raise UsageError(f"--keys-file {path}: more than {MAX_STREAMED_KEYS:,} keys")
        yield chunk, unreported if count_bytes else len(chunk)
        unreported = 0
    chunk = [line for line in tail.splitlines() if line]
    keys += len(chunk)
    if not keys:
        raise UsageError(f"--keys-file {path}: no keys in it (one key per line)")
    if keys > MAX_STREAMED_KEYS:
        raise UsageError(f"--keys-file {path}: more than {MAX_STREAMED_KEYS:,} keys")
    yield chunk, unreported if count_bytes else len(chunk)


def _longest_line(block: bytes, first: int, last: int) -> int:
    """The longest line wholly inside ``block[first + 1 : last]`` (by newlines). Checked only
    when the block could hold one past the bound, so it costs nothing in practice."""
    if last - first <= MAX_KEY_BYTES:
        return 0
    return max(len(line) for line in block[first + 1 : last].split(b"\n"))


def _check_line(length: int, path: str) -> None:
    if length > MAX_KEY_BYTES:
        raise UsageError(
            f"--keys-file {path}: a line longer than {MAX_KEY_BYTES >> 20} MiB: "
            "give one key per line"
        )


def read_keys_file(path: str) -> list[Key]:
    """All the keys of ``path`` in one list (see :func:`keys_file_stream`, whose bounds and
    errors apply). Memory: O(file size); the report streams instead.

    Raises:
        UsageError: the file cannot be read, breaks a bound, or holds no keys.
    """
    return [key for chunk, _ in keys_file_stream(path).chunks for key in chunk]
