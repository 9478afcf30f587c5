"""The client stub: how a caller's commands reach the broker and come back.

One DEALER socket per process, owned by one greenlet (:class:`OwnedSocket`); any number
of caller greenlets hand it requests and wait on their own :class:`ReplyWaiter` with the
command's timeout, so a caller is back within ``timeout_s`` whatever the broker or the
workers do. Failures turn into the command's ``fallback()`` here, in the caller.
"""

from __future__ import annotations

import os
import time
from typing import Any, Hashable, Sequence, cast

import gevent
from gevent.event import AsyncResult

from api.command import Command
from api.collapsing import BatchMember, RequestBatcher, batch_results, shard_of
from api.context import MAX_CACHED_CALLS, current_context, future_of, spawn
from api.errors import (ERROR_FOR_FAILURE, BadRequest, CommandError, CommandFailed, CommandTimeout, Rejected,
                        RemoteCause, ShortCircuited)
from api.breakers import BreakerView
from api.brokers import BrokerSet
from api.call_timers import CallTimers
from api.connection import BrokerConnection
from api.reply_waiter import ReplyWaiter
from api.reports import OutcomeReports
from api.limits import InFlightLimits
from shared import protocol
from shared.config import Config, ConfigError, check_override, load, with_overrides
from shared.events import Event
from shared.logging import LOG_EACH_CALL, get_logger

log = get_logger("api.client")

#: How long past a remote call's timeout its caller waits for the broker's answer before
#: it times out on its own (the broker answers TIMEOUT at its own deadline, a transit
#: later): within it, caller and broker count one outcome. The caller's bound is the
#: timeout plus this.
BROKER_VERDICT_GRACE_S = 0.025

#: The events of a call that succeeded, and of one refused as a bad request: shared
#: tuples, as most calls end with one event.
_SUCCEEDED: tuple[Event, ...] = (Event.SUCCESS,)
_BAD_REQUEST: tuple[Event, ...] = (Event.BAD_REQUEST,)


