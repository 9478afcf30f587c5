"""Calls the broker holds, queued or running, and the deadlines that end them.

A call stays here from the moment a caller's request arrives until its worker's result
comes back (or the worker is lost): a call answered TIMEOUT at its deadline still holds
its worker's slot until that worker says it is free.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterator

if TYPE_CHECKING:
    from broker.commands import CommandRecord

#: Rebuild the deadline heap when it holds this many more entries than live calls.
HEAP_SLACK = 1024


@dataclass(slots=True, eq=False)
class Call:
    call_id: int  # the broker's own id, unique in this broker
    caller: bytes  # the front's ROUTER identity
    caller_call_id: int  # the id the front knows the call by
    command: str
    pool: str
    deadline_s: float  # broker clock
    payload: bytes  # the arguments, never decoded here
    received_s: float
    record: CommandRecord  # the command's breaker and metrics
    trial: int = 0  # the breaker's trial token if this call decides a half-open breaker
    worker: bytes | None = None  # identity of the worker running it, once sent
    beat: int = 0  # once sent: the number of the last beat sent before it (broker/beats.py)
    answered: bool = False  # the caller has its answer (a late result is only a free slot)
    batch: bool = False  # runs as one run_batch() call: payload is pack_batch() of many
    members: list[Call] | None = None  # for a batch the broker collapsed: the calls in it
    member_indexes: list[int] | None = None  # each member's arguments among the batch's


class CallTable:
    """Live calls by id, with a heap of deadlines for cheap expiry."""

    def __init__(self, first_id: int = 1) -> None:
        self._by_id: dict[int, Call] = {}
        self._deadlines: list[tuple[float, int]] = []
        self._next_id = first_id

    def __len__(self) -> int:
        return len(self._by_id)

    def new_id(self) -> int:
        call_id = self._next_id
        self._next_id += 1
        return call_id

    def add(self, call: Call) -> None:
        self._by_id[call.call_id] = call
        heapq.heappush(self._deadlines, (call.deadline_s, call.call_id))
        if len(self._deadlines) > 2 * len(self._by_id) + HEAP_SLACK:
            self._compact()

    def get(self, call_id: int) -> Call | None:
        return self._by_id.get(call_id)

    def pop(self, call_id: int) -> Call | None:
        return self._by_id.pop(call_id, None)

    def next_deadline_s(self) -> float | None:
        """The earliest deadline still to act on, dropping entries of finished calls."""
        deadlines = self._deadlines
        while deadlines:
            deadline_s, call_id = deadlines[0]
            call = self._by_id.get(call_id)
            if call is not None and not call.answered:
                return deadline_s
            heapq.heappop(deadlines)
        return None

    def expired(self, now_s: float) -> Iterator[Call]:
        """Unanswered calls whose deadline has passed, earliest first."""
        deadlines = self._deadlines
        while deadlines and deadlines[0][0] <= now_s:
            _, call_id = heapq.heappop(deadlines)
            call = self._by_id.get(call_id)
            if call is not None and not call.answered:
                yield call

    def _compact(self) -> None:
        self._deadlines = [(c.deadline_s, c.call_id) for c in self._by_id.values() if not c.answered]
        heapq.heapify(self._deadlines)
