"""Hash schemes: how keys hash to ring positions, and where a node's points lie.

A scheme answers four questions, so the ring needs no special case per hash:

* ``key_hash(key)``: the key's position; its value modulo 2**32 is the position (the mmh3
  scheme returns signed values, which the ring's bucket table indexes directly);
* ``hash_many(keys)``: the positions of many keys as a ``uint32`` array (the batch path);
* ``node_points([(name, count), ...])``: the first ``count`` points of each node's point
  stream, concatenated in the order given. Streams are prefix-stable, so raising a node's
  weight adds points and lowering it removes points, never moving the others;
* ``point_counts(weights, vnodes)``: how many points each node gets.

Schemes:

``"mmh3"`` (default)
    Keys: MurmurHash3 x86_32, seed 0, of the key's UTF-8 bytes, read unsigned. Points: the
    128-bit MurmurHash3 x64 digest of ``"<name>-<i>"`` gives four little-endian 32-bit points.
    A node gets ``max(1, round(vnodes * weight))`` points (round half up), so adding or
    reweighting one node never changes another node's points.
``"ketama"``
    Byte-compatible with twemproxy (``distribution: ketama``, ``hash: md5``): keys hash to
    the little-endian first four bytes of their MD5 digest; the MD5 digest of
    ``"<name>-<i>"`` gives four points; a node gets
    ``floorf(pct * vnodes / 4 * n + 1e-10) * 4`` points with ``pct = weight / total`` in
    single precision, exactly as twemproxy's ``ketama_update`` computes it (``vnodes`` is
    160 there). libketama and libmemcached place keys the same way wherever their point
    formula gives the same counts (it does for small pools of equal weights; 25 equal
    servers get 156 points each in twemproxy but 160 in libketama). With unequal weights a
    membership change alters other nodes' point counts too, as it does in twemproxy. Name
    nodes as twemproxy does: the server's ``name``, else ``host:port``, else ``host`` when
    the port is 11211.
keyed (``hash_key=``, with ``"mmh3"`` or ``"ketama"``)
    Keys: the first four bytes, little-endian, of a keyed BLAKE2b digest (key = the
    secret, 16 to 64 bytes; personalisation ``b"hashring"``) of the key's UTF-8 bytes: a
    PRF, so without the secret nobody can choose keys that land on a node they aim at, nor
    learn anything from the keys' placement. Points and point counts stay the base
    scheme's. Costs about 0.5 to 1 microsecond per key against mmh3's 0.05.
a callable ``bytes -> int``
    Used for keys (str keys are UTF-8 encoded first) and, over ``"<name>-<i>"``, for each point;
    only the low 32 bits of its result are used. Point counts as for ``"mmh3"``.
"""

from __future__ import annotations

import hashlib
import importlib
import math
import struct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from operator import methodcaller
from typing import Any, cast

import mmh3
import numpy as np
import numpy.typing as npt

from .._errors import InvalidOptionError
from .keys import Key

__all__ = [
    "GOLDEN64",
    "MASK32",
    "MASK64",
    "MAX_HASH_KEY_BYTES",
    "MIN_HASH_KEY_BYTES",
    "HashScheme",
    "hash_scheme",
    "ketama_counts",
    "mix64",
    "mix64_array",
    "name_seed",
]

MASK32 = 0xFFFFFFFF
U32Array = npt.NDArray[np.uint32]
_unpack_u32 = struct.Struct("<I").unpack_from


@dataclass(frozen=True)
class HashScheme:
    """How keys and node points are hashed; see the module docstring."""

    name: str
    key_hash: Callable[[Key], int]
    hash_many: Callable[[Sequence[Key]], U32Array]
    node_points: Callable[[Sequence[tuple[str, int]]], U32Array]
    point_counts: Callable[[Mapping[str, float], int], dict[str, int]]
    key_digest: Callable[[bytes], Any] | None = None
    """For digest schemes (ketama): the hash constructor, called as ``key_digest(key_bytes)``,
    whose digest's first four bytes, little-endian, are the key's position; lets a lookup
    inline the hash. None otherwise."""