class Client:
    """Sends commands to the broker named by ``config``; safe for any number of greenlets."""

    def __init__(self, config: Config) -> None:
        self._file_config = config
        self._config = config
        self._overrides: dict[str, Any] = {}
        self.brokers = BrokerSet(config, self._apply_overrides)
        #: this host's broker (the only one unless ``[brokers.NAME]`` lists more)
        self.connection = self.brokers.connections[0]
        #: the only broker, when there is one (see :attr:`_primary`); None with several
        self._sole_broker: BrokerConnection | None = self.connection if len(self.brokers.connections) == 1 else None
        self._settings_cache: dict[tuple[type[Command], str], Any] = {}
        #: command class -> (semaphore_max, timeout_s): one look-up per semaphore call
        self._run_here_settings: dict[type[Command], tuple[int, float, float]] = {}
        self._semaphores = InFlightLimits()
        self._timers = CallTimers()
        self._fallbacks = InFlightLimits()

    @property
    def config(self) -> Config:
        return self._config

    @config.setter
    def config(self, config: Config) -> None:
        self._file_config = config
        self._apply(config, self._overrides)

    def _apply(self, file_config: Config, overrides: dict[str, Any]) -> None:
        self._overrides = overrides
        self._config = with_overrides(file_config, overrides) if overrides else file_config
        self._settings_cache.clear()
        self._run_here_settings.clear()

    @property
    def pending_calls(self) -> int:
        """Calls sent and not yet answered or timed out."""
        return self.brokers.pending_calls

    @property
    def broker_down(self) -> bool:
        """True while no broker is heard: calls fail fast into their fallbacks."""
        return self.brokers.all_down

    @property
    def _primary(self) -> BrokerConnection:
        """The broker of semaphore commands' breakers and reports: the only one, without a
        walk over the set on every call, or the first heard of several."""
        return self._sole_broker or self.brokers.primary

    @property
    def breakers(self) -> BreakerView:
        """Breakers as the first broker heard publishes them."""
        return self._primary.breakers

    @property
    def _reports(self) -> OutcomeReports:
        """Where outcomes the broker did not see wait for the next report: the first broker heard."""
        return self._primary.reports

    def setting(self, command_class: type[Command], name: str) -> Any:
        """A per-command setting: config section, class attribute, [defaults], built-in."""
        cache_key = (command_class, name)
        value = self._settings_cache.get(cache_key)
        if value is None:
            class_value = getattr(command_class, name, None)
            value = self._config.command_setting(command_class.key, name, class_value)
            self._settings_cache[cache_key] = value
        return value

    def timeout_s(self, command_class: type[Command]) -> float:
        return self.setting(command_class, "timeout_s")

    # -- running commands ----------------------------------------------------------------

    def execute(self, command: Command) -> Any:
        """The command's value, its fallback's value, or the error (see ``api.errors``)."""
        cache_key = command.cache_key()
        if cache_key is None:
            return self._execute(command)
        return self._execute_cached(command, cache_key)

    def queue(self, command: Command) -> AsyncResult:
        """Start ``command`` in its own greenlet (in this request context); the future
        holds what execute() gives."""
        return future_of(self.execute, command)

    def _execute_cached(self, command: Command, cache_key: Hashable) -> Any:
        """One execution per (class, key) in a request context; the rest share its answer.

        A first call that ends without an answer to share (its caller's own Timeout, its
        greenlet killed) leaves the cache, and a call waiting on it runs instead.
        """
        context = current_context()
        if context is None:
            raise RuntimeError(
                f"{command.key}.cache_key() returned {cache_key!r} outside a request context: "
                "wrap the request in `with request_context():` (from api), or return None from cache_key()")
        cache_id = (type(command), type(cache_key), cache_key)  # 1, 1.0 and True are one dict key
        try:
            future = context.cache.get(cache_id)
        except TypeError:
            raise TypeError(f"{command.key}.cache_key() returned {type(cache_key).__name__} {cache_key!r:.60}, "
                            "which is not hashable: return a str, a number or a tuple of them") from None
        while future is not None:
            future.wait()
            if future.exception is not _ABANDONED:
                context.record(command.key, [Event.RESPONSE_FROM_CACHE], 0.0)
                self._reports.add(command.key, Event.RESPONSE_FROM_CACHE)
                return future.get()  # the first call's value, or its error again
            future = context.cache.get(cache_id)
        future = AsyncResult()
        if len(context.cache) < MAX_CACHED_CALLS:
            context.cache[cache_id] = future
        try:
            value = self._execute(command)
        except Exception as exc:
            future.set_exception(exc)
            raise
        except BaseException:  # no answer to share: forget it, and wake who waits to run it
            if context.cache.get(cache_id) is future:
                del context.cache[cache_id]
            future.set_exception(_ABANDONED)
            raise
        future.set(value)
        return value

    def _execute(self, command: Command) -> Any:
        started_s = time.monotonic()
        events: Sequence[Event] = ()  # none if run() lets a BaseException out (GreenletExit, its own Timeout)
        try:
            value = self._run(command)
            events = _SUCCEEDED  # most calls: one shared tuple, no list made and appended to
            return value
        except CommandError as error:
            events = failure_events = [error.failure]  # _fall_back() adds its own
            return self._fall_back(command, error, failure_events)
        except BadRequest:
            events = _BAD_REQUEST
            raise
        finally:
            self._finish(command, events, started_s)

    def _finish(self, command: Command, events: Sequence[Event], started_s: float) -> None:
        """Log the call, add it to the request log, report what the broker did not see."""
        latency_ms = (time.monotonic() - started_s) * 1000
        context = current_context()
        if context is not None:
            context.record(command.key, events, latency_ms)
        if command.dependency is None and events:
            self._reports.add(command.key, events[0], latency_ms)
        if len(events) > 1:  # most calls have one event: no copy of the list to loop over
            for event in events[1:]:
                self._reports.add(command.key, event)
        if LOG_EACH_CALL:
            log.debug("call_finished", command=command.key, dependency=command.dependency, events=list(events),
                      latency_ms=round(latency_ms, 3))

    def _run(self, command: Command) -> Any:
        dependency = command.dependency
        if dependency is None:
            return self._run_here(command)
        return self._run_remote(command, dependency)

    def _short_circuit(self, command: Command, reason: str) -> ShortCircuited:
        return ShortCircuited(f"{command.key}: {reason}; not run", command=command.key, dependency=command.dependency)

    def _run_remote(self, command: Command, dependency: str) -> Any:
        """Run ``command`` in a worker of its pool, ``dependency`` (``command.dependency``, not None)."""
        command_class = type(command)
        timeout_s = self.timeout_s(command_class)
        connection, refusal = self.brokers.choose(command.key, dependency)
        if connection is None:
            self._reports.add(command.key, Event.SHORT_CIRCUITED)
            raise self._short_circuit(command, refusal)
        call_id = None  # request-scoped calls travel in their batch's message
        member: BatchMember | None = None  # a call collapsed within its request: its place in the batch
        waiter: ReplyWaiter | AsyncResult[protocol.Reply]  # an AsyncResult: a call collapsed within its request
        if command_class.collapse is None:
            call_id, waiter = connection.send_request(command.key, dependency, max(1, int(timeout_s * 1000)),
                                                      command._payload)
        elif command_class.collapse == "global":
            call_id, waiter = self._send(connection, protocol.collapsible, command, dependency, timeout_s,
                                         shard_of(command),
                                         self.setting(command_class, "collapse_window_ms"),
                                         self.setting(command_class, "collapse_max_batch"))
        else:
            member = self._collapse_in_request(command, timeout_s)
            waiter = member.waiter
        # A reused libev timer, as on the semaphore path. Past the timeout by a little: the
        # broker's deadline starts when it reads the call, so its verdict (a late SUCCESS
        # too) comes a transit after the caller's; taken, the caller's outcome is the one
        # the breaker and the stream count (else a dependency just under its timeout,
        # whose callers all fell back, counted SUCCESS and never tripped its breaker).
        timer = self._timers.start(timeout_s + BROKER_VERDICT_GRACE_S)
        try:
            reply = waiter.get()
        except gevent.Timeout as exc:
            if exc is not timer.thrown:  # not ours: a Timeout around execute() in the caller's code
                _stop_waiting(connection, call_id, member)
                raise
            if not waiter.ready():  # else the reply came in the same loop turn as the deadline
                _stop_waiting(connection, call_id, member)
                raise CommandTimeout(
                    f"{command.key} got no answer from pool {command.dependency!r} within {timeout_s:g} s "
                    f"(and {BROKER_VERDICT_GRACE_S * 1000:g} ms for the broker's)",
                    command=command.key, dependency=command.dependency,
                ) from None
            reply = cast(protocol.Reply, waiter.value)  # ready(): set, so not None
        except gevent.GreenletExit:  # killed while it waited: nobody will read the reply
            _stop_waiting(connection, call_id, member)
            raise
        finally:
            self._timers.give_back(timer)
        # AsyncResult.get() waits until set, so never None; gevent's stub types it _T | None
        return _value_of(command, reply)  # type: ignore[arg-type]

    def _send(self, connection: BrokerConnection, encode: Any, command: Command, dependency: str, timeout_s: float,
              *extra: Any) -> tuple[int, ReplyWaiter]:
        """Send one call to pool ``dependency``; its waiter gets the Reply."""
        timeout_ms = max(1, int(timeout_s * 1000))
        return connection.send_call(lambda call_id: encode(
            call_id, command.key, dependency, timeout_ms, *extra, command._payload), dependency)

    def _collapse_in_request(self, command: Command, timeout_s: float) -> BatchMember:
        context = current_context()
        if context is None:  # no request to collapse within: a batch of one
            member = BatchMember(command, AsyncResult(), time.monotonic() + timeout_s)
            spawn(self.send_batch, [member])
            return member
        if context.batcher is None:
            context.batcher = RequestBatcher()
        command_class = type(command)
        return context.batcher.add(self, command, timeout_s,
                                   self.setting(command_class, "collapse_window_ms") / 1000,
                                   self.setting(command_class, "collapse_max_batch"))

    def send_batch(self, members: list[BatchMember]) -> None:
        """Send calls collapsed in the front as one batch (more if their arguments would
        not fit in one message) and give each member its reply."""
        first, *rest = protocol.split_by_size(members, lambda member: member.command._payload)
        for part in rest:
            spawn(self._send_one_batch, part)
        self._send_one_batch(first)

    def _send_one_batch(self, members: list[BatchMember]) -> None:
        """Blocks until the reply or the earliest member's deadline; members wait on their own.

        Only members whose callers still wait are sent: a caller gone within the window
        (killed, its own Timeout, timed out) would take a worker's time for nothing, and its
        passed deadline would cut short its batch-mates' (none at all were sent before).
        """
        now_s = time.monotonic()
        members = [member for member in members if member.waits(now_s)]
        if not members:
            return  # every caller is gone: nothing to send
        index_by_payload: dict[bytes, int] = {}
        indexes = [index_by_payload.setdefault(member.command._payload, len(index_by_payload))
                   for member in members]
        timeout_s = min(member.deadline_s for member in members) - now_s
        first = members[0].command
        dependency = cast(str, first.dependency)  # collapsed in _run_remote(): a command with a pool
        connection, _ = self.brokers.choose(first.key, dependency)
        if connection is None:  # its members were admitted a moment ago: try the first heard
            connection = self._primary
        payload = protocol.pack_batch(list(index_by_payload))
        call_id, waiter = connection.send_call(lambda call_id: protocol.batch_request(
            call_id, first.key, dependency, max(1, int(timeout_s * 1000)), payload), dependency)
        if not waiter.wait(timeout_s + BROKER_VERDICT_GRACE_S):  # the broker's verdict decides, as for one call
            connection.forget(call_id)
            return
        reply = waiter.value
        results = None
        if reply.outcome is Event.SUCCESS:
            try:
                results = protocol.unpack_batch_results(reply.payload)
                if len(results) != len(index_by_payload):
                    raise protocol.ProtocolError(f"{len(results)} results for {len(index_by_payload)} calls")
            except protocol.ProtocolError as exc:
                reply = protocol.Reply(call_id, Event.FAILURE, reply.execution_ms,
                                       protocol.encode_error("BadBatchResult", str(exc)))
                results = None
        batch_results(members, indexes, reply, results)

    def _run_here(self, command: Command) -> Any:
        """Semaphore isolation: run() in this greenlet under a tryable semaphore.

        Unlike Hystrix's semaphore isolation (#835, #1345) the timeout frees the caller:
        it is raised into run() at the deadline.
        """
        primary = self._primary
        primary.open()  # its breaker news decides, and its reports carry the outcome
        key = command.key
        semaphore_max, timeout_s, sleep_s = self._settings_to_run_here(type(command))
        if primary.breakers.short_circuits_here(key, sleep_s):
            raise self._short_circuit(command, "the breaker is OPEN")
        if not self._semaphores.try_acquire(key, semaphore_max):
            raise Rejected(f"{key}: {semaphore_max} calls already run (semaphore_max)",
                           command=key, failure=Event.SEMAPHORE_REJECTED)
        timer = self._timers.start(timeout_s)
        try:
            return command.run()
        except gevent.Timeout as exc:
            if exc is not timer.thrown:  # run()'s own Timeout: passed on as it is
                raise
            raise CommandTimeout(f"{key} did not finish within {timeout_s:g} s", command=key) from None
        except BadRequest as exc:
            exc.command = key
            raise
        except Exception as exc:
            cause = RemoteCause(type(exc).__name__, str(exc))
            raise CommandFailed(f"{key} failed: {cause}", command=key, cause=cause) from exc
        finally:
            self._timers.give_back(timer)
            self._semaphores.release(key)

    def _settings_to_run_here(self, command_class: type[Command]) -> tuple[int, float, float]:
        """``semaphore_max``, ``timeout_s`` and ``breaker_sleep_s``: one cached look-up on
        the semaphore path."""
        settings = self._run_here_settings.get(command_class)
        if settings is None:
            settings = (self.setting(command_class, "semaphore_max"), self.timeout_s(command_class),
                        self.setting(command_class, "breaker_sleep_s"))
            self._run_here_settings[command_class] = settings
            # The brokers hold its breaker: they must know what the class sets (a worker's
            # READY says so of pool commands; none runs this one). Every broker: the one
            # semaphore commands report to changes when the first heard goes silent.
            class_settings = command_class.class_settings()
            for connection in self.brokers.connections:
                connection.declare(command_class.key, class_settings)
        return settings

    def _fall_back(self, command: Command, error: CommandError, events: list[Event]) -> Any:
        """The fallback's value, at most ``fallback_max`` at once per command; else the error."""
        if not type(command).has_fallback():
            events.append(Event.FALLBACK_MISSING)
            raise error
        key = command.key
        fallback_max = self.setting(type(command), "fallback_max")
        if not self._fallbacks.try_acquire(key, fallback_max):
            events.append(Event.FALLBACK_REJECTED)
            raise Rejected(f"{error}; its fallback was rejected: {fallback_max} already run (fallback_max)",
                           command=key, dependency=error.dependency, cause=error.cause,
                           failure=Event.FALLBACK_REJECTED) from error
        command._execution_error = error  # fallback() may ask why it runs
        try:
            value = command.fallback()
        except Exception as exc:
            events.append(Event.FALLBACK_FAILURE)
            raise type(error)(
                f"{error} and its fallback failed: {type(exc).__name__}: {exc}",
                command=error.command, dependency=error.dependency, cause=error.cause, failure=error.failure,
            ) from exc
        finally:
            self._fallbacks.release(key)
        events.append(Event.FALLBACK_SUCCESS)
        return value

    # -- runtime settings from the broker ----------------------------------------------

    def _apply_overrides(self, overrides: dict[str, Any]) -> None:
        try:
            self._apply(self._file_config, dict(check_override(key, value) for key, value in overrides.items()))
        except ConfigError as exc:
            log.warning("runtime_settings_ignored", error=str(exc))
            return
        log.info("runtime_settings_applied", overrides=overrides)

    def close(self) -> None:
        self.brokers.close()


