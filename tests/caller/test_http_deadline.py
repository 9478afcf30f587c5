"""The front's HTTP handler (api/http_handler.py): a client that stops reading a stream
gives its place back, instead of holding it, and its greenlet, for good."""

from __future__ import annotations

import time
from typing import Any

import gevent
import gevent.socket
from gevent.pywsgi import WSGIServer

from api.dashboard import Streams
from api.http_handler import DeadlineHandler


class BigViewFeed:
    """A view the size of a few thousand commands: a few rounds fill any socket buffer."""

    def view(self) -> dict[str, Any]:
        return {"commands": {"padding": "x" * 2_000_000}}


class QuickDeadlineHandler(DeadlineHandler):
    write_timeout_s = 0.5


def _get(port: int, path: str) -> gevent.socket.socket:
    sock = gevent.socket.create_connection(("127.0.0.1", port))
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: front\r\n\r\n".encode())
    return sock


def test_a_stream_reader_that_stops_reading_gives_its_place_back():
    streams = Streams(BigViewFeed(), limit=1, interval_s=0.05)
    server = WSGIServer(("127.0.0.1", 0), streams, handler_class=QuickDeadlineHandler, log=None)
    server.start()
    stuck = _get(server.server_port, "/dashboard.stream")  # and never read
    try:
        deadline_s = time.monotonic() + 5
        while streams.open_count == 0 and time.monotonic() < deadline_s:
            gevent.sleep(0.02)
        assert streams.open_count == 1
        while streams.open_count == 1 and time.monotonic() < deadline_s + 10:
            gevent.sleep(0.05)
        assert streams.open_count == 0, "the stuck reader still holds the only stream place"
        reader = _get(server.server_port, "/dashboard.stream")
        try:
            assert reader.recv(64).startswith(b"HTTP/1.1 200")
        finally:
            reader.close()
    finally:
        stuck.close()
        server.stop(timeout=1)


def test_a_client_that_reads_is_not_cut_off():
    streams = Streams(BigViewFeed(), limit=1, interval_s=0.05)
    server = WSGIServer(("127.0.0.1", 0), streams, handler_class=QuickDeadlineHandler, log=None)
    server.start()
    reader = _get(server.server_port, "/dashboard.stream")
    try:
        received = 0
        while received < 12_000_000:  # several rounds of 2 MB
            chunk = reader.recv(1 << 20)
            assert chunk, f"cut off after {received} bytes"
            received += len(chunk)
        assert streams.open_count == 1
    finally:
        reader.close()
        server.stop(timeout=1)
