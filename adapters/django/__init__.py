"""Django cache backend: Django's RedisCache sharded over several Redis servers.

>>> CACHES = {"default": {
...     "BACKEND": "hashring.adapters.django.ShardedRedisCache",
...     "LOCATION": ["redis://10.0.0.1:6379/0", "redis://10.0.0.2:6379/0"],
...     "OPTIONS": {"placement": "ring", "health": True},
... }}

Modules, by what they hold:

* ``_location``: a LOCATION read as node name -> URL (node names derived from URLs, a
  ``{name: URL}`` dict, or a topology file and its placement);
* ``_shared``: one client per configuration and process, shared by every backend instance;
* ``_cache``: ``ShardedRedisCache`` (Django's ``RedisCache``) and its client
  ``ShardedRedisCacheClient`` (Django's ``RedisCacheClient`` handing out a ShardedRedis).

Imports only Django, hashring and hashring's Redis adapter.
"""

from __future__ import annotations

from ._cache import ShardedRedisCache, ShardedRedisCacheClient
from ._location import node_name

__all__ = ["ShardedRedisCache", "ShardedRedisCacheClient", "node_name"]
