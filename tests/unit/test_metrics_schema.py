"""Metrics snapshots are foreign input to fronts: every field is checked."""

from __future__ import annotations

import copy

import pytest

from shared import protocol
from shared.events import Event
from shared.metrics_schema import PERCENTILE_KEYS, check_snapshot
from shared.rolling import RollingMax
from api.testing import FakeClock

LATENCY = {"mean": 1.5, **{key: 1.0 for key in PERCENTILE_KEYS}}
SNAPSHOT = {
    "broker": {"id": "host:1", "host": "host", "pid": 1, "uptime_s": 3.0},
    "time_ms": 1_700_000_000_000,
    "commands": {"GetRatings": {
        "pool": "ratings", "isolation": "THREAD", "breaker": "HALF_OPEN", "force": "auto",
        "error_pct": 50.0, "error_count": 10, "request_count": 20,
        "events": {event.value: 0 for event in Event}, "events_total": {event.value: 0 for event in Event}, "concurrent": 1, "max_concurrent": 3,
        "latency_execute": dict(LATENCY), "latency_total": dict(LATENCY),
        "settings": {"timeout_s": 1.0, "breaker_volume_threshold": 20, "breaker_error_pct": 50.0,
                     "breaker_sleep_s": 5.0, "breaker_force": "auto", "window_s": 10.0, "window_buckets": 10,
                     "semaphore_max": 10, "fallback_max": 10}}},
    "pools": {"ratings": {"workers": 2, "slots": 4, "busy": 1, "queued": 0, "queue_size": 5, "largest_slots": 4,
                          "completed_total": 9, "submitted_total": 10, "rolling_executed": 9,
                          "rolling_max_busy": 3, "rolling_rejected": 0, "window_s": 10.0}},
    "collapsers": {"GetRating": {"rolling_batches": 2, "rolling_requests_batched": 30,
                                 "batch_size": {"mean": 15.0, **{key: 15.0 for key in PERCENTILE_KEYS[1:]}},
                                 "max_batch": 100, "window_ms": 10.0}},
}


def test_a_well_formed_snapshot_round_trips():
    assert protocol.decode_metrics(protocol.metrics(SNAPSHOT)) == SNAPSHOT


@pytest.mark.parametrize("path, value, named", [
    (("commands", "GetRatings", "breaker"), "AJAR", "metrics.commands.GetRatings.breaker"),
    (("commands", "GetRatings", "events", "SUCCESS"), -1, "metrics.commands.GetRatings.events.SUCCESS"),
    (("pools", "ratings", "busy"), "1", "metrics.pools.ratings.busy"),
    (("commands", "GetRatings", "latency_total", "99"), float("nan"), "metrics.commands.GetRatings.latency_total.99"),
    (("broker", "pid"), 2**64, "metrics.broker.pid"),
])
def test_a_bad_field_is_named(path, value, named):
    snapshot = copy.deepcopy(SNAPSHOT)
    target = snapshot
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(ValueError, match=named.replace(".", r"\.")):
        check_snapshot(snapshot)


def test_missing_and_unknown_fields_are_named():
    snapshot = copy.deepcopy(SNAPSHOT)
    del snapshot["pools"]["ratings"]["queued"]
    snapshot["pools"]["ratings"]["extra"] = 1
    with pytest.raises(ValueError, match=r"missing fields \['queued'\], unknown fields \['extra'\]"):
        check_snapshot(snapshot)


def test_too_many_commands_are_refused(monkeypatch):
    monkeypatch.setattr("shared.metrics_schema.MAX_ENTRIES", 0)
    with pytest.raises(ValueError, match="at most 0 entries"):
        check_snapshot(SNAPSHOT)


def test_decode_metrics_wants_the_metrics_topic():
    with pytest.raises(protocol.ProtocolError, match="topic"):
        protocol.decode_metrics([protocol.STATE_TOPIC, *protocol.metrics(SNAPSHOT)[1:]])
    with pytest.raises(protocol.ProtocolError, match="expected a METRICS message"):
        protocol.decode_metrics([protocol.METRICS_TOPIC, *protocol.HEARTBEAT])


def test_rolling_max_forgets_values_older_than_its_window():
    clock = FakeClock()
    rolling_max = RollingMax(window_s=10.0, buckets=10, clock=clock)
    rolling_max.add(7)
    clock.advance(5.0)
    rolling_max.add(3)
    assert rolling_max.max() == 7
    clock.advance(6.0)
    assert rolling_max.max() == 3
    clock.advance(10.0)
    assert rolling_max.max() == 0
