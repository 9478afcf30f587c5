"""The circuit breaker of one command: when it opens, the single trial, forcing, slow calls.

Every test drives a fake clock; nothing sleeps. Defaults unless a test says otherwise:
volume threshold 20, 50 % errors, 5 s sleep window, 10 s health window in 10 buckets.
"""

from __future__ import annotations

import dataclasses

import pytest

from api.testing import FakeClock
from broker.breaker import TRIAL_GRACE_S, Admission, Breaker, BreakerSettings, BreakerState
from shared.events import Event

SLEEP_S = 5.0
CALL_TIMEOUT_S = 1.0


class Transitions(list):
    """An on_transition callback that remembers every call."""

    def __call__(self, breaker: Breaker, old: BreakerState, new: BreakerState, reason: str) -> None:
        self.append((breaker, old, new, reason))

    def moves(self) -> list[tuple[BreakerState, BreakerState]]:
        return [(old, new) for _, old, new, _ in self]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def transitions() -> Transitions:
    return Transitions()


def make_breaker(clock: FakeClock, transitions: Transitions | None = None, **settings) -> Breaker:
    return Breaker("GetRatings", BreakerSettings(**settings), clock, transitions)


def record_many(breaker: Breaker, event: Event, times: int, latency_ms: float = 5.0) -> None:
    for _ in range(times):
        breaker.record(event, latency_ms)


def deadline(clock: FakeClock) -> float:
    return clock() + CALL_TIMEOUT_S


def open_breaker(clock: FakeClock, transitions: Transitions | None = None, **settings) -> Breaker:
    """A breaker that has just opened on 20 failures."""
    breaker = make_breaker(clock, transitions, **settings)
    record_many(breaker, Event.FAILURE, 20)
    assert breaker.state is BreakerState.OPEN
    return breaker


def half_open_breaker(clock: FakeClock, transitions: Transitions | None = None, **settings) -> Breaker:
    """A breaker whose sleep window is over and whose one trial call is out."""
    breaker = open_breaker(clock, transitions, **settings)
    clock.advance(breaker.settings.sleep_s)
    assert breaker.admit(deadline(clock)) is Admission.TRIAL
    return breaker


# -- a new breaker -----------------------------------------------------------------------


def test_new_breaker_is_closed_and_admits_calls(clock):
    breaker = make_breaker(clock)

    assert breaker.state is BreakerState.CLOSED
    assert breaker.admit(deadline(clock)) is Admission.ALLOW
    assert breaker.health() == (0, 0.0, 0.0)
    assert breaker.retry_in_s() == 0.0


# -- opening: error percentage and volume ------------------------------------------------


def test_nineteen_calls_half_failing_leave_the_breaker_closed(clock):
    breaker = make_breaker(clock)

    record_many(breaker, Event.SUCCESS, 10)
    record_many(breaker, Event.FAILURE, 9)

    assert breaker.state is BreakerState.CLOSED
    assert breaker.admit(deadline(clock)) is Admission.ALLOW


def test_tenth_failure_of_twenty_opens_the_breaker(clock):
    breaker = make_breaker(clock)
    record_many(breaker, Event.SUCCESS, 10)
    record_many(breaker, Event.FAILURE, 9)

    breaker.record(Event.FAILURE, 5.0)

    assert breaker.state is BreakerState.OPEN
    assert breaker.health() == (20, 50.0, 0.0)


def test_error_percentage_exactly_at_the_limit_opens_the_breaker(clock):
    breaker = make_breaker(clock, volume_threshold=5, error_pct=40.0)
    record_many(breaker, Event.SUCCESS, 3)
    breaker.record(Event.FAILURE, 5.0)

    breaker.record(Event.FAILURE, 5.0)  # 2 of 5 = 40 %

    assert breaker.state is BreakerState.OPEN


def test_error_percentage_just_below_the_limit_leaves_the_breaker_closed(clock):
    breaker = make_breaker(clock, volume_threshold=5, error_pct=40.0)

    record_many(breaker, Event.SUCCESS, 6)
    record_many(breaker, Event.FAILURE, 3)  # 3 of 9 = 33 %

    assert breaker.state is BreakerState.CLOSED


