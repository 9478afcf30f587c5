"""A front's link to its broker outlives a connection ZeroMQ gives up on.

ZeroMQ drops a connection that delivers a frame over the receiving socket's size limit,
and a socket that connects never makes that connection again. Here a stand-in broker (a
PUB on the events endpoint, beating like the real one) sends the front one such frame:
the front must call the broker down, make its sockets again and hear it once more.
"""

from __future__ import annotations

import time
from pathlib import Path

import gevent
import zmq
from structlog.testing import capture_logs

from api import connection
from api.connection import BrokerConnection
from shared import protocol
from shared.transport import MAX_MESSAGE_BYTES

BEAT_S = 0.05


def _beat(publisher: zmq.Socket, until: list[bool]) -> None:
    while not until:
        publisher.send_multipart(protocol.STATE_HEARTBEAT)
        gevent.sleep(BEAT_S)


def _wait(condition, timeout_s: float) -> bool:
    deadline_s = time.monotonic() + timeout_s
    while time.monotonic() < deadline_s:
        if condition():
            return True
        gevent.sleep(0.02)
    return False


def test_a_front_cut_off_by_an_oversize_frame_makes_its_sockets_again(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(connection, "RECONNECT_INTERVAL_S", 1.0)
    endpoints = {"front": f"ipc://{tmp_path}/front", "events": f"ipc://{tmp_path}/events"}
    context = zmq.Context.instance()
    publisher = context.socket(zmq.PUB)
    publisher.setsockopt(zmq.LINGER, 0)
    publisher.bind(endpoints["events"])
    monitor = publisher.get_monitor_socket(zmq.EVENT_ACCEPTED)
    router = context.socket(zmq.ROUTER)
    router.setsockopt(zmq.LINGER, 0)
    router.bind(endpoints["front"])
    front = BrokerConnection(endpoints, lambda overrides: None)
    remade_s: list[float] = []
    remake = front._reconnect

    def remake_and_note() -> None:
        remake()
        remade_s.append(time.monotonic())

    front._reconnect = remake_and_note
    stop: list[bool] = []
    beats = gevent.spawn(_beat, publisher, stop)
    try:
        front.open()
        opened_s = time.monotonic()  # open() counts as heard; a beat heard after it means subscribed
        assert _wait(lambda: front._heard_s > opened_s, 10.0), "the front never heard the beat"
        assert monitor.poll(5000)
        monitor.recv_multipart()  # the front's first connection

        publisher.send_multipart([protocol.STATE_TOPIC, b"x" * (MAX_MESSAGE_BYTES + 1)])

        assert _wait(lambda: remade_s, 10.0), "the front did not make its sockets again"
        assert monitor.poll(5000), "the front did not connect again"
        assert _wait(lambda: front._heard_s > remade_s[0] and not front.broker_down, 10.0), \
            "the front does not hear the broker again"
    finally:
        stop.append(True)
        beats.join(timeout=1)
        front.close()
        publisher.disable_monitor()
        monitor.close(linger=0)
        publisher.close()
        router.close()


def test_malformed_metrics_snapshots_are_logged_once_per_error_naming_the_broker(tmp_path: Path) -> None:
    """A front reads each broker's metrics twice a second: a broken publisher is one line
    per interval, not one per snapshot (no socket is opened: the handler alone)."""
    endpoints = {"front": f"ipc://{tmp_path}/front", "events": f"ipc://{tmp_path}/events"}
    front = BrokerConnection(endpoints, lambda overrides: None, name="broker-a")
    with capture_logs() as logs:
        for _ in range(20):
            front._on_state([protocol.METRICS_TOPIC, b"not", b"a snapshot"])

    assert [(line["event"], line["source"], line["broker"], line["dropped_since_last_line"]) for line in logs] == [
        ("malformed_message_dropped", "events", "broker-a", 0)]
