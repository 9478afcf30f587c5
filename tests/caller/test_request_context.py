"""The caller's side: request context and cache, request log, semaphore isolation,
fallback limits. In-process (semaphore commands need no broker); see test_reports for
what reaches the broker."""

from __future__ import annotations

import dataclasses
import time
from typing import Any, ClassVar

import gevent
import pytest

from api import (Command, CommandFailed, Rejected, current_context, request_context, spawn)
from api.context import LoggedCommand

TIMEOUT_MARGIN_S = 0.25


class Lookup(Command):
    """A cached in-memory lookup that counts its executions."""

    timeout_s = 1.0
    executions: ClassVar[list] = []
    name: str
    delay_s: float = 0.05

    def run(self) -> str:
        Lookup.executions.append(self.name)
        gevent.sleep(self.delay_s)
        if self.name == "broken":
            raise LookupError("no such name")
        return self.name.upper()

    def cache_key(self) -> str:
        return self.name


class Slow(Command):
    timeout_s = 0.2
    semaphore_max = 1
    seconds: float

    def run(self) -> str:
        gevent.sleep(self.seconds)
        return "done"


class SlowWithFallback(Slow):
    def fallback(self) -> str:
        return "fallback"


class Failing(Command):
    fallback_max = 1

    def run(self) -> None:
        raise ConnectionError("down")

    def fallback(self) -> str:
        gevent.sleep(0.1)
        return "fallback"


@pytest.fixture(autouse=True)
def fresh_counts():
    Lookup.executions = []


def test_four_concurrent_identical_cached_calls_run_once(client):
    with request_context():
        calls = [spawn(Lookup(name="a").execute, client) for _ in range(4)]
        gevent.joinall(calls, raise_error=True)
    assert [call.value for call in calls] == ["A"] * 4
    assert Lookup.executions == ["a"]


def test_keys_a_b_a_run_twice(client):
    with request_context():
        values = [Lookup(name=name, delay_s=0).execute(client) for name in "aba"]
    assert values == ["A", "B", "A"]
    assert Lookup.executions == ["a", "b"]


def test_each_request_context_has_its_own_cache(client):
    for _ in range(2):
        with request_context():
            Lookup(name="a", delay_s=0).execute(client)
    assert Lookup.executions == ["a", "a"]


def test_a_cached_failure_is_replayed(client):
    with request_context() as context:
        with pytest.raises(CommandFailed) as first:
            Lookup(name="broken", delay_s=0).execute(client)
        with pytest.raises(CommandFailed) as second:
            Lookup(name="broken", delay_s=0).execute(client)
    assert second.value is first.value
    assert Lookup.executions == ["broken"]
    assert [entry.events for entry in context.log] == [("FAILURE", "FALLBACK_MISSING"), ("RESPONSE_FROM_CACHE",)]


class OwnDeadline(Command):
    """run() lets out the Timeout of a client library's own deadline."""

    timeout_s = 1.0

    def run(self) -> None:
        with gevent.Timeout(0.01):
            gevent.sleep(1)


class Echo(Command):
    value: Any

    def run(self) -> Any:
        return self.value

    def cache_key(self) -> Any:
        return self.value


class ByArguments(Command):
    name: str

    def run(self) -> str:
        return self.name

    def cache_key(self) -> Any:
        return self.arguments


def test_a_queued_call_whose_run_lets_out_a_timeout_resolves_its_future(client):
    future = OwnDeadline().queue(client)

    with gevent.Timeout(2, AssertionError("the future never resolved")), pytest.raises(gevent.Timeout):
        future.get()


def test_an_observed_call_whose_run_lets_out_a_timeout_ends_its_stream_with_it(client):
    with pytest.raises(gevent.Timeout):
        OwnDeadline().observe(client).get()


def test_a_cached_call_its_caller_gave_up_on_is_run_by_the_next_call_with_its_key(client):
    """The first call's caller left on its own Timeout: that is no answer to share."""
    with request_context() as context:
        with gevent.Timeout(0.01, False):
            Lookup(name="a").execute(client)
        assert Lookup(name="a", delay_s=0).execute(client) == "A"
    assert Lookup.executions == ["a", "a"]
    assert [entry.events for entry in context.log] == [(), ("SUCCESS",)]


def test_a_call_waiting_on_a_cached_call_that_is_killed_runs_itself(client):
    with request_context():
        first = spawn(Lookup(name="a", delay_s=0.2).execute, client)
        gevent.idle()  # the first call runs, its future in the cache
        waiting = spawn(Lookup(name="a", delay_s=0).execute, client)
        gevent.idle()  # the second waits on that future
        first.kill()
        assert waiting.get(timeout=2) == "A"
    assert Lookup.executions == ["a", "a"]