def test_all_failing_calls_below_the_volume_threshold_leave_the_breaker_closed(clock):
    breaker = make_breaker(clock, volume_threshold=20)

    record_many(breaker, Event.FAILURE, 19)

    assert breaker.state is BreakerState.CLOSED
    assert breaker.health() == (19, 100.0, 0.0)


def test_call_that_reaches_the_volume_threshold_opens_an_unhealthy_breaker(clock):
    # given 10 failures first: not enough volume yet
    breaker = make_breaker(clock, volume_threshold=20)
    record_many(breaker, Event.FAILURE, 10)
    record_many(breaker, Event.SUCCESS, 9)

    breaker.record(Event.SUCCESS, 5.0)  # the 20th call, 50 % errors

    assert breaker.state is BreakerState.OPEN


@pytest.mark.parametrize("error", [
    Event.FAILURE, Event.TIMEOUT, Event.THREAD_POOL_REJECTED, Event.SEMAPHORE_REJECTED, Event.WORKER_LOST,
])
def test_error_outcomes_count_as_errors(clock, error):
    breaker = make_breaker(clock, volume_threshold=4)
    record_many(breaker, Event.SUCCESS, 2)

    record_many(breaker, error, 2)

    assert breaker.health() == (4, 50.0, 0.0)
    assert breaker.state is BreakerState.OPEN


@pytest.mark.parametrize("neutral", [Event.BAD_REQUEST, Event.SHORT_CIRCUITED, Event.RESPONSE_FROM_CACHE])
def test_neutral_outcomes_do_not_count_at_all(clock, neutral):
    breaker = make_breaker(clock, volume_threshold=4)
    breaker.record(Event.SUCCESS, 5.0)
    breaker.record(Event.FAILURE, 5.0)

    record_many(breaker, neutral, 10)

    assert breaker.health() == (2, 50.0, 0.0)
    assert breaker.state is BreakerState.CLOSED


def test_error_percentage_follows_the_hystrix_arithmetic(clock):
    # HystrixCommandMetricsTest.testGetErrorPercentage, with a threshold no one reaches
    breaker = make_breaker(clock, volume_threshold=1000)
    seen = []

    for event, times in [(Event.SUCCESS, 1), (Event.FAILURE, 1), (Event.SUCCESS, 2),
                         (Event.TIMEOUT, 2), (Event.SUCCESS, 4)]:
        record_many(breaker, event, times)
        seen.append(breaker.health()[1])

    assert seen == [0.0, 50.0, 25.0, 50.0, 30.0]


# -- the window ages out -----------------------------------------------------------------


def test_failures_older_than_the_window_no_longer_count(clock):
    breaker = make_breaker(clock, window_s=10.0, window_buckets=10)
    record_many(breaker, Event.FAILURE, 19)

    clock.advance(10.5)
    breaker.record(Event.FAILURE, 5.0)

    assert breaker.state is BreakerState.CLOSED
    assert breaker.health() == (1, 100.0, 0.0)


def test_failures_still_inside_the_window_add_up_to_open_it(clock):
    breaker = make_breaker(clock, window_s=10.0, window_buckets=10)
    record_many(breaker, Event.FAILURE, 19)

    clock.advance(9.5)
    breaker.record(Event.FAILURE, 5.0)

    assert breaker.state is BreakerState.OPEN


# -- open: short-circuit until the sleep window is over ----------------------------------


def test_open_breaker_short_circuits_during_the_sleep_window(clock):
    breaker = open_breaker(clock, sleep_s=SLEEP_S)

    admissions = []
    for _ in range(5):
        clock.advance(0.99)
        admissions.append(breaker.admit(deadline(clock)))

    assert admissions == [Admission.SHORT_CIRCUIT] * 5
    assert breaker.state is BreakerState.OPEN


def test_retry_in_counts_down_the_sleep_window(clock):
    breaker = open_breaker(clock, sleep_s=SLEEP_S)

    assert breaker.retry_in_s() == pytest.approx(SLEEP_S)
    clock.advance(2.0)
    assert breaker.retry_in_s() == pytest.approx(SLEEP_S - 2.0)
    clock.advance(10.0)
    assert breaker.retry_in_s() == 0.0


