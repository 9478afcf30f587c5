"""``GET /hystrix.stream``: the cluster view in Hystrix's own stream format.

So a Hystrix Dashboard or a Turbine can watch seawall as it watches a Hystrix JVM: one
``HystrixCommand`` message per command, one ``HystrixThreadPool`` per pool, one
``HystrixCollapser`` per collapser, with exactly Hystrix's fields in Hystrix's order
(``hystrix-serialization``'s ``SerialHystrixDashboardData``), as server-sent events.

Seawall's events map onto Hystrix's counters one to one, except: ``rollingCountFailure``
is FAILURE + WORKER_LOST (a worker lost mid-call is a failure of the call);
``rollingCountExceptionsThrown`` is BAD_REQUEST + FALLBACK_FAILURE + FALLBACK_MISSING +
FALLBACK_REJECTED (what reached the caller as an exception); EMIT and FALLBACK_EMIT do
not exist here and are 0.

An aggregated view speaks Turbine's language: ``reportingHosts`` is the number of brokers
behind an entry, counts are cluster sums, and the fields the dashboard divides by
``reportingHosts`` (error percentage, latencies, the statistical window, the queue
threshold) are sent multiplied by it, as Turbine's sums would be — so the dashboard shows
the cluster's figure, and a Turbine above this stream can aggregate it further.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Generator, Iterable, Mapping
from urllib.parse import parse_qs

import gevent

from api.event_stream import StreamPlaces
from shared.log_throttle import LogThrottle
from shared.logging import get_logger
from shared.metrics_schema import PERCENTILE_KEYS

log = get_logger("api.hystrix_stream")

#: Streams served at once by one front process (Hystrix's maxConcurrentConnections).
MAX_CONNECTIONS = 5
#: Milliseconds between two rounds of messages unless ``?delay=`` says otherwise (Hystrix's).
DEFAULT_DELAY_MS = 500
#: ``?delay=`` is held within these bounds.
MIN_DELAY_MS = 100
MAX_DELAY_MS = 10_000
#: Hystrix's stream headers.
STREAM_HEADERS = [
    ("Content-Type", "text/event-stream;charset=UTF-8"),
    ("Cache-Control", "no-cache, no-store, max-age=0, must-revalidate"),
    ("Pragma", "no-cache"),
]
#: Written after every round: keep-alive, and how a gone client is noticed.
PING = b"ping: \n\n"
#: At most one log line about a failing view in this long (every connection asks each round).
VIEW_ERROR_LOG_INTERVAL_S = 10.0

#: Which seawall events each of Hystrix's rolling counters counts, in Hystrix's field order.
COMMAND_COUNTERS: dict[str, tuple[str, ...]] = {
    "rollingCountBadRequests": ("BAD_REQUEST",),
    "rollingCountCollapsedRequests": ("COLLAPSED",),
    "rollingCountEmit": (),
    "rollingCountExceptionsThrown": ("BAD_REQUEST", "FALLBACK_FAILURE", "FALLBACK_MISSING", "FALLBACK_REJECTED"),
    "rollingCountFailure": ("FAILURE", "WORKER_LOST"),
    "rollingCountFallbackEmit": (),
    "rollingCountFallbackFailure": ("FALLBACK_FAILURE",),
    "rollingCountFallbackMissing": ("FALLBACK_MISSING",),
    "rollingCountFallbackRejection": ("FALLBACK_REJECTED",),
    "rollingCountFallbackSuccess": ("FALLBACK_SUCCESS",),
    "rollingCountResponsesFromCache": ("RESPONSE_FROM_CACHE",),
    "rollingCountSemaphoreRejected": ("SEMAPHORE_REJECTED",),
    "rollingCountShortCircuited": ("SHORT_CIRCUITED",),
    "rollingCountSuccess": ("SUCCESS",),
    "rollingCountThreadPoolRejected": ("THREAD_POOL_REJECTED",),
    "rollingCountTimeout": ("TIMEOUT",),
}
#: The group (and thread pool) name of commands that run in the caller, under a semaphore.
SEMAPHORE_GROUP = "semaphore"

StartResponse = Callable[..., Any]


def hystrix_messages(view: Mapping[str, Any], now_ms: int | None = None) -> list[dict[str, Any]]:
    """Every message of one round: commands, then pools, then collapsers, each by name."""
    current_ms = view["time_ms"] if now_ms is None else now_ms
    return ([command_message(key, command, current_ms) for key, command in sorted(view["commands"].items())]
            + [pool_message(name, pool, current_ms) for name, pool in sorted(view["pools"].items())]
            + [collapser_message(key, collapser, current_ms)
               for key, collapser in sorted(view["collapsers"].items())])


def _ms(seconds: float) -> int:
    return int(round(seconds * 1000))


def _scaled(distribution: Mapping[str, float], keys: tuple[str, ...], hosts: int) -> dict[str, int]:
    return {key: int(round(distribution[key] * hosts)) for key in keys}


def command_message(key: str, command: Mapping[str, Any], current_ms: int) -> dict[str, Any]:
    hosts = command.get("hosts", 1)
    events = command["events"]
    settings = command["settings"]
    group = command["pool"] or SEMAPHORE_GROUP
    timeout_ms = _ms(settings["timeout_s"])
    message: dict[str, Any] = {
        "type": "HystrixCommand",
        "name": key,
        "group": group,
        "currentTime": current_ms,
        "isCircuitBreakerOpen": command["breaker"] in ("OPEN", "HALF_OPEN"),
        "errorPercentage": int(command["error_pct"] * hosts),
        "errorCount": command["error_count"],
        "requestCount": command["request_count"],
    }
    for field, names in COMMAND_COUNTERS.items():
        message[field] = sum(events.get(name, 0) for name in names)
    message.update({
        "currentConcurrentExecutionCount": command["concurrent"],
        "rollingMaxConcurrentExecutionCount": command["max_concurrent"],
        "latencyExecute_mean": int(round(command["latency_execute"]["mean"] * hosts)),
        "latencyExecute": _scaled(command["latency_execute"], PERCENTILE_KEYS, hosts),
        "latencyTotal_mean": int(round(command["latency_total"]["mean"] * hosts)),
        "latencyTotal": _scaled(command["latency_total"], PERCENTILE_KEYS, hosts),
        "propertyValue_circuitBreakerRequestVolumeThreshold": settings["breaker_volume_threshold"],
        "propertyValue_circuitBreakerSleepWindowInMilliseconds": _ms(settings["breaker_sleep_s"]),
        "propertyValue_circuitBreakerErrorThresholdPercentage": int(settings["breaker_error_pct"]),
        "propertyValue_circuitBreakerForceOpen": command["force"] == "open",
        "propertyValue_circuitBreakerForceClosed": command["force"] == "closed",
        "propertyValue_circuitBreakerEnabled": True,
        "propertyValue_executionIsolationStrategy": command["isolation"],
        "propertyValue_executionIsolationThreadTimeoutInMilliseconds": timeout_ms,
        "propertyValue_executionTimeoutInMilliseconds": timeout_ms,
        "propertyValue_executionIsolationThreadInterruptOnTimeout": True,  # the worker stops the call
        "propertyValue_executionIsolationThreadPoolKeyOverride": None,
        "propertyValue_executionIsolationSemaphoreMaxConcurrentRequests": settings["semaphore_max"],
        "propertyValue_fallbackIsolationSemaphoreMaxConcurrentRequests": settings["fallback_max"],
        "propertyValue_metricsRollingStatisticalWindowInMilliseconds": _ms(settings["window_s"]) * hosts,
        "propertyValue_requestCacheEnabled": True,
        "propertyValue_requestLogEnabled": True,
        "reportingHosts": hosts,
        "threadPool": group,
    })
    return message


def pool_message(name: str, pool: Mapping[str, Any], current_ms: int) -> dict[str, Any]:
    """A pool of worker processes as a thread pool: slots are its threads.

    ``queue_size`` is already the cluster's sum, which is what the dashboard divides.
    """
    hosts = pool.get("hosts", 1)
    return {
        "type": "HystrixThreadPool",
        "name": name,
        "currentTime": current_ms,
        "currentActiveCount": pool["busy"],
        "currentCompletedTaskCount": pool["completed_total"],
        "currentCorePoolSize": pool["slots"],
        "currentLargestPoolSize": pool["largest_slots"],
        "currentMaximumPoolSize": pool["slots"],
        "currentPoolSize": pool["slots"],
        "currentQueueSize": pool["queued"],
        "currentTaskCount": pool["submitted_total"],
        "rollingCountThreadsExecuted": pool["rolling_executed"],
        "rollingMaxActiveThreads": pool["rolling_max_busy"],
        "rollingCountCommandRejections": pool["rolling_rejected"],
        "propertyValue_queueSizeRejectionThreshold": pool["queue_size"],
        "propertyValue_metricsRollingStatisticalWindowInMilliseconds": _ms(pool["window_s"]) * hosts,
        "reportingHosts": hosts,
    }


def collapser_message(key: str, collapser: Mapping[str, Any], current_ms: int) -> dict[str, Any]:
    hosts = collapser.get("hosts", 1)
    batch_size = collapser["batch_size"]
    return {
        "type": "HystrixCollapser",
        "name": key,
        "currentTime": current_ms,
        "rollingCountRequestsBatched": collapser["rolling_requests_batched"],
        "rollingCountBatches": collapser["rolling_batches"],
        "rollingCountResponsesFromCache": 0,  # collapsed calls are cached per command, not per collapser
        "batchSize_mean": int(round(batch_size["mean"] * hosts)),
        "batchSize": _scaled(batch_size, PERCENTILE_KEYS[1:], hosts),
        "propertyValue_requestCacheEnabled": True,
        "propertyValue_maxRequestsInBatch": collapser["max_batch"],
        "propertyValue_timerDelayInMilliseconds": int(round(collapser["window_ms"])),
        "reportingHosts": hosts,
    }


def encode_event(message: Mapping[str, Any]) -> bytes:
    return b"data: " + json.dumps(message, separators=(",", ":"), allow_nan=False).encode() + b"\n\n"


def parse_delay_ms(query_string: str) -> int:
    """``?delay=MS`` held within [MIN_DELAY_MS, MAX_DELAY_MS]; ValueError if not an integer."""
    values = parse_qs(query_string).get("delay")
    if not values:
        return DEFAULT_DELAY_MS
    try:
        delay_ms = int(values[-1])
    except ValueError:
        raise ValueError(f"delay: expected an integer number of milliseconds, got {values[-1][:50]!r}") from None
    return min(MAX_DELAY_MS, max(MIN_DELAY_MS, delay_ms))


class HystrixStream:
    """The WSGI app; each connection is a generator the server drives in its own greenlet."""

    def __init__(self, feed: Any, max_connections: int = MAX_CONNECTIONS) -> None:
        self.feed = feed
        self.max_connections = max_connections
        self.places = StreamPlaces(max_connections)
        #: the last view encoded, and its events: connections reading the same view share them
        self._encoded: tuple[Any, bytes] = (None, b"")
        self._view_error_lines = LogThrottle(VIEW_ERROR_LOG_INTERVAL_S)

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != "/hystrix.stream":
            return _text(start_response, "404 Not Found", f"no such path {environ.get('PATH_INFO')}; "
                                                          "the stream is /hystrix.stream")
        if environ.get("REQUEST_METHOD", "GET") != "GET":
            return _text(start_response, "405 Method Not Allowed", "only GET /hystrix.stream", [("Allow", "GET")])
        try:
            delay_ms = parse_delay_ms(environ.get("QUERY_STRING", ""))
        except ValueError as exc:
            return _text(start_response, "400 Bad Request", str(exc))
        if self.places.full:
            return _text(start_response, "503 Service Unavailable",
                         f"MaxConcurrentConnections reached: {self.max_connections}")
        start_response("200 OK", list(STREAM_HEADERS))
        return self.places.body(self._rounds(delay_ms / 1000))

    def _rounds(self, delay_s: float) -> Generator[bytes, None, None]:
        while True:
            yield self._round()
            gevent.sleep(delay_s)

    def _round(self) -> bytes:
        """One round of data events then a ping, as one write (a failing view: a ping alone).

        ``currentTime`` is the view's time: the feed builds a view at most a fraction of a
        second before it is read, and every connection reading it sends the same bytes.
        """
        try:
            view = self.feed.view()
            if view is not self._encoded[0]:
                self._encoded = (view, b"".join(encode_event(message) for message in hystrix_messages(view)))
        except Exception as exc:  # noqa: BLE001 - the stream stays open; the log says why it is empty
            held_back = self._view_error_lines.due()
            if held_back is not None:
                log.error("hystrix_stream_view_failed", error=f"{type(exc).__name__}: {exc}",
                          failures_since_last_line=held_back)
            return PING
        return self._encoded[1] + PING


def _text(start_response: StartResponse, status: str, text: str,
          extra_headers: list[tuple[str, str]] | None = None) -> list[bytes]:
    body = text.encode()
    start_response(status, [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body))),
                            *(extra_headers or [])])
    return [body]
