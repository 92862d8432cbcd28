"""HTTP adapters under faults and hostile input, against real node processes.

Hung nodes (timeouts), nodes that crash on a request (no replay after a send), redirects to
other hosts, credentials in node URLs, surrogate keys, hash_key and hash tags.
"""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests
from hashring.adapters.http import (
    DEFAULT_TIMEOUT,
    AsyncShardedTransport,
    HttpRouter,
    ShardedAdapter,
    ShardedSession,
    ShardedTransport,
    parse_node_url,
)
from http_servers import HttpServer, http_server_pool
from requests.adapters import HTTPAdapter

from hashring import InvalidOptionError, Placement, placement

URL = "http://users"
PASSWORD = "s3cr/t#P?w@rd"  # unencoded, it would break any URL parser
ENCODED = "s3cr%2Ft%23P%3Fw%40rd"
BASIC = "Basic " + base64.b64encode(f"app:{PASSWORD}".encode()).decode()
WAIT = 15.0  # generous bound on anything that should take well under a second


@pytest.fixture
def servers(http_servers: list[HttpServer]) -> dict[str, HttpServer]:
    """The three nodes n0, n1, n2 by name."""
    return {server.name: server for server in http_servers}


@pytest.fixture
def nodes(servers: dict[str, HttpServer]) -> dict[str, str]:
    """Node name -> base URL."""
    return {name: server.url for name, server in servers.items()}


@pytest.fixture
def other() -> Iterator[HttpServer]:
    """One more node, named "other", that is not a shard: a redirect's target."""
    with http_server_pool() as pool:
        pool.append(HttpServer.start("other"))
        yield pool[0]


@pytest.fixture
def hung_nodes(servers: dict[str, HttpServer]) -> Iterator[dict[str, str]]:
    """n0 and n2 answer; n1 accepts connections and reads requests but never answers."""
    with http_server_pool() as pool:
        pool.append(HttpServer.start("n1", hang=True))
        yield {"n0": servers["n0"].url, "n1": pool[0].url, "n2": servers["n2"].url}


def key_on(router: HttpRouter, node: str) -> str:
    """The first key k0, k1, ... whose owner is ``node``."""
    return next(
        k for k in (f"k{i}" for i in range(100_000)) if router.placement.get_node(k) == node
    )


def key_with(router: HttpRouter, *preference: str) -> str:
    """The first key whose preference list starts with ``preference``."""
    size = len(preference)
    keys = (f"k{i}" for i in range(100_000))
    return next(k for k in keys if tuple(router.placement.get_nodes(k)[:size]) == preference)


def with_password(nodes: dict[str, str]) -> dict[str, str]:
    """``nodes`` with user app and the (percent-encoded) PASSWORD in every URL."""
    return {name: url.replace("http://", f"http://app:{ENCODED}@") for name, url in nodes.items()}


def dead(servers: dict[str, HttpServer]) -> set[str]:
    """The nodes whose process has exited (each given WAIT seconds to finish dying)."""
    gone = set()
    for name, server in servers.items():
        if server.is_running():
            continue
        server.process.wait(timeout=WAIT)
        gone.add(name)
    return gone


def wait_dead(server: HttpServer) -> None:
    """Wait until ``server``'s process has exited (it crashes on a request)."""
    server.process.wait(timeout=WAIT)


def no_secret(*texts: object) -> None:
    """None of ``texts`` shows the password, encoded or not, or any long part of it."""
    for text in map(str, texts):
        for secret in (PASSWORD, ENCODED, "s3cr", "P?w@rd", "t%23P"):
            assert secret not in text, text


# ---------------------------------------------------------------------- credentials


