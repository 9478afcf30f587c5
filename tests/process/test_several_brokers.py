"""A caller that knows several brokers: calls go where there is room, and fail over."""

from __future__ import annotations

import time

import gevent
import pytest

from api import Client
from sample_commands import Sleep, WorkerPid
from shared.config import load


@pytest.fixture
def two_brokers(make_cluster):
    """Brokers A and B, each with one 1-slot worker of pool "sample" and no queue."""
    clusters = []
    for name in ("a", "b"):
        cluster = make_cluster({"pools": {"sample": {"queue_size": 0}},
                                "commands": {"Sleep": {"timeout_s": 5.0}}}, name=name)
        cluster.start_broker()
        cluster.start_workers("sample", "sample_commands", slots=1)
        cluster.wait_for_workers("sample", 1)
        clusters.append(cluster)
    return clusters


def _client_of_both(cluster_a, cluster_b):
    b = cluster_b.config.endpoints
    config_path = cluster_a.directory / "both.toml"
    config_path.write_text(cluster_a.config_path.read_text()
                           + f'\n[brokers.b]\nfront = "{b["front"]}"\nevents = "{b["events"]}"\n')
    client = Client(load(config_path))
    return client


def _worker_pids(cluster):
    return {worker["pid"] for worker in cluster.status()["pools"]["sample"]["worker_list"]}


def test_calls_go_to_the_broker_with_room(two_brokers):
    a, b = two_brokers
    client = _client_of_both(a, b)
    try:
        WorkerPid().execute(client=client)  # connects to both
        gevent.sleep(1.2)  # two metrics snapshots: each broker's room is known
        busy = gevent.spawn(Sleep(seconds=1.5).execute, client=client)
        gevent.sleep(0.2)
        # one broker's only slot is taken: the next call goes to the other, not rejected
        assert WorkerPid().execute(client=client) in _worker_pids(a) | _worker_pids(b)
        sleeping_pid = busy.get(timeout=5)
        assert sleeping_pid in _worker_pids(a) | _worker_pids(b)
    finally:
        client.close()


def test_when_a_broker_stops_new_calls_go_to_the_other(two_brokers):
    a, b = two_brokers
    client = _client_of_both(a, b)
    try:
        assert WorkerPid().execute(client=client) in _worker_pids(a)  # ties go to the first listed
        a.stop_process(a.processes[0])  # broker A
        deadline_s = time.monotonic() + 5
        answered_by_b = None
        while time.monotonic() < deadline_s and answered_by_b is None:
            try:
                pid = WorkerPid().execute(client=client)
            except Exception:  # noqa: BLE001 - calls in flight when A went silent are lost
                gevent.sleep(0.05)
                continue
            answered_by_b = pid if pid in _worker_pids(b) else None
        assert answered_by_b is not None, "no call reached broker B within 5 s of stopping A"
        for _ in range(5):
            assert WorkerPid().execute(client=client) in _worker_pids(b)
    finally:
        client.close()
