"""Measuring helpers shared by the benchmark scripts in bench/ (run by hand).

Every timed region runs with the garbage collector off; callers compare peers measured in
the same run and print ratios, because absolute times drift on shared machines.
"""

from __future__ import annotations

import cProfile
import gc
import pstats
import time
import tracemalloc
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar, cast

from tabulate import tabulate

T = TypeVar("T")
Row = list[Any]
Target = tuple[str, str, "bool | None"]
"""A summary row: what, the measured value as shown, met (True), missed (False) or only
reported (None)."""
STATUS = {True: "PASS", False: "MISS", None: "REPORTED"}


def timed(fn: Callable[[], T]) -> tuple[float, T]:
    """Seconds taken by one call of ``fn`` (gc off) and its result."""
    gc.disable()
    try:
        start = time.perf_counter()
        result = fn()
        return time.perf_counter() - start, result
    finally:
        gc.enable()


def best_of(fn: Callable[[], object], repeats: int) -> float:
    """Fastest of ``repeats`` calls of ``fn``, in seconds."""
    return min(timed(fn)[0] for _ in range(repeats))


def best_result(fn: Callable[[], T], repeats: int) -> tuple[float, T]:
    """Fastest of ``repeats`` calls of ``fn``, in seconds, and the last call's result."""
    best = float("inf")
    for _ in range(repeats):
        seconds, result = timed(fn)
        best = min(best, seconds)
    return best, result


def interleaved(fns: dict[str, Callable[[], object]], rounds: int) -> dict[str, float]:
    """Best seconds of each of ``fns`` over ``rounds`` rounds, order flipped every round."""
    best = dict.fromkeys(fns, float("inf"))
    names = list(fns)
    for r in range(rounds):
        for name in names if r % 2 == 0 else reversed(names):
            best[name] = min(best[name], timed(fns[name])[0])
    return best


def loop_get(get: Callable[[str], Any], keys: Sequence[str]) -> None:
    """The plain Python loop every single-key lookup or GET is timed with."""
    for key in keys:
        get(key)


def retained_bytes(build: Callable[[], T]) -> tuple[int, T]:
    """Bytes still allocated after ``build()`` returns (tracemalloc), and its result."""
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        result = build()
        gc.collect()
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    return sum(stat.size_diff for stat in after.compare_to(before, "filename")), result


def profile_calls(
    fn: Callable[[], object], units: int, *, repeats: int = 1, top: int = 10
) -> list[Row]:
    """cProfile ``repeats`` calls of ``fn``; the ``top`` functions by own time, per unit.

    ``units`` is how many measured operations (GETs, requests) the calls make. Columns:
    function, calls per unit, own µs per unit, own share, cumulative µs per unit.
    """
    profiler = cProfile.Profile()
    gc.disable()
    try:
        profiler.runcall(lambda: [fn() for _ in range(repeats)])
    finally:
        gc.enable()
    stats = pstats.Stats(profiler)
    raw = cast(dict[tuple[str, int, str], tuple[int, int, float, float, Any]], stats.stats)  # type: ignore[attr-defined]
    total = sum(tottime for _, _, tottime, _, _ in raw.values())
    ranked = sorted(raw.items(), key=lambda item: item[1][2], reverse=True)[:top]
    rows: list[Row] = []
    for (filename, line, name), (_, ncalls, tottime, cumtime, _) in ranked:
        where = name if filename == "~" else f"{_short(filename)}:{line} {name}"
        rows.append(
            [
                where,
                f"{ncalls / units:,.1f}",
                f"{tottime / units * 1e6:,.2f}",
                f"{tottime / total:.1%}",
                f"{cumtime / units * 1e6:,.2f}",
            ]
        )
    return rows


def _short(filename: str) -> str:
    for marker in ("site-packages/", "/work/main/"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return Path(filename).name


def exit_on_signal(signum: int, frame: object) -> None:
    """SIGTERM handler: unwind through the context managers, so servers stop."""
    raise SystemExit(128 + signum)


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:,.2f} ms"


def times(ratio: float) -> str:
    return f"{ratio:,.2f}x"


def targets_table(targets: Sequence[Target]) -> str:
    """The benchmarks' summary table: target, measured, PASS / MISS / REPORTED."""
    return tabulate(
        [(name, value, STATUS[ok]) for name, value, ok in targets],
        headers=["target", "measured", "status"],
    )
