"""Aggregating brokers' metrics snapshots into one cluster view, Turbine-style."""

from __future__ import annotations

from api.cluster import aggregate, merge_percentiles, request_rate, request_volume
from metrics_samples import collapser, command, latency, pool, snapshot


def test_no_snapshot_is_an_empty_view():
    assert aggregate([], time_ms=5) == {"brokers": {}, "time_ms": 5, "commands": {}, "pools": {}, "collapsers": {}}


def test_one_broker_gives_its_own_figures_plus_who_reported_them():
    echo = command(events={"SUCCESS": 8, "FAILURE": 2}, latency_ms=latency(12.0, p100=40.0), concurrent=1,
                   max_concurrent=3)
    sample = pool(workers=2, slots=4, busy=1, submitted_total=10, completed_total=9)
    batch = collapser(batches=2, batched=7, size=3.5)
    one = snapshot("host-a:100", commands={"Echo": echo}, pools={"sample": sample}, collapsers={"Echo": batch})

    view = aggregate([one], ages_s=[0.25])

    assert view["brokers"] == {"host-a:100": {"host": "host-a", "pid": 100, "age_s": 0.25}}
    assert view["time_ms"] == one["time_ms"]
    assert view["commands"]["Echo"] == {**echo, "hosts": 1, "rate_history": [],
                                        "breakers": {"CLOSED": 1, "HALF_OPEN": 0, "OPEN": 0}}
    assert view["pools"]["sample"] == {**sample, "hosts": 1}
    assert view["collapsers"]["Echo"] == {**batch, "hosts": 1}


def test_two_brokers_sum_counts_events_and_concurrency():
    a = snapshot("a:1", commands={"Echo": command(events={"SUCCESS": 8, "FAILURE": 2}, concurrent=1,
                                                  max_concurrent=2)})
    b = snapshot("b:2", commands={"Echo": command(events={"SUCCESS": 5, "TIMEOUT": 5}, concurrent=3,
                                                  max_concurrent=4)})

    echo = aggregate([a, b])["commands"]["Echo"]

    assert echo["hosts"] == 2
    assert (echo["events"]["SUCCESS"], echo["events"]["FAILURE"], echo["events"]["TIMEOUT"]) == (13, 2, 5)
    assert (echo["request_count"], echo["error_count"]) == (20, 7)
    assert (echo["concurrent"], echo["max_concurrent"]) == (4, 6)


def test_error_percentage_is_recomputed_from_the_summed_counts_not_averaged():
    busy_healthy = snapshot("a:1", commands={"Echo": command(events={"SUCCESS": 99, "FAILURE": 1})})
    quiet_failing = snapshot("b:2", commands={"Echo": command(events={"FAILURE": 1})})

    echo = aggregate([busy_healthy, quiet_failing])["commands"]["Echo"]

    assert echo["error_pct"] == 1.98  # 2 errors in 101 calls, not (1% + 100%) / 2


def test_a_command_only_one_broker_serves_counts_one_host():
    a = snapshot("a:1", commands={"Echo": command(events={"SUCCESS": 1}), "Only": command()})
    b = snapshot("b:2", commands={"Echo": command(events={"SUCCESS": 1})})

    view = aggregate([a, b])

    assert (view["commands"]["Echo"]["hosts"], view["commands"]["Only"]["hosts"]) == (2, 1)
    assert set(view["brokers"]) == {"a:1", "b:2"}


def test_the_most_severe_breaker_state_wins_and_each_state_is_counted():
    states = ["CLOSED", "HALF_OPEN", "CLOSED"]
    snaps = [snapshot(f"h{index}:{index + 1}", commands={"Echo": command(breaker=state)})
             for index, state in enumerate(states)]

    echo = aggregate(snaps)["commands"]["Echo"]
    assert echo["breaker"] == "HALF_OPEN"
    assert echo["breakers"] == {"CLOSED": 2, "HALF_OPEN": 1, "OPEN": 0}

    snaps.append(snapshot("h9:10", commands={"Echo": command(breaker="OPEN")}))
    assert aggregate(snaps)["commands"]["Echo"]["breaker"] == "OPEN"


