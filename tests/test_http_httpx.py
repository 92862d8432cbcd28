"""ShardedTransport / AsyncShardedTransport against real HTTP node processes (n0, n1, n2)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from hashring.adapters.http import AsyncShardedTransport, ShardedTransport
from http_servers import HttpServer

from hashring import InvalidKeyError, InvalidOptionError, NodeExistsError, UnknownNodeError

VICTIM = "n1"
RETRY_TIMEOUT = 1.0

Factory = Callable[..., tuple[httpx.Client, ShardedTransport]]


@pytest.fixture
def servers(http_servers: list[HttpServer]) -> dict[str, HttpServer]:
    """Node name -> its fresh server (each test may kill one)."""
    return {server.name: server for server in http_servers}


@pytest.fixture
def sharded(servers: dict[str, HttpServer]) -> Iterator[Factory]:
    """Factory: (httpx.Client, ShardedTransport) over the three nodes; closed at teardown."""
    clients: list[httpx.Client] = []

    def make(**options: Any) -> tuple[httpx.Client, ShardedTransport]:
        nodes = options.pop("nodes", None) or {n: s.url for n, s in servers.items()}
        transport = ShardedTransport(nodes, **options)
        client = httpx.Client(transport=transport, timeout=5.0)
        clients.append(client)
        return client, transport

    yield make
    for client in clients:
        client.close()


def keys_on(transport: ShardedTransport, node: str, count: int = 5) -> list[str]:
    """The first ``count`` keys k0, k1, ... whose owner is ``node``."""
    found = [
        k for k in (f"k{i}" for i in range(2000)) if transport.router.placement.get_node(k) == node
    ]
    return found[:count]


def get(client: httpx.Client, key: str | bytes, path: str = "/users/x") -> httpx.Response:
    """GET http://users<path> with ``key`` as the shard key."""
    return client.get(f"http://users{path}", extensions={"shard_key": key})


def test_every_key_lands_on_its_placement_node(sharded: Factory) -> None:
    """Each keyed request is answered by placement.get_node(key), named in extensions."""
    client, transport = sharded()
    keys: list[str | bytes] = [*(f"user:{i}" for i in range(40)), b"bytes-key", "tag:{7}:x"]
    seen = set()
    for key in keys:
        response = get(client, key, f"/users/{key!r}")
        owner = transport.router.placement.get_node(key)
        assert response.status_code == 200
        assert response.json()["node"] == owner
        assert response.extensions["hashring_node"] == owner
        assert response.extensions["hashring_attempts"] == (owner,)
        seen.add(owner)
    assert seen == {"n0", "n1", "n2"}


def test_url_host_header_and_body_are_rewritten_for_the_node(
    sharded: Factory, servers: dict[str, HttpServer]
) -> None:
    """The node sees its own Host, the logical path and query, and headers and body intact."""
    client, transport = sharded()
    response = client.post(
        "http://users/users/42?full=1",
        json={"name": "ada"},
        headers={"X-Trace": "t-1"},
        extensions={"shard_key": "42"},
    )
    seen = response.json()
    node = transport.router.placement.get_node("42")
    assert seen["node"] == node
    assert seen["method"] == "POST"
    assert seen["path"] == "/users/42?full=1"
    assert seen["headers"]["host"] == f"127.0.0.1:{servers[node].port}"
    assert seen["headers"]["x-trace"] == "t-1"
    assert seen["headers"]["content-type"] == "application/json"
    assert seen["body"] == '{"name":"ada"}'


def test_node_base_path_is_prefixed(sharded: Factory, servers: dict[str, HttpServer]) -> None:
    """A node URL with /api sees /api/<request path>."""
    client, _ = sharded(nodes={n: s.url + "/api/" for n, s in servers.items()})
    for i in range(6):
        seen = get(client, f"k{i}", f"/users/{i}?a=b").json()
        assert seen["path"] == f"/api/users/{i}?a=b"


