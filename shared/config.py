"""Configuration: the one TOML file every process reads, validated key by key.

Settings resolve per command: ``[commands.KEY]``, then the command class's attribute,
then ``[defaults]``, then the built-in default (Hystrix's, which operators know).
Unknown keys and bad values raise :class:`ConfigError` naming the key, e.g.
``defaults.timeout_s: expected a number > 0, got 'fast'``.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

#: Environment variable naming the config file when ``--config`` is not given.
CONFIG_ENV = "SEAWALL_CONFIG"
#: Placeholder in endpoints that stands for the run directory.
RUN_PLACEHOLDER = "RUN"


class ConfigError(ValueError):
    """A bad configuration; ``.key`` is the dotted key at fault (or '' for the file)."""

    def __init__(self, key: str, problem: str, source: str | None = None) -> None:
        self.key = key
        self.problem = problem
        where = f"{source}: " if source else ""
        super().__init__(f"{where}{key}: {problem}" if key else f"{where}{problem}")


# -- value checkers: each returns the value or raises ValueError with what it expected --

Checker = Callable[[Any], Any]


def _number(value: Any, low: float, strict: bool, high: float = math.inf) -> float:
    expected = f"expected a number {'>' if strict else '>='} {low:g}" + (f" and <= {high:g}" if high < math.inf else "")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{expected}, got {value!r}")
    if value < low or (strict and value == low) or value > high:
        raise ValueError(f"{expected}, got {value!r}")
    return float(value)


#: The longest timeout the wire can carry (protocol.MAX_TIMEOUT_MS), in seconds.
MAX_TIMEOUT_S = 3600.0


def timeout(value: Any) -> float:
    return _number(value, 0, strict=True, high=MAX_TIMEOUT_S)


#: The widest collapsing window and largest batch the wire carries (protocol.MAX_WINDOW_MS, MAX_BATCH).
MAX_COLLAPSE_WINDOW_MS = 10_000.0
MAX_BATCH_CALLS = 10_000


def collapse_window(value: Any) -> float:
    return _number(value, 0, strict=False, high=MAX_COLLAPSE_WINDOW_MS)


def max_batch(value: Any) -> int:
    count = _integer(value, 1)
    if count > MAX_BATCH_CALLS:
        raise ValueError(f"expected an integer >= 1 and <= {MAX_BATCH_CALLS}, got {value!r}")
    return count


def non_negative_float(value: Any) -> float:
    return _number(value, 0, strict=False)


def _integer(value: Any, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
        raise ValueError(f"expected an integer >= {low}" + (f" and <= {high}" if high is not None else "")
                         + f", got {value!r}")
    return value


def number_between(low: float, high: float, strict: bool = False) -> Checker:
    """A number in [low, high] (``strict``: above ``low``): a setting the broker turns into
    work or into a field of a message has an upper bound, so no value can stall or break it."""
    return lambda value: _number(value, low, strict, high)


def integer_between(low: int, high: int) -> Checker:
    return lambda value: _integer(value, low, high)


def non_negative_int(value: Any) -> int:
    return _integer(value, 0)


def positive_int(value: Any) -> int:
    return _integer(value, 1)


def percent(value: Any) -> float:
    number = _number(value, 0, strict=False)
    if number > 100:
        raise ValueError(f"expected a percentage in [0, 100], got {value!r}")
    return number


def fraction(value: Any) -> float:
    number = _number(value, 0, strict=False)
    if number > 1:
        raise ValueError(f"expected a fraction in [0, 1], got {value!r}")
    return number


def one_of(*choices: str) -> Checker:
    def check(value: Any) -> str:
        if value not in choices:
            raise ValueError(f"expected one of {', '.join(repr(c) for c in choices)}, got {value!r}")
        return value

    return check


def text(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"expected a non-empty string, got {value!r}")
    return value


def endpoint(value: Any) -> str:
    value = text(value)
    if not value.startswith(("ipc://", "tcp://", "inproc://")):
        raise ValueError(f"expected a ZeroMQ endpoint (ipc://, tcp://), got {value!r}")
    return value


#: Most brokers one front aggregates metrics from (``[front] metrics_sources``).
MAX_METRICS_SOURCES = 64


def endpoint_list(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_METRICS_SOURCES:
        raise ValueError(f"expected a list of 1 to {MAX_METRICS_SOURCES} ZeroMQ endpoints, got {value!r:.100}")
    checked = []
    for index, item in enumerate(value):
        try:
            checked.append(endpoint(item))
        except ValueError as exc:
            raise ValueError(f"item {index}: {exc}") from None
    if len(set(checked)) != len(checked):
        raise ValueError(f"expected distinct endpoints, got {value!r:.100}")
    return tuple(checked)


@dataclass(frozen=True)
class Setting:
    check: Checker
    default: Any
    doc: str


#: Most buckets of a rolling window: each command holds a few rings of them.
MAX_WINDOW_BUCKETS = 1000
#: Most calls a pool's queue holds.
MAX_QUEUE_SIZE = 100_000

#: Per-command settings: valid in ``[defaults]``, ``[commands.KEY]`` and as class attributes.
COMMAND_SETTINGS: dict[str, Setting] = {
    "timeout_s": Setting(timeout, 1.0, "caller deadline"),
    "breaker_volume_threshold": Setting(non_negative_int, 20, "calls in the window before the breaker may open"),
    "breaker_error_pct": Setting(percent, 50.0, "error % at which the breaker opens"),
    "breaker_sleep_s": Setting(number_between(0, MAX_TIMEOUT_S, strict=True), 5.0,
                               "open for this long, then one trial call"),
    "breaker_force": Setting(one_of("auto", "open", "closed"), "auto", "force the breaker"),
    "breaker_slow_call_ms": Setting(non_negative_float, 0.0, "calls slower than this count as slow; 0 = off"),
    "breaker_slow_call_pct": Setting(percent, 100.0, "slow-call % at which the breaker opens"),
    "window_s": Setting(number_between(0.1, MAX_TIMEOUT_S), 10.0, "rolling counters: window"),
    "window_buckets": Setting(integer_between(1, MAX_WINDOW_BUCKETS), 10, "rolling counters: buckets"),
    "semaphore_max": Setting(positive_int, 10, "semaphore-isolated calls in flight"),
    "fallback_max": Setting(positive_int, 10, "fallbacks in flight per command"),
    "collapse_window_ms": Setting(collapse_window, 10.0, "collapsing window"),
    "collapse_max_batch": Setting(max_batch, 100, "largest batch"),
}

#: Per-pool settings, in ``[pools.NAME]``.
POOL_SETTINGS: dict[str, Setting] = {
    "queue_size": Setting(integer_between(0, MAX_QUEUE_SIZE), 5, "waiting calls beyond busy slots; 0 = none"),
    "max_calls": Setting(non_negative_int, 0, "recycle a worker after this many calls; 0 = never"),
    "max_rss_mb": Setting(non_negative_float, 0.0, "recycle a worker over this memory; 0 = never"),
    "hung_call_grace_s": Setting(number_between(0, MAX_TIMEOUT_S, strict=True), 1.0,
                                 "a call still running this long after its deadline ends its worker process"),
}

#: Broker timing, in ``[broker]``.
BROKER_SETTINGS: dict[str, Setting] = {
    "heartbeat_s": Setting(number_between(0.01, 60), 1.0, "heartbeat interval; a peer silent for 3 is gone"),
}

ENDPOINT_SETTINGS: dict[str, Setting] = {
    "front": Setting(endpoint, "ipc://RUN/front", "callers -> broker"),
    "back": Setting(endpoint, "ipc://RUN/back", "workers -> broker"),
    "events": Setting(endpoint, "ipc://RUN/events", "broker PUB: breaker state, metrics"),
    "control": Setting(endpoint, "ipc://RUN/control", "seawall CLI -> broker"),
}

SUPERVISOR_SETTINGS: dict[str, Setting] = {
    "serverurl": Setting(text, "unix://RUN/supervisor.sock", "supervisord's XML-RPC (seawall scale)"),
}


def token(value: Any) -> str:
    value = text(value)
    if len(value) < 16 or not value.isprintable() or " " in value:
        raise ValueError("expected a token of at least 16 printable characters without spaces")
    return value


FRONT_SETTINGS: dict[str, Setting] = {
    "listen": Setting(text, "127.0.0.1:8080", "HTTP front address"),
    "endpoints": Setting(text, "endpoints", "directory of endpoint modules"),
    "metrics_sources": Setting(endpoint_list, (), "events endpoints of the brokers whose metrics this front "
                                                  "aggregates; none = this config's endpoints.events"),
    "access_token": Setting(token, None, "if set, /hystrix.stream, /metrics and the dashboard's data "
                                         "answer only requests that carry it"),
    "request_timeout_s": Setting(number_between(0.01, 600.0), 10.0,
                                 "longest an endpoint may take to answer: past it, 504 (the streams "
                                 "and /metrics are not endpoints)"),
}


def key_name(value: Any) -> str:
    """A key pair's name: also its file name, so no paths."""
    value = text(value)
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}", value):
        raise ValueError(f"expected a key name of letters, digits, '_', '.', '-', got {value!r:.100}")
    return value


