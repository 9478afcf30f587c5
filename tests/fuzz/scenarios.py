"""Fuzz runs against a real broker or a real worker; the fuzz tests assert on them and
``bench/fuzz_figures.py`` prints their figures.

A broker run starts a broker and two workers of pool "sample" (tests/sample_commands.py),
starts the steady caller (tests/fuzz/steady_caller.py: an Echo call every 5 ms, each
value checked), pumps fuzzed messages into one broker socket from several DEALER
identities, sends a few messages over the socket's size limit, then stops the caller
and asks the broker for its status. A worker run plays the broker itself: it binds the
back endpoint, takes the worker's READY and pumps fuzzed messages at it, with real Echo
calls (whose values are checked) as the probes.
"""

from __future__ import annotations

import json
import pickle
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import zmq

from api.testing import Cluster
from fuzz.messages import Frames, Fuzzer, common_seeds, front_seeds, fuzz_seed, oversize_frames, worker_seeds
from fuzz.pump import Lane, Pump, PumpStats, dealer, send_oversize, wait_for_disconnect, wait_for_event
from fuzz.targets import PROBE_BASE_ID, BackTarget, ControlTarget, FrontTarget, WorkerTarget
from shared import protocol
from shared.config import ensure_run_dir
from shared.events import Event

#: Fuzzed messages thrown at each target.
MESSAGES_PER_TARGET = 100_000
#: The real pool, its workers, and the command of the steady traffic.
REAL_POOL = "sample"
WORKERS = 2
SLOTS = 2
STEADY_COMMAND = "Echo"
#: Slots of the worker under fuzz: two for probes, two for fuzzed calls that happen to be valid.
WORKER_SLOTS = 4
#: DEALER identities the fuzz sends from, per broker socket.
LANES = 3
#: Settings of the cluster: a queue, so a burst of valid fuzzed calls is queued, not rejected;
#: and a steady command that waits out a second of CPU starvation on a busy 2-core machine
#: (what it waited is reported; that it got its value is asserted).
SETTINGS = {"pools": {REAL_POOL: {"queue_size": 16}}, "commands": {STEADY_COMMAND: {"timeout_s": 5.0}}}
BROKER_SOCKETS = ("front", "back", "control")
#: How long a test waits for one answer outside the pump.
ANSWER_TIMEOUT_S = 10.0
TESTS_DIR = Path(__file__).resolve().parent.parent


@dataclass
class FuzzResult:
    stats: PumpStats
    alive: bool
    #: the steady caller's summary (broker runs): calls, correct, other_answers, latencies
    steady: dict[str, Any] = field(default_factory=dict)
    #: the broker's status after the fuzz (None: it did not answer)
    status: dict[str, Any] | None = None
    rss_mb_before: float = 0.0
    rss_mb_after: float = 0.0
    log_bytes: int = 0
    #: worker runs: STATS heartbeats heard during the fuzz, answers to calls it must refuse, its process
    heartbeats: int = 0
    refusals: dict[str, str] = field(default_factory=dict)
    worker: Any = None


def new_cluster(directory: Path) -> Cluster:
    return Cluster(directory, SETTINGS, pythonpath=[TESTS_DIR], heartbeat_s=0.2)


