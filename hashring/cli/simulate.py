"""``hashring simulate``: the study's dispatch strategies on one request stream, measured.

A discrete-event simulation (:mod:`hashring._simulation`) of Poisson arrivals (or a replayed
``--trace``, format in :mod:`hashring.cli._trace`) over nodes of given speeds, every
strategy on the same arrivals, keys and work. Times are in seconds, speeds in work units per
second, and a request's work has mean 1 unit.

JSON (``--format json``), schema ``hashring.simulate/1`` (fields are only ever added)::

    {"schema": "hashring.simulate/1",
     "workload": {"source": "poisson" | "trace", "trace": path | null, "requests": int,
                  "keys": int, "zipf": float | null, "service": str | null,
                  "rate": float,            # requests per second (a trace: over its window)
                  "offered_load": float,    # total work / window / total speed
                  "window": float, "seed": int},
     "nodes": [{"name": str, "speed": float}], "epsilon": float,
     "strategies": [{"strategy": str, "needs": str,
                     "load": {"mean", "max", "min", "stdev", "cv", "peak_to_mean"},
                     "queue": {"mean": float, "max": int},
                     "latency": {"mean", "p50", "p99", "p999", "max"},
                     "affinity": float, "seconds": float,
                     "nodes": [{"name", "speed", "served", "busy", "utilisation",
                                "mean_queue", "max_queue"}]}]}

``load`` summarises the per-node utilisations (busy seconds over the window); ``seconds`` is
the wall time of that strategy's simulation on this machine.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass
from typing import Any

import numpy as np
from tabulate import tabulate

from .._analysis import LoadSummary
from .._balancing.bounded import MAX_EPSILON
from .._errors import HashRingError
from .._simulation import (
    MAX_SPEED,
    MAX_TIME,
    MIN_SPEED,
    NEEDS,
    SERVICES,
    STRATEGIES,
    Outcome,
    Workload,
    poisson_workload,
    service_work,
    simulate,
)
from ._common import (
    EXIT_OK,
    MAX_NODES,
    UsageError,
    check_output_path,
    escape,
    positive_float,
    positive_int,
    progress,
)
from ._simulate_plot import MAX_PLOTTED_NODES, check_plot, plot_simulation
from ._trace import read_trace

__all__ = [
    "DEFAULT_NODES",
    "MAX_REQUESTS",
    "MAX_SIMULATED_KEYS",
    "MAX_SIMULATED_NODES",
    "register",
    "run",
]

DEFAULT_NODES = "fast-1=4,fast-2=4,mid-1=2,mid-2=2,slow-1=1,slow-2=1"
DEFAULT_REQUESTS = 200_000
DEFAULT_KEYS = 10_000
DEFAULT_LOAD = 0.7
DEFAULT_ZIPF = 0.8
DEFAULT_SEED = 1
MAX_REQUESTS = 5_000_000
"""Most requests one run simulates (Poisson or a trace): a few hundred MB of arrays."""
MAX_SIMULATED_NODES = 1_000
MAX_SIMULATED_KEYS = 1_000_000
"""Most distinct keys of Poisson arrivals (each is named and placed by every hash strategy)."""
MAX_LOAD = 100.0
NODE_COLUMNS = 12
"""The text output has a per-node utilisation table up to this many nodes."""
SCHEMA = "hashring.simulate/1"


@dataclass(frozen=True)
class Described:
    """The workload and how to describe it."""

    workload: Workload
    source: str
    trace: str | None
    zipf: float | None
    service: str | None
    keys: int


def register(commands: Any) -> None:
    """Add the ``simulate`` subcommand."""
    parser = commands.add_parser(
        "simulate",
        help="dispatch strategies on one request stream: load, queues, latency, affinity",
        description="Simulate a request stream over nodes of given speeds (FIFO queue per "
        "node) and dispatch it with every strategy on the same arrivals: hash placements "
        "(ring, maglev, rendezvous, jump), bounded-load, round-robin, weighted round-robin, "
        "random, least-loaded and power-of-two choices. Prints per strategy the load "
        "(utilisation: busy time over the window), queue lengths, latency percentiles and "
        "key affinity. Times in seconds, speeds in work units per second, mean work 1 unit.",
        epilog="example: hashring simulate --nodes fast=4,slow=1 --load 0.8 --zipf 1.1",
    )
    parser.add_argument(
        "--nodes",
        default=DEFAULT_NODES,
        metavar="NAME=SPEED,...|N",
        help=f"nodes and their speeds (work units/s; a name alone: 1), or a count N of "
        f"speed-1 nodes (default {DEFAULT_NODES}; at most {MAX_SIMULATED_NODES:,} nodes)",
    )
    arrivals = parser.add_argument_group("arrivals (Poisson at --load or --rate, or a trace)")
    given = arrivals.add_mutually_exclusive_group()
    given.add_argument(
        "--load",
        type=positive_float,
        metavar="RHO",
        help=f"arrival rate as a fraction of the nodes' total speed (default {DEFAULT_LOAD})",
    )
    given.add_argument("--rate", type=positive_float, metavar="R", help="requests per second")
    given.add_argument(
        "--trace",
        metavar="FILE",
        help="replay arrivals from FILE ('-': stdin): one 'TIME KEY [WORK]' per line",
    )
    arrivals.add_argument(
        "--requests",
        type=positive_int,
        metavar="N",
        help=f"Poisson arrivals (default {DEFAULT_REQUESTS:,}, at most {MAX_REQUESTS:,})",
    )
    arrivals.add_argument(
        "--keys",
        type=_keys,
        metavar="K",
        help=f"distinct keys key:0 ... (default {DEFAULT_KEYS:,}, at most {MAX_SIMULATED_KEYS:,})",
    )
    arrivals.add_argument(
        "--zipf",
        type=_zipf,
        metavar="S",
        help=f"key popularity ~ 1/rank**S; 0 for uniform (default {DEFAULT_ZIPF})",
    )
    arrivals.add_argument(
        "--service",
        choices=SERVICES,
        help="work per request, mean 1 unit (default exponential; a trace may give it)",
    )
    parser.add_argument(
        "--strategies",
        metavar="A,B,...",
        help=f"strategies to run (default all: {','.join(STRATEGIES)})",
    )
    parser.add_argument(
        "--epsilon",
        type=positive_float,
        default=0.25,
        help="bounded-load: a node's cap is (1 + epsilon) x its fair share (default 0.25)",
    )
    parser.add_argument(
        "--seed", type=_seed, default=DEFAULT_SEED, help=f"seed (default {DEFAULT_SEED})"
    )
    parser.add_argument("--format", choices=("text", "json"), default="text")
    parser.add_argument("--plot", metavar="FILE.png", help="draw the figures to a PNG file")
    parser.set_defaults(run=run)


def _zipf(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (math.isfinite(value) and 0 <= value <= 100):
        raise argparse.ArgumentTypeError(f"{text} must be a number from 0 to 100")
    return value


def _seed(text: str) -> int:
    if text.strip() in ("0", "-0"):
        return 0
    try:
        value = positive_int(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"{text[:30]!r} is not an integer from 0") from None
    if value >= 2**63:
        raise argparse.ArgumentTypeError(f"{text[:30]} must be below 2**63")
    return value


def _keys(text: str) -> int:
    value = positive_int(text)
    if value > MAX_SIMULATED_KEYS:
        raise argparse.ArgumentTypeError(f"{text}: at most {MAX_SIMULATED_KEYS:,} keys")
    return value


def parse_speeds(text: str) -> dict[str, float]:
    """``--nodes``: ``NAME=SPEED,...`` (a name alone has speed 1) or a count N of speed-1
    nodes ``node-1`` ... ``node-N``.

    Raises:
        UsageError: an empty or repeated name, a speed that is not a number in [MIN_SPEED,
            MAX_SPEED], more than :data:`MAX_SIMULATED_NODES` nodes.
    """
    stripped = text.strip()
    if stripped.isdecimal():
        digits = stripped.lstrip("0") or "0"
        if len(digits) > 7 or not 1 <= int(digits) <= MAX_SIMULATED_NODES:
            raise UsageError(f"--nodes {digits[:20]}: give 1 to {MAX_SIMULATED_NODES:,} nodes")
        return {f"node-{i}": 1.0 for i in range(1, int(digits) + 1)}
    items = stripped.split(",")
    if len(items) > min(MAX_NODES, MAX_SIMULATED_NODES):
        raise UsageError(f"--nodes: at most {MAX_SIMULATED_NODES:,} nodes are allowed")
    speeds: dict[str, float] = {}
    for item in items:
        name, sep, value = item.strip().rpartition("=")
        if not sep:
            name, value = item.strip(), "1"
        if not name:
            raise UsageError(f"--nodes {text!r}: empty node name (give NAME=SPEED,...)")
        if name in speeds:
            raise UsageError(f"--nodes: node {name!r} is named twice")
        try:
            speed = float(value)
        except ValueError:
            raise UsageError(f"--nodes {item!r}: speed {value[:30]!r} is not a number") from None
        if not (math.isfinite(speed) and MIN_SPEED <= speed <= MAX_SPEED):
            raise UsageError(
                f"--nodes {item!r}: speed must be a number from {MIN_SPEED:g} to {MAX_SPEED:g}"
            )
        speeds[name] = speed
    return speeds


def parse_strategies(text: str | None) -> list[str]:
    """``--strategies``: comma-separated names from :data:`STRATEGIES` (None: all), in the
    order given.

    Raises:
        UsageError: an unknown or repeated name.
    """
    if text is None:
        return list(STRATEGIES)
    chosen = [name.strip() for name in text.split(",")]
    for name in chosen:
        if name not in STRATEGIES:
            raise UsageError(
                f"--strategies: unknown strategy {name!r:.60}; use {', '.join(STRATEGIES)}"
            )
    if len(set(chosen)) != len(chosen):
        raise UsageError("--strategies: a strategy is named twice")
    return chosen


def run(args: argparse.Namespace) -> int:
    """Carry out ``hashring simulate``."""
    speeds = parse_speeds(args.nodes)
    strategies = parse_strategies(args.strategies)
    if args.epsilon > MAX_EPSILON:
        raise UsageError(f"--epsilon {args.epsilon:g}: at most {MAX_EPSILON:g}")
    if args.plot:
        check_plot(args.plot, len(speeds))
        check_output_path(args.plot, "--plot")
    described = _workload(args, speeds)
    outcomes = []
    with progress(described.workload.requests * len(strategies), "simulating", "request") as bar:
        for strategy in strategies:
            try:
                outcomes.append(
                    simulate(
                        described.workload,
                        speeds,
                        strategy,
                        epsilon=args.epsilon,
                        seed=args.seed,
                        progress=bar.update,
                    )
                )
            except HashRingError as exc:  # the speeds, as weights, beyond a placement's bounds
                raise UsageError(f"--nodes: {strategy} cannot take these speeds: {exc}") from None
    if args.format == "json":
        json.dump(simulate_json(described, speeds, outcomes, args), sys.stdout, indent=2)
        print()
    else:
        print(render_text(described, speeds, outcomes, args.seed))
    if args.plot:
        plot_simulation(outcomes, _title(described, speeds), args.plot)
    return EXIT_OK


def _workload(args: argparse.Namespace, speeds: dict[str, float]) -> Described:
    capacity = sum(speeds.values())
    if args.trace is not None:
        for flag, value in (
            ("--requests", args.requests),
            ("--keys", args.keys),
            ("--zipf", args.zipf),
        ):
            if value is not None:
                raise UsageError(f"{flag} does not apply to --trace: the trace gives the arrivals")
        trace = read_trace(args.trace, max_requests=MAX_REQUESTS)
        if trace.work is not None and args.service is not None:
            raise UsageError("--service does not apply: the trace gives each request's work")
        if trace.work is None:
            rng = np.random.default_rng(np.random.SeedSequence(args.seed).spawn(3)[2])
            work = service_work(args.service or "exponential", len(trace.times), rng)
        else:
            work = np.array(trace.work)
        try:
            workload = Workload.of(trace.times, trace.keys, work, trace.key_names)
        except HashRingError as exc:
            raise UsageError(f"--trace {args.trace}: {exc}") from None
        return Described(
            workload,
            "trace",
            args.trace,
            None,
            None if trace.work is not None else args.service or "exponential",
            len(trace.key_names),
        )
    requests = args.requests or DEFAULT_REQUESTS
    if requests > MAX_REQUESTS:
        shown = f"{requests:,}" if requests < 10**15 else f"{requests:.3g}"
        raise UsageError(f"--requests {shown}: at most {MAX_REQUESTS:,} are allowed")
    if args.load is not None and args.load > MAX_LOAD:
        raise UsageError(f"--load {args.load:g}: at most {MAX_LOAD:g}")
    rate = args.rate if args.rate is not None else (args.load or DEFAULT_LOAD) * capacity
    if rate > MAX_LOAD * capacity:
        raise UsageError(
            f"--rate {rate:g}: more than {MAX_LOAD:g} times what the nodes can serve "
            f"(their speeds add up to {capacity:g} work units/s)"
        )
    if requests / rate > MAX_TIME / 10:
        raise UsageError(
            f"{requests:,} requests at {rate:g}/s span more than {MAX_TIME / 10:g} s: "
            "raise the rate (or the speeds)"
        )
    keys = args.keys or DEFAULT_KEYS
    zipf = DEFAULT_ZIPF if args.zipf is None else args.zipf
    service = args.service or "exponential"
    workload = poisson_workload(
        requests=requests, rate=rate, keys=keys, zipf=zipf, service=service, seed=args.seed
    )
    return Described(workload, "poisson", None, zipf, service, keys)


def _offered(described: Described, speeds: dict[str, float]) -> float:
    workload = described.workload
    return float(workload.work.sum()) / workload.window / sum(speeds.values())


def _rate(described: Described) -> float:
    workload = described.workload
    return workload.requests / workload.window


def _title(described: Described, speeds: dict[str, float]) -> str:
    workload = described.workload
    if described.trace is not None:
        source = f"trace {described.trace}"
    else:
        popularity = "uniform" if not described.zipf else f"Zipf s={described.zipf:g}"
        source = f"Poisson, {described.keys:,} keys {popularity}"
    nodes = " ".join(f"{name}={speed:g}" for name, speed in speeds.items())
    if len(speeds) > 8:
        nodes = f"{len(speeds):,} nodes, total speed {sum(speeds.values()):g}"
    return (
        f"{workload.requests:,} requests ({source}), offered load "
        f"{_offered(described, speeds):.2f}; {nodes}"
    )


def _seconds(value: float) -> str:
    if value < 1000:
        return f"{value:,.2f}"
    return f"{value:,.0f}"


def render_text(
    described: Described, speeds: dict[str, float], outcomes: list[Outcome], seed: int
) -> str:
    """The terminal report: the workload, one row per strategy, per-node utilisation (up to
    :data:`NODE_COLUMNS` nodes) and a note per strategy that overloads a node. Names and
    paths are escaped."""
    workload = described.workload
    capacity = sum(speeds.values())
    if described.trace is not None:
        work = (
            "work from the trace"
            if described.service is None
            else f"{described.service} work of mean 1 unit; seed {seed}"
        )
        arrivals = f"from trace {described.trace} ({described.keys:,} keys, {work})"
    else:
        popularity = "uniform" if not described.zipf else f"Zipf s={described.zipf:g}"
        arrivals = (
            f"Poisson arrivals, {described.keys:,} keys ({popularity}), "
            f"{described.service} work of mean 1 unit; seed {seed}"
        )
    lines = [
        f"{workload.requests:,} requests {arrivals}",
        f"rate {_rate(described):,.4g}/s: offered load {_offered(described, speeds):.2f} of "
        f"the nodes' {capacity:g} work units/s; window {workload.window:,.0f} s; latency in s",
        "nodes (speed): " + " ".join(f"{name}={speed:g}" for name, speed in speeds.items())
        if len(speeds) <= NODE_COLUMNS
        else f"{len(speeds):,} nodes",
        "",
    ]
    rows = [
        [
            outcome.strategy,
            NEEDS[outcome.strategy],
            f"{outcome.load.mean:.0%}",
            f"{outcome.load.max:.0%}",
            f"{outcome.load.peak_to_mean:.3f}",
            f"{outcome.mean_queue:,.1f}",
            f"{outcome.max_queue:,}",
            _seconds(outcome.latency["p50"]),
            _seconds(outcome.latency["p99"]),
            _seconds(outcome.latency["p999"]),
            f"{outcome.affinity:.3f}",
        ]
        for outcome in outcomes
    ]
    headers = [
        "strategy",
        "needs",
        "util\nmean",
        "util\nmax",
        "peak/\nmean",
        "queue\nmean",
        "queue\nmax",
        "\np50",
        "\np99",
        "\np99.9",
        "\naffinity",
    ]
    lines.append(
        tabulate(
            rows,
            headers=headers,
            stralign="right",
            colalign=("left", "left"),
            disable_numparse=True,
        )
    )
    if len(speeds) <= NODE_COLUMNS:
        names = list(speeds)
        node_rows = [
            [outcome.strategy, *(f"{node.utilisation:.0%}" for node in outcome.nodes)]
            for outcome in outcomes
        ]
        lines += [
            "",
            "utilisation per node (busy time / window; above 100%: more work than it can do)",
            tabulate(
                node_rows,
                headers=["strategy", *names],
                stralign="right",
                colalign=("left",),
                disable_numparse=True,
            ),
        ]
    else:
        lines += [
            "",
            f"(utilisation per node: --format json, or --plot up to {MAX_PLOTTED_NODES} nodes)",
        ]
    if any(outcome.overloaded for outcome in outcomes):
        lines.append("")
    for outcome in outcomes:
        over = outcome.overloaded
        if over:
            shown = ", ".join(f"{node.name} {node.utilisation:.0%}" for node in over[:5])
            more = f" and {len(over) - 5:,} more" if len(over) > 5 else ""
            lines.append(
                f"{outcome.strategy}: above 100%: {shown}{more} (offered more work than they "
                "can do: their queues grow for as long as that lasts)"
            )
    return "\n".join(escape(line) for text in lines for line in text.split("\n"))


def _summary(load: LoadSummary) -> dict[str, float]:
    return {
        "mean": load.mean,
        "max": load.max,
        "min": load.min,
        "stdev": load.stdev,
        "cv": load.cv,
        "peak_to_mean": load.peak_to_mean,
    }


def simulate_json(
    described: Described,
    speeds: dict[str, float],
    outcomes: list[Outcome],
    args: argparse.Namespace,
) -> dict[str, Any]:
    """The ``hashring.simulate/1`` document (see the module docstring)."""
    workload = described.workload
    return {
        "schema": SCHEMA,
        "workload": {
            "source": described.source,
            "trace": described.trace,
            "requests": workload.requests,
            "keys": described.keys,
            "zipf": described.zipf,
            "service": described.service,
            "rate": _rate(described),
            "offered_load": _offered(described, speeds),
            "window": workload.window,
            "seed": args.seed,
        },
        "nodes": [{"name": name, "speed": speed} for name, speed in speeds.items()],
        "epsilon": args.epsilon,
        "strategies": [
            {
                "strategy": outcome.strategy,
                "needs": NEEDS[outcome.strategy],
                "load": _summary(outcome.load),
                "queue": {"mean": outcome.mean_queue, "max": outcome.max_queue},
                "latency": dict(outcome.latency),
                "affinity": outcome.affinity,
                "seconds": outcome.seconds,
                "nodes": [
                    {
                        "name": node.name,
                        "speed": node.speed,
                        "served": node.served,
                        "busy": node.busy,
                        "utilisation": node.utilisation,
                        "mean_queue": node.mean_queue,
                        "max_queue": node.max_queue,
                    }
                    for node in outcome.nodes
                ],
            }
            for outcome in outcomes
        ],
    }
