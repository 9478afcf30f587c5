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


def send_frames(sock: zmq.Socket, frames: list[bytes], flags: int = 0) -> None:
    """``sock.send_multipart(frames, flags)`` without its per-frame IntFlag arithmetic."""
    flags = int(flags)
    more = _SNDMORE | flags
    send = sock.send
    for frame in frames[:-1]:
        send(frame, more)
    send(frames[-1], flags)
