"""A sample of the keys live Redis nodes hold, read with SCAN (for ``hashring report``)."""

from __future__ import annotations

from collections.abc import Callable

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from hashring import Key, Topology
from hashring._errors import ConfigError

__all__ = ["sample_keys"]


def sample_keys(
    topology: Topology,
    count: int,
    progress: Callable[[int], object] | None = None,
    *,
    timeout: float = 10.0,
) -> list[Key]:
    """Up to ``count`` keys SCANned from the nodes of ``topology``, as bytes.

    Each node contributes in proportion to its DBSIZE, so the sample's load reflects the real
    one. SCAN (never KEYS) reads it, so servers are not blocked; ``progress(n)`` is called as
    keys arrive. Memory: O(count). Network: one DBSIZE per node and about count/1000 SCANs;
    a node that does not connect or answer within ``timeout`` seconds (default 10; one retry,
    so about twice that in all) fails the call instead of hanging it.

    Raises:
        ConfigError: a node has no URL.
        redis.RedisError: a node cannot be reached, does not answer in time
            (``redis.TimeoutError``) or answers with an error (redis-py's messages name host
            and port, never the password).
    """
    for name, spec in topology.nodes.items():
        if spec.url is None:
            raise ConfigError(f"{topology.source}: nodes.{name} has no url to sample keys from")
    clients = {
        name: redis.Redis.from_url(
            spec.url or "",
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 1),
        )
        for name, spec in topology.nodes.items()
    }
    try:
        sizes = {name: int(client.dbsize()) for name, client in clients.items()}
        total = sum(sizes.values())
        keys: list[Key] = []
        for name, client in clients.items():
            quota = round(count * sizes[name] / total) if total else 0
            taken, cursor = 0, 0
            while taken < quota:
                cursor, batch = client.scan(cursor, count=1000)
                batch = batch[: quota - taken]
                keys.extend(batch)
                taken += len(batch)
                if progress is not None:
                    progress(len(batch))
                if cursor == 0:
                    break
        return keys
    finally:
        for client in clients.values():
            client.close()
