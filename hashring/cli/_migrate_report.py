"""``hashring migrate``'s output: the JSON document (schema ``hashring.migrate/1``, described
in :mod:`hashring.cli.migrate`) built from the engine's results, and its text rendering."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from tabulate import tabulate

from ._common import escape

if TYPE_CHECKING:  # mypy checks the adapters as the top-level package they live in
    from adapters.migrate import Durability, MigrationPlan, MigrationResult, Pair

__all__ = ["POLICY_TEXT", "SCHEMA", "apply_report", "dry_run_report", "durability_fields", "text"]

SCHEMA = "hashring.migrate/1"
POLICY_TEXT = {
    "keep-destination": "destination's value kept, stale source copy deleted",
    "replace": "destination's value overwritten by the source's",
    "skip": "both copies left in place: still misplaced",
}
"""What each ``--on-conflict`` policy did, in the text output's words."""


def _options(args: argparse.Namespace) -> dict[str, Any]:
    """The document's ``options``: the flags that shaped the run."""
    return {
        "batch": args.batch,
        "rate": args.rate,
        "max_busy": args.max_busy,
        "timeout_ms": args.timeout,
        "on_conflict": args.on_conflict,
        "bytes": bool(args.bytes),
        "allow_volatile_destination": bool(args.allow_volatile_destination),
    }


def durability_fields(found: dict[str, Durability]) -> dict[str, dict[str, Any]]:
    """The document's ``durability``: each destination's record as JSON fields, sorted."""
    return {
        name: {
            "durable": d.durable,
            "how": d.how,
            "detail": d.detail,
            "fsync": d.fsync,
            "replicas": d.replicas,
        }
        for name, d in sorted(found.items())
    }


def _pair_rows(
    planned: dict[Pair, int],
    moved: dict[Pair, int] | None,
    conflicts: dict[Pair, int] | None,
    sizes: dict[Pair, int] | None,
) -> list[dict[str, Any]]:
    """The document's ``pairs``: one row per pair with keys, sorted; None where not counted."""
    pairs = sorted(set(planned) | set(moved or {}) | set(conflicts or {}))
    return [
        {
            "from": pair.source,
            "to": pair.destination,
            "keys": planned.get(pair, 0),
            "moved": None if moved is None else moved.get(pair, 0),
            "conflicts": None if conflicts is None else conflicts.get(pair, 0),
            "bytes": None if sizes is None else sizes.get(pair, 0),
        }
        for pair in pairs
    ]


def _header(
    args: argparse.Namespace,
    nodes: dict[str, str],
    durability: dict[str, dict[str, Any]],
    mode: str,
) -> dict[str, Any]:
    """The fields both modes' documents open with."""
    return {
        "schema": SCHEMA,
        "mode": mode,
        "from": args.from_file,
        "to": args.to_file,
        "nodes": nodes,
        "options": _options(args),
        "durability": durability,
    }


def dry_run_report(
    args: argparse.Namespace,
    nodes: dict[str, str],
    durability: dict[str, dict[str, Any]],
    plan: MigrationPlan,
) -> dict[str, Any]:
    """The document of a dry run (``plan`` is the engine's :meth:`MigrationSession.plan`)."""
    return {
        **_header(args, nodes, durability, "dry-run"),
        "scanned": plan.scanned,
        "in_place": plan.in_place,
        "to_move": plan.misplaced,
        "moved": None,
        "conflicts": None,
        "missing": None,
        "failed": None,
        "pairs": _pair_rows(plan.pairs, None, None, plan.bytes),
        "verification": None,
        "misplaced": plan.misplaced,
        "lost": None,
        "deleted": None,
        "elapsed_seconds": round(plan.seconds, 6),
        "rested_seconds": None,
        "keys_per_second": round(plan.keys_per_second, 1),
    }


def apply_report(
    args: argparse.Namespace,
    nodes: dict[str, str],
    durability: dict[str, dict[str, Any]],
    result: MigrationResult,
    check: MigrationPlan,
) -> dict[str, Any]:
    """The document of ``--apply``: the move pass ``result``, then its verification ``check``."""
    return {
        **_header(args, nodes, durability, "apply"),
        "scanned": result.scanned,
        "in_place": result.in_place,
        "to_move": result.to_move,
        "moved": result.moved_total,
        "conflicts": result.conflicts_total,
        "missing": result.missing,
        "failed": result.failed,
        "pairs": _pair_rows(result.planned, result.moved, result.conflicts, result.bytes),
        "verification": {
            "scanned": check.scanned,
            "misplaced": check.misplaced,
            "elapsed_seconds": round(check.seconds, 6),
            "pairs": [
                {"from": pair.source, "to": pair.destination, "keys": keys}
                for pair, keys in check.pairs.items()
            ],
            "checked": check.checked,
            "expired": check.expired,
            "lost": check.lost_total,
            "lost_by_node": dict(check.lost),
            "restarted": list(check.restarted),
            "deleted": check.deleted_total,
            "deleted_by_node": dict(check.deleted),
            "evicted": list(check.evicted),
        },
        "misplaced": check.misplaced,
        "lost": check.lost_total,
        "deleted": check.deleted_total,
        "elapsed_seconds": round(result.seconds, 6),
        "rested_seconds": round(result.rested_seconds, 6),
        "keys_per_second": round(result.keys_per_second, 1),
    }


