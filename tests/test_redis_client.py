"""ShardedRedis and ShardedPipeline against real redis-server processes."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis
from hashring.adapters.redis import ShardedRedis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.backoff import NoBackoff
from redis.retry import Retry
from redis_servers import RedisServer, RedisServerFactory, free_port

import hashring
from hashring import (
    ConfigError,
    CrossShardError,
    InvalidOptionError,
    Placement,
    UnsupportedCommandError,
    placement,
)

pytestmark = pytest.mark.redis

NAMES = ("n0", "n1", "n2")


def _urls(servers: list[RedisServer], names: tuple[str, ...] = NAMES) -> dict[str, str]:
    return {name: server.url for name, server in zip(names, servers, strict=True)}


@pytest.fixture
def sharded(clean_redis_servers: list[RedisServer]) -> Iterator[ShardedRedis]:
    """A decoding ShardedRedis over the three shared (flushed) servers, nodes n0..n2."""
    with ShardedRedis(_urls(clean_redis_servers), decode_responses=True) as client:
        yield client


@pytest.fixture
def by_node(clean_redis_servers: list[RedisServer]) -> dict[str, redis.Redis]:
    """Node name -> a direct (non-sharded) decoding client of that node's server."""
    return {
        name: server.client(decode_responses=True)
        for name, server in zip(NAMES, clean_redis_servers, strict=True)
    }


def _keys_on_distinct_nodes(client: ShardedRedis, count: int = 2) -> list[str]:
    """``count`` keys owned by ``count`` different nodes."""
    chosen: dict[str, str] = {}
    for i in range(10_000):
        key = f"key:{i}"
        chosen.setdefault(client.node_for(key), key)
        if len(chosen) == count:
            return list(chosen.values())
    raise AssertionError("could not find keys on distinct nodes")  # pragma: no cover


def _named_connections(client: redis.Redis, name: str) -> int:
    return sum(1 for entry in client.client_list() if entry.get("name") == name)


def _wait_for_connections(client: redis.Redis, name: str, expected: int) -> int:
    """Poll CLIENT LIST until ``expected`` connections are named ``name`` (or 3 s pass)."""
    deadline = time.monotonic() + 3.0
    count = _named_connections(client, name)
    while count != expected and time.monotonic() < deadline:
        time.sleep(0.02)
        count = _named_connections(client, name)
    return count


# ------------------------------------------------------------------ differential test

KEYS = ("a", "b", "c", "d", "e", "f", "{u1}:a", "{u1}:b", "{u1}:c", "{u2}:a", "{u2}:b", "cnt")
keys = st.sampled_from(KEYS)
key_lists = st.lists(keys, min_size=1, max_size=5)
values = st.sampled_from(("0", "1", "7", "-3", "x", "hello", ""))
fields = st.sampled_from(("f1", "f2", "f3"))
members = st.sampled_from(("m1", "m2", "m3"))
small = st.integers(-5, 5)
mappings = st.dictionaries(keys, values, min_size=1, max_size=4)


@dataclass
class Op:
    """One client call: ``client.<method>(*args, **kwargs)``."""

    method: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        shown = [repr(a) for a in self.args] + [f"{k}={v!r}" for k, v in self.kwargs.items()]
        return f"{self.method}({', '.join(shown)})"

    def apply(self, client: Any) -> Any:
        return getattr(client, self.method)(*self.args, **self.kwargs)

    def key_args(self) -> list[str]:
        """Keys of a cross-node candidate (rename, sunionstore, smove, msetnx)."""
        if self.method == "sunionstore":
            return [self.args[0], *self.args[1]]
        if self.method == "msetnx":
            return list(self.args[0])
        return list(self.args[:2])


@dataclass
class Pipe:
    """A non-transactional pipeline of simple ops."""

    ops: list[Op]
    raise_on_error: bool

    def __repr__(self) -> str:
        return f"pipeline({self.ops!r}, raise_on_error={self.raise_on_error})"


def op(method: str, *parts: st.SearchStrategy[Any], **kwargs: Any) -> st.SearchStrategy[Op]:
    return st.tuples(*parts).map(lambda args: Op(method, args, dict(kwargs)))


def spread(method: str, items: st.SearchStrategy[list[str]]) -> st.SearchStrategy[Op]:
    return items.map(lambda ks: Op(method, tuple(ks)))


