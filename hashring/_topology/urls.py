"""Node URLs: redacting credentials before a URL reaches a repr, a log, a report or an error.

:func:`redact_url` does not parse the URL (``urllib.parse`` is fooled by a password holding an
unencoded ``/``, ``?``, ``#`` or ``@``, and refuses some strings altogether); it works on the
text, with rules chosen so that no reading of the string could leave a password visible:

* the *userinfo* is everything between ``scheme://`` (or the start of the string, if it does
  not begin with a scheme) and the **last** ``@`` of the string. When it holds a ``:``, what
  follows the first ``:`` is the password and becomes ``***``; the user name is kept. A string
  whose path or query holds an ``@`` after a ``:`` is therefore redacted more than strictly
  needed (``http://h:80/p?mail=a@b`` shows as ``http://h:***@b``): with an unencoded password
  that reading cannot be ruled out, and a redacted URL is only ever displayed.
* in the query (after the first ``?`` that follows ``scheme://``, wherever the userinfo
  ends), the value of every parameter whose name contains ``pass``, ``pwd``, ``token``,
  ``secret``, ``auth``, ``key``, ``cred`` or ``sig`` (any case, percent-encoded or not)
  becomes ``***``, up to the next ``&`` (a ``#`` included). A ``&`` inside such a value must be
  percent-encoded, as for any URL parser.

Both rules apply together; overlapping masked parts show as one ``***``.

Complexity: O(len(url)).
"""

from __future__ import annotations

import re
from urllib.parse import parse_qs, unquote, urlsplit

from .._errors import InvalidOptionError

__all__ = ["SENSITIVE_QUERY_WORDS", "node_name", "redact_url", "split_userinfo"]

SENSITIVE_QUERY_WORDS = ("pass", "pwd", "token", "secret", "auth", "key", "cred", "sig")
"""A query parameter whose lower-cased name contains one of these has its value redacted."""

_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://")
_MASK = "***"


def split_userinfo(url: str) -> tuple[str, str | None, str]:
    """``url`` as ``(prefix, userinfo, rest)``: ``prefix + userinfo + "@" + rest == url``.

    ``prefix`` is ``scheme://`` (empty if ``url`` does not start with one), ``userinfo`` what
    lies between it and the **last** ``@`` of ``url`` (None, and ``rest`` the remainder, when
    there is no ``@``). O(len(url)).

    >>> split_userinfo("redis://user:s3cr/3t@127.0.0.1:7001/0")
    ('redis://', 'user:s3cr/3t', '127.0.0.1:7001/0')
    >>> split_userinfo("http://10.0.0.7:8080/api")
    ('http://', None, '10.0.0.7:8080/api')
    """
    scheme = _SCHEME.match(url)
    start = scheme.end() if scheme else 0
    at = url.rfind("@", start)
    if at < 0:
        return url[:start], None, url[start:]
    return url[:start], url[start:at], url[at + 1 :]


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***`` (the user name is kept).

    Holds for any string, parseable or not (see the module docstring for the rules).
    O(len(url)); never raises for a ``str``.

    >>> redact_url("redis://app:s3cret@cache-1:6379/0")
    'redis://app:***@cache-1:6379/0'
    >>> redact_url("rediss://:s3cret@cache-1/0?password=s3cret")
    'rediss://:***@cache-1/0?password=***'
    >>> redact_url("redis://user:s3cr/3t@127.0.0.1:7001/0")
    'redis://user:***@127.0.0.1:7001/0'
    >>> redact_url("unix:///run/redis.sock")
    'unix:///run/redis.sock'
    """
    scheme = _SCHEME.match(url)
    start = scheme.end() if scheme else 0
    masked: list[tuple[int, int]] = []  # [start, end) ranges of url to show as ***
    at = url.rfind("@", start)
    colon = url.find(":", start, at) if at >= 0 else -1
    if colon >= 0:
        masked.append((colon + 1, at))
    question = url.find("?", start)
    if question >= 0:
        offset = question + 1
        for pair in url[offset:].split("&"):
            name, equals, _ = pair.partition("=")
            if equals and _sensitive(name):
                masked.append((offset + len(name) + 1, offset + len(pair)))
            offset += len(pair) + 1
    if not masked:
        return url
    shown: list[str] = []
    position = 0
    for begin, end in sorted(masked):
        if begin > position or not shown:
            shown.append(url[position:begin])
            shown.append(_MASK)
        position = max(position, end)
    shown.append(url[position:])
    return "".join(shown)


def _sensitive(name: str) -> bool:
    """Whether a query parameter named ``name`` carries a secret."""
    folded = name.lower()
    decoded = unquote(name, errors="replace").lower()
    return any(word in folded or word in decoded for word in SENSITIVE_QUERY_WORDS)


def node_name(url: str) -> str:
    """The node name of a Redis server URL: ``host:port/db`` (port 6379 and db 0 by
    default, the host lowercased, an IPv6 host in brackets), or ``unix:<path>/db``. Never
    its scheme, credentials or options: a list of URLs named so keeps every key in place
    when the list is reordered, a password changes or ``redis://`` becomes ``rediss://``.
    The framework caches name a list of URLs so. O(len(url)).

    >>> node_name("redis://app:s3cret@Cache-1.example/2")
    'cache-1.example:6379/2'
    >>> node_name("unix:///run/redis.sock?db=1")
    'unix:/run/redis.sock/1'

    Raises:
        InvalidOptionError: a port or db that is not a number (the URL shown redacted).
    """
    shown = redact_url(url)
    parts = urlsplit(shown)  # parsed redacted: a password holding '/', '@' or '?' cannot
    # move the host, and nothing of it can reach the name
    query = parse_qs(parts.query)
    try:
        if parts.scheme == "unix":
            db = int(query.get("db", ["0"])[0])
            return f"unix:{parts.path}/{db}"
        path = parts.path.strip("/")
        db = int(path or query.get("db", ["0"])[0])
        port = parts.port or 6379
    except ValueError:
        raise InvalidOptionError(f"bad port or db in {shown!r}") from None
    host = parts.hostname or ""
    if not host:
        raise InvalidOptionError(f"no host in {shown!r}")
    if ":" in host:
        host = f"[{host}]"
    return f"{host}:{port}/{db}"
