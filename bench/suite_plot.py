"""The suite's picture: latency percentiles and throughput of every peer, as a PNG.

One column per panel (a workload, its peers, its two caller counts); the top row shows
p50 as a bar and the p50–p99 range as a line (p90 as a tick), the bottom row calls/s.
Both on log scales: figures range from a fraction of a µs to tens of ms.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from suite_figures import Figures

#: Bar colours of a panel's first and second caller count.
COLOURS = ("#4c72b0", "#dd8452")


@dataclass(frozen=True)
class Panel:
    workload: str
    peers: list[str]
    callers: tuple[str, str]


def plot(figures: list[Figures], path: Path, panels: list[Panel]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    widths = [max(3, len(panel.peers)) for panel in panels]
    fig, axes = plt.subplots(2, len(panels), figsize=(sum(widths) + 2, 9), squeeze=False,
                             gridspec_kw={"width_ratios": widths})
    by_key = {(item.peer, item.workload, item.callers): item for item in figures if item.ok}
    width = 0.38
    for column, panel in enumerate(panels):
        workload, peers = panel.workload, panel.peers
        latency_axis, throughput_axis = axes[0][column], axes[1][column]
        for offset_index, (callers, colour) in enumerate(zip(panel.callers, COLOURS)):
            offset = (offset_index - 0.5) * width
            label: str | None = callers_label(callers)  # on the first bar of this caller count only
            for index, peer in enumerate(peers):
                item = by_key.get((peer, workload, callers))
                if item is None or math.isnan(item.p50_us):
                    continue
                x = index + offset
                latency_axis.bar(x, item.p50_us, width, color=colour, label=label)
                latency_axis.plot([x, x], [item.p50_us, item.p99_us], color="black", linewidth=1)
                latency_axis.plot([x - width / 4, x + width / 4], [item.p90_us] * 2, color="black", linewidth=1)
                latency_axis.plot([x - width / 3, x + width / 3], [item.p99_us] * 2, color="black", linewidth=1.5)
                throughput_axis.bar(x, item.calls_per_s, width, color=colour, label=label)
                label = None
        for axis, title in ((latency_axis, f"{workload}\nlatency µs: bar p50, ticks p90 and p99"),
                            (throughput_axis, f"{workload}\ncalls/s")):
            axis.set_yscale("log")
            axis.set_title(title)
            axis.set_xticks(range(len(peers)))
            axis.set_xticklabels(peers, rotation=30, ha="right", fontsize=8)
            axis.grid(axis="y", which="major", alpha=0.3)
            axis.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def callers_label(callers: str) -> str:
    return f"{callers} caller{'' if callers == '1' else 's'}" if callers.isdigit() else callers
