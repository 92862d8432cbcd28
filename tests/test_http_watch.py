"""HTTP adapters built from a topology that switch by themselves: a file replaced in place,
by rename or through a symlink, or a Redis key published anew, moves requests to the new
nodes; an invalid topology keeps the running routing; health survives for nodes whose URL
did not change; threads sending through 12 swaps never fail nor mix two topologies."""

from __future__ import annotations

import asyncio
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from inspect import signature
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests
from hashring.adapters.http import (
    AsyncShardedTransport,
    ShardedAdapter,
    ShardedSession,
    ShardedTransport,
)
from hashring.adapters.redis import DEFAULT_TOPOLOGY_KEY, RedisTopologySource
from http_servers import HttpServer

from hashring import ConfigError, InvalidOptionError, Placement, load_topology
from tests.redis_servers import RedisServerFactory
from tests.waiting import WAIT, wait_until

INTERVAL = 0.02  # seconds between the watcher's looks in these tests
KEYS = [f"user:{i}" for i in range(60)]

Adapter = ShardedTransport | AsyncShardedTransport | ShardedAdapter | ShardedSession


def text_of(nodes: Mapping[str, str]) -> str:
    """A topology file naming ``nodes`` (name -> URL)."""
    return "".join(f'[nodes.{name}]\nurl = "{url}"\n' for name, url in nodes.items())


def replace(path: Path, text: str) -> None:
    """Write a sibling file and rename it over ``path``, as deploy tools do."""
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


def swap_symlink(path: Path, text: str) -> None:
    """Point the symlink ``path`` at a new file, as Kubernetes updates a ConfigMap."""
    target = path.with_name(f"data-{time.monotonic_ns()}.toml")
    target.write_text(text, encoding="utf-8")
    link = path.with_name(path.name + ".link")
    link.symlink_to(target.name)
    os.replace(link, path)


def rewrite(path: Path, text: str) -> None:
    """Truncate and write ``path`` in place."""
    path.write_text(text, encoding="utf-8")


WRITERS: dict[str, Callable[[Path, str], None]] = {
    "in place": rewrite,
    "rename": replace,
    "symlink": swap_symlink,
}


def placement_of(path: Path, text: str) -> tuple[str, Placement]:
    """The version and placement of ``text`` (written next to ``path``)."""
    other = path.with_name("expected.toml")
    other.write_text(text, encoding="utf-8")
    topology = load_topology(other)
    return topology.version, topology.placement()


def follower_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith("hashring-topology")}


@pytest.fixture
def servers(http_servers: list[HttpServer]) -> dict[str, str]:
    """Server name (n0, n1, n2) -> its URL."""
    return {server.name: server.url for server in http_servers}


@pytest.fixture
def threads_before() -> Iterator[set[threading.Thread]]:
    """The follower threads alive before the test; none of the test's may be left after."""
    before = follower_threads()
    yield before
    assert follower_threads() <= before


def answered_by(client: httpx.Client, key: str) -> tuple[str, str]:
    """(node name, server name) that answered a GET of ``key``."""
    response = client.get(f"http://users/{key}", extensions={"shard_key": key})
    response.raise_for_status()
    return response.extensions["hashring_node"], response.json()["node"]


@pytest.mark.parametrize("write", WRITERS)
def test_an_httpx_transport_follows_the_file(
    write: str, servers: dict[str, str], tmp_path: Path, threads_before: set[threading.Thread]
) -> None:
    """Replaced in place, by rename or through a symlink: within a bounded wait every key is
    sent to its owner under the new file, on that node's server; version follows."""
    two, three = text_of({k: servers[k] for k in ("n0", "n1")}), text_of(servers)
    path = tmp_path / "topology.toml"
    if write == "symlink":
        swap_symlink(path, two)
    else:
        path.write_text(two, encoding="utf-8")
    old_version, old = placement_of(path, two)
    transport = ShardedTransport.from_config(path, watch=True, watch_interval=INTERVAL)
    with httpx.Client(transport=transport, timeout=WAIT) as client:
        assert transport.version == old_version
        assert [answered_by(client, k)[0] for k in KEYS] == old.get_node_many(KEYS)
        new_version, new = placement_of(path, three)
        WRITERS[write](path, three)
        wait_until(lambda: transport.version == new_version, "the transport to take the file")
        owners = new.get_node_many(KEYS)
        assert "n2" in owners
        assert [answered_by(client, k) for k in KEYS] == [(o, o) for o in owners]
        assert sorted(transport.router.node_urls) == ["n0", "n1", "n2"]


