"""Metrics snapshots are foreign input to fronts: every field is checked."""

from __future__ import annotations

import copy

import pytest

from shared import protocol
from shared.events import Event
from shared.metrics_schema import (IGNORED, MAX_EVENT_NAME_CHARS, MAX_EVENT_NAMES, MAX_FIELDS, MAX_IGNORED_NAME_CHARS,
                                   MAX_IGNORED_NAMES, PERCENTILE_KEYS, check_snapshot)
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
    (("commands", "GetRatings", "settings", "window_s"), float("inf"), "metrics.commands.GetRatings.settings.window_s"),
    (("commands", "GetRatings", "events"), [], "metrics.commands.GetRatings.events"),
    (("pools", "ratings"), None, "metrics.pools.ratings"),
])
def test_a_bad_field_is_named(path, value, named):
    snapshot = copy.deepcopy(SNAPSHOT)
    target = snapshot
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(ValueError, match=named.replace(".", r"\.")):
        check_snapshot(snapshot)


def test_a_missing_field_is_named():
    snapshot = copy.deepcopy(SNAPSHOT)
    del snapshot["pools"]["ratings"]["queued"]
    with pytest.raises(ValueError, match=r"metrics\.pools\.ratings: missing fields \['queued'\]"):
        check_snapshot(snapshot)


def _newer(snapshot):
    """``snapshot`` as a newer broker might send it: a new event kind, new fields everywhere."""
    newer = copy.deepcopy(snapshot)
    for key in ("GetRatings", "Other"):
        newer["commands"][key] = copy.deepcopy(snapshot["commands"]["GetRatings"])
        for section in ("events", "events_total"):
            newer["commands"][key][section]["FUTURE_EVENT"] = 7
        newer["commands"][key]["region"] = "eu"
        newer["commands"][key]["settings"]["new_setting"] = True
        newer["commands"][key]["latency_total"]["99.9"] = 4.0
    newer["pools"]["ratings"]["draining"] = 1
    newer["collapsers"]["GetRating"]["new_field"] = [1, 2]
    newer["broker"]["version"] = "2.0"
    newer["deadlines"] = {}
    return newer


def test_a_newer_brokers_fields_and_events_are_ignored_and_listed_once_each():
    """A rolling upgrade: a front refusing a newer broker's whole snapshot lost that broker
    from the dashboard and /metrics until the front was upgraded too."""
    checked = check_snapshot(_newer(SNAPSHOT))

    assert checked.pop(IGNORED) == [
        "metrics.broker.version", "metrics.collapsers.*.new_field", "metrics.commands.*.events.FUTURE_EVENT",
        "metrics.commands.*.events_total.FUTURE_EVENT", "metrics.commands.*.latency_total.99.9",
        "metrics.commands.*.region", "metrics.commands.*.settings.new_setting", "metrics.deadlines",
        "metrics.pools.*.draining"]
    assert checked == {**SNAPSHOT, "commands": {"GetRatings": SNAPSHOT["commands"]["GetRatings"],
                                                "Other": SNAPSHOT["commands"]["GetRatings"]}}


def test_an_older_brokers_missing_events_count_zero():
    snapshot = copy.deepcopy(SNAPSHOT)
    snapshot["commands"]["GetRatings"]["events"] = {"SUCCESS": 3}
    del snapshot["commands"]["GetRatings"]["events_total"]["COLLAPSED"]

    checked = check_snapshot(snapshot)["commands"]["GetRatings"]

    assert checked["events"] == {event.value: 3 if event is Event.SUCCESS else 0 for event in Event}
    assert list(checked["events_total"]) == [event.value for event in Event]
    assert checked["events_total"]["COLLAPSED"] == 0


@pytest.mark.parametrize("events, named", [
    ({"FUTURE_EVENT": -1}, r"metrics\.commands\.GetRatings\.events\.FUTURE_EVENT must be a non-negative integer"),
    ({"FUTURE_EVENT": 2**64}, r"events\.FUTURE_EVENT must be a non-negative integer"),
    ({"FUTURE_EVENT": "1"}, r"events\.FUTURE_EVENT must be a non-negative integer"),
    ({"X" * (MAX_EVENT_NAME_CHARS + 1): 1}, r"events: event names must be strings of at most 64"),
    ({7: 1}, r"events: event names must be strings"),
    ({f"E{index}": 0 for index in range(MAX_EVENT_NAMES)}, r"events must be a map of at most 100 events"),
    ({"SUCCESS": 1.5}, r"events\.SUCCESS must be a non-negative integer"),
])
def test_unknown_events_are_still_bounded_and_checked(events, named):
    snapshot = copy.deepcopy(SNAPSHOT)
    snapshot["commands"]["GetRatings"]["events"].update(events)
    with pytest.raises(ValueError, match=named):
        check_snapshot(snapshot)


def test_a_map_with_too_many_fields_is_refused_known_or_not():
    snapshot = copy.deepcopy(SNAPSHOT)
    snapshot["pools"]["ratings"].update({f"field_{index}": 0 for index in range(MAX_FIELDS)})
    with pytest.raises(ValueError, match=r"metrics\.pools\.ratings must be a map of at most 100 fields"):
        check_snapshot(snapshot)


def test_the_list_of_ignored_names_is_bounded():
    snapshot = copy.deepcopy(SNAPSHOT)
    snapshot["pools"]["ratings"].update({f"{index}{'x' * 300}": 0 for index in range(50)})

    ignored = check_snapshot(snapshot)[IGNORED]

    assert len(ignored) == MAX_IGNORED_NAMES and all(len(name) <= MAX_IGNORED_NAME_CHARS for name in ignored)


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
