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
  (else :class:`MigrationError`, nothing more moves). A crash before the replica has them
  can still lose that last round trip's keys, and a primary that restarts empty makes its
  replicas empty too unless a replica was promoted first: AOF is the better choice.

Anything else (no AOF and no replica, RDB snapshots only, or a server whose ``INFO`` does
not say) is volatile, and :class:`VolatileDestinationError` is raised before any key moves,
unless ``allow_volatile=True`` (right for caches, where a lost key is a miss).

Loss check. The session remembers an 8-byte fingerprint of every key it moved (16 bytes
with its expiry time, for keys with a TTL) per destination. :meth:`MigrationSession.verify`
after :meth:`MigrationSession.migrate` in the same session checks, while it scans, that each
is on its destination; those that are not, other than keys whose TTL ran out, are counted
as ``lost`` (per node, with the nodes that restarted during the session: their ``run_id``
changed). A key a client deleted on its destination during the run is counted too: a loss
report means "look", not always "Redis lost it".

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
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from array import array
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal, cast

import redis
from redis.backoff import NoBackoff
from redis.connection import parse_url
from redis.retry import Retry

from hashring import (
    ConfigError,
    HashRingError,
    InvalidOptionError,
    Placement,
    Topology,
    redact_url,
)

__all__ = [
    "DEFAULT_BATCH",
    "DEFAULT_TIMEOUT_MS",
    "ON_CONFLICT",
    "Durability",
    "MigrationError",
    "MigrationPlan",
    "MigrationResult",
    "MigrationSession",
    "OnConflict",
    "Pair",
    "VolatileDestinationError",
    "migrate",
    "plan_migration",
    "verify",
]

OnConflict = Literal["keep-destination", "replace", "skip"]
ON_CONFLICT: tuple[OnConflict, ...] = ("keep-destination", "replace", "skip")
DEFAULT_BATCH = 1000
DEFAULT_TIMEOUT_MS = 5000
CONNECT_TIMEOUT = 5.0  # seconds to connect to a node before it counts as unreachable
WAIT_CHANNEL = "hashring:migrate:wait"  # PUBLISHed to (no subscriber) so that WAIT has an offset
# The PTTL of every key of a batch in one command: a pipelined PTTL per key costs redis-py
# about 20 us a key, this about 3 (measured on a 1,000-key batch). Read-only.
_PTTL_SCRIPT = "local t = {} for i, k in ipairs(KEYS) do t[i] = redis.call('PTTL', k) end return t"

Pair = tuple[str, str]
"""``(from_node, to_node)``."""

Progress = Callable[[int], object]
"""Called with the number of keys just scanned, after every ``SCAN`` page."""


class MigrationError(HashRingError, RuntimeError):
    """The migration could not be carried out: a node unreachable, ``MIGRATE`` refused by a
    destination (other than for a conflict), a timeout, a replica that did not acknowledge.
    Keys moved so far stay moved: re-run to finish.
    """


class VolatileDestinationError(MigrationError):
    """A destination would hold moved keys in memory only (no AOF, no replica, or its
    persistence cannot be told); raised before any key moves, unless volatile destinations
    are allowed. ``volatile`` lists their :class:`Durability`.
    """

    def __init__(self, message: str, volatile: tuple[Durability, ...]) -> None:
        super().__init__(message)
        self.volatile = volatile


