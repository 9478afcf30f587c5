"""Every process fault, under load: callers are answered once and in time, the rest stands, the pool recovers.

Each test starts a supervised cluster with pools "faulty" and "healthy" (three workers
each), runs one scenario of ``chaos/scenarios.py`` while eight caller greenlets keep
calling both pools, and checks every call it made.
"""

from __future__ import annotations

import pytest

from chaos import scenarios
from chaos.caller_load import VALUE
from chaos.scenarios import FAULTY, HEALTHY, POOL_SIZE, RECOVERY_LIMIT_S, TIMEOUT_MARGIN_S, ScenarioResult

#: Start (≈4 s), scenario (≈6 s) and stop (≈2 s) on a noisy machine, with room for a slow recovery.
pytestmark = pytest.mark.timeout(120)


def _calls(records, limit=10):
    return [f"#{r.call_id} {r.pool} {r.answers or 'no answer'} cause={r.cause} "
            f"waited={'-' if r.waited_s is None else f'{r.waited_s * 1000:.0f} ms'} "
            f"(timeout {r.timeout_s * 1000:.0f} ms)" for r in records[:limit]]


def assert_every_call_answered_once_in_time(result: ScenarioResult) -> None:
    assert result.records, "the load made no calls"
    assert not result.lost(), f"calls with no answer: {_calls(result.lost())}"
    assert not result.doubled(), f"calls answered twice or with another call's value: {_calls(result.doubled())}"
    assert not result.wire_doubled, f"requests the broker replied to twice (wire ids): {result.wire_doubled}"
    assert not result.wire_unanswered, f"requests the broker never replied to (wire ids): {result.wire_unanswered}"
    assert not result.late(), f"calls answered later than timeout + {TIMEOUT_MARGIN_S * 1000:.0f} ms: " \
                              f"{_calls(result.late())}"


def assert_back_at_full_strength(result: ScenarioResult, record_property, pools=(FAULTY,)) -> None:
    record_property("recovery_s", result.recovery_s)
    assert result.recovery_s is not None, f"not recovered within {RECOVERY_LIMIT_S:g} s: {result.recovery_error}"
    for pool in pools:
        assert len(result.pids_after[pool]) == POOL_SIZE, f"pool {pool} has workers {result.pids_after[pool]}"
    after = result.failures_after_recovery()
    assert not after, f"calls failed after recovery: {_calls(after)}"


def assert_healthy_pool_untouched(result: ScenarioResult) -> None:
    failures = result.healthy_failures()
    assert not failures, f"the healthy pool failed: {_calls(failures)}"
    assert result.answers(HEALTHY)[VALUE] > 0


def assert_the_usual(result: ScenarioResult, record_property) -> None:
    assert_every_call_answered_once_in_time(result)
    assert_healthy_pool_untouched(result)
    assert_back_at_full_strength(result, record_property)


def _faulty_exits(result: ScenarioResult) -> list[str]:
    return [exit_text.split(": ", 1)[1] for exit_text in result.exits if exit_text.startswith(f"pool-{FAULTY}-")]


def test_latency_past_the_timeout_times_out_only_the_faulty_pool(cluster, record_property):
    result = scenarios.latency(cluster)

    assert_the_usual(result, record_property)
    assert result.broker_counts.get("TIMEOUT", 0) > 0, result.broker_counts
    assert result.answers(FAULTY)[VALUE] < len([r for r in result.records if r.pool == FAULTY])


def test_injected_errors_reach_callers_as_failures_of_the_faulty_pool_only(cluster, record_property):
    result = scenarios.errors(cluster)

    assert_the_usual(result, record_property)
    causes = {r.cause for r in result.records if r.pool == FAULTY and r.kind == "FAILURE"}
    assert "ChaosError" in causes, causes


def test_a_hung_call_ends_its_worker_which_is_replaced_and_the_pool_keeps_its_size(cluster, record_property):
    result = scenarios.hang(cluster)

    assert_the_usual(result, record_property)
    before, after = set(result.pids_before[FAULTY]), set(result.pids_after[FAULTY])
    assert before and not before & after, f"workers not replaced: before {before}, after {after}"
    assert len(after) == POOL_SIZE
    exits = _faulty_exits(result)
    assert exits and set(exits) == {"exit status 4"}, f"EXIT_HUNG_CALL (4) expected: {exits}"
    assert len(exits) >= len(before), exits


def test_workers_killed_mid_call_are_restarted_and_their_calls_answered(cluster, record_property):
    result = scenarios.kill(cluster)

    assert_the_usual(result, record_property)
    killed = result.details["killed_pids"]
    assert len(set(killed)) == scenarios.KILLS, f"chaos kill killed {killed}"
    assert not set(killed) & set(result.pids_after[FAULTY])
    assert _faulty_exits(result) == ["terminated by SIGKILL"] * scenarios.KILLS, result.exits


def test_a_killed_broker_fails_callers_fast_and_both_pools_recover_when_it_restarts(cluster, record_property):
    result = scenarios.broker(cluster)

    old_pid, new_pid = result.broker_pids
    assert new_pid not in (0, old_pid) and "broker: terminated by SIGKILL" in result.exits
    # Calls out when the broker died are failed by their own timeout (0.3 / 0.5 s, under the
    # front's ~1 s broker-down detection), so every call is held to timeout + margin.
    assert_every_call_answered_once_in_time(result)
    slow = [r for r in result.records if r.broker_down_at_start and r.waited_s > TIMEOUT_MARGIN_S]
    assert not slow, f"calls made while the front knew the broker was down were not failed fast: {_calls(slow)}"
    assert_healthy_pool_untouched(result)  # outside the outage: from the kill to recovery anything may fail
    assert_back_at_full_strength(result, record_property, pools=(FAULTY, HEALTHY))


def test_a_stopped_worker_is_dropped_and_taken_back_when_it_continues(cluster, record_property):
    result = scenarios.stop(cluster)

    assert_the_usual(result, record_property)
    seen = result.answers(FAULTY)
    assert seen["TIMEOUT"] + seen["WORKER_LOST"] + seen["fallback"] > 0, seen
    # The stopped worker either carries on, or ends itself (EXIT_HUNG_CALL) when it wakes
    # holding a call past its deadline; either way the pool is whole again.
    assert set(_faulty_exits(result)) <= {"exit status 4"}, result.exits
