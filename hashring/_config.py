"""Topology files: one TOML file describing nodes, weights, URLs and the algorithm.

::

    [placement]
    algorithm = "ring"        # ring | maglev | rendezvous | jump   (default "ring")
    hash = "mmh3"             # mmh3 | ketama                       (default "mmh3")
    vnodes = 160              # ring only
    table_size = 65537        # maglev only (a prime)
    hash_tags = true          # default true

    [nodes.cache-1]
    url = "redis://127.0.0.1:7001/0"
    weight = 1                # a positive number, default 1

Every mistake is reported with the file, the key and what is allowed (:class:`ConfigError`);
nothing is returned from a file that is not entirely valid. URLs must have a scheme and a
host (or a path for ``unix://``); each adapter checks that the scheme is one it speaks.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ._algorithms import ALGORITHMS, placement
from ._errors import ConfigError, HashRingError
from ._jump import JumpHash
from ._maglev import Maglev
from ._rendezvous import Rendezvous
from ._ring import HashRing
from ._urls import redact_url

__all__ = ["NodeSpec", "Topology", "load_topology", "parse_topology", "transition"]

_PLACEMENT_KEYS = {"algorithm", "hash", "vnodes", "table_size", "hash_tags"}
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
    """A parsed topology file: placement options and nodes."""

    nodes: dict[str, NodeSpec]
    algorithm: str = "ring"
    hash: str = "mmh3"
    vnodes: int | None = None
    table_size: int | None = None
    hash_tags: bool = True
    source: str = field(default="<memory>", compare=False)

    @property
    def weights(self) -> dict[str, float]:
        """Node name -> weight."""
        return {name: spec.weight for name, spec in self.nodes.items()}

    def options(self) -> dict[str, Any]:
        """The ``[placement]`` options: algorithm, hash, vnodes, table_size, hash_tags."""
        return {
            "algorithm": self.algorithm,
            "hash": self.hash,
            "vnodes": self.vnodes,
            "table_size": self.table_size,
            "hash_tags": self.hash_tags,
        }

    def placement(self) -> HashRing | Maglev | Rendezvous | JumpHash:
        """The placement this topology describes."""
        return placement(
            self.algorithm,
            self.weights,
            hash=self.hash,
            hash_tags=self.hash_tags,
            vnodes=self.vnodes,
            table_size=self.table_size,
        )


def transition(
    before: Topology, after: Topology
) -> tuple[HashRing | Maglev | Rendezvous | JumpHash, HashRing | Maglev | Rendezvous | JumpHash]:
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
    if old.HISTORY_FREE or before.options() != after.options():
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


def load_topology(path: str | Path) -> Topology:
    """Read and validate a topology file.

    Raises:
        ConfigError: the file cannot be read, is not TOML, or does not follow the schema.
    """
    source = str(path)
    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read the topology file: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from exc
    return parse_topology(data, source)


def parse_topology(data: Mapping[str, Any], source: str = "<memory>") -> Topology:
    """Validate an already-parsed topology mapping (the TOML document's content).

    Raises:
        ConfigError: the content does not follow the schema.
    """
    _only(data, {"placement", "nodes"}, source, "")
    options = data.get("placement", {})
    if not isinstance(options, Mapping):
        raise ConfigError(f"{source}: [placement] must be a table")
    _only(options, _PLACEMENT_KEYS, source, "placement.")
    algorithm = _typed(options, "algorithm", str, "ring", source)
    if algorithm not in ALGORITHMS:
        raise ConfigError(
            f"{source}: placement.algorithm = {algorithm!r} is not allowed: "
            f"use one of {', '.join(ALGORITHMS)}"
        )
    hash_name = _typed(options, "hash", str, "mmh3", source)
    if hash_name not in ("mmh3", "ketama"):
        raise ConfigError(f"{source}: placement.hash = {hash_name!r}: use 'mmh3' or 'ketama'")
    vnodes = _typed(options, "vnodes", int, None, source)
    table_size = _typed(options, "table_size", int, None, source)
    hash_tags = _typed(options, "hash_tags", bool, True, source)
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
        weight = spec.get("weight", 1)
        if (
            isinstance(weight, bool)
            or not isinstance(weight, (int, float))
            or not (weight > 0 and math.isfinite(weight))
        ):
            raise ConfigError(
                f"{source}: {where}.weight = {weight!r}: must be a positive finite number"
            )
        nodes[name] = NodeSpec(name, url, float(weight))
    topology = Topology(nodes, algorithm, hash_name, vnodes, table_size, hash_tags, source)
    try:
        topology.placement()
    except HashRingError as exc:
        raise ConfigError(f"{source}: {exc}") from exc
    except OverflowError:
        raise ConfigError(f"{source}: weights too large to place (keep them below 1e6)") from None
    return topology


def _only(table: Mapping[str, Any], allowed: set[str], source: str, prefix: str) -> None:
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
        raise ConfigError(f"{source}: {where}.{key} = {value!r}: must be a {kind.__name__}")
    return value


def _check_url(url: str, source: str, where: str) -> None:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError as exc:
        raise ConfigError(f"{source}: {where}.url = {redact_url(url)!r}: {exc}") from None
    if not parts.scheme or not (parts.hostname or (parts.scheme == "unix" and parts.path)):
        raise ConfigError(
            f"{source}: {where}.url = {redact_url(url)!r}: must be a URL with a scheme and a "
            "host, such as redis://127.0.0.1:6379/0 or unix:///run/redis.sock"
        )
