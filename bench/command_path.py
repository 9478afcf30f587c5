"""What seawall's command path costs per call, next to the floor of the same hops.

Why: every remote command goes caller -> broker -> worker -> broker -> caller, three
processes and four ZeroMQ hops. On a small, shared machine absolute figures say little,
so this measures seawall against the *floor*: the simplest raw-pyzmq relay with the same
processes and hops (``floor_relay.py``). The ratio is what seawall's own code costs
(validation, deadlines, slots, breakers, greenlets); the targets say how much of it we accept:

* p50 latency at most ``P50_TARGET_RATIO`` x the floor's;
* throughput at least ``THROUGHPUT_TARGET_RATIO`` x the floor's.

In one run, at 1 and 64 concurrent callers each: p50/p99 latency and calls/s of a no-op
command through a real broker and one real worker (``noop_commands.Noop``), and of the
floor; the direct in-process call ``Noop().run()``; and the timeout margin, how long past
its ``timeout_s`` a caller gets the fallback of a command that overruns it. Misses are
reported, never an exit status: this is a measurement, not a test.

Run from the repository root: ``.venv/bin/python bench/command_path.py`` (``make bench`` runs the whole suite, ``bench/suite.py``).
"""

from __future__ import annotations

import itertools
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from time import perf_counter
from typing import Callable, Iterator

import gevent
import msgpack
import zmq

from api.client import Client
from api.command import Command
from api.testing import Cluster
from measuring import WARMUP_CALLS, Result, Samples, Window, measure_in_greenlets, percentile, progress
from noop_commands import FALLBACK_VALUE, Noop, SleepPastTimeout
from peers.probe import ProcessProbe

BENCH_DIR = Path(__file__).resolve().parent
REPRODUCE_COMMAND = ".venv/bin/python bench/command_path.py"

#: Concurrent callers: greenlets for seawall, requests kept outstanding for the floor.
CALLER_COUNTS = (1, 64)
#: Rounds per caller count; floor and seawall alternate, and take turns going first, so
#: a burst of load from other processes on the machine hits both paths rather than one.
#: On a shared 2-core machine one round's ratio moves by a fifth from run to run: the
#: report gives every round's ratio (median and range) beside the pooled one.
MEASURE_ROUNDS = 6
#: How long each round measures, after its warm-up.
ROUND_S = 2.0
#: Slots of each worker: every caller has a slot, so nothing waits in the queue.
WORKER_SLOTS = 64
#: Pool queue size: far above the callers, so nothing is rejected.
QUEUE_SIZE = 1000
#: Iterations of the direct in-process call.
DIRECT_CALLS = 200_000
#: Calls that overrun their timeout, once one after another and once all at once.
TIMEOUT_CALLS = 50
#: The floor's request payload; seawall's Noop sends an empty msgpack map.
FLOOR_PAYLOAD = b"payload"
#: How long the floor's client waits for a reply before declaring the floor broken.
FLOOR_RECEIVE_TIMEOUT_MS = 5000
#: How long a floor process may take to exit after SIGTERM before it gets SIGKILL.
STOP_GRACE_S = 5.0

P50_TARGET_RATIO = 1.3
THROUGHPUT_TARGET_RATIO = 0.7


# -- measuring ---------------------------------------------------------------------------


def measure_seawall(client: Client, callers: int, window: Window, command_class: type[Command] = Noop) -> Window:
    """One round: ``callers`` greenlets, each calling ``command_class().execute()`` in a loop."""
    return measure_in_greenlets(lambda: command_class().execute(client=client), callers, window)


def measure_floor(address: str, callers: int, window: Window, sleep_ms: float = 0.0) -> Window:
    """One round: a blocking DEALER keeping ``callers`` requests outstanding, a new one per reply.

    With ``sleep_ms``, each request asks the echo to hold its reply that long.
    """
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVTIMEO, FLOOR_RECEIVE_TIMEOUT_MS)
    sock.connect(address)
    sent_s: dict[int, float] = {}
    call_ids = itertools.count()
    extra = [sleep_ms] if sleep_ms else []

    def send() -> None:
        call_id = next(call_ids)
        sent_s[call_id] = perf_counter()
        sock.send(msgpack.packb([call_id, FLOOR_PAYLOAD, *extra]))

    try:
        for _ in range(callers):
            send()
        while not window.done:
            call_id = _receive_reply_id(sock)
            window.record(sent_s.pop(call_id), perf_counter())
            send()
    finally:
        sock.close()  # replies still in flight are dropped by the relay's ROUTER
    return window


