"""Following a topology file that changes under running clients.

Deploy tools and Kubernetes ConfigMaps change files in two ways: in place (truncate and
write) or by rename (write a new file, then rename it over the old one, or swap a symlink).
:class:`TopologyWatcher` sees both: every ``interval`` seconds it takes each file's identity
(device, inode, size, modification time) through the path, symlinks followed, and, for files
up to :data:`DIGEST_BYTES`, a digest of its bytes (so a rewrite within one clock tick that
keeps the size is seen too). A topology in a migration is followed with its previous file.

A change is taken once the files have held still for one look (the same identity and
digest at two looks in a row), so a file caught half written in place is not loaded even when
its first half happens to be a valid topology with fewer nodes; a watcher therefore switches
within about two intervals of a change. The changed file is then loaded and validated
(:func:`~hashring.load_topology`); when its :attr:`~hashring.Topology.version` differs from
the running one, ``on_change(topology)`` is called, and only when it returns does the new
topology become :attr:`TopologyWatcher.current`.

A file that does not load (half written, invalid, deleted) and a callback that raises are
logged as warnings on the ``hashring.topology`` logger, once per distinct problem, and the
running topology is kept; the watcher tries again at the next change. Nothing here does
network I/O.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, Self, TypeVar

from .._errors import ConfigError, InvalidOptionError
from .config import MAX_TOPOLOGY_BYTES, Topology, load_topology

__all__ = [
    "DEFAULT_WATCH_INTERVAL",
    "DIGEST_BYTES",
    "FOLLOWER_STOP_SECONDS",
    "Following",
    "TopologyFollower",
    "TopologyWatcher",
    "follow_topology",
    "stop_following",
]

DEFAULT_WATCH_INTERVAL = 0.5
"""Seconds between two looks at a watched file, unless told otherwise (a change is taken
at the second look that finds it, so within about a second)."""
DIGEST_BYTES = 1 << 20
"""Files up to this size (1 MiB) are also compared by content at every look."""
MIN_INTERVAL, MAX_INTERVAL = 0.01, 3600.0
FOLLOWER_STOP_SECONDS = 10.0
"""The longest a client's ``close()`` waits for the thread following its topology to end (a
look in progress: a file look takes microseconds, a Redis source's at most its socket
timeout)."""

logger = logging.getLogger("hashring.topology")

Signature = tuple[tuple[object, ...], ...]


class TopologyFollower:
    """What every follower of a topology source shares: the running topology, one look at a
    time, the change taken only when ``on_change`` accepts it, problems logged once, and the
    thread. Subclasses say how to look at the source and how to load it.

    Subclasses set :attr:`SETTLE` when a source can be caught half written (files written
    in place): a change is then taken at the second look that finds it unchanged.
    """

    SETTLE = False
    THREAD_NAME = "hashring-topology-follow"

    def __init__(
        self,
        on_change: Callable[[Topology], object],
        *,
        interval: float = DEFAULT_WATCH_INTERVAL,
        start: bool = True,
    ) -> None:
        if (
            isinstance(interval, bool)
            or not isinstance(interval, (int, float))
            or not math.isfinite(interval)
            or not MIN_INTERVAL <= interval <= MAX_INTERVAL
        ):
            raise InvalidOptionError(
                f"watch_interval={interval!r:.40}: must be a number of seconds from "
                f"{MIN_INTERVAL} to {MAX_INTERVAL:.0f}"
            )
        self.interval = float(interval)
        self._on_change = on_change
        self._lock = threading.Lock()  # one look at a time (the thread and check())
        self._stopped = threading.Event()
        self._reported: str | None = None
        self._signature = self._look()
        self._pending: object = None  # a change seen once, taken if it holds still
        self.current: Topology = self._load()
        """The running topology: the last one ``on_change`` accepted."""
        self._thread: threading.Thread | None = None
        if start:
            self.start()

    def start(self) -> None:
        """Start the thread, for a follower made with ``start=False`` (so that a caller can
        build what ``on_change`` needs from :attr:`current` first). Does nothing when the
        thread runs already or the follower was stopped. O(1)."""
        with self._lock:
            if self._thread is not None or self._stopped.is_set():
                return
            self._thread = threading.Thread(target=self._run, name=self.THREAD_NAME, daemon=True)
            self._thread.start()

    @property
    def version(self) -> str:
        """The running topology's version."""
        return self.current.version

    def check(self) -> Topology | None:
        """Look at the source once; return the new topology if one was accepted, else None.
        With :attr:`SETTLE`, a change is taken at the second look that finds it unchanged.
        Never raises for a bad topology or a failing callback: it logs them."""
        with self._lock:
            signature = self._look()
            if signature == self._signature:
                self._pending = None
                return None
            if self.SETTLE and signature != self._pending:  # wait for it to hold still
                self._pending = signature
                return None
            try:
                topology = self._load()
            except ConfigError as exc:
                self._report(
                    f"{self._where()}: the changed topology is not valid, kept version "
                    f"{self.current.version}: {exc}"
                )
                return None  # the signature is kept: the next change is looked at again
            if topology.version == self.current.version:
                self._signature = signature
                return None
            try:
                self._on_change(topology)
            except Exception as exc:
                self._report(
                    f"{self._where()}: topology version {topology.version} was not taken, kept "
                    f"version {self.current.version}: {type(exc).__name__}: {exc}"
                )
                return None
            self._signature = signature
            self.current = topology
            self._reported = None
            logger.info("%s: now running topology version %s", self._where(), topology.version)
            return topology

    def stop(self, timeout: float | None = None) -> None:
        """Stop the thread and wait for it (at most ``timeout`` seconds). Idempotent."""
        self._stopped.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self._where()!r}, version={self.current.version!r}, "
            f"interval={self.interval})"
        )

    def _wait(self) -> bool:
        """Wait for the next look; False once stopped. Subclasses may wake up earlier."""
        return not self._stopped.wait(self.interval)

    def _run(self) -> None:
        while self._wait():
            try:
                self.check()
            except Exception:  # never let the thread die: the next look may succeed
                logger.exception("%s: looking at the topology failed", self._where())

    def _report(self, message: str) -> None:
        """Log a warning, once until the problem changes."""
        if message != self._reported:
            self._reported = message
            logger.warning("%s", message)

    def _look(self) -> object:
        """A cheap signature of the source: a change of it triggers a load."""
        raise NotImplementedError

    def _load(self) -> Topology:
        """The source's topology, validated.

        Raises:
            ConfigError: it is not valid (or cannot be read).
        """
        raise NotImplementedError

    def _where(self) -> str:
        """The source, for logs (no credentials)."""
        raise NotImplementedError


