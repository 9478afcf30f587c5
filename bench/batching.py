"""What global collapsing buys and costs: a burst of collapsible calls from several fronts.

Why: a command with ``collapse = "global"`` waits in the broker's batching stage until
its window (``collapse_window_ms``) closes or its batch is full (``collapse_max_batch``),
so that one ``run_batch`` in a worker serves many callers. The target, for a burst of
10,000 concurrent calls from 4 front processes:

* backend batches at most ``BATCH_RATIO_TARGET`` (1/50) of the calls;

and, beside the window, the latency collapsing adds: the same burst through an otherwise
identical command that does not collapse (``PlainGet``, whose ``run()`` does what
``run_batch`` does per call), p50 and p99 of collapsed minus uncollapsed. Under a burst
the uncollapsed path queues 10,000 calls in the broker, so the difference can be negative;
one caller calling one after another shows the window's cost with no queue at all.

In one run: a broker, a pool of workers (``batch_commands``), 4 fronts
(``batch_front.py``) warmed up and then told "go" at once for each burst; by default 2
rounds in the order collapsed, uncollapsed, uncollapsed, collapsed (so a drift in the
machine's load hits both paths alike), then 1 caller one call after another on each path.
Backend batches are counted exactly (``run_batch`` appends each batch's size to a file)
and beside the broker's collapser status. Misses are reported, never an exit status:
this is a measurement, not a test.

Run from the repository root: ``.venv/bin/python bench/batching.py`` (``--help`` for the knobs).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import selectors
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from api.testing import Cluster
from batch_commands import BATCH_LOG_ENV, DEPENDENCY, TIMEOUT_S, CollapsedGet, PlainGet
from measuring import progress

BENCH_DIR = Path(__file__).resolve().parent
REPRODUCE_COMMAND = ".venv/bin/python bench/batching.py"

#: Backend batches per call the issue asks for at most.
BATCH_RATIO_TARGET = 1 / 50
#: Warm-up calls per front: this many one after another, then this many at once.
WARMUP_CALLS = 2
#: How long the benchmark waits for a front's answer to one line.
FRONT_ANSWER_TIMEOUT_S = TIMEOUT_S + 30.0
#: How long the broker may take to answer a status request after a burst.
STATUS_TIMEOUT_S = 5.0
#: The broker's events of a call that reached a worker (not rejected or short-circuited).
EXECUTED_EVENTS = ("SUCCESS", "FAILURE", "TIMEOUT", "BAD_REQUEST", "WORKER_LOST")
#: The broker's rolling event counts of both commands cover this long (in buckets).
COUNTS_WINDOW_S = 60.0
COUNTS_WINDOW_BUCKETS = 60


# -- arguments ---------------------------------------------------------------------------


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--window-ms", type=float, default=10.0, help="collapse_window_ms of the collapsed command")
    parser.add_argument("--max-batch", type=int, default=100, help="collapse_max_batch of the collapsed command")
    parser.add_argument("--fronts", type=int, default=4, help="front processes")
    parser.add_argument("--calls-per-front", type=int, default=2500, help="concurrent calls per front")
    parser.add_argument("--workers", type=int, default=2, help="worker processes in the pool")
    parser.add_argument("--slots", type=int, default=8, help="slots of each worker")
    parser.add_argument("--queue-size", type=int, default=None,
                        help="the pool's queue_size (default: every call of the burst, so none is rejected)")
    parser.add_argument("--rounds", type=int, default=2,
                        help="bursts per path; rounds alternate which path goes first")
    parser.add_argument("--sequential-calls", type=int, default=50,
                        help="calls of each path by 1 caller, one after another (0 = skip)")
    args = parser.parse_args(argv)
    if args.queue_size is None:
        args.queue_size = args.fronts * args.calls_per_front
    return args


# -- figures -----------------------------------------------------------------------------


def percentile(sorted_values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    if not sorted_values:
        return math.nan
    return sorted_values[max(0, math.ceil(fraction * len(sorted_values)) - 1)]


@dataclass
class Burst:
    """What the fronts saw of one burst, and what the broker and the workers counted."""

    command: str
    calls: int
    latencies_ms: list[float] = field(default_factory=list)
    outcomes: Counter[str] = field(default_factory=Counter)
    started_s: float = math.nan  # when "go" went out (time.monotonic)
    wall_s: float = math.nan
    batch_sizes: list[int] = field(default_factory=list)  # from run_batch, exact
    collapser_batches: int = 0  # the broker's collapser count, during this burst
    events: Counter[str] = field(default_factory=Counter)  # the broker's events, during this burst

    @property
    def backend_runs(self) -> int:
        """Batches that ran (exact, from run_batch), or calls that ran (the broker's events)."""
        if self.command == CollapsedGet.key:
            return len(self.batch_sizes)
        return sum(self.events.get(event, 0) for event in EXECUTED_EVENTS)

    @property
    def answered(self) -> int:
        return sum(self.outcomes.values())

    @property
    def errors(self) -> int:
        return sum(count for outcome, count in self.outcomes.items() if outcome.startswith("error:"))

    def latency(self, fraction: float) -> float:
        return percentile(sorted(self.latencies_ms), fraction)

    def error_text(self) -> str:
        errors = {outcome[len("error:"):]: count for outcome, count in self.outcomes.items()
                  if outcome.startswith("error:")}
        return ", ".join(f"{count:,} {name}" for name, count in sorted(errors.items())) or "0"


# -- processes ---------------------------------------------------------------------------


def read_answer(process: subprocess.Popen[bytes], name: str, timeout_s: float = FRONT_ANSWER_TIMEOUT_S) -> Any:
    """The next JSON line from a front, or an error naming the front if none comes in time."""
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        if not selector.select(timeout_s):
            raise TimeoutError(f"{name} (pid {process.pid}) gave no answer within {timeout_s:g} s")
    line = process.stdout.readline()
    if not line:
        raise RuntimeError(f"{name} (pid {process.pid}) exited with {process.wait()}; see its log")
    return json.loads(line)


def tell(fronts: list[subprocess.Popen[bytes]], requests: list[dict[str, Any]]) -> float:
    """Write one line to every front, back to back; the time the first went out."""
    lines = [(json.dumps(request) + "\n").encode() for request in requests]
    sent_s = time.monotonic()
    for front, line in zip(fronts, lines):
        front.stdin.write(line)
        front.stdin.flush()
    return sent_s


def batch_log_sizes(path: Path) -> list[int]:
    try:
        return [int(line) for line in path.read_text().split()]
    except FileNotFoundError:
        return []


def command_status(cluster: Cluster, key: str) -> tuple[int, Counter[str]]:
    """The broker's collapser batch count and event counts of ``key`` (rolling, 60 s)."""
    status = cluster.status(timeout_s=STATUS_TIMEOUT_S)
    if status is None:
        raise RuntimeError(f"the broker did not answer a status request within {STATUS_TIMEOUT_S:g} s")
    command = status["commands"].get(key, {})
    return command.get("collapser", {}).get("batches", 0), Counter(command.get("events", {}))


def run_burst(cluster: Cluster, fronts: list[subprocess.Popen[bytes]], key: str, args: argparse.Namespace,
              batch_log: Path) -> Burst:
    """Every front fires ``calls_per_front`` calls of ``key`` at once."""
    per_front = args.calls_per_front
    burst = Burst(key, per_front * len(fronts))
    logged_before = len(batch_log_sizes(batch_log))
    batches_before, events_before = command_status(cluster, key)
    progress(f"burst of {burst.calls:,} {key} calls from {len(fronts)} fronts")
    sent_s = tell(fronts, [{"go": key, "count": per_front, "offset": index * per_front}
                           for index in range(len(fronts))])
    done_s = sent_s
    for index, front in enumerate(fronts):
        answer = read_answer(front, f"front {index}")
        burst.latencies_ms.extend(answer["latencies_ms"])
        burst.outcomes.update(answer["outcomes"])
        done_s = max(done_s, answer["done_s"])
    burst.started_s = sent_s
    burst.wall_s = done_s - sent_s
    batches_after, events_after = command_status(cluster, key)
    burst.collapser_batches = batches_after - batches_before
    burst.events = events_after - events_before
    burst.batch_sizes = batch_log_sizes(batch_log)[logged_before:]
    return burst


@dataclass
class Sequential:
    """``count`` calls of one path by one caller, one after another (no burst, no queue)."""

    latencies_ms: list[float]  # ascending
    outcomes: Counter[str]

    def note(self) -> str:
        """Empty if every call returned its value, else what they returned instead."""
        if self.outcomes.get("value", 0) == len(self.latencies_ms):
            return ""
        return " (" + ", ".join(f"{count} {name}" for name, count in sorted(self.outcomes.items())) + ")"


def run_sequential(front: subprocess.Popen[bytes], key: str, count: int) -> Sequential:
    progress(f"{count} {key} calls by 1 caller, one after another")
    tell([front], [{"go": key, "count": count, "offset": 1_000_000, "concurrent": False}])
    answer = read_answer(front, "front 0")
    return Sequential(sorted(answer["latencies_ms"]), Counter(answer["outcomes"]))


Bursts = dict[str, list[Burst]]


@contextmanager
def burst_cluster(directory: Path, args: argparse.Namespace) -> Iterator[tuple[Cluster, list[subprocess.Popen[bytes]], Path]]:
    """A broker, the pool and warmed-up fronts; yields them and the batch log; stops them all."""
    batch_log = directory / "batches.log"
    os.environ[BATCH_LOG_ENV] = str(batch_log)  # the workers inherit it through the cluster's env
    # Rolling counts over 60 s (not 10 s) for both commands, so that the broker's event
    # counts before and after a burst can be subtracted.
    counts = {"window_s": COUNTS_WINDOW_S, "window_buckets": COUNTS_WINDOW_BUCKETS}
    settings = {
        "pools": {DEPENDENCY: {"queue_size": args.queue_size}},
        "commands": {CollapsedGet.key: {**counts, "collapse_window_ms": args.window_ms,
                                        "collapse_max_batch": args.max_batch},
                     PlainGet.key: counts},
    }
    cluster = Cluster(directory, settings=settings, pythonpath=[BENCH_DIR], heartbeat_s=1.0)
    try:
        progress(f"broker and {args.workers} workers x {args.slots} slots")
        cluster.start_broker()
        cluster.start_workers(DEPENDENCY, "batch_commands", count=args.workers, slots=args.slots)
        cluster.wait_for_workers(DEPENDENCY, args.workers)
        progress(f"{args.fronts} fronts")
        fronts = [cluster.start(f"front-{index}", str(BENCH_DIR / "batch_front.py"), pipes=True)
                  for index in range(args.fronts)]
        tell(fronts, [{"warm": WARMUP_CALLS}] * len(fronts))
        for index, front in enumerate(fronts):
            read_answer(front, f"front {index}")
        yield cluster, fronts, batch_log
        for front in fronts:
            front.stdin.close()
    except BaseException:
        print(f"Failed; the processes' logs are kept in {directory}", file=sys.stderr)
        raise
    finally:
        cluster.stop()  # every process it started, fronts included, by pid


def burst_order(round_number: int) -> tuple[str, str]:
    """Which path bursts first in a round: they alternate, so a drift in load hits both."""
    return (CollapsedGet.key, PlainGet.key) if round_number % 2 == 0 else (PlainGet.key, CollapsedGet.key)


def run_measurements(directory: Path, args: argparse.Namespace) -> tuple[Bursts, dict[str, Sequential]]:
    with burst_cluster(directory, args) as (cluster, fronts, batch_log):
        bursts: Bursts = {CollapsedGet.key: [], PlainGet.key: []}
        for round_number in range(args.rounds):
            for key in burst_order(round_number):
                bursts[key].append(run_burst(cluster, fronts, key, args, batch_log))
        sequential: dict[str, Sequential] = {}
        if args.sequential_calls:
            for key in (CollapsedGet.key, PlainGet.key):
                sequential[key] = run_sequential(fronts[0], key, args.sequential_calls)
    return bursts, sequential


# -- reporting ---------------------------------------------------------------------------


def verdict(met: bool) -> str:
    return "met" if met else "MISSED"


def machine_description() -> str:
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    load = " / ".join(f"{value:.2f}" for value in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    return f"{now}; nproc {cpus}; Python {platform.python_version()}; {platform.platform()}; load avg {load}"


def ms(value: float) -> str:
    return f"{value:,.1f}"


def signed_ms(value: float) -> str:
    return f"{value:+,.1f}"


def pooled(bursts: list[Burst]) -> Burst:
    """Every burst of one path as one: latencies, outcomes, batches and events added up."""
    total = Burst(bursts[0].command, sum(burst.calls for burst in bursts))
    for burst in bursts:
        total.latencies_ms.extend(burst.latencies_ms)
        total.outcomes.update(burst.outcomes)
        total.batch_sizes.extend(burst.batch_sizes)
        total.collapser_batches += burst.collapser_batches
        total.events.update(burst.events)
    total.wall_s = sum(burst.wall_s for burst in bursts)
    return total


def batch_target_met(burst: Burst) -> bool:
    return burst.backend_runs / burst.calls <= BATCH_RATIO_TARGET and burst.outcomes.get("value", 0) == burst.calls


def print_report(bursts: Bursts, sequential: dict[str, Sequential], args: argparse.Namespace) -> None:
    collapsed, plain = pooled(bursts[CollapsedGet.key]), pooled(bursts[PlainGet.key])
    rounds = len(bursts[CollapsedGet.key])
    per_burst = collapsed.calls // rounds
    sizes = sorted(collapsed.batch_sizes)
    batches = len(sizes)
    ratio = batches / collapsed.calls
    window = f"window {args.window_ms:g} ms"
    p50_added = collapsed.latency(0.5) - plain.latency(0.5)
    p99_added = collapsed.latency(0.99) - plain.latency(0.99)

    print()
    print(f"Each burst: {per_burst:,} concurrent calls ({args.fronts} fronts x {args.calls_per_front:,} greenlets, "
          f"told \"go\" at once). {rounds} burst(s) per path, pooled below. Pool {DEPENDENCY!r}: "
          f"{args.workers} workers x {args.slots} slots, queue_size {args.queue_size:,}; timeout_s {TIMEOUT_S:g}; "
          f"collapse_window_ms {args.window_ms:g}, collapse_max_batch {args.max_batch}.")
    print()
    print("| | collapsed (`collapse = \"global\"`) | uncollapsed (`collapse = None`) | collapsed − uncollapsed |")
    print("|---|---:|---:|---:|")
    print(f"| calls answered / sent | {collapsed.answered:,} / {collapsed.calls:,} "
          f"| {plain.answered:,} / {plain.calls:,} | |")
    print(f"| … with their value | {collapsed.outcomes.get('value', 0):,} | {plain.outcomes.get('value', 0):,} | |")
    print(f"| … fallbacks | {collapsed.outcomes.get('fallback', 0):,} | {plain.outcomes.get('fallback', 0):,} | |")
    print(f"| … errors | {collapsed.error_text()} | {plain.error_text()} | |")
    if collapsed.outcomes.get("wrong_value", 0) or plain.outcomes.get("wrong_value", 0):
        print(f"| … wrong values | {collapsed.outcomes.get('wrong_value', 0):,} "
              f"| {plain.outcomes.get('wrong_value', 0):,} | |")
    print(f"| backend runs (`run_batch` / `run`) | {batches:,} batches | {plain.backend_runs:,} calls | |")
    print(f"| backend runs / calls | {ratio:.4f} (1/{1 / ratio if ratio else math.inf:,.0f}) "
          f"| {plain.backend_runs / plain.calls:.4f} | |")
    print(f"| batch size min / p50 / mean / max | {sizes[0] if sizes else 0} / {percentile(sizes, 0.5):g} / "
          f"{(sum(sizes) / batches if batches else 0):.1f} / {sizes[-1] if sizes else 0} | 1 | |")
    print(f"| batches formed (the broker's collapser count; a rejected batch counts too) "
          f"| {collapsed.collapser_batches:,} | – | |")
    print(f"| broker's events | {_events_text(collapsed.events)} | {_events_text(plain.events)} | |")
    print(f"| latency p50 ms | {ms(collapsed.latency(0.5))} | {ms(plain.latency(0.5))} "
          f"| **{signed_ms(p50_added)}** ({window}) |")
    print(f"| latency p99 ms | {ms(collapsed.latency(0.99))} | {ms(plain.latency(0.99))} "
          f"| **{signed_ms(p99_added)}** ({window}) |")
    print(f"| latency max ms | {ms(collapsed.latency(1.0))} | {ms(plain.latency(1.0))} "
          f"| {signed_ms(collapsed.latency(1.0) - plain.latency(1.0))} |")
    print(f"| burst wall time (\"go\" → last answer), mean s | {collapsed.wall_s / rounds:.2f} "
          f"| {plain.wall_s / rounds:.2f} | {(collapsed.wall_s - plain.wall_s) / rounds:+.2f} |")
    print(f"| calls/s over the bursts | {collapsed.calls / collapsed.wall_s:,.0f} "
          f"| {plain.calls / plain.wall_s:,.0f} | |")
    if sequential:
        seq_c, seq_p = sequential[CollapsedGet.key], sequential[PlainGet.key]
        c_ms, p_ms = seq_c.latencies_ms, seq_p.latencies_ms
        seq_p50 = percentile(c_ms, 0.5) - percentile(p_ms, 0.5)
        seq_p99 = percentile(c_ms, 0.99) - percentile(p_ms, 0.99)
        print(f"| no burst: 1 caller, {len(c_ms)} calls one after another, p50 ms | {ms(percentile(c_ms, 0.5))}"
              f"{seq_c.note()} | {ms(percentile(p_ms, 0.5))}{seq_p.note()} | **{signed_ms(seq_p50)}** ({window}) |")
        print(f"| no burst: 1 caller, {len(c_ms)} calls one after another, p99 ms | {ms(percentile(c_ms, 0.99))} "
              f"| {ms(percentile(p_ms, 0.99))} | {signed_ms(seq_p99)} |")
    print()
    print("Per burst, in the order run:")
    print()
    print("| burst | path | backend runs | runs / calls | values | p50 ms | p99 ms | wall s |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|")
    ordered = sorted((burst for path in bursts.values() for burst in path), key=lambda burst: burst.started_s)
    for number, burst in enumerate(ordered, 1):
        collapsing = burst.command == CollapsedGet.key
        print(f"| {number} | {'collapsed' if collapsing else 'uncollapsed'} "
              f"| {burst.backend_runs:,} | {burst.backend_runs / burst.calls:.4f} | {burst.outcomes.get('value', 0):,} "
              f"| {ms(burst.latency(0.5))} | {ms(burst.latency(0.99))} | {burst.wall_s:.2f} |")
    print()
    every_burst = all(batch_target_met(burst) for burst in bursts[CollapsedGet.key])
    print(f"Target: backend batches ≤ 1/{1 / BATCH_RATIO_TARGET:g} of the calls, in every collapsed burst with "
          f"every call answered with its value: {batches:,} / {collapsed.calls:,} = {ratio:.4f} "
          f"→ **{verdict(every_burst)}**")
    print(f"Latency added by collapsing (collapsed − uncollapsed, same bursts): p50 {signed_ms(p50_added)} ms, "
          f"p99 {signed_ms(p99_added)} ms; {window}."
          + (f" With no burst (1 caller): p50 {signed_ms(seq_p50)} ms, p99 {signed_ms(seq_p99)} ms."
             if sequential else ""))


def _events_text(events: Counter[str]) -> str:
    return ", ".join(f"{name} {count:,}" for name, count in sorted(events.items()) if count) or "-"


# -- the run -----------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    print(f"Reproduce with: {REPRODUCE_COMMAND}")
    print(f"Machine: {machine_description()}")
    directory = Path(tempfile.mkdtemp(prefix="swbb-"))  # ipc:// paths must stay short
    started_s = time.monotonic()
    bursts, sequential = run_measurements(directory, args)
    shutil.rmtree(directory, ignore_errors=True)
    print_report(bursts, sequential, args)
    print()
    print(f"Whole run: {time.monotonic() - started_s:.1f} s.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
