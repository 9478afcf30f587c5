"""The batching stage: collapsible calls wait here until their window closes or the
batch is full, then go to one worker slot as one batch.

Pure bookkeeping with an injected clock. Calls are grouped by (command, shard); identical
arguments in one batch are sent once (see :func:`unique_payloads`). The number of open
batches is bounded: past ``max_open_batches`` a call is not held, it leaves as a batch of
one.
"""

from __future__ import annotations

import heapq
import itertools
import time
from dataclasses import dataclass, field
from typing import Callable

from broker.calls import Call
from shared import protocol
from shared.events import Event

#: Most batches held open at once (keys come from callers' commands and shards).
MAX_OPEN_BATCHES = 10_000


@dataclass(eq=False)
class OpenBatch:
    command: str
    shard: str
    closes_s: float
    max_batch: int
    members: list[Call] = field(default_factory=list)


class Batcher:
    def __init__(self, clock: Callable[[], float] = time.monotonic, max_open_batches: int = MAX_OPEN_BATCHES) -> None:
        self._clock = clock
        self._max_open_batches = max_open_batches
        self._open: dict[tuple[str, str], OpenBatch] = {}
        self._closing: list[tuple[float, int, OpenBatch]] = []
        self._order = itertools.count()

    def __len__(self) -> int:
        return len(self._open)

    def add(self, call: Call, shard: str, window_s: float, max_batch: int) -> OpenBatch | None:
        """Hold ``call``; the batch if this call filled it (it must go now), else None.

        A batch closes when its window ends, or sooner at the deadline of a member that
        must leave before then: no call waits here past its own deadline.
        """
        key = (call.command, shard)
        batch = self._open.get(key)
        if batch is None:
            batch = OpenBatch(call.command, shard, min(self._clock() + window_s, call.deadline_s), max_batch)
            if len(self._open) >= self._max_open_batches:
                batch.members.append(call)
                return batch  # no room to hold it: a batch of one
            self._open[key] = batch
            heapq.heappush(self._closing, (batch.closes_s, next(self._order), batch))
        elif call.deadline_s < batch.closes_s:  # the earlier entry in _closing decides; the later is skipped
            batch.closes_s = call.deadline_s
            heapq.heappush(self._closing, (batch.closes_s, next(self._order), batch))
        # fronts may disagree for a while (a config rolling out, a runtime setting not yet
        # applied by all): the smallest max of its members holds, not the first one's
        batch.max_batch = min(batch.max_batch, max_batch)
        batch.members.append(call)
        if len(batch.members) >= batch.max_batch:
            del self._open[key]
            return batch
        return None

    def next_close_s(self) -> float | None:
        closing = self._closing
        while closing and self._open.get((closing[0][2].command, closing[0][2].shard)) is not closing[0][2]:
            heapq.heappop(closing)  # left already, full
        return closing[0][0] if closing else None

    def due(self) -> list[OpenBatch]:
        """Batches whose window has closed, removed from the stage."""
        now_s = self._clock()
        ready = []
        while self._closing and self._closing[0][0] <= now_s:
            _, _, batch = heapq.heappop(self._closing)
            key = (batch.command, batch.shard)
            if self._open.get(key) is batch:
                del self._open[key]
                ready.append(batch)
        return ready


def unique_payloads(members: list[Call]) -> tuple[list[bytes], list[int]]:
    """(distinct argument payloads, index of each member's payload among them)."""
    index_by_payload: dict[bytes, int] = {}
    indexes = [index_by_payload.setdefault(member.payload, len(index_by_payload)) for member in members]
    return list(index_by_payload), indexes


def calls_in_batch(request_payload: bytes) -> int:
    """How many calls a front's batch carries; one for a payload that is no batch (the
    worker refuses it as one call)."""
    try:
        return max(1, len(protocol.unpack_batch(request_payload)))
    except protocol.ProtocolError:
        return 1


def request_batch_outcomes(request_payload: bytes, outcome: Event, result_payload: bytes) -> list[Event]:
    """Each call's outcome in a batch a front collapsed (``collapse = "request"``).

    The broker counts such a batch as its calls, as it counts a global batch: each call
    is COLLAPSED, then its own outcome, so failing items move the breaker whichever scope
    collapsed them. A batch that failed whole (raised, timed out, its worker lost) is that
    outcome once per call; a result the broker cannot read fails each call, as the front
    will find it does.
    """
    if outcome is Event.SUCCESS:
        try:
            return [item_outcome for item_outcome, _ in protocol.unpack_batch_results(result_payload)]
        except protocol.ProtocolError:
            outcome = Event.FAILURE
    return [outcome] * calls_in_batch(request_payload)
