"""Hostile messages: valid seawall messages of every kind, and mutations of them.

A :class:`Fuzzer` draws a seed — a valid message built with ``shared.protocol``'s own
encoders — and mutates it: bits flipped, bytes inserted, deleted or cut off; frames
dropped, doubled, reordered, emptied, multiplied or taken from a message of another
kind; header and payload fields replaced with msgpack values of the wrong type or range
(huge and negative integers, NaN, nested maps, ext types, unknown kinds); the version
frame changed; a payload just over the protocol's limit. Every choice comes from one
``random.Random(seed)``, so a failing run reproduces from the seed printed with it.

Seeds name only decoy commands and pools (``FuzzCommand``, ``fuzzpool``) unless a target
asks for real ones, so whatever breaker the fuzz trips is its own.
"""

from __future__ import annotations

import math
import os
import random
from typing import Any, Callable, NamedTuple

import msgpack

from shared import protocol
from shared.events import Event
from shared.transport import MAX_MESSAGE_BYTES

Frames = list[bytes]

#: A pool no config names and no real worker serves: the broker rejects calls to it.
DECOY_POOL = "fuzzpool"
#: Command keys only the fuzz uses, so any breaker it trips is its own.
DECOY_COMMAND = "FuzzCommand"
DECOY_COLLAPSER = "FuzzCollapser"
#: Environment variable that sets the fuzz seed; the default keeps the suite deterministic.
SEED_ENV = "SEAWALL_FUZZ_SEED"
DEFAULT_SEED = 20_261_130
#: Share of messages sent as their seed, unmutated: valid messages from a hostile peer.
UNMUTATED_SHARE = 0.02
#: Share of mutated messages whose mutation starts with a structured one (fields, kinds).
STRUCTURED_SHARE = 0.5


#: Kinds with no fields (protocol.signal() makes them).
SIGNAL_KINDS = (protocol.Kind.HEARTBEAT, protocol.Kind.DRAINING, protocol.Kind.DRAIN_ACK, protocol.Kind.GOODBYE,
                protocol.Kind.RESET)


def fuzz_seed() -> int:
    return int(os.environ.get(SEED_ENV, DEFAULT_SEED))


class Seed(NamedTuple):
    """A valid message and its decoded parts, so a mutation can change one field."""

    name: str  # "REQUEST", "CALL Echo", ...
    frames: Frames
    header: list[Any]
    payload_value: Any  # the decoded payload; None when absent or not msgpack
    payload: bytes | None


class Fuzzed(NamedTuple):
    seed: str
    mutations: tuple[str, ...]
    frames: Frames


def make_seed(name: str, frames: Frames) -> Seed:
    if frames[0] != protocol.PROTOCOL:  # a PUB message: drop its topic frame
        frames = frames[1:]
    payload = frames[2] if len(frames) == 3 else None
    try:
        payload_value = None if payload is None else msgpack.unpackb(payload, raw=False, strict_map_key=False)
    except Exception:
        payload_value = None
    return Seed(name, list(frames), msgpack.unpackb(frames[1], raw=False), payload_value, payload)


# -- seed corpus: valid messages built by the protocol's own encoders -------------------


def _metrics_snapshot() -> dict[str, Any]:
    return {"broker": {"id": "fuzz", "host": "localhost", "pid": 1, "uptime_s": 1.0}, "time_ms": 1,
            "commands": {}, "pools": {}, "collapsers": {}}


