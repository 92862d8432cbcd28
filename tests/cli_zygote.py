"""The zygote of :class:`cli_runs.Zygote`: run as ``python tests/cli_zygote.py``.

It imports hashring once, keeping itself single-threaded, then reads one JSON request per
line on stdin and, for each, forks a child that runs ``python -m hashring`` as a fresh
process would (fds 0/1/2 as the request asks, standard streams rebuilt as CPython builds
them at start-up, argv decoded from bytes as CPython decodes it, the request's environment
added), waits for it at most the request's timeout (then kills it: a hang), and answers one
JSON line: exit status, stdout, stderr, seconds, hang. Only the standard library is imported
before hashring, so what the children see is what ``python -m hashring`` sees.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import runpy
import select
import signal
import sys
import tempfile
import time
import traceback
from typing import IO, Any, NoReturn

OUTPUT_CAP = 1 << 22
"""Bytes of stdout or stderr kept per forked run (the rest is read and dropped)."""
_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def serve() -> None:
    """The zygote's loop: import hashring once, then fork one child per request line."""
    # numpy's BLAS would start worker threads at import: keep this process single-threaded,
    # so a fork copies a whole process, then give the children the environment unchanged.
    saved = {name: os.environ.get(name) for name in _THREAD_VARIABLES}
    os.environ.update(dict.fromkeys(_THREAD_VARIABLES, "1"))
    import tqdm  # noqa: F401  (imported before forking, as everything the children use)

    import hashring.cli  # noqa: F401

    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    # The protocol moves off fds 0 and 1, which are the children's to set up.
    requests = os.fdopen(os.dup(0), "rb")
    replies = os.dup(1)
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    os.close(null)
    stdio = {
        name: (str(stream.encoding), str(stream.errors))
        for name, stream in (("stdin", sys.stdin), ("stdout", sys.stdout), ("stderr", sys.stderr))
    }
    protocol = (requests.fileno(), replies)
    _send(replies, {"ready": True, "threads": len(os.listdir("/proc/self/task"))})
    for line in requests:
        _send(replies, _fork_run(json.loads(line), stdio, protocol))


def _send(fd: int, message: dict[str, Any]) -> None:
    data = json.dumps(message).encode() + b"\n"
    while data:
        data = data[os.write(fd, data) :]


def _fork_run(
    request: dict[str, Any], stdio: dict[str, tuple[str, str]], protocol: tuple[int, int]
) -> dict[str, Any]:
    """Fork a child for ``request``; collect its output, status and duration (bounded)."""
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    source: IO[bytes] | None = None
    if request["stdin"] is not None:
        source = tempfile.TemporaryFile()  # noqa: SIM115 - closed on both sides of the fork
        source.write(bytes.fromhex(request["stdin"]))
        source.seek(0)
    started = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        _child(request, stdio, protocol, (out_r, out_w, err_r, err_w), source)
    os.close(out_w)
    os.close(err_w)
    if source is not None:
        source.close()
    pidfd = os.pidfd_open(pid)
    deadline = started + float(request["timeout"])
    output = {out_r: bytearray(), err_r: bytearray()}
    open_fds = {out_r, err_r}
    status: int | None = None
    seconds = float(request["timeout"])
    while open_fds or status is None:
        remaining = deadline - time.perf_counter()
        if remaining <= 0:
            break
        waiting = [*open_fds] + ([pidfd] if status is None else [])
        for fd in select.select(waiting, [], [], remaining)[0]:
            if fd == pidfd:
                status = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
                seconds = time.perf_counter() - started
                continue
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                open_fds.discard(fd)
            elif len(output[fd]) < OUTPUT_CAP:
                output[fd] += chunk
    hang = status is None
    if hang:
        os.kill(pid, signal.SIGKILL)
        status = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    for fd in (out_r, err_r, pidfd):
        os.close(fd)
    return {
        "status": status,
        "stdout": bytes(output[out_r]).hex(),
        "stderr": bytes(output[err_r]).hex(),
        "seconds": seconds,
        "hang": hang,
    }


def _child(
    request: dict[str, Any],
    stdio: dict[str, tuple[str, str]],
    protocol: tuple[int, int],
    pipes: tuple[int, int, int, int],
    source: IO[bytes] | None,
) -> NoReturn:
    """In the forked child: set up fds and streams, run ``python -m hashring``, exit."""
    status = 1
    try:
        out_r, out_w, err_r, err_w = pipes
        for fd in (*protocol, out_r, err_r):
            os.close(fd)
        if source is None:
            os.close(0)
        else:
            os.dup2(source.fileno(), 0)
            source.close()
        if request["stdout"] == "closed":
            os.close(1)
        elif request["stdout"] == "full":
            full = os.open("/dev/full", os.O_WRONLY)
            os.dup2(full, 1)
            os.close(full)
        else:
            os.dup2(out_w, 1)
        os.dup2(err_w, 2)
        os.close(out_w)
        os.close(err_w)
        for fd, name in enumerate(("stdin", "stdout", "stderr")):
            stream = _stdio(fd, "r" if fd == 0 else "w", *stdio[name])
            setattr(sys, name, stream)
            setattr(sys, f"__{name}__", stream)
        os.environ.update(request["env"])
        argv = [os.fsdecode(bytes.fromhex(arg)) for arg in request["argv"]]
        status = _python_m_hashring(argv)
    except BaseException:  # a fault in this set-up: say so on whatever stderr there is
        with contextlib.suppress(Exception):
            traceback.print_exc()
    finally:
        os._exit(status & 0xFF)


def _stdio(fd: int, mode: str, encoding: str, errors: str) -> Any:
    """The text stream CPython makes for standard fd ``fd`` at start-up; None if it is closed."""
    try:
        os.fstat(fd)
    except OSError:
        return None
    raw = io.FileIO(fd, mode, closefd=False)
    buffered: Any = io.BufferedReader(raw) if mode == "r" else io.BufferedWriter(raw)
    return io.TextIOWrapper(
        buffered,
        encoding=encoding,
        errors=errors,
        newline="\n" if mode == "w" else None,
        line_buffering=fd == 2 or raw.isatty(),
    )


def _python_m_hashring(argv: list[str]) -> int:
    """``python -m hashring ARGV`` from ``runpy`` on: its exit status, as the interpreter's."""
    sys.argv = ["hashring", *argv]
    status = 0
    try:
        runpy.run_module("hashring", run_name="__main__", alter_sys=True)
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            status = exc.code or 0
        else:
            print(exc.code, file=sys.stderr)
            status = 1
    except BaseException:  # what the interpreter does with an uncaught exception
        traceback.print_exc()
        status = 1
    for name in ("stdout", "stderr"):  # interpreter shutdown flushes the standard streams
        stream = getattr(sys, name)
        if stream is None:
            continue
        try:
            stream.flush()
        except Exception:
            if name == "stdout":
                with contextlib.suppress(Exception):
                    print("Exception ignored on flushing sys.stdout:", file=sys.stderr)
                    traceback.print_exc()
                status = 120
    return status


if __name__ == "__main__":
    serve()
