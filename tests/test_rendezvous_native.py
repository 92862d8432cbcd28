"""The C rendezvous scorer (``hashring._placement._rendezvous_native``) against the Python
integer path and numpy, bit for bit, and its refusal of malformed arguments.

Three computations must agree on every answer: the C scorer, the Python integers (the
fallback without the extension) and numpy (``RendezvousScores.best`` and the sort of
``scores``, the batch path). With unequal weights C and Python decline (C: -1 or None) where
two scores lie within a relative 2**-30, or a mix gives u == 1.0, and numpy answers; those
cases are crafted here through seeds (mix64 is a bijection, so any mix can be asked for).
"""

from __future__ import annotations

import math
import random
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import keys as any_keys
from strategies import node_names
from test_placement_pinned import CONFIGS, PINNED, _numpy_best, _unmix64, _with_seed, answers

from hashring import Key, Maglev, Rendezvous
from hashring._placement import scores
from hashring._placement.hashes import GOLDEN64, MASK32, MASK64, mix64
from hashring._placement.scores import RendezvousScores

Scorer: Any = scores.NATIVE
needs_c = pytest.mark.skipif(
    Scorer is None, reason="the C extension hashring._placement._rendezvous_native is not built"
)
WEIGHT_STEPS = (0.25, 0.5, 1.0, 1.0, 2.0, 3.5, 7.0, 1e-3, 1e6)


def _numpy_ranking(scoring: RendezvousScores, position: int) -> list[int]:
    """numpy's preference order: a stable sort of the scores, highest first."""
    row = scoring.scores(np.array([position & MASK32], dtype=np.uint32))[0]
    descending = ~row if row.dtype == np.uint64 else -row
    ranked: list[int] = np.argsort(descending, kind="stable").tolist()
    return ranked


def _both(weights: dict[str, float]) -> tuple[RendezvousScores, RendezvousScores]:
    """The same scoring built with the C scorer and without it (the Python fallback)."""
    compiled = scores.NATIVE
    try:
        native = RendezvousScores(weights)
        scores.NATIVE = None
        python = RendezvousScores(weights)
    finally:
        scores.NATIVE = compiled
    assert native.native is not None
    assert python.native is None
    assert python.native_best is None
    return native, python


def _spread(position: int) -> int:
    return (position & MASK32) * GOLDEN64 & MASK64


def _seed_for_mix(position: int, mixed: int) -> int:
    """The seed whose mix at ``position`` is ``mixed``."""
    seed = _unmix64(mixed) ^ _spread(position)
    assert mix64(_spread(position) ^ seed) == mixed
    return seed


# ------------------------------------------------------------------ the three paths agree


@needs_c
def test_seeded_random_node_sets_agree_on_every_path() -> None:
    """1 to 64 nodes, equal and unequal weights, 150 positions each: C, the Python integers
    and numpy give the same owner, C's preference order is numpy's, C's mixes are numpy's."""
    rng = random.Random(20261129)
    declined = 0
    for count in range(1, 65):
        names = [f"n{rng.randrange(10**9)}-{i}" for i in range(count)]
        for weights in (
            dict.fromkeys(names, 1.0),
            {name: rng.choice(WEIGHT_STEPS) for name in names},
        ):
            native, python = _both(weights)
            scorer = native.native
            assert scorer is not None
            positions = [rng.randrange(2**32) for _ in range(150)] + [0, MASK32]
            numpy_best = native.best(np.array(positions, dtype=np.uint32)).tolist()
            for position, expected in zip(positions, numpy_best, strict=True):
                assert native.best_one(position) == expected
                assert python.best_one(position) == expected
                direct = scorer.best(position)
                assert direct in (expected, -1)
                declined += direct == -1
                if native.equal:
                    assert direct == expected
                    assert scorer.mixes(position) == python.mixes(position)
            for position in positions[:20]:
                assert native.ranking(position) == _numpy_ranking(native, position)
                assert python.ranking(position) == _numpy_ranking(python, position)
    assert declined <= 10  # C answers nearly every lookup itself