def test_first_call_after_the_sleep_window_is_the_trial(clock):
    breaker = open_breaker(clock, sleep_s=SLEEP_S)
    clock.advance(SLEEP_S)

    admission = breaker.admit(deadline(clock))

    assert admission is Admission.TRIAL
    assert breaker.state is BreakerState.HALF_OPEN


def test_every_other_call_short_circuits_while_the_trial_is_out(clock):
    breaker = half_open_breaker(clock)

    admissions = []
    for _ in range(10):
        admissions.append(breaker.admit(deadline(clock)))
        clock.advance(0.1)

    assert admissions == [Admission.SHORT_CIRCUIT] * 10
    assert breaker.state is BreakerState.HALF_OPEN


# -- the trial decides -------------------------------------------------------------------


def test_trial_success_closes_the_breaker(clock):
    breaker = half_open_breaker(clock)

    breaker.record(Event.SUCCESS, 5.0, trial=breaker.trial_token)

    assert breaker.state is BreakerState.CLOSED
    assert breaker.admit(deadline(clock)) is Admission.ALLOW


def test_trial_success_starts_a_fresh_window(clock):
    breaker = half_open_breaker(clock)

    breaker.record(Event.SUCCESS, 5.0, trial=breaker.trial_token)

    assert breaker.health() == (0, 0.0, 0.0)


def test_old_failures_do_not_reopen_a_breaker_closed_by_its_trial(clock):
    breaker = half_open_breaker(clock)
    breaker.record(Event.SUCCESS, 5.0, trial=breaker.trial_token)

    breaker.record(Event.FAILURE, 5.0)

    assert breaker.state is BreakerState.CLOSED
    assert breaker.health() == (1, 100.0, 0.0)


@pytest.mark.parametrize("outcome", [Event.FAILURE, Event.TIMEOUT, Event.THREAD_POOL_REJECTED, Event.WORKER_LOST])
def test_failed_trial_reopens_the_breaker(clock, outcome):
    breaker = half_open_breaker(clock)

    breaker.record(outcome, 5.0, trial=breaker.trial_token)

    assert breaker.state is BreakerState.OPEN
    assert breaker.admit(deadline(clock)) is Admission.SHORT_CIRCUIT


def test_a_trial_that_was_a_bad_request_decides_nothing_and_the_next_call_is_the_trial(clock, transitions):
    """BadRequest is the caller's fault, raised maybe before the dependency was asked."""
    breaker = half_open_breaker(clock, transitions)
    first_trial = breaker.trial_token
    changes_before = len(transitions)

    breaker.record(Event.BAD_REQUEST, 5.0, trial=first_trial)

    assert breaker.state is BreakerState.HALF_OPEN and len(transitions) == changes_before
    assert breaker.admit(deadline(clock)) is Admission.TRIAL
    assert breaker.trial_token == first_trial + 1
    assert breaker.admit(deadline(clock)) is Admission.SHORT_CIRCUIT
    breaker.record(Event.SUCCESS, 5.0, trial=breaker.trial_token)
    assert breaker.state is BreakerState.CLOSED


def test_failed_trial_restarts_a_full_sleep_window(clock):
    breaker = half_open_breaker(clock, sleep_s=SLEEP_S)
    clock.advance(0.7)

    breaker.record(Event.TIMEOUT, 1000.0, trial=breaker.trial_token)

    assert breaker.retry_in_s() == pytest.approx(SLEEP_S)
    clock.advance(SLEEP_S - 0.01)
    assert breaker.admit(deadline(clock)) is Admission.SHORT_CIRCUIT


def test_next_sleep_window_after_a_failed_trial_gives_a_new_trial(clock):
    breaker = half_open_breaker(clock, sleep_s=SLEEP_S)
    breaker.record(Event.FAILURE, 5.0, trial=breaker.trial_token)

    clock.advance(SLEEP_S)

    assert breaker.admit(deadline(clock)) is Admission.TRIAL
    assert breaker.admit(deadline(clock)) is Admission.SHORT_CIRCUIT


