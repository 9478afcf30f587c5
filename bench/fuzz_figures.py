"""Hostile input in figures: the fuzz suite's runs, one table row per socket attacked.

Runs the scenarios of ``tests/fuzz/scenarios.py`` (the same code ``tests/fuzz`` asserts
on) against fresh processes in temp directories — the broker's front, back and control
sockets, and a worker — and prints markdown: messages thrown, how many were still valid
protocol after mutation, the rate the target absorbed, what the steady caller beside the
fuzz got and how long it waited, memory and log growth.

Run from the repository root: ``.venv/bin/python bench/fuzz_figures.py [front back control worker] [--seed N]``.
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

TESTS_DIR = Path(__file__).resolve().parent.parent / "tests"
sys.path[:0] = [str(TESTS_DIR), str(TESTS_DIR.parent)]

from fuzz import scenarios  # noqa: E402
from fuzz.messages import fuzz_seed  # noqa: E402

REPRODUCE_COMMAND = ".venv/bin/python bench/fuzz_figures.py"
TARGETS = (*scenarios.BROKER_SOCKETS, "worker")


def run(target: str, seed: int, count: int) -> scenarios.FuzzResult:
    with tempfile.TemporaryDirectory(prefix=f"seawall-fuzz-{target}-") as directory:
        cluster = scenarios.new_cluster(Path(directory) / "cluster")
        try:
            if target == "worker":
                return scenarios.run_worker_fuzz(cluster, count, seed)
            return scenarios.run_broker_fuzz(cluster, target, count, seed)
        finally:
            cluster.stop()


def row(target: str, result: scenarios.FuzzResult) -> str:
    stats = result.stats
    if target == "worker":
        correct = f"{stats.probes}/{stats.probes} (the probes)"
        latency = f"max {stats.probe_latency_max_ms:.0f}"
    else:
        steady = result.steady
        correct = f"{steady['correct']}/{steady['calls']}"
        latency = f"{steady['latency_p50_ms']:.0f} / {steady['latency_p99_ms']:.0f} / {steady['latency_max_ms']:.0f}"
    alive = "yes" if result.alive else "**no**"
    return (f"| {target} | {stats.sent:,} | {stats.valid:,} | {stats.screened:,} | {stats.oversize} | "
            f"{stats.elapsed_s:.1f} | {stats.per_second:,.0f} | {stats.probes} (max {stats.probe_latency_max_ms:.0f} ms) "
            f"| {correct} | {latency} | {alive} | {result.rss_mb_before:.0f} → {result.rss_mb_after:.0f} | "
            f"{result.log_bytes / 2**20:.0f} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("targets", nargs="*", help=f"any of {', '.join(TARGETS)} (default: all)")
    parser.add_argument("--seed", type=int, default=fuzz_seed())
    parser.add_argument("--count", type=int, default=scenarios.MESSAGES_PER_TARGET)
    args = parser.parse_args()
    unknown = set(args.targets) - set(TARGETS)
    if unknown:
        parser.error(f"unknown targets {sorted(unknown)}: choose from {', '.join(TARGETS)}")
    started = datetime.now(timezone.utc)
    rows = []
    for target in args.targets or TARGETS:
        began_s = time.monotonic()
        result = run(target, args.seed, args.count)
        print(f"{target}: {time.monotonic() - began_s:.1f} s with start and stop", file=sys.stderr)
        rows.append(row(target, result))
    print(f"Run of {started:%Y-%m-%d %H:%M} UTC, `{REPRODUCE_COMMAND}` (seed {args.seed}), "
          f"Python {platform.python_version()}, {platform.machine()}.\n")
    print("| socket | messages | still valid | screened | oversize | s | messages/s | probes (slowest answer) "
          "| correct calls / made | steady call p50 / p99 / max ms | up after | RSS MB before → after | log MB |")
    print("|---|---:|---:|---:|---:|---:|---:|---|---|---|---|---|---:|")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
