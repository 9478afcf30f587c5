"""The front's optional access token in front of the data it shows."""

from __future__ import annotations

from pathlib import Path

import pytest

from api.access import require_token
from api.observability import observability_apps, route
from shared.config import ConfigError, parse

TOKEN = "s3cret-token-0123456789"


def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"data"]


def call(wsgi_app, **environ):
    answer = {}

    def start_response(status, headers):
        answer["status"], answer["headers"] = status, dict(headers)

    body = b"".join(wsgi_app({"PATH_INFO": "/metrics", "QUERY_STRING": "", **environ}, start_response))
    return answer["status"], answer["headers"], body


def test_a_request_without_the_token_gets_401_and_how_to_present_it():
    status, headers, body = call(require_token(app, TOKEN))
    assert status == "401 Unauthorized" and headers["WWW-Authenticate"] == 'Bearer realm="seawall"'
    assert b"Authorization: Bearer TOKEN" in body


@pytest.mark.parametrize("environ", [{"HTTP_AUTHORIZATION": f"Bearer {TOKEN}"},
                                     {"HTTP_AUTHORIZATION": f"bearer {TOKEN}"},
                                     {"QUERY_STRING": f"delay=500&access_token={TOKEN}"}])
def test_the_token_opens_in_a_header_or_the_query(environ):
    assert call(require_token(app, TOKEN), **environ)[0] == "200 OK"


def test_a_wrong_token_is_refused():
    assert call(require_token(app, TOKEN), HTTP_AUTHORIZATION=f"Bearer {TOKEN}x")[0] == "401 Unauthorized"


class Feed:
    def view(self):
        return {}


def test_with_a_token_only_the_page_and_its_files_stay_open():
    apps = observability_apps(Feed(), access_token=TOKEN)
    guarded = {path for path in ("/hystrix.stream", "/metrics", "/dashboard.json", "/dashboard.stream",
                                 "/dashboard", "/dashboard/static/dashboard.js")
               if call(route(apps, path), PATH_INFO=path)[0] == "401 Unauthorized"}
    assert guarded == {"/hystrix.stream", "/metrics", "/dashboard.json", "/dashboard.stream"}


def test_a_short_token_is_a_config_error_naming_the_key():
    with pytest.raises(ConfigError, match="front.access_token"):
        parse({"front": {"access_token": "short"}}, Path("/srv"))
