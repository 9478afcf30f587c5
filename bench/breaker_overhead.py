"""What seawall's circuit breaker and per-call bookkeeping cost, next to pybreaker's.

Why: the broker does its bookkeeping for every call, on one thread, so its cost per call
caps the broker's throughput. pybreaker is the usual in-process circuit breaker in
Python; its per-call overhead is the yardstick for "what a breaker ought to cost".

In one run, per call, in nanoseconds (best of ``REPEATS`` runs of ``CALLS`` calls each,
after a warm-up, with the garbage collector off while timing, as ``timeit`` does; the
cases take turns, so a burst of load on a shared machine hits one run of each, not all
runs of one):

* baseline: the bare call of a no-op target;
* seawall's breaker alone: ``Breaker.admit(deadline_s)``, the call, then
  ``Breaker.record(event, latency_ms)`` on a CLOSED breaker;
* seawall's whole bookkeeping in the broker (as ``broker/server.py`` does it):
  ``CommandRegistry.get(key)``, ``record.breaker.admit(...)``, the call, then
  ``CommandRecord.record(event, latency_ms, trial=0)`` (rolling counts, latency
  percentiles and breaker);
* pybreaker: ``CircuitBreaker.call(target)``.

Every case is run twice: all calls succeed, and every tenth call raises (10 % errors,
below both breakers' thresholds, so they stay CLOSED; the benchmark checks it). Every
case makes the same call of the same target inside the same loop, so "overhead" is the
case's per-call time minus the baseline's with the same outcome mix. The breakers use the
real ``time.monotonic``: this measures cost, not behaviour. A second table breaks
seawall's cost down into the pieces its hot path is made of, each timed alone.

Run from the repository root: ``.venv/bin/python bench/breaker_overhead.py``.
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import platform
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path
from typing import Callable

import pybreaker

from broker.breaker import Breaker, BreakerSettings, BreakerState
from broker.commands import CommandRecord, CommandRegistry
from shared.config import parse
from shared.events import Event
from shared.rolling import KeyedStore, RollingCounts, RollingPercentiles

REPRODUCE_COMMAND = ".venv/bin/python bench/breaker_overhead.py"

#: Calls per timed run, and timed runs per case (the fastest run is reported).
CALLS = 200_000
REPEATS = 5
#: Calls run, untimed, before a case is timed (caches, window buckets, branch predictors).
WARMUP_CALLS = 20_000
#: One call in this many raises in the "10 % errors" mix.
FAILURE_EVERY = 10
#: The latency every call reports to seawall: bookkeeping cost does not depend on it.
LATENCY_MS = 1.0
#: The command key the broker cases use.
COMMAND_KEY = "bench"
#: pybreaker: opens after this many consecutive failures; 10 % errors never has two in a row.
PYBREAKER_FAIL_MAX = 5
PYBREAKER_RESET_TIMEOUT_S = 5

#: A timed loop: runs the case once per entry of ``outcomes`` (True: the call raises).
Loop = Callable[[list[bool]], None]


class TargetError(Exception):
    """What the target raises on a failing call."""


def target(fails: bool) -> None:
    """The protected function: does nothing, or raises when told to."""
    if fails:
        raise TargetError


def require_closed(closed: bool, who: str) -> None:
    """Stop the run if a breaker opened: its figures would not be for the CLOSED path."""
    if not closed:
        raise RuntimeError(f"{who} opened during the run: its figures are not for CLOSED")


# -- the cases: each builds its state, then returns the loop to time ----------------------


def bare_loop() -> Loop:
    def loop(outcomes: list[bool]) -> None:
        for fails in outcomes:
            try:
                target(fails)
            except TargetError:
                pass
    return loop


def seawall_breaker_loop() -> Loop:
    breaker = Breaker(COMMAND_KEY, BreakerSettings())
    deadline_s = time.monotonic() + 3600.0

    def loop(outcomes: list[bool]) -> None:
        for fails in outcomes:
            breaker.admit(deadline_s)
            try:
                target(fails)
                event = Event.SUCCESS
            except TargetError:
                event = Event.FAILURE
            breaker.record(event, LATENCY_MS)
        require_closed(breaker.state is BreakerState.CLOSED, "seawall's Breaker")
    return loop


def new_registry() -> CommandRegistry:
    def on_transition(breaker: Breaker, old: BreakerState, new: BreakerState, reason: str) -> None:
        pass
    return CommandRegistry(parse({}, Path(".")), on_transition)


def seawall_broker_loop() -> Loop:
    registry = new_registry()
    deadline_s = time.monotonic() + 3600.0

    def loop(outcomes: list[bool]) -> None:
        for fails in outcomes:
            record = registry.get(COMMAND_KEY)
            record.breaker.admit(deadline_s)
            try:
                target(fails)
                event = Event.SUCCESS
            except TargetError:
                event = Event.FAILURE
            record.record(event, LATENCY_MS, trial=0)
        require_closed(registry.get(COMMAND_KEY).breaker.state is BreakerState.CLOSED, "seawall's broker breaker")
    return loop


def pybreaker_loop() -> Loop:
    breaker = pybreaker.CircuitBreaker(fail_max=PYBREAKER_FAIL_MAX, reset_timeout=PYBREAKER_RESET_TIMEOUT_S)

    def loop(outcomes: list[bool]) -> None:
        for fails in outcomes:
            try:
                breaker.call(target, fails)
            except TargetError:
                pass
        require_closed(breaker.current_state == pybreaker.STATE_CLOSED, "pybreaker's CircuitBreaker")
    return loop


# -- timing --------------------------------------------------------------------------------


def outcome_mix(calls: int, failure_every: int | None) -> list[bool]:
    """One entry per call: True for the calls that raise (every ``failure_every``-th)."""
    if failure_every is None:
        return [False] * calls
    return [i % failure_every == failure_every - 1 for i in range(calls)]


def run_ns(loop: Loop, outcomes: list[bool]) -> int:
    """One timed run of ``loop``, garbage collector off, in ns."""
    gc.disable()
    try:
        start_ns = time.perf_counter_ns()
        loop(outcomes)
        return time.perf_counter_ns() - start_ns
    finally:
        gc.enable()


def best_per_call_ns(loops: dict[str, Loop], outcomes: list[bool], repeats: int) -> dict[str, float]:
    """The fastest of ``repeats`` timed runs of each loop, in ns per call.

    The loops take turns (one run of each per repeat), so a burst of load from another
    process on a shared machine slows one run of every case, not every run of one case.
    """
    for loop in loops.values():
        loop(outcomes[:WARMUP_CALLS])
    best_ns = {name: math.inf for name in loops}
    for _ in range(repeats):
        for name, loop in loops.items():
            best_ns[name] = min(best_ns[name], run_ns(loop, outcomes))
    return {name: ns / len(outcomes) for name, ns in best_ns.items()}


@dataclass(frozen=True)
class Row:
    name: str
    mix: str
    per_call_ns: float
    overhead_ns: float
    vs_pybreaker: float | None  # this overhead / pybreaker's with the same mix


MIXES: dict[str, int | None] = {"0 % errors": None, "10 % errors": FAILURE_EVERY}
CASES: dict[str, Callable[[], Loop]] = {
    "bare call (baseline)": bare_loop,
    "seawall Breaker admit+record": seawall_breaker_loop,
    "seawall broker get+admit+record": seawall_broker_loop,
    "pybreaker CircuitBreaker.call": pybreaker_loop,
}
BASELINE = "bare call (baseline)"
PYBREAKER = "pybreaker CircuitBreaker.call"


def measure(calls: int, repeats: int) -> list[Row]:
    rows = []
    for mix, failure_every in MIXES.items():
        loops = {name: make() for name, make in CASES.items()}
        per_call_ns = best_per_call_ns(loops, outcome_mix(calls, failure_every), repeats)
        overhead_ns = {name: ns - per_call_ns[BASELINE] for name, ns in per_call_ns.items()}
        for name in CASES:
            ratio = None if name in (BASELINE, PYBREAKER) else overhead_ns[name] / overhead_ns[PYBREAKER]
            rows.append(Row(name, mix, per_call_ns[name], overhead_ns[name], ratio))
    return rows


# -- where seawall's time goes -------------------------------------------------------------

EMPTY_LOOP = "empty loop + call of a no-op"


def component_loops() -> dict[str, Loop]:
    """The pieces of seawall's per-call path, each timed on its own (no target call)."""
    breaker = Breaker(COMMAND_KEY, BreakerSettings())
    counts: RollingCounts[Event] = RollingCounts(list(Event))
    percentiles = RollingPercentiles()
    store: KeyedStore[str, object] = KeyedStore(lambda key: object())
    record: CommandRecord = new_registry().get(COMMAND_KEY)
    for _ in range(100):  # volume above the threshold, so health() has counts to sum
        breaker.record(Event.SUCCESS, LATENCY_MS)
    deadline_s = time.monotonic() + 3600.0
    monotonic = time.monotonic
    success = Event.SUCCESS

    def each(step: Callable[[], object]) -> Loop:
        def loop(outcomes: list[bool]) -> None:
            for _ in outcomes:
                step()
        return loop

    return {
        EMPTY_LOOP: each(lambda: None),
        "time.monotonic()": each(monotonic),
        "Breaker.admit (CLOSED)": each(lambda: breaker.admit(deadline_s)),
        "RollingCounts.add": each(lambda: counts.add(success)),
        "Breaker.health": each(breaker.health),
        "Breaker.record (CLOSED, SUCCESS)": each(lambda: breaker.record(success, LATENCY_MS)),
        "RollingPercentiles.add": each(lambda: percentiles.add(LATENCY_MS)),
        "KeyedStore.get (hit)": each(lambda: store.get(COMMAND_KEY)),
        "CommandRecord.record (SUCCESS)": each(lambda: record.record(success, LATENCY_MS, 0)),
    }


