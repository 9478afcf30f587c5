"""The shape of a broker's metrics snapshot, checked field by field where it is received.

A broker publishes one snapshot every half second on its events socket; fronts aggregate
them into the dashboard, ``/hystrix.stream`` and ``/metrics``. A front may listen to
brokers on other hosts, so a snapshot is foreign input: every field is checked here, and
anything out of shape is a :class:`ValueError` that names the field.

Brokers and fronts of two versions meet in a rolling upgrade, so a front takes what it
knows from a snapshot of either: a field or event name it does not know is ignored (and
listed under :data:`IGNORED`, for the front to log), a known event that is missing counts
0, a missing field is still an error. Every map stays bounded, known names or not.
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
#: Most fields in one map of the snapshot (a command, a pool, its settings, ...), known or not.
MAX_FIELDS = 100
#: Most event names in one command's ``events`` (seawall knows 14; a newer broker may send more).
MAX_EVENT_NAMES = 100
#: Longest event name.
MAX_EVENT_NAME_CHARS = 64
#: Most names listed under :data:`IGNORED`, and the longest.
MAX_IGNORED_NAMES = 20
MAX_IGNORED_NAME_CHARS = 100
#: Key of the checked snapshot that lists the names it ignored (``metrics.pools.*.NAME``),
#: sorted; there only when something was ignored. Added by the check, never sent.
IGNORED = "ignored"
BREAKER_STATES = ("CLOSED", "OPEN", "HALF_OPEN")
ISOLATIONS = ("THREAD", "SEMAPHORE")
FORCES = ("auto", "open", "closed")

_EVENT_NAMES = tuple(event.value for event in Event)


class Where:
    """The map a check is in: its path, for errors (``metrics.pools.ratings``), and its
    shape, for the snapshot's ignored names (``metrics.pools.*``: a field a newer broker
    adds to every pool is listed once)."""

    __slots__ = ("path", "shape", "ignored")

    def __init__(self, path: str, shape: str, ignored: set[str]) -> None:
        self.path = path
        self.shape = shape
        self.ignored = ignored

    def field(self, name: str) -> Where:
        return Where(f"{self.path}.{name}", f"{self.shape}.{name}", self.ignored)

    def entry(self, key: str) -> Where:
        return Where(f"{self.path}.{key}", f"{self.shape}.*", self.ignored)

    def ignore(self, name: Any) -> None:
        if len(self.ignored) < MAX_IGNORED_NAMES:
            self.ignored.add(f"{self.shape}.{name}"[:MAX_IGNORED_NAME_CHARS])


#: Checks field ``name`` of the map at ``where`` (the path is built only for an error:
#: a snapshot of 1,000 commands has some 100,000 fields).
Check = Callable[[Any, Where, str], Any]


def _count(value: Any, where: Where, name: str) -> int:
    if type(value) is not int or not 0 <= value < 2**63:
        raise ValueError(f"{where.path}.{name} must be a non-negative integer, got {value!r:.50}")
    return value


def _number(value: Any, where: Where, name: str) -> float:
    if type(value) not in (int, float) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{where.path}.{name} must be a non-negative number, got {value!r:.50}")
    return float(value)


def _name(value: Any, where: Where, name: str) -> str:
    if type(value) is not str or len(value) > MAX_KEY_CHARS:
        raise ValueError(f"{where.path}.{name} must be a string of at most {MAX_KEY_CHARS} characters, "
                         f"got {value!r:.50}")
    return value


def _choice(*choices: str) -> Check:
    def check(value: Any, where: Where, name: str) -> str:
        if value not in choices:
            raise ValueError(f"{where.path}.{name} must be one of {', '.join(choices)}, got {value!r:.50}")
        return value
    return check


def _map(fields: dict[str, Check]) -> Check:
    return lambda value, where, name: _record(value, where.field(name), fields)


def _percentiles(keys: tuple[str, ...]) -> Check:
    return _map({"mean": _number, **{key: _number for key in keys}})


def _events(value: Any, where: Where, name: str) -> dict[str, int]:
    """Every event this front knows, 0 if missing (an older broker's). Other names (a newer
    broker's) are checked as counts, then ignored: the front shows only events it knows,
    which also keeps the label values of ``/metrics`` to a known set."""
    where = where.field(name)
    if not isinstance(value, dict) or len(value) > MAX_EVENT_NAMES:
        raise ValueError(f"{where.path} must be a map of at most {MAX_EVENT_NAMES} events")
    if len(value) != len(_EVENT_NAMES) or any(event not in value for event in _EVENT_NAMES):
        for event, count in value.items():
            if type(event) is not str or len(event) > MAX_EVENT_NAME_CHARS:
                raise ValueError(f"{where.path}: event names must be strings of at most {MAX_EVENT_NAME_CHARS} "
                                 f"characters, got {event!r:.50}")
            if event not in _EVENT_NAMES:
                _count(count, where, event)
                where.ignore(event)
    return {event: _count(value.get(event, 0), where, event) for event in _EVENT_NAMES}


def _record(value: Any, where: Where, fields: dict[str, Check]) -> dict[str, Any]:
    """``fields``, each checked: a missing one is an error, one not in ``fields`` (a newer
    broker's) is ignored."""
    if not isinstance(value, dict) or len(value) > MAX_FIELDS:
        raise ValueError(f"{where.path} must be a map of at most {MAX_FIELDS} fields, got {type(value).__name__}")
    if value.keys() != fields.keys():
        missing = sorted(fields.keys() - value.keys())
        if missing:
            raise ValueError(f"{where.path}: missing fields {missing}")
        for name in value.keys() - fields.keys():
            where.ignore(name)
    return {name: check(value[name], where, name) for name, check in fields.items()}


def _entries(fields: dict[str, Check]) -> Check:
    def check(value: Any, where: Where, name: str) -> dict[str, Any]:
        where = where.field(name)
        if not isinstance(value, dict) or len(value) > MAX_ENTRIES:
            raise ValueError(f"{where.path} must be a map of at most {MAX_ENTRIES} entries")
        return {_name(key, where, "<key>"): _record(entry, where.entry(key), fields) for key, entry in value.items()}
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
    "settings": _map(SETTINGS_FIELDS),
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
    "broker": _map(BROKER_FIELDS),
    "time_ms": _count,
    "commands": _entries(COMMAND_FIELDS),
    "pools": _entries(POOL_FIELDS),
    "collapsers": _entries(COLLAPSER_FIELDS),
}


def check_snapshot(snapshot: Any) -> dict[str, Any]:
    """The snapshot's fields, each checked, and :data:`IGNORED` if it had others; a
    ValueError names the first bad field."""
    ignored: set[str] = set()
    checked = _record(snapshot, Where("metrics", "metrics", ignored), SNAPSHOT_FIELDS)
    if ignored:
        checked[IGNORED] = sorted(ignored)
    return checked
