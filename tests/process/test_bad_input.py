"""Bad input never stops a process: malformed messages are dropped, bad config is named."""

from __future__ import annotations

import json
import subprocess
import sys

import msgpack
import pytest
import zmq

from shared import protocol
from shared.transport import make_socket
from sample_commands import Echo

#: Messages that are not valid seawall protocol, each wrong in its own way.
MALFORMED = [
    [b"just one frame"],
    [b"NOPE", b"\x91\x01"],
    [protocol.PROTOCOL, b"\xc1 not msgpack"],
    [protocol.PROTOCOL, msgpack.packb({"kind": 1})],
    [protocol.PROTOCOL, msgpack.packb([99])],
    [protocol.PROTOCOL, msgpack.packb([protocol.Kind.REQUEST, "not an id", "Echo", "sample", 100]), b"\x80"],
    [protocol.PROTOCOL, msgpack.packb([protocol.Kind.REQUEST, 1, "Echo"]), b"\x80"],
    [protocol.PROTOCOL, msgpack.packb([protocol.Kind.RESULT, 1, "NOT_AN_OUTCOME", 1.0]), b"\x80"],
    [protocol.PROTOCOL, msgpack.packb([protocol.Kind.READY, "sample", 0, 1, []])],
    [protocol.PROTOCOL, msgpack.packb([protocol.Kind.CONTROL, "status"]), b"not a map"],
    [protocol.PROTOCOL, msgpack.packb([protocol.Kind.HEARTBEAT]), b"", b"extra"],
]


@pytest.fixture
def cluster(make_cluster):
    cluster = make_cluster()
    cluster.start_broker()
    cluster.start_workers("sample", "sample_commands", slots=2)
    cluster.wait_for_workers("sample", 1)
    return cluster


@pytest.mark.parametrize("socket_name", ["front", "back", "control"])
def test_malformed_messages_on_a_broker_socket_leave_it_serving(cluster, socket_name):
    sock = make_socket(zmq.DEALER)
    try:
        sock.connect(cluster.config.endpoints[socket_name])
        for frames in MALFORMED:
            sock.send_multipart(frames)
        # A control request on the same connection is still answered after all that.
        sock.send_multipart(protocol.control("ping"))
        if socket_name == "control":
            answers = []
            while sock.poll(2000):
                answers.append(protocol.decode(sock.recv_multipart()))
                if answers[-1].ok:
                    break
            assert answers[-1].data == {"pong": True}
    finally:
        sock.close(linger=2000)  # deliver what was sent before closing
    assert Echo(text="fine").execute(client=cluster.client()) == "FINE"
    assert cluster.status()["pools"]["sample"]["workers"] == 1
    assert cluster.processes[0].poll() is None, "the broker died"
    cluster.wait_until(lambda: "malformed_message_dropped" in (cluster.directory / "broker.log").read_text(),
                       "the broker to log what it dropped")
    dropped = [json.loads(line) for line in (cluster.directory / "broker.log").read_text().splitlines()
               if "malformed_message_dropped" in line]
    assert {line["source"] for line in dropped} == {socket_name}
    assert all(line["error"] for line in dropped)


def test_a_front_on_an_older_protocol_gets_one_log_line_not_one_per_message(cluster):
    """Every request of a front not yet upgraded is malformed to this broker: a flood of
    the same error is one line (then one per interval, with the count), and calls go on."""
    old_protocol_request = [b"SW01", msgpack.packb([protocol.Kind.REQUEST, 1, "Echo", "sample", 100]), b"\x80"]
    sock = make_socket(zmq.DEALER)
    try:
        sock.connect(cluster.config.endpoints["front"])
        for _ in range(2000):
            sock.send_multipart(old_protocol_request)
        # The same connection's next request is answered after the broker read the flood.
        sock.send_multipart(protocol.request(7, "Echo", "sample", 5000, protocol.encode_value({"text": "fine"})))
        assert sock.poll(10_000), "the broker did not answer after the flood"
        reply = protocol.decode(sock.recv_multipart())
    finally:
        sock.close(linger=0)
    assert type(reply) is protocol.Reply and reply.call_id == 7 and protocol.decode_value(reply.payload) == "FINE"

    dropped = [json.loads(line) for line in (cluster.directory / "broker.log").read_text().splitlines()
               if "malformed_message_dropped" in line]
    assert [(line["source"], line["error"], line["dropped_since_last_line"]) for line in dropped] == [
        ("front", "protocol frame is b'SW01', expected b'SW02'", 0)]


