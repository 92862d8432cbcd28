"""``hashring lookup``: the owner and preference list of keys."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from tabulate import tabulate

from .._topology.urls import redact_url
from ._common import (
    EXIT_OK,
    UsageError,
    add_topology_flags,
    escape,
    parse_weights,
    positive_int,
    topology_from_args,
)

__all__ = ["register"]


def register(commands: Any) -> None:
    """Add the ``lookup`` subcommand."""
    parser = commands.add_parser(
        "lookup",
        help="owner and preference list of keys",
        description="Print the node that owns each KEY and its preference list (the nodes a "
        "replica or failover would use, in order), for a topology file or quick flags.",
        epilog="example: hashring lookup user:1 user:2 --config cluster.toml --replicas 2",
    )
    parser.add_argument("keys", nargs="+", metavar="KEY", help="keys to look up")
    parser.add_argument(
        "--replicas",
        type=positive_int,
        default=None,
        metavar="N",
        help="length of the preference list (default: min(3, nodes))",
    )
    parser.add_argument("--format", choices=("text", "json"), default="text")
    add_topology_flags(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Carry out ``hashring lookup``: text output escapes non-printable characters in keys
    and node names; JSON keeps them exact."""
    topology = topology_from_args(args, parse_weights(args.weight))
    placement = topology.placement()
    count = args.replicas if args.replicas is not None else min(3, len(placement))
    if count > len(placement):
        raise UsageError(f"--replicas {count}: the topology has only {len(placement)} nodes")
    rows = []
    for text in args.keys:
        # Look a key up by its bytes: argv that is not UTF-8 arrives as lone surrogates,
        # which are not text; os.fsencode gives back the bytes the shell passed.
        key = os.fsencode(text)
        nodes = placement.get_nodes(key, count)
        url = topology.nodes[nodes[0]].url
        rows.append(
            {
                "key": text,
                "owner": nodes[0],
                "url": None if url is None else redact_url(url),
                "preference": nodes,
            }
        )
    if args.format == "json":
        json.dump({"schema": "hashring.lookup/1", "keys": rows}, sys.stdout, indent=2)
        print()
        return EXIT_OK
    with_urls = any(row["url"] for row in rows)
    table = [
        [
            escape(row["key"]),
            escape(row["owner"]),
            *([escape(row["url"] or "-")] if with_urls else []),
            escape(", ".join(row["preference"])),
        ]
        for row in rows
    ]
    headers = ["key", "owner", *(["url"] if with_urls else []), "preference list"]
    print(tabulate(table, headers=headers, disable_numparse=True))
    return EXIT_OK
