"""One incoming request's context: its request cache and its request log.

``request_context()`` opens one per request. Greenlets started with :func:`spawn` (and
so by ``queue()`` and the composition helpers) carry it with them, so every concurrent
code path of a request shares its cache — what Hystrix users kept getting wrong with
ThreadLocals (Hystrix #92, #1148, #1564).
"""

from __future__ import annotations

import contextlib
import contextvars
import weakref
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable, Iterator, Sequence

import gevent
from gevent.event import AsyncResult

from shared.events import Event

#: Most commands one request's log keeps (Hystrix's request log: 1000).
MAX_LOGGED_COMMANDS = 1000
#: Most entries one request's cache holds; past that, calls still run but are not cached.
MAX_CACHED_CALLS = 10_000

_current: contextvars.ContextVar[RequestContext | None] = contextvars.ContextVar("seawall_request", default=None)


@dataclass(frozen=True)
class LoggedCommand:
    command: str
    events: tuple[Event, ...]
    latency_ms: float

    def __str__(self) -> str:
        return f"{self.command}[{', '.join(self.events)}][{self.latency_ms:.0f}ms]"


def _logged_command(command: str, events: tuple[Event, ...], latency_ms: float) -> LoggedCommand:
    """``LoggedCommand(command, events, latency_ms)`` in half the time, for every call in
    a request context: a frozen dataclass's ``__init__`` sets each field through
    ``object.__setattr__``. The entry is the same (equal, same repr, still frozen)."""
    entry = object.__new__(LoggedCommand)
    fields = entry.__dict__
    fields["command"] = command
    fields["events"] = events
    fields["latency_ms"] = latency_ms
    return entry


@dataclass
class RequestContext:
    #: (command class, cache key's type, cache key) -> the future of the first such call
    cache: dict[tuple[type, type, Hashable], AsyncResult] = field(default_factory=dict)
    log: list[LoggedCommand] = field(default_factory=list)
    log_overflow: int = 0
    #: request-scoped collapsing (api.collapsing.RequestBatcher), made on first use
    batcher: Any = None
    #: the request's composition streams (api.compose.Observable) still alive
    streams: weakref.WeakSet[Any] = field(default_factory=weakref.WeakSet)

    def record(self, command: str, events: Sequence[Event], latency_ms: float) -> None:
        if len(self.log) < MAX_LOGGED_COMMANDS:
            self.log.append(_logged_command(command, tuple(events), round(latency_ms, 3)))
        else:
            self.log_overflow += 1

    def end_streams(self) -> None:
        """Cancel the request's streams still running: once it is answered, one that nobody
        reads would wait for ever for a reader to make room (its greenlets, and what it
        holds, with it)."""
        for stream in list(self.streams):
            stream.cancel()

    def log_line(self) -> str:
        """Hystrix's one-line request log: ``GetUser[SUCCESS][3ms], GetRatings[TIMEOUT, FALLBACK_SUCCESS][200ms]``."""
        line = ", ".join(str(entry) for entry in self.log)
        return f"{line}, ... {self.log_overflow} more" if self.log_overflow else line


@contextlib.contextmanager
def request_context() -> Iterator[RequestContext]:
    """Open a request context for the code inside (one per incoming request)."""
    context = RequestContext()
    token = _current.set(context)
    try:
        yield context
    finally:
        _current.reset(token)


#: The request context the calling code runs in, or None. The context variable's own
#: ``get``, not a function around it: every call looks it up, in a context or not.
current_context: Callable[[], RequestContext | None] = _current.get


def spawn(function: Callable[..., Any], *args: Any, **kwargs: Any) -> gevent.Greenlet:
    """``gevent.spawn`` that carries the caller's request context into the new greenlet."""
    greenlet = gevent.Greenlet(function, *args, **kwargs)
    greenlet.gr_context = contextvars.copy_context()
    greenlet.start()
    return greenlet


#: What a future or a stream hands on as the call's error: any exception, and a gevent
#: Timeout raised in the call (a BaseException, which a call's own deadline is not: that
#: one is CommandTimeout).
CALL_ERRORS = (Exception, gevent.Timeout)


def future_of(function: Callable[..., Any], *args: Any) -> AsyncResult:
    """Run ``function(*args)`` in a greenlet of this request context; a future of its value or error."""
    future: AsyncResult[Any] = AsyncResult()

    def run() -> None:
        try:
            future.set(function(*args))
        except CALL_ERRORS as exc:  # noqa: BLE001 - handed to the future's owner
            future.set_exception(exc)  # a Timeout raised in the call too: the future must resolve
        except SystemExit as exc:  # the future's owner raises it; let out here, gevent would end the process
            future.set_exception(exc)
        except BaseException as exc:  # killed (GreenletExit)
            future.set_exception(exc)
            raise

    spawn(run)
    return future
