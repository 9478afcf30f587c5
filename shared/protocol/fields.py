"""Checks of one decoded field each: the decoders' vocabulary for saying what is wrong."""

from __future__ import annotations

from typing import Any

from shared.events import Event
from shared.protocol.messages import MAX_NAME_CHARS, MAX_NESTING, MAX_PAYLOAD_BYTES, MAX_TIMEOUT_MS, Kind, ProtocolError

_SCALAR_TYPES = frozenset({int, float, str, bytes, bool, type(None)})
#: ``Kind(value)`` and ``Event(value)`` as dict lookups: calling an Enum runs Python code
#: (about half a microsecond), and every message names its kind and most an outcome.
_KIND_BY_VALUE: dict[int, Kind] = {kind.value: kind for kind in Kind}
_EVENT_BY_VALUE: dict[str, Event] = {event.value: event for event in Event}


def _check_nesting(value: Any, what: str) -> None:
    """Refuse a value nested deeper than MAX_NESTING levels; one pass per level."""
    level = [value]
    for _ in range(MAX_NESTING + 1):
        level = [child for item in level if isinstance(item, (list, dict))
                 for child in (item.values() if isinstance(item, dict) else item)]
        if not level:
            return
    raise ProtocolError(f"{what} is nested deeper than {MAX_NESTING} levels")


def _expect_fields(fields: list[Any], names: tuple[str, ...]) -> None:
    if len(fields) != len(names):
        raise ProtocolError(f"expected fields {', '.join(names) or '(none)'}, got {len(fields)} fields")


def _int(name: str, value: Any, low: int, high: int) -> int:
    if type(value) is not int or not low <= value <= high:
        raise ProtocolError(f"{name} must be an integer in [{low}, {high}], got {value!r:.50}")
    return value


def _name(field: str, value: Any) -> str:
    if type(value) is not str or not 0 < len(value) <= MAX_NAME_CHARS:
        raise ProtocolError(f"{field} must be a name of 1-{MAX_NAME_CHARS} characters, got {value!r:.50}")
    return value


def _outcome(value: Any, allowed: frozenset[Event]) -> Event:
    event = _EVENT_BY_VALUE.get(value) if type(value) is str else None  # Event's values are all str
    if event not in allowed:
        raise ProtocolError(f"outcome must be one of {', '.join(sorted(allowed))}, got {value!r:.50}")
    return event


def _milliseconds(value: Any) -> float:
    if type(value) not in (int, float) or not 0 <= value <= MAX_TIMEOUT_MS * 10:
        raise ProtocolError(f"execution_ms must be a non-negative number, got {value!r:.50}")
    return float(value)


def _payload(payload: bytes | None, required: bool) -> bytes:
    if payload is None:
        if required:
            raise ProtocolError("payload frame is missing")
        return b""
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise ProtocolError(f"payload of {len(payload)} bytes is over {MAX_PAYLOAD_BYTES}")
    return payload
