"""The wire protocol: every kind round-trips, and every malformed message is a ProtocolError."""

from __future__ import annotations

import datetime
from typing import Any

import msgpack
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from shared import protocol
from shared.events import Event
from shared.log_throttle import LogThrottle
from shared.protocol import PROTOCOL, Kind, ProtocolError

SIGNAL_KINDS = [Kind.HEARTBEAT, Kind.DRAINING, Kind.DRAIN_ACK, Kind.GOODBYE, Kind.RESET]


def frames_of(header: Any, payload: bytes | None = None) -> list[bytes]:
    """A message with a hand-made header behind a correct protocol frame."""
    packed = msgpack.packb(header, use_bin_type=True)
    return [PROTOCOL, packed] if payload is None else [PROTOCOL, packed, payload]


def ready_body(commands: Any, running: Any = ()) -> bytes:
    """A READY's payload: its commands and the calls it still runs."""
    return protocol.encode_value({"commands": commands, "running": list(running)})


def request_header(**fields: Any) -> list[Any]:
    values = {"call_id": 7, "command": "GetRatings", "dependency": "ratings", "timeout_ms": 1000, **fields}
    return [Kind.REQUEST, values["call_id"], values["command"], values["dependency"], values["timeout_ms"]]


def decode_error_text(frames: list[bytes]) -> str:
    with pytest.raises(ProtocolError) as caught:
        protocol.decode(frames)
    return str(caught.value)


class RecordingLogger:
    """Stands in for a structlog logger: keeps what was logged."""

    def __init__(self) -> None:
        self.warnings: list[tuple[str, dict[str, Any]]] = []

    def warning(self, event: str, **fields: Any) -> None:
        self.warnings.append((event, fields))


# -- round trips ---------------------------------------------------------------------


def test_request_round_trips():
    frames = protocol.request(7, "GetRatings", "ratings", 1500, b"\x81\xa1a\x01")

    assert protocol.decode(frames) == protocol.Request(7, "GetRatings", "ratings", 1500, b"\x81\xa1a\x01")


def test_reply_round_trips():
    frames = protocol.reply(7, Event.TIMEOUT, 12.5, b"payload")

    assert protocol.decode(frames) == protocol.Reply(7, Event.TIMEOUT, 12.5, b"payload")


def test_ready_round_trips():
    commands = {"GetRatings": {"timeout_s": 0.5}, "PutRating": {}}

    assert protocol.decode(protocol.ready("ratings", 4, 4242, commands)) == protocol.Ready("ratings", 4, 4242, commands)


def test_stats_round_trip_with_the_beat_heard_and_the_calls_held():
    frames = protocol.stats(41.27, 2**40 + 3, (7, 9))

    assert protocol.decode(frames) == protocol.Stats(41.3, 2**40 + 3, (7, 9))


def test_declare_round_trips_and_is_bounded():
    commands = {"InMemory": {"breaker_volume_threshold": 4, "timeout_s": 0.2}}
    assert protocol.decode(protocol.declare(commands)) == protocol.Declare(commands)
    too_many = {f"C{index}": {} for index in range(protocol.MAX_DECLARED_COMMANDS + 1)}
    with pytest.raises(protocol.ProtocolError, match="at most 1000 commands"):
        protocol.decode(protocol.declare(too_many))
    with pytest.raises(protocol.ProtocolError, match="settings of command 'InMemory' must be a map of at most 50 names"):
        protocol.decode(protocol.declare({"InMemory": [1]}))
    with pytest.raises(protocol.ProtocolError, match="must be a map of at most 50 names"):
        protocol.decode(protocol.declare({"InMemory": {1: 2}}))
    with pytest.raises(protocol.ProtocolError, match="must be a map of at most 50 names"):
        protocol.decode(protocol.declare({"InMemory": {f"made_up_{n}": n for n in range(51)}}))


def test_beat_round_trips():
    assert protocol.decode(protocol.beat(2**40)) == protocol.Beat(2**40)


@pytest.mark.parametrize(
    ("header", "held", "problem"),
    [
        ([Kind.STATS, 12.5, -1], [], f"beat must be an integer in [0, {protocol.MAX_BEAT}], got -1"),
        ([Kind.STATS, 12.5, 3], [1, "2"], "holding call id must be an integer in [0, 9223372036854775807], got '2'"),
        ([Kind.STATS, 12.5, 3], {"1": 1}, f"holding must be a list of at most {protocol.MAX_SLOTS} call ids"),
        ([Kind.STATS, 12.5, 3], list(range(protocol.MAX_SLOTS + 1)),
         f"holding must be a list of at most {protocol.MAX_SLOTS} call ids"),
        ([Kind.STATS, 12.5], None, "expected fields rss_mb, beat, got 1 fields"),
        ([Kind.STATS, 12.5, 3], None, "payload frame is missing"),
        ([Kind.BEAT, True], None, f"number must be an integer in [0, {protocol.MAX_BEAT}], got True"),
        ([Kind.BEAT, protocol.MAX_BEAT + 1], None,
         f"number must be an integer in [0, {protocol.MAX_BEAT}], got {protocol.MAX_BEAT + 1}"),
    ],
    ids=["negative beat", "a held id that is not an int", "holding not a list", "holding more than any worker's slots",
         "an SW01 stats", "no held calls", "a bool beat", "a beat past its range"],
)
def test_bad_beat_and_stats_fields_are_rejected(header, held, problem):
    frames = frames_of(header, None if held is None else protocol.encode_value(held))

    assert decode_error_text(frames) == f"{Kind(header[0]).name}: {problem}"


