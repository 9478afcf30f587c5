"""A ZeroMQ socket owned by one greenlet, used by any number of others.

ZeroMQ sockets are not safe to share; gevent callers are many. The owner greenlet is
the only code that receives, and it sends whatever cannot go at once: other greenlets
send with :meth:`send` (straight out when nothing waits before them, else a list append
and a wake-up; never blocking) and it hands every incoming message to ``on_message`` in
order. Used by the client stub in fronts and by workers.
"""

from __future__ import annotations

import os
import weakref
from collections import deque
from typing import Any, Callable, cast

import gevent
import gevent.event
import zmq

from shared.transport import holds_message, is_closed_error, recv_frames, send_frames

Frames = list[bytes]

#: Messages received in one go before the owner lets other greenlets run.
RECEIVE_BATCH = 256
# A plain int: pyzmq's flags are IntFlag enums, and each ``|`` on them builds a new enum
# member, a few microseconds a message on this path.
_NOBLOCK = int(zmq.NOBLOCK)

#: Every started OwnedSocket of this process, so a forked child can silence its parent's.
_started: weakref.WeakSet[OwnedSocket] = weakref.WeakSet()


def _silence_parents_sockets() -> None:
    """In a forked child: stop the watchers of the parent's sockets, kill their owners.

    A caller that forks right after its reply forks inside the hub's ``_on_readable``
    (``on_message`` switched straight to it); the child's hub resumes that loop when the
    child first waits, and gevent's loop keeps the parent's watchers too. Either would
    read the parent's ZeroMQ socket in the child, which libzmq refuses there with EINTR,
    and pyzmq retries EINTR for ever: the child's hub spun, and no timer, no timeout, ever
    ran again. The sockets themselves are left alone (closing them is the parent's
    business).
    """
    for owned in list(_started):
        owned._forsake()
    _started.clear()


os.register_at_fork(after_in_child=_silence_parents_sockets)


class OwnedSocket:
    """Wraps a raw (non-green) zmq socket; the owner greenlet starts with :meth:`start`."""

    def __init__(self, sock: zmq.Socket, on_message: Callable[[Frames], None], name: str, *,
                 receive_in_hub: bool = False) -> None:
        self._sock = sock
        self._on_message = on_message
        self._name = name
        self._receive_in_hub = receive_in_hub
        self._outbox: deque[Frames] = deque()
        self._wake = gevent.event.Event()
        self._watcher: Any | None = None  # gevent's io watcher of the socket's FD, from start() on
        self._owner: gevent.Greenlet | None = None
        self._closed = False

    @property
    def name(self) -> str:
        return self._name

    def start(self) -> None:
        hub = gevent.get_hub()
        # ZMQ_FD is an int option; pyzmq's stub types every getsockopt() as int | bytes
        self._watcher = hub.loop.io(cast(int, self._sock.getsockopt(zmq.FD)), 1)
        self._watcher.start(self._on_readable if self._receive_in_hub else self._wake.set)
        self._owner = gevent.spawn(self._run)
        self._owner.name = f"owner:{self._name}"
        _started.add(self)

    def send(self, frames: Frames) -> None:
        """Send ``frames`` now if nothing is queued before them, else queue them for the
        owner, which sends in order.

        Sending from the caller's greenlet is safe: the socket is a raw (non-green) one and
        the send does not block, so gevent cannot switch in the middle of it, and with an
        empty outbox the order is kept. When the owner is idle it saves waking it for one
        message (a quiet caller's latency); when it is already due to run, queueing lets it
        send a burst in one turn (a busy caller's throughput). A send may take in ZeroMQ's
        pending commands and with them the FD's edge: if a message is waiting afterwards,
        the owner is woken to read it.
        """
        if self._closed:
            raise ConnectionError(f"socket {self._name} is closed")
        if not self._outbox and not self._wake.is_set():
            try:
                send_frames(self._sock, frames, _NOBLOCK)
            except zmq.Again:
                pass  # full: the owner sends it when the FD says it can
            else:
                if holds_message(self._sock):
                    self._wake.set()
                return
        self._outbox.append(frames)
        self._wake.set()

    def close(self, linger_ms: int = 0) -> None:
        """Stop the owner; ``linger_ms`` lets messages already handed to ZeroMQ leave."""
        if self._closed:
            return
        self._closed = True
        if self._watcher is not None:
            self._watcher.stop()
            self._watcher.close()
        if self._owner is not None and self._owner is not gevent.getcurrent():
            self._owner.kill(block=False)
        self._sock.close(linger=linger_ms)

    def _forsake(self) -> None:
        """Stop using a socket this process inherited; never close it (see _silence_parents_sockets)."""
        self._closed = True
        if self._watcher is not None:
            self._watcher.stop()
        if self._owner is not None and self._owner is not gevent.getcurrent():
            self._owner.kill(block=False)

    def _on_readable(self) -> None:
        """The FD's edge, handled in the hub (``receive_in_hub``): what is ready is read
        and handed to ``on_message`` here, without a switch to the owner and back (about
        15 µs a message on a small VM). So ``on_message`` must never wait itself: it may
        set a result, send, or switch to a greenlet (a caller given its reply, a worker's
        slot given its call), which comes back here when it waits. The owner still does
        what may wait: sends
        queued behind a full socket, and a flood past RECEIVE_BATCH, read a batch at a
        time with other greenlets let run in between."""
        if self._closed:
            return
        if self._outbox or self._wake.is_set():  # the owner is due to run: it reads too
            self._wake.set()
            return
        sock = self._sock
        try:
            for _ in range(RECEIVE_BATCH):
                if not holds_message(sock):
                    return
                self._on_message(recv_frames(sock, _NOBLOCK))
                if self._closed:  # by on_message, or while it had switched away: forked, say
                    return
        except zmq.ZMQError as exc:
            if is_closed_error(exc):
                return
            raise
        self._wake.set()

    def _run(self) -> None:
        try:
            while not self._closed:
                self._wake.wait()
                self._wake.clear()
                self._pump()
        except zmq.ZMQError as exc:
            if not is_closed_error(exc):
                raise

    def _pump(self) -> None:
        """Send what is queued and receive what is ready, until neither is left.

        Readiness comes from EVENTS, read after every send or receive (the FD is
        edge-triggered), never from a zmq.Again exception.
        """
        sock = self._sock
        received = 0
        while not self._closed:
            sent = self._flush() if self._outbox else False
            if holds_message(sock):
                self._on_message(recv_frames(sock, _NOBLOCK))
                received += 1
                if received % RECEIVE_BATCH == 0:
                    gevent.sleep(0)  # a flood: let the callers we woke run first
            elif not (sent and self._outbox):
                return

    def _flush(self) -> bool:
        """Send queued messages; False if none could go (the FD wakes us when one can)."""
        outbox = self._outbox
        sock = self._sock
        sent = False
        while outbox:
            try:
                send_frames(sock, outbox[0], _NOBLOCK)
            except zmq.Again:
                return sent
            outbox.popleft()
            sent = True
        return sent
