"""Topologies published in a Redis key: compare-and-set publishing, validation on read, and
followers woken by the announcement, with polling as the backstop, across a restarted server."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import pytest
import redis
from hashring.adapters.redis import RedisTopologySource
from hashring.adapters.redis._topology_source import SOURCE_TIMEOUTS

from hashring import ConfigError, InvalidOptionError, Topology, TopologyConflictError
from hashring._topology.config import topology_from_bytes
from tests.redis_servers import RedisServer, RedisServerFactory
from tests.waiting import wait_until

pytestmark = pytest.mark.redis

THREE = """
[nodes.a]
url = "redis://:s3cret@127.0.0.1:7001/0"
[nodes.b]
url = "redis://127.0.0.1:7002/0"
[nodes.c]
url = "redis://127.0.0.1:7003/0"
"""
FOUR = THREE + '[nodes.d]\nurl = "redis://127.0.0.1:7004/0"\n'
TIMEOUT = 20.0


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def config_server(redis_server_factory: RedisServerFactory) -> RedisServer:
    return redis_server_factory(1)[0]


def test_publish_is_compare_and_set(config_server: RedisServer, tmp_path: Path) -> None:
    """The first publish expects none; a replacement must name the stored version; a stale
    expectation is a TopologyConflictError carrying both versions, and writes nothing."""
    source = RedisTopologySource(config_server.url)
    assert source.version() is None
    assert source.read() is None
    three = source.publish(write(tmp_path / "three.toml", THREE), expect=None)
    assert source.version() == three.version
    read = source.read()
    assert read is not None
    assert read.version == three.version
    assert read.nodes["a"].url == "redis://:s3cret@127.0.0.1:7001/0"
    four_file = write(tmp_path / "four.toml", FOUR)
    with pytest.raises(TopologyConflictError) as raised:
        source.publish(four_file, expect=None)
    assert raised.value.current == three.version
    assert raised.value.expected is None
    with pytest.raises(TopologyConflictError, match=f"holds version {three.version}"):
        source.publish(four_file, expect="0" * 16)
    assert source.version() == three.version
    four = source.publish(four_file, expect=three.version)
    assert source.version() == four.version != three.version
    assert "s3cret" not in repr(source)


def test_two_publishers_racing_one_wins(config_server: RedisServer, tmp_path: Path) -> None:
    """Eight threads each replace the same version: exactly one succeeds."""
    source = RedisTopologySource(config_server.url)
    base = source.publish(write(tmp_path / "base.toml", THREE), expect=None)
    outcomes: list[str] = []
    lock = threading.Lock()

    def publish(i: int) -> None:
        text = THREE.replace("7003", str(7100 + i))
        path = write(tmp_path / f"p{i}.toml", text)
        mine = RedisTopologySource(config_server.url)
        try:
            mine.publish(path, expect=base.version)
            result = "won"
        except TopologyConflictError:
            result = "lost"
        finally:
            mine.close()
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=publish, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT)
    assert sorted(outcomes) == ["lost"] * 7 + ["won"]


def test_migration_documents_travel_together(config_server: RedisServer, tmp_path: Path) -> None:
    """A topology naming a previous file is stored with that file's document; readers get
    the previous topology from Redis, not from their own disk."""
    write(tmp_path / "old.toml", THREE)
    path = write(tmp_path / "new.toml", '[migration]\nprevious = "old.toml"\n' + FOUR)
    source = RedisTopologySource(config_server.url, key="cfg:{app}")
    published = source.publish(path, expect=None)
    (tmp_path / "old.toml").unlink()  # readers elsewhere have no such file
    decoding = RedisTopologySource(config_server.client(decode_responses=True), key="cfg:{app}")
    for reader in (source, decoding):
        read = reader.read()
        assert read is not None
        assert read.previous is not None
        assert set(read.previous.nodes) == {"a", "b", "c"}
        assert read.version == published.version
        assert reader.version() == published.version


def test_bad_stored_content_is_a_config_error(config_server: RedisServer) -> None:
    """What is not a published topology (a string, a hash without toml, invalid TOML, a
    hand-written version, a missing previous) is a ConfigError naming the key."""
    client = config_server.client()
    source = RedisTopologySource(client, key="t")
    client.set("t", "x")
    with pytest.raises(ConfigError, match="not a hashring topology"):
        source.read()
    with pytest.raises(ConfigError, match="not a hashring topology"):
        source.version()
    client.delete("t")
    client.hset("t", "version", "abc")
    with pytest.raises(ConfigError, match="no toml field"):
        source.read()
    client.hset("t", "toml", "[nodes.a\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        source.read()
    client.hset("t", "toml", THREE)
    with pytest.raises(ConfigError, match="hash_key_env secret"):
        source.read()
    client.hset("t", "toml", '[migration]\nprevious = "old.toml"\n' + THREE)
    with pytest.raises(ConfigError, match="no previous document is stored"):
        source.read()


@pytest.mark.parametrize("key", ["", "\udcff", 3])
def test_bad_key_is_refused(config_server: RedisServer, key: object) -> None:
    """An empty key, one with a lone surrogate, or not a str: InvalidOptionError."""
    with pytest.raises(InvalidOptionError, match="key="):
        RedisTopologySource(config_server.url, key=key)  # type: ignore[arg-type]


def test_follower_wakes_on_the_announcement(config_server: RedisServer, tmp_path: Path) -> None:
    """With polling every hour, a publish still reaches the follower at once (pub/sub)."""
    source = RedisTopologySource(config_server.url)
    first = source.publish(write(tmp_path / "three.toml", THREE), expect=None)
    seen: list[Topology] = []
    follower = source.follow(seen.append, interval=3600)
    try:
        assert follower.version == first.version
        wait_until(lambda: config_server.client().pubsub_numsub(source.key)[0][1] == 1, "subscribe")
        second = source.publish(write(tmp_path / "four.toml", FOUR), expect=first.version)
        wait_until(lambda: follower.version == second.version, "the announced version")
        assert [t.version for t in seen] == [second.version]
    finally:
        follower.stop(TIMEOUT)
        source.close()


def test_follower_survives_a_restarted_server(
    config_server: RedisServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The config server killed: the running topology stays (logged once); restarted with a
    new topology published while the follower was cut off: polling finds it."""
    source = RedisTopologySource(config_server.url, socket_timeout=5, socket_connect_timeout=5)
    first = source.publish(write(tmp_path / "three.toml", THREE), expect=None)
    seen: list[Topology] = []
    with caplog.at_level(logging.WARNING, logger="hashring.topology"):
        follower = source.follow(seen.append, interval=0.05)
        try:
            config_server.kill()
            wait_until(lambda: "cannot be read" in caplog.text, "the warning")
            assert follower.version == first.version
            config_server.restart()  # no persistence: empty
            writer = RedisTopologySource(config_server.url)
            second = writer.publish(write(tmp_path / "four.toml", FOUR), expect=None)
            writer.close()
            wait_until(lambda: follower.version == second.version, "the new version")
        finally:
            follower.stop(TIMEOUT)
            source.close()
    assert [t.version for t in seen] == [second.version]
    assert caplog.text.count("cannot be read") == 1
    assert "s3cret" not in caplog.text


