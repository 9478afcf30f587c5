"""Scaling a pool through supervisord's own XML-RPC interface (``seawall scale``).

A pool is a supervisord program ``pool-NAME`` in group ``pools``; its ``numprocs`` is the
most workers it can have, and ``scale`` runs the first N of them. Stopping a worker is
supervisord's SIGTERM, so it drains: the broker sends it nothing new, it finishes what it
holds and exits 0. The one module that talks to supervisord.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from xmlrpc.client import Fault, ServerProxy

from supervisor.xmlrpc import SupervisorTransport

#: supervisord group that holds every pool program.
POOLS_GROUP = "pools"
RUNNING_STATES = frozenset({"RUNNING", "STARTING", "BACKOFF"})


class ScaleError(Exception):
    """The pool cannot be scaled as asked; the text says why."""


@dataclass(frozen=True)
class ScaleResult:
    pool: str
    running: int
    started: list[str]
    stopped: list[str]


def supervisor_proxy(serverurl: str) -> Any:
    """supervisord's XML-RPC (``unix:///path/supervisor.sock`` or ``http://host:port``)."""
    transport = SupervisorTransport(None, None, serverurl)
    return ServerProxy("http://127.0.0.1", transport=transport)


def pool_processes(proxy: Any, pool: str) -> list[dict[str, Any]]:
    """The processes of program ``pool-POOL``, in process-number order.

    A process is ``pool-POOL-NN`` exactly: pool names may hold ``-``, and a prefix match
    took pool ``search-v2``'s workers for pool ``search``'s. Numbers sort as numbers
    (``-9`` before ``-10``, and ``-11`` before ``-100`` past 100 processes).
    """
    program = f"pool-{pool}"
    name_pattern = re.compile(rf"{re.escape(program)}-(\d+)")
    numbered = []
    for info in proxy.supervisor.getAllProcessInfo():
        match = name_pattern.fullmatch(info["name"]) if info["group"] == POOLS_GROUP else None
        if match:
            numbered.append((int(match.group(1)), info))
    if not numbered:
        raise ScaleError(f"supervisord has no program {program!r} in group {POOLS_GROUP!r}")
    return [info for _, info in sorted(numbered, key=lambda pair: pair[0])]


def scale(proxy: Any, pool: str, count: int) -> ScaleResult:
    """Run exactly ``count`` workers of ``pool``: start the lowest-numbered, stop the highest."""
    processes = pool_processes(proxy, pool)
    if not 0 <= count <= len(processes):
        raise ScaleError(f"pool {pool!r} can run 0 to {len(processes)} workers (its numprocs), not {count}")
    started, stopped = [], []
    for index, info in enumerate(processes):
        name = f"{POOLS_GROUP}:{info['name']}"
        running = info["statename"] in RUNNING_STATES
        try:
            if index < count and not running:
                proxy.supervisor.startProcess(name, True)
                started.append(info["name"])
            elif index >= count and running:
                proxy.supervisor.stopProcess(name, True)  # SIGTERM: the worker drains first
                stopped.append(info["name"])
        except Fault as fault:
            raise ScaleError(f"supervisord refused to {'start' if index < count else 'stop'} "
                             f"{name}: {fault.faultString}") from fault
    return ScaleResult(pool, count, started, stopped)
