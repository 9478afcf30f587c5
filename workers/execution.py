"""Running one call in a worker: decode, run under the deadline, encode the outcome.

Every path ends in an (outcome, execution_ms, payload) triple for the broker; nothing a
command does — raise, hang past its deadline, return something msgpack cannot carry —
escapes as an exception into the worker's loop.
"""

from __future__ import annotations

import time
from typing import Any, Callable

import gevent

from api.call_timers import CallTimer
from api.command import Command
from api.errors import BadRequest
from shared import protocol
from shared.events import Event

Outcome = tuple[Event, float, bytes]


class _Failed(Exception):
    """How _under_deadline says the run ended in an outcome other than a value."""

    def __init__(self, outcome: Outcome) -> None:
        self.outcome = outcome


def _message(exc: BaseException) -> str:
    """``str(exc)``, or a stand-in when that raises: a message nested past the recursion
    limit, or a broken ``__str__``, must not take the slot's greenlet down with it."""
    try:
        return str(exc)
    except Exception as error:
        return f"(the {type(exc).__name__}'s message cannot be shown: {type(error).__name__})"


def _under_deadline(run: Callable[[], Any], timeout_ms: int, what: str, started_s: float,
                    before_run: Callable[[], None]) -> Any:
    """``run()``'s value; raises _Failed for a timeout, a bad request or any exception."""
    timer = CallTimer(gevent.get_hub().loop, max(timeout_ms, 1) / 1000)  # 0 ms: at once, as a Timeout(0)
    timer.start()
    try:
        before_run()
        return run()
    except gevent.Timeout as exc:
        if exc is not timer.thrown:  # the command's own gevent timeout escaped run(): its failure
            raise _Failed(_error(started_s, Event.FAILURE, type(exc).__name__, _message(exc))) from None
        raise _Failed(_error(started_s, Event.TIMEOUT, "Timeout",
                             f"{what} was interrupted at its deadline ({timeout_ms} ms)")) from None
    except BadRequest as exc:
        raise _Failed(_error(started_s, Event.BAD_REQUEST, type(exc).__name__, _message(exc))) from None
    except Exception as exc:
        raise _Failed(_error(started_s, Event.FAILURE, type(exc).__name__, _message(exc))) from None
    except gevent.GreenletExit:  # the worker ending its own slots as it exits
        raise
    except BaseException as exc:  # asyncio's CancelledError, SystemExit...: this call's failure, not its slot's end
        raise _Failed(_error(started_s, Event.FAILURE, type(exc).__name__, _message(exc))) from None
    finally:
        timer.close()


def run_call(commands: dict[str, type[Command]], call: protocol.Call, dependency: str,
             before_run: Callable[[], None] = lambda: None) -> Outcome:
    """Run one call; ``before_run`` (chaos) runs inside the deadline, just before run()."""
    started_s = time.perf_counter()
    command_class = commands.get(call.command)
    if command_class is None:
        return _error(started_s, Event.FAILURE, "UnknownCommand",
                      f"pool {dependency!r} does not run command {call.command!r} "
                      f"(it runs: {', '.join(sorted(commands))})")
    try:
        command = command_class.from_wire(protocol.decode_value(call.payload), call.payload)
    except (protocol.ProtocolError, TypeError) as exc:
        return _error(started_s, Event.FAILURE, "BadArguments", str(exc))
    try:
        value = _under_deadline(command.run, call.timeout_ms, call.command, started_s, before_run)
    except _Failed as failed:
        return failed.outcome
    return _success(started_s, call.command, value)


def run_batch_call(commands: dict[str, type[Command]], batch: protocol.Batch, dependency: str,
                   before_run: Callable[[], None] = lambda: None) -> Outcome:
    """Run a batch with ``run_batch``: SUCCESS carries one result per call (each its own
    SUCCESS, FAILURE or BAD_REQUEST); an exception from run_batch fails the whole batch."""
    started_s = time.perf_counter()
    command_class = commands.get(batch.command)
    if command_class is None or command_class.collapse is None:
        return _error(started_s, Event.FAILURE, "UnknownCommand",
                      f"pool {dependency!r} runs no collapsing command {batch.command!r}")
    try:
        calls = [command_class.from_wire(protocol.decode_value(payload), payload)
                 for payload in protocol.unpack_batch(batch.payload)]
    except (protocol.ProtocolError, TypeError) as exc:
        return _error(started_s, Event.FAILURE, "BadArguments", str(exc))
    try:
        results = _under_deadline(lambda: command_class.run_batch(calls), batch.timeout_ms,
                                  f"{batch.command}.run_batch", started_s, before_run)
    except _Failed as failed:
        return failed.outcome
    if not isinstance(results, (list, tuple)) or len(results) != len(calls):
        count = len(results) if isinstance(results, (list, tuple)) else type(results).__name__
        return _error(started_s, Event.FAILURE, "WrongResultCount",
                      f"{batch.command}.run_batch returned {count} results for {len(calls)} calls")
    items = [_batch_item(batch.command, result) for result in results]
    payload = protocol.pack_batch_results(items)
    if len(payload) > protocol.MAX_PAYLOAD_BYTES:
        return _error(started_s, Event.FAILURE, "ResultTooLarge",
                      f"{batch.command}.run_batch returned {len(payload)} bytes for {len(calls)} calls, "
                      f"over the {protocol.MAX_PAYLOAD_BYTES} limit of one message")
    return Event.SUCCESS, _elapsed_ms(started_s), payload


def _batch_item(command_key: str, result: Any) -> tuple[Event, bytes]:
    if isinstance(result, BaseException):
        outcome = Event.BAD_REQUEST if isinstance(result, BadRequest) else Event.FAILURE
        return outcome, protocol.encode_error(type(result).__name__, _message(result)[:4000])
    outcome, _, payload = _success(0.0, command_key, result)
    return outcome, payload


def _success(started_s: float, command_key: str, value: Any) -> Outcome:
    try:
        payload = protocol.encode_value(value)
    except TypeError as exc:
        return _error(started_s, Event.FAILURE, "UnsendableResult",
                      f"{command_key} returned {type(value).__name__}, which {exc}")
    if len(payload) > protocol.MAX_PAYLOAD_BYTES:
        return _error(started_s, Event.FAILURE, "ResultTooLarge",
                      f"{command_key} returned {len(payload)} bytes, over the {protocol.MAX_PAYLOAD_BYTES} limit")
    return Event.SUCCESS, _elapsed_ms(started_s), payload


def _error(started_s: float, outcome: Event, type_name: str, message: str) -> Outcome:
    return outcome, _elapsed_ms(started_s), protocol.encode_error(type_name, message[:4000])


def _elapsed_ms(started_s: float) -> float:
    return round((time.perf_counter() - started_s) * 1000, 3)