def _digest_points(digest: Callable[[bytes], bytes], nodes: Sequence[tuple[str, int]]) -> U32Array:
    """Points of each ``(name, count)``: four little-endian uint32 per 16-byte digest of
    ``"<name>-<i>"``, the first ``count`` of them, concatenated. Hashes all nodes in one pass.
    """
    padded = [(count + 3) // 4 * 4 for _, count in nodes]
    labels = [
        f"{name}-{i}".encode()
        for (name, _), p in zip(nodes, padded, strict=True)
        for i in range(p // 4)
    ]
    if not labels:
        return np.empty(0, dtype=np.uint32)
    words = np.frombuffer(b"".join(map(digest, labels)), dtype="<u4").astype(np.uint32)
    if all(p == count for p, (_, count) in zip(padded, nodes, strict=True)):
        return words
    keep = np.concatenate(
        [np.arange(p) < count for p, (_, count) in zip(padded, nodes, strict=True)]
    )
    trimmed: U32Array = words[keep]
    return trimmed


def _vnode_counts(weights: Mapping[str, float], vnodes: int) -> dict[str, int]:
    """``max(1, round(vnodes * weight))`` points per node, independent of the other nodes."""
    return {name: max(1, math.floor(vnodes * w + 0.5)) for name, w in weights.items()}


def ketama_counts(weights: Mapping[str, float], vnodes: int) -> dict[str, int]:
    """Point counts exactly as twemproxy's ``ketama_update`` computes them (float32 maths).

    twemproxy: ``pct = (float)weight / (float)total_weight;
    points = (uint32_t)(floorf((float)(pct * 160 / 4 * (float)nlive + 0.0000000001)) * 4)``.
    """
    f32 = np.float32
    total = f32(sum(weights.values()))
    live = f32(len(weights))
    counts = {}
    for name, weight in weights.items():
        pct = f32(weight) / total
        spread = pct * f32(vnodes) / f32(4) * live
        nudged = f32(np.float64(spread) + 0.0000000001)
        counts[name] = int(np.floor(nudged) * f32(4))
    return counts


def _mmh3_digest(label: bytes) -> bytes:
    return mmh3.hash_bytes(label)


def _md5_digest(label: bytes) -> bytes:
    digest: bytes = _md5_new(label).digest()
    return digest


def _ketama_key_hash(key: Key) -> int:
    data = str.encode(key) if isinstance(key, str) else key
    position: int = _unpack_u32(_md5_new(data).digest())[0]
    return position


def _md5_constructor() -> Callable[[bytes], Any]:
    """The cheapest MD5 constructor that may be called plainly with the key's bytes.

    CPython's own MD5 (``_md5.md5``) where the interpreter has it: for a short key it costs
    about a quarter of OpenSSL's (``hashlib.md5`` allocates an EVP context per call), and
    its digests are the same bytes (checked here). Else ``hashlib.md5``, with
    ``usedforsecurity=False`` bound where a plain call is refused (an interpreter in FIPS
    mode); the keyword costs a dictionary per call, so it is only paid where needed. MD5
    places keys here; it protects nothing.
    """
    try:
        builtin: Any = importlib.import_module("_md5").md5
    except (ImportError, AttributeError):
        builtin = None
    probe = b"hashring"
    expected = hashlib.md5(probe, usedforsecurity=False).digest()
    if builtin is not None and builtin(probe).digest() == expected:
        return cast("Callable[[bytes], Any]", builtin)
    try:
        hashlib.md5(probe)
    except ValueError:  # FIPS mode
        return partial(hashlib.md5, usedforsecurity=False)
    return hashlib.md5


_md5_new = _md5_constructor()
_digest = methodcaller("digest")


def _ketama_hash_many(keys: Sequence[Key]) -> U32Array:
    """Positions of many keys: MD5 of each, the digests joined, their first words read.

    All iteration is in C (``map``): this costs about what a loop of ``md5(key).digest()``
    alone does in Python.
    """
    if set(map(type, keys)) == {str}:
        data: Any = map(str.encode, cast("Sequence[str]", keys))
    else:
        data = (str.encode(key) if isinstance(key, str) else key for key in keys)
    joined = b"".join(map(_digest, map(_md5_new, data)))
    positions: U32Array = np.frombuffer(joined, dtype="<u4")[::4].astype(np.uint32)
    return positions


def _mmh3_hash_many(keys: Sequence[Key]) -> U32Array:
    signed = np.fromiter(map(mmh3.hash, keys), dtype=np.int32, count=len(keys))
    return signed.view(np.uint32)


def _generic_hash_many(key_hash: Callable[[Key], int]) -> Callable[[Sequence[Key]], U32Array]:
    def hash_many(keys: Sequence[Key]) -> U32Array:
        hashes = np.fromiter(map(key_hash, keys), dtype=np.int64, count=len(keys))
        return (hashes & MASK32).astype(np.uint32)

    return hash_many


MMH3 = HashScheme(
    name="mmh3",
    key_hash=mmh3.hash,
    hash_many=_mmh3_hash_many,
    node_points=lambda nodes: _digest_points(_mmh3_digest, nodes),
    point_counts=_vnode_counts,
)

KETAMA = HashScheme(
    name="ketama",
    key_hash=_ketama_key_hash,
    hash_many=_ketama_hash_many,
    node_points=lambda nodes: _digest_points(_md5_digest, nodes),
    point_counts=ketama_counts,
    key_digest=_md5_new,
)


def _custom_scheme(fn: Callable[[bytes], int]) -> HashScheme:
    probe = fn(b"hashring")
    if not isinstance(probe, int) or isinstance(probe, bool):
        raise InvalidOptionError(
            f"hash callable must return an int for bytes input, got {type(probe).__name__}"
        )

    def key_hash(key: Key) -> int:
        value = fn(str.encode(key) if isinstance(key, str) else key)
        try:
            return int(value & MASK32)
        except TypeError:
            raise InvalidOptionError(
                f"hash callable must return an int for bytes input, got {type(value).__name__}"
            ) from None

    def node_points(nodes: Sequence[tuple[str, int]]) -> U32Array:
        values = [key_hash(f"{name}-{i}".encode()) for name, count in nodes for i in range(count)]
        return np.array(values, dtype=np.uint32)

    label = getattr(fn, "__qualname__", None) or repr(fn)
    return HashScheme(
        name=label,
        key_hash=key_hash,
        hash_many=_generic_hash_many(key_hash),
        node_points=node_points,
        point_counts=_vnode_counts,
    )


MIN_HASH_KEY_BYTES = 16
MAX_HASH_KEY_BYTES = 64  # BLAKE2b's largest key


def _keyed_scheme(base: HashScheme, hash_key: object) -> HashScheme:
    """``base`` with keys hashed by keyed BLAKE2b (see the module docstring)."""
    if isinstance(hash_key, str) or not isinstance(hash_key, (bytes, bytearray, memoryview)):
        raise InvalidOptionError(
            f"hash_key must be bytes (a secret of {MIN_HASH_KEY_BYTES} to "
            f"{MAX_HASH_KEY_BYTES} bytes, e.g. os.urandom(32)), not {type(hash_key).__name__}"
        )
    secret = bytes(hash_key)
    if not MIN_HASH_KEY_BYTES <= len(secret) <= MAX_HASH_KEY_BYTES:
        raise InvalidOptionError(
            f"hash_key must be {MIN_HASH_KEY_BYTES} to {MAX_HASH_KEY_BYTES} bytes long, got "
            f"{len(secret)} bytes"
        )
    template = hashlib.blake2b(key=secret, digest_size=4, person=b"hashring")
    fresh = template.copy
    from_bytes = int.from_bytes

    def key_hash(key: Key) -> int:
        state = fresh()
        state.update(str.encode(key) if isinstance(key, str) else key)
        return from_bytes(state.digest(), "little")

    return HashScheme(
        name=f"{base.name}+keyed",
        key_hash=key_hash,
        hash_many=_generic_hash_many(key_hash),
        node_points=base.node_points,
        point_counts=base.point_counts,
    )


def hash_scheme(hash: str | Callable[[bytes], int], hash_key: bytes | None = None) -> HashScheme:
    """Return the scheme for ``hash``: ``"mmh3"``, ``"ketama"`` or a callable ``bytes -> int``,
    keyed by ``hash_key`` when it is given (the secret itself is never shown).

    Raises:
        InvalidOptionError: an unknown name, a callable that does not return an int, a
            ``hash_key`` that is not 16 to 64 bytes, or a ``hash_key`` with a callable.
    """
    if hash_key is not None:
        if not isinstance(hash, str):
            raise InvalidOptionError(
                "hash_key applies to hash='mmh3' or 'ketama'; a custom hash callable must "
                "do its own keying"
            )
        return _keyed_scheme(hash_scheme(hash), hash_key)
    if isinstance(hash, str):
        if hash == "mmh3":
            return MMH3
        if hash == "ketama":
            return KETAMA
        raise InvalidOptionError(
            f"unknown hash {hash!r:.60}: use 'mmh3', 'ketama' or a callable bytes -> int"
        )
    if callable(hash):
        return _custom_scheme(hash)
    raise InvalidOptionError(
        f"hash must be 'mmh3', 'ketama' or a callable bytes -> int, not {type(hash).__name__}"
    )


MASK64 = 0xFFFFFFFFFFFFFFFF
GOLDEN64 = 0x9E3779B97F4A7C15
U64Array = npt.NDArray[np.uint64]


def mix64(value: int) -> int:
    """SplitMix64's finaliser on a Python int: a bijective 64-bit mix.

    The scalar twin of :func:`mix64_array`; both give the same bits for the same input.

    >>> hex(mix64(1))
    '0x5692161d100b05e5'
    """
    value &= MASK64
    value = ((value ^ (value >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    value = ((value ^ (value >> 27)) * 0x94D049BB133111EB) & MASK64
    return value ^ (value >> 31)


def mix64_array(values: U64Array) -> U64Array:
    """SplitMix64's finaliser over a uint64 array (wrapping arithmetic)."""
    values = values ^ (values >> np.uint64(30))
    values = values * np.uint64(0xBF58476D1CE4E5B9)
    values = values ^ (values >> np.uint64(27))
    values = values * np.uint64(0x94D049BB133111EB)
    mixed: U64Array = values ^ (values >> np.uint64(31))
    return mixed


def name_seed(name: str) -> int:
    """A node's 64-bit identity for rendezvous and jump: MurmurHash3 x64 of its UTF-8 name."""
    return int(mmh3.hash64(name.encode(), seed=0, x64arch=True, signed=False)[0])