@dataclass(frozen=True)
class Durability:
    """Whether a node keeps what it acknowledged through a crash, and why (see the module).

    ``how`` is ``"aof"``, ``"replicas"`` (durable), ``"none"`` or ``"unknown"`` (volatile);
    ``detail`` says it in words, for people.
    """

    node: str
    how: Literal["aof", "replicas", "none", "unknown"]
    detail: str
    fsync: str | None = None
    """``appendfsync`` with AOF on, when ``CONFIG GET`` is allowed; else None."""
    replicas: int = 0
    """Replicas online (``INFO replication``)."""

    @property
    def durable(self) -> bool:
        """True for ``"aof"`` and ``"replicas"``."""
        return self.how in ("aof", "replicas")


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class MigrationPlan:
    """What a scan found: keys per ``(from, to)`` pair that are not on their new owner.

    Returned by :func:`plan_migration` (what would move) and :func:`verify` (what is left).
    """

    scanned: int
    """Keys scanned over all nodes."""
    in_place: int
    """Keys already on their owner under the new topology."""
    pairs: dict[Pair, int]
    """Misplaced keys per ``(node found on, owner under the new topology)``, sorted."""
    bytes: dict[Pair, int] | None = None
    """``MEMORY USAGE`` totals per pair when asked for (``with_bytes``), else None."""
    seconds: float = 0.0
    """Wall time of the scan."""
    checked: int = 0
    """Verification after a migration in the same session: keys moved by it that were
    looked for on their destination (0 otherwise)."""
    expired: int = 0
    """Of ``checked``, keys not found whose TTL had run out (not a loss)."""
    lost: dict[str, int] = field(default_factory=dict)
    """Of ``checked``, keys not on their destination (TTL not run out), per destination."""
    restarted: tuple[str, ...] = ()
    """Nodes whose ``run_id`` changed since the session connected (they restarted)."""

    @property
    def misplaced(self) -> int:
        """Keys not on their owner (the plan's keys to move; 0 when the job is done)."""
        return sum(self.pairs.values())

    @property
    def lost_total(self) -> int:
        """Moved keys missing from their destination, over all destinations."""
        return sum(self.lost.values())

    @property
    def keys_per_second(self) -> float:
        """Keys scanned per second."""
        return self.scanned / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class MigrationResult:
    """What :func:`migrate` did.

    Accounting, per pair and in total: ``to_move = moved + missing + failed + conflicts``
    with ``keep-destination`` and ``skip``; with ``replace`` conflicts are overwritten and
    so are part of ``moved``: ``to_move = moved + missing + failed``.
    """

    on_conflict: OnConflict
    scanned: int
    """Keys scanned over all nodes (a key moved into a node whose scan had not reached it
    yet is seen again there, in place: nodes new to the topology are scanned first)."""
    in_place: int
    """Keys already on their owner under the new topology."""
    planned: dict[Pair, int]
    """Misplaced keys found per pair (the keys the pass tried to move)."""
    moved: dict[Pair, int]
    """Keys moved per pair (now on their owner, source copy gone)."""
    conflicts: dict[Pair, int]
    """Keys found on both source and destination, per pair (policy applied)."""
    missing: int
    """Keys that expired or were deleted between ``SCAN`` and ``MIGRATE`` (not an error)."""
    failed: int = 0
    """Keys a ``MIGRATE`` reported an error for that are on the source only (still
    misplaced; a re-run retries them)."""
    bytes: dict[Pair, int] | None = None
    """``MEMORY USAGE`` totals of the moved keys per pair, when asked for."""
    seconds: float = 0.0
    """Wall time of the pass."""

    @property
    def to_move(self) -> int:
        """Misplaced keys found by the pass."""
        return sum(self.planned.values())

    @property
    def moved_total(self) -> int:
        """Keys moved over all pairs."""
        return sum(self.moved.values())

    @property
    def conflicts_total(self) -> int:
        """Conflicts over all pairs."""
        return sum(self.conflicts.values())

    @property
    def keys_per_second(self) -> float:
        """Keys moved per second of the pass (scanning included)."""
        return self.moved_total / self.seconds if self.seconds > 0 else 0.0


# --------------------------------------------------------------------------- nodes


@dataclass(frozen=True)
class _Node:
    """A node's connection facts, parsed from its URL."""

    name: str
    url: str = field(repr=False)
    options: dict[str, Any] = field(repr=False)
    is_destination: bool

    @property
    def shown(self) -> str:
        return redact_url(self.url)

    @property
    def host(self) -> str:
        return str(self.options.get("host", "localhost"))

    @property
    def port(self) -> int:
        return int(self.options.get("port", 6379))

    @property
    def db(self) -> int:
        return int(self.options.get("db", 0))

    def secrets(self) -> list[str]:
        password = self.options.get("password")
        return [str(password)] if password else []

    def migrate_auth(self) -> list[str]:
        """The ``AUTH`` / ``AUTH2`` arguments of ``MIGRATE`` for this destination."""
        password = self.options.get("password")
        if not password:
            return []
        username = self.options.get("username")
        if username:
            return ["AUTH2", str(username), str(password)]
        return ["AUTH", str(password)]


def _nodes(old: Topology, new: Topology) -> dict[str, _Node]:
    """The union of both topologies' nodes, checked. Raises ConfigError."""
    urls: dict[str, str] = {}
    for topology in (old, new):
        for name, spec in topology.nodes.items():
            if spec.url is None:
                raise ConfigError(
                    f"{topology.source}: nodes.{name}.url is required by migrate: "
                    "give every node the URL of its Redis server"
                )
            known = urls.setdefault(name, spec.url)
            if known != spec.url:
                raise ConfigError(
                    f"node {name!r} has a different URL in {old.source} ({redact_url(known)}) "
                    f"and in {new.source} ({redact_url(spec.url)}): a node name must mean the "
                    "same server in both topologies"
                )
    nodes: dict[str, _Node] = {}
    for name in sorted(urls):
        url = urls[name]
        is_destination = name in new.nodes
        if is_destination and not url.lower().startswith("redis://"):
            raise ConfigError(
                f"{new.source}: nodes.{name}.url = {redact_url(url)!r}: migrate can only move "
                "keys to redis://host:port/db nodes: MIGRATE runs on the source server, which "
                "connects to the destination over plain TCP (no TLS, no unix socket)"
            )
        try:
            options = dict(parse_url(url))  # type: ignore[no-untyped-call]
        except ValueError as exc:
            raise ConfigError(f"node {name!r}: bad URL {redact_url(url)!r}: {exc}") from None
        nodes[name] = _Node(name, url, options, is_destination)
    return nodes


# --------------------------------------------------------------------------- helpers


class _TokenBucket:
    """``take(n)`` waits so that on average at most ``rate`` keys pass per second.

    The bucket holds at most a tenth of a second of keys; a take larger than what is in the
    bucket goes through at once and the debt is paid by sleeping, so any batch size works.
    """

    def __init__(self, rate: float | None) -> None:
        self._rate = rate
        self._capacity = 0.0 if rate is None else max(1.0, rate / 10)
        self._tokens = self._capacity
        self._last = time.monotonic()

    def take(self, n: int) -> None:
        if self._rate is None:
            return
        now = time.monotonic()
        self._tokens = min(self._capacity, self._tokens + (now - self._last) * self._rate)
        self._last = now
        self._tokens -= n
        if self._tokens < 0:
            time.sleep(-self._tokens / self._rate)


