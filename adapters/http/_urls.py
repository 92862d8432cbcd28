"""Node base URLs of the HTTP adapters: parsing, rewriting a logical URL, credentials.

A user name and password in a node URL (``http://app:s3cret@10.0.0.7:8080``,
percent-encoded) are never part of the URL sent: they become an HTTP Basic
``Authorization`` value (user and password as UTF-8), and reprs, errors and ``node_urls``
show the password as ``***``.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast
from urllib.parse import unquote_to_bytes, urlsplit, urlunsplit

from hashring import InvalidOptionError, redact_url
from hashring._placement.nodes import check_node_name
from hashring._topology.urls import split_userinfo

__all__ = ["NodeURL", "parse_node_url"]

_T = TypeVar("_T")

_PLAIN_ABSOLUTE = re.compile(r"https?://[^/?#\[\]\x00-\x20\x7f-\U0010ffff]+(?=[/?#]|\Z)")
"""The scheme and authority of a URL whose rest :meth:`NodeURL.rewrite` can splice as it is
(lower-case http/https, a non-empty ASCII authority without brackets, spaces or control
characters)."""


@dataclass(frozen=True)
class NodeURL:
    """A node's base URL: scheme, host[:port] (no credentials) and base path (no trailing
    slash); ``authorization`` is the Basic ``Authorization`` value for the URL's user and
    password, if it had any (never shown in a repr)."""

    name: str
    scheme: str
    netloc: str
    path: str
    authorization: str | None = field(default=None, repr=False, compare=False)
    shown: str = field(default="", repr=False, compare=False)
    prefix: str = field(init=False, repr=False, compare=False)
    """``scheme://netloc/base/path``: what :meth:`rewrite` puts in front of a request path."""
    _prepared: dict[Callable[[NodeURL], Any], Any] = field(
        init=False, repr=False, compare=False, default_factory=dict
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "prefix", f"{self.scheme}://{self.netloc}{self.path}")

    def prepared(self, build: Callable[[NodeURL], _T]) -> _T:
        """``build(self)``, computed on the first call and kept with this node URL: what a
        client derives from a node's URL once (a parsed URL, header values) rather than per
        request. A node URL is replaced, never changed, when membership changes, so what
        this keeps is never stale. O(1) after the first call per ``build``; two threads
        racing on the first call may both build (the last one is kept)."""
        try:
            return cast(_T, self._prepared[build])
        except KeyError:
            value = self._prepared[build] = build(self)
            return value

    def rewrite(self, url: str) -> str:
        """``url`` (on any host) sent to this node: its path and query after the base path.

        ``url``'s scheme, user info, host and port are dropped; its path, query and
        fragment are kept as they are (no escaping added or removed), an empty path becomes
        ``/``, and an empty query or fragment (a bare ``?`` or ``#``) is dropped. O(len(url)):
        a plain absolute URL is spliced after a match; anything else goes through
        :func:`urllib.parse.urlsplit`, with the same result.

        >>> NodeURL("n", "http", "10.0.0.7:8080", "/api").rewrite("http://users/42?x=1")
        'http://10.0.0.7:8080/api/42?x=1'

        Raises:
            InvalidOptionError: ``url`` has no scheme or no host.
        """
        match = _PLAIN_ABSOLUTE.match(url)
        if match is not None:
            rest = url[match.end() :]
            if not rest:
                return self.prefix + "/"
            if (
                rest[-1] not in "?#"
                and "?#" not in rest
                and "\t" not in rest
                and "\n" not in rest
                and "\r" not in rest
            ):
                return self.prefix + rest if rest[0] == "/" else f"{self.prefix}/{rest}"
        return self._split_rewrite(url)

    def _split_rewrite(self, url: str) -> str:
        """:meth:`rewrite` through ``urlsplit``/``urlunsplit`` (any URL)."""
        parts = urlsplit(url)
        if not parts.scheme or not parts.netloc:
            raise InvalidOptionError(
                f"request URL {redact_url(url)!r} names no logical host: use an absolute URL "
                "such as http://users/42 (or set the client's base_url)"
            )
        path = self.path + (parts.path if parts.path.startswith("/") else "/" + parts.path)
        return urlunsplit((self.scheme, self.netloc, path, parts.query, parts.fragment))

    @property
    def display(self) -> str:
        """The base URL as given, password shown as ``***``."""
        return self.shown or f"{self.scheme}://{self.netloc}{self.path}"

    def __repr__(self) -> str:
        return f"NodeURL({self.name!r}, {self.display!r})"


def parse_node_url(name: str, url: Any) -> NodeURL:
    """Validate a node's base URL (``http://`` or ``https://``, a host, no query).

    User name and password (percent-encoded) become :attr:`NodeURL.authorization`; the
    returned ``netloc`` has none.

    Raises:
        InvalidOptionError: anything else, with the reason; the URL in the message is redacted.
    """
    check_node_name(name)
    if not isinstance(url, str):
        raise InvalidOptionError(f"node {name!r}: the URL must be a str, not {type(url).__name__}")
    shown = redact_url(url)
    if not url.isascii():
        try:
            url.encode()
        except UnicodeEncodeError:
            raise InvalidOptionError(
                f"node {name!r}: {shown!r} cannot be encoded as UTF-8 (a lone surrogate)"
            ) from None
    try:
        parts = urlsplit(url)
        _, at, host = parts.netloc.rpartition("@")
        if split_userinfo(url)[1] != (parts.netloc.rpartition("@")[0] if at else None):
            raise InvalidOptionError(
                f"node {name!r}: {shown!r} holds an '@' after its host: percent-encode "
                "'/', '?', '#' and '@' in a user name or password (%2F, %3F, %23, %40)"
            )
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError as exc:
        if isinstance(exc, InvalidOptionError):
            raise
        raise InvalidOptionError(f"node {name!r}: malformed URL {shown!r}: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise InvalidOptionError(
            f"node {name!r}: unsupported scheme in {shown!r}: use http:// or https://"
        )
    if not parts.hostname or parts.query or parts.fragment:
        raise InvalidOptionError(
            f"node {name!r}: {shown!r} must be a base URL with a host and no query, "
            "such as http://10.0.0.7:8080 or https://search-3.internal/api"
        )
    authorization = None
    if at:
        user, _, password = parts.netloc.rpartition("@")[0].partition(":")
        pair = unquote_to_bytes(user) + b":" + unquote_to_bytes(password)
        authorization = "Basic " + base64.b64encode(pair).decode("ascii")
    return NodeURL(
        name,
        parts.scheme,
        host,
        parts.path.rstrip("/"),
        authorization=authorization,
        shown=redact_url(url.rstrip("/")),
    )