#: CURVE keys, in ``[security]``: required by every ``tcp://`` endpoint.
SECURITY_SETTINGS: dict[str, Setting] = {
    "keys_dir": Setting(text, "keys", "key pairs (NAME.key, NAME.key_secret) and peers' public keys"),
    "allowed_keys_dir": Setting(text, "keys/allowed", "the broker admits only the public keys in here"),
    "broker_key": Setting(key_name, "broker", "the broker's key: its pair on its host, its public half elsewhere"),
    "front_key": Setting(key_name, "front", "the key pair of fronts and other callers"),
    "worker_key": Setting(key_name, "worker", "the key pair of workers"),
    "cli_key": Setting(key_name, "cli", "the key pair of the seawall CLI"),
}
_SECURITY_DIRS = ("keys_dir", "allowed_keys_dir")

#: Another broker a front may send calls to, in ``[brokers.NAME]`` (one per host).
BROKER_LINK_SETTINGS: dict[str, Setting] = {
    "front": Setting(endpoint, None, "its front endpoint (callers -> broker)"),
    "events": Setting(endpoint, None, "its events endpoint (breakers, metrics)"),
    "key": Setting(key_name, None, "its public key's name in keys_dir (default: security.broker_key)"),
}
#: Most brokers one front may use.
MAX_BROKERS = 16