def _chunks(keys: list[bytes], size: int) -> Iterator[list[bytes]]:
    for start in range(0, len(keys), size):
        yield keys[start : start + size]


def _sorted_pairs(counts: Mapping[Pair, int]) -> dict[Pair, int]:
    return {pair: counts[pair] for pair in sorted(counts)}


@dataclass
class _Tally:
    planned: dict[Pair, int] = field(default_factory=dict)
    moved: dict[Pair, int] = field(default_factory=dict)
    conflicts: dict[Pair, int] = field(default_factory=dict)
    bytes: dict[Pair, int] = field(default_factory=dict)
    missing: int = 0
    failed: int = 0

    @staticmethod
    def add(counts: dict[Pair, int], pair: Pair, n: int) -> None:
        if n:
            counts[pair] = counts.get(pair, 0) + n


def _fingerprint(key: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "little")


class _Arrivals:
    """Fingerprints of the keys moved to each destination, to check later that they are there.

    8 bytes per key without TTL; 8 + 8 (its expiry, on ``time.monotonic``'s clock, never
    later than the real one) per key with a TTL.
    """

    def __init__(self) -> None:
        self._plain: dict[str, array[int]] = {}
        self._ttl: dict[str, tuple[array[int], array[float]]] = {}

    def add(self, node: str, key: bytes, pttl: int, sent_at: float) -> None:
        if pttl < 0:
            self._plain.setdefault(node, array("Q")).append(_fingerprint(key))
        else:
            fps, deadlines = self._ttl.setdefault(node, (array("Q"), array("d")))
            fps.append(_fingerprint(key))
            deadlines.append(sent_at + pttl / 1000)

    def count(self, node: str | None = None) -> int:
        nodes = set(self._plain) | set(self._ttl) if node is None else {node}
        return sum(
            len(self._plain.get(name, ())) + len(self._ttl.get(name, ((), ()))[0]) for name in nodes
        )

    def nodes(self) -> list[str]:
        return sorted(set(self._plain) | set(self._ttl))

    def pending(self, node: str) -> tuple[set[int], dict[int, float]]:
        """The fingerprints to look for on ``node``: (without TTL, {with TTL: expiry})."""
        fps, deadlines = self._ttl.get(node, (array("Q"), array("d")))
        return set(self._plain.get(node, ())), dict(zip(fps, deadlines, strict=True))


def _classify(
    name: str,
    persistence: Mapping[str, Any] | None,
    replication: Mapping[str, Any] | None,
    fsync: str | None,
    refused: str | None,
) -> Durability:
    """A node's :class:`Durability` from its ``INFO persistence`` / ``INFO replication``."""
    if persistence is None or "aof_enabled" not in persistence:
        why = refused or "INFO persistence has no aof_enabled field"
        return Durability(name, "unknown", f"cannot tell whether it persists ({why})")
    aof_ok = str(persistence.get("aof_last_write_status", "ok")) == "ok"
    if _int(persistence.get("aof_enabled")) == 1 and aof_ok:
        policy = fsync or "unknown (CONFIG refused)"
        return Durability(name, "aof", f"AOF on, appendfsync {policy}", fsync=fsync)
    replicas = 0
    if replication is not None and replication.get("role") == "master":
        replicas = sum(
            1
            for field_name, value in replication.items()
            if field_name.startswith("slave")
            and field_name[5:].isdigit()
            and isinstance(value, dict)
            and value.get("state") == "online"
        )
    if replicas:
        return Durability(
            name, "replicas", f"no AOF, {replicas} replica(s) online: WAIT after each batch",
            replicas=replicas,
        )  # fmt: skip
    why = "AOF on but its last write failed, no replica" if not aof_ok else "no AOF and no replica"
    return Durability(name, "none", why)


# --------------------------------------------------------------------------- the session


