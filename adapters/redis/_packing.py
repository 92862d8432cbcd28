"""Commands packed for the wire: the bytes redis-py's connection would write, made faster.

:func:`pack_commands` gives the bytes ``conn.pack_commands(commands)`` gives (in fewer
chunks: small pieces joined, an argument over the connection's ``_buffer_cutoff`` or a
memoryview sent on its own, as redis-py does) for redis-py's own connection classes
and packers, and calls ``conn.pack_commands`` for anything else (a subclass that packs
its own way, a custom ``command_packer``, a test double). The scatter (``_scatter``,
``_scatter_async``) packs every node's request with it.

Why: redis-py packs one argument at a time in Python (an ``isinstance`` chain and a bytes
join per argument, a generator per command even with hiredis), which costs as much as the
routing of a 1,000-key MGET. Here:

* with redis-py's hiredis packer (sync clients with ``hiredis`` installed), each command
  goes to ``hiredis.pack_command`` as it is, without redis-py's pass over the arguments
  (which only turns bytearray/memoryview into bytes: hiredis refuses a bytearray with
  TypeError, and then the command is packed by redis-py's own packer, which converts it or
  raises redis-py's DataError);
* with the pure-Python packer (sync clients without hiredis; asyncio clients always), each
  argument is encoded as redis-py's ``Encoder.encode`` does (exact str in the connection's
  encoding, exact bytes as is, exact int and float by ``repr``; anything else through the
  encoder itself, so subclasses, bool and unsupported types behave, and fail, exactly as in
  redis-py) and the pieces are joined once, with ``%`` formatting.

The command name is split on whitespace as redis-py does (``"CONFIG GET"`` is two
arguments; a str name is UTF-8 encoded first; a bytes name is split only if it holds a
space), once per distinct name. A command whose name is neither str nor bytes is packed by
redis-py. Complexity: O(total argument bytes).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import redis.asyncio.connection
import redis.connection
from redis._parsers.encoders import Encoder

_hiredis_pack: Any
try:  # redis-py uses hiredis only when it imports (its packer class says so, below)
    from hiredis import pack_command as _hiredis_pack
except ImportError:  # pragma: no cover - the redis extra installs hiredis
    _hiredis_pack = None

__all__ = ["pack_commands"]

_SYNC_PACK = redis.connection.AbstractConnection.pack_commands
_ASYNC_PACK = redis.asyncio.connection.AbstractConnection.pack_commands
_ASYNC_PACK_ONE = redis.asyncio.connection.AbstractConnection.pack_command
_HIREDIS_PACKER = getattr(redis.connection, "HiredisRespSerializer", None)
_PYTHON_PACKER = redis.connection.PythonRespSerializer

_HEADS: dict[Any, tuple[tuple[bytes, ...], bool]] = {}
"""Command name (str or bytes, as given) -> the arguments redis-py sends for it, and
whether they are the name itself (one word, no whitespace to drop)."""
_HEADS_MAX = 4096


def pack_commands(conn: Any, commands: Sequence[Sequence[Any]]) -> list[Any]:
    """The bytes ``conn.pack_commands(commands)`` returns, as chunks to send in order
    (small pieces joined into one chunk, each argument over the connection's buffer cutoff
    and each memoryview a chunk of its own; see the module docstring).

        Raises:
            redis.exceptions.DataError: an argument redis-py cannot encode (as redis-py).
            UnicodeEncodeError: a str the connection's encoding cannot encode (as redis-py).
    """
    cls = type(conn)
    if cls.pack_commands is _SYNC_PACK:
        packer = conn._command_packer
        if packer.__class__ is _HIREDIS_PACKER and _hiredis_pack is not None:
            return _pack_hiredis(commands, packer, conn._buffer_cutoff)
        if packer.__class__ is _PYTHON_PACKER:
            encoder = getattr(packer.encode, "__self__", None)
            if encoder.__class__ is Encoder:
                return _pack_python(commands, encoder, packer._buffer_cutoff, packer.pack)
    elif cls.pack_commands is _ASYNC_PACK and cls.pack_command is _ASYNC_PACK_ONE:
        encoder = conn.encoder
        if encoder.__class__ is Encoder:
            return _pack_python(commands, encoder, conn._buffer_cutoff, conn.pack_command)
    packed: list[Any] = conn.pack_commands(commands)
    return packed


def _head(name: Any) -> tuple[tuple[bytes, ...], bool] | None:
    """The arguments redis-py sends for the command name ``name`` (see the module
    docstring) and whether they are ``name`` itself; None when redis-py must pack the
    command itself (a name neither str nor bytes).

    Raises:
        UnicodeEncodeError: a str name with no UTF-8 form (as redis-py).
    """
    cls = name.__class__
    if cls is not str and cls is not bytes:
        return None
    known = _HEADS.get(name)
    if known is None:
        if cls is str:
            head = tuple(name.encode().split())
            known = (head, head == (name.encode(),))
        else:
            head = tuple(name.split()) if b" " in name else (name,)
            known = (head, head == (name,))
        if len(_HEADS) < _HEADS_MAX:
            _HEADS[name] = known
    return known


def _pack_hiredis(commands: Sequence[Sequence[Any]], packer: Any, cutoff: int) -> list[Any]:
    """``commands`` packed by ``hiredis.pack_command``, as redis-py's hiredis packer."""
    pack = _hiredis_pack
    chunks: list[Any] = []
    pieces: list[bytes] = []
    for args in commands:
        known = _head(args[0]) if args else None
        packed: Any
        if known is None:
            packed = packer.pack(*args)
        else:
            head, as_is = known
            words = tuple(args) if as_is else (*head, *args[1:])
            try:
                packed = (pack(words),)
            except TypeError:  # a bytearray (redis-py converts it) or a bad type (DataError)
                packed = packer.pack(*args)
        for chunk in packed:
            if len(chunk) > cutoff or chunk.__class__ is memoryview:
                if pieces:
                    chunks.append(b"".join(pieces))
                    pieces = []
                chunks.append(chunk)
            else:
                pieces.append(chunk)
    if pieces:
        chunks.append(b"".join(pieces))
    return chunks