def test_requests_sends_node_credentials_as_a_header_never_in_the_url(
    nodes: dict[str, str], servers: dict[str, HttpServer]
) -> None:
    """Node URL credentials travel as Basic auth; the URL sent, errors and reprs hold none."""
    with ShardedSession(with_password(nodes), host="users", health=False) as session:
        seen = session.get(f"{URL}/x", shard_key="a").json()
        assert seen["auth"] == BASIC
        assert seen["path"] == "/x"
        own = session.get(f"{URL}/x", shard_key="a", headers={"Authorization": "Bearer t"})
        assert own.json()["auth"] == "Bearer t"
        key = key_on(session.router, "n1")
        servers["n1"].kill()
        with pytest.raises(requests.ConnectionError) as caught:
            session.post(f"{URL}/x", shard_key=key)
        outgoing = caught.value.request
        assert outgoing is not None
        assert outgoing.url is not None
        assert outgoing.url.startswith(f"http://127.0.0.1:{servers['n1'].port}/")
        assert "@" not in outgoing.url
        no_secret(outgoing.url, caught.value, caught.value.__notes__, repr(session))
        no_secret(repr(session.sharded_adapter), session.router.node_urls, session.stats())
        assert "app:***@127.0.0.1" in repr(session)


def test_httpx_sends_node_credentials_as_a_header_never_in_the_url(
    nodes: dict[str, str], servers: dict[str, HttpServer]
) -> None:
    """The httpx transport sends node URL credentials as Basic auth (it used to drop them)."""
    transport = ShardedTransport(with_password(nodes), health=False)
    with httpx.Client(transport=transport, timeout=WAIT) as client:
        seen = client.get(f"{URL}/x", extensions={"shard_key": "a"}).json()
        assert seen["auth"] == BASIC
        own = client.get(f"{URL}/x", extensions={"shard_key": "a"}, headers={"Authorization": "X"})
        assert own.json()["auth"] == "X"
        key = key_on(transport.router, "n2")
        servers["n2"].kill()
        with pytest.raises(httpx.ConnectError) as caught:
            client.post(f"{URL}/x", extensions={"shard_key": key})
        assert caught.value.request.url.userinfo == b""
        no_secret(caught.value.request.url, caught.value, caught.value.__notes__, repr(transport))
        assert "app:***@127.0.0.1" in repr(transport)


@pytest.mark.parametrize("password", ["s3cr/3t", "s3cr#3t", "s3cr?3t", "s3:cr/3t"])
def test_unencoded_reserved_characters_are_refused_without_showing_them(password: str) -> None:
    """A password with a raw / # ? is refused (percent-encode it); the message hides it."""
    url = f"http://app:{password}@127.0.0.1:7001"
    for build in (
        lambda: ShardedSession({"n0": url}, host="users"),
        lambda: ShardedAdapter({"n0": url}),
        lambda: ShardedTransport({"n0": url}),
        lambda: AsyncShardedTransport({"n0": url}),
    ):
        with pytest.raises(InvalidOptionError) as caught:
            build()
        assert "percent-encode" in str(caught.value) or "malformed" in str(caught.value)
        assert password not in str(caught.value)
        assert "3t" not in str(caught.value)


def test_node_url_reprs_hide_passwords() -> None:
    """NodeURL and the routers show the user and ***, never the password."""
    node = parse_node_url("n0", f"http://app:{ENCODED}@127.0.0.1:7001/api/")
    assert repr(node) == "NodeURL('n0', 'http://app:***@127.0.0.1:7001/api')"
    assert node.netloc == "127.0.0.1:7001"
    assert node.authorization == BASIC
    router = HttpRouter({"n0": f"http://app:{ENCODED}@127.0.0.1:7001"})
    assert router.node_urls == {"n0": "http://app:***@127.0.0.1:7001"}
    with pytest.raises(InvalidOptionError, match="surrogate"):
        parse_node_url("n0", "http://app:pw\udcff@127.0.0.1:7001")


# ---------------------------------------------------------------------- surrogate keys

