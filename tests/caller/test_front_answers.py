"""What the HTTP front answers for what a handler returns or raises (the WSGI app in this
process, endpoint modules in a temp dir; no broker: the handlers call nothing)."""

from __future__ import annotations

import io
import json
import os
import sys
import textwrap
import time
from typing import Any

import gevent
import pytest
from structlog.testing import capture_logs

from api.endpoints import EndpointDirectory, EndpointRequest
from api.front import MAX_BODY_BYTES, Front

HANDLERS = textwrap.dedent('''
    import sys

    import gevent

    from api import BadRequest, CommandFailed, CommandTimeout, ShortCircuited, compose
    from api.errors import RemoteCause

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

    def exits(request):
        raise SystemExit(3)

    def own_deadline(request):
        with gevent.Timeout(0.01):
            gevent.sleep(1)

    def stuck(request):
        gevent.sleep(30)

    def failed(request):
        cause = RemoteCause("ValueError", "db password=hunter2")
        raise CommandFailed(f"GetUser failed: {cause}", command="GetUser", cause=cause)

    def short_circuited(request):
        raise ShortCircuited("GetUser: the breaker is OPEN", command="GetUser")

    def timed_out(request):
        raise CommandTimeout("GetUser got no answer within 1 s", command="GetUser")

    def a_set(request):
        return {"ids": {1, 2}}

    def unread(request):
        return {"user": compose.just(7)}

    def tuple_keys(request):
        return {(1, 2): "a"}

    def no_content(request):
        return 204, None

    def status_in_observable(request):
        return compose.just((404, {"error": "no such user"}))

    def body_length(request):
        return {"body": request.body.decode()}

    def name_error(request):
        return {"value": valeu}

    def stage_exits(request):
        return compose.map(compose.just(1), lambda value: sys.exit(3))

    def interim(request):
        return 100, {"a": 1}

    ROUTES = {"bad": bad, "broken": broken, "created": created, "pair": pair, "flag": flag,
              "nan": not_a_number, "exits": exits, "own_deadline": own_deadline, "stuck": stuck,
              "failed": failed, "short_circuited": short_circuited, "timed_out": timed_out, "set": a_set,
              "unread": unread, "tuple_keys": tuple_keys, "no_content": no_content,
              "status_in_observable": status_in_observable, "body": body_length, "name_error": name_error,
              "stage_exits": stage_exits, "interim": interim}
''')


@pytest.fixture
def front(tmp_path):
    (tmp_path / "t.py").write_text(HANDLERS)
    return Front(EndpointDirectory(tmp_path), request_timeout_s=0.3)


def answer(front: Front, path: str, **environ: Any) -> tuple[str, list[tuple[str, str]], bytes]:
    started: list[tuple[str, list[tuple[str, str]]]] = []
    environ = {"PATH_INFO": path, "REQUEST_METHOD": "GET", "QUERY_STRING": "", "wsgi.input": io.BytesIO(),
               **environ}
    body = b"".join(front(environ, lambda status, headers: started.append((status, headers))))
    return started[0][0], started[0][1], body


def get(front: Front, path: str) -> tuple[str, object]:
    status, _, body = answer(front, path)
    return status, json.loads(body)


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


def test_system_exit_in_an_endpoint_is_its_500_not_the_fronts_end(front):
    """Raised in a request's greenlet, gevent would pass it to the main one: the front would exit."""
    assert get(front, "/t/exits") == ("500 Internal Server Error", {"error": "SystemExit: 3", "path": "/t/exits"})
    assert get(front, "/t/created")[0] == "201 Created"


def test_a_timeout_of_the_endpoints_own_is_its_504_in_json(front):
    status, body = get(front, "/t/own_deadline")
    assert status == "504 Gateway Timeout" and body["error"] == "Timeout: 0.01 seconds"


