"""The front's copy of the broker's breakers, so an open one costs no message at all.

The broker publishes every breaker change at once and a snapshot of every non-closed
breaker each second. A front short-circuits a call here while the breaker is OPEN and
its sleep window runs; after that it sends, and the broker lets exactly one trial
through. A front that stops hearing snapshots forgets them: the broker decides again.
"""

from __future__ import annotations

import time
from typing import Callable

#: With no snapshot for this long, the front stops trusting what it knows.
STALE_AFTER_S = 3.0


class BreakerView:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        #: command key -> local time until which calls short-circuit here
        self._open_until_s: dict[str, float] = {}
        self._states: dict[str, str] = {}
        self._heard_s = clock()

    def short_circuits(self, command_key: str) -> bool:
        """True while the command's breaker is OPEN and its sleep window runs."""
        if not self._open_until_s:
            return False
        open_until_s = self._open_until_s.get(command_key)
        if open_until_s is None:
            return False
        now_s = self._clock()
        if now_s - self._heard_s > STALE_AFTER_S:
            self._open_until_s.clear()
            self._states.clear()
            return False
        return now_s < open_until_s

    def state(self, command_key: str) -> str:
        return self._states.get(command_key, "CLOSED")

    def update(self, command_key: str, state: str, retry_in_ms: int) -> None:
        """One breaker changed (or was re-published)."""
        if state == "CLOSED":
            self._states.pop(command_key, None)
            self._open_until_s.pop(command_key, None)
            return
        self._states[command_key] = state
        if state == "OPEN":
            self._open_until_s[command_key] = self._clock() + retry_in_ms / 1000
        else:
            self._open_until_s.pop(command_key, None)

    def replace(self, breakers: dict[str, tuple[str, int]]) -> None:
        """A snapshot: every breaker not listed is CLOSED."""
        self._heard_s = self._clock()
        self._states.clear()
        self._open_until_s.clear()
        for command_key, (state, retry_in_ms) in breakers.items():
            self.update(command_key, state, retry_in_ms)