def test_key_func_derives_the_key_from_the_request(sharded: Factory) -> None:
    """key_func(request) gives the key when the request carries no shard_key."""
    client, transport = sharded(key_func=lambda r: r.url.path.split("/")[2])
    for i in range(12):
        response = client.get(f"http://users/users/id{i}/profile")
        assert response.json()["node"] == transport.router.placement.get_node(f"id{i}")
    explicit = client.get("http://users/users/id0", extensions={"shard_key": "other"})
    assert explicit.json()["node"] == transport.router.placement.get_node("other")


def test_keyless_requests_go_round_robin(sharded: Factory) -> None:
    """Requests without a key cycle through n0, n1, n2 exactly."""
    client, _ = sharded()
    answered = [client.get("http://users/list").json()["node"] for _ in range(30)]
    assert Counter(answered) == {"n0": 10, "n1": 10, "n2": 10}
    assert all(sorted(answered[i : i + 3]) == ["n0", "n1", "n2"] for i in range(0, 30, 3))


def test_idempotent_requests_fail_over_from_a_killed_node(
    sharded: Factory, servers: dict[str, HttpServer]
) -> None:
    """GET/PUT/DELETE (and a POST marked idempotent) for a dead node's keys go to the next."""
    client, transport = sharded(health=False)
    victim_keys = keys_on(transport, VICTIM, 3)
    assert get(client, victim_keys[0]).json()["node"] == VICTIM  # a pooled connection, too
    servers[VICTIM].kill()
    for key in victim_keys:
        second = transport.router.placement.get_nodes(key)[1]
        for method in ("GET", "PUT", "DELETE"):
            response = client.request(
                method, "http://users/u", content=b"v", extensions={"shard_key": key}
            )
            assert response.json()["node"] == second
            assert response.extensions["hashring_attempts"] == (VICTIM, second)
        marked = client.post(
            "http://users/u", content=b"body", extensions={"shard_key": key, "idempotent": True}
        )
        assert (marked.json()["node"], marked.json()["body"]) == (second, "body")
    assert transport.stats()[VICTIM]["errors"] == 4 * len(victim_keys)


def test_post_to_a_killed_node_raises_and_is_not_replayed(
    sharded: Factory, servers: dict[str, HttpServer]
) -> None:
    """A POST (or a PUT with a one-shot stream) for a dead node raises ConnectError, one try."""
    client, transport = sharded(health=False)
    key = keys_on(transport, VICTIM, 1)[0]
    servers[VICTIM].kill()
    with pytest.raises(httpx.ConnectError) as caught:
        client.post("http://users/orders", content=b"once", extensions={"shard_key": key})
    assert f"POST failed on {VICTIM!r} (ConnectError)" in "".join(caught.value.__notes__)
    assert "not idempotent" in "".join(caught.value.__notes__)
    with pytest.raises(httpx.ConnectError):
        client.put("http://users/blob", content=iter([b"a", b"b"]), extensions={"shard_key": key})
    # The transport made one attempt each, on the victim, and none on any other node.
    stats = transport.stats()
    assert (stats[VICTIM]["commands"], stats[VICTIM]["errors"]) == (2, 2)
    assert all(stats[node]["commands"] == 0 for node in ("n0", "n2"))


def test_idempotent_must_be_a_bool(sharded: Factory) -> None:
    """extensions['idempotent'] that is not a bool is refused before anything is sent."""
    client, transport = sharded()
    with pytest.raises(InvalidOptionError, match="idempotent"):
        client.post("http://users/x", extensions={"shard_key": "k", "idempotent": "false"})
    assert all(s["commands"] == 0 for s in transport.stats().values())


def test_dead_node_is_ejected_then_skipped(
    sharded: Factory, servers: dict[str, HttpServer]
) -> None:
    """After failure_limit failures the dead node is ejected and no longer attempted."""
    client, transport = sharded(failure_limit=2, retry_timeout=30.0)
    keys = keys_on(transport, VICTIM)
    servers[VICTIM].kill()
    for key in keys[:2]:
        assert get(client, key).extensions["hashring_attempts"][0] == VICTIM
    stats = transport.stats()[VICTIM]
    assert (stats["ejected"], stats["ejections"], stats["commands"]) == (True, 1, 2)
    for key in keys:
        second = transport.router.placement.get_nodes(key)[1]
        response = get(client, key)
        assert response.extensions["hashring_attempts"] == (second,)
        assert response.json()["node"] == second
    assert transport.stats()[VICTIM]["commands"] == 2


