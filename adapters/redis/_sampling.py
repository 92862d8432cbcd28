"""A sample of the keys live Redis nodes hold, read with SCAN (for ``hashring report``), and
the figures a move is planned with: each sampled key's size and TTL, each node's live key
count and memory."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from hashring import Key, Topology
from hashring._errors import ConfigError

__all__ = ["LiveSample", "NodeMemory", "sample_keys", "sample_live"]


@dataclass(frozen=True)
class NodeMemory:
    """A node's memory as ``INFO memory`` reports it (bytes)."""

    used: int
    """``used_memory``: what the server's allocator holds now."""
    maxmemory: int
    """``maxmemory``: the limit, 0 when there is none."""


@dataclass
class LiveSample:
    """Keys SCANned from live nodes, with what planning a move needs of each.

    The lists are parallel: ``keys[i]`` was found on ``nodes[i]``, ``MEMORY USAGE`` said
    ``sizes[i]`` bytes and it had a TTL when ``ttl[i]``.
    """

    keys: list[Key] = field(default_factory=list)
    nodes: list[str] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)
    """``MEMORY USAGE key SAMPLES 0`` (0 for a key gone between SCAN and the question)."""
    ttl: list[bool] = field(default_factory=list)
    """The key had a TTL (``PTTL`` >= 0)."""
    live: dict[str, int] = field(default_factory=dict)
    """``DBSIZE`` of every node sampled, read before the sample."""
    memory: dict[str, NodeMemory] = field(default_factory=dict)
    """``INFO memory`` of every node sampled and every node of ``watch``."""

    def sampled(self) -> dict[str, int]:
        """Keys in the sample per node sampled (every node of :attr:`live`, 0 included)."""
        counts = dict.fromkeys(self.live, 0)
        for node in self.nodes:
            counts[node] += 1
        return counts


def _client(url: str, timeout: float) -> redis.Redis:
    return redis.Redis.from_url(
        url,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 1),
    )


def _urls(topology: Topology) -> dict[str, str]:
    urls = {}
    for name, spec in topology.nodes.items():
        if spec.url is None:
            raise ConfigError(f"{topology.source}: nodes.{name} has no url to sample keys from")
        urls[name] = spec.url
    return urls


def sample_live(
    sources: Mapping[str, str],
    count: int,
    progress: Callable[[int], object] | None = None,
    *,
    watch: Mapping[str, str] | None = None,
    timeout: float = 10.0,
) -> LiveSample:
    """Up to ``count`` keys SCANned from the nodes ``sources`` (name -> URL), with each key's
    ``MEMORY USAGE`` and ``PTTL``, each node's ``DBSIZE``, and the ``INFO memory`` of the
    sources and of the nodes of ``watch`` (name -> URL; those are not sampled).

    Each node contributes in proportion to its DBSIZE (so the sample is stratified by node
    and each node's part can be scaled to its live count). SCAN (never KEYS) reads the keys
    in the order of the server's hash table, which is independent of the key names' meaning
    (Redis hashes them with a per-process random seed): the first keys of a SCAN are close to
    a random sample, not a guaranteed one. ``progress(n)`` is called as keys arrive.

    Memory: O(count). Network: one DBSIZE and one INFO per node, about count/1000 SCANs,
    each followed by one pipelined round trip of ``MEMORY USAGE key SAMPLES 0`` and ``PTTL``
    per key. A node that does not connect or answer within ``timeout`` seconds (one retry)
    fails the call.

    Raises:
        redis.RedisError: a node cannot be reached, does not answer in time or answers with
            an error (redis-py's messages name host and port, never the password).
    """
    every = {**(watch or {}), **sources}
    clients = {name: _client(url, timeout) for name, url in every.items()}
    sample = LiveSample()
    try:
        for name, client in clients.items():
            info = client.info("memory")
            sample.memory[name] = NodeMemory(
                int(info.get("used_memory", 0)), int(info.get("maxmemory", 0))
            )
        sample.live = {name: int(clients[name].dbsize()) for name in sources}
        total = sum(sample.live.values())
        for name in sources:
            client = clients[name]
            quota = round(count * sample.live[name] / total) if total else 0
            taken, cursor = 0, 0
            while taken < quota:
                cursor, batch = client.scan(cursor, count=1000)
                batch = batch[: quota - taken]
                if batch:
                    pipe = client.pipeline(transaction=False)
                    for key in batch:
                        pipe.memory_usage(key, samples=0)
                        pipe.pttl(key)
                    replies = pipe.execute(raise_on_error=False)
                    sample.keys.extend(batch)
                    sample.nodes.extend([name] * len(batch))
                    sample.sizes.extend(_int(size) for size in replies[0::2])
                    sample.ttl.extend(_int(ttl, -2) >= 0 for ttl in replies[1::2])
                taken += len(batch)
                if progress is not None:
                    progress(len(batch))
                if cursor == 0:
                    break
        return sample
    finally:
        for client in clients.values():
            client.close()


def sample_keys(
    topology: Topology,
    count: int,
    progress: Callable[[int], object] | None = None,
    *,
    timeout: float = 10.0,
) -> list[Key]:
    """Up to ``count`` keys SCANned from the nodes of ``topology``, as bytes (the keys of
    :func:`sample_live`, each node contributing in proportion to its DBSIZE).

    Raises:
        ConfigError: a node has no URL.
        redis.RedisError: as :func:`sample_live`.
    """
    return sample_live(_urls(topology), count, progress, timeout=timeout).keys


def topology_urls(topology: Topology) -> dict[str, str]:
    """Node name -> URL for every node of ``topology``.

    Raises:
        ConfigError: a node has no URL.
    """
    return _urls(topology)


def _int(value: object, default: int = 0) -> int:
    """``value`` if a server answered an int, else ``default``."""
    return value if isinstance(value, int) and not isinstance(value, bool) else default
