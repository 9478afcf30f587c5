"""Call logging: each failure a line, successes sampled, rejections as bursts."""

from __future__ import annotations

from api.testing import FakeClock
from broker.call_log import CallLog, RejectionLog
from shared import protocol
from shared.events import Event


class RecordingLogger:
    def __init__(self):
        self.lines = []

    def info(self, event, **fields):
        self.lines.append(("info", event, fields))

    def warning(self, event, **fields):
        self.lines.append(("warning", event, fields))

    def events(self):
        return [event for _, event, _ in self.lines]


def test_the_first_rejection_of_a_burst_is_logged_at_once():
    logger, clock = RecordingLogger(), FakeClock()
    rejections = RejectionLog(logger, clock)
    rejections.note("GetRatings", "ratings", "THREAD_POOL_REJECTED")
    assert logger.lines == [("warning", "calls_rejected", {
        "command": "GetRatings", "dependency": "ratings", "outcome": "THREAD_POOL_REJECTED",
        "count": 1, "over_s": 0.0, "burst": "started"})]


def test_the_rest_of_a_burst_is_summed_once_a_second():
    logger, clock = RecordingLogger(), FakeClock()
    rejections = RejectionLog(logger, clock)
    for _ in range(500):
        rejections.note("GetRatings", "ratings", "SHORT_CIRCUITED")
    rejections.flush()
    assert len(logger.lines) == 1  # not a second yet
    clock.advance(1.0)
    rejections.flush()
    assert logger.lines[-1][2]["count"] == 499 and logger.lines[-1][2]["burst"] == "ongoing"


def test_a_quiet_second_ends_the_burst_and_the_next_rejection_starts_one():
    logger, clock = RecordingLogger(), FakeClock()
    rejections = RejectionLog(logger, clock)
    rejections.note("A", "a", "SHORT_CIRCUITED")
    clock.advance(1.0)
    rejections.flush()
    clock.advance(1.0)
    rejections.flush()
    rejections.note("A", "a", "SHORT_CIRCUITED")
    assert [fields["burst"] for _, _, fields in logger.lines] == ["started", "started"]


def test_rejections_beyond_the_key_limit_are_summed_not_lost(monkeypatch):
    monkeypatch.setattr("broker.call_log.MAX_KEYS", 2)
    logger, clock = RecordingLogger(), FakeClock()
    rejections = RejectionLog(logger, clock)
    for key in "ABCD":
        rejections.note(key, "x", "SHORT_CIRCUITED")
    clock.advance(1.0)
    rejections.flush()
    assert logger.lines[-1][2]["burst"] == "overflow" and logger.lines[-1][2]["count"] == 2


def test_each_failure_is_a_line_with_its_error():
    logger = RecordingLogger()
    call_log = CallLog(logger, success_sample_rate=0.0)
    call_log.answered("GetRatings", "ratings", Event.TIMEOUT, 12.5, 200.0,
                      protocol.encode_error("Timeout", "worker pid 7 did not answer"))
    level, event, fields = logger.lines[0]
    assert (level, event, fields["outcome"], fields["error"]) == (
        "warning", "call_failed", "TIMEOUT", "Timeout: worker pid 7 did not answer")


def test_successes_are_logged_at_the_sample_rate():
    logger = RecordingLogger()
    fractions = iter([0.05, 0.5, 0.09, 0.99])
    call_log = CallLog(logger, success_sample_rate=0.1, random_fraction=lambda: next(fractions))
    for _ in range(4):
        call_log.answered("GetRatings", "ratings", Event.SUCCESS, 1.0, 2.0, b"")
    assert logger.events() == ["call_succeeded", "call_succeeded"]
    assert logger.lines[0][2]["sample_rate"] == 0.1


def test_a_sample_rate_of_zero_logs_no_success():
    logger = RecordingLogger()
    call_log = CallLog(logger, success_sample_rate=0.0, random_fraction=lambda: 0.0)
    call_log.answered("GetRatings", "ratings", Event.SUCCESS, 1.0, 2.0, b"")
    assert logger.lines == []


def test_pool_rejections_go_to_the_burst_log():
    logger = RecordingLogger()
    call_log = CallLog(logger, success_sample_rate=0.0)
    for _ in range(3):
        call_log.answered("GetRatings", "ratings", Event.THREAD_POOL_REJECTED, 0.0, 0.1, b"")
    assert logger.events() == ["calls_rejected"]


def test_reported_failures_name_the_front_as_their_source():
    logger = RecordingLogger()
    CallLog(logger, 0.0).reported("ReadCache", "", Event.FALLBACK_FAILURE, 0.2)
    assert logger.lines[0][2] == {"command": "ReadCache", "dependency": "semaphore", "outcome": "FALLBACK_FAILURE",
                                  "latency_ms": 0.2, "reported_by": "front"}
