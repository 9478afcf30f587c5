"""The cluster view as Hystrix stream messages, and the stream's WSGI app (with a fake feed)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from structlog.testing import capture_logs

from api.cluster import aggregate
from api.hystrix_stream import HystrixStream, hystrix_messages, parse_delay_ms
from hystrix_fields import check_message
from metrics_samples import collapser, command, latency, pool, snapshot

NOW_MS = 1_700_000_000_123


def messages_of(*snapshots: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(m["type"], m["name"]): m for m in hystrix_messages(aggregate(list(snapshots)), NOW_MS)}


def test_every_message_has_exactly_hystrix_fields_in_order_and_types():
    one = snapshot("a:1", commands={"Echo": command(events={"SUCCESS": 3}, latency_ms=2.4),
                                    "InMemory": command(pool="")},
                   pools={"sample": pool()}, collapsers={"Echo": collapser(batches=1, batched=3, size=3.0)})

    messages = hystrix_messages(aggregate([one]), NOW_MS)

    assert [(m["type"], m["name"]) for m in messages] == [
        ("HystrixCommand", "Echo"), ("HystrixCommand", "InMemory"), ("HystrixThreadPool", "sample"),
        ("HystrixCollapser", "Echo")]
    for message in messages:
        check_message(json.loads(json.dumps(message)))


def test_a_command_maps_seawall_events_onto_hystrix_counters():
    events = {"SUCCESS": 10, "FAILURE": 3, "WORKER_LOST": 1, "TIMEOUT": 2, "BAD_REQUEST": 4, "SHORT_CIRCUITED": 5,
              "THREAD_POOL_REJECTED": 6, "SEMAPHORE_REJECTED": 7, "FALLBACK_SUCCESS": 8, "FALLBACK_FAILURE": 9,
              "FALLBACK_REJECTED": 11, "FALLBACK_MISSING": 12, "RESPONSE_FROM_CACHE": 13, "COLLAPSED": 14}
    echo = command(events=events, concurrent=2, max_concurrent=5)
    message = messages_of(snapshot("a:1", commands={"Echo": echo}))[("HystrixCommand", "Echo")]

    assert message["rollingCountSuccess"] == 10
    assert message["rollingCountFailure"] == 4  # FAILURE + WORKER_LOST
    assert (message["rollingCountTimeout"], message["rollingCountBadRequests"]) == (2, 4)
    assert (message["rollingCountShortCircuited"], message["rollingCountThreadPoolRejected"],
            message["rollingCountSemaphoreRejected"]) == (5, 6, 7)
    assert (message["rollingCountFallbackSuccess"], message["rollingCountFallbackFailure"],
            message["rollingCountFallbackRejection"], message["rollingCountFallbackMissing"]) == (8, 9, 11, 12)
    assert message["rollingCountExceptionsThrown"] == 4 + 9 + 12 + 11
    assert (message["rollingCountResponsesFromCache"], message["rollingCountCollapsedRequests"]) == (13, 14)
    assert message["rollingCountEmit"] == message["rollingCountFallbackEmit"] == 0
    assert (message["currentConcurrentExecutionCount"], message["rollingMaxConcurrentExecutionCount"]) == (2, 5)
    assert (message["errorCount"], message["requestCount"]) == (echo["error_count"], echo["request_count"])
    assert message["errorPercentage"] == int(echo["error_pct"])
    assert (message["currentTime"], message["reportingHosts"]) == (NOW_MS, 1)


def test_a_command_has_its_settings_as_property_values_in_milliseconds():
    echo = command(timeout_s=0.25, breaker_sleep_s=2.5, breaker_error_pct=40.0, breaker_volume_threshold=7,
                   window_s=5.0, semaphore_max=3, fallback_max=4)
    message = messages_of(snapshot("a:1", commands={"Echo": echo}))[("HystrixCommand", "Echo")]

    assert message["propertyValue_executionTimeoutInMilliseconds"] == 250
    assert message["propertyValue_executionIsolationThreadTimeoutInMilliseconds"] == 250
    assert message["propertyValue_circuitBreakerSleepWindowInMilliseconds"] == 2500
    assert message["propertyValue_circuitBreakerErrorThresholdPercentage"] == 40
    assert message["propertyValue_circuitBreakerRequestVolumeThreshold"] == 7
    assert message["propertyValue_metricsRollingStatisticalWindowInMilliseconds"] == 5000
    assert message["propertyValue_executionIsolationSemaphoreMaxConcurrentRequests"] == 3
    assert message["propertyValue_fallbackIsolationSemaphoreMaxConcurrentRequests"] == 4
    assert message["propertyValue_executionIsolationStrategy"] == "THREAD"
    assert message["group"] == message["threadPool"] == "sample"


def test_latencies_are_integer_milliseconds_under_hystrix_percentile_keys():
    echo = command(events={"SUCCESS": 1}, latency_ms=latency(2.4, p99=7.6, p99_5=8.2, p100=9.0), total_ms=latency(3.5))
    message = messages_of(snapshot("a:1", commands={"Echo": echo}))[("HystrixCommand", "Echo")]

    assert message["latencyExecute_mean"] == 2
    assert message["latencyExecute"] == {"0": 2, "25": 2, "50": 2, "75": 2, "90": 2, "95": 2, "99": 8,
                                         "99.5": 8, "100": 9}
    assert message["latencyTotal_mean"] == 4 and message["latencyTotal"]["50"] == 4


@pytest.mark.parametrize(("state", "is_open"), [("CLOSED", False), ("OPEN", True), ("HALF_OPEN", True)])
def test_the_breaker_is_open_to_hystrix_when_open_or_half_open(state, is_open):
    message = messages_of(snapshot("a:1", commands={"Echo": command(breaker=state)}))[("HystrixCommand", "Echo")]
    assert message["isCircuitBreakerOpen"] is is_open


def test_forcing_shows_in_the_force_properties():
    forced = command(breaker="OPEN", force="open")
    message = messages_of(snapshot("a:1", commands={"Echo": forced}))[("HystrixCommand", "Echo")]
    assert message["propertyValue_circuitBreakerForceOpen"] is True
    assert message["propertyValue_circuitBreakerForceClosed"] is False


def test_a_semaphore_command_is_in_the_semaphore_group():
    message = messages_of(snapshot("a:1", commands={"Cached": command(pool="")}))[("HystrixCommand", "Cached")]
    assert (message["group"], message["threadPool"]) == ("semaphore", "semaphore")
    assert message["propertyValue_executionIsolationStrategy"] == "SEMAPHORE"


def test_a_pool_is_a_thread_pool_whose_threads_are_slots():
    sample = pool(workers=2, slots=4, busy=3, queued=2, queue_size=5, submitted_total=40, completed_total=37,
                  rolling_executed=12, rolling_max_busy=4, rolling_rejected=1)
    message = messages_of(snapshot("a:1", pools={"sample": sample}))[("HystrixThreadPool", "sample")]

    assert message == {
        "type": "HystrixThreadPool", "name": "sample", "currentTime": NOW_MS, "currentActiveCount": 3,
        "currentCompletedTaskCount": 37, "currentCorePoolSize": 4, "currentLargestPoolSize": 4,
        "currentMaximumPoolSize": 4, "currentPoolSize": 4, "currentQueueSize": 2, "currentTaskCount": 40,
        "rollingCountThreadsExecuted": 12, "rollingMaxActiveThreads": 4, "rollingCountCommandRejections": 1,
        "propertyValue_queueSizeRejectionThreshold": 5,
        "propertyValue_metricsRollingStatisticalWindowInMilliseconds": 10000, "reportingHosts": 1,
    }


def test_a_collapser_has_batch_sizes_without_a_zero_percentile():
    message = messages_of(snapshot("a:1", collapsers={"GetItem": collapser(batches=4, batched=10, size=2.5)}))[
        ("HystrixCollapser", "GetItem")]

    assert (message["rollingCountBatches"], message["rollingCountRequestsBatched"]) == (4, 10)
    assert message["batchSize_mean"] == 2 and list(message["batchSize"])[0] == "25"
    assert (message["propertyValue_maxRequestsInBatch"], message["propertyValue_timerDelayInMilliseconds"]) == (100, 10)


def test_an_aggregate_sends_what_turbine_would_so_the_dashboard_divides_to_the_cluster_figure():
    a = snapshot("a:1", commands={"Echo": command(events={"SUCCESS": 6, "FAILURE": 4}, latency_ms=10.0)},
                 pools={"sample": pool(queue_size=5, busy=1)})
    b = snapshot("b:2", commands={"Echo": command(events={"SUCCESS": 10}, latency_ms=10.0)},
                 pools={"sample": pool(queue_size=5, busy=2)})
    messages = messages_of(a, b)
    echo, sample = messages[("HystrixCommand", "Echo")], messages[("HystrixThreadPool", "sample")]

    assert echo["reportingHosts"] == sample["reportingHosts"] == 2
    assert (echo["rollingCountSuccess"], echo["requestCount"], echo["errorCount"]) == (16, 20, 4)
    # the dashboard divides these by reportingHosts: 20% error, 10 ms, a 10 s window
    assert echo["errorPercentage"] / 2 == 20
    assert echo["latencyExecute_mean"] / 2 == echo["latencyExecute"]["50"] / 2 == 10
    assert echo["propertyValue_metricsRollingStatisticalWindowInMilliseconds"] / 2 == 10_000
    assert sample["currentActiveCount"] == 3
    assert sample["propertyValue_queueSizeRejectionThreshold"] / 2 == 5
    assert sample["propertyValue_metricsRollingStatisticalWindowInMilliseconds"] / 2 == 10_000


# -- the WSGI app -----------------------------------------------------------------------------


class FakeFeed:
    def __init__(self, view: dict[str, Any]) -> None:
        self._view = view

    def view(self) -> dict[str, Any]:
        return self._view


class Response:
    def __init__(self) -> None:
        self.status = ""
        self.headers: list[tuple[str, str]] = []

    def __call__(self, status: str, headers: list[tuple[str, str]]) -> None:
        self.status, self.headers = status, headers


def open_stream(app: HystrixStream, query: str = "", path: str = "/hystrix.stream") -> tuple[Response, Any]:
    response = Response()
    body = app({"PATH_INFO": path, "REQUEST_METHOD": "GET", "QUERY_STRING": query}, response)
    return response, body


VIEW = aggregate([snapshot("a:1", commands={"Echo": command()}, pools={"sample": pool()})])


def test_the_stream_has_hystrix_headers_and_sends_data_then_a_ping_at_once():
    response, body = open_stream(HystrixStream(FakeFeed(VIEW)))

    first = next(iter(body))
    body.close()

    assert response.status == "200 OK"
    assert response.headers == [("Content-Type", "text/event-stream;charset=UTF-8"),
                                ("Cache-Control", "no-cache, no-store, max-age=0, must-revalidate"),
                                ("Pragma", "no-cache")]
    events = first.split(b"\n\n")
    assert [json.loads(event[len(b"data: "):])["type"] for event in events[:2]] == ["HystrixCommand",
                                                                                    "HystrixThreadPool"]
    assert events[2:] == [b"ping: ", b""]


def test_with_nothing_to_report_the_stream_sends_pings():
    empty = aggregate([])
    _, body = open_stream(HystrixStream(FakeFeed(empty)))
    assert next(iter(body)) == b"ping: \n\n"
    body.close()


def test_a_sixth_connection_is_refused_until_one_closes():
    app = HystrixStream(FakeFeed(VIEW))
    bodies = [open_stream(app)[1] for _ in range(5)]

    response, refused = open_stream(app)
    assert response.status.startswith("503") and b"".join(refused) == b"MaxConcurrentConnections reached: 5"

    bodies[0].close()
    bodies[0].close()  # closing twice frees one place, not two
    assert open_stream(app)[0].status == "200 OK"
    assert open_stream(app)[0].status.startswith("503")


def test_delay_is_read_like_hystrix_and_held_within_bounds():
    assert parse_delay_ms("") == 500
    assert parse_delay_ms("delay=2000") == 2000
    assert (parse_delay_ms("delay=1"), parse_delay_ms("delay=99999999")) == (100, 10_000)
    with pytest.raises(ValueError, match="delay: expected an integer"):
        parse_delay_ms("delay=soon")


def test_a_bad_delay_is_a_400_naming_it():
    response, body = open_stream(HystrixStream(FakeFeed(VIEW)), query="delay=soon")
    assert response.status.startswith("400") and b"delay" in b"".join(body)


def test_a_failing_view_leaves_the_stream_open_with_pings():
    class BrokenFeed:
        def view(self):
            raise RuntimeError("no view")

    _, body = open_stream(HystrixStream(BrokenFeed()))
    assert next(iter(body)) == b"ping: \n\n"
    body.close()


def test_a_failing_view_is_logged_once_for_every_connection_not_once_a_round_each():
    class BrokenFeed:
        def view(self):
            raise RuntimeError("no view")

    app = HystrixStream(BrokenFeed())
    with capture_logs() as logs:
        bodies = [open_stream(app)[1] for _ in range(app.max_connections)]
        rounds = [next(iter(body)) for body in bodies]
        for body in bodies:
            body.close()

    assert rounds == [b"ping: \n\n"] * app.max_connections
    assert [(line["event"], line["error"], line["failures_since_last_line"]) for line in logs] == [
        ("hystrix_stream_view_failed", "RuntimeError: no view", 0)]