class MigrationSession:
    """Connections to every node of both topologies, checked, for plan / migrate / verify.

    Opening one checks the topologies, connects to every node (``INFO server``: also tells
    which names share a server) and keeps the connections (one pool per node, keys as bytes,
    no retries: a failure surfaces at once and a re-run picks up). Use it as a context
    manager, or :meth:`close` it. Not thread-safe: one operation at a time.

    Args:
        old: the topology clients used so far (its nodes are scanned and drained).
        new: the topology to move keys to (its placement, built from scratch as a client
            loading the file would, decides every key's owner).
        timeout_ms: ``MIGRATE``'s timeout: the longest the source may wait on the
            destination at any moment of a transfer (milliseconds).

    Raises:
        ConfigError: a node without URL, a name with two URLs, a destination that is not
            ``redis://``, two names for one database, or two databases of one server where
            one is a destination.
        MigrationError: a node is unreachable or refuses the connection's credentials (the
            first one, URL redacted).
        InvalidOptionError: ``timeout_ms`` is not an int >= 1.
    """

    def __init__(
        self, old: Topology, new: Topology, *, timeout_ms: int = DEFAULT_TIMEOUT_MS
    ) -> None:
        if isinstance(timeout_ms, bool) or not isinstance(timeout_ms, int) or timeout_ms < 1:
            raise _option_error(f"timeout_ms must be an int >= 1, got {timeout_ms!r}")
        self._nodes = _nodes(old, new)
        self._old_names = frozenset(old.nodes)
        self._placement: Placement = new.placement()
        self._timeout_ms = timeout_ms
        self._secrets = [secret for node in self._nodes.values() for secret in node.secrets()]
        self._clients: dict[str, redis.Redis] = {}
        self._run_ids: dict[str, str] = {}
        self._arrivals = _Arrivals()
        self._wait_on: frozenset[str] = frozenset()
        self._scripted: frozenset[str] = frozenset()  # sources that run _PTTL_SCRIPT
        try:
            self._connect()
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------------ lifecycle

    def _connect(self) -> None:
        socket_timeout = max(60.0, 10 * self._timeout_ms / 1000)
        servers: dict[tuple[str, int], str] = {}
        run_ids: dict[str, tuple[str, bool]] = {}
        for name, node in self._nodes.items():
            pool = redis.ConnectionPool.from_url(
                node.url,
                socket_timeout=socket_timeout,
                socket_connect_timeout=CONNECT_TIMEOUT,
                retry=Retry(NoBackoff(), 0),
            )
            pool.connection_kwargs["decode_responses"] = False  # keys are bytes, always
            client = redis.Redis(connection_pool=pool)
            client.auto_close_connection_pool = True
            self._clients[name] = client
            with self._talking_to(name, "cannot connect to"):
                info = client.info("server")
            run_id = str(info.get("run_id", name))
            self._run_ids[name] = run_id
            same = servers.setdefault((run_id, node.db), name)
            if same != name:
                raise ConfigError(
                    f"nodes {same!r} and {name!r} are the same database of one redis-server "
                    f"({self._nodes[same].shown} and {node.shown}): give each node its own"
                )
            other = run_ids.setdefault(run_id, (name, node.is_destination))
            if other[0] != name and (other[1] or node.is_destination):
                raise ConfigError(
                    f"nodes {other[0]!r} and {name!r} are databases of one redis-server "
                    f"({self._nodes[other[0]].shown} and {node.shown}): MIGRATE cannot move "
                    "keys between databases of the same server"
                )

    def close(self) -> None:
        """Close every connection (idempotent)."""
        for client in self._clients.values():
            with contextlib.suppress(Exception):
                client.close()
        self._clients = {}

    def __enter__(self) -> MigrationSession:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # ------------------------------------------------------------------ facts

    @property
    def nodes(self) -> dict[str, str]:
        """Node name -> redacted URL, for every node scanned (both topologies), sorted."""
        return {name: node.shown for name, node in self._nodes.items()}

    def dbsize(self) -> int:
        """Keys over all nodes now (``DBSIZE`` of each): a progress bar's total.

        Raises:
            MigrationError: a node is unreachable.
        """
        total = 0
        for name, client in self._clients.items():
            with self._talking_to(name):
                total += int(client.dbsize())
        return total

    def durability(self) -> dict[str, Durability]:
        """Every node of the new topology (a possible destination): does it keep what it
        acknowledges through a crash? (See the module for the rule.) Moves nothing.

        Two or three round trips per node (``INFO persistence``, ``INFO replication``,
        ``CONFIG GET appendfsync`` when AOF is on; a refused one makes the answer
        ``"unknown"``, never an error).

        Raises:
            MigrationError: a node is unreachable.
        """
        found: dict[str, Durability] = {}
        for name, node in self._nodes.items():
            if not node.is_destination:
                continue
            client = self._clients[name]
            persistence = replication = None
            fsync = refused = None
            with self._talking_to(name):
                try:
                    persistence = client.info("persistence")
                    replication = client.info("replication")
                except redis.ResponseError as exc:
                    refused = f"INFO refused: {self._scrub(str(exc))}"
                if persistence is not None and _int(persistence.get("aof_enabled")) == 1:
                    try:
                        answer = cast(dict[Any, Any], client.config_get("appendfsync"))
                    except redis.ResponseError:
                        answer = {}
                    value = answer.get(b"appendfsync", answer.get("appendfsync"))
                    if isinstance(value, bytes):
                        value = value.decode("ascii", "replace")
                    fsync = value if isinstance(value, str) else None
            found[name] = _classify(name, persistence, replication, fsync, refused)
        return found

    # ------------------------------------------------------------------ operations

    def plan(
        self,
        *,
        batch: int = DEFAULT_BATCH,
        with_bytes: bool = False,
        progress: Progress | None = None,
    ) -> MigrationPlan:
        """Scan every node and count the keys that are not on their new owner, per pair.

        Moves nothing. ``with_bytes`` adds pipelined ``MEMORY USAGE key SAMPLES 0`` for each
        misplaced key (a share of a round trip and the server's work per key). O(keys).

        Raises:
            MigrationError: a node is unreachable.
            InvalidOptionError: ``batch`` is not an int >= 1.
        """
        _check_batch(batch)
        start = time.perf_counter()
        pairs: dict[Pair, int] = {}
        sizes: dict[Pair, int] | None = {} if with_bytes else None
        scanned = in_place = 0
        for source, keys, groups in self._pages(batch):
            scanned += len(keys)
            moving = 0
            for owner, group in groups.items():
                _Tally.add(pairs, (source, owner), len(group))
                moving += len(group)
            in_place += len(keys) - moving
            if sizes is not None and groups:
                with self._talking_to(source):
                    pipe = self._clients[source].pipeline(transaction=False)
                    for group in groups.values():
                        for key in group:
                            pipe.memory_usage(key, samples=0)
                    usage = pipe.execute(raise_on_error=False)
                at = 0
                for owner, group in groups.items():
                    total = sum(_int(u) for u in usage[at : at + len(group)])
                    at += len(group)
                    sizes[(source, owner)] = sizes.get((source, owner), 0) + total
            if progress is not None:
                progress(len(keys))
        return MigrationPlan(
            scanned=scanned,
            in_place=in_place,
            pairs=_sorted_pairs(pairs),
            bytes=None if sizes is None else _sorted_pairs(sizes),
            seconds=time.perf_counter() - start,
        )

    def verify(
        self, *, batch: int = DEFAULT_BATCH, progress: Progress | None = None
    ) -> MigrationPlan:
        """The keys still misplaced, and the moved keys that are gone from their destination.

        Scans every node as :meth:`plan` does (``misplaced`` is 0 when the job is done).
        After :meth:`migrate` in this session it also looks, during the same scan, for every
        key that migration moved on its destination: ``checked`` keys, ``expired`` (gone,
        TTL run out: not a loss), ``lost`` per destination (gone otherwise: a restart of a
        volatile destination, a client's delete, an eviction). ``restarted`` names the nodes
        whose ``run_id`` changed since the session connected. The job is done when
        ``misplaced == 0 and lost_total == 0``. O(keys) time; memory: a set of the moved
        keys' fingerprints of one destination at a time.

        Raises:
            MigrationError: a node is unreachable.
        """
        _check_batch(batch)
        start = time.perf_counter()
        pairs: dict[Pair, int] = {}
        scanned = in_place = 0
        arrived = set(self._arrivals.nodes())
        lost: dict[str, int] = {}
        expired = 0

        def settle(node: str, plain: set[int], with_ttl: dict[int, float]) -> None:
            """Count the fingerprints not seen on ``node``: expired, or lost."""
            nonlocal expired
            now = time.monotonic()
            gone = len(plain) + sum(1 for deadline in with_ttl.values() if deadline > now)
            expired += len(plain) + len(with_ttl) - gone
            if gone:
                lost[node] = gone

        current: tuple[str, set[int], dict[int, float]] | None = None
        for source, keys, groups in self._pages(batch):
            if current is not None and current[0] != source:
                settle(*current)
                current = None
            if current is None and source in arrived:
                arrived.discard(source)
                current = (source, *self._arrivals.pending(source))
            if current is not None:
                _, plain, with_ttl = current
                for key in keys:
                    fp = _fingerprint(key)
                    plain.discard(fp)
                    with_ttl.pop(fp, None)
            scanned += len(keys)
            moving = 0
            for owner, group in groups.items():
                _Tally.add(pairs, (source, owner), len(group))
                moving += len(group)
            in_place += len(keys) - moving
            if progress is not None:
                progress(len(keys))
        if current is not None:
            settle(*current)
        for node in sorted(arrived):  # destinations whose scan found no key at all
            settle(node, *self._arrivals.pending(node))
        restarted = []
        for name, client in self._clients.items():
            with self._talking_to(name):
                run_id = str(client.info("server").get("run_id", name))
            if run_id != self._run_ids.get(name, run_id):
                restarted.append(name)
        return MigrationPlan(
            scanned=scanned,
            in_place=in_place,
            pairs=_sorted_pairs(pairs),
            seconds=time.perf_counter() - start,
            checked=self._arrivals.count(),
            expired=expired,
            lost={node: lost[node] for node in sorted(lost)},
            restarted=tuple(restarted),
        )

    def migrate(
        self,
        *,
        batch: int = DEFAULT_BATCH,
        rate: float | None = None,
        on_conflict: OnConflict = "keep-destination",
        with_bytes: bool = False,
        progress: Progress | None = None,
        allow_volatile: bool = False,
    ) -> MigrationResult:
        """Move every misplaced key to its owner under the new topology.

        First checks :meth:`durability` of every node of the new topology and refuses
        volatile ones (before anything moves) unless ``allow_volatile``.

        One ``SCAN`` page at a time per node; its misplaced keys go out as one ``MIGRATE``
        per destination, pipelined in one round trip (with ``rate``, one ``MIGRATE`` of at
        most ``rate / 10`` keys per round trip, paced by a token bucket so that at most
        ``rate`` keys per second are sent on average). Safe to interrupt at any point and
        to re-run: the server deletes a source copy only after the destination acknowledged
        it, and a re-run moves what is left. Counts moved, conflicting and missing keys.
        O(keys) time, O(batch) memory.

        Args:
            batch: ``SCAN COUNT`` and the most keys in one ``MIGRATE``.
            rate: the most keys sent to ``MIGRATE`` per second (None: unlimited).
            on_conflict: ``"keep-destination"``, ``"replace"`` or ``"skip"`` (see the module).
            with_bytes: also sum ``MEMORY USAGE`` of the moved keys per pair.
            progress: called with the number of keys scanned after every page.
            allow_volatile: move keys to destinations that keep them in memory only (no
                AOF, no replica, or persistence unknown): right for caches.

        Raises:
            VolatileDestinationError: a destination is volatile and ``allow_volatile`` is
                False (nothing moved).
            MigrationError: a node is unreachable, a destination refused ``MIGRATE`` for
                another reason than a conflict (out of memory, authentication, timeout), or
                no replica of a replica-backed destination acknowledged a batch: keys moved
                so far stay moved; re-run to finish.
            InvalidOptionError: a bad ``batch``, ``rate`` or ``on_conflict``.
        """
        _check_batch(batch)
        if rate is not None and (
            isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 < rate < 1e12
        ):
            raise _option_error(f"rate must be a positive number of keys per second, got {rate!r}")
        if on_conflict not in ON_CONFLICT:
            raise _option_error(
                f"on_conflict must be one of {', '.join(ON_CONFLICT)}, got {on_conflict!r}"
            )
        durability = self.durability()
        volatile = tuple(d for d in durability.values() if not d.durable)
        if volatile and not allow_volatile:
            raise VolatileDestinationError(
                "refusing to move keys to volatile destinations (a crash or restart would "
                "lose the keys moved there, after their source copies are deleted): "
                + "; ".join(f"{d.node} ({self._nodes[d.node].shown}): {d.detail}" for d in volatile)
                + ": turn on appendonly (appendfsync always) or attach a replica, or allow "
                "volatile destinations (a cache)",
                volatile,
            )
        self._wait_on = frozenset(name for name, d in durability.items() if d.how == "replicas")
        scripted = set()
        for name, client in self._clients.items():
            with self._talking_to(name):
                try:
                    client.eval("return 1", 0)
                except redis.ResponseError:  # scripting off or not allowed: PTTL per key
                    continue
            scripted.add(name)
        self._scripted = frozenset(scripted)
        try:
            return self._migrate(batch, rate, on_conflict, with_bytes, progress)
        except MigrationError as exc:
            at_risk = {d.node: self._arrivals.count(d.node) for d in volatile}
            at_risk = {name: n for name, n in at_risk.items() if n}
            if not at_risk:
                raise
            risk = ", ".join(f"{n:,} to {name}" for name, n in sorted(at_risk.items()))
            raise MigrationError(
                f"{exc}; keys moved so far to volatile destinations ({risk}) are lost if "
                "those restarted"
            ) from exc.__cause__

    def _migrate(
        self,
        batch: int,
        rate: float | None,
        on_conflict: OnConflict,
        with_bytes: bool,
        progress: Progress | None,
    ) -> MigrationResult:
        start = time.perf_counter()
        tally = _Tally()
        bucket = _TokenBucket(rate)
        per_send = batch if rate is None else max(1, min(batch, int(rate / 10)))
        scanned = in_place = 0
        for source, keys, groups in self._pages(batch):
            scanned += len(keys)
            moving = sum(len(group) for group in groups.values())
            in_place += len(keys) - moving
            for owner, group in groups.items():
                _Tally.add(tally.planned, (source, owner), len(group))
            if rate is None:
                sends = [list(groups.items())] if groups else []
            else:
                sends = [
                    [(owner, chunk)]
                    for owner, group in groups.items()
                    for chunk in _chunks(group, per_send)
                ]
            for send in sends:
                bucket.take(sum(len(chunk) for _, chunk in send))
                self._send(source, send, on_conflict, with_bytes, tally)
            if progress is not None:
                progress(len(keys))
        return MigrationResult(
            on_conflict=on_conflict,
            scanned=scanned,
            in_place=in_place,
            planned=_sorted_pairs(tally.planned),
            moved=_sorted_pairs(tally.moved),
            conflicts=_sorted_pairs(tally.conflicts),
            missing=tally.missing,
            failed=tally.failed,
            bytes=_sorted_pairs(tally.bytes) if with_bytes else None,
            seconds=time.perf_counter() - start,
        )

    # ------------------------------------------------------------------ internals

    def _pages(self, batch: int) -> Iterator[tuple[str, list[bytes], dict[str, list[bytes]]]]:
        """``(node, keys of one SCAN page, {owner: misplaced keys})`` over every node."""
        get_node_many = self._placement.get_node_many
        # Nodes new to the topology first: they only gain keys, so keys moved into them are
        # not scanned a second time (a reweight can still make a node scan a key it just got).
        order = sorted(self._clients, key=lambda name: (name in self._old_names, name))
        for source in order:
            client = self._clients[source]
            cursor = 0
            while True:
                with self._talking_to(source):
                    cursor, keys = cast(
                        tuple[int, list[bytes]], client.scan(cursor=cursor, count=batch)
                    )
                if keys:
                    groups: dict[str, list[bytes]] = {}
                    for key, owner in zip(keys, get_node_many(keys), strict=True):
                        if owner != source:
                            groups.setdefault(owner, []).append(key)
                    yield source, keys, groups
                if cursor == 0:
                    break

    def _send(
        self,
        source: str,
        send: list[tuple[str, list[bytes]]],
        on_conflict: OnConflict,
        with_bytes: bool,
        tally: _Tally,
    ) -> None:
        """One round trip to ``source``: per destination, [MEMORY USAGE...], EXISTS, MIGRATE."""
        replace = on_conflict == "replace"
        if replace:
            for owner, keys in send:
                with self._talking_to(owner):
                    busy = int(self._clients[owner].exists(*keys))
                _Tally.add(tally.conflicts, (source, owner), busy)
        pipe = self._clients[source].pipeline(transaction=False)
        for owner, keys in send:
            target = self._nodes[owner]
            if with_bytes:
                for key in keys:
                    pipe.memory_usage(key, samples=0)
            if source in self._scripted:
                pipe.eval(_PTTL_SCRIPT, len(keys), *keys)
            else:
                for key in keys:
                    pipe.pttl(key)
            pipe.execute_command(  # type: ignore[no-untyped-call]
                "MIGRATE", target.host, target.port, "", target.db, self._timeout_ms,
                *(["REPLACE"] if replace else []), *target.migrate_auth(), "KEYS", *keys,
            )  # fmt: skip
        sent_at = time.monotonic()
        with self._talking_to(source):
            replies = pipe.execute(raise_on_error=False)
        at = 0
        arrived: set[str] = set()
        failure: MigrationError | None = None
        read_all = False
        try:  # every reply is read, so that each destination that took keys is known
            for owner, keys in send:
                pair = (source, owner)
                usage = replies[at : at + len(keys)] if with_bytes else []
                at += len(usage)
                if source in self._scripted:
                    found = replies[at]
                    if not isinstance(found, list) or len(found) != len(keys):
                        raise MigrationError(
                            f"node {source!r} ({self._nodes[source].shown}) refused the PTTL "
                            f"script ({self._scrub(str(found))}) after accepting it: its keys "
                            "moved in this round trip are not checked; re-run to finish"
                        )
                    answer, at = replies[at + 1], at + 2
                else:
                    found, answer = replies[at : at + len(keys)], replies[at + len(keys)]
                    at += len(keys) + 1
                ttls = [_int(ttl, -2) for ttl in found]
                existed = sum(1 for ttl in ttls if ttl != -2)
                tally.missing += len(keys) - existed
                if not isinstance(answer, Exception):  # OK, or NOKEY when none was left
                    moved = existed if answer == b"OK" else 0
                    tally.missing += existed - moved
                    _Tally.add(tally.moved, pair, moved)
                    if moved:
                        arrived.add(owner)
                        for key, ttl in zip(keys, ttls, strict=True):
                            if ttl != -2:
                                self._arrivals.add(owner, key, ttl, sent_at)
                    if with_bytes:
                        _Tally.add(tally.bytes, pair, sum(_int(u) for u in usage))
                    continue
                left = self._resolve(source, owner, keys, ttls, sent_at, on_conflict, tally)
                if len(left) < existed:
                    arrived.add(owner)
                if with_bytes:
                    sizes = (_int(u) for key, u in zip(keys, usage, strict=True) if key not in left)
                    _Tally.add(tally.bytes, pair, sum(sizes))
                message = self._scrub(str(answer))
                if "BUSYKEY" not in message and failure is None:
                    failure = MigrationError(  # raised once every reply is read
                        f"MIGRATE {source} -> {owner} ({target_address(self._nodes[owner])}) "
                        f"failed: {message}; keys moved so far stay moved, re-run to finish"
                    )
            read_all = True
        finally:  # a destination that took keys is waited for, whatever failed meanwhile
            # (with a reply left unread, any destination of this round trip may have)
            took = arrived if read_all else {owner for owner, _ in send}
            for owner in sorted(took & self._wait_on):
                self._wait_for_replica(owner)
        if failure is not None:
            raise failure

    def _wait_for_replica(self, owner: str) -> None:
        """``WAIT 1 timeout`` on ``owner`` after keys arrived there; raise if no replica has
        them. A ``PUBLISH`` on the same connection first gives ``WAIT`` the offset to wait
        for: the primary's offset after the ``RESTORE``\\ s the source just sent it."""
        with self._talking_to(owner):
            pipe = self._clients[owner].pipeline(transaction=False)
            pipe.publish(WAIT_CHANNEL, b"")
            pipe.execute_command("WAIT", 1, self._timeout_ms)  # type: ignore[no-untyped-call]
            acked = _int(pipe.execute()[1])
        if acked < 1:
            raise MigrationError(
                f"no replica of node {owner!r} ({self._nodes[owner].shown}) acknowledged the "
                f"keys just moved there within {self._timeout_ms} ms (WAIT): they are in its "
                "memory only; stopped: check its replicas, then re-run"
            )

    def _resolve(
        self,
        source: str,
        owner: str,
        keys: list[bytes],
        ttls: list[int],
        sent_at: float,
        on_conflict: OnConflict,
        tally: _Tally,
    ) -> set[bytes]:
        """After a ``MIGRATE`` error: find the keys left on the source, apply the conflict
        policy to those the destination holds too, count. Returns the keys left."""
        pair = (source, owner)
        existed = sum(1 for ttl in ttls if ttl != -2)
        with self._talking_to(source):
            pipe = self._clients[source].pipeline(transaction=False)
            for key in keys:
                pipe.exists(key)
            on_source = pipe.execute()
        left = [key for key, there in zip(keys, on_source, strict=True) if there]
        _Tally.add(tally.moved, pair, max(0, existed - len(left)))
        staying = set(left)
        for key, ttl in zip(keys, ttls, strict=True):
            if ttl != -2 and key not in staying:
                self._arrivals.add(owner, key, ttl, sent_at)
        if not left:
            return set()
        with self._talking_to(owner):
            pipe = self._clients[owner].pipeline(transaction=False)
            for key in left:
                pipe.exists(key)
            on_destination = pipe.execute()
        busy = [key for key, there in zip(left, on_destination, strict=True) if there]
        tally.failed += len(left) - len(busy)
        if on_conflict == "replace":
            tally.failed += len(busy)  # not a conflict: REPLACE was asked and did not happen
            return set(left)
        _Tally.add(tally.conflicts, pair, len(busy))
        if busy and on_conflict == "keep-destination":
            if owner in self._wait_on:  # the copies kept must be durable before these go
                self._wait_for_replica(owner)
            with self._talking_to(source):
                self._clients[source].unlink(*busy)
        return set(left)

    @contextlib.contextmanager
    def _talking_to(self, name: str, what: str = "lost the connection to") -> Iterator[None]:
        """Turn redis-py errors about node ``name`` into a one-line MigrationError."""
        try:
            yield
        except redis.AuthenticationError as exc:
            raise self._error(f"authentication failed on node {name!r}", name, exc) from (
                self._safe(exc)
            )
        except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
            raise self._error(f"{what} node {name!r}", name, exc) from self._safe(exc)
        except redis.ResponseError as exc:
            raise self._error(f"node {name!r} refused a command", name, exc) from self._safe(exc)

    def _error(self, what: str, name: str, exc: BaseException) -> MigrationError:
        reason = self._scrub(str(exc)) or type(exc).__name__
        return MigrationError(f"{what} ({self._nodes[name].shown}): {reason}")

    def _safe(self, exc: BaseException) -> BaseException | None:
        """``exc`` if no credential shows in it (kept as the cause, for debugging), else None."""
        shown = f"{exc}{exc.args!r}"
        return None if any(secret in shown for secret in self._secrets) else exc

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text