def common_seeds() -> list[Seed]:
    """One or more valid messages of every kind, naming only decoy commands and pools."""
    args = protocol.encode_value({"x": 1})
    batch = protocol.pack_batch([protocol.encode_value({"x": 1}), protocol.encode_value({"x": 2})])
    decoy_key = f"commands.{DECOY_COMMAND}.timeout_s"
    built: dict[str, Frames] = {
        "REQUEST": protocol.request(1, DECOY_COMMAND, DECOY_POOL, 500, args),
        "REPLY": protocol.reply(1, Event.SUCCESS, 1.5, protocol.encode_value("ok")),
        "READY": protocol.ready(DECOY_POOL, 2, 4242, {DECOY_COMMAND: {"timeout_s": 0.5}}, running=(7,)),
        "CALL": protocol.call(2, DECOY_COMMAND, 500, args),
        "RESULT": protocol.result(2, Event.SUCCESS, 1.0, protocol.encode_value("ok")),
        "RESULT FAILURE": protocol.result(3, Event.FAILURE, 1.0, protocol.encode_error("ValueError", "no")),
        "REQUESTS": protocol.requests([(1, DECOY_COMMAND, DECOY_POOL, 500, args),
                                       (2, DECOY_COMMAND, DECOY_POOL, 250, args)])[0],
        "CALLS": protocol.calls([(2, DECOY_COMMAND, 500, args), (3, DECOY_COMMAND, 400, args)])[0],
        "REPLIES": protocol.replies([(1, Event.SUCCESS, 1.5, protocol.encode_value("ok")),
                                     (2, Event.TIMEOUT, 0.0, protocol.encode_error("Timeout", "late"))])[0],
        "RESULTS": protocol.results([(2, Event.SUCCESS, 1.0, protocol.encode_value("ok")),
                                     (3, Event.FAILURE, 1.0, protocol.encode_error("ValueError", "no")),
                                     (4, Event.SUCCESS, 0.5, protocol.encode_value(None))])[0],
        **{kind.name: protocol.signal(kind) for kind in SIGNAL_KINDS},
        "CONTROL ping": protocol.control("ping"),
        "CONTROL status": protocol.control("status"),
        "CONTROL config_set": protocol.control("config_set", {"key": decoy_key, "value": 0.5}),
        "CONTROL breaker": protocol.control("breaker", {"command": DECOY_COMMAND, "force": "open"}),
        "CONTROL chaos latency": protocol.control(
            "chaos", {"mode": "latency", "dependency": DECOY_POOL, "latency_ms": 5, "pct": 50}),
        "CONTROL chaos clear": protocol.control("chaos", {"mode": "clear", "dependency": DECOY_POOL}),
        "CONTROL chaos kill": protocol.control("chaos", {"mode": "kill", "dependency": DECOY_POOL}),
        "CONTROL_REPLY": protocol.control_reply(True, {"pong": True}),
        "BREAKER": protocol.breaker_change(DECOY_COMMAND, "OPEN", 500),
        "SNAPSHOT": protocol.snapshot({DECOY_COMMAND: ("OPEN", 500)}, {decoy_key: 0.5}),
        "METRICS": protocol.metrics(_metrics_snapshot()),
        "CHAOS": protocol.chaos({"latency_ms": 5.0, "latency_pct": 10.0}),
        "CHAOS kill": protocol.chaos({}, kill=True),
        "REPORT": protocol.report({DECOY_COMMAND: [["SUCCESS", 1.0], ["FAILURE", 2.5]]}),
        "DECLARE": protocol.declare({DECOY_COMMAND: {"timeout_s": 0.5, "breaker_volume_threshold": 4}}),
        "STATS": protocol.stats(12.5, 2**40, (2, 3)),
        "BEAT": protocol.beat(2**40),
        "COLLAPSIBLE": protocol.collapsible(4, DECOY_COLLAPSER, DECOY_POOL, 500, "", 5.0, 10, args),
        "BATCH_REQUEST": protocol.batch_request(5, DECOY_COLLAPSER, DECOY_POOL, 500, batch),
        "BATCH": protocol.batch(6, DECOY_COLLAPSER, 500, batch),
    }
    return [make_seed(name, frames) for name, frames in built.items()]


