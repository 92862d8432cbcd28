"""The figures a move is planned with, from a sample of live keys: keys, bytes and keys with
a TTL per from->to pair, scaled to each node's live key count with a 95% confidence
interval; the move's duration; each destination's memory after the move against its
``maxmemory``. Used by ``hashring report --sample-from`` and by ``hashring migrate``'s dry run;
rendered here as text (its own section) and as the JSON ``"plan"`` object.

Estimation. The sample is stratified by node: node h holds N_h keys (``DBSIZE``) of which
n_h were sampled, each standing for N_h / n_h keys. A total (keys moved, bytes moved, keys
with a TTL moved) is estimated as sum_h N_h * mean_h(y), y being the key's contribution
(1 or 0 for a count, its ``MEMORY USAGE`` for bytes), with the variance of a simple random
sample within each node, finite population correction included:
sum_h N_h^2 (1 - n_h/N_h) s_h^2 / n_h. The interval is the estimate +- 1.96 standard errors
(95%), assuming SCAN's first keys are a random sample of the node (close to it: SCAN follows
the server's hash table, seeded at random per process). A node sampled whole has an exact
figure (interval 0). ``MEMORY USAGE`` is what the key costs on its source; the destination
pays about as much.

``JSON`` (``"plan"``)::

    {"sample": int, "confidence": 0.95,
     "nodes": [{"name": str, "live_keys": int, "sampled": int}],      # nodes sampled
     "keys": {"estimate": float, "low": float, "high": float},        # keys that move
     "bytes": {"estimate": float, "low": float, "high": float},       # their MEMORY USAGE
     "ttl_keys": {"estimate": float, "low": float, "high": float},    # of them, with a TTL
     "pairs": [{"from": str, "to": str, "keys": float, "bytes": float, "ttl_keys": float}],
     "duration": [{"rate": float, "seconds": float, "source": str}],  # --rate, then measured
     "memory": [{"name": str, "used": int | null, "moved_in": float, "moved_out": float,
                 "after": float | null, "maxmemory": int | null, "over": bool}],
     "warnings": [str]}

``pairs`` are largest first (keys); ``from`` is the node a key was found on, ``to`` its owner
after the change. ``memory`` lists every node of the topology after the change and every
node keys leave; ``used``/``maxmemory`` are null for a node without a URL (not asked),
``maxmemory`` 0 means no limit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .._placement.contract import Placement
from .._topology.config import Topology
from ._common import OperationError, UsageError, progress

if TYPE_CHECKING:  # mypy knows the adapters by their folder's name
    from adapters.redis._sampling import LiveSample

__all__ = [
    "CONFIDENCE",
    "MEASURED_RATE",
    "MEASURED_RATE_SOURCE",
    "Estimate",
    "MovePlan",
    "plan_json",
    "plan_move",
    "plan_text",
    "sample_live_nodes",
]

CONFIDENCE = 0.95
_Z = 1.959963984540054
MEASURED_RATE = 18_166.0
"""Keys moved per second by ``bench/migrate.py --quick`` (``MigrationSession.migrate``,
batch 1000, no rate limit, scanning included): 100,000 small string keys, 3 -> 4 local
redis-servers without persistence, 22,565 moved in 1.24 s, on the development machine
(2 shared cores, load average 3.3) on 2026-11-29. A local, small-value figure: expect less
across a network, with large values or with ``appendfsync always``."""
MEASURED_RATE_SOURCE = "bench/migrate.py --quick (local servers, small keys)"


@dataclass(frozen=True)
class Estimate:
    """A total estimated from the sample, with its 95% interval (clipped at 0)."""

    estimate: float
    low: float
    high: float

    def json(self) -> dict[str, float]:
        return {"estimate": self.estimate, "low": self.low, "high": self.high}


@dataclass(frozen=True)
class NodeMemoryAfter:
    """A node's memory before and after the move (bytes; ``None`` where not known)."""

    name: str
    used: int | None
    moved_in: float
    moved_out: float
    maxmemory: int | None

    @property
    def after(self) -> float | None:
        """``used`` - bytes leaving + bytes arriving."""
        return None if self.used is None else self.used - self.moved_out + self.moved_in

    @property
    def over(self) -> bool:
        """The node would hold more than its ``maxmemory`` (a limit is set)."""
        after = self.after
        return bool(self.maxmemory) and after is not None and after > (self.maxmemory or 0)


@dataclass(frozen=True)
class MovePlan:
    """The planning figures (see the module docstring)."""

    sample: int
    nodes: list[tuple[str, int, int]]
    """(name, live keys, sampled keys) of every node sampled."""
    keys: Estimate
    bytes: Estimate
    ttl_keys: Estimate
    pairs: list[tuple[str, str, float, float, float]]
    """(from, to, keys, bytes, ttl keys), largest first."""
    duration: list[tuple[float, float, str]]
    """(keys per second, seconds, where the rate comes from)."""
    memory: list[NodeMemoryAfter]
    warnings: list[str] = field(default_factory=list)

    @property
    def over_memory(self) -> list[str]:
        """Nodes that would exceed their ``maxmemory``."""
        return [node.name for node in self.memory if node.over]


