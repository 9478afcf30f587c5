"""The wire protocol: every message between callers, the broker, workers and the CLI.

The only module that imports msgpack. A message is a list of frames (after any ROUTER
identity)::

    [PROTOCOL]  [header]  [payload]?

or, for REQUESTS, CALLS, REPLIES and RESULTS (several messages of one kind coalesced into
one), the same three frames: each item's fields and then its payload's length in the
header, one item after another, and the items' payloads one after another in the payload
frame (one frame, not one per item: ZeroMQ pays per frame, about 0.4 µs each to send and
as much to receive).

``PROTOCOL`` names the protocol and its version, so a peer of another version is told
apart before anything is decoded. ``header`` is a small msgpack array ``[kind, ...fields]``
that the broker routes on; ``payload`` (a command's arguments, a result or an error) is
opaque to the broker, which passes the bytes through without decoding them.

``decode()`` validates every field and raises :class:`ProtocolError` saying what is
wrong; receivers log and drop such messages (:func:`decode_or_log`) and keep serving.
"""

from __future__ import annotations

import enum
from typing import Any, Callable, NamedTuple, TypeVar

import msgpack

from shared.events import CALL_OUTCOMES, WORKER_OUTCOMES, Event
from shared.metrics_schema import check_snapshot

#: Protocol name and version: the first frame of every message.
PROTOCOL = b"SW01"
#: Largest payload (arguments, result, error) a peer may send.
MAX_PAYLOAD_BYTES = 1024 * 1024
#: Largest header; headers are a handful of short fields.
MAX_HEADER_BYTES = 4096
#: Longest name (command key, dependency) on the wire.
MAX_NAME_CHARS = 200
#: Longest timeout a caller may ask for: one hour.
MAX_TIMEOUT_MS = 3_600_000
#: Most slots one worker may offer.
MAX_SLOTS = 10_000
#: Largest call id; ids are 64-bit counters.
MAX_CALL_ID = 2**63 - 1
#: Deepest nesting of arrays and maps in a header or a map payload: repr() and JSON of a
#: value nested past Python's recursion limit (msgpack allows 1024 levels) would raise.
MAX_NESTING = 32


class Kind(enum.IntEnum):
    """Message kinds; the comment gives the direction."""

    REQUEST = 1  # caller -> broker: run a command
    REPLY = 2  # broker -> caller: its outcome
    READY = 3  # worker -> broker: register a worker and its slots
    CALL = 4  # broker -> worker: run a command
    RESULT = 5  # worker -> broker: its outcome
    HEARTBEAT = 6  # both ways between broker and worker
    DRAINING = 7  # worker -> broker: send me nothing new
    DRAIN_ACK = 8  # broker -> worker: nothing new will come
    GOODBYE = 9  # worker -> broker: I hold nothing and am leaving
    RESET = 10  # broker -> worker: I do not know you; register again
    CONTROL = 11  # CLI -> broker: an operator request
    CONTROL_REPLY = 12  # broker -> CLI: its answer
    BREAKER = 13  # broker PUB -> fronts: one breaker changed state
    SNAPSHOT = 14  # broker PUB -> fronts: every non-closed breaker and runtime setting
    CHAOS = 15  # broker -> worker: faults to inject (seawall chaos)
    REPORT = 16  # caller -> broker: outcomes it saw that the broker did not (batched)
    STATS = 17  # worker -> broker: its heartbeat, with its resident memory
    COLLAPSIBLE = 18  # caller -> broker: a call the broker may collapse with others (global scope)
    BATCH_REQUEST = 19  # caller -> broker: calls a front already collapsed (request scope)
    BATCH = 20  # broker -> worker: run these calls with run_batch()
    METRICS = 21  # broker PUB -> observers: rolling metrics of every command, pool and collapser
    REPLIES = 22  # broker -> caller: several REPLYs to one caller, coalesced in one loop turn
    RESULTS = 23  # worker -> broker: several RESULTs, coalesced in one hub iteration
    REQUESTS = 24  # caller -> broker: several REQUESTs, coalesced in one hub iteration
    CALLS = 25  # broker -> worker: several CALLs to one worker, coalesced in one loop turn


class ProtocolError(ValueError):
    """A message that is not valid seawall protocol; the text says what is wrong."""


class Request(NamedTuple):
    call_id: int
    command: str
    dependency: str
    timeout_ms: int
    payload: bytes


class Reply(NamedTuple):
    call_id: int
    outcome: Event
    execution_ms: float
    payload: bytes