def test_stats_hold_as_many_calls_as_a_worker_may_have_slots():
    held = tuple(range(2**62, 2**62 + protocol.MAX_SLOTS))

    assert protocol.decode(protocol.stats(1.0, 5, held)).holding == held


def test_a_ready_names_as_many_running_calls_as_a_worker_may_have_slots():
    running = tuple(range(2**62, 2**62 + protocol.MAX_SLOTS))

    assert protocol.decode(protocol.ready("ratings", protocol.MAX_SLOTS, 4242, {}, running)).running == running


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ({"commands": {}}, "payload must be a map of commands and running, got keys ['commands']"),
        ({"commands": ["GetRatings"], "running": []}, "commands must be a map of command names"),
        ({"commands": {}, "running": [-1]}, "running call id must be an integer in [0, 9223372036854775807], got -1"),
    ],
    ids=["no running", "commands not a map", "a negative running id"],
)
def test_bad_ready_bodies_are_rejected(body, problem):
    frames = frames_of([Kind.READY, "ratings", 4, 4242], protocol.encode_value(body))

    assert decode_error_text(frames) == f"READY: {problem}"


def test_call_round_trips():
    frames = protocol.call(7, "GetRatings", 900, b"args")

    assert protocol.decode(frames) == protocol.Call(7, "GetRatings", 900, b"args")


def test_result_round_trips():
    frames = protocol.result(7, Event.BAD_REQUEST, 3.25, b"error")

    assert protocol.decode(frames) == protocol.Result(7, Event.BAD_REQUEST, 3.25, b"error")


@pytest.mark.parametrize("kind", SIGNAL_KINDS, ids=lambda kind: kind.name)
def test_signal_round_trips(kind):
    assert protocol.decode(protocol.signal(kind)) == protocol.Signal(kind)


def test_breaker_change_round_trips_behind_its_topic():
    topic, *frames = protocol.breaker_change("GetRatings", "OPEN", 5000)

    assert topic == protocol.STATE_TOPIC
    assert protocol.decode(frames) == protocol.BreakerChange("GetRatings", "OPEN", 5000)


def test_snapshot_round_trips_behind_its_topic():
    topic, *frames = protocol.snapshot({"GetRatings": ("HALF_OPEN", 0)}, {"defaults.timeout_s": 2.0})

    assert topic == protocol.STATE_TOPIC
    assert protocol.decode(frames) == protocol.Snapshot({"GetRatings": ("HALF_OPEN", 0)}, {"defaults.timeout_s": 2.0})


def test_precomputed_heartbeat_decodes_as_a_heartbeat_signal():
    assert protocol.decode(protocol.HEARTBEAT) == protocol.Signal(Kind.HEARTBEAT)


def test_control_round_trips():
    frames = protocol.control("open_breaker", {"command": "GetRatings", "seconds": 30})

    assert protocol.decode(frames) == protocol.Control("open_breaker", {"command": "GetRatings", "seconds": 30})


def test_control_without_arguments_decodes_to_an_empty_map():
    assert protocol.decode(protocol.control("status")) == protocol.Control("status", {})


def test_control_reply_round_trips():
    frames = protocol.control_reply(False, {"error": "no such pool"})

    assert protocol.decode(frames) == protocol.ControlReply(False, {"error": "no such pool"})


def test_integer_execution_ms_decodes_as_a_float():
    decoded = protocol.decode(protocol.result(1, Event.SUCCESS, 3, b""))

    assert decoded.execution_ms == 3.0 and type(decoded.execution_ms) is float


def test_signal_refuses_a_kind_that_has_fields():
    with pytest.raises(ValueError, match="REQUEST is not a signal"):
        protocol.signal(Kind.REQUEST)


# -- malformed frames and headers ----------------------------------------------------


@pytest.mark.parametrize("count", [0, 1, 4])
def test_wrong_frame_count_is_rejected(count):
    frames = [PROTOCOL, b"\x91\x06", b"", b""][:count]

    assert decode_error_text(frames) == f"expected 2 or 3 frames, got {count}"


