"""broker/ready_sockets.py: the broker's wait, on real (inproc) ZeroMQ sockets."""

from __future__ import annotations

import itertools
import time
from typing import Iterator

import pytest
import zmq

from broker.ready_sockets import ReadySockets
from shared.transport import holds_message

_names = itertools.count()


@pytest.fixture
def pairs() -> Iterator[list[tuple[zmq.Socket, zmq.Socket]]]:
    """Three (receiver, sender) DEALER pairs, as the broker's front, back and control."""
    context = zmq.Context.instance()
    made = []
    for _ in range(3):
        address = f"inproc://ready-sockets-{next(_names)}"
        receiver, sender = context.socket(zmq.DEALER), context.socket(zmq.DEALER)
        receiver.bind(address)
        sender.connect(address)
        made.append((receiver, sender))
    yield made
    for receiver, sender in made:
        receiver.close(linger=0)
        sender.close(linger=0)


def drain(sock: zmq.Socket) -> list[bytes]:
    messages = []
    while holds_message(sock):
        messages.append(sock.recv(zmq.NOBLOCK))
    return messages


def test_every_socket_is_read_once_at_first_then_only_what_fired(pairs):
    receivers = [receiver for receiver, _ in pairs]
    ready = ReadySockets(receivers)

    assert ready.wait(1000) == receivers  # what came before the loop may have no signal left
    for receiver in receivers:
        drain(receiver)
    pairs[2][1].send(b"to the third")
    pairs[0][1].send(b"to the first")

    fired = ready.wait(1000)
    assert fired == [receivers[0], receivers[2]]  # in reading order, not arrival order
    assert [drain(sock) for sock in fired] == [[b"to the first"], [b"to the third"]]
    ready.close()


def test_the_wait_ends_at_its_timeout_when_nothing_comes(pairs):
    receivers = [receiver for receiver, _ in pairs]
    ready = ReadySockets(receivers)
    for receiver in ready.wait(0):
        drain(receiver)

    started_s = time.monotonic()
    assert ready.wait(50) == []
    assert time.monotonic() - started_s >= 0.04
    ready.close()


def test_a_socket_left_holding_messages_is_read_again_without_waiting(pairs):
    receiver, sender = pairs[0]
    ready = ReadySockets([receiver])
    ready.wait(0)
    for number in range(3):
        sender.send(b"%d" % number)
    assert ready.wait(1000) == [receiver]
    assert receiver.recv(zmq.NOBLOCK) == b"0"  # a reader whose budget ran out
    ready.hold(receiver)

    started_s = time.monotonic()
    assert ready.wait(5000) == [receiver]  # its descriptor will not fire again: held
    assert time.monotonic() - started_s < 1.0
    assert drain(receiver) == [b"1", b"2"]
    ready.close()


def test_asking_after_sends_finds_a_message_whose_signal_a_send_took(pairs):
    receiver, sender = pairs[0]
    ready = ReadySockets([receiver])
    ready.wait(0)
    sender.send(b"request")
    deadline_s = time.monotonic() + 5.0
    while not holds_message(receiver):  # takes the signal in, as a send on the socket may
        assert time.monotonic() < deadline_s, "the message never arrived"

    assert ready.wait(50) == []  # the descriptor has nothing to say now
    ready.ask({receiver})
    assert ready.wait(5000) == [receiver]
    assert drain(receiver) == [b"request"]
    ready.close()