simple_ops = st.one_of(
    # strings and counters
    op("set", keys, values),
    op("get", keys),
    op("incr", keys),
    op("incrby", keys, small),
    op("decr", keys),
    op("append", keys, values),
    op("strlen", keys),
    op("getset", keys, values),
    op("setnx", keys, values),
    # multi-key commands, keys possibly on several nodes
    op("mget", key_lists),
    op("mset", mappings),
    spread("delete", key_lists),
    spread("exists", key_lists),
    spread("touch", key_lists),
    spread("unlink", key_lists),
    # hashes
    op("hset", keys, fields, values),
    op("hget", keys, fields),
    op("hgetall", keys),
    op("hincrby", keys, fields, small),
    op("hdel", keys, fields),
    # lists
    op("lpush", keys, values),
    op("rpush", keys, values),
    op("lrange", keys, st.just(0), st.just(-1)),
    op("lpop", keys),
    op("llen", keys),
    # sets
    op("sadd", keys, members),
    op("smembers", keys),
    op("scard", keys),
    op("srem", keys, members),
    # sorted sets
    st.tuples(keys, members, small).map(lambda t: Op("zadd", (t[0], {t[1]: t[2]}))),
    op("zrange", keys, st.just(0), st.just(-1), withscores=True),
    op("zincrby", keys, small, members),
    op("zscore", keys, members),
    # expiry
    op("expire", keys, st.just(100)),
    op("ttl", keys),
    op("persist", keys),
)
cross_ops = st.one_of(
    op("rename", keys, keys),
    op("sunionstore", keys, st.lists(keys, min_size=1, max_size=3)),
    op("smove", keys, keys, members),
    op("msetnx", mappings),
)
pipelines = st.builds(Pipe, st.lists(simple_ops, min_size=1, max_size=5), st.booleans())
steps = st.one_of(simple_ops, simple_ops, simple_ops, cross_ops, pipelines)


def _ttl_class(ttl: int) -> str:
    return str(ttl) if ttl < 0 else "positive"


def _normalise(op: Op, result: Any) -> Any:
    if isinstance(result, Exception):
        return ("error", type(result).__name__, str(result))
    if op.method == "smembers":
        return sorted(result)
    if op.method == "ttl":
        return _ttl_class(result)
    return result


def _call(op: Op, client: Any) -> Any:
    try:
        return _normalise(op, op.apply(client))
    except redis.ResponseError as exc:
        return _normalise(op, exc)


def _run_pipeline(step: Pipe, client: Any) -> Any:
    with client.pipeline(transaction=False) as pipe:
        for op in step.ops:
            op.apply(pipe)
        try:
            results = pipe.execute(raise_on_error=step.raise_on_error)
        except redis.ResponseError as exc:
            # "Command # N (...) of pipeline caused error": N is the position in the
            # user's pipeline, whichever node ran the command, as on one server.
            return ("raised", type(exc).__name__, str(exc))
    return [_normalise(op, result) for op, result in zip(step.ops, results, strict=True)]


def _dump(client: redis.Redis) -> dict[str, tuple[str, Any, str]]:
    """Every key of one server: type, value and ttl class."""
    state: dict[str, tuple[str, Any, str]] = {}
    readers: dict[str, Callable[[str], Any]] = {
        "string": client.get,
        "hash": client.hgetall,
        "list": lambda k: client.lrange(k, 0, -1),
        "set": lambda k: sorted(client.smembers(k)),
        "zset": lambda k: client.zrange(k, 0, -1, withscores=True),
    }
    for key in client.keys("*"):
        kind = client.type(key)
        state[key] = (kind, readers[kind](key), _ttl_class(client.ttl(key)))
    return state


def _sharded_state(client: ShardedRedis) -> dict[str, dict[str, tuple[str, Any, str]]]:
    return {name: _dump(node) for name, node in client.clients.items()}


@pytest.fixture
def plain(redis_server_factory: RedisServerFactory) -> redis.Redis:
    """A decoding client of a fourth, unsharded server: the differential test's reference."""
    return redis_server_factory(1)[0].client(decode_responses=True)


