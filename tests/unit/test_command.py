"""The Command base class: fields from annotations, construction, class settings, from_wire."""

from __future__ import annotations

import datetime
from typing import ClassVar

import pytest

from api.command import Command
from shared import protocol
from shared.config import ConfigError


class GetRatings(Command):
    dependency = "ratings"
    timeout_s = 0.5
    user_id: int
    limit: int = 10
    region: ClassVar[str] = "eu"


class GetRatingsWithFallback(GetRatings):
    include_hidden: bool = False

    def fallback(self) -> list:
        return []


class Renamed(Command):
    dependency = "ratings"
    key = "ratings.get"
    user_id: int


class NoArguments(Command):
    dependency = "ratings"


def raised(error_type: type[Exception], make, *args, **kwargs) -> str:
    with pytest.raises(error_type) as caught:
        make(*args, **kwargs)
    return str(caught.value)


# -- fields --------------------------------------------------------------------------


def test_fields_are_the_annotated_attributes_in_order():
    assert GetRatings._fields == ("user_id", "limit")


def test_classvar_and_setting_names_are_not_fields():
    class Annotated(Command):
        dependency = "ratings"
        timeout_s: float = 2.0
        breaker_error_pct: float = 30
        cache_size: ClassVar[int] = 3
        _private: int = 0
        query: str

    assert Annotated._fields == ("query",)


def test_runtime_classvar_annotation_is_not_a_field():
    namespace = {"dependency": "ratings", "__annotations__": {"cache_size": ClassVar[int], "query": str}}

    Runtime = type("Runtime", (Command,), namespace)

    assert Runtime._fields == ("query",)


def test_subclass_inherits_its_parents_fields_first():
    assert GetRatingsWithFallback._fields == ("user_id", "limit", "include_hidden")


def test_class_values_are_field_defaults():
    assert GetRatingsWithFallback._field_defaults == {"limit": 10, "include_hidden": False}


def test_command_without_annotations_has_no_fields():
    assert NoArguments().arguments == {}


def test_a_subclass_changes_a_fields_default_by_setting_it():
    class MoreRatings(GetRatings):
        limit = 50

    assert MoreRatings._fields == ("user_id", "limit")
    assert MoreRatings(7).arguments == {"user_id": 7, "limit": 50}
    assert protocol.decode_value(MoreRatings(7)._payload) == {"user_id": 7, "limit": 50}


@pytest.mark.parametrize("name", ["key", "dependency", "timeout_s"])
def test_an_argument_named_like_a_setting_is_refused_at_class_definition(name):
    message = raised(TypeError, type, "GetEntry", (Command,), {"__annotations__": {name: str}})

    assert message.startswith(f"GetEntry.{name}: {name!r} names the command's own ")
    assert message.endswith("so it cannot be an argument; give the argument another name")


@pytest.mark.parametrize("name", ["shard", "arguments", "run", "execute"])
def test_an_argument_named_like_a_command_method_is_refused_at_class_definition(name):
    message = raised(TypeError, type, "Sharded", (Command,), {"dependency": "db", "__annotations__": {name: int}})

    assert message == (f"Sharded.{name}: {name!r} is a method of every Command, so it cannot be an argument; "
                       "give the argument another name")


def test_a_list_or_dict_default_is_copied_for_each_command():
    class Tagged(Command):
        tags: list = []
        labels: dict = {"a": [1]}

    first = Tagged()
    first.tags.append("changed")
    first.labels["a"].append(2)

    assert Tagged().arguments == {"tags": [], "labels": {"a": [1]}}
    assert Tagged.from_wire({}, b"").arguments == {"tags": [], "labels": {"a": [1]}}


# -- construction --------------------------------------------------------------------


def test_positional_arguments_fill_fields_in_order():
    command = GetRatings(7, 20)

    assert command.arguments == {"user_id": 7, "limit": 20}


def test_keyword_arguments_fill_fields_by_name():
    command = GetRatings(limit=3, user_id=7)

    assert (command.user_id, command.limit) == (7, 3)


def test_missing_argument_takes_its_default():
    assert GetRatings(7).limit == 10


def test_payload_is_the_msgpack_of_the_arguments():
    command = GetRatings(7, limit=3)

    assert protocol.decode_value(command._payload) == {"user_id": 7, "limit": 3}


def test_a_command_without_fields_has_the_payload_of_no_arguments():
    command = NoArguments()

    assert command._payload == protocol.encode_value({})
    assert command.arguments == {} and protocol.decode_value(command._payload) == {}


