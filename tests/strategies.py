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


# ------------------------------------------------------------------ hostile inputs (fuzzing)

hostile_keys: st.SearchStrategy[object] = st.one_of(
    st.text(),  # every code point, lone surrogates included
    st.binary(),
    st.binary(max_size=16).map(bytearray),
    st.binary(max_size=16).map(memoryview),
    st.builds(lambda a, t: f"{a}{{{t}}}", st.text(max_size=4), st.text(max_size=4)),
    st.integers(),
    st.floats(),
    st.none(),
    st.lists(st.text(max_size=3), max_size=2),
    st.builds(object),
)
"""Anything a caller might pass as a key: the valid ones and every wrong type."""

hostile_weights: st.SearchStrategy[object] = st.one_of(
    st.floats(),  # nan, inf, -0.0, subnormals, 1.7e308
    st.integers(min_value=-(2**1200), max_value=2**1200),
    st.sampled_from([1, 1, 2, 0.5, 1e-12, 1e12, 1e-13, 1e13, 5e-324, True, False]),
    st.fractions(),
    st.decimals(),
    st.text(max_size=3),
    st.none(),
)
"""Weights of every numeric kind and size, and some that are not numbers at all."""

hostile_names: st.SearchStrategy[object] = st.one_of(
    st.text(max_size=12),  # surrogates and control characters included
    st.just("n" * 5000),
    st.binary(max_size=4),
    st.integers(),
    st.none(),
    st.lists(st.text(max_size=2), max_size=2),
)
"""Node names: valid ones, unencodable or oversized ones, and wrong types."""

hostile_counts: st.SearchStrategy[object] = st.one_of(
    st.integers(min_value=-3, max_value=12),
    st.integers(min_value=2**24 - 2, max_value=2**64),
    st.sampled_from([True, False, 1.5, float("nan"), float("inf"), "3"]),
    st.none(),
)
"""Size-like option values (vnodes, n, table_size): small, huge and wrongly typed."""

hostile_hash_keys: st.SearchStrategy[object] = st.one_of(
    st.none(),
    st.binary(min_size=16, max_size=64),
    st.binary(max_size=80),
    st.text(max_size=20),
    st.integers(),
)
"""``hash_key`` values: valid secrets, short or long ones, and wrong types."""
