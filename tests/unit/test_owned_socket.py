"""shared/owned_socket.py: one greenlet (or the hub) receives, any greenlet sends, in order."""

from __future__ import annotations

import itertools
from typing import Iterator

import gevent
import pytest
import zmq

from shared import owned_socket
from shared.owned_socket import OwnedSocket

_numbers = itertools.count()


@pytest.fixture
def pair() -> Iterator[tuple[zmq.Socket, zmq.Socket]]:
    """A raw DEALER (to wrap) and the ROUTER it talks to, over inproc."""
    context = zmq.Context()
    endpoint = f"inproc://owned-{next(_numbers)}"
    router = context.socket(zmq.ROUTER)
    router.bind(endpoint)
    dealer = context.socket(zmq.DEALER)
    dealer.setsockopt(zmq.ROUTING_ID, b"dealer")
    dealer.connect(endpoint)
    try:
        yield dealer, router
    finally:
        context.destroy(linger=0)


def wait_for(condition, timeout_s: float = 5.0) -> None:
    with gevent.Timeout(timeout_s, AssertionError("condition not met in time")):
        while not condition():
            gevent.sleep(0.001)


@pytest.mark.parametrize("receive_in_hub", [False, True], ids=["owner greenlet", "hub"])
def test_messages_arrive_in_order_and_sends_from_any_greenlet_go_out(pair, receive_in_hub):
    dealer, router = pair
    received: list[bytes] = []
    owned = OwnedSocket(dealer, lambda frames: received.append(frames[0]), "test", receive_in_hub=receive_in_hub)
    owned.start()
    try:
        gevent.joinall([gevent.spawn(owned.send, [b"out-%d" % number]) for number in range(10)])
        for _ in range(10):
            router.send_multipart([b"dealer", router.recv_multipart()[1]])  # echo each back
        wait_for(lambda: len(received) == 10)
        assert received == [b"out-%d" % number for number in range(10)]
    finally:
        owned.close()


def test_in_hub_mode_messages_are_handled_in_the_hub_without_waking_the_owner(pair):
    dealer, router = pair
    handled_in: list[object] = []
    owned = OwnedSocket(dealer, lambda frames: handled_in.append(gevent.getcurrent()), "test", receive_in_hub=True)
    owned.start()
    try:
        owned.send([b"hello"])
        router.recv_multipart()
        router.send_multipart([b"dealer", b"reply"])
        wait_for(lambda: handled_in)
        assert handled_in == [gevent.get_hub()]
    finally:
        owned.close()


@pytest.mark.parametrize("receive_in_hub", [False, True], ids=["owner greenlet", "hub"])
def test_a_flood_is_read_in_batches_with_other_greenlets_run_in_between(pair, receive_in_hub, monkeypatch):
    monkeypatch.setattr(owned_socket, "RECEIVE_BATCH", 10)
    dealer, router = pair
    events: list[str] = []

    def on_message(frames: list[bytes]) -> None:
        events.append("message")
        if len(events) == 1:  # a greenlet woken by the first message, as a waiting caller is
            gevent.spawn(events.append, "woken greenlet ran")

    owned = OwnedSocket(dealer, on_message, "test", receive_in_hub=receive_in_hub)
    owned.start()
    try:
        owned.send([b"hello"])
        router.recv_multipart()
        for number in range(35):
            router.send_multipart([b"dealer", b"%d" % number])
        wait_for(lambda: events.count("message") == 35)
        assert events.index("woken greenlet ran") == 10  # after the first batch, not after the flood
    finally:
        owned.close()


def test_a_closed_socket_hands_over_nothing_more(pair):
    dealer, router = pair
    received: list[bytes] = []
    owned = OwnedSocket(dealer, lambda frames: received.append(frames[0]), "test", receive_in_hub=True)
    owned.start()
    owned.send([b"hello"])
    router.recv_multipart()
    owned.close()

    router.send_multipart([b"dealer", b"late"])
    gevent.sleep(0.05)

    assert received == []
    with pytest.raises(ConnectionError):
        owned.send([b"after close"])
