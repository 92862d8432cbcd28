"""The package's import graph has no cycles, and the core imports no adapter or network code.

Run ``python tests/test_imports.py`` to print the graph (module -> the modules it imports).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = {"hashring": ROOT / "hashring", "hashring.adapters": ROOT / "adapters"}
NETWORK = {"redis", "requests", "httpx", "urllib3", "socket", "http", "django", "flask", "celery"}


def modules() -> dict[str, Path]:
    """Every module of the package (and the adapters shipped inside it), by dotted name."""
    found: dict[str, Path] = {}
    for package, folder in PACKAGES.items():
        for path in folder.rglob("*.py"):
            parts = path.relative_to(folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join((package, *parts))] = path
    return found


def imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The package modules ``name`` imports anywhere in its body (functions included)."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    ancestors = {".".join(name.split(".")[:end]) for end in range(1, name.count(".") + 1)}
    named: set[str] = set()  # what import statements name: modules, or names in modules
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            named.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            named.add(source)
            named.update(f"{source}.{alias.name}" for alias in node.names)
    resolved = set()
    for target in named:
        if target in known:
            resolved.add(target)  # named outright: a real edge, even to an ancestor
        parts = target.split(".")
        for end in range(1, len(parts)):  # importing a.b.c imports a and a.b first, but
            prefix = ".".join(parts[:end])  # the packages holding this module are already
            if prefix in known and prefix not in ancestors:  # being imported: no new edge
                resolved.add(prefix)
    resolved.discard(name)
    return resolved


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports(name, path, known) for name, path in sorted(known.items())}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(edges.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycles() -> None:
    """No module of hashring or its adapters imports itself through other modules."""
    assert cycles(graph()) == []


def test_cycles_are_detected() -> None:
    """The checker itself finds a cycle when there is one."""
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_core_imports_no_adapter_and_no_network_library() -> None:
    """Data flows one way: adapters depend on the core, never the reverse (the CLI, which
    composes both, excepted)."""
    for path in PACKAGES["hashring"].rglob("*.py"):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                names = [node.module]
            if "cli" in path.relative_to(PACKAGES["hashring"]).parts:
                continue  # the CLI composes the core with the Redis adapter
            for imported in names:
                assert imported.split(".")[0] not in NETWORK, f"{path}: imports {imported}"
                assert not imported.startswith("hashring.adapters"), f"{path}: {imported}"


if __name__ == "__main__":
    for module, targets in graph().items():
        print(module, "->", ", ".join(sorted(targets)) or "-", file=sys.stdout)
