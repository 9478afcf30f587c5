"""One row of the suite's table: a peer's figures for one workload and caller count.

Built from a caller's rounds (``peers/caller_loop.py`` answers) or, for the collapsing
case, from bursts. Latencies in µs, CPU in µs of CPU time per call (every process of
the row, summed), memory in kB of peak RSS per process.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Figures:
    peer: str
    workload: str
    callers: str  # "1", "64", or a burst's description
    p50_us: float = math.nan
    p90_us: float = math.nan
    p99_us: float = math.nan
    calls_per_s: float = math.nan
    calls: int = 0  # calls the CPU was spent on
    cpu_s_by_role: dict[str, float] = field(default_factory=dict)
    peak_rss_kb_by_role: dict[str, list[int]] = field(default_factory=dict)
    error: str = ""

    @property
    def cpu_us_per_call(self) -> float:
        return sum(self.cpu_s_by_role.values()) / self.calls * 1e6 if self.calls else math.nan

    def cpu_us_per_call_of(self, role: str) -> float:
        return self.cpu_s_by_role.get(role, math.nan) / self.calls * 1e6 if self.calls else math.nan

    @property
    def peak_rss_mb_total(self) -> float:
        return sum(sum(values) for values in self.peak_rss_kb_by_role.values()) / 1024 \
            if self.peak_rss_kb_by_role else math.nan

    @property
    def ok(self) -> bool:
        return not self.error

    def add_usage(self, usage: dict[str, Any]) -> None:
        """Add one round's ``peers.probe`` usage: CPU added up, each process's peak the highest."""
        for role, cpu_s in usage["cpu_s"].items():
            self.cpu_s_by_role[role] = self.cpu_s_by_role.get(role, 0.0) + cpu_s
        for role, peaks_kb in usage["peak_rss_kb"].items():
            known = self.peak_rss_kb_by_role.setdefault(role, [0] * len(peaks_kb))
            self.peak_rss_kb_by_role[role] = [max(old, new) for old, new in zip(known, peaks_kb)]


def from_rounds(peer: str, workload: str, callers: int, rounds: list[dict[str, Any]],
                latency_us: dict[str, float] | None) -> Figures:
    """Pool a caller's rounds: counts and CPU added up, each process's peak the highest."""
    figures = Figures(peer, workload, str(callers))
    errors = [answer["error"] for answer in rounds if "error" in answer]
    good = [answer for answer in rounds if "error" not in answer]
    if errors:
        figures.error = errors[0]
    if not good:
        figures.error = figures.error or "no round measured"
        return figures
    finished = sum(answer["finished"] for answer in good)
    measured_s = sum(answer["measured_s"] for answer in good)
    figures.calls_per_s = finished / measured_s if measured_s else math.nan
    figures.calls = sum(answer["calls"] for answer in good)
    for answer in good:
        figures.add_usage(answer)
    if latency_us:
        figures.p50_us, figures.p90_us, figures.p99_us = (latency_us[name] for name in ("p50", "p90", "p99"))
    return figures
