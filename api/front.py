"""The HTTP front: gevent's WSGI server serving endpoint modules, one request context each.

Each request runs its endpoint's handler inside ``request_context()``, so the commands it
composes share a request cache, request-scoped batches and a request log; the answer is
JSON. Concurrency is bounded by a pool of greenlets. The observability paths
(``/hystrix.stream``, ``/metrics``, ``/dashboard``..., see ``api/observability.py``) are
routed first, so endpoints cannot shadow them.
"""

from __future__ import annotations

import json
import signal
import time
from http import HTTPStatus
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping
from urllib.parse import parse_qsl

import gevent
import gevent.socket
from gevent.pool import Pool
from gevent.pywsgi import WSGIServer

from api.compose import Observable
from api.context import request_context
from api.endpoints import EndpointDirectory, EndpointRequest
from api.errors import BadRequest
from api.http_handler import DeadlineHandler
from api.observability import WSGIApp, make_feed, observability_apps, route
from shared.config import Config
from shared.logging import LOG_EACH_CALL, get_logger

log = get_logger("api.front")

#: Requests served at once; more wait in the listen backlog.
MAX_CONCURRENT_REQUESTS = 1000
#: Connections waiting to be accepted, per front process.
LISTEN_BACKLOG = 1024
#: Largest request body read.
MAX_BODY_BYTES = 1024 * 1024

StartResponse = Callable[[str, list[tuple[str, str]]], Any]


def endpoint_directory(config: Config) -> Path:
    """``[front] endpoints``, relative to the config file."""
    base = Path(config.source).resolve().parent if config.source else Path.cwd()
    return base / config.front_setting("endpoints")


class Front:
    def __init__(self, endpoints: EndpointDirectory, apps: Mapping[str, WSGIApp] | None = None) -> None:
        self.endpoints = endpoints
        self.apps = dict(apps or {})

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        started_s = time.monotonic()
        path = environ.get("PATH_INFO", "/")
        app = route(self.apps, path)
        if app is not None:
            return app(environ, start_response)
        status, body = self._respond(environ, path)
        try:
            payload = json.dumps(body, default=str, allow_nan=False).encode()
        except ValueError as exc:  # NaN or infinity (JSON has neither), or a value that contains itself
            log.error("endpoint_answer_not_json", path=path, error=str(exc))
            status, payload = 500, json.dumps({"error": f"the endpoint's answer is not JSON: {exc}",
                                               "path": path}).encode()
        start_response(f"{status} {_reason(status)}",
                       [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))])
        if status >= 500 or LOG_EACH_CALL:  # one line per request only when asked: fronts serve thousands
            log.info("request_served", path=path, status=status,
                     latency_ms=round((time.monotonic() - started_s) * 1000, 3))
        return [payload]

    def _respond(self, environ: dict[str, Any], path: str) -> tuple[int, Any]:
        if path in ("", "/"):
            return 200, {"endpoints": self.endpoints.routes()}
        module, handler = self.endpoints.resolve(path)
        if module is not None and module.error is not None:
            return 500, {"error": module.error, "path": path}
        if handler is None:
            return 404, {"error": f"no endpoint {path}", "endpoints": self.endpoints.routes()}
        request = _request(environ, path)
        if request is None:
            return 413, {"error": f"request body over {MAX_BODY_BYTES} bytes"}
        with request_context() as context:
            try:
                status, body = _result(handler(request))
            except BadRequest as exc:  # the request's own fault: no error line, the caller is told
                return 400, {"error": f"BadRequest: {exc}", "command": exc.command, "path": path}
            except Exception as exc:  # noqa: BLE001 - the endpoint's failure is this request's 500
                log.error("endpoint_failed", path=path, error=f"{type(exc).__name__}: {exc}",
                          commands=context.log_line())
                return 500, {"error": f"{type(exc).__name__}: {exc}", "path": path}
            if context.log and LOG_EACH_CALL:
                log.debug("request_commands", path=path, commands=context.log_line())
        return status, body


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:  # a status a handler made up, within 100-599
        return "Status"


def _request(environ: dict[str, Any], path: str) -> EndpointRequest | None:
    length = int(environ.get("CONTENT_LENGTH") or 0)
    if length > MAX_BODY_BYTES:
        return None
    body = environ["wsgi.input"].read(length) if length else b""
    headers = {key[5:].replace("_", "-").lower(): value for key, value in environ.items() if key.startswith("HTTP_")}
    return EndpointRequest(environ.get("REQUEST_METHOD", "GET"), path,
                           dict(parse_qsl(environ.get("QUERY_STRING", ""))), headers, body)


def _result(value: Any) -> tuple[int, Any]:
    """A handler's answer as (status, JSON-able body): ``(status, body)`` when the first
    of a pair is an HTTP status (an int from 100 to 599, not a bool), else 200."""
    if isinstance(value, tuple) and len(value) == 2 and type(value[0]) is int and 100 <= value[0] <= 599:
        status, value = value
    else:
        status = 200
    if isinstance(value, Observable):
        value = value.get()
    return status, value


def listener(listen: str) -> gevent.socket.socket:
    """A listening socket on ``HOST:PORT`` that several front processes can share.

    SO_REUSEPORT lets each front process (supervisord's ``numprocs``) bind the same port;
    the kernel spreads connections across them.
    """
    host, _, port = listen.rpartition(":")
    sock = gevent.socket.socket(gevent.socket.AF_INET, gevent.socket.SOCK_STREAM)
    sock.setsockopt(gevent.socket.SOL_SOCKET, gevent.socket.SO_REUSEADDR, 1)
    sock.setsockopt(gevent.socket.SOL_SOCKET, gevent.socket.SO_REUSEPORT, 1)
    sock.bind((host or "127.0.0.1", int(port)))
    sock.listen(LISTEN_BACKLOG)
    return sock


def serve(config: Config) -> None:
    """Serve until stopped; ``[front] listen`` is ``HOST:PORT``."""
    directory = endpoint_directory(config)
    feed = make_feed(config)
    feed.start()
    front = Front(EndpointDirectory(directory), observability_apps(feed, config.front_setting("access_token")))
    server = WSGIServer(listener(config.front_setting("listen")), front,
                        spawn=Pool(MAX_CONCURRENT_REQUESTS), handler_class=DeadlineHandler, log=None)
    gevent.signal_handler(signal.SIGTERM, server.stop)  # finish what is being served, then exit
    log.info("front_started", listen=config.front_setting("listen"), endpoints=str(directory))
    try:
        server.serve_forever()
    finally:
        feed.stop()
    log.info("front_stopped")
