"""Runtime settings from the operator (``seawall config set|unset``, ``seawall breaker``):
a typo in a pool or command name is refused, naming what the broker knows, and a setting
can be dropped again. In-process, on a Broker that binds nothing, with a fake clock."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any, Iterator

import pytest
import zmq

from api.testing import FakeClock
from broker import control
from broker.cli import _format_chaos, _format_status, _parser
from broker.server import Broker
from shared import protocol
from shared.config import parse


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    config = parse({"run_dir": "run", "pools": {"configured": {"queue_size": 5}},
                    "commands": {"InTheFile": {"timeout_s": 0.5}}}, tmp_path)
    broker = Broker(config, clock=FakeClock())
    broker.events = zmq.Context.instance().socket(zmq.PUB)  # what a change publishes goes nowhere
    broker._on_back([b"w1", *protocol.ready("ratings", 1, 4242, {"GetRatings": {}, "ratings.get": {}})])
    yield broker
    broker.events.close(linger=0)


def ask(broker: Broker, action: str, **arguments: Any) -> tuple[bool, dict[str, Any]]:
    return control.handle_control(broker, protocol.Control(action, arguments))


@pytest.mark.parametrize("key", ["commands.GetRatings.timeout_s", "commands.ratings.get.timeout_s",
                                 "commands.InTheFile.timeout_s", "pools.ratings.queue_size",
                                 "pools.configured.queue_size", "defaults.timeout_s"])
def test_a_setting_of_a_known_pool_or_command_is_set(broker: Broker, key: str) -> None:
    assert ask(broker, "config_set", key=key, value=3) == (True, {"key": key, "value": 3})
    assert broker.overrides[key] == 3


def test_a_misspelt_command_is_refused_with_the_nearest_names(broker: Broker) -> None:
    ok, answer = ask(broker, "breaker", command="GetRating", force="open")

    assert not ok
    assert answer["error"] == ("commands.GetRating.breaker_force: no command 'GetRating' is known to the broker "
                               "(did you mean GetRatings?); to set it before its first call, add --new")
    assert broker.overrides == {}


def test_a_command_not_called_yet_is_set_when_asked(broker: Broker) -> None:
    assert ask(broker, "breaker", command="Later", force="open", new_command_ok=True)[0]
    assert broker.overrides == {"commands.Later.breaker_force": "open"}
    assert ask(broker, "config_set", key="commands.Later.timeout_s", value=2)[0]  # known now


def test_a_misspelt_pool_is_refused_listing_the_pools(broker: Broker) -> None:
    ok, answer = ask(broker, "config_set", key="pools.zzz.queue_size", value=10, new_command_ok=True)

    assert not ok
    assert answer["error"] == "pools.zzz.queue_size: no pool 'zzz' (pools: configured, ratings)"


def test_a_runtime_setting_is_dropped_by_unset(broker: Broker) -> None:
    ask(broker, "config_set", key="pools.ratings.queue_size", value=10)
    assert broker.pools["ratings"].queue_size == 10

    assert ask(broker, "config_unset", key="pools.ratings.queue_size") == (
        True, {"key": "pools.ratings.queue_size", "unset": True})

    assert broker.overrides == {}
    assert broker.pools["ratings"].queue_size == 5  # the default again
    ok, answer = ask(broker, "config_unset", key="pools.ratings.queue_size")
    assert not ok and "not a runtime setting now" in answer["error"]


def test_status_shows_runtime_settings_and_chaos(broker: Broker) -> None:
    ask(broker, "config_set", key="commands.GetRatings.timeout_s", value=0.3)
    broker.pools["ratings"].chaos = {"latency_ms": 500.0, "latency_pct": 100.0}  # as `seawall chaos` sets it

    text = _format_status(ask(broker, "status")[1])

    assert "RUNTIME SETTINGS (until the broker restarts; drop one with: seawall config unset KEY)\n" \
           "  commands.GetRatings.timeout_s = 0.3" in text
    assert "CHAOS (faults injected now; stop with: seawall chaos clear [POOL])\n" \
           "  ratings: latency_ms=500, latency_pct=100" in text


@pytest.mark.parametrize("key", ["timeout_s", "", "pools", "commands.", "pools.ratings", "x.y.z"])
def test_a_key_of_no_runtime_setting_is_refused_not_a_crash(broker: Broker, key: str) -> None:
    ok, answer = ask(broker, "config_set", key=key, value=1)

    assert not ok and "not a runtime setting" in answer["error"]


def test_a_request_that_raises_in_the_broker_is_answered_with_the_error(broker: Broker, monkeypatch) -> None:
    def out_of_memory(key: str, value: Any) -> Any:
        raise MemoryError("rings too large")

    monkeypatch.setattr(broker, "set_setting", out_of_memory)

    assert ask(broker, "config_set", key="defaults.timeout_s", value=1) == (
        False, {"error": "config_set failed in the broker: MemoryError: rings too large"})
    assert ask(broker, "ping") == (True, {"pong": True})


def test_a_chaos_value_out_of_range_says_the_range(broker: Broker) -> None:
    assert ask(broker, "chaos", mode="errors", dependency="ratings", pct=150) == (
        False, {"error": "chaos errors: error_pct must be a number from 0 to 100, got 150"})


def test_status_of_a_command_text_nothing_matches_says_so(broker: Broker) -> None:
    text = _format_status(ask(broker, "status", command="Nope")[1], "Nope")

    assert "(no command key contains 'Nope')" in text


def test_chaos_answers_are_said_in_words_and_json_on_request(broker: Broker) -> None:
    sent: list[bytes] = []
    broker.outbox = SimpleNamespace(to_worker=lambda identity, frames: sent.append(identity))  # type: ignore[assignment]
    ok, answer = ask(broker, "chaos", mode="latency", dependency="ratings", latency_ms=300.0, pct=50.0)
    assert ok
    assert _format_chaos(answer) == ("pool ratings: injecting latency_ms=300, latency_pct=50 now "
                                     "(stop with: seawall chaos clear ratings)")
    assert sent == [b"w1"]  # the pool's worker is told
    assert _format_chaos(ask(broker, "chaos", mode="clear", dependency="ratings")[1]) == \
        "no faults injected now into pool ratings"
    assert _format_chaos(ask(broker, "chaos", mode="clear")[1]) == "no faults injected now into every pool"
    assert _format_chaos({"killed_pid": 4242}).startswith("told worker pid 4242 to die as kill -9 would")
    assert _parser().parse_args(["chaos", "kill", "ratings", "--json"]).json
    assert not _parser().parse_args(["chaos", "errors", "ratings", "20"]).json


def test_a_second_kill_in_a_row_picks_another_worker(broker: Broker) -> None:
    """The first worker told to die is still registered a moment later: it was chosen again."""
    broker.outbox = SimpleNamespace(to_worker=lambda identity, frames: None)  # type: ignore[assignment]
    broker._on_back([b"w2", *protocol.ready("ratings", 1, 4343, {"GetRatings": {}})])

    killed = [ask(broker, "chaos", mode="kill", dependency="ratings")[1].get("killed_pid") for _ in range(2)]
    ok, answer = ask(broker, "chaos", mode="kill", dependency="ratings")

    assert sorted(killed) == [4242, 4343]
    assert not ok and answer["error"] == "every worker of pool 'ratings' was told to die already; none has gone yet"
