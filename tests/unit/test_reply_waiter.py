"""api/reply_waiter.py: a reply set in the hub runs its caller at once; set anywhere else,
it wakes the caller by a callback, and only if the caller still waits."""

from __future__ import annotations

import gevent
import gevent.event
import gevent.exceptions

from api.reply_waiter import ReplyWaiter


def in_hub(function, *args) -> None:
    """Run ``function`` as the hub runs an I/O callback (where replies are read)."""
    gevent.get_hub().loop.run_callback(function, *args)


def test_a_value_set_before_get_is_returned_without_waiting():
    waiter = ReplyWaiter()
    waiter.set("reply")

    assert waiter.ready()
    assert waiter.get() == "reply"
    assert waiter.wait(0.0)


def test_set_in_the_hub_runs_the_caller_before_set_returns():
    waiter = ReplyWaiter()
    order: list[str] = []

    def caller() -> None:
        order.append(f"caller got {waiter.get()}")

    def hub_reads_the_reply() -> None:
        waiter.set("reply")
        order.append("set returned")

    gevent.spawn(caller)
    gevent.sleep(0)  # the caller waits now
    in_hub(hub_reads_the_reply)
    gevent.sleep(0)

    assert order == ["caller got reply", "set returned"]


def test_set_from_another_greenlet_wakes_the_caller_by_a_callback():
    waiter = ReplyWaiter()
    got: list[str] = []
    caller = gevent.spawn(lambda: got.append(waiter.get()))
    gevent.sleep(0)

    waiter.set("failed over")  # from this (non-hub) greenlet, as the connection's watcher does
    assert got == []  # not yet: the caller is switched to from the hub
    caller.join(1)

    assert got == ["failed over"]


def test_a_caller_whose_deadline_passed_is_not_woken_by_a_late_reply():
    waiter = ReplyWaiter()
    outcomes: list[str] = []
    timed_out = gevent.event.Event()

    def caller() -> None:
        try:
            with gevent.Timeout(0.01):
                waiter.get()
        except gevent.Timeout:
            outcomes.append("timed out")
        timed_out.set()
        gevent.sleep(0.05)  # waiting on something else when the reply comes
        outcomes.append("slept undisturbed")

    greenlet = gevent.spawn(caller)
    assert timed_out.wait(5.0)
    waiter.set("late")  # a callback is scheduled only for a caller that still waits
    in_hub(waiter.set, "later still")
    greenlet.join(1)

    assert outcomes == ["timed out", "slept undisturbed"]
    assert waiter.value == "late"  # the first answer stands


def test_wait_says_whether_the_value_came_in_time():
    waiter = ReplyWaiter()
    assert not waiter.wait(0.01)

    gevent.spawn_later(0.01, waiter.set, "reply")
    assert waiter.wait(1.0)
    assert waiter.value == "reply"


def test_a_switch_that_is_not_the_reply_is_an_error_not_a_value():
    waiter = ReplyWaiter()
    caught: list[BaseException] = []

    def caller() -> None:
        try:
            waiter.get()
        except gevent.exceptions.InvalidSwitchError as exc:
            caught.append(exc)

    greenlet = gevent.spawn(caller)
    gevent.sleep(0)
    in_hub(greenlet.switch, "stray")
    greenlet.join(1)

    assert len(caught) == 1 and "not by its reply" in str(caught[0])
    assert not waiter.ready()
