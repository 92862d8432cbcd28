"""Reads during a migration (``read_fallback``): which topology's answer stands. No I/O.

A client with ``read_fallback`` set (the client of the previous topology) answers every
read-only command with keys (the COMMAND table's ``readonly`` flag, not a list of names) as
one server holding all the keys would, while a migrator moves keys to their new owners:

1. *Round 1, new owner*: ``EXISTS k`` for each of the read's keys is pipelined ahead of the
   read on the same connection (:func:`presence_commands`; one round trip, not a
   transaction). When every key exists there, the read's answer stands: keys already
   moved cost nothing more than the EXISTS.
2. *Round 2, old topology*: the same (presence of each key, then the read).
3. *Round 3, new owner again*, and so on, alternating, until the presences prove one
   round's answer right (:func:`settle`), at most :data:`MAX_ROUNDS` rounds.

Why :func:`settle` is right: a migrator copies a key to its new owner and only then deletes
it from the old one, and writes go to the new owner only, so a key is never lost from both
and the old topology's data only disappears. A read of one key therefore settles in at most
three rounds (new, old, new): a key missing from the new owner at round 1 and from the old
topology at round 2 either never existed or had been copied before round 2, and is found
by round 3. A read of several keys (``{tag}``-ed keys on one node) settles as soon as one
side holds every key the other held a moment before; keys split between the two topologies
(a migrator moving a tag group key by key) raise ``CrossShardError`` after
``MAX_ROUNDS`` rather than answering from half of them.

Cost: a read whose keys are all on their new owner takes one round trip (the EXISTS ride
along with it); a key still on the old topology, two; a key on neither (absent), three.
Without ``read_fallback`` nothing of this runs; in a migration window run from a topology
(``from_config``, ``from_source``), nor for a read whose keys have the same owner under
both topologies (they never move): only reads of moving keys pay for the rounds.

Known limit (no tombstones): a key deleted on its new owner mid-migration reads its old
copy until the migrator deletes that copy.

Subcommands (OBJECT ENCODING, MEMORY USAGE, XINFO STREAM, ...) are reads by their own
``readonly`` flag (``CommandTable`` reads each subcommand's own entry). Commands with movable
keys flagged as writes only for an optional argument (SORT and GEORADIUS without STORE:
redis-py's ``sort_ro()`` and ``georadius()`` send those) are reads when the server's
``COMMAND GETKEYSANDFLAGS`` flags every key ``RO`` (:func:`may_read`, :func:`reads_only`;
one more round trip, asked only while ``read_fallback`` is set, only of such commands).

Multi-key commands whose answer is per key (``multi_shard`` with a keyed or summed answer:
MGET, EXISTS, TOUCH) are settled per key (:func:`missed_positions`, :func:`key_args`,
:func:`merge_keys`): keys present on their new owner keep round 1's answer, each missed
key is read alone through rounds 2, 3, ... and put back in its place (MGET) or added to the
count (EXISTS, TOUCH: a key absent from its new owner counts nothing there).

Not covered, by design: writes (never fall back) and keyless reads (nothing to miss);
blocking reads (XREAD ... BLOCK) are refused while ``read_fallback`` is set
(:func:`refuse_blocking`): blocking on a node that does not hold the stream yet would wait
for the timeout instead of answering.

:func:`resolve` drives the rounds after round 1 as a generator: it yields ``(side, reads)``
and is sent each read's :class:`Seen` for that round. :func:`together` runs many of them
in step (a pipeline's reads: one batch per round and side); both clients drive it with
their own I/O (``_round`` on themselves or on their ``read_fallback``).
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from typing import Any, Literal, NamedTuple

from redis._parsers.commands import RequestPolicy, ResponsePolicy

from ._commands import Command, _text
from ._errors import CrossShardError, UnsupportedCommandError

__all__ = [
    "MAX_ROUNDS",
    "NEW",
    "OLD",
    "Read",
    "Rounds",
    "Seen",
    "absent",
    "alone",
    "key_args",
    "keys_and_flags_args",
    "may_read",
    "merge_keys",
    "missed_positions",
    "per_key",
    "presence_commands",
    "reads_only",
    "refuse_blocking",
    "resolve",
    "round_commands",
    "seen_of",
    "settle",
    "together",
]

MAX_ROUNDS = 6
"""Rounds (new, old, new, ...) before keys split between the topologies are refused."""

Side = Literal["new", "old"]
NEW: Side = "new"
OLD: Side = "old"


class Read(NamedTuple):
    """One read sent in a round: its arguments, its keys (in argument order) and
    redis-py's options for it."""

    args: tuple[Any, ...]
    keys: list[Any]
    options: dict[str, Any]


