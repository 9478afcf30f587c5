"""Across hosts, and only for those who belong: seawall over tcp:// with CURVE, on hosts
made of network namespaces (tests/multihost/netns.py).

Each host has its own directory: its config, its key pairs and the public keys it trusts,
as an operator would lay them out. Brokers, workers and HTTP fronts run in their hosts;
the test drives a front over HTTP through a probe process inside the front's host
(tests/multihost/http_probe.py), and reads a broker's status through its ``ipc://``
control socket, a file on the shared file system. Where namespaces cannot be made the
tests fail, saying why: they never skip.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from api.testing import to_toml
from broker.control_client import ControlError, control_request
from shared.config import load
from shared.security import generate_key_pair
from multihost.netns import Host, NamespacesUnavailable, Network, check_available, remove_leftovers

TESTS_DIR = Path(__file__).resolve().parent.parent
REPO_DIR = TESTS_DIR.parent
PROBE = Path(__file__).resolve().parent / "http_probe.py"

#: The broker's tcp ports on its host (each namespace has its own port space).
BROKER_PORTS = {"front": 5555, "back": 5556, "events": 5557}
#: Where fronts listen in their host.
FRONT_PORT = 8080
#: Every command's deadline in these tests.
TIMEOUT_S = 1.0
#: What a caller may wait beyond its deadline when a link or a broker fails.
FALLBACK_MARGIN_S = 1.0
#: How long a process may take to start and be seen (2 shared cores, imports of gevent).
START_TIMEOUT_S = 20.0
#: Key pairs the tests hand out; "intruder" is never admitted by any broker.
KEY_NAMES = ("broker", "broker-a2", "worker", "front", "intruder")

#: The endpoint module the fronts serve: a value, or the failure that made it fall back.
ENDPOINTS = '''
from api import compose
from sample_commands import Echo, WorkerPid


def _answer(call):
    answered = compose.map(call, lambda value: {"value": value})
    return compose.catch(answered, lambda error: {"fallback": str(getattr(error, "failure", type(error).__name__))})


def echo(request):
    return _answer(Echo(text=request.query.get("text", "")).observe())


def worker(request):
    return _answer(WorkerPid().observe())


ROUTES = {"echo": echo, "worker": worker}
'''


def wait_until(condition: Callable[[], Any], what: str, timeout_s: float = START_TIMEOUT_S,
               logs: Callable[[], str] = lambda: "") -> Any:
    """Poll ``condition`` until it returns something true; that value."""
    deadline_s = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline_s:
            raise TimeoutError(f"timed out after {timeout_s:g} s waiting for {what}\n{logs()}")
        time.sleep(0.05)


class Probe:
    """An HTTP client inside a host: ``get(path)`` -> {"status", "body", "elapsed_ms"}."""

    def __init__(self, host: Host, port: int = FRONT_PORT) -> None:
        self.host = host
        self.base = f"http://127.0.0.1:{port}"
        self.process = host.start(f"probe-{port}", [sys.executable, str(PROBE)], pipes=True)

    def get(self, path: str) -> dict[str, Any]:
        self.process.stdin.write(f"{self.base}{path}\n".encode())
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the probe in {self.host.name} exited ({self.process.poll()})")
        return json.loads(line)


class Deployment:
    """seawall on a network of hosts: key pairs, a config per host, processes by role."""

    def __init__(self, network: Network) -> None:
        self.network = network
        self.keystore = network.directory / "keystore"  # where an operator made the pairs
        for name in KEY_NAMES:
            generate_key_pair(self.keystore, name)
        self.env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            [str(TESTS_DIR), str(REPO_DIR), *filter(None, [os.environ.get("PYTHONPATH")])]))
        #: processes by "HOST/LOG_NAME"; one that exits unasked fails the wait at once
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self._stopped: set[int] = set()

    def host(self, name: str) -> Host:
        return self.network.hosts.get(name) or self.network.add_host(name)

    # -- files on a host -----------------------------------------------------------------

    def install_keys(self, host: Host, pairs: tuple[str, ...] = (), public: tuple[str, ...] = (),
                     allowed: tuple[str, ...] = ()) -> None:
        """Copy key pairs, public keys and admitted keys into the host's keys directories."""
        keys_dir, allowed_dir = host.directory / "keys", host.directory / "keys" / "allowed"
        allowed_dir.mkdir(parents=True, exist_ok=True)
        for name in pairs:
            shutil.copy2(self.keystore / f"{name}.key_secret", keys_dir)
        for name in (*pairs, *public):
            shutil.copy2(self.keystore / f"{name}.key", keys_dir)
        for name in allowed:
            shutil.copy2(self.keystore / f"{name}.key", allowed_dir)

    def write_config(self, host: Host, file_name: str, broker: Host, **sections: dict[str, Any]) -> Path:
        """A config for processes on ``host`` whose broker is the one on ``broker``."""
        document: dict[str, Any] = {
            "run_dir": "run",
            "broker": {"heartbeat_s": 0.2},
            "endpoints": {name: f"tcp://{broker.address}:{port}" for name, port in BROKER_PORTS.items()},
            "defaults": {"timeout_s": TIMEOUT_S},
            "security": {"keys_dir": "keys", "allowed_keys_dir": "keys/allowed"},
        }
        for name, table in sections.items():
            document[name] = {**document.get(name, {}), **table}
        path = host.directory / file_name
        path.write_text(to_toml(document))
        load(path)  # a bad config fails here, naming the key, not in a process log
        return path

    # -- processes -----------------------------------------------------------------------

    def start(self, host: Host, log_name: str, config: Path, *args: str) -> subprocess.Popen[bytes]:
        process = host.start(log_name, [sys.executable, *args, "--config", str(config)], env=self.env)
        self.processes[f"{host.name}/{log_name}"] = process
        return process

    def stop(self, host: Host, process: subprocess.Popen[bytes]) -> None:
        self._stopped.add(process.pid)
        host.stop(process)

    def start_broker(self, host: Host, key: str = "broker") -> subprocess.Popen[bytes]:
        """A broker on ``host`` admitting workers and fronts (never the intruder)."""
        self.install_keys(host, pairs=(key,), allowed=("worker", "front"))
        config = self.write_config(host, f"broker-{host.name}.toml", host, security={"broker_key": key})
        return self.start(host, f"broker-{host.name}", config, "-m", "broker")

    def start_workers(self, host: Host, broker: Host, broker_key: str = "broker",
                      slots: int = 4) -> subprocess.Popen[bytes]:
        self.install_keys(host, pairs=("worker",), public=(broker_key,))
        config = self.write_config(host, f"workers-for-{broker.name}.toml", broker,
                                   security={"broker_key": broker_key, "worker_key": "worker"})
        return self.start(host, f"workers-for-{broker.name}", config, "-m", "workers", "--dependency", "sample",
                          "--commands", "sample_commands", "--slots", str(slots))

    def start_front(self, host: Host, broker: Host, port: int = FRONT_PORT, key: str = "front",
                    other_brokers: dict[str, tuple[Host, str]] | None = None) -> Probe:
        """An HTTP front on ``host`` using ``broker`` (and ``other_brokers``: name -> (host, key))."""
        endpoints = host.directory / "endpoints"
        endpoints.mkdir(exist_ok=True)
        (endpoints / "mh.py").write_text(ENDPOINTS)
        links = other_brokers or {}
        self.install_keys(host, pairs=(key,), public=("broker", *(key for _, key in links.values())))
        sections: dict[str, Any] = {
            "front": {"listen": f"0.0.0.0:{port}", "endpoints": "endpoints"},
            "security": {"front_key": key},
        }
        if links:
            sections["brokers"] = {
                name: {"front": f"tcp://{other.address}:{BROKER_PORTS['front']}",
                       "events": f"tcp://{other.address}:{BROKER_PORTS['events']}", "key": broker_key}
                for name, (other, broker_key) in links.items()
            }
        config = self.write_config(host, f"front-{port}.toml", broker, **sections)
        self.start(host, f"front-{port}", config, "-m", "api")
        return Probe(host, port)

    # -- observing -----------------------------------------------------------------------

    def wait_until(self, condition: Callable[[], Any], what: str, timeout_s: float = START_TIMEOUT_S) -> Any:
        """Poll ``condition``; fail at once, with the logs, if a process exits unasked."""
        def unless_one_exited() -> Any:
            exited = {name: process.returncode for name, process in self.processes.items()
                      if process.poll() is not None and process.pid not in self._stopped}
            if exited:
                raise RuntimeError(f"waiting for {what}, processes exited: {exited}\n{self.logs()}")
            return condition()

        return wait_until(unless_one_exited, what, timeout_s, self.logs)

    def status(self, broker: Host) -> dict[str, Any] | None:
        """The broker's status over its ipc:// control socket, or None while it is not answering."""
        try:
            return control_request(f"ipc://{broker.directory}/run/control", "status", timeout_s=0.5)
        except ControlError:
            return None

    def wait_for_workers(self, broker: Host, count: int = 1) -> list[int]:
        """Wait until ``count`` workers of pool "sample" registered with ``broker``; their pids."""
        def registered() -> list[int] | None:
            pool = (self.status(broker) or {}).get("pools", {}).get("sample")
            if pool and pool["workers"] == count:
                return [worker["pid"] for worker in pool["worker_list"]]
            return None

        return self.wait_until(registered, f"{count} workers to register with the broker on {broker.name}")

    def wait_for_answers(self, probe: Probe, path: str = "/mh/echo?text=hi") -> dict[str, Any]:
        """Wait until the front answers ``path`` with a value (not a fallback)."""
        def answered() -> dict[str, Any] | None:
            answer = probe.get(path)
            return answer if answer["status"] == 200 and "value" in answer["body"] else None

        return self.wait_until(answered, f"the front on {probe.host.name} to answer {path} with a value")

    def log_lines(self, host: Host, log_name: str) -> list[dict[str, Any]]:
        lines = []
        for line in (host.directory / f"{log_name}.log").read_text(errors="replace").splitlines():
            try:
                lines.append(json.loads(line))
            except ValueError:
                continue
        return lines

    def metrics_heard(self, host: Host, log_name: str = f"front-{FRONT_PORT}") -> set[int]:
        """Pids of the brokers whose metrics the front on ``host`` has heard (ids are HOST:PID)."""
        return {int(line["broker"].rpartition(":")[2]) for line in self.log_lines(host, log_name)
                if line.get("event") == "metrics_source_heard"}

    def logs(self, tail_lines: int = 15) -> str:
        parts = []
        for log_path in sorted(self.network.directory.glob("*/*.log")):
            lines = log_path.read_text(errors="replace").splitlines()[-tail_lines:]
            parts.append(f"--- {log_path.parent.name}/{log_path.name} ---\n" + "\n".join(lines))
        return "\n".join(parts)


