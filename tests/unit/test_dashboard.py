"""The dashboard's WSGI apps, with a fake feed: the page, its static files, the view as JSON and as a stream."""

from __future__ import annotations

import json
from typing import Any

import pytest
from structlog.testing import capture_logs

from api.dashboard import STATIC_FILES, VIEW_ERROR_LOG_INTERVAL_S, Streams, ViewJson, dashboard_app, dashboard_apps

VIEW = {"time_ms": 1, "brokers": {}, "commands": {"GetRatings": {"breaker": "OPEN", "error_pct": 100.0}},
        "pools": {}, "collapsers": {}}


class FakeFeed:
    def __init__(self, view: dict[str, Any] | None = None) -> None:
        self.views = 0
        self._view = view if view is not None else VIEW

    def view(self) -> dict[str, Any]:
        self.views += 1
        return self._view


class BrokenFeed:
    def view(self) -> dict[str, Any]:
        raise RuntimeError("no broker heard yet")


class Response:
    def __init__(self) -> None:
        self.status = ""
        self.headers: dict[str, str] = {}

    def start_response(self, status: str, headers: list[tuple[str, str]]) -> None:
        self.status, self.headers = status, dict(headers)

    @property
    def code(self) -> int:
        return int(self.status.split()[0])


def get(app: Any, path: str, method: str = "GET") -> tuple[Response, bytes]:
    response = Response()
    body = app({"PATH_INFO": path, "REQUEST_METHOD": method}, response.start_response)
    return response, b"".join(body)


@pytest.fixture
def app():
    return dashboard_app(FakeFeed())


def test_the_apps_are_keyed_by_the_path_prefixes_a_front_routes():
    assert set(dashboard_apps(FakeFeed())) == {"/dashboard", "/dashboard/static/", "/dashboard.json", "/dashboard.stream"}


def test_the_page_is_html_that_loads_only_its_own_script_and_stylesheet(app):
    response, body = get(app, "/dashboard")
    assert response.code == 200 and response.headers["Content-Type"].startswith("text/html")
    assert b'src="/dashboard/static/dashboard.js"' in body and b'href="/dashboard/static/dashboard.css"' in body
    assert b"http://" not in body and b"https://" not in body  # no CDN


@pytest.mark.parametrize("name", sorted(STATIC_FILES))
def test_each_allowed_static_file_is_served_with_its_type(app, name):
    response, body = get(app, f"/dashboard/static/{name}")
    assert response.code == 200 and response.headers["Content-Type"] == STATIC_FILES[name]
    assert len(body) > 100 and response.headers["Content-Length"] == str(len(body))


@pytest.mark.parametrize("path", ["/dashboard/static/../dashboard.py", "/dashboard/static/..%2Fdashboard.py",
                                  "/dashboard/static//etc/passwd", "/dashboard/static/dashboard.html",
                                  "/dashboard/static/", "/dashboard/static/sub/dashboard.js"])
def test_a_file_outside_the_allow_list_is_404_naming_the_allowed_ones(app, path):
    response, body = get(app, path)
    assert response.code == 404 and "dashboard.js" in json.loads(body)["error"]


def test_the_json_is_the_feeds_view(app):
    response, body = get(app, "/dashboard.json")
    assert response.code == 200 and json.loads(body) == VIEW


def test_a_failing_feed_answers_an_error_in_the_view_not_a_crash():
    response, body = get(dashboard_app(BrokenFeed()), "/dashboard.json")
    assert response.code == 200 and "no broker heard yet" in json.loads(body)["error"]


def test_a_failing_feed_is_logged_once_per_interval_with_the_count_since():
    clock_s = [0.0]
    view_json = ViewJson(BrokenFeed(), clock=lambda: clock_s[0])
    with capture_logs() as logs:
        answers = [json.loads(view_json()) for _ in range(20)]  # 20 streams' rounds, say
        clock_s[0] = VIEW_ERROR_LOG_INTERVAL_S
        view_json()

    assert all("no broker heard yet" in answer["error"] for answer in answers)
    assert [(line["event"], line["failures_since_last_line"]) for line in logs] == [
        ("dashboard_view_failed", 0), ("dashboard_view_failed", 19)]


def test_a_view_that_is_not_json_answers_an_error_naming_why():
    response, body = get(dashboard_app(FakeFeed({"error_pct": float("nan")})), "/dashboard.json")
    assert "ValueError" in json.loads(body)["error"]


def test_only_get_and_head_are_allowed(app):
    response, _ = get(app, "/dashboard.json", method="POST")
    assert response.code == 405 and response.headers["Allow"] == "GET, HEAD"
    response, body = get(app, "/dashboard", method="HEAD")
    assert response.code == 200 and body == b""


def test_another_path_under_the_prefix_is_404(app):
    assert get(app, "/dashboardx")[0].code == 404
    assert get(app, "/dashboard/nothing")[0].code == 404


def test_the_stream_sends_a_retry_hint_then_the_view_as_an_event():
    streams = Streams(FakeFeed(), interval_s=0.01)
    response = Response()
    body = streams({"PATH_INFO": "/dashboard.stream", "REQUEST_METHOD": "GET"}, response.start_response)
    events = iter(body)
    assert response.code == 200 and response.headers["Content-Type"] == "text/event-stream"
    assert next(events).startswith(b"retry: ")
    first = next(events)
    assert first.startswith(b"data: ") and first.endswith(b"\n\n")
    assert json.loads(first[len(b"data: "):]) == VIEW
    assert next(events).startswith(b"data: ")  # and again, every interval
    body.close()
    assert streams.open_count == 0


def test_streams_past_the_limit_are_503_until_one_closes():
    streams = Streams(FakeFeed(), limit=2)
    open_bodies = [streams({"PATH_INFO": "/dashboard.stream"}, Response().start_response) for _ in range(2)]
    refused = Response()
    streams({"PATH_INFO": "/dashboard.stream"}, refused.start_response)
    assert refused.code == 503 and refused.headers["Retry-After"]
    open_bodies[0].close()  # never read from: the place is released all the same
    open_bodies[0].close()  # a second close changes nothing
    assert streams.open_count == 1
    again = Response()
    streams({"PATH_INFO": "/dashboard.stream"}, again.start_response)
    assert again.code == 200


def test_a_stream_ends_after_its_lifetime():
    streams = Streams(FakeFeed(), interval_s=0.001, lifetime_s=0.05)
    body = streams({"PATH_INFO": "/dashboard.stream"}, Response().start_response)
    chunks = list(body)
    body.close()
    assert chunks[0].startswith(b"retry: ") and len(chunks) >= 2 and streams.open_count == 0


def test_every_stream_reading_one_view_shares_its_encoding():
    """Twenty open dashboard tabs must not encode a large view twenty times a round."""
    view_json = ViewJson(FakeFeed())
    first = view_json()
    assert view_json() is first  # the same view: the same bytes, not encoded again
    view_json.feed = FakeFeed(dict(VIEW, time_ms=2))
    assert json.loads(view_json())["time_ms"] == 2
