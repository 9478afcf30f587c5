"""Running one call in a worker (workers.execution) and finding its commands (workers.registry)."""

from __future__ import annotations

import asyncio
import sys
import textwrap
import time
import uuid

import gevent
import pytest

from api.command import Command
from shared import protocol
from shared.events import Event
from workers.execution import run_call
from workers.registry import RegistryError, load_commands
from sample_commands import Echo, Fail, Invalid


class ReturnsSet(Command):
    dependency = "sample"

    def run(self) -> set:
        return {1, 2}


class ReturnsTooMuch(Command):
    dependency = "sample"

    def run(self) -> str:
        return "x" * (protocol.MAX_PAYLOAD_BYTES + 1)


class Hangs(Command):
    dependency = "sample"

    def run(self) -> None:
        gevent.sleep(5)


class OwnTimeout(Command):
    """Lets a gevent.Timeout of its own escape run(), as a client library with a deadline would."""

    dependency = "sample"

    def run(self) -> None:
        raise gevent.Timeout(1)


class Cancelled(Command):
    """Lets out a BaseException that is not an Exception, as code running its own asyncio loop can."""

    dependency = "sample"

    def run(self) -> None:
        raise asyncio.CancelledError("the loop was cancelled")


COMMANDS = {command.key: command
            for command in (Echo, Fail, Invalid, ReturnsSet, ReturnsTooMuch, Hangs, OwnTimeout, Cancelled)}


def call_of(command: str, arguments: dict | None = None, timeout_ms: int = 1000, payload: bytes | None = None):
    if payload is None:
        payload = protocol.encode_value(arguments or {})
    return protocol.Call(call_id=1, command=command, timeout_ms=timeout_ms, payload=payload)


def run(call: protocol.Call):
    return run_call(COMMANDS, call, "sample")


# -- outcomes ------------------------------------------------------------------------


def test_success_encodes_the_returned_value():
    outcome, execution_ms, payload = run(call_of("Echo", {"text": "hello"}))

    assert outcome is Event.SUCCESS
    assert protocol.decode_value(payload) == "HELLO"
    assert execution_ms >= 0


def test_a_base_exception_from_run_is_the_calls_failure():
    outcome, _, payload = run(call_of("Cancelled"))

    assert outcome is Event.FAILURE
    assert protocol.decode_error(payload) == ("CancelledError", "the loop was cancelled")


def test_exception_is_a_failure_with_its_type_and_message():
    outcome, _, payload = run(call_of("Fail", {"message": "backend down"}))

    assert outcome is Event.FAILURE
    assert protocol.decode_error(payload) == ("ValueError", "backend down")


def test_bad_request_is_reported_as_bad_request():
    outcome, _, payload = run(call_of("Invalid"))

    assert outcome is Event.BAD_REQUEST
    assert protocol.decode_error(payload) == ("BadRequest", "user_id must be positive")


def test_unknown_command_is_a_failure_listing_what_the_pool_runs():
    outcome, _, payload = run_call({"Echo": Echo, "Fail": Fail}, call_of("Nope"), "sample")

    assert outcome is Event.FAILURE
    assert protocol.decode_error(payload) == (
        "UnknownCommand",
        "pool 'sample' does not run command 'Nope' (it runs: Echo, Fail)",
    )


def test_undecodable_arguments_are_a_bad_arguments_failure():
    outcome, _, payload = run(call_of("Echo", payload=b"\xc1"))

    type_name, message = protocol.decode_error(payload)
    assert (outcome, type_name) == (Event.FAILURE, "BadArguments")
    assert message.startswith("payload is not valid msgpack")


def test_mismatched_arguments_are_a_bad_arguments_failure():
    outcome, _, payload = run(call_of("Echo", {"txt": "hello"}))

    assert outcome is Event.FAILURE
    assert protocol.decode_error(payload) == (
        "BadArguments",
        "Echo takes arguments ['text'], the caller sent ['txt']: ['txt'] unknown here "
        "(is the caller newer than this worker?)",
    )


def test_unsendable_return_value_is_an_unsendable_result_failure():
    outcome, _, payload = run(call_of("ReturnsSet"))

    assert outcome is Event.FAILURE
    assert protocol.decode_error(payload) == (
        "UnsendableResult",
        "ReturnsSet returned set, which cannot be sent: can not serialize 'set' object",
    )


def test_oversized_return_value_is_a_result_too_large_failure():
    outcome, _, payload = run(call_of("ReturnsTooMuch"))

    type_name, message = protocol.decode_error(payload)
    assert (outcome, type_name) == (Event.FAILURE, "ResultTooLarge")
    assert message.endswith(f"over the {protocol.MAX_PAYLOAD_BYTES} limit")


