"""The front's /hystrix.stream and /metrics over real HTTP, fed by real brokers' metrics."""

from __future__ import annotations

import json
import textwrap
import time
import urllib.error
import urllib.request
from typing import Any, Callable, Iterator

import pytest
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families

from api.testing import free_port, get_json
from broker.control_client import control_request
from hystrix_fields import check_message
from sample_commands import Echo

Round = dict[tuple[str, str], dict[str, Any]]

#: An endpoint module that tries to take the observability paths.
SHADOWING_MODULE = 'ROUTES = {"": lambda request: "an endpoint"}\n'
#: Endpoints that make calls in the front, which reports the outcomes only it sees (fallbacks,
#: short-circuits) to the broker.
CALLS_MODULE = textwrap.dedent('''
    import gevent
    from api import CommandError
    from sample_commands import Echo, Fail, FailWithFallback, GetItem, Sleep, WorkerPid

    def outcome(command):
        try:
            return command.execute()
        except CommandError as error:
            return str(error.failure)

    def items(request):
        calls = [gevent.spawn(outcome, GetItem(item_id=index)) for index in range(6)]
        gevent.joinall(calls)
        return [call.value for call in calls]

    ROUTES = {
        "echo": lambda request: outcome(Echo(text="x")),
        "fail": lambda request: outcome(Fail(message="down")),
        "fail-with-fallback": lambda request: outcome(FailWithFallback(message="down")),
        "worker-pid": lambda request: outcome(WorkerPid()),
        "sleep": lambda request: outcome(Sleep(seconds=0.03)),
        "items": items,
    }
''')


def start_front(cluster, port: int) -> str:
    cluster.start("front", "-m", "api")
    base = f"http://127.0.0.1:{port}"
    cluster.wait_until(lambda: get_json(base + "/")[0] == 200, "the front to listen")
    return base


@pytest.fixture
def front(make_front):
    return make_front({"metrics": SHADOWING_MODULE, "calls": CALLS_MODULE}, workers=2, slots=2)


def rounds(base: str, query: str = "") -> Iterator[Round]:
    """Each round of the stream (the data events before a ping), by (type, name)."""
    with urllib.request.urlopen(f"{base}/hystrix.stream{query}", timeout=10) as response:
        assert response.headers["Content-Type"] == "text/event-stream;charset=UTF-8"
        messages: Round = {}
        while line := response.readline():
            if line.startswith(b"data: "):
                message = json.loads(line[len(b"data: "):])
                messages[(message["type"], message["name"])] = message
            elif line == b"ping: \n":
                yield messages
                messages = {}


def wait_for_round(base: str, condition: Callable[[Round], bool], what: str, timeout_s: float = 10.0) -> Round:
    deadline_s = time.monotonic() + timeout_s
    last: Round = {}
    for last in rounds(base):
        if condition(last):
            return last
        if time.monotonic() > deadline_s:
            break
    raise AssertionError(f"no round of /hystrix.stream with {what} in {timeout_s:g} s; last: {last}")


def scrape(base: str) -> dict[str, Any]:
    with urllib.request.urlopen(base + "/metrics", timeout=10) as response:
        assert response.headers["Content-Type"] == CONTENT_TYPE_LATEST
        return {family.name: family for family in text_string_to_metric_families(response.read().decode())}


def sample_value(family: Any, **labels: str) -> float:
    (sample,) = [s for s in family.samples if all(s.labels.get(k) == v for k, v in labels.items())]
    return sample.value


def command(round_: Round, key: str) -> dict[str, Any]:
    return round_.get(("HystrixCommand", key), {})


