"""The HTTP front: real requests to endpoint modules that compose real commands."""

from __future__ import annotations

import os
import signal
import textwrap
import threading

import pytest

from api.testing import get_json

HOME = textwrap.dedent('''
    from api import compose
    from sample_commands import Echo, FailWithFallback, Fail

    def home(request):
        title = Echo(text=request.query.get("user", "guest")).observe()
        rows = compose.catch(Fail(message="ratings down").observe(), lambda error: None)
        badge = FailWithFallback(message="badges down").observe()
        return compose.zip(title, rows, badge, combine=lambda t, r, b: {"title": t, "rows": r, "badge": b})

    ROUTES = {"home": home}
''')



@pytest.fixture
def front(make_front):
    cluster, base = make_front({"ps3": HOME})
    return cluster, base, cluster.directory / "endpoints"



def test_an_endpoint_composes_calls_into_one_shaped_response(front):
    _, base, _ = front
    assert get_json(base + "/ps3/home?user=ann") == (200, {"title": "ANN", "rows": None, "badge": "from fallback"})


def test_a_failing_dependency_degrades_one_part_not_the_response(front):
    _, base, _ = front
    status, body = get_json(base + "/ps3/home")
    assert status == 200 and body["title"] == "GUEST"
    assert body["rows"] is None and body["badge"] == "from fallback"


def test_a_broken_module_answers_500_for_its_own_paths_and_the_others_serve(front):
    cluster, base, endpoints = front
    (endpoints / "tv.py").write_text("def home(request):\n    return 1 +\n")
    cluster.wait_until(lambda: get_json(base + "/tv/home")[0] == 500, "the broken module to be seen", timeout_s=5)
    status, body = get_json(base + "/tv/home")
    assert "tv.py does not load" in body["error"] and "SyntaxError" in body["error"]
    assert get_json(base + "/ps3/home")[0] == 200


def test_a_changed_module_is_picked_up_without_a_restart(front):
    cluster, base, endpoints = front
    (endpoints / "ps3.py").write_text(HOME.replace('"home": home', '"home": home, "ping": lambda request: "pong"'))
    cluster.wait_until(lambda: get_json(base + "/ps3/ping") == (200, "pong"), "the new route", timeout_s=5)
    assert get_json(base + "/ps3/home")[0] == 200


def test_an_unknown_path_is_404_listing_the_endpoints(front):
    _, base, _ = front
    status, body = get_json(base + "/android/home")
    assert status == 404 and body["endpoints"] == ["/ps3/home"]


def test_a_second_front_process_listens_on_the_same_port(front):
    cluster, base, _ = front
    second = cluster.start("front-2", "-m", "api")

    def listening():
        log = (cluster.directory / "front-2.log").read_text()
        return '"front_started"' in log

    cluster.wait_until(listening, "the second front to listen", timeout_s=10)
    assert all(get_json(base + "/ps3/home")[0] == 200 for _ in range(20))
    assert second.poll() is None, "the second front could not bind the shared port"


SLOW = textwrap.dedent('''
    from pathlib import Path

    import gevent

    def slow(request):
        Path("slow-started").touch()  # the front's working directory is the cluster's
        gevent.sleep(1.5)
        return "done"

    ROUTES = {"slow": slow}
''')


def test_sigterm_lets_a_request_being_served_finish_then_the_front_exits(make_front):
    """gevent's server.stop() gives what it serves 1 s by default, then kills it: a longer
    request got a bare 500 on every restart or scale-down of fronts."""
    cluster, base = make_front({"ps3": SLOW})
    front = cluster.processes[-1]
    answers: list[object] = []

    def ask() -> None:
        try:
            answers.append(get_json(base + "/ps3/slow"))
        except ValueError as exc:  # not JSON: gevent's own bare 500, a request killed mid-way
            answers.append(repr(exc))

    request = threading.Thread(target=ask)
    request.start()
    cluster.wait_until(lambda: (cluster.directory / "slow-started").exists(), "the request to be served")
    os.kill(front.pid, signal.SIGTERM)
    request.join(timeout=20)
    assert answers == [(200, "done")]
    assert front.wait(timeout=20) == 0
