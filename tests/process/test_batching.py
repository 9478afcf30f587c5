"""The batching stage: bursts of calls collapse into batches, across every front."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import gevent
import pytest

from api import CommandFailed, request_context, spawn
from sample_commands import GetItem, GetItemBatchFails, GetItemByParity, GetItemInRequest, GetItemWrongCount

WINDOW_MS = 100


@pytest.fixture
def cluster(make_cluster):
    collapsers = ("GetItem", "GetItemByParity", "GetItemInRequest", "GetItemWrongCount", "GetItemBatchFails")
    cluster = make_cluster({"commands": {name: {"collapse_window_ms": WINDOW_MS} for name in collapsers}})
    cluster.start_broker()
    cluster.start_workers("sample", "sample_commands", slots=4)
    cluster.wait_for_workers("sample", 1)
    return cluster


@pytest.fixture
def markers(tmp_path):
    directory = tmp_path / "batches"
    directory.mkdir()
    return directory


def batches(markers):
    """The ids of each batch a worker ran, in the order they ran."""
    return [json.loads((markers / name).read_text()) for name in sorted(os.listdir(markers))]


def concurrently(client, commands):
    calls = [gevent.spawn(command.execute, client) for command in commands]
    gevent.joinall(calls)
    return calls


def test_calls_within_one_window_form_one_batch_and_a_later_call_a_new_one(cluster, markers):
    client = cluster.client()
    calls = concurrently(client, [GetItem(item_id=i, marker_dir=str(markers)) for i in range(5)])
    assert [call.value for call in calls] == [{"id": i} for i in range(5)]
    assert GetItem(item_id=9, marker_dir=str(markers)).execute(client) == {"id": 9}
    assert [sorted(batch) for batch in batches(markers)] == [[0, 1, 2, 3, 4], [9]]
    collapser = cluster.status()["commands"]["GetItem"]
    assert collapser["collapser"]["batches"] == 2
    assert collapser["events"]["COLLAPSED"] == 6 and collapser["events"]["SUCCESS"] == 6


def test_max_batch_splits_a_burst(make_cluster, markers):
    cluster = make_cluster({"commands": {"GetItem": {"collapse_window_ms": WINDOW_MS, "collapse_max_batch": 3}}})
    cluster.start_broker()
    cluster.start_workers("sample", "sample_commands", slots=4)
    cluster.wait_for_workers("sample", 1)
    calls = concurrently(cluster.client(), [GetItem(item_id=i, marker_dir=str(markers)) for i in range(7)])
    assert all(call.successful() for call in calls)
    assert sorted(len(batch) for batch in batches(markers)) == [1, 3, 3]


def test_a_call_whose_deadline_comes_before_its_window_closes_times_out_and_never_runs(make_cluster, markers):
    """It leaves the batching stage at its own deadline, answered TIMEOUT like a queued call;
    its batch-mates wait for the window no longer than it does, and go."""
    cluster = make_cluster({"commands": {"GetItem": {"collapse_window_ms": 1000, "timeout_s": 0.3}},
                            "pools": {"sample": {"queue_size": 5}}})
    cluster.start_broker()
    cluster.start_workers("sample", "sample_commands", slots=2)
    cluster.wait_for_workers("sample", 1)
    client = cluster.client()

    started_s = gevent.get_hub().loop.now()
    assert GetItem(item_id=1, marker_dir=str(markers)).execute(client) == "fallback"

    assert gevent.get_hub().loop.now() - started_s < 0.3 + 0.25  # not the 1 s window
    cluster.wait_until(lambda: cluster.status()["commands"]["GetItem"]["events"].get("TIMEOUT") == 1,
                       "the broker to answer it TIMEOUT")
    assert batches(markers) == []  # no batch of it reached a worker
    assert cluster.status()["pools"]["sample"]["busy"] == 0


def test_shards_stay_apart(cluster, markers):
    calls = concurrently(cluster.client(), [GetItemByParity(item_id=i, marker_dir=str(markers)) for i in range(6)])
    assert [call.value for call in calls] == [{"id": i} for i in range(6)]
    assert sorted(sorted(batch) for batch in batches(markers)) == [[0, 2, 4], [1, 3, 5]]


def test_a_failed_item_fails_only_its_own_call(cluster, markers):
    calls = concurrently(cluster.client(), [GetItem(item_id=i, marker_dir=str(markers)) for i in (1, -1, 2)])
    assert [calls[0].value, calls[2].value] == [{"id": 1}, {"id": 2}]
    assert calls[1].value == "fallback"  # GetItem falls back; its error was the item's own
    assert batches(markers) == [[1, -1, 2]]


def test_a_failed_item_without_fallback_names_its_error(cluster):
    class NoFallback(GetItem):
        key = "GetItem"
        fallback = GetItemWrongCount.fallback

    calls = concurrently(cluster.client(), [NoFallback(item_id=i) for i in (1, -1)])
    assert calls[0].value == {"id": 1}
    assert isinstance(calls[1].exception, CommandFailed)
    assert calls[1].exception.cause.type_name == "ValueError" and "no item -1" in str(calls[1].exception)


def test_a_wrong_result_count_fails_each_call_saying_so(cluster):
    calls = concurrently(cluster.client(), [GetItemWrongCount(item_id=i) for i in range(3)])
    for call in calls:
        assert isinstance(call.exception, CommandFailed)
        assert call.exception.cause.type_name == "WrongResultCount"
        assert "returned 2 results for 3 calls" in call.exception.cause.message


def test_a_run_batch_that_raises_fails_every_call_of_the_batch(cluster):
    calls = concurrently(cluster.client(), [GetItemBatchFails(item_id=i) for i in range(3)])
    assert [call.exception.cause.message for call in calls] == ["batch of 3 failed"] * 3


def test_identical_arguments_are_sent_once_and_the_answer_shared(cluster, markers):
    calls = concurrently(cluster.client(), [GetItem(item_id=i, marker_dir=str(markers)) for i in (7, 7, 7, 8)])
    assert [call.value for call in calls] == [{"id": 7}] * 3 + [{"id": 8}]
    assert batches(markers) == [[7, 8]]


def test_request_scope_collapses_within_each_request_and_global_scope_across_them(cluster, markers):
    client = cluster.client()

    def one_request(command_class, ids):
        with request_context():
            calls = [spawn(command_class(item_id=i, marker_dir=str(markers)).execute, client) for i in ids]
            gevent.joinall(calls, raise_error=True)
            return [call.value for call in calls]

    requests = [gevent.spawn(one_request, GetItemInRequest, ids) for ids in ([1, 2, 3], [4, 5, 6])]
    gevent.joinall(requests, raise_error=True)
    assert sorted(sorted(batch) for batch in batches(markers)) == [[1, 2, 3], [4, 5, 6]]
    for path in markers.iterdir():
        path.unlink()
    requests = [gevent.spawn(one_request, GetItem, ids) for ids in ([1, 2, 3], [4, 5, 6])]
    gevent.joinall(requests, raise_error=True)
    assert [request.value for request in requests] == [[{"id": i} for i in ids] for ids in ([1, 2, 3], [4, 5, 6])]
    assert [sorted(batch) for batch in batches(markers)] == [[1, 2, 3, 4, 5, 6]]


def test_request_scope_max_batch_splits_a_burst_in_one_request(make_cluster, markers):
    """Calls queued in one go all join before the batch's sender runs: a full batch must
    close at once, not when that greenlet runs."""
    cluster = make_cluster({"commands": {"GetItemInRequest": {"collapse_window_ms": WINDOW_MS,
                                                              "collapse_max_batch": 3}}})
    cluster.start_broker()
    cluster.start_workers("sample", "sample_commands", slots=4)
    cluster.wait_for_workers("sample", 1)
    client = cluster.client()
    with request_context():
        futures = [GetItemInRequest(item_id=i, marker_dir=str(markers)).queue(client) for i in range(7)]
        gevent.joinall(futures, raise_error=True)
    assert [future.value for future in futures] == [{"id": i} for i in range(7)]
    assert sorted(len(batch) for batch in batches(markers)) == [1, 3, 3]


def test_request_scope_counts_each_call_as_global_scope_does(cluster, markers):
    """Failing items must count as failures whichever scope collapsed them: else a
    request-scoped collapser's breaker never opens on them."""
    client = cluster.client()
    ids = [-1, -2, -3, 4]
    for command_class in (GetItem, GetItemInRequest):
        with request_context():
            calls = [spawn(command_class(item_id=i, marker_dir=str(markers)).execute, client) for i in ids]
            gevent.joinall(calls, raise_error=True)
        assert [call.value for call in calls] == ["fallback"] * 3 + [{"id": 4}]
    commands = cluster.status()["commands"]
    for name in ("GetItem", "GetItemInRequest"):
        assert commands[name]["events"]["COLLAPSED"] == 4, (name, commands[name])
        assert commands[name]["events"]["FAILURE"] == 3 and commands[name]["events"]["SUCCESS"] == 1, name
        assert commands[name]["error_pct"] == 75.0 and commands[name]["collapser"]["batches"] == 1, name


