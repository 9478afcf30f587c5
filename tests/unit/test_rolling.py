"""Rolling windows: counts and percentiles that age out bucket by bucket, and the bounded keyed store.

Every test drives a fake clock; nothing sleeps.
"""

from __future__ import annotations

import math
import random

import pytest

from api.testing import FakeClock
from shared.rolling import (
    LATENCY_BINS,
    KeyedStore,
    RollingCounts,
    RollingPercentiles,
    latency_bin,
)

KINDS = ("ok", "bad", "slow")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(0.0)


def ten_second_counts(clock: FakeClock) -> RollingCounts[str]:
    return RollingCounts(KINDS, window_s=10.0, buckets=10, clock=clock)


def minute_percentiles(clock: FakeClock) -> RollingPercentiles:
    return RollingPercentiles(window_s=60.0, buckets=6, clock=clock)


# -- RollingCounts: counting ------------------------------------------------------------


def test_counts_add_up_across_buckets_within_the_window(clock):
    counts = ten_second_counts(clock)

    for _ in range(3):
        counts.add("ok")
        clock.advance(2.0)
    counts.add("bad", count=4)

    assert counts.count("ok") == 3
    assert counts.count("bad") == 4
    assert counts.count("slow") == 0


def test_totals_lists_only_kinds_with_a_non_zero_count(clock):
    counts = ten_second_counts(clock)

    counts.add("ok", count=2)
    counts.add("slow")

    assert counts.totals() == {"ok": 2, "slow": 1}


def test_totals_of_a_new_window_is_empty(clock):
    counts = ten_second_counts(clock)

    assert counts.totals() == {}


def test_unknown_kind_is_refused(clock):
    counts = ten_second_counts(clock)

    with pytest.raises(KeyError):
        counts.add("unheard-of")


@pytest.mark.parametrize("window_s, buckets", [(0.0, 10), (-1.0, 10), (10.0, 0)])
def test_window_without_length_or_buckets_is_refused(clock, window_s, buckets):
    with pytest.raises(ValueError):
        RollingCounts(KINDS, window_s=window_s, buckets=buckets, clock=clock)


# -- RollingCounts: ageing out -----------------------------------------------------------


def test_event_is_still_counted_in_the_last_bucket_of_its_window(clock):
    counts = ten_second_counts(clock)
    counts.add("bad")

    clock.advance(9.5)

    assert counts.count("bad") == 1


def test_event_is_gone_once_its_bucket_leaves_the_window(clock):
    counts = ten_second_counts(clock)
    counts.add("bad")

    clock.advance(10.1)

    assert counts.count("bad") == 0
    assert counts.totals() == {}


def test_buckets_age_out_one_at_a_time(clock):
    # given one event at each of t = 0, 1, ..., 9
    counts = ten_second_counts(clock)
    for _ in range(10):
        counts.add("ok")
        clock.advance(1.0)
    # now t = 10: the t=0 bucket has just left the window

    seen = []
    for _ in range(10):
        seen.append(counts.count("ok"))
        clock.advance(1.0)

    assert seen == [9, 8, 7, 6, 5, 4, 3, 2, 1, 0]


def test_long_idle_gap_clears_every_bucket(clock):
    counts = ten_second_counts(clock)
    for _ in range(10):
        counts.add("ok")
        counts.add("bad")
        clock.advance(0.9)

    clock.advance(3600.0)

    assert counts.totals() == {}


def test_counting_resumes_normally_after_a_long_idle_gap(clock):
    counts = ten_second_counts(clock)
    counts.add("ok")
    clock.advance(1234.5)

    counts.add("ok")
    clock.advance(9.0)

    assert counts.count("ok") == 1


def test_bucket_count_stays_fixed_whatever_the_traffic(clock):
    counts = ten_second_counts(clock)

    for _ in range(10_000):
        counts.add("ok")
        clock.advance(0.037)

    assert len(counts._buckets) == 10
    assert all(len(bucket) == len(KINDS) for bucket in counts._buckets)


