"""Calls lost on their way to a worker, found with numbered heartbeats.

Why: ZeroMQ delivers in order on one connection, but what is in flight when a connection
goes is dropped without a word: calls sent to a worker that has just made its socket
again (after a broker stall: workers/worker.py), ZeroMQ's own reconnect after a protocol
error, a ROUTER's full pipe. The broker would count such a call as running in its worker
for ever: its slot never comes back, and a pool that loses all its slots this way is
wedged (every later call times out in its queue) while its workers beat on, idle.

So every heartbeat the broker sends a worker (BEAT) carries a number, and every call it
sends is stamped with the number of the last beat sent before it. A worker's own
heartbeat (STATS) echoes the last number it heard and lists every call it holds. A
connection delivers in order, so a worker that heard beat ``m`` has had every call sent
before beat ``m``, on that connection or never: a call stamped below ``m`` that it does
not list, and whose result has not come, is lost, and no result will come for it (a
worker sends its results before the STATS that follows them).
"""

from __future__ import annotations

import random
from typing import Iterable

#: A broker's first beat is drawn below this: a worker still echoing the beat of a broker
#: from before a restart is then never taken for having heard this one's.
FIRST_BEAT_BELOW = 2**40


class Beats:
    """This broker's beat count: the number of the last beat it sent."""

    def __init__(self, rng: random.Random | None = None) -> None:
        self.first = (rng or random.Random()).randrange(1, FIRST_BEAT_BELOW)
        self.current = self.first

    def advance(self) -> int:
        """The next beat's number, now the current one."""
        self.current += 1
        return self.current

    def sent_by_me(self, echoed: int) -> bool:
        """Whether ``echoed`` is a beat this broker sent (not 0, the worker's "none yet",
        nor another broker's)."""
        return self.first < echoed <= self.current


def lost(stamped: Iterable[tuple[int, int]], echoed: int, holding: frozenset[int] | set[int]) -> list[int]:
    """The ids of ``stamped`` (call id, beat stamped) that a worker which heard beat
    ``echoed`` and holds ``holding`` can no longer answer."""
    return [call_id for call_id, beat in stamped if beat < echoed and call_id not in holding]
