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
#: Decimals of a reported latency in milliseconds: to the microsecond.
LATENCY_DECIMALS = 3


class OutcomeReports:
    def __init__(self) -> None:
        #: command key -> (event name, unrounded latency in ms) per outcome
        self._outcomes: dict[str, list[tuple[str, float]]] = {}
        self._count = 0
        self.dropped = 0

    def add(self, command_key: str, event: Event, latency_ms: float = 0.0) -> None:
        """Keep one outcome for the next report; called once or more on every semaphore
        call, so the latency is rounded in ``take()``, by the reporting greenlet, not here
        (``round(x, 3)`` costs about 0.3 µs)."""
        if self._count >= MAX_OUTCOMES_PER_REPORT:
            self.dropped += 1
            return
        self._count += 1
        outcomes = self._outcomes.get(command_key)
        if outcomes is None:
            outcomes = self._outcomes[command_key] = []
        # _value_, not .value: the same str, without enum's property lookup on every call
        outcomes.append((event._value_, latency_ms))

    def take(self) -> dict[str, list[list[Any]]]:
        """The outcomes gathered since the last take, as a report carries them
        (``[event name, latency in ms to the µs]`` each), and an empty buffer."""
        outcomes, self._outcomes, self._count = self._outcomes, {}, 0
        return {command_key: [[event, round(latency_ms, LATENCY_DECIMALS)] for event, latency_ms in kept]
                for command_key, kept in outcomes.items()}
