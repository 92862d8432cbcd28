"""The rest of redis-py's public surface on the sharded clients: what works across nodes
(response callbacks, retries), and the names that cannot, each refused with what to use.

Every public name of ``redis.Redis`` and ``redis.asyncio.Redis`` either works on the
sharded clients or raises ``UnsupportedCommandError`` naming what to use instead:

==========================  ===============================================================
``response_callbacks``,     a view of the first node's callbacks; setting or deleting one
``set_response_callback``   sets it on every node's client (and on nodes added later), so
                            answers look exactly as redis.Redis's with that callback; a
                            command split over nodes (MGET, DBSIZE, ...) whose callback was
                            set here is refused: its parts could not be merged
``get_retry``/``set_retry`` the first node's retry / set on every node (and later ones)
``connection``              None, as on a pooled redis.Redis (no single connection)
``lock``, ``pubsub``        see the clients (``Lock`` on the name's owner, ``_pubsub``)
``REFUSED_METHODS``         calling them raises UnsupportedCommandError
``REFUSED_ATTRIBUTES``      reading them raises UnsupportedCommandError that is also an
                            AttributeError: redis-py's own duck typing (``AsyncScript``,
                            the asyncio ``Lock``) falls back to ``get_encoder()`` on
                            AttributeError, and ``getattr(client, name, default)`` works
``REFUSED_PUBSUB``          the same refusal (``RefusedAttributeError``) for the names of
                            redis-py's ``PubSub`` that belong to its one connection, read
                            on a sharded ``pubsub()``
==========================  ===============================================================
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, MutableMapping
from typing import Any

from ._errors import UnsupportedCommandError

__all__ = [
    "REFUSED_ATTRIBUTES",
    "REFUSED_METHODS",
    "REFUSED_PUBSUB",
    "Callbacks",
    "RefusedAttributeError",
    "Surface",
    "refuse",
    "refuse_pubsub_attributes",
]

_ONE_NODE = "for one node use clients[name] or client_for(key)"
_MODULE = (
    "module commands are not routed by key here; use client_for(key).{name}() on the "
    "node that owns the key"
)
_SENTINEL = "Sentinel commands go to a Sentinel: use redis.sentinel.Sentinel"
_HIMPORT = "HIMPORT field sets are per connection; use client_for(key).{name}(...)"

REFUSED_METHODS: dict[str, str] = {
    "monitor": "MONITOR watches one server: use clients[name].monitor() for each node",
    "client": "a sharded client has no single connection to lend; "
    "use clients[name].client() or client_for(key).client()",
    "from_url": "a sharded client needs a URL per node: use "
    "ShardedRedis({name: url, ...}) or ShardedRedis.from_config(path)",
    "from_pool": "a sharded client needs a client per node: use "
    "ShardedRedis({name: redis.Redis(connection_pool=pool), ...})",
    "get_cache": f"client-side caches are per node; {_ONE_NODE}",
    "parse_response": f"it reads one connection's reply; {_ONE_NODE}",
    "load_external_module": "module commands are not routed by key here; "
    "use client_for(key).load_external_module(...) on the key's node",
    "keyspace_notifications": "notifications come from the node holding each key: "
    "use pubsub().psubscribe('__keyspace@0__:*'), which listens on every node",
    **{name: _MODULE.format(name=name) for name in
       ("bf", "cf", "cms", "ft", "json", "tdigest", "topk", "ts", "vset")},
    **{name: _SENTINEL for name in (
        "sentinel", "sentinel_ckquorum", "sentinel_failover", "sentinel_flushconfig",
        "sentinel_get_master_addr_by_name", "sentinel_master", "sentinel_masters",
        "sentinel_monitor", "sentinel_remove", "sentinel_reset", "sentinel_sentinels",
        "sentinel_set", "sentinel_slaves",
    )},
    **{name: _HIMPORT.format(name=name) for name in
       ("himport_discard", "himport_discard_all", "himport_prepare")},
}  # fmt: skip
"""redis-py methods a sharded client cannot run as one server would, with what to use."""

REFUSED_ATTRIBUTES: dict[str, str] = {
    "connection_pool": "each node has its own pool: use clients[name].connection_pool",
    "auto_close_connection_pool": "close() closes the pools of the node clients this "
    "client created; see clients[name].auto_close_connection_pool",
    **dict.fromkeys(
        ("single_connection_client", "single_connection_lock"),
        "pass single_connection_client=True to give every node client one connection; "
        "see clients[name]",
    ),
    "himport_registry": _HIMPORT.format(name="himport_registry"),
}
"""redis-py attributes a sharded client has no single value for, with what to use."""


_NODE_PUBSUB = "a sharded pub/sub holds one redis-py PubSub per node: use the node's own "
_CONNECTION = (
    f"{_NODE_PUBSUB}client (clients[name].pubsub()) for one connection; the sharded "
    "pub/sub connects each node on subscribe(), psubscribe(), ssubscribe() or ping()"
)
_READ = f"{_NODE_PUBSUB}connection: read with get_message(), listen() or run()"

REFUSED_PUBSUB: dict[str, str] = {
    **dict.fromkeys(("connection", "connection_pool", "on_connect", "shard_hint",
                     "execute_command", "check_health", "clean_health_check_responses",
                     "is_health_check_response", "health_check_response",
                     "health_check_response_b", "health_check_response_counter",
                     "push_handler_func"), _CONNECTION),
    **dict.fromkeys(("parse_response", "handle_message", "subscribed_event",
                     "pending_unsubscribe_channels", "pending_unsubscribe_patterns",
                     "pending_unsubscribe_shard_channels"), _READ),
}  # fmt: skip
"""redis-py ``PubSub`` names of its single connection, refused on a sharded pub/sub."""


class RefusedAttributeError(UnsupportedCommandError, AttributeError):
    """An attribute of redis.Redis with no single value on a sharded client: an
    UnsupportedCommandError, and an AttributeError so ``getattr(client, name, default)``
    and redis-py's own fallbacks keep working."""