class Seen(NamedTuple):
    """What one round saw of one read: each key's presence, then the read's answer (an
    exception if the read failed on the node)."""

    present: tuple[bool, ...]
    answer: Any


Rounds = Generator[tuple[Side, list[Read]], list[Seen], Any]
""":func:`resolve`'s generator: yields the side and reads to send, is sent their Seen."""


def may_read(command: Command) -> bool:
    """Whether a command may be a read while ``read_fallback`` is set: flagged ``readonly``
    in the COMMAND table (a subcommand by its own flags: OBJECT ENCODING, MEMORY USAGE,
    XINFO STREAM); else, for commands with movable keys (SORT, GEORADIUS: a write only with
    their STORE argument), :func:`reads_only` decides from the server's flags for each key.
    O(1)."""
    flags = command.flags
    return "readonly" in flags or "movablekeys" in flags


def keys_and_flags_args(args: Sequence[Any]) -> tuple[Any, ...]:
    """The ``COMMAND GETKEYSANDFLAGS`` that asks for ``args``' keys and their flags, the
    command's words apart (redis-py sends some subcommands, ``"MEMORY USAGE"``, as one
    argument; the server knows only ``MEMORY``). O(args).

    >>> keys_and_flags_args(("MEMORY USAGE", "k"))
    ('COMMAND GETKEYSANDFLAGS', 'MEMORY', 'USAGE', 'k')
    """
    return ("COMMAND GETKEYSANDFLAGS", *_text(args[0]).split(), *args[1:])


def reads_only(keys_and_flags: Sequence[Any]) -> bool:
    """Whether ``COMMAND GETKEYSANDFLAGS``'s answer (``[[key, [flag, ...]], ...]``) flags
    every key ``RO``: this invocation only reads (``SORT k``, not ``SORT k STORE d``).
    O(keys).

    >>> reads_only([[b"k", [b"RO", b"access"]]]), reads_only([["k", ["RO"]], ["d", ["OW"]]])
    (True, False)
    """
    return bool(keys_and_flags) and all(
        any(_text(flag) == "RO" for flag in flags) for _, flags in keys_and_flags
    )


def refuse_blocking(command: Command, args: Sequence[Any]) -> None:
    """Refuse a blocking read (``blocking`` flag, a ``BLOCK`` argument: XREAD ... BLOCK)
    while ``read_fallback`` is set, before anything is sent. O(args).

    Raises:
        UnsupportedCommandError: naming the command and what to do instead.
    """
    if "blocking" in command.flags and any(
        isinstance(arg, (str, bytes)) and _text(arg).upper() == "BLOCK" for arg in args[1:]
    ):
        raise UnsupportedCommandError(
            f"{command.name.upper()} with BLOCK cannot be answered during a migration "
            "(read_fallback is set): the new owner may not hold the key yet; nothing was "
            "sent. Read without BLOCK, or use client_for(key) for direct access to one node"
        )


def presence_commands(keys: Sequence[Any]) -> list[tuple[Any, ...]]:
    """The commands sent ahead of a read, in order: ``EXISTS k`` for each key (one per
    position, repeats included, so that each answer is that key's presence). O(keys).

    >>> presence_commands(["a", "b"])
    [('EXISTS', 'a'), ('EXISTS', 'b')]
    """
    return [("EXISTS", key) for key in keys]


def round_commands(reads: Sequence[Read]) -> list[tuple[tuple[Any, ...], dict[str, Any]]]:
    """One round's commands with their options, in the order to send them: for each read,
    its presence commands, then the read. O(keys).
    """
    commands: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
    for read in reads:
        commands.extend((args, {}) for args in presence_commands(read.keys))
        commands.append((read.args, read.options))
    return commands


def absent(reads: Sequence[Read]) -> list[Seen]:
    """What a round on a previous topology that is gone sees: no key. A read that began
    in a migration window and outlived it (the client switched to the final topology,
    which is published only once the migration has moved every key) then settles on the
    new owners. O(keys).

    >>> absent([Read(("GET", "k"), ["k"], {})])
    [Seen(present=(False,), answer=None)]
    """
    return [Seen((False,) * len(read.keys), None) for read in reads]