def test_total_equals_sum_of_live_buckets_under_steady_traffic(clock):
    # given one event every 0.25 s for a minute: the window always holds the last ~10 s
    counts = ten_second_counts(clock)
    for _ in range(240):
        counts.add("ok")
        clock.advance(0.25)

    total = counts.count("ok")

    assert total == sum(bucket[0] for bucket in counts._buckets)
    assert 36 <= total <= 40  # between 9 and 10 seconds' worth of 4 events/s


def test_reset_forgets_every_count(clock):
    counts = ten_second_counts(clock)
    counts.add("ok", count=5)
    counts.add("bad")

    counts.reset()

    assert counts.totals() == {}


def test_counts_after_reset_start_from_zero(clock):
    counts = ten_second_counts(clock)
    counts.add("ok", count=5)
    counts.reset()

    counts.add("ok")

    assert counts.count("ok") == 1


# -- latency bins ------------------------------------------------------------------------


@pytest.mark.parametrize("latency_ms", [0.0, -5.0, -1e9])
def test_zero_and_negative_latencies_fall_in_the_first_bin(latency_ms):
    assert latency_bin(latency_ms) == 0


@pytest.mark.parametrize("latency_ms", [3_600_000.0, 1e9, 1e300])
def test_latencies_at_or_past_the_ceiling_fall_in_the_last_bin(latency_ms):
    assert latency_bin(latency_ms) == LATENCY_BINS - 1


def test_latency_bins_never_decrease_as_latency_grows():
    latencies_ms = [0.001 * 1.01 ** step for step in range(3000)]

    bins = [latency_bin(latency_ms) for latency_ms in latencies_ms]

    assert bins == sorted(bins)
    assert 0 <= bins[0] and bins[-1] <= LATENCY_BINS - 1


# -- RollingPercentiles ------------------------------------------------------------------


def test_percentiles_are_zero_with_no_data(clock):
    percentiles = minute_percentiles(clock)

    assert percentiles.percentiles([50.0, 99.0]) == {50.0: 0.0, 99.0: 0.0}
    assert percentiles.mean_ms() == 0.0
    assert percentiles.count == 0


@pytest.mark.parametrize("point, true_ms", [(50.0, 500.0), (90.0, 900.0), (99.0, 990.0)])
def test_percentile_is_within_five_percent_of_the_true_value(clock, point, true_ms):
    # given latencies 1, 2, ..., 1000 ms, in shuffled order
    percentiles = minute_percentiles(clock)
    for step in range(1000):
        percentiles.add(float((step * 7919) % 1000 + 1))

    reported_ms = percentiles.percentiles([point])[point]

    assert abs(reported_ms - true_ms) <= 0.05 * true_ms


def test_percentiles_report_each_requested_point(clock):
    percentiles = minute_percentiles(clock)
    for latency_ms in (10.0,) * 90 + (1000.0,) * 10:
        percentiles.add(latency_ms)

    reported = percentiles.percentiles([50.0, 99.0])

    assert reported[50.0] == pytest.approx(10.0, rel=0.05)
    assert reported[99.0] == pytest.approx(1000.0, rel=0.05)


def test_percentile_of_a_sub_millisecond_latency_is_within_five_percent(clock):
    percentiles = minute_percentiles(clock)
    percentiles.add(0.01001)

    reported_ms = percentiles.percentiles([50.0])[50.0]

    assert abs(reported_ms - 0.01001) <= 0.05 * 0.01001


def test_mean_is_the_arithmetic_mean_of_the_window(clock):
    percentiles = minute_percentiles(clock)
    for latency_ms in (10.0, 20.0, 60.0):
        percentiles.add(latency_ms)
        clock.advance(5.0)

    assert percentiles.mean_ms() == pytest.approx(30.0)
    assert percentiles.count == 3


def test_percentile_data_is_still_there_at_the_end_of_the_minute(clock):
    percentiles = minute_percentiles(clock)
    percentiles.add(100.0)

    clock.advance(59.9)

    assert percentiles.count == 1
    assert percentiles.percentiles([50.0])[50.0] == pytest.approx(100.0, rel=0.05)


