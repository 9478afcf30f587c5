"""The isolated command path, end to end: real broker, real workers, real sockets."""

from __future__ import annotations

import time

import pytest

from api import BadRequest, CommandFailed
from sample_commands import Echo, Fail, FailWithFallback, Invalid


@pytest.fixture
def cluster(make_cluster):
    cluster = make_cluster()
    cluster.start_broker()
    cluster.start_workers("sample", "sample_commands", count=1, slots=4)
    cluster.wait_for_workers("sample", 1)
    return cluster


def test_success_returns_the_workers_value(cluster):
    assert Echo(text="hello").execute(client=cluster.client()) == "HELLO"


def test_failure_falls_back(cluster):
    assert FailWithFallback(message="down").execute(client=cluster.client()) == "from fallback"


def test_failure_without_fallback_names_the_remote_exception(cluster):
    with pytest.raises(CommandFailed) as caught:
        Fail(message="backend down").execute(client=cluster.client())
    assert caught.value.cause.type_name == "ValueError"
    assert caught.value.cause.message == "backend down"
    assert "ValueError: backend down" in str(caught.value)
    assert caught.value.command == "Fail" and caught.value.failure == "FAILURE"


def test_bad_request_passes_through_without_fallback(cluster):
    with pytest.raises(BadRequest) as caught:
        Invalid().execute(client=cluster.client())
    assert "user_id must be positive" in str(caught.value)
    assert caught.value.command == "Invalid"
