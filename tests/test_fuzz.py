"""Runs the core fuzz module (tests/fuzz_core.py) in a child process.

A crash of the interpreter there (such as mmh3's segfault on a lone surrogate) fails this
test with the child's output instead of killing the whole test run.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
CHILD_TIMEOUT = 600  # seconds: the child normally takes well under a minute


@pytest.mark.slow
def test_core_fuzzing_in_a_child_process() -> None:
    """Every fuzzed core call answers validly or raises a HashRingError; nothing crashes."""
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "fuzz_core.py"],
        cwd=HERE,
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT,
        env={**os.environ, "PYTHONFAULTHANDLER": "1"},
        check=False,
    )
    report = f"exit {result.returncode}\n{result.stdout[-8000:]}\n{result.stderr[-4000:]}"
    assert result.returncode == 0, report
    assert " passed" in result.stdout, report
    assert " failed" not in result.stdout, report


def test_a_lone_surrogate_key_is_refused_in_a_child_process() -> None:
    """The key that crashed the interpreter raises KeyEncodingError from every placement."""
    program = (
        "from hashring import ALGORITHMS, BoundedLoad, KeyEncodingError, placement\n"
        "for name in ALGORITHMS:\n"
        "    p = placement(name, ['a', 'b'])\n"
        "    for call in (p.get_node, lambda k: p.get_nodes(k, 2),\n"
        "                 lambda k: p.get_node_many(['x', k]),\n"
        "                 lambda k: BoundedLoad(p).acquire(k).__enter__()):\n"
        "        try:\n"
        "            call('\\udcff')\n"
        "        except KeyEncodingError:\n"
        "            continue\n"
        "        raise SystemExit(f'{name}: no KeyEncodingError')\n"
        "print('refused everywhere')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "refused everywhere"
