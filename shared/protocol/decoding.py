"""The decoder: every field of every message checked, or a ProtocolError saying which."""

from __future__ import annotations

from typing import Any, Callable

import msgpack

from shared.events import CALL_OUTCOMES, WORKER_OUTCOMES, Event
from shared.log_throttle import LogThrottle
from shared.metrics_schema import check_snapshot
from shared.protocol.fields import (
    _KIND_BY_VALUE, _SCALAR_TYPES, _check_nesting, _expect_fields, _int, _milliseconds, _name, _outcome, _payload,
)
from shared.protocol.messages import (
    MAX_BATCH, MAX_BEAT, MAX_CALL_ID, MAX_COALESCED, MAX_DECLARED_COMMANDS, MAX_HEADER_BYTES, MAX_NAME_CHARS,
    MAX_REPORT_OUTCOMES, MAX_SETTINGS_PER_COMMAND, MAX_SLOTS, MAX_TIMEOUT_MS, MAX_WINDOW_MS, METRICS_TOPIC, PROTOCOL,
    Batch, BatchRequest, Beat, BreakerChange, Call, Calls, Chaos, Collapsible, Control, ControlReply, Declare, Kind,
    Message, Metrics, ProtocolError, Ready, Replies, Reply, Report, Requests, Request, Result, Results, Signal,
    Snapshot, Stats,
)
from shared.protocol.values import decode_value

#: At most one ``malformed_message_dropped`` line per source and error, and one
#: ``unexpected_message_dropped`` line per source and kind, in this long.
DROPPED_LOG_INTERVAL_S = 10.0


def decode(frames: list[bytes]) -> Message:
    """Validate and decode one message; :class:`ProtocolError` says what is wrong."""
    if len(frames) not in (2, 3):
        raise ProtocolError(f"expected 2 or 3 frames, got {len(frames)}")
    if frames[0] != PROTOCOL:
        raise ProtocolError(f"protocol frame is {bytes(frames[0])[:16]!r}, expected {PROTOCOL!r}")
    header_bytes = frames[1]
    if len(header_bytes) > MAX_HEADER_BYTES:
        raise ProtocolError(f"header of {len(header_bytes)} bytes is over {MAX_HEADER_BYTES}")
    try:
        header = msgpack.unpackb(header_bytes, raw=False)
    except Exception as exc:
        raise ProtocolError(f"header is not valid msgpack: {exc}") from exc
    if type(header) is not list or not _SCALAR_TYPES.issuperset(map(type, header)):  # a flat header costs no walk
        _check_nesting(header, "header")
    if not isinstance(header, list) or not header:
        raise ProtocolError(f"header must be a non-empty array, got {header!r:.100}")
    kind = _KIND_BY_VALUE.get(header[0]) if type(header[0]) is int else None
    if kind is None:
        raise ProtocolError(f"unknown message kind {header[0]!r:.50}")
    fields = header[1:]
    payload = frames[2] if len(frames) == 3 else None
    coalesced = _COALESCED.get(kind)
    try:
        if coalesced is not None:
            return coalesced[2](_decode_items(coalesced[0], coalesced[1], fields, payload))
        return _DECODERS[kind](kind, fields, payload)
    except ProtocolError as exc:
        raise ProtocolError(f"{kind.name}: {exc}") from None


def decode_or_log(frames: list[bytes], logger: Any, source: str, lines: LogThrottle) -> Message | None:
    """``decode(frames)``, or None after logging why the message was dropped: at most one
    line per source and error every ``lines.interval_s``, with the count dropped since
    the last (a peer still speaking an older protocol would else log every message)."""
    try:
        return decode(frames)
    except ProtocolError as exc:
        log_malformed(logger, lines, source, str(exc))
        return None


