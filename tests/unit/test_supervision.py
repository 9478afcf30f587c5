"""Which supervisord processes ``seawall scale`` touches (broker/supervision.py), against a
fake supervisord: the real one is exercised in tests/supervised/."""

from __future__ import annotations

from typing import Any

from broker.supervision import POOLS_GROUP, scale


class FakeSupervisor:
    def __init__(self, processes: dict[str, str]) -> None:
        self.states = dict(processes)
        self.calls: list[tuple[str, str]] = []

    def getAllProcessInfo(self) -> list[dict[str, Any]]:  # noqa: N802 - supervisord's name
        return [{"group": POOLS_GROUP, "name": name, "statename": state} for name, state in self.states.items()]

    def startProcess(self, name: str, wait: bool) -> None:  # noqa: N802
        self.calls.append(("start", name))
        self.states[name.split(":", 1)[1]] = "RUNNING"

    def stopProcess(self, name: str, wait: bool) -> None:  # noqa: N802
        self.calls.append(("stop", name))
        self.states[name.split(":", 1)[1]] = "STOPPED"


class FakeProxy:
    def __init__(self, processes: dict[str, str]) -> None:
        self.supervisor = FakeSupervisor(processes)


def test_a_pool_whose_name_another_pool_extends_scales_only_its_own_workers():
    proxy = FakeProxy({f"pool-{pool}-{n:02d}": "RUNNING" for pool in ("search", "search-v2") for n in range(2)})
    result = scale(proxy, "search", 0)
    assert result.stopped == ["pool-search-00", "pool-search-01"]
    assert proxy.supervisor.states["pool-search-v2-00"] == "RUNNING"
    assert proxy.supervisor.states["pool-search-v2-01"] == "RUNNING"


def test_the_first_n_workers_are_the_lowest_numbered_past_a_hundred():
    proxy = FakeProxy({f"pool-big-{n:02d}": "STOPPED" for n in range(120)})
    result = scale(proxy, "big", 12)
    assert result.started == [f"pool-big-{n:02d}" for n in range(12)]
