"""Combining the answers of a command sent to several nodes into one. No I/O.

The answers are redis-py's, already parsed by each node's client (RESP2 or RESP3, decoded
or not), so a combined answer has the shape ``redis.Redis`` gives: ``info()`` a dict,
``slowlog_get()`` a list of dicts, ``config_get()`` a dict, ... (see :class:`Answer` in
``_server_wide`` for each way of combining).

Where one answer cannot be computed exactly, the combined answer says so in the only way
that cannot be mistaken for a real value: ``{node: answer}`` in place of the value
(:attr:`Answer.AGREED` for a whole answer; :attr:`Answer.FIELDS` for one field of a dict,
so ``info()["redis_version"]`` is a str when all nodes run the same version, and
``info()["process_id"]`` is ``{node: pid}``).

:func:`settled` turns the parts' outcomes into answers, raising a failed part's error with
its node named.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import redis

from ._server_wide import Answer

__all__ = [
    "INFO_MAX",
    "INFO_MIN",
    "INFO_RATIOS",
    "INFO_STATUS",
    "INFO_SUMMED",
    "LATENCY_SAMPLES",
    "MEMORY_SUMMED",
    "Failure",
    "elementwise",
    "gather",
    "human_bytes",
    "merger",
    "settled",
]

Merge = Callable[[list[Any]], Any]


class Failure(NamedTuple):
    """A part that raised ``error`` (an outcome, so that gathering does not raise it)."""

    error: BaseException


INFO_SUMMED = frozenset(
    {
        # clients
        "connected_clients", "cluster_connections", "blocked_clients", "tracking_clients",
        "clients_in_timeout_table", "pubsub_clients", "watching_clients",
        # memory (bytes the servers use between them; a peak is bounded by the sum of peaks)
        "used_memory", "used_memory_rss", "used_memory_peak", "used_memory_overhead",
        "used_memory_startup", "used_memory_dataset", "used_memory_lua", "used_memory_vm_eval",
        "used_memory_scripts_eval", "used_memory_vm_functions", "used_memory_vm_total",
        "used_memory_functions", "used_memory_scripts", "allocator_allocated",
        "allocator_active", "allocator_resident", "allocator_frag_bytes", "allocator_rss_bytes",
        "rss_overhead_bytes", "mem_fragmentation_bytes", "mem_not_counted_for_evict",
        "mem_clients_slaves", "mem_clients_normal", "mem_cluster_links", "mem_aof_buffer",
        "mem_replication_backlog", "mem_total_replication_buffers", "lazyfree_pending_objects",
        "lazyfreed_objects",
        # persistence (changes, saves and forks counted over all keys)
        "rdb_changes_since_last_save", "rdb_saves", "aof_rewrites", "current_cow_size",
        "current_save_keys_processed", "current_save_keys_total", "rdb_last_cow_size",
        "aof_last_cow_size", "module_fork_last_cow_size", "rdb_last_load_keys_expired",
        "rdb_last_load_keys_loaded",
        # stats (counters since start or CONFIG RESETSTAT; rates per second)
        "total_connections_received", "total_commands_processed", "instantaneous_ops_per_sec",
        "total_net_input_bytes", "total_net_output_bytes", "total_net_repl_input_bytes",
        "total_net_repl_output_bytes", "instantaneous_input_kbps", "instantaneous_output_kbps",
        "instantaneous_input_repl_kbps", "instantaneous_output_repl_kbps",
        "rejected_connections", "expired_keys", "evicted_keys", "evicted_clients",
        "keyspace_hits", "keyspace_misses", "total_forks", "total_error_replies",
        "total_reads_processed", "total_writes_processed", "expired_time_cap_reached_count",
        "expire_cycle_cpu_milliseconds", "total_eviction_exceeded_time",
        "unexpected_error_replies", "dump_payload_sanitizations",
        "io_threaded_reads_processed", "io_threaded_writes_processed",
        "total_active_defrag_time", "active_defrag_hits", "active_defrag_misses",
        "active_defrag_key_hits", "active_defrag_key_misses", "sync_full", "sync_partial_ok",
        "sync_partial_err", "total_blocking_keys", "total_blocking_keys_on_nokey",
        "migrate_cached_sockets", "slave_expires_tracked_keys", "tracking_total_keys",
        "tracking_total_items", "tracking_total_prefixes", "reply_buffer_shrinks",
        "reply_buffer_expands", "pubsub_channels", "pubsubshard_channels",
        # replication (each node's replicas), cpu (seconds the servers used between them)
        "connected_slaves", "used_cpu_sys", "used_cpu_user", "used_cpu_sys_children",
        "used_cpu_user_children", "used_cpu_sys_main_thread", "used_cpu_user_main_thread",
        # keyspace (db0 ...), commandstats (cmdstat_*), errorstats (errorstat_*)
        "keys", "expires", "calls", "usec", "rejected_calls", "failed_calls", "count",
    }
)  # fmt: skip
"""INFO fields summed over the nodes, at any depth (``db0["keys"]``, ``cmdstat_get["calls"]``):
counts, bytes, rates and CPU seconds of the keys and work the nodes share between them."""

INFO_MAX = frozenset(
    {
        # in-progress and running flags (0 or 1): one server is busy while any node is
        "loading", "async_loading", "rdb_bgsave_in_progress", "aof_rewrite_in_progress",
        "aof_rewrite_scheduled", "module_fork_in_progress", "active_defrag_running",
        "io_threads_active", "repl_backlog_active",
        # durations (seconds, ms, usec) and sizes of the longest running or last operation
        "rdb_last_bgsave_time_sec", "rdb_current_bgsave_time_sec", "aof_last_rewrite_time_sec",
        "aof_current_rewrite_time_sec", "current_cow_size_age", "current_cow_peak",
        "latest_fork_usec", "current_eviction_exceeded_time", "current_active_defrag_time",
        "client_recent_max_input_buffer", "client_recent_max_output_buffer",
        "aof_rewrites_consecutive_failures",
        # clocks: the latest reading
        "server_time_usec", "lru_clock",
    }
)  # fmt: skip
"""INFO fields whose combined value is the largest node's: flags OR'd (as ints), the
longest duration, the latest clock."""

INFO_MIN = frozenset(
    {
        # all keys are saved (and served) only since the oldest save and the latest start
        "rdb_last_save_time", "uptime_in_seconds", "uptime_in_days",
        # a fork in progress is as far along as its slowest node
        "current_fork_perc",
    }
)  # fmt: skip
"""INFO fields whose combined value is the smallest node's."""

