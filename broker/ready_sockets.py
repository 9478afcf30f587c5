"""Which of the broker's sockets hold messages: its one wait, in few system calls.

Why not ``zmq.Poller``: ``zmq_poll`` builds a poller for each call, and asks every socket
for its events (``ZMQ_EVENTS``) before and after it waits; each ask makes ZeroMQ take in
its pending commands, a ``poll`` and a ``getpid`` system call even when there are none.
With three sockets that was about 26 ``poll`` and 30 ``getpid`` calls per command served
(``strace -c`` of a broker at one caller), the broker's main cost on a small VM.

Here the loop waits on one ``epoll`` set of the sockets' file descriptors, and asks a
socket for its events only when its descriptor fired or the turn before left it holding
messages. A ZeroMQ descriptor signals that the socket has commands to take in, not that
it holds messages, and any send, receive or events ask on the socket may take them in and
with them the signal. So a socket is read while ``ZMQ_EVENTS`` says it holds a message;
after a turn, the sockets it sent on are asked once more (their signal may be gone), and
the loop waits only when none of them, and no socket its reader left unfinished, holds
one. At one caller that is about 14 ``poll`` and 22 ``getpid`` calls per command.
"""

from __future__ import annotations

import select

import zmq

from shared.transport import holds_message


class ReadySockets:
    """The sockets a loop reads, in the order it reads them when several are ready."""

    def __init__(self, sockets: list[zmq.Socket]) -> None:
        self._sockets = list(sockets)
        self._epoll = select.epoll()
        self._socket_by_fd: dict[int, zmq.Socket] = {}
        for sock in self._sockets:
            fd: int = sock.getsockopt(zmq.FD)  # type: ignore[assignment]  # an int option; pyzmq's stub: int | bytes
            self._socket_by_fd[fd] = sock
            self._epoll.register(fd, select.EPOLLIN)
        #: sockets that held a message when last asked: read before waiting again (at
        #: first every socket: what came before the loop started may have no signal left)
        self._holding: set[zmq.Socket] = set(self._sockets)

    def wait(self, timeout_ms: int) -> list[zmq.Socket]:
        """The sockets that may hold messages, in reading order; waits up to ``timeout_ms``,
        or not at all if one is known to hold a message (:meth:`hold`, :meth:`ask`)."""
        fired = self._epoll.poll(0 if self._holding else timeout_ms / 1000)
        candidates = self._holding | {self._socket_by_fd[fd] for fd, _ in fired}
        self._holding = set()
        return [sock for sock in self._sockets if sock in candidates]

    def hold(self, sock: zmq.Socket) -> None:
        """``sock`` was left holding messages (its reader's budget ran out): read it
        again before waiting."""
        self._holding.add(sock)

    def ask(self, sockets: set[zmq.Socket]) -> None:
        """After sends on ``sockets``: note those that hold a message, whose signal the
        sends may have taken. A socket read until it held nothing, and not sent on since,
        needs no asking: its descriptor fires for the next message."""
        for sock in sockets:
            if holds_message(sock):
                self._holding.add(sock)

    def close(self) -> None:
        self._epoll.close()