class Collapsible(NamedTuple):
    call_id: int
    command: str
    dependency: str
    timeout_ms: int
    shard: str  # calls of different shards never share a batch
    window_ms: float
    max_batch: int
    payload: bytes


class BatchRequest(NamedTuple):
    call_id: int
    command: str
    dependency: str
    timeout_ms: int
    payload: bytes  # pack_batch() of the calls' argument payloads


class Batch(NamedTuple):
    call_id: int
    command: str
    timeout_ms: int
    payload: bytes  # pack_batch() of the calls' argument payloads


class Ready(NamedTuple):
    dependency: str
    slots: int
    pid: int
    #: command key -> the settings its class sets as attributes (timeout_s, breaker_*, ...)
    commands: dict[str, dict[str, Any]]
    #: calls it is still running (registering again after a stall): their slots are busy
    running: tuple[int, ...] = ()


class Call(NamedTuple):
    call_id: int
    command: str
    timeout_ms: int
    payload: bytes


class Result(NamedTuple):
    call_id: int
    outcome: Event
    execution_ms: float
    payload: bytes


class Requests(NamedTuple):
    """Several requests of one caller in one message: fewer messages per call under load."""

    items: tuple[Request, ...]


class Calls(NamedTuple):
    """Several calls to one worker in one message."""

    items: tuple[Call, ...]


class Replies(NamedTuple):
    """Several replies to one caller in one message."""

    items: tuple[Reply, ...]


class Results(NamedTuple):
    """Several results of one worker in one message."""

    items: tuple[Result, ...]


class Signal(NamedTuple):
    """A message with no fields: HEARTBEAT, DRAINING, DRAIN_ACK, GOODBYE, RESET."""

    kind: Kind


class BreakerChange(NamedTuple):
    command: str
    state: str  # CLOSED / OPEN / HALF_OPEN
    retry_in_ms: int  # for OPEN: when the broker will let a trial through


class Snapshot(NamedTuple):
    #: command key -> (state, retry_in_ms) for every breaker that is not CLOSED
    breakers: dict[str, tuple[str, int]]
    #: dotted setting -> value, set at runtime with ``seawall config set``
    overrides: dict[str, Any]


class Metrics(NamedTuple):
    snapshot: dict[str, Any]  # checked against shared/metrics_schema.py


class Chaos(NamedTuple):
    settings: dict[str, Any]  # latency_ms, latency_pct, error_pct, hang_pct; {} = none
    kill: bool  # die now, as kill -9 would


class Report(NamedTuple):
    #: command key -> [(event, latency_ms), ...]
    outcomes: dict[str, list[tuple[Event, float]]]


class Stats(NamedTuple):
    rss_mb: float


class Control(NamedTuple):
    action: str
    arguments: dict[str, Any]


class ControlReply(NamedTuple):
    ok: bool
    data: dict[str, Any]


Message = (Request | Reply | Ready | Call | Result | Signal | Control | ControlReply | BreakerChange | Snapshot
           | Chaos | Report | Stats | Collapsible | BatchRequest | Batch | Metrics | Requests | Calls | Replies
           | Results)

#: Most calls in one batch.
MAX_BATCH = 10_000
#: Longest collapsing window a caller may ask for.
MAX_WINDOW_MS = 10_000.0
#: Most command keys plus outcomes in one REPORT (fronts send at most
#: api.reports.MAX_OUTCOMES_PER_REPORT); each costs the broker tens of microseconds.
MAX_REPORT_OUTCOMES = 20_000

#: Most items in one REQUESTS, CALLS, REPLIES or RESULTS message; their header must also
#: stay within MAX_HEADER_BYTES and their payloads total at most MAX_PAYLOAD_BYTES.
MAX_COALESCED = 128
#: Items a sender puts in one coalesced message (at most MAX_COALESCED): a burst of 64
#: goes as two messages, so the peer starts on the first while the second is being made
#: (measured with bench/command_path.py: 8 to 32 did best at 64 callers, 128 was 15 % slower).
COALESCE_ITEMS = 32

#: PUB topic of the state fronts keep: breaker changes and snapshots.
STATE_TOPIC = b"state"
#: PUB topic of the metrics snapshots (shared/metrics_schema.py) that dashboards read.
METRICS_TOPIC = b"metrics"

_SIGNAL_KINDS = frozenset(
    {Kind.HEARTBEAT, Kind.DRAINING, Kind.DRAIN_ACK, Kind.GOODBYE, Kind.RESET}
)


