"""Start and stop real HTTP node processes (tests/http_node.py) on free loopback ports."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

NODE_SCRIPT = Path(__file__).with_name("http_node.py")
STARTUP_TIMEOUT = 10.0


class HttpServerError(RuntimeError):
    """A node process did not start."""


@dataclass
class HttpServer:
    """One running HTTP node: ``name`` answers in every response."""

    name: str
    port: int
    process: subprocess.Popen[str]
    hang: bool = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @classmethod
    def start(cls, name: str, port: int = 0, *, hang: bool = False) -> HttpServer:
        """Start a node; ``hang``: it accepts connections and never answers."""
        command = [sys.executable, str(NODE_SCRIPT), "--name", name, "--port", str(port)]
        process = subprocess.Popen(
            command + (["--hang"] if hang else []),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert process.stdout is not None
        line = process.stdout.readline()
        process.stdout.close()
        if not line.startswith("LISTENING "):
            process.kill()
            _, err = process.communicate(timeout=STARTUP_TIMEOUT)
            raise HttpServerError(f"HTTP node {name!r} did not start: {err.strip()[-500:]}")
        return cls(name, int(line.split()[1]), process, hang)

    def is_running(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL the node (if it still runs) and wait for it."""
        if self.is_running():
            self.process.kill()
        self.process.wait(timeout=STARTUP_TIMEOUT)
        if self.process.stderr is not None:
            self.process.stderr.close()

    def restart(self) -> None:
        """Start the node again on the same port."""
        self.kill()
        self.process = HttpServer.start(self.name, self.port, hang=self.hang).process


@contextmanager
def http_server_pool() -> Iterator[list[HttpServer]]:
    """A list to start servers into; every server in it is killed at exit."""
    servers: list[HttpServer] = []
    try:
        yield servers
    finally:
        for server in servers:
            server.kill()
