"""Commands the benchmark's workers run: ``python -m workers --commands noop_commands``.

``Noop`` does nothing, so its round trip is the pure cost of the command path;
``SleepOneMs`` runs the suite's 1 ms call (``peers.workloads.sleep_1ms``, a gevent sleep
here: workers monkey-patch ``time``).
``SleepPastTimeout`` always overruns its timeout, so the time its caller waits beyond
``timeout_s`` for the fallback is the path's timeout margin.
"""

from __future__ import annotations

import time

from api import Command
from peers.workloads import sleep_1ms

#: How long SleepPastTimeout sleeps: far past its timeout, so it is always interrupted.
OVERRUN_SLEEP_S = 0.5
#: The fallback value of SleepPastTimeout, so the benchmark can check it got a fallback.
FALLBACK_VALUE = "fallback"


class Noop(Command):
    dependency = "bench"

    def run(self) -> None:
        return None


class SleepOneMs(Command):
    dependency = "bench"

    def run(self) -> None:
        sleep_1ms()


class SleepPastTimeout(Command):
    dependency = "bench_slow"
    timeout_s = 0.1
    breaker_force = "closed"  # it always times out: an open breaker would answer at once

    def run(self) -> None:
        time.sleep(OVERRUN_SLEEP_S)  # a gevent sleep in a worker (it monkey-patches time)

    def fallback(self) -> str:
        return FALLBACK_VALUE
