"""The wire protocol: every message between callers, the broker, workers and the CLI.

The only package that imports msgpack; this module re-exports its parts:
``messages`` (limits, kinds, decoded messages), ``values`` (payloads: arguments,
results, errors, batches), ``encoding`` (a function per kind), ``decoding`` (every field
checked, with ``fields``). A message is a list of frames (after any ROUTER identity)::

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

from shared.events import CALL_OUTCOMES, WORKER_OUTCOMES
from shared.protocol.messages import (
    COALESCE_ITEMS, MAX_BATCH, MAX_BEAT, MAX_CALL_ID, MAX_COALESCED, MAX_DECLARED_COMMANDS, MAX_HEADER_BYTES,
    MAX_NAME_CHARS, MAX_NESTING, MAX_PAYLOAD_BYTES, MAX_REPORT_OUTCOMES, MAX_SLOTS, MAX_TIMEOUT_MS, MAX_WINDOW_MS,
    METRICS_TOPIC, PROTOCOL,
    STATE_TOPIC, Batch, BatchRequest, Beat, BreakerChange, Call, Calls, Chaos, Collapsible, Control, ControlReply,
    Declare, Item, Kind, Message, Metrics, ProtocolError, Ready, Replies, Reply, Report, Request, Requests, Result,
    Results, Signal, Snapshot, Stats,
)
from shared.protocol.values import (
    FRAMING_BYTES_PER_CALL, decode_error, decode_value, encode_error, encode_value, pack_batch,
    pack_batch_results, split_by_size, undecodable_key, unpack_batch, unpack_batch_results,
)
from shared.protocol.encoding import (
    HEARTBEAT, STATE_HEARTBEAT, batch, batch_request, beat, breaker_change, call, calls, chaos, collapsible, control,
    control_reply, declare, fit, metrics, ready, replies, reply, report, request, requests, result, results, signal,
    snapshot, stats,
)
from shared.protocol.decoding import (
    DROPPED_LOG_INTERVAL_S, decode, decode_metrics, decode_or_log, log_malformed, log_unexpected,
)

__all__ = [
    "CALL_OUTCOMES", "WORKER_OUTCOMES", "PROTOCOL", "MAX_PAYLOAD_BYTES", "MAX_HEADER_BYTES", "MAX_NAME_CHARS",
    "MAX_TIMEOUT_MS", "MAX_SLOTS", "MAX_CALL_ID", "MAX_BEAT", "Beat", "beat", "MAX_NESTING", "Kind", "ProtocolError", "Request", "Reply",
    "Collapsible", "BatchRequest", "Batch", "Ready", "Call", "Result", "Requests", "Calls", "Replies",
    "Results", "Signal", "BreakerChange", "Snapshot", "Metrics", "Chaos", "Report", "Declare", "Stats", "Control",
    "ControlReply", "Message", "MAX_BATCH", "MAX_DECLARED_COMMANDS", "MAX_WINDOW_MS", "MAX_REPORT_OUTCOMES",
    "MAX_COALESCED",
    "COALESCE_ITEMS", "STATE_TOPIC", "METRICS_TOPIC", "Item", "encode_value", "undecodable_key", "decode_value", "encode_error",
    "decode_error", "pack_batch", "FRAMING_BYTES_PER_CALL", "split_by_size", "unpack_batch",
    "pack_batch_results", "unpack_batch_results", "request", "reply", "collapsible", "batch_request", "batch",
    "ready", "call", "result", "requests", "calls", "replies", "results", "signal", "breaker_change",
    "snapshot", "fit", "metrics", "chaos", "report", "declare", "stats", "control", "control_reply", "HEARTBEAT",
    "STATE_HEARTBEAT", "DROPPED_LOG_INTERVAL_S", "decode", "decode_or_log", "log_malformed", "log_unexpected", "decode_metrics",
]
