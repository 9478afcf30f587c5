"""Sending fuzzed messages to a socket as fast as its reader absorbs them, never faster.

A *lane* is one connection to the target: a DEALER of its own identity, or the ROUTER
that plays the broker to a worker. After every CHUNK messages on a lane the pump sends a
*probe*, a valid message whose answer proves the reader has read everything sent before
it on that lane (ZeroMQ keeps one peer's messages in order), and a lane waits while
PROBES_IN_FLIGHT of its probes are unanswered: the backlog stays a few chunks long, and
the rate measured is the rate the reader keeps up with. Fuzzed messages that happen to be
valid calls hold a worker slot until answered, so at most ``Target.max_slot_calls`` of
them are in flight: the fuzz competes for slots like one more caller, no more.
"""

from __future__ import annotations

import subprocess
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any, Hashable

import zmq
from zmq.utils.monitor import recv_monitor_message

from fuzz.messages import Frames, Fuzzer, Seed, decoded, oversize_frames
from shared import protocol

#: Messages sent on a lane between two probes.
CHUNK = 200
#: Probes a lane may have unanswered before it waits.
PROBES_IN_FLIGHT = 2
#: A target that answers nothing for this long has stopped reading, or died.
STALL_S = 15.0
#: Messages over the socket's size limit sent per target (each on a fresh connection,
#: which ZeroMQ closes on receiving it).
OVERSIZE_MESSAGES = 5
#: The answer to "the oldest probe on this lane" (an answer that carries no id).
OLDEST_PROBE = object()


class Target:
    """What the pump needs to know about one kind of receiving socket."""

    name = "target"
    #: every message sent gets exactly one answer, in order (the control socket)
    answers_every_message = False
    #: fuzzed valid calls that may hold worker slots at once
    max_slot_calls = 0

    def admit(self, message: protocol.Message | None) -> bool:
        """False for a valid message that must not be sent (an order that is obeyed by design)."""
        return True

    def slot_keys(self, message: protocol.Message) -> list[Hashable]:
        """The answer keys of the valid fuzzed calls in ``message`` that hold a worker slot
        until answered (several for a coalesced message)."""
        return []

    def probe(self, number: int) -> tuple[list[Frames], Hashable]:
        """The messages of probe ``number`` and the key of the answer that proves it read."""
        raise NotImplementedError

    def answer_key(self, message: protocol.Message) -> Any:
        """Which probe or slot call ``message`` answers: its key, OLDEST_PROBE, or None."""
        return None

    def check_answer(self, message: protocol.Message) -> None:
        """Raise AssertionError if the target should never have sent ``message``."""

    def check_probe(self, key: Hashable, message: protocol.Message) -> None:
        """Raise AssertionError if ``message`` is not the right answer to probe ``key``."""


@dataclass
class Lane:
    sock: zmq.Socket
    #: frames before every message: [] for a DEALER, [identity] from a ROUTER
    envelope: list[bytes] = field(default_factory=list)
    #: probe keys (None for other messages, when every message is answered), oldest first
    awaiting: deque[Any] = field(default_factory=deque)
    probes_unanswered: int = 0


@dataclass
class PumpStats:
    target: str
    seed: int
    sent: int = 0
    #: messages that decode as valid protocol (checked here, before sending)
    valid: int = 0
    #: valid messages not sent because the target must obey them (see Target.admit)
    screened: int = 0
    probes: int = 0
    answers: int = 0
    oversize: int = 0
    elapsed_s: float = 0.0
    probe_latency_max_ms: float = 0.0
    answers_by_kind: Counter[str] = field(default_factory=Counter)
    mutations: Counter[str] = field(default_factory=Counter)

    @property
    def per_second(self) -> float:
        return self.sent / self.elapsed_s if self.elapsed_s else 0.0


