"""Commands of the batching benchmark: ``python -m workers --commands batch_commands``.

``CollapsedGet`` collapses globally (in the broker's batching stage); ``PlainGet`` is the
same command without collapsing: ``run()`` does, for one call, exactly what
``run_batch`` does for each call of a batch, so the two differ only in the path.
``Warm`` only connects sockets and wakes the workers, under its own command key, so the
warm-up leaves no batches in ``CollapsedGet``'s collapser counts.

Each batch appends its size to the file named by ``$SEAWALL_BENCH_BATCH_LOG`` (one short
line, ``O_APPEND``), so the benchmark counts backend batches exactly, beside the broker's
own (bin-rounded) batch-size percentiles.
"""

from __future__ import annotations

import os
from typing import Any

from api import Command

#: The worker pool both commands run in.
DEPENDENCY = "batchbench"
#: A caller deadline far beyond the burst, so that queueing shows as latency, not timeouts.
TIMEOUT_S = 30.0
#: What a fallback returns; the fronts count it apart from real values.
FALLBACK_VALUE = "fallback"
#: Where each batch records its size (set by the benchmark before it starts the cluster).
BATCH_LOG_ENV = "SEAWALL_BENCH_BATCH_LOG"


def _item(item_id: int) -> dict[str, int]:
    """The per-call work of both commands: one small result."""
    return {"id": item_id}


def _log_batch(size: int) -> None:
    path = os.environ.get(BATCH_LOG_ENV)
    if path:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, f"{size}\n".encode())
        finally:
            os.close(fd)


class CollapsedGet(Command):
    dependency = DEPENDENCY
    collapse = "global"
    timeout_s = TIMEOUT_S
    item_id: int

    @classmethod
    def run_batch(cls, calls: list[Any]) -> list[Any]:
        _log_batch(len(calls))
        return [_item(call.item_id) for call in calls]

    def fallback(self) -> str:
        return FALLBACK_VALUE


class PlainGet(Command):
    dependency = DEPENDENCY
    timeout_s = TIMEOUT_S
    item_id: int

    def run(self) -> Any:
        return _item(self.item_id)

    def fallback(self) -> str:
        return FALLBACK_VALUE


class Warm(Command):
    dependency = DEPENDENCY
    timeout_s = TIMEOUT_S
    item_id: int

    def run(self) -> Any:
        return _item(self.item_id)


COMMANDS = {command.key: command for command in (CollapsedGet, PlainGet, Warm)}