INFO_STATUS = frozenset(
    {"rdb_last_bgsave_status", "aof_last_bgrewrite_status", "aof_last_write_status"}
)
"""INFO ``ok``/``err`` fields: ``err`` when any node says it (the first non-``ok`` value)."""

INFO_RATIOS: dict[str, tuple[str, str, float, int, str]] = {
    # field: (numerator, denominator minus nothing, scale, decimals, suffix), from the sums
    "mem_fragmentation_ratio": ("used_memory_rss", "used_memory", 1, 2, ""),
    "allocator_frag_ratio": ("allocator_active", "allocator_allocated", 1, 2, ""),
    "allocator_rss_ratio": ("allocator_resident", "allocator_active", 1, 2, ""),
    "rss_overhead_ratio": ("used_memory_rss", "allocator_resident", 1, 2, ""),
    "used_memory_peak_perc": ("used_memory", "used_memory_peak", 100, 2, "%"),
}
"""INFO ratios computed again from the summed fields they divide, formatted as the server
does (``used_memory_dataset_perc`` too: dataset over used minus startup memory). A
``*_human`` field is its summed byte count in the server's notation (``895.03K``). Any other
field is kept when every node gives the same value, else is ``{node: value}``: identities
(``process_id``, ``run_id``, ``tcp_port``, ``executable``, ``master_replid``), replication
offsets, ``expired_stale_perc``, ``pubsub_patterns`` (patterns are on every node),
``number_of_cached_scripts`` and ``latency_percentiles_usec_*`` (not combinable)."""

MEMORY_SUMMED = frozenset(
    {
        "total.allocated", "startup.allocated", "replication.backlog", "clients.slaves",
        "clients.normal", "cluster.links", "aof.buffer", "lua.caches", "functions.caches",
        "overhead.total", "keys.count", "dataset.bytes", "overhead.hashtable.main",
        "overhead.hashtable.expires", "overhead.hashtable.slot-to-keys",
        "allocator.allocated", "allocator.active", "allocator.resident",
        "allocator.fragmentation.bytes", "allocator.rss.bytes", "rss-overhead.bytes",
        "fragmentation.bytes",
    }
)  # fmt: skip
"""MEMORY STATS fields summed over the nodes (byte and key counts); ratios, percentages and
peaks are kept when equal, else ``{node: value}``."""

Reduce = Callable[[list[Any]], Any]


def _status(values: list[Any]) -> Any:
    """``ok`` when every node says so, else the first other value (``err``)."""
    return next((v for v in values if v != "ok"), values[0])


Field = tuple[Reduce, Callable[[Any], bool]]


