"""Fixtures of the caller's-side tests: a client in this process, no broker behind it
(semaphore commands run here; their reports have nowhere to go, which is fine)."""

from __future__ import annotations

from pathlib import Path

import pytest

from api import Client
from shared.config import parse


@pytest.fixture
def client(tmp_path):
    client = Client(parse({"run_dir": "run"}, Path(tmp_path)))
    yield client
    client.close()
