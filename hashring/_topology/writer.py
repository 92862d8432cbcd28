"""A topology written back as a TOML file (``hashring report --write-to``), with jump's
bucket history when the placement has one, so the file describes the placement exactly."""

from __future__ import annotations

import json
from typing import Any

from .config import Topology

__all__ = ["topology_toml"]


def _string(text: str) -> str:
    """``text`` as a TOML basic string (JSON's escapes are TOML's; DEL is escaped too)."""
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, float):
        return repr(value)
    return str(value)


def topology_toml(topology: Topology, history: dict[str, Any] | None = None) -> str:
    """``topology`` as the text of a topology file (see :mod:`hashring._topology.config`):
    its placement options, ``history`` (a :meth:`JumpHash.memento`, jump only) as
    ``[placement.history]``, and every node with its url (when it has one) and weight.

    :func:`~hashring._topology.config.parse_topology` reads it back to an equal topology
    (the secret itself is never written: only ``hash_key_env``). O(nodes).
    """
    lines = ["[placement]"]
    for key, value in topology.options().items():
        if value is not None:
            lines.append(f"{key} = {_value(value)}")
    if history is not None:
        lines += [
            "",
            "[placement.history]",
            f"size = {int(history['size'])}",
            f"last_removed = {int(history['last_removed'])}",
            "removed = ["
            + ", ".join(f"[{int(b)}, {int(r)}, {int(p)}]" for b, r, p in history["removed"])
            + "]",
            "",
            "[placement.history.buckets]",
            *(f"{_string(name)} = {int(bucket)}" for name, bucket in history["buckets"].items()),
        ]
    for name, spec in topology.nodes.items():
        lines += ["", f"[nodes.{_string(name)}]"]
        if spec.url is not None:
            lines.append(f"url = {_string(spec.url)}")
        lines.append(f"weight = {_value(spec.weight)}")
    return "\n".join(lines) + "\n"
