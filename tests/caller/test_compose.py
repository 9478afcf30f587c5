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


def answer(stream: Observable, within_s: float = 5.0):
    """``stream.get()``, or a test failure (not a hang) if it does not answer in time."""
    with gevent.Timeout(within_s, AssertionError(f"no answer in {within_s:g} s")):
        return stream.get()


def paced(*values, interval_s=0.02):
    """A source that makes its values one at a time, ``interval_s`` apart."""
    def produce(emit):
        for value in values:
            gevent.sleep(interval_s)
            emit(value)

    return Observable(produce)


@pytest.mark.parametrize(("stage", "expected"), [
    (lambda source: compose.map(source, lambda n: n * 10), [10, 20]),
    (lambda source: compose.filter(source, lambda n: n > 1), [2]),
    (lambda source: compose.flat_map(source, lambda n: slow(n * 10, 0.01)), [10, 20]),
    (lambda source: compose.merge(source, just(0)), [0, 1, 2]),
    (lambda source: compose.zip(source, just("a", "b")), [(1, "a"), (2, "b")]),
    (lambda source: compose.take(source, 1), [1]),
    (lambda source: compose.first(source), [1]),
    (lambda source: compose.catch(source, repr), [1, 2]),
    (lambda source: compose.to_list(source), [[1, 2]]),
    (lambda source: source, [1, 2]),
], ids=["map", "filter", "flat_map", "merge", "zip", "take", "first", "catch", "to_list", "itself"])
def test_a_stream_read_by_two_stages_gives_each_every_value(stage, expected):
    source = paced(1, 2)

    both = compose.zip(compose.to_list(stage(source)), compose.to_list(stage(source)))

    assert [sorted(values, key=repr) for values in answer(both)] == [expected, expected]


def test_readers_starting_before_during_and_after_the_stream_each_see_every_value():
    source = paced(1, 2, 3)
    before = compose.to_list(source)
    gevent.sleep(0.03)  # the first value is out
    during = compose.to_list(source)

    assert answer(before) == answer(during) == [1, 2, 3]
    assert answer(compose.to_list(source)) == [1, 2, 3]  # after its end
    assert list(source.values()) == [1, 2, 3]


def test_every_reader_of_a_failing_stream_sees_its_values_then_its_error():
    def produce(emit):
        emit("partial")
        gevent.sleep(0.02)
        raise ValueError("backend down")

    source = Observable(produce)
    caught = [compose.catch(compose.to_list(source), lambda error: str(error)) for _ in range(2)]
    mapped = compose.catch(compose.map(source, str.upper), lambda error: "then: " + str(error))

    assert [answer(stream) for stream in caught] == ["backend down", "backend down"]
    assert answer(mapped) == ["PARTIAL", "then: backend down"]
    with pytest.raises(ValueError, match="backend down"):
        answer(source)  # read after the end: the error again


def test_a_stream_zipped_with_itself_pairs_each_value_with_itself():
    source = paced(1, 2)

    assert answer(compose.zip(source, source)) == [(1, 1), (2, 2)]


def test_a_shared_source_is_cancelled_only_when_its_last_reader_stops_early():
    source = paced(*range(50), interval_s=0.01)
    one, three = compose.take(source, 1), compose.take(source, 3)

    assert answer(one) == 0
    assert not source._greenlet.dead  # the other take still reads it
    assert answer(three) == [0, 1, 2]
    gevent.idle()
    assert source._greenlet.dead  # then nobody did: cancelled, not run to its 50th value


def test_a_stream_runs_once_whatever_reads_it():
    runs = []
    source = compose.from_call(lambda: runs.append(1) or "ann")

    assert answer(compose.zip(compose.map(source, str.upper), compose.first(source), source)) == ("ANN", "ann", "ann")
    assert runs == [1]


def test_a_stream_keeps_its_last_values_and_a_reader_behind_them_gets_replay_lost():
    longest = compose.MAX_KEPT_VALUES + compose.BUFFER
    source = many(longest)

    assert len(answer(compose.to_list(source), within_s=30)) == longest  # one reader: every value
    assert len(source._kept) == compose.MAX_KEPT_VALUES  # bounded, not all it made
    with pytest.raises(compose.ReplayLost):
        answer(compose.to_list(source))  # a late reader would miss the first ones: an error, not a gap


def test_flat_map_cancels_the_inner_streams_it_started_when_its_source_fails():
    inner_streams = []

    def inner(value):
        inner_streams.append(slow(value, 5))
        return inner_streams[-1]

    def fail_later():
        gevent.sleep(0.05)
        raise ValueError("source failed partway")

    with pytest.raises(ValueError, match="partway"):
        answer(compose.flat_map(compose.merge(just(1, 2), compose.from_call(fail_later)), inner))
    gevent.idle()

    assert len(inner_streams) == 2
    assert all(stream._greenlet.dead for stream in inner_streams)  # not left running 5 s


