"""At most one log line per key in an interval, and how many were held back.

Why: a fault that repeats at line rate (a peer refused on every reconnect, a view that
fails on every stream round, reports dropped in a flood) would otherwise bury every other
line in the log just when an on-call engineer reads it. So the first occurrence is
logged at once, the next ones within the interval are only counted, and the first one
after it is logged with that count: the log still says how often it happened.
"""

from __future__ import annotations

import time
from typing import Callable, Hashable

#: Keys remembered at most; past this all are forgotten, so each gets its next line at once.
MAX_KEYS = 1000


class LogThrottle:
    """Says whether a line about ``key`` is due now. One instance per kind of line; keys
    tell its subjects apart (a peer, a message kind), or leave the default for one."""

    def __init__(self, interval_s: float, clock: Callable[[], float] = time.monotonic,
                 max_keys: int = MAX_KEYS) -> None:
        self.interval_s = interval_s
        self._clock = clock
        self._max_keys = max_keys
        #: key -> (when its last line was due, occurrences held back since)
        self._keys: dict[Hashable, tuple[float, int]] = {}

    def due(self, key: Hashable = None) -> int | None:
        """The number held back since ``key``'s last line if a line is due now (0 the
        first time), else None, and this occurrence is counted as held back."""
        now_s = self._clock()
        last = self._keys.get(key)
        if last is not None and now_s - last[0] < self.interval_s:
            self._keys[key] = (last[0], last[1] + 1)
            return None
        if last is None and len(self._keys) >= self._max_keys:
            self._keys.clear()
        self._keys[key] = (now_s, 0)
        return 0 if last is None else last[1]
