"""The optional C extension ``hashring._placement._ring_native`` is built where it must be.

CI sets ``HASHRING_REQUIRE_NATIVE=1``: there the module must import, so a broken C build
fails the run instead of passing silently on the pure-Python fallback. Everywhere the ring
module's choice (``_NATIVE``) must follow whether the module imports.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

from hashring._placement import ring as ring_module


def _imported() -> Any:
    try:
        return importlib.import_module("hashring._placement._ring_native")
    except ImportError:
        return None


def test_native_ring_is_built_when_required() -> None:
    """With HASHRING_REQUIRE_NATIVE=1 the extension imports and HashRing uses it."""
    module = _imported()
    if os.environ.get("HASHRING_REQUIRE_NATIVE") == "1":
        assert module is not None, "hashring._placement._ring_native did not import"
    if module is None:
        assert ring_module._NATIVE is None
    else:
        assert ring_module._NATIVE is module.RingIndex