#: What the logs hold, in ``[logging]``.
LOGGING_SETTINGS: dict[str, Setting] = {
    "success_sample_rate": Setting(fraction, 0.01, "share of plain successes logged (faults are always logged)"),
}


def _check_table(table: Any, specs: Mapping[str, Setting], path: str) -> dict[str, Any]:
    if not isinstance(table, dict):
        raise ConfigError(path, f"expected a table, got {table!r}")
    checked: dict[str, Any] = {}
    for name, value in table.items():
        key = f"{path}.{name}"
        if name not in specs:
            raise ConfigError(key, f"unknown key (known: {', '.join(sorted(specs))})")
        try:
            checked[name] = specs[name].check(value)
        except ValueError as exc:
            raise ConfigError(key, str(exc)) from None
    return checked


def _check_named_tables(table: Any, specs: Mapping[str, Setting], path: str) -> dict[str, dict[str, Any]]:
    if not isinstance(table, dict):
        raise ConfigError(path, f"expected a table, got {table!r}")
    return {name: _check_table(sub, specs, f"{path}.{name}") for name, sub in table.items()}


@dataclass(frozen=True)
class Config:
    """A validated configuration. Immutable: a change makes a new one."""

    run_dir: Path
    endpoints: dict[str, str]
    defaults: dict[str, Any] = field(default_factory=dict)
    commands: dict[str, dict[str, Any]] = field(default_factory=dict)
    pools: dict[str, dict[str, Any]] = field(default_factory=dict)
    broker: dict[str, Any] = field(default_factory=dict)
    front: dict[str, Any] = field(default_factory=dict)
    supervisor: dict[str, Any] = field(default_factory=dict)
    logging: dict[str, Any] = field(default_factory=dict)
    security: dict[str, Any] = field(default_factory=dict)
    #: other brokers a front may use, name -> {"front", "events", "key"?}
    brokers: dict[str, dict[str, Any]] = field(default_factory=dict)
    source: str | None = None

    def command_setting(self, command_key: str, name: str, class_value: Any = None) -> Any:
        """A per-command setting: command section, class attribute, [defaults], built-in."""
        section = self.commands.get(command_key)
        if section is not None and name in section:
            return section[name]
        if class_value is not None:
            return class_value
        if name in self.defaults:
            return self.defaults[name]
        return COMMAND_SETTINGS[name].default

    def pool_setting(self, pool: str, name: str) -> Any:
        section = self.pools.get(pool)
        if section is not None and name in section:
            return section[name]
        return POOL_SETTINGS[name].default

    def broker_setting(self, name: str) -> Any:
        return self.broker.get(name, BROKER_SETTINGS[name].default)

    def front_setting(self, name: str) -> Any:
        return self.front.get(name, FRONT_SETTINGS[name].default)

    def security_setting(self, name: str) -> Any:
        """A ``[security]`` setting; directories come resolved against the config file's."""
        return self.security.get(name, SECURITY_SETTINGS[name].default)

    def logging_setting(self, name: str) -> Any:
        return self.logging.get(name, LOGGING_SETTINGS[name].default)

    def supervisor_serverurl(self) -> str:
        url = self.supervisor.get("serverurl", SUPERVISOR_SETTINGS["serverurl"].default)
        return url.replace(f"://{RUN_PLACEHOLDER}/", f"://{self.run_dir}/", 1)


