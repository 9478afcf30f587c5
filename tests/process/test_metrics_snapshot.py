"""The broker's metrics snapshot, read off its events socket as any dashboard would."""

from __future__ import annotations

import time

import gevent
import pytest
import zmq.green as zmq

from sample_commands import Echo, Fail, GetItem, Sleep
from shared import protocol
from shared.metrics_schema import PERCENTILE_KEYS


@pytest.fixture
def cluster(make_cluster):
    cluster = make_cluster({"commands": {"Sleep": {"timeout_s": 5.0}}})
    cluster.start_broker()
    cluster.start_workers("sample", "sample_commands", count=2, slots=2)
    cluster.wait_for_workers("sample", 2)
    return cluster


@pytest.fixture
def metrics(cluster):
    """A function returning the next snapshot that satisfies a condition."""
    context = zmq.Context.instance()
    sub = context.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.SUBSCRIBE, protocol.METRICS_TOPIC)
    sub.connect(cluster.config.endpoints["events"])

    def next_matching(condition=lambda snapshot: True, timeout_s=10.0):
        deadline_s = time.monotonic() + timeout_s
        last = None
        while time.monotonic() < deadline_s:
            if sub.poll(100):
                last = protocol.decode_metrics(sub.recv_multipart())
                if condition(last):
                    return last
        raise AssertionError(f"no matching snapshot in {timeout_s} s; last: {last}")

    yield next_matching
    sub.close()


def test_a_snapshot_comes_every_half_second_even_without_calls(cluster, metrics):
    first = metrics()
    second = metrics()
    assert 300 <= second["time_ms"] - first["time_ms"] <= 1500
    pool = second["pools"]["sample"]
    assert (pool["workers"], pool["slots"], pool["busy"], pool["queued"]) == (2, 4, 0, 0)
    assert second["broker"]["pid"] == cluster.processes[0].pid


def test_counts_and_latencies_follow_the_calls(cluster, metrics):
    client = cluster.client()
    for index in range(5):
        Echo(text=str(index)).execute(client=client)
    with pytest.raises(Exception):
        Fail(message="down").execute(client=client)

    snapshot = metrics(lambda s: s["commands"].get("Echo", {}).get("events", {}).get("SUCCESS") == 5
                       and "Fail" in s["commands"])
    echo = snapshot["commands"]["Echo"]
    assert (echo["pool"], echo["isolation"], echo["breaker"], echo["request_count"]) == ("sample", "THREAD",
                                                                                          "CLOSED", 5)
    assert echo["latency_execute"]["100"] > 0 and echo["latency_total"]["50"] >= echo["latency_execute"]["50"]
    assert list(echo["latency_total"]) == ["mean", *PERCENTILE_KEYS]
    assert echo["settings"]["timeout_s"] == 1.0
    assert echo["events_total"]["SUCCESS"] == 5  # since the broker started, for Prometheus counters
    fail = snapshot["commands"]["Fail"]
    assert (fail["events"]["FAILURE"], fail["error_count"], fail["error_pct"]) == (1, 1, 100.0)
    pool = snapshot["pools"]["sample"]
    assert pool["submitted_total"] == pool["completed_total"] == pool["rolling_executed"] == 6


def test_running_calls_show_as_concurrent_and_busy(cluster, metrics):
    client = cluster.client()
    calls = [gevent.spawn(Sleep(seconds=1.5).execute, client=client) for _ in range(3)]
    snapshot = metrics(lambda s: s["commands"].get("Sleep", {}).get("concurrent") == 3)
    assert snapshot["pools"]["sample"]["busy"] == 3
    gevent.joinall(calls, timeout=10)
    after = metrics(lambda s: s["commands"]["Sleep"]["concurrent"] == 0)
    assert after["commands"]["Sleep"]["max_concurrent"] == 3
    assert after["pools"]["sample"]["rolling_max_busy"] == 3


def test_collapsed_calls_show_in_the_collapser(cluster, metrics):
    client = cluster.client()
    calls = [gevent.spawn(GetItem(item_id=index).execute, client=client) for index in range(10)]
    gevent.joinall(calls, timeout=10)
    snapshot = metrics(lambda s: "GetItem" in s["collapsers"])
    collapser = snapshot["collapsers"]["GetItem"]
    assert collapser["rolling_requests_batched"] == 10
    assert 1 <= collapser["rolling_batches"] <= 10
    assert collapser["max_batch"] == 100 and collapser["window_ms"] == 10
    assert snapshot["commands"]["GetItem"]["events"]["COLLAPSED"] == 10
