"""Configuration: parsing, per-key validation with dotted names, resolution order, load()."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared import config
from shared.config import ConfigError, parse

FULL_DOCUMENT = """
run_dir = "state"

[endpoints]
front = "ipc://RUN/front.sock"
back = "tcp://127.0.0.1:5556"

[defaults]
timeout_s = 2.5
breaker_error_pct = 40

[commands.GetRatings]
timeout_s = 0.3
breaker_force = "open"

[pools.ratings]
queue_size = 0
max_calls = 1000

[broker]
heartbeat_s = 0.5

[front]
listen = "0.0.0.0:9000"
"""


def write_config(tmp_path: Path, text: str, name: str = "seawall.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def config_error(document: dict) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        parse(document, Path("/srv/app"))
    return caught.value


# -- a valid document ----------------------------------------------------------------


def test_full_document_parses_every_section(tmp_path):
    loaded = config.load(write_config(tmp_path, FULL_DOCUMENT))

    assert loaded.run_dir == tmp_path / "state"
    assert loaded.defaults == {"timeout_s": 2.5, "breaker_error_pct": 40.0}
    assert loaded.commands == {"GetRatings": {"timeout_s": 0.3, "breaker_force": "open"}}
    assert loaded.pools == {"ratings": {"queue_size": 0, "max_calls": 1000}}
    assert loaded.broker == {"heartbeat_s": 0.5}
    assert loaded.front == {"listen": "0.0.0.0:9000"}
    assert loaded.source == str(tmp_path / "seawall.toml")


def test_run_placeholder_is_replaced_with_the_run_dir(tmp_path):
    loaded = config.load(write_config(tmp_path, FULL_DOCUMENT))

    assert loaded.endpoints["front"] == f"ipc://{tmp_path}/state/front.sock"


def test_endpoint_without_the_placeholder_is_kept_as_written(tmp_path):
    loaded = config.load(write_config(tmp_path, FULL_DOCUMENT))

    assert loaded.endpoints["back"] == "tcp://127.0.0.1:5556"


def test_empty_document_gets_default_endpoints_in_a_run_dir_beside_the_file():
    loaded = parse({}, Path("/srv/app"))

    assert loaded.run_dir == Path("/srv/app/run")
    assert loaded.endpoints == {
        "front": "ipc:///srv/app/run/front",
        "back": "ipc:///srv/app/run/back",
        "events": "ipc:///srv/app/run/events",
        "control": "ipc:///srv/app/run/control",
    }


def test_pool_setting_falls_back_to_the_built_in_default():
    loaded = parse({"pools": {"ratings": {"max_calls": 10}}}, Path("/srv/app"))

    assert (loaded.pool_setting("ratings", "max_calls"), loaded.pool_setting("ratings", "queue_size")) == (10, 5)


def test_broker_setting_falls_back_to_the_built_in_default():
    assert parse({}, Path("/srv/app")).broker_setting("heartbeat_s") == 1.0


# -- unknown keys name the dotted key ------------------------------------------------


def test_unknown_top_level_key_is_named():
    error = config_error({"broker_list": {}})

    assert error.key == "broker_list"
    assert str(error).startswith("broker_list: unknown key (known: run_dir, endpoints, defaults")


def test_unknown_key_in_defaults_names_the_key():
    error = config_error({"defaults": {"timeout_sx": 1}})

    assert error.key == "defaults.timeout_sx"
    assert str(error).startswith("defaults.timeout_sx: unknown key (known: breaker_error_pct,")


def test_unknown_key_in_a_command_section_names_the_key():
    error = config_error({"commands": {"GetRatings": {"timeout": 1}}})

    assert error.key == "commands.GetRatings.timeout"


def test_unknown_key_in_a_pool_section_names_the_key():
    error = config_error({"pools": {"ratings": {"queue": 3}}})

    assert str(error) == "pools.ratings.queue: unknown key (known: hung_call_grace_s, max_calls, max_rss_mb, queue_size)"


def test_section_that_is_not_a_table_is_named():
    error = config_error({"commands": {"GetRatings": 5}})

    assert str(error) == "commands.GetRatings: expected a table, got 5"


def test_error_from_a_file_names_the_file(tmp_path):
    path = write_config(tmp_path, "[defaults]\ntimeout_sx = 1\n")

    with pytest.raises(ConfigError) as caught:
        config.load(path)

    assert str(caught.value).startswith(f"{path}: defaults.timeout_sx: unknown key")


# -- bad values name the key and what was expected -----------------------------------


def test_negative_timeout_is_rejected():
    error = config_error({"commands": {"GetRatings": {"timeout_s": -1}}})

    assert str(error) == "commands.GetRatings.timeout_s: expected a number > 0 and <= 3600, got -1"


def test_zero_timeout_is_rejected():
    error = config_error({"defaults": {"timeout_s": 0}})

    assert str(error) == "defaults.timeout_s: expected a number > 0 and <= 3600, got 0"


def test_bool_for_an_int_is_rejected():
    error = config_error({"pools": {"ratings": {"queue_size": True}}})

    assert str(error) == "pools.ratings.queue_size: expected an integer >= 0 and <= 100000, got True"


def test_negative_queue_size_is_rejected():
    error = config_error({"pools": {"ratings": {"queue_size": -1}}})

    assert str(error) == "pools.ratings.queue_size: expected an integer >= 0 and <= 100000, got -1"


def test_float_for_an_int_is_rejected():
    error = config_error({"defaults": {"window_buckets": 10.0}})

    assert str(error) == "defaults.window_buckets: expected an integer >= 1 and <= 1000, got 10.0"


def test_string_for_a_number_is_rejected():
    error = config_error({"defaults": {"timeout_s": "fast"}})

    assert str(error) == "defaults.timeout_s: expected a number > 0 and <= 3600, got 'fast'"


def test_breaker_force_outside_its_choices_is_rejected():
    error = config_error({"commands": {"GetRatings": {"breaker_force": "half"}}})

    assert str(error) == "commands.GetRatings.breaker_force: expected one of 'auto', 'open', 'closed', got 'half'"


def test_percent_over_100_is_rejected():
    error = config_error({"defaults": {"breaker_error_pct": 150}})

    assert str(error) == "defaults.breaker_error_pct: expected a percentage in [0, 100], got 150"


def test_endpoint_without_a_scheme_is_rejected():
    error = config_error({"endpoints": {"front": "localhost:5555"}})

    assert str(error) == "endpoints.front: expected a ZeroMQ endpoint (ipc://, tcp://), got 'localhost:5555'"


def test_empty_run_dir_is_rejected():
    error = config_error({"run_dir": ""})

    assert str(error) == "run_dir: expected a non-empty string, got ''"


def test_nan_timeout_is_rejected(tmp_path):
    path = write_config(tmp_path, "[defaults]\ntimeout_s = nan\n")

    with pytest.raises(ConfigError) as caught:
        config.load(path)

    assert str(caught.value) == f"{path}: defaults.timeout_s: expected a number > 0 and <= 3600, got nan"


def test_timeout_longer_than_the_wire_allows_is_rejected():
    error = config_error({"defaults": {"timeout_s": 7200}})

    assert str(error) == "defaults.timeout_s: expected a number > 0 and <= 3600, got 7200"


@pytest.mark.parametrize(("document", "message"), [
    ({"defaults": {"breaker_sleep_s": 7200}}, "defaults.breaker_sleep_s: expected a number > 0 and <= 3600, got 7200"),
    ({"commands": {"GetUser": {"window_buckets": 1_000_000}}},
     "commands.GetUser.window_buckets: expected an integer >= 1 and <= 1000, got 1000000"),
    ({"defaults": {"window_s": 0.001}}, "defaults.window_s: expected a number >= 0.1 and <= 3600, got 0.001"),
    ({"pools": {"ratings": {"queue_size": 10**9}}},
     "pools.ratings.queue_size: expected an integer >= 0 and <= 100000, got 1000000000"),
    ({"pools": {"ratings": {"hung_call_grace_s": 1e9}}},
     "pools.ratings.hung_call_grace_s: expected a number > 0 and <= 3600, got 1000000000.0"),
    ({"broker": {"heartbeat_s": 0.001}}, "broker.heartbeat_s: expected a number >= 0.01 and <= 60, got 0.001"),
], ids=["breaker sleep past the wire's longest time", "window buckets", "window", "queue", "grace", "heartbeat"])
def test_a_setting_the_broker_turns_into_work_or_a_message_field_is_bounded(document, message):
    """Past these, a breaker's retry time no front accepts, or a loop stalled rebuilding rings."""
    assert str(config_error(document)) == message


