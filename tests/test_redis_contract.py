"""Contract for the redis-py internals (and server metadata) the Redis adapter relies on.

If a redis-py upgrade or a new redis-server changes any of these, a test here fails with a
message saying what the router in adapters/ has to be adapted to.
"""

from __future__ import annotations

import inspect
import re
import time
import tomllib
from pathlib import Path

import pytest
import redis
from packaging.requirements import Requirement
from packaging.version import Version
from redis._parsers.commands import (
    CommandPolicies,
    CommandsParser,
    RequestPolicy,
    ResponsePolicy,
)
from redis_servers import RedisServer

pytestmark = pytest.mark.redis

ROOT = Path(__file__).resolve().parent.parent
COMMANDS_SOURCE = ROOT / "adapters" / "redis" / "_commands.py"

REQUEST_MEMBERS = ("MULTI_SHARD", "ALL_SHARDS", "ALL_NODES", "SPECIAL", "DEFAULT_KEYED",
                   "DEFAULT_KEYLESS")  # fmt: skip
RESPONSE_MEMBERS = ("AGG_SUM", "AGG_MIN", "AGG_MAX", "AGG_LOGICAL_AND", "AGG_LOGICAL_OR",
                    "ALL_SUCCEEDED", "ONE_SUCCEEDED", "SPECIAL", "DEFAULT_KEYED",
                    "DEFAULT_KEYLESS")  # fmt: skip


@pytest.fixture
def raw(clean_redis_servers: list[RedisServer]) -> redis.Redis:
    """A decode_responses=False client of one of the fixture's redis-servers."""
    return clean_redis_servers[0].client()


@pytest.fixture
def parser(raw: redis.Redis) -> CommandsParser:
    """redis-py's CommandsParser loaded from that server."""
    return CommandsParser(raw)  # type: ignore[no-untyped-call]


@pytest.fixture
def policies(parser: CommandsParser) -> dict[str, CommandPolicies]:
    """The server's core command policies as redis-py reports them."""
    records = parser.get_command_policies()
    assert "core" in records
    return records["core"]


def test_commands_parser_api(parser: CommandsParser, raw: redis.Redis) -> None:
    """CommandsParser keeps `commands` (COMMAND INFO per name) and get_keys(conn, *args)."""
    assert isinstance(parser.commands, dict)
    mget = parser.commands["mget"]
    for field in ("flags", "first_key_pos", "last_key_pos", "step_count"):
        assert field in mget, f"CommandsParser.commands entries lost {field!r}"
    assert "readonly" in [f.decode() if isinstance(f, bytes) else f for f in mget["flags"]]
    assert (mget["first_key_pos"], mget["last_key_pos"], mget["step_count"]) == (1, -1, 1)
    assert parser.commands["mset"]["step_count"] == 2
    params = list(inspect.signature(CommandsParser.get_keys).parameters)
    assert params[:2] == ["self", "redis_conn"]
    assert inspect.signature(CommandsParser.get_keys).parameters["args"].kind is (
        inspect.Parameter.VAR_POSITIONAL
    )
    assert parser.get_keys(raw, "MGET", "a", "b") == ["a", "b"]  # type: ignore[no-untyped-call]
    assert parser.get_keys(raw, "MSET", "a", "1", "b", "2") == ["a", "b"]  # type: ignore[no-untyped-call]
    assert parser.get_keys(raw, "PING") is None  # type: ignore[no-untyped-call]
    assert callable(parser.get_command_policies)


def test_policy_enum_members_exist() -> None:
    """Every RequestPolicy / ResponsePolicy member the router uses still exists."""
    missing = [f"RequestPolicy.{m}" for m in REQUEST_MEMBERS if not hasattr(RequestPolicy, m)]
    missing += [f"ResponsePolicy.{m}" for m in RESPONSE_MEMBERS if not hasattr(ResponsePolicy, m)]
    assert not missing, f"redis-py dropped {missing}: update adapters/redis/_commands.py"


def test_policy_members_referenced_by_the_router_exist() -> None:
    """Every RequestPolicy.X / ResponsePolicy.X written in adapters/redis/_commands.py exists."""
    source = COMMANDS_SOURCE.read_text()
    used = set(re.findall(r"\b(RequestPolicy|ResponsePolicy)\.([A-Z_]+)\b", source))
    assert ("RequestPolicy", "MULTI_SHARD") in used  # the scan found the references
    enums = {"RequestPolicy": RequestPolicy, "ResponsePolicy": ResponsePolicy}
    missing = sorted(
        f"{enum}.{member}" for enum, member in used if not hasattr(enums[enum], member)
    )
    assert not missing, f"redis-py dropped {missing}: update adapters/redis/_commands.py"


def test_command_policies_object_shape(policies: dict[str, CommandPolicies]) -> None:
    """Each policy record has request_policy and response_policy enum members."""
    record = policies["mget"]
    assert isinstance(record, CommandPolicies)
    assert isinstance(record.request_policy, RequestPolicy)
    assert isinstance(record.response_policy, ResponsePolicy)
    assert "config get" in policies  # subcommands are keyed "command subcommand"


