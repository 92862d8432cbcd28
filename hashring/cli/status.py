"""``hashring status``: what runs on each node of a topology, now.

For every node of the topology file (and of its previous topology during a migration): keys
(``DBSIZE``), memory (``INFO memory``: used and ``maxmemory``), and the topology versions of
the hashring clients connected to it, counted from their connection names
(``hashring-client-<version>``, ``CLIENT LIST``), each marked as the file's version, the
previous topology's, or another. The header says whether the file is in a migration, and on
which nodes ``hashring migrate`` has set the window's marker (the move has started there).
One connection per node, three or four round trips each; nothing is written.

Exit status: 0 every node answered; 1 a node could not be reached (its row says why; the
others are still shown); 2 a bad file or flag.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from tabulate import tabulate

from .._topology.clients import done_key, marker_key
from .._topology.config import Topology, load_topology
from .._topology.urls import redact_url
from ._common import EXIT_FAILED, EXIT_OK, UsageError, escape

__all__ = ["register"]

CONNECT_SECONDS = 5.0


def register(commands: Any) -> None:
    """Add the ``status`` subcommand."""
    parser = commands.add_parser(
        "status",
        help="keys, memory and the topology versions of connected clients, per node",
        description="For every node of the topology (and of its previous topology during a "
        "migration): keys, memory, and the topology versions the connected hashring clients "
        "run. Writes nothing.",
        epilog="example: hashring status --config cluster.toml",
    )
    parser.add_argument("--config", required=True, metavar="FILE", help="the topology file")
    parser.add_argument("--format", choices=("text", "json"), default="text")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Look at every node; print the table (or JSON); exit 1 when a node did not answer.

    Raises:
        ConfigError: the file is not valid (exit 2).
        UsageError: a node has no URL, or redis-py is missing (exit 2).
    """
    topology = load_topology(args.config)
    nodes = _nodes(topology)
    previous = topology.previous
    marker = None if previous is None else marker_key(topology.version)
    rows = [_look(name, url, marker) for name, url in nodes.items()]
    for row in rows:
        row["clients"] = {
            version: {"connections": count, "is": _which(version, topology)}
            for version, count in sorted(row.pop("versions").items())
        }
    report = {
        "schema": "hashring.status/1",
        "config": args.config,
        "version": topology.version,
        "migration": None
        if previous is None
        else {
            "previous": previous.version,
            "marker": marker,
            "marker_set_on": [row["node"] for row in rows if row["marker"]],
            "done_on": [row["node"] for row in rows if row["done"]],
        },
        "nodes": rows,
    }
    status = EXIT_OK if all(row["error"] is None for row in rows) else EXIT_FAILED
    if args.format == "json":
        json.dump(report, sys.stdout, indent=2)
        print()
        return status
    print(_text(report))
    return status


def _nodes(topology: Topology) -> dict[str, str]:
    """Node name -> URL for the topology and its previous one (a name in both: once)."""
    nodes: dict[str, str] = {}
    for source in (topology, topology.previous):
        if source is None:
            continue
        for name, spec in source.nodes.items():
            if spec.url is None:
                raise UsageError(f"{source.source}: nodes.{name} has no url: status needs one")
            nodes.setdefault(name, spec.url)
    return nodes


def _which(version: str, topology: Topology) -> str:
    if version == topology.version:
        return "this file"
    if topology.previous is not None and version == topology.previous.version:
        return "previous"
    return "other"


def _look(name: str, url: str, marker: str | None) -> dict[str, Any]:
    """One node's row: keys, memory, client versions, whether the window's ``marker`` and
    its done marker are set (None outside a window); ``error`` says why it is missing."""
    if TYPE_CHECKING:
        from adapters.migrate import live_clients
    else:
        try:
            from hashring.adapters.migrate import live_clients
        except ImportError as exc:  # pragma: no cover - redis-py comes with the redis extra
            raise UsageError(
                f"status needs redis-py ({exc.name} is missing): pip install 'hashring[redis]'"
            ) from None
    import redis  # the adapter imported it: redis-py is there

    row: dict[str, Any] = {
        "node": name,
        "url": redact_url(url),
        "keys": None,
        "used_memory": None,
        "maxmemory": None,
        "versions": Counter(),
        "marker": None,
        "done": None,
        "error": None,
    }
    try:
        client = redis.Redis.from_url(
            url, socket_timeout=CONNECT_SECONDS, socket_connect_timeout=CONNECT_SECONDS
        )
    except ValueError as exc:
        row["error"] = f"bad url: {exc}"
        return row
    try:
        row["keys"] = int(client.dbsize())
        memory = client.info("memory")
        row["used_memory"] = int(memory.get("used_memory", 0))
        row["maxmemory"] = int(memory.get("maxmemory", 0)) or None
        row["versions"] = Counter(c.version for c in live_clients({name: client}))
        if marker is not None:
            row["marker"] = bool(client.exists(marker))
            row["done"] = bool(client.exists(done_key(marker)))
    except (redis.RedisError, OSError) as exc:
        secret = urlsplit(url).password
        text = f"{type(exc).__name__}: {exc}"
        row["error"] = text.replace(str(secret), "***") if secret else text
    finally:
        client.close()
    return row


def _text(report: dict[str, Any]) -> str:
    migration = report["migration"]
    lines = [
        f"topology version {report['version']} ({escape(report['config'])})"
        + ("" if migration is None else f", migrating from version {migration['previous']}")
    ]
    if migration is not None:
        set_on = ", ".join(escape(node) for node in migration["marker_set_on"]) or "no node yet"
        lines.append(f"window marker {migration['marker']}: set on {set_on}")
        done_on = ", ".join(escape(node) for node in migration["done_on"]) or "no node yet"
        lines.append(f"keys moved away from every node of: {done_on} (done marker)")
    table = []
    for row in report["nodes"]:
        clients = ", ".join(
            f"{version} x{entry['connections']} ({entry['is']})"
            for version, entry in row["clients"].items()
        )
        memory = "" if row["used_memory"] is None else f"{row['used_memory'] / 2**20:,.1f} MiB"
        if row["maxmemory"]:
            memory += f" of {row['maxmemory'] / 2**20:,.0f}"
        table.append(
            [
                escape(row["node"]),
                escape(row["url"]),
                "" if row["keys"] is None else f"{row['keys']:,}",
                memory,
                escape(row["error"]) if row["error"] else clients or "none",
            ]
        )
    headers = ["node", "url", "keys", "memory", "hashring clients (version x connections)"]
    lines.append(tabulate(table, headers=headers, disable_numparse=True))
    return "\n".join(lines)
