"""The deadline of semaphore-isolated calls: timers reused call after call (api.call_timers.CallTimer)
must still give each call its whole ``timeout_s``, fire once, and never be shared by two
calls in flight. In-process: semaphore commands need no broker."""

from __future__ import annotations

import time

import gevent
import pytest

from api import Command, CommandTimeout
from api.call_timers import MAX_IDLE_TIMERS, MAX_TIMEOUTS_KEPT, CallTimers

TIMEOUT_MARGIN_S = 0.25


class Sleeps(Command):
    timeout_s = 0.2
    semaphore_max = 10
    seconds: float

    def run(self) -> str:
        gevent.sleep(self.seconds)
        return "done"


class SleepsLonger(Sleeps):
    """Another timeout: its calls must not take timers made for Sleeps' 0.2 s."""

    timeout_s = 0.5


class SleepsWithFallback(Sleeps):
    timeout_s = 0.1

    def fallback(self) -> str:
        return "inner fallback"


class Outer(Command):
    """Runs an inner semaphore command in its own greenlet, then sleeps."""

    timeout_s = 0.3
    inner_seconds: float
    then_seconds: float

    def run(self) -> str:
        inner = SleepsWithFallback(seconds=self.inner_seconds).execute(self.client)
        gevent.sleep(self.then_seconds)
        return f"outer after {inner}"


class SwallowsTimeout(Command):
    """Catches the timeout raised into it and carries on, as careless run() code may."""

    timeout_s = 0.05

    def run(self) -> str:
        try:
            gevent.sleep(1.0)
        except gevent.Timeout:
            pass
        gevent.sleep(0.15)  # three timeouts' worth: a timer that fired again would hit here
        return "carried on"


class OwnTimeout(Command):
    """Lets a gevent.Timeout of its own escape run(), as a client library with a deadline would."""

    timeout_s = 1.0

    def run(self) -> None:
        with gevent.Timeout(0.01):
            gevent.sleep(1.0)


def test_each_call_gets_its_whole_timeout_from_when_it_starts(client):
    for _ in range(6):  # 6 x 0.1 s spends the 0.2 s timeout three times over
        assert Sleeps(seconds=0.1).execute(client) == "done"


def test_a_call_after_the_loop_was_blocked_gets_its_whole_timeout(client):
    gevent.sleep(0)  # the loop notes the time ...
    time.sleep(0.3)  # ... which goes stale while nothing yields to it
    assert Sleeps(seconds=0.1).execute(client) == "done"


def test_a_slow_call_times_out_on_time(client):
    started_s = time.monotonic()
    with pytest.raises(CommandTimeout, match="Sleeps did not finish within 0.2 s"):
        Sleeps(seconds=5.0).execute(client)
    assert 0.2 <= time.monotonic() - started_s <= 0.2 + TIMEOUT_MARGIN_S


def test_calls_with_another_timeout_get_their_own(client):
    for _ in range(3):
        assert Sleeps(seconds=0.0).execute(client) == "done"
        assert SleepsLonger(seconds=0.3).execute(client) == "done"
        with pytest.raises(CommandTimeout):
            Sleeps(seconds=0.3).execute(client)


def test_concurrent_calls_each_keep_their_own_deadline(client):
    for _ in range(2):
        Sleeps(seconds=0.0).execute(client)  # idle timers to take, not only fresh ones
    calls = [gevent.spawn(Sleeps(seconds=seconds).execute, client) for seconds in (0.05, 0.1, 5.0, 0.15)]
    gevent.joinall(calls)
    assert [call.value for call in calls] == ["done", "done", None, "done"]
    assert isinstance(calls[2].exception, CommandTimeout)


def test_a_nested_call_finishing_leaves_the_outer_calls_deadline_running(client):
    Outer.client = client
    started_s = time.monotonic()
    with pytest.raises(CommandTimeout, match="Outer did not finish within 0.3 s"):
        Outer(inner_seconds=0.0, then_seconds=5.0).execute(client)
    assert 0.3 <= time.monotonic() - started_s <= 0.3 + TIMEOUT_MARGIN_S


def test_a_nested_call_timing_out_is_its_own_timeout_not_the_outer_calls(client):
    Outer.client = client
    started_s = time.monotonic()
    assert Outer(inner_seconds=5.0, then_seconds=0.0).execute(client) == "outer after inner fallback"
    assert 0.1 <= time.monotonic() - started_s <= 0.1 + TIMEOUT_MARGIN_S


def test_a_timeout_swallowed_by_run_is_not_raised_again(client):
    assert SwallowsTimeout().execute(client) == "carried on"


def test_a_timeout_of_runs_own_escapes_as_it_is_not_as_the_calls_timeout(client):
    with pytest.raises(gevent.Timeout) as caught:  # a BaseException, as GreenletExit: not a failure
        OwnTimeout().execute(client)
    assert str(caught.value) == "0.01 seconds"
    assert client._semaphores.in_flight("OwnTimeout") == 0, "the semaphore permit was not given back"


def test_a_timer_given_back_is_stopped_and_reused():
    timers = CallTimers()
    first = timers.start(0.05)
    timers.give_back(first)
    gevent.sleep(0.1)  # a timer left running would throw into this greenlet here
    second = timers.start(0.05)
    assert second is first
    with pytest.raises(gevent.Timeout) as caught:
        gevent.sleep(1.0)
    assert caught.value is second.thrown and str(caught.value) == "0.05 seconds"
    timers.give_back(second)
    assert second.thrown is None


def test_idle_timers_are_bounded():
    timers = CallTimers()
    started = [timers.start(1.0) for _ in range(MAX_IDLE_TIMERS + 3)]
    for timer in started:
        timers.give_back(timer)
    assert len(timers._idle[1.0]) == MAX_IDLE_TIMERS


def test_timeouts_kept_are_bounded_the_oldest_closed_first():
    """Each timeout value an operator ever sets at runtime is a new key: they do not pile up."""
    timers = CallTimers()
    first = timers.start(0.5)
    timers.give_back(first)
    for index in range(MAX_TIMEOUTS_KEPT + 10):
        timers.give_back(timers.start(1.0 + index / 1000))
    assert len(timers._idle) == MAX_TIMEOUTS_KEPT
    assert sum(len(idle) for idle in timers._idle.values()) == MAX_TIMEOUTS_KEPT
    assert 0.5 not in timers._idle
    again = timers.start(0.5)
    timers.give_back(again)  # stopped: a started timer would throw into this greenlet later
    assert again is not first  # the oldest's timer was closed, a new one made
