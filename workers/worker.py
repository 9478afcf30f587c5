"""A worker process: registers with the broker, runs the calls it is sent, drains on TERM.

Runs under gevent (``python -m workers`` patches the standard library first): each
call runs in its own greenlet, at most ``slots`` at once, under its deadline; a heartbeat
greenlet keeps the broker and the worker sure of each other. On SIGTERM the worker tells
the broker to send nothing new, finishes what it holds, says goodbye and exits 0.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Callable

import gevent
import gevent.event
import zmq

from api.command import Command
from shared import protocol
from shared.config import Config
from shared.events import Event
from shared.logging import get_logger
from shared.owned_socket import OwnedSocket
from shared.transport import make_socket
from workers.execution import run_call

log = get_logger("worker")

#: A broker silent for this many heartbeat intervals is gone: register again.
LIVENESS_INTERVALS = 3
#: How long a goodbye may take to leave the socket on exit.
GOODBYE_LINGER_MS = 1000


class Worker:
    def __init__(self, config: Config, dependency: str, commands: dict[str, type[Command]], slots: int = 1,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.dependency = dependency
        self.commands = commands
        self.slots = slots
        self.clock = clock
        self.heartbeat_s: float = config.broker_setting("heartbeat_s")
        self._running: dict[int, gevent.Greenlet] = {}
        self._broker_seen_s = clock()
        self._draining = False
        self._drain_acked = gevent.event.Event()
        self._idle = gevent.event.Event()
        self._idle.set()
        self._socket: OwnedSocket | None = None

    def run(self) -> int:
        """Serve until drained; the process exit code."""
        sock = make_socket(zmq.DEALER)
        sock.connect(self.config.endpoints["back"])
        self._socket = OwnedSocket(sock, self._on_message, "back")
        self._socket.start()
        self._register()
        drain_requested = gevent.event.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            gevent.signal_handler(signum, drain_requested.set)
        heartbeat = gevent.spawn(self._heartbeat_loop)
        drain_requested.wait()
        self._drain()
        heartbeat.kill()
        self._socket.send(protocol.signal(protocol.Kind.GOODBYE))
        gevent.sleep(0)  # let the owner greenlet hand the goodbye to ZeroMQ
        self._socket.close(linger_ms=GOODBYE_LINGER_MS)
        log.info("worker_stopped", dependency=self.dependency)
        return 0

    def _register(self) -> None:
        settings_by_command = {key: cls.class_settings() for key, cls in self.commands.items()}
        self._socket.send(protocol.ready(self.dependency, self.slots, os.getpid(), settings_by_command))
        log.info("worker_registering", dependency=self.dependency, slots=self.slots,
                 commands=sorted(self.commands), broker=self.config.endpoints["back"])

    def _drain(self) -> None:
        """Take no new work, finish what is held; every call ends by its deadline."""
        log.info("worker_draining", dependency=self.dependency, holding=len(self._running))
        self._draining = True
        self._socket.send(protocol.signal(protocol.Kind.DRAINING))
        # Calls the broker sent before it read DRAINING arrive before its DRAIN_ACK.
        if not self._drain_acked.wait(LIVENESS_INTERVALS * self.heartbeat_s):
            log.warning("drain_not_acknowledged", dependency=self.dependency)
        self._idle.wait()

    def _heartbeat_loop(self) -> None:
        while True:
            gevent.sleep(self.heartbeat_s)
            self._socket.send(protocol.HEARTBEAT)
            if self.clock() - self._broker_seen_s > LIVENESS_INTERVALS * self.heartbeat_s:
                log.warning("broker_silent", dependency=self.dependency,
                            silent_s=round(self.clock() - self._broker_seen_s, 3))
                self._broker_seen_s = self.clock()
                if not self._draining:
                    self._register()

    def _on_message(self, frames: list[bytes]) -> None:
        message = protocol.decode_or_log(frames, log, "broker")
        if message is None:
            return
        self._broker_seen_s = self.clock()
        if type(message) is protocol.Call:
            self._start_call(message)
        elif type(message) is protocol.Signal:
            self._on_signal(message.kind)
        else:
            log.warning("unexpected_message_dropped", source="broker", kind=type(message).__name__)

    def _on_signal(self, kind: protocol.Kind) -> None:
        if kind is protocol.Kind.RESET:
            log.info("broker_asked_to_register", dependency=self.dependency)
            if not self._draining:
                self._register()
        elif kind is protocol.Kind.DRAIN_ACK:
            self._drain_acked.set()
        elif kind is not protocol.Kind.HEARTBEAT:
            log.warning("unexpected_message_dropped", source="broker", kind=kind.name)

    def _start_call(self, call: protocol.Call) -> None:
        if len(self._running) >= self.slots:
            self._socket.send(protocol.result(call.call_id, Event.FAILURE, 0.0, protocol.encode_error(
                "WorkerBusy", f"worker pid {os.getpid()} already runs {self.slots} calls (its slots)")))
            return
        self._idle.clear()
        self._running[call.call_id] = gevent.spawn(self._run_call, call)

    def _run_call(self, call: protocol.Call) -> None:
        try:
            outcome, execution_ms, payload = run_call(self.commands, call, self.dependency)
            log.debug("call_finished", command=call.command, dependency=self.dependency,
                      outcome=outcome, latency_ms=execution_ms)
            self._socket.send(protocol.result(call.call_id, outcome, execution_ms, payload))
        finally:
            del self._running[call.call_id]
            if not self._running:
                self._idle.set()
