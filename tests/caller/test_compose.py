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


def many(count):
    """A source with more values than a stage buffers: its producer waits for a reader."""
    return Observable(lambda emit: [emit(n) for n in range(count)])


def test_zip_cancels_the_longer_source_where_the_shortest_ended():
    longer = many(compose.BUFFER * 2)

    assert compose.zip(just("a"), longer).get() == ("a", 0)
    gevent.idle()  # every greenlet has run until it waits
    assert longer._greenlet.dead  # not left waiting on its full buffer


@pytest.mark.parametrize("stage", [lambda source: compose.map(source, str),
                                   lambda source: compose.filter(source, bool),
                                   lambda source: compose.catch(source, repr)],
                         ids=["map", "filter", "catch"])
def test_cancelling_a_stage_cancels_its_source(stage):
    source = many(compose.BUFFER * 4)  # more than its buffer and the stage's hold
    stream = stage(source)
    gevent.idle()  # both full: each producer waits for its reader

    stream.cancel()
    gevent.idle()

    assert source._greenlet.dead


def test_a_timeout_raised_in_a_stage_is_the_streams_error():
    def own_deadline():
        with gevent.Timeout(0.01):
            gevent.sleep(1)

    with pytest.raises(gevent.Timeout):
        compose.from_call(own_deadline).get()
    caught = compose.catch(compose.from_call(own_deadline), lambda error: type(error).__name__)
    assert caught.get() == "Timeout"
    with pytest.raises(gevent.Timeout):
        compose.merge(compose.from_call(own_deadline), slow("late", 0.05)).get()


def test_a_reader_waiting_on_a_cancelled_stream_sees_it_end():
    stream = slow("late", 5)
    reader = gevent.spawn(lambda: list(stream.values()))
    gevent.idle()  # the reader waits for a value

    stream.cancel()

    assert reader.get(timeout=1) == []


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
