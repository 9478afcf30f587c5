"""Celery with Redis as broker and result backend: the task queue a user might pick instead.

Servers: ``redis-server`` on a free loopback port (no persistence), started from the
system's package, and one Celery worker with the prefork pool of as many processes as
seawall's pool (``--concurrency N``: one task per process at a time, the prefork model).
The caller is a thread-based process: each concurrent caller a thread doing
``task.delay().get()`` in a loop.
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from measuring import Window, measure_in_threads
from peers.processes import Servers, bench_env, child_pids, start_logged, stop_with_children, wait_until

#: The environment variable naming the Redis URL (broker and result backend) for ``celery_app``.
REDIS_URL_ENV = "SEAWALL_BENCH_REDIS_URL"
#: How long a caller waits for one task's result (the first waits for the worker to start).
RESULT_TIMEOUT_S = 60.0
#: How long Redis and the worker may take to come up.
START_TIMEOUT_S = 60.0


@contextmanager
def servers(directory: Path, worker_processes: int) -> Iterator[Servers]:
    from api.testing import free_port

    bench_dir = Path(__file__).resolve().parent.parent
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    redis_url = f"redis://127.0.0.1:{port}/0"
    with redis_server(directory, port) as redis:
        worker_log = directory / "celery-worker.log"
        worker = start_logged(
            [sys.executable, "-m", "celery", "-A", "peers.celery_app", "worker", "--pool", "prefork",
             "--concurrency", str(worker_processes), "--without-gossip", "--without-mingle", "--without-heartbeat",
             "--loglevel", "WARNING"],
            worker_log, env=bench_env(bench_dir, **{REDIS_URL_ENV: redis_url}), cwd=directory)
        try:
            pool = wait_until(lambda: len(child_pids(worker.pid)) >= worker_processes and child_pids(worker.pid),
                              f"the Celery worker's {worker_processes} pool processes", START_TIMEOUT_S, worker_log)
            yield Servers({"redis_url": redis_url},
                          {"redis": [redis.pid], "celery worker": [worker.pid, *pool]})
        finally:
            stop_with_children(worker)


@contextmanager
def redis_server(directory: Path, port: int) -> Iterator[Any]:
    """``redis-server`` on 127.0.0.1:``port``, no persistence; stopped by pid."""
    executable = shutil.which("redis-server")
    if executable is None:
        raise RuntimeError("redis-server is not installed: run scripts/ensure-redis "
                           "(or: sudo apt-get install -y redis-server)")
    log_path = directory / "redis.log"
    process = start_logged([executable, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                            "--appendonly", "no", "--dir", str(directory)], log_path)
    try:
        wait_until(lambda: process.poll() is None and _pings(port), f"redis-server on port {port}",
                   START_TIMEOUT_S, log_path)
        yield process
    finally:
        stop_with_children(process)


def _pings(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class CeleryCaller:
    def __init__(self, settings: dict[str, Any]) -> None:
        os.environ[REDIS_URL_ENV] = settings["redis_url"]  # read when celery_app is imported
        from peers import celery_app

        self.app = celery_app.app
        self.tasks = {workload: self.app.tasks[name] for workload, name in celery_app.TASK_NAMES.items()}

    def measure(self, workload: str, callers: int, window: Window) -> None:
        task = self.tasks[workload]
        measure_in_threads(lambda: task.delay().get(timeout=RESULT_TIMEOUT_S), callers, window)

    def own_pids(self) -> dict[str, list[int]]:
        return {}

    def close(self) -> None:
        self.app.close()


def make_caller(variant: str, settings: dict[str, Any]) -> CeleryCaller:
    return CeleryCaller(settings)
