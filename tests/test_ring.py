"""HashRing: placement against an independent reference, errors, and inspection."""

from __future__ import annotations

import math
import re
from bisect import bisect_left
from typing import Any

import mmh3
import pytest

from hashring import (
    EmptyRingError,
    HashRing,
    HashRingError,
    InvalidKeyError,
    InvalidOptionError,
    InvalidWeightError,
    Key,
    KeyEncodingError,
    NodeExistsError,
    NotEnoughNodesError,
    Placement,
    UnknownNodeError,
    hash_tag,
)

_TAG_STR = re.compile(r"^[^{]*\{([^}]*)\}", re.DOTALL)
_TAG_BYTES = re.compile(rb"^[^{]*\{([^}]*)\}", re.DOTALL)


def reference_tag(key: Key) -> Key:
    """The Redis Cluster hash-tag rule, written independently with a regex."""
    match = (_TAG_STR if isinstance(key, str) else _TAG_BYTES).match(key)  # type: ignore[arg-type]
    return match.group(1) if match and match.group(1) else key


def reference_owner(
    weights: dict[str, float], key: Key, vnodes: int = 160, tags: bool = True
) -> str:
    """The documented mmh3 placement, rebuilt from its description with plain lists."""
    points: list[tuple[int, str]] = []
    for name, weight in weights.items():
        count = max(1, math.floor(vnodes * weight + 0.5))
        for i in range(count):
            digest = mmh3.hash_bytes(f"{name}-{i // 4}".encode())
            part = i % 4
            points.append((int.from_bytes(digest[4 * part : 4 * part + 4], "little"), name))
    points.sort()
    tagged = reference_tag(key) if tags else key
    data = tagged.encode() if isinstance(tagged, str) else tagged
    position = mmh3.hash(data, 0, False)
    return points[bisect_left(points, (position, "")) % len(points)][1]


SAMPLE_KEYS: list[Key] = [f"user:{i}" for i in range(400)] + [
    b"\x00\xff",
    "",
    b"",
    "ключ",
    "{tag}a",
    "x{tag}y",
    "a{}b{c}",
    "{",
    "}{",
    "{{x}}",
    b"{bin}rest",
]


@pytest.mark.parametrize(
    "weights",
    [
        {"cache-1": 1, "cache-2": 1, "cache-3": 1},
        {"a": 1, "b": 2.5, "c": 0.3},
        {"solo": 1},
        {f"n{i}": 1 + i % 3 for i in range(25)},
    ],
)
def test_matches_reference_placement(weights: dict[str, float]) -> None:
    """Every key goes to the owner the documented algorithm names."""
    ring = HashRing(weights)
    expected = [reference_owner(weights, key) for key in SAMPLE_KEYS]
    assert [ring.get_node(key) for key in SAMPLE_KEYS] == expected
    assert ring.get_node_many(SAMPLE_KEYS) == expected


def test_placement_is_pinned_across_releases() -> None:
    """Owners of a fixed ring never change between releases (data would be stranded)."""
    ring = HashRing(["cache-1", "cache-2", "cache-3"])
    owners = ring.get_node_many([f"user:{i}" for i in range(12)])
    assert owners == [
        reference_owner({"cache-1": 1, "cache-2": 1, "cache-3": 1}, f"user:{i}") for i in range(12)
    ]
    # Recorded from reference_owner when the mmh3 scheme was first released.
    assert owners == [
        "cache-2",
        "cache-3",
        "cache-3",
        "cache-2",
        "cache-1",
        "cache-1",
        "cache-2",
        "cache-3",
        "cache-3",
        "cache-2",
        "cache-3",
        "cache-3",
    ]


@pytest.mark.parametrize(
    ("key", "tag"),
    [
        ("user:{42}:cart", "42"),
        ("{a}{b}", "a"),
        ("no{}tag", "no{}tag"),
        ("open{only", "open{only"),
        ("}{x}", "x"),
        ("{{x}}", "{x"),
        (b"pre{bin}post", b"bin"),
        (b"{}", b"{}"),
        ("", ""),
    ],
)
def test_hash_tag_rule(key: Key, tag: Key) -> None:
    """The tag is first '{' to the next '}', non-empty; otherwise the whole key."""
    assert hash_tag(key) == tag == reference_tag(key)


