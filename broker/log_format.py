"""Pretty-printing log records for a person at a terminal: one line per event, what matters first.

``02:51:07.123 WARN  broker/4242     breaker_opened  command=GetRatings old=CLOSED new=OPEN ...``
Local time, coloured level, process/pid, the event in bold, then the fields an operator looks
for first; tracebacks and multi-line values indented below. Colour only when asked for.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any

from broker.log_records import LogRecord

#: Fields shown first, in this order, after the event name.
LEADING_FIELDS = ("command", "dependency", "outcome", "latency_ms", "error")
#: Fields already shown in the line's head (or only noise there), never repeated as key=value.
HEAD_FIELDS = frozenset({"timestamp", "level", "process", "pid", "event", "component", "exception"})
#: Level labels, padded to one width.
LEVEL_LABELS = {"debug": "DEBUG", "info": "INFO", "warning": "WARN", "warn": "WARN", "error": "ERROR",
                "exception": "ERROR", "critical": "CRIT", "fatal": "CRIT"}
#: Indent of lines below an event (tracebacks, multi-line values).
DETAIL_INDENT = "    "
#: Width of the process/pid column.
PROCESS_WIDTH = 14
#: Width the event name is padded to, so the fields of most lines line up.
EVENT_WIDTH = 18

_NEEDS_QUOTES = re.compile(r"[\s\"'=]")
_RESET = "\033[0m"
_BOLD = "\033[1m"
_DIM = "\033[2m"
#: ANSI colour of each level's label.
LEVEL_COLOURS = {"debug": "\033[2m", "info": "\033[32m", "warning": "\033[33m", "warn": "\033[33m",
                 "error": "\033[1;31m", "exception": "\033[1;31m", "critical": "\033[1;37;41m",
                 "fatal": "\033[1;37;41m"}


class Formatter:
    """Turns records into text; ``colour`` adds ANSI styles, ``show_source`` prefixes raw lines
    with their file's name (useful when several files are interleaved)."""

    def __init__(self, colour: bool = False, show_source: bool = False) -> None:
        self.colour = colour
        self.show_source = show_source

    def format(self, record: LogRecord) -> str:
        if record.fields is None:
            prefix = f"{Path(record.source).name}: " if self.show_source and record.source else ""
            return self._style(_DIM, prefix + record.raw)
        fields = record.fields
        level = record.level
        head = " ".join([
            self._time(record.timestamp, fields),
            self._style(LEVEL_COLOURS.get(level, ""), f"{LEVEL_LABELS.get(level, level.upper()[:5]):<5}"),
            f"{fields.get('process', '?')}/{fields.get('pid', '?')}".ljust(PROCESS_WIDTH),
            self._style(_BOLD, f"{fields.get('event', '')!s:<{EVENT_WIDTH}}"),
        ])
        pairs, details = self._fields(fields)
        return "\n".join([" ".join([head, *pairs]).rstrip(), *details])

    def _time(self, timestamp: datetime | None, fields: dict[str, Any]) -> str:
        if timestamp is None:
            return f"{fields.get('timestamp', '')!s:<12.12}"  # unreadable: as written, cut
        local = timestamp.astimezone()
        return f"{local.hour:02d}:{local.minute:02d}:{local.second:02d}.{local.microsecond // 1000:03d}"

    def _fields(self, fields: dict[str, Any]) -> tuple[list[str], list[str]]:
        """``key=value`` words, and the lines to indent below (multi-line values, tracebacks)."""
        ordered = [key for key in LEADING_FIELDS if key in fields]
        ordered += [key for key in fields if key not in HEAD_FIELDS and key not in LEADING_FIELDS]
        pairs: list[str] = []
        details: list[str] = []
        for key in ordered:
            value = fields[key]
            if isinstance(value, str) and "\n" in value:
                pairs.append(f"{self._style(_DIM, key + '=')}\u2193")
                details += _indented(value.rstrip("\n").splitlines())
            else:
                pairs.append(f"{self._style(_DIM, key + '=')}{_show_value(value)}")
        if "exception" in fields:
            details += _indented(traceback_lines(fields["exception"]))
        return pairs, details

    def _style(self, code: str, text: str) -> str:
        return f"{code}{text}{_RESET}" if self.colour and code else text


def _indented(lines: list[str]) -> list[str]:
    return [DETAIL_INDENT + line if line else "" for line in lines]


def _show_value(value: Any) -> str:
    if isinstance(value, str):
        return value if value and not _NEEDS_QUOTES.search(value) else json.dumps(value)
    if isinstance(value, float):
        return f"{value:g}" if abs(value) >= 1e-3 or value == 0 else repr(value)
    return json.dumps(value, separators=(",", ":"), default=str)


def traceback_lines(exception: Any) -> list[str]:
    """A traceback as Python prints it, from structlog's ``dict_tracebacks`` list (or a string)."""
    if isinstance(exception, str):
        return exception.rstrip("\n").splitlines()
    if not isinstance(exception, list):
        return [_show_value(exception)]
    lines: list[str] = []
    chain = [item for item in exception if isinstance(item, dict)]
    for index, item in enumerate(reversed(chain)):  # structlog lists the outermost first
        if index:
            lines += ["", "The above exception was the direct cause of the following exception:" if
                      chain[len(chain) - index].get("is_cause") else
                      "During handling of the above exception, another exception occurred:", ""]
        lines.append("Traceback (most recent call last):")
        for frame in item.get("frames") or []:
            lines.append(f'  File "{frame.get("filename")}", line {frame.get("lineno")}, in {frame.get("name")}')
        lines.append(f"{item.get('exc_type', 'Exception')}: {item.get('exc_value', '')}")
    return lines
