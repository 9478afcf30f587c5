"""Overhead of a semaphore-isolated command over a direct call, beside pybreaker's.

A command with ``dependency = None`` runs in its caller under a tryable semaphore, a
timeout, a breaker check and the outcome report to the broker. The seed promised this
costs "effectively nothing"; the target is <= 5 us per call over the direct call.

    .venv/bin/python bench/semaphore_command.py
"""

from __future__ import annotations

import gc
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import pybreaker

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from api import Client, Command, request_context  # noqa: E402
from shared.config import parse  # noqa: E402

CALLS = 100_000
REPEATS = 5
TARGET_OVERHEAD_US = 5.0


class Noop(Command):
    """Semaphore-isolated no-op."""

    def run(self) -> None:
        return None


def noop() -> None:
    return None


def per_call_us(loop: Callable[[int], None]) -> float:
    """Best of REPEATS runs of CALLS iterations, garbage collection off while timing."""
    loop(CALLS // 10)  # warm-up
    best_s = float("inf")
    for _ in range(REPEATS):
        gc.disable()
        started_s = time.perf_counter()
        loop(CALLS)
        best_s = min(best_s, time.perf_counter() - started_s)
        gc.enable()
    return best_s / CALLS * 1e6


def main() -> None:
    client = Client(parse({"run_dir": tempfile.mkdtemp(prefix="swsem-")}, Path(".")))
    command = Noop()
    breaker = pybreaker.CircuitBreaker(fail_max=5, reset_timeout=60)

    def direct(n: int) -> None:
        for _ in range(n):
            command.run()

    def seawall(n: int) -> None:
        for _ in range(n):
            client.execute(command)

    def seawall_in_context(n: int) -> None:
        with request_context():
            for _ in range(min(n, 900)):  # the request log keeps 1000 entries
                client.execute(command)
        for _ in range(n - min(n, 900)):
            client.execute(command)

    def pybreaker_call(n: int) -> None:
        for _ in range(n):
            breaker.call(noop)

    direct_us = per_call_us(direct)
    rows = [("direct call", direct_us), ("seawall semaphore command", per_call_us(seawall)),
            ("seawall, in a request context", per_call_us(seawall_in_context)),
            ("pybreaker CircuitBreaker.call", per_call_us(pybreaker_call))]
    print(f"machine: {os.cpu_count()} cores, Python {platform.python_version()}, {CALLS} calls, best of {REPEATS}")
    print(f"| {'case':<32} | {'per call us':>11} | {'overhead us':>11} |")
    print(f"|{'-' * 34}|{'-' * 12}:|{'-' * 12}:|")
    for name, us in rows:
        print(f"| {name:<32} | {us:>11.2f} | {us - direct_us:>11.2f} |")
    overhead_us = rows[1][1] - direct_us
    pybreaker_us = rows[3][1] - direct_us
    print(f"\nseawall overhead {overhead_us:.2f} us = {overhead_us / pybreaker_us:.2f}x pybreaker's; "
          f"target <= {TARGET_OVERHEAD_US:g} us: {'met' if overhead_us <= TARGET_OVERHEAD_US else 'MISSED'}")
    print("reproduce: .venv/bin/python bench/semaphore_command.py")
    client.close()


if __name__ == "__main__":
    main()