def test_a_session_and_an_adapter_follow_the_file(
    servers: dict[str, str], tmp_path: Path, threads_before: set[threading.Thread]
) -> None:
    """ShardedSession.from_config and a mounted ShardedAdapter.from_config switch to the new
    nodes; a node whose URL changes is sent to at its new URL; close() stops following."""
    path = tmp_path / "topology.toml"
    first = text_of({"a": servers["n0"], "b": servers["n1"]})
    path.write_text(first, encoding="utf-8")
    session = ShardedSession.from_config(path, host="users", watch=True, watch_interval=INTERVAL)
    plain = requests.Session()
    adapter = ShardedAdapter.from_config(path, watch=True, watch_interval=INTERVAL, timeout=WAIT)
    plain.mount("http://users/", adapter)
    try:
        second = text_of({"a": servers["n2"], "b": servers["n1"], "c": servers["n0"]})
        version, placement = placement_of(path, second)
        replace(path, second)
        wait_until(
            lambda: session.version == version and adapter.version == version,
            "the session and the adapter to take the file",
        )
        where = {"a": "n2", "b": "n1", "c": "n0"}
        for key in KEYS:
            owner = placement.get_node(key)
            by_session = session.get(f"http://users/{key}", shard_key=key)
            by_adapter = plain.get(f"http://users/{key}", headers={"X-Shard-Key": key})
            for response in (by_session, by_adapter):
                assert (response.shard_node, response.json()["node"]) == (owner, where[owner])
        assert session.router.version == version
    finally:
        session.close()
        plain.close()
    assert session.sharded_adapter._follower is None
    assert adapter._follower is None


