"""Django settings for the Django cache tests: configured once per process (settings can be
configured only once; each pytest-xdist worker is its own process), and only by the test
modules that import this one, so other tests never see Django configured."""

from __future__ import annotations

import django
from django.conf import settings

SHARDED = "hashring.adapters.django.ShardedRedisCache"
REFERENCE = "django.core.cache.backends.redis.RedisCache"


def configure_django() -> None:
    """Configure Django's settings (no apps, a local-memory default cache) if nobody has."""
    if not settings.configured:
        settings.configure(
            CACHES={"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}},
            INSTALLED_APPS=[],
            USE_TZ=True,
        )
        django.setup()


def custom_key_func(key: str, key_prefix: str, version: int) -> str:
    """A KEY_FUNCTION other than Django's (used by import path and as a callable)."""
    return "CUSTOM-" + "-".join([key_prefix, str(version), key])
