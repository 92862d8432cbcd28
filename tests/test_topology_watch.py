"""Topology versions, the ``[migration]`` table and TopologyWatcher: a file replaced in place,
by rename or by a symlink swap is picked up; an invalid or missing file keeps the running one."""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

import pytest

from hashring import ConfigError, InvalidOptionError, Topology, TopologyWatcher, load_topology
from tests.waiting import wait_until

THREE = """
[nodes.a]
url = "redis://127.0.0.1:7001/0"
[nodes.b]
url = "redis://127.0.0.1:7002/0"
[nodes.c]
url = "redis://127.0.0.1:7003/0"
"""
FOUR = THREE + '[nodes.d]\nurl = "redis://127.0.0.1:7004/0"\n'
TIMEOUT = 20.0  # generous: the watcher looks every 0.02 s in these tests


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def replace(path: Path, text: str) -> None:
    """Write a sibling file and rename it over ``path``, as deploy tools do."""
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


# ---------------------------------------------------------------------------------- versions


def test_version_ignores_layout_and_follows_content(tmp_path: Path) -> None:
    """Comments, table order and weight spelling leave the version alone; a weight, URL,
    option or node change gives a new one."""
    base = load_topology(write(tmp_path / "a.toml", THREE))
    reordered = "# a comment\n" + "".join(
        f'[nodes.{name}] # node {name}\nurl   =   "redis://127.0.0.1:700{port}/0"\n\n'
        for name, port in (("c", 3), ("a", 1), ("b", 2))
    )
    same = load_topology(write(tmp_path / "b.toml", reordered))
    assert list(same.nodes) == ["c", "a", "b"]
    assert same.version == base.version
    weighted = THREE.replace('7001/0"', '7001/0"\nweight = 1.0')
    assert load_topology(write(tmp_path / "w.toml", weighted)).version == base.version
    changes = [
        THREE.replace('7001/0"', '7001/0"\nweight = 2'),
        THREE.replace("7003", "7005"),
        THREE + '[placement]\nalgorithm = "maglev"\n',
        FOUR,
    ]
    versions = {
        load_topology(write(tmp_path / f"c{i}.toml", t)).version for i, t in enumerate(changes)
    }
    assert len(versions) == len(changes)
    assert base.version not in versions


def test_version_covers_the_hash_key_without_showing_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two secrets give two versions (clients keyed differently place keys differently);
    the secret appears nowhere in the version or the repr."""
    path = write(tmp_path / "k.toml", '[placement]\nhash_key_env = "HR_KEY"\n' + THREE)
    monkeypatch.setenv("HR_KEY", "s" * 32)
    first = load_topology(path)
    monkeypatch.setenv("HR_KEY", "t" * 32)
    second = load_topology(path)
    assert first.version != second.version
    assert "s" * 32 not in repr(first) + first.version


# ------------------------------------------------------------------------- the migration table


def test_migration_names_the_previous_topology_relative_to_the_file(tmp_path: Path) -> None:
    """``[migration] previous`` loads the old file from the new file's directory, and the
    previous topology enters the version."""
    (tmp_path / "conf").mkdir()
    write(tmp_path / "conf" / "old.toml", THREE)
    plain = load_topology(write(tmp_path / "conf" / "plain.toml", FOUR))
    new = load_topology(
        write(tmp_path / "conf" / "new.toml", '[migration]\nprevious = "old.toml"\n' + FOUR)
    )
    assert new.previous is not None
    assert set(new.previous.nodes) == {"a", "b", "c"}
    assert new.previous.previous is None
    assert new.version != plain.version


@pytest.mark.parametrize(
    ("migration", "message"),
    [
        ('[migration]\nprevious = "missing.toml"\n', "migration.previous"),
        ('[migration]\nprevious = "self.toml"\n', "is itself in a migration"),
        ('[migration]\nprevious = "chained.toml"\n', "is itself in a migration"),
        ('[migration]\nprevious = ""\n', "migration.previous is missing"),
        ("[migration]\nprevious = 3\n", "must be a str"),
        ('[migration]\nprevious = "old.toml"\nnext = "x"\n', "unknown key migration.next"),
        ('migration = "old.toml"\n', "[migration] must be a table"),
        ('[migration]\nprevious = "bad.toml"\n', "migration.previous"),
    ],
)
def test_a_bad_migration_table_is_a_config_error(
    tmp_path: Path, migration: str, message: str
) -> None:
    """A missing, chained, self-naming or invalid previous file is a ConfigError naming
    migration.previous; nothing recurses."""
    write(tmp_path / "old.toml", THREE)
    write(tmp_path / "bad.toml", "[nodes.a]\nweight = -1\n")
    write(tmp_path / "chained.toml", '[migration]\nprevious = "old.toml"\n' + THREE)
    path = write(tmp_path / "self.toml", migration + FOUR)
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_topology(path)


# ------------------------------------------------------------------------------ the watcher


class Seen:
    """What on_change received, from the watcher's thread."""

    def __init__(self, fail: bool = False) -> None:
        self.topologies: list[Topology] = []
        self.fail = fail
        self.lock = threading.Lock()

    def __call__(self, topology: Topology) -> None:
        if self.fail:
            raise RuntimeError("the client refused it")
        with self.lock:
            self.topologies.append(topology)

    def versions(self) -> list[str]:
        with self.lock:
            return [t.version for t in self.topologies]


