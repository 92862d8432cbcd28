"""Real redis-servers for the benchmarks in bench/, from the test suite's machinery.

``tests/redis_servers.py`` starts them on free loopback ports (never 6379) with persistence
off unless ``extra_args`` turn it on; this wraps its pool for use outside pytest.
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from redis_servers import RedisServer, redis_server_pool

__all__ = ["RedisServer", "redis_servers"]


class _TempDirs:
    """The one method of pytest's TempPathFactory that ``redis_server_pool`` uses."""

    def __init__(self, base: Path) -> None:
        self._base = base

    def mktemp(self, basename: str) -> Path:
        return Path(tempfile.mkdtemp(prefix=f"{basename}-", dir=self._base))


@contextlib.contextmanager
def redis_servers(n: int, extra_args: tuple[str, ...] = ()) -> Iterator[list[RedisServer]]:
    """``n`` fresh redis-servers, stopped (and their directories removed) on exit.

    ``extra_args``: more ``redis-server`` options for each (``("--appendonly", "yes")``...).
    """
    with (
        tempfile.TemporaryDirectory(prefix="hashring-bench-") as base,
        redis_server_pool(cast(Any, _TempDirs(Path(base)))) as factory,
    ):
        yield factory(n, extra_args=extra_args)