def test_timeout_of_exactly_an_hour_is_accepted():
    assert parse({"defaults": {"timeout_s": 3600}}, Path("/srv/app")).defaults == {"timeout_s": 3600.0}


def test_infinite_number_is_rejected():
    error = config_error({"defaults": {"breaker_sleep_s": float("inf")}})

    assert str(error) == "defaults.breaker_sleep_s: expected a number > 0 and <= 3600, got inf"


# -- files ---------------------------------------------------------------------------


def test_invalid_toml_raises_config_error_naming_the_file(tmp_path):
    path = write_config(tmp_path, "[defaults\ntimeout_s = 1\n")

    with pytest.raises(ConfigError) as caught:
        config.load(path)

    assert str(caught.value).startswith(f"{path}: not valid TOML:")


def test_missing_file_raises_config_error(tmp_path):
    path = tmp_path / "absent.toml"

    with pytest.raises(ConfigError) as caught:
        config.load(path)

    assert str(caught.value) == f"config file {path} does not exist"


def test_directory_instead_of_a_file_raises_config_error(tmp_path):
    with pytest.raises(ConfigError) as caught:
        config.load(tmp_path)

    assert str(caught.value) == f"cannot read config file {tmp_path}: Is a directory"


def test_file_that_is_not_utf8_raises_config_error(tmp_path):
    path = tmp_path / "seawall.toml"
    path.write_bytes(b'run_dir = "\xff"\n')

    with pytest.raises(ConfigError) as caught:
        config.load(path)

    assert str(caught.value).startswith(f"{path}: not valid TOML: 'utf-8' codec can't decode byte 0xff")


