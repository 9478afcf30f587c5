"""The shape of a broker's metrics snapshot, checked field by field where it is received.

A broker publishes one snapshot every half second on its events socket; fronts aggregate
them into the dashboard, ``/hystrix.stream`` and ``/metrics``. A front may listen to
brokers on other hosts, so a snapshot is foreign input: every field is checked here, and
anything out of shape is a :class:`ValueError` that names the field.
"""

from __future__ import annotations

import math
from typing import Any, Callable

from shared.events import Event

#: Latency (and batch size) percentile keys, as Hystrix names them.
PERCENTILE_KEYS = ("0", "25", "50", "75", "90", "95", "99", "99.5", "100")
#: Most commands, pools or collapsers in one snapshot (the broker sends the busiest).
MAX_ENTRIES = 1000
#: Longest key (command, pool, broker id).
MAX_KEY_CHARS = 200
BREAKER_STATES = ("CLOSED", "OPEN", "HALF_OPEN")
ISOLATIONS = ("THREAD", "SEMAPHORE")
FORCES = ("auto", "open", "closed")

Check = Callable[[Any, str], Any]


def _count(value: Any, where: str) -> int:
    if type(value) is not int or not 0 <= value < 2**63:
        raise ValueError(f"{where} must be a non-negative integer, got {value!r:.50}")
    return value


def _number(value: Any, where: str) -> float:
    if type(value) not in (int, float) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{where} must be a non-negative number, got {value!r:.50}")
    return float(value)


def _name(value: Any, where: str) -> str:
    if type(value) is not str or len(value) > MAX_KEY_CHARS:
        raise ValueError(f"{where} must be a string of at most {MAX_KEY_CHARS} characters, got {value!r:.50}")
    return value


def _choice(*choices: str) -> Check:
    def check(value: Any, where: str) -> str:
        if value not in choices:
            raise ValueError(f"{where} must be one of {', '.join(choices)}, got {value!r:.50}")
        return value
    return check


def _percentiles(keys: tuple[str, ...]) -> Check:
    fields: dict[str, Check] = {"mean": _number, **{key: _number for key in keys}}
    return lambda value, where: _record(value, where, fields)


def _events(value: Any, where: str) -> dict[str, int]:
    return _record(value, where, {event.value: _count for event in Event})


def _record(value: Any, where: str, fields: dict[str, Check]) -> dict[str, Any]:
    """Exactly ``fields``, each checked; extra or missing fields are errors."""
    if not isinstance(value, dict):
        raise ValueError(f"{where} must be a map, got {type(value).__name__}")
    if value.keys() != fields.keys():
        missing, extra = sorted(fields.keys() - value.keys()), sorted(map(str, value.keys() - fields.keys()))
        raise ValueError(f"{where}: missing fields {missing}, unknown fields {extra[:5]}")
    return {name: check(value[name], f"{where}.{name}") for name, check in fields.items()}


def _entries(fields: dict[str, Check]) -> Check:
    def check(value: Any, where: str) -> dict[str, Any]:
        if not isinstance(value, dict) or len(value) > MAX_ENTRIES:
            raise ValueError(f"{where} must be a map of at most {MAX_ENTRIES} entries")
        return {_name(key, f"{where} key"): _record(entry, f"{where}.{key}", fields) for key, entry in value.items()}
    return check


SETTINGS_FIELDS: dict[str, Check] = {
    "timeout_s": _number, "breaker_volume_threshold": _count, "breaker_error_pct": _number,
    "breaker_sleep_s": _number, "breaker_force": _choice(*FORCES), "window_s": _number,
    "window_buckets": _count, "semaphore_max": _count, "fallback_max": _count,
}

COMMAND_FIELDS: dict[str, Check] = {
    "pool": _name,
    "isolation": _choice(*ISOLATIONS),
    "breaker": _choice(*BREAKER_STATES),
    "force": _choice(*FORCES),
    "error_pct": _number,
    "error_count": _count,
    "request_count": _count,
    "events": _events,
    "events_total": _events,  # since the broker started: what Prometheus counters want
    "concurrent": _count,
    "max_concurrent": _count,
    "latency_execute": _percentiles(PERCENTILE_KEYS),
    "latency_total": _percentiles(PERCENTILE_KEYS),
    "settings": lambda value, where: _record(value, where, SETTINGS_FIELDS),
}

POOL_FIELDS: dict[str, Check] = {
    name: _count for name in ("workers", "slots", "busy", "queued", "queue_size", "largest_slots",
                              "completed_total", "submitted_total", "rolling_executed", "rolling_max_busy",
                              "rolling_rejected")
} | {"window_s": _number}

COLLAPSER_FIELDS: dict[str, Check] = {
    "rolling_batches": _count,
    "rolling_requests_batched": _count,
    "batch_size": _percentiles(PERCENTILE_KEYS[1:]),  # Hystrix's batchSize has no "0"
    "max_batch": _count,
    "window_ms": _number,
}

BROKER_FIELDS: dict[str, Check] = {"id": _name, "host": _name, "pid": _count, "uptime_s": _number}

SNAPSHOT_FIELDS: dict[str, Check] = {
    "broker": lambda value, where: _record(value, where, BROKER_FIELDS),
    "time_ms": _count,
    "commands": _entries(COMMAND_FIELDS),
    "pools": _entries(POOL_FIELDS),
    "collapsers": _entries(COLLAPSER_FIELDS),
}


def check_snapshot(snapshot: Any) -> dict[str, Any]:
    """The snapshot with every field checked; ValueError names the first bad one."""
    return _record(snapshot, "metrics", SNAPSHOT_FIELDS)
