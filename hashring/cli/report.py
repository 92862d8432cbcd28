"""``hashring report``: what a topology change moves, and how load spreads before and after.

The JSON document (``--format json``) has a stable schema, ``"schema": "hashring.report/1"``;
fields may be added in a later version of the same schema, never renamed or removed (the
fields marked "added" below were added that way: the version stays ``/1``)::

    {
      "schema": "hashring.report/1",
      "keys": {"count": 1000000, "source": "synthetic"},    # or "file:PATH", "sample:PATH"
      "before": SIDE, "after": SIDE,
      "movement": {
        "moved": 111504, "fraction": 0.1115, "ideal_fraction": 0.1111,
        "ideal_band": {"low": 0.1105, "high": 0.1117, "confidence": 0.95},      # added
        "necessary": 111504, "necessary_fraction": 0.1115,                      # added
        "excess": 0, "excess_fraction": 0.0,                                    # added
        "between_surviving": 0,                                                 # added
        "pairs": [{"from": "node-1", "to": "node-9", "keys": 13950,
                   "necessary": true}, ...]   # largest first; "necessary" added
      },
      "matrix": {"from": [names], "to": [names],
                 "keys": [[int, ...], ...] | null,     # rows: from; null above 1,000,000 cells
                 "cells": [[row, column, keys], ...]},  # the non-zero cells, row-major
      "plan": PLAN   # added; only with --sample-from: see hashring.cli._plan
    }
    SIDE = {
      "topology": {"source": str, "algorithm": str, "hash": str, "vnodes": int | null,
                   "table_size": int | null, "hash_tags": bool,
                   "hash_key_env": str | null},   # the variable's name, never the secret
      "nodes": [{"name": str, "weight": float, "keys": int, "share": float,
                 "fair_share": float, "deviation": float, "hash_space": float | null}, ...],
      "summary": {"mean": float, "max": int, "min": int, "stdev": float, "cv": float,
                  "peak_to_mean": float,
                  "peak_to_fair": float, "cv_of_fair": float}          # the last two added
    }

``share`` is the node's fraction of the keys, ``fair_share`` its weight's fraction of the total
weight, ``deviation`` = share / fair_share - 1 (the deviation from the mean, for equal
weights), ``hash_space`` the fraction of the 32-bit hash space a ring node owns (null for the
other algorithms). ``peak_to_mean`` (the load factor) and ``cv`` judge raw key counts, so
with unequal weights they count the intended imbalance; ``peak_to_fair`` (the largest
share / fair_share) and ``cv_of_fair`` (coefficient of variation of share / fair_share across
nodes) judge each node against its own weight, and equal the first two for equal weights.

``necessary`` counts moved keys that went from a node whose fair share shrank (or that was
removed) to one whose fair share grew (or that was added): the only moves a perfect placement
makes. ``excess`` = ``moved`` - ``necessary``, what a perfect placement avoids (0 for ring,
rendezvous and jump when nodes are only added or removed); a pair's ``necessary`` says which
of the two its keys are. ``between_surviving`` counts moved keys whose owners before and
after both exist on both sides. ``ideal_fraction`` is an expectation: a perfect placement
moves ``Binomial(count, ideal_fraction)`` of ``count`` hashed keys, and ``ideal_band`` is
that count's central ``confidence`` interval as a fraction (normal approximation), so a
moved fraction inside it matches the ideal as far as the sample can tell.

``matrix.keys`` is the dense from->to matrix while it has at most :data:`JSON_MATRIX_CELLS`
cells (about 1,000 nodes a side), else null; ``matrix.cells`` always lists the non-empty
cells as ``[row, column, keys]`` (indices into ``from`` and ``to``), so a fleet of any size
is described in O(keys + nodes). ``--format csv`` writes one row per node with the columns
:data:`CSV_COLUMNS` (cells empty where a node is absent on one side).

Text and CSV output escape non-printable characters in node names, keys and paths
(``\\x1b``); JSON keeps names exact (JSON escapes them itself). Text and CSV list nodes in
natural order (``node-2`` before ``node-10``; JSON keeps plain sorted order, which the matrix
indices use); beyond :data:`MATRIX_LIMIT` nodes the text's per-node table lists the worst
first (furthest from the fair share after the change; ``--order name|worst|auto`` chooses).
Fleets above :data:`NODE_ROWS` nodes list only the :data:`NODES_SHOWN` nodes furthest from
their fair share in the text output (all of them: JSON or CSV). These constants and the
rendering live in ``hashring.cli._report_output``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from .._analysis import Rebalance, rebalance_stream
from .._placement.contract import Placement
from .._placement.keys import Key
from .._topology.config import NodeSpec, Topology, load_topology, renumbers, transition
from .._topology.writer import topology_toml
from ._common import (
    EXIT_FAILED,
    EXIT_OK,
    OperationError,
    UsageError,
    add_topology_flags,
    build_topology,
    check_output_path,
    check_rendezvous_work,
    escape,
    key_count,
    parse_node,
    parse_weights,
    positive_float,
    progress,
    renumbering_message,
    topology_from_args,
)
from ._plan import MovePlan, plan_json, plan_move, plan_text, sample_live_nodes
from ._report_output import CSV_COLUMNS, ORDERS, SCHEMA, render_text, report_json, write_csv
from ._sources import (
    DEFAULT_SAMPLE,
    MAX_STREAMED_KEYS,
    KeyStream,
    keys_file_stream,
    list_stream,
    streamed_key_count,
    synthetic_stream,
)

__all__ = [
    "CSV_COLUMNS",
    "SCHEMA",
    "add_change_flags",
    "after_topology",
    "build_report",
    "placements",
    "register",
    "render_text",
    "report_json",
]

SAMPLE = 100_000
"""Keys read by ``--sample-from`` unless ``--sample`` says otherwise."""
_OPTION_FLAGS = ("algorithm", "hash", "vnodes", "table_size", "hash_key_env")
PLOT_NODES = 1_000
"""Most nodes ``--plot`` draws (cells with counts up to 24 nodes, per-node bars beyond)."""

EXAMPLES = """\
examples:
  hashring report                                  8 nodes + node-9, 1,000,000 synthetic keys
  hashring report --nodes 10 --remove node-3
  hashring report --nodes a,b,c --add d=2 --weight a=0.5 --algorithm maglev
  hashring report --from old.toml --to new.toml --keys-file keys.txt --format json
  hashring report --from old.toml --add cache-4 --sample-from old.toml --plot change.png
  hashring report --from old.toml --to new.toml --sample-from old.toml --rate 5000 --strict

