"""The broker's per-command records: where breaker settings come from, and which keys are kept.

Settings resolve ``[commands.KEY]`` > class settings learned from workers > ``[defaults]`` >
built-in. Every test drives a fake clock; nothing sleeps.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from api.testing import FakeClock
from structlog.testing import capture_logs

from broker.breaker import Admission, BreakerSettings, BreakerState
from broker import commands
from broker.commands import IDLE_COMMAND_S, CommandRegistry
from shared.config import parse
from shared.events import Event


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_registry(tmp_path, clock):
    def make(document: dict | None = None, transitions: list | None = None) -> CommandRegistry:
        on_transition = (lambda *args: transitions.append(args)) if transitions is not None else (lambda *args: None)
        return CommandRegistry(parse(document or {}, Path(tmp_path)), on_transition, clock)

    return make


def open_the_breaker(registry: CommandRegistry, key: str) -> None:
    record = registry.get(key)
    for _ in range(record.breaker.settings.volume_threshold):
        record.record(Event.FAILURE, 5.0, False)
    assert record.breaker.state is BreakerState.OPEN


# -- where settings come from ------------------------------------------------------------


def test_breaker_settings_default_to_the_built_in_values(make_registry):
    registry = make_registry()

    assert registry.breaker_settings("GetRatings") == BreakerSettings()


def test_defaults_section_overrides_the_built_in_value(make_registry):
    registry = make_registry({"defaults": {"breaker_error_pct": 40}})

    assert registry.breaker_settings("GetRatings").error_pct == 40.0


def test_class_settings_override_the_defaults_section(make_registry):
    registry = make_registry({"defaults": {"breaker_error_pct": 40}})

    registry.learn_class_settings({"GetRatings": {"breaker_error_pct": 25}})

    assert registry.breaker_settings("GetRatings").error_pct == 25.0


def test_command_section_overrides_class_settings(make_registry):
    registry = make_registry({"defaults": {"breaker_error_pct": 40},
                              "commands": {"GetRatings": {"breaker_error_pct": 70}}})

    registry.learn_class_settings({"GetRatings": {"breaker_error_pct": 25}})

    assert registry.breaker_settings("GetRatings").error_pct == 70.0


def test_class_settings_of_one_command_do_not_leak_to_another(make_registry):
    registry = make_registry()

    registry.learn_class_settings({"GetRatings": {"breaker_sleep_s": 2}})

    assert registry.breaker_settings("GetReviews").sleep_s == 5.0


def test_every_breaker_field_is_read_from_the_config(make_registry):
    registry = make_registry({"commands": {"GetRatings": {
        "breaker_volume_threshold": 3, "breaker_error_pct": 10, "breaker_sleep_s": 0.5,
        "breaker_force": "closed", "breaker_slow_call_ms": 250, "breaker_slow_call_pct": 80,
        "window_s": 30, "window_buckets": 15,
    }}})

    assert registry.breaker_settings("GetRatings") == BreakerSettings(
        volume_threshold=3, error_pct=10.0, sleep_s=0.5, force="closed", slow_call_ms=250.0,
        slow_call_pct=80.0, window_s=30.0, window_buckets=15)


def test_new_record_has_a_breaker_with_the_resolved_settings(make_registry):
    registry = make_registry({"commands": {"GetRatings": {"breaker_force": "open"}}})

    record = registry.get("GetRatings")

    assert record.breaker.settings.force == "open"
    assert record.breaker.admit(1001.0) is Admission.SHORT_CIRCUIT


# -- learning class settings -------------------------------------------------------------


def test_bad_class_setting_is_ignored_and_good_ones_kept(make_registry):
    registry = make_registry()

    registry.learn_class_settings({"GetRatings": {"breaker_error_pct": 250, "breaker_sleep_s": 2}})

    settings = registry.breaker_settings("GetRatings")
    assert settings.error_pct == 50.0
    assert settings.sleep_s == 2.0


def test_bad_class_setting_is_logged_with_its_command_and_name(make_registry):
    registry = make_registry()

    with capture_logs() as logs:
        registry.learn_class_settings({"GetRatings": {"breaker_force": "sometimes"}})

    assert [(entry["event"], entry["command"], entry["setting"]) for entry in logs] == [
        ("bad_class_setting_ignored", "GetRatings", "breaker_force")]


def test_unknown_class_setting_is_ignored(make_registry):
    registry = make_registry()

    registry.learn_class_settings({"GetRatings": {"breaker_colour": "red", "breaker_sleep_s": 2}})

    assert registry.class_settings["GetRatings"] == {"breaker_sleep_s": 2.0}


def test_another_pool_cannot_change_the_class_settings_of_a_command_while_its_pool_has_workers(make_registry):
    registry = make_registry()
    live_pools = {"ratings"}
    registry.learn_class_settings({"GetRatings": {"breaker_sleep_s": 2}}, "ratings", live_pools.__contains__)

    with capture_logs() as logs:
        registry.learn_class_settings({"GetRatings": {"breaker_force": "open"}, "Other": {"breaker_sleep_s": 3}},
                                      "elsewhere", live_pools.__contains__)

    assert registry.breaker_settings("GetRatings").force == "auto"
    assert registry.breaker_settings("GetRatings").sleep_s == 2.0
    assert registry.breaker_settings("Other").sleep_s == 3.0
    ((entry),) = logs
    assert (entry["event"], entry["pool"], entry["commands"], entry["owners"]) == (
        "class_settings_refused", "elsewhere", ["GetRatings"], ["ratings"])


def test_a_command_moved_to_another_pool_takes_its_settings_once_the_old_pool_is_empty(make_registry):
    registry = make_registry()
    live_pools = {"ratings"}
    registry.learn_class_settings({"GetRatings": {"breaker_sleep_s": 2}}, "ratings", live_pools.__contains__)
    live_pools.clear()  # the old deployment's workers are gone

    registry.learn_class_settings({"GetRatings": {"breaker_sleep_s": 7}}, "ratings-v2", live_pools.__contains__)

    assert registry.breaker_settings("GetRatings").sleep_s == 7.0


def test_class_settings_are_kept_for_at_most_max_command_keys(make_registry, monkeypatch):
    monkeypatch.setattr("broker.commands.MAX_COMMAND_KEYS", 3)
    registry = make_registry()
    registry.learn_class_settings({f"Made{number}": {"breaker_sleep_s": 2} for number in range(3)}, "made")

    with capture_logs() as logs:
        registry.learn_class_settings({f"More{number}": {"breaker_sleep_s": 2} for number in range(2)}, "more")

    assert sorted(registry.class_settings) == ["Made0", "Made1", "Made2"]
    assert [(entry["event"], entry["over_key_limit"]) for entry in logs] == [("class_settings_refused", 2)]


def test_learned_class_settings_apply_to_an_existing_breaker(make_registry):
    registry = make_registry()
    breaker = registry.get("GetRatings").breaker

    registry.learn_class_settings({"GetRatings": {"breaker_volume_threshold": 3}})

    assert breaker.settings.volume_threshold == 3


# -- reconfiguring -----------------------------------------------------------------------


def test_reconfigure_applies_to_existing_breakers(make_registry, tmp_path):
    registry = make_registry()
    breaker = registry.get("GetRatings").breaker

    registry.reconfigure(parse({"commands": {"GetRatings": {"breaker_force": "open"}}}, Path(tmp_path)))

    assert breaker.settings.force == "open"
    assert breaker.admit(1001.0) is Admission.SHORT_CIRCUIT


def test_reconfigure_keeps_learned_class_settings(make_registry, tmp_path):
    registry = make_registry()
    breaker = registry.get("GetRatings").breaker
    registry.learn_class_settings({"GetRatings": {"breaker_sleep_s": 2}})

    registry.reconfigure(parse({"defaults": {"breaker_error_pct": 30}}, Path(tmp_path)))

    assert (breaker.settings.sleep_s, breaker.settings.error_pct) == (2.0, 30.0)


# -- which keys are kept -----------------------------------------------------------------


def test_idle_closed_command_is_dropped(make_registry, clock):
    registry = make_registry()
    registry.get("GetRatings")

    clock.advance(IDLE_COMMAND_S + 1)

    assert registry.drop_idle() == ["GetRatings"]
    assert registry.items() == []


def test_recently_used_command_is_not_dropped(make_registry, clock):
    registry = make_registry()
    registry.get("GetRatings")

    clock.advance(IDLE_COMMAND_S - 1)

    assert registry.drop_idle() == []


def test_idle_command_with_an_open_breaker_is_never_dropped(make_registry, clock):
    registry = make_registry()
    open_the_breaker(registry, "GetRatings")
    registry.get("GetReviews")

    clock.advance(2 * IDLE_COMMAND_S)

    assert registry.drop_idle() == ["GetReviews"]
    assert [key for key, _ in registry.items()] == ["GetRatings"]


def test_an_open_breaker_and_a_running_command_outlast_a_flood_of_new_keys(make_registry, monkeypatch):
    """Forgetting the record of an open breaker would close it; of a running call, orphan it."""
    monkeypatch.setattr(commands, "MAX_COMMAND_KEYS", 5)
    registry = make_registry()
    open_the_breaker(registry, "GetRatings")
    registry.get("GetUser").started()

    for number in range(100):
        registry.get(f"MadeUp{number}")

    assert registry.get("GetRatings").breaker.state is BreakerState.OPEN
    assert registry.get("GetUser").running == 1
    assert len(registry.items()) == 5


def test_breaker_transitions_reach_the_registry_callback(make_registry):
    transitions: list = []
    registry = make_registry(transitions=transitions)

    open_the_breaker(registry, "GetRatings")

    assert [(breaker.key, old, new) for breaker, old, new, _ in transitions] == [
        ("GetRatings", BreakerState.CLOSED, BreakerState.OPEN)]


# -- what a record counts ----------------------------------------------------------------


def test_record_status_shows_counts_health_and_latency(make_registry):
    registry = make_registry()
    record = registry.get("GetRatings")

    for _ in range(3):
        record.record(Event.SUCCESS, 100.0, False)
    record.record(Event.FAILURE, 100.0, False)

    status = record.status()
    assert status["breaker"] == "CLOSED"
    assert (status["volume"], status["error_pct"]) == (4, 25.0)
    assert status["events"] == {"FAILURE": 1, "SUCCESS": 3}
    assert status["p50_ms"] == pytest.approx(100.0, rel=0.05)


def test_short_circuits_are_counted_but_leave_latency_alone(make_registry):
    registry = make_registry()
    record = registry.get("GetRatings")
    record.record(Event.SUCCESS, 100.0, False)

    for _ in range(10):
        record.record(Event.SHORT_CIRCUITED, 0.0, False)

    status = record.status()
    assert status["events"] == {"SHORT_CIRCUITED": 10, "SUCCESS": 1}
    assert status["p50_ms"] == pytest.approx(100.0, rel=0.05)
    assert status["volume"] == 1


def test_reconfigured_window_applies_to_the_event_counts_too(make_registry, clock, tmp_path):
    registry = make_registry()
    record = registry.get("GetRatings")
    registry.reconfigure(parse({"defaults": {"window_s": 30}}, Path(tmp_path)))
    record.record(Event.FAILURE, 5.0, False)

    clock.advance(15.0)  # inside the new 30 s window, past the old 10 s one

    status = record.status()
    assert status["volume"] == 1
    assert status["events"] == {"FAILURE": 1}


def test_a_front_cannot_declare_settings_for_a_pool_command(make_registry):
    """A DECLARE (fronts, for semaphore commands) naming a pool command's key set its
    breaker: breaker_force = open from any front opened it for every front."""
    registry = make_registry()
    registry.learn_class_settings({"GetRatings": {"breaker_volume_threshold": 5}}, pool="ratings")

    with capture_logs() as logs:
        registry.learn_front_declared({"GetRatings": {"breaker_force": "open"}, "InMemory": {"timeout_s": 0.2}})

    assert registry.class_settings["GetRatings"] == {"breaker_volume_threshold": 5}
    assert registry.class_settings["InMemory"] == {"timeout_s": 0.2}
    assert [(entry["event"], entry["commands"]) for entry in logs] == [("class_settings_refused", ["GetRatings"])]


def test_front_declared_keys_are_bounded_apart_from_the_workers(make_registry, monkeypatch):
    monkeypatch.setattr(commands, "MAX_FRONT_DECLARED_KEYS", 3)
    monkeypatch.setattr(commands, "MAX_COMMAND_KEYS", 4)
    registry = make_registry()
    registry.learn_front_declared({f"Made{index}": {"timeout_s": 0.5} for index in range(10)})
    assert sorted(registry.class_settings) == ["Made0", "Made1", "Made2"]

    registry.learn_class_settings({f"Pool{index}": {"timeout_s": 0.5} for index in range(4)}, pool="p")
    assert sorted(key for key in registry.class_settings if key.startswith("Pool")) == [f"Pool{i}" for i in range(4)]


def test_bad_class_settings_of_one_declaration_log_a_few_lines_and_a_count(make_registry):
    registry = make_registry()

    with capture_logs() as logs:
        registry.learn_front_declared({f"C{index}": {f"made_up_{n}": 1 for n in range(10)} for index in range(10)})

    assert [entry["event"] for entry in logs] == ["bad_class_setting_ignored"] * commands.MAX_BAD_SETTING_LINES
    assert logs[-1]["more_not_logged"] == 100 - commands.MAX_BAD_SETTING_LINES