def seen_of(reads: Sequence[Read], answers: Sequence[Any]) -> list[Seen]:
    """Each read's :class:`Seen`, from the answers of :func:`round_commands` (same order).
    O(keys).

    Raises:
        Exception: a presence command's error (the node could not say).
    """
    seen: list[Seen] = []
    at = 0
    for read in reads:
        present = answers[at : at + len(read.keys)]
        for answer in present:
            if isinstance(answer, Exception):
                raise answer
        seen.append(Seen(tuple(bool(answer) for answer in present), answers[at + len(read.keys)]))
        at += len(read.keys) + 1
    return seen


def settle(rounds: Sequence[Sequence[bool]]) -> int | None:
    """The round whose answer stands, given each round's key presences so far (rounds
    alternate: new owner first, then old topology, new, old, ...); None to ask the next
    side. O(keys).

    A new-owner round stands when it holds every key the old topology held the round
    before (round 1: every key); an old-topology round stands when the new owner held none
    of the keys just before it and the old one holds them all, or when the new owner holds
    none of them just after it.

    >>> settle([(True,)]), settle([(False,)]), settle([(False,), (True,)])
    (0, None, 1)
    >>> settle([(False,), (False,), (False,)]), settle([(True, False), (False, True)])
    (2, None)
    >>> settle([(True, False), (False, True), (False, False)])
    1
    """
    last = len(rounds) - 1
    present = rounds[last]
    if last % 2 == 0:  # the new owner
        if last == 0:
            return 0 if all(present) else None
        before = rounds[last - 1]
        if all(now or not then for now, then in zip(present, before, strict=True)):
            return last
        return last - 1 if not any(present) else None
    if not any(rounds[last - 1]) and all(present):
        return last
    return None


def per_key(command: Command) -> bool:
    """Whether the command's answer is per key (a ``multi_shard`` command whose answer is
    a list in key order or a sum), so that it is settled key by key. O(1)."""
    return command.request is RequestPolicy.MULTI_SHARD and command.response in (
        ResponsePolicy.DEFAULT_KEYED,
        ResponsePolicy.AGG_SUM,
    )


def missed_positions(seen: Seen) -> list[int]:
    """The positions of the keys a round did not find. O(keys).

    >>> missed_positions(Seen((True, False, False), None))
    [1, 2]
    """
    return [i for i, present in enumerate(seen.present) if not present]


def key_args(command: Command, read: Read, position: int) -> Read:
    """The read of key ``position`` alone, of a per-key command: its prefix, that key's
    arguments (``step`` of them), its suffix; redis-py's ``keys`` option dropped (it names
    the whole command's keys). O(args).

    Raises:
        IndexError: ``position`` is not a key position.
    """
    first, step, count, args = command.first_key, max(1, command.step), len(read.keys), read.args
    if not 0 <= position < count:
        raise IndexError(position)
    start = first + position * step
    end = first + count * step
    options = {k: v for k, v in read.options.items() if k != "keys"}
    return Read((*args[:first], *args[start : start + step], *args[end:]), [args[start]], options)


def merge_keys(command: Command, answer: Any, found: dict[int, Any]) -> Any:
    """Round 1's ``answer`` with the answers of the keys read alone put back: in their
    place for a keyed answer (each a one-element list), added for a sum (a key absent from
    its new owner counted nothing there). O(keys).
    """
    if command.response is ResponsePolicy.AGG_SUM:
        return answer + sum(found.values())
    merged = list(answer)
    for position, alone in found.items():
        merged[position] = alone[0]
    return merged


def resolve(command: Command, read: Read, first: Seen) -> Rounds:
    """The rounds after round 1 (``first``, on the new owner) of ``read``; returns the
    answer one server would give (a generator: see :data:`Rounds`).

    Raises:
        CrossShardError: the keys stayed split between the two topologies for
            MAX_ROUNDS rounds.
        Exception: the standing round's own error (WRONGTYPE, ...), as the command would.
    """
    if per_key(command) and len(read.keys) > 1:
        missed = missed_positions(first)
        if not missed:
            return _answer(first)
        if isinstance(first.answer, Exception):
            raise first.answer
        alone = [key_args(command, read, i) for i in missed]
        seen = [[Seen((False,), None)] for _ in alone]
        answers = yield from _settle_all(command, alone, seen)
        return merge_keys(command, first.answer, dict(zip(missed, answers, strict=True)))
    answers = yield from _settle_all(command, [read], [[first]])
    return answers[0]