def measure_components(calls: int, repeats: int) -> dict[str, float]:
    return best_per_call_ns(component_loops(), outcome_mix(calls, None), repeats)


# -- report --------------------------------------------------------------------------------


def machine_facts() -> list[str]:
    try:
        usable_cpus = len(os.sched_getaffinity(0))
    except AttributeError:
        usable_cpus = os.cpu_count() or 0
    return [
        f"date (UTC)      {datetime.now(timezone.utc):%Y-%m-%d %H:%M}",
        f"machine         {platform.machine()}, {platform.system()} {platform.release()}, "
        f"{os.cpu_count()} CPUs ({usable_cpus} usable, i.e. nproc)",
        f"python          {platform.python_implementation()} {platform.python_version()}",
        f"pybreaker       {version('pybreaker')}",
    ]


def format_main_table(rows: list[Row], calls: int, repeats: int) -> list[str]:
    lines = [
        f"Per call, best of {repeats} runs of {calls:,} calls; overhead = per_call_ns - baseline's (same mix);",
        "vs pybreaker = this overhead / pybreaker's overhead (same mix).",
        "",
        f"| {'case':<33} | {'mix':<11} | {'per_call_ns':>11} | {'overhead_ns':>11} | {'vs pybreaker':>12} |",
        f"|{'-' * 35}|{'-' * 13}|{'-' * 12}:|{'-' * 12}:|{'-' * 13}:|",
    ]
    for row in rows:
        ratio = "" if row.vs_pybreaker is None else f"{row.vs_pybreaker:.2f}x"
        overhead = "" if row.name == BASELINE else f"{row.overhead_ns:,.0f}"
        lines.append(f"| {row.name:<33} | {row.mix:<11} | {row.per_call_ns:>11,.0f} | {overhead:>11} | {ratio:>12} |")
    return lines