def test_wrong_protocol_frame_is_rejected_naming_both_versions():
    frames = [b"SW01", *protocol.HEARTBEAT[1:]]

    assert decode_error_text(frames) == "protocol frame is b'SW01', expected b'SW02'"


def test_header_that_is_not_msgpack_is_rejected():
    assert decode_error_text([PROTOCOL, b"\xc1"]).startswith("header is not valid msgpack")


def test_header_that_is_a_map_is_rejected():
    assert decode_error_text(frames_of({"kind": 6})) == "header must be a non-empty array, got {'kind': 6}"


def test_empty_header_array_is_rejected():
    assert decode_error_text(frames_of([])) == "header must be a non-empty array, got []"


@pytest.mark.parametrize("kind", [0, 99, -1, "REQUEST", None])
def test_unknown_kind_is_rejected(kind):
    assert decode_error_text(frames_of([kind])) == f"unknown message kind {kind!r}"


@pytest.mark.parametrize("kind", [True, 1.0], ids=repr)
def test_kind_that_is_not_an_int_is_rejected(kind):
    frames = frames_of([kind, 7, "GetRatings", "ratings", 1000], b"\x80")

    assert decode_error_text(frames) == f"unknown message kind {kind!r}"


def test_header_over_the_size_limit_is_rejected():
    header = b"\x00" * (protocol.MAX_HEADER_BYTES + 1)

    assert decode_error_text([PROTOCOL, header]) == f"header of 4097 bytes is over {protocol.MAX_HEADER_BYTES}"


# -- malformed fields ----------------------------------------------------------------


def test_too_few_fields_are_rejected_naming_the_expected_fields():
    frames = frames_of([Kind.REQUEST, 7, "GetRatings"], b"")

    assert decode_error_text(frames) == (
        "REQUEST: expected fields call_id, command, dependency, timeout_ms, got 2 fields"
    )


def test_fields_on_a_signal_are_rejected():
    assert decode_error_text(frames_of([Kind.HEARTBEAT, 1])) == "HEARTBEAT: expected fields (none), got 1 fields"


def test_string_call_id_is_rejected():
    frames = frames_of(request_header(call_id="7"), b"")

    assert decode_error_text(frames) == (
        f"REQUEST: call_id must be an integer in [0, {protocol.MAX_CALL_ID}], got '7'"
    )


def test_float_timeout_is_rejected():
    frames = frames_of(request_header(timeout_ms=1000.0), b"")

    assert "timeout_ms must be an integer" in decode_error_text(frames)


def test_bool_call_id_is_rejected():
    frames = frames_of(request_header(call_id=True), b"")

    assert decode_error_text(frames) == (
        f"REQUEST: call_id must be an integer in [0, {protocol.MAX_CALL_ID}], got True"
    )


def test_bool_slots_are_rejected():
    frames = frames_of([Kind.READY, "ratings", True, 4242], ready_body({}))

    assert decode_error_text(frames) == f"READY: slots must be an integer in [1, {protocol.MAX_SLOTS}], got True"


@pytest.mark.parametrize(
    ("header", "problem"),
    [
        (request_header(call_id=-1), "call_id must be an integer in [0, 9223372036854775807], got -1"),
        (request_header(call_id=2**63), "call_id must be an integer in [0, 9223372036854775807], got 9223372036854775808"),
        (request_header(timeout_ms=0), "timeout_ms must be an integer in [1, 3600000], got 0"),
        (request_header(timeout_ms=3_600_001), "timeout_ms must be an integer in [1, 3600000], got 3600001"),
    ],
    ids=["negative call_id", "call_id over 63 bits", "zero timeout", "timeout over an hour"],
)
def test_out_of_range_request_ints_are_rejected(header, problem):
    assert decode_error_text(frames_of(header, b"")) == f"REQUEST: {problem}"


@pytest.mark.parametrize("slots", [0, protocol.MAX_SLOTS + 1])
def test_out_of_range_slots_are_rejected(slots):
    frames = frames_of([Kind.READY, "ratings", slots, 4242], ready_body({}))

    assert decode_error_text(frames) == f"READY: slots must be an integer in [1, 10000], got {slots}"


def test_non_string_name_is_rejected():
    frames = frames_of(request_header(command=5), b"")

    assert decode_error_text(frames) == "REQUEST: command must be a name of 1-200 characters, got 5"


def test_empty_name_is_rejected():
    frames = frames_of(request_header(dependency=""), b"")

    assert decode_error_text(frames) == "REQUEST: dependency must be a name of 1-200 characters, got ''"


def test_name_over_the_length_limit_is_rejected():
    frames = frames_of(request_header(command="x" * (protocol.MAX_NAME_CHARS + 1)), b"")

    assert decode_error_text(frames).startswith("REQUEST: command must be a name of 1-200 characters, got 'xxx")


