"""How a front waits for a remote call's reply: a reused timer per call in flight.

A stand-in broker (a ROUTER on the front endpoint that answers only when told, and a PUB
on the events endpoint that beats like the real one) lets these tests hold replies back.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Iterator

import gevent
import pytest
import zmq

from api import Client, Command, request_context
from api.client import BROKER_VERDICT_GRACE_S
from api.errors import CommandTimeout
from shared import protocol
from shared.config import parse
from shared.events import Event

BEAT_S = 0.05


class Remote(Command):
    dependency = "stand_in"
    timeout_s = 0.05


class PatientRemote(Command):
    dependency = "stand_in"
    timeout_s = 1.0


class StandIn:
    def __init__(self, directory: Path) -> None:
        self.endpoints = {"front": f"ipc://{directory}/front", "events": f"ipc://{directory}/events"}
        context = zmq.Context.instance()
        self.router = context.socket(zmq.ROUTER)
        self.router.setsockopt(zmq.LINGER, 0)
        self.router.bind(self.endpoints["front"])
        self.publisher = context.socket(zmq.PUB)
        self.publisher.setsockopt(zmq.LINGER, 0)
        self.publisher.bind(self.endpoints["events"])
        self._beats = gevent.spawn(self._beat)

    def _beat(self) -> None:
        while True:
            self.publisher.send_multipart(protocol.STATE_HEARTBEAT)
            gevent.sleep(BEAT_S)

    def answer_next(self, value: object) -> None:
        """Reply to the next call, whichever message it came in (alone or coalesced)."""
        with gevent.Timeout(5):
            while not self.router.poll(0):
                gevent.sleep(0.005)
        caller, *frames = self.router.recv_multipart()
        message = protocol.decode(frames)
        first = message.items[0] if type(message) is protocol.Requests else message
        self.router.send_multipart([caller, *protocol.reply(first.call_id, Event.SUCCESS, 0.1,
                                                            protocol.encode_value(value))])

    def close(self) -> None:
        self._beats.kill()
        self.router.close()
        self.publisher.close()


@pytest.fixture
def stand_in(tmp_path: Path) -> Iterator[StandIn]:
    broker = StandIn(tmp_path)
    yield broker
    broker.close()


@pytest.fixture
def client(stand_in: StandIn, tmp_path: Path) -> Iterator[Client]:
    client = Client(parse({"run_dir": "run", "endpoints": stand_in.endpoints}, tmp_path))
    client.brokers.open()
    opened_s = client.connection._heard_s  # open() counts as heard; a beat after it means subscribed
    with gevent.Timeout(5, AssertionError("the client never heard the stand-in's beat")):
        while client.connection._heard_s == opened_s:
            gevent.sleep(BEAT_S / 5)
    yield client
    client.close()


def test_a_reply_in_time_is_the_value(stand_in: StandIn, client: Client) -> None:
    answering = gevent.spawn(stand_in.answer_next, {"ok": 1})

    assert Remote().execute(client=client) == {"ok": 1}
    answering.join()


def test_every_call_gets_its_whole_timeout_however_many_timed_out_before(client: Client) -> None:
    waits_s = []
    for _ in range(20):  # one timer, reused call after call
        started_s = time.monotonic()
        with pytest.raises(CommandTimeout):
            Remote().execute(client=client)
        waits_s.append(time.monotonic() - started_s)

    assert min(waits_s) >= Remote.timeout_s * 0.95, waits_s
    assert client.connection.pending_calls == 0  # each timed-out call was forgotten


def test_a_timeout_of_the_callers_own_passes_through_and_the_call_is_forgotten(client: Client) -> None:
    outer = gevent.Timeout(0.02)
    with pytest.raises(gevent.Timeout) as raised:
        with outer:
            PatientRemote().execute(client=client)

    assert raised.value is outer  # not a CommandTimeout, and not the call's own timer
    assert client.connection.pending_calls == 0


def test_a_caller_killed_while_it_waits_forgets_its_call(client: Client) -> None:
    caller = gevent.spawn(PatientRemote().execute, client=client)
    with gevent.Timeout(5, AssertionError("the call never went out")):
        while client.connection.pending_calls == 0:
            gevent.sleep(0.005)

    caller.kill()

    assert client.connection.pending_calls == 0  # no reply will be read: none is waited for


def test_the_brokers_answer_a_little_past_the_timeout_is_the_outcome(stand_in: StandIn, client: Client) -> None:
    """The broker's deadline starts when it reads the call, a transit after the caller's:
    a caller that timed out at its own would fall back on a call the broker counted SUCCESS."""
    sent_s = time.monotonic()

    def answer_just_late() -> None:
        gevent.sleep(max(0.0, sent_s + Remote.timeout_s + 0.002 - time.monotonic()))
        stand_in.answer_next({"ok": 1})

    answering = gevent.spawn(answer_just_late)
    assert Remote().execute(client=client) == {"ok": 1}
    answering.join()


def test_a_silent_broker_times_out_its_caller_within_the_grace(client: Client) -> None:
    started_s = time.monotonic()
    with pytest.raises(CommandTimeout):
        Remote().execute(client=client)
    waited_s = time.monotonic() - started_s
    assert Remote.timeout_s + BROKER_VERDICT_GRACE_S * 0.9 <= waited_s < Remote.timeout_s + 1.0


class Collapsed(Command):
    """Collapsed within its request: its batch waits for the reply, not its callers."""

    dependency = "stand_in"
    collapse = "request"
    collapse_window_ms = 1.0
    timeout_s = 0.05

    @classmethod
    def run_batch(cls, calls: list[Command]) -> list[object]:
        return [None for _ in calls]


def test_a_request_scoped_batch_takes_the_brokers_answer_a_little_past_the_timeout(stand_in: StandIn,
                                                                                  client: Client) -> None:
    """The batch gave up at its members' deadline itself: its callers fell back on a batch
    the broker counted SUCCESS."""
    sent_s = time.monotonic()

    def answer_batch_just_late() -> None:
        with gevent.Timeout(5):
            while not stand_in.router.poll(0):
                gevent.sleep(0.005)
        caller, *frames = stand_in.router.recv_multipart()
        batch = protocol.decode(frames)
        assert type(batch) is protocol.BatchRequest
        gevent.sleep(max(0.0, sent_s + Collapsed.timeout_s + 0.002 - time.monotonic()))
        results = protocol.pack_batch_results([(Event.SUCCESS, protocol.encode_value({"ok": 1}))])
        stand_in.router.send_multipart([caller, *protocol.reply(batch.call_id, Event.SUCCESS, 0.1, results)])

    answering = gevent.spawn(answer_batch_just_late)
    with request_context():
        assert Collapsed().execute(client=client) == {"ok": 1}
    answering.join()