def test_an_invalid_topology_keeps_the_running_routing(
    servers: dict[str, str], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A file that is not TOML, a node without url, and a node URL that is not http(s) are
    logged on hashring.topology (passwords redacted) and refused; requests keep their
    nodes; a valid file later is taken."""
    caplog.set_level(logging.WARNING, logger="hashring.topology")
    path = tmp_path / "topology.toml"
    two = text_of({k: servers[k] for k in ("n0", "n1")})
    path.write_text(two, encoding="utf-8")
    version, placement = placement_of(path, two)
    transport = ShardedTransport.from_config(path, watch=True, watch_interval=INTERVAL)
    with httpx.Client(transport=transport, timeout=WAIT) as client:
        replace(path, "[nodes.a\n")
        wait_until(lambda: "is not valid" in caplog.text, "the invalid file to be logged")
        replace(path, two + "[nodes.n2]\nweight = 2\n")
        wait_until(lambda: "url is required" in caplog.text, "the node without url to be logged")
        replace(path, two + '[nodes.cache]\nurl = "redis://app:s3cret@127.0.0.1:6390/0"\n')
        wait_until(lambda: "unsupported scheme" in caplog.text, "the redis URL to be logged")
        assert "s3cret" not in caplog.text
        assert transport.version == version
        owners = placement.get_node_many(KEYS)
        assert [answered_by(client, k) for k in KEYS] == [(o, o) for o in owners]
        three = text_of(servers)
        new_version, _ = placement_of(path, three)
        replace(path, three)
        wait_until(lambda: transport.version == new_version, "a valid file to be taken")
    transport.close()


def test_health_is_kept_for_nodes_whose_url_did_not_change(
    http_servers: list[HttpServer], tmp_path: Path
) -> None:
    """A node ejected before a switch stays ejected after it when its URL is the same (its
    keys keep going to the next node); once its URL changes, its counters start afresh."""
    servers = {s.name: s for s in http_servers}
    dead = servers["n2"]
    dead.kill()
    path = tmp_path / "topology.toml"
    first = {"n0": servers["n0"].url, "n2": dead.url}
    path.write_text(text_of(first), encoding="utf-8")
    transport = ShardedTransport.from_config(path, watch=True, watch_interval=INTERVAL)
    with httpx.Client(transport=transport, timeout=WAIT) as client:
        key = next(k for k in KEYS if transport.router.placement.get_node(k) == "n2")
        for _ in range(2):  # failure_limit=2 connection failures eject n2
            assert answered_by(client, key) == ("n0", "n0")
        assert transport.stats()["n2"]["ejected"] is True
        second = {**first, "n1": servers["n1"].url}
        version, placement = placement_of(path, text_of(second))
        replace(path, text_of(second))
        wait_until(lambda: transport.version == version, "the transport to take n1")
        assert transport.stats()["n2"]["ejected"] is True
        moved = next(k for k in KEYS if placement.get_node(k) == "n2")
        errors_before = transport.stats()["n2"]["errors"]
        assert answered_by(client, moved)[0] != "n2"  # skipped, not tried again
        assert transport.stats()["n2"]["errors"] == errors_before
        dead.restart()
        third = {**second, "n2": f"{dead.url}/v2"}  # a new URL (a base path), same server
        version, placement = placement_of(path, text_of(third))
        replace(path, text_of(third))
        wait_until(lambda: transport.version == version, "the transport to take n2's new URL")
        assert transport.stats()["n2"] == {**transport.stats()["n2"], "errors": 0, "ejected": False}
        assert answered_by(client, moved) == ("n2", "n2")
    transport.close()


@pytest.mark.redis
def test_a_redis_key_source_switches_routing(
    redis_server_factory: RedisServerFactory,
    servers: dict[str, str],
    tmp_path: Path,
    threads_before: set[threading.Thread],
) -> None:
    """from_source: publishing a new topology at the key (compare-and-set on the version)
    moves a transport's and a session's requests to the new nodes; close() stops both."""
    config = redis_server_factory(1)[0]
    source = RedisTopologySource(config.url, key="web:topology")
    path = tmp_path / "two.toml"
    path.write_text(text_of({k: servers[k] for k in ("n0", "n1")}), encoding="utf-8")
    old = source.publish(path, expect=None)
    transport = ShardedTransport.from_source(
        config.url, key="web:topology", watch_interval=0.05, host="users"
    )
    session = ShardedSession.from_source(
        config.url, host="users", key="web:topology", watch_interval=0.05
    )
    try:
        assert transport.version == session.version == old.version
        three = tmp_path / "three.toml"
        three.write_text(text_of(servers), encoding="utf-8")
        new = source.publish(three, expect=old.version)
        wait_until(
            lambda: transport.version == session.version == new.version,
            "both to take the published topology",
        )
        placement = new.placement()
        with httpx.Client(transport=transport, timeout=WAIT) as client:
            for key in KEYS:
                owner = placement.get_node(key)
                assert answered_by(client, key) == (owner, owner)
                assert session.get(f"http://users/{key}", shard_key=key).shard_node == owner
        assert transport._source is None  # closing the httpx client closed its transport
    finally:
        transport.close()
        session.close()
        source.close()
    assert session.sharded_adapter._source is None


def test_async_transport_follows_the_file(
    servers: dict[str, str], tmp_path: Path, threads_before: set[threading.Thread]
) -> None:
    """AsyncShardedTransport.from_config(watch=True): the watcher thread swaps the router
    under a running event loop; requests go to the new nodes; aclose() stops the thread."""
    path = tmp_path / "topology.toml"
    path.write_text(text_of({"n0": servers["n0"]}), encoding="utf-8")
    version, placement = placement_of(path, text_of(servers))

    async def scenario() -> list[tuple[str, str]]:
        transport = AsyncShardedTransport.from_config(path, watch=True, watch_interval=INTERVAL)
        async with httpx.AsyncClient(transport=transport, timeout=WAIT) as client:
            first = await client.get("http://users/x", extensions={"shard_key": "x"})
            assert first.json()["node"] == "n0"
            replace(path, text_of(servers))
            deadline = time.monotonic() + WAIT
            while transport.version != version:
                assert time.monotonic() < deadline, "timed out waiting for the switch"
                await asyncio.sleep(0.005)
            answers = await asyncio.gather(
                *(client.get(f"http://users/{k}", extensions={"shard_key": k}) for k in KEYS)
            )
        assert transport._follower is None
        return [(a.extensions["hashring_node"], a.json()["node"]) for a in answers]

    answers = asyncio.run(scenario())
    assert answers == [(owner, owner) for owner in placement.get_node_many(KEYS)]


def test_requests_under_way_never_fail_nor_mix_two_topologies(
    servers: dict[str, str], tmp_path: Path, threads_before: set[threading.Thread]
) -> None:
    """Six threads (httpx and requests, keyed and keyless) send
    through 12 swaps between two topologies that map the same node names to different
    servers: no request fails, and each answer's (node, server, owner) is one topology's,
    never the node of one with the server of the other."""
    first = {"a": servers["n0"], "b": servers["n1"], "c": servers["n2"]}
    second = {"a": servers["n2"], "b": servers["n0"]}
    texts = [text_of(first), text_of(second)]
    path = tmp_path / "topology.toml"
    expected: dict[str, tuple[dict[str, str], Placement]] = {}
    for nodes, text in zip((first, second), texts, strict=True):
        version, placement = placement_of(path, text)
        expected[version] = ({n: u.rsplit(":", 1)[1] for n, u in nodes.items()}, placement)
    server_of_port = {url.rsplit(":", 1)[1]: name for name, url in servers.items()}
    path.write_text(texts[0], encoding="utf-8")
    options: dict[str, Any] = {"watch": True, "watch_interval": INTERVAL}
    transport = ShardedTransport.from_config(path, **options)
    adapter = ShardedAdapter.from_config(path, timeout=WAIT, **options)
    client = httpx.Client(transport=transport, timeout=WAIT)
    stop = threading.Event()
    errors: list[BaseException] = []
    seen: list[tuple[str | None, str, str]] = []  # (key, node, server)
    lock = threading.Lock()

    def work(index: int) -> None:
        rng = random.Random(index)
        session = requests.Session()
        session.mount("http://users/", adapter)
        try:
            while not stop.is_set():
                key = rng.choice(KEYS) if index % 3 else None
                headers = {} if key is None else {"X-Shard-Key": key}
                if index % 2:
                    answer = client.get(
                        "http://users/x", extensions={} if key is None else {"shard_key": key}
                    )
                    answer.raise_for_status()
                    node = answer.extensions["hashring_node"]
                else:
                    reply = session.get("http://users/x", headers=headers)
                    reply.raise_for_status()
                    answer, node = reply, reply.shard_node
                with lock:
                    seen.append((key, node, answer.json()["node"]))
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
        finally:
            session.close()

    workers = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for worker in workers:
        worker.start()
    try:
        for flip in range(12):
            text = texts[(flip + 1) % 2]
            replace(path, text)
            version, _ = placement_of(path, text)
            count = len(seen)
            wait_until(
                lambda v=version, c=count: (
                    (  # type: ignore[misc]
                        transport.version == adapter.version == v and len(seen) > c + 12
                    )
                    or bool(errors)
                ),
                "both adapters to switch, and requests to run on the new topology",
            )
            assert not errors, repr(errors[0])
    finally:
        stop.set()
        for worker in workers:
            worker.join(WAIT)
        client.close()
        adapter.close()
    assert not errors, repr(errors[0])
    assert not any(worker.is_alive() for worker in workers)
    mixed = []
    for key, node, server in seen:
        fits = [
            version
            for version, (ports, placement) in expected.items()
            if node in ports
            and server_of_port[ports[node]] == server
            and (key is None or placement.get_node(key) == node)
        ]
        if not fits:
            mixed.append((key, node, server))
    assert mixed == [], mixed[:5]
    assert {node for _, node, _ in seen} == {"a", "b", "c"}
    assert len(seen) > 12 * 12


def test_options_and_a_migration_section(servers: dict[str, str], tmp_path: Path) -> None:
    """from_config without watch has a version and no thread; placement= and unknown
    options are refused; a [migration] section routes by the new topology alone; the
    default key is the Redis adapter's."""
    old = tmp_path / "old.toml"
    old.write_text(text_of({"n0": servers["n0"]}), encoding="utf-8")
    path = tmp_path / "new.toml"
    path.write_text(
        text_of({"n1": servers["n1"], "n2": servers["n2"]})
        + '[migration]\nprevious = "old.toml"\n',
        encoding="utf-8",
    )
    topology = load_topology(path)
    before = follower_threads()
    transport = ShardedTransport.from_config(path, max_attempts=1)
    assert follower_threads() == before
    assert transport._follower is None
    assert transport.version == topology.version
    assert transport.router.max_attempts == 1
    with httpx.Client(transport=transport, timeout=WAIT) as client:
        answers = {answered_by(client, k)[1] for k in KEYS}
    assert answers == {"n1", "n2"}
    with pytest.raises(InvalidOptionError, match="placement"):
        ShardedTransport.from_config(path, placement="maglev")
    with pytest.raises(TypeError, match="timeout"):
        ShardedTransport.from_config(path, timeout=3)
    with pytest.raises(TypeError, match="transport"):
        ShardedAdapter.from_config(path, watch=True, transport=None)
    assert follower_threads() == before  # the refused one's follower was stopped
    with pytest.raises(ConfigError):
        ShardedSession.from_config(tmp_path / "missing.toml")
    with pytest.raises(InvalidOptionError, match="host"):
        ShardedSession.from_config(path, host="http://users/")
    assert ShardedTransport(servers).version is None
    for built in (ShardedTransport, AsyncShardedTransport, ShardedAdapter, ShardedSession):
        assert signature(built.from_source).parameters["key"].default == DEFAULT_TOPOLOGY_KEY


@pytest.mark.parametrize("client_kind", ["httpx", "requests"])
def test_a_request_runs_on_the_topology_it_started_with_failover_included(
    client_kind: str, http_servers: list[HttpServer], tmp_path: Path
) -> None:
    """The switch happens while a request is being routed (its key_func waits for it): the
    request still goes to its owner under the old topology, a dead node, and fails over to
    the old topology's next node at the old topology's URL; the next request uses the new."""
    servers = {s.name: s for s in http_servers}
    servers["n2"].kill()
    before = {"a": servers["n2"].url, "b": servers["n0"].url, "c": servers["n1"].url}
    after = {"a": servers["n0"].url, "b": servers["n1"].url}
    path = tmp_path / "topology.toml"
    path.write_text(text_of(before), encoding="utf-8")
    old = load_topology(path).placement()
    new_version, new = placement_of(path, text_of(after))
    key = next(k for k in KEYS if old.get_node(k) == "a")
    switched = threading.Event()
    following: list[Adapter] = []

    def key_func(request: object) -> str:
        if not switched.is_set():  # the first request: switch under it
            replace(path, text_of(after))
            wait_until(lambda: following[0].version == new_version, "the switch")
            switched.set()
        return key

    server_names = {s.url: s.name for s in http_servers}
    fallback = old.get_nodes(key, 2)[1]
    options: dict[str, Any] = {"watch": True, "watch_interval": INTERVAL, "key_func": key_func}
    if client_kind == "httpx":
        transport = ShardedTransport.from_config(path, **options)
        following.append(transport)
        with httpx.Client(transport=transport, timeout=WAIT) as client:
            first = client.get("http://users/x")
            second = client.get("http://users/x")
        got = [(r.extensions["hashring_node"], r.json()["node"]) for r in (first, second)]
        assert first.extensions["hashring_attempts"] == ("a", fallback)
    else:
        session = ShardedSession.from_config(path, host="users", **options)
        following.append(session)
        with session:
            replies = [session.get("http://users/x") for _ in range(2)]
        got = [(r.shard_node, r.json()["node"]) for r in replies]
    assert switched.is_set()
    assert got[0] == (fallback, server_names[before[fallback]])
    owner = new.get_node(key)
    assert got[1] == (owner, server_names[after[owner]])
