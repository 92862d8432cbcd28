"""Topology files: one TOML file describing nodes, weights, URLs and the algorithm.

::

    [placement]
    algorithm = "ring"        # ring | maglev | rendezvous | jump   (default "ring")
    hash = "mmh3"             # mmh3 | ketama                       (default "mmh3")
    vnodes = 160              # ring only
    table_size = 65537        # maglev only (a prime)
    hash_tags = true          # default true
    hash_key_env = "HASHRING_KEY"   # optional: the environment variable holding the secret

    [nodes.cache-1]
    url = "redis://127.0.0.1:7001/0"
    weight = 1                # a positive number, default 1

Every mistake is reported with the file, the key and what is allowed (:class:`ConfigError`);
nothing is returned from a file that is not entirely valid. URLs must have a scheme and a
host (or a path for ``unix://``); each adapter checks that the scheme is one it speaks.

The file is UTF-8 (a leading UTF-8 byte-order mark is skipped) and at most
:data:`MAX_TOPOLOGY_BYTES` (64 MiB, room for millions of nodes); a file that is larger, not
UTF-8 or nested too deeply for the parser is a :class:`ConfigError`, found before any
placement is built.

Jump topologies. A jump file describes the placement built from scratch: nodes take
buckets in the sorted order of their names. Running clients that remove or add nodes
(``remove_node``/``add_node``, MementoHash) number buckets by that history instead, which a
file does not carry unless it says so. A jump file may carry that history, the placement's
memento (:meth:`JumpHash.memento`), so a placement built from it is exactly the running one::

    [placement.history]           # jump only; written by `hashring report --write-to`
    size = 5                      # the bucket array's size
    last_removed = 2
    removed = [[2, 4, 5]]         # [bucket, replacer, previously removed]
    [placement.history.buckets]
    n1 = 0                        # every node of [nodes], with its bucket
    n2 = 1
    n4 = 3
    n5 = 4

``hashring report --from old.toml --to new.toml --write-to next.toml`` (or ``--remove`` /
``--add`` instead of ``--to``) writes such a file. Without a history, a new file that
removes a node other than the last-named one, or adds one whose name does not sort last,
describes a different placement than the running one (most keys on other nodes):
``hashring report`` and ``hashring migrate`` refuse such a pair of files (:func:`renumbers`)
with a message saying how to write the file with its history.

A topology has a :attr:`Topology.version`: a digest of everything that decides where a key
lives (placement options and history, node names, weights and URLs, the hash key, and the
previous topology of a migration), so two files that differ only in layout, comments or
key order have the same version, and any change that can move a key or reach another
server gives a new one.

Migration window. During a migration the new topology names the one it replaces::

    [migration]
    previous = "old.toml"     # a path relative to this file

Clients then route by the new topology and fall back to the previous one for keys the
migration has not moved yet (:attr:`Topology.previous`). The previous file may not itself
name a previous one: finish one migration before starting the next.

``hash_key_env`` names the environment variable that holds the placement's ``hash_key``
(the secret that keys the hash of every key, against hash flooding): its value, encoded as
UTF-8, must be 16 to 64 bytes. The secret never comes from the file itself (a ``hash_key``
entry is refused) and is never shown: not in errors, reprs or reports, which name the
variable only.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .._errors import ConfigError, HashRingError
from .._placement.algorithms import ALGORITHMS, placement
from .._placement.contract import Placement
from .._placement.hashes import MAX_HASH_KEY_BYTES, MIN_HASH_KEY_BYTES
from .._placement.jump import JumpHash
from .urls import redact_url

__all__ = [
    "MAX_TOPOLOGY_BYTES",
    "NodeSpec",
    "Topology",
    "load_topology",
    "parse_topology",
    "renumbers",
    "topology_from_bytes",
    "transition",
]

MAX_TOPOLOGY_BYTES = 64 << 20
"""The largest topology file :func:`load_topology` reads (64 MiB)."""
_PLACEMENT_KEYS = {
    "algorithm",
    "hash",
    "vnodes",
    "table_size",
    "hash_tags",
    "hash_key_env",
    "history",
}
_HISTORY_KEYS = {"buckets", "size", "last_removed", "removed"}
_MIGRATION_KEYS = {"previous"}
VERSION_DIGITS = 16
"""Hex digits of :attr:`Topology.version` (64 bits of a SHA-256)."""
_NODE_KEYS = {"url", "weight"}


@dataclass(frozen=True)
class NodeSpec:
    """One node of a topology."""

    name: str
    url: str | None
    weight: float = 1.0

    def __repr__(self) -> str:
        url = None if self.url is None else redact_url(self.url)
        return f"NodeSpec(name={self.name!r}, url={url!r}, weight={self.weight})"


@dataclass(frozen=True)
class Topology:
    """A parsed topology file: placement options and nodes.

    ``hash_key`` is the secret read from the environment variable ``hash_key_env`` when the
    file was parsed; it is left out of the repr and of :meth:`options`.
    """

    nodes: dict[str, NodeSpec]
    algorithm: str = "ring"
    hash: str = "mmh3"
    vnodes: int | None = None
    table_size: int | None = None
    hash_tags: bool = True
    source: str = field(default="<memory>", compare=False)
    hash_key_env: str | None = None
    hash_key: bytes | None = field(default=None, repr=False)
    history: dict[str, Any] | None = None
    """Jump only: the placement's history (``[placement.history]``, a
    :meth:`JumpHash.memento`), so the file describes a placement that running clients
    changed; None: built from the sorted names."""
    previous: Topology | None = None
    """During a migration (``[migration] previous``): the topology this one replaces, whose
    nodes still hold the keys not moved yet; None outside a migration."""
    _validated: list[Placement] = field(default_factory=list, init=False, repr=False, compare=False)
    """The placement :func:`parse_topology` built to validate the file, handed out by the
    first :meth:`placement` call (so a 100,000-node ring is not built twice)."""

    @property
    def weights(self) -> dict[str, float]:
        """Node name -> weight."""
        return {name: spec.weight for name, spec in self.nodes.items()}

    def options(self) -> dict[str, Any]:
        """The ``[placement]`` options: algorithm, hash, vnodes, table_size, hash_tags and
        hash_key_env (the variable's name: never the secret)."""
        return {
            "algorithm": self.algorithm,
            "hash": self.hash,
            "vnodes": self.vnodes,
            "table_size": self.table_size,
            "hash_tags": self.hash_tags,
            "hash_key_env": self.hash_key_env,
        }

    @cached_property
    def version(self) -> str:
        """A digest of everything that decides where a key lives and which server holds it:
        placement options and history, node names, weights and URLs, the hash key (never
        shown: it only enters the digest) and the previous topology's version. 16 hex digits.
        Equal for files that differ only in layout, comments or the order of tables;
        different after any change that can move a key. O(nodes), computed once.

        >>> a = parse_topology({"nodes": {"a": {"url": "redis://h:1"}, "b": {}}})
        >>> b = parse_topology({"nodes": {"b": {"weight": 1.0}, "a": {"url": "redis://h:1"}}})
        >>> a.version == b.version, len(a.version)
        (True, 16)
        """
        content = {
            "placement": {**self.options(), "history": self.history},
            "nodes": sorted((spec.name, spec.url, spec.weight) for spec in self.nodes.values()),
            "previous": None if self.previous is None else self.previous.version,
        }
        digest = hashlib.sha256(json.dumps(content, sort_keys=True).encode())
        if self.hash_key is not None:
            digest.update(b"\0hash_key\0" + self.hash_key)
        return digest.hexdigest()[:VERSION_DIGITS]

    def placement(self) -> Placement:
        """A new placement as this topology describes it (keyed by :attr:`hash_key` when
        set). Each call returns an independent object: the first one may be the placement
        built when the file was validated, later ones are built afresh.

        Raises:
            HashRingError: as :func:`hashring.placement` (a topology from
                :func:`parse_topology` has already been built once, so does not raise).
        """
        if self._validated:
            with contextlib.suppress(IndexError):  # another thread took it first
                return self._validated.pop()
        if self.history is not None:
            return JumpHash.from_memento(
                self.history, hash=self.hash, hash_tags=self.hash_tags, hash_key=self.hash_key
            )
        return placement(
            self.algorithm,
            self.weights,
            hash=self.hash,
            hash_tags=self.hash_tags,
            vnodes=self.vnodes,
            table_size=self.table_size,
            hash_key=self.hash_key,
        )


def transition(before: Topology, after: Topology) -> tuple[Placement, Placement]:
    """The placements before and after a change, as a live client would hold them.

    For a placement whose result depends on its history (jump: MementoHash buckets), when
    both topologies use the same algorithm and options, the after placement is the before
    one with the change applied to it: removed nodes leave (in name order), then new nodes
    join (in name order), then weights change, so a new node takes the bucket a removed one
    freed. Ring, Maglev and rendezvous depend only on the final nodes
    (``HISTORY_FREE``), so ``after`` is simply built.

    Runtime: two builds, or one build plus the changed nodes' membership costs.

    Raises:
        HashRingError: a placement cannot be built (for example weights for jump).
    """
    old = before.placement()
    # Applying the changes is right for any placement; building afresh is only a shortcut
    # for those that say their placement ignores history (a custom one may not say).
    if getattr(old, "HISTORY_FREE", False) or before.options() != after.options():
        return old, after.placement()
    new = before.placement()
    for name in sorted(set(before.nodes) - set(after.nodes)):
        new.remove_node(name)
    for name in sorted(set(after.nodes) - set(before.nodes)):
        new.add_node(name, after.nodes[name].weight)
    for name, spec in after.nodes.items():
        if name in before.nodes and spec.weight != before.nodes[name].weight:
            new.set_weight(name, spec.weight)
    return old, new


def renumbers(before: Topology, after: Topology) -> bool:
    """Whether ``after``, built from scratch as a client loading its file builds it, places
    keys differently than ``before`` with the change applied (:func:`transition`).

    Only a placement with a history can (jump: buckets are numbered in the sorted order of
    the names when built, and by MementoHash's removal memory when changed live): removing a
    node other than the last-named one, or adding one whose name does not sort last,
    renumbers the buckets of a file built afresh, which then moves most keys. Ring, Maglev,
    rendezvous, and two topologies with different options never do.

    Runtime: three placement builds plus the change, for jump; O(1) otherwise.
    """
    if before.algorithm != "jump" or before.options() != after.options():
        return False
    _, applied = transition(before, after)
    scratch = after.placement()
    memento = getattr(applied, "memento", None)
    return memento is not None and bool(memento() != getattr(scratch, "memento", dict)())


def load_topology(path: str | Path) -> Topology:
    """Read and validate a topology file.

    Reads at most :data:`MAX_TOPOLOGY_BYTES` + 1 bytes, so a huge or endless file
    (``/dev/zero``) is refused at once. Runtime: O(file size) plus one placement build.

    Raises:
        ConfigError: the file cannot be read, is too large, is not UTF-8, is not TOML (or is
            nested too deeply to parse), or does not follow the schema.
    """
    return parse_topology(_read_toml(path), str(path), base=Path(path).parent)


def topology_from_bytes(
    raw: bytes,
    source: str,
    *,
    base: str | Path | None = None,
    read_previous: Callable[[str], bytes] | None = None,
) -> Topology:
    """Validate a topology document held in memory (UTF-8 TOML, at most
    :data:`MAX_TOPOLOGY_BYTES`), as :func:`load_topology` validates a file: the same checks,
    the same :attr:`Topology.version`. ``read_previous(name)`` returns the document of the
    previous topology a ``[migration]`` table names (default: the file relative to
    ``base``). O(document size) plus one placement build.

    Raises:
        ConfigError: as :func:`load_topology`.
    """
    if len(raw) > MAX_TOPOLOGY_BYTES:
        raise ConfigError(f"{source}: the topology is larger than {MAX_TOPOLOGY_BYTES >> 20} MiB")
    reader = None
    if read_previous is not None:
        fetch = read_previous

        def reader(name: str) -> Mapping[str, Any]:
            return _parse_toml(fetch(name), f"{source} (previous {name!r:.80})")

    return parse_topology(_parse_toml(raw, source), source, base=base, read_previous=reader)


def _read_toml(path: str | Path) -> dict[str, Any]:
    """The TOML document of the file at ``path`` (at most :data:`MAX_TOPOLOGY_BYTES`)."""
    source = str(path)
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_TOPOLOGY_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read the topology file: {exc.strerror}") from exc
    if len(raw) > MAX_TOPOLOGY_BYTES:
        raise ConfigError(
            f"{source}: the topology file is larger than {MAX_TOPOLOGY_BYTES >> 20} MiB"
        )
    return _parse_toml(raw, source)


def _parse_toml(raw: bytes, source: str) -> dict[str, Any]:
    """The TOML document in ``raw`` (UTF-8, an optional UTF-8 byte-order mark skipped)."""
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise ConfigError(f"{source}: the file is UTF-16; TOML files are UTF-8: save it as UTF-8")
    try:
        text = raw.removeprefix(b"\xef\xbb\xbf").decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{source}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start}): "
            "TOML files are UTF-8"
        ) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{source}: not valid TOML: arrays or tables nested too deeply") from None
    except ValueError as exc:  # e.g. an integer of more than 4300 digits
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None