def refuse(name: str) -> UnsupportedCommandError:
    """The refusal of ``name`` (see ``REFUSED_METHODS`` / ``REFUSED_ATTRIBUTES``)."""
    if name in REFUSED_ATTRIBUTES:
        return RefusedAttributeError(
            f"{name} is not available on a sharded client: {REFUSED_ATTRIBUTES[name]}"
        )
    return UnsupportedCommandError(
        f"{name}() is not available on a sharded client: {REFUSED_METHODS[name]}"
    )


def _refused_pubsub(name: str) -> property:
    def refused(self: object) -> Any:
        raise RefusedAttributeError(
            f"{name} is not available on a sharded pub/sub: {REFUSED_PUBSUB[name]}"
        )

    return property(refused, doc=f"Refused: {REFUSED_PUBSUB[name]}.")


def refuse_pubsub_attributes(cls: type) -> None:
    """Install the ``REFUSED_PUBSUB`` refusals on a sharded pub/sub class (a name the
    class offers itself is kept)."""
    for name in REFUSED_PUBSUB:
        if not hasattr(cls, name):
            setattr(cls, name, _refused_pubsub(name))


def _refused_method(name: str) -> Any:
    def refused(*args: Any, **kwargs: Any) -> Any:
        raise refuse(name)

    refused.__name__ = name
    refused.__doc__ = f"Refused: raises UnsupportedCommandError ({REFUSED_METHODS[name]})."
    return refused


def _refused_attribute(name: str) -> property:
    def refused(self: object) -> Any:
        raise refuse(name)

    return property(refused, doc=f"Refused: {REFUSED_ATTRIBUTES[name]}.")


class Callbacks(MutableMapping[str, Any]):
    """``response_callbacks`` of a sharded client: reads the first node's callbacks;
    a write or delete applies to every node's client and is remembered for nodes added
    later. Keys are case-insensitive, as redis-py's."""

    def __init__(self, surface: Surface) -> None:
        self._surface = surface

    def _view(self) -> MutableMapping[str, Any]:
        view: MutableMapping[str, Any] = self._surface._default_client().response_callbacks
        return view

    def __getitem__(self, command: str) -> Any:
        return self._view()[command]

    def __setitem__(self, command: str, callback: Any) -> None:
        self._surface._settings[("callback", command.upper())] = callback
        for client in self._surface.clients.values():
            client.response_callbacks[command] = callback

    def __delitem__(self, command: str) -> None:
        self._view()[command]  # KeyError as a dict, before changing anything
        self._surface._settings[("callback", command.upper())] = _DELETED
        for client in self._surface.clients.values():
            client.response_callbacks.pop(command, None)

    def __iter__(self) -> Iterator[str]:
        return iter(self._view())

    def __len__(self) -> int:
        return len(self._view())

    def __contains__(self, command: object) -> bool:
        return command in self._view()


_DELETED = object()


class Surface:
    """redis-py's client-wide settings on a sharded client (mixed into both clients)."""

    clients: Any
    _default_client: Callable[[], Any]
    _settings: dict[tuple[str, str], Any]

    @property
    def response_callbacks(self) -> Callbacks:
        """Command -> callback turning a node's reply into the answer (see ``Callbacks``)."""
        return Callbacks(self)

    def set_response_callback(self, command: str, callback: Callable[..., Any]) -> None:
        """Set a custom response callback on every node (and nodes added later)."""
        self.response_callbacks[command] = callback

    def get_retry(self) -> Any:
        """The first node's ``Retry`` (every node's, after ``set_retry``)."""
        return self._default_client().get_retry()

    def set_retry(self, retry: Any) -> None:
        """Use ``retry`` on every node's client (and nodes added later)."""
        self._settings[("retry", "")] = retry
        for client in self.clients.values():
            client.set_retry(retry)

    @property
    def connection(self) -> None:
        """None, as on a pooled ``redis.Redis``: commands borrow a connection per node."""
        return None

    def _check_merge(self, args: tuple[Any, ...]) -> None:
        """Raises:
        UnsupportedCommandError: ``args`` run on several nodes, and a response callback
            set on this client reshapes its answers: the merge (sum, concatenation, ...)
            reads redis-py's own answer shapes, so one server's answer cannot be rebuilt.
        """
        if not self._settings:
            return
        first = args[0]
        name = bytes(first).decode() if isinstance(first, (bytes, bytearray)) else str(first)
        if ("callback", name.upper()) in self._settings:
            raise UnsupportedCommandError(
                f"{name.upper()} runs on several nodes here and its answers cannot be merged "
                "once a custom response callback has reshaped them; nothing was sent. Run it "
                "on one node with clients[name], or apply the callback to this client's "
                "answer yourself"
            )

    def _adopt(self, client: Any) -> None:
        """Apply the settings made so far (callbacks, retry) to a node added later."""
        for (kind, name), value in self._settings.items():
            if kind == "retry":
                client.set_retry(value)
            elif value is _DELETED:
                client.response_callbacks.pop(name, None)
            else:
                client.response_callbacks[name] = value


for _name in REFUSED_METHODS:
    setattr(Surface, _name, _refused_method(_name))
for _name in REFUSED_ATTRIBUTES:
    setattr(Surface, _name, _refused_attribute(_name))
