"""Pool bookkeeping: free slots as a FIFO across workers, the bounded queue, draining."""

from __future__ import annotations

import pytest

from broker.calls import Call
from broker.pool import Pool, WorkerRecord
from shared.events import Event


def worker(identity: bytes, slots: int = 1, pid: int = 100, joined_s: float = 0.0) -> WorkerRecord:
    return WorkerRecord(
        identity=identity,
        pool="ratings",
        slots=slots,
        pid=pid,
        commands=frozenset({"GetRatings"}),
        joined_s=joined_s,
        last_seen_s=joined_s,
    )


def queued_call(call_id: int) -> Call:
    # record (the command's breaker and metrics) is never read by the pool
    return Call(call_id, b"front", call_id, "GetRatings", "ratings", 10.0, b"", 0.0, record=None)


def take_identities(pool: Pool, count: int) -> list[bytes | None]:
    taken = [pool.take_slot() for _ in range(count)]
    return [w.identity if w is not None else None for w in taken]


# -- free slots ----------------------------------------------------------------------


def test_empty_pool_has_no_free_slot():
    pool = Pool("ratings", queue_size=5)

    assert pool.take_slot() is None
    assert not pool.has_free_slot()


def test_worker_with_n_slots_offers_n():
    pool = Pool("ratings", queue_size=5)
    pool.add_worker(worker(b"A", slots=3))

    assert take_identities(pool, 4) == [b"A", b"A", b"A", None]


def test_worker_offers_only_the_slots_it_is_not_already_using():
    busy_worker = worker(b"A", slots=3)
    busy_worker.held.update({11, 12})
    pool = Pool("ratings", queue_size=5)

    pool.add_worker(busy_worker)

    assert take_identities(pool, 2) == [b"A", None]


def test_take_slot_returns_the_worker_record():
    record = worker(b"A")
    pool = Pool("ratings", queue_size=5)
    pool.add_worker(record)

    assert pool.take_slot() is record


def test_single_slot_workers_are_taken_in_the_order_they_joined():
    pool = Pool("ratings", queue_size=5)
    for identity in (b"A", b"B", b"C"):
        pool.add_worker(worker(identity))

    assert take_identities(pool, 3) == [b"A", b"B", b"C"]


def test_released_slot_goes_to_the_back_of_the_line():
    pool = Pool("ratings", queue_size=5)
    first, second = worker(b"A"), worker(b"B")
    pool.add_worker(first)
    pool.add_worker(second)

    pool.release_slot(pool.take_slot())

    assert take_identities(pool, 2) == [b"B", b"A"]


def test_concurrent_calls_spread_round_robin_across_multi_slot_workers():
    pool = Pool("ratings", queue_size=5)
    pool.add_worker(worker(b"A", slots=2))
    pool.add_worker(worker(b"B", slots=2))

    assert take_identities(pool, 2) == [b"A", b"B"]


def test_joining_worker_interleaves_with_the_free_slots_already_there():
    pool = Pool("ratings", queue_size=5)
    pool.add_worker(worker(b"A", slots=2))
    pool.add_worker(worker(b"B", slots=2))

    pool.add_worker(worker(b"C", slots=1))

    assert take_identities(pool, 6) == [b"A", b"B", b"C", b"A", b"B", None]


@pytest.mark.timeout(2)
def test_worker_can_join_while_another_is_fully_busy():
    pool = Pool("ratings", queue_size=5)
    pool.add_worker(worker(b"A"))
    pool.take_slot().held.add(1)  # as the broker does when it sends the call

    pool.add_worker(worker(b"B"))

    assert take_identities(pool, 2) == [b"B", None]


@pytest.mark.timeout(2)
def test_worker_joining_does_not_give_a_draining_worker_slots_back():
    pool = Pool("ratings", queue_size=5)
    draining = worker(b"A", slots=2)
    pool.add_worker(draining)
    pool.drain_worker(draining)

    pool.add_worker(worker(b"B"))

    assert take_identities(pool, 2) == [b"B", None]


def test_release_makes_a_slot_free_again():
    pool = Pool("ratings", queue_size=5)
    pool.add_worker(worker(b"A"))
    taken = pool.take_slot()

    pool.release_slot(taken)

    assert pool.has_free_slot()
    assert pool.take_slot() is taken


