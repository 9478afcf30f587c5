"""The benchmark suite: what process isolation costs, beside what a user would pick instead.

One run on one machine, every peer measured in the same run: for a no-op and for a 1 ms
call, at 1 and at 64 concurrent callers, seawall process-isolated (broker + worker pool)
and semaphore-isolated, the raw pyzmq floor of the same hops, a direct call, the same
through pybreaker, ``concurrent.futures.ProcessPoolExecutor``, and Celery with Redis as
broker and result backend; then the collapsing case (a burst of collapsible calls,
collapsed and not). Each peer's caller is a process of its own (``peers/caller.py``), so
the CPU and memory of each row are that peer's alone; rounds of every peer alternate,
so a burst of load from elsewhere hits them alike.

Per row: p50/p90/p99 latency, calls/s, CPU per call (every process involved), peak RSS
of each process, and each seawall figure ÷ the floor's and each peer's. Prints the
report and writes it into ``docs/benchmarks.md`` (between the suite markers) beside
``docs/benchmarks.png``. Missed targets are reported, never an exit status.

Run from the repository root: ``make bench`` (installs the ``bench`` extra and Redis,
then runs this), or ``.venv/bin/python bench/suite.py [--quick] [--no-docs]``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

import suite_environment
import suite_plot
import suite_report
from batching import parse_args as collapsing_args, read_answer
from measuring import progress
from peers import celery_peer, collapsing_peer, floor_peer, seawall_peer
from peers.processes import Servers, bench_env, stop_with_children
from peers.workloads import WORKLOADS
from suite_figures import Figures, from_rounds
from suite_plot import Panel

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
DOCS_PATH = REPO / "docs" / "benchmarks.md"
PLOT_PATH = REPO / "docs" / "benchmarks.png"
COMMAND = "make bench   # = scripts/ensure-redis && .venv/bin/python bench/suite.py"

#: Worker processes of every pool: seawall's, the floor's echoes, the executor's, Celery's.
WORKER_PROCESSES = 2
#: Concurrent callers of each scenario.
CALLER_COUNTS = (1, 64)
#: How long a caller process may take to start and build its peer.
CALLER_START_TIMEOUT_S = 60.0
#: Slack on top of a round's warm-up and duration before its caller counts as hung.
ROUND_SLACK_S = 120.0


@dataclass(frozen=True)
class Peer:
    name: str
    module: str  # under peers/
    variant: str
    servers: str | None = None  # the key of SERVERS its calls go through
    roles: tuple[str, ...] | None = None  # of those servers' processes, the ones its calls use (None: all)
    gevent: bool = False  # a monkey-patched caller whose callers are greenlets (else threads, or one loop)
    warmup_calls: int = 500


SERVERS = {"seawall": seawall_peer.servers, "floor": floor_peer.servers, "celery": celery_peer.servers}

PEERS = (
    Peer("seawall process", "seawall_peer", "process", "seawall", gevent=True),
    Peer("seawall semaphore", "seawall_peer", "semaphore", "seawall", roles=("broker",), gevent=True),
    Peer("floor", "floor_peer", "floor", "floor"),
    Peer("direct", "inprocess_peer", "direct", gevent=True),
    Peer("pybreaker", "inprocess_peer", "pybreaker", gevent=True),
    Peer("ProcessPoolExecutor", "process_pool_peer", "executor"),
    Peer("Celery", "celery_peer", "celery", "celery", warmup_calls=100),
)


@dataclass(frozen=True)
class Plan:
    """How long everything is measured: the full run, or ``--quick`` for development."""

    rounds: int  # per scenario and peer, peers alternating
    round_s: float  # measured per round, after its warm-up
    warmup_fraction: float  # of each peer's warm-up calls
    max_calls: int  # per round: a sub-µs call stops there, not at round_s
    collapsing_argv: tuple[str, ...]  # bench/batching.py's arguments

    def describe(self) -> str:
        return f"{self.rounds} round(s) of {self.round_s:g} s per peer and scenario"


FULL = Plan(rounds=3, round_s=4.0, warmup_fraction=1.0, max_calls=200_000,
            collapsing_argv=("--rounds", "2", "--sequential-calls", "500"))
QUICK = Plan(rounds=1, round_s=0.5, warmup_fraction=0.2, max_calls=20_000,
             collapsing_argv=("--fronts", "2", "--calls-per-front", "500", "--rounds", "1",
                              "--sequential-calls", "20"))


# -- callers -----------------------------------------------------------------------------


class CallerProcess:
    """One peer's caller process (``peers/caller.py``), asked round by round."""

    def __init__(self, peer: Peer, settings: dict[str, Any], directory: Path) -> None:
        self.name = f"{peer.name} caller"
        self.log_path = directory / f"caller-{peer.module}-{peer.variant}.log"
        args = [sys.executable, "-m", "peers.caller", "--peer", peer.module, "--variant", peer.variant,
                *(["--gevent"] if peer.gevent else []), json.dumps(settings)]
        with self.log_path.open("ab") as log_file:
            self.process = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log_file,
                                            env=bench_env(BENCH_DIR), cwd=REPO)
        self.error = ""
        try:
            read_answer(self.process, self.name, CALLER_START_TIMEOUT_S)
        except Exception:
            self.stop()
            raise

    def ask(self, request: dict[str, Any], timeout_s: float) -> dict[str, Any]:
        """The caller's answer; an error answer if it failed, hung or died (then it is stopped)."""
        if self.error:
            return {"error": self.error}
        try:
            self.process.stdin.write((json.dumps(request) + "\n").encode())
            self.process.stdin.flush()
            return read_answer(self.process, self.name, timeout_s)
        except (OSError, RuntimeError, TimeoutError) as exc:
            self.error = f"{exc} (log: {self.log_path})"
            self.stop()
            return {"error": self.error}

    def stop(self) -> None:
        if self.process.poll() is None:
            try:
                self.process.stdin.close()  # end of requests: the caller closes its peer and exits
                self.process.wait(10)
            except (OSError, subprocess.TimeoutExpired):
                pass
        stop_with_children(self.process)


