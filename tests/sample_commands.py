"""Commands the process tests run in real workers (pool "sample")."""

from __future__ import annotations

import json
import os
import time

from api import BadRequest, Command


class Echo(Command):
    dependency = "sample"
    text: str

    def run(self) -> str:
        return self.text.upper()


class Fail(Command):
    dependency = "sample"
    message: str

    def run(self) -> None:
        raise ValueError(self.message)


class FailWithFallback(Fail):
    def fallback(self) -> str:
        return "from fallback"


class Invalid(Command):
    dependency = "sample"

    def run(self) -> None:
        raise BadRequest("user_id must be positive")

    def fallback(self) -> str:
        return "must not be used"


class Sleep(Command):
    """Sleeps ``seconds``; records each start in ``marker_dir`` so tests can see what ran."""

    dependency = "sample"
    seconds: float
    marker_dir: str = ""
    label: str = ""

    def run(self) -> int:
        if self.marker_dir:
            with open(os.path.join(self.marker_dir, f"ran-{self.label}-{os.getpid()}-{time.time_ns()}"), "w"):
                pass
        time.sleep(self.seconds)
        return os.getpid()


class SleepWithFallback(Sleep):
    def fallback(self) -> str:
        return "from fallback"


class WorkerPid(Command):
    dependency = "sample"

    def run(self) -> int:
        return os.getpid()


class Flaky(Command):
    """Fails when told to; marks each run in ``marker_dir`` so tests can count what ran."""

    dependency = "sample"
    fail: bool
    marker_dir: str = ""
    seconds: float = 0.0

    def run(self) -> str:
        if self.marker_dir:
            with open(os.path.join(self.marker_dir, f"ran-{os.getpid()}-{time.time_ns()}"), "w"):
                pass
        time.sleep(self.seconds)
        if self.fail:
            raise ConnectionError("backend refused")
        return "ok"

    def fallback(self) -> str:
        return "fallback"


def _record_batch(marker_dir: str, calls: list) -> None:
    """Write the ids of one batch to a file in ``marker_dir``, so tests can see batches."""
    if marker_dir:
        path = os.path.join(marker_dir, f"batch-{time.time_ns()}-{os.getpid()}.json")
        with open(path, "w") as batch_file:
            json.dump([call.item_id for call in calls], batch_file)


class GetItem(Command):
    """Collapses globally: a burst of calls becomes one run_batch in a worker."""

    dependency = "sample"
    collapse = "global"
    item_id: int
    marker_dir: str = ""

    @classmethod
    def run_batch(cls, calls: list) -> list:
        _record_batch(calls[0].marker_dir, calls)
        return [ValueError(f"no item {call.item_id}") if call.item_id < 0 else {"id": call.item_id}
                for call in calls]

    def fallback(self) -> str:
        return "fallback"


class GetItemByParity(GetItem):
    def shard(self) -> int:
        return self.item_id % 2


class GetItemInRequest(GetItem):
    collapse = "request"


class GetItemWrongCount(GetItem):
    @classmethod
    def run_batch(cls, calls: list) -> list:
        return [{"id": call.item_id} for call in calls][:-1]

    fallback = Command.fallback


class GetItemBatchFails(GetItem):
    @classmethod
    def run_batch(cls, calls: list) -> list:
        raise RuntimeError(f"batch of {len(calls)} failed")

    fallback = Command.fallback


class Cancelled(Command):
    """Lets out a BaseException that is not an Exception (code running its own asyncio loop)."""

    dependency = "sample"

    def run(self) -> None:
        import asyncio

        raise asyncio.CancelledError("the loop was cancelled")
