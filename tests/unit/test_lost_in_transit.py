"""Calls lost on the way to a worker are found by the beats its STATS echoes, answered
WORKER_LOST and their slots given back (broker/beats.py). In-process, on a Broker that
binds nothing, with a fake clock and an outbox that records what would be sent."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from api.testing import FakeClock
from broker.beats import FIRST_BEAT_BELOW, Beats, lost
from broker.server import Broker
from shared import protocol
from shared.config import parse
from shared.events import Event

WORKER = b"worker-1"
CALLER = b"front-1"
POOL = "sample"
SLOTS = 2


# -- the rule ------------------------------------------------------------------------------


def test_a_broker_counts_its_beats_from_a_random_start_and_knows_only_its_own():
    beats = Beats(random.Random(7))
    other = Beats(random.Random(8))
    assert 0 < beats.first < FIRST_BEAT_BELOW and beats.first != other.first

    sent = [beats.advance() for _ in range(3)]

    assert sent == [beats.first + 1, beats.first + 2, beats.first + 3] and beats.current == sent[-1]
    assert all(beats.sent_by_me(number) for number in sent)
    assert not beats.sent_by_me(0)  # the worker has heard no beat yet
    assert not beats.sent_by_me(beats.first)  # never sent: calls before the first beat carry it
    assert not beats.sent_by_me(beats.current + 1)
    assert not beats.sent_by_me(other.advance())  # a broker's from before a restart


def test_a_call_is_lost_only_if_sent_before_the_beat_heard_and_not_held():
    stamped = [(1, 10), (2, 10), (3, 11), (4, 12)]

    assert lost(stamped, echoed=11, holding={2}) == [1]  # 3 and 4 went after beat 11: maybe on their way
    assert lost(stamped, echoed=13, holding={2}) == [1, 3, 4]
    assert lost(stamped, echoed=10, holding=set()) == []


# -- the broker ----------------------------------------------------------------------------


class RecordingOutbox:
    """Stands in for broker/outbox.py: keeps what the broker would send."""

    held = 0

    def __init__(self) -> None:
        self.calls: list[tuple[bytes, tuple[Any, ...]]] = []
        self.replies: list[tuple[bytes, tuple[Any, ...]]] = []
        self.beats: list[int] = []

    def call(self, worker: bytes, item: tuple[Any, ...]) -> None:
        self.calls.append((worker, item))

    def reply(self, caller: bytes, item: tuple[Any, ...]) -> None:
        self.replies.append((caller, item))

    def to_worker(self, worker: bytes, frames: list[bytes]) -> None:
        message = protocol.decode(frames)
        if type(message) is protocol.Beat:
            self.beats.append(message.number)

    def forget_worker(self, worker: bytes) -> None:
        pass


class Scene:
    """A broker with one worker of SLOTS slots; the test plays the worker and the caller."""

    def __init__(self, tmp_path: Path) -> None:
        self.clock = FakeClock()
        self.broker = Broker(parse({"run_dir": "run", "broker": {"heartbeat_s": 1.0}}, tmp_path), clock=self.clock)
        self.outbox = RecordingOutbox()
        self.broker.outbox = self.outbox  # type: ignore[assignment]
        self.caller_ids = iter(range(1, 1000))
        self.ready()

    def ready(self, running: tuple[int, ...] = ()) -> None:
        self.broker._on_back([WORKER, *protocol.ready(POOL, SLOTS, 4242, {"Echo": {}}, running)])

    def request(self, timeout_ms: int = 5000) -> int:
        """Send one Echo; the broker's id of the call it sent the worker."""
        sent_before = len(self.outbox.calls)
        self.broker._on_front([CALLER, *protocol.request(next(self.caller_ids), "Echo", POOL, timeout_ms,
                                                          protocol.encode_value({"text": "a"}))])
        assert len(self.outbox.calls) == sent_before + 1, "the call was not sent to the worker"
        return self.outbox.calls[-1][1][0]

    def beat(self) -> int:
        """Let a heartbeat interval pass: the broker beats to the worker; that beat's number."""
        self.clock.advance(1.0)
        self.broker._check_liveness(self.clock())
        return self.outbox.beats[-1]

    def stats(self, beat: int, holding: tuple[int, ...]) -> None:
        self.broker._on_back([WORKER, *protocol.stats(30.0, beat, holding)])

    def result(self, call_id: int) -> None:
        self.broker._on_back([WORKER, *protocol.result(call_id, Event.SUCCESS, 1.0, protocol.encode_value("A"))])

    def outcomes(self) -> list[Event]:
        return [item[1] for _, item in self.outbox.replies]

    @property
    def busy(self) -> int:
        return self.broker.pools[POOL].busy


