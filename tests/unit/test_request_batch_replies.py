"""How a request-scoped batch's reply reaches its members (api/collapsing.py)."""

from __future__ import annotations

from gevent.event import AsyncResult

from api.collapsing import BatchMember, batch_results
from api.command import Command
from shared import protocol
from shared.events import Event


class GetItem(Command):
    dependency = "items"
    collapse = "request"
    item_id: int

    @classmethod
    def run_batch(cls, calls: list) -> list:
        return [call.item_id for call in calls]


def member(item_id: int) -> BatchMember:
    return BatchMember(GetItem(item_id), AsyncResult(), deadline_s=1e9)


def test_a_member_whose_caller_left_after_the_batch_was_sent_is_not_answered():
    members = [member(7), member(8)]
    members[0].left = True  # its caller was killed while the batch ran
    results = [(Event.SUCCESS, protocol.encode_value(7)), (Event.SUCCESS, protocol.encode_value(8))]

    batch_results(members, [0, 1], protocol.Reply(1, Event.SUCCESS, 2.0, b""), results)

    assert not members[0].waiter.ready()
    assert protocol.decode_value(members[1].waiter.get().payload) == 8


def test_a_member_waits_until_its_caller_leaves_or_its_deadline_passes():
    waiting = BatchMember(GetItem(1), AsyncResult(), deadline_s=10.0)
    assert waiting.waits(now_s=9.0)
    assert not waiting.waits(now_s=10.0)
    waiting.left = True
    assert not waiting.waits(now_s=9.0)