def parse_topology(
    data: Mapping[str, Any],
    source: str = "<memory>",
    *,
    base: str | Path | None = None,
    read_previous: Callable[[str], Mapping[str, Any]] | None = None,
) -> Topology:
    """Validate an already-parsed topology mapping (the TOML document's content).

    The previous topology of a ``[migration]`` table is read by ``read_previous(name)``
    (a source other than files supplies it so), else from the file ``name`` relative to
    ``base`` (default: the current directory).

    Raises:
        ConfigError: the content does not follow the schema, or the previous topology of a
            migration cannot be read or names a previous topology itself.
    """
    _only(data, {"placement", "nodes", "migration"}, source, "")
    folder = Path(base or ".")
    previous = _previous(
        data.get("migration"),
        source,
        read_previous or (lambda name: _read_toml(folder / name)),
        lambda name: str(folder / name) if read_previous is None else name,
    )
    options = data.get("placement", {})
    if not isinstance(options, Mapping):
        raise ConfigError(f"{source}: [placement] must be a table")
    _only(options, _PLACEMENT_KEYS, source, "placement.")
    algorithm = _typed(options, "algorithm", str, "ring", source)
    if algorithm not in ALGORITHMS:
        raise ConfigError(
            f"{source}: placement.algorithm = {algorithm!r:.60} is not allowed: "
            f"use one of {', '.join(ALGORITHMS)}"
        )
    hash_name = _typed(options, "hash", str, "mmh3", source)
    if hash_name not in ("mmh3", "ketama"):
        raise ConfigError(f"{source}: placement.hash = {hash_name!r:.60}: use 'mmh3' or 'ketama'")
    vnodes = _typed(options, "vnodes", int, None, source)
    table_size = _typed(options, "table_size", int, None, source)
    hash_tags = _typed(options, "hash_tags", bool, True, source)
    hash_key_env = _typed(options, "hash_key_env", str, None, source)
    history = _history(options, algorithm, source)
    hash_key = (
        None
        if hash_key_env is None
        else hash_key_from_env(hash_key_env, f"{source}: placement.hash_key_env = {hash_key_env!r}")
    )
    nodes_table = data.get("nodes")
    if not isinstance(nodes_table, Mapping) or not nodes_table:
        raise ConfigError(f"{source}: no nodes: add at least one [nodes.NAME] table with a url")
    nodes: dict[str, NodeSpec] = {}
    for name, spec in nodes_table.items():
        where = f"nodes.{name}"
        if not isinstance(spec, Mapping):
            raise ConfigError(f"{source}: [{where}] must be a table with url and weight")
        _only(spec, _NODE_KEYS, source, f"{where}.")
        url = _typed(spec, "url", str, None, source, where)
        if url is not None:
            _check_url(url, source, where)
        nodes[name] = NodeSpec(name, url, _weight(spec.get("weight", 1), source, where))
    topology = Topology(
        nodes,
        algorithm,
        hash_name,
        vnodes,
        table_size,
        hash_tags,
        source,
        hash_key_env=hash_key_env,
        hash_key=hash_key,
        history=history,
        previous=previous,
    )
    if history is not None and set(history["buckets"]) != set(nodes):
        differ = sorted(set(history["buckets"]) ^ set(nodes))
        raise ConfigError(
            f"{source}: placement.history.buckets must name exactly the nodes of [nodes]: "
            f"{differ[0]!r:.60} is in one and not the other"
        )
    try:
        topology._validated.append(topology.placement())
    except HashRingError as exc:
        raise ConfigError(f"{source}: {exc}") from exc
    return topology


