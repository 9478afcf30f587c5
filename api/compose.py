"""Composition for endpoint code: combine many calls, concurrently, without futures.

``command.observe()`` starts a call and returns an :class:`Observable` of its value. The
functions here — :func:`map`, :func:`flat_map`, :func:`filter`, :func:`merge`,
:func:`zip`, :func:`take`, :func:`to_list`, :func:`first` — build new observables from
old ones; each stage runs in its own greenlet of the same request context, so endpoint
code never touches locks, threads or raw futures. An error travels downstream to
:meth:`Observable.get` (or to :func:`catch`, the composition's error handler).

An observable is hot and replayed, as Hystrix's ``observe()``: it runs once, whoever
reads it, and keeps what it made, so any number of readers (stages, ``get()``), starting
before, during or after it, each see every value, then its end or its error. It keeps
its last ``MAX_KEPT_VALUES`` values; a reader more than that behind gets
:class:`ReplayLost` as its error, never a gap. A producer runs at most ``BUFFER``
values ahead of its furthest reader, then waits.

A stage that stops reading early (``take``, ``first``, ``zip`` past the shortest, an
error, a cancelled stage) releases its sources; a source is cancelled when the last
stage reading it lets go early, never while another reader is still open (the sources
it leaves unread in turn, one after another). A reader added after that sees what the
source had made, then :class:`StreamReleased`, not an end that would pass the rest off
as never made: build every stage that reads a stream before reading any. A front ends a
request's streams still running once the request is answered
(``RequestContext.end_streams``): one nobody reads would wait for a reader for ever.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Callable, Iterator, Sequence

import gevent
from gevent import GreenletExit
from gevent.event import Event
from gevent.queue import Queue

from api.context import CALL_ERRORS, current_context, spawn

#: Values a producer makes past its furthest reader before it waits.
BUFFER = 1000
#: Values an observable keeps for its readers (the last ones); one fed by N command calls
#: keeps at most N. A reader that falls further behind gets ReplayLost.
MAX_KEPT_VALUES = 10_000

_DONE = object()
#: What ends a stream as its error. SystemExit too: let out of a stage's greenlet, gevent
#: hands it to the main greenlet, and a front would exit with every request in flight.
STAGE_ERRORS = (*CALL_ERRORS, SystemExit)


class ReplayLost(LookupError):
    """A reader fell more than ``MAX_KEPT_VALUES`` behind: the values it needed are gone."""


class StreamReleased(LookupError):
    """Read past what a stream made before it was cancelled, when its last reader stopped
    early (``take``, ``first``, ``zip``): the rest was never made. A clean end here would
    pass a truncated stream off as whole."""


class _Ended(GreenletExit):
    """Raised into a producer that emits into an ended stream: it stops at once (one that
    went on emitting, e.g. ``zip()`` of nothing, never yielded and held the whole process)."""


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error


class Observable:
    """A stream of values produced by greenlets; read it with get(), values() or a function here."""

    def __init__(self, produce: Callable[[Callable[[Any], None]], None], reading: Sequence[_Reader] = ()) -> None:
        """``produce(emit)`` runs in its own greenlet and calls ``emit(value)`` per value;
        ``reading`` are the readers of other streams this one owns, released when it ends."""
        self._kept: deque[Any] = deque()
        #: Values made before the first one kept: the index of ``_kept[0]``.
        self._forgotten = 0
        self._furthest_read = 0
        self._open_readers = 0
        self._ended = False
        self._error: BaseException | None = None
        #: cancelled when its last reader stopped early: a later reader gets StreamReleased
        self._released = False
        self._arrival: Event | None = None  # made when a reader waits, set on a value or the end
        self._room: Event | None = None  # made when a producer waits, set when a reader moves on
        self._reading = reading
        self._greenlet = spawn(self._run, produce)
        context = current_context()
        if context is not None:  # a front ends a request's streams once it is answered
            context.streams.add(self)

    def _run(self, produce: Callable[[Callable[[Any], None]], None]) -> None:
        error = None
        try:
            produce(self._emit)
        except STAGE_ERRORS as exc:  # noqa: BLE001 - an error is a value of the stream
            error = exc
        except _Ended:  # emitted into the ended stream: nothing more to make
            pass
        finally:  # cancelled (GreenletExit) too: a reader waiting sees the end
            self._finish(error)

    def _emit(self, value: Any) -> None:
        while not self._ended and self._forgotten + len(self._kept) - self._furthest_read >= BUFFER:
            if self._room is None:
                self._room = Event()
            self._room.wait()
        if self._ended:  # ended (cancelled, or a merge's first error) while a drain still ran
            raise _Ended()
        self._kept.append(value)
        if len(self._kept) > MAX_KEPT_VALUES:
            self._kept.popleft()
            self._forgotten += 1
        self._wake_readers()

    def _finish(self, error: BaseException | None) -> None:
        """End this stream, and cancel the sources its end leaves without a reader, theirs
        in turn, one after another (recursing, a chain of a few hundred stages ran out of
        stack and left its source running)."""
        ending: list[Observable] = [self]
        while ending:
            stream = ending.pop()
            if stream._ended:
                continue
            stream._ended = True
            if stream is self:
                stream._error = error
            stream._wake_readers()
            stream._wake_producer()
            for reader in stream._reading:
                source = reader.release()
                if source is not None:
                    source._released = True
                    source._greenlet.kill(block=False)
                    ending.append(source)

    def _wake_readers(self) -> None:
        if self._arrival is not None:
            arrival, self._arrival = self._arrival, None
            arrival.set()

    def _wake_producer(self) -> None:
        if self._room is not None:
            room, self._room = self._room, None
            room.set()

    def _read_from(self, index: int) -> Any:
        """The value at ``index`` once made; _DONE at the end; raises the stream's error."""
        while index >= self._forgotten + len(self._kept):
            if self._ended:
                if self._error is not None:
                    raise self._error
                if self._released:
                    raise StreamReleased(f"the stream ended after {index} values: it was cancelled when its last "
                                         "reader stopped early (take, first, zip); build every stage that reads it "
                                         "before reading any")
                return _DONE
            if self._arrival is None:
                self._arrival = Event()
            self._arrival.wait()
        if index < self._forgotten:
            raise ReplayLost(f"a reader fell more than {MAX_KEPT_VALUES} values behind its stream")
        if index >= self._furthest_read:
            self._furthest_read = index + 1
            self._wake_producer()
        return self._kept[index - self._forgotten]

    def values(self) -> Iterator[Any]:
        """The values as they come, from the first; raises the stream's error where it comes.
        Stopping early leaves the stream running (only a stage cancels what it reads)."""
        reader = _Reader(self)
        try:
            yield from reader
        finally:
            reader.close(cancel_if_last=False)

    def get(self) -> Any:
        """The single value of a one-value stream (a command, first(), to_list()), else a list."""
        values = list(self.values())
        return values[0] if len(values) == 1 else values

    def cancel(self) -> None:
        """Stop producing (what is running is interrupted); every reader sees the stream end."""
        self._greenlet.kill(block=False)
        self._finish(None)  # at once: a greenlet killed before it started never runs _run


