"""Outcomes the broker does not see itself reach it in batched reports."""

from __future__ import annotations

import gevent

from api import Command
from sample_commands import FailWithFallback


class InMemory(Command):
    """Semaphore-isolated: runs in the caller, fails when told to."""

    fail: bool

    def run(self) -> str:
        if self.fail:
            raise KeyError("not cached")
        return "hit"

    def fallback(self) -> str:
        return "fallback"


def _command(cluster, key):
    return cluster.status()["commands"].get(key, {})


def test_semaphore_command_failures_open_the_brokers_breaker_and_it_closes_after_a_trial(make_cluster):
    cluster = make_cluster({"commands": {"InMemory": {"breaker_volume_threshold": 5, "breaker_sleep_s": 0.5}}})
    cluster.start_broker()
    client = cluster.client()
    assert [InMemory(fail=True).execute(client=client) for _ in range(5)] == ["fallback"] * 5
    cluster.wait_until(lambda: _command(cluster, "InMemory").get("breaker") == "OPEN", "reports to open the breaker")
    cluster.wait_until(lambda: client.breakers.state("InMemory") == "OPEN", "the front to hear of it")
    assert InMemory(fail=False).execute(client=client) == "fallback"  # short-circuited here
    cluster.wait_until(lambda: _command(cluster, "InMemory")["events"].get("SHORT_CIRCUITED") == 1,
                       "the front's short-circuit to be reported")

    cluster.wait_until(lambda: InMemory(fail=False).execute(client=client) == "hit",
                       "the sleep window to pass", timeout_s=5)
    cluster.wait_until(lambda: _command(cluster, "InMemory")["breaker"] == "CLOSED", "the trial to close it")


def test_fallback_events_of_remote_commands_are_reported(make_cluster):
    cluster = make_cluster()
    cluster.start_broker()
    cluster.start_workers("sample", "sample_commands")
    cluster.wait_for_workers("sample", 1)
    client = cluster.client()
    calls = [gevent.spawn(FailWithFallback(message="x").execute, client) for _ in range(3)]
    gevent.joinall(calls, raise_error=True)
    cluster.wait_until(lambda: _command(cluster, "FailWithFallback")["events"] == {
        "FAILURE": 3, "FALLBACK_SUCCESS": 3}, "fallback events to reach the broker")


class TunedInMemory(InMemory):
    """Its breaker's settings in the class, not the config: the broker learns them from
    the front (no worker runs a semaphore command to say so in its READY)."""

    breaker_volume_threshold = 4
    breaker_sleep_s = 30.0


def test_a_semaphore_commands_class_settings_reach_the_brokers_breaker(make_cluster):
    cluster = make_cluster()
    cluster.start_broker()
    client = cluster.client()
    assert [TunedInMemory(fail=True).execute(client=client) for _ in range(4)] == ["fallback"] * 4
    # the default volume threshold (20) would keep it closed after 4 calls
    cluster.wait_until(lambda: _command(cluster, "TunedInMemory").get("breaker") == "OPEN",
                       "4 failures to open the breaker, as the class says")
    assert cluster.status()["commands"]["TunedInMemory"]["retry_in_s"] > 20  # its 30 s sleep window
