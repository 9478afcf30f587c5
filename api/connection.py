"""The caller's link to the broker: its two sockets, the calls out, the broker's news.

One DEALER (calls out, replies in) and one SUB (breaker changes, snapshots, the broker's
beat), each owned by one greenlet. A watcher greenlet sends the batched outcome reports
and notices a broker gone silent: it fails every call waiting on it and makes new calls
fail fast until the broker is heard again. Made lazily in the process that uses it, and
again after a fork.
"""

from __future__ import annotations

import itertools
import os
import time
from typing import Any, Callable

import gevent
import zmq

from api.breakers import BreakerView
from api.reply_waiter import ReplyWaiter
from api.reports import OutcomeReports
from shared import protocol
from shared.burst import Burst
from shared.config import Config
from shared.events import Event
from shared.log_throttle import LogThrottle
from shared.logging import get_logger
from shared.owned_socket import OwnedSocket
from shared.security import secure_client
from shared.transport import make_socket

log = get_logger("api.connection")

#: Forks between the first process and this one: a process's count is above any count it
#: inherited, so a connection opened before a fork is known as not this process's
#: without ``os.getpid()`` (a system call, about half a microsecond on a small VM) on
#: every call, as every call opens its connection. Unlike a pid it is never reused.
_forks = 0


def _count_fork() -> None:
    global _forks
    _forks += 1


os.register_at_fork(after_in_child=_count_fork)

#: A broker not heard from for this long is down: calls fail fast until it is back.
BROKER_SILENT_S = 0.75
#: How often the watcher checks the broker is heard, and sends outcome reports.
BROKER_CHECK_S = 0.1
#: The class settings of semaphore commands are sent again this often (a broker restarted
#: meanwhile has forgotten them), and at once when one is new.
DECLARE_INTERVAL_S = 5.0
#: While the broker stays silent, its sockets are made again this often.
RECONNECT_INTERVAL_S = 5.0


