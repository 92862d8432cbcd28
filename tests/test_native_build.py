"""The optional C extension modules are built where they must be, and used where built.

The extensions are optional (``optional = true`` in pyproject.toml): without a compiler the
install goes on and the pure-Python paths serve. CI sets ``HASHRING_REQUIRE_NATIVE=1``, and
then a missing module is a failure, not a silent fallback. Everywhere, the module that picks
a path at import (``scores.NATIVE``, ``ring._NATIVE``) must follow whether its extension
imports (the fallbacks themselves are tested in tests/test_rendezvous_native.py and
tests/test_ring_native.py).
"""

from __future__ import annotations

import importlib
import os
from typing import Any

import pytest

from hashring._placement import ring, scores

REQUIRED = os.environ.get("HASHRING_REQUIRE_NATIVE") == "1"


def _imported(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


@pytest.mark.parametrize(
    ("name", "chosen", "entry"),
    [
        ("hashring._placement._rendezvous_native", lambda: scores.NATIVE, "Scorer"),
        ("hashring._placement._ring_native", lambda: ring._NATIVE, "RingIndex"),
    ],
)
def test_extension_is_built_where_required_and_chosen_where_built(
    name: str, chosen: Any, entry: str
) -> None:
    """With HASHRING_REQUIRE_NATIVE=1 the module imports; the path chosen at import is its
    C entry point exactly when it imports, else None (the Python fallback)."""
    module = _imported(name)
    if REQUIRED:
        assert module is not None, f"{name} did not import (HASHRING_REQUIRE_NATIVE=1)"
    assert chosen() is (None if module is None else getattr(module, entry))


def test_rendezvous_scorings_use_the_chosen_path() -> None:
    """A scoring built on the C path holds a C scorer; on the fallback none."""
    made = scores.RendezvousScores({"a": 1.0, "b": 1.0})
    assert (made.native is not None) == (scores.NATIVE is not None)
