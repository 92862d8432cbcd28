"""Running the ``hashring`` command line from tests without paying for an interpreter each time.

Three ways, all returning a :class:`CliRun`:

* :func:`run_main` calls ``hashring.cli.main(argv)`` in the test process, with its streams
  in memory. For everything that does not test the process boundary (:func:`run_checked`
  also asserts that no traceback was printed).
* :class:`Zygote` is one long-lived, single-threaded ``python`` child that has imported
  hashring and forks a fresh process per invocation: the forked child gets fds 0/1/2 as the
  case asks (a pipe, closed, ``/dev/full``; a file or closed for stdin), Python's standard
  streams rebuilt over them as CPython builds them at start-up (``None`` for a closed fd,
  the same encodings and error handlers), argv decoded from bytes with the filesystem
  encoding and ``surrogateescape`` as CPython decodes it, the environment the case adds,
  and then runs ``python -m hashring`` (``runpy``) and exits with its status, flushing the
  standard streams the way interpreter shutdown does (exit 120 and an "Exception ignored"
  line when stdout cannot be flushed). A crash kills one forked child, a hang is killed at
  its bound: each case fails alone, never the run. Start-up costs one interpreter per
  module instead of one per case.
* :func:`run_process` runs a genuine ``python -m hashring`` subprocess: the few tests that
  pin the real process boundary.

The zygote's side is ``tests/cli_zygote.py``: one JSON request per line on its stdin, one
JSON answer per line on its stdout.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

Arg = str | bytes
START_BOUND = 120.0
"""Seconds the zygote may take to start and import hashring on a loaded machine."""


@dataclass(frozen=True)
class CliRun:
    """What one run of the command line did: exit status, output, error text, duration.

    ``status`` is negative (minus the signal number) when the process was killed by a signal;
    ``hang`` is true when it was killed for outliving its bound.
    """

    status: int
    stdout: bytes
    stderr: str
    seconds: float
    hang: bool = False

    @property
    def text(self) -> str:
        """``stdout`` decoded as the command wrote it (UTF-8, undecodable bytes escaped)."""
        return self.stdout.decode("utf-8", "surrogateescape")


def argv_text(arg: Arg) -> str:
    """``arg`` as ``sys.argv`` holds it: bytes decoded as CPython decodes argv at start-up."""
    return os.fsdecode(arg) if isinstance(arg, bytes) else arg


def run_main(*args: Arg, stdin: bytes = b"") -> CliRun:
    """Call ``hashring.cli.main(args)`` in this process; stdin, stdout, stderr in memory.

    The environment is this process's (use ``monkeypatch.setenv``).
    """
    from hashring.cli import main

    out, err = io.StringIO(), io.StringIO()
    source = io.TextIOWrapper(io.BytesIO(stdin), encoding="utf-8", errors="surrogateescape")
    started = time.perf_counter()
    status = main([argv_text(arg) for arg in args], stdin=source, stdout=out, stderr=err)
    seconds = time.perf_counter() - started
    return CliRun(
        status, out.getvalue().encode("utf-8", "surrogateescape"), err.getvalue(), seconds
    )


def run_checked(*args: Arg, stdin: bytes = b"") -> CliRun:
    """:func:`run_main`, asserting the command printed no traceback (its errors are one
    line, whatever went wrong)."""
    result = run_main(*args, stdin=stdin)
    assert "Traceback" not in result.stderr, result.stderr
    return result


def run_process(
    *args: Arg,
    stdin: bytes | None = b"",
    stdout: str = "pipe",
    env: Mapping[str, str],
    timeout: float,
) -> CliRun:
    """Run ``python -m hashring ARGS`` as a real subprocess with exactly the environment
    ``env``; ``stdin`` and ``stdout`` as for :meth:`Zygote.run` (a closed fd through
    ``/bin/sh``'s ``exec <&-`` / ``>&-``). Killed after ``timeout`` seconds (a hang)."""
    command: Sequence[Arg] = [sys.executable, "-m", "hashring", *args]
    if stdout == "closed":  # exec with fd 1 closed, as `hashring ... >&-` does
        command = ["/bin/sh", "-c", 'exec "$@" >&-', "sh", *command]
    if stdin is None:  # exec with fd 0 closed, as `hashring ... <&-` does
        command = ["/bin/sh", "-c", 'exec "$@" <&-', "sh", *command]
    started = time.perf_counter()
    with open("/dev/full" if stdout == "full" else os.devnull, "wb") as sink:
        try:
            result = subprocess.run(
                command,
                input=stdin or b"",
                stdout=sink if stdout == "full" else subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=dict(env),
                timeout=timeout,
            )
        except subprocess.TimeoutExpired as exc:  # subprocess.run has killed it
            error = (exc.stderr or b"").decode("utf-8", "backslashreplace")
            return CliRun(-signal.SIGKILL, exc.stdout or b"", error, timeout, hang=True)
    return CliRun(
        status=result.returncode,
        stdout=result.stdout or b"",
        stderr=result.stderr.decode("utf-8", "backslashreplace"),
        seconds=time.perf_counter() - started,
    )


class Zygote:
    """A forking server of ``python -m hashring`` runs (see the module docstring).

    ``env`` is the environment of every run (each run may add to it). Use as a context
    manager, or call :meth:`close`. Not thread-safe: one run at a time.
    """

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = dict(env)
        # the zygote's own stderr, for failure messages; closed by close()
        self._log = tempfile.TemporaryFile()  # noqa: SIM115
        self.threads = 0
        self._process = self._start()

    def __enter__(self) -> Zygote:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def pid(self) -> int:
        """The zygote's process id (a new one after the zygote failed and was restarted)."""
        return self._process.pid

    def _start(self) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("cli_zygote.py"))],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            env=self._env,
        )
        self._pending = b""
        self._process = process
        ready = self._reply(process, START_BOUND)
        if ready is None or not ready.get("ready"):
            self._kill(process)
            raise RuntimeError(f"the CLI zygote did not start: {self._log_text()}")
        self.threads = int(ready["threads"])
        return process

    def run(
        self,
        *args: Arg,
        stdin: bytes | None = b"",
        stdout: str = "pipe",
        env: Mapping[str, str] | None = None,
        timeout: float,
    ) -> CliRun:
        """Run ``python -m hashring ARGS`` in a forked child and return what it did.

        ``stdin``: the bytes on standard input, or None for a closed fd 0. ``stdout``:
        ``"pipe"`` (captured), ``"closed"`` (fd 1 closed, as ``>&-``) or ``"full"``
        (``/dev/full``). A child still running after ``timeout`` seconds is killed
        (``hang``). If the zygote itself fails, the run reports status -1 and a new zygote
        serves the next run.
        """
        request = {
            "argv": [os.fsencode(arg).hex() if isinstance(arg, str) else arg.hex() for arg in args],
            "stdin": None if stdin is None else stdin.hex(),
            "stdout": stdout,
            "env": dict(env or {}),
            "timeout": timeout,
        }
        process = self._process
        try:
            assert process.stdin is not None
            process.stdin.write(json.dumps(request).encode() + b"\n")
            process.stdin.flush()
            reply = self._reply(process, timeout + 30.0)
        except OSError:
            reply = None
        if reply is None:  # the zygote died or stopped answering: fail this run only
            self._kill(process)
            message = f"the CLI zygote failed: {self._log_text()}"
            self._process = self._start()
            return CliRun(-1, b"", message, timeout, hang=False)
        return CliRun(
            status=reply["status"],
            stdout=bytes.fromhex(reply["stdout"]),
            stderr=bytes.fromhex(reply["stderr"]).decode("utf-8", "backslashreplace"),
            seconds=reply["seconds"],
            hang=reply["hang"],
        )

    def _reply(self, process: subprocess.Popen[bytes], bound: float) -> dict[str, Any] | None:
        """The next JSON line from the zygote, or None at EOF or after ``bound`` seconds."""
        assert process.stdout is not None
        fd = process.stdout.fileno()
        deadline = time.monotonic() + bound
        while b"\n" not in self._pending:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
                return None
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                return None
            self._pending += chunk
        line, _, self._pending = self._pending.partition(b"\n")
        reply: dict[str, Any] = json.loads(line)
        return reply

    def _log_text(self) -> str:
        self._log.seek(0)
        return self._log.read()[-4000:].decode("utf-8", "backslashreplace")

    @staticmethod
    def _kill(process: subprocess.Popen[bytes]) -> None:
        process.kill()
        process.wait(timeout=60)
        for stream in (process.stdin, process.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):  # a request still buffered for a dead pipe
                    stream.close()

    def close(self) -> None:
        """Stop the zygote (it exits at the end of its input) and release its pipes."""
        process = self._process
        assert process.stdin is not None
        assert process.stdout is not None
        process.stdin.close()
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=60)
        process.stdout.close()
        self._log.close()