def log_malformed(logger: Any, lines: LogThrottle, source: str, error: str, **fields: Any) -> None:
    """Log that a message from ``source`` was dropped as malformed, saying why (``error``):
    at most one line per source and error every ``lines.interval_s``, with the count
    dropped since the last."""
    held_back = lines.due((source, error))
    if held_back is not None:
        logger.warning("malformed_message_dropped", source=source, error=error, dropped_since_last_line=held_back,
                       **fields)


def log_unexpected(logger: Any, lines: LogThrottle, source: str, kind: str, **fields: Any) -> None:
    """Log that a valid message of ``kind`` came where it does not belong (a peer pointed
    at the wrong socket, say): at most one line per source and kind every
    ``lines.interval_s``, with the count dropped since the last."""
    held_back = lines.due((source, kind))
    if held_back is not None:
        logger.warning("unexpected_message_dropped", source=source, kind=kind, dropped_since_last_line=held_back,
                       **fields)


def decode_metrics(frames: list[bytes]) -> dict[str, Any]:
    """A metrics snapshot as published (topic frame first), every field checked."""
    if not frames or frames[0] != METRICS_TOPIC:
        raise ProtocolError(f"expected the {METRICS_TOPIC!r} topic frame first")
    message = decode(frames[1:])
    if type(message) is not Metrics:
        raise ProtocolError(f"expected a METRICS message, got {type(message).__name__}")
    return message.snapshot


def _decode_request(kind: Kind, fields: list[Any], payload: bytes | None) -> Request:
    _expect_fields(fields, ("call_id", "command", "dependency", "timeout_ms"))
    return Request(
        _int("call_id", fields[0], 0, MAX_CALL_ID),
        _name("command", fields[1]),
        _name("dependency", fields[2]),
        _int("timeout_ms", fields[3], 1, MAX_TIMEOUT_MS),
        _payload(payload, required=True),
    )


def _decode_collapsible(kind: Kind, fields: list[Any], payload: bytes | None) -> Collapsible:
    _expect_fields(fields, ("call_id", "command", "dependency", "timeout_ms", "shard", "window_ms", "max_batch"))
    shard = fields[4]
    if type(shard) is not str or len(shard) > MAX_NAME_CHARS:
        raise ProtocolError(f"shard must be a string of at most {MAX_NAME_CHARS} characters, got {shard!r:.50}")
    window_ms = fields[5]
    if type(window_ms) not in (int, float) or not 0 <= window_ms <= MAX_WINDOW_MS:
        raise ProtocolError(f"window_ms must be a number in [0, {MAX_WINDOW_MS:g}], got {window_ms!r:.50}")
    return Collapsible(
        _int("call_id", fields[0], 0, MAX_CALL_ID),
        _name("command", fields[1]),
        _name("dependency", fields[2]),
        _int("timeout_ms", fields[3], 1, MAX_TIMEOUT_MS),
        shard,
        float(window_ms),
        _int("max_batch", fields[6], 1, MAX_BATCH),
        _payload(payload, required=True),
    )


def _decode_batch_request(kind: Kind, fields: list[Any], payload: bytes | None) -> BatchRequest:
    return BatchRequest(*_decode_request(kind, fields, payload))


def _decode_batch(kind: Kind, fields: list[Any], payload: bytes | None) -> Batch:
    return Batch(*_decode_call(kind, fields, payload))


def _decode_reply(kind: Kind, fields: list[Any], payload: bytes | None) -> Reply:
    return Reply(*_outcome_fields(fields, payload, CALL_OUTCOMES))


def _outcome_fields(fields: list[Any], payload: bytes | None, outcomes: frozenset[Event]) -> tuple[Any, ...]:
    """A REPLY's or a RESULT's fields: the same, but for the outcomes each may carry."""
    _expect_fields(fields, ("call_id", "outcome", "execution_ms"))
    return (_int("call_id", fields[0], 0, MAX_CALL_ID), _outcome(fields[1], outcomes), _milliseconds(fields[2]),
            _payload(payload, required=True))