def test_ejected_node_recovers_after_retry_timeout(
    sharded: Factory, servers: dict[str, HttpServer]
) -> None:
    """A restarted node gets its keys back once retry_timeout has passed."""
    client, transport = sharded(failure_limit=1, retry_timeout=RETRY_TIMEOUT)
    key = keys_on(transport, VICTIM, 1)[0]
    servers[VICTIM].kill()
    assert get(client, key).json()["node"] != VICTIM
    assert transport.stats()[VICTIM]["ejected"] is True
    servers[VICTIM].restart()
    assert get(client, key).json()["node"] != VICTIM  # still ejected
    time.sleep(RETRY_TIMEOUT + 0.1)
    response = get(client, key)
    assert response.json()["node"] == VICTIM
    assert response.extensions["hashring_attempts"] == (VICTIM,)
    assert transport.stats()[VICTIM]["ejected"] is False


def test_retry_statuses_try_each_node_once_then_return_the_last(sharded: Factory) -> None:
    """With retry_statuses=(503,), a GET every node answers 503 tries the 3 nodes once."""
    client, transport = sharded(retry_statuses=(503,), health=False)
    preference = transport.router.placement.get_nodes("k")
    response = get(client, "k", "/status/503")
    assert response.status_code == 503
    assert response.extensions["hashring_attempts"] == tuple(preference)
    assert response.json()["node"] == preference[-1]
    assert {n: (s["commands"], s["errors"]) for n, s in transport.stats().items()} == {
        n: (1, 1) for n in preference
    }
    post = client.post("http://users/status/503", extensions={"shard_key": "k"})
    assert post.status_code == 503
    assert post.extensions["hashring_attempts"] == (preference[0],)
    other = get(client, "k", "/status/500")  # not a retry status: the node answered
    assert other.extensions["hashring_attempts"] == (preference[0],)


def test_max_attempts_bounds_the_failover(sharded: Factory) -> None:
    """max_attempts=2 stops a retried request after two nodes."""
    client, transport = sharded(retry_statuses=(503,), max_attempts=2, health=False)
    response = get(client, "k", "/status/503")
    assert response.extensions["hashring_attempts"] == tuple(
        transport.router.placement.get_nodes("k")[:2]
    )


def test_bad_urls_and_keys_raise_clear_errors(sharded: Factory) -> None:
    """Unknown scheme, malformed or host-less URL and non-str keys fail before sending."""
    client, transport = sharded(key_func=lambda r: r.headers.get("x-id") and 7)
    with pytest.raises(httpx.UnsupportedProtocol, match="unsupported scheme"):
        client.get("ftp://x/file", extensions={"shard_key": "k"})
    with pytest.raises(httpx.InvalidURL):
        client.get("http://[::1/x")
    with pytest.raises(httpx.UnsupportedProtocol, match="names no logical host"):
        transport.handle_request(httpx.Request("GET", "/users/1"))
    with pytest.raises(InvalidKeyError, match="int"):
        client.get("http://users/1", extensions={"shard_key": 42})
    with pytest.raises(InvalidKeyError, match="int"):
        client.get("http://users/1", headers={"X-Id": "1"})  # key_func returned 7
    assert all(s["commands"] == 0 for s in transport.stats().values())


def test_bad_constructor_options_raise(servers: dict[str, HttpServer]) -> None:
    """Bad node URLs, a wrong delegate transport and bad options raise InvalidOptionError."""
    url = servers["n0"].url
    for nodes in ({"n0": "ftp://h"}, {"n0": "http://h:99999"}, {"n0": f"{url}?q=1"}):
        with pytest.raises(InvalidOptionError):
            ShardedTransport(nodes)
    with pytest.raises(InvalidOptionError, match="transport"):
        ShardedTransport({"n0": url}, transport=httpx.AsyncHTTPTransport())  # type: ignore[arg-type]
    with pytest.raises(InvalidOptionError, match="max_attempts"):
        ShardedTransport({"n0": url}, max_attempts=0)


