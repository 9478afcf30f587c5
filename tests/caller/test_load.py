"""``seawall load``: the open-loop generator against a gevent WSGI server in the test process."""

from __future__ import annotations

import io

import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Iterator

import gevent
import gevent.subprocess
import pytest
from gevent import socket
from gevent.pywsgi import WSGIServer

from api import load
from broker import cli

REPO = Path(__file__).resolve().parents[2]
#: How long /fail takes before its 500, and /slow before its 200.
FAIL_DELAY_S = 0.02
SLOW_DELAY_S = 0.5


class LoopbackServer:
    """/ok answers 200 at once, /fail 500 after a short sleep, /slow 200 after a long one."""

    def __init__(self) -> None:
        self.requests_by_path: Counter[str] = Counter()
        self.arrivals_s: list[float] = []
        self.server = WSGIServer(("127.0.0.1", 0), self.app, log=None)

    def app(self, environ, start_response):
        path = environ["PATH_INFO"]
        self.requests_by_path[path] += 1
        self.arrivals_s.append(time.monotonic())
        status = "200 OK"
        if path == "/fail":
            gevent.sleep(FAIL_DELAY_S)
            status = "500 Internal Server Error"
        elif path == "/slow":
            gevent.sleep(SLOW_DELAY_S)
        body = f"{path} answered\n".encode()
        start_response(status, [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
        return [body]

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_port}{path}"


@pytest.fixture
def server() -> Iterator[LoopbackServer]:
    server = LoopbackServer()
    server.server.start()
    yield server
    server.server.stop(timeout=1)


def closed_loopback_port() -> int:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    return port


def assert_counts_add_up(summary: dict) -> None:
    assert summary["sent"] == summary["answered"] + summary["timed_out"] + summary["connection_errors"]
    assert summary["answered"] == sum(summary["status_counts"].values())


def test_steady_load_over_two_urls_is_counted_per_url_and_in_total(server):
    ok, fail = server.url("/ok"), server.url("/fail")

    report = load.run(load.plan([ok, fail], rps=200, duration_s=1.0))

    assert report["urls"][ok]["sent"] == report["urls"][fail]["sent"] == 100  # round-robin
    for summary in (report["urls"][ok], report["urls"][fail], report["total"]):
        assert_counts_add_up(summary)
        assert summary["dropped"] == 0
    assert report["urls"][ok]["status_counts"] == {"200": 100}
    assert report["urls"][fail]["status_counts"] == {"500": 100}
    assert report["total"]["status_counts"] == {"200": 100, "500": 100}
    assert server.requests_by_path == {"/ok": 100, "/fail": 100}
    assert report["urls"][fail]["latency_ms"]["p50"] >= FAIL_DELAY_S * 1000


def test_achieved_rate_is_roughly_the_asked_rate(server):
    report = load.run(load.plan([server.url("/ok")], rps=200, duration_s=1.0))

    assert 0.9 <= report["sending_s"] < 1.5
    assert 150 <= report["total"]["achieved_rps"] <= 250


def test_requests_are_spread_evenly_over_each_second(server):
    load.run(load.plan([server.url("/ok")], rps=100, duration_s=1.0))

    first_s = server.arrivals_s[0]
    per_fifth = Counter(min(4, int((arrival_s - first_s) * 5)) for arrival_s in server.arrivals_s)
    assert all(10 <= per_fifth[fifth] <= 30 for fifth in range(5)), per_fifth  # 20 each, not one burst


def test_requests_over_the_in_flight_cap_are_dropped_not_sent(server):
    report = load.run(load.plan([server.url("/slow")], rps=50, duration_s=0.3, timeout_s=2.0, max_in_flight=3))

    total = report["total"]
    assert total["sent"] == 3  # none of the first three was back before the schedule ended
    assert total["dropped"] == 15 - 3
    assert server.requests_by_path["/slow"] == 3
    assert total["status_counts"] == {"200": 3}


def test_a_request_slower_than_the_timeout_counts_as_timed_out(server):
    report = load.run(load.plan([server.url("/slow")], rps=10, duration_s=0.2, timeout_s=0.1))

    total = report["total"]
    assert (total["sent"], total["timed_out"], total["answered"]) == (2, 2, 0)
    assert report["elapsed_s"] < SLOW_DELAY_S  # waited for the timeout, not the answer


def test_a_timed_out_request_counts_as_at_least_its_timeout_in_the_percentiles(server):
    timeout_s = 0.1

    report = load.run(load.plan([server.url("/ok"), server.url("/slow")], rps=20, duration_s=1.0,
                                timeout_s=timeout_s))

    total = report["total"]
    assert total["timed_out"] >= 10  # every /slow one (an /ok one too, on a very busy machine)
    assert total["latency_ms"]["p99"] >= timeout_s * 1000  # not the answered half's few ms
    assert total["latency_ms"]["max"] >= timeout_s * 1000
    slow = report["urls"][server.url("/slow")]["latency_ms"]
    assert slow["p50"] >= timeout_s * 1000  # every one timed out: not 0.00


def test_answered_per_second_is_reported_beside_sent_per_second(server):
    report = load.run(load.plan([server.url("/ok"), server.url("/slow")], rps=20, duration_s=1.0, timeout_s=0.1))

    total = report["total"]
    assert 15 <= total["achieved_rps"] <= 25  # sent per second, as before
    assert 0.3 * total["achieved_rps"] <= total["answered_rps"] <= 0.7 * total["achieved_rps"]  # half answered
    assert report["urls"][server.url("/slow")]["answered_rps"] == 0.0
    table = load.format_report(report)
    assert "SENT/S" in table and "ANSWER/S" in table


def test_with_nothing_measured_the_latency_is_none_not_zero():
    url = f"http://127.0.0.1:{closed_loopback_port()}/"

    progress = io.StringIO()
    report = load.run(load.plan([url], rps=20, duration_s=0.2, timeout_s=1.0), progress=progress)

    assert set(report["total"]["latency_ms"].values()) == {None}  # connection errors: no latency to count
    assert progress.getvalue().rstrip().endswith("p50 -  p99 -")
    total_row = load.format_report(report).splitlines()[-1]
    assert "0.00" not in total_row and " - " in total_row


def test_a_refused_connection_counts_as_a_connection_error():
    url = f"http://127.0.0.1:{closed_loopback_port()}/"

    report = load.run(load.plan([url], rps=20, duration_s=0.2, timeout_s=1.0))

    assert (report["total"]["sent"], report["total"]["connection_errors"]) == (4, 4)


@pytest.mark.parametrize("url", ["http://10.1.2.3/", "http://example.com/", "http://127.0.0.1.nip.io/",
                                 "http://[::ffff:10.1.2.3]/", "https://127.0.0.1/", "http://0.0.0.0:8080/"])
def test_a_non_loopback_url_is_refused_naming_it(url):
    with pytest.raises(load.LoadRefused, match="refused|only http") as refused:
        load.plan([url], rps=1, duration_s=1)
    assert refused.value.url == url


@pytest.mark.parametrize("url", ["http://localhost:8080/x", "http://127.9.9.9/", "http://[::1]:8080/"])
def test_loopback_urls_are_accepted(url):
    assert load.parse_target(url).url == url


def test_one_refused_url_stops_the_whole_run_before_anything_is_sent(server, capsys, monkeypatch):
    monkeypatch.delenv("SEAWALL_CONFIG", raising=False)  # load needs no config

    code = cli.main(["load", server.url("/ok"), "http://10.1.2.3/", "--rps", "100", "--duration", "1"])

    assert code == 2
    assert "http://10.1.2.3/" in capsys.readouterr().err
    assert server.requests_by_path == {}


@pytest.mark.parametrize("limits", [{"rps": 10_001, "duration_s": 1}, {"rps": 1, "duration_s": 3_601},
                                    {"rps": 0, "duration_s": 1}, {"rps": 1, "duration_s": 1, "max_in_flight": 0}])
def test_limits_out_of_bounds_are_refused(limits):
    with pytest.raises(load.LoadRefused, match="must be above 0"):
        load.plan(["http://127.0.0.1:1/"], **limits)


def test_cli_prints_progress_on_stderr_and_a_json_report(server):
    url = server.url("/ok")

    finished = gevent.subprocess.run(
        [sys.executable, "-m", "broker.cli", "load", url, "--rps", "50", "--duration", "1", "--json"],
        cwd=REPO, capture_output=True, text=True, timeout=30)

    assert finished.returncode == 0, finished.stderr
    report = json.loads(finished.stdout)
    assert (report["total"]["sent"], report["total"]["answered"]) == (50, 50)
    assert report["urls"][url]["status_counts"] == {"200": 50}
    assert server.requests_by_path["/ok"] == 50
    assert "sent 50  answered 50" in finished.stderr  # the last progress line
