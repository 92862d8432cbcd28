"""``hashring migrate``: move live Redis keys to their new owners after a topology change.

::

    hashring migrate --from old.toml --to new.toml            # dry run: print the plan
    hashring migrate --from old.toml --to new.toml --bytes    # ... with bytes per pair
    hashring migrate --from old.toml --to new.toml --apply    # move, then verify

Every node named in either file is scanned (``SCAN``, one page of ``--batch`` keys at a
time: memory stays bounded whatever the key space), and every key whose owner under the
NEW topology is another node is moved there with Redis's own ``MIGRATE``, sent to the
source server (values and TTLs kept, atomic per key, pipelined: one ``MIGRATE`` per
destination and page in one round trip). Interrupting (Ctrl-C, even SIGKILL) loses
nothing; re-running finishes the job and moves nothing twice. The engine is
:mod:`hashring.adapters.migrate` (usable from Python); its docstring has the details.

Without ``--apply`` nothing moves: the plan (keys to move per from -> to pair, keys
scanned, keys already in place) is printed, followed by the planning figures ``hashring
report --sample-from`` prints (:mod:`hashring.cli._plan`, from a SCAN sample of ``--sample``
keys, default 100,000, over every node): keys and ``MEMORY USAGE`` bytes to move per pair
and in total and how many of the moving keys carry a TTL, each with a 95% interval; the
duration at ``--rate`` (when given) and at the rate ``bench/migrate.py`` measured; each
node's memory after the move against its ``maxmemory`` (a warning on stderr for a node that
would exceed it; exit 1 with ``--strict``). ``--bytes`` adds per-pair ``MEMORY USAGE``
totals: one pipelined ``MEMORY USAGE key SAMPLES 0`` per misplaced key, so a share of a
round trip and the server's work per key (slower on big key spaces). With ``--apply`` the
keys are moved, then a verification pass re-scans every node and reports the keys still
misplaced (the same computation as the plan; the target is 0) and, for every key this run
moved, whether it is still on its destination. A moved key that is not is ``expired`` if its
TTL ran out meanwhile; ``lost`` (the target is 0) if its destination restarted (another
``run_id``) or evicted keys (``INFO stats`` ``evicted_keys`` grew) during the run, since only
then can a server drop a key by itself; ``deleted`` otherwise: a client deleted it after it
moved (applications that keep writing during the run do), not a loss. The nodes that
restarted or evicted during the run are named.

Durable destinations. A destination acknowledges a key once it is in its memory, and the
source then deletes its copy: a destination without persistence that crashes or restarts
loses those keys for good. So ``--apply`` first checks every node of the new topology
(``INFO persistence`` / ``INFO replication``, ``CONFIG GET appendfsync`` when allowed) and
refuses, before anything moves (exit 2), a destination that is not durable, unless
``--allow-volatile-destination`` is given (right for caches). Durable means: AOF on
(``appendonly yes``; ``appendfsync always`` also survives a power loss, ``everysec`` may lose
its last second then), or, without AOF, at least one replica online, which must then
acknowledge every batch moved there (``WAIT 1 timeout``; else the run stops, exit 1). A
server whose ``INFO`` does not tell (a proxy, a restricted user) counts as volatile. The dry
run shows each destination's durability.

Conflicts (``--on-conflict``): a key that already exists on its destination, written there
by clients of the new topology: ``keep-destination`` (default) keeps the destination's value
and deletes the stale source copy (only once the destination was seen to hold the key);
``replace`` overwrites it with the source's value (``MIGRATE REPLACE``); ``skip`` leaves
both copies, which then count as misplaced.

``--rate`` limits the keys sent to ``MIGRATE`` per second (0.01 to 1e12; a token bucket,
on average; with it each round trip carries at most rate/10 keys). ``--max-busy F`` (0.01
to 1) makes the pass rest after each round trip and each page, so that it works at most F
of its wall time: a source server is blocked by the pass's commands (``MIGRATE`` holds it
until the destination answers) only within that work, so it serves its clients at least
1 - F of the time, whatever the keys' sizes; the pace adapts, where ``--rate`` counts keys
of any size alike. Both may be given. The dry run's duration at the measured rate is scaled
by F, an optimistic figure: short stretches of work between rests run slower (in
``bench/resharding.py``, ``--max-busy 0.1`` moved keys at 0.05x to 0.07x of the unpaced
rate). ``--timeout`` is ``MIGRATE``'s own timeout in ms (the longest a source may wait on a
destination at any moment).

Requirements: every node has a ``url``; a node name in both files has the same URL in
both; nodes of the new topology are ``redis://host:port/db`` URLs reachable FROM the source
servers (``MIGRATE`` cannot connect over TLS or to a unix socket: ``rediss://`` and
``unix://`` destinations are refused before anything moves). Credentials in a destination
URL are passed with ``AUTH`` / ``AUTH2``; URLs are always printed with passwords redacted.

Exit status:

* 0: dry run: the plan was computed (whatever it says; read ``misplaced``);
  ``--apply``: the verification found no key misplaced;
* 1: ``--apply`` left keys misplaced (``--on-conflict skip`` conflicts, keys that failed),
  or keys it moved are not on their destination any more and no client deleted them
  (``lost``: a volatile destination restarted, or a destination evicted keys); or a node is
  unreachable, a destination refused ``MIGRATE``, or no replica acknowledged a batch (one
  line on stderr; what moved stays moved: re-run to finish);
* 2: bad flags, a missing or invalid topology file, URLs that cannot be migrated between,
  ``--apply`` to a volatile destination without ``--allow-volatile-destination`` (nothing
  moved);
* 1 also: ``--strict`` dry run and a node would exceed its ``maxmemory`` after the move;
* 130: interrupted (safe: re-run to finish). During ``--apply`` the line says how many keys
  had moved (``hashring: interrupted: 1,200 keys moved so far (40,000 scanned), ...; re-run
  the same command to resume: keys already moved are not moved again``).

Jump topologies: a file-to-file change that renumbers jump's buckets (removing a node
other than the last-named one, adding one that does not sort last) is refused (exit 2,
nothing scanned): built from the new file, the placement would move most keys. Write the
new file with its bucket history (``hashring report --from old.toml --to new.toml
--write-to next.toml``) and migrate to that: only the changed nodes' keys move. See
:func:`hashring._topology.config.renumbers`.

The ``--apply`` progress bar (on a terminal, after a second) counts keys moved, with SI
prefixes (``12.3k key``, ``8.00k key/s``); the keys scanned so far are shown beside it.

``--format json`` prints one JSON object (schema ``hashring.migrate/1``; keys are never
removed or renamed within a schema version; ``durability``, ``lost`` and the
verification's ``checked`` .. ``restarted`` were added to version 1 with the durability
check, ``deleted`` and the verification's ``deleted`` .. ``evicted`` with the split of
deleted from lost keys; these are all of them)::

    {
      "schema": "hashring.migrate/1",
      "mode": "dry-run" | "apply",
      "from": str, "to": str,              # the topology files, as given
      "nodes": {name: url},                # every node scanned, URL redacted, sorted
      "options": {"batch": int, "rate": float | null, "max_busy": float | null,
                  "timeout_ms": int,
                  "on_conflict": "keep-destination" | "replace" | "skip", "bytes": bool,
                  "allow_volatile_destination": bool},
      "durability": {name: {               # every node of the new topology, sorted
        "durable": bool, "how": "aof" | "replicas" | "none" | "unknown",
        "detail": str, "fsync": str | null, "replicas": int}},
      "scanned": int,                      # keys seen by SCAN in the plan / move pass
      "in_place": int,                     # of those, already on their new owner
      "to_move": int,                      # of those, misplaced (dry run: would move)
      "moved": int | null,                 # keys moved (null in a dry run)
      "conflicts": int | null,             # keys on both source and destination
      "missing": int | null,               # expired / deleted between SCAN and MIGRATE
      "failed": int | null,                # refused by MIGRATE for another reason
      "pairs": [                           # one per (from, to) with keys, sorted
        {"from": str, "to": str,
         "keys": int,                      # misplaced keys found (dry run: would move)
         "moved": int | null, "conflicts": int | null,
         "bytes": int | null}              # MEMORY USAGE total with --bytes, else null
      ],
      "verification": null | {             # null in a dry run (the plan is its own check)
        "scanned": int, "misplaced": int, "elapsed_seconds": float,
        "pairs": [{"from": str, "to": str, "keys": int}],  # keys still misplaced
        "checked": int,                    # keys moved by this run, looked for
        "expired": int,                    # of those, gone with their TTL run out
        "lost": int,                       # of those, gone from a destination that
                                           # restarted or evicted during the run
        "lost_by_node": {name: int},       # lost per destination (only nodes with some)
        "restarted": [str],                # nodes whose run_id changed during the run
        "deleted": int,                    # of those, gone from a destination that did
                                           # neither: deleted by clients (not a loss)
        "deleted_by_node": {name: int},    # deleted per destination (only nodes with some)
        "evicted": [str]                   # nodes whose evicted_keys changed during the
                                           # run (or that do not report it)
      },
      "misplaced": int,                    # dry run: to_move; --apply: after verification
      "lost": int | null,                  # --apply: verification.lost; null in a dry run
      "deleted": int | null,               # --apply: verification.deleted; null in a dry run
      "elapsed_seconds": float,            # the plan or move pass (not the verification)
      "rested_seconds": float | null,      # --apply: of those, slept to keep the pace
                                           # (--rate, --max-busy); null in a dry run
      "keys_per_second": float,            # dry run: scanned/s; --apply: moved/s
      "plan": null | PLAN,                 # dry run: hashring.cli._plan's object (null when
                                           # the nodes hold no key); --apply: null
      "clients": null | {                  # --apply: the wait for clients to switch
        "version": str,                    # the new topology's version
        "waited_seconds": float, "forced": bool,
        "others": [{"version": str, "node": str, "address": str, "idle": int}]
      },                                   # connections left on another version (--force)
      "window": null | {                   # --apply into or out of a migration window
        "marker": str,                     # hashring:migrating:<window version>
        "set_on": [str],                   # into a window: the old topology's nodes (each
                                           # marked as the run's pass over it starts)
        "cleared_on": [str]                # out of one: the nodes that held the marker
      }
    }

(``plan`` was added to version 1 with the planning figures, ``clients`` with the wait,
``window`` with the markers, ``options.max_busy`` and ``rested_seconds`` with
``--max-busy``.)

Migration windows. When NEW.toml is a window (its ``[migration] previous`` names OLD.toml,
checked: another previous is exit 2), ``--apply``, once every client runs the window, sets
the window's marker ``hashring:migrating:<version>`` on each node of OLD just before its pass
over that node (before the node's first SCAN): from then on the window's clients pull a key
moving away from that node to its new owner before writing it, instead of writing it there
(``hashring.adapters.redis._window_routes``); a node not reached yet keeps its moving keys,
written there, until its pass moves them. After the pass it sets the done marker
(``<marker>:done``) there. Once every key has moved, it prints the final step. Moving out
of a window (``--from window.toml --to final.toml``), ``--apply`` clears that marker from
every node once every client runs the final topology. Markers are never moved, planned or verified.

Clients switch first. A client of the old topology that writes while keys move writes
keys the run has already passed: they are stranded on the old owner. Hashring clients name
their connections with their topology's version (``hashring-client-<version>``), so before
``--apply`` moves a key it polls ``CLIENT LIST`` on every node until no hashring connection
runs a version other than the new topology's, at most ``--wait-clients`` seconds (default 60);
stragglers left are listed (version, address, node, idle seconds) and nothing moves (exit 1).
``--force`` moves keys anyway, with a warning listing them.

With ``replace``, conflicts are overwritten and so are part of ``moved``; otherwise
``to_move = moved + conflicts + missing + failed``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import TYPE_CHECKING, Any

from .._errors import MigrationError, VolatileDestinationError
from .._topology.clients import marker_key
from .._topology.config import Topology, load_topology, renumbers
from ._common import (
    EXIT_FAILED,
    EXIT_OK,
    OperationError,
    UsageError,
    escape,
    key_count,
    positive_int,
    progress,
    renumbering_message,
)
from ._migrate_report import SCHEMA, apply_report, dry_run_report, durability_fields, text
from ._plan import MovePlan, plan_json, plan_move, plan_text, sample_live_nodes

__all__ = ["SAMPLE", "SCHEMA", "register", "run"]

SAMPLE = 100_000
"""Keys the dry run samples for its plan unless ``--sample`` says otherwise."""


def register(subparsers: Any) -> None:
    """Add the ``migrate`` subcommand to ``subparsers``."""
    parser = subparsers.add_parser(
        "migrate",
        help="move live Redis keys to their new owners after a topology change",
        description="Move live Redis keys to their owners under a new topology with "
        "Redis's MIGRATE (values and TTLs kept, safe to interrupt and re-run). Dry run by "
        "default: prints the plan; --apply moves the keys, then verifies.",
        epilog="Durability: --apply refuses (exit 2, nothing moved) a destination that would "
        "hold moved keys in memory only: it must have AOF on (appendonly yes) or a replica "
        "online (then WAIT 1 must acknowledge every batch); servers whose INFO does not tell "
        "count as volatile. Exit status: 0 dry run computed / --apply left nothing misplaced "
        "and lost nothing (moved keys deleted by clients since are no loss); 1 keys left "
        "misplaced, moved keys lost (a destination restarted or evicted), or a node "
        "unreachable; "
        "2 bad flags or topology files, or a volatile destination without "
        "--allow-volatile-destination.",
    )
    parser.add_argument(
        "--from",
        dest="from_file",
        required=True,
        metavar="OLD.toml",
        help="the topology clients used so far",
    )
    parser.add_argument(
        "--to", dest="to_file", required=True, metavar="NEW.toml", help="the new topology"
    )
    parser.add_argument(
        "--apply", action="store_true", help="move the keys (default: dry run, print the plan)"
    )
    parser.add_argument(
        "--bytes",
        action="store_true",
        help="add per-pair byte totals (MEMORY USAGE per misplaced key: a share of a round "
        "trip and the server's work per key)",
    )
    parser.add_argument(
        "--batch",
        type=positive_int,
        default=1000,
        metavar="N",
        help="keys per SCAN COUNT and per MIGRATE (default 1000)",
    )
    parser.add_argument(
        "--rate",
        type=_rate,
        default=None,
        metavar="KEYS_PER_SEC",
        help="most keys moved per second, on average (default unlimited)",
    )
    parser.add_argument(
        "--max-busy",
        type=_share,
        default=None,
        metavar="F",
        help="largest share of its time the move works, 0.01 to 1: it rests after each "
        "round trip so that each source server serves its clients at least 1-F of the time, "
        "whatever the keys' sizes (default 1: no rests; 0.1 for a store under live load)",
    )
    parser.add_argument(
        "--timeout",
        type=positive_int,
        default=5000,
        metavar="MS",
        help="MIGRATE timeout in milliseconds, also the WAIT timeout of a destination kept "
        "durable by replicas (default 5000)",
    )
    parser.add_argument(
        "--on-conflict",
        type=_on_conflict,
        default="keep-destination",
        metavar="POLICY",
        help="a key already on its destination: keep-destination (default: keep its value, "
        "delete the stale source copy), replace (source wins), skip (leave both)",
    )
    parser.add_argument(
        "--allow-volatile-destination",
        action="store_true",
        help="move keys to destinations without AOF or replica too (a crash or restart of "
        "one loses the keys moved there: right for caches only)",
    )
    parser.add_argument(
        "--sample",
        type=key_count,
        default=SAMPLE,
        metavar="N",
        help=f"dry run: keys sampled for the plan's bytes, TTLs and memory (default {SAMPLE:,})",
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        help="dry run: exit 1 when a node would hold more than its maxmemory after the move",
    )
    parser.add_argument(
        "--wait-clients",
        type=_seconds,
        default=WAIT_CLIENTS,
        metavar="SECONDS",
        help="--apply: first wait, at most this long, until every hashring client connected "
        "to a node runs the NEW topology's version (CLIENT LIST; default "
        f"{WAIT_CLIENTS:g}); stragglers left: exit 1, nothing moved",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="--apply: move keys without waiting for clients to switch (a warning lists "
        "clients still on another version: their writes to moved keys would be stranded)",
    )
    parser.add_argument("--format", choices=("text", "json"), default="text", help="output format")
    parser.set_defaults(run=run)


WAIT_CLIENTS = 60.0
"""Seconds ``--apply`` waits by default for clients to switch to the new topology."""
MAX_WAIT = 86_400.0
SHOWN_STRAGGLERS = 10


def _seconds(text: str) -> float:
    """``--wait-clients``'s type: finite seconds from 0 to a day."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r:.40} is not a number of seconds") from None
    if not 0 <= value <= MAX_WAIT:
        raise argparse.ArgumentTypeError(f"{text:.40} must be from 0 to {MAX_WAIT:,.0f} seconds")
    return value