def test_an_endpoint_past_the_request_deadline_is_answered_504_and_freed(front):
    started_s = time.monotonic()
    with capture_logs() as logs:
        status, body = get(front, "/t/stuck")
    assert time.monotonic() - started_s < 5.0  # the handler sleeps 30 s
    assert status == "504 Gateway Timeout"
    assert body["error"] == "the endpoint did not answer within 0.3 s ([front] request_timeout_s)"
    # (other tests' clients may log meanwhile: broker_unreachable)
    assert [line["path"] for line in logs if line["event"] == "request_timed_out"] == ["/t/stuck"]


@pytest.mark.parametrize(("path", "status", "failure"), [
    ("/t/failed", "502 Bad Gateway", "FAILURE"),
    ("/t/short_circuited", "503 Service Unavailable", "SHORT_CIRCUITED"),
    ("/t/timed_out", "504 Gateway Timeout", "TIMEOUT"),
])
def test_a_command_error_is_the_dependencys_status_and_its_cause_stays_in_the_log(front, path, status, failure):
    with capture_logs() as logs:
        answered, body = get(front, path)
    assert answered == status
    assert body == {"error": f"{body['error'].split(':')[0]}: GetUser {failure}", "command": "GetUser",
                    "failure": failure, "path": path}
    assert "hunter2" not in json.dumps(body)
    (line,) = [line for line in logs if line["event"] == "endpoint_failed"]
    assert line["where"].startswith("t.py:")
    if failure == "FAILURE":
        assert "hunter2" in line["error"]  # the on-call engineer still reads the cause


@pytest.mark.parametrize(("path", "named"), [
    ("/t/set", "a set is not JSON"),
    ("/t/unread", "a Observable is not JSON (an Observable: return it, or its .get(), not inside another value)"),
    ("/t/tuple_keys", "keys must be str, int, float, bool or None"),
])
def test_an_answer_that_is_not_json_is_a_500_naming_what(front, path, named):
    """A set or an unread Observable went out as its str() with a 200; tuple keys as a bare text 500."""
    status, body = get(front, path)
    assert status == "500 Internal Server Error" and named in body["error"]


def test_a_no_content_answer_has_no_body(front):
    status, headers, body = answer(front, "/t/no_content")
    assert status == "204 No Content" and body == b"" and headers == []


def test_an_observable_that_emits_a_status_and_body_sets_the_status(front):
    assert get(front, "/t/status_in_observable") == ("404 Not Found", {"error": "no such user"})


def test_a_chunked_body_is_read_and_a_long_one_refused(front):
    """gevent gives a chunked body with no CONTENT_LENGTH: it was read as empty."""
    chunked = {"HTTP_TRANSFER_ENCODING": "chunked", "REQUEST_METHOD": "POST"}
    status, _, body = answer(front, "/t/body", **chunked, **{"wsgi.input": io.BytesIO(b"hello")})
    assert (status, json.loads(body)) == ("200 OK", {"body": "hello"})
    status, _, body = answer(front, "/t/body", **chunked, **{"wsgi.input": io.BytesIO(b"x" * (MAX_BODY_BYTES + 1))})
    assert status == "413 Request Entity Too Large"


def test_an_endpoint_failure_is_logged_with_the_file_and_line(front):
    with capture_logs() as logs:
        status, body = get(front, "/t/name_error")
    assert status == "500 Internal Server Error" and body["error"] == "NameError: name 'valeu' is not defined"
    line_number = HANDLERS.splitlines().index("    return {\"value\": valeu}") + 1
    (line,) = [line for line in logs if line["event"] == "endpoint_failed"]
    assert line["where"] == f"t.py:{line_number}"


def test_a_module_with_a_dataclass_loads(tmp_path):
    """dataclasses look the class's module up in sys.modules: an endpoint module must be there."""
    (tmp_path / "d.py").write_text(textwrap.dedent('''
        from __future__ import annotations
        from dataclasses import dataclass

        @dataclass
        class Page:
            title: str

        ROUTES = {"page": lambda request: {"title": Page("home").title}}
    '''))
    assert get(Front(EndpointDirectory(tmp_path)), "/d/page") == ("200 OK", {"title": "home"})


