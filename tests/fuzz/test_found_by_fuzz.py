"""What the fuzz found, each as its smallest reproducer.

Fixed (these guard the fixes): a header nested past Python's recursion limit killed the
broker (a 1 KB message on any socket); CONTROL arguments of the wrong type killed it
too; a command error whose message cannot be shown took a worker's slot down for good;
a snapshot override keyed by a number would kill a front's listener; a REPORT could
carry enough outcomes to stall the broker for seconds; chaos settings took NaN.

Also fixed, found later: ZeroMQ drops a connection that delivers a frame over the
socket's size limit and a *connecting* socket never makes it again, so a broker whose
snapshot or status outgrew the limit cut off its fronts or its operator, and a worker
sent such a frame never came back. The broker now sheds entries to stay within one
message (broker/bounded.py), and fronts and workers make their sockets again when the
broker falls silent.
"""

from __future__ import annotations

import math
import time

import gevent
import msgpack
import pytest
import zmq

from api import Command, CommandError
from broker.control import handle_control
from broker.control_client import ControlError, control_request
from fuzz.scenarios import REAL_POOL, SETTINGS, worker_reconnects_after_oversize
from sample_commands import Echo, Fail
from shared import protocol
from shared.transport import make_socket
from workers.chaos import ChaosSettings
from workers.execution import run_call

#: Arrays nested 1,000 deep: msgpack decodes them (its limit is 1,024), repr() cannot.
DEEP = b"\x91" * 1000 + b"\xc0"


def _refused(frames: list[bytes]) -> str:
    with pytest.raises(protocol.ProtocolError) as refused:
        protocol.decode(frames)
    return str(refused.value)


def test_a_header_nested_past_the_recursion_limit_is_refused_not_raised():
    assert "nested deeper" in _refused([protocol.PROTOCOL, DEEP])
    control_header = msgpack.Packer().pack_array_header(2) + msgpack.packb(protocol.Kind.CONTROL) + DEEP
    assert "nested deeper" in _refused([protocol.PROTOCOL, control_header, protocol.encode_value({})])


def test_a_map_payload_nested_past_the_recursion_limit_is_refused_not_raised():
    arguments = msgpack.Packer().pack_map_header(2) + msgpack.packb("key") + msgpack.packb("defaults.timeout_s") \
        + msgpack.packb("value") + DEEP
    header = protocol.control("config_set")[1]
    assert "nested deeper" in _refused([protocol.PROTOCOL, header, arguments])


def test_map_payloads_and_snapshot_overrides_are_keyed_by_strings():
    assert "keys must be strings" in _refused(protocol.control("status", {1: "x"}))
    snapshot = protocol.snapshot({}, {0: None})[1:]  # a front's check_override(0, ...) raised AttributeError
    assert "keyed by setting names" in _refused(snapshot)


def test_a_report_over_the_outcome_limit_is_refused():
    outcomes = {"FuzzCommand": [["FAILURE", 1.0]] * protocol.MAX_REPORT_OUTCOMES}
    assert "at most" in _refused(protocol.report(outcomes))


@pytest.mark.parametrize("action, arguments", [
    ("chaos", {"mode": "clear", "dependency": [1]}),
    ("chaos", {"mode": {}, "dependency": "sample"}),
    ("chaos", {"mode": "latency", "dependency": {"a": 1}}),
    ("chaos", {"mode": "latency", "dependency": "sample", "latency_ms": math.nan}),
    ("chaos", {"mode": "errors", "dependency": "sample", "pct": math.inf}),
    ("breaker", {"command": "FuzzCommand", "force": ["open"]}),
])
def test_control_arguments_of_the_wrong_type_get_an_error_answer(action, arguments):
    # Each of these raised TypeError in the broker's loop (or set chaos to NaN) before
    # touching the broker; None stands in for it.
    ok, data = handle_control(None, protocol.Control(action, arguments))
    assert not ok and data["error"]


def test_chaos_settings_from_the_broker_must_be_finite():
    for value in (math.nan, math.inf):
        with pytest.raises(ValueError):
            ChaosSettings.from_wire({"latency_ms": value})


class Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no")


class RaisesUnprintable(Command):
    dependency = "fuzz"

    def run(self) -> None:
        raise Unprintable()


@pytest.mark.parametrize("command, payload", [
    (RaisesUnprintable, protocol.encode_value({})),
    # tests/sample_commands.Fail raises ValueError(message): here a message nested 1,000 deep
    (Fail, msgpack.Packer().pack_map_header(1) + msgpack.packb("message") + DEEP),
])
def test_an_error_whose_message_cannot_be_shown_still_answers_the_call(command, payload):
    outcome, _, error = run_call({command.key: command}, protocol.Call(1, command.key, 1000, payload), "fuzz")
    assert outcome.value == "FAILURE"
    assert "cannot be shown" in protocol.decode_error(error)[1]


# -- messages that grow with what the broker tracks, and sockets ZeroMQ gave up on ----------

#: Command keys a caller makes up, long enough that their open breakers fill a snapshot
#: (and a status) past the 1 MB size limit of the sockets that receive them.
MADE_UP_KEYS = 6000
KEY_PADDING = "x" * 190


def _open_made_up_breakers(cluster) -> None:
    """REPORT one FAILURE for each of MADE_UP_KEYS keys (a breaker opens on one call here),
    and wait until the broker has read them all."""
    sock = make_socket(zmq.DEALER)
    try:
        sock.connect(cluster.config.endpoints["front"])
        for part in range(4):
            keys = range(part * MADE_UP_KEYS // 4, (part + 1) * MADE_UP_KEYS // 4)
            sock.send_multipart(protocol.report({f"Made{key:05d}{KEY_PADDING}": [["FAILURE", 1.0]] for key in keys}))
    finally:
        sock.close(linger=5000)
    cluster.wait_until(lambda: _pings(cluster), "the broker to read the reports")


def _pings(cluster) -> bool:
    try:
        return control_request(cluster.config.endpoints["control"], "ping", timeout_s=0.5) == {"pong": True}
    except ControlError:
        return False


@pytest.fixture
def flooded_cluster(make_cluster):
    cluster = make_cluster({**SETTINGS, "defaults": {"breaker_volume_threshold": 1}})
    cluster.start_broker()
    cluster.start_workers(REAL_POOL, "sample_commands", slots=2)
    cluster.wait_for_workers(REAL_POOL, 1)
    return cluster


@pytest.mark.timeout(60)
def test_a_caller_opening_thousands_of_breakers_does_not_cut_fronts_off_the_broker(flooded_cluster):
    client = flooded_cluster.client()
    assert Echo(text="before").execute(client=client) == "BEFORE"

    _open_made_up_breakers(flooded_cluster)

    until_s = time.monotonic() + 3.0  # three snapshots
    while time.monotonic() < until_s:
        try:
            assert Echo(text="after").execute(client=client) == "AFTER"
        except CommandError as exc:
            pytest.fail(f"the front lost the broker: {exc}")
        gevent.sleep(0.05)


@pytest.mark.timeout(60)
def test_status_stays_readable_with_thousands_of_command_keys(flooded_cluster):
    _open_made_up_breakers(flooded_cluster)

    status = flooded_cluster.status(timeout_s=2.0)

    assert status is not None, "seawall status got no answer"


@pytest.mark.timeout(60)
def test_a_worker_cut_off_by_an_oversize_frame_connects_again(make_cluster):
    assert worker_reconnects_after_oversize(make_cluster(SETTINGS))
