"""Faults in workers: calls that will not stop, workers that die, recycling, chaos."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import gevent
import zmq

from api import CommandError, CommandFailed, WorkerLost
from fuzz.scenarios import FakeBroker
from sample_commands import Echo, Sleep, SleepWithFallback
from shared import protocol
from shared.events import Event
from workers.exit_codes import EXIT_HUNG_CALL, EXIT_RECYCLED

#: How far past its timeout a caller may get its answer in these tests (noisy machines).
TIMEOUT_MARGIN_S = 0.25
GRACE_S = 0.5


def _seawall(cluster, *args):
    result = subprocess.run([sys.executable, "-m", "broker.cli", "--config", str(cluster.config_path), *args],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture
def cluster(make_cluster):
    cluster = make_cluster({
        "pools": {"sample": {"hung_call_grace_s": GRACE_S, "queue_size": 10}},
        "commands": {"SleepWithFallback": {"timeout_s": 0.3}, "Echo": {"timeout_s": 0.3},
                     # Sleep's call must outlive the `seawall chaos kill` CLI's start (over 1 s, the
                     # default timeout, on a loaded machine): it then ends WORKER_LOST, never TIMEOUT
                     "Sleep": {"timeout_s": 10.0}},
    })
    cluster.start_broker()
    cluster.start_workers("sample", "sample_commands", slots=2)
    cluster.wait_for_workers("sample", 1)
    return cluster


def test_a_call_that_will_not_stop_ends_its_worker_with_the_hung_call_exit_code(cluster):
    (worker,) = [p for p in cluster.processes if "workers" in p.args]
    _seawall(cluster, "chaos", "hang", "sample")
    started_s = time.monotonic()
    assert SleepWithFallback(seconds=0.0).execute(client=cluster.client()) == "from fallback"
    assert time.monotonic() - started_s <= 0.3 + TIMEOUT_MARGIN_S
    assert worker.wait(timeout=0.3 + GRACE_S + 5) == EXIT_HUNG_CALL
    (ended,) = [json.loads(line) for line in (cluster.directory / "worker-sample.log").read_text().splitlines()
                if '"hung_call_ended_worker"' in line]
    assert "in inject" in ended["stack"] and "_blocking_sleep(HANG_S)" in ended["stack"]  # where it hung
    cluster.wait_until(lambda: cluster.status()["pools"]["sample"]["workers"] == 0, "the broker to see it gone")
    assert cluster.status()["commands"]["SleepWithFallback"]["events"] == {"TIMEOUT": 1}


def test_chaos_kill_loses_the_calls_the_worker_held(cluster):
    future = Sleep(seconds=5.0).queue(client=cluster.client())
    cluster.wait_until(lambda: cluster.status()["pools"]["sample"]["busy"] == 1, "the call to run")
    _seawall(cluster, "chaos", "kill", "sample")
    with pytest.raises(WorkerLost):
        future.get(timeout=5)


def test_chaos_latency_makes_calls_time_out_until_cleared(cluster):
    client = cluster.client()
    _seawall(cluster, "chaos", "latency", "sample", "1000")
    cluster.wait_until(lambda: cluster.status()["pools"]["sample"]["chaos"], "chaos to be set")
    assert SleepWithFallback(seconds=0.0).execute(client=client) == "from fallback"
    _seawall(cluster, "chaos", "clear")
    cluster.wait_until(lambda: SleepWithFallback(seconds=0.0).execute(client=client) != "from fallback",
                       "calls to succeed again", timeout_s=5)


def test_chaos_errors_fail_calls_with_the_injected_error(cluster):
    _seawall(cluster, "chaos", "errors", "sample", "100")
    with pytest.raises(CommandFailed) as caught:
        Echo(text="x").execute(client=cluster.client())
    assert caught.value.cause.type_name == "ChaosError"


def test_worker_recycles_after_max_calls_and_exits_with_the_recycled_code(make_cluster):
    cluster = make_cluster({"pools": {"sample": {"max_calls": 3}}})
    cluster.start_broker()
    (worker,) = cluster.start_workers("sample", "sample_commands")
    cluster.wait_for_workers("sample", 1)
    client = cluster.client()
    assert [Echo(text=str(i)).execute(client=client) for i in range(3)] == ["0", "1", "2"]
    assert worker.wait(timeout=5) == EXIT_RECYCLED


def test_fronts_fail_fast_while_the_broker_is_down_and_recover_when_it_is_back(make_cluster):
    cluster = make_cluster({"commands": {"SleepWithFallback": {"timeout_s": 5.0}}})
    broker = cluster.start_broker()
    cluster.start_workers("sample", "sample_commands", slots=2)
    cluster.wait_for_workers("sample", 1)
    client = cluster.client()
    assert Echo(text="up").execute(client=client) == "UP"
    in_flight = SleepWithFallback(seconds=3.0).queue(client=client)
    cluster.wait_until(lambda: cluster.status()["pools"]["sample"]["busy"] == 1, "the call to run")

    cluster.stop_process(broker, sig=9)
    killed_s = time.monotonic()
    assert in_flight.get(timeout=5) == "from fallback"
    assert time.monotonic() - killed_s < 1.0 + TIMEOUT_MARGIN_S  # not its 5 s timeout
    started_s = time.monotonic()
    assert SleepWithFallback(seconds=0.0).execute(client=client) == "from fallback"
    assert time.monotonic() - started_s < TIMEOUT_MARGIN_S
    assert client.broker_down

    cluster.start_broker()
    cluster.wait_for_workers("sample", 1)
    cluster.wait_until(lambda: not client.broker_down, "the front to hear the broker again", timeout_s=5)
    assert Echo(text="back").execute(client=client) == "BACK"


#: Beats of the next test: short, so the worker makes its socket again 1 s into a stall.
STALL_HEARTBEAT_S = 0.1
#: How long the broker stays stopped: past the worker's 10 silent beats, when it makes its
#: socket again (workers/worker.py RECONNECT_INTERVALS).
BROKER_STALL_S = 1.5


def test_calls_lost_on_the_way_to_a_worker_that_made_its_socket_again_give_their_slots_back(make_cluster):
    """A broker stopped past its worker's patience sends the calls that waited for it to
    the worker: in most runs to its old connection, closed meanwhile, which drops them.
    Without numbered beats each lost call held a slot for ever, and with both slots lost
    every later call timed out in the queue (whether ZeroMQ still routes a call to the
    old connection is a race, so the next test loses a call on purpose)."""
    cluster = make_cluster({"commands": {"Echo": {"timeout_s": 3.0}}}, heartbeat_s=STALL_HEARTBEAT_S)
    broker = cluster.start_broker()
    cluster.start_workers("sample", "sample_commands", slots=2)
    cluster.wait_for_workers("sample", 1)
    client = cluster.client()
    assert Echo(text="before").execute(client=client) == "BEFORE"

    os.kill(broker.pid, signal.SIGSTOP)
    try:
        stalled = [Echo(text=str(number)).queue(client=client) for number in range(2)]  # wait in the broker's socket
        gevent.sleep(BROKER_STALL_S)
    finally:
        os.kill(broker.pid, signal.SIGCONT)
    for future in stalled:  # the front gave up on the silent broker: outcome unknown
        with pytest.raises(CommandError):
            future.get(timeout=5)

    cluster.wait_until(lambda: cluster.status()["pools"]["sample"]["busy"] == 0, "the calls' slots to come back",
                       timeout_s=5)
    cluster.wait_until(lambda: not client.broker_down, "the front to hear the broker again", timeout_s=10)
    assert [Echo(text=str(number)).execute(client=client) for number in range(3)] == ["0", "1", "2"]
    worker_lines = (cluster.directory / "worker-sample.log").read_text()
    assert '"socket_remade": true' in worker_lines, "the stall was too short to test anything"


def test_a_call_a_worker_says_it_never_got_is_answered_worker_lost_at_once_and_its_slot_reused(make_cluster):
    """The test is the worker: it registers, takes a call and drops it, then answers the
    broker's next beat saying it holds nothing, as a worker the call never reached would."""
    # Beats of 1 s: the test, a slow worker, stays well within the broker's liveness limit.
    cluster = make_cluster({"commands": {"Echo": {"timeout_s": 10.0}}}, heartbeat_s=1.0)
    cluster.start_broker()
    worker = FakeWorker(cluster.config.endpoints["back"])
    try:
        # Registered before the call goes, or the call may reach the broker first and be rejected.
        cluster.wait_for_workers("sample", 1)
        client = cluster.client()
        sent_s = time.monotonic()
        future = Echo(text="lost").queue(client=client)
        worker.receive(protocol.Call)
        worker.send(protocol.stats(20.0, worker.receive(protocol.Beat).number, ()))

        with pytest.raises(WorkerLost) as caught:
            future.get(timeout=5)
        assert time.monotonic() - sent_s < 5.0  # a beat or two, not its 10 s timeout
        assert "lost the call on the way" in caught.value.cause.message
        reused = Echo(text="again").queue(client=client)
        call = worker.receive(protocol.Call)
        worker.send(protocol.result(call.call_id, Event.SUCCESS, 0.1, protocol.encode_value("AGAIN")))
        assert reused.get(timeout=5) == "AGAIN"
    finally:
        worker.close()


