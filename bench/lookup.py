"""Lookup, batch, build, membership-change and memory benchmark: hashring vs uhashring.

Run by hand (not part of the test run)::

    .venv/bin/python bench/lookup.py            # full run, about one minute
    .venv/bin/python bench/lookup.py --quick    # smoke run: 10x fewer keys
    .venv/bin/python bench/lookup.py --placement-only   # ketama floor, rendezvous, jump only
    .venv/bin/python bench/lookup.py --count ketama 20000  # untimed, for callgrind

Instruction counts per lookup (repeatable on a loaded machine)::

    for n in 20000 0; do PYTHONHASHSEED=0 valgrind --tool=callgrind \\
        --callgrind-out-file=/dev/null .venv/bin/python bench/lookup.py --count ketama $n \\
        2>&1 | grep Collected; done    # (first - second) / 20000

Everything is measured in one run, on the same keys (``f"user:{i}"``), for rings of 10 and
1,000 nodes named ``node-0`` .. ``node-N`` with 160 points per node. Pairs compared:
hashring ``hash="mmh3"`` against uhashring's default (MD5, 128-bit points), and hashring
``hash="ketama"`` against uhashring ``hash_fn="ketama"`` (40 vnodes x 4 replicas = 160 points).

What is measured (``time.perf_counter``; the garbage collector is off inside every timed
region; every callable is warmed up first):

* ``get_node``: ns per key of a plain Python loop over 200,000 keys, best of 5 repeats.
  The "inline floor" is the cheapest lookup Python can do on a plain sorted list:
  ``owners[bisect(points, mmh3.hash(key, 0, False))]`` written inline in the loop, with
  160 points per node from ``mmh3.hash(f"{node}-{i}", 0, False)`` and a wrap entry in
  ``owners``. floor/hashring near 1 means hashring's lookup costs about as much as that.
* ``get_node_many``: keys per second over 1,000,000 keys, best of 3, against a uhashring
  ``[get_node(k) for k in keys]`` over the same keys (both build the result list).
* build: construction of a 1,000-node ring, best of 3. ``add_node`` / ``remove_node``: the
  median of 20 adds of fresh names to the 1,000-node ring, then 20 removes of those names
  (5 of each for uhashring ketama, which rebuilds its whole ring with ``insort`` each time).
* balance: peak-to-mean share of the hash space (hashring: ``hash_space_shares()``;
  uhashring: arcs between its sorted points, over 2**32 for ketama and 2**128 for its MD5
  default), and peak-to-mean of the actual key counts over the 1,000,000 keys.
* keyed hash: ``get_node`` and ``get_node_many`` of a ring built with ``hash_key=`` (keyed
  BLAKE2b, against hash flooding) over the same ring with the default mmh3; the ratio is
  the price of the secret.
* memory: bytes retained by construction of the 1,000-node ring (tracemalloc snapshot after
  minus before, ring kept alive) per point; hashring's is broken down into its lookup
  structure (the C index's table and pairs, or the Python table list), points array, owners
  array and the rest.
* lookup path: the header says whether HashRing uses its C index
  (``hashring._placement._ring_native``) or the Python bucket table (the extension is
  optional). With the C index, the ketama and mmh3 ``get_node`` rows are measured again on
  rings built through the Python table, in the same run (``Python table`` rows).

* placement lookups (first, and alone with ``--placement-only``), each beside its floor or
  peer in the same run, interleaved (best of 5 rounds, order flipped every round):

  - ketama ``get_node`` (10 and 1,000 nodes) against the MD5 floor
    ``table[md5(key.encode()).digest()[3]]`` written inline in the loop (the MD5 every
    ketama lookup must compute, plus one list index); ``get_node_many`` over 1,000,000 keys
    against the same floor as a list comprehension; uhashring ketama's ``get_node`` beside.
    The floor's ``md5`` is ``hashlib.md5`` (OpenSSL's, the issue's floor); ketama lookups
    use CPython's own ``_md5.md5`` where it exists (the same digests, about a quarter of
    the cost for a short key), so each ketama row also shows the floor built on that MD5
    (``own-MD5 floor``, reported): what the lookup costs beyond its hash;
  - ``Rendezvous.get_node`` (weight 1, and weights 1, 2, 3 repeating) at 4, 8, 16 and 32
    nodes, and ``JumpHash.get_node`` at 10, 100 and 1,000 nodes (plain, and after removing
    every seventh node, so MementoHash's replacement chains are walked), each beside
    uhashring's default ``get_node`` on as many nodes;
  - when the C scorer (``hashring._placement._rendezvous_native``) is built: rendezvous
    ``get_node`` (both weightings) and ``get_nodes(key, 3)`` (weight 1) with it, beside the
    same placement built on the pure-Python fallback (Python integers and numpy).

The first line says which rendezvous scoring the run uses; ``--no-native`` turns the C
scorer off for the whole run (and for ``--count``), as an install without a compiler.

Targets (second table): ketama ``get_node`` and ``get_node_many`` <= 1.3x the MD5 floor;
rendezvous ``get_node`` < 2 us up to 32 nodes; jump ``get_node`` < 1 us at 1,000 nodes;
``get_node`` >= 4x faster than uhashring at 10 and at 1,000 nodes;
``get_node_many`` over 1M keys >= 10x faster than a uhashring ``get_node`` loop; building
1,000 x 160 >= 5x faster than uhashring; ``add_node`` under 10 ms; memory reported per point.
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import sys
from bisect import bisect
from collections import Counter
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, TypeVar

import mmh3
from _measure import (
    Row,
    best_of,
    best_result,
    interleaved,
    loop_get,
    ms,
    retained_bytes,
    targets_table,
    timed,
    times,
)
from tabulate import tabulate
from uhashring import HashRing as UHashRing  # type: ignore[import-untyped]

from hashring import HashRing, JumpHash, Rendezvous
from hashring._placement import ring as ring_module
from hashring._placement import scores
from hashring._placement.hashes import KETAMA

VNODES = 160
NODE_COUNTS = (10, 1000)
BIG = 1000
LOOKUP_KEYS = 200_000
BATCH_KEYS = 1_000_000
LOOKUP_REPEATS = 5
BATCH_REPEATS = 3
BUILD_REPEATS = 3
CHANGES = 20
SLOW_CHANGES = 5  # uhashring ketama: each add/remove rebuilds the ring (~1 s)
WARMUP_KEYS = 2_000
PLACEMENT_KEYS = 50_000  # single lookups of rendezvous and jump, per round
PLACEMENT_ROUNDS = 5
RENDEZVOUS_NODES = (4, 8, 16, 32)
JUMP_NODES = (10, 100, 1000)
KETAMA_NODES = (10, 1000)
KETAMA_FLOOR = 1.3
RENDEZVOUS_TARGET = 2e-6
JUMP_TARGET = 1e-6
BENCH_HASH_KEY = bytes(range(32))  # a fixed secret: the cost does not depend on its value
LOOKUP_MD5: Callable[[bytes], Any] = KETAMA.key_digest or hashlib.md5
"""The MD5 constructor ketama lookups use (CPython's own ``_md5`` where present)."""
MD5_NAME = f"{LOOKUP_MD5.__module__ or ''}.{getattr(LOOKUP_MD5, '__name__', 'md5')}".lstrip(".")
COMPILED_SCORER = scores.NATIVE
NATIVE = ring_module._NATIVE is not None
"""Whether HashRing looks up through its C index (hashring._placement._ring_native)."""
LOOKUP_PATH = (
    "C index (hashring._placement._ring_native)"
    if NATIVE
    else "Python bucket table (hashring._placement._ring_native not built)"
)
T = TypeVar("T")

# (label, hashring hash, uhashring kwargs, uhashring point space)
PAIRS: tuple[tuple[str, str, dict[str, str], int], ...] = (
    ("mmh3 / uhashring md5", "mmh3", {}, 1 << 128),
    ("ketama / ketama", "ketama", {"hash_fn": "ketama"}, 1 << 32),
)


# ------------------------------------------------------------------ timing helpers


def python_ring(*args: Any, **kwargs: Any) -> HashRing:
    """A HashRing built through the Python bucket table, whether or not the C index is."""
    native = ring_module._NATIVE
    ring_module._NATIVE = None
    try:
        return HashRing(*args, **kwargs)
    finally:
        ring_module._NATIVE = native


def loop_collect(get: Callable[[str], str], keys: Sequence[str]) -> list[str]:
    """A ``get_node`` loop that keeps the owners, as ``get_node_many`` does."""
    return [get(key) for key in keys]


def loop_floor(keys: Sequence[str], points: list[int], owners: list[str]) -> None:
    """The inline floor: hash and bisect written in the loop, no call per key."""
    hash32 = mmh3.hash
    find = bisect
    for key in keys:
        owner = owners[find(points, hash32(key, 0, False))]
    del owner


def loop_md5_floor(
    keys: Sequence[str], table: list[str], md5: Callable[[bytes], Any] = hashlib.md5
) -> None:
    """The ketama floor: the MD5 of each key and one list index, inline in the loop."""
    for key in keys:
        owner = table[md5(key.encode()).digest()[3]]
    del owner


def many_md5_floor(
    keys: Sequence[str], table: list[str], md5: Callable[[bytes], Any] = hashlib.md5
) -> list[str]:
    """The ketama batch floor: the same as a list comprehension that keeps the owners."""
    return [table[md5(key.encode()).digest()[3]] for key in keys]


def ns_each(seconds: float, keys: int) -> str:
    return f"{seconds / keys * 1e9:,.0f} ns"


COUNT_VARIANTS = (
    "floor",
    "floor-many",
    "floor-own",
    "ketama:N",
    "ketama-many:N",
    "ketama-python:N",
    "mmh3:N",
    "mmh3-python:N",
    "rendezvous:N",
    "rendezvous-weighted:N",
    "jump:N",
    "jump-removed:N",
)


def count_run(variant: str, lookups: int) -> None:
    """Build one placement, warm it, then make ``lookups`` lookups of ``user:0``.. untimed.

    For instruction counts that do not drift with the machine's load: run under callgrind
    with N lookups and with 0, and divide the difference by N (``PYTHONHASHSEED=0``, so both
    runs hash alike), e.g. ``valgrind --tool=callgrind --callgrind-out-file=/dev/null
    .venv/bin/python bench/lookup.py --count ketama 20000``. The keys are built the same
    way whatever N is, so building them cancels out.
    """
    keys = [f"user:{i}" for i in range(20_000)][:lookups]
    kind, _, count = variant.partition(":")
    names = [f"node-{i}" for i in range(int(count or 10))]
    table = [f"node-{i % 10}" for i in range(256)]
    placed: Any
    if kind == "floor":
        loop_md5_floor(keys, table)
        return
    if kind == "floor-many":
        many_md5_floor(keys, table)
        return
    if kind == "floor-own":
        loop_md5_floor(keys, table, LOOKUP_MD5)
        return
    if kind in ("ketama", "ketama-many"):
        placed = HashRing(names, vnodes=VNODES, hash="ketama")
    elif kind in ("ketama-python", "mmh3-python"):  # the Python table, with or without C
        placed = python_ring(names, vnodes=VNODES, hash=kind.partition("-")[0])
    elif kind == "mmh3":
        placed = HashRing(names, vnodes=VNODES)
    elif kind == "rendezvous":
        placed = Rendezvous(names)
    elif kind == "rendezvous-weighted":
        placed = Rendezvous({name: float(1 + i % 3) for i, name in enumerate(names)})
    elif kind in ("jump", "jump-removed"):
        placed = JumpHash(names)
        for name in names[1::7] if kind == "jump-removed" else ():
            placed.remove_node(name)
    else:
        raise SystemExit(f"unknown variant {variant!r}; one of {', '.join(COUNT_VARIANTS)}")
    placed.get_node_many(["warm-1", "warm-2"])
    placed.get_node("warm-3")
    if kind == "ketama-many":
        if keys:
            placed.get_node_many(keys)
    else:
        loop_get(placed.get_node, keys)


def placement_rows(
    keys: Sequence[str], rows: list[Row], targets: list[tuple[str, str, bool | None]]
) -> None:
    """Ketama against its MD5 floor; rendezvous and jump single lookups (see the docstring)."""
    lookup = keys[: LOOKUP_KEYS * len(keys) // BATCH_KEYS or 1]
    few = keys[: PLACEMENT_KEYS * len(keys) // BATCH_KEYS or 1]
    warm = keys[:WARMUP_KEYS]
    table = [f"node-{i % 10}" for i in range(256)]
    for nodes in KETAMA_NODES:
        names = [f"node-{i}" for i in range(nodes)]
        ring = HashRing(names, vnodes=VNODES, hash="ketama")
        uring = UHashRing(names, hash_fn="ketama")
        pyring = python_ring(names, vnodes=VNODES, hash="ketama") if NATIVE else None
        for get in (ring.get_node, uring.get_node):
            loop_get(get, warm)
        loop_md5_floor(warm, table)
        loop_md5_floor(warm, table, LOOKUP_MD5)
        single: dict[str, Callable[[], object]] = {
            "hashring": partial(loop_get, ring.get_node, lookup),
            "floor": partial(loop_md5_floor, lookup, table),
            "own": partial(loop_md5_floor, lookup, table, LOOKUP_MD5),
            "uhashring": partial(loop_get, uring.get_node, lookup),
        }
        if pyring is not None:
            loop_get(pyring.get_node, warm)
            single["python"] = partial(loop_get, pyring.get_node, lookup)
        best = interleaved(single, PLACEMENT_ROUNDS)
        ratio = best["hashring"] / best["floor"]
        rows.append(
            [
                "ketama get_node vs MD5 floor",
                nodes,
                "ketama / md5 + index",
                ns_each(best["hashring"], len(lookup)),
                f"floor {ns_each(best['floor'], len(lookup))}; "
                f"uhashring {ns_each(best['uhashring'], len(lookup))}",
                times(ratio),
                "hashring/floor",
            ]
        )
        targets.append(
            (
                f"ketama get_node <= {KETAMA_FLOOR}x MD5 floor, {nodes} nodes",
                times(ratio),
                ratio <= KETAMA_FLOOR,
            )
        )
        own = best["hashring"] / best["own"]
        rows.append(
            [
                "ketama get_node vs own-MD5 floor",
                nodes,
                f"ketama / {MD5_NAME} + index",
                ns_each(best["hashring"], len(lookup)),
                f"floor {ns_each(best['own'], len(lookup))}",
                times(own),
                "hashring/floor",
            ]
        )
        targets.append(
            (f"ketama get_node vs the own-MD5 floor, {nodes} nodes (reported)", times(own), None)
        )
        if "python" in best:
            python_table_row(rows, targets, "ketama get_node", nodes, best, len(lookup))
        ring.get_node_many(warm)
        many_md5_floor(warm, table)
        many_md5_floor(warm, table, LOOKUP_MD5)
        batch: dict[str, Callable[[], object]] = {
            "hashring": partial(ring.get_node_many, keys),
            "floor": partial(many_md5_floor, keys, table),
            "own": partial(many_md5_floor, keys, table, LOOKUP_MD5),
        }
        if pyring is not None:
            pyring.get_node_many(warm)
            batch["python"] = partial(pyring.get_node_many, keys)
        best = interleaved(batch, BATCH_REPEATS)
        ratio = best["hashring"] / best["floor"]
        rows.append(
            [
                f"ketama get_node_many ({len(keys):,} keys) vs floor",
                nodes,
                "ketama / md5 + index",
                ns_each(best["hashring"], len(keys)),
                f"floor {ns_each(best['floor'], len(keys))}",
                times(ratio),
                "hashring/floor",
            ]
        )
        targets.append(
            (
                f"ketama get_node_many <= {KETAMA_FLOOR}x MD5 floor, {nodes} nodes",
                times(ratio),
                ratio <= KETAMA_FLOOR,
            )
        )
        own = best["hashring"] / best["own"]
        rows.append(
            [
                f"ketama get_node_many ({len(keys):,} keys) vs own-MD5 floor",
                nodes,
                f"ketama / {MD5_NAME} + index",
                ns_each(best["hashring"], len(keys)),
                f"floor {ns_each(best['own'], len(keys))}",
                times(own),
                "hashring/floor",
            ]
        )
        targets.append(
            (
                f"ketama get_node_many vs the own-MD5 floor, {nodes} nodes (reported)",
                times(own),
                None,
            )
        )
        if "python" in best:
            python_table_row(rows, targets, "ketama get_node_many", nodes, best, len(keys))
    rendezvous_rows(few, warm, rows)
    cases: list[tuple[str, int, object, float]] = []
    for nodes in RENDEZVOUS_NODES:
        names = [f"node-{i}" for i in range(nodes)]
        cases.append(("rendezvous get_node", nodes, Rendezvous(names), RENDEZVOUS_TARGET))
        weighted = {name: float(1 + i % 3) for i, name in enumerate(names)}
        cases.append(("rendezvous get_node, weighted", nodes, Rendezvous(weighted), 0.0))
    for nodes in JUMP_NODES:
        names = [f"node-{i}" for i in range(nodes)]
        cases.append(("jump get_node", nodes, JumpHash(names), JUMP_TARGET))
        holed = JumpHash(names)
        for name in names[1::7]:
            holed.remove_node(name)
        cases.append(("jump get_node, every 7th removed", nodes, holed, 0.0))
    for what, nodes, placed, target in cases:
        get = placed.get_node  # type: ignore[attr-defined]
        uget = UHashRing([f"node-{i}" for i in range(nodes)]).get_node
        loop_get(get, warm)
        loop_get(uget, warm)
        best = interleaved(
            {"hashring": partial(loop_get, get, few), "uhashring": partial(loop_get, uget, few)},
            PLACEMENT_ROUNDS,
        )
        each = best["hashring"] / len(few)
        rows.append(
            [
                what,
                nodes,
                "mmh3 / uhashring md5",
                ns_each(best["hashring"], len(few)),
                ns_each(best["uhashring"], len(few)),
                times(best["uhashring"] / best["hashring"]),
                "uhashring/hashring",
            ]
        )
        if target:
            label = f"{what} < {target * 1e6:g} us, {nodes} nodes"
            targets.append((label, f"{each * 1e9:,.0f} ns", each < target))


def scoring_path() -> str:
    """Which rendezvous scoring this run measures (see hashring/_placement/scores.py)."""
    if scores.NATIVE is not None:
        return "C (hashring._placement._rendezvous_native)"
    if COMPILED_SCORER is not None:
        return "Python integers and numpy (the C scorer is built; --no-native turned it off)"
    return "Python integers and numpy (the C extension module is not built)"


def python_scoring(build: Callable[[], T]) -> T:
    """``build()`` with the rendezvous scoring's pure-Python path (the fallback)."""
    compiled = scores.NATIVE
    scores.NATIVE = None
    try:
        return build()
    finally:
        scores.NATIVE = compiled


def rendezvous_rows(few: Sequence[str], warm: Sequence[str], rows: list[Row]) -> None:
    """Rendezvous ``get_node`` and ``get_nodes(key, 3)`` with the C scorer against the same
    placement built on the pure-Python path, interleaved in this run (with the C scorer)."""
    if scores.NATIVE is None:
        return
    for nodes in RENDEZVOUS_NODES:
        names = [f"node-{i}" for i in range(nodes)]
        weighted = {name: float(1 + i % 3) for i, name in enumerate(names)}
        for what, nodes_arg in (("", names), (", weighted", weighted)):
            native = Rendezvous(nodes_arg)
            python = python_scoring(partial(Rendezvous, nodes_arg))
            calls = [("get_node", native.get_node, python.get_node)]
            if not what:
                calls.append(
                    ("get_nodes(key, 3)", partial(get_three, native), partial(get_three, python))
                )
            for call, get, python_get in calls:
                loop_get(get, warm)
                loop_get(python_get, warm)
                best = interleaved(
                    {
                        "C": partial(loop_get, get, few),
                        "Python": partial(loop_get, python_get, few),
                    },
                    PLACEMENT_ROUNDS,
                )
                rows.append(
                    [
                        f"rendezvous {call}{what}: C vs Python fallback",
                        nodes,
                        "mmh3 / (the same, Python path)",
                        ns_each(best["C"], len(few)),
                        ns_each(best["Python"], len(few)),
                        times(best["Python"] / best["C"]),
                        "Python/C",
                    ]
                )


def get_three(placed: Rendezvous, key: str) -> list[str]:
    return placed.get_nodes(key, 3)


def floor_ring(names: Sequence[str]) -> tuple[list[int], list[str]]:
    """Sorted points and a parallel owners list with a wrap entry (index len(points))."""
    pairs = sorted(
        (mmh3.hash(f"{name}-{i}", 0, False), name) for name in names for i in range(VNODES)
    )
    points = [point for point, _ in pairs]
    owners = [name for _, name in pairs]
    owners.append(owners[0])
    return points, owners


def change_times(
    add: Callable[[str], object], remove: Callable[[str], object], count: int
) -> tuple[list[float], list[float]]:
    """Seconds of ``count`` adds of fresh names, then of removing those names again."""
    add("warm-up")
    remove("warm-up")
    fresh = [f"fresh-{i}" for i in range(count)]
    adds = [timed(partial(add, name))[0] for name in fresh]
    removes = [timed(partial(remove, name))[0] for name in fresh]
    return adds, removes


# ------------------------------------------------------------------ balance helpers


def uhash_peak_to_mean(ring: Any, nodes: int, space: int) -> float:
    """Peak-to-mean hash-space share of a uhashring ring.

    uhashring places a key hashing to ``h`` on the first point ``p > h`` (wrapping), so the
    point ``p`` owns the arc ``[prev, p)``; arcs are summed per owner, over ``space``.
    """
    points: list[int] = ring.runtime._keys
    owner_of: dict[int, str] = ring.runtime._ring
    owned: Counter[str] = Counter()
    previous = points[-1] - space
    for point in points:
        owned[owner_of[point]] += point - previous
        previous = point
    return max(owned.values()) / space * nodes


def counts_peak_to_mean(owners: Sequence[str], nodes: int) -> float:
    """Peak-to-mean of how many of ``owners`` each node got."""
    return max(Counter(owners).values()) / (len(owners) / nodes)


# ------------------------------------------------------------------ formatting


def ns(seconds: float, keys: int) -> str:
    return f"{seconds / keys * 1e9:,.0f} ns"


def rate(seconds: float, keys: int) -> str:
    return f"{keys / seconds / 1e6:,.2f} M keys/s"


def python_table_row(
    rows: list[Row],
    targets: list[tuple[str, str, bool | None]],
    what: str,
    nodes: int,
    best: dict[str, float],
    keys: int,
) -> None:
    """The same lookups on a ring built through the Python table ("python" in ``best``),
    beside the C index ("hashring") and the MD5 floor, measured in the same rounds."""
    rows.append(
        [
            f"{what}, Python table vs MD5 floor",
            nodes,
            "ketama / md5 + index",
            ns_each(best["python"], keys),
            f"floor {ns_each(best['floor'], keys)}; C index {ns_each(best['hashring'], keys)}",
            times(best["python"] / best["floor"]),
            "python/floor",
        ]
    )
    targets.append(
        (
            f"{what} Python table / C index, {nodes} nodes (reported)",
            times(best["python"] / best["hashring"]),
            None,
        )
    )


def print_tables(rows: list[Row], targets: list[tuple[str, str, bool | None]], mode: str) -> None:
    """Print the measurements and the targets."""
    print(
        f"hashring vs uhashring ({mode} run, {VNODES} points per node, Python "
        f"{sys.version.split()[0]})"
    )
    print(f"HashRing lookup path: {LOOKUP_PATH}")
    print(f"rendezvous scoring: {scoring_path()}")
    headers = [
        "measure",
        "nodes",
        "hash (hashring / uhashring)",
        "hashring",
        "uhashring (or floor)",
        "ratio",
        "ratio is",
    ]
    print(
        tabulate(
            rows,
            headers=headers,
            colalign=("left", "right", "left", "right", "right", "right", "left"),
        )
    )
    print()
    print(targets_table(targets))


# ------------------------------------------------------------------ main


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="10x fewer keys (smoke run)")
    parser.add_argument(
        "--placement-only",
        action="store_true",
        help="only the ketama floor, rendezvous and jump rows",
    )
    parser.add_argument(
        "--no-native",
        action="store_true",
        help="score rendezvous with the pure-Python fallback even if the C scorer is built",
    )
    parser.add_argument(
        "--count",
        nargs=2,
        metavar=("VARIANT", "N"),
        help=f"make N untimed lookups of one variant, for callgrind ({', '.join(COUNT_VARIANTS)})",
    )
    args = parser.parse_args(argv)
    if args.no_native:
        scores.NATIVE = None
    if args.count:
        count_run(args.count[0], int(args.count[1]))
        return 0
    scale = 10 if args.quick else 1
    lookup_n = LOOKUP_KEYS // scale
    batch_n = BATCH_KEYS // scale

    keys = [f"user:{i}" for i in range(batch_n)]
    lookup_keys = keys[:lookup_n]
    warm = keys[:WARMUP_KEYS]

    rows: list[Row] = []  # measure, nodes, hash, hashring, other, ratio, ratio is
    targets: list[tuple[str, str, bool | None]] = []

    mode = "quick" if args.quick else "full"
    placement_rows(keys, rows, targets)
    if args.placement_only:
        print_tables(rows, targets, f"{mode}, placement only")
        return 0
    for nodes in NODE_COUNTS:
        names = [f"node-{i}" for i in range(nodes)]
        rings = {h: HashRing(names, vnodes=VNODES, hash=h) for _, h, _, _ in PAIRS}
        urings = {h: UHashRing(names, **kw) for _, h, kw, _ in PAIRS}
        points, owners = floor_ring(names)

        # get_node: plain loop, best of 5.
        mine: dict[str, float] = {}
        for label, h, _, _ in PAIRS:
            for get in (rings[h].get_node, urings[h].get_node):
                loop_get(get, warm)
            mine[h] = best_of(partial(loop_get, rings[h].get_node, lookup_keys), LOOKUP_REPEATS)
            theirs = best_of(partial(loop_get, urings[h].get_node, lookup_keys), LOOKUP_REPEATS)
            speedup = theirs / mine[h]
            rows.append(
                [
                    "get_node (per key)",
                    nodes,
                    label,
                    ns(mine[h], lookup_n),
                    ns(theirs, lookup_n),
                    times(speedup),
                    "uhashring/hashring",
                ]
            )
            targets.append(
                (f"get_node >= 4x uhashring, {nodes} nodes, {label}", times(speedup), speedup >= 4)
            )
        if NATIVE:  # the same get_node through the Python table, interleaved with the C index
            for _, h, _, _ in PAIRS:
                pyring = python_ring(names, vnodes=VNODES, hash=h)
                loop_get(pyring.get_node, warm)
                best = interleaved(
                    {
                        "hashring": partial(loop_get, rings[h].get_node, lookup_keys),
                        "python": partial(loop_get, pyring.get_node, lookup_keys),
                    },
                    LOOKUP_REPEATS,
                )
                rows.append(
                    [
                        "get_node, Python table vs C index",
                        nodes,
                        h,
                        ns(best["python"], lookup_n),
                        f"C index {ns(best['hashring'], lookup_n)}",
                        times(best["python"] / best["hashring"]),
                        "python/C index",
                    ]
                )
                del pyring
        loop_floor(warm, points, owners)
        floor = best_of(partial(loop_floor, lookup_keys, points, owners), LOOKUP_REPEATS)
        rows.append(
            [
                "get_node vs inline floor",
                nodes,
                "mmh3 / inline bisect",
                ns(mine["mmh3"], lookup_n),
                f"floor {ns(floor, lookup_n)}",
                times(floor / mine["mmh3"]),
                "floor/hashring",
            ]
        )

        # The keyed hash (hash_key=, against hash flooding) against the default mmh3.
        keyed = HashRing(names, vnodes=VNODES, hash_key=BENCH_HASH_KEY)
        loop_get(keyed.get_node, warm)
        keyed_s = best_of(partial(loop_get, keyed.get_node, lookup_keys), LOOKUP_REPEATS)
        rows.append(
            [
                "get_node keyed (hash_key)",
                nodes,
                "mmh3+keyed / mmh3",
                ns(keyed_s, lookup_n),
                ns(mine["mmh3"], lookup_n),
                times(keyed_s / mine["mmh3"]),
                "keyed/unkeyed",
            ]
        )
        keyed.get_node_many(warm)
        keyed_many = best_of(partial(keyed.get_node_many, keys), BATCH_REPEATS)
        plain_many = best_of(partial(rings["mmh3"].get_node_many, keys), BATCH_REPEATS)
        rows.append(
            [
                f"get_node_many keyed ({batch_n:,} keys)",
                nodes,
                "mmh3+keyed / mmh3",
                rate(keyed_many, batch_n),
                rate(plain_many, batch_n),
                times(keyed_many / plain_many),
                "keyed/unkeyed",
            ]
        )

        # get_node_many vs a uhashring get_node loop, 1M keys; keep the owners for balance.
        placed: dict[tuple[str, str], list[str]] = {}
        for label, h, _, _ in PAIRS:
            many = rings[h].get_node_many
            uget = urings[h].get_node
            many(warm)
            loop_collect(uget, warm)
            mine_s, placed["hashring", h] = best_result(partial(many, keys), BATCH_REPEATS)
            theirs_s, placed["uhashring", h] = best_result(
                partial(loop_collect, uget, keys), BATCH_REPEATS
            )
            speedup = theirs_s / mine_s
            rows.append(
                [
                    f"get_node_many ({batch_n:,} keys)",
                    nodes,
                    label,
                    rate(mine_s, batch_n),
                    f"loop {rate(theirs_s, batch_n)}",
                    times(speedup),
                    "hashring/uhashring",
                ]
            )
            targets.append(
                (
                    f"get_node_many >= 10x uhashring loop, {nodes} nodes, {label}",
                    times(speedup),
                    speedup >= 10,
                )
            )

        # Balance: hash-space shares and actual key counts.
        for label, h, _, space in PAIRS:
            shares = rings[h].hash_space_shares()
            rows.append(
                [
                    "peak/mean hash-space share",
                    nodes,
                    label,
                    f"{max(shares.values()) * nodes:.3f}",
                    f"{uhash_peak_to_mean(urings[h], nodes, space):.3f}",
                    "",
                    "",
                ]
            )
        for label, h, _, _ in PAIRS:
            rows.append(
                [
                    f"peak/mean keys ({batch_n:,} keys)",
                    nodes,
                    label,
                    f"{counts_peak_to_mean(placed['hashring', h], nodes):.3f}",
                    f"{counts_peak_to_mean(placed['uhashring', h], nodes):.3f}",
                    "",
                    "",
                ]
            )
        same = sum(
            a == b
            for a, b in zip(
                placed["hashring", "ketama"], placed["uhashring", "ketama"], strict=True
            )
        )
        rows.append(
            [
                "ketama placement agreement",
                nodes,
                "ketama / ketama",
                f"{same / batch_n:.4%} of keys",
                "",
                "",
                "same owner in both",
            ]
        )
        del rings, urings, placed

    # Build, add_node, remove_node at 1,000 nodes.
    names = [f"node-{i}" for i in range(BIG)]
    for label, h, kw, _ in PAIRS:
        HashRing(names[:10], vnodes=VNODES, hash=h)
        UHashRing(names[:10], **kw)
        mine_s = best_of(partial(HashRing, names, vnodes=VNODES, hash=h), BUILD_REPEATS)
        theirs_s = best_of(partial(UHashRing, names, **kw), BUILD_REPEATS)
        speedup = theirs_s / mine_s
        rows.append(
            [
                f"build {BIG:,} x {VNODES}",
                BIG,
                label,
                ms(mine_s),
                ms(theirs_s),
                times(speedup),
                "uhashring/hashring",
            ]
        )
        targets.append(
            (f"build >= 5x faster than uhashring, {label}", times(speedup), speedup >= 5)
        )
    for label, h, kw, _ in PAIRS:
        ring = HashRing(names, vnodes=VNODES, hash=h)
        uring = UHashRing(names, **kw)
        mine_add, mine_rm = change_times(ring.add_node, ring.remove_node, CHANGES)
        their_count = SLOW_CHANGES if h == "ketama" else CHANGES
        their_add, their_rm = change_times(uring.add_node, uring.remove_node, their_count)
        for what, m, t in (("add_node", mine_add, their_add), ("remove_node", mine_rm, their_rm)):
            median = statistics.median(m)
            rows.append(
                [
                    f"{what} (median; max)",
                    BIG,
                    label,
                    f"{ms(median)}; {ms(max(m))}",
                    f"{ms(statistics.median(t))}; {ms(max(t))}",
                    times(statistics.median(t) / median),
                    f"uhashring/hashring, n={len(m)}/{len(t)}",
                ]
            )
            if what == "add_node":
                targets.append((f"add_node < 10 ms (median), {label}", ms(median), median < 0.010))

    # Memory retained by construction, per point.
    for label, h, kw, _ in PAIRS:
        mine_b, ring = retained_bytes(partial(HashRing, names, vnodes=VNODES, hash=h))
        theirs_b, uring = retained_bytes(partial(UHashRing, names, **kw))
        mine_p = int(ring._snapshot.points.size)
        theirs_p = len(uring.runtime._keys)
        rows.append(
            [
                "memory per point",
                BIG,
                label,
                f"{mine_b / mine_p:,.1f} B ({mine_b / 1e6:,.2f} MB)",
                f"{theirs_b / theirs_p:,.1f} B ({theirs_b / 1e6:,.2f} MB)",
                times((theirs_b / theirs_p) / (mine_b / mine_p)),
                "uhashring/hashring",
            ]
        )
        rows.append(["points", BIG, label, f"{mine_p:,}", f"{theirs_p:,}", "", ""])
        snap = ring._snapshot
        buckets = 1 << snap.bits
        if snap.index is not None:
            lookup_part = "C index (table + pairs)"
            lookup_size = snap.index.nbytes
        else:
            lookup_part, lookup_size = "table list", sys.getsizeof(snap.table)
        parts = {
            lookup_part: lookup_size,
            "points array": int(snap.points.nbytes),
            "owners array": int(snap.owners.nbytes),
        }
        parts["rest"] = mine_b - sum(parts.values())
        for part, size in parts.items():
            extra = f" ({buckets:,} buckets)" if part == lookup_part else ""
            rows.append(
                [
                    f"  hashring {part}",
                    BIG,
                    label,
                    f"{size / mine_p:,.1f} B/point ({size / 1e6:,.2f} MB){extra}",
                    "",
                    "",
                    "",
                ]
            )
        targets.append(
            (f"memory reported per point, {label}", f"{mine_b / mine_p:,.1f} B/point", None)
        )
        del ring, uring

    print_tables(rows, targets, mode)
    return 0


if __name__ == "__main__":
    sys.exit(main())
