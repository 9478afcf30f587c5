"""Outcomes fronts report are counted in slices of a time budget, from a bounded backlog,
so a flood of them cannot hold the broker's loop (broker/reported.py). In-process, on a
Broker that binds nothing, with a fake clock."""

from __future__ import annotations

from pathlib import Path

import pytest

from api.testing import FakeClock
from broker.reported import DROP_LOG_INTERVAL_S, INLINE_OUTCOMES, ReportBacklog
from broker.server import Broker
from shared import protocol
from shared.config import parse
from shared.events import Event


def _outcomes(keys: range, per_key: int = 1) -> dict[str, list[tuple[Event, float]]]:
    return {f"Cmd{key}": [(Event.SUCCESS, 1.0)] * per_key for key in keys}


# -- the backlog -----------------------------------------------------------------------------


def test_backlog_gives_keys_oldest_report_first_and_counts_what_waits():
    backlog = ReportBacklog(max_outcomes=100)
    assert backlog.add(_outcomes(range(2), per_key=3))
    assert backlog.add(_outcomes(range(2, 3), per_key=4))
    assert backlog.pending == 10

    taken = []
    while (key_outcomes := backlog.next_key()) is not None:
        taken.append((key_outcomes[0], len(key_outcomes[1])))

    assert taken == [("Cmd0", 3), ("Cmd1", 3), ("Cmd2", 4)]
    assert backlog.pending == 0


def test_backlog_refuses_a_whole_report_that_would_pass_its_bound():
    backlog = ReportBacklog(max_outcomes=10)
    assert backlog.add(_outcomes(range(8)))

    assert not backlog.add(_outcomes(range(8, 11)))  # 8 + 3 > 10: none of it is held

    assert backlog.pending == 8
    assert backlog.add(_outcomes(range(8, 10)))  # 8 + 2 fits
    assert backlog.pending == 10


def test_an_empty_report_holds_nothing():
    backlog = ReportBacklog(max_outcomes=10)
    assert backlog.add({})
    assert backlog.next_key() is None and backlog.pending == 0


# -- counting on a broker ----------------------------------------------------------------------


@pytest.fixture
def make_broker(tmp_path):
    def make(clock) -> Broker:
        config = parse({"run_dir": "run"}, Path(tmp_path))
        broker = Broker(config, clock=clock)
        broker.call_log.reported = lambda *_: None  # a log line per outcome says nothing here
        return broker
    return make


def _counted(broker: Broker, keys: range) -> int:
    return sum(broker.commands.get(f"Cmd{key}").totals[Event.SUCCESS] for key in keys)


def _slow_counting(broker: Broker, clock: FakeClock, per_key_s: float) -> None:
    """Each command key counted moves the clock on ``per_key_s``, as a loaded machine would."""
    count_key = broker.reported._count_key

    def slow_count_key(*args) -> None:
        clock.advance(per_key_s)
        count_key(*args)
    broker.reported._count_key = slow_count_key


def test_a_small_report_is_counted_as_it_is_read(make_broker):
    clock = FakeClock()
    broker = make_broker(clock)
    _slow_counting(broker, clock, per_key_s=0.001)

    broker.reported.receive(protocol.Report(_outcomes(range(INLINE_OUTCOMES))))

    assert broker.reported.backlog.pending == 0
    assert _counted(broker, range(INLINE_OUTCOMES)) == INLINE_OUTCOMES


def test_a_large_report_waits_and_each_slice_stops_at_its_budget(make_broker):
    clock = FakeClock()
    broker = make_broker(clock)
    _slow_counting(broker, clock, per_key_s=1 / 64)  # a power of two: the sums are exact
    keys = range(INLINE_OUTCOMES + 100)

    broker.reported.receive(protocol.Report(_outcomes(keys)))
    assert broker.reported.backlog.pending and _counted(broker, keys) == 0  # too many to count as it is read

    broker.reported.count(budget_s=10 / 64)
    assert _counted(broker, keys) == 10  # 10 keys of 1/64 s each fill the slice

    while broker.reported.backlog.pending:
        broker.reported.count(budget_s=10 / 64)
    assert _counted(broker, keys) == len(keys)


def test_the_loop_does_not_sleep_while_outcomes_wait(make_broker):
    broker = make_broker(FakeClock())
    broker.reported.receive(protocol.Report(_outcomes(range(INLINE_OUTCOMES + 1))))

    assert broker._poll_timeout_ms() == 0


class Warnings:
    def __init__(self) -> None:
        self.lines: list[tuple[str, dict]] = []

    def warning(self, event: str, **fields: object) -> None:
        self.lines.append((event, fields))


def test_reports_past_the_bound_are_refused_and_logged_once_per_interval(make_broker):
    clock = FakeClock()
    broker = make_broker(clock)
    broker.reported._log = warnings = Warnings()
    broker.reported.backlog.max_outcomes = INLINE_OUTCOMES + 10
    broker.reported.receive(protocol.Report(_outcomes(range(INLINE_OUTCOMES + 5))))  # waits: too many to count now

    broker.reported.receive(protocol.Report(_outcomes(range(1000, 1010))))
    broker.reported.receive(protocol.Report(_outcomes(range(2000, 2020))))  # within the interval: counted, no line
    clock.advance(DROP_LOG_INTERVAL_S)
    broker.reported.receive(protocol.Report(_outcomes(range(3000, 3030))))

    waiting = {"outcomes_waiting": INLINE_OUTCOMES + 5, "max_waiting": INLINE_OUTCOMES + 10}
    assert warnings.lines == [("report_dropped", {"reports": 1, "outcomes": 10, **waiting}),
                              ("report_dropped", {"reports": 2, "outcomes": 50, **waiting})]
    assert broker.reported.backlog.pending == INLINE_OUTCOMES + 5