@settings(
    max_examples=40,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(program=st.lists(steps, min_size=20, max_size=60))
def test_differential_against_one_plain_server(
    program: list[Op | Pipe],
    sharded: ShardedRedis,
    by_node: dict[str, redis.Redis],
    plain: redis.Redis,
) -> None:
    """Any command sequence gives the same answers (and final data) sharded as on one server."""
    for client in [*by_node.values(), plain]:
        client.flushall()
    for step in program:
        if isinstance(step, Pipe):
            assert _run_pipeline(step, sharded) == _run_pipeline(step, plain), step
            continue
        if step.method in ("rename", "sunionstore", "smove", "msetnx"):
            owners = {sharded.node_for(key) for key in step.key_args()}
            if len(owners) > 1:
                before = _sharded_state(sharded)
                with pytest.raises(CrossShardError) as caught:
                    step.apply(sharded)
                assert set(caught.value.nodes) == owners, step
                assert _sharded_state(sharded) == before, f"{step} changed data"
                continue
        assert _call(step, sharded) == _call(step, plain), step
    merged: dict[str, tuple[str, Any, str]] = {}
    for name, state in _sharded_state(sharded).items():
        for key in state:
            assert sharded.node_for(key) == name, f"{key!r} is on {name}"
        merged.update(state)
    assert merged == _dump(plain)


# ------------------------------------------------------------------ placement of keys


def test_keys_spread_over_nodes_and_live_on_their_owner(
    sharded: ShardedRedis, by_node: dict[str, redis.Redis]
) -> None:
    """300 keys land on every node, 300 in all, each key only on the node node_for names."""
    written = [f"spread:{i}" for i in range(300)]
    for key in written:
        sharded.set(key, key)
    sizes = {name: client.dbsize() for name, client in by_node.items()}
    assert all(size > 0 for size in sizes.values()), sizes
    assert sum(sizes.values()) == 300
    holders: dict[str, list[str]] = {}
    for name, client in by_node.items():
        for key in client.keys("*"):
            holders.setdefault(key, []).append(name)
    assert holders == {key: [sharded.node_for(key)] for key in written}


def test_bytes_and_int_keys(sharded: ShardedRedis, by_node: dict[str, redis.Redis]) -> None:
    """int and bytes keys are routed by their encoded form and read back."""
    assert sharded.set(5, "x") is True
    assert sharded.get(5) == "x"
    assert sharded.get("5") == "x"  # same encoded key
    assert sharded.set(b"raw", "y") is True
    assert sharded.get(b"raw") == "y"
    assert by_node[sharded.node_for(5)].get("5") == "x"
    assert by_node[sharded.node_for(b"raw")].get("raw") == "y"


def test_client_for_and_clients(sharded: ShardedRedis) -> None:
    """client_for(key) is the owner's client; clients is a copy of name -> client."""
    clients = sharded.clients
    assert sorted(clients) == list(NAMES)
    clients.pop("n0")
    assert "n0" in sharded.clients  # the property returned a copy
    for key in _keys_on_distinct_nodes(sharded, 3):
        direct = sharded.client_for(key)
        assert direct is sharded.clients[sharded.node_for(key)]
        direct.set(key, "direct")
        assert sharded.get(key) == "direct"


# ------------------------------------------------------------------ fan-out commands


def test_fan_out_commands(sharded: ShardedRedis, by_node: dict[str, redis.Redis]) -> None:
    """DBSIZE sums, KEYS unions, PING/FLUSHDB reach all, INFO/CONFIG GET merge per field."""
    written = {f"fan:{i}" for i in range(60)}
    sharded.mset({key: "v" for key in written})
    assert all(client.dbsize() > 0 for client in by_node.values())
    assert sharded.dbsize() == 60
    assert sorted(sharded.keys("*")) == sorted(written)
    assert sharded.ping() is True
    for _ in range(10):
        assert sharded.randomkey() in written
    info = sharded.info()
    ports = {
        name: client.connection_pool.connection_kwargs["port"] for name, client in by_node.items()
    }
    assert info["tcp_port"] == ports  # differs per node: {node: value}
    assert info["db0"]["keys"] == 60  # a counter: summed
    assert sharded.config_get("port") == {"port": {n: str(p) for n, p in ports.items()}}
    assert sharded.flushdb() is True
    assert [client.dbsize() for client in by_node.values()] == [0, 0, 0]
    assert sharded.dbsize() == 0
    assert sharded.randomkey() is None


def test_keyless_commands_go_to_the_default_node(
    sharded: ShardedRedis, by_node: dict[str, redis.Redis]
) -> None:
    """TIME and ECHO are sent once, to the first node by name."""
    for client in by_node.values():
        client.config_resetstat()
    assert sharded.echo("hello") == "hello"
    seconds, _micro = sharded.time()
    assert abs(seconds - time.time()) < 60
    calls = {
        name: (
            client.info("commandstats").get("cmdstat_echo", {}).get("calls", 0),
            client.info("commandstats").get("cmdstat_time", {}).get("calls", 0),
        )
        for name, client in by_node.items()
    }
    assert calls == {"n0": (1, 1), "n1": (0, 0), "n2": (0, 0)}


def test_keyless_commands_with_numeric_arguments(sharded: ShardedRedis) -> None:
    """ECHO 5 and WAIT 0 10 (a number right after the command name) are routed, not crashed."""
    assert sharded.echo(5) == "5"
    assert sharded.wait(0, 10) == 0
    with sharded.pipeline() as pipe:
        pipe.echo(7).set(8, "eight").get(8)
        assert pipe.execute() == ["7", True, "eight"]
    assert sharded.get("8") == "eight"


def test_scan_and_scan_iter_return_every_key_once(sharded: ShardedRedis) -> None:
    """scan() cursor loop and scan_iter() walk every node and yield each key exactly once."""
    written = {f"scan:{i}" for i in range(300)} | {f"other:{i}" for i in range(20)}
    sharded.mset({key: "v" for key in written})
    seen: Counter[str] = Counter()
    cursor, rounds = 0, 0
    while True:
        cursor, batch = sharded.scan(cursor, count=10)
        seen.update(batch)
        rounds += 1
        if cursor == 0:
            break
    assert rounds > 3  # really paged, across nodes
    assert seen == Counter(written)
    assert Counter(sharded.scan_iter(count=7)) == Counter(written)
    matched = Counter(sharded.scan_iter(match="other:*", count=50))
    assert matched == Counter(key for key in written if key.startswith("other:"))


# ------------------------------------------------------------------ pipelines


def test_pipeline_keeps_order_across_nodes(
    sharded: ShardedRedis, by_node: dict[str, redis.Redis]
) -> None:
    """Mixed commands on several nodes come back in the order they were buffered."""
    k1, k2, k3 = _keys_on_distinct_nodes(sharded, 3)
    with sharded.pipeline(transaction=False) as pipe:
        pipe.set(k1, "1").set(k2, "2").incr(k1).get(k3).mget(k3, k2, k1)
        pipe.rpush(k3, "x", "y").lrange(k3, 0, -1).delete(k1, k2).exists(k1, k2, k3)
        assert len(pipe) == 9
        results = pipe.execute()
    assert results == [True, True, 2, None, [None, "2", "2"], 2, ["x", "y"], 2, 1]
    assert by_node[sharded.node_for(k3)].lrange(k3, 0, -1) == ["x", "y"]


def test_pipeline_raise_on_error_runs_everything_then_raises(
    sharded: ShardedRedis, by_node: dict[str, redis.Redis]
) -> None:
    """raise_on_error=True raises the first error, but only after every command ran."""
    bad, other = _keys_on_distinct_nodes(sharded, 2)
    sharded.set(bad, "not-a-number")
    with sharded.pipeline(transaction=False) as pipe:
        pipe.set(other, "1").incr(bad).set(f"{bad}:later", "x").incr(other).hset(bad, "f", "v")
        with pytest.raises(redis.ResponseError, match="not an integer"):
            pipe.execute()
    assert sharded.get(other) == "2"  # the INCR after the error was applied
    assert sharded.get(f"{bad}:later") == "x"
    assert by_node[sharded.node_for(other)].get(other) == "2"


def test_pipeline_raise_on_error_false_returns_errors_in_place(sharded: ShardedRedis) -> None:
    """raise_on_error=False puts each failed command's exception in its slot."""
    bad, other = _keys_on_distinct_nodes(sharded, 2)
    sharded.set(bad, "text")
    with sharded.pipeline(transaction=False) as pipe:
        pipe.incr(bad).incr(other).lpush(bad, "x").get(bad)
        results = pipe.execute(raise_on_error=False)
    assert isinstance(results[0], redis.ResponseError)
    assert "not an integer" in str(results[0])
    assert results[1] == 1
    assert isinstance(results[2], redis.ResponseError)
    assert "WRONGTYPE" in str(results[2])
    assert results[3] == "text"


def test_transaction_on_one_node(sharded: ShardedRedis, by_node: dict[str, redis.Redis]) -> None:
    """transaction=True with keys sharing a hash tag runs in MULTI/EXEC on their node."""
    node = sharded.node_for("{acct}:x")
    assert sharded.node_for("{acct}:y") == node
    for client in by_node.values():
        client.config_resetstat()
    with sharded.pipeline(transaction=True) as pipe:
        pipe.set("{acct}:x", "10").incrby("{acct}:x", 5).set("{acct}:y", "a").mget(
            "{acct}:x", "{acct}:y"
        )
        assert pipe.execute() == [True, 15, True, ["15", "a"]]
    multis = {
        name: client.info("commandstats").get("cmdstat_multi", {}).get("calls", 0)
        for name, client in by_node.items()
    }
    assert multis == {name: int(name == node) for name in NAMES}


def test_transaction_across_nodes_sends_nothing(
    sharded: ShardedRedis, by_node: dict[str, redis.Redis]
) -> None:
    """transaction=True over several nodes raises CrossShardError before sending anything."""
    k1, k2 = _keys_on_distinct_nodes(sharded, 2)
    with sharded.pipeline(transaction=True) as pipe:
        pipe.set(k1, "1").set(k2, "2")
        with pytest.raises(CrossShardError) as caught:
            pipe.execute()
    assert set(caught.value.nodes) == {sharded.node_for(k1), sharded.node_for(k2)}
    assert [client.dbsize() for client in by_node.values()] == [0, 0, 0]


# ------------------------------------------------------------------ errors


def test_cross_shard_error_names_the_nodes(
    sharded: ShardedRedis, by_node: dict[str, redis.Redis]
) -> None:
    """A non-splittable command over several nodes names them and sends nothing."""
    k1, k2 = _keys_on_distinct_nodes(sharded, 2)
    sharded.set(k1, "v")
    owners = sorted({sharded.node_for(k1), sharded.node_for(k2)})
    with pytest.raises(CrossShardError) as caught:
        sharded.rename(k1, k2)
    assert caught.value.nodes == tuple(owners)
    for name in owners:
        assert name in str(caught.value)
    assert sharded.get(k1) == "v"
    assert by_node[sharded.node_for(k2)].exists(k2) == 0


@pytest.mark.parametrize(
    ("args", "hint"),
    [
        (("MULTI",), "pipeline"),
        (("WATCH", "a"), "pipeline"),
        (("SELECT", 1), r"URL|db="),
        (("SCAN", 0), "scan_iter"),
    ],
)
def test_connection_state_commands_are_refused(
    sharded: ShardedRedis, args: tuple[Any, ...], hint: str
) -> None:
    """MULTI, WATCH, SELECT and raw SCAN raise UnsupportedCommandError with a hint."""
    with pytest.raises(UnsupportedCommandError, match=hint):
        sharded.execute_command(*args)


def test_select_method_is_refused(sharded: ShardedRedis) -> None:
    """The inherited select() method is refused too (it would switch one node's db only)."""
    with pytest.raises(UnsupportedCommandError):
        sharded.select(1)


@pytest.mark.parametrize(
    "target", ["http://x", "redis://host:notaport", "localhost:7000", 5, None, b"redis://x"]
)
def test_bad_targets_raise_invalid_option(target: Any) -> None:
    """A node target that is not a redis/rediss/unix URL or a redis.Redis is refused."""
    with pytest.raises(InvalidOptionError, match="node 'a'"):
        ShardedRedis({"a": target})


def test_bad_url_error_hides_the_password() -> None:
    """The InvalidOptionError for a bad URL shows it with the password redacted."""
    with pytest.raises(InvalidOptionError) as caught:
        ShardedRedis({"a": "redis://user:s3cret@host:notaport/0"})
    assert "s3cret" not in str(caught.value)
    assert "***" in str(caught.value)


def test_repr_stats_and_errors_hide_passwords() -> None:
    """repr, stats and connection errors never show the password of a node URL."""
    port = free_port()  # nothing listens there
    no_retry = Retry(NoBackoff(), 0)
    url = f"redis://user:s3cret@127.0.0.1:{port}/0"
    with ShardedRedis({"a": url, "b": url}, retry=no_retry, socket_connect_timeout=1) as client:
        shown = repr(client)
        assert "s3cret" not in shown
        assert "user:***@" in shown
        with pytest.raises(redis.ConnectionError) as caught:
            client.get("k")
        assert "s3cret" not in str(caught.value)
        stats = client.stats()
        assert sorted(stats) == ["a", "b"]
        assert "s3cret" not in repr(stats)


# ------------------------------------------------------------------ membership


def test_add_node_moves_only_keys_to_the_new_node(
    redis_server_factory: RedisServerFactory,
) -> None:
    """After add_node, a key's owner is either unchanged or the new node, whose server gets it."""
    servers = redis_server_factory(4)
    with ShardedRedis(_urls(servers[:3]), decode_responses=True) as client:
        sample = [f"member:{i}" for i in range(500)]
        before = {key: client.node_for(key) for key in sample}
        for key in sample[:50]:
            client.set(key, "old")
        client.add_node("n3", servers[3].url)
        after = {key: client.node_for(key) for key in sample}
        moved = [key for key in sample if after[key] != before[key]]
        assert moved, "no key moved to the new node"
        assert len(moved) < len(sample) / 2
        assert {after[key] for key in moved} == {"n3"}
        assert sorted(client.clients) == ["n0", "n1", "n2", "n3"]
        for key in sample[:50]:
            if key not in moved:
                assert client.get(key) == "old"  # unmoved keys are still found
        client.set(moved[0], "new")
        with servers[3].client(decode_responses=True) as direct:
            assert direct.get(moved[0]) == "new"


def test_remove_node_closes_only_clients_it_created(
    redis_server_factory: RedisServerFactory,
) -> None:
    """remove_node closes the client built from a URL, but not a redis.Redis it was given."""
    servers = redis_server_factory(3)
    given = servers[2].client(client_name="given")
    with ShardedRedis(
        {"n0": servers[0].url, "n1": servers[1].url, "n2": given}, client_name="made"
    ) as client:
        client.ping()  # opens a connection to every node
        observer0 = servers[0].client()
        observer2 = servers[2].client()
        assert _named_connections(observer0, "made") >= 1
        assert _named_connections(observer2, "given") >= 1
        client.remove_node("n0")
        client.remove_node("n2")
        assert sorted(client.clients) == ["n1"]
        assert _wait_for_connections(observer0, "made", 0) == 0
        time.sleep(0.1)
        assert _named_connections(observer2, "given") >= 1
        assert given.ping() is True


def test_context_manager_closes_clients(redis_server_factory: RedisServerFactory) -> None:
    """Leaving the with-block closes every connection the client opened."""
    servers = redis_server_factory(2)
    observers = [server.client() for server in servers]
    with ShardedRedis(_urls(servers, ("n0", "n1")), client_name="ctx") as client:
        client.mset({f"k{i}": i for i in range(20)})
        assert all(_named_connections(obs, "ctx") >= 1 for obs in observers)
    assert [_wait_for_connections(obs, "ctx", 0) for obs in observers] == [0, 0]


# ------------------------------------------------------------------ configuration


def test_from_config_places_keys_like_placement(
    clean_redis_servers: list[RedisServer], tmp_path: Path
) -> None:
    """from_config builds the placement the TOML describes and stores keys accordingly."""
    alpha, beta, gamma = clean_redis_servers
    path = tmp_path / "topology.toml"
    path.write_text(
        '[placement]\nalgorithm = "rendezvous"\nhash_tags = true\n\n'
        f'[nodes.alpha]\nurl = "{alpha.url}"\n\n'
        f'[nodes.beta]\nurl = "{beta.url}"\nweight = 2\n\n'
        f'[nodes.gamma]\nurl = "{gamma.url}"\nweight = 0.5\n'
    )
    reference = placement("rendezvous", {"alpha": 1, "beta": 2, "gamma": 0.5}, hash_tags=True)
    servers = {"alpha": alpha, "beta": beta, "gamma": gamma}
    with ShardedRedis.from_config(path, decode_responses=True) as client:
        sample = [f"cfg:{i}" for i in range(200)] + ["{t}:1", "{t}:2"]
        assert [client.node_for(key) for key in sample] == [
            reference.get_node(key) for key in sample
        ]
        assert set(reference.get_node_many(sample)) == {"alpha", "beta", "gamma"}
        for key in sample[:30]:
            client.set(key, "x")
        for key in sample[:30]:
            with servers[reference.get_node(key)].client() as direct:
                assert direct.exists(key) == 1


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ('[placement]\nalgoritm = "ring"\n[nodes.a]\nurl = "redis://h:1/0"\n', "algoritm"),
        ('[nodes.a]\nurl = "redis://h:1/0"\nport = 1\n', "nodes.a.port"),
    ],
)
def test_from_config_unknown_key(tmp_path: Path, text: str, named: str) -> None:
    """A topology file with an unknown key raises ConfigError naming that key."""
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=named):
        ShardedRedis.from_config(path)


