"""``concurrent.futures.ProcessPoolExecutor``: the standard library's process isolation.

One executor of as many worker processes as seawall's pool (each runs one call at a
time: that is the executor's model), forked from this lean caller process (it imports
no gevent or seawall, so the workers are what a user's would be). Concurrent callers are
OS threads, each ``executor.submit(function).result()`` in a loop, as a threaded server
would.
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from measuring import Window, measure_in_threads
from peers.workloads import WORKLOADS, noop


class ProcessPoolCaller:
    def __init__(self, settings: dict[str, Any]) -> None:
        self.executor = ProcessPoolExecutor(max_workers=settings["worker_processes"],
                                            mp_context=multiprocessing.get_context("fork"))
        self.executor.submit(noop).result()  # with fork, the first submit starts every worker

    def measure(self, workload: str, callers: int, window: Window) -> None:
        function = WORKLOADS[workload]
        measure_in_threads(lambda: self.executor.submit(function).result(), callers, window)

    def own_pids(self) -> dict[str, list[int]]:
        import psutil

        return {"worker": [child.pid for child in psutil.Process(os.getpid()).children()]}

    def close(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)


def make_caller(variant: str, settings: dict[str, Any]) -> ProcessPoolCaller:
    return ProcessPoolCaller(settings)
