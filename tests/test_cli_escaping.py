"""Inputs that are fine but hostile to a terminal or an encoding: node names with control
characters, keys that are not UTF-8, a byte-order mark, a secret in the environment. Each
is printed escaped (text, CSV) or exactly (JSON), and no secret is ever printed. Run
in-process through ``hashring.cli.main``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_runs import Arg, CliRun, run_main


def hashring(*args: Arg) -> CliRun:
    """``hashring ARGS`` run in this process: asserts exit 0 and nothing on stderr."""
    result = run_main(*args)
    assert result.status == 0, result.stderr
    assert result.stderr == ""
    return result


def test_control_characters_in_node_names_are_escaped_in_text(tmp_path: Path) -> None:
    """Names with ESC or newline print escaped in tables and lines, exactly in JSON."""
    nasty = "a\x1b[2Jb"
    text = hashring("lookup", "k1", "k2", "--nodes", f"{nasty},c").stdout.decode()
    assert "\x1b" not in text
    assert "a\\x1b[2Jb" in text
    report = hashring(
        "report", "--nodes", f"{nasty},c", "--add", "d\ne", "--keys", "2000"
    ).stdout.decode()
    assert "\x1b" not in report
    assert "a\\x1b[2Jb" in report
    assert "d\\ne" in report  # in the node table and the movement matrix
    csv = hashring("report", "--nodes", f"{nasty},c", "--keys", "200", "--format", "csv")
    assert b"a\\x1b[2Jb" in csv.stdout
    assert b"\x1b" not in csv.stdout
    document = json.loads(
        hashring("report", "--nodes", f"{nasty},c", "--keys", "200", "--format", "json").stdout
    )
    assert nasty in document["matrix"]["from"]  # JSON keeps the exact name


def test_non_utf8_key_prints_as_its_byte(tmp_path: Path) -> None:
    """A key that is not UTF-8 in argv is looked up by its bytes and printed as \\xff."""
    text = hashring("lookup", b"k\xff", "--nodes", "3").stdout
    assert b"k\\xff" in text


def test_bom_prefixed_topology_is_read(tmp_path: Path) -> None:
    """A UTF-8 byte-order mark (as Windows editors write) is skipped."""
    path = tmp_path / "bom.toml"
    path.write_bytes(b"\xef\xbb\xbf[nodes.a]\n[nodes.b]\n")
    out = json.loads(
        hashring("report", "--from", str(path), "--keys", "100", "--format", "json").stdout
    )
    assert out["matrix"]["from"] == ["a", "b"]


def test_hash_key_env_is_used_and_never_printed(monkeypatch: pytest.MonkeyPatch) -> None:
    """--hash-key-env keys the placement; the secret appears in no output."""
    secret = "s3cret-s3cret-s3cret"
    monkeypatch.setenv("HASHRING_TEST_KEY", secret)
    plain = json.loads(hashring("lookup", *[f"k{i}" for i in range(40)], "--format", "json").stdout)
    keyed_run = hashring(
        "lookup",
        *[f"k{i}" for i in range(40)],
        "--format",
        "json",
        "--hash-key-env",
        "HASHRING_TEST_KEY",
    )
    keyed = json.loads(keyed_run.stdout)
    assert [row["owner"] for row in plain["keys"]] != [row["owner"] for row in keyed["keys"]]
    for args in (
        ["report", "--keys", "500", "--hash-key-env", "HASHRING_TEST_KEY"],
        ["report", "--keys", "500", "--hash-key-env", "HASHRING_TEST_KEY", "--format", "json"],
        ["compare", "--keys", "500", "--hash-key-env", "HASHRING_TEST_KEY", "--format", "json"],
    ):
        result = hashring(*args)
        assert secret.encode() not in result.stdout
        assert b"HASHRING_TEST_KEY" in result.stdout  # the variable is named, not its value
    assert secret.encode() not in keyed_run.stdout
