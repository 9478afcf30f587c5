"""The floor's two processes: the simplest raw-pyzmq relay and echo seawall could be.

``python bench/floor_relay.py relay FRONT BACK``: a ROUTER for clients on FRONT and a
ROUTER for the echo on BACK; it forwards frames both ways and decodes nothing.
``python bench/floor_relay.py echo BACK``: a DEALER that unpacks each msgpack request
``[id, payload]`` and packs the reply ``[id, payload]``.

The same hops and process count as seawall's caller -> broker -> worker path, without
seawall's validation, deadlines, slots or greenlets: what the hops alone cost. Both run
until killed (SIGTERM's default action ends them).
"""

from __future__ import annotations

import sys
from typing import Callable

import msgpack
import zmq

#: What the echo sends first so the relay learns its routing identity.
READY = b"ready"


def relay(front_address: str, back_address: str) -> None:
    context = zmq.Context()
    front = context.socket(zmq.ROUTER)
    back = context.socket(zmq.ROUTER)
    front.bind(front_address)
    back.bind(back_address)
    echo_identity, ready = back.recv_multipart()  # clients' requests wait in `front`
    assert ready == READY, ready
    poller = zmq.Poller()
    poller.register(front, zmq.POLLIN)
    poller.register(back, zmq.POLLIN)
    while True:
        ready_sockets = dict(poller.poll())
        if front in ready_sockets:
            _drain(front, lambda frames: back.send_multipart([echo_identity, *frames]))
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
    while True:
        client_identity, request = sock.recv_multipart()
        call_id, payload = msgpack.unpackb(request)
        sock.send_multipart([client_identity, msgpack.packb([call_id, payload])])


def main(argv: list[str]) -> int:
    if len(argv) == 3 and argv[0] == "relay":
        relay(argv[1], argv[2])
    elif len(argv) == 2 and argv[0] == "echo":
        echo(argv[1])
    else:
        print("usage: floor_relay.py relay FRONT BACK | echo BACK", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