def _pack_python(
    commands: Sequence[Sequence[Any]], encoder: Encoder, cutoff: int, pack_one: Any
) -> list[Any]:
    """``commands`` packed as redis-py's Python packer does (``pack_one(*args)`` for a
    command whose name is neither str nor bytes)."""
    encoding, errors = encoder.encoding, encoder.encoding_errors
    encode: Any = encoder.encode
    chunks: list[Any] = []
    pieces: list[bytes] = []
    for args in commands:
        known = _head(args[0]) if args else None
        if known is None:
            if pieces:
                chunks.append(b"".join(pieces))
                pieces = []
            chunks.extend(pack_one(*args))
            continue
        head = known[0]
        pieces.append(b"*%d\r\n" % (len(head) + len(args) - 1))
        for word in head:
            pieces.append(b"$%d\r\n%b\r\n" % (len(word), word))
        for arg in args[1:]:
            cls = arg.__class__
            if cls is str:
                data = arg.encode(encoding, errors)
            elif cls is bytes:
                data = arg
            elif cls is int or cls is float:
                data = repr(arg).encode()
            else:
                data = encode(arg)  # subclasses, memoryview, bytearray; DataError for the rest
            length = len(data)
            if length > cutoff or data.__class__ is memoryview:
                pieces.append(b"$%d\r\n" % length)
                chunks.append(b"".join(pieces))
                chunks.append(data)
                pieces = [b"\r\n"]
            else:
                pieces.append(b"$%d\r\n%b\r\n" % (length, data))
    if pieces:
        chunks.append(b"".join(pieces))
    return chunks
