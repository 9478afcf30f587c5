"""One socket cannot hold the broker's loop for long: a turn reads at most RECEIVE_BATCH
messages or RECEIVE_BUDGET_S of work from it, and leaves the rest for the next turn."""

from __future__ import annotations

from pathlib import Path

import zmq

from broker import server
from broker.outbox import Outbox
from broker.server import Broker
from shared.config import parse


def _queued_socket(count: int) -> tuple[zmq.Socket, zmq.Socket]:
    """A socket holding ``count`` messages already (inproc: a send lands in the pipe)."""
    context = zmq.Context.instance()
    receiver = context.socket(zmq.PULL)
    receiver.setsockopt(zmq.LINGER, 0)
    receiver.bind("inproc://receive-budget")
    sender = context.socket(zmq.PUSH)
    sender.setsockopt(zmq.LINGER, 0)
    sender.connect("inproc://receive-budget")
    for number in range(count):
        sender.send(b"%d" % number)
    return sender, receiver


def test_a_turn_stops_once_its_time_budget_is_spent_and_the_rest_waits(tmp_path: Path) -> None:
    now_s = [0.0]
    broker = Broker(parse({"run_dir": "run"}, tmp_path), clock=lambda: now_s[0])
    sender, receiver = _queued_socket(100)
    broker.outbox = Outbox(receiver, receiver)  # made by run(); nothing is held here, so nothing is sent
    handled: list[list[bytes]] = []

    def costly(frames: list[bytes]) -> None:  # each message takes a tenth of the budget
        handled.append(frames)
        now_s[0] += server.RECEIVE_BUDGET_S / 10

    try:
        broker._receive(receiver, costly)
        assert len(handled) == server.BUDGET_CHECK_EVERY  # the first check past the budget
        now_s[0] = 0.0
        broker._receive(receiver, handled.append)  # the next turn takes the rest, in order
        assert [int(frames[0]) for frames in handled] == list(range(100))
    finally:
        sender.close()
        receiver.close()