def _by_field(*groups: tuple[frozenset[str], Reduce, Callable[[Any], bool]]) -> dict[str, Field]:
    """``{field: (reduction, which values it accepts)}`` from groups of field names."""
    return {name: (reduce, accepts) for names, reduce, accepts in groups for name in names}


def _is_text(value: Any) -> bool:
    return isinstance(value, str)


_COMBINED: dict[str, dict[str, Field]] = {
    "info": _by_field(
        (INFO_SUMMED, sum, lambda v: _number(v)),
        (INFO_MAX, max, lambda v: _number(v)),
        (INFO_MIN, min, lambda v: _number(v)),
        (INFO_STATUS, _status, _is_text),
    ),
    "memory": _by_field((MEMORY_SUMMED, sum, lambda v: _number(v))),
}
"""How a field combines, by command (CONFIG GET and FUNCTION STATS combine nothing): the
reduction and which values it accepts (a field whose values it does not accept is kept
when equal, else ``{node: value}``)."""

LATENCY_SAMPLES = 160
"""How many samples one server keeps per latency event (``LATENCY_TS_LEN``)."""


def merger(answer: Answer, nodes: Sequence[str], args: Sequence[Any]) -> Merge:
    """The merge of ``answer`` for a command ``args`` sent to ``nodes`` (in that order).
    Each merge is O(total size of the answers), SLOWLOG/ACL LOG/LATENCY add a sort."""
    names = list(nodes)
    if answer is Answer.SUM:
        return lambda answers: elementwise(answers, sum)
    if answer is Answer.MIN:
        return lambda answers: elementwise(answers, min)
    if answer is Answer.MAX:
        return lambda answers: elementwise(answers, max)
    if answer is Answer.AND:
        return lambda answers: elementwise(answers, all)
    if answer is Answer.OR:
        return lambda answers: elementwise(answers, any)
    if answer is Answer.ANY:
        return _any_success
    if answer is Answer.CONCAT:
        return lambda answers: [item for one in answers for item in one]
    if answer is Answer.RANDOM:
        return gather
    if answer is Answer.AGREED:
        return lambda answers: _agreed(names, answers)
    if answer is Answer.FIELDS:
        combined = _COMBINED.get(_head(args), {})
        return lambda answers: _fields(names, answers, combined, top=True)
    if answer is Answer.SLOWLOG:
        count = _count(args, 10)
        return lambda answers: _slowlog(answers, count)
    if answer is Answer.ACL_LOG:
        count = _count(args, 10)
        return lambda answers: _acl_log(answers, count)
    if answer is Answer.LATENCY_LATEST:
        return _latency_latest
    if answer is Answer.LATENCY_HISTORY:
        return _latency_history
    if answer is Answer.REPORT:
        return lambda answers: _report(names, answers)
    return _first


def elementwise(answers: list[Any], reduce: Callable[[Any], Any]) -> Any:
    """``reduce`` over the answers, position by position when all are lists (SCRIPT
    EXISTS). O(total size)."""
    if answers and all(isinstance(a, list) for a in answers):
        return [reduce(column) for column in zip(*answers, strict=True)]
    return reduce(answers)


def gather(answers: list[Any]) -> Any:
    """Lists are concatenated (KEYS); single values are any node's non-empty answer,
    picked at random (RANDOMKEY)."""
    if all(isinstance(a, (list, tuple)) for a in answers):
        return [item for answer in answers for item in answer]
    present = [a for a in answers if a is not None]
    return random.choice(present) if present else None


def settled(
    command: str,
    nodes: Sequence[str],
    outcomes: list[Any],
    any_success: bool = False,
    readonly: bool = False,
) -> list[Any]:
    """The answers of a plan's parts (sent to ``nodes``, in order; a :class:`Failure` for
    a part that raised), when none failed, or,
    with ``any_success`` (SCRIPT KILL, CLIENT KILL: the target is on one node), the answers
    of those that succeeded when one did.

    Raises:
        the first failed part's error, of the same class (so ``except
        redis.exceptions.ResponseError`` and redis-py's own handling still work), its
        message naming the node and the nodes where the command succeeded (and stays
        applied: nothing is undone); a BaseException that is not an Exception (a
        cancellation) as it is. A read's error from a server (``ResponseError``, such as
        WRONGTYPE) is raised as it is: one server holding all the keys would raise the
        same, and a read changed nothing anywhere.
    """
    failed = [(n, o.error) for n, o in zip(nodes, outcomes, strict=True) if isinstance(o, Failure)]
    if not failed:
        return outcomes
    succeeded = [n for n, o in zip(nodes, outcomes, strict=True) if not isinstance(o, Failure)]
    if any_success and succeeded:
        return [o for o in outcomes if not isinstance(o, Failure)]
    for _, error in failed:
        if not isinstance(error, Exception):
            raise error
    node, error = failed[0]
    if readonly and isinstance(error, redis.exceptions.ResponseError):
        raise error
    where = (
        f"it succeeded on {', '.join(map(repr, succeeded))}, where nothing is undone"
        if succeeded
        else "it failed on every node"
    )
    others = [n for n, _ in failed[1:]]
    also = f"; it also failed on {', '.join(map(repr, others))}" if others else ""
    message = f"{error} (node {node!r}, {command.upper()}: {where}{also})"
    try:
        named = type(error)(message)
    except Exception:  # an error class that takes other arguments: raise it unnamed
        raise error from None
    raise named from error