# -- only the trial decides (Hystrix #1853, #1861) ---------------------------------------


def test_late_failure_of_a_call_admitted_while_closed_does_not_reopen_a_half_open_breaker(clock):
    breaker = half_open_breaker(clock)

    breaker.record(Event.FAILURE, 5.0, trial=0)

    assert breaker.state is BreakerState.HALF_OPEN


def test_late_success_of_a_call_admitted_while_closed_does_not_close_a_half_open_breaker(clock):
    breaker = half_open_breaker(clock)

    breaker.record(Event.SUCCESS, 5.0, trial=0)

    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.admit(deadline(clock)) is Admission.SHORT_CIRCUIT


def test_trial_success_closes_the_breaker_after_late_failures_of_other_calls(clock):
    breaker = half_open_breaker(clock)
    record_many(breaker, Event.FAILURE, 5)

    breaker.record(Event.SUCCESS, 5.0, trial=breaker.trial_token)

    assert breaker.state is BreakerState.CLOSED


def test_outcome_of_an_expired_trial_does_not_decide_the_next_trial(clock):
    # given a trial that never answered, a reopened breaker, and a second trial out
    breaker = half_open_breaker(clock, sleep_s=SLEEP_S)
    clock.advance(CALL_TIMEOUT_S + TRIAL_GRACE_S + 0.1)
    first_trial = breaker.trial_token
    assert breaker.admit(deadline(clock)) is Admission.SHORT_CIRCUIT  # reopens
    clock.advance(SLEEP_S)
    assert breaker.admit(deadline(clock)) is Admission.TRIAL

    breaker.record(Event.TIMEOUT, 8000.0, trial=first_trial)  # the first trial's outcome, at last

    assert breaker.state is BreakerState.HALF_OPEN


# -- a lost trial cannot wedge the breaker -----------------------------------------------


def test_breaker_waits_for_the_trial_until_its_deadline_and_grace(clock):
    breaker = half_open_breaker(clock)

    clock.advance(CALL_TIMEOUT_S + TRIAL_GRACE_S)

    assert breaker.admit(deadline(clock)) is Admission.SHORT_CIRCUIT
    assert breaker.state is BreakerState.HALF_OPEN


def test_unanswered_trial_reopens_the_breaker_after_its_deadline_and_grace(clock, transitions):
    breaker = half_open_breaker(clock, transitions)

    clock.advance(CALL_TIMEOUT_S + TRIAL_GRACE_S + 0.01)
    admission = breaker.admit(deadline(clock))

    assert admission is Admission.SHORT_CIRCUIT
    assert breaker.state is BreakerState.OPEN
    assert transitions.moves()[-1] == (BreakerState.HALF_OPEN, BreakerState.OPEN)
    assert breaker.retry_in_s() == pytest.approx(SLEEP_S)


def test_new_trial_follows_the_sleep_window_after_an_unanswered_trial(clock):
    breaker = half_open_breaker(clock, sleep_s=SLEEP_S)
    clock.advance(CALL_TIMEOUT_S + TRIAL_GRACE_S + 0.01)
    breaker.admit(deadline(clock))

    clock.advance(SLEEP_S)

    assert breaker.admit(deadline(clock)) is Admission.TRIAL


def test_trial_deadline_is_the_trial_calls_own_deadline(clock):
    # given a trial with a 30 s deadline
    breaker = open_breaker(clock, sleep_s=SLEEP_S)
    clock.advance(SLEEP_S)
    assert breaker.admit(clock() + 30.0) is Admission.TRIAL

    clock.advance(30.0)  # past a short call's deadline, not this one's

    assert breaker.admit(deadline(clock)) is Admission.SHORT_CIRCUIT
    assert breaker.state is BreakerState.HALF_OPEN


# -- forcing -----------------------------------------------------------------------------


def test_forced_open_short_circuits_a_healthy_breaker(clock):
    breaker = make_breaker(clock, force="open")
    record_many(breaker, Event.SUCCESS, 50)

    assert breaker.admit(deadline(clock)) is Admission.SHORT_CIRCUIT
    assert breaker.effective_state() is BreakerState.OPEN
    assert breaker.state is BreakerState.CLOSED


