"""The scatter's packer (``_packing``) writes exactly the bytes redis-py's connections write.

No server: the connections are only built, never connected. Every packer redis-py has is
compared: the hiredis packer and the pure-Python one of the sync connection (with several
encodings), and the asyncio connection's.
"""

from __future__ import annotations

import enum
from typing import Any

import pytest
import redis
import redis.asyncio
import redis.connection
from hashring.adapters.redis._packing import pack_commands
from hypothesis import given
from hypothesis import strategies as st

CUTOFF = redis.connection.Connection()._buffer_cutoff


class Color(enum.IntEnum):
    RED = 1


class Upper(str):
    """A str whose ``encode`` redis-py's encoder calls (hiredis does not)."""

    def encode(self, encoding: str = "utf-8", errors: str = "strict") -> bytes:
        return str.encode(self.upper(), encoding, errors)


def _connections() -> list[tuple[str, Any]]:
    """Every kind of connection packer, by name."""
    found: list[tuple[str, Any]] = []
    python = redis.connection.PythonRespSerializer
    for encoding, errors in (("utf-8", "strict"), ("latin-1", "replace"), ("utf-16", "strict")):
        encoder = redis.connection.Encoder(encoding, errors, False)
        conn = redis.connection.Connection(
            encoding=encoding,
            encoding_errors=errors,
            command_packer=python(CUTOFF, encoder.encode),
        )
        found.append((f"python {encoding}", conn))
        found.append(
            (
                f"async {encoding}",
                redis.asyncio.Connection(encoding=encoding, encoding_errors=errors),
            )
        )
    hiredis_packer = getattr(redis.connection, "HiredisRespSerializer", None)
    try:
        import hiredis  # noqa: F401
    except ImportError:  # pragma: no cover - the redis extra installs hiredis
        hiredis_packer = None
    if hiredis_packer is not None:
        found.append(("hiredis", redis.connection.Connection(command_packer=hiredis_packer())))
    return found


CONNECTIONS = _connections()
COMMANDS: list[tuple[Any, ...]] = [
    ("GET", "k"),
    ("MGET", *[f"user:{i}" for i in range(300)]),
    ("MSET", "a", 1, "b", 2.5, "c", b"\x00\xff", "d", "é", "e", -7, "f", 10**30),
    ("SET", "big", "x" * (CUTOFF + 10)),
    ("SET", "bigger", b"y" * (3 * CUTOFF)),
    ("SET", "view", memoryview(b"abc")),
    ("SET", "array", bytearray(b"abc")),
    ("SET", "enum", Color.RED),
    ("SET", "subclass", Upper("shout")),
    ("SET", "float", 0.1),
    ("SET", "float", float("inf")),
    ("SET", "", ""),
    ("CONFIG GET", "maxmemory"),
    (b"CONFIG GET", b"maxmemory"),
    ("GET\t", "k"),
    (b"GET\tX", "k"),
    (b"MGET", b"a", b"b"),
    ("SCRIPT LOAD", "return 1"),
    ("PING",),
]


def _bytes(chunks: list[Any]) -> bytes:
    return b"".join(bytes(chunk) for chunk in chunks)


def _outcome(pack: Any, conn: Any, commands: list[tuple[Any, ...]]) -> tuple[Any, ...]:
    """The packed bytes, or the error's type and message."""
    try:
        return ("packed", _bytes(pack(conn, commands)))
    except Exception as error:
        return ("raised", type(error), str(error))


def _theirs(conn: Any, commands: list[tuple[Any, ...]]) -> list[Any]:
    packed: list[Any] = conn.pack_commands(commands)
    return packed


@pytest.mark.parametrize(("label", "conn"), CONNECTIONS, ids=[label for label, _ in CONNECTIONS])
def test_packed_bytes_are_redis_pys(label: str, conn: Any) -> None:
    """Each command alone, and all of them at once, pack to redis-py's bytes (or fail
    with its error: hiredis refuses an IntEnum, the pure-Python packer sends its repr)."""
    for command in COMMANDS:
        assert _outcome(pack_commands, conn, [command]) == _outcome(_theirs, conn, [command])
    packable = [c for c in COMMANDS if _outcome(_theirs, conn, [c])[0] == "packed"]
    assert len(packable) >= len(COMMANDS) - 1
    assert _bytes(pack_commands(conn, packable)) == _bytes(conn.pack_commands(packable))


@pytest.mark.parametrize(("label", "conn"), CONNECTIONS, ids=[label for label, _ in CONNECTIONS])
def test_large_arguments_and_memoryviews_are_their_own_chunks(label: str, conn: Any) -> None:
    """A value over the buffer cutoff is never copied into a joined chunk (as redis-py)."""
    value = b"z" * (CUTOFF + 1)
    chunks = pack_commands(conn, [("SET", "a", "1"), ("SET", "big", value), ("GET", "a")])
    big = [chunk for chunk in chunks if len(chunk) > CUTOFF]
    assert len(big) == 1
    assert len(big[0]) <= len(value) + len(b"*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n$6007\r\n\r\n")
    view = memoryview(b"abc")
    chunks = pack_commands(conn, [("SET", "a", "1"), ("SET", "view", view), ("GET", "a")])
    assert (view in chunks) is (label != "hiredis")  # hiredis packs a view into its command


@pytest.mark.parametrize(("label", "conn"), CONNECTIONS, ids=[label for label, _ in CONNECTIONS])
@pytest.mark.parametrize("bad", [True, None, [1], {"a": 1}, object()])
def test_unencodable_arguments_fail_as_in_redis_py(label: str, conn: Any, bad: Any) -> None:
    """An argument redis-py refuses raises redis-py's own error, whatever the packer."""
    theirs = _outcome(_theirs, conn, [("SET", "k", bad)])
    assert theirs[0] == "raised"
    assert _outcome(pack_commands, conn, [("GET", "fine"), ("SET", "k", bad)]) == theirs


@pytest.mark.parametrize(("label", "conn"), CONNECTIONS, ids=[label for label, _ in CONNECTIONS])
def test_a_command_name_of_another_type_is_packed_by_redis_py(label: str, conn: Any) -> None:
    """A name neither str nor bytes goes to redis-py's packer, with its outcome."""
    for name in (bytearray(b"GET"), memoryview(b"GET"), 5):
        command = [(name, "k")]
        assert _outcome(pack_commands, conn, command) == _outcome(_theirs, conn, command)


def test_a_connection_class_that_packs_its_own_way_is_asked() -> None:
    """A subclass overriding ``pack_commands`` keeps its packing."""

    class Tagged(redis.connection.Connection):
        def pack_commands(self, commands: Any) -> list[bytes]:
            return [b"tagged"]

    assert pack_commands(Tagged(), [("GET", "k")]) == [b"tagged"]


arguments = st.one_of(
    st.text(max_size=12),
    st.binary(max_size=12),
    st.integers(),
    st.floats(allow_nan=False),
)


@given(commands=st.lists(st.lists(arguments, max_size=6), min_size=1, max_size=8))
def test_any_commands_pack_to_redis_pys_bytes(commands: list[list[Any]]) -> None:
    """Random str/bytes/int/float arguments pack to redis-py's bytes with every packer."""
    stack = [("SET", *args) for args in commands]
    for _, conn in CONNECTIONS:  # a surrogate, or a character latin-1 cannot take, fails
        assert _outcome(pack_commands, conn, stack) == _outcome(_theirs, conn, stack)
