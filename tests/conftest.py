"""Fixtures: a real broker and workers per test, in the test's own temp directory."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import pytest

from api.testing import Cluster, free_port, get_json

#: Modules of commands that the tests' workers run (tests/sample_commands.py, ...).
TESTS_DIR = Path(__file__).resolve().parent


@pytest.fixture
def make_cluster(tmp_path: Path) -> Iterator:
    """Build a Cluster with extra settings; every one is stopped when the test ends."""
    clusters: list[Cluster] = []

    def make(settings: dict | None = None, heartbeat_s: float = 0.2, name: str = "cluster") -> Cluster:
        cluster = Cluster(tmp_path / name, settings, pythonpath=[TESTS_DIR], heartbeat_s=heartbeat_s)
        clusters.append(cluster)
        return cluster

    yield make
    for cluster in clusters:
        cluster.stop()


@pytest.fixture(autouse=True)
def no_process_left_behind() -> Iterator[None]:
    """Fail any test that leaves a child process running (after its fixtures stop theirs)."""
    import psutil

    yield
    leftovers = [child for child in psutil.Process().children(recursive=True) if child.is_running()
                 and child.status() != psutil.STATUS_ZOMBIE]
    for child in leftovers:
        child.kill()
    assert not leftovers, f"processes left behind: {[(c.pid, c.cmdline()) for c in leftovers]}"


@pytest.fixture
def make_front(make_cluster: Any) -> Any:
    """A broker, pool "sample" and an HTTP front serving the endpoint modules given
    (name -> source); returns (cluster, base URL)."""

    def make(modules: dict[str, str], settings: dict | None = None, workers: int = 1,
             slots: int = 4) -> tuple[Cluster, str]:
        port = free_port()
        cluster = make_cluster({"front": {"listen": f"127.0.0.1:{port}", "endpoints": "endpoints"},
                                **(settings or {})})
        endpoints = cluster.directory / "endpoints"
        endpoints.mkdir()
        for name, source in modules.items():
            (endpoints / f"{name}.py").write_text(source)
        cluster.start_broker()
        cluster.start_workers("sample", "sample_commands", count=workers, slots=slots)
        cluster.wait_for_workers("sample", workers)
        cluster.start("front", "-m", "api")
        base = f"http://127.0.0.1:{port}"
        cluster.wait_until(lambda: get_json(base + "/")[0] == 200, "the front to listen")
        return cluster, base

    return make
