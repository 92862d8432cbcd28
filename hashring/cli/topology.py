"""``hashring topology``: versions of topology files, and topologies published in Redis.

``topology version FILE...`` prints each file's version (what clients report as theirs);
``topology push FILE --to URL`` validates a file and publishes it at a Redis key, as a
compare-and-set on the version (``--expect`` names the version it replaces);
``topology show --from URL`` prints what is published there (URLs' passwords redacted).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from typing import TYPE_CHECKING, Any

from tabulate import tabulate

from .._errors import InvalidOptionError, TopologyConflictError
from .._topology.config import VERSION_DIGITS, Topology, load_topology
from .._topology.urls import redact_url
from ._common import EXIT_OK, OperationError, UsageError, escape

__all__ = ["register"]

DEFAULT_KEY = "hashring:topology"  # the adapter's DEFAULT_TOPOLOGY_KEY (not imported: redis-py)
_VERSION = re.compile(f"[0-9a-f]{{{VERSION_DIGITS}}}")


def register(commands: Any) -> None:
    """Add the ``topology`` subcommand and its actions."""
    parser = commands.add_parser(
        "topology",
        help="topology versions; publish a topology in Redis for running clients",
        description="Print the version of topology files, publish a topology at a Redis key "
        "for clients that follow it (compare-and-set on the version), or show the published one.",
        epilog="example: hashring topology push new.toml --to redis://config:6379/0 "
        "--expect 1f0c3a9b5d7e2468",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    version = actions.add_parser("version", help="the version of topology files")
    version.add_argument("files", nargs="+", metavar="FILE", help="topology files")
    version.add_argument("--format", choices=("text", "json"), default="text")
    version.set_defaults(run=run_version)

    push = actions.add_parser(
        "push",
        help="validate a topology file and publish it at a Redis key",
        description="Validate FILE (and the previous file its [migration] names) and publish "
        "both at KEY on the Redis server at URL, announcing the new version to followers. "
        "Compare-and-set: with nothing published, no --expect; to replace a published "
        "topology, --expect names its version (hashring topology show prints it), so two "
        "operators cannot overwrite each other.",
    )
    push.add_argument("file", metavar="FILE", help="the topology file to publish")
    push.add_argument("--to", required=True, metavar="URL", help="redis:// URL of the server")
    push.add_argument("--key", default=DEFAULT_KEY, help=f"the key (default {DEFAULT_KEY})")
    push.add_argument(
        "--expect",
        type=_version,
        default=None,
        metavar="VERSION",
        help="the version being replaced (omit when none is published)",
    )
    push.add_argument("--format", choices=("text", "json"), default="text")
    push.set_defaults(run=run_push)

    show = actions.add_parser("show", help="the topology published at a Redis key")
    show.add_argument("--from", dest="source", required=True, metavar="URL", help="redis:// URL")
    show.add_argument("--key", default=DEFAULT_KEY, help=f"the key (default {DEFAULT_KEY})")
    show.add_argument("--format", choices=("text", "json"), default="text")
    show.set_defaults(run=run_show)


def run_version(args: argparse.Namespace) -> int:
    """Print each file's version (every file is validated first)."""
    topologies = [(path, load_topology(path)) for path in args.files]
    if args.format == "json":
        rows = [_summary(topology) | {"file": path} for path, topology in topologies]
        json.dump({"schema": "hashring.topology/1", "topologies": rows}, sys.stdout, indent=2)
        print()
        return EXIT_OK
    for path, topology in topologies:
        print(f"{topology.version}  {escape(path)}{_migration(topology)}")
    return EXIT_OK


