"""ShardedAdapter / ShardedSession (requests) against three real HTTP node processes."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from hashring.adapters.http import HttpRouter, ShardedAdapter, ShardedSession
from hashring.adapters.http._requests import IDEMPOTENT_HEADER, SHARD_KEY_HEADER, served_by
from http_servers import HttpServer
from requests.adapters import HTTPAdapter

from hashring import EmptyRingError, InvalidKeyError, InvalidOptionError

URL = "http://users"


@pytest.fixture
def nodes(http_servers: list[HttpServer]) -> dict[str, str]:
    """Node name -> base URL of the three servers."""
    return {server.name: server.url for server in http_servers}


@pytest.fixture
def servers(http_servers: list[HttpServer]) -> dict[str, HttpServer]:
    """The three servers by name."""
    return {server.name: server for server in http_servers}


@pytest.fixture
def session(nodes: dict[str, str]) -> Iterator[ShardedSession]:
    """A ShardedSession for http://users/ over the three nodes."""
    with ShardedSession(nodes, host="users", retry_timeout=1.0) as sharded:
        yield sharded


def owned_by(router: HttpRouter, node: str, count: int = 1) -> list[str]:
    """The first ``count`` keys k0, k1, ... whose owner is ``node``."""
    keys = (f"k{i}" for i in range(100_000))
    return [key for key in keys if router.placement.get_node(key) == node][:count]


def commands(session: ShardedSession) -> dict[str, int | float | bool]:
    """Requests sent per node so far."""
    return {node: counters["commands"] for node, counters in session.stats().items()}


# ---------------------------------------------------------------------- routing


def test_keys_land_on_their_placement_node(session: ShardedSession) -> None:
    """Every keyed request is answered by the node the placement names, and says so."""
    seen = set()
    for i in range(30):
        key = f"user:{i}"
        response = session.get(f"{URL}/items/{i}", shard_key=key)
        owner = session.router.placement.get_node(key)
        assert response.status_code == 200
        assert response.json()["node"] == owner == response.shard_node == served_by(response)
        assert response.url == f"{URL}/items/{i}"
        seen.add(owner)
    assert seen == {"n0", "n1", "n2"}


def test_mounted_adapter_reads_and_strips_the_routing_headers(nodes: dict[str, str]) -> None:
    """A plain Session with the adapter mounted routes by X-Shard-Key, which nodes never see."""
    adapter = ShardedAdapter(nodes)
    with requests.Session() as plain:
        plain.mount(f"{URL}/", adapter)
        response = plain.get(f"{URL}/a", headers={SHARD_KEY_HEADER: "user:7", "X-Other": "1"})
    owner = adapter.router.placement.get_node("user:7")
    seen = response.json()
    assert seen["node"] == owner == served_by(response)
    assert SHARD_KEY_HEADER.lower() not in seen["headers"]
    assert seen["headers"]["x-other"] == "1"
    assert seen["headers"]["host"] == urlsplit(nodes[owner]).netloc
    assert response.request.url == f"{URL}/a"
    assert response.request.headers[SHARD_KEY_HEADER] == "user:7"


def test_base_path_and_query_are_rewritten(http_servers: list[HttpServer]) -> None:
    """A node URL's base path is prepended to the request path; the query is kept."""
    nodes = {server.name: f"{server.url}/api/v1/" for server in http_servers}
    with ShardedSession(nodes, host="users") as sharded:
        response = sharded.get(f"{URL}/items/42", params={"x": "1"}, shard_key="42")
    assert response.json()["path"] == "/api/v1/items/42?x=1"


def test_host_header_for_the_logical_host_is_replaced(session: ShardedSession) -> None:
    """Host naming the logical host becomes the node's own; any other Host is kept."""
    first = session.get(f"{URL}/h", shard_key="a", headers={"Host": "users"})
    node_netloc = urlsplit(session.router.node_urls[served_by(first) or ""]).netloc
    assert first.json()["headers"]["host"] == node_netloc
    second = session.get(f"{URL}/h", shard_key="a", headers={"Host": "vhost.example"})
    assert second.json()["headers"]["host"] == "vhost.example"


def test_key_func_and_explicit_key(nodes: dict[str, str]) -> None:
    """key_func keys requests without a header; an explicit key wins over it."""

    def last_segment(request: requests.PreparedRequest) -> str:
        return urlsplit(request.url or "").path.rsplit("/", 1)[-1]

    with ShardedSession(nodes, host="users", key_func=last_segment) as sharded:
        placement = sharded.router.placement
        for i in range(20):
            assert sharded.get(f"{URL}/u/{i}").json()["node"] == placement.get_node(str(i))
        explicit = sharded.get(f"{URL}/u/1", shard_key="other")
        assert explicit.json()["node"] == placement.get_node("other")


