"""The batching stage's bookkeeping (broker/batching.py), with an injected clock."""

from __future__ import annotations

from typing import Any, cast

from api.testing import FakeClock
from broker.batching import Batcher, request_batch_outcomes
from broker.calls import Call
from shared import protocol
from shared.events import Event


def call(clock: FakeClock, call_id: int, timeout_s: float, command: str = "GetItem") -> Call:
    return Call(call_id, b"front", call_id, command, "items", clock() + timeout_s, b"", clock(),
                cast(Any, None))


def test_a_batch_closes_when_its_window_ends():
    clock = FakeClock()
    batcher = Batcher(clock)
    batcher.add(call(clock, 1, timeout_s=1.0), "", window_s=0.1, max_batch=10)

    clock.advance(0.09)
    assert batcher.due() == []
    clock.advance(0.01)
    assert [[member.call_id for member in batch.members] for batch in batcher.due()] == [[1]]


def test_a_member_whose_deadline_comes_first_brings_the_close_forward():
    """No call waits in the stage past its own deadline."""
    clock = FakeClock()
    batcher = Batcher(clock)
    batcher.add(call(clock, 1, timeout_s=5.0), "", window_s=1.0, max_batch=10)
    batcher.add(call(clock, 2, timeout_s=0.3), "", window_s=1.0, max_batch=10)

    assert batcher.next_close_s() == clock() + 0.3
    clock.advance(0.3)
    (batch,) = batcher.due()
    assert [member.call_id for member in batch.members] == [1, 2]
    clock.advance(1.0)
    assert batcher.due() == [] and batcher.next_close_s() is None  # the window's own close is no second batch


def test_a_first_member_with_a_deadline_inside_the_window_closes_its_batch_then():
    clock = FakeClock()
    batcher = Batcher(clock)
    batcher.add(call(clock, 1, timeout_s=0.05), "", window_s=1.0, max_batch=10)

    assert batcher.next_close_s() == clock() + 0.05


def test_a_front_batch_counts_each_call_its_own_outcome():
    """A request-scoped batch is counted as its calls (broker/server.py), as a global one is."""
    request = protocol.pack_batch([b"a", b"b", b"c"])
    results = protocol.pack_batch_results([(Event.SUCCESS, b"1"), (Event.FAILURE, b"e"), (Event.BAD_REQUEST, b"e")])
    assert request_batch_outcomes(request, Event.SUCCESS, results) == [Event.SUCCESS, Event.FAILURE,
                                                                        Event.BAD_REQUEST]
    assert request_batch_outcomes(request, Event.TIMEOUT, b"") == [Event.TIMEOUT] * 3
    assert request_batch_outcomes(request, Event.SUCCESS, b"not results") == [Event.FAILURE] * 3
    assert request_batch_outcomes(b"not a batch", Event.WORKER_LOST, b"") == [Event.WORKER_LOST]


def test_a_call_with_a_smaller_max_batch_closes_the_batch_at_its_max():
    """Fronts may disagree for a while (a config rolled out, a runtime setting not yet
    applied everywhere): a batch closes at the smallest max of its members, not the first one's."""
    clock = FakeClock()
    batcher = Batcher(clock)
    assert batcher.add(call(clock, 1, timeout_s=1.0), "", window_s=0.1, max_batch=100) is None
    assert batcher.add(call(clock, 2, timeout_s=1.0), "", window_s=0.1, max_batch=3) is None

    full = batcher.add(call(clock, 3, timeout_s=1.0), "", window_s=0.1, max_batch=100)

    assert full is not None and [member.call_id for member in full.members] == [1, 2, 3]
    assert len(batcher) == 0
