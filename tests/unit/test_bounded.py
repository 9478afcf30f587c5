"""The broker's messages that grow with the command keys callers choose stay within one
message: breaker snapshot, metrics, status. In-process, on a Broker that binds nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from api.testing import FakeClock
from broker import bounded
from broker.cli import _format_status
from broker.server import Broker
from shared import protocol
from shared.config import MAX_OVERRIDE_KEY_CHARS, ConfigError, check_override, parse
from shared.events import Event
from shared.metrics_schema import check_snapshot

#: Long keys (the protocol allows 200 characters), enough of them to overflow a message.
KEY_COUNT = 6000
PADDING = "x" * 190


class Lines:
    def __init__(self) -> None:
        self.lines: list[tuple[str, dict]] = []

    def warning(self, event: str, **fields: object) -> None:
        self.lines.append((event, fields))

    def info(self, event: str, **fields: object) -> None:
        self.lines.append((event, fields))


@pytest.fixture(scope="module")
def flooded_broker(tmp_path_factory) -> Broker:
    """A broker tracking KEY_COUNT commands, each with its breaker opened by one failure."""
    config = parse({"run_dir": "run", "defaults": {"breaker_volume_threshold": 1}},
                   Path(tmp_path_factory.mktemp("bounded")))
    broker = Broker(config)
    broker.call_log.breaker_changed = lambda *_: None  # 6,000 log lines say nothing here
    broker._publish_breaker = lambda _: None  # no events socket: nothing is bound
    for number in range(KEY_COUNT):
        broker.commands.get(f"Made{number:05d}{PADDING}").record(Event.FAILURE, 1.0)
    busy = broker.commands.get("Busy")
    for _ in range(50):
        busy.record(Event.SUCCESS, 1.0)
    return broker


def test_fit_encodes_once_when_everything_fits() -> None:
    built: list[int] = []

    def build(count: int) -> list[bytes]:
        built.append(count)
        return [b"x" * count]

    assert protocol.fit(build, 10, max_bytes=100) == ([b"x" * 10], 10)
    assert built == [10]


def test_fit_sheds_entries_until_the_payload_fits() -> None:
    frames, kept = protocol.fit(lambda count: [b"header", b"x" * (count * 10)], 1000, max_bytes=2500)
    assert len(frames[-1]) <= 2500 and 200 <= kept <= 250


def test_the_breaker_snapshot_fits_and_keeps_open_breakers(flooded_broker) -> None:
    trims = Lines()
    frames = bounded.breaker_snapshot(flooded_broker, bounded.TrimLog(trims, lambda: 0.0))
    assert len(frames[-1]) <= protocol.MAX_PAYLOAD_BYTES
    snapshot = protocol.decode(frames[1:])
    assert 1000 < len(snapshot.breakers) < KEY_COUNT
    assert {state for state, _ in snapshot.breakers.values()} == {"OPEN"}
    ((event, fields),) = trims.lines
    assert event == "message_trimmed" and fields["message"] == "breaker_snapshot"
    assert fields["entries_kept"] + fields["entries_left_out"] == KEY_COUNT


def test_metrics_fit_keep_the_busiest_commands_and_stay_valid(flooded_broker) -> None:
    frames = bounded.metrics(flooded_broker, {"id": "test:1", "host": "test", "pid": 1},
                             bounded.TrimLog(Lines(), lambda: 0.0))
    assert len(frames[-1]) <= protocol.MAX_PAYLOAD_BYTES
    snapshot = protocol.decode_metrics(frames)
    check_snapshot(snapshot)
    assert "Busy" in snapshot["commands"]


def test_status_fits_shows_the_busiest_and_counts_what_it_left_out(flooded_broker) -> None:
    status = bounded.status(flooded_broker)
    assert len(protocol.control_reply(True, status)[-1]) <= protocol.MAX_PAYLOAD_BYTES
    assert status["commands_total"] == KEY_COUNT + 1
    assert 0 < len(status["commands"]) <= bounded.MAX_STATUS_COMMANDS
    assert list(status["commands"]) == sorted(status["commands"])
    left_out = KEY_COUNT + 1 - len(status["commands"])
    assert f"... and {left_out} more commands not shown" in _format_status(status)


def test_status_narrowed_to_the_commands_an_operator_names(flooded_broker) -> None:
    status = bounded.status(flooded_broker, "Made0004")
    assert sorted(key[:9] for key in status["commands"]) == [f"Made0004{digit}" for digit in range(10)]
    assert status["commands_total"] == 10
    assert "more commands not shown" not in _format_status(status)


def test_the_trim_log_says_it_once_a_minute_per_message() -> None:
    now_s = [0.0]
    trims = Lines()
    trim_log = bounded.TrimLog(trims, lambda: now_s[0])
    trim_log.trimmed("metrics", 10, 20)
    trim_log.trimmed("metrics", 10, 20)
    trim_log.trimmed("breaker_snapshot", 10, 20)
    trim_log.trimmed("metrics", 20, 20)  # nothing left out: nothing to say
    now_s[0] = bounded.TRIM_LOG_INTERVAL_S
    trim_log.trimmed("metrics", 10, 20)
    assert [fields["message"] for _, fields in trims.lines] == ["metrics", "breaker_snapshot", "metrics"]


def test_a_runtime_setting_key_longer_than_a_command_key_allows_is_refused() -> None:
    long_key = f"commands.{'K' * 200}.timeout_s"
    assert len(long_key) <= MAX_OVERRIDE_KEY_CHARS
    assert check_override(long_key, 0.5) == (long_key, 0.5)
    with pytest.raises(ConfigError, match=f"at most {MAX_OVERRIDE_KEY_CHARS} characters"):
        check_override(f"commands.{'K' * 1_000_000}.timeout_s", 0.5)


def test_metrics_trimmed_keep_open_breakers_that_are_being_called(tmp_path) -> None:
    """An open breaker's calls are short-circuits, which are not health events: ranked by
    request count, open breakers were the first commands a trimmed snapshot left out."""
    clock = FakeClock()
    broker = Broker(parse({"run_dir": "run"}, tmp_path), clock=clock)
    broker.call_log.breaker_changed = lambda *_: None
    broker._publish_breaker = lambda _: None
    broken = [f"Broken{number:02d}{PADDING}" for number in range(30)]
    for key in broken:
        for _ in range(25):
            broker.commands.get(key).record(Event.FAILURE, 5.0)
    clock.advance(11.0)  # past the 10 s window: only short-circuits since
    for key in broken:
        assert broker.commands.get(key).breaker.effective_state().value == "OPEN"
        for _ in range(40):
            broker.commands.get(key).record(Event.SHORT_CIRCUITED, 0.0)
    for number in range(KEY_COUNT):
        for _ in range(3):
            broker.commands.get(f"Good{number:05d}{PADDING}").record(Event.SUCCESS, 5.0)
    frames = bounded.metrics(broker, {"id": "test:1", "host": "test", "pid": 1}, bounded.TrimLog(Lines(), clock))
    snapshot = protocol.decode_metrics(frames)
    assert len(snapshot["commands"]) < KEY_COUNT  # trimmed
    assert set(broken) <= set(snapshot["commands"])