def run_push(args: argparse.Namespace) -> int:
    """Validate and publish; print the new version.

    Raises:
        ConfigError: the file is not valid (exit 2).
        OperationError: the published version is not the expected one, or the server cannot
            be reached (exit 1).
    """
    load_topology(args.file)  # validated before anything connects
    source, errors = _source(args.to, args.key)
    try:
        topology = source.publish(args.file, expect=args.expect)
    except TopologyConflictError as exc:
        raise OperationError(str(exc)) from None
    except errors as exc:
        raise OperationError(f"{source.where}: {type(exc).__name__}: {exc}") from None
    finally:
        source.close()
    replaced = args.expect or "none"
    if args.format == "json":
        summary = _summary(topology) | {"replaced": args.expect, "where": source.where}
        json.dump({"schema": "hashring.topology/1", "published": summary}, sys.stdout, indent=2)
        print()
        return EXIT_OK
    print(
        f"published version {topology.version} at {escape(source.where)} "
        f"(replaced {replaced}){_migration(topology)}"
    )
    return EXIT_OK


def run_show(args: argparse.Namespace) -> int:
    """Print the published topology: version, nodes, URLs (passwords redacted).

    Raises:
        ConfigError: the key holds something that is not a valid topology (exit 2).
        OperationError: nothing is published there, or the server cannot be reached (exit 1).
    """
    source, errors = _source(args.source, args.key)
    try:
        topology = source.read()
    except errors as exc:
        raise OperationError(f"{source.where}: {type(exc).__name__}: {exc}") from None
    finally:
        source.close()
    if topology is None:
        raise OperationError(f"{source.where}: no topology is published there")
    if args.format == "json":
        summary = _summary(topology) | {"where": source.where}
        json.dump({"schema": "hashring.topology/1", "published": summary}, sys.stdout, indent=2)
        print()
        return EXIT_OK
    print(f"version {topology.version} at {escape(source.where)}{_migration(topology)}")
    rows = [
        [escape(spec.name), f"{spec.weight:g}", escape(redact_url(spec.url or ""))]
        for spec in topology.nodes.values()
    ]
    print(tabulate(rows, headers=["node", "weight", "url"], disable_numparse=True))
    return EXIT_OK


def _summary(topology: Topology) -> dict[str, Any]:
    previous = topology.previous
    return {
        "version": topology.version,
        "algorithm": topology.algorithm,
        "nodes": {
            name: {"weight": spec.weight, "url": None if spec.url is None else redact_url(spec.url)}
            for name, spec in topology.nodes.items()
        },
        "previous": None if previous is None else previous.version,
    }


def _migration(topology: Topology) -> str:
    previous = topology.previous
    return "" if previous is None else f" (migrating from version {previous.version})"


def _version(text: str) -> str:
    """``--expect``'s type: a version as ``topology version`` prints it."""
    if not _VERSION.fullmatch(text):
        raise argparse.ArgumentTypeError(
            f"{text!r:.40} is not a topology version ({VERSION_DIGITS} lowercase hex digits, "
            "as `hashring topology version` prints it)"
        )
    return text


def _source(url: str, key: str) -> tuple[Any, tuple[type[BaseException], ...]]:
    """The adapter's RedisTopologySource, and the errors reaching its server can raise
    (redis-py is imported only now, by the adapter).

    Raises:
        UsageError: redis-py is missing, or the URL or key is not valid.
    """
    try:
        if TYPE_CHECKING:
            from adapters.redis._topology_source import SOURCE_ERRORS, RedisTopologySource
        else:
            from hashring.adapters.redis._topology_source import (
                SOURCE_ERRORS,
                RedisTopologySource,
            )
    except ImportError as exc:  # pragma: no cover - redis-py comes with the redis extra
        raise UsageError(
            f"topology needs redis-py ({exc.name} is missing): pip install 'hashring[redis]'"
        ) from None
    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise UsageError(f"{redact_url(url)!r:.80}: not a redis://, rediss:// or unix:// URL")
    try:
        source = RedisTopologySource(url, key=key)
    except InvalidOptionError as exc:
        raise UsageError(str(exc)) from None
    return source, SOURCE_ERRORS
