"""The protocol's vocabulary: its limits, message kinds and decoded messages.

What every sender and receiver agrees on, without a byte of encoding: the encoders
(``encoding.py``) build frames for these kinds, the decoder (``decoding.py``) returns
these NamedTuples, and ``shared.protocol`` re-exports them all.
"""

from __future__ import annotations

import enum
from typing import Any, NamedTuple

from shared.events import Event

#: Protocol name and version: the first frame of every message. SW02: numbered broker
#: beats (BEAT) that a worker's STATS echoes with the calls it holds.
PROTOCOL = b"SW02"
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
#: Largest beat number: a broker starts its count at random below 2**40 (broker/beats.py).
MAX_BEAT = 2**48
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
    HEARTBEAT = 6  # broker PUB -> fronts: the broker is alive (workers get BEAT, and send STATS)
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
    BEAT = 26  # broker -> worker: its heartbeat, numbered; the worker's next STATS echoes the number
    DECLARE = 27  # caller -> broker: the class settings of the semaphore commands it runs


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


class Declare(NamedTuple):
    """What a worker's READY says of its commands, said by a caller of semaphore commands:
    no worker runs those, and their breakers are the broker's."""

    #: command key -> {setting name: value}, as Command.class_settings() gives them
    commands: dict[str, dict[str, Any]]


class Stats(NamedTuple):
    """A worker's heartbeat: its size, and what lets the broker find calls lost on the way
    to it (broker/beats.py)."""

    rss_mb: float
    #: the number of the last BEAT it heard (0: none yet)
    beat: int = 0
    #: every call it holds (running or about to): at most its slots
    holding: tuple[int, ...] = ()


class Beat(NamedTuple):
    number: int


class Control(NamedTuple):
    action: str
    arguments: dict[str, Any]


class ControlReply(NamedTuple):
    ok: bool
    data: dict[str, Any]


Message = (Request | Reply | Ready | Call | Result | Signal | Control | ControlReply | BreakerChange | Snapshot
           | Chaos | Report | Declare | Stats | Collapsible | BatchRequest | Batch | Metrics | Requests | Calls | Replies
           | Results | Beat)

#: Most commands in one DECLARE (a caller declares at most this many).
MAX_DECLARED_COMMANDS = 1000
#: Most settings one command's class may declare (READY, DECLARE): seawall has 14.
MAX_SETTINGS_PER_COMMAND = 50
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


#: One message to coalesce: its header fields after the kind, then its payload; e.g. a
#: reply's (call_id, outcome, execution_ms, payload).
Item = tuple[Any, ...]