def _previous(
    migration: Any,
    source: str,
    read: Callable[[str], Mapping[str, Any]],
    name_of: Callable[[str], str],
) -> Topology | None:
    """The previous topology a ``[migration]`` table names (None without the table)."""
    if migration is None:
        return None
    if not isinstance(migration, Mapping):
        raise ConfigError(f'{source}: [migration] must be a table with previous = "FILE"')
    _only(migration, _MIGRATION_KEYS, source, "migration.")
    name = _typed(migration, "previous", str, None, source, "migration")
    if not name:
        raise ConfigError(
            f"{source}: migration.previous is missing: name the topology file this one "
            "replaces (a path relative to this file)"
        )
    try:
        data = read(name)
    except ConfigError as exc:
        raise ConfigError(f"{source}: migration.previous: {exc}") from exc
    if "migration" in data:  # checked before parsing it: a file naming itself ends here
        raise ConfigError(
            f"{source}: migration.previous = {name!r:.80} is itself in a migration (it has a "
            "[migration] table): finish that migration, publish its topology without "
            "[migration], then name that file"
        )
    where = name_of(name)
    try:
        return parse_topology(data, where, base=Path(where).parent)
    except ConfigError as exc:
        raise ConfigError(f"{source}: migration.previous: {exc}") from exc


