"""The isolated command path, end to end: real broker, real workers, real sockets."""

from __future__ import annotations

import os
import signal
import time

import gevent
import pytest

from api import BadRequest, Command, CommandFailed, CommandTimeout, Rejected, WorkerLost
from sample_commands import Cancelled, Echo, Fail, FailWithFallback, Invalid, Sleep, SleepWithFallback

#: How far past its timeout a caller may get its answer in these tests (noisy machines).
TIMEOUT_MARGIN_S = 0.25


class NotServed(Command):
    """A command of pool "sample" that the sample workers do not define."""

    dependency = "sample"


class NoPool(Command):
    dependency = "nobody-serves-this"


@pytest.fixture
def cluster(make_cluster):
    cluster = make_cluster()
    cluster.start_broker()
    cluster.start_workers("sample", "sample_commands", count=1, slots=4)
    cluster.wait_for_workers("sample", 1)
    return cluster


def _pool(cluster, name="sample"):
    return cluster.status()["pools"][name]


def test_success_returns_the_workers_value(cluster):
    assert Echo(text="hello").execute(client=cluster.client()) == "HELLO"


def test_queue_returns_a_future_with_the_value(cluster):
    future = Echo(text="later").queue(client=cluster.client())
    assert future.get(timeout=5) == "LATER"


def test_failure_falls_back(cluster):
    assert FailWithFallback(message="down").execute(client=cluster.client()) == "from fallback"


def test_failure_without_fallback_names_the_remote_exception(cluster):
    with pytest.raises(CommandFailed) as caught:
        Fail(message="backend down").execute(client=cluster.client())
    assert caught.value.cause.type_name == "ValueError"
    assert caught.value.cause.message == "backend down"
    assert "ValueError: backend down" in str(caught.value)
    assert caught.value.command == "Fail" and caught.value.failure == "FAILURE"


def test_bad_request_passes_through_without_fallback(cluster):
    with pytest.raises(BadRequest) as caught:
        Invalid().execute(client=cluster.client())
    assert "user_id must be positive" in str(caught.value)
    assert caught.value.command == "Invalid"


def test_unknown_command_is_an_error_reply_and_the_worker_keeps_serving(cluster):
    with pytest.raises(CommandFailed) as caught:
        NotServed().execute(client=cluster.client())
    assert caught.value.cause.type_name == "UnknownCommand"
    assert "NotServed" in caught.value.cause.message
    assert Echo(text="still here").execute(client=cluster.client()) == "STILL HERE"


def test_call_to_a_pool_nobody_serves_is_rejected_at_once(cluster):
    started_s = time.monotonic()
    with pytest.raises(Rejected) as caught:
        NoPool().execute(client=cluster.client())
    assert time.monotonic() - started_s < TIMEOUT_MARGIN_S
    assert caught.value.failure == "THREAD_POOL_REJECTED"
    assert "nobody-serves-this" in str(caught.value)


def test_timeout_falls_back_within_the_timeout_plus_margin(make_cluster):
    cluster = make_cluster({"commands": {"SleepWithFallback": {"timeout_s": 0.3}}})
    cluster.start_broker()
    cluster.start_workers("sample", "sample_commands", slots=2)
    cluster.wait_for_workers("sample", 1)
    started_s = time.monotonic()
    value = SleepWithFallback(seconds=2.0).execute(client=cluster.client())
    elapsed_s = time.monotonic() - started_s
    assert value == "from fallback"
    assert 0.3 <= elapsed_s <= 0.3 + TIMEOUT_MARGIN_S


def test_timeout_without_fallback_raises_command_timeout(make_cluster):
    cluster = make_cluster({"commands": {"Sleep": {"timeout_s": 0.2}}})
    cluster.start_broker()
    cluster.start_workers("sample", "sample_commands", slots=2)
    cluster.wait_for_workers("sample", 1)
    with pytest.raises(CommandTimeout) as caught:
        Sleep(seconds=2.0).execute(client=cluster.client())
    assert caught.value.failure == "TIMEOUT" and caught.value.dependency == "sample"


@pytest.fixture
def one_slot_one_queued(make_cluster):
    """A pool of one worker with one slot and a queue of one."""
    cluster = make_cluster({"pools": {"sample": {"queue_size": 1}}})
    cluster.start_broker()
    cluster.start_workers("sample", "sample_commands", slots=1)
    cluster.wait_for_workers("sample", 1)
    return cluster


def test_full_pool_and_queue_reject_the_next_call_at_once(one_slot_one_queued):
    cluster = one_slot_one_queued
    client = cluster.client()
    running = Sleep(seconds=0.6).queue(client=client)
    queued = Sleep(seconds=0.0).queue(client=client)
    cluster.wait_until(lambda: _pool(cluster)["busy"] == 1 and _pool(cluster)["queued"] == 1,
                       "one call running and one queued")
    started_s = time.monotonic()
    with pytest.raises(Rejected) as caught:
        Sleep(seconds=0.0).execute(client=client)
    assert time.monotonic() - started_s < TIMEOUT_MARGIN_S
    assert caught.value.failure == "THREAD_POOL_REJECTED"
    assert "is full" in str(caught.value)
    assert isinstance(running.get(timeout=5), int) and isinstance(queued.get(timeout=5), int)


def test_a_base_exception_from_run_fails_its_call_and_the_slot_serves_on(one_slot_one_queued):
    """asyncio's CancelledError is no Exception: it once ended the worker's only slot."""
    client = one_slot_one_queued.client()
    with pytest.raises(CommandFailed, match="CancelledError: the loop was cancelled"):
        Cancelled().execute(client=client)

    assert [Echo(text=str(n)).execute(client=client) for n in range(3)] == ["0", "1", "2"]
    assert _pool(one_slot_one_queued)["busy"] == 0