def _receive_reply_id(sock: zmq.Socket) -> int:
    try:
        call_id, _payload = msgpack.unpackb(sock.recv())
    except zmq.Again:
        raise RuntimeError(f"the floor relay sent no reply within {FLOOR_RECEIVE_TIMEOUT_MS} ms") from None
    return call_id


def measure_direct_call_us() -> float:
    """Per-call time of ``Noop().run()`` in this process: no seawall at all."""
    started_s = perf_counter()
    for _ in range(DIRECT_CALLS):
        Noop().run()
    return (perf_counter() - started_s) / DIRECT_CALLS * 1e6


def timeout_margin_ms(client: Client) -> float:
    """How long past ``timeout_s`` one overrunning call's caller gets the fallback."""
    started_s = perf_counter()
    value = SleepPastTimeout().execute(client=client)
    margin_ms = (perf_counter() - started_s - SleepPastTimeout.timeout_s) * 1000
    if value != FALLBACK_VALUE:
        raise RuntimeError(f"SleepPastTimeout returned {value!r}, not its fallback")
    if margin_ms < 0:
        raise RuntimeError(f"SleepPastTimeout fell back {-margin_ms:.1f} ms before its timeout: "
                           "rejected or short-circuited, not timed out")
    return margin_ms


def measure_timeout_margins_ms(client: Client) -> dict[str, list[float]]:
    """Margins of TIMEOUT_CALLS calls one after another, then of TIMEOUT_CALLS at once."""
    sequential_ms = [timeout_margin_ms(client) for _ in range(TIMEOUT_CALLS)]
    greenlets = [gevent.spawn(timeout_margin_ms, client) for _ in range(TIMEOUT_CALLS)]
    gevent.joinall(greenlets, raise_error=True)
    return {"1 (one after another)": sequential_ms,
            f"{TIMEOUT_CALLS} (all at once)": [greenlet.value for greenlet in greenlets]}


# -- processes ---------------------------------------------------------------------------


@contextmanager
def seawall_cluster(directory: Path) -> Iterator[Cluster]:
    """A broker, a worker for the no-op pool and one for the overrunning pool."""
    pool_settings = {"queue_size": QUEUE_SIZE}
    cluster = Cluster(directory, settings={"pools": {"bench": pool_settings, "bench_slow": pool_settings}},
                      pythonpath=[BENCH_DIR], heartbeat_s=1.0)
    try:
        cluster.start_broker()
        for dependency in ("bench", "bench_slow"):
            cluster.start_workers(dependency, "noop_commands", slots=WORKER_SLOTS)
        for dependency in ("bench", "bench_slow"):
            cluster.wait_for_workers(dependency, 1)
        yield cluster
    finally:
        cluster.stop()


