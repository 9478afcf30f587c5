"""Call deadlines as libev timers: reused call after call, or made for one call.

Why not ``gevent.Timeout``: a fresh one costs about 3.4 µs to start and close on a small
VM, a timer of our own 0.4 µs; on a no-op call that is a tenth of a worker's whole cost
per call and a third of the semaphore path's. Raised into the call, the exception is still
a ``gevent.Timeout``, made only when the timer fires: code that catches one sees no
difference, and the timer's ``thrown`` tells it apart from a Timeout of the call's own.
"""

from __future__ import annotations

from typing import Any

import gevent

#: Idle timers kept per timeout; a timer given back past this many is closed.
MAX_IDLE_TIMERS = 256
#: Timeouts with idle timers kept. A command's timeout is a setting, and each value an
#: operator ever sets at runtime is a new one: past this many, the oldest one's are closed.
MAX_TIMEOUTS_KEPT = 64


class CallTimer:
    """The deadline of one call: a libev timer, reused call after call through
    :class:`CallTimers` (a front's calls, a few timeouts), or made for one call and closed
    (a worker's calls, each with the time its deadline leaves).

    A reused one must restart with ``again()``: a stopped libev timer started again keeps
    only the time it had left (``ev_timer_stop``/``ev_timer_start``), so a reused Timeout
    fired early once the calls before had spent ``timeout_s`` between them. ``again()``
    sets the deadline to now + ``repeat``, and the timer stops itself when it fires, so
    like a Timeout it fires at most once per call.
    """

    __slots__ = ("timeout_s", "loop", "thrown", "_watcher", "_greenlet")

    def __init__(self, loop: Any, timeout_s: float) -> None:
        if not timeout_s > 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s!r}")  # again() ignores a repeat of 0
        self.timeout_s = timeout_s
        self.loop = loop
        #: the Timeout this timer raised into its call, until it is given back
        self.thrown: gevent.Timeout | None = None
        self._watcher = loop.timer(timeout_s, timeout_s, priority=-1)  # as gevent.Timeout's
        self._greenlet: Any = None

    def start(self) -> None:
        """Raise a ``gevent.Timeout`` into this greenlet ``timeout_s`` from now (not from
        the loop's last iteration: ``update``)."""
        self._greenlet = gevent.getcurrent()
        self._watcher.again(self._expire, update=True)

    def stop(self) -> None:
        self._watcher.stop()
        self._greenlet = self.thrown = None

    def close(self) -> None:
        self._watcher.close()

    def _expire(self) -> None:
        self._watcher.stop()  # once, as a Timeout: a run() that swallows it is not hit again
        thrown = self.thrown = gevent.Timeout(self.timeout_s)  # what the fresh Timeout raised
        thrown.close()  # raised, never started: its own libev timer is not needed
        self._greenlet.throw(thrown)


class CallTimers:
    """Idle :class:`CallTimer` objects by timeout. A call in flight holds its own, so
    concurrent greenlets and nested calls in one greenlet never share one."""

    def __init__(self) -> None:
        self._idle: dict[float, list[CallTimer]] = {}

    def start(self, timeout_s: float) -> CallTimer:
        """A started timer of ``timeout_s`` on this thread's loop."""
        loop = gevent.get_hub().loop
        idle = self._idle.get(timeout_s)
        timer = idle.pop() if idle else None
        if timer is None or timer.loop is not loop:  # none idle, or another thread's (or a destroyed) hub's
            timer = CallTimer(loop, timeout_s)
        timer.start()
        return timer

    def give_back(self, timer: CallTimer) -> None:
        """Stop ``timer`` and keep it for the next call with its timeout."""
        timer.stop()
        idle = self._idle.get(timer.timeout_s)
        if idle is None:
            if len(self._idle) >= MAX_TIMEOUTS_KEPT:
                self._forget_oldest_timeout()
            idle = self._idle[timer.timeout_s] = []
        if len(idle) < MAX_IDLE_TIMERS:
            idle.append(timer)
        else:
            timer.close()

    def _forget_oldest_timeout(self) -> None:
        """Close the idle timers of the timeout first kept (a dict keeps insertion order);
        timers of it in flight are kept again when given back, as a new timeout's."""
        oldest = next(iter(self._idle))
        for timer in self._idle.pop(oldest):
            timer.close()