def _get_items() -> bytes:
    """A batch of two GetItem calls (tests/sample_commands.py); the second one fails."""
    return protocol.pack_batch([protocol.encode_value({"item_id": item_id, "marker_dir": ""}) for item_id in (1, -1)])


def front_seeds(pool: str) -> list[Seed]:
    """Calls that reach a real pool of tests/sample_commands.py (never Echo, the steady traffic's)."""
    items = _get_items()
    return common_seeds() + [
        make_seed(f"REQUEST WorkerPid@{pool}", protocol.request(11, "WorkerPid", pool, 500, protocol.encode_value({}))),
        make_seed(f"REQUEST {DECOY_COMMAND}@{pool}",
                  protocol.request(12, DECOY_COMMAND, pool, 500, protocol.encode_value({"x": 1}))),
        make_seed(f"COLLAPSIBLE GetItem@{pool}", protocol.collapsible(
            13, "GetItem", pool, 500, "", 2.0, 10, protocol.encode_value({"item_id": 3, "marker_dir": ""}))),
        make_seed(f"BATCH_REQUEST GetItem@{pool}", protocol.batch_request(14, "GetItem", pool, 500, items)),
    ]


def worker_seeds() -> list[Seed]:
    """What a broker sends a worker of pool "sample" (tests/sample_commands.py), and the rest."""
    items = _get_items()
    calls = {
        "CALL Echo": protocol.call(21, "Echo", 500, protocol.encode_value({"text": "fuzz"})),
        "CALL Fail": protocol.call(22, "Fail", 500, protocol.encode_value({"message": "fuzz"})),
        "CALL Invalid": protocol.call(23, "Invalid", 500, protocol.encode_value({})),
        "CALL WorkerPid": protocol.call(24, "WorkerPid", 500, protocol.encode_value({})),
        "BATCH GetItem": protocol.batch(25, "GetItem", 500, items),
        "BATCH Echo": protocol.batch(26, "Echo", 500, items),
        "CHAOS clear": protocol.chaos({}),
    }
    return common_seeds() + [make_seed(name, frames) for name, frames in calls.items()]


# -- hostile values: msgpack-able, of the wrong type or range ------------------------------

_INTS = (0, 1, -1, 127, 128, 255, 256, 65_535, 65_536, 2**31 - 1, 2**31, -2**31, 2**32, 2**53 + 1,
         2**63 - 1, 2**63, 2**64 - 1, -2**63, 3_600_000, 3_600_001, 10_000, 10_001)
_FLOATS = (math.nan, math.inf, -math.inf, -0.0, 0.0, 1e308, -1e308, 5e-324, 0.5, -1.5, 3.6e6, 3.6e7 + 1.0)
_STRINGS = ("", " ", "x" * 200, "x" * 201, "é" * 150, "\x00", "SW01", "../../etc/passwd", "os.system",
            "__import__", "pickle.loads", "OPEN", "HALF_OPEN", "SUCCESS", "FAILURE", "TIMEOUT", "WORKER_LOST",
            "status", "ping", "chaos", "config_set", "breaker", "clear", "kill", "latency", "open", "auto",
            "commands..timeout_s", "commands.FuzzCommand.no_such_setting", "timeout_s", "latency_ms", "mode",
            "dependency", DECOY_COMMAND, DECOY_POOL, "\U0001f30a" * 60)
_BYTES = (b"", b"\x00", b"\xc1", b"\x80", bytes(range(256)), protocol.PROTOCOL)


def _alphabet() -> list[str]:
    """Printable ASCII but "/" (a string may become a path a test command writes to), then
    characters from every plane but lone surrogates (msgpack cannot carry them)."""
    sampler = random.Random(0)
    ranges = ((0x80, 0xD7FF), (0xE000, 0xFFFF), (0x10000, 0x10FFFF))
    return [chr(code) for code in range(32, 127) if chr(code) != "/"] + [
        chr(sampler.randint(*sampler.choice(ranges))) for _ in range(400)]


