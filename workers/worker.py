"""A worker process: registers with the broker, runs the calls it is sent, drains on TERM.

Runs under gevent (``python -m workers`` patches the standard library first): each
call runs in its own greenlet, at most ``slots`` at once, under its deadline; a heartbeat
greenlet keeps the broker and the worker sure of each other, and a watchdog thread ends
the process if a call will not stop. On SIGTERM the worker tells the broker to send
nothing new, finishes what it holds, says goodbye and exits 0; after ``max_calls`` calls
or over ``max_rss_mb`` it does the same and exits ``EXIT_RECYCLED`` (see exit_codes).
"""

from __future__ import annotations

import os
import signal
import time
from collections import deque
from typing import Callable

import gevent
import gevent.event
import zmq
from greenlet import greenlet as RawGreenlet

from api.command import Command
from shared import protocol
from shared.burst import Burst
from shared.config import Config
from shared.events import Event
from shared.log_throttle import LogThrottle
from shared.logging import LOG_EACH_CALL, get_logger
from shared.owned_socket import OwnedSocket
from shared.security import secure_client
from shared.transport import make_socket
from workers.chaos import NO_CHAOS, Chaos, ChaosSettings
from workers.execution import run_batch_call, run_call
from workers.exit_codes import EXIT_RECYCLED, EXIT_STOPPED
from workers.watchdog import Watchdog

log = get_logger("worker")

#: A broker silent for this many heartbeat intervals is logged; a broker that no longer
#: knows this worker answers its next STATS with RESET, and it registers again then.
LIVENESS_INTERVALS = 3
#: Still silent after this many intervals: make the socket again, then register.
#: Not sooner: a broker merely held up would lose the calls it sends in the switch.
RECONNECT_INTERVALS = 10
#: How long a goodbye may take to leave the socket on exit.
GOODBYE_LINGER_MS = 1000
_PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")


def rss_mb() -> float:
    """This process's resident memory now (not its peak), from /proc."""
    with open("/proc/self/statm", "rb") as statm:
        return int(statm.read().split()[1]) * _PAGE_BYTES / 2**20


