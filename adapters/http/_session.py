"""requests.Session over sharded nodes: one logical host, ``shard_key=`` on every verb.

>>> from hashring.adapters.http import ShardedSession
>>> session = ShardedSession({"n0": "http://127.0.0.1:9", "n1": "http://127.0.0.1:10"},
...                         host="users")
>>> session.router.placement.get_node("user:42") in ("n0", "n1")
True
>>> session.close()

See the ``_requests`` module for routing, failover, timeouts and errors.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Self
from urllib.parse import urlsplit

import requests
from requests.adapters import BaseAdapter
from requests.models import PreparedRequest, Response

from hashring import InvalidOptionError, Key, Placement
from hashring._placement.keys import check_key
from hashring._topology.watch import DEFAULT_WATCH_INTERVAL

from ._following import TOPOLOGY_KEY
from ._requests import (
    _CALL,
    DEFAULT_TIMEOUT,
    IDEMPOTENT_HEADER,
    SHARD_KEY_HEADER,
    ShardedAdapter,
    Timeout,
    _text,
)
from ._router import HttpRouter

__all__ = ["ShardedSession"]


class ShardedSession(requests.Session):
    """A requests.Session whose logical host ``host`` is served by sharded nodes.

    Mounts one :class:`ShardedAdapter` for ``http://{host}/`` and ``https://{host}/``; other
    URLs behave as in any session. Every request method takes two more keywords:

    * ``shard_key``: the request's shard key (str or bytes);
    * ``idempotent``: True marks the request safe to replay on another node.

    Both hold for every request the call sends through the sharded adapter (its redirects
    on the logical host, re-sends by auth hooks) and win over ``X-Shard-Key`` /
    ``X-Idempotent`` headers; they travel beside the request, not in a header, so neither
    requests' header handling nor the node sees them.

    Args:
        nodes: node name -> base URL, as for :class:`ShardedAdapter`.
        host: the logical host name (default ``"shard"``), such as ``"users"``.
        adapter, placement, timeout, and the routing options: as for
            :class:`ShardedAdapter` (``placement``: an algorithm name, default ``"ring"``
            with hash tags off, or a ready :class:`hashring.Placement`).

    :meth:`from_config` and :meth:`from_source` build a session from a topology and follow
    it (see the ``_following`` module); :meth:`close` (requests closes every mounted
    adapter) stops following.

    Raises:
        InvalidOptionError, InvalidWeightError: a bad host, node, URL or option.
    """

    def __init__(
        self,
        nodes: Mapping[str, str],
        *,
        host: str = "shard",
        adapter: BaseAdapter | None = None,
        placement: str | Placement = "ring",
        key_func: Callable[[PreparedRequest], Key | None] | None = None,
        balancer: str = "round-robin",
        bounded_load: float | None = None,
        health: bool = True,
        failure_limit: int = 2,
        retry_timeout: float = 30.0,
        max_attempts: int = 3,
        retry_statuses: tuple[int, ...] | frozenset[int] = (),
        retry_after_send: bool = False,
        timeout: Timeout = DEFAULT_TIMEOUT,
    ) -> None:
        checked = _check_host(host)
        sharded = ShardedAdapter(
            nodes, adapter=adapter, placement=placement, key_func=key_func, balancer=balancer,
            bounded_load=bounded_load, health=health, failure_limit=failure_limit,
            retry_timeout=retry_timeout, max_attempts=max_attempts,
            retry_statuses=retry_statuses, retry_after_send=retry_after_send, timeout=timeout,
        )  # fmt: skip
        self._mount_sharded(checked, sharded)

    @classmethod
    def from_config(
        cls,
        path: str | Path,
        *,
        host: str = "shard",
        watch: bool = False,
        watch_interval: float = DEFAULT_WATCH_INTERVAL,
        **options: Any,
    ) -> Self:
        """A session over the topology file at ``path``: its adapter is
        :meth:`ShardedAdapter.from_config(path, watch=watch, watch_interval=watch_interval,
        **options) <ShardedAdapter.from_config>`, so with ``watch=True`` the session
        switches to each new valid topology of the file; :meth:`close` stops following.

        Raises:
            as :meth:`ShardedAdapter.from_config`, and InvalidOptionError for a bad host.
        """
        checked = _check_host(host)
        return cls._over(
            checked,
            ShardedAdapter.from_config(path, watch=watch, watch_interval=watch_interval, **options),
        )

    @classmethod
    def from_source(
        cls,
        url: str,
        *,
        host: str = "shard",
        key: str = TOPOLOGY_KEY,
        watch_interval: float = DEFAULT_WATCH_INTERVAL,
        source_kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> Self:
        """A session over the topology stored at ``key`` on the Redis server at ``url``,
        following it: its adapter is :meth:`ShardedAdapter.from_source` with the same
        arguments; :meth:`close` stops following and closes the source's connections.

        Raises:
            as :meth:`ShardedAdapter.from_source`, and InvalidOptionError for a bad host.
        """
        checked = _check_host(host)
        return cls._over(
            checked,
            ShardedAdapter.from_source(
                url, key=key, watch_interval=watch_interval, source_kwargs=source_kwargs,
                **options,
            ),
        )  # fmt: skip

    @classmethod
    def _over(cls, host: str, sharded: ShardedAdapter) -> Self:
        """A session whose logical ``host`` (checked) is served by ``sharded``."""
        self = cls.__new__(cls)
        self._mount_sharded(host, sharded)
        return self

    def _mount_sharded(self, host: str, sharded: ShardedAdapter) -> None:
        """Set the session up with ``sharded`` mounted for the logical ``host`` (checked)."""
        requests.Session.__init__(self)
        self.host = host
        self._prefixes = (f"http://{host}", f"https://{host}")
        self.sharded_adapter = sharded
        for scheme in ("http", "https"):
            self.mount(f"{scheme}://{host}/", sharded)

    @property
    def router(self) -> HttpRouter:
        """The sharded adapter's router: the snapshot a request starts on (replaced in one
        assignment when a followed topology changes)."""
        return self.sharded_adapter.router

    @property
    def version(self) -> str | None:
        """The version of the topology the session runs (None: built from URLs)."""
        return self.sharded_adapter.version

    def request(
        self,
        method: str | bytes,
        url: str | bytes,
        *args: Any,
        shard_key: Key | None = None,
        idempotent: bool = False,
        **kwargs: Any,
    ) -> Response:
        """``Session.request`` plus ``shard_key=`` and ``idempotent=`` (see the class).

        Raises:
            InvalidKeyError: ``shard_key`` is neither str nor bytes.
            KeyEncodingError: ``shard_key`` is a str with no UTF-8 form (a lone surrogate).
            InvalidOptionError: ``shard_key`` or ``idempotent`` for a URL off the logical
                host, or a key that cannot travel in a header.
        """
        if shard_key is None and not idempotent:
            return super().request(method, url, *args, **kwargs)
        key = None if shard_key is None else _header_key(check_key(shard_key))
        if not self._on_host(url.decode() if isinstance(url, bytes) else url):
            raise InvalidOptionError(
                f"shard_key/idempotent given for a URL off the logical host {self.host!r}: "
                f"address it as http://{self.host}/..."
            )
        token = _CALL.set((self.sharded_adapter, key, bool(idempotent)))
        try:
            return super().request(method, url, *args, **kwargs)
        finally:
            _CALL.reset(token)

    def _on_host(self, url: str) -> bool:
        """Whether ``url`` is on the logical host (scheme http or https). O(len(url)): a
        prefix check, else ``urlsplit``."""
        for prefix in self._prefixes:
            if url.startswith(prefix) and url[len(prefix) : len(prefix) + 1] in ("", "/", "?", "#"):
                return True
        target = urlsplit(url)
        return target.scheme.lower() in ("http", "https") and target.netloc.lower() == self.host

    def send(self, request: PreparedRequest, **kwargs: Any) -> Response:
        """``Session.send``; routing headers are dropped from requests that leave the logical
        host (a redirect elsewhere), so other hosts never see them."""
        headers = request.headers
        if (SHARD_KEY_HEADER in headers or IDEMPOTENT_HEADER in headers) and self.get_adapter(
            request.url or ""
        ) is not self.sharded_adapter:
            request = request.copy()
            request.headers.pop(SHARD_KEY_HEADER, None)
            request.headers.pop(IDEMPOTENT_HEADER, None)
        return super().send(request, **kwargs)

    # The verbs, typed with the two extra keywords (requests' own versions pass them through
    # at run time, but their signatures do not declare them).

    def get(
        self,
        url: str | bytes,
        params: Any = None,
        *,
        shard_key: Key | None = None,
        idempotent: bool = False,
        **kwargs: Any,
    ) -> Response:
        """GET ``url`` (see :meth:`request`)."""
        kwargs.setdefault("allow_redirects", True)
        return self.request(
            "GET", url, params=params, shard_key=shard_key, idempotent=idempotent, **kwargs
        )

    def options(
        self,
        url: str | bytes,
        *,
        shard_key: Key | None = None,
        idempotent: bool = False,
        **kwargs: Any,
    ) -> Response:
        """OPTIONS ``url`` (see :meth:`request`)."""
        kwargs.setdefault("allow_redirects", True)
        return self.request("OPTIONS", url, shard_key=shard_key, idempotent=idempotent, **kwargs)

    def head(
        self,
        url: str | bytes,
        *,
        shard_key: Key | None = None,
        idempotent: bool = False,
        **kwargs: Any,
    ) -> Response:
        """HEAD ``url`` (see :meth:`request`); redirects are not followed by default."""
        kwargs.setdefault("allow_redirects", False)
        return self.request("HEAD", url, shard_key=shard_key, idempotent=idempotent, **kwargs)

    def post(
        self,
        url: str | bytes,
        data: Any = None,
        json: Any = None,
        *,
        shard_key: Key | None = None,
        idempotent: bool = False,
        **kwargs: Any,
    ) -> Response:
        """POST ``url`` (see :meth:`request`); never replayed unless ``idempotent=True``."""
        return self.request(
            "POST", url, data=data, json=json, shard_key=shard_key, idempotent=idempotent,
            **kwargs,
        )  # fmt: skip

    def put(
        self,
        url: str | bytes,
        data: Any = None,
        *,
        shard_key: Key | None = None,
        idempotent: bool = False,
        **kwargs: Any,
    ) -> Response:
        """PUT ``url`` (see :meth:`request`)."""
        return self.request(
            "PUT", url, data=data, shard_key=shard_key, idempotent=idempotent, **kwargs
        )

    def patch(
        self,
        url: str | bytes,
        data: Any = None,
        *,
        shard_key: Key | None = None,
        idempotent: bool = False,
        **kwargs: Any,
    ) -> Response:
        """PATCH ``url`` (see :meth:`request`); never replayed unless ``idempotent=True``."""
        return self.request(
            "PATCH", url, data=data, shard_key=shard_key, idempotent=idempotent, **kwargs
        )

    def delete(
        self,
        url: str | bytes,
        *,
        shard_key: Key | None = None,
        idempotent: bool = False,
        **kwargs: Any,
    ) -> Response:
        """DELETE ``url`` (see :meth:`request`)."""
        return self.request("DELETE", url, shard_key=shard_key, idempotent=idempotent, **kwargs)

    # ------------------------------------------------------------------ topology

    def add_node(self, name: str, url: str, weight: float = 1) -> None:
        """Add a node at runtime (thread-safe); see :meth:`HttpRouter.add_node`."""
        self.router.add_node(name, url, weight)

    def remove_node(self, name: str) -> None:
        """Remove a node at runtime (thread-safe); see :meth:`HttpRouter.remove_node`."""
        self.router.remove_node(name)

    def stats(self) -> dict[str, dict[str, float | int | bool]]:
        """Per-node counters: commands (requests), errors, ejections, ejected."""
        return self.router.stats()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(host={self.host!r}, nodes={self.router.node_urls!r})"


# ---------------------------------------------------------------------- helpers


def _header_key(key: Key) -> Key:
    """``key`` if it can travel in a header value (no CR/LF, no leading whitespace)."""
    text = _text(key)
    if "\r" in text or "\n" in text or text[:1].isspace():
        raise InvalidOptionError(
            f"shard key {key!r:.60} cannot be sent in the {SHARD_KEY_HEADER} header: "
            "it holds CR/LF or starts with whitespace"
        )
    return key


def _check_host(host: Any) -> str:
    """A logical host name such as ``users`` or ``users.internal:8080``."""
    if isinstance(host, str) and host:
        try:
            parts = urlsplit(f"http://{host}/")
            parts.port  # noqa: B018 - raises ValueError for a bad port
        except ValueError:
            parts = None
        if parts is not None and parts.netloc == host and parts.path == "/" and "@" not in host:
            return host.lower()
    raise InvalidOptionError(
        f"host must be a logical host name such as 'users' (no scheme, path or credentials), "
        f"got {host!r}"
    )
