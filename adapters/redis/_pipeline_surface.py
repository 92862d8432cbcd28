"""What both pipelines (``_pipeline``, ``_async_pipeline``) have of redis-py's ``Pipeline``
beyond its commands: Lua ``Script`` objects queued in them, and the module accessors.

redis-py's ``Script.__call__(keys, args, client=pipe)`` (and ``AsyncScript``'s) queues an
EVALSHA of the script's SHA1, and adds the script to ``pipe.scripts`` when ``pipe`` is one
of redis-py's own ``Pipeline`` classes (an ``isinstance`` check); ``Pipeline.execute()``
then runs ``load_scripts()`` first: SCRIPT EXISTS of the queued scripts' SHAs, and SCRIPT
LOAD of the missing ones, so that the EVALSHA finds its script. The sharded pipelines are
not redis-py ``Pipeline`` subclasses, so:

==========================  ===============================================================
``pipe.scripts``            a set, as redis-py's: scripts added to it are loaded by
                            ``execute()``; emptied by ``execute()`` and ``reset()``
``pipe.evalsha(sha, ...)``  queued as any command; called by a redis-py ``Script`` /
                            ``AsyncScript`` for this SHA (its ``__call__`` is the direct
                            caller: :func:`calling_script`), the script joins ``scripts``
``execute()``               with scripts queued: SCRIPT EXISTS of their SHAs on every node
                            through the client (an answer is True when every node has the
                            script), then SCRIPT LOAD (on every node) of each one missing
                            somewhere; then the commands, as without scripts. Two more
                            round trips to every node, only when scripts are queued. The
                            commands are planned first: a refusal (a transaction spanning
                            nodes, ...) comes before any script is loaded. A failure of the
                            loading (a script that does not compile, a node down) is raised
                            by ``execute()``, nothing of the pipeline is sent and, as
                            redis-py, its buffer and ``scripts`` are kept
``json() ft() ts() bf()``   module commands are not routed by key here: ``UnsupportedCommand
``cf() cms() topk()``       Error`` naming ``client_for(key).pipeline()``, nothing buffered
``tdigest() vset()``
==========================  ===============================================================

Every node gets the script, not only the nodes its EVALSHA goes to: ``script_exists`` on
the client then answers True as one server would after the pipeline ran.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any

from redis.commands.core import AsyncScript, Script

from ._errors import UnsupportedCommandError

__all__ = ["MODULE_ACCESSORS", "ModuleRefusals", "calling_script", "missing"]

MODULE_ACCESSORS = ("bf", "cf", "cms", "ft", "json", "tdigest", "topk", "ts", "vset")
"""redis-py's module command groups (``RedisModuleCommands``), refused on the pipelines."""

_SCRIPT_CALLS = (Script.__call__.__code__, AsyncScript.__call__.__code__)


def calling_script(sha: Any, depth: int = 2) -> Script | AsyncScript | None:
    """The redis-py ``Script`` / ``AsyncScript`` whose ``__call__`` called the pipeline's
    ``evalsha`` with ``sha`` (``depth`` frames up from here), else None. O(1).

    redis-py's ``Script.__call__`` registers itself only with redis-py's own ``Pipeline``
    (``isinstance``); this is how the sharded pipelines learn the script text they must
    load before their EVALSHA runs.
    """
    try:
        frame = sys._getframe(depth)
    except ValueError:  # pragma: no cover - a shallower stack than any caller has
        return None
    if frame.f_code not in _SCRIPT_CALLS:
        return None
    script = frame.f_locals.get("self")
    if isinstance(script, (Script, AsyncScript)) and script.sha == sha:
        return script
    return None


def missing(scripts: list[Any], exists: Iterable[Any]) -> list[Any]:
    """The ``scripts`` whose SCRIPT EXISTS answer (one per script, in order) is false.

    >>> missing(["a", "b", "c"], [True, False, 0])
    ['b', 'c']
    """
    return [script for script, exist in zip(scripts, exists, strict=True) if not exist]


def _refused(name: str) -> Any:
    message = (
        f"{name}() is not available on a sharded pipeline: module commands are not routed "
        f"by key here; use client_for(key).pipeline() and its {name}() on the node that "
        "owns the key; nothing was buffered"
    )

    def refused(self: object, *args: Any, **kwargs: Any) -> Any:
        raise UnsupportedCommandError(message)

    refused.__name__ = name
    refused.__doc__ = f"Refused: raises UnsupportedCommandError ({message})."
    return refused


class ModuleRefusals:
    """Mixed into both pipelines: each of :data:`MODULE_ACCESSORS` raises
    ``UnsupportedCommandError`` naming ``client_for(key).pipeline()``."""


for _name in MODULE_ACCESSORS:
    setattr(ModuleRefusals, _name, _refused(_name))