class _Reader:
    """One reader's place in a stream; open (it wants the values) from when it is made,
    so a stage's reader holds its source from the moment the stage is built."""

    def __init__(self, source: Observable) -> None:
        self.source = source
        self.next_index = 0
        self.open = True
        source._open_readers += 1

    def __iter__(self) -> Iterator[Any]:
        try:
            while (value := self.source._read_from(self.next_index)) is not _DONE:
                self.next_index += 1
                yield value
        finally:
            if self.source._ended and self.next_index >= self.source._forgotten + len(self.source._kept):
                self.close()  # read to the end (or its error): nothing left to cancel

    def close(self, cancel_if_last: bool = True) -> None:
        """Stop reading; the source is cancelled if it is still running and no reader is left."""
        source = self.release(cancel_if_last)
        if source is not None:
            source._released = True
            source.cancel()

    def release(self, cancel_if_last: bool = True) -> Observable | None:
        """Stop reading; the source if it is to be cancelled (running still, no reader left)."""
        if not self.open:
            return None
        self.open = False
        self.source._open_readers -= 1
        if cancel_if_last and not self.source._open_readers and not self.source._ended:
            return self.source
        return None


def just(*values: Any) -> Observable:
    def produce(emit: Callable[[Any], None]) -> None:
        for value in values:
            emit(value)

    return Observable(produce)


def from_call(call: Callable[[], Any]) -> Observable:
    """The one value of ``call()``, run in the stream's greenlet."""
    return Observable(lambda emit: emit(call()))


def map(source: Observable, function: Callable[[Any], Any]) -> Observable:  # noqa: A001 - Rx's name
    reader = _Reader(source)

    def produce(emit: Callable[[Any], None]) -> None:
        for value in reader:
            emit(function(value))

    return Observable(produce, [reader])


def filter(source: Observable, predicate: Callable[[Any], bool]) -> Observable:  # noqa: A001
    reader = _Reader(source)

    def produce(emit: Callable[[Any], None]) -> None:
        for value in reader:
            if predicate(value):
                emit(value)

    return Observable(produce, [reader])