def test_forced_open_never_lets_a_trial_through(clock):
    breaker = open_breaker(clock)
    breaker.update_settings(dataclasses.replace(breaker.settings, force="open"))

    clock.advance(SLEEP_S * 10)

    assert breaker.admit(deadline(clock)) is Admission.SHORT_CIRCUIT


def test_forced_closed_admits_every_call_while_the_machine_is_open(clock):
    breaker = open_breaker(clock)

    breaker.update_settings(dataclasses.replace(breaker.settings, force="closed"))

    assert [breaker.admit(deadline(clock)) for _ in range(3)] == [Admission.ALLOW] * 3
    assert breaker.state is BreakerState.OPEN
    assert breaker.effective_state() is BreakerState.CLOSED


def test_unforced_breaker_reports_its_machine_state(clock):
    breaker = half_open_breaker(clock)

    assert breaker.effective_state() is BreakerState.HALF_OPEN


def test_removing_a_forced_close_returns_to_the_machine_state(clock):
    breaker = open_breaker(clock)
    breaker.update_settings(dataclasses.replace(breaker.settings, force="closed"))

    breaker.update_settings(dataclasses.replace(breaker.settings, force="auto"))

    assert breaker.effective_state() is BreakerState.OPEN
    assert breaker.admit(deadline(clock)) is Admission.SHORT_CIRCUIT


# -- the slow-call rule ------------------------------------------------------------------


def test_slow_calls_open_the_breaker_with_no_errors(clock):
    breaker = make_breaker(clock, volume_threshold=4, slow_call_ms=100.0, slow_call_pct=50.0)
    record_many(breaker, Event.SUCCESS, 2, latency_ms=20.0)

    record_many(breaker, Event.SUCCESS, 2, latency_ms=150.0)

    assert breaker.state is BreakerState.OPEN
    assert breaker.health() == (4, 0.0, 50.0)


def test_slow_calls_below_the_slow_percentage_leave_the_breaker_closed(clock):
    breaker = make_breaker(clock, volume_threshold=4, slow_call_ms=100.0, slow_call_pct=50.0)

    record_many(breaker, Event.SUCCESS, 3, latency_ms=20.0)
    record_many(breaker, Event.SUCCESS, 2, latency_ms=150.0)  # 2 of 5 = 40 %

    assert breaker.state is BreakerState.CLOSED
    assert breaker.health() == (5, 0.0, 40.0)


def test_call_exactly_at_the_slow_limit_is_not_slow(clock):
    breaker = make_breaker(clock, volume_threshold=4, slow_call_ms=100.0, slow_call_pct=50.0)

    record_many(breaker, Event.SUCCESS, 4, latency_ms=100.0)

    assert breaker.health() == (4, 0.0, 0.0)
    assert breaker.state is BreakerState.CLOSED


def test_slow_calls_below_the_volume_threshold_leave_the_breaker_closed(clock):
    breaker = make_breaker(clock, volume_threshold=20, slow_call_ms=100.0, slow_call_pct=50.0)

    record_many(breaker, Event.SUCCESS, 19, latency_ms=5000.0)

    assert breaker.state is BreakerState.CLOSED


def test_slow_call_rule_is_off_when_slow_call_ms_is_zero(clock):
    breaker = make_breaker(clock, slow_call_ms=0.0, slow_call_pct=10.0)

    record_many(breaker, Event.SUCCESS, 40, latency_ms=60_000.0)

    assert breaker.state is BreakerState.CLOSED
    assert breaker.health() == (40, 0.0, 0.0)


def test_slow_neutral_outcomes_are_not_counted_as_slow(clock):
    breaker = make_breaker(clock, volume_threshold=2, slow_call_ms=100.0, slow_call_pct=50.0)
    record_many(breaker, Event.SUCCESS, 2, latency_ms=20.0)

    record_many(breaker, Event.BAD_REQUEST, 5, latency_ms=5000.0)

    assert breaker.health() == (2, 0.0, 0.0)
    assert breaker.state is BreakerState.CLOSED


