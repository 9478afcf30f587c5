"""The chaos suite's cluster: pools "faulty" and "healthy" under a real supervisord, in the test's temp dir."""

from __future__ import annotations

import pytest

from chaos import scenarios


@pytest.fixture
def cluster(tmp_path):
    cluster = scenarios.build_cluster(tmp_path / "cluster")
    try:
        cluster.start_supervisord()
        yield cluster
    finally:
        cluster.stop()
