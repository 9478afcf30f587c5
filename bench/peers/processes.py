"""The processes the suite starts: each logged to a file, each stopped by its pid.

Every server and caller of the suite is started here or by ``api.testing.Cluster`` and
stopped by pid, its children with it (a Celery worker's pool processes), whether the
suite passes or fails.
"""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import psutil

#: How long a process may take to exit after SIGTERM before it gets SIGKILL.
STOP_GRACE_S = 10.0
#: How often a wait polls its condition.
POLL_INTERVAL_S = 0.05


@dataclass
class Servers:
    """What a peer's servers give its caller: settings (JSON) and their pids by role."""

    settings: dict[str, Any] = field(default_factory=dict)
    pids_by_role: dict[str, list[int]] = field(default_factory=dict)


def start_logged(args: list[str], log_path: Path, env: dict[str, str] | None = None,
                 cwd: Path | None = None) -> subprocess.Popen[bytes]:
    """Start ``args`` with stdout and stderr appended to ``log_path``."""
    with log_path.open("ab") as log_file:
        return subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
                                env=env, cwd=cwd)


def stop_with_children(process: subprocess.Popen[bytes], grace_s: float = STOP_GRACE_S) -> None:
    """SIGTERM one process by pid, then SIGKILL it and any of its children still there."""
    try:
        children = psutil.Process(process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        children = []
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(grace_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    _gone, alive = psutil.wait_procs(children, timeout=grace_s)
    for child in alive:
        try:
            child.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(alive, timeout=grace_s)


def wait_until(condition: Callable[[], Any], what: str, timeout_s: float, log_path: Path | None = None) -> Any:
    """Poll ``condition`` until it is true and return it; on timeout fail naming ``what``."""
    deadline_s = time.monotonic() + timeout_s
    while not (value := condition()):
        if time.monotonic() > deadline_s:
            tail = ""
            if log_path is not None and log_path.exists():
                tail = "\n" + "\n".join(log_path.read_text(errors="replace").splitlines()[-20:])
            raise TimeoutError(f"timed out after {timeout_s:g} s waiting for {what}{tail}")
        time.sleep(POLL_INTERVAL_S)
    return value


def child_pids(pid: int) -> list[int]:
    """Every descendant of ``pid`` (a pool's processes)."""
    return [child.pid for child in psutil.Process(pid).children(recursive=True)]


def bench_env(bench_dir: Path, **extra: str) -> dict[str, str]:
    """This environment with ``bench_dir`` first on PYTHONPATH (so ``peers`` imports)."""
    env = dict(os.environ, **extra)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(bench_dir), env.get("PYTHONPATH")]))
    return env