def test_the_stream_carries_every_hystrix_field_and_follows_the_calls(front):
    cluster, base = front
    assert [get_json(f"{base}/calls/echo") for _ in range(5)] == [(200, "X")] * 5
    assert [get_json(f"{base}/calls/fail") for _ in range(2)] == [(200, "FAILURE")] * 2
    assert get_json(f"{base}/calls/fail-with-fallback") == (200, "from fallback")
    assert get_json(f"{base}/calls/items") == (200, [{"id": index} for index in range(6)])
    assert get_json(f"{base}/calls/worker-pid")[0] == 200
    assert get_json(f"{base}/calls/sleep")[0] == 200
    control_request(cluster.config.endpoints["control"], "breaker", {"command": "WorkerPid", "force": "open"})

    def settled(round_: Round) -> bool:
        return (command(round_, "Echo").get("rollingCountSuccess") == 5
                and command(round_, "Fail").get("rollingCountFallbackMissing") == 2
                and command(round_, "FailWithFallback").get("rollingCountFallbackSuccess") == 1
                and command(round_, "WorkerPid").get("isCircuitBreakerOpen") is True
                and ("HystrixCollapser", "GetItem") in round_)

    round_ = wait_for_round(base, settled, "every call counted")

    for message in round_.values():
        check_message(message)
    echo = command(round_, "Echo")
    assert (echo["group"], echo["threadPool"], echo["reportingHosts"]) == ("sample", "sample", 1)
    assert (echo["requestCount"], echo["errorCount"], echo["errorPercentage"]) == (5, 0, 0)
    assert echo["rollingCountFailure"] == 0 and not echo["isCircuitBreakerOpen"]
    sleep = command(round_, "Sleep")
    assert 30 <= sleep["latencyExecute_mean"] <= sleep["latencyExecute"]["100"] < 1000
    assert sleep["latencyTotal"]["50"] >= sleep["latencyExecute"]["50"]
    assert echo["propertyValue_executionTimeoutInMilliseconds"] == 1000
    assert echo["propertyValue_metricsRollingStatisticalWindowInMilliseconds"] == 10_000
    assert abs(echo["currentTime"] - time.time() * 1000) < 5000
    fail = command(round_, "Fail")
    assert (fail["rollingCountFailure"], fail["errorCount"], fail["errorPercentage"]) == (2, 2, 100)
    assert fail["rollingCountExceptionsThrown"] == 2  # FALLBACK_MISSING reached the caller
    assert command(round_, "FailWithFallback")["rollingCountFailure"] == 1
    forced = command(round_, "WorkerPid")
    assert forced["propertyValue_circuitBreakerForceOpen"] is True
    pool = round_[("HystrixThreadPool", "sample")]
    assert (pool["currentPoolSize"], pool["currentCorePoolSize"], pool["currentMaximumPoolSize"]) == (4, 4, 4)
    assert pool["currentActiveCount"] == 0 and pool["currentQueueSize"] == 0
    assert pool["propertyValue_queueSizeRejectionThreshold"] == 5
    executed = 5 + 2 + 1 + 1 + 1  # Echo, Fail, FailWithFallback, WorkerPid, Sleep; plus GetItem's batches
    assert pool["currentCompletedTaskCount"] == pool["currentTaskCount"] >= executed + 1
    assert pool["rollingCountThreadsExecuted"] >= executed + 1
    collapser = round_[("HystrixCollapser", "GetItem")]
    assert collapser["rollingCountRequestsBatched"] == 6
    assert 1 <= collapser["rollingCountBatches"] <= 6 and collapser["batchSize"]["100"] >= 1

    assert get_json(f"{base}/calls/worker-pid") == (200, "SHORT_CIRCUITED")
    wait_for_round(base, lambda r: command(r, "WorkerPid").get("rollingCountShortCircuited") == 1,
                   "the short-circuit counted")


def test_a_pool_shows_before_any_call_and_metrics_parse_as_prometheus(front):
    cluster, base = front
    started_s = time.monotonic()
    round_ = wait_for_round(base, lambda r: ("HystrixThreadPool", "sample") in r, "the idle pool", timeout_s=2)
    assert time.monotonic() - started_s < 2
    check_message(round_[("HystrixThreadPool", "sample")])

    Echo(text="x").execute(client=cluster.client())
    cluster.wait_until(lambda: "seawall_command_events_rolling" in scrape(base)
                       and scrape(base)["seawall_command_events_rolling"].samples, "Echo in /metrics")
    families = scrape(base)  # /metrics, although metrics.py in the endpoints would take it
    assert sample_value(families["seawall_hosts_reporting"]) == 1
    assert sample_value(families["seawall_command_events_rolling"], command="Echo", event="SUCCESS") == 1
    assert sample_value(families["seawall_breaker_state"], command="Echo", state="CLOSED") == 1
    assert sample_value(families["seawall_pool_slots"], pool="sample") == 4
    status, view = get_json(base + "/dashboard.json")  # the dashboard's paths are routed to its apps
    assert status == 200 and view["commands"]["Echo"]["hosts"] == 1


