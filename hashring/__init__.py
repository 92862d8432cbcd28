"""hashring: client-side sharding with consistent hashing.

The core package is pure computation (no network): placements map keys to node names.
Adapters for Redis and HTTP clients live in ``hashring.adapters``.

>>> from hashring import HashRing
>>> ring = HashRing({"cache-1": 1, "cache-2": 1, "cache-3": 2})
>>> ring.get_node("user:42") in ring.nodes
True
"""

from __future__ import annotations

from ._analysis import (
    LoadSummary,
    NodeLoad,
    Rebalance,
    Side,
    ideal_movement,
    rebalance,
    rebalance_stream,
)
from ._balancing.balancers import (
    Balancer,
    LeastLoaded,
    PowerOfTwo,
    RandomChoice,
    RoundRobin,
    balancer,
)
from ._balancing.bounded import BoundedLoad
from ._balancing.health import HealthTracker
from ._errors import (
    ConfigError,
    CrossShardError,
    EmptyRingError,
    HashRingError,
    InvalidKeyError,
    InvalidOptionError,
    InvalidWeightError,
    KeyEncodingError,
    MigrationError,
    NodeExistsError,
    NotEnoughNodesError,
    TopologyConflictError,
    UnknownNodeError,
    UnsupportedCommandError,
    VolatileDestinationError,
)
from ._placement.algorithms import ALGORITHMS, as_placement, placement
from ._placement.contract import Placement
from ._placement.jump import JumpHash
from ._placement.keys import Key, hash_tag
from ._placement.maglev import MAX_TABLE_SIZE, Maglev
from ._placement.nodes import MAX_NAME_BYTES, MAX_WEIGHT, MIN_WEIGHT
from ._placement.rendezvous import Rendezvous
from ._placement.ring import MAX_POINTS, HashRing
from ._topology.config import NodeSpec, Topology, load_topology, parse_topology, transition
from ._topology.urls import redact_url
from ._topology.watch import TopologyFollower, TopologyWatcher

__all__ = [
    "ALGORITHMS",
    "MAX_NAME_BYTES",
    "MAX_POINTS",
    "MAX_TABLE_SIZE",
    "MAX_WEIGHT",
    "MIN_WEIGHT",
    "Balancer",
    "BoundedLoad",
    "ConfigError",
    "CrossShardError",
    "EmptyRingError",
    "HashRing",
    "HashRingError",
    "HealthTracker",
    "InvalidKeyError",
    "InvalidOptionError",
    "InvalidWeightError",
    "JumpHash",
    "Key",
    "KeyEncodingError",
    "LeastLoaded",
    "LoadSummary",
    "Maglev",
    "MigrationError",
    "NodeExistsError",
    "NodeLoad",
    "NodeSpec",
    "NotEnoughNodesError",
    "Placement",
    "PowerOfTwo",
    "RandomChoice",
    "Rebalance",
    "Rendezvous",
    "RoundRobin",
    "Side",
    "Topology",
    "TopologyConflictError",
    "TopologyFollower",
    "TopologyWatcher",
    "UnknownNodeError",
    "UnsupportedCommandError",
    "VolatileDestinationError",
    "as_placement",
    "balancer",
    "hash_tag",
    "ideal_movement",
    "load_topology",
    "parse_topology",
    "placement",
    "rebalance",
    "rebalance_stream",
    "redact_url",
    "transition",
]

__version__ = "0.1.0"
