"""Live Redis key migration after a topology change: plan, move (with ``MIGRATE``), verify.

>>> from hashring import load_topology                                  # doctest: +SKIP
>>> from hashring.adapters.migrate import migrate, plan_migration, verify  # doctest: +SKIP
>>> old, new = load_topology("old.toml"), load_topology("new.toml")     # doctest: +SKIP
>>> plan_migration(old, new).pairs          # what would move: {(from, to): keys}  # doctest: +SKIP
>>> result = migrate(old, new)              # move it                  # doctest: +SKIP
>>> verify(old, new).misplaced              # 0 when the job is done   # doctest: +SKIP

What is scanned and what moves. Every node named in either topology is scanned with
``SCAN`` (the union: nodes being removed are drained, nodes being added may hold keys
written by new-topology clients). A key moves when its owner under the NEW topology (its
placement, hash tags honoured, the key's raw bytes hashed) is another node than the one it
was found on. The old topology only contributes nodes to scan, so a re-run after an
interruption finishes the job, and verification is the same computation as the plan.

How keys move. Keys are streamed a ``SCAN COUNT batch`` page at a time (memory holds one
page, never the key space). The misplaced keys of a page are grouped by destination and
sent to their SOURCE server as one ``MIGRATE host port "" db timeout [REPLACE]
[AUTH pw | AUTH2 user pw] KEYS k1 k2 ...`` per destination, all of a page's commands in
one pipeline (one round trip). The source server serialises each key, ``RESTORE``\\ s it on
the destination with its remaining TTL and deletes its own copy only once the destination
acknowledged it: values and TTLs are kept, and a key is never lost, even if this process
is killed (SIGINT, SIGKILL) in the middle. Keys that expired or were deleted since the
``SCAN`` are skipped by the server (``NOKEY``) and counted as ``missing``, not as errors.

Durability of the destinations. A destination acknowledges a ``RESTORE`` once the key is
in its memory; the source then deletes its copy. If the destination keeps no persistence,
a crash or restart of it after that moment loses the key for good. So before anything
moves, :meth:`MigrationSession.migrate` checks every node of the new topology (``INFO
persistence`` and ``INFO replication``, which work where ``CONFIG`` is disabled, plus
``CONFIG GET appendfsync`` when allowed) and counts it as durable when:

* its AOF is on (``aof_enabled:1``, last write ok): Redis writes the AOF before it replies,
  so a killed process loses no acknowledged key; ``appendfsync always`` also survives a
  power loss, ``everysec`` can lose the last second of writes to one (shown in the check);
* or, without AOF, it is a primary with at least one replica online: after every round
  trip that moved keys to it, ``WAIT 1 timeout`` must see a replica acknowledge them
  (else :class:`~hashring.MigrationError`, nothing more moves). A crash before the replica has them
  can still lose that last round trip's keys, and a primary that restarts empty makes its
  replicas empty too unless a replica was promoted first: AOF is the better choice.

Anything else (no AOF and no replica, RDB snapshots only, or a server whose ``INFO`` does
not say) is volatile, and :class:`~hashring.VolatileDestinationError` is raised before any
key moves, unless ``allow_volatile=True`` (right for caches, where a lost key is a miss).

Loss check. The session remembers an 8-byte fingerprint of every key it moved (16 bytes
with its expiry time, for keys with a TTL) per destination. :meth:`MigrationSession.verify`
after :meth:`MigrationSession.migrate` in the same session checks, while it scans, that each
is on its destination. Of those that are not, keys whose TTL ran out are ``expired``; the
others are told apart by what their destination says now against what it said when the
session connected, since a server drops a key only when a client tells it to, when the key
expires, when it evicts it (``maxmemory``) or when it loses its data (restart, failover):

* ``lost`` (per node), on a destination that restarted (its ``run_id`` changed: listed in
  ``restarted``) or evicted keys (its ``INFO stats`` ``evicted_keys`` changed or is not
  reported: listed in ``evicted``);
* ``deleted`` (per node), on a destination that did neither: clients deleted them after
  they moved (an application that goes on writing during the run does), not a loss.

Conflicts: a key that already exists on its destination (written there by clients of the
new topology) is answered ``BUSYKEY`` by the destination; ``MIGRATE`` still moves the rest
of its batch and replies with that error. The engine then looks up which keys of the batch
are still on the source AND on the destination and applies ``on_conflict``:

* ``"keep-destination"`` (default): the destination's value wins; the stale source copy is
  deleted (``UNLINK``), but only after the destination was seen to hold the key;
* ``"replace"``: ``MIGRATE ... REPLACE``: the source's value overwrites the destination's
  (conflicts are counted with one ``EXISTS`` on the destination per destination and batch);
* ``"skip"``: both copies stay; the keys remain misplaced (verification reports them).

Requirements and limits:

* every node must have a ``url``; a node name present in both topologies must have the
  same URL in both; two names may not be the same database of one server;
* ``MIGRATE`` is run by the source server, which connects to the destination itself over
  plain TCP: every node of the new topology must be a ``redis://host:port/db`` URL that is
  reachable from the source servers (``rediss://`` and ``unix://`` cannot be destinations;
  they are refused with :class:`~hashring.ConfigError` before anything moves). The
  destination database is the URL's, credentials in the URL are sent with ``AUTH`` or
  ``AUTH2``;
* URLs are shown redacted (``redact_url``) in every message; passwords never appear.

Cost: O(N) for N keys over all nodes: one ``SCAN`` round trip per page plus one pipelined
round trip per page that has keys to move (the misplaced keys' TTLs ride in it, for
the loss check: one read-only Lua script per destination, or one ``PTTL`` per key on a
source that refuses scripts; plus ``PUBLISH`` + ``WAIT`` to a destination kept durable by
replicas, the ``PUBLISH`` to channel ``hashring:migrate:wait`` only giving ``WAIT`` an
offset);
routing is :meth:`get_node_many` on the page. Memory: O(batch), plus 8 to 16 bytes per
moved key for the loss check (and, while one node is verified, a set of the fingerprints
of the keys moved to it: about 100 bytes per key).
``with_bytes`` adds ``MEMORY USAGE key SAMPLES 0`` for every misplaced key (pipelined, but
the server does the work per key: expect a noticeably slower plan on big key spaces).
``SCAN`` may return a key twice while a node's hash table is resized by concurrent writes;
counts can then be slightly high, moves are not affected (the second ``MIGRATE`` finds
nothing to move).

Errors: :class:`~hashring.MigrationError` (a ``RuntimeError``) and its subclass
:class:`~hashring.VolatileDestinationError` belong to hashring's error tree
(``hashring._errors``) and are re-exported here; bad options raise
:class:`~hashring.InvalidOptionError`, topologies that cannot be migrated between
:class:`~hashring.ConfigError`.

Inside (private modules, by what they hold): ``_results`` (options, :class:`Pair`,
:class:`MigrationPlan`, :class:`MigrationResult`: pure data), ``_connections`` (node URLs
checked, one client per node, redis-py errors made one line without credentials),
``_durability`` (the durability check, ``WAIT``), ``_scan`` (``SCAN`` pages routed, the
plan), ``_move`` (``MIGRATE`` round trips, conflicts, pacing), ``_verify`` (verification and
the loss check), ``_session`` (:class:`MigrationSession` and the one-call API).
"""

from __future__ import annotations

from hashring import MigrationError, VolatileDestinationError

from ._durability import WAIT_CHANNEL, Durability
from ._live_clients import LiveClient, live_clients, wait_for_clients
from ._results import (
    DEFAULT_BATCH,
    DEFAULT_TIMEOUT_MS,
    MIN_BUSY,
    MIN_RATE,
    ON_CONFLICT,
    MigrationPlan,
    MigrationResult,
    OnConflict,
    Pair,
    Progress,
)
from ._session import MigrationSession, migrate, plan_migration, verify

__all__ = [
    "DEFAULT_BATCH",
    "DEFAULT_TIMEOUT_MS",
    "MIN_BUSY",
    "MIN_RATE",
    "ON_CONFLICT",
    "WAIT_CHANNEL",
    "Durability",
    "LiveClient",
    "MigrationError",
    "MigrationPlan",
    "MigrationResult",
    "MigrationSession",
    "OnConflict",
    "Pair",
    "Progress",
    "VolatileDestinationError",
    "live_clients",
    "migrate",
    "plan_migration",
    "verify",
    "wait_for_clients",
]
