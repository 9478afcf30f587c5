"""Encoders: one function per message kind, returning the frames to send."""

from __future__ import annotations

from typing import Any, Callable

import msgpack

from shared.events import Event
from shared.protocol.messages import (
    COALESCE_ITEMS, MAX_HEADER_BYTES, MAX_PAYLOAD_BYTES, METRICS_TOPIC, PROTOCOL, STATE_TOPIC, _SIGNAL_KINDS, Item,
    Kind,
)
from shared.protocol.values import encode_value


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


def ready(dependency: str, slots: int, pid: int, commands: dict[str, dict[str, Any]],
          running: tuple[int, ...] = ()) -> list[bytes]:
    """The calls still running go in the payload, with the commands: a busy worker's ids
    (9 bytes each) would not fit the header's MAX_HEADER_BYTES."""
    return _frames([Kind.READY, dependency, slots, pid], encode_value({"commands": commands, "running": list(running)}))


def call(call_id: int, command: str, timeout_ms: int, payload: bytes) -> list[bytes]:
    return _frames([Kind.CALL, call_id, command, timeout_ms], payload)


def result(call_id: int, outcome: Event, execution_ms: float, payload: bytes) -> list[bytes]:
    return _frames([Kind.RESULT, call_id, outcome, execution_ms], payload)  # an Event packs as its value


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
        return [_coalesced_message(items, [], single, many)]
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
    fields = sum(map(len, group))  # each item's fields less its payload, plus the payload's length
    header = b"".join((_header_packer.pack_array_header(1 + fields), _header_packer.pack(many), *packed))
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


def chaos(settings: dict[str, Any], kill: bool = False) -> list[bytes]:
    return _frames([Kind.CHAOS, kill], encode_value(settings))


def report(outcomes: dict[str, list[list[Any]]]) -> list[bytes]:
    return _frames([Kind.REPORT], encode_value(outcomes))


def declare(commands: dict[str, dict[str, Any]]) -> list[bytes]:
    return _frames([Kind.DECLARE], encode_value(commands))


def stats(rss_mb: float, beat: int = 0, holding: tuple[int, ...] | list[int] = ()) -> list[bytes]:
    """The held calls go in the payload: a busy worker's ids (9 bytes each) would not fit
    the header's MAX_HEADER_BYTES."""
    return _frames([Kind.STATS, round(rss_mb, 1), beat], encode_value(list(holding)))


def beat(number: int) -> list[bytes]:
    return _frames([Kind.BEAT, number])


def control(action: str, arguments: dict[str, Any] | None = None) -> list[bytes]:
    return _frames([Kind.CONTROL, action], encode_value(arguments or {}))


def control_reply(ok: bool, data: dict[str, Any]) -> list[bytes]:
    return _frames([Kind.CONTROL_REPLY, ok], encode_value(data))


#: Precomputed: the broker's beat to fronts goes out four times a second.
HEARTBEAT = signal(Kind.HEARTBEAT)
#: The broker's beat to fronts, on its events socket.
STATE_HEARTBEAT = [STATE_TOPIC, *HEARTBEAT]