@contextmanager
def floor_processes(directory: Path, echoes: int = 1) -> Iterator[tuple[str, list[subprocess.Popen[bytes]]]]:
    """The floor's relay and ``echoes`` echo processes; yields the relay's client address
    and the processes, relay first."""
    front_address, back_address = f"ipc://{directory}/front", f"ipc://{directory}/back"
    script = str(BENCH_DIR / "floor_relay.py")
    processes: list[subprocess.Popen[bytes]] = []
    starts = [("relay", [front_address, back_address, str(echoes)])]
    starts += [(f"echo-{number}", [back_address]) for number in range(echoes)]
    try:
        for name, args in starts:
            with (directory / f"{name}.log").open("wb") as log_file:
                processes.append(subprocess.Popen([sys.executable, script, name.split("-")[0], *args],
                                                  stdout=log_file, stderr=subprocess.STDOUT))
        yield front_address, processes
    finally:
        for process in reversed(processes):
            stop_process(process)


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """Terminate one process by pid, wait for it, kill it if it will not go."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


# -- reporting ---------------------------------------------------------------------------


def verdict(met: bool) -> str:
    return "met" if met else "MISSED"


def print_latency_table(results: dict[tuple[str, int], Result]) -> None:
    print("| callers | path | p50 µs | p99 µs | calls/s |")
    print("|---:|---|---:|---:|---:|")
    for (path, callers), result in results.items():
        print(f"| {callers} | {path} | {result.p50_us:.0f} | {result.p99_us:.0f} | {result.calls_per_s:,.0f} |")


def print_ratio_table(results: dict[tuple[str, int], Result], round_ratios: dict[int, list[RoundRatios]]) -> None:
    print(f"| callers | p50 seawall/floor | p99 seawall/floor | calls/s seawall/floor "
          f"| p50 ≤ {P50_TARGET_RATIO}× | calls/s ≥ {THROUGHPUT_TARGET_RATIO}× "
          f"| p50 ratio per round: median (range) | calls/s ratio per round: median (range) |")
    print("|---:|---:|---:|---:|---|---|---:|---:|")
    for callers in CALLER_COUNTS:
        seawall, floor = results[("seawall", callers)], results[("floor", callers)]
        p50_ratio = seawall.p50_us / floor.p50_us
        p99_ratio = seawall.p99_us / floor.p99_us
        throughput_ratio = seawall.calls_per_s / floor.calls_per_s
        rounds = round_ratios[callers]
        print(f"| {callers} | {p50_ratio:.2f}× | {p99_ratio:.2f}× | {throughput_ratio:.2f}× "
              f"| {verdict(p50_ratio <= P50_TARGET_RATIO)} | {verdict(throughput_ratio >= THROUGHPUT_TARGET_RATIO)} "
              f"| {spread([ratios.p50 for ratios in rounds])} "
              f"| {spread([ratios.calls_per_s for ratios in rounds])} |")


def spread(values: list[float]) -> str:
    """``median× (lowest–highest×)`` of per-round ratios."""
    ordered = sorted(values)
    return f"{statistics.median(ordered):.2f}× ({ordered[0]:.2f}–{ordered[-1]:.2f}×)"


def print_margin_table(margins_ms: dict[str, list[float]]) -> None:
    print("| callers | calls | p50 ms | p99 ms | max ms |")
    print("|---|---:|---:|---:|---:|")
    for callers, values_ms in margins_ms.items():
        ordered_ms = sorted(values_ms)
        print(f"| {callers} | {len(ordered_ms)} | {percentile(ordered_ms, 0.5):.2f} "
              f"| {percentile(ordered_ms, 0.99):.2f} | {ordered_ms[-1]:.2f} |")


def print_cpu_table(measurements: Measurements) -> None:
    print("| callers | path | caller | broker · worker (floor: relay · echo) | all three | cores busy |")
    print("|---:|---|---:|---:|---:|---:|")
    for (path, callers), by_role in measurements.cpu_us_per_call.items():
        caller_us, first_us, second_us = by_role.values()
        total_us = caller_us + first_us + second_us
        cores = total_us * measurements.results[(path, callers)].calls_per_s / 1e6
        print(f"| {callers} | {path} | {caller_us:.0f} | {first_us:.0f} · {second_us:.0f} | {total_us:.0f} "
              f"| {cores:.2f} |")


def print_report(measurements: Measurements, direct_call_us: float) -> None:
    results = measurements.results
    print()
    print(f"Command path, no-op command: per row {MEASURE_ROUNDS} rounds of {ROUND_S:g} s, "
          f"each after {WARMUP_CALLS} warm-up calls; floor and seawall alternate, taking turns to go first:")
    print()
    print_latency_table(results)
    print()
    print(f"Targets: p50 ≤ {P50_TARGET_RATIO}× the floor, throughput ≥ {THROUGHPUT_TARGET_RATIO}× the floor:")
    print()
    print_ratio_table(results, measurements.round_ratios)
    print()
    print("CPU per call, µs (user + system time of every thread, ZeroMQ's I/O thread included, "
          "from the end of each warm-up; cores busy: all three's CPU per call × calls/s):")
    print()
    print_cpu_table(measurements)
    print()
    print(f"Direct in-process call, Noop().run(): {direct_call_us:.2f} µs per call")
    print()
    print(f"Timeout margin: time past timeout_s = {SleepPastTimeout.timeout_s:g} s until the caller "
          "has the fallback of a command that sleeps past it:")
    print()
    print_margin_table(measurements.margins_ms)


def machine_description() -> str:
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return f"{now}; nproc {cpus}; Python {platform.python_version()}; {platform.platform()}"


# -- the run -----------------------------------------------------------------------------


@dataclass(frozen=True)
class MeasuredPath:
    """One path: how to measure a round of it, and the processes a round runs in."""

    name: str
    measure: Callable[[int, Window], Window]
    #: role -> pid, the caller (this process) first
    pids_by_role: dict[str, int]


@dataclass(frozen=True)
class RoundRatios:
    """seawall/floor in one round, both paths measured back to back."""

    p50: float
    calls_per_s: float


@dataclass
class Measurements:
    results: dict[tuple[str, int], Result] = field(default_factory=dict)
    #: callers -> each round's ratios
    round_ratios: dict[int, list[RoundRatios]] = field(default_factory=dict)
    #: (path, callers) -> role -> CPU µs per call (user + system, every thread)
    cpu_us_per_call: dict[tuple[str, int], dict[str, float]] = field(default_factory=dict)
    margins_ms: dict[str, list[float]] = field(default_factory=dict)


def measure_alternating(paths: tuple[MeasuredPath, MeasuredPath], callers: int, measurements: Measurements) -> None:
    """MEASURE_ROUNDS rounds of both paths (floor, seawall), the floor first in odd rounds:
    each path pooled over its rounds, each round's ratios, and each process's CPU per call
    (sampled from the end of the warm-up, divided by the calls after it)."""
    samples = {path.name: Samples() for path in paths}
    cpu_s = {path.name: dict.fromkeys(path.pids_by_role, 0.0) for path in paths}
    calls = dict.fromkeys(samples, 0)
    for round_number in range(1, MEASURE_ROUNDS + 1):
        progress(f"{callers} caller(s), round {round_number} of {MEASURE_ROUNDS}")
        results = {}
        for path in paths if round_number % 2 else reversed(paths):
            probe = ProcessProbe({role: [pid] for role, pid in path.pids_by_role.items()})
            window = path.measure(callers, Window(duration_s=ROUND_S, on_measuring=probe.start))
            for role, seconds in probe.stop()["cpu_s"].items():
                cpu_s[path.name][role] += seconds
            calls[path.name] += window.calls_after_warmup
            samples[path.name].add(window)
            alone = Samples()
            alone.add(window)
            results[path.name] = alone.result(path.name, callers)
        measurements.round_ratios.setdefault(callers, []).append(
            RoundRatios(results["seawall"].p50_us / results["floor"].p50_us,
                        results["seawall"].calls_per_s / results["floor"].calls_per_s))
    for name, pooled in samples.items():
        measurements.results[(name, callers)] = pooled.result(name, callers)
        measurements.cpu_us_per_call[(name, callers)] = {
            role: seconds / calls[name] * 1e6 for role, seconds in cpu_s[name].items()}


def run_measurements(directory: Path) -> Measurements:
    measurements = Measurements()
    with seawall_cluster(directory / "sw") as cluster, floor_processes(directory) as (floor_address, floor):
        client = cluster.client()
        broker, worker = cluster.processes[0], cluster.processes[1]  # the no-op pool's worker started first
        paths = (
            MeasuredPath("floor", lambda count, window: measure_floor(floor_address, count, window),
                         {"caller": os.getpid(), "relay": floor[0].pid, "echo": floor[1].pid}),
            MeasuredPath("seawall", lambda count, window: measure_seawall(client, count, window),
                         {"caller": os.getpid(), "broker": broker.pid, "worker": worker.pid}),
        )
        for callers in CALLER_COUNTS:
            measure_alternating(paths, callers, measurements)
        progress("timeout margin")
        measurements.margins_ms = measure_timeout_margins_ms(client)
    return measurements


def main() -> int:
    print(f"Reproduce with: {REPRODUCE_COMMAND}")
    print(f"Machine: {machine_description()}")
    directory = Path(tempfile.mkdtemp(prefix="swb-"))  # ipc:// paths must stay short
    try:
        measurements = run_measurements(directory)
    except BaseException:
        print(f"Failed; the processes' logs are kept in {directory}", file=sys.stderr)
        raise
    shutil.rmtree(directory, ignore_errors=True)
    progress("direct in-process call")
    print_report(measurements, measure_direct_call_us())
    return 0


if __name__ == "__main__":
    sys.exit(main())