def test_name_at_the_length_limit_is_accepted():
    frames = frames_of(request_header(command="x" * protocol.MAX_NAME_CHARS), b"")

    assert protocol.decode(frames).command == "x" * protocol.MAX_NAME_CHARS


def test_ready_commands_that_are_not_a_map_are_rejected():
    frames = frames_of([Kind.READY, "ratings", 4, 4242], protocol.encode_value(["GetRatings"]))

    assert decode_error_text(frames) == "READY: payload must be a map, got list"


def test_ready_command_that_is_not_a_name_is_rejected():
    frames = frames_of([Kind.READY, "ratings", 4, 4242], ready_body({"GetRatings": {}, "": {}}))

    assert decode_error_text(frames) == "READY: command must be a name of 1-200 characters, got ''"


def test_ready_command_settings_that_are_not_a_map_of_names_are_rejected():
    frames = frames_of([Kind.READY, "ratings", 4, 4242], ready_body({"GetRatings": {1: 0.5}}))

    assert decode_error_text(frames) == "READY: settings of command 'GetRatings' must be a map of at most 50 names"


def test_unknown_breaker_state_is_rejected():
    frames = frames_of([Kind.BREAKER, "GetRatings", "AJAR", 0])

    assert decode_error_text(frames) == "BREAKER: state must be one of ['CLOSED', 'HALF_OPEN', 'OPEN'], got 'AJAR'"


def test_negative_breaker_retry_is_rejected():
    frames = frames_of([Kind.BREAKER, "GetRatings", "OPEN", -1])

    assert decode_error_text(frames) == "BREAKER: retry_in_ms must be an integer in [0, 3600000], got -1"


def test_breaker_state_that_is_a_list_is_rejected():
    frames = frames_of([Kind.BREAKER, "GetRatings", ["OPEN"], 0])

    assert decode_error_text(frames) == "BREAKER: state must be one of ['CLOSED', 'HALF_OPEN', 'OPEN'], got ['OPEN']"


def test_snapshot_without_its_maps_is_rejected():
    frames = frames_of([Kind.SNAPSHOT], protocol.encode_value({"breakers": {}}))

    assert decode_error_text(frames) == "SNAPSHOT: snapshot must hold maps 'breakers' and 'overrides'"


def test_snapshot_breaker_entry_that_is_not_a_pair_is_rejected():
    frames = frames_of([Kind.SNAPSHOT], protocol.encode_value({"breakers": {"GetRatings": "OPEN"}, "overrides": {}}))

    assert decode_error_text(frames) == "SNAPSHOT: breaker 'GetRatings' must be [state, retry_in_ms]"


def test_snapshot_breaker_state_that_is_a_list_is_rejected():
    breakers = {"GetRatings": [["OPEN"], 0]}
    frames = frames_of([Kind.SNAPSHOT], protocol.encode_value({"breakers": breakers, "overrides": {}}))

    assert decode_error_text(frames) == "SNAPSHOT: breaker 'GetRatings' must be [state, retry_in_ms]"


def test_unknown_outcome_is_rejected():
    frames = frames_of([Kind.REPLY, 7, "EXPLODED", 1.0], b"")

    assert decode_error_text(frames) == (
        "REPLY: outcome must be one of BAD_REQUEST, FAILURE, SHORT_CIRCUITED, SUCCESS, "
        "THREAD_POOL_REJECTED, TIMEOUT, WORKER_LOST, got 'EXPLODED'")


def test_worker_may_not_report_a_broker_only_outcome():
    frames = frames_of([Kind.RESULT, 7, "SHORT_CIRCUITED", 1.0], b"")

    error = decode_error_text(frames)

    assert error == "RESULT: outcome must be one of BAD_REQUEST, FAILURE, SUCCESS, TIMEOUT, got 'SHORT_CIRCUITED'"
    assert "SUCCESS" in error and "SHORT_CIRCUITED" not in error.split(", got")[0]


@pytest.mark.parametrize("execution_ms", [-1, "3", True, float("nan")], ids=repr)
def test_bad_execution_ms_is_rejected(execution_ms):
    frames = frames_of([Kind.RESULT, 7, "SUCCESS", execution_ms], b"")

    assert decode_error_text(frames) == f"RESULT: execution_ms must be a non-negative number, got {execution_ms!r}"


def test_control_reply_with_int_for_ok_is_rejected():
    frames = frames_of([Kind.CONTROL_REPLY, 1], protocol.encode_value({}))

    assert decode_error_text(frames) == "CONTROL_REPLY: ok must be a boolean, got 1"


# -- malformed payloads --------------------------------------------------------------


