"""seawall, both ways a command can be isolated.

* ``process``: ``Noop`` / ``SleepOneMs`` (``noop_commands``) through the client stub, a
  real broker and a pool of worker processes, each holding several slots;
* ``semaphore``: the same calls as ``dependency = None`` commands, run in the caller
  under the tryable semaphore, timeout and breaker, outcomes reported to the broker.

The caller is a gevent process (monkey-patched, as a front is); its concurrent callers
are greenlets. Servers: one ``api.testing.Cluster`` for both variants.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from api.command import Command

from measuring import Window
from peers.processes import Servers
from peers.workloads import noop, sleep_1ms

#: The pool the workers serve (``noop_commands``'s commands).
DEPENDENCY = "bench"
#: Slots of the whole pool: every one of the 64 callers has a slot, so none waits in a queue.
POOL_SLOTS = 64
#: Pool queue size: far above the callers, so nothing is rejected.
QUEUE_SIZE = 1000
#: Semaphore commands in flight: every caller at once.
SEMAPHORE_MAX = 64


class SemaphoreNoop(Command):
    dependency = None
    semaphore_max = SEMAPHORE_MAX

    def run(self) -> None:
        noop()


class SemaphoreSleepOneMs(Command):
    dependency = None
    semaphore_max = SEMAPHORE_MAX

    def run(self) -> None:
        sleep_1ms()


@contextmanager
def servers(directory: Path, worker_processes: int) -> Iterator[Servers]:
    """A broker and ``worker_processes`` workers sharing ``POOL_SLOTS`` slots."""
    from api.testing import Cluster

    from command_path import BENCH_DIR

    cluster = Cluster(directory, settings={"pools": {DEPENDENCY: {"queue_size": QUEUE_SIZE}}},
                      pythonpath=[BENCH_DIR], heartbeat_s=1.0)
    try:
        broker = cluster.start_broker()
        workers = cluster.start_workers(DEPENDENCY, "noop_commands", count=worker_processes,
                                        slots=slots_per_worker(worker_processes))
        cluster.wait_for_workers(DEPENDENCY, worker_processes)
        yield Servers({"config": str(cluster.config_path)},
                      {"broker": [broker.pid], "worker": [worker.pid for worker in workers]})
    finally:
        cluster.stop()


def slots_per_worker(worker_processes: int) -> int:
    return -(-POOL_SLOTS // worker_processes)


class SeawallCaller:
    def __init__(self, variant: str, settings: dict[str, Any]) -> None:
        import api
        from noop_commands import Noop, SleepOneMs

        self.client = api.configure(settings["config"])
        if variant == "process":
            self.commands: dict[str, type[Command]] = {"no-op": Noop, "1 ms": SleepOneMs}
        elif variant == "semaphore":
            self.commands = {"no-op": SemaphoreNoop, "1 ms": SemaphoreSleepOneMs}
        else:
            raise ValueError(f"seawall has no variant {variant!r} (process, semaphore)")

    def measure(self, workload: str, callers: int, window: Window) -> None:
        from command_path import measure_seawall

        measure_seawall(self.client, callers, window, self.commands[workload])

    def own_pids(self) -> dict[str, list[int]]:
        return {}

    def close(self) -> None:
        self.client.close()


def make_caller(variant: str, settings: dict[str, Any]) -> SeawallCaller:
    return SeawallCaller(variant, settings)