#: Longer than the worker's 3 silent beats (0.6 s at the suite's 0.2 s), shorter than its
#: 10 (when it would make a new socket, and register on it at once).
WORKER_STOP_S = 1.2


def test_a_worker_back_from_a_stop_registers_only_when_asked_after_the_calls_that_waited_for_it(make_cluster):
    """Its READY must list every call it holds. One sent on its own when it wakes could
    go before it has read a call waiting in its socket; the broker's RESET comes after
    that call on the same connection. The test plays the broker."""
    cluster = make_cluster()
    broker = FakeBroker(cluster)
    try:
        (worker,) = cluster.start_workers("sample", "sample_commands")
        identity, _ = broker.receive(lambda _, message: type(message) is protocol.Ready, "READY", 15.0)
        broker.sock.send_multipart([identity, *protocol.beat(1)])  # heard now: it will not make a new socket
        broker.receive(lambda _, message: type(message) is protocol.Stats and message.beat == 1, "STATS echoing it")
        os.kill(worker.pid, signal.SIGSTOP)
        try:
            arguments = protocol.encode_value({"seconds": 1.0, "marker_dir": "", "label": ""})
            waiting = protocol.call(41, "Sleep", 5000, arguments)
            broker.sock.send_multipart([identity, *waiting])
            time.sleep(WORKER_STOP_S)
        finally:
            os.kill(worker.pid, signal.SIGCONT)
        # Awake, it beats (STATS) and says the broker is silent, but registers only when told.
        broker.receive(lambda _, message: type(message) is protocol.Stats, "STATS after SIGCONT")
        cluster.wait_until(lambda: '"broker_silent"' in (cluster.directory / "worker-sample.log").read_text(),
                           "the worker to find the broker silent", timeout_s=5)
        broker.sock.send_multipart([identity, *protocol.signal(protocol.Kind.RESET)])
        _, ready = broker.receive(lambda _, message: type(message) is protocol.Ready, "READY after RESET")
        assert ready.running == (41,)
    finally:
        broker.close()


