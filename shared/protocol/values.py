"""Payload values: a command's arguments, a result, an error, a batch of them.

Payloads are opaque to the broker: encoded by the caller or the worker, passed through.
"""

from __future__ import annotations

from typing import Any, Callable, TypeVar

import msgpack

from shared.events import WORKER_OUTCOMES, Event
from shared.protocol.fields import _SCALAR_TYPES, _outcome
from shared.protocol.messages import MAX_BATCH, MAX_PAYLOAD_BYTES, ProtocolError


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


def undecodable_key(value: Any) -> tuple[Any, ...] | None:
    """The first map key in ``value`` that would not decode, else None.

    msgpack packs a tuple key as an array, which decodes as a list, and no dict can hold
    a list: the receiver would fail, far from the sender's mistake. Call it on a value
    that packed (so its nesting is bounded); it walks only containers.
    """
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, tuple):
                return key
            if type(item) not in _SCALAR_TYPES and (found := undecodable_key(item)) is not None:
                return found
    elif isinstance(value, (list, tuple)):
        for item in value:
            if type(item) not in _SCALAR_TYPES and (found := undecodable_key(item)) is not None:
                return found
    return None


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
