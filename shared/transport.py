"""ZeroMQ sockets: one context per process, sockets made the same way everywhere.

The one place that knows ZeroMQ's options and errors: ``linger=0`` so closing never
blocks, bounded high-water marks, a message-size limit on every receiving socket, and a
context created lazily in the process that uses it (never inherited across ``fork``).
"""

from __future__ import annotations

import os
import threading

import zmq

from shared.protocol import MAX_HEADER_BYTES, MAX_PAYLOAD_BYTES

#: A peer that sends a larger frame is disconnected by ZeroMQ before we see it.
MAX_MESSAGE_BYTES = MAX_PAYLOAD_BYTES + MAX_HEADER_BYTES
#: Messages queued per peer before sends would block (or fail with NOBLOCK).
HIGH_WATER_MARK = 100_000

_context: zmq.Context | None = None
_context_pid: int | None = None
_context_lock = threading.Lock()


class TransportClosed(Exception):
    """The socket or its context is gone (process shutting down)."""


def context() -> zmq.Context:
    """This process's context; a forked child gets its own, never its parent's."""
    global _context, _context_pid
    with _context_lock:
        if _context is None or _context_pid != os.getpid():
            _context = zmq.Context()
            _context_pid = os.getpid()
        return _context


def make_socket(kind: int, *, routing_id: bytes | None = None) -> zmq.Socket:
    sock = context().socket(kind)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.SNDHWM, HIGH_WATER_MARK)
    sock.setsockopt(zmq.RCVHWM, HIGH_WATER_MARK)
    sock.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE_BYTES)
    if routing_id is not None:
        sock.setsockopt(zmq.ROUTING_ID, routing_id)
    if kind == zmq.ROUTER:
        # A reply to a peer that has gone is dropped rather than raising EHOSTUNREACH.
        sock.setsockopt(zmq.ROUTER_MANDATORY, 0)
    return sock


def bind(sock: zmq.Socket, address: str) -> None:
    """Bind, removing a stale ``ipc://`` file left by a process that died."""
    if address.startswith("ipc://"):
        path = address[len("ipc://"):]
        if len(path.encode()) > 100:
            raise ValueError(f"ipc path too long for a unix socket ({len(path)} chars): {path}")
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
    try:
        sock.bind(address)
    except zmq.ZMQError as exc:
        raise OSError(f"cannot bind {address}: {exc}") from exc


def is_closed_error(exc: zmq.ZMQError) -> bool:
    """True for the errors that mean 'shutting down', not 'something is wrong'."""
    return exc.errno in (zmq.ETERM, zmq.ENOTSOCK) or isinstance(exc, zmq.ContextTerminated)


_SNDMORE = int(zmq.SNDMORE)
_EVENTS = int(zmq.EVENTS)
_POLLIN = int(zmq.POLLIN)


def holds_message(sock: zmq.Socket) -> bool:
    """Whether ``sock`` holds a whole message to receive now (``ZMQ_EVENTS``).

    Asked before a receive rather than catching ``zmq.Again`` from a failed one (an
    exception per empty socket), and after a send: a ZeroMQ socket's descriptor is
    edge-triggered, and any operation on the socket may take in the signal of a message
    that came meanwhile. The option and flag are plain ints: pyzmq's IntFlag arithmetic
    costs microseconds a message.
    """
    # ZMQ_EVENTS is an int option; pyzmq's stub types every getsockopt() as int | bytes.
    return bool(sock.getsockopt(_EVENTS) & _POLLIN)  # type: ignore[operator]
#: pyzmq's Python-level ``Socket.send`` only adds draft-API arguments (routing_id, group)
#: before calling its compiled base class's; calling the base directly halves what a
#: frame costs to send. Used only for sockets whose class keeps that ``send``.
_SUGAR_SEND = zmq.Socket.send
_BACKEND_SEND = zmq.backend.Socket.send


def send_frames(sock: zmq.Socket, frames: list[bytes], flags: int = 0) -> None:
    """``sock.send_multipart(frames, flags)`` without its per-frame IntFlag arithmetic."""
    flags = int(flags)
    more = _SNDMORE | flags
    if type(sock).send is _SUGAR_SEND:
        send = _BACKEND_SEND
        for frame in frames[:-1]:
            send(sock, frame, more)
        send(sock, frames[-1], flags)
        return
    sock_send = sock.send
    for frame in frames[:-1]:
        sock_send(frame, more)
    sock_send(frames[-1], flags)


def recv_frames(sock: zmq.Socket, flags: int = 0) -> list[bytes]:
    """``sock.recv_multipart(flags)``, about three times cheaper.

    pyzmq's version asks ``getsockopt(RCVMORE)`` after each frame, and every getsockopt
    converts its option to an enum in Python; a frame received without copying carries
    that flag itself (``Frame.more``). ``Frame.bytes`` is the one copy either way.
    """
    recv = sock.recv
    frame = recv(flags, copy=False)
    frames = [frame.bytes]
    while frame.more:
        frame = recv(flags, copy=False)
        frames.append(frame.bytes)
    return frames
