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
        #: command key -> local time until which this process's trial call holds the others
        self._trial_until_s: dict[str, float] = {}
        self._heard_s = clock()

    def short_circuits(self, command_key: str) -> bool:
        """True while the command's breaker is OPEN and its sleep window runs."""
        if not self._open_until_s:
            return False
        open_until_s = self._open_until_s.get(command_key)
        if open_until_s is None:
            return False
        now_s = self._clock()
        if self._forgot_as_stale(now_s):
            return False
        return now_s < open_until_s

    def short_circuits_here(self, command_key: str, sleep_s: float) -> bool:
        """For a command run in this process (semaphore isolation), where no broker stands
        between its calls and the dependency to let one trial through: once the sleep
        window ends, one call here is the trial, and the others short-circuit for
        ``sleep_s`` more, until the broker has the trial's outcome (CLOSED, or OPEN again)."""
        if not self._states:
            return False
        now_s = self._clock()
        if self._forgot_as_stale(now_s) or command_key not in self._states:
            return False
        if now_s < self._open_until_s.get(command_key, 0.0) or now_s < self._trial_until_s.get(command_key, 0.0):
            return True
        self._trial_until_s[command_key] = now_s + sleep_s
        return False

    def _forgot_as_stale(self, now_s: float) -> bool:
        """Forget every breaker if no snapshot came for STALE_AFTER_S: the broker decides."""
        if now_s - self._heard_s <= STALE_AFTER_S:
            return False
        self._open_until_s.clear()
        self._states.clear()
        self._trial_until_s.clear()
        return True

    def state(self, command_key: str) -> str:
        return self._states.get(command_key, "CLOSED")

    def update(self, command_key: str, state: str, retry_in_ms: int) -> None:
        """One breaker changed (or was re-published)."""
        if state == "CLOSED":
            self._states.pop(command_key, None)
            self._open_until_s.pop(command_key, None)
            self._trial_until_s.pop(command_key, None)
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
        for command_key in [key for key in self._trial_until_s if key not in breakers]:
            del self._trial_until_s[command_key]
        for command_key, (state, retry_in_ms) in breakers.items():
            self.update(command_key, state, retry_in_ms)