@contextmanager
def caller_process(peer: Peer, settings: dict[str, Any], directory: Path) -> Iterator[CallerProcess]:
    caller = CallerProcess(peer, settings, directory)
    try:
        yield caller
    finally:
        caller.stop()


# -- the run -----------------------------------------------------------------------------


def round_request(peer: Peer, plan: Plan, workload: str, callers: int, servers: Servers | None) -> dict[str, Any]:
    pids = {} if servers is None else {role: pids for role, pids in servers.pids_by_role.items()
                                       if peer.roles is None or role in peer.roles}
    return {"round": {"workload": workload, "callers": callers,
                      "warmup_calls": max(1, round(peer.warmup_calls * plan.warmup_fraction)),
                      "duration_s": plan.round_s, "max_calls": plan.max_calls, "pids": pids}}


def run_peers(directory: Path, plan: Plan, peers: tuple[Peer, ...]) -> list[Figures]:
    """Every peer, workload and caller count; servers and callers stopped by pid at the end."""
    answers: dict[tuple[str, str, int], list[dict[str, Any]]] = {}
    with ExitStack() as stack:
        servers: dict[str, Servers] = {}
        for key in dict.fromkeys(peer.servers for peer in peers if peer.servers):
            progress(f"starting {key}'s servers")
            servers[key] = stack.enter_context(SERVERS[key](directory / key, WORKER_PROCESSES))
        callers: dict[str, CallerProcess] = {}
        for peer in peers:
            progress(f"starting the {peer.name} caller")
            settings = {"worker_processes": WORKER_PROCESSES,
                        **(servers[peer.servers].settings if peer.servers else {})}
            callers[peer.name] = stack.enter_context(caller_process(peer, settings, directory))
        for workload in WORKLOADS:
            for callers_count in CALLER_COUNTS:
                for round_number in range(plan.rounds):
                    progress(f"{workload}, {callers_count} caller(s): round {round_number + 1} of {plan.rounds}")
                    rotated = peers[round_number % len(peers):] + peers[:round_number % len(peers)]
                    for peer in rotated:
                        request = round_request(peer, plan, workload, callers_count, servers.get(peer.servers))
                        answer = callers[peer.name].ask(request, plan.round_s + ROUND_SLACK_S)
                        if "error" in answer:
                            progress(f"{peer.name}: {answer['error']}")
                        answers.setdefault((peer.name, workload, callers_count), []).append(answer)
        summaries = {name: caller.ask({"summary": True}, ROUND_SLACK_S) for name, caller in callers.items()}
    return [from_rounds(peer.name, workload, callers_count, answers[(peer.name, workload, callers_count)],
                        summaries[peer.name].get("latency_us", {}).get(f"{workload}/{callers_count}"))
            for workload in WORKLOADS for callers_count in CALLER_COUNTS for peer in peers]


