"""The floor: the raw pyzmq relay with the same processes and hops as seawall's path.

``floor_relay.py``'s relay and echoes (as many echoes as seawall has workers, requests
dealt to them in turn); the 1 ms call asks the echo to hold its reply 1 ms without
blocking, as a worker slot waits. The caller keeps ``callers`` requests outstanding on
one blocking DEALER (``command_path.measure_floor``).
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from measuring import Window
from peers.processes import Servers
from peers.workloads import CALL_SLEEP_S

#: How long the echo holds the reply of each workload.
HOLD_MS = {"no-op": 0.0, "1 ms": CALL_SLEEP_S * 1000}


@contextmanager
def servers(directory: Path, worker_processes: int) -> Iterator[Servers]:
    from command_path import floor_processes

    directory.mkdir(parents=True, exist_ok=True)
    with floor_processes(directory, echoes=worker_processes) as (address, processes):
        relay, *echoes = processes
        yield Servers({"address": address}, {"relay": [relay.pid], "echo": [echo.pid for echo in echoes]})


class FloorCaller:
    def __init__(self, settings: dict[str, Any]) -> None:
        self.address = settings["address"]

    def measure(self, workload: str, callers: int, window: Window) -> None:
        from command_path import measure_floor

        measure_floor(self.address, callers, window, sleep_ms=HOLD_MS[workload])

    def own_pids(self) -> dict[str, list[int]]:
        return {}

    def close(self) -> None:
        pass


def make_caller(variant: str, settings: dict[str, Any]) -> FloorCaller:
    return FloorCaller(settings)
