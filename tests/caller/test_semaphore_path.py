"""The semaphore path's shortcuts keep its behaviour: the broker set is opened once per
process (again after a close or a fork), breakers and reports are reached through the
one broker without a walk over the set (and still through the first heard with several),
and outcome reports are what they were, their latency rounded when taken rather than
on every call. In-process: semaphore commands need no broker."""

from __future__ import annotations

import os
from pathlib import Path

import gevent
import pytest

from api import BadRequest, Client, Command, CommandTimeout, Rejected, ShortCircuited, request_context
from api.reports import OutcomeReports
from shared.config import parse
from shared.events import Event

#: A breaker's sleep window long enough to outlast any test.
OPEN_FOR_MS = 60_000


class Noop(Command):
    def run(self) -> None:
        return None


class Fails(Command):
    def run(self) -> None:
        raise ConnectionError("down")

    def fallback(self) -> str:
        return "fallback"


class Refuses(Command):
    def run(self) -> None:
        raise BadRequest("no such thing")


class OwnTimeout(Command):
    """Lets a gevent.Timeout of its own (a BaseException) escape run()."""

    def run(self) -> None:
        with gevent.Timeout(0.01):
            gevent.sleep(1.0)


class Sleeps(Command):
    timeout_s = 1.0
    seconds: float

    def run(self) -> str:
        gevent.sleep(self.seconds)
        return "done"


def _taken(client: Client) -> dict:
    return client.connection.reports.take()


def _latencies_ms(outcomes: list) -> list[float]:
    return [latency_ms for _, latency_ms in outcomes]


# -- outcome reports and the request log --------------------------------------------------

def test_a_latency_is_rounded_to_the_microsecond_when_the_report_is_taken():
    reports = OutcomeReports()
    reports.add("Echo", Event.SUCCESS, 1.23456789)
    reports.add("Echo", Event.FALLBACK_SUCCESS)
    reports.add("Other", Event.FAILURE, 0.0004)

    assert reports.take() == {"Echo": [["SUCCESS", 1.235], ["FALLBACK_SUCCESS", 0.0]], "Other": [["FAILURE", 0.0]]}
    assert reports.take() == {}


def test_a_success_is_reported_once_with_its_latency_and_logged(client):
    with request_context() as context:
        assert Noop().execute(client) is None

    (outcome,) = _taken(client)["Noop"]
    assert outcome[0] == "SUCCESS" and 0 <= outcome[1] == round(outcome[1], 3)
    (entry,) = context.log
    assert (entry.command, entry.events) == ("Noop", ("SUCCESS",))


def test_a_failure_and_its_fallback_are_reported_and_logged(client):
    with request_context() as context:
        assert Fails().execute(client) == "fallback"

    outcomes = _taken(client)["Fails"]
    assert [event for event, _ in outcomes] == ["FAILURE", "FALLBACK_SUCCESS"]
    assert _latencies_ms(outcomes)[1] == 0.0
    assert context.log[0].events == ("FAILURE", "FALLBACK_SUCCESS")


def test_a_bad_request_is_reported_and_logged(client):
    with request_context() as context, pytest.raises(BadRequest):
        Refuses().execute(client)

    assert [event for event, _ in _taken(client)["Refuses"]] == ["BAD_REQUEST"]
    assert context.log[0].events == ("BAD_REQUEST",)


def test_a_base_exception_out_of_run_is_logged_without_events_and_not_reported(client):
    with request_context() as context, pytest.raises(gevent.Timeout):
        OwnTimeout().execute(client)

    assert "OwnTimeout" not in _taken(client)
    assert context.log[0].events == ()


# -- the broker set: opened once per process ----------------------------------------------

def test_a_call_after_close_opens_the_broker_again(client):
    Noop().execute(client)
    client.close()
    assert client.connection._calls is None

    Noop().execute(client)

    assert client.connection._calls is not None
    assert [event for event, _ in _taken(client)["Noop"]] == ["SUCCESS", "SUCCESS"]


def test_a_forked_child_opens_its_own_connection_and_reports_only_its_own_outcomes(client):
    Noop().execute(client)  # opened in this process; its outcome waits for the next report
    parents_socket = client.connection._calls
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child's result travels through the pipe
        status = 1
        try:
            Noop().execute(client)
            connection = client.connection
            own_outcomes = connection.reports.take()  # the child's one call, not its parent's too
            if connection._calls not in (None, parents_socket) and own_outcomes == {
                    "Noop": [["SUCCESS", own_outcomes["Noop"][0][1]]]}:
                status = 0
        finally:
            os.write(write_end, bytes([status]))
            os._exit(0)
    os.close(write_end)
    try:
        assert os.read(read_end, 1) == b"\x00", "the child used its parent's connection"
    finally:
        os.close(read_end)
        os.waitpid(child, 0)
    assert client.connection._calls is parents_socket  # the parent's own, untouched