def test_a_command_without_fields_still_rejects_arguments():
    assert raised(TypeError, NoArguments, 1) == "NoArguments takes 0 arguments (), got 1"
    assert raised(TypeError, NoArguments, user_id=1) == "NoArguments has no argument 'user_id' (it takes: none)"


def test_missing_argument_without_default_is_named():
    assert raised(TypeError, GetRatings, limit=3) == "GetRatings is missing argument 'user_id'"


def test_unknown_keyword_argument_is_named():
    assert raised(TypeError, GetRatings, 7, user=8) == (
        "GetRatings has no argument 'user' (it takes: user_id, limit)"
    )


def test_argument_given_twice_is_named():
    assert raised(TypeError, GetRatings, 7, user_id=8) == "GetRatings got argument 'user_id' twice"


def test_too_many_positional_arguments_say_what_the_command_takes():
    assert raised(TypeError, GetRatings, 7, 10, 3) == "GetRatings takes 2 arguments (user_id, limit), got 3"


def test_error_names_the_command_by_its_key():
    assert raised(TypeError, Renamed) == "ratings.get is missing argument 'user_id'"


@pytest.mark.parametrize(
    ("value", "type_name"),
    [({1, 2}, "set"), (object(), "object"), (datetime.date(2024, 1, 1), "date")],
    ids=["set", "object", "date"],
)
def test_argument_msgpack_cannot_carry_is_named_with_its_type(value, type_name):
    message = raised(TypeError, GetRatings, 7, limit=value)

    assert message.startswith(f"GetRatings: argument 'limit' ({type_name}) cannot be sent:")
    assert "arguments must be None, bool, int, float, str, bytes, or lists/dicts of them" in message


def test_unsendable_value_nested_in_a_list_names_the_argument():
    message = raised(TypeError, GetRatings, [1, {2}])

    assert message.startswith("GetRatings: argument 'user_id' (list) cannot be sent: can not serialize 'set' object")


@pytest.mark.parametrize("value", [{(1, 2): "a"}, [{"x": {(1,): 1}}], ({(1,): 1},)],
                         ids=["top level", "in a list", "in a tuple"])
def test_a_tuple_map_key_is_refused_at_construction(value):
    """It packs, but the worker would get a list key, which no dict can hold."""
    message = raised(TypeError, GetRatings, value)

    assert message.startswith("GetRatings: argument 'user_id' has a map key (1")
    assert message.endswith("a tuple: it would reach the worker as a list, which cannot be a key; "
                            "use str, int, float, bool, bytes or None keys")


def test_map_keys_the_worker_can_hold_are_accepted():
    value = {"a": 1, 2: [3], 2.5: {None: b"x"}, True: {"n": [{"deep": (1, 2)}]}}

    assert protocol.decode_value(GetRatings(value)._payload)["user_id"] == protocol.decode_value(
        protocol.encode_value(value))


def test_oversized_arguments_are_a_value_error():
    message = raised(ValueError, GetRatings, "x" * protocol.MAX_PAYLOAD_BYTES)

    assert message.startswith("GetRatings: arguments encode to ")
    assert message.endswith(f"bytes, over the {protocol.MAX_PAYLOAD_BYTES} limit")


def test_an_argument_cannot_be_changed_once_built():
    """The payload and the request cache key were made from it: a change would send one
    value and cache under another."""
    command = GetRatings(7)

    message = raised(AttributeError, setattr, command, "user_id", 8)

    assert message == ("GetRatings.user_id is an argument, fixed when the command is built (it was encoded then); "
                       "build a new GetRatings instead")
    assert raised(AttributeError, delattr, command, "limit") == "GetRatings.limit is an argument and cannot be deleted"
    assert command.arguments == {"user_id": 7, "limit": 10}


def test_other_attributes_can_be_set():
    command = GetRatings(7)
    command.note = "mine"

    assert command.note == "mine"


def test_repr_shows_the_key_and_arguments():
    assert repr(GetRatings(7)) == "GetRatings(user_id=7, limit=10)"


# -- class settings checked at definition -------------------------------------------


def definition_error(define) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        define()
    return caught.value


def test_bad_timeout_setting_is_named_at_class_definition():
    def define():
        class BadTimeout(Command):
            dependency = "ratings"
            timeout_s = -1

    error = definition_error(define)

    assert error.key.endswith(".BadTimeout.timeout_s")
    assert str(error).endswith("BadTimeout.timeout_s: expected a number > 0 and <= 3600, got -1")


def test_bad_dependency_is_named_at_class_definition():
    def define():
        class BadDependency(Command):
            dependency = 5

    error = definition_error(define)

    assert str(error).endswith("BadDependency.dependency: expected a pool name or None, got 5")


