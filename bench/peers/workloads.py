"""The two calls every peer makes: a no-op, and a 1 ms wait (the call to a fast backend).

Every peer runs these same functions, in a worker process or in its caller. Where the
process is a gevent one (seawall's workers, the gevent callers) ``time`` is
monkey-patched, so the wait yields; in a ProcessPoolExecutor or Celery worker it blocks
the process, which is what those pools do with a waiting call.
"""

from __future__ import annotations

import time
from typing import Callable

#: How long the 1 ms call waits.
CALL_SLEEP_S = 0.001


def noop() -> None:
    return None


def sleep_1ms() -> None:
    time.sleep(CALL_SLEEP_S)


#: The workloads by name, in the order the suite runs and prints them.
WORKLOADS: dict[str, Callable[[], None]] = {"no-op": noop, "1 ms": sleep_1ms}