SURROGATE_SCRIPT = r"""
import asyncio, json, sys
import httpx, requests
from hashring import KeyEncodingError
from hashring.adapters.http import (
    AsyncShardedTransport, ShardedAdapter, ShardedSession, ShardedTransport,
)

nodes = json.loads(sys.argv[1])
bad = "user:\udcff"
results = {}

def attempt(name, call):
    try:
        call()
        results[name] = "no error"
    except KeyEncodingError as exc:
        results[name] = "KeyEncodingError" if isinstance(exc, ValueError) else "not ValueError"
    except Exception as exc:
        results[name] = type(exc).__name__

with ShardedSession(nodes, host="users") as session:
    attempt("session shard_key", lambda: session.get("http://users/x", shard_key=bad))
    attempt("session header", lambda: session.get("http://users/x", headers={"X-Shard-Key": bad}))
    sent = sum(s["commands"] for s in session.stats().values())
    results["session bytes key"] = session.get("http://users/x", shard_key=b"\xff").status_code
with ShardedSession(nodes, host="users", key_func=lambda request: bad) as session:
    attempt("session key_func", lambda: session.get("http://users/x"))
    sent += sum(s["commands"] for s in session.stats().values())
with requests.Session() as plain:
    adapter = ShardedAdapter(nodes)
    plain.mount("http://users/", adapter)
    attempt("mounted header", lambda: plain.get("http://users/x", headers={"X-Shard-Key": bad}))
    sent += sum(s["commands"] for s in adapter.router.stats().values())
transport = ShardedTransport(nodes)
with httpx.Client(transport=transport) as client:
    attempt("httpx extension", lambda: client.get("http://users/x", extensions={"shard_key": bad}))
    sent += sum(s["commands"] for s in transport.stats().values())
transport = ShardedTransport(nodes, key_func=lambda request: bad)
with httpx.Client(transport=transport) as client:
    attempt("httpx key_func", lambda: client.get("http://users/x"))
    sent += sum(s["commands"] for s in transport.stats().values())

async def main():
    transport = AsyncShardedTransport(nodes)
    async with httpx.AsyncClient(transport=transport) as client:
        try:
            await client.get("http://users/x", extensions={"shard_key": bad})
            results["async extension"] = "no error"
        except KeyEncodingError:
            results["async extension"] = "KeyEncodingError"
    return sum(s["commands"] for s in transport.stats().values())

sent += asyncio.run(main())
results["requests sent"] = sent
print(json.dumps(results))
"""


