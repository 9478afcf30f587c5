"""No isolation at all: the call made directly in the caller, bare or through pybreaker.

What a user has without seawall: ``direct`` calls the function; ``pybreaker`` calls it
through one ``pybreaker.CircuitBreaker`` shared by every caller (as one breaker guards
one dependency). The caller is a gevent process (monkey-patched, as a front is), so the
1 ms wait yields to the other greenlets. pybreaker's ``call()`` holds the breaker's lock
for the whole call (its ``with self._lock: return self.state.call(...)``), so one
breaker lets one call through at a time.
"""

from __future__ import annotations

from typing import Any, Callable

from measuring import Window, measure_in_greenlets
from peers.workloads import WORKLOADS


class InProcessCaller:
    def __init__(self, variant: str) -> None:
        if variant == "direct":
            self.wrap: Callable[[Callable[[], None]], Callable[[], None]] = lambda function: function
        elif variant == "pybreaker":
            import pybreaker

            breaker = pybreaker.CircuitBreaker(fail_max=5, reset_timeout=60)
            self.wrap = lambda function: lambda: breaker.call(function)
        else:
            raise ValueError(f"no in-process variant {variant!r} (direct, pybreaker)")

    def measure(self, workload: str, callers: int, window: Window) -> None:
        measure_in_greenlets(self.wrap(WORKLOADS[workload]), callers, window)

    def own_pids(self) -> dict[str, list[int]]:
        return {}

    def close(self) -> None:
        pass


def make_caller(variant: str, settings: dict[str, Any]) -> InProcessCaller:
    return InProcessCaller(variant)
