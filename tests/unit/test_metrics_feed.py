"""The metrics feed's bookkeeping, fed messages by hand with a fake clock (its socket: tests/process)."""

from __future__ import annotations

import pytest
from structlog.testing import capture_logs

from api.metrics_feed import BROKER_SILENT_S, RATE_HISTORY_SAMPLES, VIEW_REUSE_S, MetricsFeed
from api.testing import FakeClock
from metrics_samples import command, pool, snapshot
from shared import protocol
from shared.events import Event


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def feed(clock):
    return MetricsFeed(["ipc:///nowhere/events"], clock=clock, wall_clock=lambda: 1700000000.0, max_brokers=3)


def source(broker_id):
    """The events endpoint a broker publishes on: one per host here, kept across restarts."""
    return f"ipc:///nowhere/{broker_id.partition(':')[0]}/events"


def publish(feed, broker_id, **commands):
    feed.receive(protocol.metrics(snapshot(broker_id, commands=commands)), source(broker_id))


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
                                                                 submitted_total=successes)})),
                 source(broker_id))


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


def _publish_pool(feed, broker_id, *, uptime_s, endpoint=None, completed_total=0):
    published = snapshot(broker_id, pools={"sample": pool(workers=2, slots=4, completed_total=completed_total,
                                                          submitted_total=completed_total)})
    published["broker"]["uptime_s"] = uptime_s
    feed.receive(protocol.metrics(published), endpoint or source(broker_id))


def test_a_restarted_broker_replaces_the_old_one_in_the_view_at_once(feed, clock):
    """Before, the old one stayed until silent for BROKER_SILENT_S: for 3 s the view summed
    both, two brokers reporting the pool and its workers and slots doubled."""
    _publish_pool(feed, "a:1", uptime_s=600.0, completed_total=50)
    clock.advance(0.8)  # a:1 stops; a:2 starts on the same source and publishes at once
    _publish_pool(feed, "a:2", uptime_s=0.01)

    view = feed.view()

    assert list(view["brokers"]) == ["a:2"]
    sample = view["pools"]["sample"]
    assert (sample["hosts"], sample["workers"], sample["slots"]) == (1, 2, 4)
    assert sample["completed_total"] == 50  # the old broker's count stays in the counter


def test_a_broker_heard_since_the_new_one_started_is_not_replaced(feed, clock):
    """Only a broker last heard before the new one started can be the one it replaced: an
    old snapshot read late, or two brokers behind one source, leave both in the view."""
    _publish_pool(feed, "a:1", uptime_s=600.0)
    clock.advance(0.5)
    _publish_pool(feed, "a:2", uptime_s=2.0)
    _publish_pool(feed, "a:1", uptime_s=600.5)

    assert set(feed.view()["brokers"]) == {"a:1", "a:2"}


def test_brokers_of_one_host_on_two_sources_are_two_brokers(feed, clock):
    _publish_pool(feed, "a:1", uptime_s=600.0, endpoint="ipc:///nowhere/a/events-1")
    clock.advance(1.0)
    _publish_pool(feed, "a:2", uptime_s=0.01, endpoint="ipc:///nowhere/a/events-2")

    assert feed.view()["pools"]["sample"]["slots"] == 8


def test_a_broker_of_another_version_is_shown_with_what_this_front_knows(feed):
    """A rolling upgrade: a newer broker's new event kind (or an older one's missing one)
    made every front of the other version drop its whole snapshot."""
    newer = snapshot("new:1", commands={"Echo": command(events={"SUCCESS": 3})}, pools={"sample": pool()})
    for section in ("events", "events_total"):
        newer["commands"]["Echo"][section]["FUTURE_EVENT"] = 1
    newer["pools"]["sample"]["future_field"] = 7
    older = snapshot("old:2", commands={"Echo": command(events={"SUCCESS": 4})})
    for section in ("events", "events_total"):
        del older["commands"]["Echo"][section]["COLLAPSED"]

    with capture_logs() as logs:
        for _ in range(3):
            feed.receive(protocol.metrics(newer), source("new:1"))
            feed.receive(protocol.metrics(older), source("old:2"))
    view = feed.view()

    assert set(view["brokers"]) == {"new:1", "old:2"} and feed.dropped["malformed"] == 0
    echo = view["commands"]["Echo"]
    assert echo["events"]["SUCCESS"] == 7 and "FUTURE_EVENT" not in echo["events"]
    assert set(echo["events_total"]) == {event.value for event in Event}
    assert [(line["broker"], line["ignored"]) for line in logs if line["event"] == "metrics_names_ignored"] == [
        ("new:1", ["metrics.commands.*.events.FUTURE_EVENT", "metrics.commands.*.events_total.FUTURE_EVENT",
                   "metrics.pools.*.future_field"])]


def test_a_malformed_message_is_dropped_and_counted(feed):
    publish(feed, "a:1", Echo=command())
    feed.receive([protocol.METRICS_TOPIC, protocol.PROTOCOL, b"garbage"], source("b:2"))
    bad = snapshot("b:2")
    bad["pools"] = {"sample": {"workers": -1}}
    feed.receive(protocol.metrics(bad), source("b:2"))

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
