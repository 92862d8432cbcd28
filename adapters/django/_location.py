"""A cache's LOCATION read as nodes: node name -> Redis URL, and the placement when a topology
file says it. No I/O beyond reading the topology file.

LOCATION is one of:

* a list (or tuple) of URLs, or a string of URLs separated by ``,`` or ``;`` (as Django's
  RedisCache accepts). Each node is named after its server, ``host:port/db``, port 6379 and
  db 0 when the URL leaves them out (``redis://10.0.0.1`` is ``10.0.0.1:6379/0``), an IPv6
  host in brackets; a ``unix://`` URL is named ``unix:<path>/db``. Scheme, user and password
  are no part of the name, so the order of the list, a password change or ``redis://`` to
  ``rediss://`` moves no key;
* a mapping of node name to URL (names as given: keys stay where they are when a server moves
  to another address);
* the path of a topology TOML file (a ``str`` ending in ``.toml``, or a ``pathlib.Path``;
  see :func:`hashring.load_topology`): its nodes' URLs, and its placement.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hashring import ConfigError, InvalidOptionError, Placement, load_topology, redact_url
from hashring._topology.urls import node_name

__all__ = ["SCHEMES", "Location", "node_name", "read_location"]

SCHEMES = ("redis://", "rediss://", "unix://")
"""The URL schemes redis-py's ``ConnectionPool.from_url`` speaks."""

_SEPARATORS = re.compile("[;,]")  # Django's RedisCache splits a LOCATION string on these


@dataclass(frozen=True)
class Location:
    """What a LOCATION names: node name -> URL, and the topology file's placement (None when
    the OPTIONS say the placement)."""

    nodes: dict[str, str]
    placement: Placement | None = None
    version: str | None = None
    """A topology file's version (its connections are named after it), else None."""
    path: Path | None = None
    """The topology file (read again by the client, and followed with ``watch``), else
    None."""

    def __repr__(self) -> str:
        urls = ", ".join(f"{name}={redact_url(url)}" for name, url in self.nodes.items())
        return f"Location({urls})"


def read_location(location: object) -> Location:
    """The nodes (and, for a topology file, the placement) of a LOCATION. O(nodes), plus
    reading and validating the file for a topology path.

    Raises:
        InvalidOptionError: a LOCATION of another type, no server, an entry that is not a
            ``redis://``, ``rediss://`` or ``unix://`` URL (shown without its password), a
            db that is not a number, or two URLs naming the same server.
        ConfigError: a topology file that is not valid, or a node of it without a url.
    """
    if isinstance(location, os.PathLike) or (
        isinstance(location, str) and location.strip().endswith(".toml")
    ):
        return _read_topology(Path(os.fsdecode(location).strip()).expanduser())
    if isinstance(location, Mapping):
        nodes: dict[str, str] = {}
        for name, url in location.items():
            if not isinstance(name, str):
                raise InvalidOptionError(
                    f"LOCATION: node names must be str, got {type(name).__name__}"
                )
            nodes[name] = _checked_url(url, name)
        return Location(_nonempty(nodes))
    if isinstance(location, str):
        urls: list[object] = list(_SEPARATORS.split(location))
    elif isinstance(location, (list, tuple)):
        urls = list(location)
    else:
        raise InvalidOptionError(
            "LOCATION must be a list of Redis URLs, a str of them separated by ',' or ';', a "
            f"{{node name: URL}} dict, or a topology .toml path; got {type(location).__name__}"
        )
    named: dict[str, str] = {}
    for url in urls:
        checked = _checked_url(url.strip() if isinstance(url, str) else url, None)
        name = node_name(checked)
        if name in named:
            raise InvalidOptionError(
                f"LOCATION names the server {name!r} twice ({redact_url(named[name])!r} and "
                f"{redact_url(checked)!r}); list each server once, or name the nodes with a "
                "{node name: URL} dict"
            )
        named[name] = checked
    return Location(_nonempty(named))


def _checked_url(url: Any, name: str | None) -> str:
    """``url`` if it is a str with a scheme redis-py speaks."""
    if isinstance(url, str) and url.startswith(SCHEMES):
        return url
    where = f"node {name!r}" if name is not None else "LOCATION"
    shown = redact_url(url) if isinstance(url, str) else type(url).__name__
    raise InvalidOptionError(f"{where}: {shown!r} is not a redis://, rediss:// or unix:// URL")


def _nonempty(nodes: dict[str, str]) -> dict[str, str]:
    if not nodes:
        raise InvalidOptionError("LOCATION names no Redis server")
    return nodes


def _read_topology(path: Path) -> Location:
    """Nodes and placement of a topology file, each node with a URL redis-py speaks."""
    topology = load_topology(path)
    nodes: dict[str, str] = {}
    for name, spec in topology.nodes.items():
        if spec.url is None:
            raise ConfigError(f"{topology.source}: nodes.{name}.url is required here")
        if not spec.url.startswith(SCHEMES):
            raise ConfigError(
                f"{topology.source}: nodes.{name}.url {redact_url(spec.url)!r} is not a "
                "redis://, rediss:// or unix:// URL"
            )
        nodes[name] = spec.url
    return Location(_nonempty(nodes), topology.placement(), topology.version, path)