def sample_live_nodes(
    sampled: Topology,
    count: int,
    after: Topology | None = None,
    *,
    also: Topology | None = None,
    empty_ok: bool = False,
) -> LiveSample:
    """A :class:`LiveSample` of ``count`` keys from ``sampled``'s nodes and ``also``'s (both
    need URLs), with the ``INFO memory`` of ``after``'s nodes with a URL too, and a progress
    bar. Empty nodes are refused unless ``empty_ok``.

    Raises:
        UsageError: redis-py is missing, a URL redis-py does not speak.
        ConfigError: a node of ``sampled`` has no URL.
        OperationError: a node cannot be reached.
    """
    try:
        import redis

        if TYPE_CHECKING:
            from adapters.redis._sampling import sample_live, topology_urls
        else:
            from ..adapters.redis._sampling import sample_live, topology_urls
    except ImportError:  # pragma: no cover - the dev and redis extras install it
        raise UsageError("--sample-from needs redis-py: pip install 'hashring[redis]'") from None
    sources = {**(topology_urls(also) if also is not None else {}), **topology_urls(sampled)}
    watch = {
        name: spec.url
        for name, spec in (after.nodes if after is not None else {}).items()
        if spec.url is not None and name not in sources
    }
    with progress(count, "sampling keys") as bar:
        try:
            live = sample_live(sources, count, bar.update, watch=watch)
        except redis.RedisError as exc:
            raise OperationError(f"sampling keys: {type(exc).__name__}: {exc}") from None
        except ValueError as exc:  # redis-py refuses a URL scheme it does not speak
            raise UsageError(f"{sampled.source}: {exc}") from None
    if not live.keys and not empty_ok:
        raise UsageError(f"{sampled.source}: the nodes hold no keys to sample")
    return live


def _total(strata: dict[str, tuple[int, int]], values: dict[str, list[float]]) -> Estimate:
    """The stratified estimate of a total (see the module docstring). ``strata``: node ->
    (live N, sampled n); ``values``: node -> the y of its sampled keys that count (others 0)."""
    estimate = variance = 0.0
    for node, (live, sampled) in strata.items():
        if not sampled:
            continue
        ys = values.get(node, [])
        mean = sum(ys) / sampled
        estimate += live * mean
        if sampled > 1 and live > sampled:
            square = sum(y * y for y in ys) - sampled * mean * mean
            s2 = max(square, 0.0) / (sampled - 1)
            variance += live * live * (1 - sampled / live) * s2 / sampled
    half = _Z * math.sqrt(variance)
    return Estimate(estimate, max(0.0, estimate - half), estimate + half)


def plan_move(
    live: LiveSample,
    after: Placement,
    *,
    rate: float | None = None,
    busy: float | None = None,
) -> MovePlan:
    """The plan: which sampled keys ``after`` places on another node than the one they were
    found on, scaled to the live counts. ``rate`` adds a duration at that many keys/s (the
    measured :data:`MEASURED_RATE` is always given, scaled by ``busy``, the share of its
    time the move works: ``hashring migrate --max-busy``). O(sample) time and memory."""
    sampled = live.sampled()
    strata = {node: (max(live.live[node], sampled[node]), sampled[node]) for node in sampled}
    owners = after.get_node_many(live.keys) if live.keys else []
    moved_keys: dict[str, list[float]] = {}
    moved_bytes: dict[str, list[float]] = {}
    moved_ttl: dict[str, list[float]] = {}
    pair_counts: dict[tuple[str, str], list[float]] = {}
    for node, owner, size, ttl in zip(live.nodes, owners, live.sizes, live.ttl, strict=True):
        if owner == node:
            continue
        moved_keys.setdefault(node, []).append(1.0)
        moved_bytes.setdefault(node, []).append(float(size))
        if ttl:
            moved_ttl.setdefault(node, []).append(1.0)
        scale = strata[node][0] / strata[node][1]
        figures = pair_counts.setdefault((node, owner), [0.0, 0.0, 0.0])
        figures[0] += scale
        figures[1] += scale * size
        figures[2] += scale if ttl else 0.0
    keys = _total(strata, moved_keys)
    pairs = sorted(
        ((a, b, figures[0], figures[1], figures[2]) for (a, b), figures in pair_counts.items()),
        key=lambda row: (-row[2], row[0], row[1]),
    )
    duration = [] if rate is None else [(rate, keys.estimate / rate, "--rate")]
    measured, source = MEASURED_RATE, MEASURED_RATE_SOURCE
    if busy is not None and busy < 1:
        measured, source = measured * busy, f"{source}, x {busy:g} for --max-busy"
    duration.append((measured, keys.estimate / measured, source))
    incoming: dict[str, float] = {}
    outgoing: dict[str, float] = {}
    for a, b, _, pair_bytes, _ in pairs:
        outgoing[a] = outgoing.get(a, 0.0) + pair_bytes
        incoming[b] = incoming.get(b, 0.0) + pair_bytes
    names = list(dict.fromkeys([*after.nodes, *outgoing]))
    memory = []
    for name in names:
        known = live.memory.get(name)
        memory.append(
            NodeMemoryAfter(
                name,
                None if known is None else known.used,
                incoming.get(name, 0.0),
                outgoing.get(name, 0.0),
                None if known is None else known.maxmemory,
            )
        )
    warnings = [
        f"{node.name} would hold about {_size(node.after or 0)} after the move, above its "
        f"maxmemory {_size(node.maxmemory or 0)}: it would evict keys or refuse writes"
        for node in memory
        if node.over
    ]
    unknown = [node.name for node in memory if node.used is None and node.moved_in]
    if unknown:
        warnings.append(
            f"memory not checked for {', '.join(unknown)}: no url in the topology after the change"
        )
    return MovePlan(
        sample=len(live.keys),
        nodes=[(name, *strata[name]) for name in sampled],
        keys=keys,
        bytes=_total(strata, moved_bytes),
        ttl_keys=_total(strata, moved_ttl),
        pairs=pairs,
        duration=duration,
        memory=memory,
        warnings=warnings,
    )


