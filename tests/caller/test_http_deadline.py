"""The front's HTTP handler (api/http_handler.py): a client that stops reading a stream
gives its place back, and one that does not send its request (or a new one on a kept-alive
connection) is closed, instead of holding its place and its greenlet for good."""

from __future__ import annotations

import contextlib
import sys
import textwrap
import time
from typing import Any, Iterator

import gevent
import gevent.socket
import pytest
from gevent.pool import Pool
from gevent.pywsgi import WSGIServer

from api.dashboard import Streams
from api.endpoints import EndpointDirectory
from api.front import Front
from api.http_handler import MAX_HEADER_BYTES, DeadlineHandler, DrainingServer


class BigViewFeed:
    """A view the size of a few thousand commands: a few rounds fill any socket buffer."""

    def view(self) -> dict[str, Any]:
        return {"commands": {"padding": "x" * 2_000_000}}


class SmallViewFeed:
    def view(self) -> dict[str, Any]:
        return {"commands": {}}


class QuickDeadlineHandler(DeadlineHandler):
    write_timeout_s = 0.5


class QuickReadHandler(DeadlineHandler):
    read_timeout_s = 0.5
    idle_timeout_s = 1.5


#: How long a test waits for what a deadline of a second or two should bring about.
PATIENCE_S = 10.0


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


ECHO = textwrap.dedent('''
    def size(request):
        return {"bytes": len(request.body)}

    ROUTES = {"size": size}
''')


@pytest.fixture
def front(tmp_path):
    (tmp_path / "echo.py").write_text(ECHO)
    return Front(EndpointDirectory(tmp_path))


@contextlib.contextmanager
def serving(app: Any, pool_size: int = 10) -> Iterator[tuple[WSGIServer, Pool]]:
    pool = Pool(pool_size)
    server = WSGIServer(("127.0.0.1", 0), app, spawn=pool, handler_class=QuickReadHandler, log=None)
    server.start()
    try:
        yield server, pool
    finally:
        server.stop(timeout=1)


def _connect(server: WSGIServer) -> gevent.socket.socket:
    return gevent.socket.create_connection(("127.0.0.1", server.server_port))


def _answer(sock: gevent.socket.socket) -> bytes:
    """One whole answer with a Content-Length (the front's JSON ones)."""
    def more() -> bytes:
        chunk = sock.recv(4096)
        assert chunk, "closed without a whole answer"
        return chunk

    with gevent.Timeout(PATIENCE_S):
        data = b""
        while b"\r\n\r\n" not in data:
            data += more()
        head, _, body = data.partition(b"\r\n\r\n")
        length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        while len(body) < length:
            body += more()
    return head.split(b"\r\n")[0] + b" " + body


def _get_size(sock: gevent.socket.socket) -> None:
    """One GET /echo/size on ``sock``, answered whole; the connection is kept alive."""
    sock.sendall(b"GET /echo/size HTTP/1.1\r\nHost: front\r\n\r\n")
    assert _answer(sock) == b'HTTP/1.1 200 OK {"bytes": 0}'


def _seconds_until_closed(sock: gevent.socket.socket) -> float:
    """Reads (and drops) whatever comes until the server closes; PATIENCE_S if it never does."""
    started_s = time.monotonic()
    received = b""
    try:
        with gevent.Timeout(PATIENCE_S):
            while chunk := sock.recv(4096):
                received += chunk
    except gevent.Timeout:
        return PATIENCE_S
    except ConnectionResetError:
        pass
    assert received == b"", f"closed with an answer: {received[:80]!r}"
    return time.monotonic() - started_s


def test_an_idle_kept_alive_connection_is_closed_and_its_greenlet_given_back(front):
    with serving(front) as (server, pool):
        sock = _connect(server)
        try:
            _get_size(sock)
            assert pool.free_count() == pool.size - 1

            idle_s = _seconds_until_closed(sock)

            assert 1.0 < idle_s < PATIENCE_S, "the idle connection was not closed after IDLE_TIMEOUT_S (1.5 s)"
            with gevent.Timeout(PATIENCE_S, AssertionError("the closed connection still holds its greenlet")):
                while pool.free_count() < pool.size:
                    gevent.sleep(0.02)
        finally:
            sock.close()


def test_a_connection_that_sends_nothing_is_closed_after_the_read_bound(front, capsys):
    with serving(front) as (server, _):
        sock = _connect(server)
        try:
            assert _seconds_until_closed(sock) < PATIENCE_S, "a silent connection was kept open"
        finally:
            sock.close()
    assert capsys.readouterr().err == "", "a connection closed by its deadline left a traceback"


def test_a_request_sent_a_byte_at_a_time_is_cut_off_after_the_read_bound(front, capsys):
    with serving(front) as (server, _):
        sock = _connect(server)
        sock.sendall(b"GET /echo/size HTTP/1.1\r\n")

        def drip() -> None:  # a header byte every 50 ms, never the blank line that ends them
            with contextlib.suppress(OSError):
                for _ in range(int(PATIENCE_S / 0.05)):
                    sock.sendall(b"X")
                    gevent.sleep(0.05)

        dripping = gevent.spawn(drip)
        try:
            assert _seconds_until_closed(sock) < PATIENCE_S, "a slowloris request kept its connection"
        finally:
            dripping.kill()
            sock.close()
    assert capsys.readouterr().err == "", "a connection closed by its deadline left a traceback"