# -- values: arguments, results, errors ----------------------------------------------


def encode_value(value: Any) -> bytes:
    """msgpack ``value``; a TypeError names the first type msgpack cannot carry."""
    try:
        if type(value) in _SCALAR_TYPES:  # most results: no Packer to build (see _scalar_packer)
            return _scalar_packer.pack(value)
        return msgpack.packb(value, use_bin_type=True, datetime=False)
    except (TypeError, ValueError, OverflowError) as exc:
        raise TypeError(f"cannot be sent: {exc}") from exc


#: Packs scalar values for encode_value: ``msgpack.packb`` builds a Packer per call, which
#: costs more than packing a scalar. Shared safely only by values packed in C without
#: calling back into Python (which could switch greenlets mid-pack): scalars, never
#: containers, whose subclasses may run Python code. It resets after every call, failed or not.
_scalar_packer = msgpack.Packer(use_bin_type=True, datetime=False)


def decode_value(payload: bytes) -> Any:
    try:
        return msgpack.unpackb(payload, raw=False, strict_map_key=False)
    except Exception as exc:  # msgpack raises a zoo of types for bad bytes
        raise ProtocolError(f"payload is not valid msgpack: {exc}") from exc


def encode_error(type_name: str, message: str) -> bytes:
    return encode_value({"type": type_name, "message": message})


def decode_error(payload: bytes) -> tuple[str, str]:
    """(type name, message) of an error payload."""
    error = decode_value(payload)
    if (
        not isinstance(error, dict)
        or not isinstance(error.get("type"), str)
        or not isinstance(error.get("message"), str)
    ):
        raise ProtocolError(f"error payload must be {{type, message}}, got {error!r:.200}")
    return error["type"], error["message"]


# -- encoding messages ---------------------------------------------------------------


#: One packer for every header: ``msgpack.packb`` builds a new Packer per call, which
#: costs more than packing a header. Safe to share between greenlets and threads: a
#: header holds only plain values, so ``pack`` runs in C without releasing the GIL or
#: calling back into Python, and it resets its buffer after every call, failed or not.
_header_packer = msgpack.Packer(use_bin_type=True)


def _frames(header: list[Any], payload: bytes | None = None) -> list[bytes]:
    packed = _header_packer.pack(header)
    return [PROTOCOL, packed] if payload is None else [PROTOCOL, packed, payload]


def request(call_id: int, command: str, dependency: str, timeout_ms: int, payload: bytes) -> list[bytes]:
    return _frames([Kind.REQUEST, call_id, command, dependency, timeout_ms], payload)


def reply(call_id: int, outcome: Event, execution_ms: float, payload: bytes) -> list[bytes]:
    return _frames([Kind.REPLY, call_id, outcome, execution_ms], payload)  # an Event packs as its value


def collapsible(call_id: int, command: str, dependency: str, timeout_ms: int, shard: str, window_ms: float,
                max_batch: int, payload: bytes) -> list[bytes]:
    return _frames([Kind.COLLAPSIBLE, call_id, command, dependency, timeout_ms, shard, window_ms, max_batch],
                   payload)


def batch_request(call_id: int, command: str, dependency: str, timeout_ms: int, payload: bytes) -> list[bytes]:
    return _frames([Kind.BATCH_REQUEST, call_id, command, dependency, timeout_ms], payload)


def batch(call_id: int, command: str, timeout_ms: int, payload: bytes) -> list[bytes]:
    return _frames([Kind.BATCH, call_id, command, timeout_ms], payload)


def pack_batch(payloads: list[bytes]) -> bytes:
    """One payload holding many calls' (or results') payloads, each left encoded."""
    return msgpack.packb(payloads, use_bin_type=True)


#: Room left in a batch message for msgpack's framing of each payload.
FRAMING_BYTES_PER_CALL = 8
T = TypeVar("T")


def split_by_size(items: list[T], payload_of: Callable[[T], bytes], max_bytes: int = MAX_PAYLOAD_BYTES) -> list[list[T]]:
    """Split calls bound for one batch so each part's distinct payloads fit in one message."""
    parts: list[list[T]] = [[]]
    seen: set[bytes] = set()
    size = 0
    for item in items:
        payload = payload_of(item)
        if payload not in seen:
            added = len(payload) + FRAMING_BYTES_PER_CALL
            if parts[-1] and size + added > max_bytes:
                parts.append([])
                seen.clear()
                size = 0
            seen.add(payload)
            size += added
        parts[-1].append(item)
    return parts


