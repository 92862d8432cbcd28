"""``hashring topology``: versions of files, and push/show against a real redis-server:
compare-and-set refusals are one line with exit 1, passwords never shown."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hashring import load_topology
from tests.cli_runs import run_checked
from tests.redis_servers import RedisServer, RedisServerFactory

THREE = """
[nodes.a]
url = "redis://:s3cret@127.0.0.1:7001/0"
[nodes.b]
url = "redis://127.0.0.1:7002/0"
"""
FOUR = THREE + '[nodes.c]\nurl = "redis://127.0.0.1:7003/0"\n'


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_version_prints_each_files_version(tmp_path: Path) -> None:
    """`topology version` prints the version the library computes, and names a migration."""
    old = write(tmp_path / "old.toml", THREE)
    new = write(tmp_path / "new.toml", '[migration]\nprevious = "old.toml"\n' + FOUR)
    result = run_checked("topology", "version", str(old), str(new))
    assert result.status == 0, result.stderr
    lines = result.text.splitlines()
    assert lines[0] == f"{load_topology(old).version}  {old}"
    assert lines[1].startswith(f"{load_topology(new).version}  {new}")
    assert f"migrating from version {load_topology(old).version}" in lines[1]
    as_json = json.loads(run_checked("topology", "version", str(new), "--format", "json").text)
    (row,) = as_json["topologies"]
    assert row["previous"] == load_topology(old).version
    assert row["nodes"]["a"]["url"] == "redis://:***@127.0.0.1:7001/0"


@pytest.mark.parametrize(
    ("args", "status", "message"),
    [
        (["version", "missing.toml"], 2, "cannot read the topology file"),
        (["push", "three.toml", "--to", "http://x"], 2, "not a redis://"),
        (["push", "three.toml", "--to", "redis://h", "--expect", "XYZ"], 2, "not a topology"),
        (["push", "bad.toml", "--to", "redis://:pw@127.0.0.1:1"], 2, "weight"),
        (["show", "--from", "redis://:pw@127.0.0.1:1/0", "--key", ""], 2, "key="),
    ],
)
def test_usage_errors_are_one_line(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    status: int,
    message: str,
) -> None:
    """Bad files, URLs, versions and keys: one line, exit 2, before anything connects."""
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "three.toml", THREE)
    write(tmp_path / "bad.toml", "[nodes.a]\nweight = -1\n")
    result = run_checked("topology", *args)
    assert result.status == status, result.stderr
    assert message in result.stderr
    assert result.stderr.count("\n") == 1
    assert "pw" not in result.stderr


@pytest.mark.redis
def test_push_and_show_against_a_server(
    redis_server_factory: RedisServerFactory, tmp_path: Path
) -> None:
    """push publishes (first without --expect, then naming the version it replaces); a
    stale --expect fails with exit 1 naming the stored version; show prints it redacted."""
    server: RedisServer = redis_server_factory(1)[0]
    url = server.url.replace("redis://", "redis://default:@")  # a URL with userinfo
    three = write(tmp_path / "three.toml", THREE)
    four = write(tmp_path / "four.toml", FOUR)
    first = run_checked("topology", "push", str(three), "--to", url)
    assert first.status == 0, first.stderr
    version = load_topology(three).version
    assert f"published version {version}" in first.text
    again = run_checked("topology", "push", str(four), "--to", url)
    assert again.status == 1
    assert f"holds version {version}, not none as expected" in again.stderr
    assert again.stderr.count("\n") == 1
    replaced = run_checked(
        "topology", "push", str(four), "--to", url, "--expect", version, "--format", "json"
    )
    assert replaced.status == 0, replaced.stderr
    published = json.loads(replaced.text)["published"]
    assert published["version"] == load_topology(four).version
    assert published["replaced"] == version
    shown = run_checked("topology", "show", "--from", url)
    assert shown.status == 0, shown.stderr
    assert f"version {load_topology(four).version}" in shown.text
    assert "redis://:***@127.0.0.1:7001/0" in shown.text
    assert "s3cret" not in shown.text + replaced.text + first.text
    empty = run_checked("topology", "show", "--from", url, "--key", "elsewhere")
    assert empty.status == 1
    assert "no topology is published there" in empty.stderr


def test_unreachable_server_is_exit_1(tmp_path: Path) -> None:
    """A server that does not answer: one line, exit 1, password redacted."""
    three = write(tmp_path / "three.toml", THREE)
    result = run_checked("topology", "push", str(three), "--to", "redis://:pw@127.0.0.1:1/0")
    assert result.status == 1, result.stderr
    assert "ConnectionError" in result.stderr
    assert "pw" not in result.stderr
