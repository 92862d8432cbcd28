"""The optional C extension modules are built where they must be.

The extensions are optional (``optional = true`` in pyproject.toml): without a compiler the
install goes on and the pure-Python paths serve. CI sets ``HASHRING_REQUIRE_NATIVE=1``, and
then a missing module is a failure, not a silent fallback.
"""

from __future__ import annotations

import importlib
import os

import pytest

REQUIRED = os.environ.get("HASHRING_REQUIRE_NATIVE") == "1"


@pytest.mark.skipif(not REQUIRED, reason="HASHRING_REQUIRE_NATIVE=1 is not set")
def test_the_rendezvous_scorer_is_built() -> None:
    """hashring._placement._rendezvous_native imports, and the scoring module uses it."""
    module = importlib.import_module("hashring._placement._rendezvous_native")
    from hashring._placement import scores

    assert scores.NATIVE is module.Scorer
    assert scores.RendezvousScores({"a": 1.0, "b": 1.0}).native is not None


def test_the_rendezvous_scoring_path_is_chosen_at_import() -> None:
    """NATIVE is the C scorer exactly when the extension module imports (either way the
    scoring answers; the fallback is tested in tests/test_rendezvous_native.py)."""
    from hashring._placement import scores

    try:
        module = importlib.import_module("hashring._placement._rendezvous_native")
    except ImportError:
        assert scores.NATIVE is None
    else:
        assert scores.NATIVE is module.Scorer