def test_a_cancelled_observed_call_leaves_its_cache_key_to_the_next_call(client):
    with request_context():
        stream = Lookup(name="a").observe(client)
        gevent.idle()  # the call runs, its future in the cache
        stream.cancel()
        assert stream.get() == []  # cut before its value: the stream ends
        assert Lookup(name="a", delay_s=0).execute(client) == "A"
    assert Lookup.executions == ["a", "a"]


def test_equal_cache_keys_of_different_types_are_different_calls(client):
    with request_context():
        values = [Echo(value).execute(client) for value in (1, True, 1.0, 1)]
    assert [(type(value), value) for value in values] == [(int, 1), (bool, True), (float, 1.0), (int, 1)]


def test_an_unhashable_cache_key_is_an_error_naming_the_command(client):
    with request_context(), pytest.raises(TypeError) as caught:
        ByArguments(name="a").execute(client)
    assert str(caught.value) == ("ByArguments.cache_key() returned dict {'name': 'a'}, which is not hashable: "
                                 "return a str, a number or a tuple of them")


def test_a_cache_key_outside_a_request_context_is_a_clear_error(client):
    with pytest.raises(RuntimeError, match=r"request_context\(\)"):
        Lookup(name="a").execute(client)
    assert Lookup.executions == []


def test_greenlets_spawned_in_a_context_share_it(client):
    with request_context() as context:
        seen = spawn(current_context).get()
    assert seen is context


def test_semaphore_of_one_runs_one_call_and_rejects_the_other(client):
    calls = [gevent.spawn(Slow(seconds=0.05).execute, client) for _ in range(2)]
    gevent.joinall(calls)
    assert [call.value for call in calls if call.successful()] == ["done"]
    (rejected,) = [call.exception for call in calls if not call.successful()]
    assert isinstance(rejected, Rejected) and rejected.failure == "SEMAPHORE_REJECTED"


def test_semaphore_rejection_falls_back_when_there_is_a_fallback(client):
    calls = [gevent.spawn(SlowWithFallback(seconds=0.05).execute, client) for _ in range(2)]
    gevent.joinall(calls, raise_error=True)
    assert sorted(call.value for call in calls) == ["done", "fallback"]


def test_a_slow_semaphore_command_times_out_and_frees_its_caller_on_time(client):
    started_s = time.monotonic()
    assert SlowWithFallback(seconds=5.0).execute(client) == "fallback"
    assert time.monotonic() - started_s <= 0.2 + TIMEOUT_MARGIN_S
    assert Slow(seconds=0.0).execute(client) == "done", "the semaphore permit was not given back"


def test_semaphore_calls_each_get_their_whole_timeout_however_many_ran_before(client):
    """Regression: timers reused between calls kept only their remaining time, so once the
    calls before had spent ``timeout_s`` in total, every later call timed out at once."""
    for _ in range(8):  # 8 x 0.04 s spends the 0.2 s timeout one and a half times over
        assert Slow(seconds=0.04).execute(client) == "done"


def test_fallback_limit_of_one_rejects_the_second_concurrent_fallback(client):
    calls = [gevent.spawn(Failing().execute, client) for _ in range(2)]
    gevent.joinall(calls)
    assert [call.value for call in calls if call.successful()] == ["fallback"]
    (rejected,) = [call.exception for call in calls if not call.successful()]
    assert isinstance(rejected, Rejected) and rejected.failure == "FALLBACK_REJECTED"
    assert rejected.command == "Failing"


def test_the_request_log_lists_what_ran(client):
    with request_context() as context:
        Lookup(name="a", delay_s=0).execute(client)
        Lookup(name="a", delay_s=0).execute(client)
        SlowWithFallback(seconds=5.0).execute(client)
    assert [(entry.command, entry.events) for entry in context.log] == [
        ("Lookup", ("SUCCESS",)),
        ("Lookup", ("RESPONSE_FROM_CACHE",)),
        ("SlowWithFallback", ("TIMEOUT", "FALLBACK_SUCCESS")),
    ]
    assert context.log[2].latency_ms >= 200
    assert context.log_line().startswith("Lookup[SUCCESS][")


def test_a_request_log_entry_is_the_dataclass_its_fields_make(client):
    with request_context() as context:
        SlowWithFallback(seconds=5.0).execute(client)
    (entry,) = context.log
    rebuilt = LoggedCommand(entry.command, entry.events, entry.latency_ms)
    assert entry == rebuilt and hash(entry) == hash(rebuilt) and repr(entry) == repr(rebuilt)
    assert dataclasses.asdict(entry) == {"command": "SlowWithFallback", "events": ("TIMEOUT", "FALLBACK_SUCCESS"),
                                         "latency_ms": entry.latency_ms}
    with pytest.raises(dataclasses.FrozenInstanceError):
        entry.latency_ms = 0.0
