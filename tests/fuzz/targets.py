"""The four receivers the fuzz attacks, as the pump sees them: how each is probed, what
answers its probes must get, and which valid messages it must not be sent.

Screened out are only *valid orders that a receiver obeys by design*: a worker told by
its broker to inject faults or to die does so, and an operator on the control socket
may change any setting. Seeds and hostile values name decoy commands and pools, so such
an order could only reach the real traffic by chance; the screen makes that certain.
"""

from __future__ import annotations

from typing import Any, Hashable

from fuzz.messages import Frames
from fuzz.pump import OLDEST_PROBE, PROBES_IN_FLIGHT, Target
from shared import protocol
from shared.events import Event
from workers.chaos import ChaosSettings

#: Call ids of probes: far from the seeds' small ids and the hostile values' round ones.
PROBE_BASE_ID = 7_000_000_000_000_000
#: A pool nobody serves and no config names: the broker answers a call to it at once.
PROBE_POOL = "fuzzprobe"
PROBE_COMMAND = "FuzzProbe"
#: A collapsible call held longer than this is not counted as holding a slot (the
#: batching stage holds it, not a worker).
HELD_WINDOW_MS = 50.0

_CALLS = (protocol.Request, protocol.BatchRequest, protocol.Collapsible)
_COALESCED = (protocol.Requests, protocol.Calls, protocol.Replies, protocol.Results)


def _each(message: protocol.Message | None) -> tuple[Any, ...]:
    """The messages ``message`` stands for: its items if it is coalesced, else itself."""
    return message.items if type(message) in _COALESCED else (message,)


class FrontTarget(Target):
    """The broker's front socket; a probe is a call to a pool nobody serves."""

    name = "front"
    max_slot_calls = 3

    def __init__(self, real_pool: str, steady_command: str) -> None:
        self.real_pool = real_pool
        self.steady_command = steady_command

    def admit(self, message: protocol.Message | None) -> bool:
        return all(type(call) not in _CALLS or call.command != self.steady_command for call in _each(message))

    def slot_keys(self, message: protocol.Message) -> list[Hashable]:
        return [call.call_id for call in _each(message) if type(call) in _CALLS and call.dependency == self.real_pool
                and not (type(call) is protocol.Collapsible and call.window_ms > HELD_WINDOW_MS)]

    def probe(self, number: int) -> tuple[list[Frames], Hashable]:
        call_id = PROBE_BASE_ID + number
        return [protocol.request(call_id, PROBE_COMMAND, PROBE_POOL, 1000, protocol.encode_value({}))], call_id

    def answer_key(self, message: protocol.Message) -> Any:
        return message.call_id if type(message) is protocol.Reply else None

    def check_probe(self, key: Hashable, message: protocol.Message) -> None:
        # Rejected: no such pool; once the probe's breaker opens on that, short-circuited.
        assert message.outcome in (Event.THREAD_POOL_REJECTED, Event.SHORT_CIRCUITED), message


class BackTarget(Target):
    """The broker's back socket; a probe registers the lane as a worker and drains it."""

    name = "back"

    def __init__(self, real_pools: set[str]) -> None:
        self.real_pools = real_pools

    def admit(self, message: protocol.Message | None) -> bool:
        if type(message) is protocol.Signal and message.kind is protocol.Kind.DRAINING:
            return False  # its DRAIN_ACK would be taken for a probe's
        # Anyone on the back socket may register as a worker of any pool; none of the
        # fuzz's READYs names a real pool, and this makes sure.
        return type(message) is not protocol.Ready or message.dependency not in self.real_pools

    def probe(self, number: int) -> tuple[list[Frames], Hashable]:
        ready = protocol.ready(PROBE_POOL, 1, 4_000_000 + number % 1000, {})
        return [ready, protocol.signal(protocol.Kind.DRAINING)], ("probe", number)

    def answer_key(self, message: protocol.Message) -> Any:
        if type(message) is protocol.Signal and message.kind is protocol.Kind.DRAIN_ACK:
            return OLDEST_PROBE
        return None

    def check_probe(self, key: Hashable, message: protocol.Message) -> None:
        assert type(message) is protocol.Signal and message.kind is protocol.Kind.DRAIN_ACK, message


class ControlTarget(Target):
    """The broker's control socket: every message gets one answer, in order; a probe is a ping."""

    name = "control"
    answers_every_message = True

    def __init__(self, protected_names: tuple[str, ...]) -> None:
        self.protected_names = protected_names

    def admit(self, message: protocol.Message | None) -> bool:
        if type(message) is not protocol.Control:
            return True
        shown = repr(message.arguments)
        return not any(name in shown for name in self.protected_names)

    def probe(self, number: int) -> tuple[list[Frames], Hashable]:
        return [protocol.control("ping")], ("ping", number)

    def check_answer(self, message: protocol.Message) -> None:
        assert type(message) is protocol.ControlReply, message

    def check_probe(self, key: Hashable, message: protocol.Message) -> None:
        assert type(message) is protocol.ControlReply and message.ok and message.data == {"pong": True}, message


class WorkerTarget(Target):
    """A worker, with the test as its broker; a probe is a real Echo call, whose value is checked."""

    name = "worker"

    def __init__(self, slots: int) -> None:
        self.max_slot_calls = slots - PROBES_IN_FLIGHT  # a probe always finds a free slot
        self.expected: dict[int, str] = {}

    def admit(self, message: protocol.Message | None) -> bool:
        if type(message) is not protocol.Chaos:
            return True
        if message.kill:
            return False  # "die now": obeyed by design
        try:
            settings = ChaosSettings.from_wire(message.settings)
        except ValueError:
            return True  # the worker refuses it too
        return settings == ChaosSettings()  # only a "clear": real faults would fail the probes by design

    def slot_keys(self, message: protocol.Message) -> list[Hashable]:
        return [call.call_id for call in _each(message) if type(call) in (protocol.Call, protocol.Batch)]

    def probe(self, number: int) -> tuple[list[Frames], Hashable]:
        call_id = PROBE_BASE_ID + number
        text = f"probe {number}"
        self.expected[call_id] = text.upper()
        return [protocol.call(call_id, "Echo", 2000, protocol.encode_value({"text": text}))], call_id

    def answer_key(self, message: protocol.Message) -> Any:
        return message.call_id if type(message) is protocol.Result else None

    def check_probe(self, key: Hashable, message: protocol.Message) -> None:
        expected = self.expected.pop(key)
        assert message.outcome is Event.SUCCESS, (message.outcome, protocol.decode_value(message.payload))
        assert protocol.decode_value(message.payload) == expected

