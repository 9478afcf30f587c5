"""How seawall's callers fare under every process fault: one row per chaos scenario.

Runs each scenario of ``tests/chaos/scenarios.py`` (the same code the chaos suite asserts
on) against a fresh supervised cluster in a temp directory, and prints markdown: one row
per fault with what the callers got (values, fallbacks, each failure a declining fallback
let through), calls lost or answered twice, the longest wait past a call's timeout, and
how long the faulty pool took to be back at full strength after the fault cleared; then
what the broker counted and which processes supervisord saw exit.

Run from the repository root: ``.venv/bin/python bench/reliability.py [SCENARIO ...]``.
"""

from __future__ import annotations

import argparse
import contextlib
import platform
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

TESTS_DIR = Path(__file__).resolve().parent.parent / "tests"
sys.path[:0] = [str(TESTS_DIR), str(TESTS_DIR.parent)]

from chaos import scenarios  # noqa: E402
from chaos.caller_load import FALLBACK, VALUE  # noqa: E402
from chaos.scenarios import FAULTY, HEALTHY, ScenarioResult  # noqa: E402

REPRODUCE_COMMAND = ".venv/bin/python bench/reliability.py"
#: Failure names in the order the table lists them.
FAILURE_ORDER = ("TIMEOUT", "FAILURE", "SHORT_CIRCUITED", "WORKER_LOST", "THREAD_POOL_REJECTED")


def run_scenario(name: str) -> tuple[ScenarioResult, float]:
    """One scenario on a fresh cluster; (its result, wall seconds including start and stop)."""
    started_s = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=f"seawall-chaos-{name}-") as directory:
        cluster = scenarios.build_cluster(Path(directory) / "cluster")
        try:
            cluster.start_supervisord()
            result = scenarios.SCENARIOS[name](cluster)
        finally:
            cluster.stop()
    return result, time.monotonic() - started_s


def _failures(result: ScenarioResult) -> str:
    """``TIMEOUT 12 (Timeout 9, CommandTimeout 3); ...``: each failure callers saw, with its causes."""
    causes_by_failure: dict[str, Counter[str]] = {}
    for record in result.records:
        if record.kind not in (VALUE, FALLBACK, None):
            causes_by_failure.setdefault(record.kind, Counter())[record.cause or "?"] += 1
    order = {name: index for index, name in enumerate(FAILURE_ORDER)}
    return "; ".join(
        f"{name} {sum(causes.values())} ({', '.join(f'{cause} {n}' for cause, n in causes.most_common())})"
        for name, causes in sorted(causes_by_failure.items(), key=lambda item: (order.get(item[0], 99), item[0]))
    ) or "none"


def answers_row(result: ScenarioResult) -> str:
    answers = result.answers()
    healthy = result.answers(HEALTHY)
    healthy_calls = sum(healthy.values())
    recovery = f"{result.recovery_s:.2f}" if result.recovery_s is not None else "not recovered"
    cells = [
        result.fault, result.action, str(len(result.records)), str(answers[VALUE]), str(answers[FALLBACK]),
        _failures(result), str(len(result.lost())), str(len(result.doubled()) + len(result.wire_doubled)),
        f"{result.longest_past_timeout_ms():.0f}", str(len(result.late())), recovery,
        f"{healthy[VALUE]}/{healthy_calls}",
    ]
    return "| " + " | ".join(cells) + " |"


ANSWERS_HEADER = (
    "| fault | injected by | calls | values | fallbacks | CommandError by failure (cause) | lost | doubled "
    "| longest wait past timeout (ms) | past timeout + 250 ms | faulty pool back in (s) | healthy pool values |\n"
    "|---|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|"
)


def broker_row(result: ScenarioResult) -> str:
    counts = ", ".join(f"{k} {v}" for k, v in sorted(result.broker_counts.items())) or "none"
    exits = _exits_text(result.exits)
    replaced = sorted(set(result.pids_before.get(FAULTY, [])) - set(result.pids_after.get(FAULTY, [])))
    return (f"| {result.fault} | {counts} | {exits} | {len(replaced)} of {len(result.pids_before.get(FAULTY, []))} "
            f"| {len(result.wire_unanswered)} | {len(result.wire_lost_with_broker)} |")


def _exits_text(exits: list[str]) -> str:
    """``pool-faulty exit status 4 ×3, ...``: exits counted per program (not per process) and how."""
    counted = Counter(f"{name.rsplit('-', 1)[0]} {how}" for name, how in (e.split(": ", 1) for e in exits))
    return ", ".join(f"{key} ×{count}" for key, count in sorted(counted.items())) or "none"


BROKER_HEADER = (
    "| fault | broker's FaultyCall counts (rolling 10 s, at recovery) | exits seen by supervisord "
    "| faulty workers replaced | requests the broker never answered | requests lost with a killed broker |\n"
    "|---|---|---|---:|---:|---:|"
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenario", nargs="*", help=f"scenarios to run (default: all of {', '.join(scenarios.SCENARIOS)})")
    names = parser.parse_args(argv).scenario or list(scenarios.SCENARIOS)
    unknown = [name for name in names if name not in scenarios.SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario {', '.join(unknown)} (known: {', '.join(scenarios.SCENARIOS)})")
    started = datetime.now(timezone.utc)
    results = []
    for name in names:
        with contextlib.redirect_stdout(sys.stderr):  # what the client logs is not part of the report
            result, wall_s = run_scenario(name)
        print(f"{name}: {len(result.records)} calls in {wall_s:.1f} s", file=sys.stderr)
        results.append(result)
    print(f"# seawall reliability under chaos\n\n`{REPRODUCE_COMMAND}` — {started:%Y-%m-%d %H:%M} UTC, "
          f"Python {platform.python_version()}, {platform.machine()}\n")
    print(ANSWERS_HEADER)
    for result in results:
        print(answers_row(result))
    print()
    print(BROKER_HEADER)
    for result in results:
        print(broker_row(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