@needs_c
def test_many_nodes_agree() -> None:
    """Node counts where C ranks with its radix sort (above 64) and where the Python path
    hands over to numpy (above 48, 24 weighted)."""
    rng = random.Random(7)
    for count in (65, 100, 257, 1000):
        names = [f"node-{i}" for i in range(count)]
        for weights in (
            dict.fromkeys(names, 2.0),
            {name: rng.choice(WEIGHT_STEPS) for name in names},
        ):
            native, python = _both(weights)
            positions = [rng.randrange(2**32) for _ in range(40)]
            expected = native.best(np.array(positions, dtype=np.uint32)).tolist()
            assert [native.best_one(p) for p in positions] == expected
            assert [python.best_one(p) for p in positions] == expected
            for position in positions[:8]:
                assert native.ranking(position) == _numpy_ranking(native, position)


@needs_c
@settings(max_examples=80, deadline=None)
@given(
    weights=st.dictionaries(node_names, st.sampled_from(WEIGHT_STEPS), min_size=1, max_size=70),
    equal=st.booleans(),
    positions=st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=15),
)
def test_any_node_set_agrees(weights: dict[str, float], equal: bool, positions: list[int]) -> None:
    """Property: for any node names and weights, the C owner and order are numpy's and the
    Python path's."""
    if equal:
        weights = dict.fromkeys(weights, 1.0)
    native, python = _both(weights)
    for position in positions:
        owner = _numpy_best(native, position)
        assert native.best_one(position) == owner == python.best_one(position)
        assert native.ranking(position) == _numpy_ranking(native, position)
        assert native.ranking(position)[0] == owner


@needs_c
@settings(max_examples=40, deadline=None)
@given(
    weights=st.dictionaries(node_names, st.sampled_from(WEIGHT_STEPS), min_size=1, max_size=40),
    keys=st.lists(any_keys, min_size=1, max_size=20),
)
def test_rendezvous_and_maglev_lookups_agree_on_both_paths(
    weights: dict[str, float], keys: list[Key]
) -> None:
    """get_node, get_nodes and get_node_many of Rendezvous, and Maglev's preference lists,
    are the same built with and without the C scorer."""
    compiled = scores.NATIVE
    try:
        built = [(Rendezvous(weights), Maglev(weights, table_size=1031))]
        scores.NATIVE = None
        built.append((Rendezvous(weights), Maglev(weights, table_size=1031)))
    finally:
        scores.NATIVE = compiled
    (hrw, table), (hrw_py, table_py) = built
    assert hrw._snapshot.scoring.native is not None
    assert hrw_py._snapshot.scoring.native is None
    owners = hrw.get_node_many(keys)
    assert [hrw.get_node(k) for k in keys] == owners == [hrw_py.get_node(k) for k in keys]
    for key in keys:
        assert hrw.get_nodes(key) == hrw_py.get_nodes(key)
        assert table.get_nodes(key) == table_py.get_nodes(key)


# ------------------------------------------------------------------ crafted corner cases


