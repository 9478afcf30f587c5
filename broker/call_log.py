"""What the broker logs about calls and breakers: each failure, sampled successes,
rejection bursts, every breaker change.

Faults are what the on-call engineer tails for, so each failure, timeout and lost worker
is one line with its error. Plain successes are sampled (``[logging]
success_sample_rate``). A full pool or an open breaker turns away every call, often
thousands a second; a line each would bury everything else, so the first rejection of a
burst is logged when it happens and the rest are summed up once a second while it lasts.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from shared import protocol
from shared.events import Event

if TYPE_CHECKING:
    from broker.breaker import Breaker, BreakerState

#: A burst's count is logged this often while it lasts.
SUMMARY_INTERVAL_S = 1.0
#: Most (command, outcome) pairs counted at once; beyond that rejections are only summed.
MAX_KEYS = 1000


@dataclass
class _Burst:
    dependency: str
    started_s: float
    count: int = 0


class RejectionLog:
    def __init__(self, logger: Any, clock: Callable[[], float] = time.monotonic) -> None:
        self._log = logger
        self._clock = clock
        self._bursts: dict[tuple[str, str], _Burst] = {}
        self._next_summary_s = 0.0
        #: rejections not attributed to a key because MAX_KEYS were busy
        self.overflow = 0

    def note(self, command: str, dependency: str, outcome: str) -> None:
        key = (command, outcome)
        burst = self._bursts.get(key)
        if burst is not None:
            burst.count += 1
            return
        if len(self._bursts) >= MAX_KEYS:
            self.overflow += 1
            return
        now_s = self._clock()
        self._bursts[key] = _Burst(dependency, now_s)
        if not self._next_summary_s:
            self._next_summary_s = now_s + SUMMARY_INTERVAL_S
        self._log.warning("calls_rejected", command=command, dependency=dependency, outcome=outcome,
                          count=1, over_s=0.0, burst="started")

    def flush(self) -> None:
        """Log each burst's count since the last line; a burst with none since has ended."""
        now_s = self._clock()
        if not self._bursts or now_s < self._next_summary_s:
            return
        self._next_summary_s = now_s + SUMMARY_INTERVAL_S
        for (command, outcome), burst in list(self._bursts.items()):
            if burst.count:
                self._log.warning("calls_rejected", command=command, dependency=burst.dependency, outcome=outcome,
                                  count=burst.count, over_s=round(now_s - burst.started_s, 3), burst="ongoing")
                burst.count, burst.started_s = 0, now_s
            else:
                del self._bursts[(command, outcome)]
        if self.overflow:
            self._log.warning("calls_rejected", command="*", dependency="*", outcome="*", count=self.overflow,
                              over_s=SUMMARY_INTERVAL_S, burst="overflow")
            self.overflow = 0


#: Outcomes logged one line each (successes are sampled, rejections logged as bursts).
LOGGED_FAILURES = frozenset({Event.FAILURE, Event.TIMEOUT, Event.WORKER_LOST})
#: Outcomes fronts report (semaphore commands, fallbacks) that are logged one line each.
LOGGED_REPORTS = frozenset({Event.FAILURE, Event.TIMEOUT, Event.FALLBACK_FAILURE})
_SAMPLED_EVENTS = {Event.SUCCESS: "call_succeeded", Event.BAD_REQUEST: "call_bad_request"}
#: The log event of each breaker transition, by the state it enters.
BREAKER_EVENTS = {"OPEN": "breaker_opened", "CLOSED": "breaker_closed", "HALF_OPEN": "breaker_half_open"}


class CallLog:
    def __init__(self, logger: Any, success_sample_rate: float, clock: Callable[[], float] = time.monotonic,
                 random_fraction: Callable[[], float] = random.random) -> None:
        self._log = logger
        self.success_sample_rate = success_sample_rate
        self._random_fraction = random_fraction
        self.rejections = RejectionLog(logger, clock)

    def answered(self, command: str, dependency: str, outcome: Event, latency_ms: float, total_ms: float,
                 payload: bytes) -> None:
        """A call that reached a pool was answered with ``outcome``."""
        sampled_event = _SAMPLED_EVENTS.get(outcome)
        if sampled_event is not None:
            if self.success_sample_rate and self._random_fraction() < self.success_sample_rate:
                self._log.info(sampled_event, command=command, dependency=dependency, outcome=outcome.value,
                               latency_ms=round(latency_ms, 3), total_ms=round(total_ms, 3),
                               sample_rate=self.success_sample_rate)
        elif outcome in LOGGED_FAILURES:
            error_type, error = protocol.decode_error(payload)
            self._log.warning("call_failed", command=command, dependency=dependency, outcome=outcome.value,
                              latency_ms=round(latency_ms, 3), total_ms=round(total_ms, 3),
                              error=f"{error_type}: {error}")
        elif outcome is Event.THREAD_POOL_REJECTED:
            self.rejections.note(command, dependency, outcome.value)

    def breaker_changed(self, breaker: Breaker, old: BreakerState, new: BreakerState, reason: str) -> None:
        """A breaker moved, by its own rules or forced by an operator (``reason`` says)."""
        volume, error_pct, _ = breaker.health()
        log_method = self._log.warning if new.value == "OPEN" else self._log.info
        log_method(BREAKER_EVENTS[new.value], command=breaker.key, old=old.value, new=new.value, reason=reason,
                   error_pct=round(error_pct, 1), volume=volume)

    def reported(self, command: str, dependency: str, event: Event, latency_ms: float) -> None:
        """An outcome a front saw and reported (no error text travels with it)."""
        if event in LOGGED_REPORTS:
            self._log.warning("call_failed", command=command, dependency=dependency or "semaphore",
                              outcome=event.value, latency_ms=round(latency_ms, 3), reported_by="front")
