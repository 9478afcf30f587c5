"""A worker pool as the broker sees it: workers, their free slots, a bounded queue.

Pure bookkeeping, no sockets: the broker asks for a free slot, queues a call when there
is none and room remains, and rejects it otherwise. Free slots are a FIFO, one entry
per free slot, so work spreads round-robin across a pool's workers.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable

from broker.calls import Call
from shared.events import Event
from shared.rolling import RollingCounts, RollingMax

#: Pool outcome counts (rejections, timeouts, ...) cover this window, as Hystrix's pools do.
POOL_WINDOW_S = 10.0
POOL_WINDOW_BUCKETS = 10
#: Most pools one broker holds. The first worker naming a dependency makes its pool, which
#: stays when its workers go (its counts, queue and settings); a worker naming one more is
#: refused, so workers started with made-up names cannot grow the broker without bound.
MAX_POOLS = 1000


@dataclass(slots=True)
class WorkerRecord:
    identity: bytes
    pool: str
    slots: int
    pid: int
    commands: frozenset[str]
    joined_s: float
    last_seen_s: float
    held: set[int] = field(default_factory=set)  # broker call ids it is running
    #: calls it still ran when it registered again (after a stall), unknown to this broker:
    #: their slots stay busy until their results come
    ghosts: set[int] = field(default_factory=set)
    #: the beat when ghosts were last added: a STATS echoing a later one lists them all
    ghosts_beat: int = 0
    draining: bool = False
    #: told to die (``seawall chaos kill``): not chosen again while it is still registered
    killed: bool = False
    calls_served: int = 0
    rss_mb: float = 0.0  # as the worker last reported it

    @property
    def busy(self) -> int:
        return len(self.held) + len(self.ghosts)


class Pool:
    def __init__(self, name: str, queue_size: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.name = name
        self.queue_size = queue_size
        self.workers: dict[bytes, WorkerRecord] = {}
        self.queue: deque[Call] = deque()
        #: outcomes of this pool's calls in the last POOL_WINDOW_S
        self.events: RollingCounts[Event] = RollingCounts(list(Event), POOL_WINDOW_S, POOL_WINDOW_BUCKETS, clock)
        #: faults injected into this pool's calls (``seawall chaos``); {} = none
        self.chaos: dict[str, float] = {}
        self._free_slots: deque[bytes] = deque()
        # What Hystrix shows of a thread pool: calls handed out and finished since the
        # broker started, the most slots it ever had, and the busiest moment in the window.
        self.submitted_total = 0
        self.completed_total = 0
        self.largest_slots = 0
        self.running = 0
        self.max_running = RollingMax(POOL_WINDOW_S, POOL_WINDOW_BUCKETS, clock)
        self.executed: RollingCounts[str] = RollingCounts(["executed"], POOL_WINDOW_S, POOL_WINDOW_BUCKETS, clock)

    # -- membership ----------------------------------------------------------------------

    def add_worker(self, worker: WorkerRecord) -> None:
        """Add a worker; its free slots interleave with the others' so work spreads."""
        self.workers[worker.identity] = worker
        self.largest_slots = max(self.largest_slots, self.slots)
        free_by_worker: dict[bytes, int] = {}
        for identity in self._free_slots:
            free_by_worker[identity] = free_by_worker.get(identity, 0) + 1
        if not worker.draining and worker.slots > worker.busy:
            free_by_worker[worker.identity] = worker.slots - worker.busy
        self._free_slots.clear()
        while free_by_worker:
            for identity in list(free_by_worker):
                self._free_slots.append(identity)
                free_by_worker[identity] -= 1
                if free_by_worker[identity] == 0:
                    del free_by_worker[identity]

    def remove_worker(self, identity: bytes) -> WorkerRecord | None:
        worker = self.workers.pop(identity, None)
        if worker is not None:
            self._forget_free_slots(identity)
        return worker

    def drain_worker(self, worker: WorkerRecord) -> None:
        """Send it nothing new; its capacity leaves the pool at once."""
        worker.draining = True
        self._forget_free_slots(worker.identity)

    def _forget_free_slots(self, identity: bytes) -> None:
        self._free_slots = deque(slot for slot in self._free_slots if slot != identity)

    # -- slots and queue -----------------------------------------------------------------

    def take_slot(self) -> WorkerRecord | None:
        if not self._free_slots:
            return None
        return self.workers[self._free_slots.popleft()]

    def occupy_free_slot(self, worker: WorkerRecord) -> bool:
        """Mark one of the worker's free slots busy (with a call this broker did not send)."""
        try:
            self._free_slots.remove(worker.identity)
        except ValueError:
            return False
        return True

    def release_slot(self, worker: WorkerRecord) -> None:
        if not worker.draining and self.workers.get(worker.identity) is worker:
            self._free_slots.append(worker.identity)

    def call_started(self) -> None:
        self.submitted_total += 1
        self.running += 1
        self.max_running.add(self.running)

    def call_finished(self, completed: bool) -> None:
        """A call left its worker: ``completed`` if the worker answered it."""
        self.running -= 1
        if completed:
            self.completed_total += 1
            self.executed.add("executed")

    def has_free_slot(self) -> bool:
        return bool(self._free_slots)

    def has_queue_room(self) -> bool:
        return len(self.queue) < self.queue_size

    # -- what operators see --------------------------------------------------------------

    @property
    def slots(self) -> int:
        return sum(w.slots for w in self.workers.values() if not w.draining)

    @property
    def busy(self) -> int:
        return sum(w.busy for w in self.workers.values())

    def status(self, now_s: float) -> dict[str, object]:
        return {
            "workers": sum(1 for w in self.workers.values() if not w.draining),
            "draining": sum(1 for w in self.workers.values() if w.draining),
            "slots": self.slots,
            "busy": self.busy,
            "queued": len(self.queue),
            "queue_size": self.queue_size,
            "chaos": dict(self.chaos),
            "events": {event.value: count for event, count in sorted(self.events.totals().items())},
            "worker_list": [
                {
                    "pid": w.pid,
                    "slots": w.slots,
                    "busy": w.busy,
                    "calls_served": w.calls_served,
                    "uptime_s": round(now_s - w.joined_s, 3),
                    "rss_mb": w.rss_mb,
                    "draining": w.draining,
                }
                for w in self.workers.values()
            ],
        }
