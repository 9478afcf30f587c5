"""Server-sent event streams that hold a bounded number of places.

The dashboard's stream and ``/hystrix.stream`` each keep a greenlet per open connection
for as long as the client reads, so each caps how many are open. A place is taken when
the response starts (a request right after must see it taken) and given back exactly
once, when the server closes the body: the client went away, the stream ended, or the
server is stopping, whether or not a byte was ever read.
"""

from __future__ import annotations

from typing import Callable, Generator, Iterator


class StreamPlaces:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open_count = 0

    @property
    def full(self) -> bool:
        return self.open_count >= self.limit

    def body(self, events: Generator[bytes, None, None]) -> StreamBody:
        """Take a place for ``events``; the returned body gives it back when closed."""
        self.open_count += 1
        return StreamBody(events, self._release)

    def _release(self) -> None:
        self.open_count -= 1


class StreamBody:
    """A WSGI response body whose ``close()`` releases its place exactly once."""

    def __init__(self, events: Generator[bytes, None, None], on_close: Callable[[], None]) -> None:
        self._events = events
        self._on_close: Callable[[], None] | None = on_close

    def __iter__(self) -> Iterator[bytes]:
        return self._events

    def close(self) -> None:
        self._events.close()
        if self._on_close is not None:
            on_close, self._on_close = self._on_close, None
            on_close()