def _first(answers: list[Any]) -> Any:
    return answers[0]


def _any_success(answers: list[Any]) -> Any:
    """The answers of the nodes that succeeded: ints summed (CLIENT KILL filters), else
    the first (OK)."""
    if answers and all(isinstance(a, int) and not isinstance(a, bool) for a in answers):
        return sum(answers)
    return answers[0]


def _agreed(nodes: list[str], answers: list[Any]) -> Any:
    """The answer all nodes give (lists in any order: FUNCTION LIST, MODULE LIST list
    in hash-table order, which one server does not fix either), else ``{node: answer}``."""
    first = answers[0]
    if all(a == first for a in answers[1:]):
        return first
    if all(isinstance(a, list) for a in answers):
        canonical = sorted(map(repr, first))
        if all(sorted(map(repr, a)) == canonical for a in answers[1:]):
            return first
    return dict(zip(nodes, answers, strict=True))


def _fields(
    nodes: list[str],
    answers: list[Any],
    combined: dict[str, Field],
    top: bool = False,
) -> Any:
    """Dicts merged field by field (at any depth) by ``combined``; anything else as
    :attr:`Answer.AGREED`. At the ``top`` of an INFO answer, ratios and ``*_human``
    fields are computed again from the combined fields."""
    if not all(isinstance(a, dict) for a in answers):
        return _agreed(nodes, answers)
    merged: dict[Any, Any] = {}
    for name in dict.fromkeys(k for answer in answers for k in answer):
        present = [(n, a[name]) for n, a in zip(nodes, answers, strict=True) if name in a]
        values = [value for _, value in present]
        how = combined.get(_text(name))
        if how is not None and all(how[1](v) for v in values):
            merged[name] = how[0](values)
        elif all(isinstance(v, dict) for v in values):
            merged[name] = _fields([n for n, _ in present], values, combined)
        elif len(present) == len(answers) and all(v == values[0] for v in values[1:]):
            merged[name] = values[0]
        else:
            merged[name] = dict(present)
    for name, answer_values in _derived(answers).items():
        if name in merged:
            merged[name] = answer_values
    if top and len(answers) > 1:
        _recompute(merged)
    return merged


def _recompute(merged: dict[Any, Any]) -> None:
    """INFO's ratios (:data:`INFO_RATIOS`, ``used_memory_dataset_perc``) and ``*_human``
    fields from the combined fields they are made of, in place. O(fields)."""
    ratios = dict(INFO_RATIOS)
    ratios["used_memory_dataset_perc"] = ("used_memory_dataset", "", 100, 2, "%")
    for name, (top, bottom, scale, decimals, suffix) in ratios.items():
        if name not in merged:
            continue
        numerator: Any = merged.get(top)
        denominator: Any
        if bottom:
            denominator = merged.get(bottom)
        else:  # dataset over the memory used beyond startup
            used: Any = merged.get("used_memory")
            startup: Any = merged.get("used_memory_startup")
            denominator = used - startup if _number(used) and _number(startup) else None
        if _number(numerator) and _number(denominator) and denominator > 0:
            text = f"{numerator * scale / denominator:.{decimals}f}"
            merged[name] = text + suffix if suffix else float(text)
    for name in list(merged):
        if isinstance(name, str) and name.endswith("_human"):
            count = merged.get(name[: -len("_human")])
            if isinstance(count, int) and not isinstance(count, bool) and count >= 0:
                merged[name] = human_bytes(count)


def human_bytes(count: int) -> str:
    """``count`` bytes as the server writes them in INFO (``bytesToHuman``): ``512B``,
    ``895.03K``, ``6.20M``, ... O(1)."""
    for power, unit in ((5, "P"), (4, "T"), (3, "G"), (2, "M"), (1, "K")):
        if 1024**power <= count < 1024 ** (power + 1):
            return f"{count / 1024**power:.2f}{unit}"
    return f"{count}B"