@pytest.mark.parametrize("how", ["rename", "in place", "symlink swap"])
def test_watcher_follows_every_way_of_replacing_a_file(tmp_path: Path, how: str) -> None:
    """A rename over the file, a rewrite in place and a ConfigMap-style symlink swap each
    reach on_change once, and current follows."""
    if how == "symlink swap":  # Kubernetes: config.toml -> ..data/config.toml, ..data swapped
        for version, text in (("v1", THREE), ("v2", FOUR)):
            (tmp_path / version).mkdir()
            write(tmp_path / version / "config.toml", text)
        os.symlink("v1", tmp_path / "..data")
        path = tmp_path / "config.toml"
        os.symlink(Path("..data") / "config.toml", path)
    else:
        path = write(tmp_path / "config.toml", THREE)
    seen = Seen()
    with TopologyWatcher(path, seen, interval=0.02) as watcher:
        first = watcher.version
        expected = load_topology(write(tmp_path / "expected.toml", FOUR)).version
        if how == "rename":
            replace(path, FOUR)
        elif how == "in place":
            write(path, FOUR)
        else:
            os.symlink("v2", tmp_path / "..tmp")
            os.replace(tmp_path / "..tmp", tmp_path / "..data")
        wait_until(lambda: watcher.version == expected, "the new version")
    assert seen.versions() == [expected]
    assert first != expected
    assert set(watcher.current.nodes) == {"a", "b", "c", "d"}


