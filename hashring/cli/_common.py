"""What every subcommand shares: exit codes, errors, bounds, topologies from flags, escaping
for the terminal, progress bars."""

from __future__ import annotations

import argparse
import difflib
import math
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NoReturn

from .._errors import ConfigError
from .._placement.algorithms import ALGORITHMS
from .._placement.ring import DEFAULT_VNODES, MAX_POINTS
from .._topology.config import NodeSpec, Topology, hash_key_from_env, load_topology, parse_topology

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2

MAX_KEYS = 10_000_000
"""Most keys one command places: ``--keys``, ``--sample`` and the lines of ``--keys-file``."""
MAX_NODES = 200_000
"""Largest count ``--nodes N`` accepts (each algorithm has its own bounds too, checked before
any node is built: the ring's points, Maglev's table size)."""
MAX_RENDEZVOUS_WORK = 5_000_000_000
"""Rendezvous places a key in O(nodes): keys x nodes above this (about a minute of work) is
refused rather than left running."""


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line: ``hashring: error: ...``, exit 2.

    An unrecognized argument after a subcommand is reported by that subcommand's parser
    (``hashring report --nodse 5`` points at ``hashring report --help``, with the closest
    option when one is near: ``did you mean --nodes?``), not by the top-level one.
    """

    def error(self, message: str) -> NoReturn:
        """Print ``hashring: error: MESSAGE (see 'PROG --help')`` on stderr; exit status 2."""
        self.exit(EXIT_USAGE, f"hashring: error: {escape(message)} (see '{self.prog} --help')\n")

    def parse_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> argparse.Namespace:
        """As ``ArgumentParser.parse_args``; unrecognized arguments are reported by the
        innermost subcommand's parser (:meth:`error`: one line, exit 2)."""
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            owner = self._subcommand_parser(parsed) or self
            message = f"unrecognized arguments: {' '.join(extras)}"
            options = [o for action in owner._actions for o in action.option_strings]
            for extra in extras:
                guess = difflib.get_close_matches(extra.partition("=")[0], options, n=1)
                if extra.startswith("-") and guess:
                    message += f" (did you mean {guess[0]}?)"
                    break
            owner.error(message)
        return parsed

    def _subcommand_parser(self, parsed: argparse.Namespace) -> argparse.ArgumentParser | None:
        """The parser of the subcommand ``parsed`` names, if this parser has subcommands."""
        for action in self._actions:
            if isinstance(action, argparse._SubParsersAction):
                chosen = str(getattr(parsed, action.dest, None))
                found: argparse.ArgumentParser | None = action.choices.get(chosen)
                return found
        return None


def escape(text: str) -> str:
    r"""``text`` safe to print on one terminal line: every non-printable character (control
    characters such as ESC or newline, other invisible ones, lone surrogates) is written as
    a Python escape (``\x1b``, ``\n``, ``\u200b``); the surrogates that stand for
    undecodable bytes in argv (``\udcff``) are written as the byte they stand for (``\xff``).

    >>> print(escape("a\x1b[2Jb\udcff"))
    a\x1b[2Jb\xff

    O(len(text)); returns ``text`` itself when it is printable.
    """
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else _escape_char(char) for char in text)


def _escape_char(char: str) -> str:
    code = ord(char)
    if 0xDC80 <= code <= 0xDCFF:
        return f"\\x{code - 0xDC00:02x}"
    return repr(char)[1:-1]


class UsageError(Exception):
    """A bad flag combination or value: printed as one line, exit status 2."""


class OperationError(Exception):
    """The operation could not be carried out (a server unreachable, ...): exit status 1."""


def add_topology_flags(
    parser: argparse.ArgumentParser,
    *,
    config_flag: str = "--config",
    config_help: str = "topology file ([placement] and [nodes.NAME] tables)",
    weight_flag: bool = True,
) -> None:
    """The flags that describe a topology: a file, or quick flags (which override its options).

    The file's path lands in ``args.config`` whatever ``config_flag`` is called.
    """
    group = parser.add_argument_group("topology (a file, or quick flags)")
    group.add_argument(config_flag, dest="config", metavar="FILE.toml", help=config_help)
    group.add_argument(
        "--nodes",
        metavar="N|a,b,c",
        help="node names, or a count N for nodes node-1 ... node-N (default 8 without a file)",
    )
    group.add_argument("--algorithm", choices=ALGORITHMS, help="placement algorithm (default ring)")
    group.add_argument("--hash", choices=("mmh3", "ketama"), help="hash function (default mmh3)")
    group.add_argument("--vnodes", type=positive_int, help="ring: points per unit of weight")
    group.add_argument("--table-size", type=positive_int, help="maglev: table size (a prime)")
    group.add_argument(
        "--hash-key-env",
        metavar="VAR",
        help="key the hash with the secret in environment variable VAR (16 to 64 bytes)",
    )
    if weight_flag:
        group.add_argument(
            "--weight",
            action="append",
            default=[],
            metavar="NODE=W",
            help="set a node's weight (repeatable)",
        )


