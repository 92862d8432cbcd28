"""The README and the docstrings tell the truth: their examples run as written."""

from __future__ import annotations

import ast
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
    assert readme_command("test-command").endswith("python -m pytest -n 2")


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
    assert "ideal:     11.11% expected" in result.stdout  # 1/9: adding a ninth equal node
    assert "peak-to-mean" in result.stdout
    assert "node-9" in result.stdout.split("movement matrix")[1]


def package_modules() -> list[str]:
    """Every module of hashring and of hashring.adapters (which lives in its own folder)."""
    import hashring.adapters

    names = {"hashring", "hashring.adapters"}
    for package in (hashring, hashring.adapters):
        prefix = f"{package.__name__}."
        names.update(name for _, name, _ in pkgutil.walk_packages(package.__path__, prefix))
    return sorted(name for name in names if not name.endswith("__main__"))


PUBLIC_MODULES = [name for name in package_modules() if "._" not in name and ".cli" not in name]
"""Modules whose names are public API: each has an __all__ of its public names."""


@pytest.mark.parametrize("module", package_modules())
def test_docstring_examples(module: str) -> None:
    """Doctests in every module of hashring and its adapters pass."""
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0


def test_every_module_is_collected() -> None:
    """The module walk reaches the core layers and the adapters."""
    modules = package_modules()
    assert "hashring._placement.ring" in modules
    assert "hashring.adapters.redis" in modules
    assert "hashring.adapters.http" in modules


@pytest.mark.parametrize("module", PUBLIC_MODULES)
def test_public_names_are_exported(module: str) -> None:
    """Each public module's __all__ lists every public name it defines or re-exports from its
    own private modules (ruff's RUF022 keeps it sorted), and nothing it lacks."""
    loaded = importlib.import_module(module)
    assert loaded.__file__ is not None
    tree = ast.parse(pathlib.Path(loaded.__file__).read_text(encoding="utf-8"))
    defined = {  # names this module defines itself (imports are not its own API)
        target.id
        for node in tree.body
        if isinstance(node, (ast.Assign, ast.AnnAssign))
        for target in (node.targets if isinstance(node, ast.Assign) else [node.target])
        if isinstance(target, ast.Name)
    } | {
        node.name
        for node in tree.body
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
    }
    reexported = {  # classes and functions of the package's own private modules
        name
        for name, value in vars(loaded).items()
        if str(getattr(value, "__module__", "")).startswith(f"{module}._")
    }
    public = {name for name in defined | reexported if not name.startswith("_")} - {"__all__"}
    exported = set(getattr(loaded, "__all__", ()))
    assert public <= exported, f"missing from __all__: {sorted(public - exported)}"
    assert all(hasattr(loaded, name) for name in exported)


def test_the_root_exports_every_public_name() -> None:
    """hashring.__all__ is exactly the root package's public names."""
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