@pytest.mark.parametrize(
    "frames",
    [
        protocol.request(7, "GetRatings", "ratings", 1000, b"")[:2],
        protocol.reply(7, Event.SUCCESS, 1.0, b"")[:2],
        protocol.ready("ratings", 4, 4242, {})[:2],
        protocol.call(7, "GetRatings", 1000, b"")[:2],
        protocol.result(7, Event.SUCCESS, 1.0, b"")[:2],
        protocol.control("status")[:2],
    ],
    ids=["REQUEST", "REPLY", "READY", "CALL", "RESULT", "CONTROL"],
)
def test_missing_payload_is_rejected(frames):
    kind = Kind(msgpack.unpackb(frames[1])[0])

    assert decode_error_text(frames) == f"{kind.name}: payload frame is missing"


def test_payload_over_the_size_limit_is_rejected():
    frames = protocol.request(7, "GetRatings", "ratings", 1000, b"\x00" * (protocol.MAX_PAYLOAD_BYTES + 1))

    assert decode_error_text(frames) == f"REQUEST: payload of 1048577 bytes is over {protocol.MAX_PAYLOAD_BYTES}"


def test_control_payload_that_is_not_msgpack_is_rejected():
    frames = frames_of([Kind.CONTROL, "status"], b"\xc1")

    assert decode_error_text(frames).startswith("CONTROL: payload is not valid msgpack")


def test_control_payload_that_is_not_a_map_is_rejected():
    frames = frames_of([Kind.CONTROL, "status"], protocol.encode_value([1, 2]))

    assert decode_error_text(frames) == "CONTROL: payload must be a map, got list"


# -- decode_or_log -------------------------------------------------------------------


def test_decode_or_log_returns_the_message_when_valid():
    logger = RecordingLogger()

    message = protocol.decode_or_log(protocol.HEARTBEAT, logger, "back", LogThrottle(10.0))

    assert message == protocol.Signal(Kind.HEARTBEAT)
    assert logger.warnings == []


def test_decode_or_log_logs_why_and_returns_none_when_malformed():
    logger = RecordingLogger()

    message = protocol.decode_or_log([b"SW01", b"\x91\x06"], logger, "front", LogThrottle(10.0))

    assert message is None
    assert logger.warnings == [
        ("malformed_message_dropped", {"source": "front", "error": "protocol frame is b'SW01', expected b'SW02'",
                                       "dropped_since_last_line": 0})
    ]


def test_a_peer_repeating_a_malformed_message_gets_one_line_per_interval_with_the_count():
    """A front still speaking an older protocol sends every request malformed: the log
    says so once per interval, not once per request; another socket or error is its own line."""
    logger, now_s = RecordingLogger(), [0.0]
    lines = LogThrottle(protocol.DROPPED_LOG_INTERVAL_S, lambda: now_s[0])
    old_protocol = [b"SW01", b"\x91\x06"]

    for _ in range(1000):
        assert protocol.decode_or_log(old_protocol, logger, "front", lines) is None
    assert protocol.decode_or_log(old_protocol, logger, "back", lines) is None
    assert protocol.decode_or_log([b"SW02", b"\xc1"], logger, "front", lines) is None
    now_s[0] = protocol.DROPPED_LOG_INTERVAL_S
    assert protocol.decode_or_log(old_protocol, logger, "front", lines) is None

    assert [(fields["source"], fields["error"][:16], fields["dropped_since_last_line"])
            for _, fields in logger.warnings] == [
        ("front", "protocol frame i", 0),
        ("back", "protocol frame i", 0),
        ("front", "header is not va", 0),
        ("front", "protocol frame i", 999),
    ]


def test_unexpected_messages_get_one_line_per_source_and_kind_per_interval():
    logger, now_s = RecordingLogger(), [0.0]
    lines = LogThrottle(protocol.DROPPED_LOG_INTERVAL_S, lambda: now_s[0])

    for _ in range(100):
        protocol.log_unexpected(logger, lines, "back", "Request", worker_pid=None)
    protocol.log_unexpected(logger, lines, "back", "Reply")
    protocol.log_unexpected(logger, lines, "front", "Request")
    now_s[0] = protocol.DROPPED_LOG_INTERVAL_S
    protocol.log_unexpected(logger, lines, "back", "Request", worker_pid=None)

    assert logger.warnings == [
        ("unexpected_message_dropped", {"source": "back", "kind": "Request", "dropped_since_last_line": 0,
                                        "worker_pid": None}),
        ("unexpected_message_dropped", {"source": "back", "kind": "Reply", "dropped_since_last_line": 0}),
        ("unexpected_message_dropped", {"source": "front", "kind": "Request", "dropped_since_last_line": 0}),
        ("unexpected_message_dropped", {"source": "back", "kind": "Request", "dropped_since_last_line": 99,
                                        "worker_pid": None}),
    ]


# -- values --------------------------------------------------------------------------


def test_value_round_trips_through_encode_and_decode_value():
    value = {"user": 42, "tags": ["a", "b"], "blob": b"\x00\xff", "score": 0.5, "none": None}

    assert protocol.decode_value(protocol.encode_value(value)) == value


