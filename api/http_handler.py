"""The front's HTTP connection handler: gevent's, with a deadline on every read and write.

gevent's server waits for a client with no deadline, and each connection holds one of the
front's 1,000 greenlets while it lasts. A client that sends nothing, sends its request a
byte at a time (slowloris) or keeps a kept-alive connection idle held its greenlet for
ever, and a thousand of them shut every user out; one that stops reading (a dashboard tab
frozen in the background, a dead peer that never sent a FIN) held its greenlet and, for a
stream, one of the few stream places. Here a request must arrive whole within
:data:`READ_TIMEOUT_S`, a kept-alive connection is closed after :data:`IDLE_TIMEOUT_S`
without a new request, and a write the client has not taken within :data:`WRITE_TIMEOUT_S`
ends the connection. Each closes it as a reset would, without a traceback, and gives its
places back. Only waiting for a request is bounded by the first two, so a stream that
writes for minutes after its request was read is not cut off.
"""

from __future__ import annotations

import errno
import io
import math
import socket
import time
from typing import Any

import gevent
from gevent.pywsgi import WSGIHandler, WSGIServer

#: Longest one write may wait for the client to read: generous, since a view of a
#: thousand commands is a few hundred kilobytes and may cross a slow link.
WRITE_TIMEOUT_S = 30.0
#: Longest a request may take to arrive whole (line, headers and a body of at most
#: ``api.front.MAX_BODY_BYTES``) from when the front starts waiting for it: a new
#: connection's first request from its accept, a kept-alive one's from its first byte.
#: Callers send a request in one go, in milliseconds; 10 s leaves room for a congested link
#: (1 MiB at 128 KiB/s takes 8 s) and bounds what a slowloris client holds a greenlet for.
READ_TIMEOUT_S = 10.0
#: Longest a kept-alive connection may wait for its next request. A caller that calls
#: again within it saves a connection; past it, the greenlet is worth more to another
#: caller. Between gunicorn's 2 s and uvicorn's and Node's 5 s, short enough to close on
#: callers between bursts, and nginx's 75 s, long enough to hold greenlets for clients
#: long gone. A pooling client (urllib3, httpx) finds a closed connection before reusing
#: it, so closing one costs a reconnect, not a failed call.
IDLE_TIMEOUT_S = 15.0
#: Most bytes of one request's headers. Python's parser alone takes 100 lines of 64 KiB,
#: 6.5 MB that a request keeps (environ and the endpoint's headers) for as long as it is
#: served: 40 such requests to a slow endpoint took a front from 39 to 479 MB. Browsers and
#: proxies send a few kilobytes; nginx's largest default buffers are 4 × 8 KiB.
MAX_HEADER_BYTES = 64 * 1024
#: Sent for headers over MAX_HEADER_BYTES (RFC 6585); the connection is closed.
_HEADERS_TOO_LARGE_RESPONSE = (b"HTTP/1.1 431 Request Header Fields Too Large\r\nConnection: close\r\n"
                               b"Content-Length: 0\r\n\r\n")


class HeadersTooLarge(ValueError):
    """A request's headers ran past MAX_HEADER_BYTES: the client's fault, answered 431."""


class _BoundedLines:
    """The reader the header parser reads lines from: past ``limit_bytes`` in all, an error."""

    def __init__(self, reader: Any, limit_bytes: int) -> None:
        self._reader = reader
        self._limit_bytes = self._left_bytes = limit_bytes

    def readline(self, size: int = -1) -> bytes:
        # Never more than one past what is left: a line that does not fit is refused unread.
        wanted = self._left_bytes + 1 if size is None or size < 0 else min(size, self._left_bytes + 1)
        line: bytes = self._reader.readline(wanted)
        self._left_bytes -= len(line)
        if self._left_bytes < 0:
            raise HeadersTooLarge(f"request headers over {self._limit_bytes} bytes")
        return line


class _DeadlineReads(io.RawIOBase):
    """A connection's reads from the network: each waits only until ``deadline_s``.

    The deadline bounds waiting for the network, not reading what has arrived: bytes
    already received are read even past it.
    """

    def __init__(self, raw: io.RawIOBase) -> None:
        super().__init__()
        self._raw = raw
        self.deadline_s = math.inf  # on time.monotonic()'s clock
        self.missed = ""  # what the client failed to do by the deadline, for the error

    def until(self, deadline_s: float, missed: str) -> None:
        self.deadline_s, self.missed = deadline_s, missed

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int | None:
        left_s = max(self.deadline_s - time.monotonic(), 0.0)
        with gevent.Timeout(left_s, socket.timeout(errno.ETIMEDOUT, f"the client {self.missed}")):
            return self._raw.readinto(buffer)

    def close(self) -> None:
        self._raw.close()
        super().close()