def test_hash_tags_group_keys_and_can_be_turned_off() -> None:
    """Keys sharing a tag share a node; hash_tags=False places the whole key."""
    nodes = [f"n{i}" for i in range(10)]
    ring = HashRing(nodes)
    plain = HashRing(nodes, hash_tags=False)
    for tag in ("1", "user42", "x" * 20):
        owners = {
            ring.get_node(f"{prefix}{{{tag}}}:{suffix}") for prefix in "ab" for suffix in "xyz"
        }
        assert owners == {ring.get_node(tag)}
    spread = {plain.get_node(f"k{i}{{same}}") for i in range(200)}
    assert len(spread) > 1
    weights = dict.fromkeys(nodes, 1.0)
    for key in ("k{same}", "{same}", b"x{same}y"):
        assert plain.get_node(key) == reference_owner(weights, key, tags=False)


def test_str_and_bytes_keys_agree() -> None:
    """A str key is placed by its UTF-8 bytes."""
    ring = HashRing(["a", "b", "c"])
    for key in ("user:1", "ключ", "🔑", ""):
        assert ring.get_node(key) == ring.get_node(key.encode())


def test_inspection() -> None:
    """nodes, len, in, iter, point counts, shares and repr describe the ring."""
    ring = HashRing({"b": 2, "a": 1}, vnodes=10)
    assert dict(ring.nodes) == {"a": 1.0, "b": 2.0}
    with pytest.raises(TypeError):
        ring.nodes["c"] = 1  # type: ignore[index]
    assert len(ring) == 2
    assert "a" in ring
    assert "z" not in ring
    assert list(ring) == ["a", "b"]
    assert ring.point_counts() == {"a": 10, "b": 20}
    shares = ring.hash_space_shares()
    assert set(shares) == {"a", "b"}
    assert math.isclose(sum(shares.values()), 1.0)
    assert repr(ring) == "HashRing(nodes=2, points=30, hash='mmh3', vnodes=10, hash_tags=True)"
    assert isinstance(ring, Placement)
    ring._check()


def test_nodes_view_is_a_snapshot() -> None:
    """The mapping returned by nodes does not change when the ring does."""
    ring = HashRing(["a"])
    view = ring.nodes
    ring.add_node("b")
    assert dict(view) == {"a": 1.0}
    assert dict(ring.nodes) == {"a": 1.0, "b": 1.0}


def test_small_weight_still_gets_a_point() -> None:
    """With mmh3 every node holds at least one point, so it can own keys."""
    ring = HashRing({"big": 1, "tiny": 0.0001})
    assert ring.point_counts() == {"big": 160, "tiny": 1}
    assert set(ring.get_nodes("k")) == {"big", "tiny"}


def test_get_nodes_n_none_lists_every_node_once() -> None:
    """n=None gives every node exactly once, owner first, both walk strategies."""
    ring = HashRing([f"n{i}" for i in range(30)], vnodes=8)
    for key in ("a", "b", b"c"):
        everyone = ring.get_nodes(key)
        assert sorted(everyone) == sorted(ring.nodes)
        assert everyone[0] == ring.get_node(key)
        assert ring.get_nodes(key, 5) == everyone[:5]
        assert ring.get_nodes(key, 12) == everyone[:12]


# --------------------------------------------------------------------------- errors

ERRORS: list[tuple[type[HashRingError], type[Exception]]] = [
    (EmptyRingError, LookupError),
    (UnknownNodeError, KeyError),
    (NodeExistsError, ValueError),
    (InvalidWeightError, ValueError),
    (InvalidOptionError, ValueError),
    (NotEnoughNodesError, ValueError),
    (InvalidKeyError, TypeError),
]


@pytest.mark.parametrize(("error", "builtin"), ERRORS)
def test_error_tree(error: type[HashRingError], builtin: type[Exception]) -> None:
    """Each error is a HashRingError and the built-in it refines."""
    assert issubclass(error, HashRingError)
    assert issubclass(error, builtin)