def namespaces_or_fail(make: Callable[[], Any]) -> Any:
    """``make()``, or fail the test saying why namespaces cannot be made: never a skip."""
    try:
        return make()
    except NamespacesUnavailable as exc:
        pytest.fail(f"the multi-host tests need network namespaces and cannot make them: {exc}", pytrace=False)


@pytest.fixture
def network(tmp_path: Path) -> Iterator[Network]:
    with namespaces_or_fail(lambda: Network(tmp_path)) as network:
        yield network


@pytest.fixture
def deployment(network: Network) -> Deployment:
    return Deployment(network)


@pytest.fixture
def one_broker(deployment: Deployment) -> tuple[Deployment, Probe]:
    """Broker on host a, workers on host b, an HTTP front on host c, answering."""
    a, b, c = deployment.host("a"), deployment.host("b"), deployment.host("c")
    deployment.start_broker(a)
    deployment.start_workers(b, a)
    probe = deployment.start_front(c, a)
    deployment.wait_for_workers(a)
    deployment.wait_for_answers(probe)
    return deployment, probe


def test_a_front_on_one_host_runs_commands_in_workers_on_another_through_a_broker_on_a_third(one_broker):
    deployment, probe = one_broker
    answer = probe.get("/mh/echo?text=across")
    assert answer["status"] == 200 and answer["body"] == {"value": "ACROSS"}
    worker_pids = deployment.wait_for_workers(deployment.host("a"))
    assert probe.get("/mh/worker")["body"] == {"value": worker_pids[0]}  # ip netns exec keeps the pid