def _printable(lines: list[str]) -> str:
    """The lines as one text, each escaped (node names, paths and server messages may hold
    control characters: they are shown as ``\\x1b``, never sent to the terminal)."""
    return "\n".join(escape(line) for line in "\n".join(lines).split("\n"))


def text(report: dict[str, Any]) -> str:
    """The document as text for people: tables of pairs, totals, verification, losses; every
    line escaped. O(pairs + nodes)."""
    dry = report["mode"] == "dry-run"
    options = report["options"]
    with_bytes = options["bytes"]
    lines = [
        f"hashring migrate: {report['from']} -> {report['to']} "
        + ("(dry run: nothing moved; add --apply to move)" if dry else "(--apply)"),
        "nodes: " + ", ".join(f"{name}={url}" for name, url in report["nodes"].items()),
        "destinations: "
        + "; ".join(
            f"{name} {'durable' if d['durable'] else 'VOLATILE'} ({d['detail']})"
            for name, d in report["durability"].items()
        ),
        "",
    ]
    if report["pairs"]:
        headers = ["from", "to", "keys to move" if dry else "found"]
        if not dry:
            headers += ["moved", "conflicts"]
        if with_bytes:
            headers.append("bytes")
        rows: list[list[Any]] = []
        for pair in report["pairs"]:
            row: list[Any] = [pair["from"], pair["to"], pair["keys"]]
            if not dry:
                row += [pair["moved"], pair["conflicts"]]
            if with_bytes:
                row.append(pair["bytes"])
            rows.append(row)
        total: list[Any] = ["total", "", report["to_move"]]
        if not dry:
            total += [report["moved"], report["conflicts"]]
        if with_bytes:
            total.append(sum(pair["bytes"] for pair in report["pairs"]))
        rows.append(total)
        lines.append(tabulate(rows, headers=headers, intfmt=","))
    else:
        lines.append("no key to move: every key is on its owner under the new topology")
    lines.append("")
    seconds, rate = report["elapsed_seconds"], report["keys_per_second"]
    lines.append(
        f"scanned {report['scanned']:,} keys on {len(report['nodes'])} nodes: "
        f"{report['in_place']:,} in place, {report['to_move']:,} "
        + ("to move" if dry else "misplaced found")
    )
    if dry:
        lines.append(f"elapsed {seconds:.2f} s ({rate:,.0f} keys/s scanned)")
        lines.append(f"misplaced: {report['misplaced']:,}")
        volatile = [name for name, d in report["durability"].items() if not d["durable"]]
        if volatile and not options["allow_volatile_destination"]:
            lines.append(
                f"--apply would refuse the volatile destination(s) {', '.join(volatile)}: "
                "turn on appendonly or attach a replica, or add --allow-volatile-destination "
                "(a cache)"
            )
        return _printable(lines)
    policy = options["on_conflict"]
    lines.append(
        f"moved {report['moved']:,}; conflicts {report['conflicts']:,} "
        f"({policy}: {POLICY_TEXT[policy]}); missing {report['missing']:,} (expired or "
        f"deleted mid-way); failed {report['failed']:,}"
    )
    rested = report["rested_seconds"]
    resting = f", {rested:.2f} s of it resting to keep the pace" if rested else ""
    lines.append(f"elapsed {seconds:.2f} s ({rate:,.0f} keys/s moved{resting})")
    check = report["verification"]
    lines.append(
        f"verification: scanned {check['scanned']:,} keys in {check['elapsed_seconds']:.2f} s: "
        f"{check['misplaced']:,} misplaced"
    )
    if check["misplaced"]:
        lines.append(
            tabulate(
                [[p["from"], p["to"], p["keys"]] for p in check["pairs"]],
                headers=["from", "to", "still misplaced"],
                intfmt=",",
            )
        )
        hint = (
            "conflicts were skipped (--on-conflict skip): resolve them, or re-run with "
            "another policy"
            if policy == "skip"
            else "re-run to finish (keys written by old-topology clients meanwhile, or "
            "failed moves)"
        )
        lines.append(hint)
    restarted = check["restarted"]
    lines.append(
        f"loss check: {check['checked']:,} keys moved by this run looked for on their "
        f"destinations: {check['lost']:,} lost, {check['expired']:,} expired (TTL ran out)"
        + (f"; restarted during the run: {', '.join(restarted)}" if restarted else "")
        + (
            f"; evicted keys during the run: {', '.join(check['evicted'])}"
            if check["evicted"]
            else ""
        )
    )
    if check["deleted"]:
        lines.append(
            f"{check['deleted']:,} moved keys deleted by clients since (not a loss): "
            + ", ".join(f"{n:,} on {name}" for name, n in check["deleted_by_node"].items())
        )
    for name, lost in check["lost_by_node"].items():
        durable = report["durability"].get(name, {}).get("durable", False)
        causes = []
        if name in restarted:
            causes.append(
                f"{name} restarted during the run"
                + ("" if durable else " and keeps no persistence: they are gone for good")
            )
        if name in check["evicted"]:
            causes.append(
                f"{name} evicted keys during the run: its INFO stats evicted_keys changed, or "
                "cannot be read"
            )
        lines.append(f"LOST: {lost:,} keys moved to {name} are not there ({'; '.join(causes)})")
    return _printable(lines)