def _decode_ready(kind: Kind, fields: list[Any], payload: bytes | None) -> Ready:
    _expect_fields(fields, ("dependency", "slots", "pid"))
    body = _decode_map(payload)
    if body.keys() != {"commands", "running"}:
        raise ProtocolError(f"payload must be a map of commands and running, got keys {sorted(body)!r:.100}")
    commands = body["commands"]
    if not isinstance(commands, dict):  # its keys are checked as names below
        raise ProtocolError("commands must be a map of command names")
    if len(commands) > 10_000:
        raise ProtocolError("a worker may register at most 10000 commands")
    _check_command_settings(commands)
    return Ready(
        _name("dependency", fields[0]),
        _int("slots", fields[1], 1, MAX_SLOTS),
        _int("pid", fields[2], 0, 2**31),
        commands,
        _call_ids("running", body["running"]),
    )


def _check_command_settings(commands: dict[Any, Any]) -> None:
    """Command names, each with a map of at most MAX_SETTINGS_PER_COMMAND setting names
    (the broker checks the names and values)."""
    for name, settings in commands.items():
        _name("command", name)
        if not isinstance(settings, dict) or len(settings) > MAX_SETTINGS_PER_COMMAND \
                or not all(type(key) is str for key in settings):
            raise ProtocolError(f"settings of command {name!r:.50} must be a map of at most "
                                f"{MAX_SETTINGS_PER_COMMAND} names")


def _decode_declare(kind: Kind, fields: list[Any], payload: bytes | None) -> Declare:
    _expect_fields(fields, ())
    commands = _decode_map(payload)
    if len(commands) > MAX_DECLARED_COMMANDS:
        raise ProtocolError(f"a caller may declare at most {MAX_DECLARED_COMMANDS} commands")
    _check_command_settings(commands)
    return Declare(commands)


def _decode_call(kind: Kind, fields: list[Any], payload: bytes | None) -> Call:
    _expect_fields(fields, ("call_id", "command", "timeout_ms"))
    return Call(
        _int("call_id", fields[0], 0, MAX_CALL_ID),
        _name("command", fields[1]),
        _int("timeout_ms", fields[2], 0, MAX_TIMEOUT_MS),
        _payload(payload, required=True),
    )


def _decode_result(kind: Kind, fields: list[Any], payload: bytes | None) -> Result:
    return Result(*_outcome_fields(fields, payload, WORKER_OUTCOMES))


def _decode_items(kind: Kind, field_count: int, fields: list[Any], payloads: bytes | None) -> tuple[Any, ...]:
    """The ``kind`` messages a coalesced one carries, each checked as if it came alone:
    2 to MAX_COALESCED of them, each one's fields then its payload's length; the lengths
    must add up to the payload frame, at most MAX_PAYLOAD_BYTES."""
    per_item = field_count + 1
    count, left_over = divmod(len(fields), per_item)
    if left_over:
        raise ProtocolError(f"expected {per_item} fields per item ({per_item - 1} and the payload's length), "
                            f"got {len(fields)} fields")
    if not 2 <= count <= MAX_COALESCED:
        raise ProtocolError(f"expected 2 to {MAX_COALESCED} items, got {count}")
    payloads = _payload(payloads, required=True)
    decoder = _DECODERS[kind]
    items = []
    start = 0
    for index in range(count):
        at = index * per_item
        length = fields[at + per_item - 1]
        if type(length) is not int or not 0 <= length <= len(payloads) - start:
            raise ProtocolError(f"item {index}: payload length must be an integer in [0, {len(payloads) - start}] "
                                f"(what is left of the payload frame), got {length!r:.50}")
        try:
            items.append(decoder(kind, fields[at:at + per_item - 1], payloads[start:start + length]))
        except ProtocolError as exc:
            raise ProtocolError(f"item {index}: {exc}") from None
        start += length
    if start != len(payloads):
        raise ProtocolError(f"the items' payload lengths add up to {start} bytes, "
                            f"the payload frame has {len(payloads)}")
    return tuple(items)