def test_invalid_or_missing_file_keeps_the_running_topology(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A half-written file, an invalid one and a deleted one are logged once each and the
    running topology stays; the next valid file is taken."""
    path = write(tmp_path / "config.toml", THREE)
    seen = Seen()
    watcher = TopologyWatcher(path, seen, start=False)
    running = watcher.version
    with caplog.at_level(logging.WARNING, logger="hashring.topology"):
        write(path, FOUR[: FOUR.index("7002")])  # cut inside a string
        assert watcher.check() is None  # seen once: waits for it to hold still
        assert watcher.check() is None  # held still: loaded, invalid, logged
        assert watcher.check() is None  # the same problem is not logged twice
        write(path, THREE.replace('url = "redis://127.0.0.1:7001/0"', "weight = nan"))
        assert watcher.check() is None
        assert watcher.check() is None
        path.unlink()
        assert watcher.check() is None
        assert watcher.check() is None
    assert watcher.version == running
    assert seen.versions() == []
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 3
    assert all(f"kept version {running}" in message for message in warnings)
    write(path, FOUR)
    assert watcher.check() is None
    taken = watcher.check()
    assert taken is not None
    assert watcher.version == taken.version != running
    assert seen.versions() == [taken.version]


def test_a_file_caught_half_written_is_not_taken(tmp_path: Path) -> None:
    """A rewrite in place caught after its first tables (a valid topology with fewer nodes)
    is not taken: only the file that held still for a look is."""
    path = write(tmp_path / "config.toml", THREE)
    seen = Seen()
    watcher = TopologyWatcher(path, seen, start=False)
    five = FOUR + '[nodes.e]\nurl = "redis://127.0.0.1:7005/0"\n'
    write(path, five[: five.index("[nodes.c]")])  # a and b only: valid on its own
    assert watcher.check() is None
    write(path, five)  # the writer finishes before the next look
    assert watcher.check() is None
    taken = watcher.check()
    assert taken is not None
    assert set(taken.nodes) == {"a", "b", "c", "d", "e"}
    assert len(seen.versions()) == 1


def test_a_refusing_callback_keeps_the_running_topology(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """When on_change raises, current stays, the refusal is logged, and the same file is
    offered again at the next look (once the client accepts it, it runs)."""
    path = write(tmp_path / "config.toml", THREE)
    seen = Seen(fail=True)
    watcher = TopologyWatcher(path, seen, start=False)
    running = watcher.version
    write(path, FOUR)
    with caplog.at_level(logging.WARNING, logger="hashring.topology"):
        assert watcher.check() is None
        assert watcher.check() is None
    assert watcher.version == running
    assert "RuntimeError: the client refused it" in caplog.text
    seen.fail = False
    assert watcher.check() is not None
    assert watcher.version != running


def test_unchanged_content_calls_nothing(tmp_path: Path) -> None:
    """Touching the file, or rewriting it with the same content in another layout, gives
    the same version: on_change is not called."""
    path = write(tmp_path / "config.toml", THREE)
    seen = Seen()
    watcher = TopologyWatcher(path, seen, start=False)
    os.utime(path, ns=(1, 1))
    assert watcher.check() is None
    assert watcher.check() is None
    write(path, "# reformatted\n" + THREE.replace(" = ", "="))
    assert watcher.check() is None
    assert watcher.check() is None
    assert seen.versions() == []


def test_watcher_follows_the_previous_file_of_a_migration(tmp_path: Path) -> None:
    """A change to the previous topology of a migration changes the version and is taken."""
    old = write(tmp_path / "old.toml", THREE)
    path = write(tmp_path / "new.toml", '[migration]\nprevious = "old.toml"\n' + FOUR)
    seen = Seen()
    watcher = TopologyWatcher(path, seen, start=False)
    running = watcher.version
    write(old, THREE.replace("7003", "7009"))
    assert watcher.check() is None
    taken = watcher.check()
    assert taken is not None
    assert taken.previous is not None
    assert taken.previous.nodes["c"].url == "redis://127.0.0.1:7009/0"
    assert taken.version != running


@pytest.mark.parametrize("interval", [0, -1, float("nan"), float("inf"), 1e308, True, "1"])
def test_bad_interval_is_refused(tmp_path: Path, interval: object) -> None:
    """An interval that is not a number of seconds in [0.01, 3600] is InvalidOptionError."""
    path = write(tmp_path / "config.toml", THREE)
    with pytest.raises(InvalidOptionError, match="watch_interval"):
        TopologyWatcher(path, Seen(), interval=interval)  # type: ignore[arg-type]


def test_first_load_must_succeed_and_stop_ends_the_thread(tmp_path: Path) -> None:
    """An invalid file at start is a ConfigError; stop() ends the thread and is idempotent."""
    with pytest.raises(ConfigError):
        TopologyWatcher(write(tmp_path / "bad.toml", "[nodes]\n"), Seen())
    watcher = TopologyWatcher(write(tmp_path / "ok.toml", THREE), Seen(), interval=0.02)
    thread = watcher._thread
    assert thread is not None
    assert thread.is_alive()
    watcher.stop(timeout=TIMEOUT)
    watcher.stop()
    assert not thread.is_alive()
    assert "7001" not in repr(watcher)