def _share(text: str) -> float:
    """``--max-busy``'s type: a share of time from the engine's ``MIN_BUSY`` to 1.

    Raises:
        argparse.ArgumentTypeError: another value (argparse makes it one usage line).
        UsageError: redis-py is not installed.
    """
    return _within(text, _minimums()[1], 1.0, "a share of time")


def _rate(text: str) -> float:
    """``--rate``'s type: keys per second from the engine's ``MIN_RATE`` to 1e12.

    Raises:
        argparse.ArgumentTypeError: another value (argparse makes it one usage line).
        UsageError: redis-py is not installed.
    """
    return _within(text, _minimums()[0], 1e12, "a number of keys per second")


def _minimums() -> tuple[float, float]:
    """The engine's ``MIN_RATE`` and ``MIN_BUSY``, imported when ``migrate`` parses its
    flags (as :func:`_on_conflict` does)."""
    try:
        if TYPE_CHECKING:
            from adapters.migrate import MIN_BUSY, MIN_RATE
        else:
            from hashring.adapters.migrate import MIN_BUSY, MIN_RATE
    except ImportError as exc:  # pragma: no cover - redis-py comes with the redis extra
        raise _needs_redis(exc) from None
    return MIN_RATE, MIN_BUSY


def _within(text: str, low: float, high: float, what: str) -> float:
    """``text`` as a number from ``low`` to ``high``, else an argparse error naming ``what``."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r:.40} is not a number") from None
    if not low <= value <= high:  # NaN too
        raise argparse.ArgumentTypeError(f"{text:.40} must be {what} from {low:g} to {high:g}")
    return value


def _window_marker(session: Any, old: Topology, new: Topology) -> dict[str, Any] | None:
    """After the clients' wait, before any key moves: into a migration window (``new`` has
    ``[migration]``), have its marker set on each node of the old topology as the move's
    pass over that node starts (``MigrationSession.mark_passes``); out of one (``old``
    has it, ``new`` not), clear the old window's marker from every node. The report's
    ``window`` object, or None.

    Raises:
        MigrationError: a node is unreachable (from the session).
    """
    if new.previous is not None:
        marker = marker_key(new.version)
        return {
            "marker": marker,
            "set_on": session.mark_passes(marker, old.nodes),
            "cleared_on": [],
        }
    if old.previous is not None:
        marker = marker_key(old.version)
        return {"marker": marker, "set_on": [], "cleared_on": session.clear_marker(marker)}
    return None


def _wait_for_clients(session: Any, args: argparse.Namespace, version: str) -> dict[str, Any]:
    """Before ``--apply`` moves a key: every hashring client on the new version, or the
    stragglers refused (``--force``: listed in a warning). The report's ``clients`` object.

    Raises:
        OperationError: clients of another version are still connected after the wait.
    """
    started = time.monotonic()
    if args.force:
        others = session.wait_for_clients(version, timeout=0)
        if others:
            shown = "; ".join(c.describe() for c in others[:SHOWN_STRAGGLERS])
            print(
                f"hashring: warning: --force: moving keys while {len(others):,} hashring "
                f"client connections run another topology version than {version} (their "
                f"writes to keys that move will be stranded): {escape(shown)}",
                file=sys.stderr,
            )
    else:
        others = session.wait_for_clients(version, timeout=args.wait_clients)
        if others:
            shown = "; ".join(c.describe() for c in others[:SHOWN_STRAGGLERS])
            more = len(others) - SHOWN_STRAGGLERS
            raise OperationError(
                f"nothing moved: after {args.wait_clients:g}s, {len(others):,} hashring client "
                f"connections still run another topology version than {version}: "
                f"{escape(shown)}{f' (and {more:,} more)' if more > 0 else ''}; give them the "
                "new topology (or stop them), then re-run; --force moves keys anyway"
            )
    return {
        "version": version,
        "waited_seconds": round(time.monotonic() - started, 3),
        "forced": bool(args.force),
        "others": [
            {"version": c.version, "node": c.node, "address": c.address, "idle": c.idle_seconds}
            for c in others
        ],
    }


def run(args: argparse.Namespace) -> int:
    """Plan (dry run) or carry out the migration; print the summary; return the exit status.

    Raises:
        UsageError, ConfigError: bad topology files or URLs (exit 2).
        OperationError: a node unreachable or a MIGRATE refused (exit 1).
    """
    try:
        if TYPE_CHECKING:  # mypy knows the adapters by their folder's name
            from adapters.migrate import MigrationSession
        else:
            from hashring.adapters.migrate import MigrationSession
    except ImportError as exc:  # pragma: no cover - redis-py comes with the redis extra
        raise _needs_redis(exc) from None
    old = load_topology(args.from_file)
    new = load_topology(args.to_file)
    if renumbers(old, new):
        raise UsageError(renumbering_message(args.from_file, args.to_file))
    if new.previous is not None and new.previous.version != old.version:
        raise UsageError(
            f"{escape(args.to_file)} is a migration window from topology version "
            f"{new.previous.version} (its [migration] previous), but --from "
            f"{escape(args.from_file)} is version {old.version}: migrate from the topology "
            "the window names"
        )
    if args.apply and args.strict:
        raise UsageError("--strict applies to the dry run (the plan) only")
    move: MovePlan | None = None
    try:
        with MigrationSession(old, new, timeout_ms=args.timeout) as session:
            nodes = session.nodes
            durability = durability_fields(session.durability())
            if not args.apply:
                with progress(session.dbsize(), "planning") as bar:
                    plan = session.plan(
                        batch=args.batch, with_bytes=args.bytes, progress=bar.update
                    )
                live = sample_live_nodes(old, args.sample, new, also=new, empty_ok=True)
                move = (
                    plan_move(live, new.placement(), rate=args.rate, busy=args.max_busy)
                    if live.keys
                    else None
                )
                report = dry_run_report(args, nodes, durability, plan)
                report["plan"] = None if move is None else plan_json(move)
                report["clients"] = None
                report["window"] = None
                status = EXIT_FAILED if args.strict and move and move.over_memory else EXIT_OK
            else:
                clients = _wait_for_clients(session, args, new.version)
                window = _window_marker(session, old, new)
                counts = _Moved()
                with progress(None, "moving keys") as bar:

                    def moved(n: int) -> None:
                        counts.moved += n
                        bar.update(n)

                    def scanned(n: int) -> None:
                        counts.scanned += n
                        bar.set_postfix_str(f"{counts.scanned:,} scanned", refresh=False)

                    try:
                        result = session.migrate(
                            batch=args.batch,
                            rate=args.rate,
                            max_busy=args.max_busy,
                            on_conflict=args.on_conflict,
                            with_bytes=args.bytes,
                            progress=scanned,
                            moved_progress=moved,
                            allow_volatile=args.allow_volatile_destination,
                        )
                    except KeyboardInterrupt:
                        raise KeyboardInterrupt(counts.interrupted()) from None
                with progress(session.dbsize(), "verifying") as bar:
                    check = session.verify(batch=args.batch, progress=bar.update)
                report = apply_report(args, nodes, durability, result, check)
                report["plan"] = None
                report["clients"] = clients
                report["window"] = window
                done = check.misplaced == 0 and check.lost_total == 0
                status = EXIT_OK if done else EXIT_FAILED
    except VolatileDestinationError as exc:
        volatile = "; ".join(f"{d.node} ({nodes[d.node]}): {d.detail}" for d in exc.volatile)
        raise UsageError(
            f"refusing to move keys to volatile destinations, nothing moved: {volatile}: a "
            "crash or restart would lose the keys moved there once their source copies are "
            "deleted; turn on appendonly (appendfsync always) or attach a replica, or pass "
            "--allow-volatile-destination if losing them is acceptable (a cache)"
        ) from None
    except MigrationError as exc:
        raise OperationError(str(exc)) from None
    if args.format == "json":
        print(json.dumps(report, indent=2))
    else:
        print(text(report))
        window = report.get("window")
        if window and window["set_on"]:
            print(
                f"window: marker {window['marker']} set on each of "
                f"{', '.join(window['set_on'])} as the pass over it began"
            )
            if status == EXIT_OK:
                print(
                    "next: publish the final topology (this window's file without [migration]) "
                    "to every client, then run: hashring migrate --from "
                    f"{escape(args.to_file)} --to FINAL.toml --apply (it waits for the clients "
                    "and clears the marker)"
                )
        elif window and window["cleared_on"]:
            print(f"window: marker {window['marker']} cleared on {', '.join(window['cleared_on'])}")
        if not args.apply and move is not None:
            print("\n" + plan_text(move))
    if not args.apply and move is not None:
        for warning in move.warnings:
            print(f"hashring: warning: {escape(warning)}", file=sys.stderr)
    return status


class _Moved:
    """What ``--apply`` has done so far, for the progress bar and the interruption."""

    def __init__(self) -> None:
        self.moved = 0
        self.scanned = 0

    def interrupted(self) -> str:
        """The line printed after ``hashring: interrupted: ``."""
        return (
            f"{self.moved:,} keys moved so far ({self.scanned:,} scanned), each one whole on "
            "its new owner (keys in the round trip under way may have moved too); re-run the "
            "same command to resume: keys already moved are not moved again"
        )


def _on_conflict(value: str) -> str:
    """``--on-conflict``'s type: ``value`` if it is one of the engine's ``ON_CONFLICT``.

    The engine (and redis-py) is imported here, when ``migrate`` parses its flags, never when
    another subcommand runs.

    Raises:
        argparse.ArgumentTypeError: another value (argparse makes it one usage line).
        UsageError: redis-py is not installed.
    """
    try:
        if TYPE_CHECKING:
            from adapters.migrate import ON_CONFLICT
        else:
            from hashring.adapters.migrate import ON_CONFLICT
    except ImportError as exc:  # pragma: no cover - redis-py comes with the redis extra
        raise _needs_redis(exc) from None
    if value not in ON_CONFLICT:
        raise argparse.ArgumentTypeError(
            f"invalid choice: {value!r} (choose from {', '.join(ON_CONFLICT)})"
        )
    return value


def _needs_redis(exc: ImportError) -> UsageError:
    return UsageError(
        f"migrate needs redis-py ({exc.name} is missing): pip install 'hashring[redis]'"
    )