@pytest.mark.parametrize(
    ("command", "request_policy", "response_policy"),
    [
        ("mget", RequestPolicy.MULTI_SHARD, ResponsePolicy.DEFAULT_KEYED),
        ("mset", RequestPolicy.MULTI_SHARD, ResponsePolicy.ALL_SUCCEEDED),
        ("del", RequestPolicy.MULTI_SHARD, ResponsePolicy.AGG_SUM),
        ("exists", RequestPolicy.MULTI_SHARD, ResponsePolicy.AGG_SUM),
        ("touch", RequestPolicy.MULTI_SHARD, ResponsePolicy.AGG_SUM),
        ("unlink", RequestPolicy.MULTI_SHARD, ResponsePolicy.AGG_SUM),
        ("dbsize", RequestPolicy.ALL_SHARDS, ResponsePolicy.AGG_SUM),
        ("info", RequestPolicy.ALL_SHARDS, ResponsePolicy.SPECIAL),
        ("ping", RequestPolicy.ALL_SHARDS, ResponsePolicy.ALL_SUCCEEDED),
        ("flushdb", RequestPolicy.ALL_SHARDS, ResponsePolicy.ALL_SUCCEEDED),
        ("keys", RequestPolicy.ALL_SHARDS, ResponsePolicy.DEFAULT_KEYLESS),
        ("randomkey", RequestPolicy.ALL_SHARDS, ResponsePolicy.DEFAULT_KEYLESS),
        ("time", RequestPolicy.DEFAULT_KEYLESS, ResponsePolicy.DEFAULT_KEYLESS),
    ],
)
def test_server_reports_the_policies_we_depend_on(
    policies: dict[str, CommandPolicies],
    command: str,
    request_policy: RequestPolicy,
    response_policy: ResponsePolicy,
) -> None:
    """The server's COMMAND tips give the request/response policies the routing table assumes."""
    record = policies[command]
    assert (record.request_policy, record.response_policy) == (request_policy, response_policy)


def test_msetnx_is_multi_shard_so_the_router_must_refuse_it(
    policies: dict[str, CommandPolicies],
) -> None:
    """MSETNX is tagged multi_shard: only ATOMIC_MULTI_KEY keeps it from being split."""
    from hashring.adapters.redis._commands import ATOMIC_MULTI_KEY

    assert policies["msetnx"].request_policy is RequestPolicy.MULTI_SHARD
    assert "msetnx" in ATOMIC_MULTI_KEY


def test_get_command_policies_fails_on_a_decoding_client(
    clean_redis_servers: list[RedisServer],
) -> None:
    """Known redis-py bug: get_command_policies() raises AttributeError with decode_responses."""
    decoded = clean_redis_servers[0].client(decode_responses=True)
    parser = CommandsParser(decoded)  # type: ignore[no-untyped-call]
    try:
        parser.get_command_policies()
    except AttributeError:
        return
    pytest.fail(
        "redis-py's CommandsParser.get_command_policies() now works with "
        "decode_responses=True: the raw-client workaround in adapters/redis/_clients.py "
        "(raw_client() and raw_async_client(), used to read the COMMAND table) can go, and "
        "this test with it."
    )


def test_client_owning_a_given_pool_can_close_it(clean_redis_servers: list[RedisServer]) -> None:
    """auto_close_connection_pool (used by raw_client) makes close() disconnect the pool."""
    server = clean_redis_servers[0]
    pool = redis.ConnectionPool(host=server.host, port=server.port, client_name="contract")
    client = redis.Redis(connection_pool=pool)
    assert client.auto_close_connection_pool is False
    client.auto_close_connection_pool = True
    client.ping()
    observer = server.client(decode_responses=True)

    def named() -> int:
        return sum(1 for entry in observer.client_list() if entry.get("name") == "contract")

    assert named() == 1
    client.close()
    deadline = time.monotonic() + 3.0
    while named() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert named() == 0


def test_redis_py_version_within_the_pin() -> None:
    """The installed redis-py is inside the range pyproject.toml pins for the redis extra."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    pins = [Requirement(spec) for spec in pyproject["project"]["optional-dependencies"]["redis"]]
    (pin,) = [req for req in pins if req.name == "redis"]
    assert Version(redis.__version__) in pin.specifier, (
        f"redis-py {redis.__version__} is outside the pin {pin}"
    )


def test_async_pool_idle_connections_can_be_dropped_without_yielding(
    clean_redis_servers: list[RedisServer],
) -> None:
    """drop_idle_connections (used on ejection and recovery) relies on redis-py's
    ``_available_connections`` list and ``Connection._close()``: idle connections close at
    once, connections in use are untouched, and a dropped one reconnects on its next use."""
    import asyncio

    import redis.asyncio as aioredis
    from hashring.adapters.redis._clients import drop_idle_connections

    server = clean_redis_servers[0]
    observer = server.client(decode_responses=True)

    def named() -> int:
        return sum(1 for entry in observer.client_list() if entry.get("name") == "idle-drop")

    async def scenario() -> None:
        client = aioredis.Redis(host=server.host, port=server.port, client_name="idle-drop")
        try:
            await asyncio.gather(*(client.blpop(["nothing"], timeout=0.2) for _ in range(3)))
            pool = client.connection_pool
            assert len(pool._available_connections) == 3
            held = await pool.get_connection()  # in use: must survive
            drop_idle_connections(pool)
            assert all(not c.is_connected for c in pool._available_connections)
            assert held.is_connected
            await pool.release(held)
            deadline = time.monotonic() + 3.0
            while named() != 1 and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            assert named() == 1
            assert await client.ping() is True  # reconnects
        finally:
            await client.aclose()

    asyncio.run(scenario())