def _decode_signal(kind: Kind, fields: list[Any], payload: bytes | None) -> Signal:
    _expect_fields(fields, ())
    return Signal(kind)


def _decode_breaker_change(kind: Kind, fields: list[Any], payload: bytes | None) -> BreakerChange:
    _expect_fields(fields, ("command", "state", "retry_in_ms"))
    if type(fields[1]) is not str or fields[1] not in _BREAKER_STATES:
        raise ProtocolError(f"state must be one of {sorted(_BREAKER_STATES)}, got {fields[1]!r:.50}")
    return BreakerChange(_name("command", fields[0]), fields[1], _int("retry_in_ms", fields[2], 0, MAX_TIMEOUT_MS))


def _decode_snapshot(kind: Kind, fields: list[Any], payload: bytes | None) -> Snapshot:
    _expect_fields(fields, ())
    data = _decode_map(payload)
    breakers, overrides = data.get("breakers"), data.get("overrides")
    if not isinstance(breakers, dict) or not isinstance(overrides, dict):
        raise ProtocolError("snapshot must hold maps 'breakers' and 'overrides'")
    if not all(type(key) is str for key in overrides):
        raise ProtocolError("snapshot overrides must be keyed by setting names")
    checked: dict[str, tuple[str, int]] = {}
    for name, entry in breakers.items():
        if not isinstance(entry, list) or len(entry) != 2 or type(entry[0]) is not str \
                or entry[0] not in _BREAKER_STATES:
            raise ProtocolError(f"breaker {name!r:.50} must be [state, retry_in_ms]")
        checked[_name("command", name)] = (entry[0], _int("retry_in_ms", entry[1], 0, MAX_TIMEOUT_MS))
    return Snapshot(checked, overrides)


_BREAKER_STATES = frozenset({"CLOSED", "OPEN", "HALF_OPEN"})


def _decode_metrics(kind: Kind, fields: list[Any], payload: bytes | None) -> Metrics:
    _expect_fields(fields, ())
    try:
        return Metrics(check_snapshot(_decode_map(payload)))
    except ValueError as exc:
        if isinstance(exc, ProtocolError):
            raise
        raise ProtocolError(str(exc)) from None


def _decode_report(kind: Kind, fields: list[Any], payload: bytes | None) -> Report:
    _expect_fields(fields, ())
    checked: dict[str, list[tuple[Event, float]]] = {}
    reported = _decode_map(payload)
    if len(reported) + sum(len(outcomes) for outcomes in reported.values() if isinstance(outcomes, list)) \
            > MAX_REPORT_OUTCOMES:
        raise ProtocolError(f"a report may carry at most {MAX_REPORT_OUTCOMES} outcomes")
    for name, outcomes in reported.items():
        if not isinstance(outcomes, list):
            raise ProtocolError(f"outcomes of {name!r:.50} must be a list")
        checked[_name("command", name)] = [_reported_outcome(outcome) for outcome in outcomes]
    return Report(checked)


def _reported_outcome(outcome: Any) -> tuple[Event, float]:
    if not isinstance(outcome, list) or len(outcome) != 2 or type(outcome[0]) is not str:
        raise ProtocolError(f"an outcome must be [event, latency_ms], got {outcome!r:.50}")
    try:
        event = Event(outcome[0])
    except ValueError:
        raise ProtocolError(f"unknown event {outcome[0]!r:.50}") from None
    return event, _milliseconds(outcome[1])


def _decode_stats(kind: Kind, fields: list[Any], payload: bytes | None) -> Stats:
    _expect_fields(fields, ("rss_mb", "beat"))
    if type(fields[0]) not in (int, float) or not 0 <= fields[0] < 2**40:
        raise ProtocolError(f"rss_mb must be a non-negative number, got {fields[0]!r:.50}")
    holding = _call_ids("holding", decode_value(_payload(payload, required=True)))
    return Stats(float(fields[0]), _int("beat", fields[1], 0, MAX_BEAT), holding)