def test_keyless_requests_round_robin_exactly(session: ShardedSession) -> None:
    """Keyless requests rotate over the three nodes, each getting exactly a third."""
    served = [session.get(f"{URL}/any").json()["node"] for _ in range(30)]
    assert Counter(served) == {"n0": 10, "n1": 10, "n2": 10}
    assert all(len(set(served[i : i + 3])) == 3 for i in range(0, 30, 3))


# ---------------------------------------------------------------------- failover


def test_get_fails_over_to_the_next_node_of_the_preference_list(
    nodes: dict[str, str], servers: dict[str, HttpServer]
) -> None:
    """With a node killed, idempotent requests for its keys go to their next node."""
    with ShardedSession(nodes, host="users", failure_limit=100) as sharded:
        keys = owned_by(sharded.router, "n1", 5)
        servers["n1"].kill()
        for key in keys:
            fallback = sharded.router.placement.get_nodes(key)[1]
            for method in ("GET", "PUT", "DELETE"):
                response = sharded.request(method, f"{URL}/x", shard_key=key, data=b"v")
                assert response.json()["node"] == fallback == served_by(response)
                assert response.json()["method"] == method
        assert sharded.stats()["n1"]["errors"] == 15


def test_post_to_a_dead_node_raises_and_is_not_replayed(
    session: ShardedSession, servers: dict[str, HttpServer]
) -> None:
    """A POST whose node is down raises ConnectionError and is sent nowhere else."""
    (key,) = owned_by(session.router, "n2")
    servers["n2"].kill()
    with pytest.raises(requests.ConnectionError) as caught:
        session.post(f"{URL}/orders", json={"id": 1}, shard_key=key)
    assert "not idempotent" in "\n".join(caught.value.__notes__)
    assert commands(session) == {"n0": 0, "n1": 0, "n2": 1}
    marked = session.post(f"{URL}/orders", json={"id": 1}, shard_key=key, idempotent=True)
    assert marked.json()["node"] == session.router.placement.get_nodes(key)[1]
    assert IDEMPOTENT_HEADER.lower() not in marked.json()["headers"]


def test_one_shot_body_is_not_replayed(
    session: ShardedSession, servers: dict[str, HttpServer]
) -> None:
    """A PUT whose body is a generator is not replayed: its body cannot be sent twice."""
    (key,) = owned_by(session.router, "n0")
    servers["n0"].kill()
    with pytest.raises(requests.ConnectionError) as caught:
        session.put(f"{URL}/blob", data=(chunk for chunk in [b"a", b"b"]), shard_key=key)
    assert "one-shot" in "\n".join(caught.value.__notes__)
    assert commands(session) == {"n0": 1, "n1": 0, "n2": 0}


def test_every_node_down_raises_the_last_connection_error(
    session: ShardedSession, http_servers: list[HttpServer]
) -> None:
    """When every node is down the last ConnectionError propagates after three attempts."""
    for server in http_servers:
        server.kill()
    with pytest.raises(requests.ConnectionError) as caught:
        session.get(f"{URL}/x", shard_key="k")
    assert commands(session) == {"n0": 1, "n1": 1, "n2": 1}
    order = ", ".join(
        f"{node!r} (ConnectionError)" for node in session.router.placement.get_nodes("k")
    )
    assert order in "\n".join(caught.value.__notes__)


def test_ejection_after_failure_limit_routes_straight_to_the_fallback(
    nodes: dict[str, str], servers: dict[str, HttpServer]
) -> None:
    """After failure_limit failures the node is ejected and no longer tried at all."""
    with ShardedSession(nodes, host="users", failure_limit=2, retry_timeout=30) as sharded:
        (key,) = owned_by(sharded.router, "n0")
        fallback = sharded.router.placement.get_nodes(key)[1]
        servers["n0"].kill()
        for _ in range(2):
            assert sharded.get(f"{URL}/x", shard_key=key).json()["node"] == fallback
        stats = sharded.stats()["n0"]
        assert (stats["errors"], stats["ejections"], stats["ejected"]) == (2, 1, True)
        for _ in range(5):
            assert sharded.get(f"{URL}/x", shard_key=key).json()["node"] == fallback
        assert sharded.stats()["n0"]["commands"] == 2