def test_percentiles_age_out_after_the_sixty_second_window(clock):
    percentiles = minute_percentiles(clock)
    percentiles.add(100.0)

    clock.advance(60.1)

    assert percentiles.count == 0
    assert percentiles.mean_ms() == 0.0
    assert percentiles.percentiles([50.0, 99.0]) == {50.0: 0.0, 99.0: 0.0}


def test_percentiles_follow_recent_latencies_as_old_ones_age_out(clock):
    # given a slow first half-minute, then a fast one
    percentiles = minute_percentiles(clock)
    for _ in range(30):
        percentiles.add(1000.0)
        clock.advance(1.0)
    for _ in range(30):
        percentiles.add(10.0)
        clock.advance(1.0)

    clock.advance(30.0)  # the slow half has left the window

    assert percentiles.percentiles([99.0])[99.0] == pytest.approx(10.0, rel=0.05)
    assert percentiles.mean_ms() == pytest.approx(10.0)


def test_percentile_memory_stays_fixed_whatever_the_traffic(clock):
    percentiles = minute_percentiles(clock)

    for step in range(5000):
        percentiles.add(float(step % 997) * 3.3)
        clock.advance(0.1)

    assert len(percentiles._bins) == 6
    assert all(len(bins) == LATENCY_BINS for bins in percentiles._bins)


# -- KeyedStore --------------------------------------------------------------------------


def make_store(clock: FakeClock, max_keys: int = 3, idle_s: float = 120.0) -> KeyedStore[str, list[str]]:
    return KeyedStore(lambda key: [key], max_keys=max_keys, idle_s=idle_s, clock=clock)


def test_store_makes_a_value_on_first_use(clock):
    made = []
    store = KeyedStore(lambda key: made.append(key) or f"value of {key}", clock=clock)

    value = store.get("GetRatings")

    assert value == "value of GetRatings"
    assert made == ["GetRatings"]
    assert "GetRatings" in store


def test_store_returns_the_same_value_on_later_use(clock):
    store = make_store(clock)
    first = store.get("a")

    again = store.get("a")

    assert again is first
    assert len(store) == 1


def test_peek_does_not_create_a_key(clock):
    store = make_store(clock)

    assert store.peek("a") is None
    assert "a" not in store


def test_peek_does_not_count_as_use(clock):
    store = make_store(clock, max_keys=2)
    store.get("a")
    store.get("b")

    assert store.peek("a") == ["a"]
    store.get("c")

    assert "a" not in store
    assert "b" in store


def test_store_holds_at_most_max_keys(clock):
    store = make_store(clock, max_keys=3)

    for key in "abcdefg":
        store.get(key)

    assert len(store) == 3


def test_store_evicts_the_least_recently_used_key(clock):
    store = make_store(clock, max_keys=3)
    store.get("a")
    store.get("b")
    store.get("c")
    store.get("a")  # a is now the most recently used; b the least

    store.get("d")

    assert [key for key, _ in store.items()] == ["c", "a", "d"]
    assert "b" not in store


def test_drop_idle_drops_keys_idle_longer_than_idle_s(clock):
    store = make_store(clock, idle_s=120.0)
    store.get("old")
    clock.advance(100.0)
    store.get("recent")

    clock.advance(21.0)  # old idle 121 s, recent 21 s
    dropped = store.drop_idle()

    assert dropped == ["old"]
    assert "old" not in store
    assert "recent" in store


def test_drop_idle_keeps_a_key_idle_exactly_idle_s(clock):
    store = make_store(clock, idle_s=120.0)
    store.get("a")

    clock.advance(120.0)

    assert store.drop_idle() == []
    assert "a" in store


def test_use_refreshes_a_key_so_it_is_not_idle(clock):
    store = make_store(clock, idle_s=120.0)
    store.get("a")
    clock.advance(100.0)
    store.get("a")

    clock.advance(100.0)

    assert store.drop_idle() == []