def test_a_front_whose_key_is_not_admitted_gets_nothing_and_is_logged(one_broker):
    deployment, _ = one_broker
    a, c = deployment.host("a"), deployment.host("c")
    intruder = deployment.start_front(c, a, port=FRONT_PORT + 1, key="intruder")
    deployment.wait_until(lambda: intruder.get("/")["status"] == 200, "the intruder's front to listen")
    answers = [intruder.get("/mh/echo?text=let-me-in") for _ in range(3)]
    for answer in answers:
        assert answer["status"] == 200 and "fallback" in answer["body"], answer
        assert answer["elapsed_ms"] <= (TIMEOUT_S + FALLBACK_MARGIN_S) * 1000, answer
    intruder_key = (deployment.keystore / "intruder.key").read_text().split('public-key = "')[1][:40]
    # Waits for the intruder's own line: not every peer_refused line is it (a status call that
    # timed out mid-handshake is logged too, with key "-").
    deployment.wait_until(lambda: [line for line in deployment.log_lines(a, "broker-a")
                                   if line.get("event") == "peer_refused" and line["key"] == intruder_key
                                   and line["address"] == c.address],
                          "the broker to log peer_refused with the intruder's key and address", timeout_s=5)
    print(f"intruder's calls answered by fallbacks in {[a['elapsed_ms'] for a in answers]} ms")