# -- transitions are reported ------------------------------------------------------------


def test_opening_reports_one_transition_with_a_reason(clock, transitions):
    breaker = make_breaker(clock, transitions)

    record_many(breaker, Event.FAILURE, 25)

    assert len(transitions) == 1
    reported_breaker, old, new, reason = transitions[0]
    assert reported_breaker is breaker
    assert (old, new) == (BreakerState.CLOSED, BreakerState.OPEN)
    assert isinstance(reason, str) and reason


def test_slow_call_opening_reports_its_own_reason(clock, transitions):
    breaker = make_breaker(clock, transitions, volume_threshold=2, slow_call_ms=100.0, slow_call_pct=50.0)

    record_many(breaker, Event.SUCCESS, 2, latency_ms=500.0)

    assert transitions.moves() == [(BreakerState.CLOSED, BreakerState.OPEN)]
    assert "slow" in transitions[0][3]


def test_every_transition_of_a_full_cycle_is_reported_once(clock, transitions):
    # given: open, a failed trial, a lost trial, then a successful trial
    breaker = open_breaker(clock, transitions, sleep_s=SLEEP_S)
    clock.advance(SLEEP_S)
    breaker.admit(deadline(clock))
    breaker.record(Event.FAILURE, 5.0, trial=breaker.trial_token)
    clock.advance(SLEEP_S)
    breaker.admit(deadline(clock))
    clock.advance(CALL_TIMEOUT_S + TRIAL_GRACE_S + 0.01)
    breaker.admit(deadline(clock))
    clock.advance(SLEEP_S)
    breaker.admit(deadline(clock))
    breaker.record(Event.SUCCESS, 5.0, trial=breaker.trial_token)

    closed, open_, half_open = BreakerState.CLOSED, BreakerState.OPEN, BreakerState.HALF_OPEN
    assert transitions.moves() == [
        (closed, open_), (open_, half_open), (half_open, open_),
        (open_, half_open), (half_open, open_), (open_, half_open), (half_open, closed),
    ]
    assert all(reported is breaker for reported, _, _, _ in transitions)
    assert all(isinstance(reason, str) and reason for _, _, _, reason in transitions)


def test_calls_short_circuited_while_open_report_no_transition(clock, transitions):
    breaker = open_breaker(clock, transitions)
    before = len(transitions)

    for _ in range(10):
        breaker.admit(deadline(clock))
        breaker.record(Event.SHORT_CIRCUITED, 0.0)

    assert len(transitions) == before


def test_breaker_without_a_callback_still_changes_state(clock):
    breaker = make_breaker(clock, None)

    record_many(breaker, Event.FAILURE, 20)

    assert breaker.state is BreakerState.OPEN


# -- settings change ---------------------------------------------------------------------


def test_new_window_size_starts_a_fresh_window(clock):
    breaker = make_breaker(clock)
    record_many(breaker, Event.FAILURE, 15)

    breaker.update_settings(BreakerSettings(window_s=20.0, window_buckets=20))

    assert breaker.health() == (0, 0.0, 0.0)


def test_new_window_size_is_used_for_ageing(clock):
    breaker = make_breaker(clock)
    breaker.update_settings(BreakerSettings(window_s=20.0, window_buckets=20))
    record_many(breaker, Event.FAILURE, 5)

    clock.advance(15.0)

    assert breaker.health() == (5, 100.0, 0.0)


def test_settings_change_that_keeps_the_window_keeps_the_counts(clock):
    breaker = make_breaker(clock)
    record_many(breaker, Event.FAILURE, 15)

    breaker.update_settings(BreakerSettings(error_pct=90.0, sleep_s=1.0))

    assert breaker.health() == (15, 100.0, 0.0)


def test_lower_volume_threshold_applies_from_the_next_call(clock):
    breaker = make_breaker(clock, volume_threshold=20)
    record_many(breaker, Event.FAILURE, 5)

    breaker.update_settings(BreakerSettings(volume_threshold=5))
    breaker.record(Event.FAILURE, 5.0)

    assert breaker.state is BreakerState.OPEN