class Worker:
    def __init__(self, config: Config, dependency: str, commands: dict[str, type[Command]], slots: int = 1,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.dependency = dependency
        self.commands = commands
        self.slots = slots
        self.clock = clock
        self.heartbeat_s: float = config.broker_setting("heartbeat_s")
        self._dropped_lines = LogThrottle(protocol.DROPPED_LOG_INTERVAL_S, clock)
        self._running: set[int] = set()
        #: calls taken but not yet started by a slot, oldest first
        self._waiting: deque[protocol.Call | protocol.Batch] = deque()
        #: slot greenlets waiting for a call (see _slot)
        self._idle_slots: list[RawGreenlet] = []
        self._hand_out_scheduled = False
        self._broker_seen_s = clock()  # last word from the broker, or last time we said it was silent
        self._broker_heard_s = clock()  # last word from the broker
        #: the number of the broker's last BEAT, echoed in each STATS (broker/beats.py)
        self._beat_heard = 0
        self._draining = False
        self._drain_acked = gevent.event.Event()
        self._idle = gevent.event.Event()
        self._idle.set()
        self._socket: OwnedSocket | None = None
        #: this process's identity to the broker's ROUTER, kept across new sockets
        #: (a ZeroMQ routing id must not start with a zero byte)
        self._routing_id = f"worker:{os.getpid()}:".encode() + os.urandom(8).hex().encode()
        self.chaos = Chaos()
        self.watchdog = Watchdog(config.pool_setting(dependency, "hung_call_grace_s"), clock)
        self.max_calls: int = config.pool_setting(dependency, "max_calls")
        self.max_rss_mb: float = config.pool_setting(dependency, "max_rss_mb")
        self.calls_served = 0
        self._drain_requested = gevent.event.Event()
        self._exit_code = EXIT_STOPPED
        #: RESULT items (call_id, outcome, execution_ms, payload) on their way; sent only once
        #: run() has connected, so ``_socket`` is not None by then
        self._results = Burst(lambda frames: self._socket.send(frames),  # type: ignore[union-attr]
                              protocol.result, protocol.results)

    def run(self) -> int:
        """Serve until drained; the process exit code."""
        self._connect()
        for _ in range(self.slots):
            gevent.spawn(self._slot)
        self.watchdog.start()
        self._register()
        for signum in (signal.SIGTERM, signal.SIGINT):
            gevent.signal_handler(signum, self._stop, EXIT_STOPPED, "asked to stop")
        heartbeat = gevent.spawn(self._heartbeat_loop)
        self._drain_requested.wait()
        self._drain()
        heartbeat.kill()
        self._results.send_after(protocol.signal(protocol.Kind.GOODBYE))  # after every result held
        gevent.sleep(0)  # let the owner greenlet hand the goodbye to ZeroMQ
        self._socket.close(linger_ms=GOODBYE_LINGER_MS)  # type: ignore[union-attr]  # _connect() above made it
        log.info("worker_stopped", dependency=self.dependency, exit_code=self._exit_code,
                 calls_served=self.calls_served)
        return self._exit_code

    def _connect(self) -> None:
        """Make the socket to the broker and connect it; closes the one before, if any.

        Made again when the broker falls silent (ZeroMQ's Paranoid Pirate): ZeroMQ
        reconnects by itself after a broker restart, but not after it dropped the
        connection over a protocol error (a frame over the size limit, a failed
        handshake), and then registering again on the old socket would reach nobody.
        Every socket of this process has the same routing id, so to the broker the new
        connection is the same worker: the calls it holds stay held, and their results go
        out on the new socket (one that has written the worker off drops them).
        """
        if self._socket is not None:
            self._socket.close()
        sock = make_socket(zmq.DEALER, routing_id=self._routing_id)
        secure_client(sock, self.config, "worker", self.config.endpoints["back"])
        sock.connect(self.config.endpoints["back"])
        self._socket = OwnedSocket(sock, self._on_message, "back", receive_in_hub=True)
        self._socket.start()

    def _stop(self, exit_code: int, reason: str) -> None:
        """Drain, then exit with ``exit_code``; the first reason given wins."""
        if not self._drain_requested.is_set():
            log.info("worker_stopping", dependency=self.dependency, reason=reason, exit_code=exit_code)
            self._exit_code = exit_code
            self._drain_requested.set()

    def _register(self) -> None:
        """Send READY, first or again. Chaos set by a broker ends here: the broker it
        registers with sends its pool's chaos, if any, so a restarted broker (which knows
        of none) does not leave its workers injecting what no ``status`` shows."""
        if self.chaos.settings != NO_CHAOS:
            self.chaos.settings = NO_CHAOS
            log.info("chaos_cleared", dependency=self.dependency, reason="registering with the broker again")
        settings_by_command = {key: cls.class_settings() for key, cls in self.commands.items()}
        self._results.send_after(protocol.ready(self.dependency, self.slots, os.getpid(), settings_by_command,
                                                tuple(self._running)))
        log.info("worker_registering", dependency=self.dependency, slots=self.slots,
                 commands=sorted(self.commands), broker=self.config.endpoints["back"])

    def _drain(self) -> None:
        """Take no new work, finish what is held; every call ends by its deadline."""
        log.info("worker_draining", dependency=self.dependency, holding=len(self._running))
        self._draining = True
        self._results.send_after(protocol.signal(protocol.Kind.DRAINING))
        # Calls the broker sent before it read DRAINING arrive before its DRAIN_ACK.
        if not self._drain_acked.wait(LIVENESS_INTERVALS * self.heartbeat_s):
            log.warning("drain_not_acknowledged", dependency=self.dependency)
        self._idle.wait()

    def _heartbeat_loop(self) -> None:
        while True:
            gevent.sleep(self.heartbeat_s)
            # A heartbeat that says how big we are, and what we hold as of the broker's last
            # beat: the broker finds what it sent us that never came (broker/beats.py).
            self._results.send_after(protocol.stats(rss_mb(), self._beat_heard, tuple(self._running)))
            if self.clock() - self._broker_seen_s > LIVENESS_INTERVALS * self.heartbeat_s:
                silent_s = self.clock() - self._broker_heard_s
                remake = silent_s > RECONNECT_INTERVALS * self.heartbeat_s and not self._draining
                log.warning("broker_silent", dependency=self.dependency, silent_s=round(silent_s, 3),
                            socket_remade=remake)
                self._broker_seen_s = self.clock()
                if remake:  # never while draining
                    self._connect()
                    # A new connection: no call sent before can come on it, so the READY's
                    # list of running calls is whole.
                    self._register()
                # Otherwise no READY of our own: one sent now could pass calls still on their
                # way to us (a broker that dropped us sent them before; we were stopped) and
                # leave them out of its running list, and the broker would send a call to a
                # slot they fill. Its RESET comes after those calls, so the READY we send for
                # it lists them (workers/worker.py _on_signal).

    def _on_message(self, frames: list[bytes]) -> None:
        message = protocol.decode_or_log(frames, log, "broker", self._dropped_lines)
        if message is None:
            return
        self._broker_seen_s = self._broker_heard_s = self.clock()
        if type(message) is protocol.Call or type(message) is protocol.Batch:
            self._take_call(message)
            self._hand_out()
        elif type(message) is protocol.Calls:
            for call in message.items:
                self._take_call(call)
            self._hand_out()
        elif type(message) is protocol.Beat:
            self._beat_heard = message.number
        elif type(message) is protocol.Signal:
            self._on_signal(message.kind)
        elif type(message) is protocol.Chaos:
            self._on_chaos(message)
        else:
            protocol.log_unexpected(log, self._dropped_lines, "broker", type(message).__name__)

    def _on_signal(self, kind: protocol.Kind) -> None:
        if kind is protocol.Kind.RESET:
            log.info("broker_asked_to_register", dependency=self.dependency)
            if not self._draining:
                self._register()
        elif kind is protocol.Kind.DRAIN_ACK:
            self._drain_acked.set()
        elif kind is not protocol.Kind.HEARTBEAT:
            protocol.log_unexpected(log, self._dropped_lines, "broker", kind.name)

    def _on_chaos(self, message: protocol.Chaos) -> None:
        if message.kill:
            log.warning("chaos_kill", dependency=self.dependency, holding=len(self._running))
            self.chaos.kill_now()
        try:
            self.chaos.settings = ChaosSettings.from_wire(message.settings)
        except ValueError as exc:
            log.warning("chaos_refused", error=str(exc))
            return
        if message.settings:
            log.warning("chaos_settings", dependency=self.dependency, **message.settings)
        else:
            log.info("chaos_cleared", dependency=self.dependency)

    def _take_call(self, call: protocol.Call | protocol.Batch) -> None:
        if len(self._running) >= self.slots:
            self._results.add((call.call_id, Event.FAILURE, 0.0, protocol.encode_error(
                "WorkerBusy", f"worker pid {os.getpid()} already runs {self.slots} calls (its slots)")))
            return
        self._idle.clear()
        self._running.add(call.call_id)
        self._waiting.append(call)

    def _hand_out(self) -> None:
        """Switch to idle slots until every call taken has one.

        In the hub, where the socket is read, the switch is direct: a slot starts on its
        call at once, with no queue, callback or turn of the loop in between (about 30 µs
        a call on a small VM), and runs waiting calls one after another until one waits
        for I/O or none is left; then the hub is back here and hands the rest to another
        slot. Anywhere else (the socket's owner greenlet, in a flood) the hub is asked to
        do it in a callback.
        """
        hub = gevent.get_hub()
        if gevent.getcurrent() is not hub:
            if not self._hand_out_scheduled:
                self._hand_out_scheduled = True
                hub.loop.run_callback(self._hand_out)
            return
        self._hand_out_scheduled = False
        while self._waiting and self._idle_slots:
            self._idle_slots.pop().switch()

    def _slot(self) -> None:
        """One slot: a long-lived greenlet, so no spawn and no fresh stack per call. It
        waits in ``_idle_slots`` for ``_hand_out`` to switch to it, and takes calls while
        any wait."""
        hub = gevent.get_hub()
        this_slot = gevent.getcurrent()
        waiting = self._waiting
        while True:
            while not waiting:
                self._idle_slots.append(this_slot)
                hub.switch()
            call = waiting.popleft()
            try:
                self._run_call(call)
            except gevent.GreenletExit:
                raise
            except BaseException as exc:  # noqa: BLE001 - a fault of ours must not end the slot
                # The call goes unanswered (the broker answers it at its deadline, or as lost
                # at the next beat); a slot that died would hold its calls for good.
                log.error("slot_error", command=call.command, call_id=call.call_id,
                          error=f"{type(exc).__name__}: {exc}")

    def _run_call(self, call: protocol.Call | protocol.Batch) -> None:
        self.watchdog.watch(call.call_id, call.command, self.clock() + call.timeout_ms / 1000)
        run = run_batch_call if type(call) is protocol.Batch else run_call
        try:
            # run_batch_call exactly when call is a Batch (the line above); mypy does not pair them up
            outcome, execution_ms, payload = run(self.commands, call, self.dependency,  # type: ignore[arg-type]
                                                 self.chaos.inject)
            if LOG_EACH_CALL:
                log.debug("call_finished", command=call.command, dependency=self.dependency,
                          outcome=outcome, latency_ms=execution_ms)
            self._results.add((call.call_id, outcome, execution_ms, payload))  # shared/burst.py
        finally:
            self.watchdog.done(call.call_id)
            self._running.discard(call.call_id)
            if not self._running:
                self._idle.set()
        self.calls_served += 1
        self._check_hygiene()

    def _check_hygiene(self) -> None:
        """Recycle after max_calls calls or over max_rss_mb, as Celery's workers do."""
        if self.max_calls and self.calls_served >= self.max_calls:
            self._stop(EXIT_RECYCLED, f"served max_calls = {self.max_calls}")
        elif self.max_rss_mb:
            memory_mb = rss_mb()
            if memory_mb > self.max_rss_mb:
                self._stop(EXIT_RECYCLED, f"memory {memory_mb:.0f} MB is over max_rss_mb = {self.max_rss_mb:g}")