def _history(options: Mapping[str, Any], algorithm: str, source: str) -> dict[str, Any] | None:
    """``placement.history`` checked for shape (its consistency is checked when the
    placement is built from it)."""
    history = options.get("history")
    if history is None:
        return None
    if algorithm != "jump":
        raise ConfigError(
            f"{source}: placement.history is jump's bucket history: it is not allowed with "
            f"algorithm {algorithm!r}"
        )
    if not isinstance(history, Mapping):
        raise ConfigError(f"{source}: placement.history must be a table")
    _only(history, _HISTORY_KEYS, source, "placement.history.")
    missing = sorted(_HISTORY_KEYS - set(history))
    if missing:
        raise ConfigError(f"{source}: placement.history.{missing[0]} is missing")
    if not isinstance(history["buckets"], Mapping):
        raise ConfigError(f"{source}: placement.history.buckets must be a table (node = bucket)")
    for key in ("size", "last_removed"):
        _typed(history, key, int, None, source, "placement.history")
    removed = history["removed"]
    if not isinstance(removed, list) or not all(
        isinstance(row, list) and len(row) == 3 and all(_is_int(n) for n in row) for row in removed
    ):
        raise ConfigError(
            f"{source}: placement.history.removed must be an array of [bucket, replacer, "
            "previous] integer triples"
        )
    if not all(_is_int(n) for n in history["buckets"].values()):
        raise ConfigError(f"{source}: placement.history.buckets values must be integers")
    return dict(history)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _weight(weight: Any, source: str, where: str) -> float:
    """A node's weight as a float; the placement checks its range."""
    message = f"{source}: {where}.weight = {weight!r:.40}: must be a positive finite number"
    if isinstance(weight, bool) or not isinstance(weight, (int, float)):
        raise ConfigError(message)
    try:
        value = float(weight)
    except OverflowError:  # an int beyond float range
        raise ConfigError(message) from None
    if not (value > 0 and math.isfinite(value)):
        raise ConfigError(message)
    return value


