"""A broker holds at most MAX_POOLS pools: workers naming ever new dependencies are
refused past it (logged once an interval), while known and configured pools still take
workers. In-process, on a Broker that binds nothing, with a fake clock."""

from __future__ import annotations

from pathlib import Path

import pytest
from structlog.testing import capture_logs

from api.testing import FakeClock
from broker import membership
from broker.server import Broker
from shared import protocol
from shared.config import parse

MAX_POOLS = 3


@pytest.fixture
def broker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Broker:
    monkeypatch.setattr(membership, "MAX_POOLS", MAX_POOLS)
    config = parse({"run_dir": "run", "pools": {"configured": {"queue_size": 5}}}, tmp_path)
    return Broker(config, clock=FakeClock())


def ready(broker: Broker, identity: bytes, dependency: str) -> None:
    broker._on_back([identity, *protocol.ready(dependency, 1, 4242, {"Echo": {}})])


def test_a_worker_naming_one_pool_too_many_is_refused_and_logged_once(broker: Broker) -> None:
    for number in range(MAX_POOLS):
        ready(broker, b"w%d" % number, f"pool-{number}")

    with capture_logs() as logs:
        for number in range(MAX_POOLS, MAX_POOLS + 50):
            ready(broker, b"w%d" % number, f"pool-{number}")

    assert sorted(broker.pools) == [f"pool-{number}" for number in range(MAX_POOLS)]
    assert len(broker.workers) == MAX_POOLS
    refused = [line for line in logs if line["event"] == "worker_refused"]
    assert [(line["dependency"], line["refused_since_last_line"]) for line in refused] == [(f"pool-{MAX_POOLS}", 0)]
    assert f"{MAX_POOLS} pools" in refused[0]["reason"]


def test_known_and_configured_pools_still_take_workers_when_the_broker_holds_its_most(broker: Broker) -> None:
    for number in range(MAX_POOLS):
        ready(broker, b"w%d" % number, f"pool-{number}")

    ready(broker, b"second", "pool-0")
    ready(broker, b"configured", "configured")

    assert len(broker.pools["pool-0"].workers) == 2
    assert len(broker.pools["configured"].workers) == 1