def unpack_batch(payload: bytes) -> list[bytes]:
    items = decode_value(payload)
    if not isinstance(items, list) or len(items) > MAX_BATCH or not all(type(item) is bytes for item in items):
        raise ProtocolError(f"a batch must be a list of at most {MAX_BATCH} encoded payloads")
    return items


def pack_batch_results(results: list[tuple[Event, bytes]]) -> bytes:
    return msgpack.packb([[outcome.value, payload] for outcome, payload in results], use_bin_type=True)


def unpack_batch_results(payload: bytes) -> list[tuple[Event, bytes]]:
    """Per call of a batch: (SUCCESS, value payload) or (FAILURE / BAD_REQUEST, error payload)."""
    items = decode_value(payload)
    if not isinstance(items, list) or len(items) > MAX_BATCH:
        raise ProtocolError(f"batch results must be a list of at most {MAX_BATCH} entries")
    results = []
    for item in items:
        if not isinstance(item, list) or len(item) != 2 or type(item[0]) is not str or type(item[1]) is not bytes:
            raise ProtocolError(f"a batch result must be [outcome, payload], got {item!r:.50}")
        results.append((_outcome(item[0], WORKER_OUTCOMES), item[1]))
    return results


def ready(dependency: str, slots: int, pid: int, commands: dict[str, dict[str, Any]],
          running: tuple[int, ...] = ()) -> list[bytes]:
    return _frames([Kind.READY, dependency, slots, pid, list(running)], encode_value(commands))


def call(call_id: int, command: str, timeout_ms: int, payload: bytes) -> list[bytes]:
    return _frames([Kind.CALL, call_id, command, timeout_ms], payload)


def result(call_id: int, outcome: Event, execution_ms: float, payload: bytes) -> list[bytes]:
    return _frames([Kind.RESULT, call_id, outcome, execution_ms], payload)  # an Event packs as its value


#: One message to coalesce: its header fields after the kind, then its payload; e.g. a
#: reply's (call_id, outcome, execution_ms, payload).
Item = tuple[Any, ...]


def requests(items: list[Item]) -> list[list[bytes]]:
    """The messages that carry REQUEST ``items`` (call_id, command, dependency, timeout_ms,
    payload): a plain REQUEST for a lone item, else REQUESTS (see :func:`_coalesced`)."""
    return _coalesced(items, Kind.REQUEST, Kind.REQUESTS)


def calls(items: list[Item]) -> list[list[bytes]]:
    """The messages that carry CALL ``items`` (call_id, command, timeout_ms, payload)."""
    return _coalesced(items, Kind.CALL, Kind.CALLS)


def replies(items: list[Item]) -> list[list[bytes]]:
    """The messages that carry REPLY ``items`` (call_id, outcome, execution_ms, payload)."""
    return _coalesced(items, Kind.REPLY, Kind.REPLIES)


def results(items: list[Item]) -> list[list[bytes]]:
    """The messages that carry RESULT ``items`` (call_id, outcome, execution_ms, payload)."""
    return _coalesced(items, Kind.RESULT, Kind.RESULTS)


#: Bytes a coalesced header needs besides its items: a 16-bit array length and the kind.
_COALESCED_HEADER_BASE_BYTES = 4


def _coalesced(items: list[Item], single: Kind, many: Kind) -> list[list[bytes]]:
    """Messages for ``items``, in order: a plain ``single`` message for a group of one,
    else one ``many`` message per group. The header holds each item's fields and its
    payload's length flat, one item after another (decoding needs no nesting walk); the
    payloads are joined in one frame, passed through. A group is cut before
    COALESCE_ITEMS items, a header over MAX_HEADER_BYTES or payloads over
    MAX_PAYLOAD_BYTES in all; one item always fits (it fits as a plain message)."""
    if len(items) == 1:  # the common case at low load
        return [_frames([single, *items[0][:-1]], items[0][-1])]
    messages = []
    group: list[Item] = []
    packed: list[bytes] = []
    header_bytes = payload_bytes = 0
    for item in items:
        # An item's fields and payload length packed as an array less its one-byte array
        # marker (a fixarray: fewer than 16 fields): the fields as they sit in the header.
        fields = _header_packer.pack((*item[:-1], len(item[-1])))[1:]
        if group and (len(group) == COALESCE_ITEMS
                      or header_bytes + len(fields) > MAX_HEADER_BYTES - _COALESCED_HEADER_BASE_BYTES
                      or payload_bytes + len(item[-1]) > MAX_PAYLOAD_BYTES):
            messages.append(_coalesced_message(group, packed, single, many))
            group, packed, header_bytes, payload_bytes = [], [], 0, 0
        group.append(item)
        packed.append(fields)
        header_bytes += len(fields)
        payload_bytes += len(item[-1])
    if group:
        messages.append(_coalesced_message(group, packed, single, many))
    return messages