# -- breakers and reports: the one broker, or the first heard ----------------------------

def test_an_open_breaker_short_circuits_semaphore_calls(client):
    client.connection.breakers.replace({"Noop": ("OPEN", OPEN_FOR_MS)})

    with pytest.raises(ShortCircuited):
        Noop().execute(client)

    assert [event for event, _ in _taken(client)["Noop"]] == ["SHORT_CIRCUITED", "FALLBACK_MISSING"]


def test_after_a_reconnect_breakers_and_reports_are_still_the_brokers(client):
    Noop().execute(client)
    client.connection._reconnect()
    client.connection.breakers.replace({"Noop": ("OPEN", OPEN_FOR_MS)})

    with pytest.raises(ShortCircuited):
        Noop().execute(client)
    assert client.breakers is client.connection.breakers
    assert [event for event, _ in _taken(client)["Noop"]] == ["SUCCESS", "SHORT_CIRCUITED", "FALLBACK_MISSING"]


@pytest.fixture
def two_broker_client(tmp_path):
    other = {"front": f"ipc://{tmp_path}/b/front.sock", "events": f"ipc://{tmp_path}/b/events.sock"}
    config = parse({"run_dir": "run", "brokers": {"b": other}}, Path(tmp_path))
    client = Client(config)
    yield client
    client.close()


def test_with_several_brokers_semaphore_calls_use_the_first_heard(two_broker_client):
    client = two_broker_client
    first, second = client.brokers.connections
    Noop().execute(client)
    assert [event for event, _ in first.reports.take()["Noop"]] == ["SUCCESS"]

    first.broker_down = True  # as its watcher marks it after a silence
    second.breakers.replace({"Noop": ("OPEN", OPEN_FOR_MS)})
    with pytest.raises(ShortCircuited):
        Noop().execute(client)

    assert first.reports.take() == {}
    assert [event for event, _ in second.reports.take()["Noop"]] == ["SHORT_CIRCUITED", "FALLBACK_MISSING"]
    first.broker_down = False
    assert Noop().execute(client) is None  # the first's breaker is closed
    assert [event for event, _ in first.reports.take()["Noop"]] == ["SUCCESS"]


# -- settings: cached per command class, dropped when runtime settings change -------------

def test_a_runtime_timeout_applies_to_the_next_semaphore_call(client):
    assert Sleeps(seconds=0.1).execute(client) == "done"

    client._apply_overrides({"commands.Sleeps.timeout_s": 0.05})

    with pytest.raises(CommandTimeout, match="Sleeps did not finish within 0.05 s"):
        Sleeps(seconds=0.1).execute(client)
    client._apply_overrides({})
    assert Sleeps(seconds=0.1).execute(client) == "done"


def test_a_runtime_semaphore_max_applies_to_the_next_semaphore_call(client):
    first = gevent.spawn(Sleeps(seconds=0.1).execute, client)
    gevent.sleep(0)  # the first call holds a permit of the default semaphore_max
    assert Sleeps(seconds=0.0).execute(client) == "done"

    client._apply_overrides({"commands.Sleeps.semaphore_max": 1})

    with pytest.raises(Rejected, match="1 calls already run"):
        Sleeps(seconds=0.0).execute(client)
    assert first.get() == "done"


class SaysWhy(Command):
    """A fallback that answers by why it runs, as Hystrix's getExecutionException() lets it."""

    timeout_s = 0.05
    seconds: float = 0.0

    def run(self) -> str:
        gevent.sleep(self.seconds)
        raise ConnectionError("db down")

    def fallback(self) -> tuple[str, str | None]:
        error = self.execution_error
        assert error is not None
        return error.failure.value, str(error.cause) if error.cause else None


def test_a_fallback_knows_why_it_runs(client):
    assert SaysWhy().execution_error is None
    assert SaysWhy().execute(client) == ("FAILURE", "ConnectionError: db down")
    assert SaysWhy(seconds=1.0).execute(client) == ("TIMEOUT", None)


class TunedNoop(Noop):
    breaker_volume_threshold = 4


def test_a_semaphore_class_is_declared_to_every_broker(two_broker_client):
    """The broker semaphore commands report to changes when the first heard goes silent:
    declared to the first only, the second's breaker ignored what the class sets."""
    TunedNoop().execute(two_broker_client)
    assert [connection.declared for connection in two_broker_client.brokers.connections] == \
        [{"TunedNoop": {"breaker_volume_threshold": 4}}] * 2
