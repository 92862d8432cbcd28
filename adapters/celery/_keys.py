"""Where a task's affinity key comes from, and how it becomes a hashring key.

A task names its key in one of three places, looked up in this order; the first that is
present and not None is the key:

1. a message header (``apply_async(headers={"tenant_id": ...})``), when ``key_header`` is set;
2. a task argument, when ``key_kwarg`` is set: the keyword argument of that name, or, when
   Celery hands the router the task object and the task's ``run`` takes a parameter of that
   name, the positional argument in its place (``tenant_task.delay("acme", ...)``);
3. ``key_func(name, args, kwargs, options)``, when set.

Accepted key values: ``str`` (placed by its UTF-8 bytes), bytes-like values (``bytes``,
``bytearray``, ``memoryview``) and ``int`` (not ``bool``), which is placed as its decimal
``str``: ``tenant_id=42`` and ``tenant_id="42"`` go to the same queue, as they should once a
JSON round trip has turned one into the other. Anything else is an
:class:`~hashring.InvalidKeyError`, and a ``str`` with a lone surrogate a
:class:`~hashring.KeyEncodingError`: both raised by ``apply_async`` before anything is
published, never on a worker.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from hashring import InvalidKeyError, InvalidOptionError, Key
from hashring._placement.keys import check_key, short_repr

__all__ = ["KeyFunc", "TaskKeys", "task_key"]

KeyFunc = Callable[[str, Sequence[Any], Mapping[str, Any], Mapping[str, Any]], object]
"""``key_func(task_name, args, kwargs, options) -> key or None``."""

_NOT_POSITIONAL = -1


def task_key(value: object) -> Key:
    """``value`` as a hashring key: str and bytes-like as :func:`hashring` places them, an
    ``int`` as its decimal ``str``.

    >>> task_key(42), task_key("42"), task_key(b"42")
    ('42', '42', b'42')

    Runtime complexity: O(len(value)).

    Raises:
        KeyEncodingError: a str with no UTF-8 form (a lone surrogate).
        InvalidKeyError: a bool, a float, None or any other type, or an int too long to
            print (more than Python's 4,300 digits).
    """
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            return int.__repr__(value)  # the base class's: a subclass cannot change it
        except ValueError:  # more digits than sys.get_int_max_str_digits()
            raise InvalidKeyError(
                f"int key {short_repr(value)} has too many digits: pass it as a str"
            ) from None
    if isinstance(value, (bool, float)):
        raise InvalidKeyError(
            f"a task key must be str, bytes or int, not {type(value).__name__} "
            f"({short_repr(value)}): a float or bool names no tenant reliably; convert it "
            "explicitly"
        )
    return check_key(value)


class TaskKeys:
    """Finds a task's key (see the module docstring); immutable once built.

    Args:
        key_kwarg: the task argument holding the key (by keyword or position).
        key_header: the message header holding the key.
        key_func: ``key_func(name, args, kwargs, options) -> key or None``.

    Raises:
        InvalidOptionError: none of the three is given, or one has the wrong type.
    """

    __slots__ = ("_positions", "key_func", "key_header", "key_kwarg")

    def __init__(
        self,
        *,
        key_kwarg: str | None = None,
        key_header: str | None = None,
        key_func: KeyFunc | None = None,
    ) -> None:
        for option, value in (("key_kwarg", key_kwarg), ("key_header", key_header)):
            if value is not None and (not isinstance(value, str) or not value):
                raise InvalidOptionError(
                    f"{option} must be a non-empty str or None, not {short_repr(value)}"
                )
        if key_func is not None and not callable(key_func):
            raise InvalidOptionError(
                f"key_func must be callable(name, args, kwargs, options), not "
                f"{type(key_func).__name__}"
            )
        if key_kwarg is None and key_header is None and key_func is None:
            raise InvalidOptionError(
                "say where a task's key comes from: key_kwarg='tenant_id' (a task argument), "
                "key_header='tenant_id' (a message header) or key_func=..."
            )
        self.key_kwarg = key_kwarg
        self.key_header = key_header
        self.key_func = key_func
        self._positions: dict[type, int] = {}

    def find(
        self,
        name: str,
        args: Sequence[Any] | None,
        kwargs: Mapping[str, Any] | None,
        options: Mapping[str, Any] | None,
        task: Any = None,
    ) -> Key | None:
        """The key of one task message, or None when it has none.

        Runtime: O(1) dictionary look-ups plus the key's length; the position of
        ``key_kwarg`` in a task's signature is computed once per task class.

        Raises:
            KeyEncodingError, InvalidKeyError: the key found is not a valid key (see
                :func:`task_key`).
        """
        value: object = None
        if self.key_header is not None and options:
            headers = options.get("headers")
            if isinstance(headers, Mapping):
                value = headers.get(self.key_header)
        if value is None and self.key_kwarg is not None:
            if kwargs:
                value = kwargs.get(self.key_kwarg)
            if value is None and args and task is not None:
                position = self._position(task)
                if 0 <= position < len(args):
                    value = args[position]
        if value is None and self.key_func is not None:
            value = self.key_func(name, tuple(args or ()), kwargs or {}, options or {})
        return None if value is None else task_key(value)

    def _position(self, task: Any) -> int:
        """The index of ``key_kwarg`` among the positional parameters of ``task.run``."""
        cls = type(task)
        position = self._positions.get(cls)
        if position is None:
            position = _position_of(self.key_kwarg, getattr(task, "run", None))
            self._positions[cls] = position  # a benign race: every thread computes the same
        return position

    def __repr__(self) -> str:
        parts = [
            f"{option}={value!r}"
            for option, value in (("key_header", self.key_header), ("key_kwarg", self.key_kwarg))
            if value is not None
        ]
        if self.key_func is not None:
            parts.append(f"key_func={getattr(self.key_func, '__qualname__', 'callable')}")
        return ", ".join(parts)


def _position_of(parameter: str | None, run: object) -> int:
    """The index of ``parameter`` among ``run``'s positional parameters, or -1."""
    if parameter is None or not callable(run):
        return _NOT_POSITIONAL
    try:
        signature = inspect.signature(run)
    except (TypeError, ValueError):  # a builtin or a callable without a signature
        return _NOT_POSITIONAL
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    for index, each in enumerate(signature.parameters.values()):
        if each.kind not in positional:
            break
        if each.name == parameter:
            return index
    return _NOT_POSITIONAL