def test_flat_map_gives_inner_values_before_its_source_ends():
    source = paced("a", "b", interval_s=0.3)
    started = gevent.get_hub().loop.now()

    first_value = answer(compose.first(compose.flat_map(source, lambda value: just(value))))

    assert first_value == "a"
    assert gevent.get_hub().loop.now() - started < 0.5  # not after the source's last value, 0.6 s in


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


def test_an_observable_of_a_command_read_by_two_stages_runs_the_command_once(tmp_path):
    from pathlib import Path

    from api import Client, Command
    from shared.config import parse

    runs = []

    class GetUser(Command):
        user_id: int

        def run(self) -> dict:
            runs.append(self.user_id)
            return {"id": self.user_id, "name": "Ann"}

    client = Client(parse({"run_dir": "run"}, Path(tmp_path)))
    try:
        user = GetUser(user_id=7).observe(client)
        profile = compose.zip(compose.map(user, lambda member: member["name"]),
                              compose.map(user, lambda member: member["id"]))
        assert answer(profile) == ("Ann", 7)
        assert runs == [7]
    finally:
        client.close()


def test_take_of_a_zip_of_nothing_is_empty_and_the_process_goes_on():
    """zip() of no source emitted () for ever; once take() ended it, its producer emitted into
    the ended stream without yielding, and no other greenlet (a request's deadline) ever ran."""
    ticked = []
    ticker = gevent.spawn_later(0.05, ticked.append, True)
    with gevent.Timeout(5):
        assert compose.take(compose.zip(), 3).get() == []
        assert compose.first(compose.zip(), default=None).get() is None
        ticker.join()
    assert ticked == [True]


def test_a_producer_emitting_into_a_cancelled_stream_stops_at_once():
    emitted = []

    def produce(emit):
        for value in range(1_000_000):
            emitted.append(value)
            emit(value)

    stream = Observable(produce)
    assert compose.take(stream, 1).get() == 0
    with gevent.Timeout(5):
        stream._greenlet.join()
    assert stream._ended and len(emitted) <= compose.BUFFER + 2


def test_system_exit_in_a_stage_is_the_streams_error_not_the_process_end():
    """Let out of a stage's greenlet, gevent gives SystemExit to the main greenlet: a front exits."""
    def leave(value):
        raise SystemExit(3)

    def request(stream_of) -> str:
        try:
            stream_of().get()
        except SystemExit:
            return "the request's own error"
        return "no error"

    for stream_of in (lambda: compose.map(just(1), leave),
                      lambda: compose.merge(compose.map(just(1), leave), just(2))):
        served = gevent.spawn(request, stream_of)
        served.join(5)  # a SystemExit let out of a stage's greenlet would be raised here, in the main one
        assert served.value == "the request's own error"


def test_a_reader_after_its_stream_was_released_gets_an_error_not_a_short_stream():
    """The last reader stopping early cancels the stream; a later reader saw a clean end of
    whatever had been made: a truncated stream passed off as whole."""
    users = compose.merge(just(1), slow(2, 0.05), slow(3, 0.05))
    assert compose.first(users).get() == 1
    with gevent.Timeout(5), pytest.raises(compose.StreamReleased, match="build every stage that reads it"):
        users.get()


def test_a_stream_cancelled_by_its_caller_ends_cleanly_for_a_later_reader():
    stream = slow(1, 0.5)
    stream.cancel()
    assert stream.get() == []


def test_a_long_chain_of_stages_is_cancelled_without_running_out_of_stack():
    """Cancelling recursed through every stage: 400 of them ran out of stack and left the source running."""
    source = compose.from_call(lambda: gevent.sleep(10))
    chain = source
    for _ in range(400):
        chain = compose.map(chain, lambda value: value)
    with gevent.Timeout(5):
        assert compose.take(chain, 0).get() == []
        source._greenlet.join()  # killed: not its 10 s
    assert source._ended and source._greenlet.dead


def test_a_request_context_ends_its_streams_nobody_reads():
    """An endpoint that reads one value of a merge of many and answers left the rest waiting
    for a reader for ever (2,000 greenlets of one request)."""
    with request_context() as context:
        merged = compose.merge(*[just(i) for i in range(3000)])
        for value in merged.values():
            break
        assert not merged._ended
        context.end_streams()
    with gevent.Timeout(5):
        merged._greenlet.join()
    assert merged._ended and merged._greenlet.dead