def test_follower_refuses_an_invalid_publication(
    config_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A document written around the tool (invalid) is logged and the running one kept."""
    client = config_server.client()
    source = RedisTopologySource(client)
    document = THREE.encode()
    version = topology_from_bytes(document, "x").version
    client.hset(source.key, mapping={"toml": document, "version": version})
    follower = source.follow(lambda topology: None, interval=0.05)
    try:
        with caplog.at_level(logging.WARNING, logger="hashring.topology"):
            client.hset(source.key, mapping={"toml": b"[nodes]\n", "version": "f" * 16})
            client.publish(source.key, "f" * 16)
            wait_until(lambda: "not valid" in caplog.text, "the warning")
        assert follower.version == version
    finally:
        follower.stop(TIMEOUT)
    with pytest.raises(redis.ResponseError):
        client.execute_command("NOT-A-COMMAND")  # the connection still serves: nothing broke


def test_follower_survives_a_hung_server(
    config_server: RedisServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The config server paused (SIGSTOP: connections accepted, nothing answers): a look
    fails after the socket timeout, is logged, the running topology stays, and stop() is
    not held up; resumed with a new topology published, the follower takes it. A source
    made from a URL gets socket timeouts by default."""
    assert (
        RedisTopologySource(config_server.url)._client.connection_pool.connection_kwargs[
            "socket_timeout"
        ]
        == SOURCE_TIMEOUTS["socket_timeout"]
    )
    source = RedisTopologySource(config_server.url, socket_timeout=0.3, socket_connect_timeout=0.3)
    first = source.publish(write(tmp_path / "three.toml", THREE), expect=None)
    follower = source.follow(lambda topology: None, interval=0.05)
    try:
        with caplog.at_level(logging.WARNING, logger="hashring.topology"):
            config_server.pause()
            try:
                wait_until(lambda: "cannot be read" in caplog.text, "the warning", TIMEOUT)
                assert follower.version == first.version
            finally:
                config_server.resume()
        writer = RedisTopologySource(config_server.url)
        second = writer.publish(write(tmp_path / "four.toml", FOUR), expect=first.version)
        writer.close()
        wait_until(lambda: follower.version == second.version, "the new version", TIMEOUT)
    finally:
        follower.stop(TIMEOUT)
        source.close()
