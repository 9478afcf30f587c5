"""The floor's two processes: the simplest raw-pyzmq relay and echo seawall could be.

``python bench/floor_relay.py relay FRONT BACK [ECHOES]``: a ROUTER for clients on FRONT
and a ROUTER for ECHOES echo processes (default 1) on BACK; it forwards frames both ways,
requests to the echoes in turn, and decodes nothing.
``python bench/floor_relay.py echo BACK``: a DEALER that unpacks each msgpack request
``[id, payload]`` and packs the reply ``[id, payload]``. A request ``[id, payload, ms]``
has its reply held ``ms`` milliseconds without blocking the echo (a timer heap and the
poll's timeout): the floor of a call that waits 1 ms on something, as a worker slot does.

The same hops and process count as seawall's caller -> broker -> worker path, without
seawall's validation, deadlines, slots or greenlets: what the hops alone cost. Both run
until killed (SIGTERM's default action ends them).
"""

from __future__ import annotations

import heapq
import itertools
import math
import sys
import time
from typing import Callable

import msgpack
import zmq

#: What the echo sends first so the relay learns its routing identity.
READY = b"ready"


def relay(front_address: str, back_address: str, echoes: int = 1) -> None:
    context = zmq.Context()
    front = context.socket(zmq.ROUTER)
    back = context.socket(zmq.ROUTER)
    front.bind(front_address)
    back.bind(back_address)
    echo_identities = []
    while len(echo_identities) < echoes:  # clients' requests wait in `front`
        echo_identity, ready = back.recv_multipart()
        assert ready == READY, ready
        echo_identities.append(echo_identity)
    next_echo = itertools.cycle(echo_identities).__next__
    poller = zmq.Poller()
    poller.register(front, zmq.POLLIN)
    poller.register(back, zmq.POLLIN)
    while True:
        ready_sockets = dict(poller.poll())
        if front in ready_sockets:
            _drain(front, lambda frames: back.send_multipart([next_echo(), *frames]))
        if back in ready_sockets:
            _drain(back, lambda frames: front.send_multipart(frames[1:]))


def _drain(sock: zmq.Socket, forward: Callable[[list[bytes]], None]) -> None:
    """Forward every message ``sock`` holds, as the broker does, so a burst costs one poll."""
    while True:
        try:
            frames = sock.recv_multipart(zmq.NOBLOCK)
        except zmq.Again:
            return
        forward(frames)


def echo(back_address: str) -> None:
    context = zmq.Context()
    sock = context.socket(zmq.DEALER)
    sock.connect(back_address)
    sock.send(READY)
    held: list[tuple[float, int, list[bytes]]] = []  # (due, sequence, reply frames), a heap
    sequence = itertools.count()
    while True:
        while held and held[0][0] <= time.monotonic():
            sock.send_multipart(heapq.heappop(held)[2])
        if held and not sock.poll(max(0, math.ceil((held[0][0] - time.monotonic()) * 1000))):
            continue
        client_identity, request = sock.recv_multipart()
        call_id, payload, *hold_ms = msgpack.unpackb(request)
        reply = [client_identity, msgpack.packb([call_id, payload])]
        if hold_ms:
            heapq.heappush(held, (time.monotonic() + hold_ms[0] / 1000, next(sequence), reply))
        else:
            sock.send_multipart(reply)


def main(argv: list[str]) -> int:
    if len(argv) in (3, 4) and argv[0] == "relay":
        relay(argv[1], argv[2], int(argv[3]) if len(argv) == 4 else 1)
    elif len(argv) == 2 and argv[0] == "echo":
        echo(argv[1])
    else:
        print("usage: floor_relay.py relay FRONT BACK [ECHOES] | echo BACK", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