def hash_key_from_env(variable: str, where: str) -> bytes:
    """The hash key held by environment variable ``variable``: its value's UTF-8 bytes
    (bytes that were not UTF-8 in the environment come back unchanged).

    ``where`` starts each error message (the file and key, or the flag). Messages name the
    variable and the length, never the value.

    Raises:
        ConfigError: not a variable name, the variable is unset, or its value is not 16 to
            64 bytes.
    """
    if not variable or "=" in variable or "\0" in variable:
        raise ConfigError(f"{where}: not an environment variable name")
    value = os.environ.get(variable)
    if value is None:
        raise ConfigError(
            f"{where}: the environment variable is not set: set it to a secret of "
            f"{MIN_HASH_KEY_BYTES} to {MAX_HASH_KEY_BYTES} bytes"
        )
    secret = value.encode("utf-8", "surrogateescape")  # undecodable bytes come back as-is
    if not MIN_HASH_KEY_BYTES <= len(secret) <= MAX_HASH_KEY_BYTES:
        raise ConfigError(
            f"{where}: the variable holds {len(secret)} bytes; the hash key must be "
            f"{MIN_HASH_KEY_BYTES} to {MAX_HASH_KEY_BYTES} bytes (its value is not shown)"
        )
    return secret


def _only(table: Mapping[str, Any], allowed: set[str], source: str, prefix: str) -> None:
    if prefix in ("", "placement.") and "hash_key" in table:
        raise ConfigError(
            f"{source}: placement.hash_key: a secret does not belong in the file: use "
            'hash_key_env = "VARIABLE" to name the environment variable that holds it'
        )
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise ConfigError(
            f"{source}: unknown key {prefix}{unknown[0]}: allowed keys are "
            f"{', '.join(prefix + key for key in sorted(allowed))}"
        )


