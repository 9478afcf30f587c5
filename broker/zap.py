"""The broker's gate: ZeroMQ asks it, per connecting peer, whether its CURVE key is admitted.

ZeroMQ's authentication protocol (ZAP, RFC 27) sends one request per handshake to an
``inproc://zeromq.zap.01`` socket; the broker answers it in its own poll loop, so there is
no thread to coordinate. Admitted keys are the public key files in the allowed-keys
directory (pyzmq's certificate format, read with ``zmq.auth.load_certificates``), read
again when the directory changes: admitting or removing a key needs no restart. Every
refusal is logged with the peer's address and key, at most once per peer per interval.
A peer that does not speak CURVE at all never reaches ZAP (the handshake fails first);
a monitor on each CURVE socket reports those, so they are logged too.
"""

from __future__ import annotations

import errno
import os
import time
from typing import Any, Callable

import zmq
import zmq.auth
from zmq.utils import z85
from zmq.utils.monitor import recv_monitor_message

from shared.log_throttle import LogThrottle

ZAP_ENDPOINT = "inproc://zeromq.zap.01"
ZAP_VERSION = b"1.0"
#: A peer refused again within this long is counted, not logged again.
REFUSAL_LOG_INTERVAL_S = 10.0


class CurveGate:
    def __init__(self, context: zmq.Context, allowed_keys_dir: str, logger: Any,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._context = context
        self._allowed_dir = allowed_keys_dir
        self._log = logger
        self._allowed: dict[bytes, bool] = {}
        self._loaded_mtime_ns: int | None = None
        #: keyed by (peer address, key); bounded (shared.log_throttle.MAX_KEYS peers)
        self._refusal_lines = LogThrottle(REFUSAL_LOG_INTERVAL_S, clock)
        self.socket: zmq.Socket | None = None
        self._monitors: list[tuple[zmq.Socket, zmq.Socket]] = []

    def start(self) -> zmq.Socket:
        """Bind the ZAP socket; before any CURVE socket binds, or ZeroMQ admits everyone."""
        self.socket = self._context.socket(zmq.REP)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.bind(ZAP_ENDPOINT)
        self._reload()
        return self.socket

    def watch(self, sock: zmq.Socket, name: str) -> zmq.Socket:
        """A monitor socket reporting ``sock``'s failed handshakes; poll it, then call
        :meth:`handle_monitor` with it and ``name``."""
        monitor = sock.get_monitor_socket(zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL)
        self._monitors.append((sock, monitor))
        return monitor

    def handle_monitor(self, monitor: zmq.Socket, name: str) -> None:
        while monitor.poll(0):
            event = recv_monitor_message(monitor)
            self._refused_peer(f"{name} socket {event['endpoint'].decode(errors='replace')}".encode(), "-",
                               handshake_failure(event["event"], event["value"]))

    def close(self) -> None:
        for sock, monitor in self._monitors:
            sock.disable_monitor()
            monitor.close(linger=0)
        self._monitors.clear()
        if self.socket is not None:
            self.socket.close(linger=0)
            self.socket = None

    def handle(self) -> None:
        """Answer every waiting request."""
        sock = self.socket
        if sock is None:  # not started, or closed
            return
        while True:
            try:
                request = sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            sock.send_multipart(self._answer(request))

    def _answer(self, request: list[bytes]) -> list[bytes]:
        if len(request) < 6 or request[0] != ZAP_VERSION:
            request_id = request[1] if len(request) > 1 else b""
            return [ZAP_VERSION, request_id, b"400", b"malformed ZAP request", b"", b""]
        _, request_id, domain, address, _, mechanism = request[:6]
        credentials = request[6:]
        if mechanism != b"CURVE" or len(credentials) != 1 or len(credentials[0]) != 32:
            self._refused_peer(address, mechanism.decode(errors="replace") or "NULL", "not CURVE")
            return [ZAP_VERSION, request_id, b"400", b"CURVE required", b"", b""]
        self._reload_if_changed()
        key = z85.encode(credentials[0])
        if not self._allowed.get(key):
            self._refused_peer(address, key.decode(), "key not in the allowed-keys directory")
            return [ZAP_VERSION, request_id, b"400", b"key not admitted", b"", b""]
        return [ZAP_VERSION, request_id, b"200", b"OK", key, b""]

    def _refused_peer(self, address: bytes, key: str, reason: str) -> None:
        peer = (address.decode(errors="replace"), key)
        held_back = self._refusal_lines.due(peer)
        if held_back is None:
            return
        self._log.warning("peer_refused", address=peer[0], key=key, reason=reason, refused_since_last_line=held_back,
                          allowed_keys_dir=self._allowed_dir)

    def _reload_if_changed(self) -> None:
        """One stat per handshake (they are rare: one per connecting peer)."""
        try:
            mtime_ns = os.stat(self._allowed_dir).st_mtime_ns
        except OSError:
            mtime_ns = None
        if mtime_ns != self._loaded_mtime_ns:
            self._reload()

    def _reload(self) -> None:
        try:
            self._loaded_mtime_ns = os.stat(self._allowed_dir).st_mtime_ns
            self._allowed = zmq.auth.load_certificates(self._allowed_dir)
        except (OSError, ValueError) as exc:
            self._loaded_mtime_ns = None
            self._allowed = {}
            self._log.error("allowed_keys_unreadable", allowed_keys_dir=self._allowed_dir, error=str(exc))
            return
        self._log.info("allowed_keys_loaded", allowed_keys_dir=self._allowed_dir, keys=len(self._allowed))


def handshake_failure(event: int, value: int) -> str:
    """Say why a handshake on a CURVE socket failed, in words an operator can act on.

    A peer without CURVE is seen one of two ways, depending on who notices first: a
    mechanism mismatch (``HANDSHAKE_FAILED_PROTOCOL``), or the peer hanging up mid-handshake
    because *it* noticed (``HANDSHAKE_FAILED_NO_DETAIL`` with EPIPE or ECONNRESET). An
    admitted client that gives up waiting (a ``seawall status`` timing out on a busy broker)
    hangs up the same way, so that reason names it too.
    """
    if event == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL and value == zmq.PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH:
        return "handshake failed: not CURVE, or another broker's key"
    if event == zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL and value in (errno.EPIPE, errno.ECONNRESET):
        return (f"handshake failed: the peer hung up mid-handshake ({errno.errorcode[value]}); "
                "a peer not CURVE, one with another broker's key, or a client that gave up waiting")
    detail = errno.errorcode.get(value, str(value)) if event == zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL else str(value)
    return f"handshake failed (ZeroMQ event {event}, value {detail})"