def test_a_sixth_stream_is_refused_and_a_bad_delay_is_named(front):
    _, base = front
    streams = [urllib.request.urlopen(f"{base}/hystrix.stream?delay=100", timeout=10) for _ in range(5)]
    try:
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"{base}/hystrix.stream", timeout=10)
        assert refused.value.code == 503
        assert refused.value.read() == b"MaxConcurrentConnections reached: 5"
    finally:
        for stream in streams:
            stream.close()
    with pytest.raises(urllib.error.HTTPError) as bad:
        urllib.request.urlopen(f"{base}/hystrix.stream?delay=soon", timeout=10)
    assert bad.value.code == 400 and b"delay" in bad.value.read()


def test_one_front_aggregates_two_brokers(make_cluster):
    second = make_cluster(name="second")
    port = free_port()
    first = make_cluster({"front": {"listen": f"127.0.0.1:{port}",
                                    "metrics_sources": ["ipc://RUN/events", second.config.endpoints["events"]]}},
                         name="first")
    for cluster in (first, second):
        cluster.start_broker()
        cluster.start_workers("sample", "sample_commands", slots=2)
    for cluster in (first, second):
        cluster.wait_for_workers("sample", 1)
    base = start_front(first, port)
    for cluster, calls in ((first, 3), (second, 2)):
        client = cluster.client()
        for _ in range(calls):
            Echo(text="x").execute(client=client)

    round_ = wait_for_round(base, lambda r: command(r, "Echo").get("rollingCountSuccess") == 5,
                            "Echo's calls on both brokers")

    echo, pool = command(round_, "Echo"), round_[("HystrixThreadPool", "sample")]
    assert echo["reportingHosts"] == pool["reportingHosts"] == 2
    assert pool["currentPoolSize"] == 4
    assert echo["propertyValue_metricsRollingStatisticalWindowInMilliseconds"] / 2 == 10_000
    assert sample_value(scrape(base)["seawall_command_hosts"], command="Echo") == 2


def test_a_restarted_broker_replaces_the_old_one_in_the_view_at_once(front):
    """Before, the old broker stayed in the view until silent for 3 s, and the view summed
    both meanwhile: two brokers reporting, the pool's workers and slots doubled."""
    cluster, base = front
    old_broker = cluster.processes[0]

    def view() -> dict[str, Any]:
        status, body = get_json(base + "/dashboard.json")
        assert status == 200, body
        return body

    cluster.wait_until(lambda: view()["pools"].get("sample", {}).get("workers") == 2, "the pool in the view")
    cluster.stop_process(old_broker)
    new_broker = cluster.start_broker()
    seen: list[tuple[list[int], int]] = []  # (pids in the view, the pool's slots) at each look

    def new_broker_heard_for_a_while() -> bool:
        current = view()
        seen.append((sorted(broker["pid"] for broker in current["brokers"].values()),
                     current["pools"].get("sample", {}).get("slots", 0)))
        heard = [index for index, (pids, _) in enumerate(seen) if new_broker.pid in pids]
        return len(seen) - heard[0] > 20 if heard else False  # some 20 more looks, well within 3 s

    cluster.wait_until(new_broker_heard_for_a_while, "the new broker in the view", interval_s=0.05)
    assert [pids for pids, _ in seen if len(pids) > 1] == []
    assert max(slots for _, slots in seen) <= 4  # 2 workers x 2 slots, never counted twice
    assert seen[-1][0] == [new_broker.pid]
