"""The process boundary of the ``hashring`` command line, with real subprocesses: the
installed console script and ``python -m hashring``, their exit status, argv bytes that are
not UTF-8, and a reader that closes the pipe (``hashring report | head -1``).

Everything else is tested in-process (``tests/test_cli.py``, ``tests/test_cli_malformed.py``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from hashring import HashRing

HASHRING = str(Path(sys.executable).parent / "hashring")


def test_python_m_hashring_is_the_same_program() -> None:
    """`python -m hashring` runs the same command line."""
    result = subprocess.run(
        [sys.executable, "-m", "hashring", "lookup", "k", "--nodes", "3"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert HashRing(["node-1", "node-2", "node-3"]).get_node("k") in result.stdout


def test_the_installed_script_exits_with_the_status() -> None:
    """The console script's process exits with main's status and its one stderr line."""
    result = subprocess.run(
        [HASHRING, "report", "--keys", "0"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert result.stderr.startswith("hashring: error: ")
    assert result.stderr.count("\n") == 1
    assert "must be at least 1" in result.stderr
    assert result.stdout == ""


def test_lookup_of_non_utf8_argv_uses_the_raw_bytes() -> None:
    """A key that is not UTF-8 on the command line is looked up by its bytes."""
    result = subprocess.run(
        [HASHRING.encode(), b"lookup", b"a\xff", b"--nodes", b"5", b"--format", b"json"],
        capture_output=True,
        timeout=60,
        check=True,
    )
    owner = json.loads(result.stdout.decode("utf-8", "surrogateescape"))["keys"][0]["owner"]
    assert owner == HashRing([f"node-{i}" for i in range(1, 6)]).get_node(b"a\xff")


def test_closed_pipe_is_not_an_error() -> None:
    """`hashring report | head -1`: exit 0, nothing on stderr, even with buffered output."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    with subprocess.Popen(
        [HASHRING, "report", "--keys", "100000", "--nodes", "300"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    ) as process:
        assert process.stdout is not None
        assert process.stderr is not None
        process.stdout.readline()
        process.stdout.close()
        error = process.stderr.read()
        assert process.wait(timeout=120) == 0
    assert error == b""