def _derived(answers: list[dict[Any, Any]]) -> dict[Any, Any]:
    """Averages computed again from summed fields: ``avg_ttl`` weighted by ``expires``,
    ``usec_per_call`` as ``usec / calls``."""
    derived: dict[Any, Any] = {}
    for key in {k for a in answers for k in a}:
        text = _text(key)
        if text == "avg_ttl":
            weights = [(a.get(key), _field(a, "expires")) for a in answers if key in a]
            total = sum(w for _, w in weights if _number(w))
            if total and all(_number(v) and _number(w) for v, w in weights):
                derived[key] = round(sum(v * w for v, w in weights) / total)
        elif text == "usec_per_call":
            usec = sum(_field(a, "usec") or 0 for a in answers if key in a)
            calls = sum(_field(a, "calls") or 0 for a in answers if key in a)
            if calls:
                derived[key] = round(usec / calls, 2)
    return derived


def _field(answer: dict[Any, Any], name: str) -> Any:
    for key, value in answer.items():
        if _text(key) == name:
            return value
    return None


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _head(args: Sequence[Any]) -> str:
    return _text(args[0]).split(" ", 1)[0].lower() if args else ""


def _count(args: Sequence[Any], default: int) -> int | None:
    """The count argument after a two-word command name (``SLOWLOG GET 5``, ``ACL LOG 5``,
    the name as one argument or two): None for all entries (a negative count)."""
    rest = args[1:] if " " in _text(args[0]).strip() else args[2:]
    if not rest:
        return default
    try:
        count = int(rest[0])
    except (TypeError, ValueError):
        return default  # ACL LOG RESET: not a count, and its answer is not a log
    return None if count < 0 else count


def _slowlog(answers: list[Any], count: int | None) -> list[Any]:
    """The newest ``count`` entries of all nodes, newest first (by start time, then each
    node's own order); ids made unique: ``id * nodes + node index``."""
    width = len(answers)
    entries = []
    for index, log in enumerate(answers):
        for position, entry in enumerate(log):
            if isinstance(entry, dict) and isinstance(entry.get("id"), int):
                entry = {**entry, "id": entry["id"] * width + index}
            start = entry.get("start_time", 0) if isinstance(entry, dict) else 0
            entries.append((-start, position, index, entry))
    entries.sort(key=lambda item: item[:3])
    return [entry for *_, entry in entries[:count]]


def _acl_log(answers: list[Any], count: int | None) -> Any:
    """ACL LOG: the newest ``count`` entries of all nodes, newest first (by ``age-seconds``);
    ACL LOG RESET's answers as any node's (all succeeded)."""
    if not all(isinstance(a, list) for a in answers):
        return answers[0]
    entries = []
    for index, log in enumerate(answers):
        for position, entry in enumerate(log):
            age = _field(entry, "age-seconds") if isinstance(entry, dict) else None
            entries.append((age if _number(age) else 0.0, position, index, entry))
    entries.sort(key=lambda item: item[:3])
    return [entry for *_, entry in entries[:count]]


def _latency_latest(answers: list[Any]) -> list[Any]:
    """Per event: the time and latency of the latest spike of any node, and the largest
    maximum; events in first-seen order."""
    events: dict[Any, list[Any]] = {}
    for answer in answers:
        for name, when, latest, most in answer:
            seen = events.get(name)
            if seen is None:
                events[name] = [name, when, latest, most]
                continue
            if (when, latest) > (seen[1], seen[2]):
                seen[1], seen[2] = when, latest
            seen[3] = max(seen[3], most)
    return list(events.values())


def _latency_history(answers: list[Any]) -> list[Any]:
    """All nodes' ``[time, latency]`` samples by time (the largest per second), the newest
    :data:`LATENCY_SAMPLES`, oldest first as one server gives them."""
    by_time: dict[Any, Any] = {}
    for answer in answers:
        for when, latency in answer:
            by_time[when] = max(latency, by_time.get(when, latency))
    return [[when, by_time[when]] for when in sorted(by_time)[-LATENCY_SAMPLES:]]


def _report(nodes: list[str], answers: list[Any]) -> Any:
    """Text reports one after another, each under its node's name (bytes stay bytes)."""
    if all(isinstance(a, bytes) for a in answers):
        return b"\n\n".join(
            f"node {n}:\n".encode() + a for n, a in zip(nodes, answers, strict=True)
        )
    if all(isinstance(a, str) for a in answers):
        return "\n\n".join(f"node {n}:\n{a}" for n, a in zip(nodes, answers, strict=True))
    return _agreed(nodes, answers)
