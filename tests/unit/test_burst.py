"""shared/burst.py: the first item of a hub iteration goes at once, the rest of it together."""

from __future__ import annotations

import gevent

from shared import protocol
from shared.burst import Burst
from shared.events import Event


def results(count: int, first: int = 1) -> list[tuple]:
    return [(number, Event.SUCCESS, 1.0, b"v%d" % number) for number in range(first, first + count)]


def make_burst() -> tuple[Burst, list[protocol.Message]]:
    sent: list[protocol.Message] = []
    return Burst(lambda frames: sent.append(protocol.decode(frames)), protocol.result, protocol.results), sent


def test_a_lone_item_goes_at_once_as_a_plain_message():
    burst, sent = make_burst()

    burst.add(results(1)[0])

    assert sent == [protocol.Result(1, Event.SUCCESS, 1.0, b"v1")]


def test_the_items_after_the_first_in_one_iteration_go_together_once_the_hub_has_run():
    burst, sent = make_burst()

    for item in results(5):
        burst.add(item)
    assert len(sent) == 1  # the first, at once; the others wait for the iteration's end
    gevent.sleep(0)

    assert sent == [protocol.Result(1, Event.SUCCESS, 1.0, b"v1"),
                    protocol.Results(tuple(protocol.Result(*item) for item in results(4, first=2)))]


def test_greenlets_running_in_one_iteration_share_messages_of_coalesce_items():
    burst, sent = make_burst()
    count = 1 + protocol.COALESCE_ITEMS + 5

    gevent.joinall([gevent.spawn(burst.add, item) for item in results(count)])

    assert [type(message) for message in sent] == [protocol.Result, protocol.Results, protocol.Results]
    assert [len(message.items) for message in sent[1:]] == [protocol.COALESCE_ITEMS, 5]
    assert [result.call_id for result in [sent[0], *sent[1].items, *sent[2].items]] == list(range(1, count + 1))


def test_the_next_iteration_opens_a_new_burst():
    burst, sent = make_burst()
    burst.add(results(1)[0])
    gevent.sleep(0)

    burst.add(results(1, first=2)[0])

    assert [result.call_id for result in sent] == [1, 2]


def test_flush_sends_what_is_held_at_once_so_another_message_can_follow_in_order():
    burst, sent = make_burst()
    for item in results(3):
        burst.add(item)

    burst.flush()

    assert len(sent) == 2 and [result.call_id for result in sent[1].items] == [2, 3]
    gevent.sleep(0)  # the scheduled flush finds nothing left
    assert len(sent) == 2


def test_another_message_goes_after_what_is_held():
    burst, sent = make_burst()
    for item in results(3):
        burst.add(item)

    burst.send_after(protocol.signal(protocol.Kind.GOODBYE))

    assert [type(message) for message in sent] == [protocol.Result, protocol.Results, protocol.Signal]
    assert [result.call_id for result in sent[1].items] == [2, 3]


def test_clear_forgets_what_is_held():
    burst, sent = make_burst()
    for item in results(3):
        burst.add(item)

    burst.clear()
    gevent.sleep(0)

    assert [message.call_id for message in sent] == [1]