def test_a_cut_link_makes_the_front_fall_back_fast_and_restoring_it_recovers(one_broker):
    deployment, probe = one_broker
    c = deployment.host("c")
    c.link_down()
    cut_s = time.monotonic()
    answers = [probe.get("/mh/echo?text=cut") for _ in range(4)]
    for answer in answers:
        assert answer["status"] == 200 and "fallback" in answer["body"], answer
        assert answer["elapsed_ms"] <= (TIMEOUT_S + FALLBACK_MARGIN_S) * 1000, answer
    assert answers[-1]["elapsed_ms"] < 300, f"once the broker is known gone, calls fail fast: {answers}"
    c.link_up()
    restored_s = time.monotonic()
    deployment.wait_for_answers(probe, "/mh/echo?text=back")
    recovered_s = time.monotonic() - restored_s
    assert recovered_s < 8.0
    print(f"link cut for {restored_s - cut_s:.2f} s: fallbacks in {[a['elapsed_ms'] for a in answers]} ms; "
          f"answers again {recovered_s:.2f} s after the link came back")


def test_with_two_brokers_stopping_one_moves_new_calls_to_the_other(deployment):
    a, a2, b, c = (deployment.host(name) for name in ("a", "a2", "b", "c"))
    broker_a = deployment.start_broker(a)
    broker_a2 = deployment.start_broker(a2, key="broker-a2")
    deployment.start_workers(b, a)
    deployment.start_workers(a2, a2, broker_key="broker-a2")
    probe = deployment.start_front(c, a, other_brokers={"a2": (a2, "broker-a2")})
    [pid_behind_a] = deployment.wait_for_workers(a)
    [pid_behind_a2] = deployment.wait_for_workers(a2)
    deployment.wait_until(lambda: probe.get("/mh/worker").get("body") == {"value": pid_behind_a},
                          "calls to go to broker a (with room alike, the front's first listed)")
    deployment.wait_until(lambda: {broker_a.pid, broker_a2.pid} <= deployment.metrics_heard(c),
                          "the front's metrics feed to hear both brokers, each trusted with its own key")

    stopped_s = time.monotonic()
    deployment.stop(a, broker_a)  # SIGTERM, and wait for it to exit
    answers = [probe.get("/mh/worker")]
    while answers[-1].get("body") != {"value": pid_behind_a2}:
        assert time.monotonic() - stopped_s < TIMEOUT_S + FALLBACK_MARGIN_S + 2, answers
        answers.append(probe.get("/mh/worker"))
    moved_s = time.monotonic() - stopped_s
    after = [probe.get("/mh/worker") for _ in range(10)]

    assert all(answer["elapsed_ms"] <= (TIMEOUT_S + FALLBACK_MARGIN_S) * 1000 for answer in answers + after), answers
    assert [answer["body"] for answer in after] == [{"value": pid_behind_a2}] * 10, after
    assert pid_behind_a not in [answer["body"].get("value") for answer in after]
    print(f"calls moved to broker a2 {moved_s:.2f} s after broker a was told to stop; on the way: "
          f"{[(a['body'], a['elapsed_ms']) for a in answers[:-1]]}")


def test_namespaces_left_by_a_crashed_run_are_deleted_with_what_runs_in_them():
    namespaces_or_fail(check_available)
    gone = subprocess.Popen([sys.executable, "-c", ""])
    gone.wait()  # a pid no process has now: the crashed run's
    leftover = f"swmh{gone.pid}n1-a"
    subprocess.run(["ip", "netns", "add", leftover], check=True, capture_output=True)
    orphan = subprocess.Popen(["ip", "netns", "exec", leftover, "sleep", "60"])
    try:
        wait_until(lambda: str(orphan.pid) in subprocess.run(["ip", "netns", "pids", leftover], capture_output=True,
                                                             text=True).stdout.split(),
                   "the orphan to be in its namespace", timeout_s=5)
        assert leftover in remove_leftovers()
        assert orphan.wait(5) == -signal.SIGKILL
        listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        assert leftover not in listed
    finally:
        if orphan.poll() is None:
            orphan.kill()
            orphan.wait()
        subprocess.run(["ip", "netns", "del", leftover], capture_output=True)