def test_empty_ring_lookups_raise() -> None:
    """Lookups on an empty ring raise EmptyRingError saying how to fix it."""
    ring = HashRing()
    for call in (
        lambda: ring.get_node("k"),
        lambda: ring.get_nodes("k"),
        lambda: ring.get_node_many(["k"]),
    ):
        with pytest.raises(EmptyRingError, match="no nodes: add one"):
            call()
    assert ring.get_node_many([]) == []
    ring.add_node("a")
    ring.remove_node("a")
    with pytest.raises(EmptyRingError):
        ring.get_node(b"k")


def test_membership_errors() -> None:
    """Duplicate and unknown nodes are refused, and the ring is left unchanged."""
    ring = HashRing(["a", "b"])
    with pytest.raises(NodeExistsError, match="'a' is already in the ring; use set_weight"):
        ring.add_node("a")
    with pytest.raises(NodeExistsError, match="listed more than once"):
        HashRing(["a", "a"])
    with pytest.raises(UnknownNodeError) as info:
        ring.remove_node("zz")
    assert str(info.value) == "no node named 'zz' in the ring (nodes: 'a', 'b')"
    with pytest.raises(UnknownNodeError, match="'zz'"):
        ring.set_weight("zz", 2)
    assert dict(ring.nodes) == {"a": 1.0, "b": 1.0}
    ring._check()


@pytest.mark.parametrize("weight", [0, -1, math.nan, math.inf, "2", True, None, 1j])
def test_bad_weights_are_refused(weight: Any) -> None:
    """Weights must be positive finite numbers, wherever they are given."""
    ring = HashRing(["a"])
    for call in (
        lambda: HashRing({"x": weight}),
        lambda: ring.add_node("x", weight),
        lambda: ring.set_weight("a", weight),
    ):
        with pytest.raises(InvalidWeightError, match="must be a positive finite number"):
            call()
    assert dict(ring.nodes) == {"a": 1.0}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"vnodes": 0}, "vnodes must be an int from 1 to 16,777,216"),
        ({"vnodes": 1.5}, "vnodes must be an int from 1 to 16,777,216"),
        ({"vnodes": True}, "vnodes must be an int from 1 to 16,777,216"),
        ({"hash": "md5"}, "unknown hash 'md5': use 'mmh3', 'ketama' or a callable"),
        ({"hash": 3}, "hash must be 'mmh3', 'ketama' or a callable"),
        ({"hash": lambda data: "x"}, "must return an int"),
        ({"hash": "ketama", "vnodes": 6}, "multiple of 4"),
    ],
)
def test_bad_options_are_refused(kwargs: dict[str, Any], message: str) -> None:
    """Constructor options outside what is allowed raise InvalidOptionError."""
    with pytest.raises(InvalidOptionError, match=message):
        HashRing(["a"], **kwargs)


@pytest.mark.parametrize("nodes", ["abc", b"abc", ["a", ""], ["a", 5]])
def test_bad_node_names_are_refused(nodes: Any) -> None:
    """Nodes must be an iterable of non-empty str names (a bare str is refused)."""
    with pytest.raises(InvalidOptionError):
        HashRing(nodes)


@pytest.mark.parametrize("key", [5, None, 1.5, ["k"], {"k": 1}, object()])
def test_bad_keys_are_refused(key: Any) -> None:
    """Keys must be str or bytes; the message names the type."""
    ring = HashRing(["a", "b"])
    with pytest.raises(InvalidKeyError, match=f"not {type(key).__name__}"):
        ring.get_node(key)
    with pytest.raises(InvalidKeyError):
        ring.get_nodes(key, 1)
    with pytest.raises(InvalidKeyError, match=r"keys\[1\]"):
        ring.get_node_many(["ok", key])


@pytest.mark.parametrize("make", [bytearray, memoryview, lambda b: b.decode()])
def test_bytes_like_and_str_keys_place_like_their_bytes(make: Any) -> None:
    """bytearray, memoryview and non-ASCII str keys are placed exactly like the same bytes."""
    ring = HashRing(["a", "b", "c", "d"])
    raw = [f"k\u00e9{i}:{{t{i % 7}}}".encode() for i in range(300)]
    expected = ring.get_node_many(raw)
    assert [ring.get_node(make(k)) for k in raw] == expected
    assert ring.get_node_many([make(k) for k in raw]) == expected
    assert [ring.get_nodes(make(k), 2)[0] for k in raw] == expected


