"""The refusals the Redis adapters raise: hashring's errors that are also redis-py's.

``except hashring.CrossShardError`` and ``except redis.RedisError`` both catch them, so code
written for redis-py keeps its handlers, and code written for hashring keeps its own.
"""

from __future__ import annotations

import redis
from redis.exceptions import ExceptionType

import hashring

__all__ = ["CrossShardError", "UnsupportedCommandError"]


class _RedisErrorFields:
    """What ``redis.exceptions.RedisError.__init__`` sets on every instance, which the
    refusals' ``__init__`` (hashring's, through ``ValueError``) never runs: redis-py's
    ``__repr__`` and its observability read them. A refusal is classed as redis-py classes
    a server's CROSSSLOT or unknown-command error: ``ExceptionType.SERVER``."""

    error_type = ExceptionType.SERVER
    status_code: str | None = None


class CrossShardError(_RedisErrorFields, hashring.CrossShardError, redis.exceptions.RedisError):
    """A command's keys live on several nodes and it cannot be split; nothing was sent.

    A :class:`hashring.CrossShardError` (``nodes`` names the nodes) and a
    ``redis.exceptions.RedisError``. Keep such keys together with a ``{hash tag}``.
    """


class UnsupportedCommandError(
    _RedisErrorFields, hashring.UnsupportedCommandError, redis.exceptions.RedisError
):
    """A command a sharded client cannot run as one server would; nothing was sent. The
    message says what to use instead.

    A :class:`hashring.UnsupportedCommandError` and a ``redis.exceptions.RedisError``.
    """
