"""The *cache* fallback: the last good value of a call, kept in the caller (the front).

``run()`` happens in a worker but ``fallback()`` in the caller, so the worker's cache is
out of reach when it matters; the caller remembers each good answer it sees instead, in
a bounded least-recently-used map, and a failing call falls back to it.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, ClassVar, Hashable

from api import Command, compose

#: Entries a LastGoodValues keeps before it forgets the least recently used.
MAX_LAST_GOOD_ENTRIES = 10_000

_MISSING = object()


class LastGoodValues:
    """A bounded map of the last good value per key, least recently used first out."""

    def __init__(self, max_entries: int = MAX_LAST_GOOD_ENTRIES) -> None:
        self._max_entries = max_entries
        self._values: OrderedDict[Hashable, Any] = OrderedDict()

    def remember(self, key: Hashable, value: Any) -> None:
        self._values[key] = value
        self._values.move_to_end(key)
        while len(self._values) > self._max_entries:
            self._values.popitem(last=False)

    def recall(self, key: Hashable, default: Any = None) -> Any:
        value = self._values.get(key, _MISSING)
        if value is _MISSING:
            return default
        self._values.move_to_end(key)
        return value

    def __len__(self) -> int:
        return len(self._values)


class FallsBackToLastGood(Command):
    """A command whose fallback is its last good value for ``last_good_key()``, else ``when_never_good()``.

    Only values seen through ``observe()`` or ``execute()`` on the command itself are
    remembered, and never a fallback's own value.
    """

    last_good: ClassVar[LastGoodValues]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "last_good" not in cls.__dict__:
            cls.last_good = LastGoodValues()

    def last_good_key(self) -> Hashable:
        return tuple(self.arguments.values())

    def when_never_good(self) -> Any:
        """The fallback before any good value has been seen."""
        return None

    def fallback(self) -> Any:
        self._fell_back = True
        return self.last_good.recall(self.last_good_key(), self.when_never_good())

    def execute(self, client: Any = None) -> Any:
        return self._remembered(super().execute(client))

    def observe(self, client: Any = None) -> compose.Observable:
        return compose.map(super().observe(client), self._remembered)

    def _remembered(self, value: Any) -> Any:
        if not self.__dict__.get("_fell_back"):
            self.last_good.remember(self.last_good_key(), value)
        return value