# ------------------------------------------------------------------ hash_key


SECRET = b"0123456789abcdef-redis-test"
OTHER_SECRET = b"fedcba9876543210-redis-test"


def test_hash_key_places_alike_with_the_same_secret(clean_redis_servers: list[RedisServer]) -> None:
    """Clients with the same hash_key place every key alike (and find each other's keys);
    another secret, or none, places some keys differently."""
    from hashring.adapters.redis import AsyncShardedRedis

    urls = _urls(clean_redis_servers)
    keys = [f"hk:{i}" for i in range(500)]
    with (
        ShardedRedis(urls, placement=_keyed(SECRET), decode_responses=True) as first,
        ShardedRedis(urls, placement=_keyed(SECRET), decode_responses=True) as second,
        ShardedRedis(urls, placement=_keyed(OTHER_SECRET)) as other,
        ShardedRedis(urls) as unkeyed,
    ):
        owners = [first.node_for(key) for key in keys]
        assert owners == [second.node_for(key) for key in keys]
        assert set(owners) == set(NAMES)
        assert owners == placement("ring", NAMES, hash_key=SECRET).get_node_many(keys)
        assert sum(o != other.node_for(k) for o, k in zip(owners, keys, strict=True)) > 100
        assert sum(o != unkeyed.node_for(k) for o, k in zip(owners, keys, strict=True)) > 100
        first.mset({key: key for key in keys})
        assert second.mget(keys) == keys
        by_node = {
            name: s.client(decode_responses=True)
            for name, s in zip(NAMES, clean_redis_servers, strict=True)
        }
        assert all(by_node[o].get(k) == k for o, k in zip(owners, keys, strict=True))

    async def async_owners() -> list[str]:
        async with AsyncShardedRedis(urls, placement=_keyed(SECRET)) as client:
            return [client.node_for(key) for key in keys]

    import asyncio

    assert asyncio.run(async_owners()) == owners


