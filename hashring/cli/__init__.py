"""The ``hashring`` command line: ``report``, ``lookup``, ``compare``, ``migrate``,
``simulate``, ``status`` and ``topology``.

Run ``hashring --help`` (or ``python -m hashring --help``) for the commands and
``hashring COMMAND --help`` for each one's options.

Exit status: 0 success; 1 the operation failed or found problems (for example keys left
misplaced by ``migrate``, or the output could not be written); 2 usage or configuration
errors (an unrecognized argument is reported by its subcommand, with the nearest option
when one is close); 130 interrupted (Ctrl-C: ``hashring: interrupted``, followed by what
was done when the command knows it, as ``migrate --apply`` does). Every error is one line
on stderr, never a traceback: ``hashring: error: ...`` (exit 2), ``hashring: failed: ...``
(exit 1). Non-printable characters in messages and in text output (node names, keys,
paths) are escaped (``\x1b``), so nothing a topology or
argv holds can drive the terminal or split a line.

A command's standard output is written when it has finished: a closed (``>&-``) or full
(``>/dev/full``) output is one ``hashring: failed: cannot write the output`` line, exit 1; a
reader that went away (``hashring report | head``) is not an error.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from collections.abc import Iterator, Sequence
from typing import TextIO

from .._errors import HashRingError
from ._common import EXIT_FAILED, EXIT_USAGE, OperationError, Parser, UsageError, escape

try:
    from . import compare as compare
    from . import lookup as lookup
    from . import migrate as migrate
    from . import report as report
    from . import simulate as simulate
    from . import status as status
    from . import topology as topology
except ModuleNotFoundError as exc:  # `pip install hashring` without the cli extra
    _MISSING: str | None = exc.name
else:
    _MISSING = None

__all__ = ["main"]


def parser() -> Parser:
    """The argument parser with every subcommand registered (its errors are one line)."""
    top = Parser(
        prog="hashring",
        description="Consistent-hashing rebalance tooling: what a topology change moves, "
        "where keys live, how the algorithms compare, live Redis key migration, and the "
        "dispatch strategies simulated.",
        epilog="Exit status: 0 success, 1 the operation failed or found problems, "
        "2 usage or configuration errors.",
    )
    commands = top.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in (report, lookup, compare, migrate, simulate, status, topology):
        command.register(commands)
    return top


def main(
    argv: Sequence[str] | None = None,
    *,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); returns the exit status.

    ``stdin``, ``stdout`` and ``stderr`` default to ``sys.stdin``, ``sys.stdout`` and
    ``sys.stderr``; a stream given here stands in for its ``sys`` attribute while the command
    runs (so argparse's messages and progress bars go there too) and the attribute is restored
    afterwards. ``--keys-file -`` reads ``stdin.buffer``. Not thread-safe: ``sys`` streams
    are process-wide.

    >>> import json
    >>> out = io.StringIO()
    >>> main(["lookup", "user:1", "--nodes", "a,b", "--format", "json"], stdout=out)
    0
    >>> json.loads(out.getvalue())["keys"][0]["owner"]
    'a'

    Never raises (``--help`` and argument errors return their status too) and never prints a
    traceback: an unexpected exception is one ``hashring: internal error:`` line, exit 1.
    """
    with _streams(stdin, stdout, stderr):
        return _main(argv)


@contextlib.contextmanager
def _streams(stdin: TextIO | None, stdout: TextIO | None, stderr: TextIO | None) -> Iterator[None]:
    """Put the given streams in place of ``sys.stdin``/``stdout``/``stderr``; restore them."""
    saved = sys.stdin, sys.stdout, sys.stderr
    if stdin is not None:
        sys.stdin = stdin
    if stdout is not None:
        sys.stdout = stdout
    if stderr is not None:
        sys.stderr = stderr
    try:
        yield
    finally:
        sys.stdin, sys.stdout, sys.stderr = saved


def _main(argv: Sequence[str] | None) -> int:
    if _MISSING is not None:
        return _error("error", f"the command line needs {_MISSING}: pip install 'hashring[cli]'")
    if sys.stdout is None:  # started with stdout closed (>&-)
        return _error("failed", "cannot write the output: standard output is closed", EXIT_FAILED)
    output = io.StringIO()
    try:
        with contextlib.redirect_stdout(output):
            args = parser().parse_args(argv)
            status: int = args.run(args)
    except SystemExit as exc:  # --help (its text is in output), or an argument error
        code = exc.code if isinstance(exc.code, int) else EXIT_USAGE
        return _write_output(output.getvalue(), code)
    except (UsageError, HashRingError) as exc:
        return _error("error", str(exc))
    except OperationError as exc:
        return _error("failed", str(exc), EXIT_FAILED)
    except KeyboardInterrupt as exc:  # a command may say what was done (migrate --apply)
        with contextlib.suppress(OSError, ValueError, AttributeError):
            said = escape(str(exc))
            print(f"hashring: interrupted{': ' + said if said else ''}", file=sys.stderr)
        return 130
    except RecursionError:
        return _error("error", "input nested too deeply")
    except MemoryError:
        return _error("failed", "out of memory", EXIT_FAILED)
    except Exception as exc:  # the promise is one line, never a traceback
        if os.environ.get("HASHRING_TRACEBACK"):
            raise
        return _error(
            "internal error",
            f"{type(exc).__name__}: {exc} (a bug: please report it; "
            "HASHRING_TRACEBACK=1 shows the traceback)",
            EXIT_FAILED,
        )
    return _write_output(output.getvalue(), status)


def _error(kind: str, message: str, status: int = EXIT_USAGE) -> int:
    """Print ``hashring: KIND: MESSAGE`` as one line on stderr; return ``status``."""
    line = f"hashring: {kind}: {escape(message)}\n"
    with contextlib.suppress(OSError, ValueError, AttributeError):  # stderr closed or full
        sys.stderr.write(line)
        sys.stderr.flush()
    return status


def _write_output(text: str, status: int) -> int:
    """Write the command's output to stdout; a failed write is one line and exit 1."""
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader of our output went away (``hashring report | head``): not an error.
        _discard_stdout()
        return status
    except (OSError, UnicodeError) as exc:
        _discard_stdout()
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        return _error("failed", f"cannot write the output: {reason}", EXIT_FAILED)
    return status


def _discard_stdout() -> None:
    """Point fd 1 at devnull, so the interpreter's final flush of what is still buffered
    does not fail again (and print "Exception ignored ...") at exit. Only the process's own
    standard output: a stream passed to :func:`main` is the caller's, left as it is."""
    if id(sys.stdout) != id(sys.__stdout__):  # (id: an `is` test would narrow the type)
        return
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