def test_surrogate_keys_raise_key_encoding_error_in_both_adapters(nodes: dict[str, str]) -> None:
    """A lone-surrogate key raises KeyEncodingError everywhere, sends nothing, never crashes.

    Run in a subprocess: were a surrogate to reach mmh3 again, the segfault fails this test
    instead of killing the test run."""
    done = subprocess.run(
        [sys.executable, "-c", SURROGATE_SCRIPT, json.dumps(nodes)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).parent,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    results = json.loads(done.stdout)
    sent = results.pop("requests sent")
    assert results.pop("session bytes key") == 200
    assert results == dict.fromkeys(results, "KeyEncodingError")
    assert len(results) == 7
    assert sent == 0


# ---------------------------------------------------------------------- hung nodes


def test_requests_has_a_default_timeout_overridable_per_session_and_call(
    nodes: dict[str, str],
) -> None:
    """Without a timeout from the call, the adapter's (DEFAULT_TIMEOUT unless set) applies."""
    seen: list[Any] = []

    class Recording(HTTPAdapter):
        def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
            seen.append(kwargs["timeout"])
            return super().send(request, **kwargs)

    assert DEFAULT_TIMEOUT == (5.0, 30.0)
    with ShardedSession(nodes, host="users", adapter=Recording()) as session:
        session.get(f"{URL}/x", shard_key="a")
        session.get(f"{URL}/x", shard_key="a", timeout=7)
    with ShardedSession(nodes, host="users", adapter=Recording(), timeout=(1, 2)) as session:
        session.get(f"{URL}/x", shard_key="a")
    with ShardedSession(nodes, host="users", adapter=Recording(), timeout=None) as session:
        session.get(f"{URL}/x", shard_key="a")
    with requests.Session() as plain:
        plain.mount(f"{URL}/", ShardedAdapter(nodes, adapter=Recording()))
        plain.get(f"{URL}/x")
    assert seen == [DEFAULT_TIMEOUT, 7, (1, 2), None, DEFAULT_TIMEOUT]
    for bad in (0, -1, "5", (1, 2, 3), (None, 1), float("nan"), True):
        with pytest.raises(InvalidOptionError, match="timeout"):
            ShardedSession(nodes, host="users", timeout=bad)


def test_requests_hung_node_times_out_then_is_ejected(hung_nodes: dict[str, str]) -> None:
    """A node that never answers costs a ReadTimeout per request until it is ejected."""
    with ShardedSession(hung_nodes, host="users", timeout=(WAIT, 0.3)) as session:
        key = key_on(session.router, "n1")
        fallback = session.router.placement.get_nodes(key)[1]
        for _ in range(2):
            started = time.monotonic()
            with pytest.raises(requests.ReadTimeout) as caught:
                session.get(f"{URL}/x", shard_key=key)
            assert time.monotonic() - started < WAIT
            assert "may have run there" in "\n".join(caught.value.__notes__)
        stats = session.stats()
        assert (stats["n1"]["errors"], stats["n1"]["ejected"]) == (2, True)
        assert stats[fallback]["commands"] == 0  # the timed-out GETs were not replayed
        assert session.get(f"{URL}/x", shard_key=key).json()["node"] == fallback


def test_requests_call_timeout_overrides_the_adapter_default(hung_nodes: dict[str, str]) -> None:
    """A call's own timeout ends the wait on a hung node (the default would wait 30 s)."""
    with ShardedSession(hung_nodes, host="users") as session:
        started = time.monotonic()
        with pytest.raises(requests.ReadTimeout):
            session.get(f"{URL}/x", shard_key=key_on(session.router, "n1"), timeout=(WAIT, 0.2))
        assert time.monotonic() - started < WAIT


def test_requests_retry_after_send_replays_idempotent_requests_only(
    hung_nodes: dict[str, str],
) -> None:
    """With retry_after_send, a timed-out GET moves on; a POST still raises."""
    with ShardedSession(
        hung_nodes, host="users", timeout=(WAIT, 0.3), retry_after_send=True, health=False
    ) as session:
        key = key_on(session.router, "n1")
        fallback = session.router.placement.get_nodes(key)[1]
        answered = session.get(f"{URL}/x", shard_key=key)
        assert answered.json()["node"] == fallback
        with pytest.raises(requests.ReadTimeout):
            session.post(f"{URL}/x", shard_key=key)
        assert session.stats()[fallback]["commands"] == 1


def test_httpx_hung_node_times_out_counts_and_is_not_replayed(hung_nodes: dict[str, str]) -> None:
    """httpx: the client's timeout ends the wait; it counts against the node, no replay."""
    transport = ShardedTransport(hung_nodes)
    with httpx.Client(transport=transport, timeout=httpx.Timeout(WAIT, read=0.3)) as client:
        key = key_on(transport.router, "n1")
        fallback = transport.router.placement.get_nodes(key)[1]
        for _ in range(2):
            with pytest.raises(httpx.ReadTimeout):
                client.get(f"{URL}/x", extensions={"shard_key": key})
        assert transport.stats()["n1"]["ejected"] is True
        assert transport.stats()[fallback]["commands"] == 0
        response = client.get(f"{URL}/x", extensions={"shard_key": key})
        assert response.extensions["hashring_node"] == fallback


# ---------------------------------------------------------------------- crashing requests


def test_requests_request_that_crashes_its_node_reaches_one_node_only(
    nodes: dict[str, str], servers: dict[str, HttpServer]
) -> None:
    """A GET that kills its node is not replayed: the other nodes survive it."""
    with ShardedSession(nodes, host="users", health=False) as session:
        key = key_on(session.router, "n0")
        with pytest.raises(requests.ConnectionError) as caught:
            session.get(f"{URL}/crash", shard_key=key)
        wait_dead(servers["n0"])
        assert dead(servers) == {"n0"}
        assert "retry_after_send" in "\n".join(caught.value.__notes__)
        assert {n: s["commands"] for n, s in session.stats().items()} == {"n0": 1, "n1": 0, "n2": 0}
        # Refused connections still fail over: nothing reached the dead node.
        fallback = session.router.placement.get_nodes(key)[1]
        assert session.get(f"{URL}/x", shard_key=key).json()["node"] == fallback


def test_requests_retry_after_send_is_opt_in(
    nodes: dict[str, str], servers: dict[str, HttpServer]
) -> None:
    """With retry_after_send a crashing GET is replayed (max_attempts nodes); a POST is not."""
    with ShardedSession(
        nodes, host="users", health=False, retry_after_send=True, max_attempts=2
    ) as session:
        with pytest.raises(requests.ConnectionError):
            session.post(f"{URL}/crash", shard_key=key_on(session.router, "n0"), data=b"x")
        wait_dead(servers["n0"])
        assert dead(servers) == {"n0"}
        with pytest.raises(requests.ConnectionError):
            session.get(f"{URL}/crash", shard_key=key_with(session.router, "n1", "n2"))
        wait_dead(servers["n1"])
        wait_dead(servers["n2"])
        assert dead(servers) == {"n0", "n1", "n2"}


def test_httpx_request_that_crashes_its_node_reaches_one_node_only(
    nodes: dict[str, str], servers: dict[str, HttpServer]
) -> None:
    """httpx: a GET that kills its node raises and is not replayed; opt in to replay it."""
    transport = ShardedTransport(nodes, health=False)
    with httpx.Client(transport=transport, timeout=WAIT) as client:
        key = key_on(transport.router, "n2")
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)) as caught:
            client.get(f"{URL}/crash", extensions={"shard_key": key})
        wait_dead(servers["n2"])
        assert dead(servers) == {"n2"}
        assert "retry_after_send" in "\n".join(caught.value.__notes__)
        assert {n: s["commands"] for n, s in transport.stats().items()} == {
            "n0": 0,
            "n1": 0,
            "n2": 1,
        }
    replaying = ShardedTransport(nodes, health=False, retry_after_send=True, max_attempts=2)
    with httpx.Client(transport=replaying, timeout=WAIT) as client:
        key = key_with(replaying.router, "n0", "n1")
        with pytest.raises(httpx.HTTPError):
            client.get(f"{URL}/crash", extensions={"shard_key": key})
        wait_dead(servers["n0"])
        wait_dead(servers["n1"])
        assert dead(servers) == {"n0", "n1", "n2"}


