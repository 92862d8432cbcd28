"""The attempt and failover policy of the HTTP adapters, written once.

:class:`Route` answers *which node next*: the request's candidates in order (the first
choice, then the rest of its preference list), ejected nodes skipped, a half-open node taken
only by the request that claims its probe, at most ``max_attempts`` nodes. Candidates are
computed only as far as they are read, so a request costs the same on 3 nodes as on 1,000.

:class:`Attempts` answers *whether to move on*: after a response (a status in
``retry_statuses`` is a node failure) or a connection failure (moving on only when the
request cannot have reached the node, or with ``retry_after_send``), recording each outcome
in the node's health, for replayable requests only, and writing the note an error carries.

The httpx sync transport, the httpx async transport and the requests adapter each run the
same small loop over an :class:`Attempts` (from :meth:`HttpRouter.attempts
<hashring.adapters.http.HttpRouter.attempts>`) and do only their own I/O::

    with router.attempts(key, method, idempotent=..., one_shot=..., mark_hint=...) as attempt:
        while True:
            node = attempt.node
            try:
                response = send(request_for(node))
            except <connection errors> as exc:
                if attempt.failed(exc, reached=<may it have reached the node?>):
                    continue
                raise
            if attempt.answered(response.status_code):
                return response
            close(response)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from hashring import EmptyRingError, HealthTracker, NotEnoughNodesError

__all__ = ["Attempts", "Route", "moves_on"]

Order = Callable[[int | None], Sequence[str]]
"""``order(n)``: the first ``n`` nodes of a request's preference list (None: all of them)."""


class _Candidates:
    """``first``, then the nodes ``order`` lists without it, computed only as far as read.

    The first read past ``first`` asks ``order`` for ``initial`` nodes, each later one for
    twice as many, then for all (``total`` is the node count when the request started;
    a membership change meanwhile is absorbed: nodes already listed are not listed again).
    Reading up to index ``i`` costs one ``order`` call of about ``2 * i`` nodes.
    """

    __slots__ = ("_done", "_fetched", "_initial", "_order", "_seen", "_total", "items")

    def __init__(self, first: str, order: Order, initial: int, total: int) -> None:
        self.items = [first]
        self._seen = {first}
        self._order = order
        self._initial = max(1, initial)
        self._total = total
        self._fetched = 0
        self._done = False

    def get(self, index: int) -> str | None:
        """The candidate at ``index``, or None past the last one."""
        items = self.items
        while index >= len(items):
            if not self._grow():
                return None
        return items[index]

    def _grow(self) -> bool:
        """Read more of the preference list; False when all of it has been read."""
        if self._done:
            return False
        wanted = self._initial if not self._fetched else 2 * self._fetched
        self._fetched = wanted
        try:
            if wanted >= self._total:
                self._done = True
                batch = self._order(None)
            else:
                batch = self._order(wanted)
        except NotEnoughNodesError:  # nodes left meanwhile
            self._done = True
            batch = self._order(None)
        except EmptyRingError:  # every node left meanwhile
            self._done = True
            return False
        seen = self._seen
        for node in batch:
            if node not in seen:
                seen.add(node)
                self.items.append(node)
        return True


class Route:
    """The nodes one request may try: :attr:`first`, then :meth:`next` after each failure.

    Built by :meth:`HttpRouter.route <hashring.adapters.http.HttpRouter.route>`. The
    candidates are the first choice, then the rest of the preference list; ejected nodes
    are skipped, and a half-open node is taken only if this request gets its probe, claimed
    when the request reaches it. If no node at all is usable, the candidates are tried in
    order, ejected or not.

    Runtime: one health check and no preference list for a request whose first choice is
    usable; each :meth:`next` reads the preference list only as far as it needs (about
    twice the nodes skipped or tried). Deciding that *no* node is usable checks every node
    once (names, not a preference list).
    """

    def __init__(
        self,
        health: HealthTracker,
        first: str,
        order: Order,
        names: Sequence[str],
        max_attempts: int,
    ) -> None:
        self._health = health
        self._max_attempts = max_attempts
        self._order = order
        self._names = names
        self._built: _Candidates | None = None
        if health.usable(first):  # the common case: nothing else to read or check
            self.tried: list[str] = [first]
            """The nodes handed out so far, in order."""
            self._first_choice = first
            self._checked = True
            self._index = 1
            self._left = max_attempts - 1
            self.first: str = first
            """The node to send to first."""
            return
        self.tried = []
        self._first_choice = first
        self._checked = self._any_usable(names)
        self._index = 0
        self._left = max_attempts
        chosen = self.next()
        if chosen is None:  # the probes of the only usable nodes were claimed meanwhile
            self._checked, self._index, self._left = False, 0, max_attempts
            chosen = self.next()
        if chosen is None:
            raise AssertionError("a route has at least one candidate")  # pragma: no cover
        self.first = chosen

    @property
    def _candidates(self) -> _Candidates:
        """The candidates, built on the first read past the first choice."""
        built = self._built
        if built is None:
            built = self._built = _Candidates(
                self._first_choice, self._order, self._max_attempts, len(self._names)
            )
        return built

    def next(self) -> str | None:
        """The next node to try (its probe claimed if it is half-open), or None when no
        node is left or ``max_attempts`` are used up."""
        if self._left <= 0:
            return None
        candidates = self._candidates
        items = candidates.items
        usable = self._health.usable
        while self._left > 0:
            index = self._index
            node = items[index] if index < len(items) else candidates.get(index)
            if node is None:
                return None
            self._index = index + 1
            if not self._checked or usable(node):
                self._left -= 1
                self.tried.append(node)
                return node
        return None

    def _any_usable(self, names: Sequence[str]) -> bool:
        """Whether any candidate is usable (claiming nothing): the first choice (which
        usually settles it), else any node, since every node is a candidate of every
        request."""
        usable = self._health.usable
        if usable(self._first_choice, claim=False):
            return True
        return any(usable(node, claim=False) for node in names)