def _drain(reader: _Reader, emit: Callable[[Any], None], outcomes: Queue) -> None:
    """Emit every value of ``reader``'s stream; then _DONE, or its error, on ``outcomes``."""
    try:
        for value in reader:
            emit(value)
    except STAGE_ERRORS as exc:  # noqa: BLE001 - handed to the merging stage
        outcomes.put(_Failure(exc))
    else:
        outcomes.put(_DONE)


def _await_drains(outcomes: Queue, drains: list[gevent.Greenlet]) -> None:
    """Wait until every drain in ``drains`` (a list that may grow meanwhile) has finished;
    the first error is raised. Every drain is killed on the way out (its reader is
    released by the stage that owns it)."""
    try:
        finished = 0
        while finished < len(drains):
            outcome = outcomes.get()
            if isinstance(outcome, _Failure):
                raise outcome.error
            finished += 1
    finally:
        gevent.killall(drains, block=False)


def merge(*sources: Observable) -> Observable:
    """Every value of every source, in the order they arrive; the first error ends it."""
    readers = [_Reader(source) for source in sources]

    def produce(emit: Callable[[Any], None]) -> None:
        outcomes: Queue = Queue()  # one per drain: never full
        _await_drains(outcomes, [spawn(_drain, reader, emit, outcomes) for reader in readers])

    return Observable(produce, readers)


def flat_map(source: Observable, function: Callable[[Any], Observable]) -> Observable:
    """For each value, the values of the observable ``function(value)``, all concurrently,
    each as it arrives; when it ends early (an error, the source's or an inner one's, or
    cancelled), the inner ones it started are released, so cancelled unless read elsewhere."""
    source_reader = _Reader(source)
    readers = [source_reader]  # grows: the stage owns every inner reader

    def produce(emit: Callable[[Any], None]) -> None:
        outcomes: Queue = Queue()
        drains: list[gevent.Greenlet] = []

        def start_inner_ones() -> None:
            try:
                for value in source_reader:
                    readers.append(inner := _Reader(function(value)))
                    if not source_reader.open:  # the stage ended meanwhile: it released the others
                        inner.close()
                        return
                    drains.append(spawn(_drain, inner, emit, outcomes))
            except STAGE_ERRORS as exc:  # noqa: BLE001 - handed to the stage
                outcomes.put(_Failure(exc))
            else:
                outcomes.put(_DONE)

        drains.append(spawn(start_inner_ones))
        _await_drains(outcomes, drains)

    return Observable(produce, readers)


def zip(*sources: Observable, combine: Callable[..., Any] = lambda *values: values) -> Observable:  # noqa: A001
    """``combine`` of the i-th value of every source, for as long as all have one (so
    nothing, of no source: Rx's ``zip()``)."""
    readers = [_Reader(source) for source in sources]  # the longer are released where the shortest ended

    def produce(emit: Callable[[Any], None]) -> None:
        iterators = [iter(reader) for reader in readers]
        while iterators:
            row = []
            for iterator in iterators:
                try:
                    row.append(next(iterator))
                except StopIteration:
                    return
            emit(combine(*row))

    return Observable(produce, readers)


def take(source: Observable, count: int) -> Observable:
    reader = _Reader(source)

    def produce(emit: Callable[[Any], None]) -> None:
        if count <= 0:
            return
        for taken, value in enumerate(reader, 1):
            emit(value)
            if taken >= count:
                return

    return Observable(produce, [reader])


def to_list(source: Observable) -> Observable:
    """One value: the list of all the source's values."""
    reader = _Reader(source)
    return Observable(lambda emit: emit(list(reader)), [reader])


_NO_DEFAULT = object()


def first(source: Observable, default: Any = _NO_DEFAULT) -> Observable:
    """One value: the source's first, or ``default`` if it has none (else LookupError)."""
    reader = _Reader(source)

    def produce(emit: Callable[[Any], None]) -> None:
        for value in reader:
            break
        else:
            if default is _NO_DEFAULT:
                raise LookupError("first() of an empty stream")
            value = default
        emit(value)

    return Observable(produce, [reader])


def catch(source: Observable, handler: Callable[[BaseException], Any]) -> Observable:
    """The source's values; on an error, ``handler(error)``'s value instead, and the end."""
    reader = _Reader(source)

    def produce(emit: Callable[[Any], None]) -> None:
        try:
            for value in reader:
                emit(value)
        except CALL_ERRORS as exc:  # noqa: BLE001 - handed to the handler
            emit(handler(exc))

    return Observable(produce, [reader])


__all__ = ["MAX_KEPT_VALUES", "Observable", "ReplayLost", "StreamReleased", "catch", "filter", "first", "flat_map",
           "from_call", "just", "map", "merge", "take", "to_list", "zip"]
