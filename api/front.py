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

from api.compose import Observable
from api.context import request_context
from api.endpoints import EndpointDirectory, EndpointRequest, where_in_endpoints
from api.errors import BadRequest, CommandError, CommandTimeout, Rejected, ShortCircuited
from api.http_handler import DeadlineHandler, DrainingServer
from api.observability import WSGIApp, make_feed, observability_apps, route
from shared.config import Config
from shared.logging import LOG_EACH_CALL, get_logger

log = get_logger("api.front")

#: Connections served at once (a kept-alive one holds its place until
#: ``api.http_handler.IDLE_TIMEOUT_S``); more wait in the listen backlog.
MAX_CONCURRENT_REQUESTS = 1000
#: Connections waiting to be accepted, per front process.
LISTEN_BACKLOG = 1024
#: Largest request body read.
MAX_BODY_BYTES = 1024 * 1024
#: Statuses whose response has no body (RFC 9110): sent without one, or gevent refuses them.
NO_BODY_STATUSES = frozenset({204, 304})
#: On SIGTERM, a request being served gets this long past the request deadline to finish.
DRAIN_GRACE_S = 1.0

StartResponse = Callable[[str, list[tuple[str, str]]], Any]


def endpoint_directory(config: Config) -> Path:
    """``[front] endpoints``, relative to the config file."""
    base = Path(config.source).resolve().parent if config.source else Path.cwd()
    return base / config.front_setting("endpoints")


class RequestTimedOut(gevent.Timeout):
    """The front's deadline on one request: told apart from a Timeout of the endpoint's own."""


