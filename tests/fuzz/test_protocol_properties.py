"""protocol.decode, in process, over arbitrary input: a message whose every field has its
declared type, or a ProtocolError — never another exception (which would take the
receiving process down). tests/unit/test_protocol.py throws arbitrary frames at decode;
these tests also check the type of every field of what it lets through, and set every
field of every kind, in the header or in a payload map, to any msgpack value."""

from __future__ import annotations

import types
import typing
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fuzz.messages import Fuzzer, common_seeds, front_seeds, fuzz_seed, worker_seeds
from shared import protocol

#: Examples per property; the field-by-field one gets the most.
EXAMPLES = 1000
HEADER_EXAMPLES = 300
SEEDS = front_seeds("sample") + worker_seeds()

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-2**63, 2**64 - 1), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30), st.binary(max_size=30),
    st.builds(msgpack.ExtType, st.integers(0, 127), st.binary(max_size=8)),
)
map_keys = st.one_of(st.text(max_size=12), st.integers(-2**63, 2**64 - 1), st.binary(max_size=6), st.booleans())
#: Any value msgpack can carry: scalars, and arrays and maps of them.
msgpack_values = st.recursive(
    scalars, lambda children: st.lists(children, max_size=5) | st.dictionaries(map_keys, children, max_size=5),
    max_leaves=10)
kinds = st.one_of(st.sampled_from(protocol.Kind), st.integers(-2**63, 2**64 - 1), scalars)
payloads = st.one_of(st.none(), st.binary(max_size=64), msgpack_values.map(lambda value: msgpack.packb(value)))


def decode_checked(frames: list[bytes]) -> protocol.Message | None:
    """The decoded message, its fields checked against their declared types; None if refused."""
    try:
        message = protocol.decode(frames)
    except protocol.ProtocolError:
        return None
    check_fields(message)
    return message


def check_fields(message: Any) -> None:
    """Every field of a decoded message (and of each item of a coalesced one) has its declared type."""
    hints = typing.get_type_hints(type(message))
    for name, value in message._asdict().items():
        assert conforms(value, hints[name]), f"{type(message).__name__}.{name} = {value!r:.200} is not {hints[name]}"
        if type(value) is tuple and all(hasattr(item, "_asdict") for item in value):
            for item in value:
                check_fields(item)


def conforms(value: Any, hint: Any) -> bool:
    if hint is Any:
        return True
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is None:
        return type(value) is hint
    if origin in (typing.Union, types.UnionType):
        return any(conforms(value, arg) for arg in args)
    if origin is dict:
        return type(value) is dict and all(conforms(key, args[0]) and conforms(item, args[1])
                                           for key, item in value.items())
    if origin is list:
        return type(value) is list and all(conforms(item, args[0]) for item in value)
    if origin is tuple:
        if type(value) is not tuple:
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(conforms(item, args[0]) for item in value)
        return len(value) == len(args) and all(conforms(item, arg) for item, arg in zip(value, args))
    raise AssertionError(f"no check for {hint}")


@settings(max_examples=HEADER_EXAMPLES, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(kinds, st.lists(msgpack_values, max_size=8), payloads)
def test_any_header_fields_decode_to_a_checked_message_or_a_protocol_error(kind, fields, payload):
    header = msgpack.packb([kind, *fields])
    decode_checked([protocol.PROTOCOL, header] if payload is None else [protocol.PROTOCOL, header, payload])


@settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(SEEDS), st.integers(1, 8), msgpack_values, st.booleans())
def test_a_valid_message_with_one_field_replaced_decodes_checked_or_is_refused(seed, index, value, in_payload):
    """Every field of every kind, header or payload map, set to any msgpack value."""
    header = list(seed.header)
    payload = seed.payload
    if in_payload and isinstance(seed.payload_value, dict) and seed.payload_value:
        entries = dict(seed.payload_value)
        entries[list(entries)[index % len(entries)]] = value
        payload = msgpack.packb(entries)
    else:
        header[index % len(header) or 1 % len(header)] = value
    frames = [protocol.PROTOCOL, msgpack.packb(header)]
    decode_checked(frames if payload is None else [*frames, payload])


@pytest.mark.parametrize("seed", SEEDS, ids=[seed.name for seed in SEEDS])
def test_every_seed_is_a_valid_message_of_its_kind(seed):
    assert decode_checked(seed.frames) is not None


def test_the_seeds_cover_every_kind():
    assert {protocol.Kind(seed.header[0]) for seed in common_seeds()} == set(protocol.Kind)


def test_the_mutation_loop_is_deterministic_and_never_breaks_decode():
    """5,000 messages of the fuzz's own mutation loop, decoded and checked here (the fuzz
    suite also decodes each of its 400,000 before sending it)."""
    first, second = Fuzzer(SEEDS, fuzz_seed()), Fuzzer(SEEDS, fuzz_seed())
    for _ in range(5_000):
        fuzzed = first.next()
        assert fuzzed == second.next()
        decode_checked(fuzzed.frames)