@pytest.mark.parametrize("key", ["\udcff", "ok\ud800", "\ud83d\ude00"])
def test_unencodable_str_keys_raise_key_encoding_error(key: str) -> None:
    """A str with a lone surrogate raises KeyEncodingError (also a ValueError), never crashes."""
    ring = HashRing(["a", "b"])
    for call in (ring.get_node, lambda k: ring.get_nodes(k, 1), lambda k: ring.get_node_many([k])):
        with pytest.raises(KeyEncodingError) as info:
            call(key)
        assert isinstance(info.value, ValueError)
        assert isinstance(info.value, InvalidKeyError)
    with pytest.raises(KeyEncodingError, match=r"keys\[2\]"):
        ring.get_node_many(["x", "\u00e9", key])


def test_get_nodes_bounds() -> None:
    """n above the node count raises NotEnoughNodesError; n < 1 is refused."""
    ring = HashRing(["a", "b", "c"])
    with pytest.raises(
        NotEnoughNodesError, match="asked for 4 distinct nodes but the ring holds 3"
    ):
        ring.get_nodes("k", 4)
    for bad in (0, -1, 1.0, True):
        with pytest.raises(InvalidOptionError, match="n must be an int >= 1 or None"):
            ring.get_nodes("k", bad)  # type: ignore[arg-type]
    assert len(ring.get_nodes("k", 3)) == 3


class _Disguised(str):
    """A str subclass that lies about itself wherever it can."""

    def encode(self, *args: Any, **kwargs: Any) -> bytes:
        return b"lie"

    def find(self, *args: Any, **kwargs: Any) -> int:
        return -1

    def __format__(self, spec: str) -> str:
        return "lie"


@pytest.mark.parametrize("hash", ["mmh3", "ketama", "keyed"])
def test_str_subclasses_are_placed_like_the_plain_str(hash: str) -> None:
    """Keys and node names of a str subclass place exactly like their plain str value."""
    options: dict[str, Any] = {"hash_key": bytes(range(16))} if hash == "keyed" else {"hash": hash}
    plain = HashRing(["a", "b", "c"], **options)
    disguised = HashRing([_Disguised("a"), "b", "c"], **options)
    assert all(type(name) is str for name in disguised.nodes)
    keys = [f"k{i}" for i in range(300)] + [f"x{{t{i}}}y" for i in range(50)]
    expected = plain.get_node_many(keys)
    tricky = [_Disguised(k) for k in keys]
    assert disguised.get_node_many(keys) == expected
    assert plain.get_node_many(tricky) == expected
    assert [plain.get_node(k) for k in tricky] == expected
    assert [plain.get_nodes(k, 1)[0] for k in tricky] == expected


@pytest.mark.parametrize("keys", [None, 5, "abc", b"abc", bytearray(b"ab")])
def test_get_node_many_refuses_what_is_not_an_iterable_of_keys(keys: Any) -> None:
    """A single str/bytes or a non-iterable is refused, not placed character by character."""
    with pytest.raises(InvalidKeyError, match="iterable of keys"):
        HashRing(["a"]).get_node_many(keys)


def test_nodes_that_are_not_iterable_are_refused() -> None:
    """nodes=None or a number is an InvalidOptionError, not a TypeError."""
    for nodes in (None, 5):
        with pytest.raises(InvalidOptionError, match="nodes must be an iterable"):
            HashRing(nodes)  # type: ignore[arg-type]


def test_the_point_bound_counts_points_exactly() -> None:
    """The refusal names the exact point count, one above the bound."""
    with pytest.raises(InvalidWeightError, match="16,777,218 points"):
        HashRing(["a", "b"], vnodes=16_777_216 // 2 + 1)


def test_keyed_ketama_keeps_the_multiple_of_four_rule() -> None:
    """hash_key does not bypass ketama's vnodes check (a ring with no points)."""
    with pytest.raises(InvalidOptionError, match="multiple of 4"):
        HashRing(["a", "b"], hash="ketama", vnodes=5, hash_key=bytes(16))