def _call_ids(name: str, value: Any) -> tuple[int, ...]:
    """A worker's list of the calls it holds: at most MAX_SLOTS (one per slot)."""
    if type(value) is not list or len(value) > MAX_SLOTS:
        raise ProtocolError(f"{name} must be a list of at most {MAX_SLOTS} call ids")
    return tuple(_int(f"{name} call id", call_id, 0, MAX_CALL_ID) for call_id in value)


def _decode_beat(kind: Kind, fields: list[Any], payload: bytes | None) -> Beat:
    _expect_fields(fields, ("number",))
    return Beat(_int("number", fields[0], 0, MAX_BEAT))


def _decode_chaos(kind: Kind, fields: list[Any], payload: bytes | None) -> Chaos:
    _expect_fields(fields, ("kill",))
    if type(fields[0]) is not bool:
        raise ProtocolError(f"kill must be a boolean, got {fields[0]!r:.50}")
    return Chaos(_decode_map(payload), fields[0])


def _decode_map(payload: bytes | None) -> dict[str, Any]:
    data = decode_value(_payload(payload, required=True))
    if not isinstance(data, dict):
        raise ProtocolError(f"payload must be a map, got {type(data).__name__}")
    if not all(type(key) is str for key in data):
        raise ProtocolError("payload map keys must be strings")
    _check_nesting(data, "payload")
    return data


def _decode_control(kind: Kind, fields: list[Any], payload: bytes | None) -> Control:
    _expect_fields(fields, ("action",))
    return Control(_name("action", fields[0]), _decode_map(payload))


def _decode_control_reply(kind: Kind, fields: list[Any], payload: bytes | None) -> ControlReply:
    _expect_fields(fields, ("ok",))
    if type(fields[0]) is not bool:
        raise ProtocolError(f"ok must be a boolean, got {fields[0]!r:.50}")
    return ControlReply(fields[0], _decode_map(payload))


#: Each kind's decoder: its fields and payload checked, the message they make.
_DECODERS: dict[Kind, Callable[[Kind, list[Any], bytes | None], Message]] = {
    Kind.REQUEST: _decode_request,
    Kind.REPLY: _decode_reply,
    Kind.READY: _decode_ready,
    Kind.CALL: _decode_call,
    Kind.RESULT: _decode_result,
    Kind.HEARTBEAT: _decode_signal,
    Kind.DRAINING: _decode_signal,
    Kind.DRAIN_ACK: _decode_signal,
    Kind.GOODBYE: _decode_signal,
    Kind.RESET: _decode_signal,
    Kind.CONTROL: _decode_control,
    Kind.CONTROL_REPLY: _decode_control_reply,
    Kind.BREAKER: _decode_breaker_change,
    Kind.SNAPSHOT: _decode_snapshot,
    Kind.CHAOS: _decode_chaos,
    Kind.REPORT: _decode_report,
    Kind.DECLARE: _decode_declare,
    Kind.STATS: _decode_stats,
    Kind.COLLAPSIBLE: _decode_collapsible,
    Kind.BATCH_REQUEST: _decode_batch_request,
    Kind.BATCH: _decode_batch,
    Kind.METRICS: _decode_metrics,
    Kind.BEAT: _decode_beat,
}

#: Coalesced kinds: the kind of each item they carry, its header fields (without the
#: payload's length), and the message class they decode to.
_COALESCED: dict[Kind, tuple[Kind, int, Callable[[tuple[Any, ...]], Message]]] = {
    Kind.REQUESTS: (Kind.REQUEST, 4, Requests),
    Kind.CALLS: (Kind.CALL, 3, Calls),
    Kind.REPLIES: (Kind.REPLY, 3, Replies),
    Kind.RESULTS: (Kind.RESULT, 3, Results),
}
