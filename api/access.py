"""An optional bearer token in front of the data the front shows about the system.

``/hystrix.stream``, ``/metrics`` and the dashboard's data tell anyone who can reach them
which dependencies exist and how they fail. They listen on 127.0.0.1 by default; where
an operator opens the front to a network, ``[front] access_token`` makes them answer only
requests that carry it: ``Authorization: Bearer TOKEN`` (Prometheus' ``bearer_token``) or
``?access_token=TOKEN`` (for clients that cannot set headers: EventSource, the Hystrix
Dashboard, Turbine).
"""

from __future__ import annotations

import hmac
from typing import Any, Callable, Iterable
from urllib.parse import parse_qs

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

#: Shortest token accepted in the config: guessing must not be practical.
MIN_TOKEN_CHARS = 16


def presented_token(environ: dict[str, Any]) -> str:
    header = environ.get("HTTP_AUTHORIZATION", "")
    if header[:7].lower() == "bearer ":
        return header[7:].strip()
    return parse_qs(environ.get("QUERY_STRING", "")).get("access_token", [""])[0]


def require_token(app: WSGIApp, token: str) -> WSGIApp:
    """``app``, answering 401 to a request without ``token``."""
    expected = token.encode()

    def guarded(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if hmac.compare_digest(presented_token(environ).encode(), expected):
            return app(environ, start_response)
        body = b"401: this needs the front's access token (Authorization: Bearer TOKEN or ?access_token=TOKEN)\n"
        start_response("401 Unauthorized", [("Content-Type", "text/plain; charset=utf-8"),
                                            ("Content-Length", str(len(body))),
                                            ("WWW-Authenticate", 'Bearer realm="seawall"')])
        return [body]

    return guarded
