"""The front's copy of the broker's breakers (api/breakers.py), with an injected clock."""

from __future__ import annotations

from api.breakers import STALE_AFTER_S, BreakerView


class Clock:
    def __init__(self) -> None:
        self.now_s = 100.0

    def __call__(self) -> float:
        return self.now_s


def opened(retry_in_ms: int = 1000) -> tuple[BreakerView, Clock]:
    clock = Clock()
    view = BreakerView(clock)
    view.replace({"GetUser": ("OPEN", retry_in_ms)})
    return view, clock


def snapshot_after(view: BreakerView, clock: Clock, seconds: float, state: str = "OPEN") -> None:
    """Time passes, and the broker's snapshot (once a second) says the breaker is still ``state``."""
    clock.now_s += seconds
    view.replace({"GetUser": (state, 0)})


def test_an_open_breaker_short_circuits_until_its_sleep_window_ends():
    view, clock = opened(retry_in_ms=1000)

    assert view.short_circuits("GetUser") and view.short_circuits_here("GetUser", sleep_s=5.0)
    clock.now_s += 1.0
    assert not view.short_circuits("GetUser")
    assert not view.short_circuits("GetOther") and not view.short_circuits_here("GetOther", sleep_s=5.0)


def test_a_command_run_here_lets_one_trial_through_per_sleep_window():
    """Hystrix's single test: no broker stands between a semaphore command and its dependency."""
    view, clock = opened(retry_in_ms=1000)
    clock.now_s += 1.0

    assert [view.short_circuits_here("GetUser", sleep_s=5.0) for _ in range(3)] == [False, True, True]
    for _ in range(4):
        snapshot_after(view, clock, 1.0)
        assert view.short_circuits_here("GetUser", sleep_s=5.0)
    snapshot_after(view, clock, 1.0)
    assert [view.short_circuits_here("GetUser", sleep_s=5.0) for _ in range(2)] == [False, True]


def test_a_half_open_breaker_lets_one_trial_through_here_too():
    view, clock = opened()
    snapshot_after(view, clock, 1.0, state="HALF_OPEN")

    assert [view.short_circuits_here("GetUser", sleep_s=5.0) for _ in range(2)] == [False, True]
    assert not view.short_circuits("GetUser")  # a call through a broker: the broker picks the trial


def test_the_trials_outcome_from_the_broker_decides():
    view, clock = opened()
    clock.now_s += 1.0
    assert not view.short_circuits_here("GetUser", sleep_s=5.0)

    view.update("GetUser", "CLOSED", 0)
    assert [view.short_circuits_here("GetUser", sleep_s=5.0) for _ in range(2)] == [False, False]

    view.update("GetUser", "OPEN", 2000)
    clock.now_s += 1.0
    assert view.short_circuits_here("GetUser", sleep_s=5.0)


def test_a_front_that_hears_no_snapshot_forgets_what_it_knew():
    view, clock = opened(retry_in_ms=1000)
    clock.now_s += 1.0
    assert not view.short_circuits_here("GetUser", sleep_s=60.0)  # the trial
    clock.now_s += STALE_AFTER_S

    assert not view.short_circuits_here("GetUser", sleep_s=60.0)
    assert view.state("GetUser") == "CLOSED"