def _typed(
    table: Mapping[str, Any],
    key: str,
    kind: type,
    default: Any,
    source: str,
    where: str = "placement",
) -> Any:
    if key not in table:
        return default
    value = table[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        # The value itself is not shown: a misplaced URL or secret would be printed whole.
        raise ConfigError(
            f"{source}: {where}.{key} is a {_toml_type(value)}: it must be a {kind.__name__}"
        )
    return value


def _toml_type(value: Any) -> str:
    """How a TOML user names the type of ``value`` (for error messages)."""
    names = {bool: "boolean", int: "integer", float: "float", str: "string", list: "array"}
    for kind, name in names.items():
        if isinstance(value, kind):
            return name
    return "table" if isinstance(value, Mapping) else type(value).__name__


def _check_url(url: str, source: str, where: str) -> None:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        # urlsplit's own message quotes the text it failed on, which may be the password.
        raise ConfigError(
            f"{source}: {where}.url = {redact_url(url)!r}: not a valid URL (a bad port or "
            "host; percent-encode any '/', '?', '#', '@' or ':' in the user or password)"
        ) from None
    if not parts.scheme or not (parts.hostname or (parts.scheme == "unix" and parts.path)):
        raise ConfigError(
            f"{source}: {where}.url = {redact_url(url)!r}: must be a URL with a scheme and a "
            "host, such as redis://127.0.0.1:6379/0 or unix:///run/redis.sock"
        )
