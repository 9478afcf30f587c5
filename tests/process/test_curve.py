"""CURVE on tcp:// endpoints: only peers whose public key the broker admits are served."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest
import zmq

from api import Client, CommandError, ShortCircuited
from api.testing import free_port
from sample_commands import Echo
from shared import protocol
from shared.config import load
from shared.security import generate_key_pair


def _tcp_cluster(make_cluster, name="cluster"):
    ports = {socket: free_port() for socket in ("front", "back", "events", "control")}
    cluster = make_cluster({"endpoints": {socket: f"tcp://127.0.0.1:{port}" for socket, port in ports.items()}},
                           name=name)
    keys_dir = cluster.directory / "keys"
    for key in ("broker", "front", "worker", "cli"):
        generate_key_pair(keys_dir, key)
        if key != "broker":
            (keys_dir / "allowed").mkdir(exist_ok=True)
            shutil.copy(keys_dir / f"{key}.key", keys_dir / "allowed" / f"{key}.key")
    return cluster


@pytest.fixture
def cluster(make_cluster):
    cluster = _tcp_cluster(make_cluster)
    cluster.start_broker()
    cluster.start_workers("sample", "sample_commands")
    cluster.wait_for_workers("sample", 1)
    return cluster


def test_admitted_peers_are_served_over_curve(cluster):
    assert Echo(text="secret").execute(client=cluster.client()) == "SECRET"
    assert cluster.status()["pools"]["sample"]["workers"] == 1  # the CLI's key is admitted too


def test_a_front_with_an_unknown_key_gets_nothing_and_is_logged(cluster):
    generate_key_pair(cluster.directory / "keys", "intruder")
    config_path = cluster.directory / "intruder.toml"
    config_path.write_text(cluster.config_path.read_text() + '\n[security]\nfront_key = "intruder"\n')
    intruder = Client(load(config_path))
    try:
        with pytest.raises(CommandError):  # no answer: lost when the silent broker is called down
            Echo(text="let me in").execute(client=intruder)
        with pytest.raises(ShortCircuited, match="unreachable"):
            Echo(text="let me in").execute(client=intruder)
    finally:
        intruder.close()
    intruder_key = (cluster.directory / "keys" / "intruder.key").read_text().split('public-key = "')[1][:40]

    def refusal_names_the_key() -> bool:
        # Not merely the first peer_refused line: a status call of the fixture's that timed
        # out mid-handshake on the control socket is logged as one too (key "-").
        return any("peer_refused" in line and intruder_key in line for line in cluster.logs(200).splitlines())

    cluster.wait_until(refusal_names_the_key, "the broker to log the refusal with the intruder's key")
    assert cluster.status()["requests_received"] == 0


def test_a_peer_without_curve_is_refused_and_logged(cluster):
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    try:
        sock.connect(cluster.config.endpoints["front"])  # no keys: a plain ZeroMQ peer
        sock.send_multipart([protocol.PROTOCOL, b"\x91\x01"])
        cluster.wait_until(lambda: any("peer_refused" in line and "front socket" in line and "not CURVE" in line
                                       for line in cluster.logs(200).splitlines()),
                           "the broker to log the refusal on the front socket")
    finally:
        sock.close()
    assert cluster.status()["requests_received"] == 0


def test_a_key_admitted_while_running_is_served_without_a_restart(cluster):
    generate_key_pair(cluster.directory / "keys", "newcomer")
    config_path = cluster.directory / "newcomer.toml"
    config_path.write_text(cluster.config_path.read_text() + '\n[security]\nfront_key = "newcomer"\n')
    shutil.copy(cluster.directory / "keys" / "newcomer.key", cluster.directory / "keys" / "allowed")
    newcomer = Client(load(config_path))
    try:
        assert Echo(text="hi").execute(client=newcomer) == "HI"
    finally:
        newcomer.close()


def test_a_worker_without_its_key_pair_names_the_key_and_exits_2(make_cluster):
    cluster = _tcp_cluster(make_cluster)
    (cluster.directory / "keys" / "worker.key_secret").unlink()
    worker = subprocess.run([sys.executable, "-m", "workers", "--config", str(cluster.config_path),
                             "--dependency", "sample", "--commands", "sample_commands"],
                            capture_output=True, text=True, timeout=30, cwd=cluster.directory, env=cluster._env)
    assert worker.returncode == 2
    assert "security.worker_key" in worker.stderr and "seawall keys generate worker" in worker.stderr