def moves_on(replayable: bool, reached: bool, retry_after_send: bool) -> bool:
    """Whether a request whose attempt failed goes to the next node: only a replayable one,
    always if it cannot have ``reached`` the node, else only with ``retry_after_send``."""
    return replayable and (not reached or retry_after_send)


class Attempts:
    """One request's way through its nodes: :attr:`node` to send to, and after each outcome
    whether to send again (to the new :attr:`node`).

    A request is *replayable* when it is ``idempotent`` and its body is not ``one_shot``;
    only a replayable request ever moves to another node. ``mark_hint`` tells the caller
    how to mark a request idempotent in this client (for the error note).
    """

    def __init__(
        self,
        route: Route,
        method: str,
        *,
        health: HealthTracker,
        retry_statuses: frozenset[int],
        retry_after_send: bool,
        idempotent: bool,
        one_shot: bool,
        mark_hint: str,
    ) -> None:
        self.route = route
        self.node = route.first
        """The node to send to now."""
        self.method = method
        self.idempotent = idempotent
        self.one_shot = one_shot
        self.replayable = idempotent and not one_shot
        self.failures: list[str] = []
        """Why each node before :attr:`node` failed: ``"'n0' (ConnectError)"``,
        ``"'n1' (status 503)"``."""
        self._health = health
        self._retry_statuses = retry_statuses
        self._retry_after_send = retry_after_send
        self._mark_hint = mark_hint

    @property
    def tried(self) -> list[str]:
        """The nodes sent to so far, in order (the last one is :attr:`node`)."""
        return self.route.tried

    def answered(self, status: int) -> bool:
        """:attr:`node` answered with ``status``: record it in the node's health. True when
        the response is the request's answer; False when the request moves on to the new
        :attr:`node` (a status in ``retry_statuses`` on a replayable request, with a node
        left): then the caller closes the response and sends again. O(1)."""
        node = self.node
        failed = status in self._retry_statuses
        self._health.record(node, not failed)
        following = self.route.next() if failed and self.replayable else None
        if following is None:
            return True
        self.failures.append(f"{node!r} (status {status})")
        self.node = following
        return False

    def failed(self, exc: BaseException, *, reached: bool) -> bool:
        """:attr:`node`'s connection failed with ``exc`` (``reached``: the request may have
        reached the node: the connection broke or timed out after it was sent). Record it
        against the node's health. True when the request moves on to the new :attr:`node`
        (replayable, and either not ``reached`` or ``retry_after_send``, with a node left);
        False when ``exc`` is to be raised: then it carries a note naming the nodes tried
        and why the request was not replayed. O(1)."""
        node = self.node
        self._health.record(node, False)
        self.failures.append(f"{node!r} ({type(exc).__name__})")
        moving = moves_on(self.replayable, reached, self._retry_after_send)
        following = self.route.next() if moving else None
        if following is None:
            exc.add_note(self._why(sent=reached and self.replayable and not moving))
            return False
        self.node = following
        return True

    def _why(self, *, sent: bool) -> str:
        """The note on the error of the last attempt (``sent``: stopped because the failed
        attempt may have reached its node)."""
        method = self.method
        note = f"hashring: {method} failed on {', '.join(self.failures)}"
        if not self.idempotent:
            return (
                f"{note}; not replayed on another node: {method} is not idempotent "
                f"({self._mark_hint} if it is safe to replay)"
            )
        if self.one_shot:
            return f"{note}; not replayed on another node: its body is a one-shot stream"
        if sent:
            return (
                f"{note}; not replayed on another node: the connection failed after the "
                "request was sent, so it may have run there (retry_after_send=True replays it)"
            )
        return f"{note}: every node it was allowed to try (max_attempts, ejected nodes last)"