_ALPHABET = _alphabet()


def _random_text(rng: random.Random, length: int) -> str:
    return "".join(rng.choices(_ALPHABET, k=length))


def _scalar(rng: random.Random) -> Any:
    roll = rng.randrange(12)
    if roll < 3:
        return rng.choice(_INTS) if rng.random() < 0.7 else rng.randint(-2**63, 2**64 - 1)
    if roll < 5:
        return rng.choice(_FLOATS) if rng.random() < 0.7 else rng.uniform(-1e9, 1e9)
    if roll < 8:
        return rng.choice(_STRINGS) if rng.random() < 0.7 else _random_text(rng, rng.randint(0, 300))
    if roll == 8:
        return rng.choice(_BYTES) if rng.random() < 0.7 else rng.randbytes(rng.randint(0, 64))
    if roll == 9:
        return rng.choice((True, False, None))
    if roll == 10:
        return msgpack.ExtType(rng.randint(0, 127), rng.randbytes(rng.randint(0, 16)))
    return msgpack.Timestamp(rng.randint(0, 2**34 - 1), rng.randint(0, 999_999_999))


def _deep(rng: random.Random) -> Any:
    value: Any = _scalar(rng)
    for _ in range(rng.randint(10, 200)):
        value = [value] if rng.random() < 0.5 else {"a": value}
    return value


def hostile_value(rng: random.Random, depth: int = 0) -> Any:
    """A msgpack-able value chosen to break a field: wrong type, out of range, nested, huge."""
    roll = rng.random()
    if depth >= 3 or roll < 0.6:
        return _scalar(rng)
    if roll < 0.75:
        return [hostile_value(rng, depth + 1) for _ in range(rng.randint(0, 5))]
    if roll < 0.9:
        keys = (_scalar(rng) for _ in range(rng.randint(0, 5)))
        return {key: hostile_value(rng, depth + 1) for key in keys if _hashable(key)}
    if roll < 0.95:
        return _deep(rng)
    return [rng.choice(_INTS)] * rng.randint(100, 3000)


def _hashable(value: Any) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return not isinstance(value, float) or not math.isnan(value)  # NaN keys do not compare equal


def _pack(value: Any) -> bytes:
    return msgpack.packb(value, use_bin_type=True)


# -- structured mutations: change one field of a seed, re-encode --------------------------


_KEEP: Any = object()


def _with(seed: Seed, header: Any = _KEEP, payload: Any = _KEEP) -> Frames:
    """The seed's frames with another header (a value to pack) and/or payload (bytes, or None for none)."""
    frames = [protocol.PROTOCOL, seed.frames[1] if header is _KEEP else _pack(header)]
    payload = seed.payload if payload is _KEEP else payload
    return frames if payload is None else [*frames, payload]


def header_field(rng: random.Random, seed: Seed) -> Frames:
    header = list(seed.header)
    if len(header) == 1:
        header.append(hostile_value(rng))
    else:
        header[rng.randrange(1, len(header))] = hostile_value(rng)
    return _with(seed, header)


def header_kind(rng: random.Random, seed: Seed) -> Frames:
    """An unknown kind number, a kind of the wrong type, or another kind with these fields."""
    unknown = max(protocol.Kind) + 1
    header = list(seed.header)
    header[0] = rng.choice([0, -1, unknown, unknown + 1, 127, 128, 255, 256, 2**32, 2**64 - 1, "1", 1.0, True,
                            None, b"\x01", [1], {"kind": 1}, *protocol.Kind])
    return _with(seed, header)


def header_arity(rng: random.Random, seed: Seed) -> Frames:
    header = list(seed.header)
    if rng.random() < 0.5:
        header.extend(hostile_value(rng) for _ in range(rng.randint(1, 3)))
    else:
        del header[rng.randint(0, len(header) - 1):]
    return _with(seed, header)


