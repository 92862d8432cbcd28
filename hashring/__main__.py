"""``python -m hashring``: where sample keys go, how balanced the ring is, what a change moves.

Places 100,000 built-in sample keys on five nodes, prints each node's load and the balance
statistics, then adds a sixth node and reports how many keys moved against the ideal 1/6.
Needs no server. (The full ``hashring report`` command arrives with the command line.)
"""

from __future__ import annotations

import statistics
from collections import Counter

from ._ring import HashRing

SAMPLE_SIZE = 100_000


def _load_table(ring: HashRing, owners: list[str]) -> list[str]:
    counts = Counter(owners)
    mean = len(owners) / len(ring)
    lines = [f"{'node':<10}{'keys':>9}{'share':>9}{'vs mean':>10}"]
    for name in ring:
        keys = counts[name]
        lines.append(f"{name:<10}{keys:>9,}{keys / len(owners):>9.2%}{keys / mean - 1:>+10.2%}")
    loads = [counts[name] for name in ring]
    lines.append(
        f"mean {mean:,.0f}  max {max(loads):,}  min {min(loads):,}  "
        f"stdev {statistics.pstdev(loads):,.0f}  peak-to-mean {max(loads) / mean:.3f}"
    )
    return lines


def main() -> None:
    """Print the demo report."""
    keys = [f"user:{i}" for i in range(SAMPLE_SIZE)]
    ring = HashRing([f"cache-{i}" for i in range(1, 6)])
    before = ring.get_node_many(keys)
    print(f"{ring!r}: {SAMPLE_SIZE:,} sample keys")
    for key in ("user:1", "user:42", "session:{user:42}:cart"):
        print(f"  {key!r:<26} -> {ring.get_node(key)}   preference list {ring.get_nodes(key, 3)}")
    print()
    print("\n".join(_load_table(ring, before)))
    ring.add_node("cache-6")
    after = ring.get_node_many(keys)
    moved = sum(b != a for b, a in zip(before, after, strict=True))
    print()
    print(
        f"add cache-6: {moved:,} keys moved ({moved / SAMPLE_SIZE:.2%}; ideal 1/6 = "
        f"{1 / 6:.2%}), all of them to cache-6: "
        f"{all(a == 'cache-6' for b, a in zip(before, after, strict=True) if b != a)}"
    )
    print("\n".join(_load_table(ring, after)))


if __name__ == "__main__":
    main()
