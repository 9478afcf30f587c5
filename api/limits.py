"""Tryable in-flight limits per command key: Hystrix's semaphores, without blocking.

Greenlets never preempt each other between the check and the increment, so a plain
counter is exact. The limit is read on each try, so a changed setting applies at once.
"""

from __future__ import annotations


class InFlightLimits:
    def __init__(self) -> None:
        self._in_flight: dict[str, int] = {}

    def try_acquire(self, key: str, limit: int) -> bool:
        in_flight = self._in_flight.get(key, 0)
        if in_flight >= limit:
            return False
        self._in_flight[key] = in_flight + 1
        return True

    def release(self, key: str) -> None:
        in_flight = self._in_flight[key] - 1
        if in_flight:
            self._in_flight[key] = in_flight
        else:
            del self._in_flight[key]  # keys come and go: keep only the busy ones

    def in_flight(self, key: str) -> int:
        return self._in_flight.get(key, 0)