def target_address(node: _Node) -> str:
    """``host:port/db`` the source servers connect to for ``node`` (no credentials)."""
    return f"{node.host}:{node.port}/{node.db}"


def _int(value: object, default: int = 0) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _check_batch(batch: int) -> None:
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise _option_error(f"batch must be an int >= 1, got {batch!r}")


def _option_error(message: str) -> HashRingError:
    return InvalidOptionError(message)


# --------------------------------------------------------------------------- one-call API


def plan_migration(
    old: Topology,
    new: Topology,
    *,
    batch: int = DEFAULT_BATCH,
    with_bytes: bool = False,
    progress: Progress | None = None,
) -> MigrationPlan:
    """What :func:`migrate` would move: misplaced keys per ``(from, to)`` pair. Moves nothing.

    Opens a :class:`MigrationSession` (see it for the checks), runs
    :meth:`MigrationSession.plan` and closes it. O(keys) time, O(batch) memory.

    Raises:
        ConfigError: the topologies cannot be migrated between (see :class:`MigrationSession`).
        MigrationError: a node is unreachable.
    """
    with MigrationSession(old, new) as session:
        return session.plan(batch=batch, with_bytes=with_bytes, progress=progress)


def migrate(
    old: Topology,
    new: Topology,
    *,
    batch: int = DEFAULT_BATCH,
    rate: float | None = None,
    on_conflict: OnConflict = "keep-destination",
    timeout_ms: int = DEFAULT_TIMEOUT_MS,
    with_bytes: bool = False,
    progress: Progress | None = None,
    allow_volatile: bool = False,
) -> MigrationResult:
    """Move every key that is not on its owner under ``new`` to that owner (no verification:
    call :func:`verify` after it, which then checks locations only; for the loss check run
    :meth:`MigrationSession.migrate` then :meth:`MigrationSession.verify` in one session).
    See :meth:`MigrationSession.migrate`.

    Raises:
        ConfigError: the topologies cannot be migrated between (see :class:`MigrationSession`).
        VolatileDestinationError: a destination keeps no persistence and ``allow_volatile``
            is False (nothing moved).
        MigrationError: a node is unreachable or a destination refused ``MIGRATE``.
    """
    with MigrationSession(old, new, timeout_ms=timeout_ms) as session:
        return session.migrate(
            batch=batch,
            rate=rate,
            on_conflict=on_conflict,
            with_bytes=with_bytes,
            progress=progress,
            allow_volatile=allow_volatile,
        )


def verify(
    old: Topology,
    new: Topology,
    *,
    batch: int = DEFAULT_BATCH,
    progress: Progress | None = None,
) -> MigrationPlan:
    """The keys still misplaced after a migration (``.misplaced`` is 0 when it is complete).

    Raises:
        ConfigError: the topologies cannot be migrated between (see :class:`MigrationSession`).
        MigrationError: a node is unreachable.
    """
    with MigrationSession(old, new) as session:
        return session.verify(batch=batch, progress=progress)
