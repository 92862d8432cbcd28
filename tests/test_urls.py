"""redact_url: no password survives, whatever the URL string holds."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from hashring import redact_url
from hashring._topology.urls import split_userinfo

SCHEMES = st.sampled_from(["redis://", "rediss://", "http://", "https://", "unix://", ""])
HOSTS = st.sampled_from(["127.0.0.1:7001", "cache-1", "[::1]:6379", "h", ""])
TAILS = st.sampled_from(["", "/0", "/0?db=1", "/api/v1", "?x=1#frag", "/a:b"])


def meaningful(secret: str, url: str) -> bool:
    """Whether a leak of ``secret`` could be told apart from the rest of ``url``."""
    rest = url.replace(secret, "", 1)
    return len(secret) >= 4 and secret not in rest and "***" not in secret


@given(scheme=SCHEMES, user=st.text(max_size=8), password=st.text(), host=HOSTS, tail=TAILS)
@example(scheme="redis://", user="user", password="s3cr/3t", host="127.0.0.1:7001", tail="/0")
@example(scheme="redis://", user="user", password="s3#cr?et", host="h", tail="/0")
@example(scheme="http://", user="u", password="p@ss/w?rd#x", host="h", tail="/p?q=1")
@example(scheme="", user="u", password="a://bcde", host="h", tail="")
@example(scheme="redis://", user="", password="pw\udcffxyz", host="h", tail="")
def test_userinfo_password_never_survives(
    scheme: str, user: str, password: str, host: str, tail: str
) -> None:
    """A password of any characters between ``user:`` and ``@host`` is never shown."""
    user = user.replace(":", "").replace("@", "")  # a user name holds neither
    url = f"{scheme}{user}:{password}@{host}{tail}"
    shown = redact_url(url)
    if meaningful(password, url):
        assert password not in shown
    assert "***" in shown


@given(
    name=st.sampled_from(["password", "PASS", "pwd", "token", "access_token", "Secret", "auth",
                          "api%5Fkey", "sslpassword"]),
    secret=st.text(alphabet=st.characters(blacklist_characters="&"), min_size=1),
    before=st.sampled_from(["", "db=0&"]),
    after=st.sampled_from(["", "&db=0", "#frag"]),
)  # fmt: skip
def test_query_secrets_never_survive(name: str, secret: str, before: str, after: str) -> None:
    """The value of a password/token/secret/auth/key query parameter is never shown."""
    url = f"redis://cache-1:6379/0?{before}{name}={secret}{after}"
    shown = redact_url(url)
    if meaningful(secret, url):
        assert secret not in shown
    assert f"{name}=***" in shown or "@" in secret  # an @ makes it userinfo: masked too


@given(st.text())
def test_any_string_is_accepted_and_redaction_is_idempotent(text: str) -> None:
    """Any str gives a str without raising, and redacting twice changes nothing more."""
    shown = redact_url(text)
    assert isinstance(shown, str)
    assert redact_url(shown) == shown


@given(st.text())
def test_split_userinfo_reassembles(text: str) -> None:
    """split_userinfo's parts give the string back."""
    prefix, userinfo, rest = split_userinfo(text)
    assert (prefix + rest if userinfo is None else f"{prefix}{userinfo}@{rest}") == text


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://app:s3cret@cache-1:6379/0", "redis://app:***@cache-1:6379/0"),
        ("redis://user:s3cr/3t@127.0.0.1:7001/0", "redis://user:***@127.0.0.1:7001/0"),
        ("redis://user:s3#cr?et@h:1/0", "redis://user:***@h:1/0"),
        ("redis://user:p@ss@h:1/0", "redis://user:***@h:1/0"),
        ("http://[::1:80", "http://[::1:80"),  # unparseable by urlsplit: shown as is
        ("http://u:pw@[::1:80", "http://u:***@[::1:80"),
        ("u:pw@host", "u:***@host"),
        ("unix:///run/redis.sock?password=x&db=0", "unix:///run/redis.sock?password=***&db=0"),
        ("https://api.example/v1?access_token=abc#frag", "https://api.example/v1?access_token=***"),
        ("http://app@host/", "http://app@host/"),
        ("http://10.0.0.7:8080/api", "http://10.0.0.7:8080/api"),
        ("http://h:80/p?mail=a@b", "http://h:***@b"),  # ambiguous: redacted the safe way
    ],
)
def test_examples(url: str, shown: str) -> None:
    """Known URLs, parseable or not, are shown as expected."""
    assert redact_url(url) == shown


# ------------------------------------------------------------------ adapters' exception chains

LEAKY_URLS = [
    ("redis", "redis://user:s3cr/3t@127.0.0.1:7001/0", ("s3cr", "3t@")),
    ("redis", "redis://user:s3#cr?et@127.0.0.1:7001/0", ("s3#cr", "cr?et")),
    ("http", "http://user:s3cr/3t@127.0.0.1:7001", ("s3cr", "3t@")),
    ("http", "http://user:p4ss:w0rd/x@127.0.0.1:7001", ("p4ss", "w0rd")),
]


def _construct(kind: str, url: str) -> list[BaseException]:
    """The errors each adapter of ``kind`` raises for a node at ``url``."""
    from hashring.adapters.http import AsyncShardedTransport, ShardedAdapter, ShardedTransport
    from hashring.adapters.redis import AsyncShardedRedis, ShardedRedis

    from hashring import InvalidOptionError

    makers: list[type] = (
        [ShardedRedis, AsyncShardedRedis]
        if kind == "redis"
        else [ShardedTransport, AsyncShardedTransport, ShardedAdapter]
    )
    errors: list[BaseException] = []
    for make in makers:
        with pytest.raises(InvalidOptionError) as caught:
            make({"n0": url})
        errors.append(caught.value)
    return errors


@pytest.mark.parametrize(("kind", "url", "secrets"), LEAKY_URLS)
def test_no_part_of_a_password_is_in_an_adapters_traceback(
    kind: str, url: str, secrets: tuple[str, ...]
) -> None:
    """The whole formatted exception (message, cause and context) of a refused node URL
    holds no part of its password: redis-py quotes the part after an unencoded "/" as a
    port, and that error must not ride along as the cause or the context."""
    import traceback

    from hashring import InvalidOptionError

    for error in _construct(kind, url):
        assert isinstance(error, InvalidOptionError)
        text = "".join(traceback.format_exception(error))
        for secret in secrets:
            assert secret not in text, (type(error).__name__, text)
        for linked in (error.__cause__, error.__context__):
            assert linked is None or not any(s in repr(linked) for s in secrets)
