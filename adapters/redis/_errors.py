"""The refusals the Redis adapters raise: hashring's errors that are also redis-py's.

``except hashring.CrossShardError`` and ``except redis.RedisError`` both catch them, so code
written for redis-py keeps its handlers, and code written for hashring keeps its own.
"""

from __future__ import annotations

import redis

import hashring

__all__ = ["CrossShardError", "UnsupportedCommandError"]


class CrossShardError(hashring.CrossShardError, redis.exceptions.RedisError):
    """A command's keys live on several nodes and it cannot be split; nothing was sent.

    A :class:`hashring.CrossShardError` (``nodes`` names the nodes) and a
    ``redis.exceptions.RedisError``. Keep such keys together with a ``{hash tag}``.
    """


class UnsupportedCommandError(hashring.UnsupportedCommandError, redis.exceptions.RedisError):
    """A command a sharded client cannot run as one server would; nothing was sent. The
    message says what to use instead.

    A :class:`hashring.UnsupportedCommandError` and a ``redis.exceptions.RedisError``.
    """
