"""Outcomes the broker does not see itself, sent to it in batches, not one message a call.

Semaphore-isolated commands run in the caller, and fallbacks, cache hits and a front's
own short-circuits happen there too; the broker's breakers and metrics still need them.
The client buffers them and sends one REPORT every flush (bounded: past
``MAX_OUTCOMES_PER_REPORT`` outcomes are counted as dropped, not held).
"""

from __future__ import annotations

from typing import Any

from shared.events import Event

#: Most outcomes one report carries; the rest of a burst is counted, not kept.
MAX_OUTCOMES_PER_REPORT = 10_000


class OutcomeReports:
    def __init__(self) -> None:
        self._outcomes: dict[str, list[list[Any]]] = {}
        self._count = 0
        self.dropped = 0

    def add(self, command_key: str, event: Event, latency_ms: float = 0.0) -> None:
        if self._count >= MAX_OUTCOMES_PER_REPORT:
            self.dropped += 1
            return
        self._count += 1
        outcomes = self._outcomes.get(command_key)
        if outcomes is None:
            outcomes = self._outcomes[command_key] = []
        # _value_, not .value: the same str, without enum's property lookup on every call
        outcomes.append([event._value_, round(latency_ms, 3)])

    def take(self) -> dict[str, list[list[Any]]]:
        """The outcomes gathered since the last take, and an empty buffer."""
        outcomes, self._outcomes, self._count = self._outcomes, {}, 0
        return outcomes