def test_async_httpx_request_that_crashes_its_node_reaches_one_node_only(
    nodes: dict[str, str], servers: dict[str, HttpServer]
) -> None:
    """AsyncShardedTransport: same rule as the sync one."""

    async def main() -> AsyncShardedTransport:
        transport = AsyncShardedTransport(nodes, health=False)
        async with httpx.AsyncClient(transport=transport, timeout=WAIT) as client:
            key = key_on(transport.router, "n1")
            with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
                await client.get(f"{URL}/crash", extensions={"shard_key": key})
        return transport

    transport = asyncio.run(main())
    wait_dead(servers["n1"])
    assert dead(servers) == {"n1"}
    assert {n: s["commands"] for n, s in transport.stats().items()} == {"n0": 0, "n1": 1, "n2": 0}


# ---------------------------------------------------------------------- redirects


@pytest.mark.parametrize("host", [None, "users"])
def test_httpx_redirect_to_another_host_goes_where_it_says(
    nodes: dict[str, str], other: HttpServer, host: str | None
) -> None:
    """follow_redirects: a Location on another host reaches that host; one on the logical
    host is routed again; node credentials never go to the other host."""
    transport = ShardedTransport(with_password(nodes), host=host)
    with httpx.Client(transport=transport, timeout=WAIT, follow_redirects=True) as client:
        target = f"{other.url}/landing"
        response = client.get(f"{URL}/redirect?to={target}", extensions={"shard_key": "k"})
        assert response.json()["node"] == "other"
        assert response.json()["path"] == "/landing"
        assert response.json()["auth"] is None
        assert str(response.url) == target
        assert "hashring_node" not in response.extensions
        assert len(response.history) == 1
        back = client.get(f"{URL}/redirect?to=/items/9", extensions={"shard_key": "k"})
        assert back.json()["node"] == transport.router.placement.get_node("k")
        assert back.json()["path"] == "/items/9"
        assert back.json()["auth"] == BASIC
        direct = client.get(target)
        assert direct.json()["node"] == ("other" if host else direct.json()["node"])
    assert sum(s["commands"] for s in transport.stats().values()) == 3 + (host is None)


