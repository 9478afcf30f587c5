"""The Celery app of the suite: the two workload functions as tasks, Redis as broker and backend.

The worker: ``celery -A peers.celery_app worker --pool prefork --concurrency N``, started
and stopped by the suite (``celery_peer.py``); the Redis URL comes from the environment (``celery_peer.REDIS_URL_ENV``).
Settings are Celery's defaults except where a benchmark needs otherwise (said per line).
"""

from __future__ import annotations

import os

from celery import Celery

from peers import workloads
from peers.celery_peer import REDIS_URL_ENV
#: Task names by workload.
TASK_NAMES = {"no-op": "bench.noop", "1 ms": "bench.sleep_1ms"}

redis_url = os.environ.get(REDIS_URL_ENV, "redis://127.0.0.1:6379/0")
app = Celery("seawall_bench", broker=redis_url, backend=redis_url)
app.conf.update(
    broker_pool_limit=256,  # 64 caller threads each hold a producer connection while sending
    broker_connection_retry_on_startup=True,
    result_expires=600,  # results are read at once; keep Redis small
    worker_hijack_root_logger=False,
)


@app.task(name=TASK_NAMES["no-op"])
def noop() -> None:
    workloads.noop()


@app.task(name=TASK_NAMES["1 ms"])
def sleep_1ms() -> None:
    workloads.sleep_1ms()
