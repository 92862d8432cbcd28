"""The ``hashring`` command line: ``report``, ``lookup``, ``compare`` and ``migrate``.

Run ``hashring --help`` (or ``python -m hashring --help``) for the commands and
``hashring COMMAND --help`` for each one's options.

Exit status: 0 success; 1 the operation failed or found problems (for example keys left
misplaced by ``migrate``); 2 usage or configuration errors. User errors print one line
starting ``hashring: error:`` on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from .._errors import HashRingError
from ._common import EXIT_FAILED, EXIT_USAGE, OperationError, UsageError

try:
    from . import compare as compare
    from . import lookup as lookup
    from . import migrate as migrate
    from . import report as report
except ModuleNotFoundError as exc:  # `pip install hashring` without the cli extra
    _MISSING: str | None = exc.name
else:
    _MISSING = None

__all__ = ["main"]


def parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand registered."""
    top = argparse.ArgumentParser(
        prog="hashring",
        description="Consistent-hashing rebalance tooling: what a topology change moves, "
        "where keys live, how the algorithms compare, and live Redis key migration.",
        epilog="Exit status: 0 success, 1 the operation failed or found problems, "
        "2 usage or configuration errors.",
    )
    commands = top.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in (report, lookup, compare, migrate):
        command.register(commands)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    if _MISSING is not None:
        print(
            f"hashring: error: the command line needs {_MISSING}: pip install 'hashring[cli]'",
            file=sys.stderr,
        )
        return EXIT_USAGE
    args = parser().parse_args(argv)
    try:
        status: int = args.run(args)
        sys.stdout.flush()  # inside the try: a closed pipe shows up here, not at exit
    except (UsageError, HashRingError) as exc:
        print(f"hashring: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OperationError as exc:
        print(f"hashring: failed: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("hashring: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader of our output went away (``hashring report | head``): not an error.
        # Point stdout at devnull so the interpreter's final flush does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    return status
