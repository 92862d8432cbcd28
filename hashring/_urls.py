"""Node URLs: redacting credentials before a URL reaches a repr, a log, a report or an error."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

__all__ = ["redact_url"]


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***`` (the user name is kept).

    >>> redact_url("redis://app:s3cret@cache-1:6379/0")
    'redis://app:***@cache-1:6379/0'
    >>> redact_url("rediss://:s3cret@cache-1/0?password=s3cret")
    'rediss://:***@cache-1/0?password=***'
    >>> redact_url("unix:///run/redis.sock")
    'unix:///run/redis.sock'
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable url>"
    netloc = parts.netloc
    if "@" in netloc:
        credentials, host = netloc.rsplit("@", 1)
        user = credentials.split(":", 1)[0]
        netloc = f"{user}:***@{host}" if ":" in credentials else f"{user}@{host}"
    query = "&".join(
        f"{name}=***" if name.lower() in {"password", "pass", "pwd", "token"} else pair
        for pair in parts.query.split("&")
        if pair
        for name in [pair.split("=", 1)[0]]
    )
    if netloc == parts.netloc and query == parts.query:
        return url
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