class FakeWorker:
    """A DEALER that registers in pool ``sample`` with one slot, and keeps what it hears."""

    def __init__(self, back_address: str) -> None:
        self.sock = zmq.Context.instance().socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(back_address)
        self.send(protocol.ready("sample", 1, os.getpid(), {"Echo": {}}))

    def send(self, frames: list[bytes]) -> None:
        self.sock.send_multipart(frames)

    def receive(self, kind: type, timeout_s: float = 5.0):
        """The first message of ``kind`` (a CALL among coalesced CALLS too); others are skipped.

        Polls without blocking, letting gevent run between polls: the client whose calls
        the test waits for sends them from its greenlets."""
        deadline_s = time.monotonic() + timeout_s
        while time.monotonic() < deadline_s:
            if not self.sock.poll(0):
                gevent.sleep(0.005)
                continue
            message = protocol.decode(self.sock.recv_multipart())
            items = message.items if type(message) is protocol.Calls else (message,)
            for item in items:
                if type(item) is kind:
                    return item
        raise AssertionError(f"the broker sent no {kind.__name__} within {timeout_s:g} s")

    def close(self) -> None:
        self.sock.close()


def test_a_front_that_dies_mid_call_is_forgotten_and_its_late_reply_dropped(make_cluster):
    cluster = make_cluster({"commands": {"Sleep": {"timeout_s": 5.0}}})
    cluster.start_broker()
    cluster.start_workers("sample", "sample_commands", slots=2)
    cluster.wait_for_workers("sample", 1)
    driver = str(Path(__file__).resolve().parent.parent / "front_driver.py")
    front = cluster.start("front", driver, pipes=True)
    try:
        front.stdin.write(b'{"command": "Sleep", "arguments": {"seconds": 1.0}}\n')
        front.stdin.flush()
        cluster.wait_until(lambda: cluster.status()["pools"]["sample"]["busy"] == 1, "the front's call to run")
        cluster.stop_process(front, sig=9)
    finally:
        front.stdin.close()
        front.stdout.close()
    cluster.wait_until(lambda: cluster.status()["calls_in_flight"] == 0, "the call to finish", timeout_s=5)
    status = cluster.status()
    assert status["pools"]["sample"]["busy"] == 0 and status["commands"]["Sleep"]["events"] == {"SUCCESS": 1}
    assert Echo(text="still serving").execute(client=cluster.client()) == "STILL SERVING"