class BrokerConnection:
    def __init__(self, endpoints: dict[str, str], on_overrides: Callable[[dict[str, Any]], None], *,
                 config: Config | None = None, server_key: str | None = None, track_capacity: bool = False,
                 name: str = "broker") -> None:
        self._endpoints = endpoints
        self._on_overrides = on_overrides
        self._config = config
        self._server_key = server_key
        self.name = name
        #: with several brokers: each pool's free slots and queue places at the last
        #: metrics snapshot, and this caller's calls out to it now and at that snapshot
        self._track_capacity = track_capacity
        self._room_by_pool: dict[str, int] = {}
        self._out_by_pool: dict[str, int] = {}
        self._out_at_snapshot: dict[str, int] = {}
        self._pool_of_call: dict[int, str] = {}
        self.breakers = BreakerView()
        self.reports = OutcomeReports()
        #: class settings of the semaphore commands run through this broker, key -> settings
        #: (at most protocol.MAX_DECLARED_COMMANDS), sent with the reports (_send_declared)
        self.declared: dict[str, dict[str, Any]] = {}
        self._next_declare_s = 0.0  # 0: at the next flush (one is new)
        self._declared_full_said = False
        self.broker_down = False
        self.overrides: dict[str, Any] = {}
        self._pending: dict[int, ReplyWaiter] = {}
        #: REQUEST items (call_id, command, dependency, timeout_ms, payload) on their way
        self._requests = Burst(self._send_now, protocol.request, protocol.requests)
        self._dropped_lines = LogThrottle(protocol.DROPPED_LOG_INTERVAL_S)
        self._call_ids = itertools.count(1)
        self._calls: OwnedSocket | None = None
        self._state: OwnedSocket | None = None
        self._watcher: gevent.Greenlet | None = None
        #: ``_forks`` of the process that opened the sockets; None before the first open
        self._opened_after_forks: int | None = None
        self._heard_s = 0.0
        self._connected_s = 0.0

    @property
    def pending_calls(self) -> int:
        return len(self._pending)

    def open(self) -> None:
        """Connect, if this process has not yet (a forked child gets its own sockets)."""
        if self._calls is not None and self._opened_after_forks == _forks:
            return
        if self._opened_after_forks not in (None, _forks):  # a forked child: its parent's
            self.reports = OutcomeReports()  # unsent outcomes are the parent's to report
        self._opened_after_forks = _forks
        self._pending.clear()  # calls of a parent process are not ours to answer
        self._requests.clear()
        self._connect()
        self._heard_s = time.monotonic()  # a new connection gets one silence of grace
        self.broker_down = False
        self._watcher = gevent.spawn(self._watch)

    def _connect(self) -> None:
        """Make both sockets and connect them."""
        calls = make_socket(zmq.DEALER)
        self._secure(calls, self._endpoints["front"])
        calls.connect(self._endpoints["front"])
        self._calls = OwnedSocket(calls, self._on_reply, "front", receive_in_hub=True)
        self._calls.start()
        state = make_socket(zmq.SUB)
        state.setsockopt(zmq.SUBSCRIBE, protocol.STATE_TOPIC)
        if self._track_capacity:
            state.setsockopt(zmq.SUBSCRIBE, protocol.METRICS_TOPIC)
        self._secure(state, self._endpoints["events"])
        state.connect(self._endpoints["events"])
        self._state = OwnedSocket(state, self._on_state, "events")
        self._state.start()
        self._connected_s = time.monotonic()

    def _reconnect(self) -> None:
        """Close both sockets and make them again (ZeroMQ's Paranoid Pirate).

        ZeroMQ reconnects by itself after a broker restart, but not after it dropped the
        connection over a protocol error (a frame over the size limit, a failed
        handshake): a socket that connects is then not made again, and the broker would
        stay silent for good. New sockets cost nothing when the broker is merely down.
        """
        for owned in (self._calls, self._state):
            if owned is not None:
                owned.close()
        self._connect()

    def _secure(self, sock: zmq.Socket, endpoint: str) -> None:
        if self._config is not None:
            secure_client(sock, self._config, "front", endpoint, self._server_key)

    def room(self, pool: str) -> int:
        """Free slots and queue places the pool had at the last snapshot, less the calls
        this caller has sent there since (net of answers); -1 where the pool is unknown."""
        if pool not in self._room_by_pool:
            return -1
        return self._room_by_pool[pool] - (self._out_by_pool.get(pool, 0) - self._out_at_snapshot.get(pool, 0))

    def send_request(self, command: str, dependency: str, timeout_ms: int, payload: bytes) -> tuple[int, ReplyWaiter]:
        """Send a REQUEST; the waiter gets its Reply. A burst of callers' requests goes
        out as two messages, not one each (shared/burst.py)."""
        call_id, waiter = self._expect_reply(dependency)
        self._requests.add((call_id, command, dependency, timeout_ms, payload))
        return call_id, waiter

    def send_call(self, frames_for: Callable[[int], list[bytes]], pool: str = "") -> tuple[int, ReplyWaiter]:
        """Send the message ``frames_for(call_id)`` now; the waiter gets its Reply."""
        call_id, waiter = self._expect_reply(pool)
        self._requests.send_after(frames_for(call_id))
        return call_id, waiter

    def _expect_reply(self, pool: str) -> tuple[int, ReplyWaiter]:
        call_id = next(self._call_ids)
        waiter = ReplyWaiter()
        self._pending[call_id] = waiter
        if self._track_capacity:
            self._pool_of_call[call_id] = pool
            self._out_by_pool[pool] = self._out_by_pool.get(pool, 0) + 1
        return call_id, waiter

    def _send_now(self, frames: list[bytes]) -> None:
        if self._calls is not None:  # else closed meanwhile: its callers time out and fall back
            self._calls.send(frames)

    def forget(self, call_id: int | None) -> None:
        """The caller stopped waiting (its timeout): a late reply is dropped. None (a call
        that went in its batch's message, with no id of its own) is no key: nothing to drop."""
        self._pending.pop(call_id, None)  # type: ignore[arg-type]  # dict.pop() takes any key; typeshed: int only
        if self._track_capacity:
            self._call_done(call_id)

    def _call_done(self, call_id: int | None) -> None:
        pool = self._pool_of_call.pop(call_id, None)  # type: ignore[arg-type]  # as in forget()
        if pool is not None:
            self._out_by_pool[pool] -= 1

    def close(self) -> None:
        if self._opened_after_forks == _forks:  # else a parent's sockets: not ours to close
            for owned in (self._calls, self._state):
                if owned is not None:
                    owned.close()
            if self._watcher is not None:
                self._watcher.kill(block=False)
        self._calls = self._state = self._watcher = None

    # -- what arrives --------------------------------------------------------------------

    def _on_reply(self, frames: list[bytes]) -> None:
        """A REPLY, or REPLIES: the broker's replies to this caller in one of its loop turns."""
        message = protocol.decode_or_log(frames, log, "broker", self._dropped_lines)
        kind = type(message)
        # ``kind is X`` narrows message to X as ``type(message) is X`` would, but mypy does not follow
        # it through ``kind`` (and one type() call per branch would cost more): hence the ignores.
        if kind is protocol.Reply:
            self._deliver(message)  # type: ignore[arg-type]
        elif kind is protocol.Replies:
            for reply in message.items:  # type: ignore[union-attr]
                self._deliver(reply)  # type: ignore[arg-type]
        elif message is not None:
            protocol.log_unexpected(log, self._dropped_lines, "broker", kind.__name__)

    def _deliver(self, reply: protocol.Reply) -> None:
        waiter = self._pending.pop(reply.call_id, None)
        if self._track_capacity:
            self._call_done(reply.call_id)
        if waiter is not None:  # else: the caller already timed out
            waiter.set(reply)

    def _on_state(self, frames: list[bytes]) -> None:
        """Breaker changes, snapshots and beats the broker publishes."""
        if frames and frames[0] == protocol.METRICS_TOPIC:
            self._on_metrics(frames)
            return
        message = protocol.decode_or_log(frames[1:], log, "events", self._dropped_lines)
        self._heard_s = time.monotonic()
        if type(message) is protocol.BreakerChange:
            self.breakers.update(message.command, message.state, message.retry_in_ms)
        elif type(message) is protocol.Snapshot:
            self.breakers.replace(message.breakers)
            if message.overrides != self.overrides:
                self.overrides = message.overrides
                self._on_overrides(message.overrides)

    def _on_metrics(self, frames: list[bytes]) -> None:
        try:
            snapshot = protocol.decode_metrics(frames)
        except protocol.ProtocolError as exc:
            protocol.log_malformed(log, self._dropped_lines, "events", str(exc), broker=self.name)
            return
        self._room_by_pool = {
            name: max(0, pool["slots"] - pool["busy"]) + max(0, pool["queue_size"] - pool["queued"])
            for name, pool in snapshot["pools"].items() if pool["workers"]
        }
        self._out_at_snapshot = dict(self._out_by_pool)

    # -- the watcher ---------------------------------------------------------------------

    def _watch(self) -> None:
        while True:
            gevent.sleep(BROKER_CHECK_S)
            self._send_reports()
            silent = self._silent()
            if silent and not self.broker_down:
                gevent.idle()  # a starved hub may hold beats not yet read: read them first
                silent = self._silent()
            if silent and not self.broker_down:
                self.broker_down = True
                log.warning("broker_unreachable", broker=self.name, endpoint=self._endpoints["front"],
                            silent_s=round(time.monotonic() - self._heard_s, 3),
                            calls_failed=len(self._pending), sockets_remade_every_s=RECONNECT_INTERVAL_S)
                self._fail_pending()
                self._reconnect()
            elif silent and time.monotonic() - self._connected_s > RECONNECT_INTERVAL_S:
                self._reconnect()
            elif not silent and self.broker_down:
                self.broker_down = False
                log.info("broker_reachable", broker=self.name, endpoint=self._endpoints["front"])

    def _silent(self) -> bool:
        return time.monotonic() - self._heard_s > BROKER_SILENT_S

    def declare(self, command_key: str, settings: dict[str, Any]) -> None:
        """Tell the broker what a semaphore command's class sets (its breaker's settings
        among them): no worker runs it, so no READY says so. Sent by the watcher."""
        if not settings or command_key in self.declared:
            return
        if len(self.declared) >= protocol.MAX_DECLARED_COMMANDS:
            if not self._declared_full_said:
                self._declared_full_said = True
                log.warning("class_settings_not_declared", broker=self.name, command=command_key,
                            max_declared_commands=protocol.MAX_DECLARED_COMMANDS)
            return
        self.declared[command_key] = settings
        self._next_declare_s = 0.0

    def _send_declared(self) -> None:
        """Every declared class setting, when one is new and again every DECLARE_INTERVAL_S,
        so that a restarted broker (or another one taking over) learns them again."""
        now_s = time.monotonic()
        if self.declared and now_s >= self._next_declare_s and not self.broker_down and self._calls is not None:
            self._requests.send_after(protocol.declare(self.declared))
            self._next_declare_s = now_s + DECLARE_INTERVAL_S

    def _send_reports(self) -> None:
        self._send_declared()  # before the outcomes they are settings of
        outcomes = self.reports.take()
        if outcomes and not self.broker_down and self._calls is not None:
            self._requests.send_after(protocol.report(outcomes))
        if self.reports.dropped:
            log.warning("outcome_reports_dropped", count=self.reports.dropped)
            self.reports.dropped = 0

    def _fail_pending(self) -> None:
        payload = protocol.encode_error("BrokerUnreachable", f"no word from the broker for {BROKER_SILENT_S:g} s "
                                        "while the call was out; its outcome is unknown")
        pending, self._pending = self._pending, {}
        self._pool_of_call.clear()
        self._out_by_pool.clear()
        for call_id, waiter in pending.items():
            waiter.set(protocol.Reply(call_id, Event.WORKER_LOST, 0.0, payload))