def header_shape(rng: random.Random, seed: Seed) -> Frames:
    """A header that is not an array of fields, or one over the header size limit."""
    kind = seed.header[0]
    shapes = [{}, {"kind": kind}, kind, protocol.Kind(kind).name, None, [], b"\x01", hostile_value(rng),
              [kind] + [2**63 - 1] * rng.randint(500, 1500)]  # over MAX_HEADER_BYTES
    return _with(seed, rng.choice(shapes))


def _deep_bytes(rng: random.Random) -> bytes:
    """Arrays nested deeper than Python's recursion limit and as deep as msgpack allows, or deeper."""
    return b"\x91" * (rng.randint(900, 1020) if rng.random() < 0.8 else rng.randint(1020, 4000)) + b"\xc0"


def _msgpack_trick(rng: random.Random, valid: bytes) -> bytes:
    """Bytes that trip msgpack parsers: deep nesting, lengths the data does not have, the
    reserved byte, invalid UTF-8, a cut-off or over-long copy of ``valid``."""
    return rng.choice([
        _deep_bytes(rng),
        b"\xdd\xff\xff\xff\xff",
        b"\xdf\xff\xff\xff\xff",
        b"\xdb\xff\xff\xff\xff" + b"x" * 8,
        b"\xc6\x7f\xff\xff\xff",
        b"\xc1",
        b"\xa3\xff\xfe\xfd",
        b"\x95\x01",
        valid + b"\x00",
        valid[:-1],
        b"\xd4\xff\x00",  # an ext type -1 (timestamp) of the wrong length
    ])


def _array_with_raw(items: list[Any], index: int, raw: bytes) -> bytes:
    """msgpack of ``items`` with item ``index`` replaced by ready-made bytes."""
    packer = msgpack.Packer(use_bin_type=True)
    return packer.pack_array_header(len(items)) + b"".join(
        raw if position == index else packer.pack(item) for position, item in enumerate(items))


def _map_with_raw(entries: dict[Any, Any], key: Any, raw: bytes) -> bytes:
    """msgpack of ``entries`` with the value of ``key`` replaced by ready-made bytes."""
    packer = msgpack.Packer(use_bin_type=True)
    return packer.pack_map_header(len(entries)) + b"".join(
        packer.pack(name) + (raw if name == key else packer.pack(value)) for name, value in entries.items())


def header_bytes(rng: random.Random, seed: Seed) -> Frames:
    """A header msgpack chokes on, or whose field is nested past Python's recursion limit."""
    frames = list(seed.frames)
    if rng.random() < 0.5 and len(seed.header) > 1:
        frames[1] = _array_with_raw(seed.header, rng.randrange(1, len(seed.header)), _deep_bytes(rng))
    else:
        frames[1] = _msgpack_trick(rng, frames[1])
    return frames


def payload_field(rng: random.Random, seed: Seed) -> Frames:
    """Change one entry of a map or array payload; any other payload becomes a hostile value."""
    value = seed.payload_value
    if isinstance(value, dict) and value:
        value = dict(value)
        key = rng.choice(list(value))
        operation = rng.randrange(5)
        if operation == 4:
            return _with(seed, payload=_map_with_raw(value, key, _deep_bytes(rng)))
        if operation == 0:
            value[key] = hostile_value(rng)
        elif operation == 1:
            del value[key]
        elif operation == 2:
            new_key = _scalar(rng)
            if _hashable(new_key):
                value[new_key] = hostile_value(rng)
        else:
            inner = value[key]
            if isinstance(inner, dict) and inner:
                value[key] = {**inner, rng.choice(list(inner)): hostile_value(rng)}
            elif isinstance(inner, list) and inner:
                value[key] = [hostile_value(rng) if rng.random() < 0.5 else item for item in inner]
            else:
                value[key] = hostile_value(rng)
    elif isinstance(value, list) and value:
        value = list(value)
        value[rng.randrange(len(value))] = hostile_value(rng)
    else:
        value = hostile_value(rng)
    return _with(seed, payload=_pack(value))