@pytest.mark.parametrize(
    ("value", "type_name"),
    [({1, 2}, "'set'"), (object(), "'object'"), (datetime.datetime(2024, 1, 1), "'datetime.datetime'")],
    ids=["set", "object", "datetime"],
)
def test_encode_value_names_the_unsendable_type(value, type_name):
    with pytest.raises(TypeError) as caught:
        protocol.encode_value(value)

    assert str(caught.value) == f"cannot be sent: can not serialize {type_name} object"


def test_encode_value_names_the_unsendable_type_nested_in_a_container():
    with pytest.raises(TypeError, match="can not serialize 'set' object"):
        protocol.encode_value({"ids": [1, {2, 3}]})


def test_encode_value_refuses_an_int_over_64_bits_as_a_type_error():
    with pytest.raises(TypeError, match="cannot be sent: Integer value out of range"):
        protocol.encode_value(2**64)


def test_decode_value_of_bad_bytes_is_a_protocol_error():
    with pytest.raises(ProtocolError, match="payload is not valid msgpack"):
        protocol.decode_value(b"\xc1")


def test_error_payload_round_trips():
    payload = protocol.encode_error("ValueError", "backend down")

    assert protocol.decode_error(payload) == ("ValueError", "backend down")


def test_error_payload_without_a_message_is_rejected():
    payload = protocol.encode_value({"type": "ValueError"})

    with pytest.raises(ProtocolError) as caught:
        protocol.decode_error(payload)

    assert str(caught.value) == "error payload must be {type, message}, got {'type': 'ValueError'}"


# -- fuzzing: decode() raises nothing but ProtocolError ------------------------------

msgpack_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats()
    | st.text(max_size=20)
    | st.binary(max_size=20),
    lambda children: st.lists(children, max_size=5)
    | st.dictionaries(st.text(max_size=5) | st.integers(min_value=0, max_value=9), children, max_size=4),
    max_leaves=12,
)

#: Headers that often start with a real kind, so the per-kind decoders see junk fields.
headers = msgpack_values | st.builds(
    lambda kind, fields: [kind, *fields],
    st.sampled_from(list(Kind)) | msgpack_values,
    st.lists(msgpack_values, max_size=6),
)

#: Payloads: junk bytes, any msgpack, and maps shaped like the maps the decoders look into.
payloads = (
    st.none()
    | st.binary(max_size=40)
    | msgpack_values.map(protocol.encode_value)
    | st.dictionaries(st.sampled_from(["breakers", "overrides", "GetRatings"]), msgpack_values, max_size=3).map(
        protocol.encode_value
    )
)


def decodes_or_raises_protocol_error(frames: list[bytes]) -> None:
    try:
        protocol.decode(frames)
    except ProtocolError:
        pass


#: Frame lists whose first frame is often the right protocol, so later checks run too.
frame_lists = st.lists(st.binary(max_size=40), max_size=5) | st.builds(
    lambda first, rest: [first, *rest],
    st.just(PROTOCOL) | st.binary(max_size=8),
    st.lists(st.binary(max_size=40), max_size=4),
)


@settings(max_examples=300, deadline=None, database=None)
@given(frame_lists)
def test_arbitrary_frames_raise_nothing_but_protocol_error(frames):
    decodes_or_raises_protocol_error(frames)


@settings(max_examples=500, deadline=None, database=None)
@given(headers, payloads)
@example([Kind.BREAKER, None, [], None], None)
def test_arbitrary_headers_raise_nothing_but_protocol_error(header, payload):
    decodes_or_raises_protocol_error(frames_of(header, payload))


# -- REQUESTS, CALLS, REPLIES, RESULTS: several messages of one kind in one -------------


def coalesced_frames(kind: Kind, fields: list[Any], payload: bytes | None) -> list[bytes]:
    frames = [PROTOCOL, msgpack.packb([kind, *fields], use_bin_type=True)]
    return frames if payload is None else [*frames, payload]


COALESCED = [  # encoder, one item, the class of one alone, the class of several
    (protocol.requests, (7, "orders.Get", "orders", 500, b"args"), protocol.Request, protocol.Requests),
    (protocol.calls, (7, "orders.Get", 480, b"args"), protocol.Call, protocol.Calls),
    (protocol.replies, (7, Event.SUCCESS, 1.5, b"value"), protocol.Reply, protocol.Replies),
    (protocol.results, (7, Event.FAILURE, 2.0, b"error"), protocol.Result, protocol.Results),
]
COALESCED_IDS = ["REQUESTS", "CALLS", "REPLIES", "RESULTS"]


def numbered(item: tuple, number: int, payload: bytes | None = None) -> tuple:
    return (number, *item[1:-1], item[-1] if payload is None else payload)


