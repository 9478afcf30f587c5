"""Messages a gevent process makes in bursts, sent as few messages as latency allows.

Why: a front's callers all send their requests in the same hub iteration when a burst of
work arrives, and a worker's slots all finish theirs in one when a burst of calls does.
One message each would cost every call a send here and a receive at the broker, each a
system call and a wake-up of ZeroMQ's I/O thread (12-50 µs apiece on a small VM). So the
first item of an iteration goes out at once, alone (a lone caller waits for nothing),
and the items after it in the same iteration go out together as one coalesced message
(shared/protocol, REQUESTS or RESULTS) once the hub has run everything that was ready.
"""

from __future__ import annotations

from typing import Callable

import gevent

from shared import protocol


class Burst:
    """Items of one kind (REQUEST or RESULT tuples, see :data:`protocol.Item`) to send
    through ``send``; ``encode_one`` makes the plain message, ``encode_many`` the
    messages for several (:func:`protocol.requests`, say)."""

    def __init__(self, send: Callable[[list[bytes]], None], encode_one: Callable[..., list[bytes]],
                 encode_many: Callable[[list[protocol.Item]], list[list[bytes]]]) -> None:
        self._send = send
        self._encode_one = encode_one
        self._encode_many = encode_many
        self._held: list[protocol.Item] = []
        self._open = False  # an item went out this iteration; a callback will close it

    def add(self, item: protocol.Item) -> None:
        if self._open:
            self._held.append(item)
            return
        self._open = True
        gevent.get_hub().loop.run_callback(self.flush)
        self._send(self._encode_one(*item))

    def flush(self) -> None:
        """Send what is held, now (at the end of the iteration)."""
        self._open = False
        if self._held:
            held, self._held = self._held, []
            for frames in self._encode_many(held):
                self._send(frames)

    def send_after(self, frames: list[bytes]) -> None:
        """Send another message through the same ``send``, after what is held: the peer
        sees everything in the order it was made (no result behind a GOODBYE, say)."""
        self.flush()
        self._send(frames)

    def clear(self) -> None:
        """Forget what is held (a forked child: its parent's items are not its own)."""
        self._held = []
        self._open = False