def alone(read: Read, *, old_first: bool = False) -> Generator[Side, Seen, Any]:
    """The rounds of a read of one key, the common case: yields the side to ask next (new
    owner, old topology, new owner), is sent what that side saw; returns the standing
    round's answer, at most three rounds in (:func:`settle`). No batching, no planning:
    each side is one ``EXISTS`` and the read on the key's node.

    ``old_first`` (a migration window run from a topology, whose migration has not been
    seen to start on the key's old owner): the old owner first, then the new one, and
    the first that holds the key answers, else the second's (absent) answer: at most two
    rounds. Right only under the window's rules, where a moving key is on one side at a
    time and only ever moves from old to new: a key found on the old side is the only
    copy; a key missing there is on the new side or nowhere by the time the new side is
    asked (it cannot come back to the old side once it moved: writes there stop when the
    marker is set, before any key moves). Not with a bare ``read_fallback``, whose clients
    may write the new owner while the old one still holds the key.

    Raises:
        Exception: the standing round's own error (WRONGTYPE, ...), as the command would.
    """
    if old_first:
        first = yield OLD
        return _answer(first if first.present[0] else (yield NEW))
    seen: list[Seen] = []
    while True:
        seen.append((yield NEW if len(seen) % 2 == 0 else OLD))
        standing = settle([s.present for s in seen])
        if standing is not None:
            return _answer(seen[standing])


def together(
    rounds: Sequence[Rounds],
) -> Generator[tuple[Side, list[Read]], list[Seen], list[Any]]:
    """Several reads' rounds at once: each step asks one side for the reads of every
    unsettled generator (in order, one batch), and is sent their Seen in the same order;
    returns each generator's answer, or the exception it raised, in order. O(reads) per
    step; as many steps as the slowest read has rounds (at most MAX_ROUNDS - 1).
    """
    results: list[Any] = [None] * len(rounds)
    asks: dict[int, tuple[Side, list[Read]]] = {}

    def step(index: int, seen: list[Seen] | None) -> None:
        try:
            generator = rounds[index]
            asks[index] = next(generator) if seen is None else generator.send(seen)
        except StopIteration as done:
            results[index] = done.value
        except Exception as error:  # the read's own answer: raised by whoever asked
            results[index] = error

    for index in range(len(rounds)):
        step(index, None)
    while asks:
        side = next(iter(asks.values()))[0]
        batch = [(index, reads) for index, (on, reads) in asks.items() if on == side]
        seen = yield side, [read for _, reads in batch for read in reads]
        at = 0
        for index, reads in batch:
            del asks[index]
            step(index, seen[at : at + len(reads)])
            at += len(reads)
    return results


def _settle_all(command: Command, reads: list[Read], seen: list[list[Seen]]) -> Rounds:
    """Rounds for ``reads`` (each with the rounds already ``seen``, all as many) until each
    settles; their answers in order."""
    answers: list[Any] = [None] * len(reads)
    pending = list(range(len(reads)))
    while True:
        waiting = []
        for i in pending:
            standing = settle([s.present for s in seen[i]])
            if standing is None:
                waiting.append(i)
            else:
                answers[i] = _answer(seen[i][standing])
        if not waiting:
            return answers
        done = len(seen[waiting[0]])
        if done >= MAX_ROUNDS:
            keys = ", ".join(repr(_text(k)) for i in waiting[:3] for k in reads[i].keys[:6])
            raise CrossShardError(
                f"{command.name.upper()}: its keys ({keys}) stayed split between the old "
                f"and the new topology for {done} rounds of a migration; retry once the "
                "migrator has moved them",
                (),
            )
        side: Side = NEW if done % 2 == 0 else OLD
        found = yield side, [reads[i] for i in waiting]
        for i, result in zip(waiting, found, strict=True):
            seen[i].append(result)
        pending = waiting


def _answer(seen: Seen) -> Any:
    if isinstance(seen.answer, Exception):
        raise seen.answer
    return seen.answer
