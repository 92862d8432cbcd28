"""A non-transactional pipeline's reads during a migration (``read_fallback``); no I/O.

Both pipelines (``_pipeline``, ``_async_pipeline``) build a :class:`Batch` of the buffered
commands, send its plans as one pipeline per node, and hand the answers back here:

* a read-only command with keys (the rule of ``_fallback.may_read`` / ``reads_only``) is
  replaced *in place* by its round-1 plans (``EXISTS`` of each key, then the read: the
  client's ``_round_plans``), so that a read stays behind the pipeline's earlier writes on
  its node and sees them, and keys present on their new owner cost no second round trip;
* every other command keeps its plan, and is sent as without ``read_fallback``;
* :meth:`Batch.answers` gives each buffered command its answer, and each read its
  ``_fallback.resolve`` rounds, which the client settles (``_settle``) with the old
  topology; :func:`place` puts their values back in buffering order.

A batch ends before a command that may write keys an earlier read of the batch reads
(:meth:`Batch.barrier`: a keyed command that is not a read, on a key of such a read, or a
keyless command flagged ``write``, FLUSHALL ...): its reads are settled before that command
is sent, in the next batch, so that no later round of a read sees the pipeline's own later
write (one server answers a read from before it). Such a pipeline costs one more round trip
per batch; the others are one batch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ._commands import Command, Plan
from ._fallback import Read, Rounds, resolve, seen_of

__all__ = ["Batch", "place"]


@dataclass
class Batch:
    """Buffered commands planned for one send: their plans (a read's round-1 plans in its
    place), the options of each plan, and where each command's plans start."""

    plans: list[Plan] = field(default_factory=list)
    options: list[dict[str, Any]] = field(default_factory=list)
    starts: list[int] = field(default_factory=list)
    reads: dict[int, tuple[Command, Read]] = field(default_factory=dict)
    """Buffer position (in this batch) -> the read's command and :class:`Read`."""
    read_keys: set[bytes] = field(default_factory=set)

    def __len__(self) -> int:
        """The number of buffered commands in the batch."""
        return len(self.starts)

    def add(self, plan: Plan, options: dict[str, Any]) -> None:
        """A command sent as without ``read_fallback``. O(1)."""
        self.starts.append(len(self.plans))
        self.plans.append(plan)
        self.options.append(options)

    def add_read(
        self,
        command: Command,
        read: Read,
        round_one: tuple[list[Plan], list[dict[str, Any]]],
        encoded: list[bytes],
    ) -> None:
        """A read, as its round-1 plans and options (``_round_plans(table, [read], ...)``),
        its keys ``encoded`` as sent. O(keys)."""
        self.reads[len(self.starts)] = (command, read)
        self.starts.append(len(self.plans))
        self.plans.extend(round_one[0])
        self.options.extend(round_one[1])
        self.read_keys.update(encoded)

    def barrier(self, command: Command, encoded: list[bytes]) -> bool:
        """Whether a command that is not a read (its keys ``encoded``) must wait for this
        batch's reads to settle: it may write a key one of them reads. O(keys).
        """
        if not self.read_keys:
            return False
        if not encoded:
            return "write" in command.flags
        return not self.read_keys.isdisjoint(encoded)

    def answers(self, flat: list[Any]) -> tuple[list[Any], list[int], list[Rounds]]:
        """Each buffered command's answer from the answers of :attr:`plans`
        (``_routing.Grouped.answers``', an exception for a failed one), and the reads still
        to settle: their positions and their rounds after round 1 (``_fallback.resolve``;
        none for a read whose keys are all on their new owners: round 1 stands, as
        ``resolve`` would say). A read whose presence could not be asked gets that error.
        O(plans).
        """
        results: list[Any] = []
        positions: list[int] = []
        rounds: list[Rounds] = []
        ends = [*self.starts[1:], len(self.plans)]
        for position, (start, end) in enumerate(zip(self.starts, ends, strict=True)):
            entry = self.reads.get(position)
            if entry is None:
                results.append(flat[start])
                continue
            command, read = entry
            results.append(None)
            try:
                first = seen_of([read], flat[start:end])[0]
            except Exception as error:  # a presence command failed on its node
                results[position] = error
                continue
            if all(first.present):  # every key on its new owner: round 1 stands
                results[position] = first.answer
                continue
            positions.append(position)
            rounds.append(resolve(command, read, first))
        return results, positions, rounds


def place(results: list[Any], positions: list[int], values: list[Any]) -> list[Any]:
    """``results`` with each settled read's value (an exception included) at its position.
    O(reads).

    >>> place([1, None, 3], [1], ["x"])
    [1, 'x', 3]
    """
    for position, value in zip(positions, values, strict=True):
        results[position] = value
    return results
