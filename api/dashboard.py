"""The live dashboard: one HTML page, its JS and CSS, the cluster view as JSON and as a stream.

No build step and no CDN: the page, script and stylesheet ship in ``api/static`` and are
served from a fixed allow-list. The page follows ``/dashboard.stream`` (server-sent events:
the feed's view every :data:`STREAM_INTERVAL_S`), so what it shows trails reality by under
a second plus the broker's publish period.

``dashboard_apps(feed)`` maps path prefixes to WSGI apps; a front routes a request to the
app of the longest prefix that matches its ``PATH_INFO`` (left unchanged). ``feed`` is any
object with ``.view() -> dict``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable, Generator, Iterable, Protocol

import gevent

from api.event_stream import StreamPlaces
from shared.log_throttle import LogThrottle
from shared.logging import get_logger

log = get_logger("api.dashboard")

#: Seconds between two views sent on a stream.
STREAM_INTERVAL_S = 0.5
#: Streams served at once by one front process; more are answered 503.
MAX_STREAMS = 20
#: A stream ends after this long; the browser's EventSource reconnects at once.
STREAM_LIFETIME_S = 600.0
#: Milliseconds the browser waits before reconnecting a dropped stream.
STREAM_RETRY_MS = 1000
#: Where the page, script and stylesheet live (installed as package data).
STATIC_DIR = Path(__file__).resolve().parent / "static"
#: The only files served under ``/dashboard/static/``, with their content types.
STATIC_FILES = {
    "dashboard.js": "application/javascript; charset=utf-8",
    "dashboard.css": "text/css; charset=utf-8",
}
#: At most one log line about a failing view in this long (every stream asks twice a second).
VIEW_ERROR_LOG_INTERVAL_S = 10.0
#: The page itself, served at ``/dashboard``.
PAGE_FILE = "dashboard.html"

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class Feed(Protocol):
    def view(self) -> dict[str, Any]: ...


_REASONS = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 500: "Internal Server Error",
            503: "Service Unavailable"}


def _respond(start_response: StartResponse, status: int, body: bytes, content_type: str,
             extra_headers: list[tuple[str, str]] | None = None) -> list[bytes]:
    headers = [("Content-Type", content_type), ("Content-Length", str(len(body))),
               ("Cache-Control", "no-cache"), *(extra_headers or [])]
    start_response(f"{status} {_REASONS[status]}", headers)
    return [body]


def _error(start_response: StartResponse, status: int, message: str,
           extra_headers: list[tuple[str, str]] | None = None) -> list[bytes]:
    body = json.dumps({"error": message}).encode()
    return _respond(start_response, status, body, "application/json", extra_headers)


def _only_get(app: WSGIApp) -> WSGIApp:
    def guarded(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        if method not in ("GET", "HEAD"):
            return _error(start_response, 405, f"{method} not allowed on {environ.get('PATH_INFO')}",
                          [("Allow", "GET, HEAD")])
        body = app(environ, start_response)
        if method == "HEAD":
            getattr(body, "close", lambda: None)()
            return []
        return body
    return guarded


class ViewJson:
    """The feed's view as JSON; a feed that fails gives ``{"error": ...}`` rather than no
    answer, and a line in the log at most every VIEW_ERROR_LOG_INTERVAL_S."""

    def __init__(self, feed: Feed, clock: Callable[[], float] = time.monotonic) -> None:
        self.feed = feed
        self._error_lines = LogThrottle(VIEW_ERROR_LOG_INTERVAL_S, clock)
        #: the last view and its JSON: every open stream reads the same view (a few hundred
        #: kB and tens of ms to encode for a thousand commands), encoded once
        self._encoded: tuple[Any, bytes] = (None, b"")

    def __call__(self) -> bytes:
        try:
            view = self.feed.view()
            if view is not self._encoded[0]:
                self._encoded = (view, json.dumps(view, default=str, allow_nan=False, separators=(",", ":")).encode())
            return self._encoded[1]
        except Exception as exc:  # noqa: BLE001 - the page shows the error and keeps following
            error = f"{type(exc).__name__}: {exc}"
            held_back = self._error_lines.due()
            if held_back is not None:
                log.error("dashboard_view_failed", error=error, failures_since_last_line=held_back)
            return json.dumps({"error": f"the metrics view failed: {error}"}).encode()


def page_app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    """``/dashboard`` (and ``/dashboard/``): the HTML page."""
    if environ.get("PATH_INFO") not in ("/dashboard", "/dashboard/"):
        return _error(start_response, 404, f"no dashboard page {environ.get('PATH_INFO')}")
    body = (STATIC_DIR / PAGE_FILE).read_bytes()
    return _respond(start_response, 200, body, "text/html; charset=utf-8")


def static_app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    """``/dashboard/static/NAME``: a file of :data:`STATIC_FILES`, nothing else.

    The name is looked up in the allow-list, never joined to a path as given, so
    ``..`` and friends cannot reach another file.
    """
    name = environ.get("PATH_INFO", "").removeprefix("/dashboard/static/")
    content_type = STATIC_FILES.get(name)
    if content_type is None:
        return _error(start_response, 404, f"no dashboard file {name!r}; there are {sorted(STATIC_FILES)}")
    return _respond(start_response, 200, (STATIC_DIR / name).read_bytes(), content_type)


class Streams:
    """``/dashboard.stream``: the view as server-sent events, at most ``limit`` streams at once."""

    def __init__(self, feed: Feed, limit: int = MAX_STREAMS, interval_s: float = STREAM_INTERVAL_S,
                 lifetime_s: float = STREAM_LIFETIME_S) -> None:
        self.view_json = ViewJson(feed)
        self.limit = limit
        self.interval_s = interval_s
        self.lifetime_s = lifetime_s
        self.places = StreamPlaces(limit)

    @property
    def open_count(self) -> int:
        return self.places.open_count

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if self.places.full:
            return _error(start_response, 503, f"{self.limit} dashboard streams already open; try again",
                          [("Retry-After", "5")])
        start_response("200 OK", [("Content-Type", "text/event-stream"), ("Cache-Control", "no-cache"),
                                  ("X-Accel-Buffering", "no")])
        return self.places.body(self._events())

    def _events(self) -> Generator[bytes, None, None]:
        yield f"retry: {STREAM_RETRY_MS}\n\n".encode()
        ends_s = time.monotonic() + self.lifetime_s
        while time.monotonic() < ends_s:
            yield b"data: " + self.view_json() + b"\n\n"
            gevent.sleep(self.interval_s)


def dashboard_apps(feed: Feed) -> dict[str, WSGIApp]:
    """Path prefix -> WSGI app for the dashboard; route by the longest matching prefix."""
    view_json = ViewJson(feed)

    def json_app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        return _respond(start_response, 200, view_json(), "application/json")

    return {
        "/dashboard": _only_get(page_app),
        "/dashboard/static/": _only_get(static_app),
        "/dashboard.json": _only_get(json_app),
        "/dashboard.stream": _only_get(Streams(feed)),
    }


def dashboard_app(feed: Feed) -> WSGIApp:
    """One WSGI app serving every dashboard path (404 elsewhere): for a server of its own."""
    apps = dashboard_apps(feed)
    prefixes = sorted(apps, key=len, reverse=True)

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        for prefix in prefixes:
            if path.startswith(prefix):
                return apps[prefix](environ, start_response)
        return _error(start_response, 404, f"no dashboard path {path}")
    return app
