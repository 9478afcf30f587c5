"""A worker that stalls (SIGSTOP) past its liveness and then continues: what the broker does with it."""

from __future__ import annotations

import json
import os
import signal

import gevent
import pytest

from api import CommandError
from chaos.scenarios import FAULTY, POOL_SIZE
from chaos_commands import FaultyCall

pytestmark = pytest.mark.timeout(90)

#: Longer than it takes to see the worker back, shorter than FaultyCall's 0.3 s timeout.
STALE_CALL_WORK_S = 0.2


def _outcomes(client, count, work_s):
    futures = [FaultyCall(call_id=i, work_s=work_s, fallback_declines=True).queue(client=client) for i in range(count)]
    outcomes = []
    for future in futures:
        try:
            outcomes.append(future.get(timeout=5))
        except CommandError as error:
            outcomes.append(f"{error.failure.value}: {error.cause}")
    return outcomes


def _joins(cluster, pid):
    lines = (cluster.directory / "broker.log").read_text().splitlines()
    return [line for line in lines if '"worker_joined"' in line and json.loads(line)["worker_pid"] == pid]


@pytest.mark.xfail(strict=True, reason=(
    "BUG: a worker back from a stall re-registers up to three times (its own silence check, then once per "
    "stale RESET), and each extra READY makes the broker drop it and answer WORKER_LOST for the call it "
    "had just sent it; and the broker takes every slot of a re-registered worker as free while the worker "
    "still runs the call it received while stopped, so the next call it is sent fails with WorkerBusy "
    "(a FAILURE that feeds the breaker) although it never ran"))
def test_a_worker_back_from_a_stall_registers_once_and_gets_only_calls_it_can_take(cluster):
    client = cluster.client()
    pid = cluster.rpc().supervisor.getProcessInfo(f"pools:pool-{FAULTY}-00")["pid"]
    cluster.wait_until(lambda: cluster.status()["pools"][FAULTY]["busy"] == 0, "the pool to be idle")
    os.kill(pid, signal.SIGSTOP)
    try:
        # One call per worker: the stopped one gets one too, which waits in its socket.
        stale = gevent.spawn(_outcomes, client, POOL_SIZE, STALE_CALL_WORK_S)
        cluster.wait_until(lambda: cluster.status()["pools"][FAULTY]["workers"] == POOL_SIZE - 1,
                           "the broker to drop the stopped worker")
        stale.join()
    finally:
        os.kill(pid, signal.SIGCONT)
    joins_before = len(_joins(cluster, pid))
    cluster.wait_until(lambda: pid in [w["pid"] for w in cluster.status()["pools"][FAULTY]["worker_list"]],
                       "the worker to register again")

    # While it still runs the stale call, the pool's three slots are not all free.
    outcomes = _outcomes(client, POOL_SIZE, 0.0)

    assert outcomes == list(range(POOL_SIZE)), outcomes
    assert len(_joins(cluster, pid)) - joins_before == 1, "registered more than once"
