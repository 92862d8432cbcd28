"""The request sent to a node: the fast rewrites give what parsing the URL again gave."""

from __future__ import annotations

import base64
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
import requests
from hashring.adapters.http import (
    NodeURL,
    ShardedAdapter,
    ShardedSession,
    ShardedTransport,
    parse_node_url,
)
from hashring.adapters.http._httpx import _FAST_URLS, _Target
from hypothesis import given, settings
from hypothesis import strategies as st

from hashring import InvalidOptionError

NODE_BASES = (
    "http://10.0.0.7:8080",
    "http://app:s3cr%40t@10.0.0.7:8080/api",
    "https://Search-3.Internal:443/a b/",
    "http://[::1]:8081/x/./y/..",
    "http://h%C3%A9llo.example/%7Euser",
)

url_text = st.lists(
    st.sampled_from(
        [*"aZ09/?#%:@[]. \t\r\n\x00-_~;=&+'", "é", "%2F", "%20", "http://", "https://"]
    ),
    max_size=14,
).map("".join)
"""URL-ish text: delimiters, escapes, whitespace and control characters, non-ASCII."""

paths = st.lists(
    st.sampled_from(["a", "Z", "0", "/", "%2F", "%20", " ", "é", ";", "=", "~", "..", ".", ":"]),
    max_size=10,
).map(lambda parts: "/" + "".join(parts))
queries = st.none() | st.lists(st.sampled_from(["a", "=", "&", "%20", " ", "é", "?", "/"])).map(
    "".join
)
fragments = st.none() | st.sampled_from(["", "f", "f?g", "%20"])


def split_rewrite(node: NodeURL, url: str) -> str:
    """What ``NodeURL.rewrite`` did before its fast path: ``urlsplit`` and ``urlunsplit``."""
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        raise InvalidOptionError("no logical host")
    path = node.path + (parts.path if parts.path.startswith("/") else "/" + parts.path)
    return urlunsplit((node.scheme, node.netloc, path, parts.query, parts.fragment))


def outcome(rewrite: object, node: NodeURL, url: str) -> object:
    try:
        return rewrite(node, url)  # type: ignore[operator]
    except ValueError as exc:
        return type(exc)


@settings(max_examples=400, deadline=None)
@given(
    base=st.sampled_from(NODE_BASES),
    head=st.sampled_from(["", "http://", "https://"]),
    text=url_text,
)
def test_rewrite_splices_what_urlsplit_gives(base: str, head: str, text: str) -> None:
    """NodeURL.rewrite gives the urlsplit/urlunsplit answer (or error) for any URL text."""
    node = parse_node_url("n", base)
    url = head + text
    assert outcome(NodeURL.rewrite, node, url) == outcome(split_rewrite, node, url)


def test_httpx_keeps_the_parse_layout_the_fast_path_reads() -> None:
    """The installed httpx keeps the URL parse the transport reads (else it parses again)."""
    assert _FAST_URLS
    assert all(_Target(parse_node_url("n", base)).fast for base in NODE_BASES)


@settings(max_examples=200, deadline=None)
@given(
    base=st.sampled_from(NODE_BASES),
    path=paths,
    query=queries,
    fragment=fragments,
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE"]),
    body=st.binary(max_size=8),
    own_auth=st.booleans(),
)
def test_httpx_node_request_is_the_parsed_one(
    base: str,
    path: str,
    query: str | None,
    fragment: str | None,
    method: str,
    body: bytes,
    own_auth: bool,
) -> None:
    """The httpx request sent to a node equals the one built by parsing the rewritten URL:
    URL, target (percent-escapes kept, no fragment), method, headers, body."""
    url = "http://users" + path + ("" if query is None else "?" + query)
    url += "" if fragment is None else "#" + fragment
    headers = {"X-Other": "1", **({"Authorization": "Bearer mine"} if own_auth else {})}
    logical = httpx.Request(method, url, headers=headers, content=body)
    node = parse_node_url("n", base)
    sent = _Target(node).request(logical)

    expected_url = httpx.URL(node.rewrite(str(logical.url)))
    assert str(sent.url) == str(expected_url)
    assert sent.url.raw_path == expected_url.raw_path
    assert b"#" not in sent.url.raw_path
    assert sent.method == method
    assert sent.read() == body
    expected = logical.headers.copy()
    expected["Host"] = expected_url.netloc.decode("ascii")
    if node.authorization is not None and not own_auth:
        expected["Authorization"] = node.authorization
    assert sent.headers.multi_items() == expected.multi_items()
    assert sent.extensions == logical.extensions
    assert sent.extensions is not logical.extensions


