"""broker/outbox.py: replies per caller and calls per worker, held and sent in order."""

from __future__ import annotations

import itertools
from typing import Iterator

import pytest
import zmq

from broker.outbox import Outbox
from shared import protocol
from shared.events import Event
from shared.transport import recv_frames

_endpoint_numbers = itertools.count()


class Peers:
    """A broker's front and back ROUTERs, one caller and two workers, over inproc."""

    def __init__(self, context: zmq.Context) -> None:
        number = next(_endpoint_numbers)
        self.front = context.socket(zmq.ROUTER)
        self.back = context.socket(zmq.ROUTER)
        self.front.bind(f"inproc://front-{number}")
        self.back.bind(f"inproc://back-{number}")
        self.caller = self._dealer(context, b"caller", f"inproc://front-{number}")
        self.workers = {name: self._dealer(context, name, f"inproc://back-{number}") for name in (b"w1", b"w2")}
        for name in self.workers:  # ROUTERs learn a peer once it has sent something
            self.workers[name].send(b"hello")
            self.back.recv_multipart()
        self.caller.send(b"hello")
        self.front.recv_multipart()

    @staticmethod
    def _dealer(context: zmq.Context, name: bytes, endpoint: str) -> zmq.Socket:
        sock = context.socket(zmq.DEALER)
        sock.setsockopt(zmq.ROUTING_ID, name)
        sock.connect(endpoint)
        return sock

    @staticmethod
    def received(sock: zmq.Socket) -> list[protocol.Message]:
        messages = []
        while sock.poll(50):
            messages.append(protocol.decode(recv_frames(sock)))
        return messages


@pytest.fixture
def peers() -> Iterator[Peers]:
    context = zmq.Context()
    try:
        yield Peers(context)
    finally:
        context.destroy(linger=0)


def reply_item(number: int) -> tuple:
    return (number, Event.SUCCESS, 1.0, b"r%d" % number)


def call_item(number: int) -> tuple:
    return (number, "orders.Get", 500, b"c%d" % number)


def test_nothing_leaves_before_flush_and_then_one_message_per_peer(peers):
    outbox = Outbox(peers.front, peers.back)
    for number in range(3):
        outbox.reply(b"caller", reply_item(number))
        outbox.call(b"w1", call_item(number))
    outbox.call(b"w2", call_item(9))
    assert outbox.held == 7
    assert peers.received(peers.caller) == []

    outbox.flush()

    assert outbox.held == 0
    assert peers.received(peers.caller) == [protocol.Replies(tuple(protocol.Reply(*reply_item(n)) for n in range(3)))]
    assert peers.received(peers.workers[b"w1"]) == [protocol.Calls(tuple(protocol.Call(*call_item(n)) for n in range(3)))]
    assert peers.received(peers.workers[b"w2"]) == [protocol.Call(*call_item(9))]


def test_another_message_to_a_worker_goes_after_the_calls_held_for_it(peers):
    outbox = Outbox(peers.front, peers.back)
    outbox.call(b"w1", call_item(1))
    outbox.call(b"w1", call_item(2))
    outbox.call(b"w2", call_item(3))

    outbox.to_worker(b"w1", protocol.signal(protocol.Kind.DRAIN_ACK))

    assert peers.received(peers.workers[b"w1"]) == [
        protocol.Calls((protocol.Call(*call_item(1)), protocol.Call(*call_item(2)))),
        protocol.Signal(protocol.Kind.DRAIN_ACK)]
    assert outbox.held == 1  # w2's call still waits for the flush
    assert peers.received(peers.workers[b"w2"]) == []


def test_calls_held_for_a_removed_worker_are_never_sent(peers):
    outbox = Outbox(peers.front, peers.back)
    outbox.call(b"w1", call_item(1))
    outbox.call(b"w2", call_item(2))

    outbox.forget_worker(b"w1")
    outbox.flush()

    assert peers.received(peers.workers[b"w1"]) == []
    assert peers.received(peers.workers[b"w2"]) == [protocol.Call(*call_item(2))]


def test_more_replies_than_one_message_takes_go_in_several_in_order(peers):
    outbox = Outbox(peers.front, peers.back)
    count = protocol.COALESCE_ITEMS + 3
    for number in range(count):
        outbox.reply(b"caller", reply_item(number))

    outbox.flush()

    messages = peers.received(peers.caller)
    assert [len(message.items) for message in messages] == [protocol.COALESCE_ITEMS, 3]
    assert [reply.call_id for message in messages for reply in message.items] == list(range(count))
