"""The latency-monkey scenario: steady load, long latency injected into one dependency, then removed.

One continuous open-loop load (``api.load``) over the three device home endpoints runs
through a short warm-up and three phases — *before*, *during* the injection, *after* it —
first against the seawall front (a real broker, one worker per demo pool, slots 8), then
against the naive front (``demo.naive_front``: the same endpoints, every command run in
the front process, no isolation). Injection: ``python -m broker.cli chaos latency DEP MS``
and ``chaos clear`` for seawall; for the naive front, whose backends run in-process, the
JSON file ``demo.naive_front`` reads on every backend call.

Prints a markdown table (both fronts side by side, targets met/missed), the definitions,
the machine and the command. Never fails on a missed target.

Run from the repository root:
``.venv/bin/python bench/latency_monkey.py [--rps N] [--phase-s S] [--latency-ms MS] [--dependency NAME]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import gevent  # noqa: E402
import gevent.subprocess  # noqa: E402

from api import load  # noqa: E402
from api.testing import Cluster, free_port  # noqa: E402

#: Every demo dependency (demo/backends.py), one pool each.
DEMO_POOLS = ("ab_tests", "artwork", "bookmarks", "continue_watching", "entitlements", "geo", "localization",
              "personalization", "playlists", "ratings", "recommendations", "search", "similar", "social",
              "subscriber", "trending", "user", "video_metadata")
DEVICES = ("ps3", "android", "tv")
#: Members the load cycles through (so the cache fallback has something to serve).
USERS = 10
WARMUP_S = 3.0
#: A request is "healthy" if it took at most this many times the baseline p99 (and at least this floor, ms).
HEALTHY_P99_FACTOR = 2.0
HEALTHY_FLOOR_MS = 50.0
TARGET_SHARE_200 = 99.9
TARGET_P99_SLACK_MS = 50.0
TARGET_RECOVERY_SLACK_S = 2.0
MAX_BODY_BYTES = 4 * 1024 * 1024



def _dependency_commands(dependency: str) -> tuple[list[str], float, float]:
    """(keys of the demo commands of ``dependency``, slowest demo command timeout s, breaker sleep s)."""
    from api.command import Command
    from demo import commands
    from shared.config import COMMAND_SETTINGS

    classes = [value for value in vars(commands).values()
               if isinstance(value, type) and issubclass(value, Command) and value.__module__ == commands.__name__
               and value.dependency is not None]
    keys = [cls.key for cls in classes if cls.dependency == dependency]
    slowest_s = max(cls.timeout_s for cls in classes)
    return keys, slowest_s, COMMAND_SETTINGS["breaker_sleep_s"].default


# -- load with per-request records --------------------------------------------------------

@dataclass
class Record:
    offset_s: float  # scheduled start, from the start of the run
    outcome: str  # "answered", "timed_out", "connection_error", "dropped"
    status: int | None = None
    latency_ms: float | None = None
    degraded: list[str] = field(default_factory=list)


class RecordingRun(load.LoadRun):
    """``api.load``'s open-loop schedule and in-flight cap, keeping each request's outcome and body's
    ``degraded`` list."""

    def __init__(self, load_plan: load.LoadPlan) -> None:
        super().__init__(load_plan)
        self.records: list[Record] = []

    keep_body_bytes = MAX_BODY_BYTES

    def _start(self, target: load.Target, scheduled_s: float) -> None:
        if len(self.in_flight) >= self.plan.max_in_flight:
            self.records.append(Record(scheduled_s - self.started_s, "dropped"))
        super()._start(target, scheduled_s)

    def answered(self, scheduled_s: float, status: int, body: bytes, latency_ms: float) -> None:
        record = Record(scheduled_s - self.started_s, "answered", status, latency_ms)
        try:
            degraded = json.loads(body).get("degraded")
        except (ValueError, AttributeError):
            degraded = None
        if isinstance(degraded, list):
            record.degraded = degraded
        self.records.append(record)

    def failed(self, scheduled_s: float, outcome: str) -> None:
        self.records.append(Record(scheduled_s - self.started_s, outcome))


# -- one scenario -----------------------------------------------------------------------

@dataclass
class Scenario:
    name: str
    records: list[Record]
    inject_s: float  # offsets from the start of the run
    clear_s: float
    end_s: float
    commands: list[str]

    def phase(self, name: str) -> list[Record]:
        start, end = {"before": (WARMUP_S, self.inject_s), "during": (self.inject_s, self.clear_s),
                      "after": (self.clear_s, self.end_s)}[name]
        return [record for record in self.records if start <= record.offset_s < end]


def _percentile(values: list[float], point: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * point // 100))  # nearest rank
    return ordered[int(rank) - 1]


def phase_figures(records: list[Record], commands: list[str], timeout_ms: float) -> dict[str, Any]:
    answered = [record for record in records if record.outcome == "answered"]
    # A timed-out request counts as the client timeout (a lower bound), shown as "≥".
    latencies = [record.latency_ms for record in answered] + [
        timeout_ms for record in records if record.outcome == "timed_out"]
    ok = [record for record in answered if record.status == 200]
    return {
        "requests": len(records),
        "ok": len(ok),
        "share_200": 100.0 * len(ok) / len(records) if records else 0.0,
        "degraded": sum(1 for record in ok if set(record.degraded) & set(commands)),
        "timed_out": sum(1 for record in records if record.outcome == "timed_out"),
        "dropped": sum(1 for record in records if record.outcome == "dropped"),
        "connection_errors": sum(1 for record in records if record.outcome == "connection_error"),
        "other_status": len(answered) - len(ok),
        "p50": _percentile(latencies, 50), "p99": _percentile(latencies, 99),
        "max": max(latencies) if latencies else None,
    }


def recovery_s(scenario: Scenario, healthy_ms: float) -> float | None:
    """Seconds from the clear to the scheduled start of the first request after it from which every
    request to the end of the run was healthy; None if the run ended unhealthy."""
    after = sorted(scenario.phase("after"), key=lambda record: record.offset_s)
    recovered_at = None
    for record in after:
        healthy = (record.outcome == "answered" and record.status == 200 and record.latency_ms <= healthy_ms
                   and not set(record.degraded) & set(scenario.commands))
        if not healthy:
            recovered_at = None
        elif recovered_at is None:
            recovered_at = record.offset_s
    if recovered_at is None:
        return None
    return max(0.0, recovered_at - scenario.clear_s)


def run_load(name: str, base_url: str, args: argparse.Namespace, commands: list[str],
             inject: Any, clear: Any) -> Scenario:
    urls = [f"{base_url}/{device}/home?user={user}" for user in range(1, USERS + 1) for device in DEVICES]
    duration_s = WARMUP_S + 3 * args.phase_s
    load_run = RecordingRun(load.plan(urls, args.rps, duration_s, args.request_timeout_s, args.max_in_flight))
    marks: dict[str, float] = {}

    def monkey() -> None:
        gevent.sleep(max(0.0, load_run.started_s + WARMUP_S + args.phase_s - time.monotonic()))
        inject()
        marks["inject"] = time.monotonic() - load_run.started_s
        gevent.sleep(max(0.0, load_run.started_s + WARMUP_S + 2 * args.phase_s - time.monotonic()))
        clear()
        marks["clear"] = time.monotonic() - load_run.started_s

    print(f"[{name}] {args.rps:g} rps for {duration_s:g} s ({WARMUP_S:g} s warm-up, then 3 x {args.phase_s:g} s)",
          file=sys.stderr)
    load_run.started_s = time.monotonic()  # run() sets it again, a moment later
    greenlet = gevent.spawn(monkey)
    load_run.run(progress=sys.stderr)
    greenlet.join()
    if not greenlet.successful():
        raise RuntimeError(f"[{name}] the injection failed: {greenlet.exception}")
    return Scenario(name, load_run.records, marks["inject"], marks["clear"], duration_s, commands)


def _wait_for(url: str, what: str, timeout_s: float = 60.0) -> None:
    target = load.parse_target(url)
    deadline_s = time.monotonic() + timeout_s
    while time.monotonic() < deadline_s:
        try:
            with gevent.Timeout(5):
                if load.http_get(target)[0] == 200:
                    return
        except (gevent.Timeout, OSError, load.BadResponse):
            pass
        gevent.sleep(0.1)
    raise TimeoutError(f"timed out waiting for {what}")


def seawall_scenario(directory: Path, args: argparse.Namespace, commands: list[str]) -> Scenario:
    port = free_port()
    cluster = Cluster(directory / "sw", {
        "front": {"listen": f"127.0.0.1:{port}", "endpoints": str(REPO / "endpoints")},
        "pools": {pool: {"queue_size": args.queue_size} for pool in DEMO_POOLS},
    })
    try:
        cluster.start_broker()
        for pool in DEMO_POOLS:
            cluster.start_workers(pool, "demo.commands", slots=8)
        cluster.wait_until(lambda: all(cluster.status()["pools"].get(pool, {}).get("workers") == 1
                                       for pool in DEMO_POOLS), "a worker in every demo pool", timeout_s=90)
        cluster.start("front", "-m", "api")
        base = f"http://127.0.0.1:{port}"
        _wait_for(base + "/ps3/home?user=1", "the seawall front")

        def chaos(*words: str) -> None:
            result = gevent.subprocess.run(
                [sys.executable, "-m", "broker.cli", "--config", str(cluster.config_path), "chaos", *words],
                capture_output=True, text=True, timeout=30, cwd=REPO, env=cluster._env)  # noqa: SLF001
            if result.returncode != 0:
                raise RuntimeError(f"seawall chaos {' '.join(words)}: {result.stderr.strip()}")

        return run_load("seawall", base, args, commands,
                        lambda: chaos("latency", args.dependency, f"{args.latency_ms:g}"), lambda: chaos("clear"))
    finally:
        cluster.stop()


def naive_scenario(directory: Path, args: argparse.Namespace, commands: list[str]) -> Scenario:
    port = free_port()
    chaos_file = directory / "naive-chaos.json"
    chaos_file.write_text("{}")
    os.environ["SEAWALL_NAIVE_CHAOS_FILE"] = str(chaos_file)  # inherited by the naive front
    cluster = Cluster(directory / "naive", {
        # no request deadline to speak of: the naive front shows a front with no protection
        "front": {"listen": f"127.0.0.1:{port}", "endpoints": str(REPO / "endpoints"), "request_timeout_s": 600.0},
    })
    try:
        cluster.start("naive-front", "-m", "demo.naive_front")
        base = f"http://127.0.0.1:{port}"
        _wait_for(base + "/ps3/home?user=1", "the naive front")

        def write(settings: dict[str, Any]) -> None:
            partial = chaos_file.with_suffix(".tmp")
            partial.write_text(json.dumps(settings))
            partial.replace(chaos_file)  # atomic: the front never reads half a file

        return run_load("naive", base, args, commands,
                        lambda: write({"dependency": args.dependency, "latency_ms": args.latency_ms}),
                        lambda: write({}))
    finally:
        cluster.stop()


# -- report -------------------------------------------------------------------------------

_TIMEOUT_MS: list[float] = [float("inf")]  # the client timeout of this run, in ms


def _ms(value: float | None) -> str:
    if value is None:
        return "—"
    text = f"{value:,.0f}" if value >= 100 else f"{value:.1f}"
    return f"≥ {text} (timed out)" if value >= _TIMEOUT_MS[0] else text


def _machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load_avg = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    return (f"{platform.system()} {platform.release()}, {os.cpu_count()} CPUs ({cpu}), Python "
            f"{platform.python_version()}, load average after the run {load_avg}")


def report(args: argparse.Namespace, scenarios: list[Scenario], slowest_s: float, sleep_s: float,
           wall_s: float, command_line: str) -> str:
    _TIMEOUT_MS[0] = args.request_timeout_s * 1000
    figures = {scenario.name: {phase: phase_figures(scenario.phase(phase), scenario.commands, _TIMEOUT_MS[0])
                               for phase in ("before", "during", "after")} for scenario in scenarios}
    healthy_ms: dict[str, float] = {}
    recoveries: dict[str, float | None] = {}
    for scenario in scenarios:
        baseline_p99 = figures[scenario.name]["before"]["p99"] or 0.0
        healthy_ms[scenario.name] = max(HEALTHY_P99_FACTOR * baseline_p99, baseline_p99 + HEALTHY_FLOOR_MS)
        recoveries[scenario.name] = recovery_s(scenario, healthy_ms[scenario.name])
    names = [scenario.name for scenario in scenarios]
    p99_target_ms = slowest_s * 1000 + TARGET_P99_SLACK_MS
    recovery_target_s = sleep_s + TARGET_RECOVERY_SLACK_S

    def cells(getter: Any) -> str:
        return " | ".join(getter(name) for name in names)

    def met(ok: bool | None) -> str:
        return "—" if ok is None else ("**met**" if ok else "**missed**")

    lines = [
        f"## Latency monkey: {args.latency_ms:,.0f} ms into `{args.dependency}` "
        f"({', '.join(f'`{command}`' for command in scenarios[0].commands)})",
        "",
        f"{args.rps:g} requests/s open loop, round robin over `/ps3/home`, `/android/home`, `/tv/home` "
        f"(users 1-{USERS}); {WARMUP_S:g} s warm-up (not counted), then {args.phase_s:g} s before, "
        f"{args.phase_s:g} s with the latency injected, {args.phase_s:g} s after it was removed. "
        f"Load generator: `api.load` schedule, {args.request_timeout_s:g} s client timeout, "
        f"at most {args.max_in_flight} requests in flight (more are dropped, not sent).",
        "",
        f"| phase | figure | {cells(lambda name: name + ' front')} |",
        "|---|---|" + "---|" * len(names),
    ]
    for phase in ("before", "during", "after"):
        rows = [
            ("requests", lambda name: str(figures[name][phase]["requests"])),
            ("answered 200", lambda name: f"{figures[name][phase]['share_200']:.2f} % "
                                          f"({figures[name][phase]['ok']})"),
            (f"… of them degraded (`{args.dependency}` fell back)",
             lambda name: str(figures[name][phase]["degraded"]) if name == "seawall" else "n/a (no fallbacks)"),
            ("not answered: timed out / dropped / conn. error / non-200",
             lambda name: " / ".join(str(figures[name][phase][key])
                                     for key in ("timed_out", "dropped", "connection_errors", "other_status"))),
            ("p50 / p99 / max ms", lambda name: " / ".join(_ms(figures[name][phase][key])
                                                           for key in ("p50", "p99", "max"))),
        ]
        for label, getter in rows:
            lines.append(f"| {phase} | {label} | {cells(getter)} |")
    lines.append(f"| after | time back to full health | "
                 f"{cells(lambda name: '—never—' if recoveries[name] is None else f'{recoveries[name]:.2f} s')} |")
    seawall = figures.get("seawall")
    lines += ["", "Targets (seawall front; the naive front's figure beside it):", "",
              "| target | seawall | naive | |", "|---|---|---|---|"]
    if seawall is not None:
        naive = figures.get("naive")
        share_ok = seawall["during"]["share_200"] >= TARGET_SHARE_200
        p99 = seawall["during"]["p99"]
        p99_ok = None if p99 is None else p99 <= p99_target_ms
        recovery = recoveries.get("seawall")
        recovery_ok = recovery is not None and recovery <= recovery_target_s
        naive_recovery = recoveries.get("naive")
        lines += [
            f"| ≥ {TARGET_SHARE_200:g} % answered 200 during the injection | "
            f"{seawall['during']['share_200']:.2f} % | "
            f"{'—' if naive is None else format(naive['during']['share_200'], '.2f') + ' %'} | {met(share_ok)} |",
            f"| p99 during the injection ≤ slowest command timeout ({slowest_s * 1000:g} ms) + "
            f"{TARGET_P99_SLACK_MS:g} ms = {p99_target_ms:g} ms | {_ms(p99)} | "
            f"{'—' if naive is None else _ms(naive['during']['p99'])} | {met(p99_ok)} |",
            f"| full health ≤ breaker sleep window ({sleep_s:g} s) + {TARGET_RECOVERY_SLACK_S:g} s = "
            f"{recovery_target_s:g} s after removal | "
            f"{'never' if recovery is None else f'{recovery:.2f} s'} | "
            f"{'—' if naive is None else ('never' if naive_recovery is None else f'{naive_recovery:.2f} s')} | "
            f"{met(recovery_ok)} |",
        ]
    lines += [
        "",
        "Definitions. *Requests* are those scheduled in the phase (sent or dropped by the generator's "
        "in-flight cap), by scheduled start; phases start at the moment the injection / the clear was "
        "acknowledged (seawall: `python -m broker.cli chaos latency|clear` returned; naive: the chaos file "
        "was rewritten). *Answered 200* is over all of a phase's requests, complete or degraded. Latency counts "
        "from the scheduled start; a request the generator gave up on counts as its timeout "
        f"({args.request_timeout_s:g} s, shown as \"≥ … (timed out)\" where a percentile falls on one); "
        "dropped requests have none. A request in flight when the injection began counts in *before*. "
        "*Time back to full health*: from the clear to the scheduled start of the first request from which "
        "every later request of the run was answered 200, within "
        f"max({HEALTHY_P99_FACTOR:g} x the front's before-phase p99, that p99 + {HEALTHY_FLOOR_MS:g} ms) "
        f"(seawall {healthy_ms.get('seawall', 0):.0f} ms, naive {healthy_ms.get('naive', 0):.0f} ms), and "
        f"without `{args.dependency}`'s command in the response's `degraded` list.",
        "",
        "Setup. seawall front: a broker and one worker per demo pool (18 pools, 8 slots, queue "
        f"{args.queue_size}), the commands' own timeouts and default breakers; naive front "
        "(`python -m demo.naive_front`): the same endpoint modules and `api.front.serve`, each command's "
        "`run()` in the front's greenlet, no pool, timeout, breaker or fallback. Both with "
        "`SEAWALL_DEMO_FAST=1` (backend latencies / 10, no random errors: faults come only from the injection). "
        "Everything on loopback, on the same machine as the load generator.",
        "",
        f"Machine: {_machine()}. Whole run {wall_s:.0f} s, "
        f"{datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}.",
        "",
        f"Command: `{command_line}`",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rps", type=float, default=30.0)
    parser.add_argument("--phase-s", type=float, default=10.0)
    parser.add_argument("--latency-ms", type=float, default=10_000.0)
    parser.add_argument("--dependency", default="recommendations")
    parser.add_argument("--request-timeout-s", type=float, default=5.0,
                        help="the load generator's per-request timeout (a user who gives up)")
    parser.add_argument("--max-in-flight", type=int, default=100)
    parser.add_argument("--queue-size", type=int, default=5, help="each demo pool's queue")
    parser.add_argument("--only", choices=("seawall", "naive"), help="run one front only")
    args = parser.parse_args(argv)
    if args.dependency not in DEMO_POOLS:
        parser.error(f"--dependency must be one of {', '.join(DEMO_POOLS)}")
    commands, slowest_s, sleep_s = _dependency_commands(args.dependency)
    os.environ["SEAWALL_DEMO_FAST"] = "1"
    command_line = " ".join([".venv/bin/python bench/latency_monkey.py", *(argv if argv is not None else sys.argv[1:])])
    started_s = time.monotonic()
    directory = Path(tempfile.mkdtemp(prefix="swlm-", dir="/tmp"))  # short: ipc:// paths have a length limit
    scenarios = []
    try:
        if args.only in (None, "seawall"):
            scenarios.append(seawall_scenario(directory, args, commands))
        if args.only in (None, "naive"):
            scenarios.append(naive_scenario(directory, args, commands))
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    print(report(args, scenarios, slowest_s, sleep_s, time.monotonic() - started_s, command_line))
    return 0


if __name__ == "__main__":
    sys.exit(main())