def pinning_store(clock, max_keys: int = 10_000) -> KeyedStore[str, dict[str, bool]]:
    return KeyedStore(lambda key: {"pinned": key.startswith("pinned")}, max_keys=max_keys, idle_s=10.0,
                      clock=clock, pinned=lambda value: value["pinned"])


def test_drop_idle_keeps_idle_keys_that_are_pinned(clock):
    store = pinning_store(clock)
    store.get("pinned-a")
    store.get("loose-b")
    store.get("pinned-c")
    store.get("loose-d")
    clock.advance(11.0)

    dropped = store.drop_idle()

    assert sorted(dropped) == ["loose-b", "loose-d"]
    assert [key for key, _ in store.items()] == ["pinned-a", "pinned-c"]


def test_a_full_store_makes_room_by_forgetting_the_oldest_key_not_pinned(clock):
    """An open breaker must not be pushed out by a flood of new command keys."""
    store = pinning_store(clock, max_keys=3)
    for key in ("pinned-a", "loose-b", "pinned-c"):
        store.get(key)

    for number in range(100):
        store.get(f"new-{number}")

    assert sorted(key for key, _ in store.items()) == ["new-99", "pinned-a", "pinned-c"]


def test_a_store_full_of_pinned_keys_still_holds_its_bound(clock):
    store = pinning_store(clock, max_keys=2)
    store.get("pinned-a")
    store.get("pinned-b")

    store.get("new")

    assert len(store) == 2 and "new" in store


def test_a_reading_kept_between_changes_is_read_again_after_an_add_or_an_expiry(clock):
    """Percentiles are kept from one read to the next while nothing changed (the broker
    reads every command's twice a second); an add, or a bucket aging out, is a change."""
    percentiles = minute_percentiles(clock)
    percentiles.add(10.0)
    first = percentiles.percentiles([50.0, 100.0])
    assert percentiles.percentiles([50.0, 100.0]) == first
    percentiles.add(5000.0)
    assert percentiles.percentiles([50.0, 100.0])[100.0] > first[100.0]
    assert percentiles.percentiles([100.0]) == {100.0: percentiles.percentiles([50.0, 100.0])[100.0]}
    clock.advance(61.0)
    assert percentiles.percentiles([50.0, 100.0]) == {50.0: 0.0, 100.0: 0.0}
    percentiles.add(10.0)
    assert percentiles.percentiles([50.0, 100.0]) == first


def test_percentiles_are_within_two_and_a_half_percent_and_the_extremes_exact(clock):
    """The bins are 5 % wide and each bin's upper edge was read: 201 ms calls showed as 210
    against a 200 ms timeout, a batch of exactly 100 as 101."""
    percentiles = minute_percentiles(clock)
    for _ in range(10):
        percentiles.add(201.0)
    assert percentiles.percentiles([0.0, 50.0, 100.0]) == {0.0: 201.0, 50.0: 201.0, 100.0: 201.0}

    spread = minute_percentiles(clock)
    values = sorted(random.Random(7).uniform(1.0, 5000.0) for _ in range(2000))
    for value in values:
        spread.add(value)
    points = [0.0, 25.0, 50.0, 90.0, 99.0, 100.0]
    read = spread.percentiles(points)
    for point in points:
        exact = values[max(1, math.ceil(len(values) * point / 100)) - 1]  # nearest rank
        assert abs(read[point] - exact) <= exact * 0.026, (point, read[point], exact)
    assert (read[0.0], read[100.0]) == (values[0], values[-1])


def test_the_least_and_greatest_are_exact_wherever_they_fall_in_their_bins(clock):
    """Kept within the window's extremes, a bin's middle still stood for p0 or p100 when the
    least value lay below its bin's middle, or the greatest above it."""
    percentiles = minute_percentiles(clock)
    for value in (1.0, 37.0, 500.0):
        percentiles.add(value)
    read = percentiles.percentiles([0.0, 100.0])
    assert read == {0.0: 1.0, 100.0: 500.0}
