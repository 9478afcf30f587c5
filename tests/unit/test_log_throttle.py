"""The log throttle: one line per key per interval, counting what it held back."""

from __future__ import annotations

from shared.log_throttle import LogThrottle


class Clock:
    def __init__(self) -> None:
        self.now_s = 100.0

    def __call__(self) -> float:
        return self.now_s


def test_the_first_line_is_due_at_once_and_repeats_within_the_interval_are_counted():
    clock = Clock()
    lines = LogThrottle(10.0, clock)

    assert lines.due() == 0
    clock.now_s += 9.9
    assert [lines.due() for _ in range(3)] == [None, None, None]
    clock.now_s += 0.1
    assert lines.due() == 3
    assert lines.due() is None


def test_the_interval_runs_from_the_last_line_not_from_the_last_occurrence():
    """An occurrence every second for 25 s: a line every 10 s, each counting the 9 between."""
    clock = Clock()
    lines = LogThrottle(10.0, clock)
    lines.due()
    held_back = []
    for _ in range(25):
        clock.now_s += 1.0
        held_back.append(lines.due())

    assert {second: count for second, count in enumerate(held_back, 1) if count is not None} == {10: 9, 20: 9}


def test_keys_are_throttled_apart():
    clock = Clock()
    lines = LogThrottle(10.0, clock)

    assert lines.due(("front", "bad header")) == 0
    assert lines.due(("back", "bad header")) == 0
    assert lines.due(("front", "bad header")) is None
    assert lines.due(("front", "unknown kind")) == 0


def test_it_remembers_at_most_max_keys_then_forgets_them_all():
    clock = Clock()
    lines = LogThrottle(10.0, clock, max_keys=3)
    for key in range(3):
        assert lines.due(key) == 0
    assert lines.due(0) is None  # a known key does not make room

    assert lines.due(3) == 0  # a fourth: all forgotten, so each gets its next line at once
    assert lines.due(0) == 0
    assert len(lines._keys) == 2