class TopologyWatcher(TopologyFollower):
    """Follows the topology file at ``path`` and calls ``on_change`` with each new valid
    topology, from a daemon thread named ``hashring-topology-watch``.

    The first load happens in the constructor and must succeed. Each look costs a
    ``stat`` per file plus, for files up to 1 MiB, reading and hashing them: O(file size).
    :meth:`check` performs one look in the calling thread (``start=False`` leaves the
    thread out, for callers that drive the looks themselves).

    Raises:
        ConfigError: the file is not a valid topology now.
        InvalidOptionError: ``interval`` is not a number of seconds in [0.01, 3600].
    """

    SETTLE = True
    THREAD_NAME = "hashring-topology-watch"

    def __init__(
        self,
        path: str | Path,
        on_change: Callable[[Topology], object],
        *,
        interval: float = DEFAULT_WATCH_INTERVAL,
        start: bool = True,
    ) -> None:
        self.path = Path(path)
        super().__init__(on_change, interval=interval, start=start)

    def _where(self) -> str:
        return str(self.path)

    def _load(self) -> Topology:
        return load_topology(self.path)

    def _files(self) -> list[Path]:
        files = [self.path]
        previous = getattr(getattr(self, "current", None), "previous", None)
        if previous is not None:
            files.append(Path(previous.source))
        return files

    def _look(self) -> Signature:
        """Each watched file's identity, and its content digest when small."""
        looks: list[tuple[object, ...]] = []
        for path in self._files():
            try:
                stat = os.stat(path)
            except OSError as exc:
                looks.append(("missing", exc.errno))
                continue
            digest = b""
            if stat.st_size <= DIGEST_BYTES:
                try:
                    with open(path, "rb") as handle:
                        digest = hashlib.sha256(handle.read(MAX_TOPOLOGY_BYTES + 1)).digest()
                except OSError as exc:
                    looks.append(("unreadable", exc.errno))
                    continue
            looks.append((stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, digest))
        return tuple(looks)


class Following(Protocol):
    """A client that follows its topology: what it follows with, and how it switches."""

    _follower: TopologyFollower | None
    _source: Any
    """A Redis topology source the client owns (closed with it), or None."""

    def _swap(self, topology: Topology) -> None: ...


F = TypeVar("F", bound=Following)


def follow_topology(
    follow: Callable[[Callable[[Topology], object]], TopologyFollower],
    build: Callable[[Topology], F],
    source: Any = None,
) -> F:
    """The client ``build`` makes of the topology a follower loaded (``follow(on_change)``,
    made with ``start=False``), holding that follower (and ``source``, which it then owns);
    the follower's thread is started last, calling the client's ``_swap`` with each new
    topology: so no change is taken before the client exists.

    Raises:
        whatever ``follow`` or ``build`` raises: the follower is stopped and ``source``
        closed.
    """
    built: list[F] = []
    follower: TopologyFollower | None = None
    try:
        follower = follow(lambda topology: built[0]._swap(topology))
        client = build(follower.current)
    except BaseException:
        _stop_parts(follower, source)
        raise
    built.append(client)
    client._follower, client._source = follower, source
    follower.start()
    return client


def stop_following(client: Following) -> None:
    """What a client's ``close()`` does with what follows its topology: stop its follower
    (waiting for its thread at most :data:`FOLLOWER_STOP_SECONDS`), then close its Redis
    topology source; both forgotten, so a second call does nothing."""
    follower, client._follower = client._follower, None
    source, client._source = client._source, None
    _stop_parts(follower, source)


def _stop_parts(follower: TopologyFollower | None, source: Any) -> None:
    """Stop ``follower`` and close ``source`` (None for either: nothing)."""
    if follower is not None:
        follower.stop(FOLLOWER_STOP_SECONDS)
    if source is not None:
        source.close()
