"""Event types: the outcome names that metrics, logs, the wire and the stream share.

The names are Hystrix's (``HystrixEventType``), so operators who know Hystrix read
seawall's logs and dashboards at once. ``WORKER_LOST`` is seawall's own: a worker
process died or stopped answering while it held the call.
"""

from __future__ import annotations

import enum


class Event(enum.StrEnum):
    SUCCESS = "SUCCESS"
    FAILURE = "FAILURE"
    TIMEOUT = "TIMEOUT"
    BAD_REQUEST = "BAD_REQUEST"
    SHORT_CIRCUITED = "SHORT_CIRCUITED"
    THREAD_POOL_REJECTED = "THREAD_POOL_REJECTED"
    SEMAPHORE_REJECTED = "SEMAPHORE_REJECTED"
    WORKER_LOST = "WORKER_LOST"
    FALLBACK_SUCCESS = "FALLBACK_SUCCESS"
    FALLBACK_FAILURE = "FALLBACK_FAILURE"
    FALLBACK_REJECTED = "FALLBACK_REJECTED"
    FALLBACK_MISSING = "FALLBACK_MISSING"
    RESPONSE_FROM_CACHE = "RESPONSE_FROM_CACHE"
    COLLAPSED = "COLLAPSED"


#: Outcomes a call can come back from the broker with (the wire's REPLY kinds).
CALL_OUTCOMES: frozenset[Event] = frozenset(
    {
        Event.SUCCESS,
        Event.FAILURE,
        Event.TIMEOUT,
        Event.BAD_REQUEST,
        Event.SHORT_CIRCUITED,
        Event.THREAD_POOL_REJECTED,
        Event.WORKER_LOST,
    }
)

#: Outcomes a worker may report for a call it ran.
WORKER_OUTCOMES: frozenset[Event] = frozenset(
    {Event.SUCCESS, Event.FAILURE, Event.TIMEOUT, Event.BAD_REQUEST}
)