def _stop_waiting(connection: BrokerConnection, call_id: int | None, member: BatchMember | None) -> None:
    """The caller gives up its call: its late reply is dropped, or, collapsed within its
    request, it leaves its batch (sent already: it is not answered)."""
    if member is None:
        connection.forget(call_id)
    else:
        member.left = True


def _value_of(command: Command, reply: protocol.Reply) -> Any:
    """The reply's value, or the error it stands for."""
    if reply.outcome is Event.SUCCESS:
        try:
            return protocol.decode_value(reply.payload)
        except protocol.ProtocolError as exc:
            raise CommandFailed(f"{command.key}: reply could not be decoded: {exc}",
                                command=command.key, dependency=command.dependency) from exc
    try:
        cause = RemoteCause(*protocol.decode_error(reply.payload))
    except protocol.ProtocolError as exc:
        cause = RemoteCause("ProtocolError", str(exc))
    if reply.outcome is Event.BAD_REQUEST:
        raise BadRequest(cause.message, command=command.key, cause=cause)
    error_class = ERROR_FOR_FAILURE[reply.outcome]
    where = f"pool {command.dependency!r}"
    raise error_class(f"{command.key} in {where}: {reply.outcome}: {cause}",
                      command=command.key, dependency=command.dependency, cause=cause, failure=reply.outcome)


#: What a cached call's future holds when the call ended without an answer to share.
_ABANDONED = RuntimeError("the first call with this cache key ended without an answer")

_default_client: Client | None = None


def configure(path: str | os.PathLike[str] | None = None) -> Client:
    """Point the process-default client at a config file (or ``$SEAWALL_CONFIG``)."""
    global _default_client
    if _default_client is not None:
        _default_client.close()
    _default_client = Client(load(path))
    return _default_client


def default_client() -> Client:
    """The process-default client, configured from ``$SEAWALL_CONFIG`` on first use."""
    if _default_client is None:
        return configure()
    return _default_client
