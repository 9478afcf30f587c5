"""How every benchmark here times calls: a measuring window, pooled rounds, percentiles.

Why one module: ``command_path.py`` and the suite (``suite.py`` and its peers) time
seawall, the floor and every peer the same way, so their figures compare. Standard
library only, so a caller process that needs no gevent (the ProcessPoolExecutor's,
Celery's) stays as lean as the program a user would write; gevent is imported only
when greenlets are asked for.
"""

from __future__ import annotations

import math
import sys
import threading
from array import array
from dataclasses import dataclass, field
from time import perf_counter
from typing import Any, Callable

#: Calls discarded before each measuring round (connections, caches, branch predictors).
WARMUP_CALLS = 500
#: How long one round measures, after its warm-up.
ROUND_DURATION_S = 1.0


@dataclass(frozen=True)
class Result:
    path: str
    callers: int
    p50_us: float
    p99_us: float
    calls_per_s: float


class Window:
    """One round: discards the first ``warmup_calls`` completions, then measures ``duration_s``.

    Latency is recorded for every call that was under way while the window was open (so
    a caller starved for the whole round still shows, when its call at last returns);
    throughput counts the calls that finished inside it (``finished_in_window``).
    ``calls_after_warmup`` counts every call that finished after the warm-up, those
    after the window closed too (callers still in flight): the CPU was spent on them.
    ``on_measuring`` runs once, when the warm-up is over and before the clock starts
    (the suite samples CPU times there). ``max_calls`` ends the round early once that
    many calls finished, so that a sub-microsecond call does not fill memory; the round's
    ``duration_s`` is then the time those calls took. ``warmup_calls`` must be at least 1.
    """

    def __init__(self, warmup_calls: int = WARMUP_CALLS, duration_s: float = ROUND_DURATION_S,
                 on_measuring: Callable[[], None] | None = None, max_calls: float = math.inf) -> None:
        if warmup_calls < 1:
            raise ValueError(f"warmup_calls must be at least 1, not {warmup_calls}")
        self._warmup_left = warmup_calls
        self.duration_s = duration_s
        self._on_measuring = on_measuring
        self._max_calls = max_calls
        self._start_s = math.inf
        self._end_s = math.inf
        self.latencies_us: array[float] = array("d")
        self.finished_in_window = 0
        self.calls_after_warmup = 0

    @property
    def done(self) -> bool:
        return perf_counter() >= self._end_s

    def abandon(self) -> None:
        """Close the window at once: a call failed, and the round with it."""
        self._end_s = -math.inf

    def record(self, started_s: float, finished_s: float) -> None:
        if self._warmup_left > 0:
            self._warmup_left -= 1
            if self._warmup_left == 0:
                if self._on_measuring is not None:
                    self._on_measuring()
                self._start_s = perf_counter()
                self._end_s = self._start_s + self.duration_s
            return
        self.calls_after_warmup += 1
        if started_s > self._end_s:
            return
        self.latencies_us.append((finished_s - started_s) * 1e6)
        if finished_s <= self._end_s:
            self.finished_in_window += 1
            if self.finished_in_window >= self._max_calls:
                self._end_s = finished_s
                self.duration_s = finished_s - self._start_s


@dataclass
class Samples:
    """The rounds of one (path, callers) pair, pooled."""

    latencies_us: array[float] = field(default_factory=lambda: array("d"))
    finished: int = 0
    measured_s: float = 0.0

    def add(self, window: Window) -> None:
        self.latencies_us.extend(window.latencies_us)
        self.finished += window.finished_in_window
        self.measured_s += window.duration_s

    def result(self, path: str, callers: int) -> Result:
        latencies_us = sorted(self.latencies_us)
        return Result(path, callers, percentile(latencies_us, 0.50), percentile(latencies_us, 0.99),
                      self.finished / self.measured_s)


def progress(text: str) -> None:
    """A line on stderr saying what a long run is doing: stdout is kept for its figures."""
    print(f"... {text}", file=sys.stderr, flush=True)


def percentile(sorted_values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    if not sorted_values:
        return math.nan
    return sorted_values[max(0, math.ceil(fraction * len(sorted_values)) - 1)]


# -- callers -----------------------------------------------------------------------------


def call_in_a_loop(call: Callable[[], Any], window: Window) -> None:
    """One caller: ``call()`` again and again until the window closes, each call timed."""
    while not window.done:
        started_s = perf_counter()
        call()
        window.record(started_s, perf_counter())


def measure_in_greenlets(call: Callable[[], Any], callers: int, window: Window) -> Window:
    """``callers`` greenlets in this process, as a gevent front runs its requests."""
    import gevent

    greenlets = [gevent.spawn(call_in_a_loop, call, window) for _ in range(callers)]
    try:
        gevent.joinall(greenlets, raise_error=True)
    finally:
        gevent.killall(greenlets)  # after a failed call, the other callers stop too
    return window


def measure_in_threads(call: Callable[[], Any], callers: int, window: Window) -> Window:
    """``callers`` OS threads in this process, as a threaded server runs its requests."""
    errors: list[BaseException] = []

    def caller() -> None:
        try:
            call_in_a_loop(call, window)
        except BaseException as exc:  # a thread's error would be lost: hand it to the main thread
            errors.append(exc)
            window.abandon()

    threads = [threading.Thread(target=caller, name=f"caller-{number}") for number in range(callers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return window
