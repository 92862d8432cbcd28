"""Where a report's keys come from: a synthetic sample, a file, or live Redis nodes."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, BinaryIO

from .._placement.keys import Key
from .._topology.config import Topology
from ._common import MAX_KEYS, OperationError, UsageError, progress

DEFAULT_SAMPLE = 1_000_000
"""Synthetic keys in a report when no other source is given."""
MAX_KEY_BYTES = 1 << 20
"""Longest line ``--keys-file`` accepts (1 MiB): a longer one is not a key list."""
MAX_KEYS_FILE_BYTES = 1 << 30
"""Largest ``--keys-file`` (1 GiB)."""
_CHUNK = 1 << 20


def synthetic_keys(count: int) -> list[Key]:
    """``key:0`` ... ``key:{count-1}``: the built-in sample (deterministic, no server)."""
    return [f"key:{i}" for i in range(count)]


def read_keys_file(path: str) -> list[Key]:
    """One key per line (``-`` reads stdin); line ends are stripped, empty lines skipped.

    Lines are kept as bytes, so any key a server holds can be listed; keys hash over the
    same bytes as their UTF-8 str form. The file is read in 1 MiB chunks and refused as soon
    as it holds more than :data:`~hashring.cli._common.MAX_KEYS` lines, a line longer than
    :data:`MAX_KEY_BYTES` or more than :data:`MAX_KEYS_FILE_BYTES` bytes, so an endless
    source (``/dev/zero``) fails at once. Runtime and memory: O(file size).

    Raises:
        UsageError: the file cannot be read, breaks a bound, or holds no keys.
    """
    try:
        if path == "-":
            if sys.stdin is None or not hasattr(sys.stdin, "buffer"):
                raise UsageError("--keys-file -: standard input is closed")
            data = _bounded_read(sys.stdin.buffer, path)
        else:
            with open(path, "rb") as handle:
                data = _bounded_read(handle, path)
    except OSError as exc:
        raise UsageError(f"--keys-file {path}: cannot read: {exc.strerror}") from None
    keys: list[Key] = [line for line in data.splitlines() if line]
    if not keys:
        raise UsageError(f"--keys-file {path}: no keys in it (one key per line)")
    if len(keys) > MAX_KEYS:
        raise UsageError(f"--keys-file {path}: more than {MAX_KEYS:,} keys")
    return keys


def _bounded_read(handle: BinaryIO, path: str) -> bytes:
    chunks: list[bytes] = []
    size = lines = line_length = 0
    while chunk := handle.read(_CHUNK):
        size += len(chunk)
        lines += chunk.count(b"\n")
        first = chunk.find(b"\n")
        longest = line_length + (len(chunk) if first < 0 else first)
        line_length = longest if first < 0 else len(chunk) - chunk.rfind(b"\n") - 1
        if lines > MAX_KEYS:
            raise UsageError(f"--keys-file {path}: more than {MAX_KEYS:,} keys")
        if max(longest, line_length) > MAX_KEY_BYTES:
            raise UsageError(
                f"--keys-file {path}: a line longer than {MAX_KEY_BYTES >> 20} MiB: "
                "give one key per line"
            )
        if size > MAX_KEYS_FILE_BYTES:
            raise UsageError(f"--keys-file {path}: larger than {MAX_KEYS_FILE_BYTES >> 30} GiB")
        chunks.append(chunk)
    return b"".join(chunks)


def sample_keys(topology: Topology, count: int) -> list[Key]:
    """Up to ``count`` keys SCANned from the live nodes (see ``hashring.adapters._sampling``).

    Raises:
        UsageError: redis-py is not installed.
        ConfigError: a node has no URL.
        OperationError: a node cannot be reached.
    """
    try:
        import redis

        if TYPE_CHECKING:  # mypy knows the adapters by their folder's name
            from adapters.redis._sampling import sample_keys as scan_sample
        else:
            from ..adapters.redis._sampling import sample_keys as scan_sample
    except ImportError:  # pragma: no cover - the dev and redis extras install it
        raise UsageError("--sample-from needs redis-py: pip install 'hashring[redis]'") from None
    with progress(count, "sampling keys") as bar:
        try:
            keys: list[Key] = scan_sample(topology, count, bar.update)
            return keys
        except redis.RedisError as exc:
            raise OperationError(f"sampling keys: {type(exc).__name__}: {exc}") from None
        except ValueError as exc:  # redis-py refuses a URL scheme it does not speak
            raise UsageError(f"{topology.source}: {exc}") from None
