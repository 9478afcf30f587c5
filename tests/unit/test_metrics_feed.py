"""The metrics feed's bookkeeping, fed messages by hand with a fake clock (its socket: tests/process)."""

from __future__ import annotations

import pytest

from api.metrics_feed import BROKER_SILENT_S, RATE_HISTORY_SAMPLES, VIEW_REUSE_S, MetricsFeed
from api.testing import FakeClock
from metrics_samples import command, pool, snapshot
from shared import protocol


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def feed(clock):
    return MetricsFeed(["ipc:///nowhere/events"], clock=clock, wall_clock=lambda: 1700000000.0, max_brokers=3)


def publish(feed, broker_id, **commands):
    feed.receive(protocol.metrics(snapshot(broker_id, commands=commands)))


def test_the_latest_snapshot_of_each_broker_is_kept(feed):
    publish(feed, "a:1", Echo=command(events={"SUCCESS": 1}))
    publish(feed, "a:1", Echo=command(events={"SUCCESS": 4}))
    publish(feed, "b:2", Echo=command(events={"SUCCESS": 2}))

    view = feed.view()

    assert set(view["brokers"]) == {"a:1", "b:2"}
    assert view["commands"]["Echo"]["events"]["SUCCESS"] == 6
    assert view["time_ms"] == 1700000000000


def test_a_broker_silent_for_three_seconds_leaves_the_view(feed, clock):
    publish(feed, "a:1", Echo=command())
    publish(feed, "b:2", Echo=command())
    clock.advance(BROKER_SILENT_S - 0.5)
    publish(feed, "b:2", Echo=command())
    clock.advance(1.0)

    view = feed.view()

    assert list(view["brokers"]) == ["b:2"]
    assert view["brokers"]["b:2"]["age_s"] == 1.0
    assert view["commands"]["Echo"]["hosts"] == 1


def _counters(view):
    return (view["commands"]["Echo"]["events_total"]["SUCCESS"], view["pools"]["sample"]["completed_total"],
            view["pools"]["sample"]["submitted_total"])


def _publish_totals(feed, broker_id, successes):
    feed.receive(protocol.metrics(snapshot(broker_id, commands={"Echo": command(events={"SUCCESS": successes})},
                                           pools={"sample": pool(completed_total=successes,
                                                                 submitted_total=successes)})))


def test_counters_never_go_down_when_a_broker_leaves_or_comes_back(feed, clock):
    """Prometheus reads a fall as a reset: rate() then reports a burst the size of the
    other brokers' counts. A broker that leaves keeps its last counts in the sum; one that
    comes back is not counted twice; a restarted one (a new id) adds to what it had."""
    seen = []
    _publish_totals(feed, "a:1", 1000)
    _publish_totals(feed, "b:2", 1000)
    seen.append(_counters(feed.view()))
    for _ in range(2):  # a:1 silent past BROKER_SILENT_S; b:2 goes on
        clock.advance(BROKER_SILENT_S / 2 + 0.1)
        _publish_totals(feed, "b:2", 1000)
    seen.append(_counters(feed.view()))
    assert list(feed.view()["brokers"]) == ["b:2"]
    _publish_totals(feed, "a:1", 1010)  # a:1 back: its own snapshot counts again, not twice
    clock.advance(VIEW_REUSE_S)
    seen.append(_counters(feed.view()))
    for _ in range(2):  # a:1 restarts as a:3, from zero
        clock.advance(BROKER_SILENT_S / 2 + 0.1)
        _publish_totals(feed, "b:2", 1000)
        _publish_totals(feed, "a:3", 5)
    seen.append(_counters(feed.view()))
    assert set(feed.view()["brokers"]) == {"a:3", "b:2"}
    assert seen == [(2000,) * 3, (2000,) * 3, (2010,) * 3, (2015,) * 3]


def test_a_malformed_message_is_dropped_and_counted(feed):
    publish(feed, "a:1", Echo=command())
    feed.receive([protocol.METRICS_TOPIC, protocol.PROTOCOL, b"garbage"])
    bad = snapshot("b:2")
    bad["pools"] = {"sample": {"workers": -1}}
    feed.receive(protocol.metrics(bad))

    assert feed.dropped["malformed"] == 2
    assert list(feed.view()["brokers"]) == ["a:1"]


def test_snapshots_of_more_brokers_than_the_bound_are_dropped_until_one_goes_silent(feed, clock):
    for index in range(4):
        publish(feed, f"h{index}:{index + 1}")
    assert len(feed.view()["brokers"]) == 3 and feed.dropped["too_many_brokers"] == 1

    clock.advance(BROKER_SILENT_S + 1)
    publish(feed, "h3:4")
    assert list(feed.view()["brokers"]) == ["h3:4"]


def test_a_view_is_reused_for_a_moment_then_rebuilt_with_what_arrived(feed, clock):
    publish(feed, "a:1", Echo=command(events={"SUCCESS": 1}))
    first = feed.view()
    publish(feed, "a:1", Echo=command(events={"SUCCESS": 2}))
    assert feed.view() is first

    clock.advance(VIEW_REUSE_S)
    assert feed.view()["commands"]["Echo"]["events"]["SUCCESS"] == 2


def test_the_rate_history_holds_two_minutes_of_samples_oldest_first(feed, clock):
    for count in range(RATE_HISTORY_SAMPLES + 5):
        publish(feed, "a:1", Echo=command(events={"SUCCESS": count * 10}))
        clock.advance(1.0)
        feed.sample_rates()

    history = feed.view()["commands"]["Echo"]["rate_history"]

    assert len(history) == RATE_HISTORY_SAMPLES
    assert history[0] == 5.0 and history[-1] == RATE_HISTORY_SAMPLES + 4  # calls per second over 10 s


def test_a_command_gone_from_the_view_loses_its_history(feed, clock):
    publish(feed, "a:1", Echo=command(), Other=command())
    feed.sample_rates()
    publish(feed, "a:1", Other=command())
    clock.advance(1.0)
    feed.sample_rates()
    publish(feed, "a:1", Echo=command(), Other=command())
    clock.advance(1.0)

    view = feed.view()
    assert view["commands"]["Echo"]["rate_history"] == []
    assert view["commands"]["Other"]["rate_history"] == [0.0, 0.0]


def test_a_feed_needs_one_to_max_brokers_sources():
    with pytest.raises(ValueError, match="1 to 64 endpoints"):
        MetricsFeed([])
