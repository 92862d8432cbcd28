"""Flask integration: a Flask-Caching backend sharded over several Redis servers.

>>> app.config.update(                                                # doctest: +SKIP
...     CACHE_TYPE="hashring.adapters.flask.ShardedRedisCache",
...     CACHE_REDIS_NODES=["redis://10.0.0.1:6379/0", "redis://10.0.0.2:6379/0"],
...     CACHE_OPTIONS={"placement": "ring", "health": True},
... )
>>> cache = flask_caching.Cache(app)                                  # doctest: +SKIP

:class:`ShardedRedisCache` is Flask-Caching's ``RedisCache`` (same methods, answers and
stored bytes) over a :class:`hashring.adapters.redis.ShardedRedis`. Imports Flask,
Flask-Caching and the Redis adapter only (extra ``hashring[flask]``).

Modules: ``_settings`` (the configuration keys, checked; no I/O) and ``_cache`` (the
backend and its ``factory``).
"""

from __future__ import annotations

from ._cache import ShardedRedisCache

__all__ = ["ShardedRedisCache"]