def test_queued_call_whose_deadline_passes_never_runs(one_slot_one_queued, tmp_path):
    cluster = one_slot_one_queued
    client = cluster.client()
    markers = tmp_path / "markers"
    markers.mkdir()

    class ShortSleep(SleepWithFallback):
        key = "SleepWithFallback"
        timeout_s = 0.3

    running = Sleep(seconds=0.7, marker_dir=str(markers), label="running").queue(client=client)
    cluster.wait_until(lambda: _pool(cluster)["busy"] == 1, "the first call to run")
    assert ShortSleep(seconds=0.0, marker_dir=str(markers), label="queued").execute(client=client) == "from fallback"
    running.get(timeout=5)
    # FIFO: a call sent after the expired one runs after it would have.
    Sleep(seconds=0.0, marker_dir=str(markers), label="after").execute(client=client)
    labels = sorted(name.split("-")[1] for name in os.listdir(markers))
    assert labels == ["after", "running"]
    assert _pool(cluster)["events"].get("TIMEOUT") == 1
    expired = cluster.status()["commands"]["SleepWithFallback"]
    assert expired["events"].get("TIMEOUT") == 1
    assert expired["p50_ms"] == 0  # it never ran: no execution latency (its 300 ms were spent queued)


def test_kill_9_of_a_worker_mid_call_is_worker_lost_within_three_heartbeats(make_cluster):
    heartbeat_s = 0.2
    cluster = make_cluster({"commands": {"Sleep": {"timeout_s": 10.0}}}, heartbeat_s=heartbeat_s)
    cluster.start_broker()
    cluster.start_workers("sample", "sample_commands", slots=1)
    cluster.wait_for_workers("sample", 1)
    future = Sleep(seconds=8.0).queue(client=cluster.client())
    cluster.wait_until(lambda: _pool(cluster)["busy"] == 1, "the call to run")
    worker_pid = _pool(cluster)["worker_list"][0]["pid"]
    os.kill(worker_pid, signal.SIGKILL)
    killed_s = time.monotonic()
    with pytest.raises(WorkerLost) as caught:
        future.get(timeout=5)
    assert time.monotonic() - killed_s <= 3 * heartbeat_s + TIMEOUT_MARGIN_S
    assert caught.value.failure == "WORKER_LOST"
    assert str(worker_pid) in str(caught.value)
    assert _pool(cluster)["workers"] == 0


def test_a_thousand_concurrent_callers_each_get_their_own_answer(make_cluster):
    cluster = make_cluster({"pools": {"sample": {"queue_size": 1000}}})
    cluster.start_broker()
    cluster.start_workers("sample", "sample_commands", count=2, slots=50)
    cluster.wait_for_workers("sample", 2)
    client = cluster.client()
    callers = [gevent.spawn(Echo(text=f"caller {i}").execute, client) for i in range(1000)]
    gevent.joinall(callers, timeout=30, raise_error=True)
    assert [caller.value for caller in callers] == [f"CALLER {i}" for i in range(1000)]
    assert client.pending_calls == 0


def test_sigterm_drains_the_worker_which_finishes_its_call_and_exits_0(make_cluster):
    cluster = make_cluster({"commands": {"Sleep": {"timeout_s": 5.0}}})
    cluster.start_broker()
    (worker,) = cluster.start_workers("sample", "sample_commands", slots=1)
    cluster.wait_for_workers("sample", 1)
    future = Sleep(seconds=1.0).queue(client=cluster.client())
    cluster.wait_until(lambda: _pool(cluster)["busy"] == 1, "the call to run")
    worker.send_signal(signal.SIGTERM)
    cluster.wait_until(lambda: _pool(cluster)["slots"] == 0, "the draining worker's slots to leave the pool")
    assert future.get(timeout=5) == worker.pid
    assert worker.wait(timeout=5) == 0
    cluster.wait_until(lambda: _pool(cluster)["workers"] == 0 and _pool(cluster)["draining"] == 0,
                       "the worker to say goodbye")
    assert _pool(cluster)["events"].get("WORKER_LOST") is None


def test_a_caller_that_forks_right_after_a_reply_serves_remote_calls_in_both_processes(cluster):
    """The reply switches straight to its caller from the hub's read loop: a fork there
    left that loop to resume in the child on the parent's socket, where libzmq answers
    EINTR for ever, and the child's hub spun (no call, no timeout ever returned)."""
    client = cluster.client()
    assert Echo(text="before").execute(client) == "BEFORE"
    read_end, write_end = os.pipe()
    child = os.fork()  # right after the reply: still inside the hub's read loop
    if child == 0:  # pragma: no cover - the child's answer travels through the pipe
        answers = b""
        try:
            answers = ",".join(Echo(text=f"child {n}").execute(client) for n in range(3)).encode()
        finally:
            os.write(write_end, answers or b"-")
            os._exit(0)
    os.close(write_end)
    try:
        ready = gevent.get_hub().loop.io(read_end, 1)
        with gevent.Timeout(10, AssertionError("the forked child did not answer within 10 s")):
            gevent.get_hub().wait(ready)
        assert os.read(read_end, 200) == b"CHILD 0,CHILD 1,CHILD 2"
        assert Echo(text="parent").execute(client) == "PARENT"
    finally:
        os.close(read_end)
        try:
            if os.waitpid(child, os.WNOHANG) == (0, 0):  # still running: it hung
                os.kill(child, signal.SIGKILL)
                os.waitpid(child, 0)
        except ChildProcessError:  # already reaped (gevent's SIGCHLD watcher, where installed)
            pass