class Front:
    def __init__(self, endpoints: EndpointDirectory, apps: Mapping[str, WSGIApp] | None = None,
                 request_timeout_s: float = 10.0) -> None:
        self.endpoints = endpoints
        self.apps = dict(apps or {})
        endpoints.shadowed = lambda module_name: route(self.apps, f"/{module_name}/") is not None
        #: an endpoint that has not answered by then gets 504, and its greenlet is freed
        #: (one stuck for ever, say on an Observable read by two stages, would hold one of
        #: MAX_CONCURRENT_REQUESTS places for good)
        self.request_timeout_s = request_timeout_s

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        started_s = time.monotonic()
        path = environ.get("PATH_INFO", "/")
        app = route(self.apps, path)
        if app is not None:
            return app(environ, start_response)
        status, body = self._respond(environ, path)
        try:
            payload = b"" if status in NO_BODY_STATUSES else \
                json.dumps(body, default=_not_json, allow_nan=False).encode()
        except (TypeError, ValueError, RecursionError) as exc:
            # NaN or infinity (JSON has neither), a value that contains itself or nests too
            # deep, keys not str/int/float/bool, a set, an Observable not read...
            log.error("endpoint_answer_not_json", path=path, error=f"{type(exc).__name__}: {exc}")
            status, payload = 500, json.dumps({"error": f"the endpoint's answer is not JSON: {exc}",
                                               "path": path}).encode()
        start_response(f"{status} {_reason(status)}", [] if status in NO_BODY_STATUSES else
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
            deadline = RequestTimedOut(self.request_timeout_s)
            deadline.start()
            try:
                status, body = _result(handler(request))
            except BadRequest as exc:  # the request's own fault: no error line, the caller is told
                return 400, {"error": f"BadRequest: {exc}", "command": exc.command, "path": path}
            except RequestTimedOut as exc:
                if exc is not deadline:
                    raise  # another request's? never: each runs in its own greenlet
                log.error("request_timed_out", path=path, request_timeout_s=self.request_timeout_s,
                          commands=context.log_line())
                return 504, {"error": f"the endpoint did not answer within {self.request_timeout_s:g} s "
                                      "([front] request_timeout_s)", "path": path}
            except CommandError as exc:  # a command without a fallback: the dependency's status, not a bug
                status = _status_of_command_error(exc)
                log.warning("endpoint_failed", path=path, status=status, error=f"{type(exc).__name__}: {exc}",
                            where=where_in_endpoints(exc), commands=context.log_line())
                # The cause stays in the log: a remote exception's message is no device's business.
                return status, {"error": f"{type(exc).__name__}: {exc.command} {exc.failure.value}",
                                "command": exc.command, "failure": exc.failure.value, "path": path}
            except (Exception, gevent.Timeout, SystemExit) as exc:  # noqa: BLE001 - this request's 500
                # SystemExit too: raised in a request's greenlet, gevent would end the process
                # with it, and every request in flight. A Timeout of the endpoint's own is its 504.
                status = 504 if isinstance(exc, gevent.Timeout) else 500
                error = f"{type(exc).__name__}: {exc}"
                log.error("endpoint_failed", path=path, status=status, error=error, where=where_in_endpoints(exc),
                          commands=context.log_line())
                return status, {"error": error, "path": path}
            finally:
                deadline.close()
                context.end_streams()
            if context.log and LOG_EACH_CALL:
                log.debug("request_commands", path=path, commands=context.log_line())
        return status, body


def _status_of_command_error(error: CommandError) -> int:
    """A dependency that did not answer in time is a gateway timeout (504); one refused
    now, by its breaker or its full pool, is unavailable (503); one that failed is a
    bad gateway (502)."""
    if isinstance(error, CommandTimeout):
        return 504
    if isinstance(error, (ShortCircuited, Rejected)):
        return 503
    return 502


def _not_json(value: Any) -> Any:
    """``json.dumps``'s ``default``: an error naming what is not JSON (``str()`` of it sent
    a set, or a forgotten ``.get()``, as a string with a 200)."""
    hint = " (an Observable: return it, or its .get(), not inside another value)" \
        if isinstance(value, Observable) else ""
    raise TypeError(f"a {type(value).__name__} is not JSON{hint}")


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:  # a status a handler made up, within 100-599
        return "Status"


def _request(environ: dict[str, Any], path: str) -> EndpointRequest | None:
    length = int(environ.get("CONTENT_LENGTH") or 0)
    if length > MAX_BODY_BYTES:
        return None
    if length:
        body = environ["wsgi.input"].read(length)
    elif "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower():  # no length given: read to its end
        body = environ["wsgi.input"].read(MAX_BODY_BYTES + 1)
        if len(body) > MAX_BODY_BYTES:
            return None
    else:
        body = b""
    headers = {key[5:].replace("_", "-").lower(): value for key, value in environ.items() if key.startswith("HTTP_")}
    return EndpointRequest(environ.get("REQUEST_METHOD", "GET"), path,
                           dict(parse_qsl(environ.get("QUERY_STRING", ""))), headers, body)


def _result(value: Any) -> tuple[int, Any]:
    """A handler's answer as (status, JSON-able body): ``(status, body)`` when the first
    of a pair is a final HTTP status (an int from 200 to 599, not a bool: a 1xx is
    interim and has no body), else 200. An Observable is read first, so one that emits
    ``(status, body)`` sets the status too."""
    if isinstance(value, Observable):
        value = value.get()
    if isinstance(value, tuple) and len(value) == 2 and type(value[0]) is int and 200 <= value[0] <= 599:
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
    request_timeout_s = config.front_setting("request_timeout_s")
    front = Front(EndpointDirectory(directory), observability_apps(feed, config.front_setting("access_token")),
                  request_timeout_s)
    server = DrainingServer(listener(config.front_setting("listen")), front,
                        spawn=Pool(MAX_CONCURRENT_REQUESTS), handler_class=DeadlineHandler, log=None)
    # On SIGTERM, stop taking connections and give what is being served its deadline to
    # finish. gevent's own stop_timeout, 1 s, cut longer requests off with a bare 500;
    # serve_forever() stops the server again on its way out, so the instance's is set.
    server.stop_timeout = request_timeout_s + DRAIN_GRACE_S
    gevent.signal_handler(signal.SIGTERM, server.stop)
    log.info("front_started", listen=config.front_setting("listen"), endpoints=str(directory))
    try:
        server.serve_forever()
    finally:
        feed.stop()
    log.info("front_stopped")