@needs_c
def test_exact_ties_go_to_the_first_name() -> None:
    """Two nodes sharing a seed tie exactly at every position: with equal weights C picks
    the first by name (as numpy's argmax); with equal unequal-set weights C declines."""
    for count in (2, 5, 24, 64, 80):
        weights = {f"node-{i:02d}": 1.0 for i in range(count)}
        base = RendezvousScores(weights)
        tied = _with_seed(RendezvousScores(weights), count - 1, int(base.seeds[0]))
        assert tied.native is not None
        for position in range(0, 2**32, 2**32 // 500):
            owner = _numpy_best(tied, position)
            assert owner != count - 1
            assert tied.native.best(position) == owner == tied.best_one(position)
            order = tied.native.ranking(position)
            assert order == _numpy_ranking(tied, position)
            assert order is not None
            assert order.index(0) < order.index(count - 1)  # the tie: name order
    weighted = _with_seed(RendezvousScores({"a": 2.0, "b": 2.0, "c": 1.0}), 1, 0)
    weighted = _with_seed(weighted, 0, 0)
    assert weighted.native is not None
    for position in range(100):
        owner = _numpy_best(weighted, position)
        assert weighted.best_one(position) == owner != 1
        if owner == 0:  # a and b tie for the top: C must not answer
            assert weighted.native.best(position) == -1
        assert weighted.native.ranking(position) is None  # the tie is somewhere in the order
        assert weighted.ranking(position) == _numpy_ranking(weighted, position)


@pytest.mark.parametrize("gap", [0, 1, 2**11, 2**19])
def test_weighted_near_ties_are_left_to_numpy(rendezvous_path: str, gap: int) -> None:
    """Node a (weight 2) and node b (weight 1) get mixes whose scores 2 / -ln(u_a) and
    1 / -ln(u_b) differ by a few ulps (u_a ~ u_b ** 2): every path answers as numpy, and
    C declines (the scores are within 2**-30 of each other)."""
    position = 91_823
    mixed_b = 0xC000_0000_0000_0000 + gap
    u_b = ((mixed_b >> 11) + 0.5) * 2.0**-53
    mixed_a = int(u_b * u_b * 2.0**53) << 11  # u_a is u_b squared, up to rounding
    weights = {"a": 2.0, "b": 1.0, "c": 0.5}
    scoring = RendezvousScores(weights)
    scoring = _with_seed(scoring, 0, _seed_for_mix(position, mixed_a))
    scoring = _with_seed(scoring, 1, _seed_for_mix(position, mixed_b))
    scoring = _with_seed(scoring, 2, _seed_for_mix(position, 1 << 40))  # c scores far below
    score_a = 2.0 / -math.log(((mixed_a >> 11) + 0.5) * 2.0**-53)
    score_b = 1.0 / -math.log(u_b)
    assert abs(score_a - score_b) <= 2.0**-40 * score_b  # a near-tie indeed
    owner = _numpy_best(scoring, position)
    assert scoring.best_one(position) == owner
    assert scoring.ranking(position) == _numpy_ranking(scoring, position)
    if rendezvous_path == "native":
        assert scoring.native is not None
        assert scoring.native.best(position) == -1
        assert scoring.native.ranking(position) is None


def test_u_equal_to_one_is_left_to_numpy(rendezvous_path: str) -> None:
    """A mix whose top 53 bits are all ones makes u == 1.0, and numpy scores that node
    -inf (a division by -0.0): every path answers as numpy, and C declines."""
    position = 4242
    for mixed in (MASK64, MASK64 - 5, MASK64 ^ 0x7FF):  # only the low 11 bits vary
        scoring = _with_seed(
            RendezvousScores({"a": 2.0, "b": 1.0, "c": 1.0}), 2, _seed_for_mix(position, mixed)
        )
        assert mixed >> 11 == (1 << 53) - 1
        with np.errstate(divide="ignore"):  # numpy's -inf score warns
            owner = _numpy_best(scoring, position)
            assert scoring.best_one(position) == owner != 2
            assert scoring.ranking(position) == _numpy_ranking(scoring, position)
            assert scoring.ranking(position)[-1] == 2
        if rendezvous_path == "native":
            assert scoring.native is not None
            assert scoring.native.best(position) == -1
            assert scoring.native.ranking(position) is None
            assert scoring.native.mixes(position)[2] == mixed


@pytest.mark.parametrize(
    "label", sorted(k for k in CONFIGS if k.startswith(("rendezvous", "maglev")))
)
def test_pinned_answers_on_both_paths(rendezvous_path: str, label: str) -> None:
    """The pinned owners and preference lists of every rendezvous and Maglev configuration,
    with the C scorer and with the Python fallback."""
    placement = CONFIGS[label]()
    assert (placement._snapshot.scoring.native is not None) == (rendezvous_path == "native")
    got = answers(placement)
    assert got == PINNED[label]


# ------------------------------------------------------------------ hostile arguments


@needs_c
@pytest.mark.parametrize(
    ("args", "error", "message"),
    [
        (("abc",), TypeError, "seeds must be a list or tuple"),
        ((np.array([1, 2], dtype=np.uint64),), TypeError, "seeds must be a list or tuple"),
        (([],), ValueError, "1 to"),
        (([1, "2"],), TypeError, r"seeds\[1\] must be an int"),
        (([1.0],), TypeError, r"seeds\[0\] must be an int"),
        (([-1],), ValueError, r"seeds\[0\] must be from 0 to 2\*\*64 - 1"),
        (([2**64],), ValueError, r"seeds\[0\] must be from 0"),
        (([1, 2], [1.0]), ValueError, "one value per seed"),
        (([1], "x"), TypeError, "weights must be None or a list or tuple"),
        (([1], ["1"]), TypeError, r"weights\[0\] must be a float"),
        (([1], [None]), TypeError, r"weights\[0\] must be a float"),
        (([1], [0.0]), ValueError, "finite and above 0"),
        (([1], [-2.0]), ValueError, "finite and above 0"),
        (([1], [math.nan]), ValueError, "finite and above 0"),
        (([1], [math.inf]), ValueError, "finite and above 0"),
        (([1], [10**400]), ValueError, "too large"),
    ],
)
def test_the_scorer_refuses_malformed_construction(
    args: tuple[object, ...], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        Scorer(*args)


@needs_c
def test_the_scorer_refuses_malformed_calls() -> None:
    scorer = Scorer([1, 2, 3])
    for method in (scorer.best, scorer.ranking, scorer.mixes):
        for bad in ("1", 1.5, None, b"\x01", [1]):
            with pytest.raises(TypeError, match="position must be an int"):
                method(bad)
        with pytest.raises(TypeError):
            method()
        with pytest.raises(TypeError):
            method(1, 2)
    with pytest.raises(TypeError):
        Scorer()
    with pytest.raises(TypeError):
        Scorer([1], None, 3)
    with pytest.raises(TypeError):
        Scorer([1], bogus=None)
    with pytest.raises(TypeError):
        type("Sub", (Scorer,), {})  # not subclassable
    with pytest.raises(AttributeError):
        scorer.size = 5
    assert scorer.size == 3
    assert scorer.equal is True
    assert Scorer((1, 2), (1, 2.5)).equal is False


@needs_c
def test_positions_are_any_integer_masked_to_32_bits() -> None:
    """As ``position & 0xFFFFFFFF``: negative, huge and numpy integers, and bools."""
    rng = random.Random(3)
    seeds = [rng.randrange(2**64) for _ in range(9)]
    for weights in (None, [rng.choice(WEIGHT_STEPS) for _ in seeds]):
        scorer = Scorer(seeds, weights)
        for position in (0, 1, 77, MASK32, 123456789):
            for same in (
                position - 2**32,
                position + 2**32,
                position + 2**200,
                position - 2**200,
                np.uint32(position),
                np.int64(position),
            ):
                assert scorer.best(same) == scorer.best(position)
                assert scorer.ranking(same) == scorer.ranking(position)
                assert scorer.mixes(same) == scorer.mixes(position)
        assert scorer.best(True) == scorer.best(1)


@needs_c
def test_the_scorer_takes_int_weights_and_keeps_its_own_copies() -> None:
    """Weights may be ints; the lists given are copied (changing them changes nothing)."""
    seeds = [11, 22, 33]
    weights: list[Any] = [1, 2, 3]
    scorer = Scorer(seeds, weights)
    floats = Scorer(seeds, [1.0, 2.0, 3.0])
    before = [scorer.ranking(p) for p in range(50)]
    assert before == [floats.ranking(p) for p in range(50)]
    seeds[0] = 99
    weights[2] = 1000
    assert [scorer.ranking(p) for p in range(50)] == before


@needs_c
def test_node_sets_beyond_the_scorers_size_use_the_python_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Above MAX_SIZE nodes (2**24; lowered here) a scoring has no C scorer and answers as
    numpy all the same."""
    from hashring._placement import _rendezvous_native

    assert _rendezvous_native.MAX_SIZE == 2**24
    monkeypatch.setattr(scores, "_NATIVE_MAX_SIZE", 3)
    for count, has_c in ((3, True), (4, False)):
        scoring = RendezvousScores({f"n{i}": 1.0 + i for i in range(count)})
        assert (scoring.native is not None) == has_c
        positions = list(range(0, 2**32, 2**32 // 200))
        expected = scoring.best(np.array(positions, dtype=np.uint32)).tolist()
        assert [scoring.best_one(p) for p in positions] == expected