def test_httpx_transport_sends_credentials_as_a_header_never_in_the_url() -> None:
    """Userinfo of a node URL becomes Basic Authorization; the URL sent has none."""
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200)

    nodes = {"n": "http://app:s3cr%40t@10.0.0.7:8080/api"}
    with httpx.Client(
        transport=ShardedTransport(nodes, transport=httpx.MockTransport(answer))
    ) as c:
        c.get("http://users/a%2Fb c?x=%20#frag", extensions={"shard_key": "k"})
    (request,) = seen
    assert str(request.url) == "http://10.0.0.7:8080/api/a%2Fb%20c?x=%20#frag"
    assert request.url.raw_path == b"/api/a%2Fb%20c?x=%20"
    assert request.url.userinfo == b""
    assert request.headers["Host"] == "10.0.0.7:8080"
    assert request.headers["Authorization"] == "Basic " + base64.b64encode(b"app:s3cr@t").decode()


class Recording(requests.adapters.BaseAdapter):
    """An adapter that records the prepared requests it is given and answers 200."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[requests.PreparedRequest] = []

    def send(
        self, request: requests.PreparedRequest, *args: object, **kwargs: object
    ) -> requests.Response:  # type: ignore[override]
        self.sent.append(request)
        response = requests.Response()
        response.status_code = 200
        response._content = b""
        return response

    def close(self) -> None:
        """Nothing to close."""


@pytest.mark.parametrize("base", NODE_BASES)
def test_requests_node_request_keeps_method_headers_and_body(base: str) -> None:
    """The requests adapter's node request: URL rewritten, routing headers gone, credentials
    added, method, other headers and body as the logical request had them."""
    recording = Recording()
    session = requests.Session()
    session.mount("http://users/", ShardedAdapter({"n": base}, adapter=recording))
    logical = "http://users/a%2Fb%20c/%C3%A9?x=%20&y#frag"
    session.put(logical, data=b"body", headers={"X-Shard-Key": "k", "X-Other": "1"})
    (sent,) = recording.sent
    node = parse_node_url("n", base)
    assert sent.url == split_rewrite(node, logical)
    assert sent.method == "PUT"
    assert sent.body == b"body"
    assert "X-Shard-Key" not in sent.headers
    assert sent.headers["X-Other"] == "1"
    assert sent.headers.get("Authorization") == node.authorization
    assert "@" not in (urlsplit(sent.url).netloc)


def test_session_shard_key_travels_beside_the_request() -> None:
    """ShardedSession(shard_key=) routes by the key, ahead of an X-Shard-Key header, and
    puts no routing header on the request; a call without it reads the header."""
    recording = Recording()
    nodes = {f"n{i}": f"http://10.0.0.{i}:8080" for i in range(4)}
    with ShardedSession(nodes, host="users", adapter=recording) as session:
        owner = session.router.placement.get_node("user:42")
        other = next(
            k for k in map(str, range(100)) if session.router.placement.get_node(k) != owner
        )
        response = session.get(
            "http://users/a", shard_key="user:42", headers={"X-Shard-Key": other}
        )
        assert response.shard_node == owner  # type: ignore[attr-defined]
        assert response.request.headers["X-Shard-Key"] == other
        plain = session.get("http://users/a", shard_key="user:42")
        assert "X-Shard-Key" not in plain.request.headers
        by_header = session.get("http://users/a", headers={"X-Shard-Key": other})
        assert by_header.shard_node == session.router.placement.get_node(other)  # type: ignore[attr-defined]
    assert [urlsplit(r.url).netloc for r in recording.sent] == [
        urlsplit(nodes[owner]).netloc,
        urlsplit(nodes[owner]).netloc,
        urlsplit(nodes[session.router.placement.get_node(other)]).netloc,
    ]
    assert all("X-Shard-Key" not in r.headers for r in recording.sent)