def plan_json(plan: MovePlan) -> dict[str, Any]:
    """The ``"plan"`` object (see the module docstring)."""
    return {
        "sample": plan.sample,
        "confidence": CONFIDENCE,
        "nodes": [
            {"name": name, "live_keys": live, "sampled": sampled}
            for name, live, sampled in plan.nodes
        ],
        "keys": plan.keys.json(),
        "bytes": plan.bytes.json(),
        "ttl_keys": plan.ttl_keys.json(),
        "pairs": [
            {"from": a, "to": b, "keys": keys, "bytes": size, "ttl_keys": ttl}
            for a, b, keys, size, ttl in plan.pairs
        ],
        "duration": [
            {"rate": rate, "seconds": seconds, "source": source}
            for rate, seconds, source in plan.duration
        ],
        "memory": [
            {
                "name": node.name,
                "used": node.used,
                "moved_in": node.moved_in,
                "moved_out": node.moved_out,
                "after": node.after,
                "maxmemory": node.maxmemory,
                "over": node.over,
            }
            for node in plan.memory
        ],
        "warnings": list(plan.warnings),
    }


def _size(count: float) -> str:
    """Bytes in a readable unit (binary prefixes): ``1.5 MiB``."""
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:,.0f} {unit}" if unit == "B" else f"{value:,.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


def _seconds(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _range(estimate: Estimate, show: Any) -> str:
    return f"{show(estimate.estimate)} (95%: {show(estimate.low)} to {show(estimate.high)})"


def plan_text(plan: MovePlan, pairs_shown: int = 15) -> str:
    """The plan as a text section (names are escaped by the caller's output rules: every
    line goes through :func:`~hashring.cli._common.escape`). O(pairs + nodes)."""
    from tabulate import tabulate

    from ._common import escape

    def count(value: float) -> str:
        return f"{value:,.0f}"

    live = sum(n for _, n, _ in plan.nodes)
    lines = [
        f"plan (estimated from {plan.sample:,} sampled keys scaled to the {live:,} keys the "
        f"{len(plan.nodes)} sampled nodes hold; 95% intervals)",
        f"  keys to move:   {_range(plan.keys, count)}",
        f"  bytes to move:  {_range(plan.bytes, _size)} (MEMORY USAGE)",
        f"  with a TTL:     {_range(plan.ttl_keys, count)} of the keys to move",
    ]
    for rate, seconds, source in plan.duration:
        lines.append(f"  duration:       {_seconds(seconds)} at {rate:,.0f} keys/s ({source})")
    if plan.pairs:
        shown = plan.pairs[:pairs_shown]
        more = len(plan.pairs) - len(shown)
        lines.append(
            tabulate(
                [(a, b, count(k), _size(s), count(t)) for a, b, k, s, t in shown],
                headers=["from", "to", "keys", "bytes", "with TTL"],
                colalign=("left", "left", "right", "right", "right"),
                disable_numparse=True,
            )
        )
        if more:
            lines.append(f"({more:,} more pairs: --format json)")
    rows = []
    for node in plan.memory:
        limit = node.maxmemory
        rows.append(
            (
                node.name,
                "?" if node.used is None else _size(node.used),
                f"-{_size(node.moved_out)} +{_size(node.moved_in)}",
                "?" if node.after is None else _size(node.after),
                "?" if limit is None else ("none" if limit == 0 else _size(limit)),
                "OVER" if node.over else "",
            )
        )
    lines.append("memory per node (used now, moved out/in, after the move, maxmemory)")
    lines.append(
        tabulate(
            rows,
            headers=["node", "used", "moves", "after", "maxmemory", ""],
            colalign=("left", "right", "right", "right", "right", "left"),
            disable_numparse=True,
        )
    )
    return "\n".join(escape(line) for line in "\n".join(lines).split("\n"))
