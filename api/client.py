"""The client stub: how a caller's commands reach the broker and come back.

One DEALER socket per process, owned by one greenlet (:class:`OwnedSocket`); any number
of caller greenlets hand it requests and wait on their own :class:`AsyncResult` with the
command's timeout, so a caller is back within ``timeout_s`` whatever the broker or the
workers do. Failures turn into the command's ``fallback()`` here, in the caller.
"""

from __future__ import annotations

import itertools
import os
import time
from typing import Any

import gevent
import zmq
from gevent.event import AsyncResult

from api.breakers import BreakerView
from api.command import Command
from api.errors import (ERROR_FOR_FAILURE, BadRequest, CommandError, CommandFailed, CommandTimeout, RemoteCause,
                        ShortCircuited)
from shared import protocol
from shared.config import Config, ConfigError, check_override, load, with_overrides
from shared.events import Event
from shared.logging import get_logger
from shared.owned_socket import OwnedSocket
from shared.transport import make_socket

log = get_logger("api.client")

#: A broker not heard from for this long is down: calls fail fast until it is back.
BROKER_SILENT_S = 0.75
#: How often the client checks whether it still hears the broker.
BROKER_CHECK_S = 0.1


class Client:
    """Sends commands to the broker named by ``config``; safe for any number of greenlets."""

    def __init__(self, config: Config) -> None:
        self._file_config = config
        self._config = config
        self._overrides: dict[str, Any] = {}
        self.breakers = BreakerView()
        self._socket: OwnedSocket | None = None
        self._state_socket: OwnedSocket | None = None
        self._socket_pid: int | None = None
        self._broker_heard_s = 0.0
        self.broker_down = False
        self._watcher: gevent.Greenlet | None = None
        self._pending: dict[int, AsyncResult] = {}
        self._call_ids = itertools.count(1)
        self._timeout_by_class: dict[type[Command], float] = {}

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
        self._timeout_by_class.clear()

    @property
    def pending_calls(self) -> int:
        """Calls sent and not yet answered or timed out."""
        return len(self._pending)

    def timeout_s(self, command_class: type[Command]) -> float:
        timeout_s = self._timeout_by_class.get(command_class)
        if timeout_s is None:
            class_value = getattr(command_class, "timeout_s", None)
            timeout_s = self._config.command_setting(command_class.key, "timeout_s", class_value)
            self._timeout_by_class[command_class] = timeout_s
        return timeout_s

    # -- running commands ----------------------------------------------------------------

    def execute(self, command: Command) -> Any:
        """The command's value, its fallback's value, or the error (see ``api.errors``)."""
        started_s = time.monotonic()
        try:
            value = self._run(command)
        except CommandError as error:
            return self._fall_back(command, error, started_s)
        log.debug("call_succeeded", command=command.key, dependency=command.dependency,
                  outcome=Event.SUCCESS, latency_ms=_elapsed_ms(started_s))
        return value

    def queue(self, command: Command) -> AsyncResult:
        """Start ``command`` in its own greenlet; the future holds what execute() gives."""
        future = AsyncResult()

        def run() -> None:
            try:
                future.set(self.execute(command))
            except Exception as exc:  # noqa: BLE001 - handed to the future's owner
                future.set_exception(exc)

        gevent.spawn(run)
        return future

    def _run(self, command: Command) -> Any:
        if command.dependency is None:
            return self._run_here(command)
        return self._run_remote(command)

    def _run_remote(self, command: Command) -> Any:
        timeout_s = self.timeout_s(type(command))
        sock = self._owned_socket()
        if self.broker_down:
            raise ShortCircuited(f"{command.key}: the broker is unreachable; not sent",
                                 command=command.key, dependency=command.dependency)
        if self.breakers.short_circuits(command.key):
            raise ShortCircuited(f"{command.key}: the breaker is OPEN; not sent",
                                 command=command.key, dependency=command.dependency)
        call_id = next(self._call_ids)
        waiter = AsyncResult()
        self._pending[call_id] = waiter
        timeout_ms = max(1, int(timeout_s * 1000))
        sock.send(protocol.request(call_id, command.key, command.dependency, timeout_ms, command._payload))
        if not waiter.wait(timeout_s):
            self._pending.pop(call_id, None)
            raise CommandTimeout(
                f"{command.key} got no answer from pool {command.dependency!r} within {timeout_s:g} s",
                command=command.key, dependency=command.dependency,
            )
        return _value_of(command, waiter.value)

    def _run_here(self, command: Command) -> Any:
        """Semaphore isolation: run() in this greenlet, freed at the timeout."""
        timeout_s = self.timeout_s(type(command))
        timer = gevent.Timeout.start_new(timeout_s)
        try:
            return command.run()
        except gevent.Timeout as exc:
            if exc is not timer:
                raise
            raise CommandTimeout(f"{command.key} did not finish within {timeout_s:g} s",
                                 command=command.key) from None
        except BadRequest as exc:
            exc.command = command.key
            raise
        except Exception as exc:
            cause = RemoteCause(type(exc).__name__, str(exc))
            raise CommandFailed(f"{command.key} failed: {cause}", command=command.key, cause=cause) from exc
        finally:
            timer.close()

    def _fall_back(self, command: Command, error: CommandError, started_s: float) -> Any:
        fields = dict(command=command.key, dependency=command.dependency, outcome=error.failure)
        if not type(command).has_fallback():
            log.debug("call_failed", **fields, fallback=Event.FALLBACK_MISSING, latency_ms=_elapsed_ms(started_s))
            raise error
        try:
            value = command.fallback()
        except Exception as exc:
            log.debug("call_failed", **fields, fallback=Event.FALLBACK_FAILURE, latency_ms=_elapsed_ms(started_s))
            raise type(error)(
                f"{error} and its fallback failed: {type(exc).__name__}: {exc}",
                command=error.command, dependency=error.dependency, cause=error.cause, failure=error.failure,
            ) from exc
        log.debug("call_fell_back", **fields, fallback=Event.FALLBACK_SUCCESS, latency_ms=_elapsed_ms(started_s))
        return value

    # -- the socket --------------------------------------------------------------------

    def _owned_socket(self) -> OwnedSocket:
        if self._socket is None or self._socket_pid != os.getpid():
            sock = make_socket(zmq.DEALER)
            sock.connect(self._config.endpoints["front"])
            self._socket = OwnedSocket(sock, self._on_message, "front")
            self._socket_pid = os.getpid()
            self._pending.clear()  # calls of a parent process are not ours to answer
            self._socket.start()
            state = make_socket(zmq.SUB)
            state.setsockopt(zmq.SUBSCRIBE, protocol.STATE_TOPIC)
            state.connect(self._config.endpoints["events"])
            self._state_socket = OwnedSocket(state, self._on_state, "events")
            self._state_socket.start()
            self._broker_heard_s = time.monotonic()  # a new connection gets one silence of grace
            self.broker_down = False
            self._watcher = gevent.spawn(self._watch_broker)
        return self._socket

    def _watch_broker(self) -> None:
        """Notice a broker gone silent: fail what waits on it, and fail fast until it is back."""
        while True:
            gevent.sleep(BROKER_CHECK_S)
            silent = self._broker_silent()
            if silent and not self.broker_down:
                gevent.idle()  # a starved hub may hold beats not yet read: read them first
                silent = self._broker_silent()
            if silent and not self.broker_down:
                self.broker_down = True
                log.warning("broker_unreachable", silent_s=round(time.monotonic() - self._broker_heard_s, 3),
                            calls_failed=len(self._pending))
                self._fail_pending()
            elif not silent and self.broker_down:
                self.broker_down = False
                log.info("broker_reachable")

    def _broker_silent(self) -> bool:
        return time.monotonic() - self._broker_heard_s > BROKER_SILENT_S

    def _fail_pending(self) -> None:
        payload = protocol.encode_error("BrokerUnreachable", f"no word from the broker for {BROKER_SILENT_S:g} s "
                                        "while the call was out; its outcome is unknown")
        pending, self._pending = self._pending, {}
        for call_id, waiter in pending.items():
            waiter.set(protocol.Reply(call_id, Event.WORKER_LOST, 0.0, payload))

    def _on_state(self, frames: list[bytes]) -> None:
        """Breaker changes and snapshots the broker publishes."""
        message = protocol.decode_or_log(frames[1:], log, "events")
        self._broker_heard_s = time.monotonic()
        if type(message) is protocol.BreakerChange:
            self.breakers.update(message.command, message.state, message.retry_in_ms)
        elif type(message) is protocol.Snapshot:
            self.breakers.replace(message.breakers)
            if message.overrides != self._overrides:
                self._apply_overrides(message.overrides)

    def _apply_overrides(self, overrides: dict[str, Any]) -> None:
        try:
            self._apply(self._file_config, dict(check_override(key, value) for key, value in overrides.items()))
        except ConfigError as exc:
            log.warning("runtime_settings_ignored", error=str(exc))
            return
        log.info("runtime_settings_applied", overrides=overrides)

    def _on_message(self, frames: list[bytes]) -> None:
        message = protocol.decode_or_log(frames, log, "broker")
        if type(message) is not protocol.Reply:
            if message is not None:
                log.warning("unexpected_message_dropped", source="broker", kind=type(message).__name__)
            return
        waiter = self._pending.pop(message.call_id, None)
        if waiter is not None:  # else: the caller already timed out
            waiter.set(message)

    def close(self) -> None:
        if self._socket_pid == os.getpid():
            for owned in (self._socket, self._state_socket):
                if owned is not None:
                    owned.close()
            if self._watcher is not None:
                self._watcher.kill(block=False)
        self._socket = self._state_socket = self._watcher = None


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


def _elapsed_ms(started_s: float) -> float:
    return round((time.monotonic() - started_s) * 1000, 3)


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