_TOP_LEVEL = ("run_dir", "endpoints", "defaults", "commands", "pools", "broker", "front", "supervisor", "logging",
              "security", "brokers")


def parse(document: Mapping[str, Any], base_dir: Path, source: str | None = None) -> Config:
    """Validate a parsed TOML document; relative paths are relative to ``base_dir``."""
    try:
        for name in document:
            if name not in _TOP_LEVEL:
                raise ConfigError(name, f"unknown key (known: {', '.join(_TOP_LEVEL)})")
        run_dir_value = document.get("run_dir", "run")
        try:
            run_dir = (base_dir / text(run_dir_value)).resolve()
        except ValueError as exc:
            raise ConfigError("run_dir", str(exc)) from None
        endpoint_values = _check_table(document.get("endpoints", {}), ENDPOINT_SETTINGS, "endpoints")
        endpoints = {
            name: endpoint_values.get(name, spec.default).replace(f"://{RUN_PLACEHOLDER}/", f"://{run_dir}/", 1)
            for name, spec in ENDPOINT_SETTINGS.items()
        }
        return Config(
            run_dir=run_dir,
            endpoints=endpoints,
            defaults=_check_table(document.get("defaults", {}), COMMAND_SETTINGS, "defaults"),
            commands=_check_named_tables(document.get("commands", {}), COMMAND_SETTINGS, "commands"),
            pools=_check_named_tables(document.get("pools", {}), POOL_SETTINGS, "pools"),
            broker=_check_table(document.get("broker", {}), BROKER_SETTINGS, "broker"),
            front=_check_table(document.get("front", {}), FRONT_SETTINGS, "front"),
            supervisor=_check_table(document.get("supervisor", {}), SUPERVISOR_SETTINGS, "supervisor"),
            logging=_check_table(document.get("logging", {}), LOGGING_SETTINGS, "logging"),
            security=_security(document.get("security", {}), base_dir),
            brokers=_broker_links(document.get("brokers", {})),
            source=source,
        )
    except ConfigError as exc:
        if source is None or exc.args[0].startswith(source):
            raise
        raise ConfigError(exc.key, exc.problem, source) from None


def _security(table: Any, base_dir: Path) -> dict[str, Any]:
    checked = _check_table(table, SECURITY_SETTINGS, "security")
    for name in _SECURITY_DIRS:
        checked[name] = str((base_dir / checked.get(name, SECURITY_SETTINGS[name].default)).resolve())
    return checked


def _broker_links(table: Any) -> dict[str, dict[str, Any]]:
    links = _check_named_tables(table, BROKER_LINK_SETTINGS, "brokers")
    if len(links) > MAX_BROKERS:
        raise ConfigError("brokers", f"at most {MAX_BROKERS} brokers, got {len(links)}")
    for name, link in links.items():
        for required in ("front", "events"):
            if required not in link:
                raise ConfigError(f"brokers.{name}.{required}", "required: the endpoint of that broker's socket")
    return links


