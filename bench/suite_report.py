"""The suite's report: the tables, the ratios, the targets, and the docs section they fill.

The same markdown is printed and written into ``docs/benchmarks.md`` between
``SECTION_BEGIN`` and ``SECTION_END``, so the table in the docs is the one the last
run wrote. Latencies are µs throughout; ratios are seawall's figure ÷ the peer's (for
calls/s, above 1 is better for seawall; for everything else, below 1 is).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from peers.collapsing_peer import PATH_NAMES, CollapsingResult
from suite_figures import Figures

SECTION_BEGIN = "<!-- suite:begin -->"
SECTION_END = "<!-- suite:end -->"

#: seawall's rows, and the peers every seawall figure is divided by.
SEAWALL = ("seawall process", "seawall semaphore")
OTHERS = ("floor", "direct", "pybreaker", "ProcessPoolExecutor", "Celery")

# The targets.
#: Process-isolated no-op calls/s at 64 callers, at least this many times ProcessPoolExecutor's ...
PROCESS_POOL_THROUGHPUT_RATIO = 2.0
#: ... and this many times Celery's.
CELERY_THROUGHPUT_RATIO = 10.0
#: Process-isolated no-op p99 at one caller, at most (µs).
ONE_CALLER_P99_US = 1000.0
#: Semaphore-isolated no-op per call over the direct call's, at most (µs).
SEMAPHORE_OVERHEAD_US = 5.0
#: Process-isolated p50 over the floor's, at most.
FLOOR_P50_RATIO = 1.3


@dataclass
class Run:
    figures: list[Figures]  # the grid, then the collapsing case
    collapsing: CollapsingResult | None
    started_utc: str
    runtime_s: float
    machine: str
    load_before: str
    load_after: str
    versions: dict[str, str]
    command: str
    method: list[str] = field(default_factory=list)  # sentences on how it was measured

    def find(self, peer: str, workload: str, callers: str) -> Figures | None:
        for figures in self.figures:
            if (figures.peer, figures.workload, figures.callers) == (peer, workload, callers) and figures.ok:
                return figures
        return None


@dataclass(frozen=True)
class Target:
    name: str
    measured: str
    met: bool | None  # None: not measured
    margin: str


# -- formatting --------------------------------------------------------------------------


def us(value: float) -> str:
    if math.isnan(value):
        return "–"
    return f"{value:.2f}" if value < 10 else f"{value:,.0f}"


def count(value: float) -> str:
    return "–" if math.isnan(value) else f"{value:,.0f}"


def cpu(value: float) -> str:
    return "–" if math.isnan(value) else f"{value:,.1f}" if value < 1000 else f"{value:,.0f}"


def ratio(numerator: float, denominator: float) -> str:
    if math.isnan(numerator) or math.isnan(denominator) or denominator == 0:
        return "–"
    value = numerator / denominator
    if value < 0.1:
        return f"{value:.2g}×"
    return f"{value:.2f}×" if value < 100 else f"{value:,.0f}×"


def by_role(values: dict[str, str]) -> str:
    return " · ".join(f"{role} {value}" for role, value in values.items()) or "–"


def rss_by_role(figures: Figures) -> str:
    return by_role({role: ", ".join(f"{kb / 1024:.0f}" for kb in peaks)
                    for role, peaks in figures.peak_rss_kb_by_role.items()})


def cpu_by_role(figures: Figures) -> str:
    return by_role({role: cpu(figures.cpu_us_per_call_of(role)) for role in figures.cpu_s_by_role})


# -- tables ------------------------------------------------------------------------------


def main_table(run: Run) -> list[str]:
    lines = ["| workload | callers | peer | p50 µs | p90 µs | p99 µs | calls/s | CPU µs/call | peak RSS MB, all processes |",
             "|---|---:|---|---:|---:|---:|---:|---:|---:|"]
    for figures in run.figures:
        if not figures.ok:
            lines.append(f"| {figures.workload} | {figures.callers} | {figures.peer} | failed: {figures.error} "
                         "| | | | | |")
            continue
        lines.append(f"| {figures.workload} | {figures.callers} | {figures.peer} | {us(figures.p50_us)} "
                     f"| {us(figures.p90_us)} | {us(figures.p99_us)} | {count(figures.calls_per_s)} "
                     f"| {cpu(figures.cpu_us_per_call)} | {figures.peak_rss_mb_total:,.0f} |")
    return lines


def process_table(run: Run) -> list[str]:
    lines = ["| workload | callers | peer | CPU µs/call, by process | peak RSS MB, each process |",
             "|---|---:|---|---|---|"]
    for figures in run.figures:
        if figures.ok:
            lines.append(f"| {figures.workload} | {figures.callers} | {figures.peer} | {cpu_by_role(figures)} "
                         f"| {rss_by_role(figures)} |")
    return lines


def ratio_rows(seawall: Figures, peer: Figures) -> str:
    return (f"| {seawall.workload} | {seawall.callers} | {seawall.peer} | {peer.peer} "
            f"| {ratio(seawall.p50_us, peer.p50_us)} | {ratio(seawall.p90_us, peer.p90_us)} "
            f"| {ratio(seawall.p99_us, peer.p99_us)} | {ratio(seawall.calls_per_s, peer.calls_per_s)} "
            f"| {ratio(seawall.cpu_us_per_call, peer.cpu_us_per_call)} "
            f"| {ratio(seawall.peak_rss_mb_total, peer.peak_rss_mb_total)} |")


def ratio_table(run: Run) -> list[str]:
    lines = ["| workload | callers | seawall | ÷ peer | p50 | p90 | p99 | calls/s | CPU/call | peak RSS |",
             "|---|---:|---|---|---:|---:|---:|---:|---:|---:|"]
    for seawall in run.figures:
        if seawall.peer not in SEAWALL or not seawall.ok:
            continue
        for other in OTHERS:
            peer = run.find(other, seawall.workload, seawall.callers)
            if peer is not None:
                lines.append(ratio_rows(seawall, peer))
    collapsed_name, plain_name = PATH_NAMES.values()
    for collapsed in run.figures:
        if collapsed.peer == collapsed_name and collapsed.ok:
            plain = run.find(plain_name, collapsed.workload, collapsed.callers)
            if plain is not None:
                lines.append(ratio_rows(collapsed, plain))
    return lines


# -- targets -----------------------------------------------------------------------------


def targets(run: Run) -> list[Target]:
    found: list[Target] = []
    process_64 = run.find("seawall process", "no-op", "64")
    for peer, wanted in (("ProcessPoolExecutor", PROCESS_POOL_THROUGHPUT_RATIO), ("Celery", CELERY_THROUGHPUT_RATIO)):
        other = run.find(peer, "no-op", "64")
        name = f"process-isolated no-op, 64 callers: calls/s ≥ {wanted:g}× {peer}'s (same worker processes)"
        if process_64 is None or other is None:
            found.append(Target(name, "not measured", None, ""))
            continue
        value = process_64.calls_per_s / other.calls_per_s
        measured = f"{value:.2f}× ({count(process_64.calls_per_s)} vs {count(other.calls_per_s)} calls/s)"
        found.append(Target(name, measured, value >= wanted, _short_or_over(value, wanted, "", higher_is_better=True)))
    process_1 = run.find("seawall process", "no-op", "1")
    name = f"process-isolated no-op, 1 caller: p99 ≤ {ONE_CALLER_P99_US / 1000:g} ms"
    if process_1 is None:
        found.append(Target(name, "not measured", None, ""))
    else:
        found.append(Target(name, f"{process_1.p99_us / 1000:.3f} ms", process_1.p99_us <= ONE_CALLER_P99_US,
                            _short_or_over(process_1.p99_us / 1000, ONE_CALLER_P99_US / 1000, " ms",
                                           higher_is_better=False)))
    found.append(_semaphore_target(run))
    for callers in ("1", "64"):
        found.append(_floor_target(run, callers))
    found.append(_collapsing_target(run))
    return found


def _semaphore_target(run: Run) -> Target:
    semaphore, direct = run.find("seawall semaphore", "no-op", "1"), run.find("direct", "no-op", "1")
    name = f"semaphore-isolated no-op, 1 caller: ≤ {SEMAPHORE_OVERHEAD_US:g} µs per call over the direct call"
    if semaphore is None or direct is None:
        return Target(name, "not measured", None, "")
    overhead_us = 1e6 / semaphore.calls_per_s - 1e6 / direct.calls_per_s
    p50_overhead_us = semaphore.p50_us - direct.p50_us
    return Target(name, f"{overhead_us:.2f} µs per call (1 ÷ calls/s); p50 {p50_overhead_us:+.2f} µs",
                  overhead_us <= SEMAPHORE_OVERHEAD_US,
                  _short_or_over(overhead_us, SEMAPHORE_OVERHEAD_US, " µs", higher_is_better=False))


def _floor_target(run: Run, callers: str) -> Target:
    process, floor = run.find("seawall process", "no-op", callers), run.find("floor", "no-op", callers)
    name = f"process-isolated no-op, {callers} caller{'s' if callers != '1' else ''}: p50 ≤ {FLOOR_P50_RATIO:g}× the floor's"
    if process is None or floor is None:
        return Target(name, "not measured", None, "")
    value = process.p50_us / floor.p50_us
    return Target(name, f"{value:.2f}× ({us(process.p50_us)} vs {us(floor.p50_us)} µs)", value <= FLOOR_P50_RATIO,
                  _short_or_over(value, FLOOR_P50_RATIO, "", higher_is_better=False))


def _collapsing_target(run: Run) -> Target:
    from batching import BATCH_RATIO_TARGET

    name = f"collapsing, burst: backend batches ≤ 1/{1 / BATCH_RATIO_TARGET:g} of the calls, every call answered"
    result = run.collapsing
    if result is None or not result.calls:
        return Target(name, "not measured", None, "")
    measured = (f"{result.backend_batches:,} / {result.calls:,} = 1/{1 / result.batch_ratio:,.0f}"
                if result.backend_batches else "no batch")
    if not result.all_answered:
        return Target(name, measured + "; some calls not answered with their value", False, "calls lost")
    return Target(name, measured, result.met,
                  _short_or_over(result.batch_ratio, BATCH_RATIO_TARGET, "", higher_is_better=False))


def _short_or_over(value: float, wanted: float, unit: str, higher_is_better: bool) -> str:
    """How far a measured value is from its target: the headroom if met, the shortfall if not."""
    gap = value - wanted if higher_is_better else wanted - value
    percent = abs(gap) / wanted * 100
    amount = f"{abs(gap):.{4 if wanted < 0.1 else 2}f}{unit}"
    if gap >= 0:
        return f"met, {amount} to spare ({percent:.0f} % of the target)"
    return f"missed by {amount} ({percent:.0f} % of the target)"


def target_table(run: Run) -> list[str]:
    lines = ["| target | measured | |", "|---|---|---|"]
    for target in targets(run):
        verdict = "not measured" if target.met is None else f"**{target.margin}**"
        lines.append(f"| {target.name} | {target.measured} | {verdict} |")
    return lines


# -- the section -------------------------------------------------------------------------


def markdown(run: Run) -> str:
    versions = ", ".join(f"{name} {version}" for name, version in run.versions.items())
    lines = [
        f"Last run: {run.started_utc}, whole suite {run.runtime_s / 60:.1f} min ({run.runtime_s:.0f} s); "
        f"load average (1 / 5 / 15 min) {run.load_before} before, {run.load_after} after.",
        "",
        f"Machine: {run.machine}.",
        "",
        f"Versions: {versions}.",
        "",
        f"Command: `{run.command}`",
        "",
        *run.method,
        "",
        "### Targets",
        "",
        *target_table(run),
        "",
        "### Every scenario",
        "",
        "![Latency percentiles and throughput per peer](benchmarks.png)",
        "",
        *main_table(run),
        "",
        "### seawall ÷ each peer, same run",
        "",
        "Each figure of a seawall row divided by the same figure of the peer, same workload and callers "
        "(calls/s: above 1 is better for seawall; latency, CPU and memory: below 1 is).",
        "",
        *ratio_table(run),
        "",
        "### CPU and memory by process",
        "",
        "CPU: µs of user + system time per call, each role's processes summed. Peak RSS: each process's "
        "highest resident set over the scenario's rounds (Linux `VmHWM`, reset at each round's start).",
        "",
        *process_table(run),
    ]
    return "\n".join(lines) + "\n"


def write_docs(path: Path, section: str) -> None:
    """Replace what lies between the markers of ``path`` with ``section``."""
    text = path.read_text()
    begin, end = text.find(SECTION_BEGIN), text.find(SECTION_END)
    if begin < 0 or end < begin:
        raise ValueError(f"{path} has no {SECTION_BEGIN} ... {SECTION_END} section for the suite to fill")
    path.write_text(text[:begin + len(SECTION_BEGIN)] + "\n" + section + text[end:])