@pytest.fixture
def scene(tmp_path: Path) -> Scene:
    return Scene(tmp_path)


def test_a_call_the_worker_never_got_is_answered_worker_lost_and_its_slot_comes_back(scene):
    lost_call = scene.request()
    beat = scene.beat()
    scene.stats(beat, holding=())

    assert scene.outcomes() == [Event.WORKER_LOST]
    (_, (_, _, _, payload)), = scene.outbox.replies
    assert "lost the call on the way" in protocol.decode_error(payload)[1]
    assert scene.busy == 0 and lost_call not in scene.broker.workers[WORKER].held
    scene.request()  # the freed slot takes the next call
    assert scene.busy == 1


def test_calls_the_worker_holds_or_that_went_after_the_beat_it_heard_are_kept(scene):
    held = scene.request()
    beat = scene.beat()
    after_the_beat = scene.request()
    scene.stats(beat, holding=(held,))

    assert scene.outcomes() == [] and scene.busy == 2
    scene.result(held)
    scene.result(after_the_beat)
    assert scene.outcomes() == [Event.SUCCESS, Event.SUCCESS] and scene.busy == 0


def test_an_echo_of_a_beat_this_broker_never_sent_changes_nothing(scene):
    scene.request()
    scene.beat()
    for echoed in (0, scene.broker.beats.first, scene.broker.beats.current + 1):
        scene.stats(echoed, holding=())

    assert scene.outcomes() == [] and scene.busy == 1


def test_a_call_already_answered_timeout_is_not_answered_again_but_frees_its_slot(scene):
    scene.request(timeout_ms=500)
    scene.clock.advance(0.6)
    scene.broker._expire(scene.clock())
    assert scene.outcomes() == [Event.TIMEOUT] and scene.busy == 1

    scene.stats(scene.beat(), holding=())

    assert scene.outcomes() == [Event.TIMEOUT] and scene.busy == 0


def test_a_ghost_whose_result_was_lost_frees_its_slot_once_a_later_beat_is_echoed(scene):
    beat_before = scene.beat()
    scene.ready(running=(77,))  # registered again while running a call this broker did not send
    assert scene.busy == 1

    scene.stats(beat_before, holding=())  # on another connection, this list may be older than the READY's
    assert scene.busy == 1
    scene.stats(scene.beat(), holding=())

    assert scene.busy == 0 and scene.outcomes() == []


class Lines:
    """Stands in for a module's logger: keeps the events."""

    def __init__(self) -> None:
        self.events: list[str] = []

    def info(self, event: str, **fields: object) -> None:
        self.events.append(event)

    warning = info


def test_a_draining_worker_that_lost_all_it_held_is_logged_drained_once(scene, monkeypatch):
    server_log, membership_log = Lines(), Lines()
    monkeypatch.setattr("broker.server.log", server_log)
    monkeypatch.setattr("broker.membership.log", membership_log)
    scene.request()
    scene.request()
    scene.broker._on_back([WORKER, *protocol.signal(protocol.Kind.DRAINING)])

    scene.stats(scene.beat(), holding=())

    assert scene.outcomes() == [Event.WORKER_LOST, Event.WORKER_LOST] and scene.busy == 0
    assert server_log.events.count("worker_drained") == 1
    assert membership_log.events.count("calls_lost_in_transit") == 1