def test_request_scope_outside_a_request_context_is_a_batch_of_one(cluster, markers):
    assert GetItemInRequest(item_id=3, marker_dir=str(markers)).execute(cluster.client()) == {"id": 3}
    assert batches(markers) == [[3]]


def test_calls_from_two_front_processes_collapse_into_one_batch(make_cluster, markers):
    cluster = make_cluster({"commands": {"GetItem": {"collapse_window_ms": 500}}})
    cluster.start_broker()
    cluster.start_workers("sample", "sample_commands", slots=4)
    cluster.wait_for_workers("sample", 1)
    driver = os.path.join(os.path.dirname(__file__), "..", "front_driver.py")
    fronts = [cluster.start(f"front-{n}", driver, pipes=True) for n in (1, 2)]
    try:
        for front in fronts:  # connect both first, so the burst is not a connection race
            front.stdin.write(b'{"command": "Echo", "arguments": {"text": "w"}}\n')
            front.stdin.flush()
            assert json.loads(front.stdout.readline()) == [{"value": "W"}]
        for n, front in enumerate(fronts):
            request = {"command": "GetItem", "arguments": {"item_id": n, "marker_dir": str(markers)}, "count": 3}
            front.stdin.write((json.dumps(request) + "\n").encode())
            front.stdin.flush()
        answers = [json.loads(front.stdout.readline()) for front in fronts]
    finally:
        for front in fronts:
            cluster.stop_process(front)
            front.stdin.close()
            front.stdout.close()
    assert answers == [[{"value": {"id": 0}}] * 3, [{"value": {"id": 1}}] * 3]
    assert batches(markers) == [[0, 1]] or batches(markers) == [[1, 0]]  # identical calls sent once