def test_a_front_pointed_at_the_workers_socket_is_named_in_the_log_once(cluster):
    """Its requests are no worker's messages: not answered with a RESET each, but one line
    naming the socket and kind, and the broker serves on."""
    request = protocol.request(1, "Echo", "sample", 5000, protocol.encode_value({"text": "lost"}))
    sock = make_socket(zmq.DEALER)
    try:
        sock.connect(cluster.config.endpoints["back"])
        for _ in range(500):
            sock.send_multipart(request)
        # A worker's heartbeat from an unknown peer is answered RESET, after the broker read the rest.
        sock.send_multipart(protocol.stats(30.0))
        assert sock.poll(10_000), "the broker did not answer the heartbeat"
        assert protocol.decode(sock.recv_multipart()) == protocol.Signal(protocol.Kind.RESET)
        assert not sock.poll(0), "the broker answered the requests too"
    finally:
        sock.close(linger=0)
    assert Echo(text="fine").execute(client=cluster.client()) == "FINE"

    dropped = [json.loads(line) for line in (cluster.directory / "broker.log").read_text().splitlines()
               if "unexpected_message_dropped" in line]
    assert [(line["source"], line["kind"], line["dropped_since_last_line"]) for line in dropped] == [
        ("back", "Request", 0)]


def _run(module, config_path, *extra):
    return subprocess.run([sys.executable, "-m", module, "--config", str(config_path), *extra],
                          capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize(
    "toml, key",
    [
        ("[defaults]\ntimeout_sx = 1.0\n", "defaults.timeout_sx"),
        ("[defaults]\ntimeout_s = -1\n", "defaults.timeout_s"),
        ("[pools.ratings]\nqueue_size = \"five\"\n", "pools.ratings.queue_size"),
        ("[commands.GetRatings]\nbreaker_force = \"sometimes\"\n", "commands.GetRatings.breaker_force"),
        ("[endpoints]\nfront = \"localhost:5555\"\n", "endpoints.front"),
        ("colour = \"blue\"\n", "colour"),
    ],
)
def test_bad_config_stops_the_broker_with_an_error_naming_the_key(tmp_path, toml, key):
    config_path = tmp_path / "bad.toml"
    config_path.write_text(toml)
    result = _run("broker", config_path)
    assert result.returncode == 2
    assert key in result.stderr and str(config_path) in result.stderr
    (refused,) = [json.loads(line) for line in result.stdout.splitlines()]  # its log, under supervisord
    assert (refused["event"], refused["level"], refused["exit_code"]) == ("startup_refused", "error", 2)
    assert key in refused["error"]


def test_bad_config_stops_a_worker_with_an_error_naming_the_key(tmp_path):
    config_path = tmp_path / "bad.toml"
    config_path.write_text("[broker]\nheartbeat_s = 0\n")
    result = _run("workers", config_path, "--dependency", "sample", "--commands", "sample_commands")
    assert result.returncode == 2
    assert "broker.heartbeat_s" in result.stderr


def test_worker_with_no_commands_for_its_dependency_says_so(tmp_path):
    config_path = tmp_path / "ok.toml"
    config_path.write_text("")
    result = subprocess.run(
        [sys.executable, "-m", "workers", "--config", str(config_path), "--dependency", "nobody",
         "--commands", "sample_commands"],
        capture_output=True, text=True, timeout=30,
        env={**__import__("os").environ, "PYTHONPATH": str(__import__("pathlib").Path(__file__).parents[1])},
    )
    assert result.returncode == 2
    assert "no command with dependency = 'nobody'" in result.stderr