def test_latency_percentiles_are_weighted_by_the_calls_each_broker_executed():
    busy = snapshot("a:1", commands={"Echo": command(events={"SUCCESS": 90}, latency_ms=10.0)})
    quiet = snapshot("b:2", commands={"Echo": command(events={"SUCCESS": 10}, latency_ms=110.0)})

    execute = aggregate([busy, quiet])["commands"]["Echo"]["latency_execute"]

    assert execute["mean"] == execute["50"] == execute["99"] == 20.0  # (90 * 10 + 10 * 110) / 100
    assert (execute["0"], execute["100"]) == (10.0, 110.0)  # exact: least minimum, greatest maximum


def test_a_broker_without_latency_data_does_not_pull_the_percentiles_down():
    serving = snapshot("a:1", commands={"Echo": command(events={"SUCCESS": 5}, latency_ms=30.0)})
    idle = snapshot("b:2", commands={"Echo": command(events={"SHORT_CIRCUITED": 5})})

    execute = aggregate([serving, idle])["commands"]["Echo"]["latency_execute"]

    assert execute == latency(30.0)


def test_percentiles_weigh_brokers_alike_when_no_calls_are_left_in_the_counting_window():
    merged = merge_percentiles([latency(10.0), latency(30.0)], [0, 0])
    assert merged["50"] == 20.0 and merged["100"] == 30.0


def test_settings_pool_and_isolation_come_from_the_first_broker_by_id():
    a = snapshot("a:1", commands={"Echo": command(timeout_s=0.2)})
    b = snapshot("b:2", commands={"Echo": command(timeout_s=0.3)})

    assert aggregate([b, a])["commands"]["Echo"]["settings"]["timeout_s"] == 0.2


def test_pools_sum_their_capacity_and_load():
    a = snapshot("a:1", pools={"sample": pool(workers=2, slots=4, busy=3, queued=1, queue_size=5,
                                              submitted_total=100, completed_total=97, rolling_executed=10,
                                              rolling_max_busy=4, rolling_rejected=1)})
    b = snapshot("b:2", pools={"sample": pool(workers=1, slots=2, busy=2, queued=0, queue_size=5,
                                              submitted_total=50, completed_total=48, rolling_executed=5,
                                              rolling_max_busy=2, rolling_rejected=0)})

    sample = aggregate([a, b])["pools"]["sample"]

    assert sample == {"workers": 3, "slots": 6, "busy": 5, "queued": 1, "queue_size": 10, "largest_slots": 6,
                      "completed_total": 145, "submitted_total": 150, "rolling_executed": 15,
                      "rolling_max_busy": 6, "rolling_rejected": 1, "window_s": 10.0, "hosts": 2}


def test_collapsers_sum_batches_and_weigh_batch_sizes_by_batches():
    a = snapshot("a:1", collapsers={"GetItem": collapser(batches=3, batched=30, size=10.0)})
    b = snapshot("b:2", collapsers={"GetItem": collapser(batches=1, batched=2, size=2.0)})

    item = aggregate([a, b])["collapsers"]["GetItem"]

    assert (item["rolling_batches"], item["rolling_requests_batched"], item["hosts"]) == (4, 32, 2)
    assert item["batch_size"]["50"] == 8.0 and item["batch_size"]["100"] == 10.0
    assert "0" not in item["batch_size"]


def test_the_view_keeps_only_the_busiest_entries_when_there_are_too_many():
    commands = {f"C{index}": command(events={"SUCCESS": index}) for index in range(10)}
    view = aggregate([snapshot("a:1", commands=commands)], max_entries=3)
    assert list(view["commands"]) == ["C7", "C8", "C9"]


def test_the_feed_supplies_the_rate_history():
    one = snapshot("a:1", commands={"Echo": command()})
    assert aggregate([one], rate_history={"Echo": [1.0, 2.5]})["commands"]["Echo"]["rate_history"] == [1.0, 2.5]


def test_the_request_rate_counts_each_call_once_over_the_window():
    echo = command(events={"SUCCESS": 10, "FAILURE": 5, "FALLBACK_SUCCESS": 5, "SHORT_CIRCUITED": 5,
                           "RESPONSE_FROM_CACHE": 5, "COLLAPSED": 10})
    assert request_volume(echo) == 25
    assert request_rate(echo) == 2.5  # 25 calls over a 10 s window
