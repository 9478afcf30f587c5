"""Composition for endpoint code: map, flat_map, filter, merge, zip, take, to_list, first."""

from __future__ import annotations

import gevent
import pytest

from api import compose, current_context, request_context
from api.compose import Observable, just


def slow(value, delay_s):
    return compose.from_call(lambda: (gevent.sleep(delay_s), value)[1])


def test_map_and_filter_transform_each_value():
    doubled = compose.map(compose.filter(just(1, 2, 3, 4), lambda n: n % 2 == 0), lambda n: n * 2)
    assert list(doubled.values()) == [4, 8]


def test_merge_gives_values_in_the_order_they_arrive():
    merged = compose.merge(slow("late", 0.05), slow("early", 0.0))
    assert list(merged.values()) == ["early", "late"]


def test_flat_map_runs_the_inner_calls_concurrently():
    started = gevent.get_hub().loop.now()
    values = compose.to_list(compose.flat_map(just(1, 2, 3), lambda n: slow(n * 10, 0.1))).get()
    assert sorted(values) == [10, 20, 30]
    assert gevent.get_hub().loop.now() - started < 0.25  # not 0.3: they overlapped


def test_zip_pairs_the_ith_values():
    zipped = compose.zip(just(1, 2, 3), just("a", "b"), combine=lambda n, s: f"{n}{s}")
    assert list(zipped.values()) == ["1a", "2b"]


def test_take_stops_after_n_values():
    assert list(compose.take(just(1, 2, 3, 4), 2).values()) == [1, 2]


def test_first_gives_the_first_value_or_the_default():
    assert compose.first(slow("a", 0.0)).get() == "a"
    assert compose.first(just(), default="none").get() == "none"
    with pytest.raises(LookupError):
        compose.first(just()).get()


def test_an_error_flows_downstream_to_get():
    def boom():
        raise ValueError("backend down")

    with pytest.raises(ValueError, match="backend down"):
        compose.to_list(compose.map(compose.from_call(boom), str)).get()


def test_catch_replaces_an_error_with_the_handlers_value():
    def boom():
        raise ValueError("backend down")

    assert compose.catch(compose.from_call(boom), lambda error: f"degraded: {error}").get() == "degraded: backend down"


def test_stages_run_in_the_callers_request_context():
    with request_context() as context:
        seen = compose.from_call(current_context).get()
    assert seen is context


def test_observable_of_a_command(tmp_path):
    from pathlib import Path

    from api import Client, Command
    from shared.config import parse

    class Add(Command):
        a: int
        b: int

        def run(self) -> int:
            return self.a + self.b

    client = Client(parse({"run_dir": "run"}, Path(tmp_path)))
    try:
        total = compose.zip(Add(a=1, b=2).observe(client), Add(a=3, b=4).observe(client), combine=lambda x, y: x + y)
        assert total.get() == 10
        assert isinstance(Add(a=0, b=0).observe(client), Observable)
    finally:
        client.close()