def test_recovery_after_retry_timeout_and_restart(
    session: ShardedSession, servers: dict[str, HttpServer]
) -> None:
    """An ejected node that came back serves its keys again once retry_timeout has passed."""
    (key,) = owned_by(session.router, "n1")
    servers["n1"].kill()
    for _ in range(2):
        session.get(f"{URL}/x", shard_key=key)
    ejected_at = time.monotonic()
    assert session.stats()["n1"]["ejected"]
    servers["n1"].restart()
    assert session.get(f"{URL}/x", shard_key=key).json()["node"] != "n1"  # still ejected
    time.sleep(max(0.0, 1.05 - (time.monotonic() - ejected_at)))
    assert session.get(f"{URL}/x", shard_key=key).json()["node"] == "n1"
    assert session.stats()["n1"]["ejected"] is False


def test_retry_statuses(http_servers: list[HttpServer]) -> None:
    """A 503 from the owner is retried on the next node for GET, returned as is for POST."""
    # n0's base path /status turns GET /503 into /status/503 there only: n0 answers 503.
    nodes = {s.name: s.url + ("/status" if s.name == "n0" else "") for s in http_servers}
    with ShardedSession(nodes, host="users", retry_statuses=(503,), health=False) as sharded:
        (key,) = owned_by(sharded.router, "n0")
        fallback = sharded.router.placement.get_nodes(key)[1]
        response = sharded.get(f"{URL}/503", shard_key=key)
        assert (response.status_code, served_by(response)) == (200, fallback)
        assert sharded.stats()["n0"]["errors"] == 1
        posted = sharded.post(f"{URL}/503", shard_key=key)
        assert (posted.status_code, served_by(posted)) == (503, "n0")
        everywhere = sharded.get(f"{URL}/status/503", shard_key=key)
        assert everywhere.status_code == 503
        assert served_by(everywhere) == sharded.router.placement.get_nodes(key)[2]
    with ShardedSession(nodes, host="users") as plain:
        assert plain.get(f"{URL}/503", shard_key=key).status_code == 503


def test_read_timeout_counts_but_is_not_retried(session: ShardedSession) -> None:
    """A read timeout is raised at once, counted against its node only."""
    with pytest.raises(requests.ReadTimeout):
        session.get(f"{URL}/slow/500", shard_key="k", timeout=(2.0, 0.1))
    owner = session.router.placement.get_node("k")
    assert {n: s["errors"] for n, s in session.stats().items()} == {
        n: int(n == owner) for n in ("n0", "n1", "n2")
    }
    assert sum(commands(session).values()) == 1


# ---------------------------------------------------------------------- errors


def test_bad_nodes_and_options_are_refused(nodes: dict[str, str]) -> None:
    """Unknown schemes, malformed URLs, bad hosts and adapters raise InvalidOptionError."""
    with pytest.raises(InvalidOptionError, match="unsupported scheme"):
        ShardedAdapter({"n0": "ftp://127.0.0.1:21"})
    with pytest.raises(InvalidOptionError, match="malformed URL"):
        ShardedAdapter({"n0": "http://127.0.0.1:notaport"})
    with pytest.raises(InvalidOptionError, match="must be a base URL"):
        ShardedSession({"n0": "http://127.0.0.1:1/?q=1"}, host="users")
    for host in ("", "users/api", "http://users", "a@users", 42):
        with pytest.raises(InvalidOptionError, match="logical host"):
            ShardedSession(nodes, host=host)
    with pytest.raises(InvalidOptionError, match="BaseAdapter"):
        ShardedAdapter(nodes, adapter="http")


def test_bad_keys_are_refused_before_sending(session: ShardedSession) -> None:
    """Keys that are not str/bytes, or cannot be headers, raise clear errors; nothing is sent."""
    with pytest.raises(InvalidKeyError, match="str or bytes"):
        session.get(f"{URL}/x", shard_key=42)
    with pytest.raises(TypeError):  # InvalidKeyError is a TypeError
        session.get(f"{URL}/x", shard_key=["a"])
    with pytest.raises(InvalidOptionError, match="CR/LF"):
        session.get(f"{URL}/x", shard_key="a\r\nb")
    with pytest.raises(InvalidOptionError, match="off the logical host"):
        session.get("http://127.0.0.1:9/x", shard_key="a")
    with pytest.raises(InvalidOptionError, match=IDEMPOTENT_HEADER):
        session.post(f"{URL}/x", headers={IDEMPOTENT_HEADER: "maybe"})
    assert sum(commands(session).values()) == 0
    assert session.get(f"{URL}/x", shard_key=b"user:1").json()["node"] == (
        session.router.placement.get_node(b"user:1")
    )