class SteadyCaller:
    """The steady caller process: started and warmed up on creation, summary on stop()."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.directory = cluster.directory / "steady"
        self.directory.mkdir()
        self.process = cluster.start("steady-caller", str(Path(__file__).with_name("steady_caller.py")),
                                     "--out", str(self.directory))
        cluster.wait_until(lambda: (self.directory / "ready").exists() or self.process.poll() is not None,
                           "the steady caller's first correct answer")
        if self.process.poll() is not None:
            raise AssertionError(f"the steady caller exited: {cluster.logs()}")

    def stop(self) -> dict[str, Any]:
        (self.directory / "stop").touch()
        self.process.wait(ANSWER_TIMEOUT_S)
        return json.loads((self.directory / "summary.json").read_text())


def _broker_target(socket_name: str) -> tuple[Any, list]:
    if socket_name == "front":
        return FrontTarget(REAL_POOL, STEADY_COMMAND), front_seeds(REAL_POOL)
    if socket_name == "back":
        return BackTarget({REAL_POOL}), common_seeds()
    return ControlTarget((STEADY_COMMAND, REAL_POOL, "defaults")), common_seeds()


def run_broker_fuzz(cluster: Cluster, socket_name: str, count: int = MESSAGES_PER_TARGET,
                    seed: int | None = None) -> FuzzResult:
    """Fuzz one socket of a fresh cluster's broker while the steady caller calls through it."""
    seed = fuzz_seed() if seed is None else seed
    broker = cluster.start_broker()
    cluster.start_workers(REAL_POOL, "sample_commands", count=WORKERS, slots=SLOTS)
    cluster.wait_for_workers(REAL_POOL, WORKERS)
    steady = SteadyCaller(cluster)
    endpoint = cluster.config.endpoints[socket_name]
    rss_mb_before = _rss_mb(broker.pid)
    target, seeds = _broker_target(socket_name)
    lanes = [Lane(dealer(endpoint, f"fuzz-{socket_name}-{index}".encode())) for index in range(LANES)]
    try:
        stats = Pump(target, lanes, Fuzzer(seeds, seed), broker).run(count)
    finally:
        for lane in lanes:
            lane.sock.close()
    stats.oversize = send_oversize(lambda: dealer(endpoint), seeds)
    result = FuzzResult(stats, alive=broker.poll() is None, rss_mb_before=rss_mb_before)
    result.steady = steady.stop()
    result.status = cluster.status(timeout_s=5.0)
    result.alive = broker.poll() is None
    result.rss_mb_after = _rss_mb(broker.pid) if result.alive else 0.0
    result.log_bytes = (cluster.directory / "broker.log").stat().st_size
    return result


def _rss_mb(pid: int) -> float:
    return psutil.Process(pid).memory_info().rss / 2**20


# -- a worker, with the test as its broker ---------------------------------------------


