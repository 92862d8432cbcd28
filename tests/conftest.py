"""Shared pytest fixtures for the hashring test suite."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from http_servers import HttpServer, http_server_pool
from hypothesis import settings
from redis_servers import RedisServer, RedisServerFactory, redis_server_pool

from hashring._placement import scores

# --------------------------------------------------------------------------------------------
# Real redis-server processes (machinery in tests/redis_servers.py).
#
#   redis_server_factory   function  factory(n=1, *, binary=None) -> list[RedisServer]
#   redis_servers          function  3 fresh servers
#   shared_redis_servers   session   3 servers shared by the whole run (do not kill them)
#   clean_redis_servers    function  shared_redis_servers after FLUSHALL
#
# Servers bind 127.0.0.1 on OS-chosen ports (never 6379), persist nothing, and are stopped at
# teardown. Mark tests that use them with @pytest.mark.redis.
# --------------------------------------------------------------------------------------------


@pytest.fixture
def redis_server_factory(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[RedisServerFactory]:
    """Callable starting fresh redis-servers; all of them are stopped at teardown."""
    with redis_server_pool(tmp_path_factory) as factory:
        yield factory


@pytest.fixture
def redis_servers(redis_server_factory: RedisServerFactory) -> list[RedisServer]:
    """Three fresh, empty redis-servers owned by this test."""
    return redis_server_factory(3)


@pytest.fixture(scope="session")
def shared_redis_servers(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[list[RedisServer]]:
    """Three redis-servers shared by the whole session; prefer clean_redis_servers."""
    with redis_server_pool(tmp_path_factory) as factory:
        yield factory(3)


@pytest.fixture
def clean_redis_servers(shared_redis_servers: list[RedisServer]) -> Iterator[list[RedisServer]]:
    """The shared servers, FLUSHALLed (restarted if a test stopped one) before the test."""
    kept_clients: list[int] = []
    for server in shared_redis_servers:
        if not server.is_running():
            server.restart()
        server.flushall()
        kept_clients.append(server.client_count())
    yield shared_redis_servers
    for server, keep in zip(shared_redis_servers, kept_clients, strict=True):
        server.close_clients(keep)  # clients this test opened; avoids piling up sockets


# ------------------------------------------------------------------------ end of redis section


# --------------------------------------------------------------------------------------------
# Hypothesis: no per-example deadline. These machines are shared and noisy; speed is checked by
# the benchmarks in bench/, never by timing tests. Local runs draw fresh examples every time
# (that is how new counterexamples are found); with CI set in the environment (.ci/run sets it)
# the examples are derandomized, so a commit's CI verdict is the same on every machine.
# --------------------------------------------------------------------------------------------

settings.register_profile("hashring", deadline=None, print_blob=True)
settings.register_profile(
    "ci", parent=settings.get_profile("hashring"), derandomize=True, database=None
)
settings.load_profile("ci" if os.environ.get("CI") else "hashring")


# --------------------------------------------------------------------------------------------
# Real HTTP node processes (tests/http_node.py): each answers with JSON naming itself.
#
#   http_servers   function  3 nodes named n0, n1, n2 (handles can kill() and restart())
# --------------------------------------------------------------------------------------------


@pytest.fixture
def http_servers() -> Iterator[list[HttpServer]]:
    """Three fresh HTTP nodes named n0, n1, n2 on free loopback ports."""
    with http_server_pool() as servers:
        for i in range(3):
            servers.append(HttpServer.start(f"n{i}"))
        yield servers


# --------------------------------------------------------------------------------------------
# The optional C extension modules' two paths each: the C code and the pure-Python fallback
# it replaces when the module is missing. The "native" case fails where
# HASHRING_REQUIRE_NATIVE=1 (CI) and the module was not built; elsewhere an install without a
# C compiler skips it, and the "python" case still runs.
#
#   rendezvous_path   function  "native" or "python": scorings built in the test use that path
#   ring_path         function  "native" or "python": HashRings built in the test use that path
#                               (a ring keeps the path it was built with)
# --------------------------------------------------------------------------------------------


def _native_or_skip(module: str, compiled: object) -> None:
    """Fail or skip the "native" case of a path fixture whose C ``module`` is missing."""
    if compiled is None:
        if os.environ.get("HASHRING_REQUIRE_NATIVE") == "1":
            pytest.fail(f"{module} is not built")
        pytest.skip(f"{module} is not built (optional C extension)")


@pytest.fixture(params=["native", "python"])
def rendezvous_path(request: pytest.FixtureRequest) -> Iterator[str]:
    """Rendezvous and Maglev scorings built inside the test score in C ("native") or with
    Python integers and numpy ("python", the fallback when the module is missing)."""
    compiled = scores.NATIVE
    if request.param == "native":
        _native_or_skip("hashring._placement._rendezvous_native", compiled)
    else:
        scores.NATIVE = None
    try:
        yield str(request.param)
    finally:
        scores.NATIVE = compiled


@pytest.fixture(params=["native", "python"])
def ring_path(request: pytest.FixtureRequest) -> Iterator[str]:
    """HashRings built inside the test look up through the C index ("native") or the
    Python bucket table ("python")."""
    from hashring._placement import ring as ring_module

    native = ring_module._NATIVE
    if request.param == "native":
        _native_or_skip("hashring._placement._ring_native", native)
    else:
        ring_module._NATIVE = None
    try:
        yield str(request.param)
    finally:
        ring_module._NATIVE = native