def payload_replace(rng: random.Random, seed: Seed) -> Frames:
    choice = rng.randrange(5)
    if choice == 0:
        return _with(seed, payload=None)  # no payload frame
    if choice == 1:
        return _with(seed, payload=b"")
    if choice == 2:
        return _with(seed, payload=rng.randbytes(rng.randint(1, 64)))
    if choice == 3:
        return _with(seed, payload=_msgpack_trick(rng, seed.payload or b"\x80"))
    return _with(seed, payload=_pack(hostile_value(rng)))


def payload_size(rng: random.Random, seed: Seed) -> Frames:
    """A payload just over the protocol's limit (still under the socket's), or exactly at it."""
    size = protocol.MAX_PAYLOAD_BYTES + rng.randint(1, 100) if rng.random() < 0.8 else protocol.MAX_PAYLOAD_BYTES
    return _with(seed, payload=b"\xc6" + (size - 5).to_bytes(4, "big") + bytes(size - 5))  # msgpack bin 32


# -- byte-level mutations: any frames in, frames out ---------------------------------------


def _pick(rng: random.Random, frames: Frames) -> int:
    return rng.randrange(len(frames))


def bit_flip(rng: random.Random, frames: Frames, others: list[Seed]) -> Frames:
    index = _pick(rng, frames)
    frame = bytearray(frames[index])
    for _ in range(rng.randint(1, 4)):
        if frame:
            frame[rng.randrange(len(frame))] ^= 1 << rng.randrange(8)
    return [*frames[:index], bytes(frame), *frames[index + 1:]]


def byte_insert(rng: random.Random, frames: Frames, others: list[Seed]) -> Frames:
    index = _pick(rng, frames)
    frame = frames[index]
    at = rng.randint(0, len(frame))
    return [*frames[:index], frame[:at] + rng.randbytes(rng.randint(1, 8)) + frame[at:], *frames[index + 1:]]


def byte_delete(rng: random.Random, frames: Frames, others: list[Seed]) -> Frames:
    index = _pick(rng, frames)
    frame = frames[index]
    if not frame:
        return frames
    at = rng.randrange(len(frame))
    return [*frames[:index], frame[:at] + frame[at + rng.randint(1, 8):], *frames[index + 1:]]


def truncate(rng: random.Random, frames: Frames, others: list[Seed]) -> Frames:
    index = _pick(rng, frames)
    return [*frames[:index], frames[index][:rng.randint(0, max(0, len(frames[index]) - 1))], *frames[index + 1:]]


def extend(rng: random.Random, frames: Frames, others: list[Seed]) -> Frames:
    index = _pick(rng, frames)
    return [*frames[:index], frames[index] + rng.randbytes(rng.randint(1, 16)), *frames[index + 1:]]


def frame_drop(rng: random.Random, frames: Frames, others: list[Seed]) -> Frames:
    index = _pick(rng, frames)
    return [*frames[:index], *frames[index + 1:]] or [b""]


def frame_duplicate(rng: random.Random, frames: Frames, others: list[Seed]) -> Frames:
    index = _pick(rng, frames)
    return [*frames[:index + 1], frames[index], *frames[index + 1:]]


def frame_reorder(rng: random.Random, frames: Frames, others: list[Seed]) -> Frames:
    shuffled = list(frames)
    rng.shuffle(shuffled)
    return shuffled


def frame_swap(rng: random.Random, frames: Frames, others: list[Seed]) -> Frames:
    """A frame taken from a message of another kind: one kind's header with another's payload."""
    other = rng.choice(others).frames
    index = rng.randrange(min(len(frames), len(other)))
    return [*frames[:index], other[index], *frames[index + 1:]]