Without --to, --add, --remove or --weight the change is: add one node. --to needs --from.
With --sample-from the report ends with a plan: keys, bytes (MEMORY USAGE) and keys with a
TTL to move per from->to pair, scaled to each node's DBSIZE with 95% intervals; the duration
at --rate and at the rate bench/migrate.py measured; each node's memory after the move
against its maxmemory (a warning; exit 1 with --strict).
--write-to writes the topology after the change as a file; for jump it carries the bucket
history ([placement.history]) so clients loading it agree with running ones. Jump --from/--to
files that renumber buckets (a node removed other than the last-named, or added not sorting
last) are refused unless --write-to is given: write the new file that way and use it.
"""


def register(commands: Any) -> None:
    """Add the ``report`` subcommand."""
    parser = commands.add_parser(
        "report",
        help="what a topology change moves, and load before/after",
        description="Place keys with the topology before and after a change and report the "
        "keys moved against the ideal, the from->to movement matrix, per-node load and the "
        "balance statistics (mean, max, min, stdev, coefficient of variation, peak-to-mean).",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_change_flags(parser, config_help="topology before the change (default: 8 nodes)")
    keys = parser.add_argument_group("keys (default: a built-in synthetic sample)")
    source = keys.add_mutually_exclusive_group()
    source.add_argument(
        "--keys",
        type=streamed_key_count,
        default=DEFAULT_SAMPLE,
        metavar="N",
        help=f"number of synthetic keys (default {DEFAULT_SAMPLE:,}, at most "
        f"{MAX_STREAMED_KEYS:,})",
    )
    source.add_argument("--keys-file", metavar="PATH", help="one key per line; - for stdin")
    source.add_argument(
        "--sample-from", metavar="FILE.toml", help="SCAN a sample of real keys from these nodes"
    )
    keys.add_argument(
        "--sample",
        type=key_count,
        metavar="N",
        help="keys to sample with --sample-from (default 100,000)",
    )
    planning = parser.add_argument_group("planning the move (with --sample-from)")
    planning.add_argument(
        "--rate",
        type=positive_float,
        metavar="KEYS_PER_SEC",
        help="estimate the move's duration at this many keys per second (migrate --rate)",
    )
    planning.add_argument(
        "--strict",
        action="store_true",
        help="exit 1 when a node would hold more than its maxmemory after the move",
    )
    output = parser.add_argument_group("output")
    output.add_argument("--format", choices=("text", "json", "csv"), default="text")
    output.add_argument("--plot", metavar="FILE.png", help="draw load and movement to a PNG")
    output.add_argument(
        "--order",
        choices=ORDERS,
        default="auto",
        help="per-node table order: name, worst (furthest from fair) first, or auto "
        "(default: worst first beyond 12 nodes)",
    )
    output.add_argument(
        "--write-to",
        metavar="NEW.toml",
        help="write the topology after the change as a file (jump: with its bucket history, "
        "so clients loading it place keys as the running ones that applied the change)",
    )
    parser.set_defaults(run=run)


def add_change_flags(parser: argparse.ArgumentParser, *, config_help: str) -> None:
    """The flags describing a topology (``--from`` or quick flags) and a change to it."""
    add_topology_flags(parser, config_flag="--from", config_help=config_help, weight_flag=False)
    change = parser.add_argument_group("the change (a file, or change flags; default: add a node)")
    change.add_argument("--to", metavar="NEW.toml", help="topology after the change")
    change.add_argument(
        "--add", action="append", default=[], metavar="NODE[=W]", help="add a node (repeatable)"
    )
    change.add_argument(
        "--remove", action="append", default=[], metavar="NODE", help="remove a node (repeatable)"
    )
    change.add_argument(
        "--weight", action="append", default=[], metavar="NODE=W", help="reweight a node"
    )


def run(args: argparse.Namespace) -> int:
    """Carry out ``hashring report``."""
    if args.plot:
        from ._plot import check_plotting

        check_plotting(args.plot)
        check_output_path(args.plot, "--plot")
    if args.write_to:
        check_output_path(args.write_to, "--write-to")
    for flag in ("sample", "rate", "strict"):
        if getattr(args, flag) not in (None, False) and not args.sample_from:
            raise UsageError(f"--{flag} applies to --sample-from only")
    before = topology_from_args(args)
    after = after_topology(args, before)  # a bad --to file is reported first
    if args.to and not args.config and args.nodes is None:
        raise UsageError(
            "--to needs --from (or --nodes): give the topology before the change too "
            "(without it the report would compare 8 default nodes with the file)"
        )
    if args.to and not args.write_to and renumbers(before, after):
        raise UsageError(renumbering_message(args.config, args.to))
    live = not args.to or bool(args.write_to)  # --write-to describes the running placement
    if args.plot and len(set(before.nodes) | set(after.nodes)) > PLOT_NODES:
        raise UsageError(f"--plot draws at most {PLOT_NODES} nodes: use --format csv or json")
    if args.keys_file is None and args.sample_from is None:  # the count is known up front
        for topology in (before, after):
            check_rendezvous_work(topology, args.keys)
    plan: MovePlan | None = None
    keys: Sequence[Key] | KeyStream
    if args.sample_from:
        sample = sample_live_nodes(load_topology(args.sample_from), args.sample or SAMPLE, after)
        for topology in (before, after):
            check_rendezvous_work(topology, len(sample.keys))
        keys, source = sample.keys, f"sample:{args.sample_from}"
    else:
        keys, source = _keys(args, (before, after))
    result = build_report(keys, before, after, live=live)
    if args.sample_from:
        plan = plan_move(sample, placements(before, after, live=live)[1], rate=args.rate)
    if args.format == "json":
        document = report_json(result, before, after, source)
        if plan is not None:
            document["plan"] = plan_json(plan)
        json.dump(document, sys.stdout, indent=2)
        print()
    elif args.format == "csv":
        write_csv(result)
    else:
        print(render_text(result, before, after, source, order=args.order))
        if plan is not None:
            print("\n" + plan_text(plan))
    if args.plot:
        from ._plot import plot_report

        plot_report(result, args.plot)
        print(f"plot written to {args.plot}", file=sys.stderr)
    if args.write_to:
        write_topology(args.write_to, after, placements(before, after, live=True)[1])
    if plan is not None:
        for warning in plan.warnings:
            print(f"hashring: warning: {escape(warning)}", file=sys.stderr)
        if args.strict and plan.over_memory:
            return EXIT_FAILED
    return EXIT_OK


def build_report(
    keys: Sequence[Key] | KeyStream, before: Topology, after: Topology, *, live: bool = False
) -> Rebalance:
    """Place ``keys`` both ways, chunk by chunk, and analyse, under one progress bar.

    ``keys`` is a list (placed in chunks of ``_sources.CHUNK_KEYS``) or a :class:`KeyStream`;
    the bar counts keys (or a file's bytes) once each, from the first chunk. Memory: one
    chunk of keys and owners plus the counts, whatever the number of keys (a list's keys
    are the caller's). ``live`` as for :func:`placements`.
    """
    stream = keys if isinstance(keys, KeyStream) else list_stream(keys)
    both = placements(before, after, live=live)
    with progress(stream.total, "placing keys", stream.unit) as bar:

        def chunks() -> Iterator[Sequence[Key]]:
            for chunk, step in stream.chunks:
                yield chunk
                bar.update(step)  # once the chunk is placed and counted

        return rebalance_stream(chunks(), *both)


def after_topology(args: argparse.Namespace, before: Topology) -> Topology:
    """The topology after the change: ``--to``, or ``before`` with the change flags applied.

    Raises:
        UsageError: contradictory or impossible changes.
        ConfigError: a bad ``--to`` file.
    """
    changes = args.add or args.remove or args.weight
    if args.to:
        if changes:
            raise UsageError("give either --to or --add/--remove/--weight, not both")
        given = [f"--{flag.replace('_', '-')}" for flag in _OPTION_FLAGS if getattr(args, flag)]
        if given:
            raise UsageError(
                f"{', '.join(given)} would change only the before side: with --to, set "
                "placement options in the two files"
            )
        return load_topology(args.to)
    specs = dict(before.nodes)
    if not changes:
        args.add = [_fresh_name(specs)]
    for name in args.remove:
        if name not in specs:
            raise UsageError(f"--remove {name}: no node {name!r} left in {before.source}")
        del specs[name]
    for item in args.add:
        name, weight = parse_node(item, "--add", weight_required=False)
        if name in specs:
            raise UsageError(f"--add {item}: {name!r} is already a node")
        specs[name] = NodeSpec(name, None, weight)
    for name, weight in parse_weights(args.weight).items():
        if name not in specs:
            raise UsageError(f"--weight {name}={weight:g}: no node {name!r} after the change")
        specs[name] = NodeSpec(name, specs[name].url, weight)
    if not specs:
        raise UsageError("the change removes every node")
    described = [f"remove {name}" for name in args.remove] + [f"add {item}" for item in args.add]
    described += [f"weight {item}" for item in args.weight]
    return build_topology(specs, before.options(), f"{before.source}, {', '.join(described)}")


def placements(before: Topology, after: Topology, *, live: bool) -> tuple[Placement, Placement]:
    """Both sides' placements: ``live`` applies the change to the running placement
    (``hashring.transition``, as change flags describe); otherwise each side is built from
    its topology, as clients started from those files build it (only jump differs)."""
    return transition(before, after) if live else (before.placement(), after.placement())


def write_topology(path: str, after: Topology, running: Placement) -> None:
    """Write ``after`` to ``path`` as a topology file; for jump with ``running``'s history
    (its memento), so a placement built from the file is ``running``.

    Raises:
        OperationError: the file cannot be written.
    """
    memento = getattr(running, "memento", None)
    history = memento() if after.algorithm == "jump" and memento is not None else None
    try:
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(topology_toml(after, history))
    except OSError as exc:
        raise OperationError(f"--write-to {path}: cannot write: {exc.strerror}") from None
    print(f"topology written to {path}", file=sys.stderr)


def _fresh_name(specs: dict[str, NodeSpec]) -> str:
    number = len(specs) + 1
    while f"node-{number}" in specs:
        number += 1
    return f"node-{number}"


def _keys(args: argparse.Namespace, sides: Sequence[Topology]) -> tuple[KeyStream, str]:
    """The report's keys as a stream, and their source's label. Keys are checked against
    the rendezvous work bound before any is placed (a regular file's are counted first) or,
    from standard input, as they are read."""
    if args.keys_file:
        stream = keys_file_stream(args.keys_file)
        if stream.unit == "B" and any(side.algorithm == "rendezvous" for side in sides):
            # A regular file: count its keys first (far cheaper than placing them) so a
            # refusal comes before any work, then read it again.
            read = sum(len(chunk) for chunk, _ in stream.chunks)
            for topology in sides:
                check_rendezvous_work(topology, read)
            stream = keys_file_stream(args.keys_file)
        counted = KeyStream(_checked(stream.chunks, sides), stream.total, stream.unit)
        return counted, f"file:{args.keys_file}"
    return synthetic_stream(args.keys), "synthetic"


def _checked(
    chunks: Iterable[tuple[Sequence[Key], int]], sides: Sequence[Topology]
) -> Iterator[tuple[Sequence[Key], int]]:
    """``chunks``, refused (UsageError) before the chunk that takes the keys read past the
    rendezvous work bound is placed."""
    read = 0
    for chunk, step in chunks:
        read += len(chunk)
        for topology in sides:
            check_rendezvous_work(topology, read)
        yield chunk, step


# ----------------------------------------------------------------------------- formats