# -- the queue -----------------------------------------------------------------------


def test_queue_has_room_until_queue_size_calls_wait():
    pool = Pool("ratings", queue_size=2)
    pool.queue.append(queued_call(1))
    room_with_one = pool.has_queue_room()

    pool.queue.append(queued_call(2))

    assert room_with_one is True
    assert pool.has_queue_room() is False


def test_queue_size_zero_means_no_queue():
    assert Pool("ratings", queue_size=0).has_queue_room() is False


# -- draining and removal ------------------------------------------------------------


def test_drain_worker_takes_its_free_slots_out_at_once():
    pool = Pool("ratings", queue_size=5)
    draining = worker(b"A", slots=2)
    pool.add_worker(draining)
    pool.add_worker(worker(b"B"))

    pool.drain_worker(draining)

    assert draining.draining is True
    assert take_identities(pool, 2) == [b"B", None]


def test_release_slot_of_a_draining_worker_does_not_return_the_slot():
    pool = Pool("ratings", queue_size=5)
    draining = worker(b"A")
    pool.add_worker(draining)
    pool.take_slot()
    pool.drain_worker(draining)

    pool.release_slot(draining)

    assert not pool.has_free_slot()


def test_draining_worker_leaves_the_pool_capacity():
    pool = Pool("ratings", queue_size=5)
    draining = worker(b"A", slots=3)
    pool.add_worker(draining)
    pool.add_worker(worker(b"B", slots=2))

    pool.drain_worker(draining)

    assert pool.slots == 2


def test_remove_worker_forgets_its_slots():
    pool = Pool("ratings", queue_size=5)
    pool.add_worker(worker(b"A", slots=2))
    pool.add_worker(worker(b"B"))

    pool.remove_worker(b"A")

    assert take_identities(pool, 2) == [b"B", None]
    assert list(pool.workers) == [b"B"]


def test_remove_worker_returns_the_record():
    record = worker(b"A")
    pool = Pool("ratings", queue_size=5)
    pool.add_worker(record)

    assert pool.remove_worker(b"A") is record


def test_remove_unknown_worker_returns_none():
    assert Pool("ratings", queue_size=5).remove_worker(b"nobody") is None


def test_release_slot_of_a_removed_worker_does_not_return_the_slot():
    pool = Pool("ratings", queue_size=5)
    removed = worker(b"A")
    pool.add_worker(removed)
    pool.take_slot()
    pool.remove_worker(b"A")

    pool.release_slot(removed)

    assert not pool.has_free_slot()


def test_release_slot_of_a_stale_record_after_re_registration_does_not_add_a_slot():
    pool = Pool("ratings", queue_size=5)
    old_record = worker(b"A")
    pool.add_worker(old_record)
    pool.take_slot()
    pool.remove_worker(b"A")
    pool.add_worker(worker(b"A"))

    pool.release_slot(old_record)

    assert take_identities(pool, 2) == [b"A", None]


# -- status --------------------------------------------------------------------------


def test_status_counts_workers_slots_busy_and_queue():
    pool = Pool("ratings", queue_size=4, clock=lambda: 25.5)
    first = worker(b"A", slots=3, pid=101, joined_s=10.0)
    first.held.update({1, 2})
    first.calls_served = 7
    draining = worker(b"B", slots=2, pid=102, joined_s=20.0)
    draining.held.add(3)
    pool.add_worker(first)
    pool.add_worker(draining)
    pool.drain_worker(draining)
    pool.queue.append(queued_call(4))
    pool.events.add(Event.SUCCESS, 5)
    pool.events.add(Event.THREAD_POOL_REJECTED)

    status = pool.status(now_s=25.5)

    assert status == {
        "workers": 1,
        "draining": 1,
        "slots": 3,
        "busy": 3,
        "queued": 1,
        "queue_size": 4,
        "chaos": {},
        "events": {"SUCCESS": 5, "THREAD_POOL_REJECTED": 1},
        "worker_list": [
            {"pid": 101, "slots": 3, "busy": 2, "calls_served": 7, "uptime_s": 15.5, "rss_mb": 0.0, "draining": False},
            {"pid": 102, "slots": 2, "busy": 1, "calls_served": 0, "uptime_s": 5.5, "rss_mb": 0.0, "draining": True},
        ],
    }