def test_load_uses_the_environment_variable_when_no_path_is_given(tmp_path, monkeypatch):
    path = write_config(tmp_path, "[defaults]\ntimeout_s = 4\n")
    monkeypatch.setenv("SEAWALL_CONFIG", str(path))

    assert config.load().defaults == {"timeout_s": 4.0}


def test_load_without_a_path_or_environment_variable_says_how_to_give_one(monkeypatch):
    monkeypatch.delenv("SEAWALL_CONFIG", raising=False)

    with pytest.raises(ConfigError) as caught:
        config.load()

    assert str(caught.value) == "no config file: pass --config PATH or set SEAWALL_CONFIG"


def test_explicit_path_wins_over_the_environment_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("SEAWALL_CONFIG", str(write_config(tmp_path, "[defaults]\ntimeout_s = 4\n", "env.toml")))
    path = write_config(tmp_path, "[defaults]\ntimeout_s = 9\n", "explicit.toml")

    assert config.load(path).defaults == {"timeout_s": 9.0}


# -- command_setting resolution order ------------------------------------------------

RESOLUTION_DOCUMENT = {
    "defaults": {"timeout_s": 3.0},
    "commands": {"GetRatings": {"timeout_s": 0.5}, "PutRating": {"breaker_force": "closed"}},
}


def test_command_section_beats_the_class_attribute():
    loaded = parse(RESOLUTION_DOCUMENT, Path("/srv/app"))

    assert loaded.command_setting("GetRatings", "timeout_s", class_value=2.0) == 0.5


def test_class_attribute_beats_defaults():
    loaded = parse(RESOLUTION_DOCUMENT, Path("/srv/app"))

    assert loaded.command_setting("PutRating", "timeout_s", class_value=2.0) == 2.0


def test_defaults_apply_without_a_command_section_or_class_attribute():
    loaded = parse(RESOLUTION_DOCUMENT, Path("/srv/app"))

    assert loaded.command_setting("PutRating", "timeout_s") == 3.0


def test_built_in_default_applies_when_nothing_sets_it():
    loaded = parse(RESOLUTION_DOCUMENT, Path("/srv/app"))

    assert loaded.command_setting("PutRating", "breaker_sleep_s") == 5.0


def test_class_attribute_of_zero_still_beats_defaults():
    loaded = parse({"defaults": {"breaker_volume_threshold": 50}}, Path("/srv/app"))

    assert loaded.command_setting("GetRatings", "breaker_volume_threshold", class_value=0) == 0


def test_another_broker_needs_its_endpoints():
    error = config_error({"brokers": {"b": {"front": "tcp://10.0.0.2:5555"}}})

    assert error.key == "brokers.b.events"


def test_a_key_name_cannot_be_a_path():
    error = config_error({"security": {"front_key": "../secret"}})

    assert error.key == "security.front_key"


def test_security_directories_are_relative_to_the_config_file():
    config = parse({"security": {"keys_dir": "k"}}, Path("/srv/app"))

    assert config.security_setting("keys_dir") == "/srv/app/k"
    assert config.security_setting("allowed_keys_dir") == "/srv/app/keys/allowed"
