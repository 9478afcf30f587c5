"""One line of a seawall log, parsed, and the filters ``seawall logs`` applies to it.

Every process writes one JSON object per line (``docs/logging.md``); anything else in a log
file (a crash's traceback on stderr, supervisord's notes) is kept as a raw line, never an error.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from fnmatch import fnmatchcase
from typing import Any, Callable, Iterable

#: Levels from least to most severe; ``--level warning`` keeps warning and above.
LEVEL_ORDER = {"debug": 10, "info": 20, "warning": 30, "warn": 30, "error": 40, "exception": 40,
               "critical": 50, "fatal": 50}
#: Units of a relative ``--since`` (``90s``, ``5m``, ``2h``, ``1d``).
SINCE_UNITS_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}

_RELATIVE_SINCE = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")


@dataclass
class LogRecord:
    """A line of one file: its JSON fields, or ``None`` for a line that is not a JSON object."""

    raw: str
    fields: dict[str, Any] | None
    timestamp: datetime | None
    source: str = ""

    @property
    def event(self) -> str:
        return str(self.fields.get("event", "")) if self.fields else ""

    @property
    def level(self) -> str:
        return str(self.fields.get("level", "info")).lower() if self.fields else ""


def parse_timestamp(value: Any) -> datetime | None:
    """An aware datetime from a line's ISO ``timestamp`` (``...Z`` is UTC); None if unreadable."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def parse_line(raw: str, source: str = "") -> LogRecord:
    """The record of one line (without its newline); a non-JSON line is a raw record."""
    stripped = raw.strip()
    if stripped.startswith("{"):
        try:
            fields = json.loads(stripped)
        except ValueError:
            fields = None
        if isinstance(fields, dict):
            return LogRecord(raw, fields, parse_timestamp(fields.get("timestamp")), source)
    return LogRecord(raw, None, None, source)


def parse_since(text: str, now: Callable[[], datetime] = lambda: datetime.now(timezone.utc)) -> datetime:
    """The moment ``--since`` names: ``5m`` ago, an ISO date-time, or ``HH:MM[:SS]`` today (local).

    Raises ValueError with a message fit for the operator.
    """
    match = _RELATIVE_SINCE.match(text.strip())
    if match:
        return now() - timedelta(seconds=float(match.group(1)) * SINCE_UNITS_S[match.group(2)])
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        moment = _today_at(text.strip(), now())
    if moment.tzinfo is None:
        moment = moment.astimezone()  # a naive time is local time, as the pretty output shows it
    return moment


def _today_at(text: str, now_utc: datetime) -> datetime:
    try:
        clock_time = datetime.strptime(text, "%H:%M:%S" if text.count(":") == 2 else "%H:%M").time()
    except ValueError:
        raise ValueError(f"{text!r} is not a time: use 30s, 5m, 2h, 1d, HH:MM[:SS] "
                         "or an ISO date-time like 2024-05-01T02:50") from None
    return datetime.combine(now_utc.astimezone().date(), clock_time)


def _split_patterns(values: Iterable[str] | None) -> tuple[str, ...]:
    """``["a,b", "c"]`` -> ``("a", "b", "c")``: repeatable options that also take comma lists."""
    return tuple(part.strip() for value in values or () for part in value.split(",") if part.strip())


def _matches(value: Any, patterns: tuple[str, ...]) -> bool:
    return value is not None and any(fnmatchcase(str(value), pattern) for pattern in patterns)


@dataclass
class LogFilter:
    """Which records ``seawall logs`` shows. Patterns are exact names or globs (``Get*``).

    Raw (non-JSON) lines carry no fields: they pass only when no field filter is set, and
    ``since`` judges them by the last timestamp seen before them in the same file.
    """

    commands: tuple[str, ...] = ()
    events: tuple[str, ...] = ()
    processes: tuple[str, ...] = ()
    min_level: int = 0
    since: datetime | None = None
    raw_lines: bool = True  # False: only JSON records (``--json`` output)
    _last_time_by_source: dict[str, datetime] = field(default_factory=dict, repr=False)

    @classmethod
    def from_options(cls, commands: Iterable[str] | None = None, events: Iterable[str] | None = None,
                     processes: Iterable[str] | None = None, level: str | None = None,
                     since: datetime | None = None, raw_lines: bool = True) -> LogFilter:
        if level is not None and level.lower() not in LEVEL_ORDER:
            raise ValueError(f"{level!r} is not a level (debug, info, warning, error, critical)")
        return cls(_split_patterns(commands), _split_patterns(events), _split_patterns(processes),
                   LEVEL_ORDER[level.lower()] if level else 0, since, raw_lines)

    @property
    def filters_fields(self) -> bool:
        return bool(self.commands or self.events or self.processes or self.min_level)

    def accepts(self, record: LogRecord) -> bool:
        moment = self._moment_of(record)
        if self.since is not None and (moment is None or moment < self.since):
            return False
        if record.fields is None:
            return self.raw_lines and not self.filters_fields
        fields = record.fields
        return ((not self.commands or _matches(fields.get("command"), self.commands))
                and (not self.events or _matches(fields.get("event"), self.events))
                and (not self.processes or _matches(fields.get("process"), self.processes))
                and LEVEL_ORDER.get(record.level, LEVEL_ORDER["info"]) >= self.min_level)

    def _moment_of(self, record: LogRecord) -> datetime | None:
        if record.timestamp is not None:
            self._last_time_by_source[record.source] = record.timestamp
            return record.timestamp
        return self._last_time_by_source.get(record.source)
