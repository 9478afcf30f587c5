"""What the HTTP front answers for what a handler returns or raises (the WSGI app in this
process, endpoint modules in a temp dir; no broker: the handlers call nothing)."""

from __future__ import annotations

import io
import json
import textwrap

import pytest

from api.endpoints import EndpointDirectory
from api.front import Front

HANDLERS = textwrap.dedent('''
    from api import BadRequest

    def bad(request):
        raise BadRequest("user must be a number")

    def broken(request):
        raise KeyError("user")

    def created(request):
        return 201, {"id": 7}

    def pair(request):
        return 3, ["three"]

    def flag(request):
        return True, {"on": 1}

    def not_a_number(request):
        return {"ratio": float("nan")}

    ROUTES = {"bad": bad, "broken": broken, "created": created, "pair": pair, "flag": flag,
              "nan": not_a_number}
''')


@pytest.fixture
def front(tmp_path):
    (tmp_path / "t.py").write_text(HANDLERS)
    return Front(EndpointDirectory(tmp_path))


def get(front: Front, path: str) -> tuple[str, object]:
    started: list[str] = []
    environ = {"PATH_INFO": path, "REQUEST_METHOD": "GET", "QUERY_STRING": "", "wsgi.input": io.BytesIO()}
    body = b"".join(front(environ, lambda status, headers: started.append(status)))
    return started[0], json.loads(body)


def test_a_bad_request_is_answered_400_naming_it(front):
    assert get(front, "/t/bad") == ("400 Bad Request", {"error": "BadRequest: user must be a number",
                                                        "command": None, "path": "/t/bad"})


def test_another_exception_is_the_requests_500(front):
    assert get(front, "/t/broken") == ("500 Internal Server Error", {"error": "KeyError: 'user'", "path": "/t/broken"})


def test_a_pair_starting_with_an_http_status_sets_the_status(front):
    assert get(front, "/t/created") == ("201 Created", {"id": 7})


@pytest.mark.parametrize(("path", "body"), [("/t/pair", [3, ["three"]]), ("/t/flag", [True, {"on": 1}])],
                         ids=["a small int", "a bool"])
def test_a_pair_starting_with_anything_else_is_data(front, path, body):
    assert get(front, path) == ("200 OK", body)


def test_an_answer_json_cannot_carry_is_a_500_saying_why(front):
    status, body = get(front, "/t/nan")

    assert status == "500 Internal Server Error"
    assert body["path"] == "/t/nan"
    assert body["error"].startswith("the endpoint's answer is not JSON: Out of range float values are not JSON")
