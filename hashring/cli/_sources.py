"""Where a report's keys come from: a synthetic sample, a file, or live Redis nodes."""

from __future__ import annotations

import sys

from .._config import Topology
from .._keys import Key
from ._common import OperationError, UsageError, progress

DEFAULT_SAMPLE = 1_000_000
"""Synthetic keys in a report when no other source is given."""


def synthetic_keys(count: int) -> list[Key]:
    """``key:0`` ... ``key:{count-1}``: the built-in sample (deterministic, no server)."""
    return [f"key:{i}" for i in range(count)]


def read_keys_file(path: str) -> list[Key]:
    """One key per line (``-`` reads stdin); line ends are stripped, empty lines skipped.

    Lines are kept as bytes, so any key a server holds can be listed; keys hash over the
    same bytes as their UTF-8 str form.

    Raises:
        UsageError: the file cannot be read, or holds no keys.
    """
    try:
        if path == "-":
            data = sys.stdin.buffer.read()
        else:
            with open(path, "rb") as handle:
                data = handle.read()
    except OSError as exc:
        raise UsageError(f"--keys-file {path}: cannot read: {exc.strerror}") from None
    keys: list[Key] = [line for line in data.splitlines() if line]
    if not keys:
        raise UsageError(f"--keys-file {path}: no keys in it (one key per line)")
    return keys


def sample_keys(topology: Topology, count: int) -> list[Key]:
    """Up to ``count`` keys SCANned from the live nodes (see ``hashring.adapters._sampling``).

    Raises:
        UsageError: redis-py is not installed.
        ConfigError: a node has no URL.
        OperationError: a node cannot be reached.
    """
    try:
        import redis

        from ..adapters._sampling import sample_keys as scan_sample
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