class DeadlineHandler(WSGIHandler):
    """A connection whose client does not read for WRITE_TIMEOUT_S, does not send its
    request within READ_TIMEOUT_S, or sends no new one for IDLE_TIMEOUT_S is closed, quietly."""

    # A read or write timed out is a client that went away, as a reset is: not worth a traceback.
    ignored_socket_errors = (*WSGIHandler.ignored_socket_errors, errno.ETIMEDOUT)
    write_timeout_s = WRITE_TIMEOUT_S
    read_timeout_s = READ_TIMEOUT_S
    idle_timeout_s = IDLE_TIMEOUT_S
    max_header_bytes = MAX_HEADER_BYTES

    def __init__(self, sock: Any, address: Any, server: Any) -> None:
        super().__init__(sock, address, server)
        # gevent's buffered reader, over reads that wait on the network only until the
        # deadline: the request line, headers, body and any pipelined request go through it.
        self._reads = _DeadlineReads(self.rfile.detach())
        self.rfile = io.BufferedReader(self._reads)
        self._requests_awaited = 0

    def read_requestline(self) -> str:
        if self._requests_awaited:  # kept alive: idle until the next request's first byte
            if _draining(self.server):
                return ""  # the server is stopping: no new request on this connection (gevent closes it)
            self._reads.until(time.monotonic() + self.idle_timeout_s,
                              f"sent no new request for {self.idle_timeout_s:g} s")
            idle = getattr(self.server, "idle", None)
            if idle is not None:
                idle.add(gevent.getcurrent())
            try:
                self.rfile.peek(1)  # gevent closes the connection on an error reading a request line
            finally:
                if idle is not None:
                    idle.discard(gevent.getcurrent())
        self._requests_awaited += 1
        self._reads.until(time.monotonic() + self.read_timeout_s,
                          f"did not send its whole request within {self.read_timeout_s:g} s")
        return super().read_requestline()

    def start_response(self, status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        if _draining(self.server):  # the server is stopping: this answer is the connection's last
            headers = [*headers, ("Connection", "close")]
        return super().start_response(status, headers, exc_info)

    def MessageClass(self, fp: Any, *args: Any) -> Any:  # noqa: N802 - gevent's name
        """The request's headers, read from ``fp`` up to MAX_HEADER_BYTES."""
        return super().MessageClass(_BoundedLines(fp, self.max_header_bytes), *args)  # type: ignore[arg-type]

    def _handle_client_error(self, ex: BaseException) -> tuple[str, bytes] | None:
        # gevent answers any error reading the headers with a 400 (and a traceback but for a
        # ValueError): a client too slow or gone sent no bad request; its connection is closed.
        if isinstance(ex, OSError) and ex.args and ex.args[0] in self.ignored_socket_errors:
            return None
        if isinstance(ex, HeadersTooLarge):
            self.close_connection = True  # the rest of its headers are not read
            return ("431", _HEADERS_TOO_LARGE_RESPONSE)
        return super()._handle_client_error(ex)  # type: ignore[misc]  # not in gevent's stubs

    def _sendall(self, data: Any) -> None:
        timed_out = socket.timeout(errno.ETIMEDOUT, f"the client read nothing for {self.write_timeout_s:g} s")
        with gevent.Timeout(self.write_timeout_s, timed_out):
            super()._sendall(data)  # type: ignore[misc]  # not in gevent's stubs


class DrainingServer(WSGIServer):
    """gevent's WSGI server, whose ``stop()`` also lets kept-alive connections go.

    gevent's stops accepting and waits (``stop_timeout``) for its connections to end; a
    kept-alive one idles until IDLE_TIMEOUT_S, past the wait, so every stop waited it out,
    and a request sent on such a connection meanwhile was served, then killed at the end
    of the wait with a bare 500. Here a stop closes the idle connections at once, ends
    each connection after the answer it is giving (``Connection: close``), and takes no
    new request on one.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.draining = False
        #: greenlets of kept-alive connections waiting for their next request
        self.idle: set[gevent.Greenlet] = set()

    def stop(self, timeout: float | None = None) -> None:
        self.draining = True
        for greenlet in list(self.idle):
            greenlet.kill(block=False)  # it waits on the network: nothing half-done is lost
        super().stop(timeout)


def _draining(server: Any) -> bool:
    return getattr(server, "draining", False)
