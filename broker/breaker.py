"""The circuit breaker of one command, held by the broker for every front.

States and transitions (every change goes through :meth:`Breaker._transition`, which
logs it and tells the broker so fronts hear of it at once)::

    CLOSED ──(volume ≥ threshold and error % or slow % ≥ limit)──► OPEN
    OPEN ──(sleep window over; the next call becomes the one trial)──► HALF_OPEN
    HALF_OPEN ──(the trial's own outcome is SUCCESS)──► CLOSED, with a fresh window
    HALF_OPEN ──(the trial's own outcome is anything else, or it never comes)──► OPEN

Unlike Hystrix (#1853, #1861) only the trial's outcome moves a half-open breaker: calls
admitted while CLOSED that finish late are counted but decide nothing, and a trial whose
answer never comes is failed at its deadline, so the breaker cannot stick half-open.
"""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass
from typing import Callable

from shared.events import Event
from shared.rolling import RollingCounts

Clock = Callable[[], float]

#: Outcomes that count toward the breaker's health; all but SUCCESS are errors.
HEALTH_EVENTS: frozenset[Event] = frozenset({
    Event.SUCCESS, Event.FAILURE, Event.TIMEOUT, Event.THREAD_POOL_REJECTED,
    Event.SEMAPHORE_REJECTED, Event.WORKER_LOST,
})
#: A trial whose outcome has not come this long after its deadline is failed.
TRIAL_GRACE_S = 1.0

_SLOW = "SLOW"
_WINDOW_KINDS = (*sorted(HEALTH_EVENTS), _SLOW)


class BreakerState(enum.StrEnum):
    CLOSED = "CLOSED"
    OPEN = "OPEN"
    HALF_OPEN = "HALF_OPEN"


#: Enum members read through a module global: ``BreakerState.CLOSED`` costs ~70 ns on 3.11.
_CLOSED = BreakerState.CLOSED
_HALF_OPEN = BreakerState.HALF_OPEN
_SUCCESS = Event.SUCCESS


class Admission(enum.Enum):
    ALLOW = "allow"
    TRIAL = "trial"  # the one call that decides a half-open breaker
    SHORT_CIRCUIT = "short_circuit"


@dataclass(frozen=True)
class BreakerSettings:
    volume_threshold: int = 20
    error_pct: float = 50.0
    sleep_s: float = 5.0
    force: str = "auto"  # "open" / "closed" / "auto"
    slow_call_ms: float = 0.0  # 0 = no slow-call rule
    slow_call_pct: float = 100.0
    window_s: float = 10.0
    window_buckets: int = 10


Transition = Callable[["Breaker", BreakerState, BreakerState, str], None]