def load(path: str | os.PathLike[str] | None = None) -> Config:
    """Read and validate the config file at ``path`` (or ``$SEAWALL_CONFIG``)."""
    if path is None:
        path = os.environ.get(CONFIG_ENV)
        if not path:
            raise ConfigError("", f"no config file: pass --config PATH or set {CONFIG_ENV}")
    file_path = Path(path)
    try:
        with file_path.open("rb") as stream:
            document = tomllib.load(stream)
    except FileNotFoundError:
        raise ConfigError("", f"config file {file_path} does not exist") from None
    except OSError as exc:
        raise ConfigError("", f"cannot read config file {file_path}: {exc.strerror or exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError("", f"not valid TOML: {exc}", str(file_path)) from None
    return parse(document, file_path.resolve().parent, str(file_path))


def run_dir_despite_errors(path: str | os.PathLike[str]) -> Path:
    """The run directory a config file names, read even when the file does not validate
    (its ``run_dir`` if that is text, else ``run``, beside the file): where its processes'
    logs are, and so where to read why they did not start."""
    file_path = Path(path)
    try:
        with file_path.open("rb") as stream:
            run_dir = tomllib.load(stream).get("run_dir", "run")
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
        run_dir = "run"
    return (file_path.resolve().parent / (run_dir if isinstance(run_dir, str) else "run")).resolve()


def ensure_run_dir(config: Config) -> None:
    """Create the directory that holds ``ipc://`` endpoints."""
    for address in config.endpoints.values():
        if address.startswith("ipc://"):
            Path(address[len("ipc://"):]).parent.mkdir(parents=True, exist_ok=True)


#: Sections whose settings can change while running (``seawall config set``).
RUNTIME_SECTIONS = {"defaults": COMMAND_SETTINGS, "commands": COMMAND_SETTINGS, "pools": POOL_SETTINGS}
#: Most runtime overrides held at once (their keys name commands, which callers choose).
#: Every snapshot to fronts carries them all: 1,000 keys of at most MAX_OVERRIDE_KEY_CHARS
#: stay under a third of one message.
MAX_OVERRIDES = 1_000
#: Longest runtime setting key: a 200-character command key (the protocol's limit) and
#: its section and setting around it.
MAX_OVERRIDE_KEY_CHARS = 260


def check_override(dotted_key: str, value: Any) -> tuple[str, Any]:
    """Validate a runtime setting (``commands.GetRatings.timeout_s``); (key, checked value)."""
    if len(dotted_key) > MAX_OVERRIDE_KEY_CHARS:
        raise ConfigError(dotted_key[:60] + "...", f"a runtime setting key is at most {MAX_OVERRIDE_KEY_CHARS} "
                                                   f"characters, got {len(dotted_key)}")
    parts = dotted_key.split(".")
    section = parts[0]
    specs = RUNTIME_SECTIONS.get(section)
    named = section != "defaults"
    if specs is None or len(parts) < (3 if named else 2) or (not named and len(parts) != 2) or not all(parts):
        raise ConfigError(dotted_key, "not a runtime setting: use defaults.SETTING, "
                                      "commands.KEY.SETTING or pools.NAME.SETTING")
    setting = parts[-1]
    if setting not in specs:
        raise ConfigError(dotted_key, f"unknown setting {setting!r} (known: {', '.join(sorted(specs))})")
    try:
        return dotted_key, specs[setting].check(value)
    except ValueError as exc:
        raise ConfigError(dotted_key, str(exc)) from None


def with_overrides(config: Config, overrides: Mapping[str, Any]) -> Config:
    """``config`` with runtime settings applied over the file's (each already checked)."""
    sections: dict[str, Any] = {
        "defaults": dict(config.defaults),
        "commands": {name: dict(table) for name, table in config.commands.items()},
        "pools": {name: dict(table) for name, table in config.pools.items()},
    }
    for dotted_key, value in overrides.items():
        section, *middle, setting = dotted_key.split(".")
        if section == "defaults":
            sections["defaults"][setting] = value
        else:
            sections[section].setdefault(".".join(middle), {})[setting] = value
    return dataclasses.replace(config, **sections)


def parse_cli_value(text_value: str) -> Any:
    """A value typed on the command line, read as TOML (``0.3``, ``true``, ``"open"``) or as a string."""
    try:
        return tomllib.loads(f"value = {text_value}")["value"]
    except tomllib.TOMLDecodeError:
        return text_value