def test_empty_dependency_is_rejected_at_class_definition():
    def define():
        class EmptyDependency(Command):
            dependency = ""

    assert definition_error(define).key.endswith("EmptyDependency.dependency")


def test_bad_breaker_force_is_named_at_class_definition():
    def define():
        class BadForce(Command):
            breaker_force = "sometimes"

    assert str(definition_error(define)).endswith(
        "BadForce.breaker_force: expected one of 'auto', 'open', 'closed', got 'sometimes'"
    )


def test_empty_key_is_rejected_at_class_definition():
    def define():
        class EmptyKey(Command):
            key = ""

    assert str(definition_error(define)).endswith("EmptyKey.key: expected a name, got ''")


@pytest.mark.parametrize("scope", ["global", "request"])
def test_collapse_without_run_batch_is_refused_at_class_definition(scope):
    message = raised(TypeError, type, "GetItems", (Command,), {"dependency": "items", "collapse": scope})

    assert message.startswith(f"GetItems sets collapse = {scope!r} but defines no run_batch: ")
    assert "define the classmethod run_batch(cls, calls)" in message


def test_run_batch_as_a_plain_method_is_refused_at_class_definition():
    def run_batch(cls, calls):
        return calls

    message = raised(TypeError, type, "GetItems", (Command,),
                     {"dependency": "items", "collapse": "global", "run_batch": run_batch})

    assert message.startswith("GetItems.run_batch must be a classmethod")


def test_run_batch_without_collapse_is_allowed_for_subclasses_that_collapse():
    class ItemsBase(Command):
        dependency = "items"

        @classmethod
        def run_batch(cls, calls: list) -> list:
            return [None for _ in calls]

    class GetItems(ItemsBase):
        collapse = "request"

    assert ItemsBase.collapse is None and GetItems.run_batch([GetItems()]) == [None]


def test_class_settings_are_the_settings_the_class_sets():
    assert GetRatings.class_settings() == {"timeout_s": 0.5}


def test_class_settings_include_inherited_ones():
    assert GetRatingsWithFallback.class_settings() == {"timeout_s": 0.5}


def test_class_without_settings_has_none():
    assert NoArguments.class_settings() == {}


def test_inherited_dependency_needs_no_restating():
    assert GetRatingsWithFallback.dependency == "ratings"


# -- key and fallback ----------------------------------------------------------------


def test_key_defaults_to_the_class_name():
    assert GetRatings.key == "GetRatings"


def test_subclass_gets_its_own_class_name_as_key():
    assert GetRatingsWithFallback.key == "GetRatingsWithFallback"


def test_key_can_be_set_on_the_class():
    assert Renamed.key == "ratings.get"


def test_has_fallback_is_true_when_fallback_is_overridden():
    assert GetRatingsWithFallback.has_fallback() is True


def test_has_fallback_is_false_for_the_base_fallback():
    assert GetRatings.has_fallback() is False


# -- from_wire -----------------------------------------------------------------------


def test_from_wire_rebuilds_the_command_with_the_senders_payload():
    payload = protocol.encode_value({"user_id": 7, "limit": 3})

    command = GetRatings.from_wire(protocol.decode_value(payload), payload)

    assert isinstance(command, GetRatings)
    assert command.arguments == {"user_id": 7, "limit": 3}
    assert command._payload is payload


def test_from_wire_rejects_an_argument_the_class_does_not_take():
    message = raised(TypeError, GetRatings.from_wire, {"user_id": 7, "limt": 3}, b"")

    assert message == ("GetRatings takes arguments ['limit', 'user_id'], the caller sent ['limt', 'user_id']: "
                       "['limt'] unknown here (is the caller newer than this worker?)")


def test_from_wire_gives_an_argument_not_sent_its_default():
    """A pool deployed with a new optional argument still serves fronts that do not send it."""
    command = GetRatings.from_wire({"user_id": 7}, b"")

    assert command.arguments == {"user_id": 7, "limit": 10}


def test_from_wire_rejects_a_missing_argument_without_default():
    message = raised(TypeError, GetRatings.from_wire, {"limit": 3}, b"")

    assert message == ("GetRatings takes arguments ['limit', 'user_id'], the caller sent ['limit']: "
                       "['user_id'] missing, with no default")


def test_from_wire_names_argument_keys_that_are_not_strings():
    message = raised(TypeError, GetRatings.from_wire, {"user_id": 7, 3: 1}, b"")

    assert "the caller sent ['3', 'user_id']: ['3'] unknown here" in message


def test_from_wire_rejects_arguments_that_are_not_a_map():
    message = raised(TypeError, GetRatings.from_wire, [7, 3], b"")

    assert message == "GetRatings takes arguments ['limit', 'user_id'], the caller sent list"
