"""The collapsing case of the batching benchmark, as rows of the suite's table.

``batching.py``'s setup (a broker, the pool, front processes warmed up) and its bursts:
every front fires its calls at once, of ``CollapsedGet`` (``collapse = "global"``, in the
broker's batching stage) and of ``PlainGet`` (the same work, uncollapsed), alternating;
then one caller calling one after another on each path. Each burst and each sequence is
probed (``peers.probe``): CPU of the broker, the workers and the fronts, and their peak RSS.
Runs in the suite's process, alone on the machine.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from batching import (BATCH_RATIO_TARGET, Burst, burst_cluster, burst_order, pooled, run_burst, run_sequential)
from batch_commands import CollapsedGet, PlainGet
from measuring import percentile
from peers.probe import ProcessProbe
from suite_figures import Figures

#: The table's names of the two paths.
PATH_NAMES = {CollapsedGet.key: "seawall collapsed (global)", PlainGet.key: "seawall uncollapsed"}
#: The table's workload name.
WORKLOAD = "collapsible get"


@dataclass
class CollapsingResult:
    figures: list[Figures] = field(default_factory=list)
    calls: int = 0  # collapsed calls in the bursts
    backend_batches: int = 0  # run_batch calls they took
    all_answered: bool = False  # every collapsed call answered with its value

    @property
    def batch_ratio(self) -> float:
        return self.backend_batches / self.calls if self.calls else math.nan

    @property
    def met(self) -> bool:
        return self.all_answered and self.batch_ratio <= BATCH_RATIO_TARGET


def run(directory: Path, args: argparse.Namespace) -> CollapsingResult:
    usage: dict[str, list[dict[str, Any]]] = {key: [] for key in PATH_NAMES}
    sequential_usage: dict[str, dict[str, Any]] = {}
    bursts: dict[str, list[Burst]] = {key: [] for key in PATH_NAMES}
    sequential = {}
    with burst_cluster(directory, args) as (cluster, fronts, batch_log):
        broker, *others = cluster.processes
        front_pids = {front.pid for front in fronts}
        probe = ProcessProbe({"broker": [broker.pid],
                              "worker": [process.pid for process in others if process.pid not in front_pids],
                              "front": sorted(front_pids)})
        for round_number in range(args.rounds):
            for key in burst_order(round_number):
                probe.start()
                bursts[key].append(run_burst(cluster, fronts, key, args, batch_log))
                usage[key].append(probe.stop())
        for key in PATH_NAMES:
            probe.start()
            sequential[key] = run_sequential(fronts[0], key, args.sequential_calls)
            sequential_usage[key] = probe.stop()
    result = CollapsingResult()
    burst_label = f"burst {args.fronts * args.calls_per_front:,} ({args.fronts} fronts)"
    for key, name in PATH_NAMES.items():
        total = pooled(bursts[key])
        latencies_us = sorted(value * 1000 for value in total.latencies_ms)
        result.figures.append(_figures(name, burst_label, latencies_us, total.calls, total.calls / total.wall_s,
                                       usage[key]))
        if key == CollapsedGet.key:
            result.calls, result.backend_batches = total.calls, len(total.batch_sizes)
            result.all_answered = total.outcomes.get("value", 0) == total.calls
    for key, name in PATH_NAMES.items():
        latencies_us = [value * 1000 for value in sequential[key].latencies_ms]
        calls_per_s = len(latencies_us) / (sum(latencies_us) / 1e6)
        result.figures.append(_figures(name, "1", latencies_us, len(latencies_us), calls_per_s,
                                       [sequential_usage[key]]))
    return result


def _figures(name: str, callers: str, latencies_us: list[float], calls: int, calls_per_s: float,
             usages: list[dict[str, Any]]) -> Figures:
    figures = Figures(name, WORKLOAD, callers, *(percentile(latencies_us, fraction) for fraction in (0.5, 0.9, 0.99)),
                      calls_per_s=calls_per_s, calls=calls)
    for usage in usages:
        figures.add_usage(usage)
    return figures
