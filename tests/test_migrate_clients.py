"""``hashring migrate --apply`` moves no key while a hashring client of another topology
version is connected (CLIENT LIST names), unless --force; it goes on once they switch."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path

import pytest
import redis
from hashring.adapters.migrate import MigrationSession, live_clients
from hashring.adapters.redis import AsyncShardedRedis, ShardedRedis

from hashring import load_topology
from hashring._topology.clients import client_name, client_version, marker_key
from tests.redis_servers import RedisServerFactory
from tests.test_cli_migrate import AOF, Cluster, load, migrate

pytestmark = pytest.mark.redis

TIMEOUT = 30.0


@pytest.fixture
def cluster(redis_server_factory: RedisServerFactory, tmp_path: Path) -> Cluster:
    return Cluster(redis_server_factory(4, extra_args=AOF), tmp_path)


def named_client(cluster: Cluster, node: int, version: str) -> redis.Redis:
    """A connection to a node, named as a hashring client of ``version`` (held open)."""
    client = cluster.servers[node].client(client_name=client_name(version))
    client.ping()
    return client


def versions(cluster: Cluster) -> tuple[str, str]:
    return load_topology(cluster.old).version, load_topology(cluster.new).version


def test_a_straggler_stops_the_run_before_any_key_moves(cluster: Cluster) -> None:
    """A connection of the old version: exit 1 after the wait, naming its version, address
    and node; every key still where it was."""
    load(cluster, 2_000)
    old, new = versions(cluster)
    straggler = named_client(cluster, 1, old)
    address = straggler.client_info()["addr"]
    before = {name: client.dbsize() for name, client in cluster.clients.items()}
    result = migrate(*cluster.files, "--apply", "--wait-clients", "0.3", check=1)
    assert result.stderr.startswith("hashring: failed: nothing moved: after 0.3s, 1 hashring")
    assert f"version {old} at {address} on n1" in result.stderr
    assert new in result.stderr
    assert result.stderr.count("\n") == 1
    assert {name: client.dbsize() for name, client in cluster.clients.items()} == before


def test_the_run_goes_on_once_the_straggler_switches(cluster: Cluster) -> None:
    """The wait ends as soon as the last old-version connection is renamed to the new
    version (as a client taking the new topology does); connections that are not
    hashring clients never count."""
    load(cluster, 500)
    old, new = versions(cluster)
    straggler = named_client(cluster, 0, old)
    other = cluster.servers[2].client(client_name="worker-7")
    other.ping()
    seen = threading.Event()
    session = MigrationSession(load_topology(cluster.old), load_topology(cluster.new))
    try:
        switcher = threading.Thread(
            target=lambda: seen.wait(TIMEOUT) and straggler.client_setname(client_name(new))
        )
        switcher.start()
        left = session.wait_for_clients(new, timeout=TIMEOUT, on_wait=lambda c: seen.set())
        switcher.join(TIMEOUT)
    finally:
        session.close()
    assert seen.is_set()
    assert left == []
    listed = live_clients({f"n{i}": c for i, c in enumerate(cluster.clients.values())})
    assert {c.version for c in listed} == {new}


def test_force_moves_anyway_and_lists_the_stragglers(cluster: Cluster) -> None:
    """--force: the keys move, a warning lists the old-version connection, and the JSON
    report records the run as forced with that connection."""
    load(cluster, 1_000)
    old, new = versions(cluster)
    named_client(cluster, 2, old)
    named_client(cluster, 3, new)  # a client already on the new version is no straggler
    result = migrate(*cluster.files, "--apply", "--force", "--format", "json", check=0)
    assert "hashring: warning: --force: moving keys while 1 hashring client" in result.stderr
    report = json.loads(result.stdout)
    assert report["clients"]["forced"] is True
    assert report["clients"]["version"] == new
    assert [o["version"] for o in report["clients"]["others"]] == [old]
    assert report["misplaced"] == 0
    assert report["moved"] > 0


def test_no_stragglers_no_wait(cluster: Cluster) -> None:
    """Only new-version clients connected: the run starts at once and reports the wait."""
    load(cluster, 300)
    _, new = versions(cluster)
    named_client(cluster, 0, new)
    report = json.loads(migrate(*cluster.files, "--apply", "--format", "json").stdout)
    assert report["clients"]["others"] == []
    assert report["clients"]["waited_seconds"] < TIMEOUT
    dry = json.loads(migrate(*cluster.files, "--format", "json").stdout)
    assert dry["clients"] is None


@pytest.mark.parametrize("value", ["-1", "nan", "inf", "1e308", "x"])
def test_bad_wait_values_are_usage_errors(tmp_path: Path, value: str) -> None:
    """--wait-clients takes finite seconds from 0 to a day; anything else: exit 2, one line."""
    good = tmp_path / "a.toml"
    good.write_text('[nodes.a]\nurl = "redis://127.0.0.1:1/0"\n')
    result = migrate("--from", str(good), "--to", str(good), "--wait-clients", value, check=2)
    assert "--wait-clients" in result.stderr
    assert result.stderr.count("\n") == 1


def test_client_names_round_trip() -> None:
    """client_name and client_version agree; other names and bad versions are refused."""
    assert client_version(client_name("0123456789abcdef")) == "0123456789abcdef"
    assert client_version("hashring-client-XYZ") is None
    assert client_version("hashring-client-0123456789abcdef0") is None
    with pytest.raises(ValueError, match="not a topology version"):
        client_name("nope")


def test_clients_from_config_are_the_ones_waited_for(cluster: Cluster) -> None:
    """ShardedRedis.from_config names its connections after the file's version: one on the
    old file holds the run back; once closed, the run moves the keys. The async client too."""
    load(cluster, 500)
    old, new = versions(cluster)
    client = ShardedRedis.from_config(cluster.old, socket_timeout=5)
    try:
        assert client.dbsize() == 500  # a connection to every node of the old file
        names = {node.client_getname() for node in client.clients.values()}
        assert names == {client_name(old)}
        result = migrate(*cluster.files, "--apply", "--wait-clients", "0.2", check=1)
        assert f"run another topology version than {new}" in result.stderr
        assert result.stderr.count(f"version {old} at") == 3
    finally:
        client.close()
    done = json.loads(migrate(*cluster.files, "--apply", "--format", "json").stdout)
    assert done["moved"] > 0
    assert done["clients"]["others"] == []

    async def async_names() -> set[str]:
        async with AsyncShardedRedis.from_config(cluster.new) as client:
            return {await node.client_getname() for node in client.clients.values()}

    assert asyncio.run(async_names()) == {client_name(new)}
    named = ShardedRedis.from_config(cluster.new, client_name="mine")
    try:  # the caller's name wins
        assert {node.client_getname() for node in named.clients.values()} == {"mine"}
    finally:
        named.close()


def test_a_window_sets_its_marker_and_finishing_clears_it(cluster: Cluster) -> None:
    """Into a window: the marker is set on every old node before keys move, and neither
    planned, moved nor verified as a key; out of it: the marker is cleared, nothing moves."""
    load(cluster, 1_000)
    window = cluster.new.with_name("window.toml")
    window.write_text('[migration]\nprevious = "old.toml"\n' + cluster.new.read_text())
    marker = marker_key(load_topology(window).version)
    into = json.loads(
        migrate(
            "--from", str(cluster.old), "--to", str(window), "--apply", "--format", "json"
        ).stdout
    )
    assert into["window"] == {"marker": marker, "set_on": ["n0", "n1", "n2"], "cleared_on": []}
    assert into["moved"] > 0
    assert into["misplaced"] == 0
    assert [c.exists(marker) for c in cluster.clients.values()] == [1, 1, 1, 0]
    again = json.loads(
        migrate("--from", str(cluster.old), "--to", str(window), "--format", "json").stdout
    )
    assert again["to_move"] == 0  # the markers are no keys to move
    rerun = migrate("--from", str(cluster.old), "--to", str(window), "--apply").stdout
    assert "next: publish the final topology" in rerun  # the operator's last step
    assert f"--from {window} --to FINAL.toml --apply" in rerun
    text = migrate("--from", str(window), "--to", str(cluster.new), "--apply").stdout
    assert f"window: marker {marker} cleared on n0, n1, n2" in text
    assert not any(c.exists(marker) for c in cluster.clients.values())
    assert sum(c.dbsize() for c in cluster.clients.values()) == 1_000


def test_a_window_from_another_topology_is_refused(cluster: Cluster, tmp_path: Path) -> None:
    """--to names a previous topology that is not --from: exit 2 before anything connects."""
    other = tmp_path / "other.toml"
    other.write_text(cluster.old.read_text().replace("[nodes.n2]", "[nodes.n9]"))
    window = cluster.new.with_name("window.toml")
    window.write_text('[migration]\nprevious = "other.toml"\n' + cluster.new.read_text())
    result = migrate("--from", str(cluster.old), "--to", str(window), "--apply", check=2)
    assert "is a migration window from topology version" in result.stderr
    assert result.stderr.count("\n") == 1
