"""Composition for endpoint code: combine many calls, concurrently, without futures.

``command.observe()`` starts a call and returns an :class:`Observable` of its value. The
functions here — :func:`map`, :func:`flat_map`, :func:`filter`, :func:`merge`,
:func:`zip`, :func:`take`, :func:`to_list`, :func:`first` — build new observables from
old ones; each stage runs in its own greenlet of the same request context, so endpoint
code never touches locks, threads or raw futures. An error travels downstream to
:meth:`Observable.get` (or to :func:`catch`, the composition's error handler).

Streams are bounded: each stage buffers at most ``BUFFER`` values before its upstream
waits.
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable, Iterator

import gevent
from gevent import GreenletExit
from gevent.queue import Queue

from api.context import CALL_ERRORS, spawn

#: Values a stage holds before its producer waits.
BUFFER = 1000

_DONE = object()


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error


class Observable:
    """A stream of values produced by greenlets; read it with get(), values() or a function here."""

    def __init__(self, produce: Callable[[Callable[[Any], None]], None]) -> None:
        """``produce(emit)`` runs in its own greenlet and calls ``emit(value)`` per value."""
        self._queue: Queue = Queue(BUFFER)
        self._greenlet = spawn(self._run, produce)

    def _run(self, produce: Callable[[Callable[[Any], None]], None]) -> None:
        try:
            produce(self._queue.put)
        except GreenletExit:  # cancelled: a reader waiting sees the end; none waits on a full buffer
            if not self._queue.full():
                self._queue.put_nowait(_DONE)
            raise
        except CALL_ERRORS as exc:  # noqa: BLE001 - an error is a value of the stream
            self._queue.put(_Failure(exc))
        self._queue.put(_DONE)

    def values(self) -> Iterator[Any]:
        """The values as they come; raises the stream's error where it comes."""
        while True:
            if self._greenlet.dead and self._queue.empty():  # cancelled, and what it made is read
                return
            item = self._queue.get()
            if item is _DONE:
                return
            if isinstance(item, _Failure):
                raise item.error
            yield item

    def get(self) -> Any:
        """The single value of a one-value stream (a command, first(), to_list()), else a list."""
        values = list(self.values())
        return values[0] if len(values) == 1 else values

    def cancel(self) -> None:
        """Stop producing (what is running is interrupted); a reader sees the stream end."""
        self._greenlet.kill(block=False)


@contextlib.contextmanager
def _reading(*sources: Observable) -> Iterator[None]:
    """A stage reading ``sources``: when it ends, early (cancelled, an error, enough
    values) or not, they are cancelled, so none is left waiting on a full buffer."""
    try:
        yield
    finally:
        for source in sources:
            source.cancel()


def just(*values: Any) -> Observable:
    def produce(emit: Callable[[Any], None]) -> None:
        for value in values:
            emit(value)

    return Observable(produce)


def from_call(call: Callable[[], Any]) -> Observable:
    """The one value of ``call()``, run in the stream's greenlet."""
    return Observable(lambda emit: emit(call()))


def map(source: Observable, function: Callable[[Any], Any]) -> Observable:  # noqa: A001 - Rx's name
    def produce(emit: Callable[[Any], None]) -> None:
        with _reading(source):
            for value in source.values():
                emit(function(value))

    return Observable(produce)


def filter(source: Observable, predicate: Callable[[Any], bool]) -> Observable:  # noqa: A001
    def produce(emit: Callable[[Any], None]) -> None:
        with _reading(source):
            for value in source.values():
                if predicate(value):
                    emit(value)

    return Observable(produce)


def merge(*sources: Observable) -> Observable:
    """Every value of every source, in the order they arrive; the first error ends it."""

    def produce(emit: Callable[[Any], None]) -> None:
        inbox: Queue = Queue(BUFFER)

        def drain(source: Observable) -> None:
            try:
                for value in source.values():
                    inbox.put(value)
            except CALL_ERRORS as exc:  # noqa: BLE001
                inbox.put(_Failure(exc))
            finally:
                inbox.put(_DONE)

        readers = [spawn(drain, source) for source in sources]
        with _reading(*sources):
            try:
                remaining = len(readers)
                while remaining:
                    item = inbox.get()
                    if item is _DONE:
                        remaining -= 1
                    elif isinstance(item, _Failure):
                        raise item.error
                    else:
                        emit(item)
            finally:
                gevent.killall(readers, block=False)

    return Observable(produce)


def flat_map(source: Observable, function: Callable[[Any], Observable]) -> Observable:
    """For each value, the values of the observable ``function(value)``, all concurrently."""

    def produce(emit: Callable[[Any], None]) -> None:
        with _reading(source):
            merged = merge(*[function(value) for value in source.values()])
        with _reading(merged):
            for value in merged.values():
                emit(value)

    return Observable(produce)


def zip(*sources: Observable, combine: Callable[..., Any] = lambda *values: values) -> Observable:  # noqa: A001
    """``combine`` of the i-th value of every source, for as long as all have one."""

    def produce(emit: Callable[[Any], None]) -> None:
        iterators = [source.values() for source in sources]
        with _reading(*sources):  # the longer sources are cut where the shortest ended
            while True:
                row = []
                for iterator in iterators:
                    try:
                        row.append(next(iterator))
                    except StopIteration:
                        return
                emit(combine(*row))

    return Observable(produce)


def take(source: Observable, count: int) -> Observable:
    def produce(emit: Callable[[Any], None]) -> None:
        if count <= 0:
            source.cancel()
            return
        with _reading(source):
            for taken, value in enumerate(source.values(), 1):
                emit(value)
                if taken >= count:
                    return

    return Observable(produce)


def to_list(source: Observable) -> Observable:
    """One value: the list of all the source's values."""

    def produce(emit: Callable[[Any], None]) -> None:
        with _reading(source):
            values = list(source.values())
        emit(values)

    return Observable(produce)


_NO_DEFAULT = object()


def first(source: Observable, default: Any = _NO_DEFAULT) -> Observable:
    """One value: the source's first, or ``default`` if it has none (else LookupError)."""

    def produce(emit: Callable[[Any], None]) -> None:
        with _reading(source):
            for value in source.values():
                break
            else:
                if default is _NO_DEFAULT:
                    raise LookupError("first() of an empty stream")
                value = default
        emit(value)

    return Observable(produce)


def catch(source: Observable, handler: Callable[[BaseException], Any]) -> Observable:
    """The source's values; on an error, ``handler(error)``'s value instead, and the end."""

    def produce(emit: Callable[[Any], None]) -> None:
        with _reading(source):
            try:
                for value in source.values():
                    emit(value)
            except CALL_ERRORS as exc:  # noqa: BLE001 - handed to the handler
                emit(handler(exc))

    return Observable(produce)


__all__ = ["Observable", "catch", "filter", "first", "flat_map", "from_call", "just", "map", "merge", "take",
           "to_list", "zip"]