def test_key_func_returning_a_non_key_and_no_nodes_are_refused(nodes: dict[str, str]) -> None:
    """A key_func answering an int raises InvalidKeyError; no nodes at all EmptyRingError."""
    with ShardedSession(nodes, host="users", key_func=lambda request: 7) as sharded:
        with pytest.raises(InvalidKeyError):
            sharded.get(f"{URL}/x")
        for node in nodes:
            sharded.remove_node(node)
        with pytest.raises(EmptyRingError):
            sharded.get(f"{URL}/x", shard_key="a")


def test_routing_headers_never_leave_for_other_hosts(
    session: ShardedSession, nodes: dict[str, str]
) -> None:
    """Session-wide routing headers are dropped from requests to hosts that are not sharded."""
    session.headers[SHARD_KEY_HEADER] = "a"
    session.headers[IDEMPOTENT_HEADER] = "true"
    direct = session.get(f"{nodes['n1']}/direct").json()
    assert direct["node"] == "n1"
    assert SHARD_KEY_HEADER.lower() not in direct["headers"]
    assert IDEMPOTENT_HEADER.lower() not in direct["headers"]
    routed = session.get(f"{URL}/routed").json()
    assert routed["node"] == session.router.placement.get_node("a")


# ---------------------------------------------------------------------- concurrency, topology


def test_threads_route_every_keyed_request_correctly(session: ShardedSession) -> None:
    """8 threads x 50 keyed requests each: every answer comes from the key's owner."""

    def worker(thread: int) -> list[tuple[str, Any, str | None]]:
        out = []
        for i in range(50):
            key = f"t{thread}:{i}"
            response = session.get(f"{URL}/k/{i}", shard_key=key)
            out.append((key, response.json()["node"], served_by(response)))
        return out

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = [row for rows in pool.map(worker, range(8)) for row in rows]
    assert len(results) == 400
    for key, answered, annotated in results:
        assert answered == annotated == session.router.placement.get_node(key)
    assert sum(commands(session).values()) == 400


def test_runtime_add_and_remove_node(http_servers: list[HttpServer]) -> None:
    """Nodes added at runtime take their keys; removed ones receive nothing more."""
    first, second, third = http_servers
    with ShardedSession({"n0": first.url, "n1": second.url}, host="users") as sharded:
        keys = [f"key{i}" for i in range(30)]
        assert {sharded.get(f"{URL}/x", shard_key=k).json()["node"] for k in keys} == {"n0", "n1"}
        sharded.add_node("n2", third.url)
        answered = {k: sharded.get(f"{URL}/x", shard_key=k).json()["node"] for k in keys}
        assert answered == {k: sharded.router.placement.get_node(k) for k in keys}
        assert "n2" in answered.values()
        sharded.remove_node("n0")
        answered = {k: sharded.get(f"{URL}/x", shard_key=k).json()["node"] for k in keys}
        assert set(answered.values()) == {"n1", "n2"}
        assert set(sharded.stats()) == {"n1", "n2"}


def test_from_router_shares_one_router(nodes: dict[str, str]) -> None:
    """Two adapters built from one router share its placement and counters."""
    router = HttpRouter(nodes)
    with requests.Session() as one, requests.Session() as two:
        one.mount(f"{URL}/", ShardedAdapter.from_router(router))
        two.mount(f"{URL}/", ShardedAdapter.from_router(router))
        one.get(f"{URL}/x", headers={SHARD_KEY_HEADER: "a"})
        two.get(f"{URL}/x", headers={SHARD_KEY_HEADER: "a"})
    assert router.stats()[router.placement.get_node("a")]["commands"] == 2


def test_credentials_in_node_urls_are_redacted_and_sent(http_servers: list[HttpServer]) -> None:
    """A password in a node URL never shows in repr, and is sent as basic auth."""
    nodes = {s.name: s.url.replace("http://", "http://app:s3cret@") for s in http_servers}
    with ShardedSession(nodes, host="users") as sharded:
        assert "s3cret" not in repr(sharded)
        assert "s3cret" not in repr(sharded.sharded_adapter)
        assert "users" in repr(sharded)
        seen = sharded.get(f"{URL}/x", shard_key="a").json()
    assert seen["headers"]["authorization"] == "Basic YXBwOnMzY3JldA=="


def test_close_closes_the_delegate_adapter(nodes: dict[str, str]) -> None:
    """Closing the session closes the delegate HTTPAdapter's pools."""
    delegate = HTTPAdapter()
    sharded = ShardedSession(nodes, host="users", adapter=delegate)
    sharded.get(f"{URL}/x", shard_key="a")
    assert len(delegate.poolmanager.pools) == 1
    sharded.close()
    assert len(delegate.poolmanager.pools) == 0
