"""Faults injected into a worker's calls on an operator's word (``seawall chaos``).

The latency monkey of the seed, and more: extra latency, errors, calls that hang where
nothing can interrupt them, a worker killed mid-call. Injected here, inside the call
and under its deadline, so the whole real path — deadline, watchdog, broker, breaker,
fallback — is exercised.
"""

from __future__ import annotations

import math
import os
import random
import signal
from dataclasses import dataclass
from typing import Any, Callable

import gevent
from gevent import monkey

_blocking_sleep: Callable[[float], None] = monkey.get_original("time", "sleep")

#: A hung call blocks this long (the watchdog ends the process well before).
HANG_S = 3600.0


class ChaosError(Exception):
    """The failure ``seawall chaos errors`` injects."""


@dataclass(frozen=True)
class ChaosSettings:
    latency_ms: float = 0.0
    latency_pct: float = 0.0
    error_pct: float = 0.0
    hang_pct: float = 0.0

    @classmethod
    def from_wire(cls, settings: dict[str, Any]) -> ChaosSettings:
        """Settings sent by the broker; anything unknown or out of range is refused."""
        values = {}
        for name, value in settings.items():
            if name not in cls.__dataclass_fields__:
                raise ValueError(f"unknown chaos setting {name!r}")
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                    or value < 0 or (name.endswith("_pct") and value > 100):
                raise ValueError(f"chaos setting {name} must be a number in range, got {value!r}")
            values[name] = float(value)
        return cls(**values)


#: What a worker injects until a broker says otherwise: nothing.
NO_CHAOS = ChaosSettings()


class Chaos:
    def __init__(self, chance: Callable[[], float] = lambda: random.uniform(0, 100)) -> None:
        self.settings = NO_CHAOS
        self._chance = chance

    def inject(self) -> None:
        """Run before each call's run(), inside its deadline."""
        settings = self.settings
        if settings.hang_pct and self._chance() < settings.hang_pct:
            _blocking_sleep(HANG_S)  # blocks the whole process: only the watchdog ends it
        if settings.latency_ms and self._chance() < settings.latency_pct:
            gevent.sleep(settings.latency_ms / 1000)
        if settings.error_pct and self._chance() < settings.error_pct:
            raise ChaosError(f"injected by seawall chaos errors ({settings.error_pct:g}%)")

    @staticmethod
    def kill_now() -> None:
        """``seawall chaos kill``: die as kill -9 would, holding whatever we hold."""
        os.kill(os.getpid(), signal.SIGKILL)