def empty_frame(rng: random.Random, frames: Frames, others: list[Seed]) -> Frames:
    index = rng.randint(0, len(frames))
    if rng.random() < 0.5 and index < len(frames):
        return [*frames[:index], b"", *frames[index + 1:]]
    return [*frames[:index], b"", *frames[index:]]


def many_frames(rng: random.Random, frames: Frames, others: list[Seed]) -> Frames:
    extra = rng.choices((b"", frames[-1], rng.randbytes(rng.randint(1, 8))), k=rng.randint(2, 300))
    return [*frames, *extra]


def version(rng: random.Random, frames: Frames, others: list[Seed]) -> Frames:
    wrong = rng.choice([b"", b"SW00", b"SW02", b"sw01", b"SW01\x00", b"SW0", b"state", b"metrics", b"\xff" * 4,
                        protocol.PROTOCOL * 2, rng.randbytes(4)])
    return [wrong, *frames[1:]]


StructuredMutation = Callable[[random.Random, Seed], Frames]
ByteMutation = Callable[[random.Random, Frames, list[Seed]], Frames]

#: Mutations and their weights; payload_size is rare as each one is a megabyte on the wire.
STRUCTURED: dict[StructuredMutation, float] = {
    header_field: 30, header_kind: 10, header_arity: 10, header_shape: 5, header_bytes: 5,
    payload_field: 25, payload_replace: 10, payload_size: 0.1,
}
BYTE_LEVEL: dict[ByteMutation, float] = {
    bit_flip: 20, byte_insert: 10, byte_delete: 10, truncate: 10, extend: 5, frame_drop: 8,
    frame_duplicate: 5, frame_reorder: 5, frame_swap: 8, empty_frame: 5, many_frames: 3, version: 5,
}


class Fuzzer:
    """Fuzzed messages drawn from ``seeds``; the same ``seed`` gives the same stream."""

    def __init__(self, seeds: list[Seed], seed: int) -> None:
        self.seeds = seeds
        self.seed = seed
        self.rng = random.Random(seed)
        self._structured = (list(STRUCTURED), list(_cumulative(STRUCTURED.values())))
        self._byte_level = (list(BYTE_LEVEL), list(_cumulative(BYTE_LEVEL.values())))

    def next(self) -> Fuzzed:
        rng = self.rng
        seed = rng.choice(self.seeds)
        if rng.random() < UNMUTATED_SHARE:
            return Fuzzed(seed.name, (), list(seed.frames))
        applied = []
        frames = seed.frames
        if rng.random() < STRUCTURED_SHARE:
            mutation = rng.choices(self._structured[0], cum_weights=self._structured[1])[0]
            frames = mutation(rng, seed)
            applied.append(mutation.__name__)
        for _ in range(rng.choice((0, 1, 1, 2) if applied else (1, 1, 2, 3))):
            mutation = rng.choices(self._byte_level[0], cum_weights=self._byte_level[1])[0]
            frames = mutation(rng, frames, self.seeds)
            applied.append(mutation.__name__)
        return Fuzzed(seed.name, tuple(applied), frames)


def _cumulative(weights: Any) -> list[float]:
    total, out = 0.0, []
    for weight in weights:
        total += weight
        out.append(total)
    return out


def oversize_frames(seed: Seed) -> Frames:
    """The seed with a payload one byte over what the receiving socket accepts at all."""
    return _with(seed, payload=bytes(MAX_MESSAGE_BYTES + 1))


def decoded(fuzzed: Fuzzed) -> protocol.Message | None:
    """What the receiver will make of the message: the message, or None if it is dropped.

    Any exception but :class:`ProtocolError` is a bug in ``protocol.decode``; it is raised
    with what reproduces it.
    """
    try:
        return protocol.decode(fuzzed.frames)
    except protocol.ProtocolError:
        return None
    except Exception as exc:
        raise AssertionError(f"protocol.decode raised {type(exc).__name__}: {exc} on {fuzzed!r:.2000}") from exc
