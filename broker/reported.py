"""Outcomes that fronts reported, waiting to be counted a slice at a time.

Why: a front reports what the broker did not see (semaphore commands, fallbacks), up to
``protocol.MAX_REPORT_OUTCOMES`` outcomes in one REPORT. Counting the first outcome of a
new command key builds its record and breaker and writes log lines: a few hundred µs
each on a loaded machine. Counted in one go, a caller's flood of made-up keys held the
broker's loop for over 2 s. Its workers then heard no heartbeat, called it silent and
made their sockets again, and a call on its way to one was lost until its deadline.
Kept here, the outcomes are counted a time budget per loop turn, so heartbeats and calls
go on between slices. The backlog is bounded: a report that would take it past
``max_outcomes`` is refused whole, and the broker logs it.
"""

from __future__ import annotations

import math
from collections import deque
from typing import TYPE_CHECKING, Any, Callable, Iterator

from broker.breaker import HEALTH_EVENTS, Admission
from shared import protocol
from shared.events import Event
from shared.log_throttle import LogThrottle

if TYPE_CHECKING:
    from broker.call_log import CallLog
    from broker.commands import CommandRegistry

#: A report that brings the outcomes waiting to at most this many is counted as it is read.
INLINE_OUTCOMES = 200
#: Reported outcomes waiting to be counted, at most: five of the largest reports.
MAX_WAITING_OUTCOMES = 5 * protocol.MAX_REPORT_OUTCOMES
#: At most one ``report_dropped`` line this often; it counts what was refused since the last.
DROP_LOG_INTERVAL_S = 10.0

#: One command key's reported outcomes: [(event, latency_ms), ...].
Outcomes = list[tuple[Event, float]]


class ReportBacklog:
    def __init__(self, max_outcomes: int) -> None:
        self.max_outcomes = max_outcomes
        #: outcomes held, not yet counted
        self.pending = 0
        self._reports: deque[Iterator[tuple[str, Outcomes]]] = deque()

    def add(self, outcomes: dict[str, Outcomes]) -> bool:
        """Hold one report's outcomes behind the earlier ones; False (nothing held) if
        they would take the backlog past ``max_outcomes``."""
        count = sum(map(len, outcomes.values()))
        if self.pending + count > self.max_outcomes:
            return False
        if count:
            self._reports.append(iter(outcomes.items()))
            self.pending += count
        return True

    def next_key(self) -> tuple[str, Outcomes] | None:
        """The oldest command key's outcomes, taken out of the backlog; None when empty."""
        while self._reports:
            key_outcomes = next(self._reports[0], None)
            if key_outcomes is not None:
                self.pending -= len(key_outcomes[1])
                return key_outcomes
            self._reports.popleft()
        return None


class ReportedOutcomes:
    """What fronts reported, counted into the commands' records and breakers in slices."""

    def __init__(self, commands: CommandRegistry, call_log: CallLog, clock: Callable[[], float], logger: Any,
                 max_waiting: int = MAX_WAITING_OUTCOMES) -> None:
        self._commands = commands
        self._call_log = call_log
        self._clock = clock
        self._log = logger
        #: ``backlog.pending``: outcomes waiting (the loop reads it twice a turn: a plain attribute)
        self.backlog = ReportBacklog(max_waiting)
        self._dropped_reports = 0
        self._dropped_outcomes = 0
        self._drop_lines = LogThrottle(DROP_LOG_INTERVAL_S, clock)

    def receive(self, report: protocol.Report) -> None:
        """Count ``report`` now if few outcomes wait, else hold it for the loop's slices;
        refuse it (logged) if it would take the backlog past its bound."""
        if not self.backlog.add(report.outcomes):
            self._dropped(sum(map(len, report.outcomes.values())))
        elif self.backlog.pending <= INLINE_OUTCOMES:
            self.count(math.inf)

    def _dropped(self, outcomes: int) -> None:
        self._dropped_reports += 1
        self._dropped_outcomes += outcomes
        if self._drop_lines.due() is None:
            return
        self._log.warning("report_dropped", reports=self._dropped_reports, outcomes=self._dropped_outcomes,
                          outcomes_waiting=self.backlog.pending, max_waiting=self.backlog.max_outcomes)
        self._dropped_reports = self._dropped_outcomes = 0

    def count(self, budget_s: float) -> None:
        """Count waiting outcomes, oldest first, until none wait or ``budget_s`` is spent."""
        now_s = self._clock()
        deadline_s = now_s + budget_s
        while (key_outcomes := self.backlog.next_key()) is not None:
            self._count_key(*key_outcomes, now_s)
            now_s = self._clock()
            if now_s >= deadline_s:
                return

    def _count_key(self, key: str, outcomes: Outcomes, now_s: float) -> None:
        """One command's outcomes. A semaphore command runs in its caller, so the first
        outcome reported after an open breaker's sleep window is taken as its trial."""
        record = self._commands.get(key)
        for event, latency_ms in outcomes:
            trial = 0
            if event in HEALTH_EVENTS and record.breaker.admit(now_s) is Admission.TRIAL:
                trial = record.breaker.trial_token
            record.record(event, latency_ms, trial)
            self._call_log.reported(key, record.pool, event, latency_ms)