class FakeBroker:
    """A ROUTER on the back endpoint: the worker under fuzz registers with it."""

    def __init__(self, cluster: Cluster) -> None:
        ensure_run_dir(cluster.config)
        self.sock = zmq.Context.instance().socket(zmq.ROUTER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.monitor = self.sock.get_monitor_socket(zmq.EVENT_ACCEPTED | zmq.EVENT_DISCONNECTED)
        self.sock.bind(cluster.config.endpoints["back"])

    def receive(self, accept: Any, what: str, timeout_s: float = ANSWER_TIMEOUT_S) -> tuple[bytes, Any]:
        """(identity, message) of the first message ``accept(identity, message)`` takes."""
        deadline_s = time.monotonic() + timeout_s
        while time.monotonic() < deadline_s:
            if self.sock.poll(100):
                identity, *frames = self.sock.recv_multipart()
                message = protocol.decode(frames)
                if accept(identity, message):
                    return identity, message
        raise AssertionError(f"the worker sent no {what} within {timeout_s:g} s")

    def call(self, identity: bytes, call_id: int, frames: Frames) -> protocol.Result:
        self.sock.send_multipart([identity, *frames])

        def result_of(message: Any) -> protocol.Result | None:  # alone, or among coalesced RESULTS
            results = message.items if type(message) is protocol.Results else (message,)
            return next((result for result in results
                         if type(result) is protocol.Result and result.call_id == call_id), None)

        return result_of(self.receive(lambda _, message: result_of(message) is not None,
                                      f"RESULT for call {call_id}")[1])

    def send_oversize(self, identity: bytes) -> bool:
        """Send the worker a frame over its size limit; True once its ZeroMQ drops the connection."""
        while self.monitor.poll(0):  # events from before: the worker connecting
            self.monitor.recv_multipart()
        self.sock.send_multipart([identity, *oversize_frames(worker_seeds()[0])], copy=False)
        return wait_for_disconnect(self.monitor)

    def close(self) -> None:
        self.sock.disable_monitor()
        self.monitor.close()
        self.sock.close()


#: Calls a worker of pool "sample" must refuse: other pools' commands, names that are
#: not commands at all, and a pickle where msgpack arguments belong.
REFUSED_CALLS = {
    "FaultyCall": protocol.call(1, "FaultyCall", 1000, protocol.encode_value({})),
    "os.system": protocol.call(1, "os.system", 1000, protocol.encode_value({"command": "true"})),
    "api.command.Command": protocol.call(1, "api.command.Command", 1000, protocol.encode_value({})),
    "Echo with pickled arguments": protocol.call(1, "Echo", 1000, pickle.dumps({"text": "pickled"})),
}


def run_worker_fuzz(cluster: Cluster, count: int = MESSAGES_PER_TARGET, seed: int | None = None) -> FuzzResult:
    """Fuzz a worker of pool "sample" through the back endpoint, the test playing its broker."""
    seed = fuzz_seed() if seed is None else seed
    broker = FakeBroker(cluster)
    try:
        worker = cluster.start_workers(REAL_POOL, "sample_commands", slots=WORKER_SLOTS)[0]
        identity, ready = broker.receive(lambda _, message: type(message) is protocol.Ready, "READY", 15.0)
        assert STEADY_COMMAND in ready.commands and ready.slots == WORKER_SLOTS, ready
        rss_mb_before = _rss_mb(worker.pid)
        lane = Lane(broker.sock, [identity])
        stats = Pump(WorkerTarget(WORKER_SLOTS), [lane], Fuzzer(worker_seeds(), seed), worker).run(count)
        result = FuzzResult(stats, alive=worker.poll() is None, rss_mb_before=rss_mb_before,
                            heartbeats=stats.answers_by_kind["Stats"], worker=worker)
        broker.receive(lambda sender, message: sender == identity and type(message) is protocol.Stats,
                       "heartbeat (STATS) after the fuzz")
        for name, frames in REFUSED_CALLS.items():
            answer = broker.call(identity, 1, frames)
            result.refusals[name] = f"{answer.outcome.value} {protocol.decode_error(answer.payload)[0]}"
        result.rss_mb_after = _rss_mb(worker.pid)
        result.stats.oversize = int(broker.send_oversize(identity))
        result.alive = worker.poll() is None
        result.log_bytes = sum(path.stat().st_size for path in cluster.directory.glob("worker-*.log"))
        return result
    finally:
        broker.close()


#: How long a worker cut off by an oversize message has to connect again.
RECONNECT_TIMEOUT_S = 6.0  # the worker makes its socket again after 10 silent heartbeats (2 s here)


def worker_reconnects_after_oversize(cluster: Cluster) -> bool:
    """Send a worker a frame over its size limit, so ZeroMQ drops the connection: True if
    the worker connects again (under the routing id it keeps), registers and answers a
    call on the new connection."""
    broker = FakeBroker(cluster)
    try:
        cluster.start_workers(REAL_POOL, "sample_commands")
        identity, _ = broker.receive(lambda _, message: type(message) is protocol.Ready, "READY", 15.0)
        assert broker.send_oversize(identity), "the worker took a frame over its size limit"
        if not wait_for_event(broker.monitor, zmq.EVENT_ACCEPTED, RECONNECT_TIMEOUT_S):
            return False
        identity, _ = broker.receive(lambda _, message: type(message) is protocol.Ready, "READY on the new connection")
        call_id = PROBE_BASE_ID - 1
        answer = broker.call(identity, call_id, protocol.call(call_id, "Echo", 2000,
                                                             protocol.encode_value({"text": "again"})))
        return answer.outcome is Event.SUCCESS and protocol.decode_value(answer.payload) == "AGAIN"
    finally:
        broker.close()


def summary_line(result: FuzzResult) -> str:
    stats = result.stats
    return (f"{stats.target}: {stats.sent} messages (seed {stats.seed}) in {stats.elapsed_s:.1f} s = "
            f"{stats.per_second:,.0f}/s; valid {stats.valid}, screened {stats.screened}, probes {stats.probes} "
            f"(max {stats.probe_latency_max_ms:.0f} ms); steady {result.steady}; rss {result.rss_mb_before:.0f} -> "
            f"{result.rss_mb_after:.0f} MB; log {result.log_bytes / 2**20:.1f} MB")