def test_run_blocking_past_its_deadline_is_interrupted_as_a_timeout():
    started_s = time.perf_counter()

    outcome, execution_ms, payload = run(call_of("Hangs", timeout_ms=20))

    assert outcome is Event.TIMEOUT
    assert protocol.decode_error(payload) == ("Timeout", "Hangs was interrupted at its deadline (20 ms)")
    assert 15 <= execution_ms < 1000
    assert time.perf_counter() - started_s < 1.0


def test_a_call_with_no_time_left_times_out_at_once_and_the_next_gets_its_whole_deadline():
    outcome, _, payload = run(call_of("Hangs", timeout_ms=0))  # a peer may send 0 ms
    assert outcome is Event.TIMEOUT
    assert protocol.decode_error(payload) == ("Timeout", "Hangs was interrupted at its deadline (0 ms)")

    outcome, execution_ms, _ = run(call_of("Hangs", timeout_ms=50))  # a timer of its own, not the last one's
    assert outcome is Event.TIMEOUT and execution_ms >= 45


def test_commands_own_gevent_timeout_is_a_failure_not_an_escape():
    outcome, _, payload = run(call_of("OwnTimeout"))

    assert outcome is Event.FAILURE
    assert protocol.decode_error(payload)[0] == "Timeout"


# -- the registry --------------------------------------------------------------------


@pytest.fixture
def write_module(tmp_path, monkeypatch):
    """Write a throwaway module on sys.path; returns its unique name."""
    monkeypatch.syspath_prepend(str(tmp_path))
    written: list[str] = []

    def write(source: str, prefix: str = "commands") -> str:
        name = f"{prefix}_{uuid.uuid4().hex}"
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
        written.append(name)
        return name

    yield write
    for name in written:
        sys.modules.pop(name, None)


def test_load_commands_picks_only_commands_of_the_dependency(write_module):
    module = write_module("""
        from api import Command

        class GetRatings(Command):
            dependency = "ratings"

        class GetUser(Command):
            dependency = "users"

        class Local(Command):
            pass
    """)

    commands = load_commands([module], "ratings")

    assert list(commands) == ["GetRatings"]
    assert commands["GetRatings"].__module__ == module


def test_load_commands_ignores_commands_imported_from_elsewhere(write_module):
    base = write_module("""
        from api import Command

        class GetRatings(Command):
            dependency = "ratings"
    """)
    module = write_module(f"""
        from api import Command
        from {base} import GetRatings

        class PutRating(Command):
            dependency = "ratings"
    """)

    assert list(load_commands([module], "ratings")) == ["PutRating"]


def test_load_commands_registers_by_key(write_module):
    module = write_module("""
        from api import Command

        class GetRatings(Command):
            dependency = "ratings"
            key = "ratings.get"
    """)

    assert list(load_commands([module], "ratings")) == ["ratings.get"]


def test_module_that_does_not_exist_is_named():
    missing = f"no_such_module_{uuid.uuid4().hex}"

    with pytest.raises(RegistryError) as caught:
        load_commands([missing], "ratings")

    assert str(caught.value).startswith(f"cannot import command module {missing!r}: ModuleNotFoundError:")


def test_module_that_fails_to_import_is_named_with_its_error(write_module):
    module = write_module("raise RuntimeError('no database configured')\n")

    with pytest.raises(RegistryError) as caught:
        load_commands([module], "ratings")

    assert str(caught.value) == f"cannot import command module {module!r}: RuntimeError: no database configured"


def test_no_command_for_the_dependency_lists_what_the_module_defines(write_module):
    module = write_module("""
        from api import Command

        class GetUser(Command):
            dependency = "users"

        class Local(Command):
            pass
    """)

    with pytest.raises(RegistryError) as caught:
        load_commands([module], "ratings")

    assert str(caught.value) == (
        f"modules {module} define no command with dependency = 'ratings' (they define: GetUser (users), Local (None))"
    )


def test_module_without_any_command_says_so(write_module):
    module = write_module("VALUE = 1\n")

    with pytest.raises(RegistryError) as caught:
        load_commands([module], "ratings")

    assert str(caught.value) == f"modules {module} define no command with dependency = 'ratings'"


def test_two_commands_with_one_key_are_an_error(write_module):
    first = write_module("""
        from api import Command

        class GetRatings(Command):
            dependency = "ratings"
    """)
    second = write_module("""
        from api import Command

        class FetchRatings(Command):
            dependency = "ratings"
            key = "GetRatings"
    """)

    with pytest.raises(RegistryError) as caught:
        load_commands([first, second], "ratings")

    assert str(caught.value) == "two commands have the key 'GetRatings': GetRatings and FetchRatings"


def test_listing_a_module_twice_is_not_a_duplicate(write_module):
    module = write_module("""
        from api import Command

        class GetRatings(Command):
            dependency = "ratings"
    """)

    assert list(load_commands([module, module], "ratings")) == ["GetRatings"]