def run_collapsing(directory: Path, plan: Plan) -> collapsing_peer.CollapsingResult:
    args = collapsing_args(["--workers", str(WORKER_PROCESSES), *plan.collapsing_argv])
    return collapsing_peer.run(directory, args)


def method(plan: Plan, peers: tuple[Peer, ...]) -> list[str]:
    slots = seawall_peer.slots_per_worker(WORKER_PROCESSES)
    warmups = ", ".join(f"{peer.name} {max(1, round(peer.warmup_calls * plan.warmup_fraction))}" for peer in peers)
    return [
        f"Rounds: {plan.describe()}, the peers taking turns within each round; each round after its "
        f"warm-up calls ({warmups}); a round of a sub-µs call ends after {plan.max_calls:,} calls. "
        f"{WORKER_PROCESSES} worker processes per pool (seawall: {WORKER_PROCESSES} × {slots} slots). "
        "Latencies include the timing loop itself (about 0.3 µs per call).",
    ]


def plot_panels(peers: tuple[Peer, ...], collapsing: collapsing_peer.CollapsingResult | None) -> list[Panel]:
    panels = [Panel(workload, [peer.name for peer in peers], tuple(map(str, CALLER_COUNTS))) for workload in WORKLOADS]
    if collapsing is not None:
        burst, one = (figures.callers for figures in collapsing.figures[::2])
        panels.append(Panel(collapsing_peer.WORKLOAD, list(collapsing_peer.PATH_NAMES.values()), (one, burst)))
    return panels


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short rounds, for development (about 2 min)")
    parser.add_argument("--docs", action=argparse.BooleanOptionalAction, default=None,
                        help=f"write {DOCS_PATH.relative_to(REPO)} and the plot (default: unless --quick)")
    parser.add_argument("--peers", default=",".join(peer.name for peer in PEERS),
                        help="comma-separated peer names to run (default: all)")
    parser.add_argument("--no-collapsing", action="store_true", help="skip the collapsing case")
    args = parser.parse_args(argv)
    if args.docs is None:
        args.docs = not args.quick
    names = [name.strip() for name in args.peers.split(",")]
    unknown = [name for name in names if name not in {peer.name for peer in PEERS}]
    if unknown:
        parser.error(f"unknown peer(s) {unknown}; known: {[peer.name for peer in PEERS]}")
    args.peer_list = tuple(peer for peer in PEERS if peer.name in names)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))  # unwind: stop what we started
    plan = QUICK if args.quick else FULL
    started_s = time.monotonic()
    started_utc = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    load_before = suite_environment.load_average()
    progress(f"machine: {suite_environment.machine()}; load {load_before}; {plan.describe()}")
    directory = Path(tempfile.mkdtemp(prefix="swsuite-"))  # ipc:// paths must stay short
    try:
        figures = run_peers(directory, plan, args.peer_list)
        collapsing = None
        if not args.no_collapsing:
            progress("the collapsing case")
            collapsing = run_collapsing(directory / "collapsing", plan)
            figures += collapsing.figures
    except BaseException:
        print(f"Failed; the processes' logs are kept in {directory}", file=sys.stderr)
        raise
    run = suite_report.Run(figures, collapsing, started_utc, time.monotonic() - started_s,
                           suite_environment.machine(), load_before, suite_environment.load_average(),
                           suite_environment.versions(), COMMAND, method(plan, args.peer_list))
    if args.docs:
        progress(f"writing {PLOT_PATH.relative_to(REPO)}")
        suite_plot.plot(figures, PLOT_PATH, plot_panels(args.peer_list, collapsing))
        run.runtime_s = time.monotonic() - started_s
        suite_report.write_docs(DOCS_PATH, suite_report.markdown(run))
        progress(f"wrote the suite's section of {DOCS_PATH.relative_to(REPO)}")
    print(suite_report.markdown(run))
    shutil.rmtree(directory, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