def _keyed(secret: bytes) -> Placement:
    """A fresh ring over NAMES keyed by ``secret`` (each client gets its own placement)."""
    return placement("ring", NAMES, hash_key=secret)


@pytest.mark.parametrize("secret", [b"short", "a str of 16+ chars", b"x" * 65])
def test_bad_hash_key_is_refused(secret: Any) -> None:
    """A hash_key that is not 16 to 64 bytes raises InvalidOptionError, without the secret:
    when the placement is built, and when passed to a client (where it names placement=)."""
    from hashring.adapters.redis import AsyncShardedRedis

    url = f"redis://127.0.0.1:{free_port()}/0"
    with pytest.raises(InvalidOptionError) as caught:
        placement("ring", ["a"], hash_key=secret)
    assert str(secret) not in str(caught.value)
    for cls in (ShardedRedis, AsyncShardedRedis):
        with pytest.raises(InvalidOptionError, match="placement=") as caught:
            cls({"a": url}, hash_key=secret)
        assert str(secret) not in str(caught.value)


def test_from_config_reads_hash_key_env(
    clean_redis_servers: list[RedisServer], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A topology's hash_key_env names the variable holding the secret: from_config places
    like hash_key=<that secret>."""
    monkeypatch.setenv("HASHRING_TEST_SECRET", SECRET.decode())
    config = tmp_path / "topology.toml"
    lines = ['[placement]\nhash_key_env = "HASHRING_TEST_SECRET"\n']
    for name, server in zip(NAMES, clean_redis_servers, strict=True):
        lines.append(f'[nodes.{name}]\nurl = "{server.url}"\n')
    config.write_text("".join(lines))
    keys = [f"cfg:{i}" for i in range(200)]
    with (
        ShardedRedis.from_config(config) as configured,
        ShardedRedis(_urls(clean_redis_servers), placement=_keyed(SECRET)) as direct,
    ):
        assert [configured.node_for(k) for k in keys] == [direct.node_for(k) for k in keys]
        assert "0123456789abcdef" not in repr(configured)


# ------------------------------------------------------------------ odd input


def test_a_client_without_nodes_raises_empty_ring_error() -> None:
    """Every command of a client with no nodes raises EmptyRingError (a LookupError)."""
    import asyncio

    from hashring.adapters.redis import AsyncShardedRedis

    from hashring import EmptyRingError

    client = ShardedRedis({})
    calls: list[Callable[[], Any]] = [
        lambda: client.get("k"),
        lambda: client.node_for("k"),
        lambda: client.dbsize(),
        lambda: client.pipeline().get("a").execute(),
        lambda: client.scan(0),
    ]
    for call in calls:
        with pytest.raises(EmptyRingError):
            call()
    assert list(client.scan_iter()) == []
    client.close()

    async def scenario() -> None:
        async with AsyncShardedRedis({}) as aclient:
            with pytest.raises(EmptyRingError):
                await aclient.get("k")
            with pytest.raises(EmptyRingError):
                await aclient.scan(0)

    asyncio.run(scenario())


def test_odd_command_names_never_break_routing(sharded: ShardedRedis) -> None:
    """An empty or bytes-like command name is described as an unknown keyless command;
    routing never raises on it (what the server or redis-py then does is theirs)."""
    _, table = sharded._command_table()
    for empty in ("", "   ", b"", bytearray(), memoryview(b"")):
        described = table.describe((empty,))
        assert (described.name, described.fixed_keys) == ("", False)
    assert table.describe((bytearray(b"GET"), "k")).name == "get"
    assert table.describe((memoryview(b"MGET"), "a", "b")).keys_of(("MGET", "a", "b")) == [
        "a",
        "b",
    ]


def test_refusals_are_redis_errors_too(sharded: ShardedRedis) -> None:
    """redis-py code's ``except redis.RedisError`` catches the adapters' refusals, and
    ``except hashring.CrossShardError`` still does."""
    k1, k2 = _keys_on_distinct_nodes(sharded, 2)
    with pytest.raises(redis.RedisError) as caught:
        sharded.rename(k1, k2)
    assert isinstance(caught.value, CrossShardError)
    with pytest.raises(redis.RedisError) as refused:
        sharded.execute_command("MULTI")
    assert isinstance(refused.value, hashring.UnsupportedCommandError)
    for error in (caught.value, refused.value):  # redis-py's repr and fields work on them
        assert repr(error) == f"server:{type(error).__name__}"
        assert error.status_code is None


@pytest.mark.parametrize("decode", [False, True])
def test_movable_keys_are_the_bytes_the_server_reads(
    clean_redis_servers: list[RedisServer], decode: bool
) -> None:
    """Keys found by COMMAND GETKEYS (movable keys: SINTERCARD, ZUNION, LMPOP, ...) are
    routed by their bytes: redis-py's parser would decode b"\\xff..." to "\\ufffd...", a
    different key owned by another node, and answer from there (0, [], None)."""
    with ShardedRedis(_urls(clean_redis_servers), decode_responses=decode) as client:
        key = next(
            k
            for k in (b"\xff" + str(i).encode() for i in range(1000))
            if client.node_for(k) != client.node_for(k.decode("utf-8", "replace"))
        )
        client.sadd(key, "a", "b")
        assert client.sintercard(1, [key]) == 2
        assert len(client.zunion([key])) == 2
        client.rpush(key + b"list", "x")
        assert client.lpos(key + b"list", "x") == 0
        if not decode:  # LMPOP answers the key's name, which has no UTF-8 form
            assert client.lmpop(1, key + b"list", direction="LEFT") == [key + b"list", [b"x"]]
