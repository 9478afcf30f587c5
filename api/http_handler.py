"""The front's HTTP connection handler: gevent's, with a deadline on every write.

gevent's server writes a response with no deadline. A client that stops reading (a
dashboard tab frozen in the background, a dead peer that never sent a FIN) fills its
socket's send buffer, and the greenlet writing to it then waits for ever: for a stream,
it also keeps one of the few stream places, so a handful of such clients shut every
operator out of ``/hystrix.stream`` and ``/dashboard.stream``. Here a write that the
client has not taken within :data:`WRITE_TIMEOUT_S` ends the connection, as a reset
would, and the stream's place is given back.
"""

from __future__ import annotations

import errno
import socket
from typing import Any

import gevent
from gevent.pywsgi import WSGIHandler

#: Longest one write may wait for the client to read: generous, since a view of a
#: thousand commands is a few hundred kilobytes and may cross a slow link.
WRITE_TIMEOUT_S = 30.0


class DeadlineHandler(WSGIHandler):
    """A connection whose client does not read for WRITE_TIMEOUT_S is closed, quietly."""

    # A write timed out is a client that went away, as a reset is: not worth a traceback.
    ignored_socket_errors = (*WSGIHandler.ignored_socket_errors, errno.ETIMEDOUT)
    write_timeout_s = WRITE_TIMEOUT_S

    def _sendall(self, data: Any) -> None:
        timed_out = socket.timeout(errno.ETIMEDOUT, f"the client read nothing for {self.write_timeout_s:g} s")
        with gevent.Timeout(self.write_timeout_s, timed_out):
            super()._sendall(data)  # type: ignore[misc]  # not in gevent's stubs
