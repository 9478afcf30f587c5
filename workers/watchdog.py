"""The last resort against a call that will not stop: end the worker process.

A call past its deadline gets an exception raised into it (``gevent.Timeout``); code
blocked in C, in a system call, or holding the hub never sees it. This watchdog runs in a
real OS thread — not a greenlet, so a blocked hub cannot stop it — and when a call is
still running ``grace_s`` after its deadline it logs which call and where it hangs,
then exits the process with ``EXIT_HUNG_CALL`` so supervisord starts a fresh worker.
"""

from __future__ import annotations

import os
import sys
import time
import traceback
from typing import Callable

from gevent import monkey

from shared.logging import get_logger
from workers.exit_codes import EXIT_HUNG_CALL

log = get_logger("worker.watchdog")

#: How often the watchdog looks at the running calls.
CHECK_INTERVAL_S = 0.05

_real_sleep: Callable[[float], None] = monkey.get_original("time", "sleep")
_real_start_thread = monkey.get_original("_thread", "start_new_thread")
#: The OS thread's id, which sys._current_frames() is keyed by; patched, get_ident() gives
#: the running greenlet's.
_real_get_ident: Callable[[], int] = monkey.get_original("_thread", "get_ident")


class Watchdog:
    def __init__(self, grace_s: float, clock: Callable[[], float] = time.monotonic,
                 exit_process: Callable[[int], None] = os._exit) -> None:
        self.grace_s = grace_s
        self._clock = clock
        self._exit_process = exit_process
        #: call id -> (command key, deadline); written by greenlets, read by the thread
        self._deadlines: dict[int, tuple[str, float]] = {}
        self._main_thread_id: int | None = None

    def start(self) -> None:
        self._main_thread_id = _real_get_ident()
        _real_start_thread(self._watch, ())

    def watch(self, call_id: int, command: str, deadline_s: float) -> None:
        self._deadlines[call_id] = (command, deadline_s)

    def done(self, call_id: int) -> None:
        self._deadlines.pop(call_id, None)

    def overdue(self) -> tuple[int, str, float] | None:
        """(call id, command, seconds past deadline + grace) of a call that must end the process."""
        now_s = self._clock()
        for call_id, (command, deadline_s) in self._deadlines.copy().items():
            if now_s > deadline_s + self.grace_s:
                return call_id, command, now_s - deadline_s
        return None

    def _watch(self) -> None:
        while True:
            _real_sleep(CHECK_INTERVAL_S)
            overdue = self.overdue()
            if overdue is not None:
                self._end_process(*overdue)

    def _end_process(self, call_id: int, command: str, late_s: float) -> None:
        thread_id = self._main_thread_id  # set by start() before the watching thread starts
        frame = sys._current_frames().get(thread_id) if thread_id is not None else None
        stack = "".join(traceback.format_stack(frame)) if frame is not None else "(no stack)"
        log.error("hung_call_ended_worker", command=command, call_id=call_id, late_s=round(late_s, 3),
                  grace_s=self.grace_s, exit_code=EXIT_HUNG_CALL, stack=stack)
        sys.stdout.flush()
        self._exit_process(EXIT_HUNG_CALL)
