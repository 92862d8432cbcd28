"""Redis adapters: drop-in redis-py clients that send every command to the node owning its
keys.

>>> from hashring.adapters.redis import ShardedRedis          # doctest: +SKIP
>>> cache = ShardedRedis({"cache-1": "redis://10.0.0.1:6379/0",
...                       "cache-2": "redis://10.0.0.2:6379/0"})  # doctest: +SKIP
>>> cache.set("user:42", "x"); cache.get("user:42")          # doctest: +SKIP

``ShardedRedis`` (redis-py) and ``AsyncShardedRedis`` (``redis.asyncio``) inherit every
command method of redis-py and override only ``execute_command``; both take
``placement=``, an algorithm name or a ready :class:`hashring.Placement`.

Modules, by what they hold (everything that does no I/O exists once, for both clients):

* ``_errors``: the refusals, both hashring's and redis-py's errors;
* ``_commands``: the COMMAND table and the plan of one command (routing table there);
* ``_server_wide``: where keyless commands go (every node, one node, refused) and why;
* ``_answers``: answers of several nodes combined into one server's, and a failed part's
  error naming its node;
* ``_sort``: SORT's BY/GET patterns, whose keys must share the sorted key's node;
* ``_cross_node``: read-only multi-key commands across nodes computed on the client
  (SUNION ... ZINTER ... LCS), answered in the client's own reply shapes;
  ``_set_algebra`` (sorted-set arithmetic in the server's order) and ``_lcs`` (LCS) do
  their computing;
* ``_channels``: pub/sub channels placed like keys, PUBSUB answers merged (no I/O);
* ``_pubsub``: ``pubsub()`` of both clients, one redis-py PubSub per node, one stream;
* ``_surface``: the rest of redis-py's surface: response callbacks and retries on every
  node, and the names refused with what to use instead;
* ``_routing``: keys to nodes under health, pipelines grouped per node and reassembled,
  sharded SCAN cursors;
* ``_fallback``: reads during a migration (``read_fallback``): which topology's answer
  stands, from each key's presence; ``_pipeline_reads``: a pipeline's reads then (spliced
  in with their EXISTS, settled after it);
* ``_leases``: node membership snapshots and the leases that keep a removed node's client
  open under the commands still using it;
* ``_base``: what both clients share: nodes, placement, health wiring, topology files, the
  routing of one command once its keys are known;
* ``_clients``: connecting to the nodes (sync and asyncio) and asyncio gathering;
* ``_sync`` / ``_async``: the two clients, their I/O only; ``_pipeline`` /
  ``_async_pipeline``: their pipelines (redis-py's, transactions and WATCH included);
  ``_pipeline_surface``: what the pipelines have of redis-py's Pipeline beyond commands
  (Script objects loaded on every node, module accessors refused);
* ``_transaction``: where a transaction (MULTI/EXEC, WATCH) runs: its rules, no I/O;
* ``_sampling``: a sample of live keys for ``hashring report --sample-from``;
* ``_topology_source``: topologies published in a Redis key, and their followers;
* ``_window``: a migration window's moves on one key: a write gated on the old owner by
  the migration's marker, and a pull to the new owner (``MIGRATE``).
"""

from __future__ import annotations

from ._async import AsyncShardedRedis
from ._async_pipeline import AsyncShardedPipeline
from ._errors import CrossShardError, UnsupportedCommandError
from ._leases import NodeRemovedError
from ._pipeline import ShardedPipeline
from ._sync import ShardedRedis
from ._topology_source import DEFAULT_TOPOLOGY_KEY, RedisTopologyFollower, RedisTopologySource
from ._transaction import OwnerEjectedError

__all__ = [
    "DEFAULT_TOPOLOGY_KEY",
    "AsyncShardedPipeline",
    "AsyncShardedRedis",
    "CrossShardError",
    "NodeRemovedError",
    "OwnerEjectedError",
    "RedisTopologyFollower",
    "RedisTopologySource",
    "ShardedPipeline",
    "ShardedRedis",
    "UnsupportedCommandError",
]
