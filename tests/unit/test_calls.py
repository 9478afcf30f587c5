"""The broker's call table: ids, lookup, and the deadline heap that expires calls."""

from __future__ import annotations

from broker import calls
from broker.calls import Call, CallTable


def call(call_id: int, deadline_s: float) -> Call:
    return Call(
        call_id=call_id,
        caller=b"front",
        caller_call_id=call_id + 1000,
        command="GetRatings",
        pool="ratings",
        deadline_s=deadline_s,
        payload=b"",
        received_s=0.0,
        record=None,  # the command's breaker and metrics; the table never reads it
    )


def table_of(*calls_in: Call) -> CallTable:
    table = CallTable()
    for each in calls_in:
        table.add(each)
    return table


def ids(calls_out) -> list[int]:
    return [each.call_id for each in calls_out]


# -- ids and lookup ------------------------------------------------------------------


def test_new_ids_count_up_from_one():
    table = CallTable()

    assert [table.new_id() for _ in range(3)] == [1, 2, 3]


def test_added_call_can_be_found_by_id():
    added = call(1, deadline_s=5.0)

    assert table_of(added).get(1) is added


def test_pop_removes_and_returns_the_call():
    added = call(1, deadline_s=5.0)
    table = table_of(added)

    assert table.pop(1) is added
    assert table.get(1) is None and len(table) == 0


def test_pop_of_an_unknown_id_returns_none():
    assert CallTable().pop(99) is None


# -- next_deadline_s -----------------------------------------------------------------


def test_next_deadline_of_an_empty_table_is_none():
    assert CallTable().next_deadline_s() is None


def test_next_deadline_is_the_earliest():
    table = table_of(call(1, 9.0), call(2, 4.0), call(3, 6.0))

    assert table.next_deadline_s() == 4.0


def test_next_deadline_skips_answered_calls():
    earliest = call(1, 4.0)
    table = table_of(earliest, call(2, 6.0))

    earliest.answered = True

    assert table.next_deadline_s() == 6.0


def test_next_deadline_skips_popped_calls():
    table = table_of(call(1, 4.0), call(2, 6.0))

    table.pop(1)

    assert table.next_deadline_s() == 6.0


def test_next_deadline_is_none_when_every_call_is_finished():
    answered = call(1, 4.0)
    table = table_of(answered, call(2, 6.0))
    answered.answered = True
    table.pop(2)

    assert table.next_deadline_s() is None


# -- expired -------------------------------------------------------------------------


def test_expired_yields_calls_past_their_deadline_earliest_first():
    table = table_of(call(1, 3.0), call(2, 1.0), call(3, 2.0), call(4, 8.0))

    assert ids(table.expired(now_s=5.0)) == [2, 3, 1]


def test_call_whose_deadline_is_now_has_expired():
    table = table_of(call(1, 5.0))

    assert ids(table.expired(now_s=5.0)) == [1]


def test_expired_skips_answered_and_popped_calls():
    answered = call(1, 1.0)
    table = table_of(answered, call(2, 2.0), call(3, 3.0))
    answered.answered = True
    table.pop(2)

    assert ids(table.expired(now_s=5.0)) == [3]


def test_expired_leaves_calls_with_later_deadlines():
    table = table_of(call(1, 1.0), call(2, 8.0))

    list(table.expired(now_s=5.0))

    assert table.next_deadline_s() == 8.0


def test_expired_yields_each_call_once():
    table = table_of(call(1, 1.0))
    list(table.expired(now_s=5.0))

    assert ids(table.expired(now_s=6.0)) == []


def test_expired_calls_stay_in_the_table_until_popped():
    table = table_of(call(1, 1.0))

    list(table.expired(now_s=5.0))

    assert table.get(1) is not None


# -- compaction ----------------------------------------------------------------------


def churn(table: CallTable, count: int, first_id: int) -> None:
    """Add and pop ``count`` calls, as a busy broker does, leaving dead heap entries."""
    for call_id in range(first_id, first_id + count):
        table.add(call(call_id, deadline_s=50.0))
        table.pop(call_id)


def test_compaction_keeps_live_calls_in_deadline_order():
    table = table_of(call(1, 30.0), call(2, 10.0), call(3, 20.0))

    churn(table, calls.HEAP_SLACK * 2, first_id=100)

    assert table.next_deadline_s() == 10.0
    assert ids(table.expired(now_s=100.0)) == [2, 3, 1]


def test_compaction_drops_answered_calls_but_keeps_unanswered_ones():
    answered, live = call(1, 10.0), call(2, 20.0)
    table = table_of(answered, live)
    answered.answered = True

    churn(table, calls.HEAP_SLACK * 2, first_id=100)

    assert ids(table.expired(now_s=100.0)) == [2]
    assert table.get(1) is answered


def test_heap_of_deadlines_stays_bounded_under_churn():
    table = table_of(call(1, 10.0))

    churn(table, calls.HEAP_SLACK * 4, first_id=100)

    assert len(table._deadlines) <= 2 * len(table) + calls.HEAP_SLACK + 1
