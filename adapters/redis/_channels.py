"""Pub/sub channels on a sharded client, no I/O: where channel commands go, how PUBSUB
introspection answers merge, and how the confirmations of several nodes' subscriptions
read as one server's.

A channel is placed like a key (by the bytes redis-py sends, hash tags on), so PUBLISH and
SUBSCRIBE of one channel meet on one node whatever the channel's type. The COMMAND table
says PUBLISH is keyless and redis-py's parser decodes channels before routing them, so
these rules are ours:

========================  ==================================================================
PUBLISH, SPUBLISH         the channel's owner (placed like a key); answers that node's count
PUBSUB CHANNELS,          every node; the union of the answers (each channel once)
PUBSUB SHARDCHANNELS
PUBSUB NUMSUB,            every node; each channel's counts summed, in the caller's order
PUBSUB SHARDNUMSUB
PUBSUB NUMPAT             every node; the largest answer: a sharded pub/sub places every
                          pattern on every node, so each node counts every pattern once
========================  ==================================================================
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["PUBSUB_MERGES", "Confirmations", "channel_keys"]

PUBLISHING = frozenset({"publish", "spublish"})


def channel_keys(name: str, args: Sequence[Any]) -> list[Any] | None:
    """The routing keys of a channel command: PUBLISH's and SPUBLISH's channel, none for
    PUBSUB's subcommands; None for other commands. O(1)."""
    if name in PUBLISHING:
        return list(args[1:2])
    if name in PUBSUB_MERGES:
        return []
    return None


def _union(answers: list[Any]) -> list[Any]:
    """Every channel once, in the order the nodes (by name) listed them."""
    return list(dict.fromkeys(item for answer in answers for item in answer))


def _sum_counts(answers: list[Any]) -> list[Any]:
    """``[(channel, count), ...]`` with each channel's counts summed over the nodes."""
    first = answers[0]
    totals = [sum(answer[i][1] for answer in answers) for i in range(len(first))]
    return [(pair[0], total) for pair, total in zip(first, totals, strict=True)]


PUBSUB_MERGES: dict[str, Callable[[list[Any]], Any]] = {
    "pubsub channels": _union,
    "pubsub shardchannels": _union,
    "pubsub numsub": _sum_counts,
    "pubsub shardnumsub": _sum_counts,
    "pubsub numpat": max,
}
"""PUBSUB subcommands sent to every node, and how their answers combine."""

_GROUPS = {
    "subscribe": "channels",
    "unsubscribe": "channels",
    "psubscribe": "patterns",
    "punsubscribe": "patterns",
    "ssubscribe": "shard",
    "sunsubscribe": "shard",
}


class _Expected:
    """The confirmation(s) one name of one command will get: ``copies`` nodes confirm it;
    the first is kept, as the ``seq``-th confirmation, with the count one server says."""

    __slots__ = ("copies", "count", "seen", "seq")

    def __init__(self, copies: int, count: int, seq: int) -> None:
        self.copies = copies
        self.count = count
        self.seq = seq
        self.seen = 0


class Confirmations:
    """Turns the (un)subscribe confirmations of several nodes into one server's.

    One server confirms every name of every (un)subscribe command in the order sent,
    counting the client's subscriptions (channels plus patterns; shard channels apart) as
    it goes. So each confirmation is numbered and counted here when its command is sent
    (``sent``, ``sent_all``), and confirmations are delivered in that order, whichever node
    sends them and whenever they are read (a later one waits for the earlier ones; published
    messages never wait). A pattern is subscribed on every node, so each node confirms it:
    the first confirmation is kept, the others dropped. Confirmations nobody announced
    (redis-py resubscribing after a reconnect) pass at once, with the current count.
    """

    def __init__(self) -> None:
        self._held: dict[str, set[Any]] = {"channels": set(), "patterns": set(), "shard": set()}
        self._expected: dict[tuple[str, Any], deque[_Expected]] = {}
        self._sent = 0
        self._delivered = 0
        self._ready: dict[int, dict[str, Any]] = {}
        self.active = False
        """Whether the client reads as subscribed, as redis-py's ``PubSub.subscribed``: from
        a subscription sent until the confirmation that leaves nothing subscribed."""

    def _count(self, group: str) -> int:
        if group == "shard":
            return len(self._held["shard"])
        return len(self._held["channels"]) + len(self._held["patterns"])

    def sent(self, kind: str, names: Sequence[Any], copies: int) -> None:
        """A command ``kind`` (a message type) naming ``names`` (as messages name them) was
        sent to ``copies`` nodes. O(names)."""
        group = _GROUPS[kind]
        held = self._held[group]
        subscribing = kind in ("subscribe", "psubscribe", "ssubscribe")
        self.active = self.active or (subscribing and bool(names))
        for name in names:
            if subscribing:
                held.add(name)
            else:
                held.discard(name)
            self._expect(kind, name, copies, self._count(group))

    def sent_all(self, kind: str, copies: int) -> None:
        """An unsubscribe from everything of ``kind`` was sent to ``copies`` nodes (each
        holding every such name). One server confirms each name, counting down, or once
        with no name when it held none. O(names)."""
        group = _GROUPS[kind]
        held = self._held[group]
        names = list(held)
        held.clear()
        if not names:
            self._expect(kind, None, copies, self._count(group))
        for i, name in enumerate(names):
            self._expect(kind, name, copies, self._count(group) + len(names) - 1 - i)

    def _expect(self, kind: str, name: Any, copies: int, count: int) -> None:
        expected = _Expected(copies, count, self._sent)
        self._sent += 1
        self._expected.setdefault((kind, name), deque()).append(expected)

    def merge(self, message: dict[str, Any] | None) -> list[dict[str, Any]]:
        """The messages one server would have sent by now in place of ``message``: none
        (a duplicate, or a confirmation waiting for earlier ones), it, or it after the
        confirmations it released."""
        if message is None:
            return []
        if message["type"] not in _GROUPS:
            return [message]
        kind = message["type"]
        key = (kind, message["channel"])
        queue = self._expected.get(key)
        if not queue:
            return [{**message, "data": self._count(_GROUPS[kind])}]
        expected = queue[0]
        expected.seen += 1
        if expected.seen >= expected.copies:
            queue.popleft()
            if not queue:
                del self._expected[key]
        if expected.seen > 1:
            return []
        self._ready[expected.seq] = {**message, "data": expected.count}
        released = []
        while self._delivered in self._ready:
            released.append(self._ready.pop(self._delivered))
            self._delivered += 1
        if (
            released
            and self._delivered == self._sent
            and not any(self._held.values())
            and released[-1]["type"] in ("unsubscribe", "punsubscribe", "sunsubscribe")
        ):
            self.active = False
        return released

    def clear(self) -> None:
        """Forget everything (the pub/sub was closed)."""
        for held in self._held.values():
            held.clear()
        self._expected.clear()
        self._ready.clear()
        self._delivered = self._sent
        self.active = False
