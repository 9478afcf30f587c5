"""Hostile input on every broker socket: 100,000 random and mutated messages on each, from
several identities, while a real caller keeps calling through the same broker.

The broker must stay up, every one of the caller's calls must get its own value (not a
fallback, not an error: the fuzz cannot pose as the real workers, whose identities ZeroMQ
assigns, and it names only decoy commands and pools), and the broker must still answer
``status``. The events socket is not fuzzed here: it is a PUB socket, so the only
thing a peer can send it is a subscription, which ZeroMQ handles without the broker's
code (test_subscriptions_... below sends it garbage anyway).
"""

from __future__ import annotations

import random

import pytest
import zmq

from fuzz.pump import OVERSIZE_MESSAGES
from fuzz.scenarios import BROKER_SOCKETS, MESSAGES_PER_TARGET, REAL_POOL, SETTINGS, WORKERS, run_broker_fuzz, \
    summary_line
from sample_commands import Echo
from shared import protocol


@pytest.mark.timeout(180)
@pytest.mark.parametrize("socket_name", BROKER_SOCKETS)
def test_broker_stays_up_and_correct_under_fuzz_on_its_socket(make_cluster, socket_name):
    cluster = make_cluster(SETTINGS)

    result = run_broker_fuzz(cluster, socket_name)

    print(summary_line(result))
    assert result.alive, cluster.logs()
    assert result.stats.sent >= MESSAGES_PER_TARGET
    assert result.stats.oversize == OVERSIZE_MESSAGES  # each refused: ZeroMQ dropped the connection
    steady = result.steady
    assert steady["calls"] > 0 and steady["other_answers"] == {} and steady["correct"] == steady["calls"], steady
    assert result.status is not None, "the broker no longer answers status"
    assert result.status["pools"][REAL_POOL]["workers"] == WORKERS


@pytest.mark.timeout(60)
def test_garbage_subscriptions_leave_the_events_socket_publishing(make_cluster):
    cluster = make_cluster(SETTINGS)
    cluster.start_broker()
    cluster.start_workers(REAL_POOL, "sample_commands", slots=2)
    cluster.wait_for_workers(REAL_POOL, 1)
    rng = random.Random(7)
    garbage = zmq.Context.instance().socket(zmq.XSUB)
    garbage.setsockopt(zmq.LINGER, 0)
    listener = zmq.Context.instance().socket(zmq.SUB)
    listener.setsockopt(zmq.LINGER, 0)
    try:
        garbage.connect(cluster.config.endpoints["events"])
        for _ in range(10_000):  # subscribe / unsubscribe (first byte 1 / 0) to random topics, and junk
            garbage.send(bytes([rng.choice((0, 1, 2, 255))]) + rng.randbytes(rng.randint(0, 300)))
        listener.setsockopt(zmq.SUBSCRIBE, protocol.STATE_TOPIC)
        listener.connect(cluster.config.endpoints["events"])
        assert listener.poll(5000), "the broker stopped publishing"
        assert listener.recv_multipart()[0] == protocol.STATE_TOPIC
    finally:
        garbage.close()
        listener.close()
    assert Echo(text="still").execute(client=cluster.client()) == "STILL"
    assert cluster.processes[0].poll() is None