def test_repr_redacts_passwords(servers: dict[str, HttpServer]) -> None:
    """repr names nodes and URLs with passwords replaced by ***."""
    with ShardedTransport({"n0": f"http://app:s3cret@127.0.0.1:{servers['n0'].port}"}) as t:
        assert "s3cret" not in repr(t)
        assert "app:***@127.0.0.1" in repr(t)
        assert repr(t).startswith("ShardedTransport(")


def test_add_and_remove_nodes_at_runtime(sharded: Factory, servers: dict[str, HttpServer]) -> None:
    """Keys follow the placement after add_node and remove_node."""
    client, transport = sharded(nodes={"n0": servers["n0"].url, "n1": servers["n1"].url})
    keys = [f"k{i}" for i in range(24)]
    transport.add_node("n2", servers["n2"].url)
    assert "n2" in transport.stats()
    answered = {key: get(client, key).json()["node"] for key in keys}
    assert answered == {key: transport.router.placement.get_node(key) for key in keys}
    assert "n2" in answered.values()
    transport.remove_node("n0")
    answered = {key: get(client, key).json()["node"] for key in keys}
    assert set(answered.values()) == {"n1", "n2"}
    assert answered == {key: transport.router.placement.get_node(key) for key in keys}
    with pytest.raises(NodeExistsError):
        transport.add_node("n1", servers["n1"].url)
    with pytest.raises(UnknownNodeError):
        transport.remove_node("n0")
    with pytest.raises(InvalidOptionError):
        transport.add_node("n9", "ftp://nowhere")


def test_async_transport_routes_concurrent_requests(servers: dict[str, HttpServer]) -> None:
    """300 keyed requests under asyncio.gather each land on their placement node."""

    async def main() -> tuple[list[tuple[str, httpx.Response]], AsyncShardedTransport]:
        transport = AsyncShardedTransport({n: s.url for n, s in servers.items()})
        async with httpx.AsyncClient(transport=transport, timeout=10.0) as client:

            async def one(key: str) -> tuple[str, httpx.Response]:
                url = f"http://users/users/{key}"
                return key, await client.get(url, extensions={"shard_key": key})

            results = await asyncio.gather(*(one(f"user:{i}") for i in range(300)))
        return results, transport

    results, transport = asyncio.run(main())
    owners: Counter[str] = Counter()
    for key, response in results:
        owner = transport.router.placement.get_node(key)
        assert response.json()["node"] == owner == response.extensions["hashring_node"]
        assert response.json()["path"] == f"/users/{key}"
        owners[owner] += 1
    assert set(owners) == {"n0", "n1", "n2"}


def test_async_transport_fails_over_and_refuses_to_replay_posts(
    servers: dict[str, HttpServer],
) -> None:
    """Async: GETs fail over from a killed node and past 503s; a POST raises ConnectError."""

    async def main() -> None:
        transport = AsyncShardedTransport(
            {n: s.url for n, s in servers.items()}, health=False, retry_statuses=(503,)
        )
        key = next(
            f"k{i}" for i in range(100) if transport.router.placement.get_node(f"k{i}") == VICTIM
        )
        servers[VICTIM].kill()
        async with httpx.AsyncClient(transport=transport) as client:
            response = await client.get("http://users/x", extensions={"shard_key": key})
            second = transport.router.placement.get_nodes(key)[1]
            assert response.extensions["hashring_attempts"] == (VICTIM, second)
            with pytest.raises(httpx.ConnectError):
                await client.post("http://users/x", content=b"1", extensions={"shard_key": key})
            failing = await client.get("http://users/status/503", extensions={"shard_key": key})
            assert failing.status_code == 503
            assert failing.extensions["hashring_attempts"] == tuple(
                transport.router.placement.get_nodes(key)
            )
        assert transport.stats()[VICTIM]["commands"] == 3

    asyncio.run(main())
