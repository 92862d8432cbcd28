"""The README and the docstrings tell the truth: their examples run as written."""

from __future__ import annotations

import doctest
import importlib
import pathlib
import pkgutil
import re
import subprocess
import sys
from typing import Any

import pytest

import hashring

ROOT = pathlib.Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def readme_python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README, flags=re.DOTALL)


def readme_command(marker: str) -> str:
    match = re.search(rf"<!-- {marker} -->\n```sh\n(.*?)\n```", README)
    assert match, f"README has no <!-- {marker} --> block"
    return match.group(1)


PLACEHOLDER_PORTS = ("7001", "7002", "7003")


def needs_servers(block: str) -> bool:
    return "redis://127.0.0.1:700" in block or "http://127.0.0.1:800" in block


@pytest.mark.parametrize("block", [b for b in readme_python_blocks() if not needs_servers(b)])
def test_readme_python_examples_run(block: str) -> None:
    """Each python block of the README runs without error (its asserts included)."""
    exec(compile(block, "README.md", "exec"), {})


@pytest.mark.redis
@pytest.mark.parametrize(
    "block", [b for b in readme_python_blocks() if "redis://127.0.0.1:700" in b]
)
def test_readme_redis_examples_run(block: str, redis_servers: list[Any]) -> None:
    """README examples that talk to Redis run against real servers (ports substituted)."""
    for placeholder, server in zip(PLACEHOLDER_PORTS, redis_servers, strict=True):
        block = block.replace(f"127.0.0.1:{placeholder}/", f"127.0.0.1:{server.port}/")
    exec(compile(block, "README.md", "exec"), {})


def test_readme_has_exactly_two_setup_commands() -> None:
    """The README carries the main-job and test commands, each one line, nothing else marked."""
    assert len(re.findall(r"<!-- \w+-command -->", README)) == 2
    assert readme_command("main-command").endswith("hashring report")
    assert readme_command("test-command").endswith("python -m pytest")


def test_main_job_runs() -> None:
    """`hashring report` (the README's main job, after install): 1M keys, 8 nodes + 1."""
    command = readme_command("main-command").rsplit("&& .venv/bin/", 1)[1].split()
    result = subprocess.run(
        [str(pathlib.Path(sys.executable).parent / command[0]), *command[1:]],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    assert "1,000,000 (synthetic)" in result.stdout
    assert "ideal 11.11%" in result.stdout  # 1/9: adding a ninth equal node
    assert "peak-to-mean" in result.stdout
    assert "node-9" in result.stdout.split("movement matrix")[1]


@pytest.mark.parametrize(
    "module",
    sorted(
        name
        for _, name, _ in pkgutil.walk_packages(hashring.__path__, "hashring.")
        if not name.endswith("__main__")
    ),
)
def test_docstring_examples(module: str) -> None:
    """Doctests in every hashring module pass."""
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0


def test_public_names_are_exported() -> None:
    """__all__ lists every public name of the package (ruff's RUF022 keeps it sorted)."""
    public = {name for name in vars(hashring) if not name.startswith("_")}
    modules = {name for name in public if isinstance(getattr(hashring, name), type(sys))}
    assert set(hashring.__all__) == public - modules - {"annotations"}


@pytest.mark.parametrize(
    "block", [b for b in readme_python_blocks() if "http://127.0.0.1:800" in b]
)
def test_readme_http_examples_run(block: str, http_servers: list[Any]) -> None:
    """README examples that talk HTTP run against real nodes (ports substituted)."""
    for placeholder, server in zip(("8001", "8002", "8003"), http_servers, strict=True):
        block = block.replace(f"127.0.0.1:{placeholder}", f"127.0.0.1:{server.port}")
    exec(compile(block, "README.md", "exec"), {})