def test_a_body_that_does_not_arrive_is_cut_off_after_the_read_bound(front, capsys):
    with serving(front) as (server, _):
        sock = _connect(server)
        try:
            sock.sendall(b"POST /echo/size HTTP/1.1\r\nHost: front\r\nContent-Length: 100\r\n\r\n" + b"x" * 10)
            assert _seconds_until_closed(sock) < PATIENCE_S, "a request whose body never came was kept open"
        finally:
            sock.close()
    assert capsys.readouterr().err == "", "a connection closed by its deadline left a traceback"


def test_a_kept_alive_connection_serves_a_request_sent_after_the_read_bound(front):
    with serving(front) as (server, _):
        sock = _connect(server)
        try:
            _get_size(sock)
            gevent.sleep(0.8)  # past the read bound (0.5 s), within the idle bound (1.5 s)
            sock.sendall(b"POST /echo/size HTTP/1.1\r\nHost: front\r\nContent-Length: 5\r\n\r\nhello")
            assert _answer(sock) == b'HTTP/1.1 200 OK {"bytes": 5}'
        finally:
            sock.close()


def test_a_stream_streams_on_past_the_read_bound():
    streams = Streams(SmallViewFeed(), limit=1, interval_s=0.05)
    with serving(streams) as (server, _):
        reader = _get(server.server_port, "/dashboard.stream")
        try:
            started_s = time.monotonic()
            with gevent.Timeout(PATIENCE_S):
                while time.monotonic() - started_s < 2.0:  # four read bounds
                    assert reader.recv(4096), "the stream was cut off"
            assert streams.open_count == 1
        finally:
            reader.close()


def test_idle_connections_filling_the_pool_do_not_shut_out_a_caller(front):
    with serving(front, pool_size=2) as (server, _):
        silent = [_connect(server) for _ in range(2)]
        caller = _connect(server)
        try:
            caller.sendall(b"GET /echo/size HTTP/1.1\r\nHost: front\r\n\r\n")
            assert _answer(caller) == b'HTTP/1.1 200 OK {"bytes": 0}'
        finally:
            caller.close()
            for sock in silent:
                sock.close()


def _status_line(sock: gevent.socket.socket) -> bytes:
    received = b""
    with gevent.Timeout(PATIENCE_S):
        while b"\r\n" not in received and (chunk := sock.recv(4096)):
            received += chunk
    return received.split(b"\r\n")[0]


def test_headers_over_the_bound_are_answered_431_and_the_connection_closed(front, capsys):
    """Python's parser alone takes 100 header lines of 64 KiB (6.5 MB a request, kept while
    it is served); past MAX_HEADER_BYTES in all, the request is refused."""
    with serving(front) as (server, _):
        sock = _connect(server)
        try:
            line = b"X-Filler: " + b"a" * 8000 + b"\r\n"
            sock.sendall(b"GET /echo/size HTTP/1.1\r\nHost: front\r\n" + line * (MAX_HEADER_BYTES // len(line) + 2))
            assert _status_line(sock) == b"HTTP/1.1 431 Request Header Fields Too Large"
            assert _seconds_until_closed(sock) < PATIENCE_S
        finally:
            sock.close()
        ok = _connect(server)  # headers just under the bound are served
        try:
            ok.sendall(b"GET /echo/size HTTP/1.1\r\nHost: front\r\n" + line * (MAX_HEADER_BYTES // len(line) - 1)
                       + b"\r\n")
            assert _answer(ok) == b'HTTP/1.1 200 OK {"bytes": 0}'
        finally:
            ok.close()
    assert capsys.readouterr().err == ""


SLOW = textwrap.dedent('''
    import gevent
    from gevent.event import Event

    serving = Event()  # set when a request is being served

    def slow(request):
        serving.set()
        gevent.sleep(0.5)
        return {"done": True}

    ROUTES = {"slow": slow}
''')


def test_a_stop_closes_idle_kept_alive_connections_at_once(front):
    """gevent's stop() waited its whole stop_timeout for a kept-alive connection idling
    (15 s idle bound against an 11 s wait), then killed it."""
    server = DrainingServer(("127.0.0.1", 0), front, handler_class=DeadlineHandler, log=None)
    server.start()
    sock = _connect(server)
    try:
        _get_size(sock)
        started_s = time.monotonic()
        server.stop(timeout=PATIENCE_S)
        assert time.monotonic() - started_s < PATIENCE_S / 2, "the stop waited out the idle connection"
        assert _seconds_until_closed(sock) < PATIENCE_S
    finally:
        sock.close()
        server.stop(timeout=0)


def test_a_request_served_while_stopping_is_answered_whole_and_is_the_connections_last(tmp_path):
    (tmp_path / "s.py").write_text(SLOW)
    directory = EndpointDirectory(tmp_path)
    directory.resolve("/s/slow")  # loaded now, to wait on its event
    serving = sys.modules["endpoints.s"].serving
    server = DrainingServer(("127.0.0.1", 0), Front(directory), handler_class=DeadlineHandler, log=None)
    server.start()
    sock = _connect(server)
    try:
        sock.sendall(b"GET /s/slow HTTP/1.1\r\nHost: front\r\n\r\n")
        assert serving.wait(PATIENCE_S), "the request was never served"
        stopping = gevent.spawn(server.stop, PATIENCE_S)
        received = b""
        with gevent.Timeout(PATIENCE_S):
            while chunk := sock.recv(4096):
                received += chunk
        assert received.startswith(b"HTTP/1.1 200 OK") and received.endswith(b'{"done": true}')
        assert b"\r\nConnection: close\r\n" in received
        stopping.join(PATIENCE_S)
    finally:
        sock.close()
        server.stop(timeout=0)