def format_components(per_call_ns: dict[str, float]) -> list[str]:
    loop_ns = per_call_ns[EMPTY_LOOP]
    lines = [
        "Where seawall's time goes (each piece alone; net = per_call_ns - the empty loop's):",
        "",
        f"| {'piece':<33} | {'per_call_ns':>11} | {'net_ns':>8} |",
        f"|{'-' * 35}|{'-' * 12}:|{'-' * 9}:|",
    ]
    for name, ns in per_call_ns.items():
        net = "" if name == EMPTY_LOOP else f"{ns - loop_ns:,.0f}"
        lines.append(f"| {name:<33} | {ns:>11,.0f} | {net:>8} |")
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description="Per-call cost of seawall's breaker and bookkeeping, next to pybreaker's.")
    parser.add_argument("--calls", type=int, default=CALLS, help=f"calls per timed run (default {CALLS:,})")
    parser.add_argument("--repeats", type=int, default=REPEATS, help=f"timed runs per case (default {REPEATS})")
    args = parser.parse_args(argv)
    print("Breaker overhead: seawall vs pybreaker, per call\n")
    print("\n".join(machine_facts()) + "\n", flush=True)
    rows = measure(args.calls, args.repeats)
    print("\n".join(format_main_table(rows, args.calls, args.repeats)) + "\n", flush=True)
    print("\n".join(format_components(measure_components(args.calls, args.repeats))) + "\n")
    print(f"Reproduce: {REPRODUCE_COMMAND}")


if __name__ == "__main__":
    sys.exit(main())