class Breaker:
    def __init__(self, key: str, settings: BreakerSettings, clock: Clock = time.monotonic,
                 on_transition: Transition | None = None) -> None:
        self.key = key
        self.clock = clock
        self.state = BreakerState.CLOSED
        self.opened_s = 0.0
        self._on_transition = on_transition
        #: when the trial out now is given up on; read only in HALF_OPEN (0.0: no trial out)
        self._trial_deadline_s = 0.0
        #: token of the trial out now; each trial gets a new one, so only its outcome decides
        self.trial_token = 0
        self.settings = settings
        self._window = self._new_window()

    def _new_window(self) -> RollingCounts[str]:
        return RollingCounts(_WINDOW_KINDS, self.settings.window_s, self.settings.window_buckets, self.clock)

    def update_settings(self, settings: BreakerSettings) -> None:
        window_changed = (settings.window_s, settings.window_buckets) != (
            self.settings.window_s, self.settings.window_buckets)
        self.settings = settings
        if window_changed:
            self._window = self._new_window()

    # -- the questions the broker asks ---------------------------------------------------

    def admit(self, deadline_s: float) -> Admission:
        """May a call with this deadline go to a worker? At most one trial at a time."""
        force = self.settings.force
        if force == "open":
            return Admission.SHORT_CIRCUIT
        if force == "closed" or self.state is _CLOSED:
            return Admission.ALLOW
        now_s = self.clock()
        if self.state is BreakerState.HALF_OPEN:
            if not self._trial_deadline_s:  # the last trial was the caller's fault: this call is the next
                self._start_trial(deadline_s)
                return Admission.TRIAL
            if now_s <= self._trial_deadline_s:
                return Admission.SHORT_CIRCUIT
            self._transition(BreakerState.OPEN, "trial never answered")  # HALF_OPEN -> OPEN
            return Admission.SHORT_CIRCUIT
        if now_s < self.opened_s + self.settings.sleep_s:
            return Admission.SHORT_CIRCUIT
        self._start_trial(deadline_s)
        self._transition(BreakerState.HALF_OPEN, "sleep window over: one trial call")  # OPEN -> HALF_OPEN
        return Admission.TRIAL

    def _start_trial(self, deadline_s: float) -> None:
        self._trial_deadline_s = deadline_s + TRIAL_GRACE_S
        self.trial_token += 1

    def record(self, event: Event, latency_ms: float, trial: int = 0) -> None:
        """Count one outcome; ``trial`` is the token of the call's trial (0: not a trial).

        Only the outcome of the trial out now decides a half-open breaker: a late answer
        to an earlier, expired trial is counted like any other call.
        """
        if event in HEALTH_EVENTS:
            self._window.add(event)
            if self.settings.slow_call_ms and latency_ms > self.settings.slow_call_ms:
                self._window.add(_SLOW)
        if trial and trial == self.trial_token and self.state is _HALF_OPEN:
            if event is _SUCCESS:
                self._window = self._new_window()
                self._transition(BreakerState.CLOSED, "trial succeeded")  # HALF_OPEN -> CLOSED
            elif event is Event.BAD_REQUEST:  # says nothing of the dependency (it may never have been asked)
                self._trial_deadline_s = 0.0  # no trial out: the next call is one
            else:
                self._transition(BreakerState.OPEN, f"trial ended {event}")  # HALF_OPEN -> OPEN
        elif self.state is _CLOSED and event in HEALTH_EVENTS:
            self._check_health()

    # -- what operators see --------------------------------------------------------------

    def health(self) -> tuple[int, float, float]:
        """(volume, error %, slow %) in the window."""
        window = self._window
        slow = window.count(_SLOW)
        volume = window.total() - slow
        if not volume:
            return 0, 0.0, 0.0
        errors = volume - window.count(_SUCCESS)
        return volume, 100.0 * errors / volume, 100.0 * slow / volume

    def retry_in_s(self) -> float:
        """Seconds until an open breaker lets a trial through (0 unless OPEN)."""
        if self.state is not BreakerState.OPEN:
            return 0.0
        return max(0.0, self.opened_s + self.settings.sleep_s - self.clock())

    def effective_state(self) -> BreakerState:
        """The state callers see: forcing overrides the machine's own state."""
        if self.settings.force == "open":
            return BreakerState.OPEN
        if self.settings.force == "closed":
            return BreakerState.CLOSED
        return self.state

    # -- the one place state changes ------------------------------------------------------

    def _check_health(self) -> None:
        volume, error_pct, slow_pct = self.health()
        settings = self.settings
        if volume == 0 or volume < settings.volume_threshold:
            return
        if error_pct >= settings.error_pct:
            self._transition(BreakerState.OPEN, f"{error_pct:.0f}% errors in {volume} calls")  # CLOSED -> OPEN
        elif settings.slow_call_ms and slow_pct >= settings.slow_call_pct:
            self._transition(BreakerState.OPEN,  # CLOSED -> OPEN
                             f"{slow_pct:.0f}% of {volume} calls slower than {settings.slow_call_ms:g} ms")

    def _transition(self, new_state: BreakerState, reason: str) -> None:
        old_state = self.state
        self.state = new_state
        if new_state is BreakerState.OPEN:
            self.opened_s = self.clock()
        if new_state is not BreakerState.HALF_OPEN:
            self._trial_deadline_s = 0.0
        if self._on_transition is not None:
            self._on_transition(self, old_state, new_state, reason)
