"""What the broker holds back for a moment: its replies per caller, its calls per worker.

Why: under load, one batch of messages read from a socket answers many calls of one
caller and hands many calls to one worker. Sent one message each, every call would pay a
send at the broker and a receive at the peer, each a system call and a wake-up of
ZeroMQ's I/O thread (12-50 µs apiece on a small VM). Held until the batch is handled,
they go out as one REPLIES or CALLS message per peer, so a busy broker pays per message
rather than per call; a lone one goes as a plain REPLY or CALL, so a quiet broker adds
no wait and no cost. The broker flushes after every batch it reads, at the end of every
loop turn, and whenever a message's worth (protocol.COALESCE_ITEMS) is held, so that
peers start on a burst while the broker still reads the rest of it.
"""

from __future__ import annotations

import zmq

from shared import protocol
from shared.transport import send_frames


class Outbox:
    def __init__(self, front: zmq.Socket, back: zmq.Socket) -> None:
        self._front = front
        self._back = back
        #: caller identity -> REPLY items (call_id, outcome, execution_ms, payload)
        self._replies: dict[bytes, list[protocol.Item]] = {}
        #: worker identity -> CALL items (call_id, command, timeout_ms, payload)
        self._calls: dict[bytes, list[protocol.Item]] = {}
        #: items held in all
        self.held = 0
        #: the sockets sent on since take_sent_on() (the loop asks them for messages)
        self._sent_on: set[zmq.Socket] = set()

    def reply(self, caller: bytes, item: protocol.Item) -> None:
        self._hold(self._replies, caller, item)

    def call(self, worker: bytes, item: protocol.Item) -> None:
        self._hold(self._calls, worker, item)

    def _hold(self, by_peer: dict[bytes, list[protocol.Item]], peer: bytes, item: protocol.Item) -> None:
        self.held += 1
        held = by_peer.get(peer)
        if held is None:
            by_peer[peer] = [item]
        else:
            held.append(item)

    def to_worker(self, worker: bytes, frames: list[bytes]) -> None:
        """Send any other message to a worker now, after the calls held for it, so it
        sees everything in the order the broker decided it (a DRAIN_ACK after the last
        calls it was given, say)."""
        held = self._calls.pop(worker, None)
        if held is not None:
            self.held -= len(held)
            self._send(self._back, worker, protocol.calls(held))
        send_frames(self._back, [worker, *frames])
        self._sent_on.add(self._back)

    def forget_worker(self, worker: bytes) -> None:
        """A worker removed: the calls held for it were answered WORKER_LOST, not sent."""
        self.held -= len(self._calls.pop(worker, ()))

    def flush(self) -> None:
        self.held = 0
        if self._calls:
            held, self._calls = self._calls, {}
            for worker, items in held.items():
                self._send(self._back, worker, protocol.calls(items))
        if self._replies:
            held, self._replies = self._replies, {}
            for caller, items in held.items():
                self._send(self._front, caller, protocol.replies(items))

    def take_sent_on(self) -> set[zmq.Socket]:
        sent_on, self._sent_on = self._sent_on, set()
        return sent_on

    def _send(self, sock: zmq.Socket, peer: bytes, messages: list[list[bytes]]) -> None:
        self._sent_on.add(sock)
        for frames in messages:
            send_frames(sock, [peer, *frames])