def test_async_httpx_redirect_to_another_host_goes_where_it_says(
    nodes: dict[str, str], other: HttpServer
) -> None:
    """AsyncShardedTransport: a redirect off the logical host is not routed."""

    async def main() -> httpx.Response:
        transport = AsyncShardedTransport(nodes)
        async with httpx.AsyncClient(transport=transport, follow_redirects=True) as client:
            return await client.get(
                f"{URL}/redirect?to={other.url}/there", extensions={"shard_key": "k"}
            )

    response = asyncio.run(main())
    assert (response.json()["node"], response.json()["path"]) == ("other", "/there")


def test_httpx_host_option(nodes: dict[str, str], other: HttpServer) -> None:
    """With host=, requests to other hosts pass through unrouted; bad hosts are refused."""
    transport = ShardedTransport(nodes, host="Users")
    assert repr(transport).startswith("ShardedTransport(host='users', ")
    with httpx.Client(transport=transport, timeout=WAIT) as client:
        assert client.get(f"{other.url}/o").json()["node"] == "other"
        assert client.get(f"{URL}/o", extensions={"shard_key": "k"}).json()["node"] != "other"
    for bad in ("", "users/api", "http://users", "a@users", "users?x", 42):
        with pytest.raises(InvalidOptionError, match="logical host"):
            ShardedTransport(nodes, host=bad)  # type: ignore[arg-type]


def test_requests_redirect_to_another_host_goes_where_it_says(
    nodes: dict[str, str], other: HttpServer
) -> None:
    """ShardedSession: a redirect to another host leaves the adapter, routing headers and
    node credentials behind."""
    with ShardedSession(with_password(nodes), host="users") as session:
        response = session.get(f"{URL}/redirect?to={other.url}/landing", shard_key="k")
    seen = response.json()
    assert (seen["node"], seen["path"], seen["auth"]) == ("other", "/landing", None)
    assert "x-shard-key" not in seen["headers"]


# ---------------------------------------------------------------------- hash_key, hash tags


def test_hash_key_is_forwarded_to_the_placement(nodes: dict[str, str]) -> None:
    """A placement keyed with hash_key= routes both adapters; a short key is refused."""
    secret = b"0123456789abcdef"
    keyed = placement("ring", dict.fromkeys(nodes, 1), hash_key=secret)
    plain = placement("ring", dict.fromkeys(nodes, 1))
    keys = [f"user:{i}" for i in range(60)]
    assert [keyed.get_node(k) for k in keys] != [plain.get_node(k) for k in keys]

    def keyed_placement() -> Placement:
        return placement("ring", dict.fromkeys(nodes, 1), hash_key=secret, hash_tags=False)

    with ShardedSession(nodes, host="users", placement=keyed_placement()) as session:
        for key in keys[:12]:
            assert session.get(f"{URL}/x", shard_key=key).json()["node"] == keyed.get_node(key)
    transport = ShardedTransport(nodes, placement=keyed_placement())
    with httpx.Client(transport=transport, timeout=WAIT) as client:
        for key in keys[:12]:
            answered = client.get(f"{URL}/x", extensions={"shard_key": key}).json()["node"]
            assert answered == keyed.get_node(key)
    with pytest.raises(InvalidOptionError, match="hash_key"):
        placement("ring", dict.fromkeys(nodes, 1), hash_key=b"short")
    lacking = placement("ring", {"n0": 1, "n1": 1}, hash_key=secret)
    for build in (ShardedSession, ShardedAdapter, ShardedTransport, AsyncShardedTransport):
        with pytest.raises(InvalidOptionError, match="'n2'"):
            build(nodes, placement=lacking)  # the placement must hold every node
        with pytest.raises(TypeError, match="hash_key"):
            build(nodes, hash_key=secret)  # said once, in the placement


def test_hash_tags_are_off_by_default_for_http(nodes: dict[str, str]) -> None:
    """A client cannot pin its keys to one node with {tags} unless the placement has tags on."""
    keys = [f"session:{i}{{x}}" for i in range(40)]
    for adapter in (ShardedAdapter(nodes), ShardedTransport(nodes)):
        assert len({adapter.router.placement.get_node(k) for k in keys}) == 3
    for name in ("ring", "maglev", "rendezvous", "jump"):
        for adapter in (
            ShardedAdapter(nodes, placement=name),
            ShardedTransport(nodes, placement=name),
        ):
            assert len({adapter.router.placement.get_node(k) for k in keys}) == 3, name
    tagged = (
        ShardedAdapter(nodes, placement=placement("ring", dict.fromkeys(nodes, 1))),
        ShardedTransport(
            nodes, placement=placement("ring", dict.fromkeys(nodes, 1), hash_tags=True)
        ),
    )
    for adapter in tagged:
        assert len({adapter.router.placement.get_node(k) for k in keys}) == 1