def test_an_open_breaker_short_circuits_a_collapsible_call(cluster, markers):
    result = subprocess.run([sys.executable, "-m", "broker.cli", "--config", str(cluster.config_path),
                             "breaker", "open", "GetItem"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    client = cluster.client()
    cluster.wait_until(lambda: GetItem(item_id=1, marker_dir=str(markers)).execute(client) == "fallback",
                       "the breaker to short-circuit", timeout_s=3)
    assert batches(markers) == []


def test_request_scope_leaves_out_a_caller_killed_or_given_up_before_its_batch_closes(cluster, markers):
    """A caller gone before the window closes (its greenlet killed, or its own Timeout)
    takes no worker's time: its batch goes without it, and its batch-mates are answered."""
    client = cluster.client()

    def gives_up(item_id):
        with gevent.Timeout(WINDOW_MS / 1000 / 4, False):  # the caller's own, not the command's timeout_s
            GetItemInRequest(item_id=item_id, marker_dir=str(markers)).execute(client)

    with request_context():
        kept = [spawn(GetItemInRequest(item_id=i, marker_dir=str(markers)).execute, client) for i in (1, 2)]
        killed = spawn(GetItemInRequest(item_id=3, marker_dir=str(markers)).execute, client)
        gave_up = spawn(gives_up, 4)
        gevent.sleep(0)  # every call has joined the batch, whose window is open
        killed.kill()
        gave_up.join()
        gevent.joinall(kept, raise_error=True)

    assert [call.value for call in kept] == [{"id": 1}, {"id": 2}]
    assert batches(markers) == [[1, 2]]


def test_request_scope_sends_nothing_when_every_caller_of_a_batch_is_gone(cluster, markers):
    client = cluster.client()
    with request_context():
        callers = [spawn(GetItemInRequest(item_id=i, marker_dir=str(markers)).execute, client) for i in (1, 2)]
        gevent.sleep(0)  # both joined the batch
        gevent.killall(callers)
        gevent.sleep(3 * WINDOW_MS / 1000)  # past the window: a batch sent then would run before the next
        assert GetItemInRequest(item_id=9, marker_dir=str(markers)).execute(client) == {"id": 9}

    assert batches(markers) == [[9]]
    assert cluster.status()["commands"]["GetItemInRequest"]["events"]["COLLAPSED"] == 1


def test_request_scope_sends_a_batch_whose_first_caller_timed_out_without_it(make_cluster, markers):
    """A call that timed out within a long window leaves its batch: the calls that joined
    later, with time left, still go (before, the earliest deadline having passed, none did)."""
    cluster = make_cluster({"commands": {"GetItemInRequest": {"collapse_window_ms": 1200, "timeout_s": 1.0}}})
    cluster.start_broker()
    cluster.start_workers("sample", "sample_commands", slots=2)
    cluster.wait_for_workers("sample", 1)
    client = cluster.client()
    with request_context():
        first = spawn(GetItemInRequest(item_id=1, marker_dir=str(markers)).execute, client)
        gevent.sleep(0.8)
        later = spawn(GetItemInRequest(item_id=2, marker_dir=str(markers)).execute, client)  # 1.0 s left at 0.8 s
        gevent.joinall([first, later], raise_error=True)

    assert first.value == "fallback"  # its own timeout, at 1.0 s, before the window closed at 1.2 s
    assert later.value == {"id": 2}
    assert batches(markers) == [[2]]
