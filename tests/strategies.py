"""Hypothesis strategies shared by the property tests."""

from __future__ import annotations

import zlib

from hypothesis import strategies as st

from hashring import Key

node_names = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=12
)
"""Any non-empty UTF-8 encodable str: node names are free-form."""

weights = st.sampled_from([0.25, 0.5, 1, 1, 1, 1.5, 2, 3])
"""Weights with repeats, so equal-weight cases are common."""

keys: st.SearchStrategy[Key] = st.one_of(
    st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=24),
    st.binary(max_size=24),
    st.builds(
        lambda a, t, b: f"{a}{{{t}}}{b}",
        st.text(max_size=4),
        st.text(max_size=4),
        st.text(max_size=4),
    ),
)
"""str, bytes, and keys with hash tags (including empty and odd ones)."""

key_lists = st.lists(keys, min_size=1, max_size=60)


def node_sets(min_size: int = 1, max_size: int = 8) -> st.SearchStrategy[dict[str, float]]:
    """A mapping of distinct node names to weights."""
    return st.dictionaries(node_names, weights, min_size=min_size, max_size=max_size)


def crc32(data: bytes) -> int:
    """A custom hash for the callable ``hash=`` option."""
    return zlib.crc32(data)


ring_options = st.one_of(
    st.fixed_dictionaries({"hash": st.just("mmh3"), "vnodes": st.sampled_from([1, 7, 40, 160])}),
    st.fixed_dictionaries({"hash": st.just("ketama"), "vnodes": st.sampled_from([4, 40, 160])}),
    st.fixed_dictionaries({"hash": st.just(crc32), "vnodes": st.sampled_from([3, 40])}),
)
"""Constructor options covering every hash scheme."""

minimal_options = st.one_of(
    st.fixed_dictionaries({"hash": st.just("mmh3"), "vnodes": st.sampled_from([1, 7, 40, 160])}),
    st.fixed_dictionaries({"hash": st.just(crc32), "vnodes": st.sampled_from([3, 40])}),
)
"""Schemes whose point counts are per-node, so any change moves the minimum of keys."""