# ---------------------------------------------------------------------- half-open probes


def test_a_request_claims_a_recovering_node_only_when_it_reaches_it(
    nodes: dict[str, str], servers: dict[str, HttpServer]
) -> None:
    """A POST that fails on its first node never held the probe of a half-open node later in
    its preference list: the next request for that node's keys probes it and restores it."""
    with ShardedSession(nodes, host="users", failure_limit=1, retry_timeout=1.0) as session:
        router = session.router
        servers["n1"].kill()
        session.get(f"{URL}/x", shard_key=key_on(router, "n1"))
        assert session.stats()["n1"]["ejected"] is True
        servers["n1"].restart()
        servers["n2"].kill()
        deadline = time.monotonic() + WAIT
        while session.stats()["n1"]["ejected"] and time.monotonic() < deadline:
            time.sleep(0.02)  # waiting for the ejection to end (half-open)
        with pytest.raises(requests.ConnectionError):
            session.post(f"{URL}/x", shard_key=key_with(router, "n2", "n1"))
        answered: list[str] = []

        def probe() -> None:  # another thread: a claim of the POST's thread would stop it
            answered.append(session.get(f"{URL}/x", shard_key=key_on(router, "n1")).json()["node"])

        thread = threading.Thread(target=probe)
        thread.start()
        thread.join(timeout=WAIT)
    assert answered == ["n1"]
    assert session.stats()["n1"]["ejected"] is False


def test_a_probe_claim_outlasts_the_longest_default_attempt() -> None:
    """A half-open probe stays the only one while a default-timeout attempt can still run."""
    from hashring.adapters.http._router import PROBE_GRACE

    router = HttpRouter({"a": "http://127.0.0.1:1"}, retry_timeout=7)
    assert router.health.probe_timeout == 7 + PROBE_GRACE
    assert sum(DEFAULT_TIMEOUT) <= PROBE_GRACE


class _BodyBroke(Exception):
    """Raised by a request body while it is being sent."""


def test_an_attempt_that_ends_without_an_outcome_gives_its_probe_back(
    nodes: dict[str, str], servers: dict[str, HttpServer]
) -> None:
    """A request that takes a half-open node's probe and then fails with an error that says
    nothing about the node (its own body raised while being sent) records nothing and gives
    the probe back at once: the next request, from another thread, probes and restores it."""
    transport = ShardedTransport(nodes, failure_limit=1, retry_timeout=0.5)
    router = transport.router
    key = key_on(router, "n1")
    with httpx.Client(transport=transport, timeout=WAIT) as client:
        servers["n1"].kill()
        with pytest.raises(httpx.ConnectError):
            client.post(f"{URL}/x", content=b"x", extensions={"shard_key": key})
        assert transport.stats()["n1"]["ejected"] is True
        servers["n1"].restart()
        deadline = time.monotonic() + WAIT
        while transport.stats()["n1"]["ejected"] and time.monotonic() < deadline:
            time.sleep(0.02)  # waiting for the ejection to end (half-open)

        def body() -> Iterator[bytes]:
            yield b"start"
            raise _BodyBroke

        with pytest.raises(_BodyBroke):
            client.post(f"{URL}/x", content=body(), extensions={"shard_key": key})
        assert transport.stats()["n1"]["probes"] == 1  # it held the probe
        answered: list[str] = []

        def probe() -> None:  # another thread: the first one's claim would stop it
            response = client.get(f"{URL}/x", extensions={"shard_key": key})
            answered.append(response.json()["node"])

        thread = threading.Thread(target=probe)
        thread.start()
        thread.join(timeout=WAIT)
    assert answered == ["n1"]
    assert transport.stats()["n1"]["ejected_until"] == 0.0