@pytest.mark.parametrize("encode, item, single, many", COALESCED, ids=COALESCED_IDS)
def test_coalesced_messages_round_trip_with_the_payloads_in_one_frame(encode, item, single, many):
    items = [numbered(item, number, payload) for number, payload in enumerate([b"one", b"", b"three"])]

    messages = encode(items)

    assert len(messages) == 1 and messages[0][2:] == [b"onethree"]
    assert protocol.decode(messages[0]) == many(tuple(single(*item) for item in items))


@pytest.mark.parametrize("encode, item, single, many", COALESCED, ids=COALESCED_IDS)
def test_a_lone_item_goes_as_a_plain_message(encode, item, single, many):
    (frames,) = encode([item])

    assert protocol.decode(frames) == single(*item)


def test_no_items_make_no_messages():
    assert all(encode([]) == [] for encode, *_ in COALESCED)


@pytest.mark.parametrize("encode, item, single, many", COALESCED, ids=COALESCED_IDS)
def test_items_past_the_count_cap_go_in_another_message_in_order(encode, item, single, many):
    items = [numbered(item, number) for number in range(protocol.COALESCE_ITEMS * 2 + 1)]

    messages = encode(items)

    decoded = [protocol.decode(frames) for frames in messages]
    assert [len(getattr(one, "items", [one])) for one in decoded] == [protocol.COALESCE_ITEMS, protocol.COALESCE_ITEMS, 1]
    assert [one.call_id for one in (*decoded[0].items, *decoded[1].items, decoded[2])] == list(range(len(items)))