def _coalesced_message(group: list[Item], packed: list[bytes], single: Kind, many: Kind) -> list[bytes]:
    if len(group) == 1:
        return _frames([single, *group[0][:-1]], group[0][-1])
    header = b"".join((_header_packer.pack_array_header(1 + (_ITEM_FIELDS[single] + 1) * len(group)),
                       _header_packer.pack(many), *packed))
    return [PROTOCOL, header, b"".join([item[-1] for item in group])]


def signal(kind: Kind) -> list[bytes]:
    if kind not in _SIGNAL_KINDS:
        raise ValueError(f"{kind.name} is not a signal")
    return _frames([kind])


def breaker_change(command: str, state: str, retry_in_ms: int) -> list[bytes]:
    return [STATE_TOPIC, *_frames([Kind.BREAKER, command, state, retry_in_ms])]


def snapshot(breakers: dict[str, tuple[str, int]], overrides: dict[str, Any]) -> list[bytes]:
    return [STATE_TOPIC, *_frames([Kind.SNAPSHOT], encode_value({"breakers": breakers, "overrides": overrides}))]


def fit(build: Callable[[int], list[bytes]], count: int, max_bytes: int = MAX_PAYLOAD_BYTES) -> tuple[list[bytes], int]:
    """``build(n)``'s frames for the largest ``n <= count`` tried whose payload (the last
    frame) fits ``max_bytes``, and that ``n``.

    For the messages whose size grows with what the broker tracks (breaker snapshots,
    metrics, status): a receiver drops the connection of a peer that sends a frame over
    its size limit, and a connecting socket is not made again, so such a message must
    shed entries rather than grow. ``build`` must put the entries it should keep first.
    Encodes once when everything fits; otherwise shrinks ``n`` in proportion, a few times.
    """
    while True:
        frames = build(count)
        size = len(frames[-1])
        if size <= max_bytes or count == 0:
            return frames, count
        count = min(count - 1, int(count * max_bytes * 0.95 / size))


def metrics(snapshot: dict[str, Any]) -> list[bytes]:
    return [METRICS_TOPIC, *_frames([Kind.METRICS], encode_value(snapshot))]


def decode_metrics(frames: list[bytes]) -> dict[str, Any]:
    """A metrics snapshot as published (topic frame first), every field checked."""
    if not frames or frames[0] != METRICS_TOPIC:
        raise ProtocolError(f"expected the {METRICS_TOPIC!r} topic frame first")
    message = decode(frames[1:])
    if type(message) is not Metrics:
        raise ProtocolError(f"expected a METRICS message, got {type(message).__name__}")
    return message.snapshot


def chaos(settings: dict[str, Any], kill: bool = False) -> list[bytes]:
    return _frames([Kind.CHAOS, kill], encode_value(settings))


def report(outcomes: dict[str, list[list[Any]]]) -> list[bytes]:
    return _frames([Kind.REPORT], encode_value(outcomes))


def stats(rss_mb: float) -> list[bytes]:
    return _frames([Kind.STATS, round(rss_mb, 1)])


def control(action: str, arguments: dict[str, Any] | None = None) -> list[bytes]:
    return _frames([Kind.CONTROL, action], encode_value(arguments or {}))


def control_reply(ok: bool, data: dict[str, Any]) -> list[bytes]:
    return _frames([Kind.CONTROL_REPLY, ok], encode_value(data))


#: Precomputed, since heartbeats go out on every beat to every worker.
HEARTBEAT = signal(Kind.HEARTBEAT)
#: The broker's beat to fronts, on its events socket.
STATE_HEARTBEAT = [STATE_TOPIC, *HEARTBEAT]


# -- decoding messages ---------------------------------------------------------------


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
    item_kind = _ITEM_KIND.get(kind)
    try:
        if item_kind is not None:
            return _COALESCED_CLASS[kind](_decode_items(item_kind, fields, payload))
        return _DECODERS[kind](kind, fields, payload)
    except ProtocolError as exc:
        raise ProtocolError(f"{kind.name}: {exc}") from None