def test_a_fix_of_the_same_length_within_the_same_second_is_served(tmp_path, monkeypatch):
    """A cached .pyc is checked by whole-second mtime and size: the old code stayed."""
    monkeypatch.setattr(sys, "dont_write_bytecode", False)  # as under supervisord: .pyc files written
    module = tmp_path / "r.py"
    module.write_text('ROUTES = {"x": lambda request: {"value": valeu}}\n')
    clock = [0.0]
    front = Front(EndpointDirectory(tmp_path, clock=lambda: clock[0]))
    assert get(front, "/r/x")[0] == "500 Internal Server Error"
    first_ns = module.stat().st_mtime_ns
    module.write_text('ROUTES = {"x": lambda request: {"value": 12345}}\n')  # the same length
    os.utime(module, ns=(first_ns + 1000, first_ns + 1000))  # within the same second
    clock[0] += 2.0
    assert get(front, "/r/x") == ("200 OK", {"value": 12345})


@pytest.mark.parametrize(("text", "user_id"), [("7", 7), ("²", None), ("99999999999999999999999", None),
                                               (str(2 ** 63), None), (str(2 ** 63 - 1), 2 ** 63 - 1), ("-1", None)])
def test_the_demos_user_id_is_a_64_bit_non_negative_integer_else_a_400(text, user_id):
    """"²" passes str.isdigit and int() refuses it; a 23-digit id overflowed msgpack: both were 500s."""
    from demo.views import user_id_of

    assert user_id_of(EndpointRequest("GET", "/tv/home", {"user": text}, {})) == user_id


def test_system_exit_in_a_composition_stage_is_the_requests_500(front):
    """Let out of a stage's greenlet, gevent hands SystemExit to the main one: the front exited."""
    served = gevent.spawn(get, front, "/t/stage_exits")  # a request's greenlet, as the server's
    served.join(5)  # a SystemExit let out of the stage's greenlet would be raised here, in the main one
    assert served.value == ("500 Internal Server Error", {"error": "SystemExit: 3", "path": "/t/stage_exits"})


def test_a_pair_starting_with_an_interim_status_is_data(front):
    """A 1xx has no body: sent as the status, its JSON was read as the next response's start."""
    assert get(front, "/t/interim") == ("200 OK", [100, {"a": 1}])


def test_an_endpoint_module_keeps_its_own_annotations(tmp_path):
    """Compiled with the front's `from __future__ import annotations`, every annotation in a
    module was a string: get_type_hints and singledispatch failed on a local class."""
    (tmp_path / "a.py").write_text(textwrap.dedent('''
        from typing import NamedTuple, get_type_hints

        def handler(request):
            class Point(NamedTuple):
                x: int

            def area(point: Point) -> int:
                return point.x

            return {"hint": get_type_hints(area)["point"].__name__}

        ROUTES = {"hint": handler}
    '''))
    assert get(Front(EndpointDirectory(tmp_path)), "/a/hint") == ("200 OK", {"hint": "Point"})


def test_a_module_the_fronts_own_paths_shadow_is_refused_saying_so(tmp_path):
    """A module metrics.py loaded and was listed at /, but /metrics/... served Prometheus."""
    (tmp_path / "metrics.py").write_text('ROUTES = {"x": lambda request: 1}\n')
    (tmp_path / "ok.py").write_text('ROUTES = {"x": lambda request: 1}\n')
    directory = EndpointDirectory(tmp_path)
    Front(directory, {"/metrics": lambda environ, start_response: [b""]})

    assert directory.routes() == ["/ok/x"]
    module, handler = directory.resolve("/metrics/x")
    assert handler is None and module is not None
    assert module.error == "endpoint module metrics.py is shadowed by the front's own /metrics: rename it"
