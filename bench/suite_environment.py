"""What a suite run ran on: the machine, its load, and the version of every piece measured."""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
from importlib import metadata
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parent.parent
#: Python distributions whose versions the report names.
DISTRIBUTIONS = ("pyzmq", "gevent", "msgpack", "celery", "kombu", "redis", "pybreaker", "psutil", "matplotlib")


def machine() -> str:
    cpu_model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    ram_gib = psutil.virtual_memory().total / 2**30
    return f"{cpu_model}, {cores} cores, {ram_gib:.0f} GiB RAM, Linux {platform.release()} ({platform.machine()})"


def load_average() -> str:
    return " / ".join(f"{value:.2f}" for value in os.getloadavg())


def versions() -> dict[str, str]:
    found = {"Python": platform.python_version(), "seawall": seawall_revision()}
    for name in DISTRIBUTIONS:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    found["libzmq"] = _libzmq_version()
    found["redis-server"] = redis_server_version()
    return found


def seawall_revision() -> str:
    """The git commit of the tree measured, ``+changes`` if it differs from that commit."""
    try:
        revision = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                                  text=True, check=True).stdout.strip()
        changed = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
                                 capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return f"{revision}+changes" if changed else revision


def redis_server_version() -> str:
    executable = shutil.which("redis-server")
    if executable is None:
        return "not installed"
    output = subprocess.run([executable, "--version"], capture_output=True, text=True).stdout
    match = re.search(r"v=(\S+)", output)
    return match.group(1) if match else output.strip()


def _libzmq_version() -> str:
    try:
        import zmq
    except ImportError:
        return "not installed"
    return zmq.zmq_version()
