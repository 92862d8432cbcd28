"""hash_key=: a secret that makes key placement a keyed PRF, against hash flooding."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import key_lists, node_names

from hashring import ALGORITHMS, HashRing, InvalidOptionError, placement

SECRET = bytes(range(100, 132))
OTHER_SECRET = bytes(range(32))
NODES = [f"node-{i}" for i in range(8)]
KEYS = [f"session:{i}" for i in range(20_000)]


def build(algorithm: str, **options: Any) -> Any:
    if algorithm == "maglev":
        options.setdefault("table_size", 1031)
    return placement(algorithm, NODES, **options)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_the_same_secret_places_every_key_the_same_way(algorithm: str) -> None:
    """Two placements built with one secret agree on every key, single and batch."""
    first, second = build(algorithm, hash_key=SECRET), build(algorithm, hash_key=SECRET)
    owners = first.get_node_many(KEYS)
    assert second.get_node_many(KEYS) == owners
    assert [second.get_node(k) for k in KEYS[:2000]] == owners[:2000]
    assert [second.get_nodes(k, 3)[0] for k in KEYS[:500]] == owners[:500]


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_another_secret_or_none_places_keys_independently(algorithm: str) -> None:
    """Without the secret, placement agrees with it only by chance (about 1 in 8 keys)."""
    keyed = build(algorithm, hash_key=SECRET).get_node_many(KEYS)
    for other in (build(algorithm, hash_key=OTHER_SECRET), build(algorithm)):
        agree = sum(a == b for a, b in zip(keyed, other.get_node_many(KEYS), strict=True))
        assert 0.09 < agree / len(KEYS) < 0.16  # 1/8 = 0.125


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_keys_aimed_at_one_node_without_the_secret_spread_evenly(algorithm: str) -> None:
    """The flooding attack: keys chosen with the public hash to hit one node hit them all."""
    public = build(algorithm)
    target = NODES[3]
    aimed = [k for k in (f"flood:{i}" for i in range(60_000)) if public.get_node(k) == target]
    assert len(aimed) > 5000
    assert set(public.get_node_many(aimed)) == {target}  # the attack works unkeyed
    spread = Counter(build(algorithm, hash_key=SECRET).get_node_many(aimed))
    fair = len(aimed) / len(NODES)
    assert set(spread) == set(NODES)
    assert max(spread.values()) < 1.3 * fair


def test_the_secret_never_appears_in_a_repr() -> None:
    """repr names the hash as keyed, never shows the secret."""
    for algorithm in ALGORITHMS:
        text = repr(build(algorithm, hash_key=SECRET))
        assert "keyed" in text
        assert SECRET.hex() not in text
        assert repr(SECRET)[2:20] not in text


@pytest.mark.parametrize(
    ("hash_key", "message"),
    [
        (b"short", "16 to 64 bytes long, got 5 bytes"),
        (bytes(65), "16 to 64 bytes long, got 65 bytes"),
        ("a str secret of 20+", "must be bytes"),
        (12345678901234567890, "must be bytes"),
    ],
)
def test_bad_secrets_are_refused_without_being_shown(hash_key: object, message: str) -> None:
    """A secret that is not 16 to 64 bytes is refused; the message never holds the value."""
    with pytest.raises(InvalidOptionError, match=message) as info:
        HashRing(NODES, hash_key=hash_key)  # type: ignore[arg-type]
    shown = str(info.value)
    raw = hash_key.decode("latin-1") if isinstance(hash_key, bytes) else str(hash_key)
    assert raw not in shown
    assert repr(hash_key) not in shown


def test_a_secret_with_a_custom_hash_callable_is_refused() -> None:
    """A custom hash does its own keying: combining it with hash_key is an error."""
    with pytest.raises(InvalidOptionError, match="custom hash callable"):
        HashRing(NODES, hash=lambda data: len(data), hash_key=SECRET)


def test_bytes_like_secrets_are_accepted() -> None:
    """bytearray and memoryview secrets place like the same bytes."""
    expected = HashRing(NODES, hash_key=SECRET).get_node_many(KEYS[:1000])
    for secret in (bytearray(SECRET), memoryview(SECRET)):
        assert HashRing(NODES, hash_key=secret).get_node_many(KEYS[:1000]) == expected  # type: ignore[arg-type]


def test_hash_tags_still_group_keys_under_a_secret() -> None:
    """{tag} keys share a node with a secret too (the tag is hashed, keyed)."""
    ring = HashRing(NODES, hash_key=SECRET)
    assert len({ring.get_node(f"cart:{{user:{i % 3}}}:{i}") for i in range(300)}) <= 3
    assert ring.get_node("a{user:1}b") == ring.get_node("user:1")


@settings(max_examples=40, deadline=None)
@given(
    names=st.lists(node_names, min_size=2, max_size=6, unique=True),
    added=node_names,
    keys=key_lists,
)
def test_adding_a_node_moves_keys_only_to_it_under_a_secret(
    names: list[str], added: str, keys: list[Any]
) -> None:
    """Minimal movement holds with a keyed hash: keys move only to the added node."""
    if added in names:
        return
    ring = HashRing(names, hash_key=SECRET)
    before = ring.get_node_many(keys)
    ring.add_node(added)
    after = ring.get_node_many(keys)
    assert all(b == a or a == added for b, a in zip(before, after, strict=True))