def decode_or_log(frames: list[bytes], logger: Any, source: str) -> Message | None:
    """``decode(frames)``, or None after logging why the message was dropped."""
    try:
        return decode(frames)
    except ProtocolError as exc:
        logger.warning("malformed_message_dropped", source=source, error=str(exc))
        return None


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
    _expect_fields(fields, ("call_id", "outcome", "execution_ms"))
    return Reply(
        _int("call_id", fields[0], 0, MAX_CALL_ID),
        _outcome(fields[1], CALL_OUTCOMES),
        _milliseconds(fields[2]),
        _payload(payload, required=True),
    )


def _decode_ready(kind: Kind, fields: list[Any], payload: bytes | None) -> Ready:
    _expect_fields(fields, ("dependency", "slots", "pid", "running"))
    running = fields[3]
    if not isinstance(running, list) or len(running) > MAX_SLOTS:
        raise ProtocolError("running must be a list of call ids")
    commands = _decode_map(payload)
    if len(commands) > 10_000:
        raise ProtocolError("a worker may register at most 10000 commands")
    for name, settings in commands.items():
        _name("command", name)
        if not isinstance(settings, dict) or not all(type(key) is str for key in settings):
            raise ProtocolError(f"settings of command {name!r} must be a map of names")
    return Ready(
        _name("dependency", fields[0]),
        _int("slots", fields[1], 1, MAX_SLOTS),
        _int("pid", fields[2], 0, 2**31),
        commands,
        tuple(_int("running call id", call_id, 0, MAX_CALL_ID) for call_id in running),
    )


def _decode_call(kind: Kind, fields: list[Any], payload: bytes | None) -> Call:
    _expect_fields(fields, ("call_id", "command", "timeout_ms"))
    return Call(
        _int("call_id", fields[0], 0, MAX_CALL_ID),
        _name("command", fields[1]),
        _int("timeout_ms", fields[2], 0, MAX_TIMEOUT_MS),
        _payload(payload, required=True),
    )


def _decode_result(kind: Kind, fields: list[Any], payload: bytes | None) -> Result:
    _expect_fields(fields, ("call_id", "outcome", "execution_ms"))
    return Result(
        _int("call_id", fields[0], 0, MAX_CALL_ID),
        _outcome(fields[1], WORKER_OUTCOMES),
        _milliseconds(fields[2]),
        _payload(payload, required=True),
    )


def _decode_items(kind: Kind, fields: list[Any], payloads: bytes | None) -> tuple[Any, ...]:
    """The ``kind`` messages a coalesced one carries, each checked as if it came alone:
    2 to MAX_COALESCED of them, each one's fields then its payload's length; the lengths
    must add up to the payload frame, at most MAX_PAYLOAD_BYTES."""
    per_item = _ITEM_FIELDS[kind] + 1
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
        raise ProtocolError(f"the items' payload lengths add up to {start} bytes, the payload frame has {len(payloads)}")
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
    _expect_fields(fields, ("rss_mb",))
    if type(fields[0]) not in (int, float) or not 0 <= fields[0] < 2**40:
        raise ProtocolError(f"rss_mb must be a non-negative number, got {fields[0]!r:.50}")
    return Stats(float(fields[0]))


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


_DECODERS = {
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
    Kind.STATS: _decode_stats,
    Kind.COLLAPSIBLE: _decode_collapsible,
    Kind.BATCH_REQUEST: _decode_batch_request,
    Kind.BATCH: _decode_batch,
    Kind.METRICS: _decode_metrics,
}

#: Coalesced kinds: the kind of each item they carry, and the message class they decode to.
_ITEM_KIND = {Kind.REQUESTS: Kind.REQUEST, Kind.CALLS: Kind.CALL, Kind.REPLIES: Kind.REPLY,
              Kind.RESULTS: Kind.RESULT}
_COALESCED_CLASS: dict[Kind, Callable[[tuple[Any, ...]], Message]] = {
    Kind.REQUESTS: Requests, Kind.CALLS: Calls, Kind.REPLIES: Replies, Kind.RESULTS: Results}
#: Header fields of one item of each kind that may be coalesced.
_ITEM_FIELDS = {Kind.REQUEST: 4, Kind.CALL: 3, Kind.REPLY: 3, Kind.RESULT: 3}