def test_items_whose_fields_would_overflow_the_header_go_in_another_message():
    long_name = "n" * protocol.MAX_NAME_CHARS  # 200 characters: about 20 such calls fill a header
    items = [(number, long_name, 500, b"") for number in range(50)]

    messages = protocol.calls(items)

    assert len(messages) > 1
    assert all(len(frames[1]) <= protocol.MAX_HEADER_BYTES for frames in messages)
    assert [call.call_id for frames in messages for call in protocol.decode(frames).items] == list(range(50))
    assert len(protocol.decode(messages[0]).items) == (
        (protocol.MAX_HEADER_BYTES - 4) // len(msgpack.packb([0, long_name, 500, 0])[1:]))


def test_the_longest_items_fit_the_header_limit():
    longest = max(protocol.CALL_OUTCOMES, key=lambda event: len(event.value))
    items = [(protocol.MAX_CALL_ID, longest, protocol.MAX_TIMEOUT_MS * 10 - 0.5, b"")] * protocol.MAX_COALESCED

    messages = protocol.replies(items)

    assert all(len(frames[1]) <= protocol.MAX_HEADER_BYTES for frames in messages)
    assert sum(len(protocol.decode(frames).items) for frames in messages) == protocol.MAX_COALESCED


def test_the_send_cut_is_within_what_a_receiver_accepts():
    assert 2 <= protocol.COALESCE_ITEMS <= protocol.MAX_COALESCED


def test_payloads_past_the_size_cap_go_in_another_message():
    big = b"x" * (protocol.MAX_PAYLOAD_BYTES // 2)
    items = [(number, Event.SUCCESS, 1.0, big) for number in range(3)] + [(3, Event.SUCCESS, 1.0, b"y")]

    messages = protocol.replies(items)

    assert [len(protocol.decode(frames).items) for frames in messages] == [2, 2]
    assert all(len(frames[2]) <= protocol.MAX_PAYLOAD_BYTES for frames in messages)


def test_a_payload_at_the_limit_goes_alone():
    full = b"x" * protocol.MAX_PAYLOAD_BYTES

    messages = protocol.replies([(1, Event.SUCCESS, 1.0, full), (2, Event.SUCCESS, 1.0, b"y")])

    assert [type(protocol.decode(frames)) for frames in messages] == [protocol.Reply, protocol.Reply]


@pytest.mark.parametrize("fields, payload, error", [
    ([7, "SUCCESS", 1.0, 1], b"a", "expected 2 to {cap} items, got 1"),
    ([], b"", "expected 2 to {cap} items, got 0"),
    ([7, "SUCCESS", 1.0, 1, 8, "SUCCESS", 1.0], b"ab",
     "expected 4 fields per item (3 and the payload's length), got 7 fields"),
    ([7, "SUCCESS", 1.0, 1, 8, "SUCCESS", 1.0, 1], None, "payload frame is missing"),
    ([7, "SUCCESS", 1.0, 1, "8", "SUCCESS", 1.0, 1], b"ab",
     f"item 1: call_id must be an integer in [0, {protocol.MAX_CALL_ID}], got '8'"),
    ([-1, "SUCCESS", 1.0, 1, 8, "SUCCESS", 1.0, 1], b"ab",
     f"item 0: call_id must be an integer in [0, {protocol.MAX_CALL_ID}], got -1"),
    ([7, "SUCCESS", 1.0, 1, 8, "EXPLODED", 1.0, 1], b"ab", "item 1: outcome must be one of"),
    ([7, "SUCCESS", 1.0, 1, 8, "SUCCESS", -1, 1], b"ab", "item 1: execution_ms must be a non-negative number, got -1"),
    ([7, "SUCCESS", True, 1, 8, "SUCCESS", 1.0, 1], b"ab",
     "item 0: execution_ms must be a non-negative number, got True"),
    ([7, "SUCCESS", 1.0, 2, 8, "SUCCESS", 1.0, 1], b"ab",
     "item 1: payload length must be an integer in [0, 0] (what is left of the payload frame), got 1"),
    ([7, "SUCCESS", 1.0, -1, 8, "SUCCESS", 1.0, 1], b"ab",
     "item 0: payload length must be an integer in [0, 2] (what is left of the payload frame), got -1"),
    ([7, "SUCCESS", 1.0, "1", 8, "SUCCESS", 1.0, 1], b"ab",
     "item 0: payload length must be an integer in [0, 2] (what is left of the payload frame), got '1'"),
    ([7, "SUCCESS", 1.0, 1, 8, "SUCCESS", 1.0, 1], b"abc",
     "the items' payload lengths add up to 2 bytes, the payload frame has 3"),
], ids=["one item", "no items", "fields short", "no payload frame", "call_id type", "call_id range", "outcome",
        "execution_ms range", "execution_ms type", "length past the frame", "length negative", "length type",
        "bytes left over"])
@pytest.mark.parametrize("kind", [Kind.REPLIES, Kind.RESULTS])
def test_malformed_coalesced_replies_and_results_are_refused(kind, fields, payload, error):
    text = decode_error_text(coalesced_frames(kind, fields, payload))

    assert text.startswith(f"{kind.name}: {error.format(cap=protocol.MAX_COALESCED)}")


@pytest.mark.parametrize("kind, fields, error", [
    (Kind.REQUESTS, [1, "a.Get", "a", 100, 1, 2, "a.Get", "", 100, 1],
     "REQUESTS: item 1: dependency must be a name of 1-200 characters, got ''"),
    (Kind.REQUESTS, [1, "a.Get", "a", 100, 1, 2, "a.Get", "a", 0, 1],
     f"REQUESTS: item 1: timeout_ms must be an integer in [1, {protocol.MAX_TIMEOUT_MS}], got 0"),
    (Kind.REQUESTS, [1, "a.Get", "a", 100, 1, 2, "a.Get", "a", 1],
     "REQUESTS: expected 5 fields per item (4 and the payload's length), got 9 fields"),
    (Kind.CALLS, [1, "a.Get", 100, 1, 2, None, 100, 1],
     "CALLS: item 1: command must be a name of 1-200 characters, got None"),
    (Kind.CALLS, [1, "a.Get", 100, 1, 2, "a.Get", -5, 1],
     f"CALLS: item 1: timeout_ms must be an integer in [0, {protocol.MAX_TIMEOUT_MS}], got -5"),
], ids=["request dependency", "request timeout", "request fields", "call command", "call timeout"])
def test_malformed_coalesced_requests_and_calls_are_refused(kind, fields, error):
    assert decode_error_text(coalesced_frames(kind, fields, b"ab")) == error


def test_results_may_not_carry_a_broker_only_outcome():
    frames = coalesced_frames(Kind.RESULTS, [7, "SUCCESS", 1.0, 1, 8, "SHORT_CIRCUITED", 1.0, 1], b"ab")

    assert decode_error_text(frames) == (
        "RESULTS: item 1: outcome must be one of BAD_REQUEST, FAILURE, SUCCESS, TIMEOUT, got 'SHORT_CIRCUITED'")


def test_a_coalesced_payload_frame_over_the_size_limit_is_refused():
    half = protocol.MAX_PAYLOAD_BYTES // 2 + 1
    frames = coalesced_frames(Kind.REPLIES, [7, "SUCCESS", 1.0, half, 8, "SUCCESS", 1.0, half], b"x" * half * 2)

    assert decode_error_text(frames) == f"REPLIES: payload of {half * 2} bytes is over {protocol.MAX_PAYLOAD_BYTES}"


def test_more_items_than_the_cap_are_refused():
    count = protocol.MAX_COALESCED + 1
    frames = coalesced_frames(Kind.REPLIES, [7, "SUCCESS", 1.0, 0] * count, b"")

    assert decode_error_text(frames) == f"REPLIES: expected 2 to {protocol.MAX_COALESCED} items, got {count}"


@pytest.mark.parametrize("encode", [protocol.reply, protocol.replies])
def test_every_kind_takes_at_most_one_payload_frame(encode):
    item = (7, Event.SUCCESS, 1.0, b"a")
    frames = encode(*item) if encode is protocol.reply else encode([item, item])[0]

    assert decode_error_text([*frames, b"b"]) == "expected 2 or 3 frames, got 4"