def test_worker_recycles_after_the_call_that_took_it_over_max_rss_mb(make_cluster):
    cluster = make_cluster({"pools": {"sample": {"max_rss_mb": 1.0}}})  # any Python process is over 1 MB
    cluster.start_broker()
    (worker,) = cluster.start_workers("sample", "sample_commands")
    cluster.wait_for_workers("sample", 1)
    assert Echo(text="one").execute(client=cluster.client()) == "ONE"  # the call finishes first
    assert worker.wait(timeout=5) == EXIT_RECYCLED
    assert "max_rss_mb" in (cluster.directory / "worker-sample.log").read_text()


def _answers(client) -> bool:
    try:
        return Echo(text="a").execute(client=client) == "A"
    except CommandError:
        return False


def test_chaos_ends_with_the_broker_that_set_it(cluster):
    """A restarted broker knows of no chaos, so its workers must inject none: they clear
    theirs when they register again, or `status` would hide a latency monkey left on."""
    client = cluster.client()
    _seawall(cluster, "chaos", "errors", "sample", "100")
    cluster.wait_until(lambda: cluster.status()["pools"]["sample"]["chaos"], "chaos to be set")
    with pytest.raises(CommandFailed, match="ChaosError"):
        Echo(text="a").execute(client=client)

    (broker,) = [process for process in cluster.processes if process.args[1:3] == ["-m", "broker"]]
    cluster.stop_process(broker)
    cluster.start_broker()
    cluster.wait_for_workers("sample", 1)

    cluster.wait_until(lambda: _answers(client), "calls to succeed through the new broker", timeout_s=10)
    assert cluster.status()["pools"]["sample"]["chaos"] == {}
    cleared = [json.loads(line) for line in (cluster.directory / "worker-sample.log").read_text().splitlines()
               if '"chaos_cleared"' in line]
    assert [entry.get("reason") for entry in cleared] == ["registering with the broker again"]