def positive_int(text: str) -> int:
    """argparse type: an int >= 1 (``1000``, ``1_000`` or ``1e3``).

    Bounds are the consumer's (the placement's, or :func:`key_count`'s); an int of more
    than 30 digits is refused here, before Python spends time converting it.
    """
    value = _integer(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} must be at least 1")
    return value


def key_count(text: str) -> int:
    """argparse type: a count of keys, 1 to :data:`MAX_KEYS`."""
    value = positive_int(text)
    if value > MAX_KEYS:
        raise argparse.ArgumentTypeError(f"{text}: at most {MAX_KEYS:,} keys are allowed")
    return value


def _integer(text: str) -> int:
    digits = text.strip()
    if len(digits) > 30:
        raise argparse.ArgumentTypeError(f"{text[:30]!r}...: too large a number")
    try:
        return int(digits)
    except ValueError:
        pass
    try:
        number = float(digits)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if not math.isfinite(number) or number != int(number):
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer")
    return int(number)


def positive_float(text: str) -> float:
    """argparse type: a finite float > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text} must be a positive number")
    return value


def check_rendezvous_work(topology: Any, keys: int) -> None:
    """Refuse a rendezvous placement of ``keys`` keys whose O(keys x nodes) work is above
    :data:`MAX_RENDEZVOUS_WORK` (``topology`` is a :class:`Topology`).

    Raises:
        UsageError: the work is above the bound.
    """
    if topology.algorithm == "rendezvous" and keys * len(topology.nodes) > MAX_RENDEZVOUS_WORK:
        raise UsageError(
            f"rendezvous places each key in O(nodes): {keys:,} keys x {len(topology.nodes):,} "
            f"nodes is above the {MAX_RENDEZVOUS_WORK:,} allowed; use fewer keys or another "
            "algorithm"
        )


def node_names(text: str) -> list[str]:
    """``--nodes`` value: a count (``8`` -> node-1..node-8) or comma-separated names."""
    if text.strip().isdecimal():
        digits = text.strip().lstrip("0") or "0"
        if len(digits) > 7 or int(digits) > MAX_NODES:
            raise UsageError(f"--nodes {digits[:20]}: at most {MAX_NODES:,} nodes are allowed")
        count = int(digits)
        if count < 1:
            raise UsageError("--nodes: a count must be at least 1")
        return [f"node-{i}" for i in range(1, count + 1)]
    names = [name.strip() for name in text.split(",")]
    if not all(names):
        raise UsageError(f"--nodes {text!r}: empty node name")
    if len(set(names)) != len(names):
        raise UsageError(f"--nodes {text!r}: a node is named twice")
    return names


def parse_weights(items: Iterable[str], flag: str = "--weight") -> dict[str, float]:
    """``NODE=W`` items -> {node: weight}."""
    return dict(parse_node(item, flag, weight_required=True) for item in items)


def parse_node(item: str, flag: str, *, weight_required: bool) -> tuple[str, float]:
    """``NODE=W`` (or ``NODE``, weight 1, unless ``weight_required``) -> (node, weight).

    Weights are bounded when the placement is built (:func:`build_topology`), so the
    message states the algorithm's bound.

    Raises:
        UsageError: no node name, a missing or non-positive weight.
    """
    name, sep, value = item.rpartition("=")
    if not sep:
        name, value = item, ""
    if not name or (weight_required and not sep):
        raise UsageError(f"{flag} {item!r}: expected NODE=WEIGHT, for example cache-2=2")
    if not sep:
        return name, 1.0
    try:
        weight = positive_float(value)
    except argparse.ArgumentTypeError as exc:
        raise UsageError(f"{flag} {item!r}: {exc}") from None
    return name, weight  # the placement bounds it (and the points it makes) when built


def topology_from_args(
    args: argparse.Namespace, weights: Mapping[str, float] | None = None
) -> Topology:
    """The topology ``args.config`` or the quick flags describe, with ``weights`` applied.

    Flags override the file's placement options (``--hash-key-env`` too).

    Raises:
        UsageError: contradictory flags, a weight for an unknown node, options the algorithm
            does not take.
        ConfigError: a bad topology file.
    """
    if args.hash_key_env is not None:  # checked here, so the message names the flag
        try:
            hash_key_from_env(args.hash_key_env, f"--hash-key-env {args.hash_key_env}")
        except ConfigError as exc:
            raise UsageError(str(exc)) from None
    base = load_topology(args.config) if args.config else None
    if base is not None and args.nodes:
        raise UsageError("give either a topology file or --nodes, not both")
    options: dict[str, Any] = {}
    if base is None:
        names = node_names(args.nodes or "8")
        if (args.algorithm or "ring") == "ring":  # refuse a huge ring before building it
            vnodes = args.vnodes or DEFAULT_VNODES
            if len(names) * vnodes > MAX_POINTS:
                raise UsageError(
                    f"--nodes: {len(names):,} nodes x {vnodes:,} vnodes is more than the "
                    f"{MAX_POINTS:,} points a ring may hold; lower --vnodes or the node count"
                )
        specs = {name: NodeSpec(name, None) for name in names}
        if args.nodes is not None and not args.nodes.strip():
            raise UsageError("--nodes: give a count or comma-separated names")
        source = "--nodes"
    else:
        specs = dict(base.nodes)
        source = base.source
        options = base.options()
    if args.algorithm is not None and args.algorithm != options.get("algorithm", "ring"):
        options.update(algorithm=args.algorithm, vnodes=None, table_size=None)
    for flag in ("hash", "vnodes", "table_size", "hash_key_env"):
        value = getattr(args, flag)
        if value is not None:
            options[flag] = value
    for name, weight in (weights or {}).items():
        if name not in specs:
            raise UsageError(f"--weight {name}={weight:g}: no node {name!r} in {source}")
        specs[name] = NodeSpec(name, specs[name].url, weight)
    history = None
    if base is not None and base.history is not None and options.get("algorithm") == "jump":
        history = base.history  # jump's bucket history stays with the file's nodes
    return build_topology(specs, options, source, history)


def build_topology(
    specs: dict[str, NodeSpec],
    options: dict[str, Any],
    source: str,
    history: dict[str, Any] | None = None,
) -> Topology:
    """Validate nodes and options (and jump's ``history``, when given) through the config
    schema, so flags and files agree."""
    placement_table = {key: value for key, value in options.items() if value is not None}
    if history is not None:
        placement_table["history"] = history
    nodes_table: dict[str, Any] = {}
    for name, spec in specs.items():
        entry: dict[str, Any] = {"weight": spec.weight}
        if spec.url is not None:
            entry["url"] = spec.url
        nodes_table[name] = entry
    try:
        return parse_topology({"placement": placement_table, "nodes": nodes_table}, source)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None


def progress(total: int | None, description: str, unit: str = "key") -> Any:
    """A tqdm bar on stderr that appears only if the work lasts over a second, on a terminal.

    Shows count, rate (keys/s) and ETA; silent when stderr is not a terminal.
    """
    from tqdm import tqdm

    return tqdm(
        total=total,
        desc=description,
        unit=unit,
        unit_scale=True,
        delay=1.0,
        disable=None,
        file=sys.stderr,
        leave=False,
        dynamic_ncols=True,
    )


def check_output_path(path: str, flag: str) -> None:
    """Refuse, before any work, an output file that cannot be created: its folder does not
    exist or is not writable, or the path is a folder.

    Raises:
        UsageError: the file cannot be written there.
    """
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise UsageError(f"{flag} {path}: is a folder: give a file name")
    if not os.path.isdir(folder):
        raise UsageError(f"{flag} {path}: no such folder {folder}: create it first")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UsageError(f"{flag} {path}: cannot write to the folder {folder}")
    if os.path.exists(path) and not os.access(path, os.W_OK):
        raise UsageError(f"{flag} {path}: the file exists and is not writable")


def renumbering_message(before: str, after: str) -> str:
    """Why a file-to-file jump change is refused, and what to do instead."""
    return (
        f"{after}: jump numbers its buckets in the sorted order of the node names, so a "
        f"placement built from this file renumbers the buckets of {before}'s nodes and moves "
        "most keys, where the same change applied to running clients moves only the "
        "changed nodes' keys: write the new file with jump's bucket history (hashring "
        f"report --from {before} --to {after} --write-to NEW.toml) and use that, or "
        "describe the change with --from and --add/--remove (what running clients apply)"
    )