class Pump:
    def __init__(self, target: Target, lanes: list[Lane], fuzzer: Fuzzer,
                 process: subprocess.Popen[bytes] | None = None) -> None:
        self.target = target
        self.process = process
        self.lanes = lanes
        self.fuzzer = fuzzer
        self.stats = PumpStats(target.name, fuzzer.seed)
        self.slot_calls: Counter[Hashable] = Counter()
        self._lane_of = {id(lane.sock): lane for lane in lanes}
        self._poller = zmq.Poller()
        for sock in {id(lane.sock): lane.sock for lane in lanes}.values():
            self._poller.register(sock, zmq.POLLIN)
        self._probe_sent_s: dict[Hashable, float] = {}
        self._progress_s = time.monotonic()

    def run(self, count: int) -> PumpStats:
        """Send ``count`` fuzzed messages, then wait until every probe is answered."""
        started_s = time.monotonic()
        while self.stats.sent < count:
            for lane in self.lanes:
                self._wait(lambda: lane.probes_unanswered < PROBES_IN_FLIGHT, "a probe's answer")
                self._send_chunk(lane, min(CHUNK, count - self.stats.sent))
                if self.stats.sent >= count:
                    break
        self._wait(lambda: all(lane.probes_unanswered == 0 for lane in self.lanes), "the last probes' answers")
        self._wait(lambda: not +self.slot_calls, "answers to the fuzzed calls")
        self.stats.elapsed_s = time.monotonic() - started_s
        return self.stats

    def _send_chunk(self, lane: Lane, count: int) -> None:
        stats = self.stats
        sent = 0
        while sent < count:
            fuzzed = self.fuzzer.next()
            message = decoded(fuzzed)
            if not self.target.admit(message):
                stats.screened += 1
                continue
            if message is not None:
                stats.valid += 1
                keys = self.target.slot_keys(message)
                if keys:
                    room = max(self.target.max_slot_calls, len(keys))
                    self._wait(lambda: sum(self.slot_calls.values()) + len(keys) <= room, "a fuzzed call's answer")
                    self.slot_calls.update(keys)
            self._send(lane, fuzzed.frames, None)
            stats.mutations.update(fuzzed.mutations or ("none",))
            sent += 1
            stats.sent += 1
            if sent % 50 == 0:
                self._receive(0)
        messages, key = self.target.probe(stats.probes)
        stats.probes += 1
        for frames in messages[:-1]:
            self._send(lane, frames, None)
        self._send(lane, messages[-1], key)
        lane.probes_unanswered += 1
        self._probe_sent_s[key] = time.monotonic()

    def _send(self, lane: Lane, frames: Frames, probe_key: Hashable | None) -> None:
        lane.sock.send_multipart([*lane.envelope, *frames], copy=False)
        if self.target.answers_every_message or probe_key is not None:
            lane.awaiting.append(probe_key)

    def _wait(self, condition: Any, what: str) -> None:
        """Receive until ``condition()``; fail if the target dies, or answers no probe or
        call for STALL_S of this wait."""
        waiting_since_s = time.monotonic()
        while not condition():
            self._receive(50)
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(
                    f"{self.target.name} exited with {self.process.returncode} while the fuzz waited for {what} "
                    f"(fuzz seed {self.stats.seed}, {self.stats.sent} messages sent)")
            stalled_s = time.monotonic() - max(self._progress_s, waiting_since_s)
            if stalled_s > STALL_S:
                raise AssertionError(
                    f"{self.target.name} answered no probe or call for {stalled_s:.0f} s while the fuzz waited for "
                    f"{what}; unanswered calls {dict(+self.slot_calls)}, probes "
                    f"{[list(lane.awaiting)[:5] for lane in self.lanes]} (fuzz seed {self.stats.seed}, "
                    f"{self.stats.sent} messages sent)")

    def _receive(self, timeout_ms: int) -> None:
        for sock, _ in self._poller.poll(timeout_ms):
            lane = self._lane_of[id(sock)]
            while True:
                try:
                    frames = sock.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                self._on_answer(lane, frames[len(lane.envelope):])

    def _on_answer(self, lane: Lane, frames: Frames) -> None:
        try:
            message = protocol.decode(frames)
        except protocol.ProtocolError as exc:
            raise AssertionError(f"{self.target.name} sent a malformed message: {exc}") from None
        stats = self.stats
        stats.answers_by_kind[type(message).__name__] += 1
        if type(message) in (protocol.Replies, protocol.Results, protocol.Calls):  # coalesced: one answer per item
            for item in message.items:
                self._on_decoded_answer(lane, item)
            return
        self._on_decoded_answer(lane, message)

    def _on_decoded_answer(self, lane: Lane, message: protocol.Message) -> None:
        self.stats.answers += 1
        self.target.check_answer(message)
        if self.target.answers_every_message:
            if not lane.awaiting:
                raise AssertionError(f"{self.target.name} answered a message nobody sent: {message!r:.200}")
            self._probe_answered(lane, lane.awaiting.popleft(), message)
            return
        key = self.target.answer_key(message)
        if key is OLDEST_PROBE:
            key = lane.awaiting[0] if lane.awaiting else None
        if key is None:
            return
        if self.slot_calls[key] > 0:
            self.slot_calls[key] -= 1
            self._progress_s = time.monotonic()
        elif key in lane.awaiting:
            lane.awaiting.remove(key)
            self._probe_answered(lane, key, message)

    def _probe_answered(self, lane: Lane, key: Hashable | None, message: protocol.Message) -> None:
        if key is None:
            return
        self.target.check_probe(key, message)
        self._progress_s = time.monotonic()
        lane.probes_unanswered -= 1
        latency_ms = (time.monotonic() - self._probe_sent_s.pop(key)) * 1000
        self.stats.probe_latency_max_ms = max(self.stats.probe_latency_max_ms, latency_ms)


def send_oversize(connect: Any, seeds: list[Seed], count: int = OVERSIZE_MESSAGES) -> int:
    """Send ``count`` messages over the receiver's size limit, each on a fresh DEALER from
    ``connect()``; how many the receiver refused by dropping the connection, as it must."""
    refused = 0
    for index in range(count):
        sock = connect()
        monitor = sock.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_DISCONNECTED)
        try:
            sock.send_multipart(oversize_frames(seeds[index % len(seeds)]), copy=False)
            refused += wait_for_disconnect(monitor)
        finally:
            sock.disable_monitor()
            monitor.close()
            sock.close()
    return refused


def wait_for_event(monitor: zmq.Socket, event: int, timeout_s: float = 5.0) -> bool:
    """True once ``monitor`` reports ``event`` (a ``zmq.EVENT_*``) on its socket."""
    deadline_s = time.monotonic() + timeout_s
    while monitor.poll(max(1, int((deadline_s - time.monotonic()) * 1000))):
        if recv_monitor_message(monitor)["event"] == event:
            return True
        if time.monotonic() > deadline_s:
            break
    return False


def wait_for_disconnect(monitor: zmq.Socket, timeout_s: float = 5.0) -> bool:
    """True once ``monitor`` reports its socket's connection dropped."""
    return wait_for_event(monitor, zmq.EVENT_DISCONNECTED, timeout_s)


def dealer(endpoint: str, identity: bytes | None = None) -> zmq.Socket:
    """A plain DEALER for the fuzz: no size limit on what it receives, never blocks on close."""
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.SNDTIMEO, int(STALL_S * 1000))
    if identity is not None:
        sock.setsockopt(zmq.ROUTING_ID, identity)
    sock.connect(endpoint)
    return sock

