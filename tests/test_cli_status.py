"""``hashring status``: keys, memory and the client versions per node, from real servers;
an unreachable node is a row and exit 1, never a traceback or a password."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hashring import load_topology
from hashring._topology.clients import client_name, done_key, marker_key
from tests.cli_runs import run_checked
from tests.redis_servers import RedisServerFactory

pytestmark = pytest.mark.redis


def test_status_counts_keys_and_client_versions(
    redis_server_factory: RedisServerFactory, tmp_path: Path
) -> None:
    """Per node: DBSIZE, used memory, and hashring connections by version, marked as this
    file's, the previous topology's or another; the migration is named."""
    servers = redis_server_factory(3)
    tables = [f'[nodes.n{i}]\nurl = "{s.url}"\n' for i, s in enumerate(servers)]
    (tmp_path / "old.toml").write_text("".join(tables[:2]))
    new = tmp_path / "new.toml"
    new.write_text('[migration]\nprevious = "old.toml"\n' + "".join(tables))
    old_version = load_topology(tmp_path / "old.toml").version
    new_version = load_topology(new).version
    servers[0].client().mset({f"k{i}": i for i in range(25)})
    held = [
        servers[0].client(client_name=client_name(old_version)),
        servers[0].client(client_name=client_name(old_version)),
        servers[1].client(client_name=client_name(new_version)),
        servers[2].client(client_name=client_name("0" * 16)),
        servers[2].client(client_name="not-hashring"),
    ]
    for client in held:
        client.ping()
    result = run_checked("status", "--config", str(new), "--format", "json")
    assert result.status == 0, result.stderr
    report = json.loads(result.text)
    assert report["version"] == new_version
    marker = marker_key(new_version)
    assert report["migration"] == {
        "previous": old_version,
        "marker": marker,
        "marker_set_on": [],
        "done_on": [],
    }
    rows = {row["node"]: row for row in report["nodes"]}
    assert rows["n0"]["keys"] == 25
    assert rows["n0"]["used_memory"] > 0
    assert rows["n0"]["clients"] == {old_version: {"connections": 2, "is": "previous"}}
    assert rows["n1"]["clients"] == {new_version: {"connections": 1, "is": "this file"}}
    assert rows["n2"]["clients"] == {"0" * 16: {"connections": 1, "is": "other"}}
    text = run_checked("status", "--config", str(new))
    assert f"migrating from version {old_version}" in text.text
    assert f"{old_version} x2 (previous)" in text.text
    assert f"window marker {marker}: set on no node yet" in text.text
    servers[1].client().set(marker, "1")  # as hashring migrate --apply sets it
    again = json.loads(run_checked("status", "--config", str(new), "--format", "json").text)
    assert again["migration"]["marker_set_on"] == ["n1"]
    assert again["migration"]["done_on"] == []
    servers[1].client().set(done_key(marker), "1")  # as its pass over n1 ends
    done = run_checked("status", "--config", str(new))
    assert "keys moved away from every node of: n1 (done marker)" in done.text


def test_unreachable_node_is_a_row_and_exit_1(
    redis_server_factory: RedisServerFactory, tmp_path: Path
) -> None:
    """A node that does not answer: its row names the error (password redacted), the others
    are still shown, exit 1."""
    (server,) = redis_server_factory(1)
    path = tmp_path / "t.toml"
    path.write_text(
        f'[nodes.up]\nurl = "{server.url}"\n[nodes.down]\nurl = "redis://:pw@127.0.0.1:1/0"\n'
    )
    result = run_checked("status", "--config", str(path), "--format", "json")
    assert result.status == 1
    rows = {row["node"]: row for row in json.loads(result.text)["nodes"]}
    assert rows["up"]["error"] is None
    assert rows["up"]["keys"] == 0
    assert "ConnectionError" in rows["down"]["error"]
    assert rows["down"]["url"] == "redis://:***@127.0.0.1:1/0"
    assert "pw" not in result.text.replace("***", "")


def test_bad_files_are_usage_errors(tmp_path: Path) -> None:
    """A missing file or a node without a url: one line, exit 2."""
    missing = run_checked("status", "--config", str(tmp_path / "none.toml"))
    assert missing.status == 2
    path = tmp_path / "nourl.toml"
    path.write_text("[nodes.a]\nweight = 1\n")
    no_url = run_checked("status", "--config", str(path))
    assert no_url.status == 2
    assert "has no url" in no_url.stderr
    assert no_url.stderr.count("\n") == 1
