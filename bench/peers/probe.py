"""CPU time and peak memory of the processes one measuring round involves.

CPU is user + system time from ``psutil``, summed per role over the round. Peak memory
is each process's peak resident set size over the round: Linux's ``VmHWM``, reset at the
round's start by writing ``5`` to ``/proc/PID/clear_refs``, so it is exact (no sampling)
and covers this round only. Linux only, as is the suite.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psutil


class ProbeError(RuntimeError):
    """A process of the round is gone or cannot be read; the text names it."""


class ProcessProbe:
    """Call :meth:`start` when the round's clock starts and :meth:`stop` when it ends."""

    def __init__(self, pids_by_role: dict[str, list[int]]) -> None:
        self._pids_by_role = pids_by_role
        self._cpu_started_s: dict[int, float] = {}

    def start(self) -> None:
        for role, pid in self._each():
            _reset_peak_rss(role, pid)
            self._cpu_started_s[pid] = _cpu_s(role, pid)

    def stop(self) -> dict[str, Any]:
        """``{"cpu_s": {role: seconds}, "peak_rss_kb": {role: [kB per process]}}``."""
        cpu_s: dict[str, float] = {}
        peak_rss_kb: dict[str, list[int]] = {}
        for role, pid in self._each():
            cpu_s[role] = cpu_s.get(role, 0.0) + _cpu_s(role, pid) - self._cpu_started_s[pid]
            peak_rss_kb.setdefault(role, []).append(_peak_rss_kb(role, pid))
        return {"cpu_s": cpu_s, "peak_rss_kb": peak_rss_kb}

    def _each(self) -> list[tuple[str, int]]:
        return [(role, pid) for role, pids in self._pids_by_role.items() for pid in pids]


def _cpu_s(role: str, pid: int) -> float:
    try:
        times = psutil.Process(pid).cpu_times()
    except psutil.Error as exc:
        raise ProbeError(f"cannot read the CPU time of {role} (pid {pid}): {exc}") from exc
    return times.user + times.system


def _reset_peak_rss(role: str, pid: int) -> None:
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError as exc:
        raise ProbeError(f"cannot reset the peak RSS of {role} (pid {pid}): {exc}") from exc


def _peak_rss_kb(role: str, pid: int) -> int:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError as exc:
        raise ProbeError(f"cannot read the peak RSS of {role} (pid {pid}): {exc}") from exc
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise ProbeError(f"/proc/{pid}/status of {role} has no VmHWM line")
