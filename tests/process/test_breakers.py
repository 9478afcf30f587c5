"""Breakers held by the broker and shared by every front: two real front processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

SLEEP_WINDOW_S = 1.0


class Front:
    """A front process (tests/front_driver.py) that runs the calls it is told to."""

    def __init__(self, cluster, name):
        self.process = cluster.start(name, os.path.join(os.path.dirname(__file__), "..", "front_driver.py"),
                                     pipes=True)

    def send(self, command, count=1, **arguments):
        line = json.dumps({"command": command, "arguments": arguments, "count": count}) + "\n"
        self.process.stdin.write(line.encode())
        self.process.stdin.flush()

    def receive(self):
        line = self.process.stdout.readline()
        assert line, "the front process died"
        return json.loads(line)

    def breaker(self, key):
        """The breaker state this front has heard from the broker."""
        self.process.stdin.write((json.dumps({"breaker": key}) + "\n").encode())
        self.process.stdin.flush()
        return self.receive()

    def call(self, command, count=1, **arguments):
        self.send(command, count, **arguments)
        return self.receive()


@pytest.fixture
def two_fronts(make_cluster):
    cluster = make_cluster({"commands": {"Flaky": {
        "breaker_volume_threshold": 4, "breaker_error_pct": 50, "breaker_sleep_s": SLEEP_WINDOW_S}}})
    cluster.start_broker()
    cluster.start_workers("sample", "sample_commands", slots=20)
    cluster.wait_for_workers("sample", 1)
    fronts = [Front(cluster, "front-1"), Front(cluster, "front-2")]
    for front in fronts:  # connect both, so each hears the broker's breaker news
        assert front.call("Echo", text="warm") == [{"value": "WARM"}]
    yield cluster, fronts
    for front in fronts:
        cluster.stop_process(front.process)
        front.process.stdin.close()
        front.process.stdout.close()


def _breaker(cluster, key="Flaky"):
    command = cluster.status()["commands"].get(key)
    return command["breaker"] if command else "CLOSED"


def _received(cluster):
    return cluster.status()["requests_received"]


def _open_breaker_from(cluster, front):
    assert front.call("Flaky", count=4, fail=True) == [{"value": "fallback"}] * 4
    cluster.wait_until(lambda: _breaker(cluster) == "OPEN", "the breaker to open")


def test_failures_from_one_front_open_the_breaker_for_the_other(two_fronts):
    cluster, (front_1, front_2) = two_fronts
    _open_breaker_from(cluster, front_1)
    cluster.wait_until(lambda: front_2.breaker("Flaky") == "OPEN", "front 2 to hear of it", timeout_s=1.0)
    received = _received(cluster)
    assert front_2.call("Flaky", fail=False) == [{"value": "fallback"}]
    assert _received(cluster) == received, "front 2 sent a message although the breaker was open"
    assert cluster.status()["commands"]["Flaky"]["events"]["FAILURE"] == 4


def test_after_the_sleep_window_exactly_one_call_across_both_fronts_reaches_a_worker(two_fronts, tmp_path):
    cluster, (front_1, front_2) = two_fronts
    _open_breaker_from(cluster, front_1)
    cluster.wait_until(lambda: cluster.status()["commands"]["Flaky"]["retry_in_s"] == 0,
                       "the sleep window to pass", timeout_s=SLEEP_WINDOW_S + 5)
    markers = tmp_path / "trial"
    markers.mkdir()
    for front in (front_1, front_2):
        front.send("Flaky", count=5, fail=False, marker_dir=str(markers), seconds=0.5)
    answers = front_1.receive() + front_2.receive()
    assert len(os.listdir(markers)) == 1
    assert answers.count({"value": "ok"}) == 1
    assert answers.count({"value": "fallback"}) == 9
    cluster.wait_until(lambda: _breaker(cluster) == "CLOSED", "the trial's success to close the breaker")
    assert front_2.call("Flaky", fail=False) == [{"value": "ok"}]


def test_a_failed_trial_opens_the_breaker_again(two_fronts):
    cluster, (front_1, front_2) = two_fronts
    _open_breaker_from(cluster, front_1)
    cluster.wait_until(lambda: cluster.status()["commands"]["Flaky"]["retry_in_s"] == 0,
                       "the sleep window to pass", timeout_s=SLEEP_WINDOW_S + 5)
    assert front_2.call("Flaky", fail=True) == [{"value": "fallback"}]
    # OPEN again, not HALF_OPEN (the trial's failure was counted); not asserting the new
    # sleep window's remainder, which a loaded machine may already have used up
    assert cluster.status()["commands"]["Flaky"]["breaker"] == "OPEN"


def _seawall(cluster, *args):
    return subprocess.run([sys.executable, "-m", "broker.cli", "--config", str(cluster.config_path), *args],
                          capture_output=True, text=True, timeout=30)


def test_seawall_breaker_open_takes_effect_on_both_fronts(two_fronts):
    cluster, fronts = two_fronts
    result = _seawall(cluster, "breaker", "open", "Echo")
    assert result.returncode == 0, result.stderr
    assert _breaker(cluster, "Echo") == "OPEN"

    def both_fronts_short_circuit():
        received = _received(cluster)
        answers = [front.call("Echo", text="x") for front in fronts]
        return answers == [[{"error": "SHORT_CIRCUITED"}]] * 2 and _received(cluster) == received

    cluster.wait_until(both_fronts_short_circuit, "both fronts to short-circuit Echo", timeout_s=1.5)
    assert _seawall(cluster, "breaker", "auto", "Echo").returncode == 0
    cluster.wait_until(lambda: all(front.call("Echo", text="x") == [{"value": "X"}] for front in fronts),
                       "both fronts to call Echo again", timeout_s=1.5)


def test_config_set_changes_a_timeout_on_every_front_within_a_second(two_fronts):
    cluster, fronts = two_fronts
    assert [front.call("Sleep", seconds=0.3) != [{"error": "TIMEOUT"}] for front in fronts] == [True, True]
    result = _seawall(cluster, "config", "set", "commands.Sleep.timeout_s", "0.1")
    assert result.returncode == 0, result.stderr
    cluster.wait_until(lambda: all(front.call("Sleep", seconds=0.3) == [{"error": "TIMEOUT"}] for front in fronts),
                       "both fronts to use the new timeout", timeout_s=1.5)


def test_config_set_of_an_unknown_key_is_refused_naming_it(two_fronts):
    cluster, _ = two_fronts
    result = _seawall(cluster, "config", "set", "commands.Sleep.timeout_sx", "0.1")
    assert result.returncode == 1
    assert "commands.Sleep.timeout_sx" in result.stderr
